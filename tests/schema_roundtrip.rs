//! Schema round trip: load a fixture into a fresh database, read its schema
//! with `pgsnap::schema::read_schema` (inside a REPEATABLE READ snapshot),
//! serialize the model to JSON and back, apply pre-data and post-data to a
//! second fresh database, then compare `pg_dump --schema-only` of both (the
//! independent oracle) and every table's columns in attnum order (what
//! pg_dump cannot see).
mod common;
use common::{diff, fixture_rows, normalise};

use std::path::{Path, PathBuf};

use pgsnap::schema::{self, ApplyOptions, ObjectKind, SchemaModel, Section, TableRef};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

async fn read(url: &str) -> SchemaModel {
    read_with(url, true).await
}

async fn read_with(url: &str, lock_tables: bool) -> SchemaModel {
    let c = connect(url).await;
    c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .unwrap();
    let opts = schema::ReadOptions { lock_tables };
    let m = match schema::read_schema_with(&c, &opts).await {
        Ok(m) => m,
        Err(e) => panic!("read_schema: {e}"),
    };
    // The deparser settings are restored; search_path stays empty.
    let qa: String = c
        .query_one("SHOW quote_all_identifiers", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(qa, "off");
    let sp: String = c.query_one("SHOW search_path", &[]).await.unwrap().get(0);
    assert_eq!(sp, "");
    c.batch_execute("COMMIT").await.unwrap();
    m
}

const COLUMNS_SQL: &str = "SELECT attrelid::regclass::text || ' ' || attname || ' ' || \
    atttypid::regtype::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
    JOIN pg_namespace n ON n.oid = c.relnamespace \
    WHERE attnum > 0 AND NOT attisdropped AND c.relkind IN ('r','p','v','m','f','c') \
    AND n.nspname NOT IN ('pg_catalog','information_schema','pg_toast') \
    ORDER BY attrelid::regclass::text, attnum";

const LARGE_OBJECTS_SQL: &str = "SELECT l.oid, l.lomowner::regrole, l.lomacl, \
    obj_description(l.oid, 'pg_largeobject') FROM pg_largeobject_metadata l ORDER BY 1";

fn database_state(pg: &common::Cluster, db: &str) -> String {
    let sql = format!(
        "SELECT coalesce(r.rolname, '-') || ' ' || s.setconfig::text FROM pg_db_role_setting s \
         JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole \
         WHERE d.datname = '{db}' UNION ALL \
         SELECT 'comment ' || coalesce(shobj_description(d.oid, 'pg_database'), '') || ' acl ' || \
         coalesce(d.datacl::text, '') FROM pg_database d WHERE d.datname = '{db}' ORDER BY 1"
    );
    pg.psql("postgres", &sql)
        .replace(&format!("\"{db}\""), "DBNAME")
        .replace(db, "DBNAME")
}

/// Every object comes after its dependencies in its section, and no
/// pre-data object depends on a post-data one.
fn check_order(m: &SchemaModel) {
    for section in [Section::PreData, Section::PostData] {
        let order = m.ordered(section);
        assert_eq!(
            order.len(),
            m.objects.iter().filter(|o| o.section == section).count()
        );
        let mut pos = std::collections::HashMap::new();
        for (i, o) in order.iter().enumerate() {
            pos.insert(o.id, i);
        }
        for (i, o) in order.iter().enumerate() {
            for d in &o.deps {
                let dep = m.object(*d);
                if section == Section::PreData {
                    assert_ne!(
                        dep.section,
                        Section::PostData,
                        "{} (pre-data) depends on {} (post-data)",
                        o.identity,
                        dep.identity
                    );
                }
                if let Some(&j) = pos.get(d) {
                    assert!(
                        j < i,
                        "{} comes before its dependency {}",
                        o.identity,
                        dep.identity
                    );
                }
            }
        }
    }
}

/// Load `file` (with psql `-v` vars), round-trip the schema, compare.
/// Returns the model for further checks.
fn roundtrip(file: &Path, vars: &[(&str, &str)]) -> SchemaModel {
    let pg = common::pg();
    let stem = file.file_stem().unwrap().to_string_lossy().to_string();
    let src = pg.create_db(&format!("src_{stem}"));
    let dst = pg.create_db(&format!("dst_{stem}"));
    pg.psql_file(&src, file, vars);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let model = rt.block_on(async {
        let m = read(&pg.url(&src)).await;
        let json = m.to_json().unwrap();
        let m2 = SchemaModel::from_json(&json).unwrap();
        assert_eq!(m, m2, "JSON round trip changed the model");
        check_order(&m2);
        let c = connect(&pg.url(&dst)).await;
        let opts = ApplyOptions {
            target_db_name: dst.clone(),
            ..Default::default()
        };
        for section in [Section::PreData, Section::PostData] {
            let objs = m2.ordered(section);
            if let Err(e) = schema::apply(&c, &m2, &objs, &opts).await {
                panic!("apply {section:?} of {stem}: {e}");
            }
        }
        m2
    });
    let a = normalise(&pg.schema_dump(&src), &src);
    let b = normalise(&pg.schema_dump(&dst), &dst);
    if a != b {
        panic!(
            "pg_dump --schema-only differs for {stem}:\n{}",
            diff(&a, &b)
        );
    }
    for sql in [COLUMNS_SQL, LARGE_OBJECTS_SQL] {
        let ca = pg.psql(&src, sql);
        let cb = pg.psql(&dst, sql);
        if ca != cb {
            panic!("{stem}: {sql} differs:\n{}", diff(&ca, &cb));
        }
    }
    // Database-level state pg_dump --schema-only does not show.
    let (da, db) = (database_state(pg, &src), database_state(pg, &dst));
    if da != db {
        panic!("{stem}: database settings differ:\n{}", diff(&da, &db));
    }
    let ca = pg.psql(&src, COLUMNS_SQL);
    let cb = pg.psql(&dst, COLUMNS_SQL);
    if ca != cb {
        panic!("column order differs for {stem}:\n{}", diff(&ca, &cb));
    }
    pg.drop_db(&src);
    pg.drop_db(&dst);
    model
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schema_fixtures")
        .join(name)
}

#[test]
fn quran_backend_roundtrip() {
    let m = roundtrip(
        &common::shared("fixtures/quran_backend.sql"),
        &[("scale", "0")],
    );
    let t = m
        .tables
        .iter()
        .find(|t| t.name == "auth_user")
        .expect("auth_user");
    assert_eq!(
        schema::copy_out_sql(t),
        "COPY \"public\".\"auth_user\" (\"id\", \"username\", \"email\", \"password\", \
         \"is_active\", \"date_joined\", \"last_login\") TO STDOUT"
    );
    // The same DDL as a script runs with psql too.
    let pg = common::pg();
    let db = pg.create_db("script");
    let mut script = String::new();
    for section in [Section::PreData, Section::PostData] {
        let opts = ApplyOptions {
            target_db_name: db.clone(),
            ..Default::default()
        };
        script.push_str(&schema::sql_script(&m.ordered(section), &opts));
    }
    let path = std::env::temp_dir().join(format!("{db}.sql"));
    std::fs::write(&path, &script).unwrap();
    pg.psql_file(&db, &path, &[]);
    let _ = std::fs::remove_file(&path);
    let cols = "SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.auth_user'::regclass AND attnum > 0";
    assert_eq!(pg.psql(&db, cols).trim(), "7");
    pg.drop_db(&db);
    let c = m.closure(&[schema::TableRef::new("public", "bookmarks_bookmark")]);
    assert_eq!(c.skipped_fks.len(), 2, "{:?}", c.skipped_fks);
    assert!(c.extra_relations.is_empty());
}

#[test]
fn inheritance_roundtrip() {
    let m = roundtrip(&fixture("inheritance.sql"), &[]);
    let events = m.find_relation("inh", "events").unwrap();
    let names: Vec<&str> = m
        .descendants(events.id)
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(
        names,
        [
            "events_2025",
            "events_2025_login",
            "events_2025_other",
            "events_2026",
            "events_default"
        ]
    );
    // A partition alone: restored standalone, its attachment reported.
    let c = m.closure(&[TableRef::new("inh", "events_2026")]);
    assert!(c
        .skipped
        .iter()
        .any(|s| s.identity.starts_with("partition \"inh\".\"events_2026\"")));
    // A child created with INHERITS needs its parent's definition (only
    // that: child_natural, whose columns were reordered by a later ADD
    // COLUMN on its own parent, is created standalone and attached).
    let c = m.closure(&[TableRef::new("inh", "grandchild")]);
    let extra: Vec<&str> = c
        .extra_relations
        .iter()
        .map(|&id| m.object(id).name.as_str())
        .collect();
    assert_eq!(extra, ["child_natural"]);
}

#[test]
fn names_roundtrip() {
    let m = roundtrip(&fixture("names.sql"), &[]);
    let attach = m
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::TableAttach && o.name == "ki$pgsnap$d")
        .expect("attach of the reordered child");
    assert!(attach.create.contains("DO $pgsnap_$"), "{}", attach.create);
}

#[test]
fn kinds_roundtrip() {
    let m = roundtrip(&fixture("kinds.sql"), &[]);
    // The view/function cycle was broken with a placeholder view.
    assert!(
        m.objects
            .iter()
            .any(|o| o.identity == "definition of view \"kinds\".\"v\""),
        "no placeholder for the view cycle"
    );
    // Extension members are not objects of their own.
    assert!(!m
        .objects
        .iter()
        .any(|o| o.name == "citext" && o.kind != ObjectKind::Extension));
    assert_eq!(m.large_objects.len(), 2);
    let mv = m.matviews.iter().find(|v| v.name == "mv_empty").unwrap();
    assert!(!mv.populated);
}

#[test]
fn edge_roundtrip() {
    let m = roundtrip(&fixture("edge.sql"), &[]);
    // The default/function cycle was broken by splitting the default off.
    let d = m
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::ColumnDefault)
        .expect("split default");
    assert_eq!(d.identity, "default of table \"edge\".\"cyc\".\"label\"");
    // The check/function cycle was broken by adding the check afterwards.
    let c = m
        .objects
        .iter()
        .find(|o| o.kind == ObjectKind::CheckConstraint && o.name == "chk_row")
        .expect("split check");
    assert_eq!(c.section, Section::PreData);
    assert_eq!(c.comment_sql.len(), 1);
    // Views relying on a primary key are postponed to post-data.
    for v in ["grp_v", "grp_v2"] {
        assert_eq!(
            m.find_relation("edge", v).unwrap().section,
            Section::PostData
        );
    }
    assert_eq!(
        m.find_relation("edge", "v").unwrap().section,
        Section::PreData
    );
    // Objects come out in the same order every time.
    let a: Vec<u32> = m.ordered(Section::PreData).iter().map(|o| o.id).collect();
    let b: Vec<u32> = m.ordered(Section::PreData).iter().map(|o| o.id).collect();
    assert_eq!(a, b);
}

/// Tablespaces (a directory owned by the server's OS user) and table
/// access methods.
#[test]
fn storage_roundtrip() {
    common::pg().ensure_tablespace("fx_space");
    roundtrip(&fixture("storage.sql"), &[]);
}

/// A backup may run as an unprivileged role: reading the schema needs only
/// the catalogs, and gives the same model as a superuser's read.
#[test]
fn unprivileged_role_reads_the_same_model() {
    let pg = common::pg();
    let db = pg.create_db("unpriv");
    pg.psql_file(&db, &fixture("basics.sql"), &[]);
    pg.psql(
        "postgres",
        "DO $$ BEGIN CREATE ROLE fx_unpriv LOGIN; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let as_super = rt.block_on(read(&pg.url(&db)));
    let url = pg.url(&db).replacen("postgres@", "fx_unpriv@", 1);
    // Without table privileges it cannot lock the tables: it fails
    // clearly with the default options, and reads without the locks.
    let failed = rt.block_on(async {
        let c = connect(&url).await;
        c.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .unwrap();
        schema::read_schema(&c).await.map(|_| ())
    });
    let err = failed.expect_err("locking without privileges").to_string();
    assert!(err.contains("locking tables"), "{err}");
    let as_user = rt.block_on(read_with(&url, false));
    assert_eq!(as_super.objects, as_user.objects);
    pg.drop_db(&db);
}

/// Extension configuration tables are listed for the data phase (the
/// registration is faked in the catalog: only an extension script may call
/// pg_extension_config_dump).
#[test]
fn extension_config_tables_are_listed() {
    let pg = common::pg();
    let db = pg.create_db("extcfg");
    pg.psql(
        &db,
        "CREATE EXTENSION hstore; CREATE TABLE public.cfg (id int, v text, g int GENERATED ALWAYS AS (id) STORED); \
         ALTER EXTENSION hstore ADD TABLE public.cfg; \
         UPDATE pg_extension SET extconfig = ARRAY['public.cfg'::regclass::oid], \
           extcondition = ARRAY['WHERE id > 1'] WHERE extname = 'hstore'",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(read(&pg.url(&db)));
    assert_eq!(m.extension_tables.len(), 1);
    let t = &m.extension_tables[0];
    assert_eq!((t.schema.as_str(), t.name.as_str()), ("public", "cfg"));
    assert_eq!(t.columns, vec!["id", "v"]);
    assert_eq!(t.condition.as_deref(), Some("WHERE id > 1"));
    assert_eq!(m.object(t.extension_object_id).name, "hstore");
    // The table itself is an extension member, not an object of its own.
    assert!(m.find_relation("public", "cfg").is_none());
    assert!(!m.tables.iter().any(|t| t.name == "cfg"));
    pg.drop_db(&db);
}

/// The whole flow the backup and restore run: pre-data, every table's rows
/// copied with `copy_out_sql` / `copy_in_sql`, post-data; then every table
/// reads back the same as text (`SELECT t::text`), which also checks the
/// column order of inheritance children that pg_dump gets wrong.
#[test]
fn data_roundtrip_keeps_row_text() {
    data_roundtrip("inheritance.sql", fixture_rows("inheritance.sql"));
}

/// Identity ALWAYS and generated columns, forced RLS, triggers and NOT
/// VALID constraints around the data.
#[test]
fn data_roundtrip_basics() {
    data_roundtrip("basics.sql", fixture_rows("basics.sql"));
}

fn data_roundtrip(fixture_file: &str, inserts: &str) {
    use futures::{pin_mut, SinkExt, StreamExt};
    let pg = common::pg();
    let src = pg.create_db("data_src");
    let dst = pg.create_db("data_dst");
    pg.psql_file(&src, &fixture(fixture_file), &[]);
    pg.psql(&src, inserts);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(read(&pg.url(&src)));
    rt.block_on(async {
        let from = connect(&pg.url(&src)).await;
        let to = connect(&pg.url(&dst)).await;
        let opts = ApplyOptions {
            target_db_name: dst.clone(),
            ..Default::default()
        };
        let pre = m.ordered(Section::PreData);
        schema::apply(&to, &m, &pre, &opts).await.unwrap();
        for t in m.tables.iter().filter(|t| t.has_data) {
            let out = from.copy_out(&schema::copy_out_sql(t)).await.unwrap();
            let sink = to.copy_in(&schema::copy_in_sql(t)).await.unwrap();
            pin_mut!(out);
            pin_mut!(sink);
            while let Some(chunk) = out.next().await {
                sink.send(chunk.unwrap()).await.unwrap();
            }
            sink.finish().await.unwrap();
        }
        let post = m.ordered(Section::PostData);
        if let Err(e) = schema::apply(&to, &m, &post, &opts).await {
            panic!("post-data after the data: {e}");
        }
    });
    for t in &m.tables {
        let sql = format!(
            "SELECT t::text FROM ONLY {} t ORDER BY 1",
            schema::ddl::qualify(&t.schema, &t.name)
        );
        let (a, b) = (pg.psql(&src, &sql), pg.psql(&dst, &sql));
        assert_eq!(a, b, "rows of {}.{} differ", t.schema, t.name);
    }
    pg.drop_db(&src);
    pg.drop_db(&dst);
}

/// Restore only the closure of one table into an empty database, without
/// owners and privileges: it must apply cleanly, skip the foreign key to the
/// table left out, and give the table its columns.
#[test]
fn closure_of_one_table_applies_alone() {
    let pg = common::pg();
    let src = pg.create_db("closure_src");
    let dst = pg.create_db("closure_dst");
    pg.psql_file(&src, &fixture("basics.sql"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let m = rt.block_on(read(&pg.url(&src)));
    let c = m.closure(&[TableRef::new("app", "line")]);
    assert!(c.unknown_tables.is_empty());
    assert_eq!(c.skipped_fks.len(), 1, "{:?}", c.skipped_fks);
    assert!(c.skipped_fks[0].identity.contains("line_order_id_fkey"));
    let order = m.find_relation("app", "Order").unwrap();
    assert!(!c.objects.contains(&order.id), "other tables are not taken");
    rt.block_on(async {
        let client = connect(&pg.url(&dst)).await;
        let opts = ApplyOptions {
            no_owner: true,
            no_acl: true,
            target_db_name: dst.clone(),
            ..Default::default()
        };
        for section in [Section::PreData, Section::PostData] {
            let objs = m.ordered_subset(section, &c.objects);
            if let Err(e) = schema::apply(&client, &m, &objs, &opts).await {
                panic!("apply closure: {e}");
            }
        }
    });
    let cols = "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute \
        WHERE attrelid = 'app.line'::regclass AND attnum > 0 AND NOT attisdropped";
    assert_eq!(pg.psql(&src, cols), pg.psql(&dst, cols));
    let n = "SELECT count(*) FROM pg_policy WHERE polrelid = 'app.line'::regclass";
    assert_eq!(pg.psql(&dst, n).trim(), "2");
    let owner = "SELECT relowner::regrole FROM pg_class WHERE oid = 'app.line'::regclass";
    assert_eq!(pg.psql(&dst, owner).trim(), "postgres");
    pg.drop_db(&src);
    pg.drop_db(&dst);
}

macro_rules! fixture_tests {
    ($($name:ident => $file:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                roundtrip(&fixture($file), &[]);
            }
        )*
    };
}

fixture_tests! {
    basics_roundtrip => "basics.sql",
}
