//! Backups that go wrong must end in a non-zero exit with one clear line,
//! leave nothing that `list` shows as complete, and not stop the next
//! backup from working.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{backup, failure_stderr, pg, pgsnap, pgsnap_ok, Cluster, Workdir, PW_SECRET, PW_USER};

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
    big_db_with(pg, prefix, "")
}

/// [`big_db`] made with `CREATE DATABASE` options (an encoding, say).
fn big_db_with(pg: &Cluster, prefix: &str, options: &str) -> String {
    let db = pg.create_db_with(prefix, options);
    pg.psql(
        &db,
        "CREATE TABLE big (id int, a text, b text); \
         INSERT INTO big SELECT g, md5(g::text), repeat(md5((g*3)::text), 3) \
           FROM generate_series(1, 1500000) g; \
         CREATE TABLE small (id int PRIMARY KEY); INSERT INTO small VALUES (1), (2);",
    );
    db
}

/// A one-job backup of `url` in the background, with `extra` arguments: one
/// job, so a table other than `big` waits until `big`'s COPY is done.
fn spawn_backup(url: &str, w: &Workdir, extra: &[&str]) -> std::process::Child {
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
        .args(extra)
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

/// `sql` run by psql in the background as application `app`, its output
/// dropped: a session that waits for a lock, or holds one.
fn psql_in_background(pg: &Cluster, db: &str, sql: &str, app: &str) -> std::process::Child {
    Command::new(pg.bindir.join("psql"))
        .args(["-X", "-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .args(["-U", "postgres", "-d", db, "-c", sql])
        .env("PGAPPNAME", app)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// [`psql_in_background`] running `BEGIN; {sql} SELECT pg_sleep({secs});
/// COMMIT;`, returned once it sleeps: what `sql` took (locks, changes) is
/// held, uncommitted, until then.
fn holding_in_background(
    pg: &Cluster,
    db: &str,
    sql: &str,
    secs: u32,
    app: &str,
) -> std::process::Child {
    let child = psql_in_background(
        pg,
        db,
        &format!("BEGIN; {sql} SELECT pg_sleep({secs}); COMMIT;"),
        app,
    );
    let held = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}' \
         AND wait_event = 'PgSleep'"
    );
    let t0 = Instant::now();
    while pg.psql(db, &held).trim() == "0" {
        assert!(t0.elapsed() < Duration::from_secs(30), "{app}: not holding");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Ends a session [`psql_in_background`] started as `app`, and waits for
/// its psql.
fn end_holder(pg: &Cluster, db: &str, mut holder: std::process::Child, app: &str) {
    pg.psql(
        db,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = '{app}'"
        ),
    );
    let _ = holder.wait();
}

/// For the library's own calls: the connection to `db` and the key file
/// of `w`.
fn conn_and_keys(pg: &Cluster, db: &str, w: &Workdir) -> (pgsnap::ConnInfo, pgsnap::Credentials) {
    (
        pgsnap::ConnInfo::parse(&pg.url(db)).unwrap(),
        pgsnap::Credentials::from_key_file(std::path::Path::new(&w.key())).unwrap(),
    )
}

/// `w`'s repository, a local directory, opened (made) by the library.
async fn local_repo(w: &Workdir) -> pgsnap::Repository {
    let storage = std::sync::Arc::new(pgsnap::repo::LocalStorage::new(std::path::Path::new(
        &w.repo(),
    )));
    pgsnap::Repository::open_or_init(storage).await.unwrap()
}

#[test]
fn backend_terminated_mid_copy() {
    let pg = pg();
    let db = big_db(pg, "fault_term");
    let w = Workdir::new();
    let child = spawn_backup(&pg.url(&db), &w, &[]);
    let pid = wait_for_copy(pg, &db);
    pg.psql("postgres", &format!("SELECT pg_terminate_backend({pid})"));
    let out = child.wait_with_output().unwrap();
    let err = failure_stderr(&out, 1);
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
    backup(pg, &db, &w, &[]);
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

/// Archives and manifests in the repository, finished or temporary.
fn backup_files(repo: &str) -> Vec<String> {
    walk(repo)
        .into_iter()
        .filter(|f| f.contains(".pgsnap") || f.contains(".manifest"))
        .collect()
}

/// Sends SIG`signal` (`INT`, `TERM`) to `child`.
fn send(signal: &str, child: &std::process::Child) {
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

#[test]
fn kill_9_leaves_nothing_listed_and_the_next_backup_works() {
    let pg = pg();
    let db = big_db(pg, "fault_kill");
    let w = Workdir::new();
    let mut child = spawn_backup(&pg.url(&db), &w, &[]);
    wait_for_copy(pg, &db);
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(complete_backups(&w.repo()), 0);
    backup(pg, &db, &w, &[]);
    assert_eq!(complete_backups(&w.repo()), 1);
    let list: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["list", "--repo", &w.repo(), "--json"])).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "only the whole backup is listed"
    );
}

/// SIGINT (Ctrl-C) or SIGTERM mid-backup: the run stops with one error line
/// and the signal's exit status, and cleans up first: no temporary archive
/// left in the repository, nothing listed.
#[test]
fn sigint_and_sigterm_stop_a_backup_and_leave_nothing() {
    let pg = pg();
    let db = big_db(pg, "fault_sig");
    for (signal, status) in [("INT", 130), ("TERM", 143)] {
        let w = Workdir::new();
        let child = spawn_backup(&pg.url(&db), &w, &[]);
        wait_for_copy(pg, &db);
        send(signal, &child);
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{signal}: {err}");
        assert!(err.contains(&format!("SIG{signal} received")), "{err}");
        assert_eq!(
            err.lines().filter(|l| l.contains("error")).count(),
            1,
            "{err}"
        );
        let left = backup_files(&w.repo());
        assert!(left.is_empty(), "{signal}: left behind: {left:?}");
        assert_eq!(complete_backups(&w.repo()), 0);
    }
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
    let err = failure_stderr(&out, 1);
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
    let mut holder = psql_in_background(
        pg,
        &db,
        "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(20); COMMIT;",
        "the_blocker",
    );
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
    let err = failure_stderr(&out, 1);
    assert!(err.contains("the_blocker"), "{err}");
    // Not its query text, which may hold a secret.
    assert!(!err.contains("pg_sleep"), "{err}");
    assert_eq!(complete_backups(&w.repo()), 0);
}

#[test]
fn tables_created_and_dropped_during_the_backup_do_not_break_it() {
    let pg = pg();
    let db = big_db(pg, "fault_ddl");
    let w = Workdir::new();
    let child = spawn_backup(&pg.url(&db), &w, &[]);
    wait_for_copy(pg, &db);
    pg.psql(
        &db,
        "CREATE TABLE added_later (x int); INSERT INTO added_later VALUES (1)",
    );
    // DROP waits for the backup's lock; run it in the background.
    let dropper = psql_in_background(pg, &db, "DROP TABLE small", "the_dropper");
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

/// The coordinator copies a table that a worker could not lock (a DROP was
/// queued behind the backup's lock). In a SQL_ASCII database it must take
/// the database's own encoding for that COPY, as the workers do, or the
/// server refuses bytes that are not UTF-8.
#[test]
fn a_table_wanted_by_another_session_in_a_sql_ascii_database_keeps_its_bytes() {
    const SQL_ASCII: &str = "ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0";
    const ROWS: &str = "SELECT count(*), md5(string_agg(t::text, '|' ORDER BY id)) FROM odd t";
    let pg = pg();
    let db = big_db_with(pg, "fault_ascii", SQL_ASCII);
    pg.psql(
        &db,
        "CREATE TABLE odd (id int PRIMARY KEY, v text); \
         INSERT INTO odd SELECT g, E'caf\\xe9 \\xff' || g FROM generate_series(1, 100) g;",
    );
    let before = pg.psql(&db, ROWS);
    assert!(before.starts_with("100|"), "{before}");
    let w = Workdir::new();
    let child = spawn_backup(&pg.url(&db), &w, &["-v"]);
    wait_for_copy(pg, &db);
    let dropper = psql_in_background(pg, &db, "DROP TABLE odd", "the_dropper");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("\"odd\" is wanted by another session; copying it on the coordinator"),
        "the worker was not kept from odd: {err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "colour codes in a log that is not a terminal: {err}"
    );
    dropper.wait_with_output().unwrap();
    let dst = pg.create_db_with("fault_ascii_r", SQL_ASCII);
    common::restore_json(pg, &w, "latest", &dst, &["--table", "public.odd"]);
    assert_eq!(pg.psql(&dst, ROWS), before, "odd's bytes differ");
    pg.drop_db(&dst);
    pg.drop_db(&db);
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

/// A small tmpfs over a directory, mounted in a private mount namespace so
/// nothing is visible to (or left on) the host: a `sleep` holds the
/// namespace, commands run inside it with `nsenter`, and killing the holder
/// unmounts the tmpfs with the namespace.
struct SmallFs {
    holder: std::process::Child,
    dir: String,
    /// `nsenter` flags for the holder's namespaces.
    enter: Vec<String>,
}

impl SmallFs {
    /// Mounts a tmpfs of `size` (`mount -o size=`) over `dir`. As root a
    /// mount namespace is enough; otherwise a user namespace (`unshare
    /// -Urm`) may allow it. `Err` says why neither could mount.
    fn mount(dir: &str, size: &str) -> Result<SmallFs, String> {
        let mut why = Vec::new();
        for (unshare, enter) in [
            (&["-m"][..], &["-m"][..]),
            (
                &["-U", "-r", "-m"][..],
                &["-U", "-m", "--preserve-credentials"][..],
            ),
        ] {
            let mut cmd = Command::new("unshare");
            cmd.args(unshare)
                .args(["--propagation", "private", "sh", "-c"])
                .arg("mount -t tmpfs -o size=\"$1\" tmpfs \"$0\" && echo ready && exec sleep 3600")
                .args([dir, size])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                    // The namespace and its tmpfs die with the test process.
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let mut holder = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => panic!("cannot run unshare (util-linux): {e}"),
            };
            let mut line = String::new();
            use std::io::BufRead;
            let _ = std::io::BufReader::new(holder.stdout.take().unwrap()).read_line(&mut line);
            if line.trim() == "ready" {
                return Ok(SmallFs {
                    holder,
                    dir: dir.to_string(),
                    enter: enter.iter().map(|s| s.to_string()).collect(),
                });
            }
            let _ = holder.kill();
            let out = holder.wait_with_output().unwrap();
            why.push(format!(
                "unshare {}: {}",
                unshare.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Err(why.join("; "))
    }

    /// A command run inside the namespace.
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.holder.id().to_string())
            .args(&self.enter)
            .arg("--")
            .arg(program);
        cmd
    }

    /// `pgsnap ARGS` inside the namespace, with no PG* variables leaking in
    /// (as `common::pgsnap`).
    fn pgsnap(&self, args: &[&str]) -> std::process::Output {
        common::scrubbed(self.command(env!("CARGO_BIN_EXE_pgsnap")).args(args))
            .output()
            .unwrap()
    }

    /// Every file under the tmpfs, relative to it, sorted.
    fn files(&self) -> Vec<String> {
        self.find(&["-type", "f"])
    }

    /// Every file and folder under the tmpfs, relative to it, sorted.
    fn entries(&self) -> Vec<String> {
        self.find(&["-mindepth", "1"])
    }

    fn find(&self, tests: &[&str]) -> Vec<String> {
        let out = self
            .command("find")
            .arg(&self.dir)
            .args(tests)
            .args(["-printf", "%P\\n"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let mut v: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    fn resize(&self, size: &str) {
        let out = self
            .command("mount")
            .args(["-o", &format!("remount,size={size}"), &self.dir])
            .output()
            .unwrap();
        assert!(out.status.success(), "remount: {out:?}");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// The `list --json` entries of a repository.
fn listed(out: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn full_disk_fails_fast_with_one_line_and_the_next_backup_works() {
    let pg = pg();
    let db = pg.create_db("fault_full");
    // About 10 MB of md5 hex text: zstd gets it to half at best, far more
    // than the 1 MiB file system holds.
    pg.psql(
        &db,
        "CREATE TABLE noise AS SELECT g AS id, \
           md5(g::text) || md5((g * 7)::text) || md5((g * 13)::text) AS t \
           FROM generate_series(1, 100000) g",
    );
    let w = Workdir::new();
    std::fs::create_dir_all(w.repo()).unwrap();
    let fs = match SmallFs::mount(&w.repo(), "1m") {
        Ok(fs) => fs,
        Err(why) if why.contains("not permitted") || why.contains("Permission denied") => {
            eprintln!("SKIPPED full_disk test: this sandbox cannot mount a tmpfs ({why})");
            return;
        }
        Err(why) => panic!("cannot mount a small tmpfs for the test: {why}"),
    };
    let url = pg.url(&db);
    let backup = [
        "backup",
        "--db",
        &url,
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ];

    let started = Instant::now();
    let out = fs.pgsnap(&backup);
    let took = started.elapsed();
    let err = failure_stderr(&out, 1);
    assert!(took < Duration::from_secs(20), "took {took:?}: {err}");
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pgsnap: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    let line = errors[0];
    assert!(
        line.contains("writing the archive")
            && line.contains("no space left on device")
            && line.contains("free space there or use another repository"),
        "{line}"
    );
    // Once, in words: not followed by the OS error's own text again.
    assert!(!line.contains("os error"), "{line}");
    assert!(!err.contains("panicked"), "{err}");

    // Nothing listed, nothing but the repository's config left.
    assert!(listed(&fs.pgsnap(&["list", "--repo", &w.repo(), "--json"])).is_empty());
    assert_eq!(fs.files(), vec!["config".to_string()]);
    // Nor the folders made for the failed run.
    let under_backups: Vec<String> = fs
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("backups/"))
        .collect();
    assert!(under_backups.is_empty(), "left behind: {under_backups:?}");

    // A killed run's left-over (not a day old, so kept) takes part of the
    // space: the message says how much, and what to do.
    let left = "backups/2026-01-01/20260101T000000Z-0001/20260101T000000Z-0001.pgsnap.tmp-1-1";
    let made = fs
        .command("sh")
        .args([
            "-c",
            "mkdir -p \"$(dirname \"$0\")\" && head -c 300000 /dev/zero > \"$0\"",
            &format!("{}/{left}", w.repo()),
        ])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let err = failure_stderr(&fs.pgsnap(&backup), 1);
    assert!(
        err.contains("beside 1 left-over(s) of stopped or killed runs taking 0.3 MiB")
            && err.contains("no space left on device"),
        "{err}"
    );
    let removed = fs
        .command("rm")
        .arg(format!("{}/{left}", w.repo()))
        .output()
        .unwrap();
    assert!(removed.status.success(), "{removed:?}");

    // With space again, the next backup works and is the only one listed.
    fs.resize("64m");
    let out = fs.pgsnap(&backup);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list = listed(&fs.pgsnap(&["list", "--repo", &w.repo(), "--json"]));
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["status"], "complete", "{list:?}");
    let files = fs.files();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".pgsnap")), "{files:?}");
    assert!(
        files.iter().any(|f| f.ends_with(".manifest.json")),
        "{files:?}"
    );
}

/// Backups started together into a location that holds no repository yet
/// (a scheduler's first night, several databases) all create it, or find
/// it being created: none fails on the others' files.
#[test]
fn first_backups_at_once_all_land_in_the_new_repository() {
    let pg = pg();
    let db = pg.create_db("first_at_once");
    pg.psql(&db, "CREATE TABLE t (id int); INSERT INTO t VALUES (1);");
    for round in 0..3 {
        let w = Workdir::new();
        let url = pg.url(&db);
        let runs: Vec<std::process::Child> =
            (0..4).map(|_| spawn_backup(&url, &w, &["-q"])).collect();
        for run in runs {
            let out = run.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(complete_backups(&w.repo()), 4, "round {round}");
    }
}

/// A stop that arrives once the archive is written whole, before its
/// manifest is committed (here while `--verify-upload full` reads it back):
/// the archive goes too, as the message says, not left unlisted on disk.
#[test]
fn a_stop_after_the_archive_is_written_removes_it() {
    let pg = pg();
    let db = big_db(pg, "fault_sig_late");
    let w = Workdir::new();
    let mut child = spawn_backup(&pg.url(&db), &w, &["--verify-upload", "full"]);
    let t0 = Instant::now();
    // Temporary files end in `.tmp-PID-N`: this is the archive's own name.
    let whole = || walk(&w.repo()).iter().any(|f| f.ends_with(".pgsnap"));
    while !whole() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no archive written");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the backup ended early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    send("INT", &child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        // The verify and the commit beat the signal: a whole backup.
        assert_eq!(complete_backups(&w.repo()), 1, "{err}");
        return;
    }
    assert_eq!(out.status.code(), Some(130), "{err}");
    let left = backup_files(&w.repo());
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(complete_backups(&w.repo()), 0);
}

/// Ctrl-C stops `pgsnap verify` at once, though its read runs on a thread
/// of its own (it used to be heard only once the whole archive was read).
#[test]
fn sigint_stops_a_verify_at_once() {
    let pg = pg();
    let db = big_db(pg, "fault_sig_verify");
    let w = Workdir::new();
    backup(pg, &db, &w, &[]);
    let verify = || {
        Command::new(env!("CARGO_BIN_EXE_pgsnap"))
            .args([
                "verify",
                "--repo",
                &w.repo(),
                "--key-file",
                &w.key(),
                "latest",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let t0 = Instant::now();
    let whole = verify().wait_with_output().unwrap();
    assert!(whole.status.success());
    let full = t0.elapsed();
    let child = verify();
    std::thread::sleep(full / 4);
    let sent = Instant::now();
    send("INT", &child);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("SIGINT received: verify stopped"), "{err}");
    assert!(
        sent.elapsed() < full / 2,
        "stopped {:?} after the signal; a whole verify takes {full:?}",
        sent.elapsed()
    );
}

/// Ctrl-C in the middle of a `--single-transaction` restore's load: the
/// process exits, its transaction goes with its connection, and the target
/// is as it was, which the message says. Without it, the definitions are
/// committed by then, and the message says the target may hold part.
#[test]
fn sigint_stops_a_single_transaction_restore_and_leaves_nothing() {
    let pg = pg();
    let db = big_db(pg, "fault_sig_one");
    let w = Workdir::new();
    backup(pg, &db, &w, &[]);
    for (extra, says, left) in [
        (
            &["-1"][..],
            "SIGINT received: restore stopped; the restore ran in one transaction, which was \
             rolled back",
            "keep",
        ),
        (
            &[][..],
            "SIGINT received: restore stopped; the target may hold part of it",
            "big,keep,small",
        ),
    ] {
        let dst = pg.create_db(if extra.is_empty() {
            "fault_sig_part_r"
        } else {
            "fault_sig_one_r"
        });
        pg.psql(
            &dst,
            "CREATE TABLE keep (id int); INSERT INTO keep VALUES (1)",
        );
        let err = stop_mid_load(pg, &w, &dst, extra);
        assert!(err.contains(says), "{err}");
        // The server rolls back once the connection is gone (waited for,
        // as that takes a moment).
        let tables = "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class \
                      WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'";
        let t0 = Instant::now();
        while pg.psql(&dst, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").trim() != "0"
            && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(pg.psql(&dst, tables).trim(), left);
        assert_eq!(pg.psql(&dst, "SELECT count(*) FROM keep").trim(), "1");
        if extra.is_empty() {
            // Again with --clean over what that left: its drops are
            // committed by then, which the message says, with the
            // statement that adds back the target's own key to a table it
            // replaces (dropped with it, nowhere else kept).
            pg.psql(
                &dst,
                "CREATE TABLE ref (sid int CONSTRAINT \"ref to small\" REFERENCES small)",
            );
            let err = stop_mid_load(pg, &w, &dst, &["--clean"]);
            assert!(
                err.contains("SIGINT received: restore stopped; --clean's drops were committed")
                    && err.contains(
                        "run ALTER TABLE \"public\".\"ref\" ADD CONSTRAINT \"ref to small\" \
                         FOREIGN KEY (sid) REFERENCES public.small(id);"
                    ),
                "{err}"
            );
        }
    }
}

/// Starts a restore of `latest` into `dst`, sends SIGINT once table `big`
/// is loading, and returns its stderr from there on (exit status 130).
fn stop_mid_load(pg: &Cluster, w: &Workdir, dst: &str, extra: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = common::restore_command(pg, w, "latest", dst, extra)
        .env("PGSNAP_LOG", "pgsnap=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    // The pre-data is in once `big` starts loading.
    for line in lines.by_ref() {
        let line = line.unwrap();
        let loading = line.contains("loading \"public\".\"big\"");
        seen.push(line);
        if loading {
            break;
        }
    }
    assert!(
        seen.last().is_some_and(|l| l.contains("loading")),
        "{}",
        seen.join("\n")
    );
    std::thread::sleep(Duration::from_millis(300));
    send("INT", &child);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let status = child.wait().unwrap();
    let err = rest.join("\n");
    assert_eq!(status.code(), Some(130), "{err}");
    err
}

/// A repository write past the process's file size limit (`ulimit -f`):
/// the run used to die of SIGXFSZ with no message and a temporary file left
/// behind; it now fails with one line saying what to do, and leaves
/// nothing of the run.
#[test]
fn a_file_size_limit_is_one_line_and_leaves_nothing() {
    let pg = pg();
    let db = pg.create_db("fault_fsize");
    pg.psql(
        &db,
        "CREATE TABLE t (id int, v text);
         INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 100000) g;",
    );
    let w = Workdir::new();
    let out = Command::new("bash")
        .arg("-c")
        .arg("ulimit -f 200; exec \"$@\"")
        .arg("bash")
        .arg(env!("CARGO_BIN_EXE_pgsnap"))
        .args([
            "backup",
            "--db",
            &pg.url(&db),
            "--repo",
            &w.repo(),
            "--key-file",
            &w.key(),
        ])
        .output()
        .unwrap();
    let err = failure_stderr(&out, 1);
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("pgsnap: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(
        errors[0].contains("writing the archive")
            && errors[0].contains("file size limit exceeded; raise the limit (ulimit -f)"),
        "{err}"
    );
    let left = backup_files(&w.repo());
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(complete_backups(&w.repo()), 0);
}

/// Local storage whose archive writer takes a second to finish (make the
/// archive visible under its name), and says when it starts to.
struct SlowFinish(
    pgsnap::repo::LocalStorage,
    std::sync::Arc<tokio::sync::Notify>,
);

struct SlowWriter(
    Box<dyn pgsnap::repo::ObjectWriter>,
    std::sync::Arc<tokio::sync::Notify>,
);

impl std::io::Write for SlowWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl pgsnap::repo::ObjectWriter for SlowWriter {
    fn finish(
        self: Box<Self>,
        metadata: &std::collections::BTreeMap<String, String>,
    ) -> pgsnap::Result<pgsnap::repo::ObjectMeta> {
        self.1.notify_one();
        std::thread::sleep(Duration::from_secs(1));
        self.0.finish(metadata)
    }
    fn abort(self: Box<Self>) {
        self.0.abort()
    }
}

#[async_trait::async_trait]
impl pgsnap::repo::Storage for SlowFinish {
    fn location(&self) -> String {
        self.0.location()
    }
    async fn put(&self, key: &str, data: bytes::Bytes) -> pgsnap::Result<()> {
        self.0.put(key, data).await
    }
    async fn put_new(&self, key: &str, data: bytes::Bytes) -> pgsnap::Result<bool> {
        self.0.put_new(key, data).await
    }
    fn writer(&self, key: &str) -> pgsnap::Result<Box<dyn pgsnap::repo::ObjectWriter>> {
        Ok(Box::new(SlowWriter(self.0.writer(key)?, self.1.clone())))
    }
    async fn get(&self, key: &str) -> pgsnap::Result<bytes::Bytes> {
        self.0.get(key).await
    }
    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> pgsnap::Result<bytes::Bytes> {
        self.0.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> pgsnap::Result<Option<pgsnap::repo::ObjectMeta>> {
        self.0.head(key).await
    }
    async fn list(&self, prefix: &str) -> pgsnap::Result<Vec<pgsnap::repo::ObjectMeta>> {
        self.0.list(prefix).await
    }
    async fn delete(&self, key: &str) -> pgsnap::Result<()> {
        self.0.delete(key).await
    }
}

/// A stop that comes while the archive is being made visible under its
/// name (a blocking step a stop cannot cut short): the run waits for it,
/// then discards the archive, as its message says. It used to discard
/// first, and the finish then put the whole archive in place (QA: 1 in 39
/// Ctrl-Cs at the end of a backup).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_while_the_archive_is_finished_leaves_nothing() {
    let pg = pg();
    let db = pg.create_db("fault_finish");
    pg.psql(
        &db,
        "CREATE TABLE t AS SELECT generate_series(1, 1000) AS id",
    );
    let w = Workdir::new();
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let storage = std::sync::Arc::new(SlowFinish(
        pgsnap::repo::LocalStorage::new(std::path::Path::new(&w.repo())),
        started.clone(),
    ));
    let repo = pgsnap::repo::Repository::open_or_init(storage)
        .await
        .unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let opts = pgsnap::backup::BackupOptions {
        stop: Some(stop_rx),
        ..Default::default()
    };
    let (conn, creds) = conn_and_keys(pg, &db, &w);
    let run = pgsnap::backup::run(
        &repo,
        &conn,
        &creds,
        &opts,
        std::sync::Arc::new(pgsnap::progress::Silent),
    );
    let stopper = async {
        started.notified().await;
        stop.send(true).unwrap();
        std::future::pending::<()>().await
    };
    let res = tokio::select! {
        r = run => r,
        _ = stopper => unreachable!(),
    };
    assert!(matches!(res, Err(pgsnap::Error::Stopped(_))), "{res:?}");
    // Past the finish's second: nothing of the archive appears later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let left = backup_files(&w.repo());
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A `--clean` restore whose drop waits for a lock a live session holds:
/// past `--lock-timeout` it fails, saying so, and the target is as it was
/// (it waited forever). Stopped (Ctrl-C) while it waits, its session on
/// the server ends within seconds, not when the lock is granted: it held
/// the locks it had, and queued the application's queries behind it.
#[test]
fn a_restore_waiting_for_a_lock_times_out_and_a_stopped_one_leaves_no_session() {
    let pg = pg();
    let db = pg.create_db("fault_rlock");
    pg.psql(
        &db,
        "CREATE TABLE t AS SELECT generate_series(1, 100) AS id",
    );
    let w = Workdir::new();
    backup(pg, &db, &w, &[]);
    let dst = pg.create_db("fault_rlock_dst");
    pg.psql(&dst, "CREATE TABLE t AS SELECT 42 AS id");
    let mut holder = psql_in_background(
        pg,
        &dst,
        "BEGIN; SELECT count(*) FROM t; SELECT pg_sleep(60); COMMIT;",
        "fault_rlock_holder",
    );
    let held = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE a.application_name = 'fault_rlock_holder' AND l.relation = \
         (SELECT oid FROM pg_class WHERE relname = 't') AND l.granted";
    let t0 = Instant::now();
    while pg.psql(&dst, held).trim() == "0" {
        assert!(t0.elapsed() < Duration::from_secs(30), "no lock held");
        std::thread::sleep(Duration::from_millis(20));
    }
    let t0 = Instant::now();
    let out = common::restore_output(pg, &w, "latest", &dst, &["--clean", "--lock-timeout", "1s"]);
    let err = failure_stderr(&out, 1);
    assert!(
        err.contains("not granted within 1s") && err.contains("--lock-timeout"),
        "{err}"
    );
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    assert_eq!(
        pg.psql(&dst, "SELECT string_agg(id::text, ',') FROM t")
            .trim(),
        "42"
    );

    // Stopped while it waits (no --lock-timeout: 60 s).
    let child = common::restore_command(pg, &w, "latest", &dst, &["--clean"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgsnap' \
                   AND wait_event_type = 'Lock'";
    let t0 = Instant::now();
    while pg.psql(&dst, waiting).trim() == "0" {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the restore never waited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    send("INT", &child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Its --clean drop waited inside the definitions' transaction: not
    // committed, nothing changed, and it says so (not "may hold part").
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SIGINT received: restore stopped; nothing was changed in the target"),
        "{err}"
    );
    let ours = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgsnap'";
    let t0 = Instant::now();
    while pg.psql(&dst, ours).trim() != "0" {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the stopped restore's session is still on the server"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(
        pg.psql(&dst, "SELECT string_agg(id::text, ',') FROM t")
            .trim(),
        "42"
    );
}

/// Row-level security the backup role is subject to: the backup saved
/// only the rows the policies let it see (10 of 100 here), verified and
/// restored as whole (QA). It is now refused before any work, naming the
/// tables, and a role that bypasses it backs them up whole.
#[test]
fn row_level_security_hiding_rows_refuses_the_backup() {
    let pg = pg();
    pg.login_role("pgsnap_rls_reader");
    let db = pg.create_db("fault_rls");
    pg.psql(
        &db,
        "CREATE TABLE forced (id int, uid int);
         INSERT INTO forced SELECT g, g % 10 FROM generate_series(1, 100) g;
         ALTER TABLE forced OWNER TO pgsnap_rls_reader;
         ALTER TABLE forced ENABLE ROW LEVEL SECURITY;
         ALTER TABLE forced FORCE ROW LEVEL SECURITY;
         CREATE POLICY p ON forced USING (uid = 1);
         CREATE TABLE granted (id int, uid int);
         INSERT INTO granted SELECT g, g % 10 FROM generate_series(1, 100) g;
         ALTER TABLE granted ENABLE ROW LEVEL SECURITY;
         CREATE POLICY p2 ON granted USING (uid = 2);
         GRANT SELECT ON granted TO pgsnap_rls_reader;
         CREATE TABLE open (id int); GRANT SELECT ON open TO pgsnap_rls_reader;
         CREATE TABLE pt (id int) PARTITION BY RANGE (id);
         CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (1000);
         INSERT INTO pt SELECT generate_series(1, 50);
         ALTER TABLE pt OWNER TO pgsnap_rls_reader; ALTER TABLE pt1 OWNER TO pgsnap_rls_reader;
         ALTER TABLE pt ENABLE ROW LEVEL SECURITY; ALTER TABLE pt FORCE ROW LEVEL SECURITY;
         CREATE POLICY few ON pt USING (id < 3);",
    );
    let w = Workdir::new();
    let url = pg.url_as("pgsnap_rls_reader", &db);
    let out = common::backup_output(&url, &w, &[]);
    let err = failure_stderr(&out, 1);
    assert!(
        err.contains("row-level security would hide rows of 2 table(s) from this role: \"public\".\"forced\", \"public\".\"granted\"")
            && err.contains("BYPASSRLS"),
        "{err}"
    );
    assert_eq!(complete_backups(&w.repo()), 0);
    // Left out, the rest backs up; a partitioned table's policies do not
    // apply to its partitions' COPY, which gets every row.
    let id = common::backup_url(
        &url,
        &w,
        &[
            "--exclude-table",
            "public.forced",
            "--exclude-table",
            "public.granted",
        ],
    );
    let shown: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["show", "--repo", &w.repo(), &id, "--json"])).unwrap();
    let pt1 = shown["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "pt1")
        .cloned()
        .unwrap_or_default();
    assert_eq!(pt1["rows"], 50, "{shown}");
    // Their rows left out: nothing is read, nothing refused.
    common::backup_url(
        &url,
        &w,
        &[
            "--exclude-table-data",
            "public.forced",
            "--exclude-table-data",
            "public.granted",
        ],
    );
    // A superuser bypasses it: every row.
    let id = backup(pg, &db, &w, &[]);
    let shown: serde_json::Value =
        serde_json::from_str(&pgsnap_ok(&["show", "--repo", &w.repo(), &id, "--json"])).unwrap();
    let rows: Vec<u64> = shown["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "forced" || t["name"] == "granted")
        .map(|t| t["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![100, 100], "{shown}");
}

/// A user mapping's options (a password, often) are shown only to a
/// superuser or the mapped role: backed up by another role, the mapping
/// came back without them, and nothing said so (QA). A warning names it.
#[test]
fn hidden_user_mapping_options_are_named_in_a_warning() {
    let pg = pg();
    pg.login_role("pgsnap_um_reader");
    let db = pg.create_db("fault_um");
    pg.psql(
        &db,
        "CREATE FOREIGN DATA WRAPPER um_w; CREATE SERVER um_s FOREIGN DATA WRAPPER um_w;
         CREATE USER MAPPING FOR postgres SERVER um_s OPTIONS (user 'remote', password 'x');
         CREATE USER MAPPING FOR pgsnap_um_reader SERVER um_s OPTIONS (user 'me');
         GRANT USAGE ON FOREIGN SERVER um_s TO pgsnap_um_reader;",
    );
    let w = Workdir::new();
    let url = pg.url_as("pgsnap_um_reader", &db);
    let out = pgsnap(&[
        "backup",
        "--db",
        &url,
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("pgsnap: warning: the options of user mapping for \"postgres\" server \"um_s\" are hidden"),
        "{err}"
    );
    // Its own mapping's options it sees: no warning for it.
    assert!(!err.contains("pgsnap_um_reader\" server"), "{err}");
    // A superuser sees them all.
    let out = pgsnap(&[
        "backup",
        "--db",
        &pg.url(&db),
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hidden"));
}

/// Subscriptions are not backed up; a backup of a database that has one
/// says so, naming it (QA: found out after the restore).
#[test]
fn subscriptions_are_named_in_a_warning() {
    let pg = pg();
    let db = pg.create_db("fault_sub");
    pg.psql(
        &db,
        "CREATE SUBSCRIPTION \"My Sub\" CONNECTION 'host=127.0.0.1 dbname=nowhere' \
         PUBLICATION p WITH (connect = false)",
    );
    let w = Workdir::new();
    let out = pgsnap(&[
        "backup",
        "--db",
        &pg.url(&db),
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("pgsnap: warning: subscriptions are not backed up: \"My Sub\""),
        "{err}"
    );
}

/// `--table T --clean` re-adds T's key to a table the target has; when a
/// live session holds a lock on that table past --lock-timeout, the
/// restore fails, naming the wait, instead of exiting 0 without the key
/// (QA). Other failures to add it are warnings giving the statement.
#[test]
fn a_key_to_a_locked_live_table_fails_the_restore_past_the_lock_timeout() {
    let pg = pg();
    let db = pg.create_db("fault_fklock");
    pg.psql(
        &db,
        "CREATE TABLE p (id int PRIMARY KEY); INSERT INTO p VALUES (1);
         CREATE TABLE c (id int, pid int REFERENCES p); INSERT INTO c VALUES (1, 1);",
    );
    let w = Workdir::new();
    backup(pg, &db, &w, &[]);
    // The key gone from the target (so --clean's drop of c needs no lock
    // on p), and a live writer on p: adding the key back must wait.
    pg.psql(&db, "ALTER TABLE c DROP CONSTRAINT c_pid_fkey");
    let holder = holding_in_background(
        pg,
        &db,
        "LOCK p IN ROW EXCLUSIVE MODE;",
        30,
        "fault_fklock_holder",
    );
    let out = common::restore_output(
        pg,
        &w,
        "latest",
        &db,
        &["--table", "public.c", "--clean", "--lock-timeout", "1s"],
    );
    end_holder(pg, &db, holder, "fault_fklock_holder");
    let err = failure_stderr(&out, 1);
    assert!(
        err.contains("c_pid_fkey") && err.contains("--lock-timeout"),
        "{err}"
    );
    // The target's table can no longer take it: a warning with the statement.
    pg.psql(&db, "ALTER TABLE p DROP CONSTRAINT p_pkey CASCADE");
    let report = common::restore_json(pg, &w, "latest", &db, &["--table", "public.c", "--clean"]);
    let warning = report["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("will not be added")
            && warning.contains("ADD CONSTRAINT \"c_pid_fkey\" FOREIGN KEY (\"pid\") REFERENCES"),
        "{report}"
    );
}

/// `--table T --clean` drops the target's keys to T with it and adds them
/// back after the load. When that fails (here, a live session holds the
/// referencing table past --lock-timeout), the error gives the statements
/// that add them back: nothing else keeps them, and a rerun with --clean
/// would not see them.
#[test]
fn keys_to_a_replaced_table_not_put_back_are_given_in_the_error() {
    let pg = pg();
    let db = pg.create_db("fault_fkin");
    pg.psql(
        &db,
        "CREATE TABLE p (id int PRIMARY KEY, pad text);
         INSERT INTO p SELECT g, repeat('x', 40) FROM generate_series(1, 300000) g;
         CREATE TABLE c (id int, pid int CONSTRAINT \"c to p\" REFERENCES p ON DELETE CASCADE);
         INSERT INTO c VALUES (1, 1);",
    );
    let w = Workdir::new();
    backup(pg, &db, &w, &[]);
    // Waits for the restore's pre-data to drop the key, then holds c while
    // p loads.
    let holder = psql_in_background(
        pg,
        &db,
        "DO $$ BEGIN WHILE EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'c to p') LOOP \
           PERFORM pg_sleep(0.005); END LOOP; END $$; \
         BEGIN; LOCK c IN ROW EXCLUSIVE MODE; SELECT pg_sleep(30); COMMIT;",
        "fault_fkin_holder",
    );
    let out = common::restore_output(
        pg,
        &w,
        "latest",
        &db,
        &["--table", "public.p", "--clean", "--lock-timeout", "1s"],
    );
    end_holder(pg, &db, holder, "fault_fkin_holder");
    let err = failure_stderr(&out, 1);
    let add = "ALTER TABLE \"public\".\"c\" ADD CONSTRAINT \"c to p\" FOREIGN KEY (pid) \
               REFERENCES public.p(id) ON DELETE CASCADE;";
    assert!(
        err.contains("--lock-timeout") && err.contains(add) && err.lines().count() == 1,
        "{err}"
    );
    // The statement given puts it back.
    pg.psql(&db, add);
    assert_eq!(
        pg.psql(
            &db,
            "SELECT count(*) FROM pg_constraint WHERE conname = 'c to p' AND convalidated"
        )
        .trim(),
        "1"
    );
}

/// `backup --table` naming a partitioned table without its partitions:
/// the backup holds none of their rows, and says so (QA: 0 rows, silent).
#[test]
fn a_partitioned_table_chosen_without_its_partitions_is_said() {
    let pg = pg();
    let db = pg.create_db("fault_ptsel");
    pg.psql(
        &db,
        "CREATE TABLE pt (id int) PARTITION BY RANGE (id);
         CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (0) TO (10);
         CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (10) TO (20);
         INSERT INTO pt VALUES (1), (11);",
    );
    let w = Workdir::new();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "backup".to_string(),
            "--db".into(),
            pg.url(&db),
            "--repo".into(),
            w.repo(),
            "--key-file".into(),
            w.key(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pgsnap(&args)
    };
    let out = run(&["--table", "public.pt", "--table", "public.pt1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("pgsnap: warning: partitions of public.pt not chosen: public.pt2")
            && err.contains("--table 'public.pt*'"),
        "{err}"
    );
    let out = run(&["--table", "public.pt*"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("not chosen"));
    // A chosen partition rewritten while the backup waits for its lock:
    // the backup takes a new snapshot, and says the warning once, not once
    // per snapshot.
    let mut holder = holding_in_background(
        pg,
        &db,
        "CREATE TEMP TABLE s AS SELECT * FROM pt1; TRUNCATE pt1; INSERT INTO pt1 SELECT * FROM s;",
        2,
        "fault_ptsel_holder",
    );
    let out = run(&["--table", "public.pt", "--table", "public.pt1"]);
    assert!(holder.wait().unwrap().success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(err.matches("not chosen").count(), 1, "{err}");
}

/// A large object the backup role may not read is refused before any
/// work, naming it, with the way out; it failed in the data phase (QA).
#[test]
fn an_unreadable_large_object_is_refused_before_any_work() {
    let pg = pg();
    pg.login_role("pgsnap_lo_reader");
    let db = pg.create_db("fault_lo");
    pg.psql(
        &db,
        "SELECT lo_from_bytea(424242, 'secret'); SELECT lo_from_bytea(424243, 'shared');
         GRANT SELECT ON LARGE OBJECT 424243 TO pgsnap_lo_reader;
         CREATE TABLE hidden (id int);
         CREATE SCHEMA unused; CREATE TABLE unused.t (id int);
         GRANT SELECT ON unused.t TO pgsnap_lo_reader;",
    );
    let w = Workdir::new();
    let url = pg.url_as("pgsnap_lo_reader", &db);
    let out = common::backup_output(&url, &w, &[]);
    let err = failure_stderr(&out, 1);
    // The table it may not read too, and the one in a schema it may not
    // use, in the same line (QA: one per run).
    assert!(
        err.contains("permission denied to read 1 table(s): \"public\".\"hidden\";")
            && err.contains("; and permission denied for the schema(s) of 1 table(s): \"unused\".\"t\"; grant USAGE")
            && err.contains("; and permission denied to read 1 large object(s): 424242;")
            && err.contains("GRANT SELECT ON LARGE OBJECT"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    pg.psql(
        &db,
        "GRANT SELECT ON LARGE OBJECT 424242 TO pgsnap_lo_reader;
         GRANT SELECT ON hidden TO pgsnap_lo_reader;
         GRANT USAGE ON SCHEMA unused TO pgsnap_lo_reader;",
    );
    common::backup_url(&url, &w, &[]);
}

/// An application's `#[tokio::test]` runs on tokio's current-thread
/// runtime: a backup that verifies its upload in full, and `verify`,
/// panicked there (`block_in_place`; QA), leaving a temporary archive.
#[tokio::test]
async fn the_library_backs_up_and_verifies_on_a_current_thread_runtime() {
    let pg = pg();
    let db = pg.create_db("fault_rt1");
    pg.psql(
        &db,
        "CREATE TABLE t AS SELECT generate_series(1, 1000) AS id",
    );
    let w = Workdir::new();
    let repo = local_repo(&w).await;
    let opts = pgsnap::backup::BackupOptions {
        verify_upload: pgsnap::backup::VerifyUpload::Full,
        ..Default::default()
    };
    let (conn, creds) = conn_and_keys(pg, &db, &w);
    let silent = std::sync::Arc::new(pgsnap::progress::Silent);
    let done = pgsnap::backup::run(&repo, &conn, &creds, &opts, silent)
        .await
        .unwrap();
    let m = repo.resolve("latest").await.unwrap();
    assert_eq!(m.id, done.id);
    let report = pgsnap::verify::run(&repo, &m, &creds).await.unwrap();
    assert!(report.ok, "{:?}", report.checks);
}

/// An application that drops a running backup's future (a timeout) left
/// the run's claim on its id and its directory, swept only a day later
/// (QA: one per dropped run). Released on the runtime now: nothing is
/// left but the repository's config.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_backup_leaves_nothing_behind() {
    let pg = pg();
    let db = big_db(pg, "fault_dropfut");
    let w = Workdir::new();
    let repo = local_repo(&w).await;
    let (conn, creds) = conn_and_keys(pg, &db, &w);
    let opts = pgsnap::BackupOptions::default();
    let run = pgsnap::backup::run(
        &repo,
        &conn,
        &creds,
        &opts,
        std::sync::Arc::new(pgsnap::progress::Silent),
    );
    let res = tokio::time::timeout(Duration::from_millis(400), run).await;
    assert!(res.is_err(), "the backup finished within 400 ms");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let left: Vec<String> = walk(&w.repo())
        .into_iter()
        .filter(|f| !f.ends_with("/config"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A table emptied and filled again (or rewritten) in a transaction that
/// commits while the backup waits for its lock: read through the backup's
/// older snapshot, its new storage looked empty, and the backup held 0
/// rows, which verify and restore passed (QA). The backup now takes a new
/// snapshot once it holds the locks, and has every row.
#[test]
fn a_table_rewritten_while_the_backup_waits_for_its_lock_is_backed_up_whole() {
    let pg = pg();
    let db = pg.create_db("fault_rewrite");
    pg.psql(
        &db,
        "CREATE TABLE t (id int, v text);
         INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 5000) g;",
    );
    let w = Workdir::new();
    // Also (QA): a table dropped meanwhile (its lock failed the backup); a
    // table dropped and made anew by name (the lock took the new one, read
    // empty); a column dropped or renamed (the COPY's column list failed).
    for (change, table, rows) in [
        (
            "CREATE TEMP TABLE s AS SELECT * FROM t; TRUNCATE t; INSERT INTO t SELECT * FROM s;",
            "t",
            5000,
        ),
        ("DROP TABLE gone;", "t", 5000),
        (
            "DROP TABLE anew; CREATE TABLE anew AS SELECT generate_series(1, 3000) AS id;",
            "anew",
            3000,
        ),
        ("ALTER TABLE t DROP COLUMN extra;", "t", 5000),
        ("ALTER TABLE anew RENAME COLUMN id TO key;", "anew", 3000),
    ] {
        pg.psql(
            &db,
            "CREATE TABLE IF NOT EXISTS gone (id int); \
             CREATE TABLE IF NOT EXISTS anew AS SELECT generate_series(1, 1000) AS id; \
             ALTER TABLE t ADD COLUMN IF NOT EXISTS extra int;",
        );
        let mut holder = holding_in_background(pg, &db, change, 2, "fault_rewrite_holder");
        backup(pg, &db, &w, &[]);
        assert!(holder.wait().unwrap().success());
        let dst = pg.create_db("fault_rewrite_dst");
        common::restore_json(pg, &w, "latest", &dst, &[]);
        assert_eq!(
            pg.psql(&dst, &format!("SELECT count(*) FROM {table}"))
                .trim(),
            rows.to_string(),
            "{change}"
        );
        assert_eq!(pg.psql(&dst, "SELECT count(*) FROM t").trim(), "5000");
    }
}

/// stderr that cannot be written (a full disk, a closed pipe): the
/// message's write panicked, then the panic hook's, and the process
/// aborted (134) without a word (QA). Now what cannot be written is lost
/// and the exit status still tells: a backup succeeds, a failure is 1.
#[test]
fn an_unwritable_stderr_does_not_abort() {
    let pg = pg();
    let db = pg.create_db("fault_devfull");
    pg.psql(
        &db,
        "CREATE TABLE t AS SELECT generate_series(1, 100) AS id",
    );
    let w = Workdir::new();
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    let status = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_pgsnap"))
            .args(args)
            .stdout(Stdio::null())
            .stderr(full())
            .status()
            .unwrap()
            .code()
    };
    let url = pg.url(&db);
    let backup = [
        "backup",
        "--db",
        &url,
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
    ];
    assert_eq!(status(&backup), Some(0));
    assert_eq!(complete_backups(&w.repo()), 1);
    assert_eq!(status(&["list", "--repo", "/nonexistent/pgsnap"]), Some(1));
}
