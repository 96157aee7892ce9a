//! Backups of a managed database (roles, schemas and grants the platform
//! made, with their real names), taken as a non-superuser with read access,
//! restore onto a plain server without flags,
//! and come back exactly where the platform's roles exist; an ordinary
//! missing role still refuses the restore before any change.
//!
//! Role names are cluster-global: each test uses names no other test uses,
//! and the provider roles live only inside `provider_names_*` below.
mod common;

use common::{backup_url, pg, restore_output, table_contents, Cluster, Workdir};

/// A source database as an RDS master user's would look: the application
/// role owns most things, the platform's roles own or are granted some.
const SOURCE: &str = r#"
CREATE SCHEMA app AUTHORIZATION prov_app;
CREATE SCHEMA aws_commons AUTHORIZATION rdsadmin;
CREATE TABLE app.orders (id serial PRIMARY KEY, note text);
ALTER TABLE app.orders OWNER TO prov_app;
INSERT INTO app.orders (note) SELECT 'order ' || g FROM generate_series(1, 500) g;
CREATE TABLE app.audit (id int, what text);
ALTER TABLE app.audit OWNER TO rdsadmin;
INSERT INTO app.audit VALUES (1, 'created'), (2, 'checked');
GRANT SELECT ON app.audit TO prov_reader;
GRANT SELECT ON app.orders TO prov_reader;
GRANT SELECT, INSERT ON app.orders TO rds_superuser;
GRANT UPDATE ON app.orders TO rds_superuser WITH GRANT OPTION;
GRANT USAGE ON SCHEMA app TO rds_superuser, prov_reader;
SET ROLE rds_superuser; GRANT UPDATE ON app.orders TO prov_reader; RESET ROLE;
CREATE FUNCTION app.answer() RETURNS int LANGUAGE sql AS 'SELECT 42';
ALTER FUNCTION app.answer() OWNER TO rds_superuser;
REVOKE EXECUTE ON FUNCTION app.answer() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION app.answer() TO prov_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE rdsadmin IN SCHEMA app GRANT SELECT ON TABLES TO prov_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE prov_app IN SCHEMA app GRANT SELECT ON TABLES TO rds_superuser;
ALTER DEFAULT PRIVILEGES FOR ROLE prov_app IN SCHEMA app GRANT SELECT ON TABLES TO prov_reader;
"#;

fn create_roles(pg: &Cluster, names: &[&str]) {
    for r in names {
        pg.psql(
            "postgres",
            &format!(
                "DO $$ BEGIN CREATE ROLE {r}; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            ),
        );
    }
}

fn drop_roles(pg: &Cluster, names: &[&str]) {
    pg.psql(
        "postgres",
        &format!("DROP ROLE IF EXISTS {}", names.join(", ")),
    );
}

/// Backs `db` up as `user` (`None`: the superuser).
fn backup(w: &Workdir, db: &str, user: Option<&str>) -> String {
    let url = match user {
        Some(u) => pg().url(db).replacen("postgres@", &format!("{u}@"), 1),
        None => pg().url(db),
    };
    backup_url(&url, w, &[])
}

/// Owner and ACL of the app objects, the default privileges and the
/// per-role settings: what ownership and grants a restore must reproduce.
fn security(pg: &Cluster, db: &str) -> String {
    pg.psql(
        db,
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ( \
           SELECT format('%s %s %s', c.oid::regclass, pg_get_userbyid(c.relowner), c.relacl) x \
             FROM pg_class c WHERE c.relnamespace = 'app'::regnamespace \
           UNION ALL SELECT format('function %s %s %s', p.oid::regprocedure, \
             pg_get_userbyid(p.proowner), p.proacl) FROM pg_proc p \
             WHERE p.pronamespace = 'app'::regnamespace \
           UNION ALL SELECT format('schema %s %s %s', n.nspname, pg_get_userbyid(n.nspowner), \
             n.nspacl) FROM pg_namespace n WHERE n.nspname IN ('app', 'aws_commons') \
           UNION ALL SELECT format('default %s %s', pg_get_userbyid(d.defaclrole), d.defaclacl) \
             FROM pg_default_acl d \
           UNION ALL SELECT format('setting %s %s', pg_get_userbyid(s.setrole), s.setconfig) \
             FROM pg_db_role_setting s JOIN pg_database b ON b.oid = s.setdatabase \
             WHERE b.datname = current_database()) q",
    )
}

#[test]
fn provider_names_restore_on_a_plain_server_and_back_on_the_platform() {
    let pg = pg();
    let provider = ["rdsadmin", "rds_superuser"];
    let ordinary = ["prov_app", "prov_reader", "prov_master"];
    create_roles(pg, &provider);
    create_roles(pg, &ordinary);
    // The backup runs as a managed database's master user would: no
    // superuser, read access to everything.
    pg.psql(
        "postgres",
        "ALTER ROLE prov_master LOGIN; GRANT pg_read_all_data TO prov_master",
    );
    let src = pg.create_db("prov_src");
    pg.psql(&src, SOURCE);
    pg.psql(
        &src,
        &format!("ALTER ROLE rdsadmin IN DATABASE \"{src}\" SET work_mem = '2MB'"),
    );
    let w = Workdir::new();
    let id = backup(&w, &src, Some("prov_master"));
    let data = table_contents(pg, &src);
    let dump = pg.schema_dump(&src);
    let sec = security(pg, &src).replace(&src, "DB");

    // Back onto the "platform": the roles exist, everything is as it was.
    let same = pg.create_db("prov_same");
    let out = restore_output(pg, &w, &id, &same, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["skipped"], serde_json::json!([]), "{report}");
    assert_eq!(table_contents(pg, &same), data);
    assert_eq!(pg.schema_dump(&same), dump);
    assert!(security(pg, &same).contains("setting rdsadmin {work_mem=2MB}"));
    assert_eq!(security(pg, &same).replace(&same, "DB"), sec);

    // Onto a plain server: the platform's roles are gone everywhere.
    pg.drop_db(&src);
    pg.drop_db(&same);
    drop_roles(pg, &provider);
    let plain = pg.create_db("prov_plain");
    let out = restore_output(pg, &w, &id, &plain, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(table_contents(pg, &plain), data);
    let me = pg.psql(&plain, "SELECT current_user").trim().to_string();
    let got = security(pg, &plain);
    let want = [
        format!("app.audit {me} {{{me}=arwdDxt/{me},prov_reader=r/{me}}}"),
        "app.orders prov_app {prov_app=arwdDxt/prov_app,prov_reader=r/prov_app}".to_string(),
        "app.orders_id_seq prov_app ".to_string(),
        "app.orders_pkey prov_app ".to_string(),
        "default prov_app {prov_reader=r/prov_app}".to_string(),
        format!("function app.answer() {me} {{{me}=X/{me},prov_reader=X/{me}}}"),
        "schema app prov_app {prov_app=UC/prov_app,prov_reader=U/prov_app}".to_string(),
    ]
    .join("\n");
    assert_eq!(got.trim_end(), want);

    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped: Vec<String> = report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let has = |needle: &[&str]| skipped.iter().any(|s| needle.iter().all(|n| s.contains(n)));
    assert!(
        has(&["schema \"aws_commons\"", "not restored"]),
        "{skipped:#?}"
    );
    assert!(
        has(&["\"app\".\"audit\"", "owner rdsadmin", "restoring role"]),
        "{skipped:#?}"
    );
    assert!(
        has(&["\"app\".\"answer\"", "owner rds_superuser"]),
        "{skipped:#?}"
    );
    assert!(
        has(&["\"app\".\"orders\"", "privileges", "rds_superuser"]),
        "{skipped:#?}"
    );
    assert!(has(&["settings of rdsadmin"]), "{skipped:#?}");
    assert!(has(&["default privileges", "rdsadmin"]), "{skipped:#?}");
    // Ordinary roles are never left out.
    assert!(
        !skipped
            .iter()
            .any(|s| s.contains("by prov_") || s.contains("owner prov_")),
        "{skipped:#?}"
    );

    pg.drop_db(&plain);
    pg.psql(
        "postgres",
        "DROP OWNED BY prov_app, prov_reader, prov_master",
    );
    drop_roles(pg, &ordinary);
}

#[test]
fn an_ordinary_missing_role_still_refuses_before_any_change() {
    let pg = pg();
    let roles = ["prov_gone_owner", "prov_gone_reader"];
    create_roles(pg, &roles);
    let src = pg.create_db("prov_gone_src");
    pg.psql(
        &src,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1); \
         ALTER TABLE t OWNER TO prov_gone_owner; GRANT SELECT ON t TO prov_gone_reader;",
    );
    let w = Workdir::new();
    let id = backup(&w, &src, None);
    pg.drop_db(&src);
    drop_roles(pg, &roles);

    let dst = pg.create_db("prov_gone_dst");
    let out = restore_output(pg, &w, &id, &dst, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("prov_gone_owner (owner, privileges)")
            && stderr.contains("prov_gone_reader (privileges)")
            && stderr.contains("--no-owner")
            && stderr.contains("--no-acl")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    let tables = pg.psql(&dst, "SELECT count(*) FROM pg_class WHERE relname = 't'");
    assert_eq!(tables.trim(), "0");

    // Ownership left out: the privileges name the reader, not the old
    // owner (its own privileges are left out with its ownership).
    let out = restore_output(pg, &w, &id, &dst, &["--no-owner"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        !stderr.contains("prov_gone_owner")
            && stderr.contains("prov_gone_reader (privileges)")
            && stderr.contains("--no-acl")
            && !stderr.contains("--no-owner"),
        "{stderr}"
    );

    let out = restore_output(pg, &w, &id, &dst, &["--no-owner", "--no-acl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pg.psql(&dst, "SELECT id FROM t").trim(), "1");
    pg.drop_db(&dst);
}

/// A restoring role that is not a superuser may only give objects to roles
/// it is a member of: an owner out of its reach is refused before any
/// change, dry run included, with --no-owner as the way out.
#[test]
fn an_owner_out_of_the_restoring_roles_reach_is_refused_before_any_change() {
    let pg = pg();
    let roles = ["prov_far_owner", "prov_restorer"];
    create_roles(pg, &roles);
    pg.psql("postgres", "ALTER ROLE prov_restorer LOGIN");
    let src = pg.create_db("prov_far_src");
    pg.psql(
        &src,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1); ALTER TABLE t OWNER TO prov_far_owner;",
    );
    let w = Workdir::new();
    let id = backup(&w, &src, None);
    let dst = pg.create_db("prov_far_dst");
    pg.psql(
        "postgres",
        &format!("ALTER DATABASE \"{dst}\" OWNER TO prov_restorer"),
    );
    let url = pg.url_as("prov_restorer", &dst);
    let (repo, key) = (w.repo(), w.key());
    let restore =
        |extra: &[&str]| common::pgsnap(&common::restore_args(&repo, &key, &id, &url, extra));
    for extra in [&["--dry-run"][..], &[]] {
        let out = restore(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains("may not make")
                && err.contains("prov_far_owner")
                && err.contains("--no-owner"),
            "{err}"
        );
    }
    let tables = pg.psql(&dst, "SELECT count(*) FROM pg_class WHERE relname = 't'");
    assert_eq!(tables.trim(), "0");
    let out = restore(&["--no-owner"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pg.psql(&dst, "SELECT id FROM t").trim(), "1");
    pg.drop_db(&dst);
    pg.drop_db(&src);
    drop_roles(pg, &roles);
}
