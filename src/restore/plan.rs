//! The restore plan: made from the archive's index and schema section alone,
//! before the target is touched. `--dry-run` prints it.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use crate::archive::index::{ChunkRef, Entry};
use crate::backup::{kind, SequenceState, TableMeta};
use crate::error::{Error, Result};
use crate::filter::Pattern;
use crate::pg::copy::CopyFormat;
use crate::pg::transcode::Kind;
use crate::repo::reader::StoredArchive;
use crate::repo::Manifest;
use crate::schema::{DbObject, ObjectKind, SchemaModel, Section, TableInfo, TableRef};

use super::RestoreOptions;

/// A `--table` argument: `name` or `schema.name`, SQL quoting rules.
pub type TableName = Pattern;

#[derive(Debug, Clone, Serialize)]
pub struct PlannedObject {
    pub id: u32,
    pub kind: ObjectKind,
    pub identity: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedTable {
    pub schema: String,
    pub name: String,
    pub rows: u64,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    pub chunks: usize,
    /// Whether rows are loaded (false with --schema-only or excluded data).
    pub load_data: bool,
    #[serde(skip)]
    pub columns: Vec<String>,
    #[serde(skip)]
    pub chunk_refs: Vec<ChunkRef>,
    #[serde(skip)]
    pub entry: Option<u32>,
    /// The table's object in the schema model.
    #[serde(skip)]
    pub object_id: u32,
    /// The COPY format of the table's entry.
    #[serde(skip)]
    pub copy_format: CopyFormat,
    /// Whether this restore creates the table (a plain table whose CREATE is
    /// in the pre-data), so its load may TRUNCATE it first and COPY FREEZE.
    #[serde(skip)]
    pub created_here: bool,
    /// Indexes in `columns` of the `character(n)` columns whose blank
    /// padding the load leaves for the server to restore (`pg::unpad`):
    /// only in tables this restore creates, whose types are known.
    #[serde(skip)]
    pub unpad: Vec<usize>,
    /// The kind of each column when the load converts the table's text
    /// rows to binary COPY itself (`pg::transcode`): only in tables this
    /// restore creates, of known built-in types. Empty: sent as stored.
    #[serde(skip)]
    pub transcode: Vec<Kind>,
    /// Indexes in `Plan::tables` of the tables whose rows must be committed
    /// before this one's load starts: with `--data-only` the target's
    /// foreign keys are in force while rows load (`target::key_order`).
    #[serde(skip)]
    pub load_after: Vec<usize>,
    /// A foreign key of the target refers from this table to itself (or
    /// within its partition tree): its rows load in one stream, since a
    /// row may need one that another stream has not committed yet.
    #[serde(skip)]
    pub one_stream: bool,
    /// The table is created here with `FORCE ROW LEVEL SECURITY`: its
    /// owner's own policies would refuse the COPY of a restoring role that
    /// owns it (or is a member of its owner) and is not a superuser, so
    /// each load lifts the flag inside its transaction and sets it again
    /// before committing (pg_dump's way, enabling RLS only after the data,
    /// would leave a window where the table is open).
    #[serde(skip)]
    pub force_rls: bool,
}

/// `--into-schema`: the selected tables (and their sequences, indexes and
/// constraints) are created in another schema; everything they depend on
/// (types, functions, ...) stays where it is and is reused when present.
#[derive(Debug, Clone, Default)]
pub struct Retarget {
    pub schema: String,
    /// Objects whose statements are rewritten into `schema`.
    pub moved: BTreeSet<u32>,
    /// `(schema, name)` of every moved relation.
    pub relations: Vec<(String, String)>,
}

impl Retarget {
    /// Rewrites references to the moved relations in one statement, in the
    /// two spellings the server's deparsers use: always quoted
    /// (`"app"."users"`) and quoted only where needed (`app.users`), and a
    /// string literal that is one of them whole (`nextval('app.s'::regclass)`).
    /// The text is read once, token by token: what was put in is never read
    /// again, and the new schema's name, whatever it holds, is written as
    /// one quoted identifier (doubled quotes inside a literal), never as SQL
    /// (QA: a name holding the old spelling broke out of its quotes). Other
    /// literals, quoted identifiers and dollar-quoted bodies are kept as
    /// they are.
    pub fn rewrite(&self, sql: &str) -> String {
        let to_schema = crate::pg::snapshot::ident(&self.schema);
        let names: Vec<(String, String)> = self
            .relations
            .iter()
            .flat_map(|(schema, name)| {
                let to = format!("{to_schema}.{}", crate::pg::snapshot::ident(name));
                [
                    (crate::pg::snapshot::qualified(schema, name), to.clone()),
                    (crate::filter::spell(schema, name), to),
                ]
            })
            .collect();
        rewrite_names(sql, &names)
    }
}

/// Whether `c` may continue an identifier (bytes of non-ASCII characters
/// included, as the server's lexer takes them).
fn ident_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// See [`Retarget::rewrite`]: `names` are `(from, to)` pairs.
///
/// Inside a query (a view's or materialized view's `SELECT`), `app.users`
/// is also how the deparser writes column `users` of a range named `app`
/// (a table `app.app`, or an alias), so there a name is rewritten only
/// where a relation stands: right after `FROM`, `JOIN`, `ONLY` or a `,`
/// between `FROM` items, and not before `(` (a function). Elsewhere (the
/// DDL around it) every occurrence is a relation. The deparser
/// (`pg_get_viewdef`, not pretty) parenthesizes every expression, so a
/// `FROM` inside one (`EXTRACT(... FROM x)`, `IS DISTINCT FROM`) is at a
/// depth without a `SELECT` of its own, and is not a `FROM` clause.
fn rewrite_names(sql: &str, names: &[(String, String)]) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut i, mut copied) = (0, 0);
    // A name starts here only where it cannot be the tail of another.
    let starts = |i: usize| i == 0 || !(ident_byte(b[i - 1]) || matches!(b[i - 1], b'.' | b'"'));
    let ends = |j: usize| j >= b.len() || !(ident_byte(b[j]) || b[j] == b'"');
    let mut q = QueryContext::default();
    while i < b.len() {
        if starts(i) {
            let found = names
                .iter()
                .find(|(from, _)| b[i..].starts_with(from.as_bytes()) && ends(i + from.len()));
            if let Some((from, to)) = found {
                let next = b[i + from.len()..]
                    .iter()
                    .find(|c| !c.is_ascii_whitespace());
                if q.relation_here(next == Some(&b'(')) {
                    out.push_str(&sql[copied..i]);
                    out.push_str(to);
                    copied = i + from.len();
                }
                i += from.len();
                q.token(Token::Other);
                continue;
            }
        }
        match b[i] {
            b'\'' => {
                let escaped =
                    i > 0 && matches!(b[i - 1], b'E' | b'e') && (i < 2 || !ident_byte(b[i - 2]));
                let end = closing(b, i, b'\'', escaped).unwrap_or(b.len());
                // Only a relation's name cast to regclass (`nextval`'s
                // argument, a check against a table): any other literal is
                // data, which the copy must keep as the backup has it (QA:
                // a partial index's predicate `src = 'app.users'` covered
                // no row in the copy).
                let regclass = [&b"::regclass"[..], b"::\"regclass\""]
                    .iter()
                    .any(|cast| b[end..].starts_with(cast));
                let whole = (regclass && !escaped && end > i + 1 && b[end - 1] == b'\'')
                    .then(|| &sql[i + 1..end - 1])
                    .and_then(|text| names.iter().find(|(from, _)| from == text));
                if let Some((_, to)) = whole {
                    out.push_str(&sql[copied..i]);
                    out.push_str(&format!("'{}'", to.replace('\'', "''")));
                    copied = end;
                }
                i = end;
                q.token(Token::Other);
            }
            b'"' => {
                i = closing(b, i, b'"', false).unwrap_or(b.len());
                q.token(Token::Other);
            }
            b'$' if i == 0 || !ident_byte(b[i - 1]) => {
                i = dollar_end(b, i).unwrap_or(i + 1);
                q.token(Token::Other);
            }
            c if ident_byte(c) => {
                let start = i;
                while i < b.len() && ident_byte(b[i]) {
                    i += 1;
                }
                q.token(Token::Word(&sql[start..i]));
            }
            c => {
                q.token(match c {
                    b'(' => Token::Open,
                    b')' => Token::Close,
                    b',' => Token::Comma,
                    b';' => Token::End,
                    c if c.is_ascii_whitespace() => Token::Space,
                    _ => Token::Other,
                });
                i += 1;
            }
        }
    }
    out.push_str(&sql[copied..]);
    out
}

/// What [`rewrite_names`] needs of a query's structure: whether the next
/// qualified name stands where a relation does.
#[derive(Default)]
struct QueryContext {
    /// One level per open parenthesis, the statement's own first.
    levels: Vec<Level>,
    /// The last token (spaces and `(` aside) brings in a relation.
    relation_next: bool,
    /// Past the statement's leading `CREATE [OR REPLACE] ...` words (and
    /// `VIEW`, or the first other word).
    past_lead: bool,
    /// The statement creates a view or materialized view: its `SELECT`s
    /// are a query (`GRANT SELECT ON app.t` is not one).
    creates_view: bool,
}

#[derive(Default, Clone, Copy)]
struct Level {
    /// Inside a query: here or in an enclosing level, a `SELECT` was seen.
    query: bool,
    /// A `SELECT` at this level: its `FROM` is a clause.
    select: bool,
    /// Between this level's `FROM` and its next clause: a `,` separates
    /// relations.
    from_list: bool,
}

enum Token<'a> {
    Word(&'a str),
    Open,
    Close,
    Comma,
    End,
    Space,
    Other,
}

impl QueryContext {
    fn level(&mut self) -> &mut Level {
        if self.levels.is_empty() {
            self.levels.push(Level::default());
        }
        let last = self.levels.len() - 1;
        &mut self.levels[last]
    }

    /// Outside a query every name is a relation's (`CREATE TABLE app.t (`
    /// included); inside, only where one is brought in, and not a
    /// function's (`FROM app.f(1)`).
    fn relation_here(&mut self, before_parenthesis: bool) -> bool {
        let relation_next = self.relation_next;
        !self.level().query || (relation_next && !before_parenthesis)
    }

    fn token(&mut self, t: Token) {
        match t {
            Token::Space => {}
            Token::Open => {
                let outer = *self.level();
                // A join tree in parentheses is still a FROM list.
                self.levels.push(Level {
                    query: outer.query,
                    select: false,
                    from_list: self.relation_next,
                });
            }
            Token::Close => {
                self.levels.pop();
                self.relation_next = false;
            }
            Token::Comma => {
                self.relation_next = self.level().from_list;
            }
            Token::End => *self = Self::default(),
            Token::Other => self.relation_next = false,
            Token::Word(w) => {
                let w = w.to_ascii_uppercase();
                let leading = !self.past_lead;
                self.past_lead = !leading
                    || !matches!(
                        w.as_str(),
                        "CREATE"
                            | "OR"
                            | "REPLACE"
                            | "TEMP"
                            | "TEMPORARY"
                            | "RECURSIVE"
                            | "MATERIALIZED"
                    );
                self.creates_view |= leading && w == "VIEW";
                let creates_view = self.creates_view;
                let l = self.level();
                let mut relation_next = false;
                match w.as_str() {
                    "SELECT" if creates_view => {
                        *l = Level {
                            query: true,
                            select: true,
                            from_list: false,
                        };
                    }
                    "FROM" if l.select => {
                        l.from_list = true;
                        relation_next = true;
                    }
                    "JOIN" | "ONLY" if l.query => relation_next = true,
                    "WHERE" | "GROUP" | "HAVING" | "WINDOW" | "ORDER" | "LIMIT" | "OFFSET"
                    | "FETCH" | "UNION" | "INTERSECT" | "EXCEPT" | "FOR" => l.from_list = false,
                    _ => {}
                }
                self.relation_next = relation_next;
            }
        }
    }
}

/// Just past the quoted token opening at `i` with `quote` (`'` for a
/// string literal, `"` for an identifier): a doubled quote inside, and with
/// `backslashes` (an `E'...'` string) backslash escapes too. `None` when it
/// does not close.
pub(super) fn closing(b: &[u8], i: usize, quote: u8, backslashes: bool) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'\\' if backslashes => j += 2,
            c if c == quote && b.get(j + 1) == Some(&quote) => j += 2,
            c if c == quote => return Some(j + 1),
            _ => j += 1,
        }
    }
    None
}

/// Just past the dollar-quoted string opening at `i` (`$tag$...$tag$`), or
/// `None` when `$` does not open one here (a parameter, `$1`).
fn dollar_end(b: &[u8], i: usize) -> Option<usize> {
    let tag_len = b[i + 1..].iter().position(|&c| c == b'$')?;
    let tag = &b[i..i + tag_len + 2];
    let body = &tag[1..tag.len() - 1];
    if body.first().is_some_and(u8::is_ascii_digit)
        || !body.iter().all(|&c| ident_byte(c) && c != b'$')
    {
        return None;
    }
    let from = i + tag.len();
    Some(
        b[from..]
            .windows(tag.len())
            .position(|w| w == tag)
            .map_or(b.len(), |p| from + p + tag.len()),
    )
}

/// The kinds of `columns` (the entry's COPY list) when every one is of a
/// type the transcoder converts; empty otherwise, and for archives made
/// before `column_types` was recorded.
fn transcode_kinds(t: &TableInfo, columns: &[String]) -> Vec<Kind> {
    if columns.is_empty() || t.column_types.len() != t.columns.len() {
        return vec![];
    }
    let mut kinds = Vec::with_capacity(columns.len());
    for c in columns {
        let Some(i) = t.columns.iter().position(|n| n == c) else {
            return vec![];
        };
        let Some(k) = Kind::from_type_oid(t.column_types[i]) else {
            return vec![];
        };
        kinds.push(k);
    }
    kinds
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The target database's own tablespace, once the checks read it
    /// ([`crate::schema::ApplyOptions::target_default_tablespace`]).
    #[serde(skip)]
    pub target_default_tablespace: Option<String>,
    pub pre_data: Vec<PlannedObject>,
    pub post_data: Vec<PlannedObject>,
    pub tables: Vec<PlannedTable>,
    pub sequences: Vec<SequenceState>,
    pub skipped_fks: Vec<String>,
    /// Of `skipped_fks`, the chosen tables' own foreign keys (id, and its
    /// line there): the target may have the tables they reference.
    #[serde(skip)]
    pub fk_candidates: Vec<(u32, String)>,
    /// Of `skipped_fks`, the keys of tables left out that reference a
    /// chosen table (ids): the target's same-named table may lack them
    /// (`target::missing_incoming_keys`).
    #[serde(skip)]
    pub fk_incoming: Vec<u32>,
    /// Of `fk_candidates`, those whose referenced table the target has:
    /// added after the load (`target::add_foreign_keys_to_target`).
    #[serde(skip)]
    pub fks_to_target: Vec<u32>,
    /// Archive bytes the data phase will read.
    pub bytes_to_read: u64,
    #[serde(skip)]
    pub model: SchemaModel,
    #[serde(skip)]
    pub full: bool,
    #[serde(skip)]
    pub retarget: Option<Retarget>,
    /// The large objects' contents (full restores): entry and chunks.
    #[serde(skip)]
    pub large_objects: Option<(u32, Vec<ChunkRef>)>,
    /// Objects left out, and why: with --into-schema the tables' foreign
    /// keys, triggers, policies and rules; provider-managed names the
    /// target lacks (see `super::provider`).
    pub skipped: Vec<String>,
    /// Provider-managed roles the target lacks: statements naming them are
    /// left out (see `super::provider`).
    #[serde(skip)]
    pub skip_roles: BTreeSet<String>,
    /// Relations a selective restore takes for their definitions only
    /// (`Closure::extra_relations`: a table a chosen view reads, an
    /// inheritance parent): when the target has one defined alike, it is
    /// reused with its rows, never dropped and made anew empty.
    #[serde(skip)]
    pub definition_only: BTreeSet<u32>,
    #[serde(skip)]
    pub unfilled: Vec<Unfilled>,
    /// Sequences chosen with `--table`: restored like a table (a conflict
    /// where the target has one, its state set), never reused as a shared
    /// sequence is (`super::shared::sequences`).
    #[serde(skip)]
    pub chosen_sequences: BTreeSet<u32>,
}

impl Plan {
    pub fn object(&self, id: u32) -> &DbObject {
        self.model.object(id)
    }

    /// The tables whose rows the backup holds, as `show` counts them: not
    /// a partitioned table's parent or a materialized view (QA: a restore
    /// said 10 tables of a backup that `show` said has 8).
    pub fn data_tables(&self) -> usize {
        self.tables.iter().filter(|t| t.entry.is_some()).count()
    }

    /// The schema an object is created in.
    pub fn target_schema<'a>(&'a self, o: &'a DbObject) -> Option<&'a str> {
        match &self.retarget {
            Some(r) if r.moved.contains(&o.id) => Some(r.schema.as_str()),
            _ => o.schema.as_deref(),
        }
    }

    /// How an object is named where it is created: with --into-schema, a
    /// moved object's identity names the new schema, so messages about the
    /// target (conflicts, the plan) never name the live object instead.
    pub fn target_identity(&self, o: &DbObject) -> String {
        match &self.retarget {
            Some(r) if r.moved.contains(&o.id) => r.rewrite(&o.identity),
            _ => o.identity.clone(),
        }
    }

    /// `o`'s `CREATE` as this restore runs it (rewritten for
    /// --into-schema).
    pub fn target_create(&self, o: &DbObject) -> String {
        match &self.retarget {
            Some(r) if r.moved.contains(&o.id) => without_row_security(&r.rewrite(&o.create)),
            _ => o.create.clone(),
        }
    }

    /// The statements for an object, rewritten for --into-schema.
    pub fn sql(&self, o: &DbObject, apply: &crate::schema::ApplyOptions) -> Vec<String> {
        let stmts = crate::schema::object_sql(o, apply);
        match &self.retarget {
            Some(r) if r.moved.contains(&o.id) => stmts
                .iter()
                .map(|s| without_row_security(&r.rewrite(s)))
                .collect(),
            _ => stmts,
        }
    }
}

/// A moved table's `CREATE` without FORCE ROW LEVEL SECURITY: its
/// policies are not copied with --into-schema, and forced without them the
/// copy showed no rows even to its owner, who compares it with the live
/// table (QA). Row-level security stays enabled: without policies it
/// denies every row to the other roles its grants name, where disabled it
/// showed them all of them, the ones the policies hid included (QA).
fn without_row_security(sql: &str) -> String {
    if !sql.contains(" FORCE ROW LEVEL SECURITY;") {
        return sql.to_string();
    }
    sql.lines()
        .filter(|l| !(l.starts_with("ALTER TABLE ") && l.ends_with(" FORCE ROW LEVEL SECURITY;")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Decides what moves into `--into-schema`'s schema: the selected tables,
/// their own sequences, indexes and key/check constraints, and the
/// partition (or inheritance) attachments of tables and indexes whose both
/// ends move. Foreign keys, triggers, rules and policies of those tables are
/// left out and reported, and so is an attachment to a table or index that
/// stays (a copy next to the live table must not fire the application's
/// triggers, tie itself to live rows or join a live partition tree).
///
/// Only objects in `planned` are reported as left out: a foreign key the
/// closure skipped (to a table not restored) is reported once, by it.
fn retarget(
    model: &SchemaModel,
    tables: &[&crate::schema::TableInfo],
    views: &[u32],
    schema: &str,
    planned: &BTreeSet<u32>,
) -> (Retarget, BTreeSet<u32>, Vec<String>) {
    let table_ids: BTreeSet<u32> = tables
        .iter()
        .map(|t| t.object_id)
        .chain(views.iter().copied())
        .collect();
    let mut moved: BTreeSet<u32> = table_ids.clone();
    let mut drop_ids = BTreeSet::new();
    for o in &model.objects {
        let Some(owner) = o.belongs_to else { continue };
        if !table_ids.contains(&owner) || o.kind == ObjectKind::TableAttach {
            continue;
        }
        match o.kind {
            ObjectKind::Index
            | ObjectKind::Constraint
            | ObjectKind::CheckConstraint
            | ObjectKind::MatviewRefresh
            | ObjectKind::SequenceOwnedBy => {
                moved.insert(o.id);
                if o.kind == ObjectKind::SequenceOwnedBy {
                    for d in &o.deps {
                        if model.object(*d).kind == ObjectKind::Sequence {
                            moved.insert(*d);
                        }
                    }
                }
            }
            _ => {
                drop_ids.insert(o.id);
            }
        }
    }
    // An attachment belongs to its partition (or its partition's index)
    // and depends on that and on the parent(s): it moves when all of them
    // do, and is left out when only some do.
    for o in &model.objects {
        if !matches!(o.kind, ObjectKind::TableAttach | ObjectKind::IndexAttach) {
            continue;
        }
        let ends: Vec<u32> = o
            .deps
            .iter()
            .copied()
            .filter(|d| {
                matches!(
                    model.object(*d).kind,
                    ObjectKind::Table | ObjectKind::Index | ObjectKind::Constraint
                )
            })
            .collect();
        if !ends.iter().any(|d| moved.contains(d)) {
            continue;
        }
        if ends.iter().all(|d| moved.contains(d)) {
            moved.insert(o.id);
        } else {
            drop_ids.insert(o.id);
        }
    }
    let skipped = drop_ids
        .iter()
        .filter(|id| planned.contains(id))
        .map(|id| {
            format!(
                "{} (not copied with --into-schema)",
                model.object(*id).identity
            )
        })
        .chain(
            tables
                .iter()
                .map(|t| model.object(t.object_id))
                .filter(|o| o.create.contains(" ENABLE ROW LEVEL SECURITY;"))
                .map(|o| {
                    format!(
                        "row-level security of {} (its policies are not copied with \
                         --into-schema: the copy has row-level security enabled, not forced, \
                         and no policy, so only its owner and roles that bypass it see its rows)",
                        o.identity
                    )
                }),
        )
        .collect();
    let mut relations: Vec<(String, String)> = moved
        .iter()
        .map(|id| model.object(*id))
        .filter(|o| {
            // A key or unique constraint's index has the constraint's name
            // (attachments name it).
            matches!(
                o.kind,
                ObjectKind::Table
                    | ObjectKind::View
                    | ObjectKind::MaterializedView
                    | ObjectKind::ForeignTable
                    | ObjectKind::Sequence
                    | ObjectKind::Index
                    | ObjectKind::Constraint
            )
        })
        .filter_map(|o| o.schema.clone().map(|s| (s, o.name.clone())))
        .collect();
    // An identity column's sequence is named in its table's CREATE TABLE,
    // not an object of its own: it moves with the table.
    for t in tables {
        let o = model.object(t.object_id);
        relations.extend(
            super::names::identity_sequences(&o.create)
                .into_iter()
                .filter(|(s, _)| o.schema.as_deref() == Some(s.as_str())),
        );
    }
    (
        Retarget {
            schema: schema.to_string(),
            moved,
            relations,
        },
        drop_ids,
        skipped,
    )
}

/// With `--into-schema`, the closure took what the tables' triggers,
/// rules and policies need (a trigger's function, say), and a partition's
/// parent with its indexes, but those are left out: what no moved object
/// needs goes too, and is reported. Everything else the restore creates is
/// needed by a moved object (its types, functions, sequences). Schemas are
/// `keep_schemas_in_use`'s.
fn drop_what_only_left_out_objects_need(
    model: &SchemaModel,
    r: &Retarget,
    pre_data: &mut Vec<PlannedObject>,
    post_data: &mut Vec<PlannedObject>,
) -> Vec<String> {
    let planned: BTreeSet<u32> = pre_data
        .iter()
        .chain(post_data.iter())
        .map(|p| p.id)
        .collect();
    let mut needed: BTreeSet<u32> = planned
        .iter()
        .copied()
        .filter(|id| r.moved.contains(id))
        .collect();
    let index = |id: u32| {
        matches!(
            model.object(id).kind,
            ObjectKind::Index | ObjectKind::Constraint
        )
    };
    let mut stack: Vec<u32> = needed.iter().copied().collect();
    while let Some(id) = stack.pop() {
        for &d in &model.object(id).deps {
            // A partition's index depends on its parent's: the copy's
            // does not when the parent stays (its attachment is left out).
            if index(id) && index(d) && !r.moved.contains(&d) {
                continue;
            }
            if planned.contains(&d) && needed.insert(d) {
                stack.push(d);
            }
        }
    }
    let mut dropped = Vec::new();
    for objects in [pre_data, post_data] {
        objects.retain(|p| {
            let o = model.object(p.id);
            let keep = o.kind == ObjectKind::Schema || needed.contains(&p.id);
            if !keep {
                dropped.push(format!(
                    "{} (needed only by what --into-schema leaves out)",
                    o.identity
                ));
            }
            keep
        });
    }
    dropped
}

/// With `--into-schema`, the closure brought the moved tables' own schemas
/// (a table needs its schema), but the tables no longer live there: a schema
/// stays in the plan only when something else the restore creates is in it
/// or needs it (a type or function the tables use, which stays where it is;
/// an extension created in it), or when it is the new schema itself.
/// Otherwise a copy into a new schema would leave an empty schema behind in
/// a target that lacked it.
fn keep_schemas_in_use(
    model: &SchemaModel,
    r: &Retarget,
    pre_data: &mut Vec<PlannedObject>,
    post_data: &[PlannedObject],
) {
    let staying: Vec<&DbObject> = pre_data
        .iter()
        .chain(post_data)
        .filter(|p| !r.moved.contains(&p.id))
        .map(|p| model.object(p.id))
        .filter(|o| o.kind != ObjectKind::Schema)
        .collect();
    pre_data.retain(|p| {
        let o = model.object(p.id);
        o.kind != ObjectKind::Schema
            || o.name == r.schema
            || staying
                .iter()
                .any(|s| s.schema.as_deref() == Some(o.name.as_str()) || s.deps.contains(&o.id))
    });
}

/// Edit distance, for "did you mean" lists.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub(super) fn close_matches(wanted: &str, names: &[String]) -> Vec<String> {
    let w = wanted.to_lowercase().replace('"', "");
    let limit = 3.max(w.len() / 3);
    let w_chars = w.chars().count();
    // The distance is at least the difference in length, so names whose
    // length is too different are out without computing it: the names come
    // from the archive, and a quadratic distance over a hostile model's huge
    // names made `--table` with a typo take minutes (found by fuzzing).
    let near = |name: &str| {
        let n = name.chars().count();
        (n.abs_diff(w_chars) <= limit).then(|| distance(&w, name))
    };
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .map(|n| {
            let l = n.to_lowercase().replace('"', "");
            let short = l.rsplit('.').next().unwrap_or(&l);
            let d = near(&l)
                .into_iter()
                .chain(near(short))
                .min()
                .unwrap_or(usize::MAX);
            let d = if l.contains(&w) { d.min(1) } else { d };
            (d, n)
        })
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n.clone()).collect()
}

pub async fn make(
    archive: &StoredArchive,
    manifest: &Manifest,
    opts: &RestoreOptions,
) -> Result<Plan> {
    let schema_entry = archive
        .entries_of_kind(kind::SCHEMA)
        .next()
        .map(|e| e.id)
        .ok_or_else(|| Error::Format("archive has no schema section".into()))?;
    let schema = archive.read_entry(schema_entry).await?;
    let sequences = match archive.entries_of_kind(kind::SEQUENCES).next() {
        Some(e) => Some(archive.read_entry(e.id).await?),
        None => None,
    };
    let sections = Sections {
        schema: &schema,
        sequences: sequences.as_deref(),
        entries: &archive.index.entries,
    };
    build(&sections, &manifest.id, opts)
}

/// The sum of sizes or row counts an archive claims, saturating: per entry
/// they are checked against the chunks, but across entries a hostile index
/// could still make a plain `sum()` overflow (a panic in debug builds).
pub(crate) fn total(values: impl Iterator<Item = u64>) -> u64 {
    values.fold(0, u64::saturating_add)
}

/// What a plan is made of, as read (and authenticated) from the archive.
/// Every part is untrusted content: parsing and planning return errors on
/// anything malformed and must not panic (fuzzed by `restore::fuzz`).
pub(crate) struct Sections<'a> {
    /// The schema section (the model's JSON).
    pub schema: &'a [u8],
    /// The sequence section's JSON, when the archive has one.
    pub sequences: Option<&'a [u8]>,
    /// The index entries.
    pub entries: &'a [Entry],
}

/// The plan for `opts` from an archive's sections, without I/O.
pub(crate) fn build(sections: &Sections, backup_id: &str, opts: &RestoreOptions) -> Result<Plan> {
    let (model, sequences) = parse_sections(sections)?;
    build_parsed(model, sequences, sections.entries, backup_id, opts)
}

/// The schema model and sequence states of an archive's sections.
pub(crate) fn parse_sections(sections: &Sections) -> Result<(SchemaModel, Vec<SequenceState>)> {
    let model = SchemaModel::from_json(sections.schema)
        .map_err(|e| Error::Format(format!("schema section: {e}")))?;
    let sequences: Vec<SequenceState> = match sections.sequences {
        Some(json) => serde_json::from_slice(json)
            .map_err(|e| Error::Format(format!("sequence section: {e}")))?,
        None => vec![],
    };
    Ok((model, sequences))
}

/// The refreshes in `set` of materialized views that read (directly or
/// through views and other materialized views) a table or materialized
/// view whose rows this selective restore does not bring: refreshed, such
/// a view would come back empty, or fail on an unpopulated one. They are
/// left out of `set`, the views left unpopulated, and reported.
fn unfillable_refreshes(
    model: &SchemaModel,
    chosen: &BTreeSet<u32>,
    set: &mut BTreeSet<u32>,
) -> Vec<Unfilled> {
    let mut skipped = Vec::new();
    let refreshes: Vec<&DbObject> = model
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::MatviewRefresh && set.contains(&o.id))
        .collect();
    for r in refreshes {
        let Some(mv) = r.belongs_to else { continue };
        // A chosen materialized view's rows are the ones it reads in turn.
        let unfilled: BTreeSet<u32> = model
            .rows_read(mv, |d| chosen.contains(&d))
            .into_iter()
            .filter(|d| !chosen.contains(d))
            .collect();
        if !unfilled.is_empty() {
            set.remove(&r.id);
            let names: Vec<&str> = unfilled
                .iter()
                .map(|&d| model.object(d).identity.as_str())
                .collect();
            skipped.push(Unfilled {
                refresh: r.id,
                reads: unfilled.iter().copied().collect(),
                note: format!(
                    "{} (it reads {}, whose rows this restore does not bring: the view is left \
                     unpopulated; choose those with --table too to fill it)",
                    r.identity,
                    names.join(", ")
                ),
            });
        }
    }
    skipped
}

/// A materialized view's refresh left out by [`unfillable_refreshes`]:
/// the restore puts it back when the target has every relation it reads
/// (reused with their rows, or in place with `--data-only`).
#[derive(Debug, Clone)]
pub struct Unfilled {
    pub refresh: u32,
    pub reads: Vec<u32>,
    /// What `skipped` says of it.
    pub note: String,
}

/// [`build`] from sections already parsed.
pub(crate) fn build_parsed(
    model: SchemaModel,
    sequences: Vec<SequenceState>,
    entries: &[Entry],
    backup_id: &str,
    opts: &RestoreOptions,
) -> Result<Plan> {
    let entries_of_kind = |k: &'static str| entries.iter().filter(move |e| e.kind == k);

    // Table data entries by (schema, name).
    let mut data: HashMap<(String, String), (&Entry, TableMeta, CopyFormat)> = HashMap::new();
    for e in entries_of_kind(kind::TABLE) {
        let meta: TableMeta = serde_json::from_value(e.meta.clone())
            .map_err(|err| Error::Format(format!("index entry {}: {err}", e.id)))?;
        let format = meta
            .copy_format
            .parse::<CopyFormat>()
            .map_err(|err| Error::Format(format!("index entry {}: copy_format {err}", e.id)))?;
        data.insert((meta.schema.clone(), meta.name.clone()), (e, meta, format));
    }

    let full = opts.tables.is_empty() && opts.schemas.is_empty();
    let selected: Option<BTreeSet<u32>>;
    let mut chosen_tables: Vec<&crate::schema::TableInfo> = Vec::new();
    let mut skipped_fks: Vec<String> = Vec::new();
    let mut fk_candidates = Vec::new();
    let mut fk_incoming = Vec::new();
    // What else the closure left out (a partition's attachment to a parent
    // not restored): reported with the restore's own omissions.
    let mut skipped = Vec::new();
    let mut definition_only = BTreeSet::new();
    let mut unfilled = Vec::new();
    // Objects chosen besides tables: views (`--table`), and the rest of a
    // schema chosen whole (`--schema`).
    let mut roots: Vec<u32> = Vec::new();
    let mut chosen_sequences = BTreeSet::new();
    if full {
        selected = None;
        chosen_tables.extend(model.tables.iter());
    } else {
        // Spelled as --table takes them, so a suggestion can be pasted back.
        // Views and sequences too, as pg_restore -t takes them.
        let view = |o: &&DbObject| {
            matches!(o.kind, ObjectKind::View | ObjectKind::Sequence) && o.schema.is_some()
        };
        let all_names: Vec<String> = model
            .tables
            .iter()
            .map(|t| crate::filter::spell(&t.schema, &t.name))
            .chain(
                model
                    .objects
                    .iter()
                    .filter(view)
                    .filter_map(|o| Some(crate::filter::spell(o.schema.as_deref()?, &o.name))),
            )
            .collect();
        for p in &opts.tables {
            let hits: Vec<_> = model
                .tables
                .iter()
                .filter(|t| p.matches(&t.schema, &t.name))
                .collect();
            // A view, as pg_restore -t takes one: its definition (a view on
            // a dependency cycle is two objects, both taken), over the
            // tables it reads, which the target's are when it has them.
            // A sequence: its definition and its state (not what owns it).
            let views: Vec<u32> = model
                .objects
                .iter()
                .filter(view)
                .filter(|o| p.matches(o.schema.as_deref().unwrap_or_default(), &o.name))
                .map(|o| o.id)
                .collect();
            if hits.is_empty() && views.is_empty() {
                // An identity column's sequence is part of its table.
                if let Some((seq, table)) = model.sequences.iter().find_map(|s| {
                    let t = model.tables.iter().find(|t| t.object_id == s.object_id)?;
                    p.matches(&s.schema, &s.name).then_some((s, t))
                }) {
                    return Err(Error::Usage(format!(
                        "{} is the identity sequence of table {}: it is restored with its \
                         table (--table {})",
                        crate::filter::spell(&seq.schema, &seq.name),
                        crate::filter::spell(&table.schema, &table.name),
                        crate::filter::spell(&table.schema, &table.name)
                    )));
                }
                let near = close_matches(p.as_str(), &all_names);
                return Err(Error::Usage(if near.is_empty() {
                    format!(
                        "no table, view or sequence `{}` in backup {backup_id}",
                        p.as_str()
                    )
                } else {
                    format!(
                        "no table, view or sequence `{}` in backup {backup_id}; close matches: {}",
                        p.as_str(),
                        near.join(", ")
                    )
                }));
            }
            chosen_sequences.extend(
                views
                    .iter()
                    .copied()
                    .filter(|&id| model.object(id).kind == ObjectKind::Sequence),
            );
            chosen_tables.extend(hits);
            roots.extend(views);
        }
        for s in &opts.schemas {
            let p = Pattern::schema(s).map_err(Error::Usage)?;
            let hits: Vec<_> = model
                .tables
                .iter()
                .filter(|t| p.matches(&t.schema, ""))
                .collect();
            if hits.is_empty()
                && !model
                    .objects
                    .iter()
                    .any(|o| o.kind == ObjectKind::Schema && p.matches(&o.name, ""))
            {
                let schemas: Vec<String> = model
                    .objects
                    .iter()
                    .filter(|o| o.kind == ObjectKind::Schema)
                    .map(|o| crate::filter::quote_part(&o.name))
                    .collect();
                let near = close_matches(s, &schemas);
                return Err(Error::Usage(if near.is_empty() {
                    format!("no schema `{s}` in backup {backup_id}")
                } else {
                    format!(
                        "no schema `{s}` in backup {backup_id}; close matches: {}",
                        near.join(", ")
                    )
                }));
            }
            chosen_tables.extend(hits);
            // The rest of the schema, as pg_restore -n has it: views,
            // functions, types, sequences of its own. With --into-schema
            // only its views, which move with its tables; the rest stays
            // where it is, as what the tables need does.
            roots.extend(
                model
                    .objects
                    .iter()
                    // A view on a dependency cycle is two objects: its
                    // placeholder, and its definition, which belongs to it.
                    .filter(|o| o.belongs_to.is_none() || o.kind == ObjectKind::View)
                    .filter(|o| o.schema.as_deref().is_some_and(|n| p.matches(n, "")))
                    .filter(|o| {
                        !matches!(
                            o.kind,
                            ObjectKind::Table
                                | ObjectKind::ForeignTable
                                | ObjectKind::MaterializedView
                                | ObjectKind::MatviewRefresh
                                | ObjectKind::Extension
                        )
                    })
                    .filter(|o| opts.into_schema.is_none() || o.kind == ObjectKind::View)
                    .map(|o| o.id),
            );
        }
        chosen_tables.sort_by_key(|t| t.object_id);
        chosen_tables.dedup_by_key(|t| t.object_id);
        roots.sort_unstable();
        roots.dedup();
        let refs: Vec<TableRef> = chosen_tables
            .iter()
            .map(|t| TableRef::new(t.schema.clone(), t.name.clone()))
            .collect();
        let closure = model.closure_from(&refs, &roots);
        let chosen: BTreeSet<u32> = chosen_tables.iter().map(|t| t.object_id).collect();
        definition_only.extend(closure.extra_relations.iter().copied());
        skipped_fks = closure
            .skipped_fks
            .iter()
            .map(|s| format!("{}: {}", s.identity, s.reason))
            .collect();
        // A chosen table's own foreign keys to tables left out: added after
        // the load where the target has the other table (see
        // `target::foreign_keys_to_target`). Not on a copy next to the live
        // tables (it would tie live rows to it), nor with --data-only,
        // which creates nothing.
        if opts.into_schema.is_none() && !opts.data_only {
            // Whether the table an object names (`belongs_to`, `references`)
            // is chosen; `None` for none.
            let chosen_relation = |r: Option<u32>| {
                r.and_then(|r| model.owning_relation(r))
                    .map(|r| chosen.contains(&r))
            };
            fk_candidates = closure
                .skipped_fks
                .iter()
                .zip(&skipped_fks)
                .filter(|(s, _)| {
                    chosen_relation(model.object(s.object_id).belongs_to) == Some(true)
                })
                .map(|(s, line)| (s.object_id, line.clone()))
                .collect();
            fk_incoming = closure
                .skipped_fks
                .iter()
                .map(|s| s.object_id)
                .filter(|&id| {
                    let o = model.object(id);
                    o.kind == ObjectKind::ForeignKey
                        && chosen_relation(o.references) == Some(true)
                        && chosen_relation(o.belongs_to) == Some(false)
                })
                .collect();
        }
        skipped = closure
            .skipped
            .iter()
            .map(|s| format!("{} ({})", s.identity, s.reason))
            .collect();
        // A partitioned table's rows are its partitions': chosen without
        // them, it comes back empty, and says so.
        for p in chosen_tables
            .iter()
            .filter(|t| t.kind == crate::schema::RelKind::Partitioned)
        {
            let left: Vec<String> = model
                .tables
                .iter()
                .filter(|c| c.parent == Some(p.object_id) && !chosen.contains(&c.object_id))
                .map(|c| crate::filter::spell(&c.schema, &c.name))
                .collect();
            if !left.is_empty() {
                skipped.push(format!(
                    "partitions of {} not chosen: {} (name them with --table too, or a pattern \
                     such as --table '{}*', for its rows)",
                    crate::filter::spell(&p.schema, &p.name),
                    left.join(", "),
                    crate::filter::spell(&p.schema, &p.name)
                ));
            }
        }
        let mut set: BTreeSet<u32> = closure.objects.iter().copied().collect();
        unfilled = unfillable_refreshes(&model, &chosen, &mut set);
        skipped.extend(unfilled.iter().map(|u| u.note.clone()));
        // Whole schemas bring their schema object even without tables.
        for s in &opts.schemas {
            let p = Pattern::schema(s).map_err(Error::Usage)?;
            for o in &model.objects {
                if o.kind == ObjectKind::Schema && p.matches(&o.name, "") {
                    set.insert(o.id);
                }
            }
        }
        selected = Some(set);
    }

    // A materialized view's contents are data, as pg_dump has them: its
    // REFRESH runs with --data-only (into the view a --schema-only restore
    // made) and not with --schema-only, which leaves it unpopulated.
    let pick = |section: Section| -> Vec<PlannedObject> {
        model
            .ordered(section)
            .into_iter()
            .filter(|o| {
                let refresh = o.kind == ObjectKind::MatviewRefresh;
                if opts.data_only {
                    refresh
                } else {
                    !(opts.schema_only && refresh)
                }
            })
            .filter(|o| selected.as_ref().map(|s| s.contains(&o.id)).unwrap_or(true))
            .filter(|o| !(opts.no_database_properties && o.kind == ObjectKind::Database))
            .map(|o| PlannedObject {
                id: o.id,
                kind: o.kind,
                identity: o.identity.clone(),
            })
            .collect()
    };
    let mut pre_data = pick(Section::PreData);
    let mut post_data = pick(Section::PostData);
    let mut retarget_plan = None;
    if let Some(into) = &opts.into_schema {
        if full {
            return Err(Error::Usage(
                "--into-schema needs --table or --schema: it copies chosen tables next to the \
                 live ones"
                    .into(),
            ));
        }
        let planned: BTreeSet<u32> = pre_data.iter().chain(&post_data).map(|p| p.id).collect();
        // Chosen views and sequences move too.
        let views: Vec<u32> = roots
            .iter()
            .copied()
            .filter(|&id| {
                model.object(id).kind == ObjectKind::View || chosen_sequences.contains(&id)
            })
            .collect();
        let (r, left_out, why) = retarget(&model, &chosen_tables, &views, into, &planned);
        // A child named with its parents in INHERITS (...) would join the
        // live parents that stay: their scans would return its copied
        // rows next to the live ones.
        let mut joins_live = Vec::new();
        for t in &chosen_tables {
            let o = model.object(t.object_id);
            let Some((_, clause)) = o.create.split_once("\nINHERITS (") else {
                continue;
            };
            let staying: Vec<String> = o
                .deps
                .iter()
                .filter(|&&d| !r.moved.contains(&d))
                .filter_map(|&d| model.objects.get(d as usize))
                .filter(|d| d.kind.is_relation())
                .filter_map(|d| {
                    let schema = d.schema.as_deref()?;
                    clause
                        .contains(&crate::schema::ddl::qualify(schema, &d.name))
                        .then(|| crate::filter::spell(schema, &d.name))
                })
                .collect();
            if !staying.is_empty() {
                joins_live.push(format!(
                    "{} inherits from {}",
                    crate::filter::spell(&t.schema, &t.name),
                    staying.join(", ")
                ));
            }
        }
        // A view on a cycle with a function (which takes its row type) is
        // created as a placeholder, then defined: the definition would call
        // the function, which stays, over the copy's row type.
        let on_cycles: Vec<String> = views
            .iter()
            .filter(|&&v| {
                model
                    .objects
                    .iter()
                    .any(|o| o.kind == ObjectKind::View && o.belongs_to == Some(v))
            })
            .map(|&v| model.object(v))
            .map(|o| crate::filter::spell(o.schema.as_deref().unwrap_or_default(), &o.name))
            .collect();
        if !on_cycles.is_empty() {
            return Err(Error::Usage(format!(
                "--into-schema cannot copy view(s) {}: each is on a dependency cycle with a \
                 function taking its row type, which stays where it is; restore them into \
                 another database",
                on_cycles.join(", ")
            )));
        }
        if !joins_live.is_empty() {
            return Err(Error::Usage(format!(
                "--into-schema: {}, not chosen: the copy would join the live parents and add \
                 its rows to theirs; choose the parents with --table too, or restore into \
                 another database",
                joins_live.join("; ")
            )));
        }
        pre_data.retain(|p| !left_out.contains(&p.id));
        post_data.retain(|p| !left_out.contains(&p.id));
        for p in pre_data.iter_mut().chain(post_data.iter_mut()) {
            if r.moved.contains(&p.id) {
                p.identity = r.rewrite(&p.identity);
            }
        }
        skipped.extend(why);
        skipped.extend(drop_what_only_left_out_objects_need(
            &model,
            &r,
            &mut pre_data,
            &mut post_data,
        ));
        keep_schemas_in_use(&model, &r, &mut pre_data, &post_data);
        retarget_plan = Some(r);
    }

    let created: BTreeSet<u32> = pre_data.iter().map(|p| p.id).collect();
    let mut tables = Vec::new();
    let mut bytes_to_read = 0;
    let into = opts.into_schema.clone();
    for t in &chosen_tables {
        let entry = data.get(&(t.schema.clone(), t.name.clone()));
        let load = !opts.schema_only && entry.is_some();
        let (rows, raw, stored, refs, id, columns, format) = match entry {
            Some((e, meta, format)) => {
                let stored: u64 = e.chunks.iter().map(|c| c.len as u64).sum();
                (
                    e.rows,
                    e.raw_bytes,
                    stored,
                    e.chunks.clone(),
                    Some(e.id),
                    meta.columns.clone(),
                    *format,
                )
            }
            None => (0, 0, 0, vec![], None, t.columns.clone(), CopyFormat::Text),
        };
        if load {
            // Saturating: the sizes are the archive's claims, and a sum
            // that overflowed would panic in debug builds.
            bytes_to_read = u64::saturating_add(bytes_to_read, stored);
        }
        let created_here = !opts.data_only
            && t.kind == crate::schema::RelKind::Ordinary
            && created.contains(&t.object_id);
        let unpad = if created_here {
            columns
                .iter()
                .enumerate()
                .filter(|(_, c)| t.blank_padded.contains(c))
                .map(|(i, _)| i)
                .collect()
        } else {
            vec![]
        };
        let transcode = if created_here && format == CopyFormat::Text {
            transcode_kinds(t, &columns)
        } else {
            vec![]
        };
        tables.push(PlannedTable {
            schema: into.clone().unwrap_or_else(|| t.schema.clone()),
            name: t.name.clone(),
            rows,
            raw_bytes: raw,
            stored_bytes: stored,
            chunks: refs.len(),
            load_data: load,
            columns,
            chunk_refs: refs,
            entry: id,
            object_id: t.object_id,
            copy_format: format,
            created_here,
            unpad,
            transcode,
            load_after: vec![],
            one_stream: false,
            force_rls: created_here
                && opts.into_schema.is_none()
                && model
                    .objects
                    .get(t.object_id as usize)
                    .is_some_and(|o| o.create.contains(" FORCE ROW LEVEL SECURITY;")),
        });
    }
    let wanted: BTreeSet<(String, String)> = match &selected {
        None => sequences
            .iter()
            .map(|s| (s.schema.clone(), s.name.clone()))
            .collect(),
        Some(set) => {
            // With --data-only, only the sequences the chosen tables own
            // (identity ones carry their table's id): a shared one goes on
            // from the target's state, as when a restore reuses it
            // (`shared::sequences`); set back, it would hand out numbers
            // the target's other tables hold.
            let owners: BTreeSet<u32> = chosen_tables.iter().map(|t| t.object_id).collect();
            let owned: BTreeSet<u32> = model
                .owned_sequences()
                .filter(|(_, table)| owners.contains(table))
                .map(|(seq, _)| seq)
                .chain(owners.iter().copied())
                .collect();
            model
                .sequences
                .iter()
                .filter(|s| set.contains(&s.object_id))
                .filter(|s| {
                    !opts.data_only || owned.contains(&s.object_id) || roots.contains(&s.object_id)
                })
                .map(|s| (s.schema.clone(), s.name.clone()))
                .collect()
        }
    };
    let large_objects = if full && !opts.schema_only {
        entries_of_kind(kind::LARGE_OBJECTS)
            .next()
            .map(|e| (e.id, e.chunks.clone()))
    } else {
        None
    };
    if let Some((_, chunks)) = &large_objects {
        bytes_to_read = chunks
            .iter()
            .fold(bytes_to_read, |n, c| n.saturating_add(c.len as u64));
    }
    let moved_seqs: BTreeSet<(String, String)> = match &retarget_plan {
        Some(r) => model
            .sequences
            .iter()
            .filter(|s| r.moved.contains(&s.object_id))
            .map(|s| (s.schema.clone(), s.name.clone()))
            .collect(),
        None => BTreeSet::new(),
    };
    let sequences = if opts.schema_only {
        vec![]
    } else {
        sequences
            .into_iter()
            .filter(|s| wanted.contains(&(s.schema.clone(), s.name.clone())))
            .map(|mut s| {
                if let Some(into) = &opts.into_schema {
                    if moved_seqs.contains(&(s.schema.clone(), s.name.clone())) {
                        s.schema = into.clone();
                    }
                }
                s
            })
            .collect()
    };
    // --data-only creates no constraint: none is "skipped" either (QA: the
    // plan listed them as if the load would leave them out).
    if opts.data_only {
        skipped_fks.clear();
    }
    Ok(Plan {
        target_default_tablespace: None,
        pre_data,
        post_data,
        tables,
        sequences,
        skipped_fks,
        fk_candidates,
        fk_incoming,
        fks_to_target: Vec::new(),
        bytes_to_read,
        model,
        full,
        retarget: retarget_plan,
        skipped,
        large_objects,
        skip_roles: BTreeSet::new(),
        definition_only,
        unfilled,
        chosen_sequences,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retarget_rewrites_both_spellings_and_only_whole_names() {
        let r = Retarget {
            schema: "Restored".into(),
            moved: BTreeSet::new(),
            relations: vec![
                ("app".into(), "users".into()),
                ("app".into(), "users_id_seq".into()),
            ],
        };
        assert_eq!(
            r.rewrite("CREATE INDEX i ON app.users USING btree (x);"),
            "CREATE INDEX i ON \"Restored\".\"users\" USING btree (x);"
        );
        assert_eq!(
            r.rewrite("ALTER TABLE \"app\".\"users\" ALTER id SET DEFAULT nextval('app.users_id_seq'::regclass);"),
            "ALTER TABLE \"Restored\".\"users\" ALTER id SET DEFAULT nextval('\"Restored\".\"users_id_seq\"'::regclass);"
        );
        assert_eq!(
            r.rewrite("SELECT myapp.users2, app.users_x"),
            "SELECT myapp.users2, app.users_x"
        );
        assert_eq!(
            r.rewrite("nextval('\"app\".\"users_id_seq\"'::\"regclass\")"),
            "nextval('\"Restored\".\"users_id_seq\"'::\"regclass\")"
        );
        // Other literals (data, even when it reads as the name), quoted
        // names and bodies stay as they are.
        let kept = "COMMENT ON COLUMN \"app\".\"users\".x IS 'see app.users'; \
                    SELECT \"x app.users\", $f$ app.users $f$, $1, 'app.users', 'app.users'::text";
        assert_eq!(
            r.rewrite(kept),
            kept.replacen("\"app\".\"users\"", "\"Restored\".\"users\"", 1)
        );
    }

    /// The new schema's name is one quoted identifier however it reads,
    /// even holding the old name (QA: it broke out of its quotes and ran).
    #[test]
    fn retarget_never_lets_the_new_name_out_of_its_quotes() {
        for schema in [
            ".a();END;DROP TABLE public.v;CREATE TABLE public.t(--",
            "x\"; DROP TABLE public.t; --",
            "it's'); DROP TABLE public.t; --",
            "$$ public.t $$",
        ] {
            let r = Retarget {
                schema: schema.into(),
                moved: BTreeSet::new(),
                relations: vec![
                    ("public".into(), "t".into()),
                    ("public".into(), "t_seq".into()),
                ],
            };
            let to = crate::pg::snapshot::qualified(schema, "t");
            let seq = crate::pg::snapshot::qualified(schema, "t_seq").replace('\'', "''");
            assert_eq!(
                r.rewrite(
                    "CREATE TABLE public.t (a int DEFAULT nextval('public.t_seq'::regclass));"
                ),
                format!("CREATE TABLE {to} (a int DEFAULT nextval('{seq}'::regclass));")
            );
            // The always-quoted spelling too.
            let once = r.rewrite("ALTER TABLE \"public\".\"t\" OWNER TO x;");
            assert_eq!(once, format!("ALTER TABLE {to} OWNER TO x;"));
        }
    }

    /// A view as `pg_get_viewdef` writes it, where `app.app` and
    /// `app.other` are also columns of the range `app`: only the relations
    /// move (FROM, JOIN, ONLY, a FROM list's commas, a subquery's FROM).
    #[test]
    fn retarget_moves_only_the_relations_of_a_query() {
        let r = Retarget {
            schema: "r".into(),
            moved: BTreeSet::new(),
            relations: vec![("app".into(), "app".into()), ("app".into(), "other".into())],
        };
        let view = "CREATE VIEW app.v AS\n WITH c AS (\n SELECT other.app\n FROM app.other\n )\n \
             SELECT app.id,\n app.app,\n ( SELECT count(*) AS count\n FROM app.other o2\n \
             WHERE (o2.app IS DISTINCT FROM app.other)) AS n,\n EXTRACT(year FROM app.other) AS y\n \
             FROM ((app.app\n JOIN app.other ON ((app.other = other.id)))\n \
             LEFT JOIN LATERAL app.other(app.other) f(f) ON (true)),\n ONLY app.other other2,\n c\n \
             WHERE (app.app IN ( SELECT app.app\n FROM app.app app2))\n \
             UNION ALL\n SELECT other.id, app.app FROM app.other other,\n app.app;";
        let want = "CREATE VIEW \"r\".\"v\" AS\n WITH c AS (\n SELECT other.app\n FROM R_OTHER\n )\n \
             SELECT app.id,\n app.app,\n ( SELECT count(*) AS count\n FROM R_OTHER o2\n \
             WHERE (o2.app IS DISTINCT FROM app.other)) AS n,\n EXTRACT(year FROM app.other) AS y\n \
             FROM ((R_APP\n JOIN R_OTHER ON ((app.other = other.id)))\n \
             LEFT JOIN LATERAL app.other(app.other) f(f) ON (true)),\n ONLY R_OTHER other2,\n c\n \
             WHERE (app.app IN ( SELECT app.app\n FROM R_APP app2))\n \
             UNION ALL\n SELECT other.id, app.app FROM R_OTHER other,\n R_APP;"
            .replace("R_APP", "\"r\".\"app\"")
            .replace("R_OTHER", "\"r\".\"other\"");
        let r = Retarget {
            relations: [r.relations.clone(), vec![("app".into(), "v".into())]].concat(),
            ..r
        };
        assert_eq!(r.rewrite(view), want);
        // Not a query: a grant's SELECT.
        assert_eq!(
            r.rewrite("GRANT SELECT ON TABLE app.app TO x;"),
            "GRANT SELECT ON TABLE \"r\".\"app\" TO x;"
        );
        // Past the statement's end, DDL again: every name is a relation.
        assert_eq!(
            r.rewrite(
                "CREATE VIEW app.v AS SELECT app.app FROM app.app; ALTER TABLE app.app OWNER TO x;"
            ),
            "CREATE VIEW \"r\".\"v\" AS SELECT app.app FROM \"r\".\"app\"; \
             ALTER TABLE \"r\".\"app\" OWNER TO x;"
        );
    }

    #[test]
    fn close_matches_suggest_near_names() {
        let names = vec![
            "app.users".to_string(),
            "app.user_roles".to_string(),
            "public.orders".to_string(),
        ];
        let m = close_matches("app.usres", &names);
        assert_eq!(m.first().map(String::as_str), Some("app.users"));
        assert!(close_matches("zzzzzzzz", &names).is_empty());
        // A name containing the wanted one is close however long it is.
        let long = vec![format!("app.{}users", "x".repeat(50))];
        assert_eq!(close_matches("users", &long), long);
    }

    #[test]
    fn close_matches_skip_names_of_very_different_length() {
        // A hostile schema section with huge names: no quadratic distance
        // over each of them (this took minutes before).
        let names: Vec<String> = (0..200)
            .map(|i| format!("s.{i}{}", "y".repeat(20_000)))
            .collect();
        let t = std::time::Instant::now();
        assert!(close_matches(&"q".repeat(300), &names).is_empty());
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
}
