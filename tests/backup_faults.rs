//! Backups that go wrong must end in a non-zero exit with one clear line,
//! leave nothing that `list` shows as complete, and not stop the next
//! backup from working.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{pg, pgsnap, pgsnap_ok, Cluster, Workdir, PW_SECRET, PW_USER};

fn complete_backups(repo: &str) -> usize {
    let out = pgsnap(&["list", "--repo", repo, "--json"]);
    if !out.status.success() {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "complete")
        .count()
}

/// A database with one big table, so a backup runs long enough to be hit.
fn big_db(pg: &Cluster, prefix: &str) -> String {
    let db = pg.create_db(prefix);
    pg.psql(
        &db,
        "CREATE TABLE big (id int, a text, b text); \
         INSERT INTO big SELECT g, md5(g::text), repeat(md5((g*3)::text), 3) \
           FROM generate_series(1, 1500000) g; \
         CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small VALUES (1), (2);",
    );
    db
}

fn spawn_backup(url: &str, w: &Workdir) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_pgsnap"))
        .args([
            "backup",
            "--db",
            url,
            "--repo",
            &w.repo(),
            "--key-file",
            &w.key(),
            "--jobs",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until pgsnap's COPY of `big` is running on the server; returns its pid.
fn wait_for_copy(pg: &Cluster, db: &str) -> i32 {
    let t = Instant::now();
    loop {
        let pid = pg.psql(
            "postgres",
            &format!(
                "SELECT pid FROM pg_stat_activity WHERE datname = '{db}' \
                 AND application_name = 'pgsnap' AND query LIKE 'COPY%big%' LIMIT 1"
            ),
        );
        if let Ok(pid) = pid.trim().parse() {
            return pid;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "COPY never started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn backend_terminated_mid_copy() {
    let pg = pg();
    let db = big_db(pg, "fault_term");
    let w = Workdir::new();
    let child = spawn_backup(&pg.url(&db), &w);
    let pid = wait_for_copy(pg, &db);
    pg.psql("postgres", &format!("SELECT pg_terminate_backend({pid})"));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.lines().any(|l| l.starts_with("pgsnap: error: ")),
        "{err}"
    );
    assert_eq!(complete_backups(&w.repo()), 0);
    // No temporary file survives a failure the process saw.
    let leftovers: Vec<_> = walk(&w.repo())
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // The next backup works.
    pgsnap_ok(&[
        "backup",
        "--db",
        &pg.url(&db),
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ]);
    assert_eq!(complete_backups(&w.repo()), 1);
}

fn walk(dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(dir)];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn kill_9_leaves_nothing_listed_and_the_next_backup_works() {
    let pg = pg();
    let db = big_db(pg, "fault_kill");
    let w = Workdir::new();
    let mut child = spawn_backup(&pg.url(&db), &w);
    wait_for_copy(pg, &db);
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(complete_backups(&w.repo()), 0);
    pgsnap_ok(&[
        "backup",
        "--db",
        &pg.url(&db),
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ]);
    assert_eq!(complete_backups(&w.repo()), 1);
    let list: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["list", "--repo", &w.repo(), "--json"])).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the whole backup is listed"
    );
}

#[test]
fn permission_denied_is_listed_before_the_dump_and_exclude_gets_past_it() {
    let pg = pg();
    let db = pg.create_db("fault_perm");
    let role = format!("reader_{db}");
    pg.psql(
        &db,
        &format!(
            "CREATE ROLE {role} LOGIN; \
             CREATE TABLE open_t (x int); CREATE TABLE secret_t (x int); CREATE TABLE secret_u (y int); \
             GRANT SELECT ON open_t TO {role};"
        ),
    );
    let w = Workdir::new();
    let url = format!("postgres://{role}@127.0.0.1:{}/{db}", pg.port);
    let out = pgsnap(&[
        "backup",
        "--db",
        &url,
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("secret_t") && err.contains("secret_u"),
        "{err}"
    );
    assert!(err.contains("--exclude-table"), "{err}");
    assert_eq!(complete_backups(&w.repo()), 0);
    pgsnap_ok(&[
        "backup",
        "--db",
        &url,
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
        "--exclude-table",
        "secret_*",
    ]);
    assert_eq!(complete_backups(&w.repo()), 1);
}

#[test]
fn lock_timeout_names_the_blocking_session() {
    let pg = pg();
    let db = pg.create_db("fault_lock");
    pg.psql(&db, "CREATE TABLE t (x int)");
    // A session holding ACCESS EXCLUSIVE on t for a while.
    let mut holder = Command::new(pg.bindir.join("psql"))
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &db,
        ])
        .args([
            "-c",
            "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT;",
        ])
        .env("PGAPPNAME", "the_blocker")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while pg
        .psql("postgres", &format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'the_blocker' AND datname = '{db}' AND query LIKE '%pg_sleep%'"))
        .trim()
        != "1"
    {
        assert!(t.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let w = Workdir::new();
    let started = Instant::now();
    let out = pgsnap(&[
        "backup",
        "--db",
        &pg.url(&db),
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
        "--lock-timeout",
        "1s",
    ]);
    assert!(started.elapsed() < Duration::from_secs(15));
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the_blocker"), "{err}");
    assert_eq!(complete_backups(&w.repo()), 0);
}

#[test]
fn tables_created_and_dropped_during_the_backup_do_not_break_it() {
    let pg = pg();
    let db = big_db(pg, "fault_ddl");
    let w = Workdir::new();
    let child = spawn_backup(&pg.url(&db), &w);
    wait_for_copy(pg, &db);
    pg.psql(
        &db,
        "CREATE TABLE added_later (x int); INSERT INTO added_later VALUES (1)",
    );
    // DROP waits for the backup's lock; run it in the background.
    let dropper = Command::new(pg.bindir.join("psql"))
        .args([
            "-X",
            "-h",
            "127.0.0.1",
            "-p",
            &pg.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &db,
        ])
        .args(["-c", "DROP TABLE small"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dropper.wait_with_output().unwrap();
    let show: serde_json::Value = serde_json::from_str(&pgsnap_ok(&[
        "show",
        "--repo",
        &w.repo(),
        "latest",
        "--json",
    ]))
    .unwrap();
    let names: Vec<&str> = show["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"small") && !names.contains(&"added_later"),
        "{names:?}"
    );
}

#[test]
fn no_password_in_output_or_repository() {
    let pg = pg();
    let db = pg.create_db("fault_pw");
    pg.psql(
        &db,
        &format!("CREATE TABLE t (x int); GRANT SELECT ON t TO {PW_USER}"),
    );
    let w = Workdir::new();
    let url = format!(
        "postgres://{PW_USER}:{PW_SECRET}@127.0.0.1:{}/{db}",
        pg.port
    );
    let out = pgsnap(&[
        "backup",
        "--db",
        &url,
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(PW_SECRET));
    assert!(!String::from_utf8_lossy(&out.stderr).contains(PW_SECRET));
    for f in walk(&w.repo()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes
                .windows(PW_SECRET.len())
                .any(|win| win == PW_SECRET.as_bytes()),
            "password found in {f}"
        );
    }
    let show = pgsnap_ok(&["show", "--repo", &w.repo(), "latest", "--json"]);
    assert!(!show.contains(PW_SECRET));
}
