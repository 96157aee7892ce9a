//! The schema model: every object of a database with the DDL that recreates
//! it and the dependency graph between objects. Serialized as JSON into the
//! archive's schema section (see docs/schema-model.md).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Version of the serialized model. Bump on any incompatible change.
/// 2: an object's tablespace is in [`DbObject::tablespace`], no longer in
/// its `create` (a reader of format 1 would put such objects in the
/// default tablespace without a word).
/// 3: table data is in the database's own encoding (see
/// [`SchemaModel::data_encoding`]); before, in UTF-8 but for SQL_ASCII.
pub const FORMAT_VERSION: u32 = 3;

/// The first format that keeps tablespaces apart from the definitions.
pub const TABLESPACE_APART: u32 = 2;

/// The first format whose table data is in the database's own encoding.
pub const DATA_IN_DATABASE_ENCODING: u32 = 3;

/// Placeholder for the target database's (quoted) name in database-level
/// statements; [`crate::schema::apply`] replaces it.
pub const DATABASE_PLACEHOLDER: &str = "@@PGSNAP_TARGET_DATABASE@@";

/// Where an object is restored, as pg_dump has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Everything COPY needs: schemas, types, functions, tables, ...
    PreData,
    /// Table contents and sequence states (not DDL; no object lives here today).
    Data,
    /// Indexes, constraints, triggers, rules, policies, matview refreshes, ...
    PostData,
}

/// The kind of a schema object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Schema,
    Extension,
    Language,
    AccessMethod,
    Collation,
    /// `CREATE [DEFAULT] CONVERSION`.
    Conversion,
    ShellType,
    EnumType,
    CompositeType,
    RangeType,
    BaseType,
    Domain,
    Function,
    Procedure,
    Aggregate,
    Operator,
    OperatorFamily,
    OperatorClass,
    Cast,
    Transform,
    TextSearchParser,
    TextSearchTemplate,
    TextSearchDictionary,
    TextSearchConfiguration,
    ForeignDataWrapper,
    ForeignServer,
    UserMapping,
    Sequence,
    /// `ALTER SEQUENCE ... OWNED BY` (after the owning table exists).
    SequenceOwnedBy,
    Table,
    /// `ALTER TABLE ... INHERIT` / `ATTACH PARTITION` for a child table.
    TableAttach,
    /// A column default split off its table to break a dependency cycle.
    ColumnDefault,
    ForeignTable,
    View,
    MaterializedView,
    /// A check constraint that is not inline in its table (NOT VALID).
    CheckConstraint,
    /// Primary key, unique or exclusion constraint.
    Constraint,
    ForeignKey,
    Index,
    /// `ALTER INDEX parent ATTACH PARTITION child`.
    IndexAttach,
    Trigger,
    Rule,
    Policy,
    StatisticsObject,
    EventTrigger,
    Publication,
    PublicationTable,
    PublicationSchema,
    /// `REFRESH MATERIALIZED VIEW` of a populated matview.
    MatviewRefresh,
    DefaultPrivileges,
    /// Privileges on an extension member that differ from the ones the
    /// extension script set up (`pg_init_privs`).
    ExtensionMemberAcl,
    LargeObject,
    /// Database-level settings, comment, ACL (with the name placeholder).
    Database,
}

impl ObjectKind {
    /// Relations whose definition (and data) belong to the table set a
    /// closure is computed for.
    pub fn is_relation(self) -> bool {
        matches!(
            self,
            ObjectKind::Table
                | ObjectKind::ForeignTable
                | ObjectKind::View
                | ObjectKind::MaterializedView
        )
    }
}

/// One object, with its DDL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbObject {
    /// Index of the object in [`SchemaModel::objects`].
    pub id: u32,
    pub kind: ObjectKind,
    pub schema: Option<String>,
    pub name: String,
    /// Human-readable identity, e.g. `table "app"."Order"`.
    pub identity: String,
    pub owner: Option<String>,
    pub section: Section,
    /// SQL creating the object: one or more statements, each ending in `;`.
    pub create: String,
    /// SQL dropping the object, where it has one of its own.
    pub drop: Option<String>,
    /// `ALTER ... OWNER TO` statements (skipped with `--no-owner`).
    pub owner_sql: Vec<String>,
    /// `GRANT` / `REVOKE` statements (skipped with `--no-acl`).
    pub acl_sql: Vec<String>,
    /// `COMMENT ON` and `SECURITY LABEL` statements.
    pub comment_sql: Vec<String>,
    /// Objects that must exist before this one (ids into `objects`).
    pub deps: Vec<u32>,
    /// The relation (or other object) this one belongs to: the table of an
    /// index, constraint, trigger, rule, policy, attach, ...
    pub belongs_to: Option<u32>,
    /// For foreign keys: the referenced table's object id.
    pub references: Option<u32>,
    /// The managed-database platform that made this object (an extension
    /// or schema of [`crate::schema::provider`]'s table), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The tablespace `create` puts the relation or index in, when not the
    /// database's default: the target must have it. Backups before this
    /// field was added do not record it (their `create` still names it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablespace: Option<String>,
}

/// What a relation is, for the data phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelKind {
    Ordinary,
    Partitioned,
    Foreign,
    MaterializedView,
}

/// A table, for the data phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    pub object_id: u32,
    /// The table's OID in the source database.
    pub oid: u32,
    pub schema: String,
    pub name: String,
    pub kind: RelKind,
    /// The COPY column list: attnum order, without dropped and generated columns.
    pub columns: Vec<String>,
    /// The type OID of each of `columns`: restore converts the rows of a
    /// table whose types are all built-in ones it knows to binary COPY
    /// itself (`pg::transcode`). Absent from older archives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub column_types: Vec<u32>,
    /// Those of `columns` of type `character(n)`: their blank padding need
    /// not be sent on restore (`pg::unpad`). Absent from older archives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blank_padded: Vec<String>,
    pub unlogged: bool,
    /// Whether the relation stores rows of its own.
    pub has_data: bool,
    pub relpages: i64,
    pub reltuples: f64,
    /// `pg_relation_size` of the main fork, in bytes.
    pub bytes_estimate: i64,
    /// Object id of the partitioned (or inheritance) parent, if any.
    pub parent: Option<u32>,
}

/// A sequence whose state the backup reads (identity sequences included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceInfo {
    /// The sequence's own object, or for identity sequences the table's.
    pub object_id: u32,
    pub schema: String,
    pub name: String,
}

/// A materialized view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatviewInfo {
    pub object_id: u32,
    pub schema: String,
    pub name: String,
    pub populated: bool,
}

/// A large object's metadata (its contents belong to the data phase).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LargeObjectInfo {
    pub object_id: u32,
    pub oid: u32,
    pub owner: String,
}

/// A configuration table of an extension (`pg_extension_config_dump`): the
/// extension creates it, but its rows (those matching `condition`) belong
/// to the backup, as pg_dump dumps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtensionTableInfo {
    /// The extension's object.
    pub extension_object_id: u32,
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// COPY column list (attnum order, no dropped or generated columns).
    pub columns: Vec<String>,
    /// The `WHERE ...` filter registered with the table, if any.
    pub condition: Option<String>,
}

/// The encoding of a database's COPY data in a backup, as `COPY`'s
/// `ENCODING` option names it, when that is not the session's: a database
/// in an encoding other than UTF8 and SQL_ASCII (whose bytes move as they
/// are, on sessions in SQL_ASCII, see `pg::conn::copy_encoding`). Its
/// text moves as the database holds it, as pg_dump's does: the server's
/// conversion to UTF-8 and back is not exact for every encoding (EUC_JP's
/// NEC and IBM duplicates come back as one spelling, QA).
pub fn copy_option_encoding(db_encoding: &str) -> Option<&str> {
    (!db_encoding.eq_ignore_ascii_case("UTF8") && !db_encoding.eq_ignore_ascii_case("SQL_ASCII"))
        .then_some(db_encoding)
}

/// Everything read from one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaModel {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// Server version (`server_version_num`) of the source.
    pub server_version_num: i32,
    /// Name of the source database (informational).
    pub database: String,
    pub encoding: String,
    pub objects: Vec<DbObject>,
    pub tables: Vec<TableInfo>,
    pub sequences: Vec<SequenceInfo>,
    pub matviews: Vec<MatviewInfo>,
    pub large_objects: Vec<LargeObjectInfo>,
    /// Extension configuration tables whose rows the backup saves.
    #[serde(default)]
    pub extension_tables: Vec<ExtensionTableInfo>,
    /// Provider-managed roles, extensions and schemas the database uses
    /// (see [`crate::schema::provider`]); absent in older archives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed: Vec<crate::schema::provider::ManagedName>,
}

/// A table named by schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        TableRef {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

/// An object left out of a closure, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub object_id: u32,
    pub identity: String,
    pub reason: String,
}

/// The objects needed to recreate a set of tables.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Closure {
    /// Object ids, ascending.
    pub objects: Vec<u32>,
    /// Foreign keys to (or from) tables outside the set, not restored.
    pub skipped_fks: Vec<Skipped>,
    /// Other objects left out (attaching to a parent outside the set, ...).
    pub skipped: Vec<Skipped>,
    /// Relations outside the set whose definition (only) had to be taken
    /// because a taken object cannot be created without them.
    pub extra_relations: Vec<u32>,
    /// Tables named by the caller that are not in the model.
    pub unknown_tables: Vec<TableRef>,
}

impl SchemaModel {
    /// The encoding the archive's table data is in, for `COPY ... FROM
    /// STDIN (ENCODING ...)`, when not the session's (see
    /// [`copy_option_encoding`]); `None` for archives made before
    /// [`DATA_IN_DATABASE_ENCODING`], whose text is UTF-8.
    pub fn data_encoding(&self) -> Option<&str> {
        (self.format >= DATA_IN_DATABASE_ENCODING)
            .then(|| copy_option_encoding(&self.encoding))
            .flatten()
    }

    /// Serialize as JSON (the archive's schema section).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Parse the JSON encoding, checking the format version.
    pub fn from_json(bytes: &[u8]) -> Result<SchemaModel, crate::schema::SchemaError> {
        #[derive(Deserialize)]
        struct Probe {
            format: u32,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| crate::schema::SchemaError::Unsupported(format!("schema model: {e}")))?;
        if probe.format > FORMAT_VERSION || probe.format == 0 {
            return Err(crate::schema::SchemaError::Format {
                found: probe.format,
                supported: FORMAT_VERSION,
            });
        }
        let m: SchemaModel = serde_json::from_slice(bytes)
            .map_err(|e| crate::schema::SchemaError::Unsupported(format!("schema model: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    /// Check that every id in the model points at an object (ids are
    /// indexes), so lookups cannot go out of range on a damaged archive.
    pub fn validate(&self) -> Result<(), crate::schema::SchemaError> {
        let n = self.objects.len();
        let bad = |what: String| {
            Err(crate::schema::SchemaError::Unsupported(format!(
                "invalid schema model: {what}"
            )))
        };
        for (i, o) in self.objects.iter().enumerate() {
            if o.id as usize != i {
                return bad(format!("object {i} has id {}", o.id));
            }
            let links = o
                .deps
                .iter()
                .chain(o.belongs_to.iter())
                .chain(o.references.iter());
            for &d in links {
                if d as usize >= n {
                    return bad(format!("object {i} refers to missing object {d}"));
                }
            }
        }
        let ids = self
            .tables
            .iter()
            .map(|t| t.object_id)
            .chain(self.tables.iter().filter_map(|t| t.parent))
            .chain(self.sequences.iter().map(|s| s.object_id))
            .chain(self.matviews.iter().map(|m| m.object_id))
            .chain(self.large_objects.iter().map(|l| l.object_id))
            .chain(self.extension_tables.iter().map(|e| e.extension_object_id));
        for id in ids {
            if id as usize >= n {
                return bad(format!(
                    "a table, sequence or large object refers to missing object {id}"
                ));
            }
        }
        Ok(())
    }

    /// The object with this id.
    pub fn object(&self, id: u32) -> &DbObject {
        &self.objects[id as usize]
    }

    /// The tables and materialized views whose rows the materialized view
    /// `mv` reads, directly or through views; through a materialized view
    /// too when `through` says so (its rows are what it read in turn).
    pub fn rows_read(&self, mv: u32, through: impl Fn(u32) -> bool) -> BTreeSet<u32> {
        let mut out = BTreeSet::new();
        let mut seen = BTreeSet::from([mv]);
        let mut stack = vec![mv];
        while let Some(id) = stack.pop() {
            for &d in &self.object(id).deps {
                let Some(dep) = self.objects.get(d as usize) else {
                    continue;
                };
                let descend = match dep.kind {
                    ObjectKind::View => true,
                    ObjectKind::MaterializedView => through(d),
                    _ => false,
                };
                if descend {
                    if seen.insert(d) {
                        stack.push(d);
                    }
                } else if matches!(dep.kind, ObjectKind::Table | ObjectKind::MaterializedView) {
                    out.insert(d);
                }
            }
        }
        out
    }

    /// The sequences a column owns (`ALTER SEQUENCE ... OWNED BY`), each
    /// with its owning table, as `(sequence, table)` object ids. Identity
    /// sequences are not among them: they carry their table's id.
    pub fn owned_sequences(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.objects
            .iter()
            .filter(|o| o.kind == ObjectKind::SequenceOwnedBy)
            .filter_map(move |o| {
                let table = o.belongs_to?;
                let seq = o.deps.iter().copied().find(|&d| {
                    self.objects.get(d as usize).map(|d| d.kind) == Some(ObjectKind::Sequence)
                })?;
                Some((seq, table))
            })
    }

    /// The relation object `id` is or belongs to, following chains (an
    /// index attach belongs to the child index, which belongs to a table).
    pub fn owning_relation(&self, mut id: u32) -> Option<u32> {
        for _ in 0..8 {
            let o = self.objects.get(id as usize)?;
            if o.kind.is_relation() {
                return Some(id);
            }
            id = o.belongs_to?;
        }
        None
    }

    /// A model holding only the objects in `keep` (for instance a closure's
    /// `objects`), renumbered so ids stay indexes: dependencies, links and
    /// the data-phase lists are remapped, and entries whose object is gone
    /// are dropped.
    pub fn subset(&self, keep: &std::collections::BTreeSet<u32>) -> SchemaModel {
        let map: std::collections::HashMap<u32, u32> = keep
            .iter()
            .filter(|&&id| (id as usize) < self.objects.len())
            .enumerate()
            .map(|(new, &old)| (old, new as u32))
            .collect();
        let remap = |id: u32| map.get(&id).copied();
        let mut objects: Vec<DbObject> = Vec::with_capacity(map.len());
        for &old in keep
            .iter()
            .filter(|&&id| (id as usize) < self.objects.len())
        {
            let mut o = self.objects[old as usize].clone();
            o.id = map[&old];
            o.deps = o.deps.iter().filter_map(|&d| remap(d)).collect();
            o.belongs_to = o.belongs_to.and_then(remap);
            o.references = o.references.and_then(remap);
            objects.push(o);
        }
        SchemaModel {
            format: self.format,
            server_version_num: self.server_version_num,
            database: self.database.clone(),
            encoding: self.encoding.clone(),
            objects,
            tables: self
                .tables
                .iter()
                .filter_map(|t| {
                    let mut t = t.clone();
                    t.object_id = remap(t.object_id)?;
                    t.parent = t.parent.and_then(remap);
                    Some(t)
                })
                .collect(),
            sequences: self
                .sequences
                .iter()
                .filter_map(|s| {
                    let mut s = s.clone();
                    s.object_id = remap(s.object_id)?;
                    Some(s)
                })
                .collect(),
            matviews: self
                .matviews
                .iter()
                .filter_map(|m| {
                    let mut m = m.clone();
                    m.object_id = remap(m.object_id)?;
                    Some(m)
                })
                .collect(),
            large_objects: self
                .large_objects
                .iter()
                .filter_map(|l| {
                    let mut l = l.clone();
                    l.object_id = remap(l.object_id)?;
                    Some(l)
                })
                .collect(),
            extension_tables: self
                .extension_tables
                .iter()
                .filter_map(|e| {
                    let mut e = e.clone();
                    e.extension_object_id = remap(e.extension_object_id)?;
                    Some(e)
                })
                .collect(),
            managed: self.managed.clone(),
        }
    }

    /// The partitions and inheritance children of a relation, at every
    /// level (a closure of a parent does not take them by itself).
    pub fn descendants(&self, object_id: u32) -> Vec<&TableInfo> {
        let mut out: Vec<&TableInfo> = Vec::new();
        let mut frontier = vec![object_id];
        while let Some(p) = frontier.pop() {
            for t in self.tables.iter().filter(|t| t.parent == Some(p)) {
                if !out.iter().any(|o| o.object_id == t.object_id) {
                    out.push(t);
                    frontier.push(t.object_id);
                }
            }
        }
        out.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
        out
    }

    /// The table (or other relation) object by schema and name.
    pub fn find_relation(&self, schema: &str, name: &str) -> Option<&DbObject> {
        self.objects
            .iter()
            .find(|o| o.kind.is_relation() && o.schema.as_deref() == Some(schema) && o.name == name)
    }
}
