//! Reading the catalogs into a [`SchemaModel`].
//!
//! Each object kind has one query (all objects of the kind at once). Every
//! object is registered under its catalog address `(classid, objid)`; the
//! dependency graph is then built from `pg_depend`, mapping both ends of
//! every edge to model objects (sub-objects such as columns, defaults,
//! inline check constraints, view rules or identity sequences map to the
//! object that creates them; members of an extension map to the extension).

use std::collections::{BTreeSet, HashMap, HashSet};

use tokio_postgres::{Client, Row};

use super::apply::CURRENT_DATABASE_BYTES;
use super::ddl::{
    acl_json_sql, acl_statements, column_acl_statements, comment_on, default_acl_objtype,
    default_acl_statements, fdw_options, ident, literal, options_list, owner_to, parse_acl,
    qualify, security_label, AclEntry,
};
use super::error::SchemaError;
use super::model::*;
use super::order::cycles;

// Fixed OIDs of the catalogs (stable across server versions).
pub(crate) const PG_CLASS: u32 = 1259;
pub(crate) const PG_TYPE: u32 = 1247;
pub(crate) const PG_PROC: u32 = 1255;
pub(crate) const PG_NAMESPACE: u32 = 2615;
pub(crate) const PG_CONSTRAINT: u32 = 2606;
pub(crate) const PG_ATTRDEF: u32 = 2604;
pub(crate) const PG_REWRITE: u32 = 2618;
pub(crate) const PG_TRIGGER: u32 = 2620;
pub(crate) const PG_POLICY: u32 = 3256;
pub(crate) const PG_EXTENSION: u32 = 3079;
pub(crate) const PG_COLLATION: u32 = 3456;
pub(crate) const PG_OPERATOR: u32 = 2617;
pub(crate) const PG_OPCLASS: u32 = 2616;
pub(crate) const PG_OPFAMILY: u32 = 2753;
pub(crate) const PG_CAST: u32 = 2605;
pub(crate) const PG_LANGUAGE: u32 = 2612;
pub(crate) const PG_TS_CONFIG: u32 = 3602;
pub(crate) const PG_TS_DICT: u32 = 3600;
pub(crate) const PG_TS_PARSER: u32 = 3601;
pub(crate) const PG_TS_TEMPLATE: u32 = 3764;
pub(crate) const PG_FDW: u32 = 2328;
pub(crate) const PG_FOREIGN_SERVER: u32 = 1417;
pub(crate) const PG_USER_MAPPING: u32 = 1418;
pub(crate) const PG_EVENT_TRIGGER: u32 = 3466;
pub(crate) const PG_PUBLICATION: u32 = 6104;
pub(crate) const PG_PUBLICATION_REL: u32 = 6106;
pub(crate) const PG_PUBLICATION_NAMESPACE: u32 = 6237;
pub(crate) const PG_STATISTIC_EXT: u32 = 3381;
pub(crate) const PG_LARGEOBJECT_METADATA: u32 = 2613;
pub(crate) const PG_DATABASE: u32 = 1262;
pub(crate) const PG_TRANSFORM: u32 = 3576;
pub(crate) const PG_AM: u32 = 2601;
pub(crate) const PG_CONVERSION: u32 = 2607;

/// Schemas never dumped.
pub(crate) const USER_NS: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
     AND n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%'";

type Key = (u32, u32);

/// Where COMMENT / SECURITY LABEL statements for a catalog address go.
struct Target {
    object: u32,
    /// `TABLE "s"."t"` etc.
    on: String,
}

#[derive(Default)]
struct Builder {
    objects: Vec<DbObject>,
    keys: HashMap<Key, u32>,
    targets: HashMap<Key, Target>,
    /// Column names of relations (for column comments): (relid, attnum).
    columns: HashMap<(u32, i16), String>,
    ext_members: HashMap<Key, u32>,
    internal: HashSet<Key>,
    /// Extra edges (object -> catalog address) not in pg_depend.
    extra_deps: Vec<(u32, Key)>,
    /// pg_depend edges (from, to) to ignore.
    ignore_edges: HashSet<(Key, Key)>,
    /// Edges from these objects to these catalog addresses go to another object.
    redirect: HashMap<(u32, Key), u32>,
    tables: Vec<TableInfo>,
    sequences: Vec<SequenceInfo>,
    matviews: Vec<MatviewInfo>,
    large_objects: Vec<LargeObjectInfo>,
    /// Objects whose `belongs_to` is a catalog address resolved at the end.
    pending_belongs: Vec<(u32, Key)>,
    /// Objects whose `references` is a catalog address resolved at the end.
    pending_refs: Vec<(u32, Key)>,
    identity: IdentitySeqs,
    /// Privilege statements of identity sequences, by sequence OID.
    identity_acl: HashMap<u32, Vec<String>>,
    /// Qualified names of relations and indexes, by OID.
    qnames: HashMap<u32, String>,
    /// Placeholder DDL of every view (used when a view is on a cycle).
    view_placeholders: HashMap<u32, String>,
    /// Column defaults of tables that can be split off (cycle breaking).
    defaults: HashMap<u32, Vec<SplitDefault>>,
    /// Inline check constraints of tables that can be split off.
    inline_checks: HashMap<u32, Vec<SplitDefault>>,
    extension_tables: Vec<ExtensionTableInfo>,
    /// `server_version_num` of the source.
    server_version: i32,
    /// Every dependency edge with the catalog address it came from.
    edge_src: Vec<(Key, u32, u32)>,
}

/// Fields of a new object; the rest is defaulted.
struct New {
    kind: ObjectKind,
    schema: Option<String>,
    name: String,
    identity: String,
    owner: Option<String>,
    section: Section,
    create: String,
    drop: Option<String>,
}

impl Builder {
    fn add(&mut self, key: Option<Key>, n: New) -> u32 {
        let id = self.objects.len() as u32;
        self.objects.push(DbObject {
            id,
            kind: n.kind,
            schema: n.schema,
            name: n.name,
            identity: n.identity,
            owner: n.owner,
            section: n.section,
            create: n.create,
            drop: n.drop,
            owner_sql: Vec::new(),
            acl_sql: Vec::new(),
            comment_sql: Vec::new(),
            deps: Vec::new(),
            belongs_to: None,
            references: None,
            provider: None,
            tablespace: None,
        });
        if let Some(k) = key {
            self.keys.insert(k, id);
        }
        id
    }

    fn target(&mut self, key: Key, object: u32, on: String) {
        self.targets.insert(key, Target { object, on });
    }

    /// Gives object `id` its `ALTER ... OWNER TO`, and makes it the target
    /// of comments and labels on `key`. `on` names the object as those
    /// statements do (`SCHEMA "s"`, `FUNCTION "s"."f"(int)`, ...).
    fn owned(&mut self, id: u32, key: Key, on: String, owner: &str) {
        self.obj(id).owner_sql.push(owner_to(&on, owner));
        self.target(key, id, on);
    }

    /// [`Builder::owned`], and its privileges from `acl` (the catalog's
    /// ACL as [`acl_json_sql`] gives it).
    fn owned_with_acl(&mut self, id: u32, key: Key, on: String, owner: &str, acl: Option<&str>) {
        self.obj(id).acl_sql = acl_statements(&on, Some(owner), &parse_acl(acl));
        self.owned(id, key, on, owner);
    }

    fn obj(&mut self, id: u32) -> &mut DbObject {
        &mut self.objects[id as usize]
    }

    fn dep_on(&mut self, id: u32, key: Key) {
        self.extra_deps.push((id, key));
    }

    fn dep_obj(&mut self, id: u32, other: u32) {
        if id != other && !self.objects[id as usize].deps.contains(&other) {
            self.objects[id as usize].deps.push(other);
        }
    }

    /// The model object for a catalog address (extension members map to
    /// their extension).
    fn resolve(&self, key: Key) -> Option<u32> {
        if let Some(&ext) = self.ext_members.get(&key) {
            return self.keys.get(&(PG_EXTENSION, ext)).copied();
        }
        self.keys.get(&key).copied()
    }
}

fn s(row: &Row, col: &str) -> String {
    row.get::<_, String>(col)
}

fn os(row: &Row, col: &str) -> Option<String> {
    row.get::<_, Option<String>>(col)
}

fn u(row: &Row, col: &str) -> u32 {
    row.get::<_, u32>(col)
}

fn b(row: &Row, col: &str) -> bool {
    row.get::<_, bool>(col)
}

fn arr(row: &Row, col: &str) -> Vec<String> {
    row.get::<_, Option<Vec<String>>>(col).unwrap_or_default()
}

async fn q(client: &Client, what: &'static str, sql: &str) -> Result<Vec<Row>, SchemaError> {
    client
        .query(sql, &[])
        .await
        .map_err(|source| SchemaError::Catalog { what, source })
}

fn ensure_semicolon(mut sql: String) -> String {
    let t = sql.trim_end().len();
    sql.truncate(t);
    if !sql.ends_with(';') {
        sql.push(';');
    }
    sql
}

/// Read everything in the connected database except system schemas and
/// extension members. Call it inside the backup's snapshot transaction.
/// Sets `search_path` to empty (and a few output settings) for the session.
pub async fn read_schema(client: &Client) -> Result<SchemaModel, SchemaError> {
    read_schema_with(client, &ReadOptions::default()).await
}

/// How to read the schema.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Take `ACCESS SHARE` locks on every table (ordinary and partitioned)
    /// before reading their definitions (as pg_dump does), so concurrent DDL
    /// cannot change them between the snapshot and the deparsers (which
    /// read the latest catalog state). Needs a privilege on each table;
    /// the locks last until the caller's transaction ends. Default: true.
    pub lock_tables: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions { lock_tables: true }
    }
}

/// [`read_schema`] with options.
pub async fn read_schema_with(
    client: &Client,
    opts: &ReadOptions,
) -> Result<SchemaModel, SchemaError> {
    // Output settings for the deparsers; restored afterwards (all but
    // search_path, which stays empty as the caller expects).
    let saved = client
        .query(
            "SELECT name, setting FROM pg_catalog.pg_settings WHERE name IN \
             ('extra_float_digits', 'DateStyle', 'IntervalStyle', 'quote_all_identifiers')",
            &[],
        )
        .await
        .map_err(SchemaError::Session)?;
    client
        .batch_execute(
            "SELECT pg_catalog.set_config('search_path', '', false); \
             SET extra_float_digits = 3; SET DateStyle = ISO; SET IntervalStyle = postgres; \
             SET quote_all_identifiers = on;",
        )
        .await
        .map_err(SchemaError::Session)?;
    let result = match lock_tables(client, opts).await {
        Ok(()) => read_all(client).await,
        Err(e) => Err(e),
    };
    for r in &saved {
        let (name, value): (String, String) = (r.get(0), r.get(1));
        let restored = client
            .execute(
                "SELECT pg_catalog.set_config($1, $2, false)",
                &[&name, &value],
            )
            .await;
        // After a failed read the transaction is aborted: keep that error.
        if result.is_ok() {
            restored.map_err(SchemaError::Session)?;
        }
    }
    result
}

async fn lock_tables(client: &Client, opts: &ReadOptions) -> Result<(), SchemaError> {
    if !opts.lock_tables {
        return Ok(());
    }
    let sql = format!(
        "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p') AND {USER_NS} ORDER BY c.oid"
    );
    let names: Vec<String> = q(client, "tables to lock", &sql)
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for chunk in names.chunks(200) {
        let stmt = format!("LOCK TABLE ONLY {} IN ACCESS SHARE MODE", chunk.join(", "));
        client
            .batch_execute(&stmt)
            .await
            .map_err(|source| SchemaError::Catalog {
                what: "locking tables",
                source,
            })?;
    }
    Ok(())
}

async fn read_all(client: &Client) -> Result<SchemaModel, SchemaError> {
    let info = q(
        client,
        "database",
        &format!(
            "SELECT {CURRENT_DATABASE_BYTES} AS db, \
             pg_catalog.pg_encoding_to_char(d.encoding)::text AS enc, \
             pg_catalog.current_setting('server_version_num')::int4 AS ver, d.oid, \
             pg_catalog.pg_get_userbyid(d.datdba)::text AS owner \
             FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()"
        ),
    )
    .await?;
    let info = &info[0];
    let mut bld = Builder {
        server_version: info.get::<_, i32>("ver"),
        ..Default::default()
    };
    if bld.server_version < 150000 {
        return Err(SchemaError::Unsupported(format!(
            "server version {} (reading the schema needs PostgreSQL 15 or later)",
            bld.server_version
        )));
    }
    read_ext_members(client, &mut bld).await?;
    read_schemas(client, &mut bld).await?;
    read_extensions(client, &mut bld).await?;
    read_languages(client, &mut bld).await?;
    read_collations(client, &mut bld).await?;
    read_types(client, &mut bld).await?;
    read_functions(client, &mut bld).await?;
    read_aggregates(client, &mut bld).await?;
    read_conversions(client, &mut bld).await?;
    read_operators(client, &mut bld).await?;
    read_opfamilies(client, &mut bld).await?;
    read_casts(client, &mut bld).await?;
    read_access_methods(client, &mut bld).await?;
    read_transforms(client, &mut bld).await?;
    read_text_search(client, &mut bld).await?;
    read_fdw(client, &mut bld).await?;
    read_sequences(client, &mut bld).await?;
    read_relations(client, &mut bld).await?;
    read_constraints(client, &mut bld).await?;
    read_indexes(client, &mut bld).await?;
    read_triggers(client, &mut bld).await?;
    read_rules(client, &mut bld).await?;
    read_policies(client, &mut bld).await?;
    read_statistics(client, &mut bld).await?;
    read_event_triggers(client, &mut bld).await?;
    read_publications(client, &mut bld).await?;
    warn_of_subscriptions(client).await?;
    read_default_acls(client, &mut bld).await?;
    read_member_acls(client, &mut bld).await?;
    read_extension_tables(client, &mut bld).await?;
    read_large_objects(client, &mut bld).await?;
    read_database(client, &mut bld, u(info, "oid"), &s(info, "owner")).await?;
    read_comments(client, &mut bld).await?;
    read_dependencies(client, &mut bld).await?;
    break_cycles(&mut bld);
    postpone_across_sections(&mut bld);
    // Identity sequences of tables not in the model (extension members).
    bld.sequences.retain(|s| s.object_id != u32::MAX);
    let source_roles = q(
        client,
        "roles",
        "SELECT rolname::text FROM pg_catalog.pg_roles",
    )
    .await?
    .iter()
    .map(|r| r.get::<_, String>(0))
    .collect();
    let b = bld;
    let mut model = SchemaModel {
        format: FORMAT_VERSION,
        server_version_num: info.get::<_, i32>("ver"),
        database: String::from_utf8_lossy(info.get::<_, &[u8]>("db")).into_owned(),
        encoding: s(info, "enc"),
        objects: b.objects,
        tables: b.tables,
        sequences: b.sequences,
        matviews: b.matviews,
        large_objects: b.large_objects,
        extension_tables: b.extension_tables,
        managed: Vec::new(),
    };
    let unfillable = refreshes_over_unpopulated(&model);
    if !unfillable.is_empty() {
        let keep = (0..model.objects.len() as u32)
            .filter(|id| !unfillable.contains(id))
            .collect();
        model = model.subset(&keep);
    }
    super::provider::mark(&mut model, &source_roles);
    Ok(model)
}

async fn read_ext_members(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "extension members",
        "SELECT classid, objid, refobjid FROM pg_catalog.pg_depend \
         WHERE refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND deptype = 'e'",
    )
    .await?
    {
        bld.ext_members
            .insert((u(&r, "classid"), u(&r, "objid")), u(&r, "refobjid"));
    }
    for r in q(
        client,
        "implicit objects",
        "SELECT classid, objid FROM pg_catalog.pg_depend WHERE deptype = 'i' \
         AND classid IN ('pg_catalog.pg_proc'::pg_catalog.regclass, 'pg_catalog.pg_cast'::pg_catalog.regclass) \
         AND objid >= 16384",
    )
    .await?
    {
        bld.internal.insert((u(&r, "classid"), u(&r, "objid")));
    }
    Ok(())
}

/// Extension members, and objects created implicitly with another one
/// (an internal dependency: multirange constructors, their casts, ...).
fn is_member(bld: &Builder, class: u32, oid: u32) -> bool {
    bld.ext_members.contains_key(&(class, oid)) || bld.internal.contains(&(class, oid))
}

async fn read_schemas(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT n.oid, n.nspname::text AS name, pg_catalog.pg_get_userbyid(n.nspowner)::text AS owner, \
         {} AS acl FROM pg_catalog.pg_namespace n WHERE {USER_NS} ORDER BY 2",
        acl_json_sql("n.nspacl")
    );
    for r in q(client, "schemas", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_NAMESPACE, oid) {
            continue;
        }
        let name = s(&r, "name");
        let owner = s(&r, "owner");
        let on = format!("SCHEMA {}", ident(&name));
        // The public schema exists in every new database (from template1):
        // only its owner, ACL and comment are restored.
        let create = if name == "public" {
            String::new()
        } else {
            format!("CREATE SCHEMA {};", ident(&name))
        };
        let id = bld.add(
            Some((PG_NAMESPACE, oid)),
            New {
                kind: ObjectKind::Schema,
                schema: None,
                name: name.clone(),
                identity: format!("schema {}", ident(&name)),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create,
                drop: Some(format!("DROP SCHEMA {};", ident(&name))),
            },
        );
        bld.owned_with_acl(
            id,
            (PG_NAMESPACE, oid),
            on,
            &owner,
            os(&r, "acl").as_deref(),
        );
    }
    Ok(())
}

async fn read_extensions(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    // Extensions created by initdb (plpgsql) exist in every new database.
    for r in q(
        client,
        "extensions",
        "SELECT e.oid, e.extname::text AS name, n.nspname::text AS schema, e.extversion AS version \
         FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
         WHERE e.oid >= 16384 ORDER BY 2",
    )
    .await?
    {
        let oid = u(&r, "oid");
        let name = s(&r, "name");
        let schema = s(&r, "schema");
        let on = format!("EXTENSION {}", ident(&name));
        let id = bld.add(
            Some((PG_EXTENSION, oid)),
            New {
                kind: ObjectKind::Extension,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("extension {}", ident(&name)),
                owner: None,
                section: Section::PreData,
                create: format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} VERSION {};",
                    ident(&name),
                    ident(&schema),
                    literal(&s(&r, "version"))
                ),
                drop: Some(format!("DROP EXTENSION {};", ident(&name))),
            },
        );
        bld.target((PG_EXTENSION, oid), id, on);
    }
    Ok(())
}

async fn read_languages(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT l.oid, l.lanname::text AS name, l.lanpltrusted AS trusted, \
         pg_catalog.pg_get_userbyid(l.lanowner)::text AS owner, \
         l.lanplcallfoid::pg_catalog.regprocedure::text AS handler, \
         CASE WHEN l.laninline <> 0 THEN l.laninline::pg_catalog.regprocedure::text END AS inline, \
         CASE WHEN l.lanvalidator <> 0 THEN l.lanvalidator::pg_catalog.regprocedure::text END AS validator, \
         {} AS acl FROM pg_catalog.pg_language l WHERE l.lanispl AND l.oid >= 16384 ORDER BY 2",
        acl_json_sql("l.lanacl")
    );
    for r in q(client, "languages", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_LANGUAGE, oid) {
            continue;
        }
        let name = s(&r, "name");
        let owner = s(&r, "owner");
        let strip = |f: String| f.split('(').next().unwrap_or_default().to_string();
        let mut create = format!(
            "CREATE {}PROCEDURAL LANGUAGE {} HANDLER {}",
            if b(&r, "trusted") { "TRUSTED " } else { "" },
            ident(&name),
            strip(s(&r, "handler"))
        );
        if let Some(i) = os(&r, "inline") {
            create.push_str(&format!(" INLINE {}", strip(i)));
        }
        if let Some(v) = os(&r, "validator") {
            create.push_str(&format!(" VALIDATOR {}", strip(v)));
        }
        create.push(';');
        let on = format!("LANGUAGE {}", ident(&name));
        let id = bld.add(
            Some((PG_LANGUAGE, oid)),
            New {
                kind: ObjectKind::Language,
                schema: None,
                name: name.clone(),
                identity: format!("language {}", ident(&name)),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create,
                drop: Some(format!("DROP LANGUAGE {};", ident(&name))),
            },
        );
        bld.owned_with_acl(id, (PG_LANGUAGE, oid), on, &owner, os(&r, "acl").as_deref());
    }
    Ok(())
}

async fn read_collations(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    // PostgreSQL 17 renamed colliculocale to colllocale.
    let icu_col = if bld.server_version >= 170000 {
        "colllocale"
    } else {
        "colliculocale"
    };
    let sql = format!(
        "SELECT c.oid, n.nspname::text AS schema, c.collname::text AS name, \
         pg_catalog.pg_get_userbyid(c.collowner)::text AS owner, c.collprovider::text AS provider, \
         c.collisdeterministic AS det, c.collcollate AS lc_collate, c.collctype AS lc_ctype, \
         c.{icu_col} AS icu \
         FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace n ON n.oid = c.collnamespace \
         WHERE {USER_NS} ORDER BY 2, 3"
    );
    for r in q(client, "collations", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_COLLATION, oid) {
            continue;
        }
        let (schema, name, owner) = (s(&r, "schema"), s(&r, "name"), s(&r, "owner"));
        let qn = qualify(&schema, &name);
        let provider = match s(&r, "provider").as_str() {
            "i" => "icu",
            "c" => "libc",
            _ => "default",
        };
        let mut opts = vec![format!("provider = {provider}")];
        if !b(&r, "det") {
            opts.push("deterministic = false".into());
        }
        if provider == "icu" {
            opts.push(format!(
                "locale = {}",
                literal(&os(&r, "icu").unwrap_or_default())
            ));
        } else {
            let c = os(&r, "lc_collate").unwrap_or_default();
            let t = os(&r, "lc_ctype").unwrap_or_default();
            if c == t {
                opts.push(format!("locale = {}", literal(&c)));
            } else {
                opts.push(format!("lc_collate = {}", literal(&c)));
                opts.push(format!("lc_ctype = {}", literal(&t)));
            }
        }
        let on = format!("COLLATION {qn}");
        let id = bld.add(
            Some((PG_COLLATION, oid)),
            New {
                kind: ObjectKind::Collation,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("collation {qn}"),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create: format!("CREATE COLLATION {qn} ({});", opts.join(", ")),
                drop: Some(format!("DROP COLLATION {qn};")),
            },
        );
        bld.owned(id, (PG_COLLATION, oid), on, &owner);
    }
    Ok(())
}

/// Encoding conversions (`CREATE [DEFAULT] CONVERSION`): the function
/// named by OID so the dependency on it is the catalog's.
async fn read_conversions(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text AS schema, c.conname::text AS name, \
         pg_catalog.pg_get_userbyid(c.conowner)::text AS owner, c.condefault AS dflt, \
         pg_catalog.pg_encoding_to_char(c.conforencoding)::text AS src, \
         pg_catalog.pg_encoding_to_char(c.contoencoding)::text AS dst, \
         c.conproc::pg_catalog.regproc::text AS func \
         FROM pg_catalog.pg_conversion c JOIN pg_catalog.pg_namespace n ON n.oid = c.connamespace \
         WHERE c.oid >= 16384 AND {USER_NS} ORDER BY 2, 3"
    );
    for r in q(client, "conversions", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_CONVERSION, oid) {
            continue;
        }
        let (schema, name, owner) = (s(&r, "schema"), s(&r, "name"), s(&r, "owner"));
        let qn = qualify(&schema, &name);
        let id = bld.add(
            Some((PG_CONVERSION, oid)),
            New {
                kind: ObjectKind::Conversion,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("conversion {qn}"),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create: format!(
                    "CREATE {}CONVERSION {qn} FOR {} TO {} FROM {};",
                    if b(&r, "dflt") { "DEFAULT " } else { "" },
                    literal(&s(&r, "src")),
                    literal(&s(&r, "dst")),
                    s(&r, "func")
                ),
                drop: Some(format!("DROP CONVERSION {qn};")),
            },
        );
        bld.owned(id, (PG_CONVERSION, oid), format!("CONVERSION {qn}"), &owner);
    }
    Ok(())
}

async fn read_types(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    // User types, without implicit array types, table row types and
    // multiranges (created with their range).
    let sql = format!(
        "SELECT t.oid, n.nspname::text AS schema, t.typname::text AS name, t.typtype::text AS typtype, \
         pg_catalog.pg_get_userbyid(t.typowner)::text AS owner, t.typisdefined AS defined, t.typnamespace, \
         {} AS acl, t.typrelid, \
         (SELECT pg_catalog.array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
            FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) AS labels, \
         CASE WHEN t.typtype = 'd' THEN pg_catalog.format_type(t.typbasetype, t.typtypmod) END AS base, \
         t.typnotnull AS notnull, \
         pg_catalog.pg_get_expr(t.typdefaultbin, 0) AS defexpr, t.typdefault AS deftext, \
         CASE WHEN t.typcollation <> 0 AND t.typcollation IS DISTINCT FROM \
           (SELECT bt.typcollation FROM pg_catalog.pg_type bt WHERE bt.oid = t.typbasetype) \
           THEN (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(c.collname) \
                 FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace cn ON cn.oid = c.collnamespace \
                 WHERE c.oid = t.typcollation) END AS collation \
         FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         WHERE {USER_NS} AND t.typtype IN ('b', 'c', 'd', 'e', 'r', 'p') \
           AND NOT (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) <> 'c') \
           AND NOT (t.typelem <> 0 AND t.typsubscript = 'pg_catalog.array_subscript_handler'::pg_catalog.regproc \
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_type el WHERE el.oid = t.typelem AND el.typarray = t.oid)) \
         ORDER BY 2, 3",
        acl_json_sql("t.typacl")
    );
    let rows = q(client, "types", &sql).await?;
    // Attributes of composite types.
    let attrs = q(
        client,
        "composite type attributes",
        "SELECT a.attrelid, a.attname::text AS name, pg_catalog.format_type(a.atttypid, a.atttypmod) AS typ, \
         CASE WHEN a.attcollation <> t.typcollation THEN \
           (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(c.collname) \
            FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace cn ON cn.oid = c.collnamespace \
            WHERE c.oid = a.attcollation) END AS collation \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class r ON r.oid = a.attrelid \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         WHERE r.relkind = 'c' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attrelid, a.attnum",
    )
    .await?;
    let mut attrs_of: HashMap<u32, Vec<String>> = HashMap::new();
    for a in &attrs {
        let mut def = format!("{} {}", ident(&s(a, "name")), s(a, "typ"));
        if let Some(c) = os(a, "collation") {
            def.push_str(&format!(" COLLATE {c}"));
        }
        attrs_of.entry(u(a, "attrelid")).or_default().push(def);
    }
    let ranges = q(
        client,
        "range types",
        "SELECT r.rngtypid, pg_catalog.format_type(r.rngsubtype, NULL) AS subtype, \
         (SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(o.opcname) \
            FROM pg_catalog.pg_opclass o JOIN pg_catalog.pg_namespace n ON n.oid = o.opcnamespace \
            WHERE o.oid = r.rngsubopc AND NOT o.opcdefault) AS opclass, \
         CASE WHEN r.rngcollation <> 0 AND r.rngcollation IS DISTINCT FROM \
           (SELECT st.typcollation FROM pg_catalog.pg_type st WHERE st.oid = r.rngsubtype) THEN \
           (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(c.collname) \
            FROM pg_catalog.pg_collation c JOIN pg_catalog.pg_namespace cn ON cn.oid = c.collnamespace \
            WHERE c.oid = r.rngcollation) END AS collation, \
         CASE WHEN r.rngcanonical <> 0 THEN r.rngcanonical::pg_catalog.regproc::text END AS canonical, \
         r.rngcanonical::pg_catalog.oid AS canon_oid, \
         CASE WHEN r.rngsubdiff <> 0 THEN r.rngsubdiff::pg_catalog.regproc::text END AS subdiff, \
         (SELECT pg_catalog.quote_ident(mn.nspname) || '.' || pg_catalog.quote_ident(m.typname) \
            FROM pg_catalog.pg_type m JOIN pg_catalog.pg_namespace mn ON mn.oid = m.typnamespace \
            WHERE m.oid = r.rngmultitypid) AS multirange, r.rngmultitypid \
         FROM pg_catalog.pg_range r",
    )
    .await?;
    let range_of: HashMap<u32, &Row> = ranges.iter().map(|r| (u(r, "rngtypid"), r)).collect();
    let domain_checks = q(
        client,
        "domain constraints",
        "SELECT c.oid, c.contypid, c.conname::text AS name, pg_catalog.pg_get_constraintdef(c.oid) AS def, \
         c.convalidated AS valid FROM pg_catalog.pg_constraint c WHERE c.contypid <> 0 ORDER BY c.contypid, c.conname",
    )
    .await?;
    let mut checks_of: HashMap<u32, Vec<&Row>> = HashMap::new();
    for c in &domain_checks {
        checks_of.entry(u(c, "contypid")).or_default().push(c);
    }
    let base = q(
        client,
        "base types",
        "SELECT t.oid, t.typlen, t.typbyval, t.typalign::text AS align, t.typstorage::text AS storage, \
         t.typcategory::text AS category, t.typispreferred AS preferred, t.typdelim::text AS delim, \
         t.typinput::pg_catalog.regproc::text AS input, t.typoutput::pg_catalog.regproc::text AS output, \
         t.typinput::pg_catalog.oid AS typinput, t.typoutput::pg_catalog.oid AS typoutput, t.typreceive::pg_catalog.oid AS typreceive, t.typsend::pg_catalog.oid AS typsend, t.typmodin::pg_catalog.oid AS typmodin, t.typmodout::pg_catalog.oid AS typmodout, t.typanalyze::pg_catalog.oid AS typanalyze, t.typsubscript::pg_catalog.oid AS typsubscript, \
         CASE WHEN t.typreceive <> 0 THEN t.typreceive::pg_catalog.regproc::text END AS receive, \
         CASE WHEN t.typsend <> 0 THEN t.typsend::pg_catalog.regproc::text END AS send, \
         CASE WHEN t.typmodin <> 0 THEN t.typmodin::pg_catalog.regproc::text END AS modin, \
         CASE WHEN t.typmodout <> 0 THEN t.typmodout::pg_catalog.regproc::text END AS modout, \
         CASE WHEN t.typanalyze <> 0 THEN t.typanalyze::pg_catalog.regproc::text END AS analyze, \
         CASE WHEN t.typsubscript <> 0 THEN t.typsubscript::pg_catalog.regproc::text END AS subscript, \
         CASE WHEN t.typelem <> 0 THEN pg_catalog.format_type(t.typelem, NULL) END AS element, \
         t.typcollation <> 0 AS collatable, t.typdefault AS deftext \
         FROM pg_catalog.pg_type t WHERE t.typtype = 'b' AND t.oid >= 16384",
    )
    .await?;
    let base_of: HashMap<u32, &Row> = base.iter().map(|r| (u(r, "oid"), r)).collect();

    for r in &rows {
        let oid = u(r, "oid");
        if is_member(bld, PG_TYPE, oid) {
            continue;
        }
        let (schema, name, owner) = (s(r, "schema"), s(r, "name"), s(r, "owner"));
        let qn = qualify(&schema, &name);
        let typtype = s(r, "typtype");
        let acl = parse_acl(os(r, "acl").as_deref());
        let mut on = format!("TYPE {qn}");
        let mut extra_keys: Vec<Key> = Vec::new();
        let mut redirect_fns: Vec<u32> = Vec::new();
        let (kind, create) = match typtype.as_str() {
            "e" => {
                let labels: Vec<String> = arr(r, "labels").iter().map(|l| literal(l)).collect();
                (
                    ObjectKind::EnumType,
                    format!("CREATE TYPE {qn} AS ENUM ({});", labels.join(", ")),
                )
            }
            "c" => {
                let relid = u(r, "typrelid");
                extra_keys.push((PG_CLASS, relid));
                let a = attrs_of.get(&relid).cloned().unwrap_or_default();
                (
                    ObjectKind::CompositeType,
                    format!("CREATE TYPE {qn} AS ({});", a.join(", ")),
                )
            }
            "r" => {
                let Some(rg) = range_of.get(&oid) else {
                    continue;
                };
                let mut opts = vec![format!("subtype = {}", s(rg, "subtype"))];
                if let Some(m) = os(rg, "multirange") {
                    opts.push(format!("multirange_type_name = {m}"));
                    extra_keys.push((PG_TYPE, u(rg, "rngmultitypid")));
                }
                if let Some(o) = os(rg, "opclass") {
                    opts.push(format!("subtype_opclass = {o}"));
                }
                if let Some(c) = os(rg, "collation") {
                    opts.push(format!("collation = {c}"));
                }
                if let Some(c) = os(rg, "canonical") {
                    opts.push(format!("canonical = {c}"));
                    // The canonical function takes and returns the range:
                    // it is created against a shell, like I/O functions.
                    redirect_fns.push(u(rg, "canon_oid"));
                }
                if let Some(c) = os(rg, "subdiff") {
                    opts.push(format!("subtype_diff = {c}"));
                }
                (
                    ObjectKind::RangeType,
                    format!("CREATE TYPE {qn} AS RANGE ({});", opts.join(", ")),
                )
            }
            "d" => {
                on = format!("DOMAIN {qn}");
                let mut c = format!(
                    "CREATE DOMAIN {qn} AS {}",
                    os(r, "base").unwrap_or_default()
                );
                if let Some(col) = os(r, "collation") {
                    c.push_str(&format!(" COLLATE {col}"));
                }
                if let Some(d) = os(r, "defexpr").or_else(|| os(r, "deftext")) {
                    c.push_str(&format!(" DEFAULT {d}"));
                }
                if b(r, "notnull") {
                    c.push_str(" NOT NULL");
                }
                // Checks NOT VALID are objects of their own, after the
                // data (below): rows that break them would fail the load.
                for ck in checks_of
                    .get(&oid)
                    .map(|v| v.as_slice())
                    .unwrap_or_default()
                    .iter()
                    .filter(|ck| b(ck, "valid"))
                {
                    let cname = s(ck, "name");
                    c.push_str(&format!(" CONSTRAINT {} {}", ident(&cname), s(ck, "def")));
                    extra_keys.push((PG_CONSTRAINT, u(ck, "oid")));
                }
                c.push(';');
                (ObjectKind::Domain, c)
            }
            "p" if !b(r, "defined") => (ObjectKind::ShellType, format!("CREATE TYPE {qn};")),
            "b" => {
                let Some(bt) = base_of.get(&oid) else {
                    continue;
                };
                let mut opts = vec![
                    format!("INPUT = {}", s(bt, "input")),
                    format!("OUTPUT = {}", s(bt, "output")),
                ];
                for (k, col) in [
                    ("RECEIVE", "receive"),
                    ("SEND", "send"),
                    ("TYPMOD_IN", "modin"),
                    ("TYPMOD_OUT", "modout"),
                    ("ANALYZE", "analyze"),
                    ("SUBSCRIPT", "subscript"),
                ] {
                    if let Some(f) = os(bt, col) {
                        opts.push(format!("{k} = {f}"));
                    }
                }
                for col in [
                    "typinput",
                    "typoutput",
                    "typreceive",
                    "typsend",
                    "typmodin",
                    "typmodout",
                    "typanalyze",
                    "typsubscript",
                ] {
                    let f = u(bt, col);
                    if f != 0 {
                        redirect_fns.push(f);
                    }
                }
                let len: i16 = bt.get("typlen");
                opts.push(if len < 0 {
                    "INTERNALLENGTH = variable".into()
                } else {
                    format!("INTERNALLENGTH = {len}")
                });
                if b(bt, "typbyval") {
                    opts.push("PASSEDBYVALUE".into());
                }
                opts.push(format!(
                    "ALIGNMENT = {}",
                    match s(bt, "align").as_str() {
                        "c" => "char",
                        "s" => "int2",
                        "d" => "double",
                        _ => "int4",
                    }
                ));
                opts.push(format!(
                    "STORAGE = {}",
                    match s(bt, "storage").as_str() {
                        "e" => "external",
                        "x" => "extended",
                        "m" => "main",
                        _ => "plain",
                    }
                ));
                opts.push(format!("CATEGORY = {}", literal(&s(bt, "category"))));
                if b(bt, "preferred") {
                    opts.push("PREFERRED = true".into());
                }
                if let Some(d) = os(bt, "deftext") {
                    opts.push(format!("DEFAULT = {}", literal(&d)));
                }
                if let Some(e) = os(bt, "element") {
                    opts.push(format!("ELEMENT = {e}"));
                }
                let delim = s(bt, "delim");
                if delim != "," {
                    opts.push(format!("DELIMITER = {}", literal(&delim)));
                }
                if b(bt, "collatable") {
                    opts.push("COLLATABLE = true".into());
                }
                (
                    ObjectKind::BaseType,
                    format!("CREATE TYPE {qn} ({});", opts.join(", ")),
                )
            }
            _ => continue,
        };
        let id = bld.add(
            Some((PG_TYPE, oid)),
            New {
                kind,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!(
                    "{} {qn}",
                    if kind == ObjectKind::Domain {
                        "domain"
                    } else {
                        "type"
                    }
                ),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create,
                drop: Some(format!(
                    "DROP {} {qn};",
                    if kind == ObjectKind::Domain {
                        "DOMAIN"
                    } else {
                        "TYPE"
                    }
                )),
            },
        );
        for k in &extra_keys {
            bld.keys.insert(*k, id);
        }
        if kind == ObjectKind::Domain {
            for ck in checks_of
                .get(&oid)
                .map(|v| v.as_slice())
                .unwrap_or_default()
            {
                let cname = s(ck, "name");
                let on = format!("CONSTRAINT {} ON DOMAIN {qn}", ident(&cname));
                if b(ck, "valid") {
                    bld.target((PG_CONSTRAINT, u(ck, "oid")), id, on);
                    continue;
                }
                // As pg_dump has it: added after the data, as it was, not
                // validated; it belongs to the domain (a selective restore
                // takes it with the domain).
                let cid = bld.add(
                    Some((PG_CONSTRAINT, u(ck, "oid"))),
                    New {
                        kind: ObjectKind::CheckConstraint,
                        schema: Some(schema.clone()),
                        name: cname.clone(),
                        identity: format!("constraint {} on domain {qn}", ident(&cname)),
                        owner: None,
                        section: Section::PostData,
                        create: format!(
                            "ALTER DOMAIN {qn} ADD CONSTRAINT {} {};",
                            ident(&cname),
                            s(ck, "def")
                        ),
                        drop: Some(format!(
                            "ALTER DOMAIN {qn} DROP CONSTRAINT {};",
                            ident(&cname)
                        )),
                    },
                );
                bld.dep_obj(cid, id);
                bld.obj(cid).belongs_to = Some(id);
                bld.target((PG_CONSTRAINT, u(ck, "oid")), cid, on);
            }
        }
        if !redirect_fns.is_empty() {
            // A shell first: the I/O (or canonical) functions are created
            // against it.
            let shell = bld.add(
                None,
                New {
                    kind: ObjectKind::ShellType,
                    schema: Some(schema.clone()),
                    name: name.clone(),
                    identity: format!("shell type {qn}"),
                    owner: Some(owner.clone()),
                    section: Section::PreData,
                    create: format!("CREATE TYPE {qn};"),
                    drop: None,
                },
            );
            bld.dep_on(shell, (PG_NAMESPACE, u(r, "typnamespace")));
            bld.dep_obj(id, shell);
            for f in redirect_fns {
                bld.redirect.insert((f, (PG_TYPE, oid)), shell);
                bld.dep_on(id, (PG_PROC, f));
            }
        }
        let o = bld.obj(id);
        o.owner_sql.push(owner_to(&on, &owner));
        if kind != ObjectKind::ShellType {
            o.acl_sql = acl_statements(&on, Some(&owner), &acl);
        }
        bld.target((PG_TYPE, oid), id, on.clone());
        if let Some(c) = extra_keys.iter().find(|k| k.0 == PG_CLASS) {
            bld.target(*c, id, on);
            bld.qnames.insert(c.1, qn.clone());
        }
    }
    // Columns of composite types, for COMMENT ON COLUMN.
    let cols = q(
        client,
        "composite columns",
        "SELECT a.attrelid, a.attnum, a.attname::text AS name FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class r ON r.oid = a.attrelid WHERE r.relkind = 'c' AND a.attnum > 0",
    )
    .await?;
    for c in cols {
        bld.columns.insert(
            (u(&c, "attrelid"), c.get::<_, i16>("attnum")),
            s(&c, "name"),
        );
    }
    Ok(())
}

async fn read_functions(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT p.oid, n.nspname::text AS schema, p.proname::text AS name, p.prokind::text AS kind, \
         pg_catalog.pg_get_userbyid(p.proowner)::text AS owner, {} AS acl, \
         pg_catalog.pg_get_function_identity_arguments(p.oid) AS args, \
         pg_catalog.pg_get_functiondef(p.oid) AS def \
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         WHERE {USER_NS} AND p.prokind IN ('f', 'p', 'w') ORDER BY 2, 3, 7",
        acl_json_sql("p.proacl")
    );
    for r in q(client, "functions", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_PROC, oid) {
            continue;
        }
        let (schema, name, owner) = (s(&r, "schema"), s(&r, "name"), s(&r, "owner"));
        let sig = format!("{}({})", qualify(&schema, &name), s(&r, "args"));
        let proc = s(&r, "kind") == "p";
        let kw = if proc { "PROCEDURE" } else { "FUNCTION" };
        let on = format!("{kw} {sig}");
        let id = bld.add(
            Some((PG_PROC, oid)),
            New {
                kind: if proc {
                    ObjectKind::Procedure
                } else {
                    ObjectKind::Function
                },
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("{} {sig}", kw.to_lowercase()),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create: ensure_semicolon(s(&r, "def")),
                drop: Some(format!("DROP {kw} {sig};")),
            },
        );
        bld.owned_with_acl(id, (PG_PROC, oid), on, &owner, os(&r, "acl").as_deref());
    }
    Ok(())
}

async fn read_aggregates(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let f =
        |c: &str| format!("CASE WHEN a.{c} <> 0 THEN a.{c}::pg_catalog.regproc::text END AS {c}");
    let sql = format!(
        "SELECT p.oid, n.nspname::text AS schema, p.proname::text AS name, \
         pg_catalog.pg_get_userbyid(p.proowner)::text AS owner, {} AS acl, \
         pg_catalog.pg_get_function_identity_arguments(p.oid) AS args, \
         pg_catalog.pg_get_function_arguments(p.oid) AS fullargs, \
         a.aggkind::text AS aggkind, {}, {}, {}, {}, {}, {}, {}, {}, \
         a.aggfinalextra, a.aggmfinalextra, a.aggfinalmodify::text AS fmod, a.aggmfinalmodify::text AS mfmod, \
         CASE WHEN a.aggsortop <> 0 THEN (SELECT 'OPERATOR(' || pg_catalog.quote_ident(on2.nspname) || '.' || o.oprname || ')' \
           FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace on2 ON on2.oid = o.oprnamespace WHERE o.oid = a.aggsortop) END AS sortop, \
         pg_catalog.format_type(a.aggtranstype, NULL) AS stype, a.aggtransspace, \
         CASE WHEN a.aggmtranstype <> 0 THEN pg_catalog.format_type(a.aggmtranstype, NULL) END AS mstype, a.aggmtransspace, \
         a.agginitval, a.aggminitval, p.proparallel::text AS parallel \
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid \
         WHERE {USER_NS} AND p.prokind = 'a' ORDER BY 2, 3, 6",
        acl_json_sql("p.proacl"),
        f("aggtransfn"),
        f("aggfinalfn"),
        f("aggcombinefn"),
        f("aggserialfn"),
        f("aggdeserialfn"),
        f("aggmtransfn"),
        f("aggminvtransfn"),
        f("aggmfinalfn"),
    );
    for r in q(client, "aggregates", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_PROC, oid) {
            continue;
        }
        let (schema, name, owner) = (s(&r, "schema"), s(&r, "name"), s(&r, "owner"));
        let args = s(&r, "args");
        let sig_args = if args.is_empty() {
            "*".to_string()
        } else {
            args
        };
        let full = s(&r, "fullargs");
        let full = if full.is_empty() {
            "*".to_string()
        } else {
            full
        };
        let sig = format!("{}({sig_args})", qualify(&schema, &name));
        let mut opts = vec![
            format!("SFUNC = {}", os(&r, "aggtransfn").unwrap_or_default()),
            format!("STYPE = {}", s(&r, "stype")),
        ];
        let space: i32 = r.get("aggtransspace");
        if space != 0 {
            opts.push(format!("SSPACE = {space}"));
        }
        let modify = |m: &str| match m {
            "s" => "SHAREABLE",
            "w" => "READ_WRITE",
            _ => "READ_ONLY",
        };
        if let Some(x) = os(&r, "aggfinalfn") {
            opts.push(format!("FINALFUNC = {x}"));
            if b(&r, "aggfinalextra") {
                opts.push("FINALFUNC_EXTRA".into());
            }
        }
        opts.push(format!("FINALFUNC_MODIFY = {}", modify(&s(&r, "fmod"))));
        for (k, c) in [
            ("COMBINEFUNC", "aggcombinefn"),
            ("SERIALFUNC", "aggserialfn"),
            ("DESERIALFUNC", "aggdeserialfn"),
        ] {
            if let Some(x) = os(&r, c) {
                opts.push(format!("{k} = {x}"));
            }
        }
        if let Some(x) = os(&r, "agginitval") {
            opts.push(format!("INITCOND = {}", literal(&x)));
        }
        if let Some(x) = os(&r, "aggmtransfn") {
            opts.push(format!("MSFUNC = {x}"));
            if let Some(y) = os(&r, "aggminvtransfn") {
                opts.push(format!("MINVFUNC = {y}"));
            }
            if let Some(y) = os(&r, "mstype") {
                opts.push(format!("MSTYPE = {y}"));
            }
            let ms: i32 = r.get("aggmtransspace");
            if ms != 0 {
                opts.push(format!("MSSPACE = {ms}"));
            }
            if let Some(y) = os(&r, "aggmfinalfn") {
                opts.push(format!("MFINALFUNC = {y}"));
                if b(&r, "aggmfinalextra") {
                    opts.push("MFINALFUNC_EXTRA".into());
                }
            }
            opts.push(format!("MFINALFUNC_MODIFY = {}", modify(&s(&r, "mfmod"))));
            if let Some(y) = os(&r, "aggminitval") {
                opts.push(format!("MINITCOND = {}", literal(&y)));
            }
        }
        if let Some(x) = os(&r, "sortop") {
            opts.push(format!("SORTOP = {x}"));
        }
        match s(&r, "parallel").as_str() {
            "s" => opts.push("PARALLEL = SAFE".into()),
            "r" => opts.push("PARALLEL = RESTRICTED".into()),
            _ => {}
        }
        if s(&r, "aggkind") == "h" {
            opts.push("HYPOTHETICAL".into());
        }
        let on = format!("AGGREGATE {sig}");
        let id = bld.add(
            Some((PG_PROC, oid)),
            New {
                kind: ObjectKind::Aggregate,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("aggregate {sig}"),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create: format!(
                    "CREATE AGGREGATE {}({full}) ({});",
                    qualify(&schema, &name),
                    opts.join(", ")
                ),
                drop: Some(format!("DROP AGGREGATE {sig};")),
            },
        );
        let o = bld.obj(id);
        o.owner_sql.push(owner_to(&on, &owner));
        o.acl_sql = acl_statements(
            &format!("FUNCTION {sig}"),
            Some(&owner),
            &parse_acl(os(&r, "acl").as_deref()),
        );
        bld.target((PG_PROC, oid), id, on);
    }
    Ok(())
}

async fn read_operators(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let opref = |c: &str| {
        format!(
            "CASE WHEN o.{c} <> 0 THEN (SELECT 'OPERATOR(' || pg_catalog.quote_ident(n2.nspname) || '.' || o2.oprname || ')' \
             FROM pg_catalog.pg_operator o2 JOIN pg_catalog.pg_namespace n2 ON n2.oid = o2.oprnamespace \
             WHERE o2.oid = o.{c}) END AS {c}"
        )
    };
    let sql = format!(
        "SELECT o.oid, n.nspname::text AS schema, o.oprname::text AS name, \
         pg_catalog.pg_get_userbyid(o.oprowner)::text AS owner, \
         o.oprcode::pg_catalog.regproc::text AS code, \
         CASE WHEN o.oprleft <> 0 THEN pg_catalog.format_type(o.oprleft, NULL) END AS lt, \
         CASE WHEN o.oprright <> 0 THEN pg_catalog.format_type(o.oprright, NULL) END AS rt, \
         {}, {}, \
         CASE WHEN o.oprrest <> 0 THEN o.oprrest::pg_catalog.regproc::text END AS rest, \
         CASE WHEN o.oprjoin <> 0 THEN o.oprjoin::pg_catalog.regproc::text END AS joinsel, \
         o.oprcanmerge, o.oprcanhash, o.oprcode <> 0 AS defined \
         FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_namespace n ON n.oid = o.oprnamespace \
         WHERE {USER_NS} ORDER BY 2, 3",
        opref("oprcom"),
        opref("oprnegate")
    );
    for r in q(client, "operators", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_OPERATOR, oid) || !b(&r, "defined") {
            continue;
        }
        let (schema, name, owner) = (s(&r, "schema"), s(&r, "name"), s(&r, "owner"));
        let lt = os(&r, "lt");
        let rt = os(&r, "rt");
        let qn = format!("{}.{name}", ident(&schema));
        let sig = format!(
            "{qn} ({}, {})",
            lt.clone().unwrap_or_else(|| "NONE".into()),
            rt.clone().unwrap_or_else(|| "NONE".into())
        );
        let mut opts = vec![format!("FUNCTION = {}", s(&r, "code"))];
        if let Some(l) = lt {
            opts.push(format!("LEFTARG = {l}"));
        }
        if let Some(x) = rt {
            opts.push(format!("RIGHTARG = {x}"));
        }
        if let Some(x) = os(&r, "oprcom") {
            opts.push(format!("COMMUTATOR = {x}"));
        }
        if let Some(x) = os(&r, "oprnegate") {
            opts.push(format!("NEGATOR = {x}"));
        }
        if let Some(x) = os(&r, "rest") {
            opts.push(format!("RESTRICT = {x}"));
        }
        if let Some(x) = os(&r, "joinsel") {
            opts.push(format!("JOIN = {x}"));
        }
        if b(&r, "oprcanmerge") {
            opts.push("MERGES".into());
        }
        if b(&r, "oprcanhash") {
            opts.push("HASHES".into());
        }
        let on = format!("OPERATOR {sig}");
        let id = bld.add(
            Some((PG_OPERATOR, oid)),
            New {
                kind: ObjectKind::Operator,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("operator {sig}"),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create: format!("CREATE OPERATOR {qn} ({});", opts.join(", ")),
                drop: Some(format!("DROP OPERATOR {sig};")),
            },
        );
        bld.owned(id, (PG_OPERATOR, oid), on, &owner);
    }
    Ok(())
}

async fn read_opfamilies(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    // Members of operator classes (internal dependency on the class) and
    // loose members of families (auto dependency on the family).
    let ops = q(
        client,
        "operator family members",
        "SELECT d.refclassid, d.refobjid, 2602::pg_catalog.oid AS class, ao.oid, ao.amopstrategy::int4 AS num, \
         'OPERATOR ' || ao.amopstrategy || ' ' || pg_catalog.quote_ident(opn.nspname) || '.' || o.oprname || \
         '(' || pg_catalog.format_type(ao.amoplefttype, NULL) || ', ' || pg_catalog.format_type(ao.amoprighttype, NULL) || ')' || \
         CASE WHEN ao.amoppurpose = 'o' THEN ' FOR ORDER BY ' || (SELECT pg_catalog.quote_ident(sn.nspname) || '.' || \
           pg_catalog.quote_ident(sf.opfname) FROM pg_catalog.pg_opfamily sf JOIN pg_catalog.pg_namespace sn \
           ON sn.oid = sf.opfnamespace WHERE sf.oid = ao.amopsortfamily) ELSE '' END AS item \
         FROM pg_catalog.pg_amop ao JOIN pg_catalog.pg_operator o ON o.oid = ao.amopopr \
         JOIN pg_catalog.pg_namespace opn ON opn.oid = o.oprnamespace \
         JOIN pg_catalog.pg_depend d ON d.classid = 2602 AND d.objid = ao.oid \
           AND d.refclassid IN (2616, 2753) AND d.deptype IN ('i', 'a') \
         WHERE ao.oid >= 16384 \
         UNION ALL \
         SELECT d.refclassid, d.refobjid, 2603, ap.oid, 1000 + ap.amprocnum, \
         'FUNCTION ' || ap.amprocnum || ' (' || pg_catalog.format_type(ap.amproclefttype, NULL) || ', ' || \
         pg_catalog.format_type(ap.amprocrighttype, NULL) || ') ' || ap.amproc::pg_catalog.regprocedure::text \
         FROM pg_catalog.pg_amproc ap \
         JOIN pg_catalog.pg_depend d ON d.classid = 2603 AND d.objid = ap.oid \
           AND d.refclassid IN (2616, 2753) AND d.deptype IN ('i', 'a') \
         WHERE ap.oid >= 16384 ORDER BY 1, 2, 5, 6",
    )
    .await?;
    let mut members: HashMap<Key, Vec<(Key, String)>> = HashMap::new();
    for r in &ops {
        members
            .entry((u(r, "refclassid"), u(r, "refobjid")))
            .or_default()
            .push(((u(r, "class"), u(r, "oid")), s(r, "item")));
    }
    let sql = format!(
        "SELECT f.oid, n.nspname::text AS schema, f.opfname::text AS name, \
         pg_catalog.pg_get_userbyid(f.opfowner)::text AS owner, am.amname::text AS am \
         FROM pg_catalog.pg_opfamily f JOIN pg_catalog.pg_namespace n ON n.oid = f.opfnamespace \
         JOIN pg_catalog.pg_am am ON am.oid = f.opfmethod WHERE {USER_NS} ORDER BY 2, 3"
    );
    for r in q(client, "operator families", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_OPFAMILY, oid) {
            continue;
        }
        let (schema, name, am) = (s(&r, "schema"), s(&r, "name"), s(&r, "am"));
        let qn = format!("{} USING {}", qualify(&schema, &name), ident(&am));
        let mut create = format!("CREATE OPERATOR FAMILY {qn};");
        let loose = members.remove(&(PG_OPFAMILY, oid)).unwrap_or_default();
        if !loose.is_empty() {
            let items: Vec<&str> = loose.iter().map(|(_, i)| i.as_str()).collect();
            create.push_str(&format!(
                "\nALTER OPERATOR FAMILY {qn} ADD\n    {};",
                items.join(",\n    ")
            ));
        }
        let id = add_simple(
            bld,
            (PG_OPFAMILY, oid),
            ObjectKind::OperatorFamily,
            "OPERATOR FAMILY",
            Some(schema),
            name,
            qn,
            Some(s(&r, "owner")),
            create,
        );
        for (k, _) in loose {
            bld.keys.insert(k, id);
        }
    }
    let sql = format!(
        "SELECT c.oid, n.nspname::text AS schema, c.opcname::text AS name, \
         pg_catalog.pg_get_userbyid(c.opcowner)::text AS owner, am.amname::text AS am, c.opcdefault, \
         pg_catalog.format_type(c.opcintype, NULL) AS intype, \
         CASE WHEN c.opckeytype <> 0 THEN pg_catalog.format_type(c.opckeytype, NULL) END AS keytype, \
         (SELECT pg_catalog.quote_ident(fn.nspname) || '.' || pg_catalog.quote_ident(f.opfname) \
            FROM pg_catalog.pg_opfamily f JOIN pg_catalog.pg_namespace fn ON fn.oid = f.opfnamespace \
            WHERE f.oid = c.opcfamily) AS family \
         FROM pg_catalog.pg_opclass c JOIN pg_catalog.pg_namespace n ON n.oid = c.opcnamespace \
         JOIN pg_catalog.pg_am am ON am.oid = c.opcmethod WHERE {USER_NS} ORDER BY 2, 3"
    );
    for r in q(client, "operator classes", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_OPCLASS, oid) {
            continue;
        }
        let (schema, name, am) = (s(&r, "schema"), s(&r, "name"), s(&r, "am"));
        let qn = format!("{} USING {}", qualify(&schema, &name), ident(&am));
        let mine = members.remove(&(PG_OPCLASS, oid)).unwrap_or_default();
        let mut items: Vec<String> = mine.iter().map(|(_, i)| i.clone()).collect();
        if let Some(k) = os(&r, "keytype") {
            items.push(format!("STORAGE {k}"));
        }
        let create = format!(
            "CREATE OPERATOR CLASS {}{} FOR TYPE {} USING {} FAMILY {} AS\n    {};",
            qualify(&schema, &name),
            if b(&r, "opcdefault") { " DEFAULT" } else { "" },
            s(&r, "intype"),
            ident(&am),
            os(&r, "family").unwrap_or_default(),
            items.join(",\n    ")
        );
        let id = add_simple(
            bld,
            (PG_OPCLASS, oid),
            ObjectKind::OperatorClass,
            "OPERATOR CLASS",
            Some(schema),
            name,
            qn,
            Some(s(&r, "owner")),
            create,
        );
        for (k, _) in mine {
            bld.keys.insert(k, id);
        }
    }
    Ok(())
}

async fn read_casts(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    // Casts are not in a schema: dump those whose source or target type,
    // or function, is a user object (as pg_dump does).
    let sql = "SELECT c.oid, pg_catalog.format_type(c.castsource, NULL) AS src, \
         pg_catalog.format_type(c.casttarget, NULL) AS dst, c.castmethod::text AS method, \
         c.castcontext::text AS context, \
         CASE WHEN c.castfunc <> 0 THEN c.castfunc::pg_catalog.regprocedure::text END AS func \
         FROM pg_catalog.pg_cast c WHERE c.oid >= 16384 ORDER BY 2, 3";
    for r in q(client, "casts", sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_CAST, oid) {
            continue;
        }
        let (src, dst) = (s(&r, "src"), s(&r, "dst"));
        let how = match s(&r, "method").as_str() {
            "f" => format!("WITH FUNCTION {}", os(&r, "func").unwrap_or_default()),
            "i" => "WITH INOUT".into(),
            _ => "WITHOUT FUNCTION".into(),
        };
        let ctx = match s(&r, "context").as_str() {
            "a" => " AS ASSIGNMENT",
            "i" => " AS IMPLICIT",
            _ => "",
        };
        let on = format!("CAST ({src} AS {dst})");
        let id = bld.add(
            Some((PG_CAST, oid)),
            New {
                kind: ObjectKind::Cast,
                schema: None,
                name: format!("{src} AS {dst}"),
                identity: format!("cast ({src} AS {dst})"),
                owner: None,
                section: Section::PreData,
                create: format!("CREATE CAST ({src} AS {dst}) {how}{ctx};"),
                drop: Some(format!("DROP CAST ({src} AS {dst});")),
            },
        );
        bld.target((PG_CAST, oid), id, on);
    }
    Ok(())
}

/// Add a schema-qualified object with owner (optional) and COMMENT target.
#[allow(clippy::too_many_arguments)]
fn add_simple(
    bld: &mut Builder,
    key: Key,
    kind: ObjectKind,
    keyword: &str,
    schema: Option<String>,
    name: String,
    qn: String,
    owner: Option<String>,
    create: String,
) -> u32 {
    let on = format!("{keyword} {qn}");
    let id = bld.add(
        Some(key),
        New {
            kind,
            schema,
            name,
            identity: format!("{} {qn}", keyword.to_lowercase()),
            owner: owner.clone(),
            section: Section::PreData,
            create,
            drop: Some(format!("DROP {keyword} {qn};")),
        },
    );
    if let Some(o) = owner {
        bld.obj(id).owner_sql.push(owner_to(&on, &o));
    }
    bld.target(key, id, on);
    id
}

async fn read_access_methods(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = "SELECT a.oid, a.amname::text AS name, a.amtype::text AS typ, \
         a.amhandler::pg_catalog.regproc::text AS handler FROM pg_catalog.pg_am a \
         WHERE a.oid >= 16384 ORDER BY 2";
    for r in q(client, "access methods", sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_AM, oid) {
            continue;
        }
        let name = s(&r, "name");
        let typ = if s(&r, "typ") == "t" {
            "TABLE"
        } else {
            "INDEX"
        };
        let create = format!(
            "CREATE ACCESS METHOD {} TYPE {typ} HANDLER {};",
            ident(&name),
            s(&r, "handler")
        );
        add_simple(
            bld,
            (PG_AM, oid),
            ObjectKind::AccessMethod,
            "ACCESS METHOD",
            None,
            name.clone(),
            ident(&name),
            None,
            create,
        );
    }
    Ok(())
}

async fn read_transforms(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = "SELECT t.oid, pg_catalog.format_type(t.trftype, NULL) AS typ, l.lanname::text AS lang, \
         CASE WHEN t.trffromsql <> 0 THEN t.trffromsql::pg_catalog.regprocedure::text END AS fromsql, \
         CASE WHEN t.trftosql <> 0 THEN t.trftosql::pg_catalog.regprocedure::text END AS tosql \
         FROM pg_catalog.pg_transform t JOIN pg_catalog.pg_language l ON l.oid = t.trflang \
         WHERE t.oid >= 16384 ORDER BY 2, 3";
    for r in q(client, "transforms", sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_TRANSFORM, oid) {
            continue;
        }
        let (typ, lang) = (s(&r, "typ"), s(&r, "lang"));
        let mut parts = Vec::new();
        if let Some(f) = os(&r, "fromsql") {
            parts.push(format!("FROM SQL WITH FUNCTION {f}"));
        }
        if let Some(f) = os(&r, "tosql") {
            parts.push(format!("TO SQL WITH FUNCTION {f}"));
        }
        let qn = format!("FOR {typ} LANGUAGE {}", ident(&lang));
        let id = bld.add(
            Some((PG_TRANSFORM, oid)),
            New {
                kind: ObjectKind::Transform,
                schema: None,
                name: format!("{typ} {lang}"),
                identity: format!("transform {qn}"),
                owner: None,
                section: Section::PreData,
                create: format!("CREATE TRANSFORM {qn} ({});", parts.join(", ")),
                drop: Some(format!("DROP TRANSFORM {qn};")),
            },
        );
        bld.target((PG_TRANSFORM, oid), id, format!("TRANSFORM {qn}"));
    }
    Ok(())
}

async fn read_text_search(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let rp = |c: &str| format!("{c}::pg_catalog.regproc::text AS {c}");
    let sql = format!(
        "SELECT p.oid, n.nspname::text AS schema, p.prsname::text AS name, {}, {}, {}, {}, \
         CASE WHEN p.prsheadline <> 0 THEN p.prsheadline::pg_catalog.regproc::text END AS prsheadline \
         FROM pg_catalog.pg_ts_parser p JOIN pg_catalog.pg_namespace n ON n.oid = p.prsnamespace \
         WHERE {USER_NS} ORDER BY 2, 3",
        rp("p.prsstart").replace("AS p.", "AS "),
        rp("p.prstoken").replace("AS p.", "AS "),
        rp("p.prsend").replace("AS p.", "AS "),
        rp("p.prslextype").replace("AS p.", "AS "),
    );
    for r in q(client, "text search parsers", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_TS_PARSER, oid) {
            continue;
        }
        let (schema, name) = (s(&r, "schema"), s(&r, "name"));
        let qn = qualify(&schema, &name);
        let mut opts = vec![
            format!("START = {}", s(&r, "prsstart")),
            format!("GETTOKEN = {}", s(&r, "prstoken")),
            format!("END = {}", s(&r, "prsend")),
            format!("LEXTYPES = {}", s(&r, "prslextype")),
        ];
        if let Some(h) = os(&r, "prsheadline") {
            opts.push(format!("HEADLINE = {h}"));
        }
        let create = format!("CREATE TEXT SEARCH PARSER {qn} ({});", opts.join(", "));
        add_simple(
            bld,
            (PG_TS_PARSER, oid),
            ObjectKind::TextSearchParser,
            "TEXT SEARCH PARSER",
            Some(schema),
            name,
            qn,
            None,
            create,
        );
    }
    let sql = format!(
        "SELECT t.oid, n.nspname::text AS schema, t.tmplname::text AS name, \
         CASE WHEN t.tmplinit <> 0 THEN t.tmplinit::pg_catalog.regproc::text END AS init, \
         t.tmpllexize::pg_catalog.regproc::text AS lexize \
         FROM pg_catalog.pg_ts_template t JOIN pg_catalog.pg_namespace n ON n.oid = t.tmplnamespace \
         WHERE {USER_NS} ORDER BY 2, 3"
    );
    for r in q(client, "text search templates", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_TS_TEMPLATE, oid) {
            continue;
        }
        let (schema, name) = (s(&r, "schema"), s(&r, "name"));
        let qn = qualify(&schema, &name);
        let mut opts = Vec::new();
        if let Some(i) = os(&r, "init") {
            opts.push(format!("INIT = {i}"));
        }
        opts.push(format!("LEXIZE = {}", s(&r, "lexize")));
        let create = format!("CREATE TEXT SEARCH TEMPLATE {qn} ({});", opts.join(", "));
        add_simple(
            bld,
            (PG_TS_TEMPLATE, oid),
            ObjectKind::TextSearchTemplate,
            "TEXT SEARCH TEMPLATE",
            Some(schema),
            name,
            qn,
            None,
            create,
        );
    }
    let sql = format!(
        "SELECT d.oid, n.nspname::text AS schema, d.dictname::text AS name, \
         pg_catalog.pg_get_userbyid(d.dictowner)::text AS owner, d.dictinitoption AS init, \
         (SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.tmplname) \
            FROM pg_catalog.pg_ts_template t JOIN pg_catalog.pg_namespace tn ON tn.oid = t.tmplnamespace \
            WHERE t.oid = d.dicttemplate) AS template \
         FROM pg_catalog.pg_ts_dict d JOIN pg_catalog.pg_namespace n ON n.oid = d.dictnamespace \
         WHERE {USER_NS} ORDER BY 2, 3"
    );
    for r in q(client, "text search dictionaries", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_TS_DICT, oid) {
            continue;
        }
        let (schema, name) = (s(&r, "schema"), s(&r, "name"));
        let qn = qualify(&schema, &name);
        let mut create = format!(
            "CREATE TEXT SEARCH DICTIONARY {qn} (TEMPLATE = {}",
            s(&r, "template")
        );
        if let Some(i) = os(&r, "init") {
            create.push_str(&format!(", {i}"));
        }
        create.push_str(");");
        add_simple(
            bld,
            (PG_TS_DICT, oid),
            ObjectKind::TextSearchDictionary,
            "TEXT SEARCH DICTIONARY",
            Some(schema),
            name,
            qn,
            Some(s(&r, "owner")),
            create,
        );
    }
    let sql = format!(
        "SELECT c.oid, n.nspname::text AS schema, c.cfgname::text AS name, \
         pg_catalog.pg_get_userbyid(c.cfgowner)::text AS owner, \
         (SELECT pg_catalog.quote_ident(pn.nspname) || '.' || pg_catalog.quote_ident(p.prsname) \
            FROM pg_catalog.pg_ts_parser p JOIN pg_catalog.pg_namespace pn ON pn.oid = p.prsnamespace \
            WHERE p.oid = c.cfgparser) AS parser, \
         (SELECT pg_catalog.array_agg(x.line ORDER BY x.tok) FROM ( \
            SELECT m.maptokentype AS tok, 'ADD MAPPING FOR ' || pg_catalog.quote_ident(tt.alias) || ' WITH ' || \
              pg_catalog.string_agg(pg_catalog.quote_ident(dn.nspname) || '.' || pg_catalog.quote_ident(d.dictname), ', ' \
                ORDER BY m.mapseqno) AS line \
            FROM pg_catalog.pg_ts_config_map m \
            JOIN pg_catalog.ts_token_type(c.cfgparser) tt ON tt.tokid = m.maptokentype \
            JOIN pg_catalog.pg_ts_dict d ON d.oid = m.mapdict \
            JOIN pg_catalog.pg_namespace dn ON dn.oid = d.dictnamespace \
            WHERE m.mapcfg = c.oid GROUP BY m.maptokentype, tt.alias) x) AS mappings \
         FROM pg_catalog.pg_ts_config c JOIN pg_catalog.pg_namespace n ON n.oid = c.cfgnamespace \
         WHERE {USER_NS} ORDER BY 2, 3"
    );
    for r in q(client, "text search configurations", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_TS_CONFIG, oid) {
            continue;
        }
        let (schema, name) = (s(&r, "schema"), s(&r, "name"));
        let qn = qualify(&schema, &name);
        let mut create = format!(
            "CREATE TEXT SEARCH CONFIGURATION {qn} (PARSER = {});",
            s(&r, "parser")
        );
        for m in arr(&r, "mappings") {
            create.push_str(&format!("\nALTER TEXT SEARCH CONFIGURATION {qn} {m};"));
        }
        add_simple(
            bld,
            (PG_TS_CONFIG, oid),
            ObjectKind::TextSearchConfiguration,
            "TEXT SEARCH CONFIGURATION",
            Some(schema),
            name,
            qn,
            Some(s(&r, "owner")),
            create,
        );
    }
    Ok(())
}

async fn read_fdw(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT w.oid, w.fdwname::text AS name, pg_catalog.pg_get_userbyid(w.fdwowner)::text AS owner, \
         CASE WHEN w.fdwhandler <> 0 THEN w.fdwhandler::pg_catalog.regproc::text END AS handler, \
         CASE WHEN w.fdwvalidator <> 0 THEN w.fdwvalidator::pg_catalog.regproc::text END AS validator, \
         w.fdwoptions AS options, {} AS acl FROM pg_catalog.pg_foreign_data_wrapper w ORDER BY 2",
        acl_json_sql("w.fdwacl")
    );
    for r in q(client, "foreign data wrappers", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_FDW, oid) {
            continue;
        }
        let (name, owner) = (s(&r, "name"), s(&r, "owner"));
        let qn = ident(&name);
        let mut create = format!("CREATE FOREIGN DATA WRAPPER {qn}");
        match os(&r, "handler") {
            Some(h) => create.push_str(&format!(" HANDLER {h}")),
            None => create.push_str(" NO HANDLER"),
        }
        match os(&r, "validator") {
            Some(v) => create.push_str(&format!(" VALIDATOR {v}")),
            None => create.push_str(" NO VALIDATOR"),
        }
        let o = arr(&r, "options");
        if !o.is_empty() {
            create.push_str(&format!(" {}", fdw_options(&o)));
        }
        create.push(';');
        let id = add_simple(
            bld,
            (PG_FDW, oid),
            ObjectKind::ForeignDataWrapper,
            "FOREIGN DATA WRAPPER",
            None,
            name,
            qn.clone(),
            Some(owner.clone()),
            create,
        );
        bld.obj(id).acl_sql = acl_statements(
            &format!("FOREIGN DATA WRAPPER {qn}"),
            Some(&owner),
            &parse_acl(os(&r, "acl").as_deref()),
        );
    }
    let sql = format!(
        "SELECT s.oid, s.srvname::text AS name, pg_catalog.pg_get_userbyid(s.srvowner)::text AS owner, \
         s.srvfdw, (SELECT w.fdwname::text FROM pg_catalog.pg_foreign_data_wrapper w WHERE w.oid = s.srvfdw) AS fdw, \
         s.srvtype AS typ, s.srvversion AS version, s.srvoptions AS options, {} AS acl \
         FROM pg_catalog.pg_foreign_server s ORDER BY 2",
        acl_json_sql("s.srvacl")
    );
    for r in q(client, "foreign servers", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_FOREIGN_SERVER, oid) {
            continue;
        }
        let (name, owner) = (s(&r, "name"), s(&r, "owner"));
        let qn = ident(&name);
        let mut create = format!("CREATE SERVER {qn}");
        if let Some(t) = os(&r, "typ") {
            create.push_str(&format!(" TYPE {}", literal(&t)));
        }
        if let Some(v) = os(&r, "version") {
            create.push_str(&format!(" VERSION {}", literal(&v)));
        }
        create.push_str(&format!(" FOREIGN DATA WRAPPER {}", ident(&s(&r, "fdw"))));
        let o = arr(&r, "options");
        if !o.is_empty() {
            create.push_str(&format!(" {}", fdw_options(&o)));
        }
        create.push(';');
        let id = add_simple(
            bld,
            (PG_FOREIGN_SERVER, oid),
            ObjectKind::ForeignServer,
            "SERVER",
            None,
            name,
            qn.clone(),
            Some(owner.clone()),
            create,
        );
        bld.obj(id).acl_sql = acl_statements(
            &format!("FOREIGN SERVER {qn}"),
            Some(&owner),
            &parse_acl(os(&r, "acl").as_deref()),
        );
    }
    for r in q(
        client,
        "user mappings",
        // `hidden`: pg_user_mappings shows a mapping's options only to a
        // superuser, to the mapped role itself, and for PUBLIC to members
        // of the server's owner (its own definition, negated).
        "SELECT m.umid, m.srvid, m.srvname::text AS server, \
         CASE WHEN m.umuser = 0 THEN NULL ELSE m.usename::text END AS role, m.umoptions AS options, \
         NOT ((m.umuser <> 0 AND m.usename = current_user \
               AND (pg_catalog.pg_has_role(fs.srvowner, 'USAGE') \
                    OR pg_catalog.has_server_privilege(m.srvid, 'USAGE'))) \
              OR (m.umuser = 0 AND pg_catalog.pg_has_role(fs.srvowner, 'USAGE')) \
              OR (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)) AS hidden \
         FROM pg_catalog.pg_user_mappings m \
         JOIN pg_catalog.pg_foreign_server fs ON fs.oid = m.srvid ORDER BY 3, 4 NULLS FIRST",
    )
    .await?
    {
        let server = s(&r, "server");
        let role = os(&r, "role");
        if b(&r, "hidden") {
            // Not an error: the mapping itself is kept, and a password in
            // its options is what a backup role is not shown on purpose.
            tracing::warn!(
                "the options of user mapping for {} server {} are hidden from this role (only \
                 a superuser, the mapped role, or for PUBLIC's the server's owner sees them): it \
                 is backed up without them",
                super::ddl::role(role.as_deref()),
                ident(&server)
            );
        }
        let who = super::ddl::role(role.as_deref());
        let mut create = format!("CREATE USER MAPPING FOR {who} SERVER {}", ident(&server));
        let o = arr(&r, "options");
        if !o.is_empty() {
            create.push_str(&format!(" {}", fdw_options(&o)));
        }
        create.push(';');
        let id = bld.add(
            Some((PG_USER_MAPPING, u(&r, "umid"))),
            New {
                kind: ObjectKind::UserMapping,
                schema: None,
                name: format!(
                    "{} {server}",
                    role.clone().unwrap_or_else(|| "PUBLIC".into())
                ),
                identity: format!("user mapping for {who} server {}", ident(&server)),
                owner: None,
                section: Section::PreData,
                create,
                drop: Some(format!(
                    "DROP USER MAPPING FOR {who} SERVER {};",
                    ident(&server)
                )),
            },
        );
        bld.dep_on(id, (PG_FOREIGN_SERVER, u(&r, "srvid")));
    }
    Ok(())
}

fn seq_options(r: &Row, with_type: bool) -> String {
    let typ = if with_type {
        format!("AS {} ", s(r, "typ"))
    } else {
        String::new()
    };
    format!(
        "{typ}START WITH {} INCREMENT BY {} MINVALUE {} MAXVALUE {} CACHE {}{}",
        r.get::<_, i64>("seqstart"),
        r.get::<_, i64>("seqincrement"),
        r.get::<_, i64>("seqmin"),
        r.get::<_, i64>("seqmax"),
        r.get::<_, i64>("seqcache"),
        if b(r, "seqcycle") {
            " CYCLE"
        } else {
            " NO CYCLE"
        }
    )
}

/// Identity sequences, by (table oid, attnum): (sequence oid, qualified
/// name, options).
type IdentitySeqs = HashMap<(u32, i16), (u32, String, String)>;

async fn read_sequences(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, \
         pg_catalog.pg_get_userbyid(c.relowner)::text AS owner, {} AS acl, \
         c.relpersistence::text AS persistence, pg_catalog.format_type(s.seqtypid, NULL) AS typ, \
         s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle, \
         (SELECT d.refobjid FROM pg_catalog.pg_depend d WHERE d.classid = 1259 AND d.objid = c.oid \
            AND d.refclassid = 1259 AND d.deptype = 'i' LIMIT 1) AS identity_rel, \
         (SELECT d.refobjsubid FROM pg_catalog.pg_depend d WHERE d.classid = 1259 AND d.objid = c.oid \
            AND d.refclassid = 1259 AND d.deptype = 'i' LIMIT 1)::int2 AS identity_col, \
         (SELECT d.refobjid FROM pg_catalog.pg_depend d WHERE d.classid = 1259 AND d.objid = c.oid \
            AND d.refclassid = 1259 AND d.deptype = 'a' AND d.refobjsubid > 0 LIMIT 1) AS owned_rel, \
         (SELECT pg_catalog.quote_ident(tn.nspname) || '.' || pg_catalog.quote_ident(t.relname) || '.' || \
                 pg_catalog.quote_ident(a.attname) \
            FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_class t ON t.oid = d.refobjid \
            JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace \
            JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
            WHERE d.classid = 1259 AND d.objid = c.oid AND d.refclassid = 1259 AND d.deptype = 'a' \
              AND d.refobjsubid > 0 LIMIT 1) AS owned_by \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_sequence s ON s.seqrelid = c.oid \
         WHERE c.relkind = 'S' AND {USER_NS} ORDER BY 2, 3",
        acl_json_sql("c.relacl")
    );
    let mut identity: IdentitySeqs = HashMap::new();
    for r in q(client, "sequences", &sql).await? {
        let oid = u(&r, "oid");
        if is_member(bld, PG_CLASS, oid) {
            continue;
        }
        let (schema, name, owner) = (s(&r, "schema"), s(&r, "name"), s(&r, "owner"));
        let qn = qualify(&schema, &name);
        if let Some(rel) = r.get::<_, Option<u32>>("identity_rel") {
            let col: i16 = r.get::<_, Option<i16>>("identity_col").unwrap_or(0);
            identity.insert((rel, col), (oid, qn.clone(), seq_options(&r, false)));
            // Its privileges go with the table (the owner is the table's).
            let acl = parse_acl(os(&r, "acl").as_deref());
            bld.identity_acl.insert(
                oid,
                acl_statements(&format!("SEQUENCE {qn}"), Some(&owner), &acl),
            );
            bld.sequences.push(SequenceInfo {
                object_id: u32::MAX, // fixed up when the table is read
                schema,
                name,
            });
            continue;
        }
        let unlogged = s(&r, "persistence") == "u";
        let on = format!("SEQUENCE {qn}");
        let id = bld.add(
            Some((PG_CLASS, oid)),
            New {
                kind: ObjectKind::Sequence,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("sequence {qn}"),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create: format!(
                    "CREATE {}SEQUENCE {qn} {};",
                    if unlogged { "UNLOGGED " } else { "" },
                    seq_options(&r, true)
                ),
                drop: Some(format!("DROP SEQUENCE {qn};")),
            },
        );
        bld.owned_with_acl(id, (PG_CLASS, oid), on, &owner, os(&r, "acl").as_deref());
        bld.sequences.push(SequenceInfo {
            object_id: id,
            schema: schema.clone(),
            name: name.clone(),
        });
        if let (Some(rel), Some(by)) = (r.get::<_, Option<u32>>("owned_rel"), os(&r, "owned_by")) {
            let ob = bld.add(
                None,
                New {
                    kind: ObjectKind::SequenceOwnedBy,
                    schema: Some(schema.clone()),
                    name: name.clone(),
                    identity: format!("sequence {qn} owned by {by}"),
                    owner: None,
                    section: Section::PreData,
                    create: format!("ALTER SEQUENCE {qn} OWNED BY {by};"),
                    drop: None,
                },
            );
            bld.dep_obj(ob, id);
            bld.dep_on(ob, (PG_CLASS, rel));
            bld.pending_belongs.push((ob, (PG_CLASS, rel)));
            // The sequence itself does not wait for the table.
            bld.ignore_edges.insert(((PG_CLASS, oid), (PG_CLASS, rel)));
        }
    }
    bld.identity = identity;
    Ok(())
}

struct Column {
    num: i16,
    name: String,
    typ: String,
    /// `atttypid`.
    typid: u32,
    /// `character(n)` with a length: stored blank-padded (see `pg::unpad`).
    blank_padded: bool,
    notnull: bool,
    default: Option<String>,
    defoid: Option<u32>,
    identity: String,
    generated: String,
    dropped: bool,
    local: bool,
    inhcount: i32,
    collation: Option<String>,
    storage: String,
    typstorage: String,
    compression: String,
    stattarget: i32,
    options: Vec<String>,
    fdwoptions: Vec<String>,
    acl: Option<Vec<AclEntry>>,
}

struct Check {
    oid: u32,
    name: String,
    def: String,
    local: bool,
    inhcount: i32,
    valid: bool,
}

/// A column default that can be split off its table's CREATE TABLE.
struct SplitDefault {
    defoid: u32,
    column: String,
    /// The column definition with and without the DEFAULT clause.
    with: String,
    without: String,
    alter: String,
}

impl Column {
    fn clone_shallow(&self) -> Column {
        Column {
            num: self.num,
            name: self.name.clone(),
            typ: self.typ.clone(),
            typid: self.typid,
            blank_padded: self.blank_padded,
            notnull: self.notnull,
            default: self.default.clone(),
            defoid: self.defoid,
            identity: self.identity.clone(),
            generated: self.generated.clone(),
            dropped: self.dropped,
            local: self.local,
            inhcount: self.inhcount,
            collation: self.collation.clone(),
            storage: self.storage.clone(),
            typstorage: self.typstorage.clone(),
            compression: self.compression.clone(),
            stattarget: self.stattarget,
            options: self.options.clone(),
            fdwoptions: self.fdwoptions.clone(),
            acl: self.acl.clone(),
        }
    }

    /// The column's definition in CREATE TABLE. `identity` holds the
    /// identity sequence's name and options.
    fn definition(&self, identity: Option<&(u32, String, String)>, foreign: bool) -> String {
        let mut d = format!("{} {}", ident(&self.name), self.typ);
        if foreign && !self.fdwoptions.is_empty() {
            d.push(' ');
            d.push_str(&fdw_options(&self.fdwoptions));
        }
        if let Some(c) = &self.collation {
            d.push_str(&format!(" COLLATE {c}"));
        }
        if self.generated == "s" {
            if let Some(e) = &self.default {
                d.push_str(&format!(" GENERATED ALWAYS AS ({e}) STORED"));
            }
        } else if let Some(e) = &self.default {
            d.push_str(&format!(" DEFAULT {e}"));
        }
        if !self.identity.is_empty() {
            let how = if self.identity == "a" {
                "ALWAYS"
            } else {
                "BY DEFAULT"
            };
            match identity {
                Some((_, name, opts)) => d.push_str(&format!(
                    " GENERATED {how} AS IDENTITY (SEQUENCE NAME {name} {opts})"
                )),
                None => d.push_str(&format!(" GENERATED {how} AS IDENTITY")),
            }
        }
        if self.notnull {
            d.push_str(" NOT NULL");
        }
        d
    }
}

fn rel_keyword(relkind: &str) -> &'static str {
    match relkind {
        "v" => "VIEW",
        "m" => "MATERIALIZED VIEW",
        "f" => "FOREIGN TABLE",
        "S" => "SEQUENCE",
        _ => "TABLE",
    }
}

async fn read_relations(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS relkind, \
         c.relpersistence::text AS persistence, pg_catalog.pg_get_userbyid(c.relowner)::text AS owner, \
         {} AS acl, c.reloptions::text[] AS relopts, tc.reloptions::text[] AS toastopts, \
         am.amname::text AS am, c.relispartition AS ispartition, \
         pg_catalog.pg_get_expr(c.relpartbound, c.oid) AS bound, \
         CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END AS partkey, \
         CASE WHEN c.reloftype <> 0 THEN pg_catalog.format_type(c.reloftype, NULL) END AS oftype, \
         c.relrowsecurity AS rls, c.relforcerowsecurity AS forcerls, c.relreplident::text AS replident, \
         c.relpages::int8 AS relpages, c.reltuples::float8 AS reltuples, \
         COALESCE(pg_catalog.pg_relation_size(c.oid), 0) AS size, c.relispopulated AS populated, \
         CASE WHEN c.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(c.oid) END AS viewdef, \
         (SELECT fs.srvname::text FROM pg_catalog.pg_foreign_table ft \
            JOIN pg_catalog.pg_foreign_server fs ON fs.oid = ft.ftserver WHERE ft.ftrelid = c.oid) AS server, \
         (SELECT ft.ftoptions::text[] FROM pg_catalog.pg_foreign_table ft WHERE ft.ftrelid = c.oid) AS ftoptions, \
         (SELECT sp.spcname::text FROM pg_catalog.pg_tablespace sp WHERE sp.oid = c.reltablespace) AS tablespace \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid \
         LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_NS} ORDER BY 2, 3",
        acl_json_sql("c.relacl")
    );
    let rels = q(client, "relations", &sql).await?;
    let colsql = format!(
        "SELECT a.attrelid, a.attnum, a.attname::text AS name, \
         pg_catalog.format_type(a.atttypid, a.atttypmod) AS typ, a.attnotnull, \
         a.atttypid, (a.atttypid = 'pg_catalog.bpchar'::pg_catalog.regtype AND a.atttypmod > 4) AS blank_padded, \
         pg_catalog.pg_get_expr(d.adbin, d.adrelid) AS def, d.oid AS defoid, \
         a.attidentity::text AS identity, a.attgenerated::text AS generated, a.attisdropped, \
         a.attislocal, a.attinhcount, \
         CASE WHEN a.attcollation <> t.typcollation THEN \
           (SELECT pg_catalog.quote_ident(cn.nspname) || '.' || pg_catalog.quote_ident(co.collname) \
            FROM pg_catalog.pg_collation co JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace \
            WHERE co.oid = a.attcollation) END AS collation, \
         a.attstorage::text AS storage, t.typstorage::text AS typstorage, \
         a.attcompression::text AS compression, COALESCE(a.attstattarget::int4, -1) AS stattarget, \
         a.attoptions::text[] AS options, a.attfdwoptions::text[] AS fdwoptions, {} AS acl \
         FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         WHERE a.attnum > 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {USER_NS} \
         ORDER BY a.attrelid, a.attnum",
        acl_json_sql("a.attacl")
    );
    let mut cols: HashMap<u32, Vec<Column>> = HashMap::new();
    for r in q(client, "columns", &colsql).await? {
        cols.entry(u(&r, "attrelid")).or_default().push(Column {
            num: r.get("attnum"),
            name: s(&r, "name"),
            typ: os(&r, "typ").unwrap_or_default(),
            typid: u(&r, "atttypid"),
            blank_padded: b(&r, "blank_padded"),
            notnull: b(&r, "attnotnull"),
            default: os(&r, "def"),
            defoid: r.get("defoid"),
            identity: s(&r, "identity"),
            generated: s(&r, "generated"),
            dropped: b(&r, "attisdropped"),
            local: b(&r, "attislocal"),
            inhcount: r.get("attinhcount"),
            collation: os(&r, "collation"),
            storage: s(&r, "storage"),
            typstorage: os(&r, "typstorage").unwrap_or_default(),
            compression: s(&r, "compression"),
            stattarget: r.get("stattarget"),
            options: arr(&r, "options"),
            fdwoptions: arr(&r, "fdwoptions"),
            acl: parse_acl(os(&r, "acl").as_deref()),
        });
    }
    let mut checks: HashMap<u32, Vec<Check>> = HashMap::new();
    for r in q(
        client,
        "check constraints",
        "SELECT c.oid, c.conrelid, c.conname::text AS name, pg_catalog.pg_get_constraintdef(c.oid) AS def, \
         c.conislocal, c.coninhcount, c.convalidated FROM pg_catalog.pg_constraint c \
         WHERE c.contype = 'c' AND c.conrelid <> 0 ORDER BY c.conrelid, c.conname",
    )
    .await?
    {
        checks.entry(u(&r, "conrelid")).or_default().push(Check {
            oid: u(&r, "oid"),
            name: s(&r, "name"),
            def: s(&r, "def"),
            local: b(&r, "conislocal"),
            inhcount: r.get("coninhcount"),
            valid: b(&r, "convalidated"),
        });
    }
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for r in q(
        client,
        "inheritance",
        "SELECT i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i \
         JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid WHERE c.relkind IN ('r', 'p', 'f') \
         ORDER BY i.inhrelid, i.inhseqno",
    )
    .await?
    {
        parents
            .entry(u(&r, "inhrelid"))
            .or_default()
            .push(u(&r, "inhparent"));
    }
    let names: HashMap<u32, String> = rels
        .iter()
        .map(|r| (u(r, "oid"), qualify(&s(r, "schema"), &s(r, "name"))))
        .collect();
    let empty_cols: Vec<Column> = Vec::new();
    let empty_checks: Vec<Check> = Vec::new();
    let mut pending_parent: Vec<(usize, u32)> = Vec::new();

    for r in &rels {
        let oid = u(r, "oid");
        if is_member(bld, PG_CLASS, oid) {
            continue;
        }
        let (schema, name, owner) = (s(r, "schema"), s(r, "name"), s(r, "owner"));
        let relkind = s(r, "relkind");
        let qn = qualify(&schema, &name);
        let kw = rel_keyword(&relkind);
        let on = format!("{kw} {qn}");
        let mycols = cols.get(&oid).unwrap_or(&empty_cols);
        let live: Vec<&Column> = mycols.iter().filter(|c| !c.dropped).collect();
        let mychecks = checks.get(&oid).unwrap_or(&empty_checks);
        let myparents = parents.get(&oid).cloned().unwrap_or_default();
        let ispartition = b(r, "ispartition");
        let mut attach: Option<String> = None;
        let mut flag_fixes: Vec<String> = Vec::new();
        let mut create: String;
        let mut kind = ObjectKind::Table;
        let mut after: Vec<String> = Vec::new();
        let mut placeholder: Option<String> = None;
        let mut split_defaults: Vec<SplitDefault> = Vec::new();
        let mut split_checks: Vec<SplitDefault> = Vec::new();
        let alter_only = format!("ALTER {kw} ONLY {qn}");
        match relkind.as_str() {
            "v" | "m" => {
                let def = os(r, "viewdef").unwrap_or_default();
                let def = def.trim_end().trim_end_matches(';');
                let opts = arr(r, "relopts");
                let with = if opts.is_empty() {
                    String::new()
                } else {
                    format!(" WITH {}", options_list(&opts))
                };
                if relkind == "v" {
                    kind = ObjectKind::View;
                    create = format!("CREATE VIEW {qn}{with} AS\n{def};");
                    let cols: Vec<String> = live
                        .iter()
                        .map(|c| {
                            let coll = c
                                .collation
                                .as_ref()
                                .map(|x| format!(" COLLATE {x}"))
                                .unwrap_or_default();
                            format!("NULL::{}{coll} AS {}", c.typ, ident(&c.name))
                        })
                        .collect();
                    placeholder = Some(format!(
                        "CREATE VIEW {qn} AS\n SELECT {};",
                        cols.join(",\n    ")
                    ));
                } else {
                    kind = ObjectKind::MaterializedView;
                    let am = os(r, "am").filter(|a| a != "heap");
                    let using = am
                        .map(|a| format!(" USING {}", ident(&a)))
                        .unwrap_or_default();
                    create = format!(
                        "CREATE MATERIALIZED VIEW {qn}{using}{with} AS\n{def}\n  WITH NO DATA;"
                    );
                }
                for c in &live {
                    if let Some(d) = &c.default {
                        after.push(format!(
                            "ALTER {kw} {qn} ALTER COLUMN {} SET DEFAULT {d};",
                            ident(&c.name)
                        ));
                    }
                }
            }
            _ => {
                let foreign = relkind == "f";
                if foreign {
                    kind = ObjectKind::ForeignTable;
                }
                // How the child gets its parents: INHERITS in CREATE TABLE
                // when its columns are in the order INHERITS produces,
                // otherwise created standalone and attached afterwards.
                let natural = !ispartition
                    && !myparents.is_empty()
                    && inherits_order_matches(&live, &myparents, &cols);
                let inherits_form = natural;
                let mut items: Vec<String> = Vec::new();
                for c in &live {
                    if inherits_form && !c.local {
                        continue;
                    }
                    let idseq = bld.identity.get(&(oid, c.num));
                    let def = c.definition(idseq, foreign);
                    if let (Some(d), Some(defoid), true) =
                        (&c.default, c.defoid, c.generated.is_empty())
                    {
                        let bare = Column {
                            default: None,
                            ..c.clone_shallow()
                        };
                        split_defaults.push(SplitDefault {
                            defoid,
                            with: def.clone(),
                            without: bare.definition(idseq, foreign),
                            alter: format!(
                                "{alter_only} ALTER COLUMN {} SET DEFAULT {d};",
                                ident(&c.name)
                            ),
                            column: c.name.clone(),
                        });
                    }
                    items.push(def);
                }
                for ck in mychecks {
                    if !ck.valid {
                        continue;
                    }
                    if inherits_form && !ck.local {
                        continue;
                    }
                    let item = format!("CONSTRAINT {} {}", ident(&ck.name), ck.def);
                    split_checks.push(SplitDefault {
                        defoid: ck.oid,
                        column: ck.name.clone(),
                        with: item.clone(),
                        without: String::new(),
                        alter: format!(
                            "ALTER {kw} {qn} ADD CONSTRAINT {} {};",
                            ident(&ck.name),
                            ck.def
                        ),
                    });
                    items.push(item);
                }
                let persistence = if s(r, "persistence") == "u" {
                    "UNLOGGED "
                } else {
                    ""
                };
                create = format!(
                    "CREATE {persistence}{kw} {qn} (\n    {}\n)",
                    items.join(",\n    ")
                );
                if items.is_empty() {
                    create = format!("CREATE {persistence}{kw} {qn} (\n)");
                }
                if inherits_form {
                    let p: Vec<String> = myparents
                        .iter()
                        .map(|p| names.get(p).cloned().unwrap_or_default())
                        .collect();
                    create.push_str(&format!("\nINHERITS ({})", p.join(", ")));
                    // Inherited columns take the parents' defaults and NOT
                    // NULL; set them to what the child has.
                    for c in &live {
                        if c.inhcount == 0 || c.generated == "s" {
                            continue;
                        }
                        let pcols: Vec<&Column> = myparents
                            .iter()
                            .filter_map(|p| cols.get(p))
                            .flat_map(|v| v.iter().filter(|pc| !pc.dropped && pc.name == c.name))
                            .collect();
                        let parent_default = pcols.iter().any(|pc| pc.default.is_some());
                        let parent_notnull = pcols.iter().any(|pc| pc.notnull);
                        let col = ident(&c.name);
                        match (&c.default, c.local) {
                            (Some(d), false) => after
                                .push(format!("{alter_only} ALTER COLUMN {col} SET DEFAULT {d};")),
                            (None, _) if parent_default => {
                                after.push(format!("{alter_only} ALTER COLUMN {col} DROP DEFAULT;"))
                            }
                            _ => {}
                        }
                        if !c.local && c.notnull && !parent_notnull {
                            after.push(format!("{alter_only} ALTER COLUMN {col} SET NOT NULL;"));
                        }
                        if !c.notnull && parent_notnull {
                            after.push(format!("{alter_only} ALTER COLUMN {col} DROP NOT NULL;"));
                        }
                    }
                } else if !myparents.is_empty() {
                    let child_is_part = ispartition;
                    if child_is_part {
                        let parent = names.get(&myparents[0]).cloned().unwrap_or_default();
                        attach = Some(format!(
                            "ALTER TABLE ONLY {parent} ATTACH PARTITION {qn} {};",
                            os(r, "bound").unwrap_or_default()
                        ));
                    } else {
                        let mut a = String::new();
                        for p in &myparents {
                            a.push_str(&format!(
                                "ALTER {kw} ONLY {qn} INHERIT {};\n",
                                names.get(p).cloned().unwrap_or_default()
                            ));
                        }
                        // ALTER TABLE ... INHERIT leaves merged columns and
                        // constraints local; mark the inherited-only ones
                        // as the source has them (as pg_dump --binary-upgrade does).
                        for c in &live {
                            if !c.local {
                                flag_fixes.push(format!(
                                    "UPDATE pg_catalog.pg_attribute SET attislocal = false \
                                     WHERE attrelid = {}::pg_catalog.regclass AND attname = {};",
                                    literal(&qn),
                                    literal(&c.name)
                                ));
                            }
                        }
                        for ck in mychecks {
                            if !ck.local {
                                flag_fixes.push(format!(
                                    "UPDATE pg_catalog.pg_constraint SET conislocal = false \
                                     WHERE conrelid = {}::pg_catalog.regclass AND conname = {};",
                                    literal(&qn),
                                    literal(&ck.name)
                                ));
                            }
                        }
                        if !flag_fixes.is_empty() {
                            // Catalog updates need a superuser; anyone else
                            // gets the right column order with the merged
                            // columns left local, and a warning.
                            let body = format!(
                                "BEGIN\n  IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r \
                                 WHERE r.rolname = CURRENT_USER) THEN\n    {}\n  ELSE\n    \
                                 RAISE WARNING 'pgsnap: %: inherited columns and constraints stay \
                                 marked local (restoring them needs a superuser)', {};\n  END IF;\nEND",
                                flag_fixes.join("\n    "),
                                literal(&qn)
                            );
                            a.push_str(&format!("DO {};", super::ddl::dollar_quote(&body)));
                        }
                        attach = Some(a.trim_end().to_string());
                    }
                }
                if let Some(pk) = os(r, "partkey") {
                    create.push_str(&format!("\nPARTITION BY {pk}"));
                }
                if foreign {
                    if let Some(srv) = os(r, "server") {
                        create.push_str(&format!("\nSERVER {}", ident(&srv)));
                    }
                    let fo = arr(r, "ftoptions");
                    if !fo.is_empty() {
                        create.push_str(&format!("\n{}", fdw_options(&fo)));
                    }
                }
                if let Some(am) = os(r, "am").filter(|a| a != "heap") {
                    create.push_str(&format!("\nUSING {}", ident(&am)));
                }
                let mut opts = arr(r, "relopts");
                opts.extend(
                    arr(r, "toastopts")
                        .into_iter()
                        .map(|o| format!("toast.{o}")),
                );
                if !opts.is_empty() {
                    create.push_str(&format!("\nWITH {}", options_list(&opts)));
                }
                create.push(';');
                if let Some(t) = os(r, "oftype") {
                    after.push(format!("ALTER TABLE {qn} OF {t};"));
                }
                for c in &live {
                    let col = ident(&c.name);
                    let inherited = c.inhcount > 0;
                    if !foreign && (c.storage != c.typstorage || (inherited && inherits_form)) {
                        let st = match c.storage.as_str() {
                            "p" => "PLAIN",
                            "e" => "EXTERNAL",
                            "m" => "MAIN",
                            _ => "EXTENDED",
                        };
                        after.push(format!("{alter_only} ALTER COLUMN {col} SET STORAGE {st};"));
                    }
                    if !foreign && (!c.compression.is_empty() || (inherited && inherits_form)) {
                        let cm = match c.compression.as_str() {
                            "p" => "pglz",
                            "l" => "lz4",
                            _ => "default",
                        };
                        after.push(format!(
                            "{alter_only} ALTER COLUMN {col} SET COMPRESSION {cm};"
                        ));
                    }
                    if c.stattarget >= 0 {
                        after.push(format!(
                            "{alter_only} ALTER COLUMN {col} SET STATISTICS {};",
                            c.stattarget
                        ));
                    }
                    if !c.options.is_empty() {
                        after.push(format!(
                            "{alter_only} ALTER COLUMN {col} SET {};",
                            options_list(&c.options)
                        ));
                    }
                }
                match if foreign {
                    String::new()
                } else {
                    s(r, "replident")
                }
                .as_str()
                {
                    "f" => after.push(format!("{alter_only} REPLICA IDENTITY FULL;")),
                    "n" => after.push(format!("{alter_only} REPLICA IDENTITY NOTHING;")),
                    _ => {}
                }
                if b(r, "rls") {
                    after.push(format!("{alter_only} ENABLE ROW LEVEL SECURITY;"));
                }
                if b(r, "forcerls") {
                    after.push(format!("{alter_only} FORCE ROW LEVEL SECURITY;"));
                }
            }
        }
        for a in after {
            create.push('\n');
            create.push_str(&a);
        }
        let id = bld.add(
            Some((PG_CLASS, oid)),
            New {
                kind,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("{} {qn}", kw.to_lowercase()),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create,
                drop: Some(format!("DROP {kw} {qn};")),
            },
        );
        // Not in `create`: applied as default_tablespace, which
        // --no-tablespaces leaves out (ApplyOptions).
        bld.obj(id).tablespace = os(r, "tablespace");
        if let Some(p) = placeholder {
            bld.view_placeholders.insert(id, p);
        }
        if !split_defaults.is_empty() {
            bld.defaults.insert(id, split_defaults);
        }
        if !split_checks.is_empty() {
            bld.inline_checks.insert(id, split_checks);
        }
        // Column-level pieces.
        let mut acl = acl_statements(
            &format!("TABLE {qn}"),
            Some(&owner),
            &parse_acl(os(r, "acl").as_deref()),
        );
        for c in mycols {
            bld.columns.insert((oid, c.num), c.name.clone());
            if let Some(d) = c.defoid {
                bld.keys.insert((PG_ATTRDEF, d), id);
            }
            if c.dropped {
                continue;
            }
            acl.extend(column_acl_statements(
                &format!("TABLE {qn}"),
                &c.name,
                Some(&owner),
                &c.acl,
            ));
            if let Some((seq, seqname, _)) = bld.identity.get(&(oid, c.num)).cloned() {
                if let Some(a) = bld.identity_acl.remove(&seq) {
                    acl.extend(a);
                }
                bld.keys.insert((PG_CLASS, seq), id);
                bld.target((PG_CLASS, seq), id, format!("SEQUENCE {seqname}"));
                if let Some(si) = bld
                    .sequences
                    .iter_mut()
                    .find(|si| si.object_id == u32::MAX && qualify(&si.schema, &si.name) == seqname)
                {
                    si.object_id = id;
                }
            }
        }
        for ck in mychecks {
            if ck.valid {
                bld.keys.insert((PG_CONSTRAINT, ck.oid), id);
                bld.target(
                    (PG_CONSTRAINT, ck.oid),
                    id,
                    format!("CONSTRAINT {} ON {qn}", ident(&ck.name)),
                );
            }
        }
        {
            let o = bld.obj(id);
            o.owner_sql.push(owner_to(&on, &owner));
            o.acl_sql = acl;
        }
        bld.target((PG_CLASS, oid), id, on);
        bld.qnames.insert(oid, qn.clone());
        // Attachment to the parent(s).
        if let Some(a) = attach {
            let aid = bld.add(
                None,
                New {
                    kind: ObjectKind::TableAttach,
                    schema: Some(schema.clone()),
                    name: name.clone(),
                    identity: format!(
                        "{} {qn} to {}",
                        if ispartition {
                            "partition"
                        } else {
                            "inheritance of"
                        },
                        myparents
                            .iter()
                            .map(|p| names.get(p).cloned().unwrap_or_default())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    owner: None,
                    section: Section::PreData,
                    create: a,
                    drop: None,
                },
            );
            bld.dep_obj(aid, id);
            bld.obj(aid).belongs_to = Some(id);
            for p in &myparents {
                bld.dep_on(aid, (PG_CLASS, *p));
                bld.ignore_edges.insert(((PG_CLASS, oid), (PG_CLASS, *p)));
                pending_parent.push((bld.tables.len(), *p));
            }
            bld.pending_refs.push((aid, (PG_CLASS, myparents[0])));
        } else if let Some(p) = myparents.first() {
            pending_parent.push((bld.tables.len(), *p));
        }
        // Not-valid check constraints come after the data.
        for ck in mychecks
            .iter()
            .filter(|c| !c.valid && (c.local || c.inhcount == 0))
        {
            let cid = bld.add(
                Some((PG_CONSTRAINT, ck.oid)),
                New {
                    kind: ObjectKind::CheckConstraint,
                    schema: Some(schema.clone()),
                    name: ck.name.clone(),
                    identity: format!("constraint {} on {qn}", ident(&ck.name)),
                    owner: None,
                    section: Section::PostData,
                    create: format!(
                        "ALTER {kw} {qn} ADD CONSTRAINT {} {};",
                        ident(&ck.name),
                        ck.def
                    ),
                    drop: Some(format!(
                        "ALTER {kw} {qn} DROP CONSTRAINT {};",
                        ident(&ck.name)
                    )),
                },
            );
            bld.obj(cid).belongs_to = Some(id);
            bld.target(
                (PG_CONSTRAINT, ck.oid),
                cid,
                format!("CONSTRAINT {} ON {qn}", ident(&ck.name)),
            );
        }
        // Data-phase information.
        let rk = match relkind.as_str() {
            "r" => Some(RelKind::Ordinary),
            "p" => Some(RelKind::Partitioned),
            "f" => Some(RelKind::Foreign),
            "m" => Some(RelKind::MaterializedView),
            _ => None,
        };
        if let Some(kind) = rk {
            bld.tables.push(TableInfo {
                object_id: id,
                oid,
                schema: schema.clone(),
                name: name.clone(),
                kind,
                columns: live
                    .iter()
                    .filter(|c| c.generated.is_empty())
                    .map(|c| c.name.clone())
                    .collect(),
                column_types: live
                    .iter()
                    .filter(|c| c.generated.is_empty())
                    .map(|c| c.typid)
                    .collect(),
                blank_padded: live
                    .iter()
                    .filter(|c| c.generated.is_empty() && c.blank_padded)
                    .map(|c| c.name.clone())
                    .collect(),
                unlogged: s(r, "persistence") == "u",
                has_data: kind == RelKind::Ordinary,
                relpages: r.get("relpages"),
                reltuples: r.get("reltuples"),
                bytes_estimate: r.get("size"),
                parent: None,
            });
        } else {
            // Keep indexes into `tables` stable for pending parents.
        }
        if relkind == "m" {
            let populated = b(r, "populated");
            bld.matviews.push(MatviewInfo {
                object_id: id,
                schema: schema.clone(),
                name: name.clone(),
                populated,
            });
            if populated {
                let rid = bld.add(
                    None,
                    New {
                        kind: ObjectKind::MatviewRefresh,
                        schema: Some(schema.clone()),
                        name: name.clone(),
                        identity: format!("refresh of materialized view {qn}"),
                        owner: None,
                        section: Section::PostData,
                        create: format!("REFRESH MATERIALIZED VIEW {qn};"),
                        drop: None,
                    },
                );
                bld.dep_obj(rid, id);
                bld.obj(rid).belongs_to = Some(id);
            }
        }
    }
    for (ti, p) in pending_parent {
        let pid = bld.keys.get(&(PG_CLASS, p)).copied();
        if let Some(t) = bld.tables.get_mut(ti) {
            t.parent = pid;
        }
    }
    Ok(())
}

/// The refreshes of populated materialized views that read (directly, or
/// through views and other materialized views) one the database has
/// unpopulated: run, each would fail ("has not been populated"), so they
/// are left out, as pg_dump leaves them out, and those views come back
/// unpopulated.
fn refreshes_over_unpopulated(model: &SchemaModel) -> std::collections::BTreeSet<u32> {
    let refresh_of: HashMap<u32, u32> = model
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::MatviewRefresh)
        .filter_map(|o| o.belongs_to.map(|m| (m, o.id)))
        .collect();
    let populated = |id: u32| refresh_of.contains_key(&id);
    refresh_of
        .iter()
        .filter(|(&mv, _)| {
            model
                .rows_read(mv, populated)
                .into_iter()
                .any(|d| model.object(d).kind == ObjectKind::MaterializedView)
        })
        .map(|(_, &rf)| rf)
        .collect()
}

/// Whether `CREATE TABLE child (...) INHERITS (parents)` puts the child's
/// columns in their current order: the parents' columns first (in parent
/// order, merged by name), then the child's own columns.
fn inherits_order_matches(
    live: &[&Column],
    parents: &[u32],
    cols: &HashMap<u32, Vec<Column>>,
) -> bool {
    let mut expected: Vec<&str> = Vec::new();
    for p in parents {
        for c in cols.get(p).map(|v| v.as_slice()).unwrap_or_default() {
            if !c.dropped && !expected.contains(&c.name.as_str()) {
                expected.push(&c.name);
            }
        }
    }
    let n = expected.len();
    for c in live {
        if !expected.contains(&c.name.as_str()) {
            expected.push(&c.name);
        }
    }
    let actual: Vec<&str> = live.iter().map(|c| c.name.as_str()).collect();
    // Inherited columns must all be present (they always are) and the
    // order must be the same; a local column merged with a parent's goes
    // in the parent's position.
    actual == expected && live.iter().filter(|c| c.inhcount > 0).count() <= n
}

/// Qualified name of a relation object (from its COMMENT target).
fn rel_qname(bld: &Builder, relid: u32) -> Option<String> {
    bld.qnames.get(&relid).cloned()
}

/// A primary key or unique constraint of a plain table as two statements:
/// `CREATE UNIQUE INDEX` (its index, as `pg_get_indexdef` gives it), then
/// `ADD CONSTRAINT ... USING INDEX`. The catalog ends the same as with a
/// plain `ADD CONSTRAINT`, but the index build takes only a SHARE lock, so
/// restore can build it beside the table's other indexes (the last table's
/// indexes are a restore's tail); the ACCESS EXCLUSIVE step that follows is
/// short. Partitioned tables, and an index not named as its constraint,
/// keep the one statement.
fn unique_in_two_steps(r: &Row, contype: &str, name: &str, qn: &str) -> Option<String> {
    let keyword = match contype {
        "p" => "PRIMARY KEY",
        "u" => "UNIQUE",
        _ => return None,
    };
    if s(r, "relkind") != "r" || r.get::<_, Option<bool>>("named_as_index") != Some(true) {
        return None;
    }
    let indexdef = os(r, "indexdef")?;
    if !indexdef.starts_with("CREATE UNIQUE INDEX ") {
        return None;
    }
    let defer = match (b(r, "deferrable"), b(r, "deferred")) {
        (true, true) => " DEFERRABLE INITIALLY DEFERRED",
        (true, false) => " DEFERRABLE",
        _ => "",
    };
    Some(format!(
        "{indexdef};\nALTER TABLE ONLY {qn} ADD CONSTRAINT {n} {keyword} USING INDEX {n}{defer};",
        n = ident(name)
    ))
}

/// A key constraint's definition with its index's storage options, which
/// `pg_get_constraintdef` leaves out: `WITH (...)` goes before the
/// DEFERRABLE clause.
fn with_index_options(def: &str, opts: &[String]) -> String {
    if opts.is_empty() {
        return def.to_string();
    }
    let with = format!(" WITH {}", options_list(opts));
    for tail in [" DEFERRABLE INITIALLY DEFERRED", " DEFERRABLE"] {
        if let Some(head) = def.strip_suffix(tail) {
            return format!("{head}{with}{tail}");
        }
    }
    format!("{def}{with}")
}

async fn read_constraints(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "constraints",
        "SELECT c.oid, c.conrelid, c.conname::text AS name, c.contype::text AS contype, \
         pg_catalog.pg_get_constraintdef(c.oid) AS def, c.conindid, c.confrelid, c.conparentid, \
         t.relkind::text AS relkind, i.indisclustered AS clustered, i.indisreplident AS replident, \
         pg_catalog.quote_ident(ci.relname) AS indexname, ci.relname = c.conname AS named_as_index, \
         CASE WHEN c.contype IN ('p', 'u') THEN pg_catalog.pg_get_indexdef(ci.oid) END AS indexdef, \
         CASE WHEN c.contype IN ('p', 'u') THEN ci.reloptions::text[] END AS indexopts, \
         c.condeferrable AS deferrable, c.condeferred AS deferred, sp.spcname::text AS tablespace \
         FROM pg_catalog.pg_constraint c JOIN pg_catalog.pg_class t ON t.oid = c.conrelid \
         LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = c.conindid AND c.contype <> 'f' \
         LEFT JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid \
         LEFT JOIN pg_catalog.pg_tablespace sp ON sp.oid = ci.reltablespace \
         WHERE c.contype IN ('p', 'u', 'x', 'f') ORDER BY c.conrelid, c.conname",
    )
    .await?
    {
        let oid = u(&r, "oid");
        let rel = u(&r, "conrelid");
        let Some(table) = bld.keys.get(&(PG_CLASS, rel)).copied() else {
            continue;
        };
        if !bld.objects[table as usize].kind.is_relation() || is_member(bld, PG_CONSTRAINT, oid) {
            continue;
        }
        let contype = s(&r, "contype");
        if contype == "f" && u(&r, "conparentid") != 0 {
            continue; // cloned onto a partition by its parent's foreign key
        }
        let Some(qn) = rel_qname(bld, rel) else { continue };
        let name = s(&r, "name");
        let schema = bld.objects[table as usize].schema.clone();
        let only = if contype == "f" && s(&r, "relkind") == "p" {
            ""
        } else {
            "ONLY "
        };
        let mut create = match unique_in_two_steps(&r, &contype, &name, &qn) {
            Some(two) => two,
            None => format!(
                "ALTER TABLE {only}{qn} ADD CONSTRAINT {} {};",
                ident(&name),
                with_index_options(&s(&r, "def"), &arr(&r, "indexopts"))
            ),
        };
        if contype != "f" {
            let idx = os(&r, "indexname").unwrap_or_default();
            if r.get::<_, Option<bool>>("clustered") == Some(true) {
                create.push_str(&format!("\nALTER TABLE {qn} CLUSTER ON {idx};"));
            }
            if r.get::<_, Option<bool>>("replident") == Some(true) {
                create.push_str(&format!(
                    "\nALTER TABLE ONLY {qn} REPLICA IDENTITY USING INDEX {idx};"
                ));
            }
        }
        let kind = if contype == "f" {
            ObjectKind::ForeignKey
        } else {
            ObjectKind::Constraint
        };
        let id = bld.add(
            Some((PG_CONSTRAINT, oid)),
            New {
                kind,
                schema: schema.clone(),
                name: name.clone(),
                identity: format!("constraint {} on {qn}", ident(&name)),
                owner: None,
                section: Section::PostData,
                create,
                drop: Some(format!(
                    "ALTER TABLE {only}{qn} DROP CONSTRAINT {};",
                    ident(&name)
                )),
            },
        );
        // Its index's, as `create` makes it; none for a foreign key (the
        // query joins no index to one: its `conindid` is the referenced
        // key's).
        bld.obj(id).tablespace = os(&r, "tablespace");
        bld.obj(id).belongs_to = Some(table);
        bld.dep_obj(id, table);
        if contype == "f" {
            let f = u(&r, "confrelid");
            bld.pending_refs.push((id, (PG_CLASS, f)));
        } else {
            let idx = u(&r, "conindid");
            bld.keys.insert((PG_CLASS, idx), id);
            if let (Some(s_), Some(i)) = (schema.as_deref(), os(&r, "indexname")) {
                bld.target((PG_CLASS, idx), id, format!("INDEX {}.{i}", ident(s_)));
            }
        }
        bld.target(
            (PG_CONSTRAINT, oid),
            id,
            format!("CONSTRAINT {} ON {qn}", ident(&name)),
        );
    }
    Ok(())
}

async fn read_indexes(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let rows = q(
        client,
        "indexes",
        "SELECT i.indexrelid, i.indrelid, n.nspname::text AS schema, c.relname::text AS name, \
         pg_catalog.pg_get_indexdef(i.indexrelid) AS def, i.indisclustered AS clustered, \
         i.indisreplident AS replident, t.relkind::text AS relkind, i.indisvalid AS valid, \
         (SELECT sp.spcname::text FROM pg_catalog.pg_tablespace sp WHERE sp.oid = c.reltablespace) AS tablespace, \
         EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = i.indexrelid \
                 AND k.contype IN ('p', 'u', 'x')) AS isconstraint, \
         (SELECT pg_catalog.array_agg('ALTER INDEX ' || pg_catalog.quote_ident(n.nspname) || '.' || \
            pg_catalog.quote_ident(c.relname) || ' ALTER COLUMN ' || a.attnum || ' SET STATISTICS ' || \
            a.attstattarget || ';' ORDER BY a.attnum) FROM pg_catalog.pg_attribute a \
            WHERE a.attrelid = i.indexrelid AND a.attstattarget >= 0) AS stats \
         FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_class t ON t.oid = i.indrelid ORDER BY 3, 4",
    )
    .await?;
    for r in &rows {
        let oid = u(r, "indexrelid");
        let rel = u(r, "indrelid");
        let Some(table) = bld.keys.get(&(PG_CLASS, rel)).copied() else {
            continue;
        };
        if !bld.objects[table as usize].kind.is_relation() || b(r, "isconstraint") {
            continue;
        }
        if !b(r, "valid") && s(r, "relkind") != "p" {
            continue;
        }
        let Some(tq) = rel_qname(bld, rel) else {
            continue;
        };
        let (schema, name) = (s(r, "schema"), s(r, "name"));
        let qn = qualify(&schema, &name);
        let mut create = ensure_semicolon(s(r, "def"));
        for st in arr(r, "stats") {
            create.push('\n');
            create.push_str(&st);
        }
        if b(r, "clustered") {
            create.push_str(&format!("\nALTER TABLE {tq} CLUSTER ON {};", ident(&name)));
        }
        if b(r, "replident") {
            create.push_str(&format!(
                "\nALTER TABLE ONLY {tq} REPLICA IDENTITY USING INDEX {};",
                ident(&name)
            ));
        }
        let id = bld.add(
            Some((PG_CLASS, oid)),
            New {
                kind: ObjectKind::Index,
                schema: Some(schema.clone()),
                name: name.clone(),
                identity: format!("index {qn}"),
                owner: None,
                section: Section::PostData,
                create,
                drop: Some(format!("DROP INDEX {qn};")),
            },
        );
        // Not in `create`: applied as default_tablespace, which
        // --no-tablespaces leaves out (ApplyOptions).
        bld.obj(id).tablespace = os(r, "tablespace");
        bld.obj(id).belongs_to = Some(table);
        bld.dep_obj(id, table);
        bld.target((PG_CLASS, oid), id, format!("INDEX {qn}"));
        bld.qnames.insert(oid, qn);
    }
    // Names of constraint indexes too, for attach statements.
    for r in &rows {
        if b(r, "isconstraint") {
            bld.qnames
                .insert(u(r, "indexrelid"), qualify(&s(r, "schema"), &s(r, "name")));
        }
    }
    for r in q(
        client,
        "index partitions",
        "SELECT i.inhrelid, i.inhparent FROM pg_catalog.pg_inherits i \
         JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid WHERE c.relkind IN ('i', 'I')",
    )
    .await?
    {
        let (child, parent) = (u(&r, "inhrelid"), u(&r, "inhparent"));
        let (Some(co), Some(po)) = (
            bld.keys.get(&(PG_CLASS, child)).copied(),
            bld.keys.get(&(PG_CLASS, parent)).copied(),
        ) else {
            continue;
        };
        let (Some(cq), Some(pq)) = (
            bld.qnames.get(&child).cloned(),
            bld.qnames.get(&parent).cloned(),
        ) else {
            continue;
        };
        let schema = bld.objects[co as usize].schema.clone();
        let name = bld.objects[co as usize].name.clone();
        let id = bld.add(
            None,
            New {
                kind: ObjectKind::IndexAttach,
                schema,
                name,
                identity: format!("index {cq} attached to {pq}"),
                owner: None,
                section: Section::PostData,
                create: format!("ALTER INDEX {pq} ATTACH PARTITION {cq};"),
                drop: None,
            },
        );
        bld.dep_obj(id, co);
        bld.dep_obj(id, po);
        bld.obj(id).belongs_to = Some(co);
        bld.obj(id).references = Some(po);
    }
    Ok(())
}

async fn read_triggers(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "triggers",
        "SELECT t.oid, t.tgrelid, t.tgname::text AS name, pg_catalog.pg_get_triggerdef(t.oid) AS def, \
         t.tgenabled::text AS enabled, t.tgparentid, \
         (SELECT p.tgenabled::text FROM pg_catalog.pg_trigger p WHERE p.oid = t.tgparentid) AS parent_enabled \
         FROM pg_catalog.pg_trigger t \
         WHERE NOT t.tgisinternal AND (t.tgparentid = 0 OR t.tgenabled <> \
           (SELECT p.tgenabled FROM pg_catalog.pg_trigger p WHERE p.oid = t.tgparentid)) \
         ORDER BY t.tgrelid, t.tgname",
    )
    .await?
    {
        let oid = u(&r, "oid");
        let rel = u(&r, "tgrelid");
        let Some(table) = bld.keys.get(&(PG_CLASS, rel)).copied() else {
            continue;
        };
        if !bld.objects[table as usize].kind.is_relation() || is_member(bld, PG_TRIGGER, oid) {
            continue;
        }
        let Some(qn) = rel_qname(bld, rel) else { continue };
        let name = s(&r, "name");
        let parent = u(&r, "tgparentid");
        // A trigger cloned onto a partition only appears when its enable
        // state differs from its parent's.
        let mut create = if parent == 0 {
            ensure_semicolon(s(&r, "def"))
        } else {
            String::new()
        };
        let en = match s(&r, "enabled").as_str() {
            "D" => "DISABLE TRIGGER",
            "R" => "ENABLE REPLICA TRIGGER",
            "A" => "ENABLE ALWAYS TRIGGER",
            _ if parent != 0 => "ENABLE TRIGGER",
            _ => "",
        };
        if !en.is_empty() {
            if !create.is_empty() {
                create.push('\n');
            }
            // On a partitioned table the state recurses to the clones;
            // a clone's own state is set on it alone.
            let only = if parent == 0 { "" } else { "ONLY " };
            create.push_str(&format!("ALTER TABLE {only}{qn} {en} {};", ident(&name)));
        }
        let schema = bld.objects[table as usize].schema.clone();
        let id = bld.add(
            Some((PG_TRIGGER, oid)),
            New {
                kind: ObjectKind::Trigger,
                schema,
                name: name.clone(),
                identity: format!(
                    "trigger {} on {qn}{}",
                    ident(&name),
                    if parent == 0 { "" } else { " (enable state)" }
                ),
                owner: None,
                section: Section::PostData,
                create,
                drop: if parent == 0 {
                    Some(format!("DROP TRIGGER {} ON {qn};", ident(&name)))
                } else {
                    None
                },
            },
        );
        if parent != 0 {
            bld.dep_on(id, (PG_TRIGGER, parent));
        }
        bld.obj(id).belongs_to = Some(table);
        bld.dep_obj(id, table);
        bld.target(
            (PG_TRIGGER, oid),
            id,
            format!("TRIGGER {} ON {qn}", ident(&name)),
        );
    }
    Ok(())
}

async fn read_rules(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "rules",
        "SELECT r.oid, r.ev_class, r.rulename::text AS name, pg_catalog.pg_get_ruledef(r.oid) AS def, \
         r.ev_enabled::text AS enabled FROM pg_catalog.pg_rewrite r ORDER BY r.ev_class, r.rulename",
    )
    .await?
    {
        let oid = u(&r, "oid");
        let rel = u(&r, "ev_class");
        let Some(table) = bld.keys.get(&(PG_CLASS, rel)).copied() else {
            continue;
        };
        let name = s(&r, "name");
        if name == "_RETURN" {
            // A view's own rule: its dependencies are the view's.
            bld.keys.insert((PG_REWRITE, oid), table);
            continue;
        }
        if !bld.objects[table as usize].kind.is_relation() || is_member(bld, PG_REWRITE, oid) {
            continue;
        }
        let Some(qn) = rel_qname(bld, rel) else { continue };
        let mut create = ensure_semicolon(s(&r, "def"));
        let en = match s(&r, "enabled").as_str() {
            "D" => "DISABLE RULE",
            "R" => "ENABLE REPLICA RULE",
            "A" => "ENABLE ALWAYS RULE",
            _ => "",
        };
        if !en.is_empty() {
            create.push_str(&format!("\nALTER TABLE {qn} {en} {};", ident(&name)));
        }
        let schema = bld.objects[table as usize].schema.clone();
        let id = bld.add(
            Some((PG_REWRITE, oid)),
            New {
                kind: ObjectKind::Rule,
                schema,
                name: name.clone(),
                identity: format!("rule {} on {qn}", ident(&name)),
                owner: None,
                section: Section::PostData,
                create,
                drop: Some(format!("DROP RULE {} ON {qn};", ident(&name))),
            },
        );
        bld.obj(id).belongs_to = Some(table);
        bld.dep_obj(id, table);
        bld.target((PG_REWRITE, oid), id, format!("RULE {} ON {qn}", ident(&name)));
    }
    Ok(())
}

async fn read_policies(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "policies",
        "SELECT p.oid, p.polrelid, p.polname::text AS name, p.polcmd::text AS cmd, \
         p.polpermissive AS permissive, \
         (SELECT pg_catalog.string_agg(CASE WHEN x = 0 THEN 'PUBLIC' ELSE \
            pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(x)) END, ', ' ORDER BY o) \
          FROM pg_catalog.unnest(p.polroles) WITH ORDINALITY AS u(x, o)) AS roles, \
         pg_catalog.pg_get_expr(p.polqual, p.polrelid) AS qual, \
         pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) AS withcheck \
         FROM pg_catalog.pg_policy p ORDER BY p.polrelid, p.polname",
    )
    .await?
    {
        let oid = u(&r, "oid");
        let rel = u(&r, "polrelid");
        let Some(table) = bld.keys.get(&(PG_CLASS, rel)).copied() else {
            continue;
        };
        let Some(qn) = rel_qname(bld, rel) else {
            continue;
        };
        let name = s(&r, "name");
        let cmd = match s(&r, "cmd").as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        let mut create = format!(
            "CREATE POLICY {} ON {qn} AS {} FOR {cmd} TO {}",
            ident(&name),
            if b(&r, "permissive") {
                "PERMISSIVE"
            } else {
                "RESTRICTIVE"
            },
            os(&r, "roles").unwrap_or_else(|| "PUBLIC".into())
        );
        if let Some(x) = os(&r, "qual") {
            create.push_str(&format!(" USING ({x})"));
        }
        if let Some(x) = os(&r, "withcheck") {
            create.push_str(&format!(" WITH CHECK ({x})"));
        }
        create.push(';');
        let schema = bld.objects[table as usize].schema.clone();
        let id = bld.add(
            Some((PG_POLICY, oid)),
            New {
                kind: ObjectKind::Policy,
                schema,
                name: name.clone(),
                identity: format!("policy {} on {qn}", ident(&name)),
                owner: None,
                section: Section::PostData,
                create,
                drop: Some(format!("DROP POLICY {} ON {qn};", ident(&name))),
            },
        );
        bld.obj(id).belongs_to = Some(table);
        bld.dep_obj(id, table);
        bld.target(
            (PG_POLICY, oid),
            id,
            format!("POLICY {} ON {qn}", ident(&name)),
        );
    }
    Ok(())
}

async fn read_statistics(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "statistics objects",
        "SELECT s.oid, s.stxrelid, n.nspname::text AS schema, s.stxname::text AS name, \
         pg_catalog.pg_get_userbyid(s.stxowner)::text AS owner, \
         pg_catalog.pg_get_statisticsobjdef(s.oid) AS def, COALESCE(s.stxstattarget::int4, -1) AS target \
         FROM pg_catalog.pg_statistic_ext s JOIN pg_catalog.pg_namespace n ON n.oid = s.stxnamespace \
         ORDER BY 3, 4",
    )
    .await?
    {
        let oid = u(&r, "oid");
        let Some(table) = bld.keys.get(&(PG_CLASS, u(&r, "stxrelid"))).copied() else {
            continue;
        };
        if is_member(bld, PG_STATISTIC_EXT, oid) {
            continue;
        }
        let (schema, name, owner) = (s(&r, "schema"), s(&r, "name"), s(&r, "owner"));
        let qn = qualify(&schema, &name);
        let mut create = ensure_semicolon(s(&r, "def"));
        let target: i32 = r.get("target");
        if target >= 0 {
            create.push_str(&format!("\nALTER STATISTICS {qn} SET STATISTICS {target};"));
        }
        let on = format!("STATISTICS {qn}");
        let id = bld.add(
            Some((PG_STATISTIC_EXT, oid)),
            New {
                kind: ObjectKind::StatisticsObject,
                schema: Some(schema),
                name,
                identity: format!("statistics {qn}"),
                owner: Some(owner.clone()),
                section: Section::PostData,
                create,
                drop: Some(format!("DROP STATISTICS {qn};")),
            },
        );
        bld.obj(id).belongs_to = Some(table);
        bld.owned(id, (PG_STATISTIC_EXT, oid), on, &owner);
    }
    Ok(())
}

async fn read_event_triggers(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "event triggers",
        "SELECT e.oid, e.evtname::text AS name, e.evtevent::text AS event, \
         pg_catalog.pg_get_userbyid(e.evtowner)::text AS owner, e.evtfoid::pg_catalog.regproc::text AS func, \
         e.evttags AS tags, e.evtenabled::text AS enabled FROM pg_catalog.pg_event_trigger e ORDER BY 2",
    )
    .await?
    {
        let oid = u(&r, "oid");
        if is_member(bld, PG_EVENT_TRIGGER, oid) {
            continue;
        }
        let (name, owner) = (s(&r, "name"), s(&r, "owner"));
        let mut create = format!("CREATE EVENT TRIGGER {} ON {}", ident(&name), s(&r, "event"));
        let tags = arr(&r, "tags");
        if !tags.is_empty() {
            let t: Vec<String> = tags.iter().map(|t| literal(t)).collect();
            create.push_str(&format!(" WHEN TAG IN ({})", t.join(", ")));
        }
        create.push_str(&format!(" EXECUTE FUNCTION {}();", s(&r, "func")));
        let en = match s(&r, "enabled").as_str() {
            "D" => "DISABLE",
            "R" => "ENABLE REPLICA",
            "A" => "ENABLE ALWAYS",
            _ => "",
        };
        if !en.is_empty() {
            create.push_str(&format!("\nALTER EVENT TRIGGER {} {en};", ident(&name)));
        }
        let on = format!("EVENT TRIGGER {}", ident(&name));
        let id = bld.add(
            Some((PG_EVENT_TRIGGER, oid)),
            New {
                kind: ObjectKind::EventTrigger,
                schema: None,
                name: name.clone(),
                identity: format!("event trigger {}", ident(&name)),
                owner: Some(owner.clone()),
                section: Section::PostData,
                create,
                drop: Some(format!("DROP EVENT TRIGGER {};", ident(&name))),
            },
        );
        bld.owned(id, (PG_EVENT_TRIGGER, oid), on, &owner);
    }
    Ok(())
}

/// Subscriptions are not backed up: their connection strings hold
/// passwords, and one restored would start pulling rows from its publisher
/// (pg_dump, too, makes them disabled, and only for a superuser). Said, so
/// that nobody finds out after a restore (QA).
async fn warn_of_subscriptions(client: &Client) -> Result<(), SchemaError> {
    let names: Vec<String> = q(
        client,
        "subscriptions",
        "SELECT s.subname::text AS name FROM pg_catalog.pg_subscription s \
         WHERE s.subdbid = (SELECT oid FROM pg_catalog.pg_database \
                             WHERE datname = pg_catalog.current_database()) ORDER BY 1",
    )
    .await?
    .iter()
    .map(|r| ident(&s(r, "name")))
    .collect();
    if !names.is_empty() {
        tracing::warn!(
            "subscriptions are not backed up: {}; after a restore, make them anew with CREATE \
             SUBSCRIPTION",
            names.join(", ")
        );
    }
    Ok(())
}

async fn read_publications(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "publications",
        "SELECT p.oid, p.pubname::text AS name, pg_catalog.pg_get_userbyid(p.pubowner)::text AS owner, \
         p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate, p.pubviaroot \
         FROM pg_catalog.pg_publication p ORDER BY 2",
    )
    .await?
    {
        let oid = u(&r, "oid");
        let (name, owner) = (s(&r, "name"), s(&r, "owner"));
        let mut publish = Vec::new();
        for (c, w) in [
            ("pubinsert", "insert"),
            ("pubupdate", "update"),
            ("pubdelete", "delete"),
            ("pubtruncate", "truncate"),
        ] {
            if b(&r, c) {
                publish.push(w);
            }
        }
        let create = format!(
            "CREATE PUBLICATION {}{} WITH (publish = {}, publish_via_partition_root = {});",
            ident(&name),
            if b(&r, "puballtables") {
                " FOR ALL TABLES"
            } else {
                ""
            },
            literal(&publish.join(", ")),
            b(&r, "pubviaroot")
        );
        let on = format!("PUBLICATION {}", ident(&name));
        let id = bld.add(
            Some((PG_PUBLICATION, oid)),
            New {
                kind: ObjectKind::Publication,
                schema: None,
                name: name.clone(),
                identity: format!("publication {}", ident(&name)),
                owner: Some(owner.clone()),
                section: Section::PostData,
                create,
                drop: Some(format!("DROP PUBLICATION {};", ident(&name))),
            },
        );
        bld.owned(id, (PG_PUBLICATION, oid), on, &owner);
    }
    for r in q(
        client,
        "publication tables",
        "SELECT pr.oid, pr.prpubid, pr.prrelid, p.pubname::text AS pubname, \
         pg_catalog.pg_get_expr(pr.prqual, pr.prrelid) AS qual, \
         (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname), ', ' ORDER BY a.attnum) \
            FROM pg_catalog.pg_attribute a WHERE a.attrelid = pr.prrelid AND a.attnum = ANY (pr.prattrs)) AS cols \
         FROM pg_catalog.pg_publication_rel pr JOIN pg_catalog.pg_publication p ON p.oid = pr.prpubid",
    )
    .await?
    {
        let rel = u(&r, "prrelid");
        let (Some(table), Some(qn)) = (
            bld.keys.get(&(PG_CLASS, rel)).copied(),
            rel_qname(bld, rel),
        ) else {
            continue;
        };
        let pubname = s(&r, "pubname");
        let mut create = format!(
            "ALTER PUBLICATION {} ADD TABLE ONLY {qn}",
            ident(&pubname)
        );
        if let Some(c) = os(&r, "cols") {
            create.push_str(&format!(" ({c})"));
        }
        if let Some(w) = os(&r, "qual") {
            create.push_str(&format!(" WHERE ({w})"));
        }
        create.push(';');
        let id = bld.add(
            Some((PG_PUBLICATION_REL, u(&r, "oid"))),
            New {
                kind: ObjectKind::PublicationTable,
                schema: bld.objects[table as usize].schema.clone(),
                name: format!("{pubname} {}", bld.objects[table as usize].name),
                identity: format!("publication {} table {qn}", ident(&pubname)),
                owner: None,
                section: Section::PostData,
                create,
                drop: None,
            },
        );
        bld.obj(id).belongs_to = Some(table);
        bld.dep_obj(id, table);
        bld.dep_on(id, (PG_PUBLICATION, u(&r, "prpubid")));
    }
    for r in q(
        client,
        "publication schemas",
        "SELECT pn.oid, pn.pnpubid, pn.pnnspid, p.pubname::text AS pubname, n.nspname::text AS schema \
         FROM pg_catalog.pg_publication_namespace pn JOIN pg_catalog.pg_publication p ON p.oid = pn.pnpubid \
         JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid",
    )
    .await?
    {
        let (pubname, schema) = (s(&r, "pubname"), s(&r, "schema"));
        let id = bld.add(
            Some((PG_PUBLICATION_NAMESPACE, u(&r, "oid"))),
            New {
                kind: ObjectKind::PublicationSchema,
                schema: Some(schema.clone()),
                name: pubname.clone(),
                identity: format!("publication {} schema {}", ident(&pubname), ident(&schema)),
                owner: None,
                section: Section::PostData,
                create: format!(
                    "ALTER PUBLICATION {} ADD TABLES IN SCHEMA {};",
                    ident(&pubname),
                    ident(&schema)
                ),
                drop: None,
            },
        );
        bld.dep_on(id, (PG_PUBLICATION, u(&r, "pnpubid")));
        bld.dep_on(id, (PG_NAMESPACE, u(&r, "pnnspid")));
    }
    Ok(())
}

async fn read_default_acls(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT d.oid, pg_catalog.pg_get_userbyid(d.defaclrole)::text AS role, \
         (SELECT n.nspname::text FROM pg_catalog.pg_namespace n WHERE n.oid = d.defaclnamespace) AS schema, \
         d.defaclobjtype::text AS objtype, {} AS acl FROM pg_catalog.pg_default_acl d ORDER BY 2, 3, 4",
        acl_json_sql("d.defaclacl")
    );
    for r in q(client, "default privileges", &sql).await? {
        let role = s(&r, "role");
        let schema = os(&r, "schema");
        let Some(objtype) = default_acl_objtype(&s(&r, "objtype")) else {
            continue;
        };
        let entries = parse_acl(os(&r, "acl").as_deref()).unwrap_or_default();
        let stmts = default_acl_statements(&role, schema.as_deref(), objtype, &entries);
        let id = bld.add(
            None,
            New {
                kind: ObjectKind::DefaultPrivileges,
                schema: schema.clone(),
                name: format!("{role} {objtype}"),
                identity: format!(
                    "default privileges for role {}{} on {objtype}",
                    ident(&role),
                    schema
                        .as_deref()
                        .map(|s| format!(" in schema {}", ident(s)))
                        .unwrap_or_default()
                ),
                owner: Some(role.clone()),
                section: Section::PostData,
                create: String::new(),
                drop: None,
            },
        );
        // Privileges, so --no-acl leaves them out.
        bld.obj(id).acl_sql = stmts;
        if let Some(s_) = schema {
            if let Some(ns) = bld
                .objects
                .iter()
                .find(|o| o.kind == ObjectKind::Schema && o.name == s_)
                .map(|o| o.id)
            {
                bld.dep_obj(id, ns);
            }
        }
    }
    Ok(())
}

/// Privileges on extension members changed after the extension was
/// created: restated in full (the member exists once the extension does).
async fn read_member_acls(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT 1259::pg_catalog.oid AS class, c.oid, \
           CASE c.relkind WHEN 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || \
           pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname) AS target, \
           pg_catalog.pg_get_userbyid(c.relowner)::text AS owner, {} AS acl \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_init_privs ip ON ip.objoid = c.oid AND ip.classoid = 1259 AND ip.objsubid = 0 \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relacl IS DISTINCT FROM ip.initprivs \
         UNION ALL \
         SELECT 1255, p.oid, CASE p.prokind WHEN 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END || \
           pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname) || \
           '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')', \
           pg_catalog.pg_get_userbyid(p.proowner)::text, {} \
         FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         LEFT JOIN pg_catalog.pg_init_privs ip ON ip.objoid = p.oid AND ip.classoid = 1255 AND ip.objsubid = 0 \
         WHERE p.proacl IS DISTINCT FROM ip.initprivs \
         UNION ALL \
         SELECT 1247, t.oid, 'TYPE ' || pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(t.typname), \
           pg_catalog.pg_get_userbyid(t.typowner)::text, {} \
         FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         LEFT JOIN pg_catalog.pg_init_privs ip ON ip.objoid = t.oid AND ip.classoid = 1247 AND ip.objsubid = 0 \
         WHERE t.typacl IS DISTINCT FROM ip.initprivs \
         UNION ALL \
         SELECT 2615, n.oid, 'SCHEMA ' || pg_catalog.quote_ident(n.nspname), \
           pg_catalog.pg_get_userbyid(n.nspowner)::text, {} \
         FROM pg_catalog.pg_namespace n \
         LEFT JOIN pg_catalog.pg_init_privs ip ON ip.objoid = n.oid AND ip.classoid = 2615 AND ip.objsubid = 0 \
         WHERE n.nspacl IS DISTINCT FROM ip.initprivs \
         UNION ALL \
         SELECT 2612, l.oid, 'LANGUAGE ' || pg_catalog.quote_ident(l.lanname), \
           pg_catalog.pg_get_userbyid(l.lanowner)::text, {} \
         FROM pg_catalog.pg_language l \
         LEFT JOIN pg_catalog.pg_init_privs ip ON ip.objoid = l.oid AND ip.classoid = 2612 AND ip.objsubid = 0 \
         WHERE l.lanacl IS DISTINCT FROM ip.initprivs ORDER BY 3",
        acl_json_sql("c.relacl"),
        acl_json_sql("p.proacl"),
        acl_json_sql("t.typacl"),
        acl_json_sql("n.nspacl"),
        acl_json_sql("l.lanacl"),
    );
    for r in q(client, "extension member privileges", &sql).await? {
        let key = (u(&r, "class"), u(&r, "oid"));
        let Some(&ext) = bld.ext_members.get(&key) else {
            continue;
        };
        // An extension every database has (plpgsql, from initdb) is no
        // object of the model, but its members' privileges are restated
        // all the same: a revoked USAGE ON LANGUAGE plpgsql must stay so.
        let ext_obj = bld.keys.get(&(PG_EXTENSION, ext)).copied();
        if ext_obj.is_none() && ext >= 16384 {
            continue;
        }
        let target = s(&r, "target");
        let owner = s(&r, "owner");
        let acl = parse_acl(os(&r, "acl").as_deref());
        // A NULL ACL (back to the defaults) after the script set one.
        let stmts = match acl {
            Some(_) => acl_statements(&target, Some(&owner), &acl),
            None => continue,
        };
        let id = bld.add(
            None,
            New {
                kind: ObjectKind::ExtensionMemberAcl,
                schema: ext_obj.and_then(|e| bld.objects[e as usize].schema.clone()),
                name: target.clone(),
                identity: format!("privileges on extension member {target}"),
                owner: None,
                section: Section::PreData,
                create: String::new(),
                drop: None,
            },
        );
        bld.obj(id).acl_sql = stmts;
        if let Some(e) = ext_obj {
            bld.obj(id).belongs_to = Some(e);
            bld.dep_obj(id, e);
        }
    }
    Ok(())
}

async fn read_extension_tables(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    for r in q(
        client,
        "extension configuration tables",
        "SELECT e.oid AS ext, c.oid, n.nspname::text AS schema, c.relname::text AS name, \
         NULLIF(x.cond, '') AS condition, \
         (SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a \
            WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns \
         FROM pg_catalog.pg_extension e, \
         LATERAL ROWS FROM (pg_catalog.unnest(e.extconfig), pg_catalog.unnest(e.extcondition)) AS x(relid, cond) \
         JOIN pg_catalog.pg_class c ON c.oid = x.relid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' ORDER BY 3, 4",
    )
    .await?
    {
        let Some(ext) = bld.keys.get(&(PG_EXTENSION, u(&r, "ext"))).copied() else {
            continue;
        };
        bld.extension_tables.push(ExtensionTableInfo {
            extension_object_id: ext,
            oid: u(&r, "oid"),
            schema: s(&r, "schema"),
            name: s(&r, "name"),
            columns: arr(&r, "columns"),
            condition: os(&r, "condition"),
        });
    }
    Ok(())
}

async fn read_large_objects(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let sql = format!(
        "SELECT l.oid, pg_catalog.pg_get_userbyid(l.lomowner)::text AS owner, {} AS acl \
         FROM pg_catalog.pg_largeobject_metadata l ORDER BY 1",
        acl_json_sql("l.lomacl")
    );
    for r in q(client, "large objects", &sql).await? {
        let oid = u(&r, "oid");
        let owner = s(&r, "owner");
        let on = format!("LARGE OBJECT {oid}");
        let id = bld.add(
            Some((PG_LARGEOBJECT_METADATA, oid)),
            New {
                kind: ObjectKind::LargeObject,
                schema: None,
                name: oid.to_string(),
                identity: format!("large object {oid}"),
                owner: Some(owner.clone()),
                section: Section::PreData,
                create: format!("SELECT pg_catalog.lo_create('{oid}');"),
                drop: Some(format!("SELECT pg_catalog.lo_unlink('{oid}');")),
            },
        );
        bld.owned_with_acl(
            id,
            (PG_LARGEOBJECT_METADATA, oid),
            on,
            &owner,
            os(&r, "acl").as_deref(),
        );
        bld.large_objects.push(LargeObjectInfo {
            object_id: id,
            oid,
            owner,
        });
    }
    Ok(())
}

/// `name=value` of pg_db_role_setting as a SET clause.
fn set_clause(item: &str) -> String {
    let (k, v) = item.split_once('=').unwrap_or((item, ""));
    let list_vars = [
        "search_path",
        "temp_tablespaces",
        "session_preload_libraries",
        "shared_preload_libraries",
        "local_preload_libraries",
    ];
    // A name the server would fold (a custom setting's `MyApp.Flag`) keeps
    // its case quoted; a dotted one parses as one quoted name too.
    let name = if k
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        && !k.starts_with(|c: char| c.is_ascii_digit())
    {
        k.to_string()
    } else {
        ident(k)
    };
    if list_vars.contains(&k.to_ascii_lowercase().as_str()) && !v.is_empty() {
        // Stored as the list's text, elements quoted where needed; each
        // element becomes a literal, as pg_dump writes it (`""`, an empty
        // element, is no identifier SQL takes).
        let items: Vec<String> = guc_list(v).iter().map(|i| literal(i)).collect();
        format!("SET {name} TO {}", items.join(", "))
    } else {
        format!("SET {name} TO {}", literal(v))
    }
}

/// The elements of a list setting as stored (`a, "B c", ""`), as the
/// server's SplitGUCList reads them: whitespace around elements dropped,
/// double quotes removed (a doubled one inside kept once), no case folding.
fn guc_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = v.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut item = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                if c == '"' {
                    if chars.next_if_eq(&'"').is_some() {
                        item.push('"');
                    } else {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
        } else {
            while let Some(c) = chars.next_if(|&c| c != ',' && !c.is_whitespace()) {
                item.push(c);
            }
        }
        out.push(item);
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&',').is_none() {
            return out;
        }
    }
}

async fn read_database(
    client: &Client,
    bld: &mut Builder,
    dboid: u32,
    dbowner: &str,
) -> Result<(), SchemaError> {
    let db = DATABASE_PLACEHOLDER;
    let mut create = Vec::new();
    for r in q(
        client,
        "database settings",
        &format!(
            "SELECT CASE WHEN s.setrole = 0 THEN NULL ELSE pg_catalog.pg_get_userbyid(s.setrole)::text END AS role, \
             s.setconfig FROM pg_catalog.pg_db_role_setting s WHERE s.setdatabase = {dboid} ORDER BY 1 NULLS FIRST"
        ),
    )
    .await?
    {
        for item in arr(&r, "setconfig") {
            match os(&r, "role") {
                None => create.push(format!("ALTER DATABASE {db} {};", set_clause(&item))),
                Some(role) => create.push(format!(
                    "ALTER ROLE {} IN DATABASE {db} {};",
                    ident(&role),
                    set_clause(&item)
                )),
            }
        }
    }
    let acl = q(
        client,
        "database acl",
        &format!(
            "SELECT {} AS acl FROM pg_catalog.pg_database d WHERE d.oid = {dboid}",
            acl_json_sql("d.datacl")
        ),
    )
    .await?;
    let acl = parse_acl(os(&acl[0], "acl").as_deref());
    let id = bld.add(
        Some((PG_DATABASE, dboid)),
        New {
            kind: ObjectKind::Database,
            schema: None,
            name: String::new(),
            identity: "database".into(),
            owner: Some(dbowner.to_string()),
            // Last: settings such as default_transaction_read_only must not
            // affect the restore's own sessions.
            section: Section::PostData,
            create: create.join("\n"),
            drop: None,
        },
    );
    let on = format!("DATABASE {db}");
    bld.obj(id).acl_sql = acl_statements(&on, Some(dbowner), &acl);
    bld.target((PG_DATABASE, dboid), id, on);
    Ok(())
}

async fn read_comments(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    let rows = q(
        client,
        "comments",
        "SELECT d.objoid, d.classoid, d.objsubid, d.description, NULL::text AS provider \
         FROM pg_catalog.pg_description d \
         WHERE d.objoid >= 16384 OR d.classoid = 'pg_catalog.pg_largeobject'::pg_catalog.regclass \
         UNION ALL SELECT d.objoid, d.classoid, 0, d.description, NULL FROM pg_catalog.pg_shdescription d \
         WHERE d.classoid = 1262 AND d.objoid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) \
         UNION ALL SELECT l.objoid, l.classoid, l.objsubid, l.label, l.provider FROM pg_catalog.pg_seclabel l \
         UNION ALL SELECT l.objoid, l.classoid, 0, l.label, l.provider FROM pg_catalog.pg_shseclabel l \
         WHERE l.classoid = 1262 AND l.objoid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()) \
         ORDER BY 2, 1, 3, 5 NULLS FIRST",
    )
    .await?;
    // The public schema's comment comes from template1: look it up too.
    let public_comment = q(
        client,
        "public schema comment",
        "SELECT n.oid, pg_catalog.obj_description(n.oid, 'pg_namespace') AS c \
         FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'",
    )
    .await?;
    let mut rows: Vec<(u32, u32, i32, String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                u(r, "objoid"),
                u(r, "classoid"),
                r.get::<_, i32>("objsubid"),
                s(r, "description"),
                os(r, "provider"),
            )
        })
        .collect();
    for r in &public_comment {
        let oid = u(r, "oid");
        if oid < 16384 {
            // Always restate it: the target's template may differ.
            match os(r, "c") {
                Some(c) => rows.push((oid, PG_NAMESPACE, 0, c, None)),
                None => rows.push((oid, PG_NAMESPACE, -1, String::new(), None)),
            }
        }
    }
    for (objoid, classoid, subid, text, provider) in rows {
        let Some(t) = bld.targets.get(&(classoid, objoid)) else {
            continue;
        };
        let object = t.object;
        let on = if subid > 0 {
            let Some(col) = bld.columns.get(&(objoid, subid as i16)) else {
                continue;
            };
            let Some(qn) = bld.qnames.get(&objoid) else {
                continue;
            };
            format!("COLUMN {qn}.{}", ident(col))
        } else {
            t.on.clone()
        };
        let stmt = match (&provider, subid) {
            (Some(p), _) => security_label(&on, p, &text),
            (None, -1) => format!("COMMENT ON {on} IS NULL;"),
            (None, _) => comment_on(&on, &text),
        };
        bld.obj(object).comment_sql.push(stmt);
    }
    Ok(())
}

async fn read_dependencies(client: &Client, bld: &mut Builder) -> Result<(), SchemaError> {
    // Array types and row types map to their element / relation.
    for r in q(
        client,
        "array and row types",
        "SELECT t.typarray AS alias, 1247::pg_catalog.oid AS class, t.oid FROM pg_catalog.pg_type t \
         WHERE t.typarray <> 0 AND t.oid >= 16384 \
         UNION ALL SELECT c.reltype, 1259::pg_catalog.oid, c.oid FROM pg_catalog.pg_class c \
         WHERE c.reltype <> 0 AND c.oid >= 16384",
    )
    .await?
    {
        let alias = u(&r, "alias");
        let target = (u(&r, "class"), u(&r, "oid"));
        if bld.keys.contains_key(&(PG_TYPE, alias)) {
            continue;
        }
        if let Some(o) = bld.resolve(target) {
            bld.keys.insert((PG_TYPE, alias), o);
        }
    }
    // Multirange array types (their element was mapped above).
    for r in q(
        client,
        "multirange arrays",
        "SELECT t.typarray AS alias, t.oid FROM pg_catalog.pg_type t \
         WHERE t.typtype = 'm' AND t.oid >= 16384",
    )
    .await?
    {
        if let Some(o) = bld.resolve((PG_TYPE, u(&r, "oid"))) {
            bld.keys.entry((PG_TYPE, u(&r, "alias"))).or_insert(o);
        }
    }
    let rows = q(
        client,
        "dependencies",
        "SELECT classid, objid, refclassid, refobjid FROM pg_catalog.pg_depend \
         WHERE deptype IN ('n', 'a', 'i', 'P', 'S') AND objid >= 16384 AND refobjid >= 16384",
    )
    .await?;
    let mut edges: Vec<(u32, u32)> = Vec::new();
    for r in &rows {
        let from_key = (u(r, "classid"), u(r, "objid"));
        let to_key = (u(r, "refclassid"), u(r, "refobjid"));
        if bld.ignore_edges.contains(&(from_key, to_key)) {
            continue;
        }
        // Extension members are not dumped: their own edges do not count.
        if bld.ext_members.contains_key(&from_key) {
            continue;
        }
        let (Some(from), Some(mut to)) = (bld.keys.get(&from_key).copied(), bld.resolve(to_key))
        else {
            continue;
        };
        if let Some(&r) = bld.redirect.get(&(from_key.1, to_key)) {
            to = r;
        }
        edges.push((from, to));
        bld.edge_src.push((from_key, from, to));
    }
    let extra = std::mem::take(&mut bld.extra_deps);
    for (from, key) in extra {
        if let Some(to) = bld.resolve(key) {
            edges.push((from, to));
        }
    }
    for (from, to) in edges {
        bld.dep_obj(from, to);
    }
    for (id, key) in std::mem::take(&mut bld.pending_belongs) {
        if let Some(t) = bld.resolve(key) {
            bld.obj(id).belongs_to = Some(t);
        }
    }
    for (id, key) in std::mem::take(&mut bld.pending_refs) {
        if let Some(t) = bld.resolve(key) {
            bld.obj(id).references = Some(t);
        }
    }
    // Refreshes of materialized views wait for the refreshes of the
    // materialized views they read.
    let refresh_of: HashMap<u32, u32> = bld
        .objects
        .iter()
        .filter(|o| o.kind == ObjectKind::MatviewRefresh)
        .filter_map(|o| o.belongs_to.map(|m| (m, o.id)))
        .collect();
    let mut add = Vec::new();
    for (&mv, &rf) in &refresh_of {
        for d in &bld.objects[mv as usize].deps {
            if let Some(&other) = refresh_of.get(d) {
                add.push((rf, other));
            }
        }
    }
    for (a, c) in add {
        bld.dep_obj(a, c);
    }
    for o in &mut bld.objects {
        o.deps.sort_unstable();
        o.deps.dedup();
    }
    Ok(())
}

/// Break dependency cycles the way pg_dump does where we know how: a view
/// on a cycle is created first as a placeholder with the right columns,
/// and its real definition follows as `CREATE OR REPLACE VIEW`.
fn break_cycles(bld: &mut Builder) {
    // Every round splits at least one view, default or check (each only
    // once), so this ends.
    loop {
        let comps = cycles(&bld.objects);
        if comps.is_empty() {
            return;
        }
        let mut changed = false;
        for comp in comps {
            if split_defaults_on_cycle(bld, &comp) || split_checks_on_cycle(bld, &comp) {
                changed = true;
                continue;
            }
            let Some(&v) = comp.iter().find(|&&i| {
                bld.objects[i as usize].kind == ObjectKind::View
                    && bld.view_placeholders.contains_key(&i)
            }) else {
                continue;
            };
            let placeholder = bld.view_placeholders.remove(&v).unwrap();
            let view = bld.objects[v as usize].clone();
            let real = view
                .create
                .replacen("CREATE VIEW", "CREATE OR REPLACE VIEW", 1);
            let def = bld.add(
                None,
                New {
                    kind: ObjectKind::View,
                    schema: view.schema.clone(),
                    name: view.name.clone(),
                    identity: format!("definition of {}", view.identity),
                    owner: None,
                    section: Section::PreData,
                    create: real,
                    drop: None,
                },
            );
            let keep: BTreeSet<u32> = comp.iter().copied().collect();
            let o = &mut bld.objects[v as usize];
            let old_deps = std::mem::take(&mut o.deps);
            // The placeholder keeps only its dependencies off the cycle.
            o.deps = old_deps
                .iter()
                .copied()
                .filter(|d| !keep.contains(d))
                .collect();
            o.create = placeholder;
            let d = &mut bld.objects[def as usize];
            d.deps = old_deps;
            d.deps.push(v);
            d.belongs_to = Some(v);
            changed = true;
        }
        if !changed {
            return;
        }
    }
}

/// What the two cycle splitters below share: a table's parts (column
/// defaults, inline checks) are addressed in `catalog` by their own oids,
/// and their pg_depend edges were recorded against the table.
impl Builder {
    /// The parts among `oids` whose dependencies reach into the cycle.
    fn cyclic_parts(
        &self,
        t: u32,
        catalog: u32,
        oids: &HashSet<u32>,
        on_cycle: &BTreeSet<u32>,
    ) -> HashSet<u32> {
        self.edge_src
            .iter()
            .filter(|(k, from, to)| {
                *from == t && k.0 == catalog && oids.contains(&k.1) && on_cycle.contains(to)
            })
            .map(|(k, _, _)| k.1)
            .collect()
    }

    /// The table's dependencies once the `cyclic` parts are split off: every
    /// pg_depend edge but theirs, and every dependency added directly.
    fn deps_without_parts(
        &self,
        t: u32,
        catalog: u32,
        cyclic: &HashSet<u32>,
        deps: &[u32],
    ) -> Vec<u32> {
        let from_depend: BTreeSet<u32> = self
            .edge_src
            .iter()
            .filter(|(_, from, _)| *from == t)
            .map(|(_, _, to)| *to)
            .collect();
        let mut keep: BTreeSet<u32> = self
            .edge_src
            .iter()
            .filter(|(k, from, _)| *from == t && !(k.0 == catalog && cyclic.contains(&k.1)))
            .map(|(_, _, to)| *to)
            .collect();
        keep.extend(deps.iter().filter(|d| !from_depend.contains(d)));
        keep.into_iter().collect()
    }

    /// Adds a part split off table `t` as an object of its own: it depends
    /// on the table and on the part's own pg_depend edges, and belongs to
    /// the table.
    fn add_part(&mut self, t: u32, catalog: u32, oid: u32, new: New) -> u32 {
        let mut deps: Vec<u32> = self
            .edge_src
            .iter()
            .filter(|(k, from, _)| *from == t && k.0 == catalog && k.1 == oid)
            .map(|(_, _, to)| *to)
            .collect();
        deps.push(t);
        deps.sort_unstable();
        deps.dedup();
        let id = self.add(Some((catalog, oid)), new);
        let o = self.obj(id);
        o.deps = deps;
        o.belongs_to = Some(t);
        id
    }

    /// The table once its parts are split off: its CREATE without them and
    /// the dependencies left.
    fn finish_split(&mut self, t: u32, create: String, keep: Vec<u32>) {
        let o = self.obj(t);
        o.create = create;
        o.deps = keep.into_iter().filter(|&d| d != t).collect();
    }
}

/// A table on a cycle through one of its column defaults (a default
/// calling a function that takes the table's row type, ...): move those
/// defaults to `ALTER TABLE ... SET DEFAULT` objects after the cycle, as
/// pg_dump does.
fn split_defaults_on_cycle(bld: &mut Builder, comp: &[u32]) -> bool {
    let on_cycle: BTreeSet<u32> = comp.iter().copied().collect();
    for &t in comp {
        let Some(defaults) = bld.defaults.get(&t) else {
            continue;
        };
        let defoids: HashSet<u32> = defaults.iter().map(|d| d.defoid).collect();
        // Defaults whose dependencies reach into the cycle.
        let cyclic = bld.cyclic_parts(t, PG_ATTRDEF, &defoids, &on_cycle);
        if cyclic.is_empty() {
            continue;
        }
        let defaults = bld.defaults.remove(&t).unwrap();
        let table = bld.objects[t as usize].clone();
        let keep = bld.deps_without_parts(t, PG_ATTRDEF, &cyclic, &table.deps);
        let mut create = table.create.clone();
        for d in defaults.iter().filter(|d| cyclic.contains(&d.defoid)) {
            create = create.replacen(&d.with, &d.without, 1);
            bld.add_part(
                t,
                PG_ATTRDEF,
                d.defoid,
                New {
                    kind: ObjectKind::ColumnDefault,
                    schema: table.schema.clone(),
                    name: format!("{} {}", table.name, d.column),
                    identity: format!("default of {}.{}", table.identity, ident(&d.column)),
                    owner: None,
                    section: Section::PreData,
                    create: d.alter.clone(),
                    drop: None,
                },
            );
        }
        bld.finish_split(t, create, keep);
        return true;
    }
    false
}

/// A pre-data object that depends on a post-data one (a view grouping by
/// a primary key relies on the constraint) moves to post-data, with every
/// pre-data object depending on it, as pg_dump postpones such views.
fn postpone_across_sections(bld: &mut Builder) {
    loop {
        let mut moved = false;
        for i in 0..bld.objects.len() {
            if bld.objects[i].section != Section::PreData {
                continue;
            }
            let late = bld.objects[i]
                .deps
                .iter()
                .any(|&d| bld.objects[d as usize].section == Section::PostData);
            if late {
                bld.objects[i].section = Section::PostData;
                moved = true;
            }
        }
        if !moved {
            return;
        }
    }
}

/// A table on a cycle through one of its inline CHECK constraints (a check
/// calling a function that takes the table's row type): the constraint is
/// added afterwards by `ALTER TABLE ... ADD CONSTRAINT`, as pg_dump does.
fn split_checks_on_cycle(bld: &mut Builder, comp: &[u32]) -> bool {
    let on_cycle: BTreeSet<u32> = comp.iter().copied().collect();
    for &t in comp {
        let Some(checks) = bld.inline_checks.get(&t) else {
            continue;
        };
        let oids: HashSet<u32> = checks.iter().map(|d| d.defoid).collect();
        let cyclic = bld.cyclic_parts(t, PG_CONSTRAINT, &oids, &on_cycle);
        if cyclic.is_empty() {
            continue;
        }
        let checks = bld.inline_checks.remove(&t).unwrap();
        let table = bld.objects[t as usize].clone();
        let keep = bld.deps_without_parts(t, PG_CONSTRAINT, &cyclic, &table.deps);
        let mut create = table.create.clone();
        for c in checks.iter().filter(|c| cyclic.contains(&c.defoid)) {
            let item = &c.with;
            let before = create.clone();
            for pattern in [
                format!(",\n    {item}"),
                format!("{item},\n    "),
                item.clone(),
            ] {
                create = create.replacen(&pattern, "", 1);
                if create != before {
                    break;
                }
            }
            let id = bld.add_part(
                t,
                PG_CONSTRAINT,
                c.defoid,
                New {
                    kind: ObjectKind::CheckConstraint,
                    schema: table.schema.clone(),
                    name: c.column.clone(),
                    identity: format!("constraint {} on {}", ident(&c.column), table.identity),
                    owner: None,
                    section: Section::PreData,
                    create: c.alter.clone(),
                    drop: None,
                },
            );
            // Comments on the constraint go with its new object.
            let comments: Vec<String> = bld.objects[t as usize]
                .comment_sql
                .iter()
                .filter(|s| {
                    s.starts_with(&format!("COMMENT ON CONSTRAINT {} ON", ident(&c.column)))
                })
                .cloned()
                .collect();
            bld.objects[t as usize]
                .comment_sql
                .retain(|s| !comments.contains(s));
            bld.obj(id).comment_sql = comments;
        }
        bld.finish_split(t, create, keep);
        return true;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(num: i16, name: &str, inhcount: i32) -> Column {
        Column {
            num,
            name: name.into(),
            typ: "integer".into(),
            typid: 23,
            blank_padded: false,
            notnull: false,
            default: None,
            defoid: None,
            identity: String::new(),
            generated: String::new(),
            dropped: false,
            local: inhcount == 0,
            inhcount,
            collation: None,
            storage: "p".into(),
            typstorage: "p".into(),
            compression: String::new(),
            stattarget: -1,
            options: vec![],
            fdwoptions: vec![],
            acl: None,
        }
    }

    #[test]
    fn inherits_order() {
        let mut cols = HashMap::new();
        cols.insert(1, vec![col(1, "a", 0), col(2, "b", 0)]);
        cols.insert(2, vec![col(1, "c", 0), col(2, "a", 0)]);
        // Parents' columns first, merged by name, then the child's own.
        let child = [
            col(1, "a", 2),
            col(2, "b", 1),
            col(3, "c", 1),
            col(4, "z", 0),
        ];
        let live: Vec<&Column> = child.iter().collect();
        assert!(inherits_order_matches(&live, &[1, 2], &cols));
        // A child column before the inherited ones cannot come from INHERITS.
        let child = [col(1, "z", 0), col(2, "a", 1), col(3, "b", 1)];
        let live: Vec<&Column> = child.iter().collect();
        assert!(!inherits_order_matches(&live, &[1], &cols));
        // Nor can inherited columns in another order.
        let child = [col(1, "b", 1), col(2, "a", 1)];
        let live: Vec<&Column> = child.iter().collect();
        assert!(!inherits_order_matches(&live, &[1], &cols));
    }

    #[test]
    fn database_settings() {
        assert_eq!(set_clause("work_mem=8MB"), "SET work_mem TO '8MB'");
        assert_eq!(
            set_clause("search_path=kinds, public, \"$user\""),
            "SET search_path TO 'kinds', 'public', '$user'"
        );
        assert_eq!(set_clause("search_path="), "SET search_path TO ''");
        assert_eq!(set_clause("search_path=\"\""), "SET search_path TO ''");
        assert_eq!(
            set_clause("search_path=\"a \"\"b\"\"\",c"),
            "SET search_path TO 'a \"b\"', 'c'"
        );
        assert_eq!(set_clause("x.y=it's"), "SET x.y TO 'it''s'");
        assert_eq!(set_clause("MyApp.Flag=On"), "SET \"MyApp.Flag\" TO 'On'");
    }
}
