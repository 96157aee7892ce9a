//! Test harness: a throwaway PostgreSQL cluster and a moto (S3 + KMS) server,
//! both started by the tests themselves and shared by every test in one test
//! binary.
//!
//! # PostgreSQL
//! `pg()` runs `initdb` into a fresh directory under the system temp dir and
//! starts `postgres` on a free loopback port with trust authentication for
//! everyone except the role `pgsnap_pw`, which must use its password (so tests
//! can exercise password handling). `initdb` refuses to run as root, and CI
//! and developers here run as root, so when the harness runs as root it
//! starts the server as the `postgres` OS user (Debian's postgresql package
//! creates it; set `PGSNAP_TEST_PG_USER` to use another unprivileged user).
//! The binaries come from `pg_config --bindir`, or `PGSNAP_TEST_PG_BINDIR`.
//!
//! The server is started from a dedicated thread with `PR_SET_PDEATHSIG`, so it
//! dies with the test process even when the process is killed, and an `atexit`
//! hook stops it and removes its directory on a normal exit. Stale clusters of
//! dead runs are swept on start.
//!
//! # moto
//! `moto()` starts `moto_server` on a free loopback port from the virtual
//! environment that `.ci/run` creates (`.venv/` at the repository root, or
//! `PGSNAP_MOTO_SERVER` naming the executable). A test that needs it and cannot
//! find it fails with a message saying how to set it up.

#![allow(dead_code)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Role that can only log in over TLS (hostnossl rejects it).
pub const TLS_USER: &str = "pgsnap_tls";

/// Role that can only log in with its password.
pub const PW_USER: &str = "pgsnap_pw";
/// That role's password (a test secret; tests assert it never appears in output).
pub const PW_SECRET: &str = "s3cr3t-Hunter2-pw";

pub struct Cluster {
    pub dir: PathBuf,
    pub port: u16,
    pub bindir: PathBuf,
    pub superuser: String,
    pid: u32,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();
static CLEANUP: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());
static DB_SEQ: AtomicU32 = AtomicU32::new(0);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .unwrap()
        .port()
}

fn bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("PGSNAP_TEST_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    if let Ok(out) = out {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.join("initdb").exists() {
                return dir;
            }
        }
    }
    // Debian keeps the server binaries out of PATH.
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| rd.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .into_iter()
        .rev()
        .find(|p| p.join("initdb").exists())
        .expect(
            "no PostgreSQL server binaries found: install them (`apt-get install postgresql`) \
             or set PGSNAP_TEST_PG_BINDIR",
        )
}

/// The OS user to run the server as: ourselves, unless we are root.
fn server_uid() -> Option<(u32, u32)> {
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::env::var("PGSNAP_TEST_PG_USER").unwrap_or_else(|_| "postgres".into());
    let cname = std::ffi::CString::new(name.clone()).unwrap();
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, and initdb refuses root: create an unprivileged OS user `{name}` \
         (Debian's postgresql package does) or set PGSNAP_TEST_PG_USER"
    );
    unsafe { Some(((*pw).pw_uid, (*pw).pw_gid)) }
}

fn as_server_user(cmd: &mut Command, ids: Option<(u32, u32)>) {
    if let Some((uid, gid)) = ids {
        cmd.uid(uid).gid(gid);
        // initdb and postgres look up HOME-relative files; keep them out of /root.
        cmd.env("HOME", "/tmp");
    }
}

extern "C" fn stop_all() {
    let list = match CLEANUP.lock() {
        Ok(l) => l.clone(),
        Err(_) => return,
    };
    for (pid, dir) in list {
        unsafe {
            libc::kill(pid as i32, libc::SIGQUIT);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(5) && unsafe { libc::kill(pid as i32, 0) } == 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Remove clusters left behind by runs whose process is gone.
fn sweep_stale(root: &Path) {
    let Ok(rd) = std::fs::read_dir(root) else {
        return;
    };
    for e in rd.flatten() {
        let owner = e.path().join("owner.pid");
        let Ok(pid) = std::fs::read_to_string(&owner) else {
            continue;
        };
        let Ok(pid) = pid.trim().parse::<i32>() else {
            continue;
        };
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn start_cluster() -> Cluster {
    let bindir = bindir();
    let ids = server_uid();
    let root = std::env::temp_dir().join("pgsnap-test-clusters");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    sweep_stale(&root);
    let dir = root.join(format!("c{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("owner.pid"), std::process::id().to_string()).unwrap();
    let data = dir.join("data");
    let sock = dir.join("sock");
    std::fs::create_dir_all(&sock).unwrap();
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::chown(&sock, Some(uid), Some(gid)).unwrap();
    }
    let superuser = "postgres".to_string();
    let mut initdb = Command::new(bindir.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            &superuser,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
            "-N",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_server_user(&mut initdb, ids);
    let out = initdb.output().expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Password role first: trust for everyone else.
    // A test CA and a server certificate it signed for localhost and
    // 127.0.0.1 (TLS tests use the CA as sslrootcert for verify-full).
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let ca = dir.join("ca.crt");
    let ext = dir.join("server.ext");
    std::fs::write(&ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "openssl {args:?} failed (apt-get install openssl)");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pgsnap-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.crt",
    ]);
    let _ = &ca;
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(&key, Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::chown(&cert, Some(uid), Some(gid)).unwrap();
    }
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let hba = format!(
        "local all all trust\n\
         hostnossl all {TLS_USER} 0.0.0.0/0 reject\n\
         hostssl all {TLS_USER} 127.0.0.1/32 trust\n\
         host all {PW_USER} 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 trust\n\
         host all all ::1/128 trust\n"
    );
    std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    if let Some((uid, gid)) = ids {
        std::os::unix::fs::chown(dir.join("server.log"), Some(uid), Some(gid)).unwrap();
        std::os::unix::fs::chown(data.join("pg_hba.conf"), Some(uid), Some(gid)).unwrap();
    }
    // A thread that lives as long as the process spawns the server: PDEATHSIG
    // fires when the spawning *thread* exits, so it must not be a test thread.
    let (tx, rx) = std::sync::mpsc::channel::<Child>();
    let (data2, sock2, bindir2) = (data.clone(), sock.clone(), bindir.clone());
    let (cert2, key2) = (cert.clone(), key.clone());
    std::thread::spawn(move || {
        let mut cmd = Command::new(bindir2.join("postgres"));
        cmd.arg("-D")
            .arg(&data2)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", sock2.display()))
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args([
                "-c",
                "max_connections=200",
                "-c",
                "max_locks_per_transaction=256",
            ])
            .args(["-c", "shared_buffers=128MB", "-c", "ssl=on"])
            .arg("-c")
            .arg(format!("ssl_cert_file={}", cert2.display()))
            .arg("-c")
            .arg(format!("ssl_key_file={}", key2.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        as_server_user(&mut cmd, ids);
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start postgres");
        tx.send(child).unwrap();
        loop {
            std::thread::park();
        }
    });
    let child = rx.recv().unwrap();
    let pid = child.id();
    std::mem::forget(child);
    CLEANUP.lock().unwrap().push((pid, dir.clone()));
    static HOOK: OnceLock<()> = OnceLock::new();
    HOOK.get_or_init(|| unsafe {
        libc::atexit(stop_all);
    });
    let cluster = Cluster {
        dir: dir.clone(),
        port,
        bindir,
        superuser,
        pid,
    };
    let t = Instant::now();
    loop {
        let ok = Command::new(cluster.bindir.join("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "postgres did not start: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    cluster.psql(
        "postgres",
        &format!(
            "CREATE ROLE {PW_USER} LOGIN PASSWORD '{PW_SECRET}'; \
             CREATE ROLE {TLS_USER} LOGIN SUPERUSER"
        ),
    );
    cluster
}

/// The shared cluster of this test binary, started on first use.
pub fn pg() -> &'static Cluster {
    CLUSTER.get_or_init(start_cluster)
}

impl Cluster {
    /// The test CA that signed the server's certificate (PEM), to use as
    /// sslrootcert.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A connection URL for `db` as the superuser over TCP.
    pub fn url(&self, db: &str) -> String {
        self.url_as(&self.superuser, db)
    }

    /// A connection URL for `db` as `user` over TCP (trust authentication
    /// but for the password role).
    pub fn url_as(&self, user: &str, db: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{db}", self.port)
    }

    /// Makes the cluster-wide LOGIN role `name` (no superuser) unless it
    /// exists; tests running at once may both ask for it.
    pub fn login_role(&self, name: &str) {
        self.psql(
            "postgres",
            &format!(
                "DO $$ BEGIN CREATE ROLE {name} LOGIN; \
                 EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            ),
        );
    }

    /// A new, empty database with a unique name starting with `prefix`.
    pub fn create_db(&self, prefix: &str) -> String {
        self.create_db_with(prefix, "")
    }

    /// [`Cluster::create_db`] with `CREATE DATABASE` options (`ENCODING
    /// ...`).
    pub fn create_db_with(&self, prefix: &str, options: &str) -> String {
        let name = format!(
            "{}_{}_{}",
            prefix,
            std::process::id(),
            DB_SEQ.fetch_add(1, Ordering::SeqCst)
        );
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\" {options}"));
        name
    }

    pub fn tool(&self, name: &str) -> Command {
        let mut cmd = Command::new(self.bindir.join(name));
        cmd.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", &self.superuser)
            .env_remove("PGPASSWORD")
            .env_remove("PGDATABASE");
        cmd
    }

    /// Run SQL with psql (ON_ERROR_STOP); panics with psql's message on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .tool("psql")
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql failed on {db}: {}\nSQL: {sql}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Run a SQL file with psql, with `-v` variables.
    pub fn psql_file(&self, db: &str, file: &Path, vars: &[(&str, &str)]) {
        let mut cmd = self.tool("psql");
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db]);
        for (k, v) in vars {
            cmd.arg("-v").arg(format!("{k}={v}"));
        }
        let out = cmd.arg("-f").arg(file).output().expect("run psql");
        assert!(
            out.status.success(),
            "psql -f {} failed: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_dump --schema-only` of `db`: the independent oracle for schema
    /// round trips (allowed in tests, never in the product).
    pub fn schema_dump(&self, db: &str) -> String {
        let out = self
            .tool("pg_dump")
            .args(["--schema-only", "-d", db])
            .output()
            .expect("run pg_dump");
        assert!(
            out.status.success(),
            "pg_dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // pg_dump 15.14+ brackets its output with a random \restrict key.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    pub fn drop_db(&self, db: &str) {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"),
        );
    }

    /// Creates the tablespace `name` (in the cluster's directory) unless it
    /// exists: tests/schema_fixtures/storage.sql uses `fx_space`.
    pub fn ensure_tablespace(&self, name: &str) {
        use std::os::unix::fs::MetadataExt;
        let exists = self.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_tablespace WHERE spcname = '{name}'"),
        );
        if exists.trim() == "0" {
            let dir = self.dir.join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let meta = std::fs::metadata(&self.dir).unwrap();
            std::os::unix::fs::chown(&dir, Some(meta.uid()), Some(meta.gid())).unwrap();
            self.psql(
                "postgres",
                &format!("CREATE TABLESPACE {name} LOCATION '{}'", dir.display()),
            );
        }
    }
}

/// Path of a file in ../shared (the sample application data and bench tools).
pub fn shared(path: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared");
    root.join(path)
}

pub struct Moto {
    pub endpoint: String,
    child: Mutex<Child>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

fn moto_server_path() -> PathBuf {
    if let Ok(p) = std::env::var("PGSNAP_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    assert!(
        p.exists(),
        "moto_server not found at {}: run `bash .ci/run --setup-only` (creates .venv with \
         moto[server]) or set PGSNAP_MOTO_SERVER to its path",
        p.display()
    );
    p
}

/// The shared moto server (S3 + KMS on 127.0.0.1) of this test binary.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        let exe = moto_server_path();
        let port = free_port();
        let (tx, rx) = std::sync::mpsc::channel::<Child>();
        std::thread::spawn(move || {
            let mut cmd = Command::new(exe);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            tx.send(cmd.spawn().expect("start moto_server")).unwrap();
            loop {
                std::thread::park();
            }
        });
        let child = rx.recv().unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "moto_server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            child: Mutex::new(child),
        }
    })
}

/// The variables a test run of pgsnap must not inherit from the
/// developer's environment.
pub const SCRUBBED_ENV: [&str; 8] = [
    "PGPASSWORD",
    "PGHOST",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGSNAP_REPO",
    "PGSNAP_KEY_FILE",
    "PGSNAP_DB",
];

/// `cmd` without [`SCRUBBED_ENV`] and with no stdin. The AWS SDK's EC2
/// instance-metadata lookups are off: a run that looks for AWS credentials
/// or a region (a KMS slot) must fail at once where there are none, not
/// wait for an endpoint that exists only on EC2, nor ever reach a real one.
pub fn scrubbed(cmd: &mut Command) -> &mut Command {
    for v in SCRUBBED_ENV {
        cmd.env_remove(v);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
}

/// Runs the `pgsnap` binary with `args`; no PG* or AWS variables leak in
/// from the developer's environment.
pub fn pgsnap(args: &[&str]) -> std::process::Output {
    scrubbed(Command::new(env!("CARGO_BIN_EXE_pgsnap")).args(args))
        .output()
        .expect("run pgsnap")
}

/// Runs `cmd` to its end; its output and its peak resident memory in KiB
/// (the kernel's `ru_maxrss` of that one child, which other tests running
/// beside it do not touch).
// The child is reaped by wait4, which `Child::wait` does not offer: it
// keeps the usage.
#[allow(clippy::zombie_processes)]
pub fn output_and_peak_rss(cmd: &mut Command) -> (std::process::Output, u64) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run command");
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.expect("stdout");
    let mut stderr = child.stderr.expect("stderr");
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut b).map(|_| b)
    });
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut out).expect("read stdout");
    let err = err.join().expect("stderr reader").expect("read stderr");
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, which `Child` no longer waits for.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    let status = std::os::unix::process::ExitStatusExt::from_raw(status);
    let output = std::process::Output {
        status,
        stdout: out,
        stderr: err,
    };
    (output, usage.ru_maxrss as u64)
}

/// Like [`pgsnap`], but fails the test with pgsnap's stderr unless it exits 0.
pub fn pgsnap_ok(args: &[&str]) -> String {
    success_stdout(pgsnap(args), &format!("{args:?}"))
}

/// The stdout of a pgsnap run that must have exited 0 (`what` names the
/// run in the failure message, with pgsnap's stderr).
pub fn success_stdout(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "pgsnap {what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// The stderr of a pgsnap run that must have exited with `code` (1: the
/// run failed; 2: a usage or configuration error), for the test's checks of
/// its message; the failure message carries that stderr.
pub fn failure_stderr(out: &std::process::Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "expected exit {code}:\n{err}"
    );
    err
}

/// A scratch directory with a fresh key file in it.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    pub fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("temp dir");
        let w = Workdir { dir };
        pgsnap_ok(&["key", "generate", "--out", &w.key()]);
        w
    }
    pub fn key(&self) -> String {
        self.dir.path().join("backup.key").display().to_string()
    }
    pub fn repo(&self) -> String {
        self.dir.path().join("repo").display().to_string()
    }
}

/// Every user table's rows as text, sorted, keyed by table: the data
/// oracle (column order included, since `t::text` follows it).
pub fn table_contents(pg: &Cluster, db: &str) -> Vec<(String, Vec<String>)> {
    let tables = pg.psql(
        db,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated)) \
           AND n.nspname NOT IN ('pg_catalog','information_schema') \
           AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1",
    );
    tables
        .lines()
        .filter(|l| !l.is_empty())
        .map(|t| {
            let mut rows: Vec<String> = pg
                .psql(db, &format!("SELECT x::text FROM ONLY {t} x"))
                .lines()
                .map(str::to_string)
                .collect();
            rows.sort();
            (t.to_string(), rows)
        })
        .collect()
}

/// Sequence states of a database, sorted.
pub fn sequence_states(pg: &Cluster, db: &str) -> String {
    pg.psql(
        db,
        "SELECT string_agg(format('%s=%s', s, pg_sequence_last_value(s::regclass)), ',' ORDER BY s) \
         FROM (SELECT format('%I.%I', schemaname, sequencename) s FROM pg_sequences) q",
    )
}

/// A line diff good enough to read: the differing region with context.
pub fn diff(a: &str, b: &str) -> String {
    let la: Vec<&str> = a.lines().collect();
    let lb: Vec<&str> = b.lines().collect();
    let mut start = 0;
    while start < la.len() && start < lb.len() && la[start] == lb[start] {
        start += 1;
    }
    let (mut ea, mut eb) = (la.len(), lb.len());
    while ea > start && eb > start && la[ea - 1] == lb[eb - 1] {
        ea -= 1;
        eb -= 1;
    }
    let mut out = format!(
        "@@ source line {} / restored line {} @@\n",
        start + 1,
        start + 1
    );
    for l in &la[start.saturating_sub(3)..start] {
        out.push_str(&format!("  {l}\n"));
    }
    for l in &la[start..ea.min(start + 60)] {
        out.push_str(&format!("- {l}\n"));
    }
    for l in &lb[start..eb.min(start + 60)] {
        out.push_str(&format!("+ {l}\n"));
    }
    out
}

/// Only the database name and pg_dump's per-run `\restrict` key differ.
pub fn normalise(dump: &str, db: &str) -> String {
    dump.lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(|l| l.replace(db, "DBNAME"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Rows for the schema fixtures whose tables start empty (tests/schema_fixtures).
pub fn fixture_rows(fixture: &str) -> &'static str {
    match fixture {
        "inheritance.sql" => {
        "INSERT INTO inh.parent VALUES (1, 'p', '2021-01-01', 1.5); \
         INSERT INTO inh.child_reordered (c, x, b, a, e) VALUES ('2022-02-02', 7, 'r', 2, 2.5); \
         INSERT INTO inh.child_natural (a, d) VALUES (3, 4); \
         INSERT INTO inh2.kid (x, a, b, c, e) VALUES (9, 5, 'k', '2023-03-03', NULL); \
         INSERT INTO inh.tenant VALUES (1); \
         INSERT INTO inh.events VALUES (1, '2025-05-05', 'login', '{\"a\": 1}', 1), \
           (2, '2026-06-06', 'x', '{\"id\": \"q\"}', NULL), (3, '2030-01-01', 'y', NULL, 1); \
         INSERT INTO inh.refs VALUES (1, '2025-05-05', 'login'); \
         INSERT INTO inh.gchild (a, c, t) VALUES (21, 'g', 'tt'); \
         INSERT INTO inh.people VALUES ('ann', 30);"
        }
        "basics.sql" => {
        "INSERT INTO app.\"Order\" (code, n, price, qty, note) VALUES ('a', 2, 1.5, 2, 'x'), ('b', 3, 2, 1, NULL); \
         INSERT INTO app.line (order_id, label) SELECT id, 'l' || id FROM app.\"Order\"; \
         INSERT INTO app.line (order_id, label) VALUES (NULL, repeat('long', 20)); \
         INSERT INTO app.scratch VALUES ('k', '{\"v\": [1, 2]}'); \
         REFRESH MATERIALIZED VIEW app.order_mv;"
        }
        _ => "",
    }
}

/// `pgsnap backup -q` of `db` into the workdir's repository with its key;
/// returns the new backup's id (the last stdout line).
pub fn backup(pg: &Cluster, db: &str, w: &Workdir, extra: &[&str]) -> String {
    backup_url(&pg.url(db), w, extra)
}

/// [`backup`] of the database at `url` (another role, say).
pub fn backup_url(url: &str, w: &Workdir, extra: &[&str]) -> String {
    let out = success_stdout(backup_output(url, w, extra), &format!("backup {extra:?}"));
    out.lines().last().unwrap_or_default().trim().to_string()
}

/// [`backup_url`]'s run, whether it succeeded or not.
pub fn backup_output(url: &str, w: &Workdir, extra: &[&str]) -> std::process::Output {
    let (repo, key) = (w.repo(), w.key());
    let mut args = vec![
        "backup",
        "--db",
        url,
        "--repo",
        &repo,
        "--key-file",
        &key,
        "-q",
    ];
    args.extend_from_slice(extra);
    pgsnap(&args)
}

/// `pgsnap restore --json -q` of backup `id` (or `latest`) from the
/// workdir's repository into `db`; returns the report.
pub fn restore_json(
    pg: &Cluster,
    w: &Workdir,
    id: &str,
    db: &str,
    extra: &[&str],
) -> serde_json::Value {
    let out = restore_output(pg, w, id, db, extra);
    restore_report(&out, &format!("{id} into {db} {extra:?}"))
}

/// [`restore_json`] with the restore's debug log (which says, among other
/// things, how many streams loaded each table): the report and the log.
pub fn restore_logged(
    pg: &Cluster,
    w: &Workdir,
    id: &str,
    db: &str,
    extra: &[&str],
) -> (serde_json::Value, String) {
    let out = restore_command(pg, w, id, db, extra)
        .env("PGSNAP_LOG", "pgsnap=debug")
        .output()
        .expect("run pgsnap");
    let report = restore_report(&out, &format!("{id} into {db} {extra:?}"));
    (report, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The JSON report of a restore run that must have succeeded (`what` names
/// the run in the failure message).
pub fn restore_report(out: &std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "pgsnap restore {what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON report line")
}

/// The run of [`restore_json`]'s command, whatever its outcome.
pub fn restore_output(
    pg: &Cluster,
    w: &Workdir,
    id: &str,
    db: &str,
    extra: &[&str],
) -> std::process::Output {
    restore_command(pg, w, id, db, extra)
        .output()
        .expect("run pgsnap")
}

/// `pgsnap restore` of backup `id` into `db` as an operator runs it (no
/// `--json`, no `-q`: its progress lines on stderr), whatever its outcome.
pub fn restore_plain(pg: &Cluster, w: &Workdir, id: &str, db: &str, extra: &[&str]) -> Output {
    let (repo, key, url) = (w.repo(), w.key(), pg.url(db));
    pgsnap(&restore_args(&repo, &key, id, &url, extra))
}

/// The arguments of `pgsnap restore` of backup `id` from `repo` with `key`
/// into `url`, then `extra`.
pub fn restore_args<'a>(
    repo: &'a str,
    key: &'a str,
    id: &'a str,
    url: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "restore",
        "--repo",
        repo,
        "--key-file",
        key,
        id,
        "--db",
        url,
    ];
    args.extend_from_slice(extra);
    args
}

/// [`restore_plain`], which must succeed: its stderr.
pub fn restore_progress(pg: &Cluster, w: &Workdir, id: &str, db: &str, extra: &[&str]) -> String {
    let out = restore_plain(pg, w, id, db, extra);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "restore {id} into {db} {extra:?}: {err}"
    );
    err
}

/// [`restore_json`]'s command, not yet run (to add to its environment).
pub fn restore_command(pg: &Cluster, w: &Workdir, id: &str, db: &str, extra: &[&str]) -> Command {
    restore_command_at(w, id, &pg.url(db), extra)
}

/// The plan `restore --dry-run` prints (text) for `latest` into `db`,
/// with `extra` arguments; the run must succeed.
pub fn dry_run_plan(pg: &Cluster, w: &Workdir, db: &str, extra: &[&str]) -> String {
    let mut args = extra.to_vec();
    args.push("--dry-run");
    let out = restore_plain(pg, w, "latest", db, &args);
    success_stdout(out, &format!("restore --dry-run {extra:?}"))
}

/// [`restore_command`] into the database `url` names (another user's
/// connection, say).
pub fn restore_command_at(w: &Workdir, id: &str, url: &str, extra: &[&str]) -> Command {
    let (repo, key) = (w.repo(), w.key());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgsnap"));
    scrubbed(&mut cmd)
        .args(["restore", "--repo", &repo, "--key-file", &key, id])
        .args(["--db", url, "--json", "-q"])
        .args(extra);
    cmd
}
