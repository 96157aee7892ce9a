//! End to end through the binary: backup of a database, list and show
//! output shapes, verify, and an exact full restore.
mod common;

use common::{failure_stderr, pg, pgsnap, pgsnap_ok, sequence_states, table_contents, Workdir};

const SMALL: &str = r#"
CREATE SCHEMA app;
CREATE TABLE app.users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, created timestamptz DEFAULT now(), note text);
CREATE TABLE app.orders (id serial PRIMARY KEY, user_id bigint REFERENCES app.users(id), total numeric(10,2), tags text[], payload jsonb, blob bytea);
CREATE INDEX orders_user_idx ON app.orders (user_id);
INSERT INTO app.users (email, note)
  SELECT 'u' || g || '@example.com', CASE WHEN g % 3 = 0 THEN E'multi\nline\ttab \\ back' ELSE NULL END
  FROM generate_series(1, 5000) g;
INSERT INTO app.orders (user_id, total, tags, payload, blob)
  SELECT 1 + g % 5000, g * 1.25, ARRAY['a', 'b"c'], jsonb_build_object('n', g), decode(md5(g::text), 'hex')
  FROM generate_series(1, 20000) g;
SELECT setval('app.orders_id_seq', 25000);
SELECT lo_from_bytea(424242, 'hello');
SELECT lo_from_bytea(0, decode(repeat(md5('x'), 40000), 'hex'));
"#;

const LARGE_OBJECTS: &str =
    "SELECT string_agg(md5(lo_get(oid)) || ':' || length(lo_get(oid)), ',' ORDER BY md5(lo_get(oid))) \
     FROM pg_largeobject_metadata";

#[test]
fn backup_list_show_verify_restore_roundtrip() {
    let pg = pg();
    let src = pg.create_db("br_src");
    pg.psql(&src, SMALL);
    let w = Workdir::new();
    let repo = w.repo();
    let key = w.key();

    let out = pgsnap_ok(&[
        "backup",
        "--db",
        &pg.url(&src),
        "--repo",
        &repo,
        "--key-file",
        &key,
    ]);
    let id = out.lines().last().unwrap().trim().to_string();
    assert!(id.len() == 21 && id.contains('T'), "id line: {out}");
    // A --schema that names no schema is a usage error, not an empty backup.
    let out = common::backup_output(&pg.url(&src), &w, &["--schema", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no schema matches --schema nosuch"));
    // So is a tag key given twice.
    let out = common::backup_output(&pg.url(&src), &w, &["--tag", "k=a", "--tag", "k=b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tag k is given twice"));

    let list: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["list", "--repo", &repo, "--json"])).unwrap();
    let b = &list.as_array().unwrap()[0];
    assert_eq!(b["id"], id.as_str());
    assert_eq!(b["backup_id"], id.as_str());
    assert_eq!(b["status"], "complete");
    assert_eq!(b["database"], src.as_str());
    assert_eq!(b["rows"], 25000);
    assert_eq!(b["tables"], 2);
    assert!(b["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(b["sha256"].as_str().unwrap().len(), 64);
    assert!(b["started_at"].as_str().unwrap().ends_with('Z'));

    // A reader that goes away (`pgsnap show ... | head -1`) ends the run
    // quietly, never with a panic.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgsnap"))
        .args(["show", "--repo", &repo, "latest"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 141)),
        "{:?}: {err}",
        out.status
    );
    assert!(!err.contains("panicked"), "{err}");

    // A file where the repository should be is a usage error saying so.
    let out = pgsnap(&["list", "--repo", &key]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a file"));

    let show: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["show", "--repo", &repo, "latest", "--json"])).unwrap();
    assert_eq!(show["id"], id.as_str());
    assert_eq!(show["ok"], true, "every --json object has `ok`");

    let v: serde_json::Value = serde_json::from_str(&pgsnap_ok(&[
        "verify",
        "--repo",
        &repo,
        "--key-file",
        &key,
        &id,
        "--json",
    ]))
    .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    // A key file others can read still works, with a warning saying so.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let shared = format!("{key}.shared");
        std::fs::copy(&key, &shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = pgsnap(&["verify", "--repo", &repo, "--key-file", &shared, &id]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }

    let dst = pg.create_db("br_dst");
    let url = pg.url(&dst);
    let out = pgsnap_ok(&common::restore_args(
        &repo,
        &key,
        "latest",
        &url,
        &["--json"],
    ));
    let r: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(r["backup_id"], id.as_str());
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["rows"], 25000);
    assert!(r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["ok"] == true));

    assert_eq!(table_contents(pg, &src), table_contents(pg, &dst));
    assert_eq!(sequence_states(pg, &src), sequence_states(pg, &dst));
    assert_eq!(pg.psql(&src, LARGE_OBJECTS), pg.psql(&dst, LARGE_OBJECTS));
    assert_eq!(
        pg.psql(&dst, "SELECT convert_from(lo_get(424242), 'UTF8')")
            .trim(),
        "hello"
    );
    assert_eq!(
        pg.schema_dump(&src).replace(&src, "DB"),
        pg.schema_dump(&dst).replace(&dst, "DB")
    );

    // Restoring again into the same database is refused, untouched.
    let again = pgsnap(&[
        "restore",
        "--repo",
        &repo,
        "--key-file",
        &key,
        "latest",
        "--db",
        &pg.url(&dst),
    ]);
    let err = failure_stderr(&again, 1);
    assert!(err.contains("already has"), "{err}");
    assert_eq!(table_contents(pg, &src), table_contents(pg, &dst));
}

/// A partial backup (`--table`, `--exclude-table-data`, ...) records what
/// it was limited to: `list --json` and `show` say so, and a full restore
/// of it warns that it brings back only that, not the whole database.
#[test]
fn a_partial_backup_says_so() {
    let pg = pg();
    let src = pg.create_db("partial_src");
    pg.psql(&src, SMALL);
    let w = Workdir::new();
    let whole = common::backup(pg, &src, &w, &[]);
    let part = common::backup(
        pg,
        &src,
        &w,
        &["--table", "app.users", "--exclude-table-data", "app.users"],
    );
    let list: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["list", "--repo", &w.repo(), "--json"])).unwrap();
    let by_id = |id: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|b| b["id"] == id)
            .unwrap()
            .clone()
    };
    assert!(by_id(&whole)["filter"].is_null(), "{list}");
    assert_eq!(
        by_id(&part)["filter"],
        serde_json::json!({"tables": ["app.users"], "exclude_table_data": ["app.users"]})
    );
    let show = pgsnap_ok(&["show", "--repo", &w.repo(), &part]);
    assert!(
        show.contains(
            "partial     only what --table app.users --exclude-table-data app.users chose"
        ),
        "{show}"
    );
    let dst = pg.create_db("partial_dst");
    let report = common::restore_json(pg, &w, "latest", &dst, &[]);
    assert!(
        report["warnings"].to_string().contains(&format!(
            "backup {part} is partial: it holds only what --table app.users --exclude-table-data \
             app.users chose, not the whole database"
        )),
        "{report}"
    );
    // The whole backup says nothing of the kind.
    let dst = pg.create_db("partial_dst_whole");
    let report = common::restore_json(pg, &w, &whole, &dst, &[]);
    assert!(
        !report["warnings"].to_string().contains("partial"),
        "{report}"
    );
}

/// A repository that lost its config file keeps its backups readable (list,
/// verify), and the next backup writes the config again; before, `list`
/// said there was no repository and `backup` refused the location.
#[test]
fn a_lost_config_is_written_again() {
    let pg = pg();
    let src = pg.create_db("lost_config");
    pg.psql(&src, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    let w = Workdir::new();
    let first = common::backup(pg, &src, &w, &[]);
    let config = std::path::Path::new(&w.repo()).join("config");
    std::fs::remove_file(&config).unwrap();
    let out = pgsnap(&["list", "--repo", &w.repo(), "--json"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&first));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has lost its config file"),
        "{out:?}"
    );
    pgsnap_ok(&[
        "verify",
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
        &first,
    ]);
    let second = common::backup(pg, &src, &w, &[]);
    assert!(config.exists());
    let list = pgsnap_ok(&["list", "--repo", &w.repo(), "--json"]);
    assert!(list.contains(&first) && list.contains(&second), "{list}");
    // Several backups at once into it (a scheduler's night) all land,
    // though each may see another's config being written.
    for round in 0..2 {
        std::fs::remove_file(&config).unwrap();
        let runs: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(env!("CARGO_BIN_EXE_pgsnap"))
                    .args(["backup", "-q", "--db", &pg.url(&src), "--repo", &w.repo()])
                    .args(["--key-file", &w.key()])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let out = run.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {out:?}");
        }
    }
    // A location with other files is still no repository.
    let other = Workdir::new();
    std::fs::create_dir_all(other.repo()).unwrap();
    std::fs::write(std::path::Path::new(&other.repo()).join("notes.txt"), "x").unwrap();
    let out = common::backup_output(&pg.url(&src), &other, &[]);
    let err = failure_stderr(&out, 1);
    assert!(err.contains("holds no pgsnap repository"), "{err}");
}

/// Objects of every sort, in two schemas, for the filter tests.
const FILTERED: &str = r#"
CREATE SCHEMA app; CREATE SCHEMA other;
CREATE TYPE app.mood AS ENUM ('ok', 'sad');
CREATE TABLE app.t (id serial PRIMARY KEY, m app.mood, v text);
CREATE TABLE app.gone (id int PRIMARY KEY);
CREATE VIEW app.v AS SELECT id, v FROM app.t;
CREATE MATERIALIZED VIEW app.mv AS SELECT count(*) AS n FROM app.t;
CREATE FUNCTION app.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE SEQUENCE app.s; SELECT setval('app.s', 42);
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO PUBLIC;
CREATE TABLE other.o (id int);
CREATE FUNCTION other.g() RETURNS int LANGUAGE sql AS 'SELECT 2';
CREATE FUNCTION public.to_int(app.mood) RETURNS int LANGUAGE sql AS 'SELECT 1';
CREATE CAST (app.mood AS int) WITH FUNCTION public.to_int(app.mood);
CREATE PUBLICATION everything FOR ALL TABLES;
INSERT INTO app.t (m, v) SELECT 'ok', 'x' || g FROM generate_series(1, 100) g;
INSERT INTO app.gone VALUES (1); INSERT INTO other.o VALUES (7);
SELECT lo_from_bytea(4711, 'lo');
"#;

/// pg_dump with `flags`, restored by pg_restore into a new database: the
/// oracle for what a filter chooses.
fn pg_dump_restored(pg: &common::Cluster, src: &str, flags: &[&str]) -> String {
    let dir = Workdir::new();
    let file = format!("{}/dump", dir.repo());
    std::fs::create_dir_all(dir.repo()).unwrap();
    let out = pg
        .tool("pg_dump")
        .args(["-Fc", "-f", &file, "-d", src])
        .args(flags)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let dst = pg.create_db("filter_oracle");
    let out = pg
        .tool("pg_restore")
        .args(["--exit-on-error", "-d", &dst, &file])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    dst
}

/// The filters that leave things out (`-T`, `-N`, `--exclude-table-data`)
/// keep everything else, views, functions, sequences, casts, publications,
/// default privileges and large objects included, as pg_dump does; before,
/// any filter kept only the tables and what they needed.
#[test]
fn exclusions_keep_everything_else_as_pg_dump_does() {
    let pg = pg();
    let src = pg.create_db("filt_src");
    pg.psql(&src, FILTERED);
    for flags in [
        &["-T", "app.nosuch"][..],
        &["-T", "app.gone"],
        &["-N", "other"],
        &["--exclude-table-data", "app.gone"],
    ] {
        let w = Workdir::new();
        common::backup(pg, &src, &w, flags);
        let ours = pg.create_db("filt_ours");
        common::restore_json(pg, &w, "latest", &ours, &[]);
        let theirs = pg_dump_restored(pg, &src, flags);
        let (a, b) = (pg.schema_dump(&ours), pg.schema_dump(&theirs));
        assert!(a == b, "{flags:?}: {}", common::diff(&b, &a));
        assert_eq!(
            table_contents(pg, &ours),
            table_contents(pg, &theirs),
            "{flags:?}"
        );
        assert_eq!(
            sequence_states(pg, &ours),
            sequence_states(pg, &theirs),
            "{flags:?}"
        );
        assert_eq!(
            pg.psql(&ours, LARGE_OBJECTS),
            pg.psql(&theirs, LARGE_OBJECTS),
            "{flags:?}"
        );
    }
}

/// `--table` takes views and sequences too, as pg_dump -t does, and
/// `--schema`/`--exclude-schema` do not narrow what it chose; `--schema`
/// keeps its schema's views, functions and sequences.
#[test]
fn table_takes_views_and_sequences_and_schema_keeps_its_objects() {
    let pg = pg();
    let src = pg.create_db("filt_t_src");
    pg.psql(&src, FILTERED);
    let restored = |flags: &[&str]| {
        let w = Workdir::new();
        common::backup(pg, &src, &w, flags);
        let dst = pg.create_db("filt_t");
        common::restore_json(pg, &w, "latest", &dst, &[]);
        dst
    };
    // A view: its definition, over its table's definition (no rows).
    let dst = restored(&["-t", "app.v"]);
    assert_eq!(pg.psql(&dst, "SELECT count(*) FROM app.v").trim(), "0");
    // A sequence: its state.
    let dst = restored(&["-t", "app.s"]);
    assert_eq!(pg.psql(&dst, "SELECT last_value FROM app.s").trim(), "42");
    // A table with --exclude-schema of its own schema: still the table.
    let dst = restored(&["-t", "app.t", "-N", "app"]);
    assert_eq!(pg.psql(&dst, "SELECT count(*) FROM app.t").trim(), "100");
    // A schema: its views, functions, sequences, default privileges.
    let dst = restored(&["-n", "app"]);
    assert_eq!(
        pg.psql(
            &dst,
            "SELECT (SELECT count(*) FROM app.v), app.f(), (SELECT last_value FROM app.s), \
             (SELECT count(*) FROM pg_default_acl), (SELECT count(*) FROM pg_namespace \
             WHERE nspname = 'other'), (SELECT count(*) FROM pg_largeobject_metadata)"
        )
        .trim(),
        "100|1|42|1|0|0"
    );
}

/// A restore counts tables as `show` does, those whose rows the backup
/// holds: not a partitioned table's parent or a materialized view (QA: 10
/// tables restored of a backup `show` said has 8).
#[test]
fn restore_counts_tables_as_show_does() {
    let pg = pg();
    let src = pg.create_db("count_tables");
    pg.psql(
        &src,
        "CREATE TABLE p (id int, k int) PARTITION BY LIST (k);
         CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1);
         CREATE TABLE p2 PARTITION OF p FOR VALUES IN (2);
         INSERT INTO p VALUES (1, 1), (2, 2);
         CREATE TABLE plain (id int); INSERT INTO plain VALUES (1);
         CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM plain;",
    );
    let w = Workdir::new();
    let id = common::backup(pg, &src, &w, &[]);
    let shown: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["show", "--repo", &w.repo(), &id, "--json"])).unwrap();
    let in_backup = shown["tables"].as_array().unwrap().len();
    let dst = pg.create_db("count_tables_dst");
    let report = common::restore_json(pg, &w, "latest", &dst, &[]);
    assert_eq!(report["tables"], in_backup, "{report} / {shown}");
    assert_eq!(in_backup, 3, "{shown}");
    // The progress lines count them so too.
    let dst = pg.create_db("count_tables_progress");
    let err = common::restore_progress(pg, &w, "latest", &dst, &[]);
    assert!(err.contains("restore: 3 tables, about"), "{err}");
}

/// A value of tens of MB restores in bounded memory, from a text archive
/// and from a binary one. The conversion to binary COPY, and the trim of
/// `character(n)` padding, held a row whole, with the buffers it grew
/// through (a 600 MB bytea took 2-2.9 GB; pg_restore 9 MiB). A row past
/// `MAX_ROW` now streams as text, and the trim streams what it need not
/// hold.
#[test]
fn a_huge_value_restores_in_bounded_memory() {
    let pg = pg();
    let src = pg.create_db("huge_value");
    // 48 MB of bytea, 96 MB as COPY's hex text, among ordinary rows, in a
    // table with a character(n) column (whose padding the load trims).
    pg.psql(
        &src,
        "CREATE TABLE b (id int PRIMARY KEY, v bytea, t text, c character(8) DEFAULT 'c');
         INSERT INTO b SELECT g, decode(md5(g::text), 'hex'), 'row ' || g FROM generate_series(1, 20000) g;
         INSERT INTO b SELECT 0, decode(string_agg(md5(g::text), ''), 'hex'), 'big'
           FROM generate_series(1, 3 * 1024 * 1024) g;",
    );
    let sum = "SELECT md5(string_agg(md5(b::text), ',' ORDER BY id)) FROM b";
    for format in ["text", "binary"] {
        let w = Workdir::new();
        let id = common::backup(pg, &src, &w, &["--copy-format", format]);
        let dst = pg.create_db("huge_value_dst");
        let (out, peak_kib) =
            common::output_and_peak_rss(&mut common::restore_command(pg, &w, &id, &dst, &[]));
        let report = common::restore_report(&out, &format!("of a 48 MB value ({format})"));
        assert_eq!(report["rows"], 20001, "{report}");
        assert_eq!(pg.psql(&src, sum), pg.psql(&dst, sum), "{format}");
        // The text alone is 96 MB; held, the row took three to four times it.
        assert!(
            peak_kib < 200 * 1024,
            "restore ({format}) peak RSS {peak_kib} KiB for a 96 MB row"
        );
        if format == "text" {
            // The rows an abandoned conversion sent are not counted again
            // when the table's text goes instead (QA: progress said twice
            // the rows).
            let dst = pg.create_db("huge_value_progress");
            let err = common::restore_progress(pg, &w, &id, &dst, &["--jobs", "1"]);
            assert!(err.contains("restore: 20001 rows,"), "{err}");
        }
    }
}

/// A bad command line is one error line, as every error, with clap's tips
/// and where the usage is; its usage block named flags as required that
/// are not (QA).
#[test]
fn command_line_errors_are_one_line() {
    for (args, says) in [
        (
            &["restore", "--repo", "x", "--jobs", "0", "latest"][..],
            "pgsnap: error: invalid value '0' for '--jobs <JOBS>'",
        ),
        (
            &["restore", "--repo", "x", "--tabel", "a", "latest"][..],
            "tip: a similar argument exists: '--table' (see pgsnap restore --help)",
        ),
        (
            &["restore", "-q", "--repo", "x", "latest"][..],
            "required arguments were not provided: --db <URL>",
        ),
        (
            &["frob"][..],
            "unrecognized subcommand 'frob' (see pgsnap --help)",
        ),
    ] {
        let err = failure_stderr(&pgsnap(args), 2);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!err.contains("--quiet"), "{err}");
    }
}
