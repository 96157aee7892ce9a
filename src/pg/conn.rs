//! Connection strings as libpq takes them, and sessions set up for dumping
//! and restoring.
//!
//! libpq users expect a URL (`postgres://user@host:5432/db?sslmode=require`),
//! `postgres:///db` for the local socket, `key=value` strings, the `PG*`
//! environment variables, `~/.pgpass` and the OS user as the default user.
//! tokio-postgres parses the first two forms; this module fills in what it
//! leaves out so `pgsnap --db` behaves like `psql`. The password never leaves
//! this module in text: `ConnInfo` redacts it in `Display`/`Debug` and in
//! every error message it produces.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::{Client, Config};

use crate::error::{Error, Result};
use crate::pg::tls::{self, TlsMode, TlsSettings};

/// A parsed, completed connection specification.
#[derive(Clone)]
pub struct ConnInfo {
    config: Config,
    tls: TlsSettings,
    /// Where the password came from, for messages (never the password).
    password_source: Option<&'static str>,
    /// Whether the string named the database itself, rather than leaving
    /// it to PGDATABASE or the user name.
    database_given: bool,
}

impl fmt::Debug for ConnInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnInfo({self})")
    }
}

impl fmt::Display for ConnInfo {
    /// `user@host:port/db`, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.config.get_user().unwrap_or("?");
        let db = self.config.get_dbname().unwrap_or("?");
        let host = match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "?".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        write!(f, "{user}@{host}:{port}/{db}")
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// An error with its causes, `outer: inner: ...`: tokio-postgres keeps the
/// useful part ("unknown option `bogus`") in the source, not in its Display.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s = format!("{s}: {inner}");
        src = inner.source();
    }
    s
}

/// Removes the password from a connection string so it can appear in a
/// message: `postgres://u:secret@h/db` -> `postgres://u:***@h/db`,
/// `password=secret` -> `password=***`.
pub fn redact(conn: &str) -> String {
    let mut out = conn.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        // The credentials end at the first `@`, wherever it is: that is
        // how the connection parser (tokio-postgres) reads them, so a
        // password holding `/` or `?` is still a password.
        if let Some(at) = out[rest_start..].find('@') {
            let creds = &out[rest_start..rest_start + at];
            if let Some(colon) = creds.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, "***");
            }
        }
    }
    // key=value forms, in a query string or a keyword string; libpq allows
    // blanks around the `=` (`password = secret`).
    let lower = out.to_ascii_lowercase();
    let bytes = out.as_bytes();
    let mut result = String::with_capacity(out.len());
    let mut i = 0;
    let mut from = 0;
    while let Some(pos) = lower[from..].find("password") {
        let mut eq = from + pos + "password".len();
        while matches!(bytes.get(eq), Some(b' ' | b'\t')) {
            eq += 1;
        }
        if bytes.get(eq) != Some(&b'=') {
            from = eq.max(from + pos + 1);
            continue;
        }
        let mut start = eq + 1;
        while matches!(bytes.get(start), Some(b' ' | b'\t')) {
            start += 1;
        }
        result.push_str(&out[i..eq + 1]);
        result.push_str("***");
        let mut end = start;
        if bytes.get(start) == Some(&b'\'') {
            end += 1;
            while end < bytes.len() && bytes[end] != b'\'' {
                if bytes[end] == b'\\' {
                    end += 1;
                }
                end += 1;
            }
            end = (end + 1).min(bytes.len());
        } else {
            while end < bytes.len() && !matches!(bytes[end], b' ' | b'&' | b'\t') {
                end += 1;
            }
        }
        i = end;
        from = end;
    }
    result.push_str(&out[i..]);
    result
}

fn os_user() -> Option<String> {
    env("USER").or_else(|| env("LOGNAME")).or_else(|| {
        // SAFETY: getpwuid returns a pointer into static storage or null.
        unsafe {
            let pw = libc::getpwuid(libc::geteuid());
            if pw.is_null() {
                return None;
            }
            let name = std::ffi::CStr::from_ptr((*pw).pw_name);
            Some(name.to_string_lossy().into_owned())
        }
    })
}

/// Removes `key` from a connection string (URL query or keyword form) and
/// returns the string without it and its value. tokio-postgres does not
/// know libpq's `verify-*` modes nor `sslrootcert`, so pgsnap handles those.
fn take_param(conn: &str, key: &str) -> (String, Option<String>) {
    if is_url(conn) {
        let Some((base, query)) = conn.split_once('?') else {
            return (conn.to_string(), None);
        };
        let mut value = None;
        let kept: Vec<&str> = query
            .split('&')
            .filter(|kv| match kv.split_once('=') {
                Some((k, v)) if k == key => {
                    value = Some(percent_decode(v));
                    false
                }
                _ => true,
            })
            .collect();
        let rebuilt = if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return (rebuilt, value);
    }
    // key=value form: find `key` at a word start.
    let bytes = conn.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let k = &conn[start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            break;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut v = String::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                v.push(bytes[i] as char);
                i += 1;
            }
            i += 1;
        } else {
            let vs = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            v.push_str(&conn[vs..i]);
        }
        if k == key {
            let rest = format!("{} {}", &conn[..start], &conn[i.min(conn.len())..]);
            return (rest.trim().to_string(), Some(v));
        }
    }
    (conn.to_string(), None)
}

fn is_url(conn: &str) -> bool {
    conn.starts_with("postgres://") || conn.starts_with("postgresql://")
}

/// Whether every `%` of `s` begins two hex digits.
fn percent_encoding_valid(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().all(|(i, &c)| {
        c != b'%'
            || (b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl ConnInfo {
    /// Parses a connection string (URL or key=value; empty means "all from
    /// the environment") and completes it from `PG*` variables, `~/.pgpass`
    /// and libpq's defaults.
    pub fn parse(conn: &str) -> Result<ConnInfo> {
        let (conn, sslmode) = take_param(conn, "sslmode");
        let (conn, root_cert) = take_param(&conn, "sslrootcert");
        // libpq's `passfile`, which the connection parser does not know.
        let (conn, passfile) = take_param(&conn, "passfile");
        let conn = conn.as_str();
        let mode = match sslmode.or_else(|| env("PGSSLMODE")) {
            Some(m) => TlsMode::parse(&m)?,
            None => TlsMode::Prefer,
        };
        let tls = TlsSettings {
            mode,
            root_cert: root_cert.or_else(|| env("PGSSLROOTCERT")),
        };
        if is_url(conn) && !percent_encoding_valid(conn) {
            // As libpq: `%zz` is an error, not a literal (QA: taken as one,
            // it failed later as a wrong password).
            return Err(Error::Usage(
                "invalid percent-encoding in the connection URL (not shown: it may hold a \
                 password): every % must begin two hex digits; write a literal % as %25"
                    .into(),
            ));
        }
        let mut config = if conn.trim().is_empty() {
            Config::new()
        } else {
            Config::from_str(conn).map_err(|e| {
                // Not echoed: where a string does not parse, where its
                // password ends cannot be told either (`postgres//u:pw@h`,
                // an unencoded `@` in the password), and redaction misses.
                let hint = if conn.matches('@').count() > 1 {
                    "; a password holding @, : or / must be percent-encoded (@ as %40)"
                } else {
                    ""
                };
                Error::Usage(format!(
                    "invalid connection string (not shown: it may hold a password): {}; expected \
                     postgres://USER@HOST:PORT/DBNAME or key=value pairs{hint}",
                    // The cause alone: the outer text is this message's start.
                    redact(&std::error::Error::source(&e).map_or_else(|| e.to_string(), chain))
                ))
            })?
        };
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(h) => {
                    for h in h.split(',') {
                        config.host(h);
                    }
                }
                None => {
                    // libpq's default: the local socket directory.
                    let dir = ["/var/run/postgresql", "/tmp"]
                        .into_iter()
                        .find(|d| Path::new(d).exists())
                        .unwrap_or("/var/run/postgresql");
                    config.host_path(dir);
                }
            }
        }
        if config.get_ports().is_empty() {
            if let Some(p) = env("PGPORT") {
                let port = p
                    .parse::<u16>()
                    .map_err(|_| Error::Usage(format!("PGPORT `{p}` is not a port number")))?;
                config.port(port);
            }
        }
        // An empty user (`postgres://:pw@host/db`) is libpq's default user.
        if config.get_user().map_or(true, str::is_empty) {
            let user = env("PGUSER").or_else(os_user).ok_or_else(|| {
                Error::Usage("no user in the connection string, PGUSER or the OS".into())
            })?;
            config.user(user);
        }
        let database_given = config.get_dbname().is_some_and(|d| !d.is_empty());
        if !database_given {
            let db = env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap().to_string());
            config.dbname(db);
        }
        if config.get_application_name().is_none() {
            config.application_name(env("PGAPPNAME").unwrap_or_else(|| "pgsnap".into()));
        }
        if config.get_connect_timeout().is_none() {
            let secs = env("PGCONNECT_TIMEOUT")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(30);
            config.connect_timeout(Duration::from_secs(secs.max(2)));
        }
        config.ssl_mode(match tls.mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        // The snapshot session must outlive long COPYs on idle-killing networks.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        let mut password_source = config.get_password().map(|_| "the connection string");
        if password_source.is_none() {
            if let Some(pw) = env("PGPASSWORD") {
                config.password(pw);
                password_source = Some("PGPASSWORD");
            } else if let Some(pw) = pgpass_lookup(&config, passfile.as_deref()) {
                config.password(pw);
                password_source = Some("the password file");
            }
        }
        Ok(ConnInfo {
            config,
            tls,
            password_source,
            database_given,
        })
    }

    /// Whether the connection string named the database (not PGDATABASE
    /// or the user name): a restore's target must be named.
    pub fn database_given(&self) -> bool {
        self.database_given
    }

    pub fn dbname(&self) -> &str {
        self.config.get_dbname().unwrap_or("")
    }

    pub fn user(&self) -> &str {
        self.config.get_user().unwrap_or("")
    }

    /// The same server, another database.
    pub fn with_dbname(&self, db: &str) -> ConnInfo {
        let mut c = self.clone();
        c.config.dbname(db);
        c.database_given = true;
        c
    }

    /// Opens a connection, spawning its I/O task on the current runtime.
    pub async fn connect(&self) -> Result<Client> {
        let on_unix_socket = matches!(self.config.get_hosts().first(), Some(Host::Unix(_)));
        if self.tls.mode == TlsMode::Disable || (on_unix_socket && self.tls.mode == TlsMode::Prefer)
        {
            let (client, connection) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| self.connect_error(e))?;
            spawn_connection(connection);
            return Ok(client);
        }
        let (client, connection) = self
            .config
            .connect(tls::connector(&self.tls)?)
            .await
            .map_err(|e| self.connect_error(e))?;
        spawn_connection(connection);
        Ok(client)
    }

    /// The TLS mode in force (`sslmode`).
    pub fn tls_mode(&self) -> TlsMode {
        self.tls.mode
    }

    fn connect_error(&self, e: tokio_postgres::Error) -> Error {
        let detail = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => chain(&e),
        };
        let code = e.code().map(|c| c.code().to_string());
        let password_hint = || match self.password_source {
            Some(src) => format!("check the password given in {src}"),
            None => "give a password in the URL, PGPASSWORD or ~/.pgpass".into(),
        };
        let hint = match code.as_deref() {
            Some("28P01") => password_hint(),
            // An unknown role, or no pg_hba.conf line for this user, host
            // and database.
            Some("28000") => "check the user name, and that the server's pg_hba.conf lets it \
                              connect to this database from here"
                .into(),
            Some("3D000") => "check the database name".into(),
            // too_many_connections: max_connections, or a database's or
            // role's CONNECTION LIMIT.
            Some("53300") => "the server's connection limit is reached: free connections, or \
                              use fewer (--jobs)"
                .into(),
            // The server asked for a password and none was given: a client
            // error, so it has no SQLSTATE, only tokio-postgres' own words.
            None if detail.contains("password missing") => password_hint(),
            // The server answered, without TLS: sslmode asked for it.
            None if detail.contains("server does not support TLS") => {
                "the server does not accept TLS: enable ssl on it, or connect with sslmode=prefer \
                 or disable where an unencrypted connection is acceptable"
                    .into()
            }
            // The session's client_encoding, UTF8, for a database whose
            // encoding has no conversion to it (MULE_INTERNAL, QA).
            Some("0A000") if e.as_db_error().is_some() => {
                "pgsnap reads a database as UTF-8, and the server cannot convert this one's \
                 encoding to UTF-8"
                    .into()
            }
            // The server answered: not a matter of reaching it.
            Some(_) if e.as_db_error().is_some() => {
                "the server refused the connection for the reason above".into()
            }
            _ => "check that the server is running and reachable".into(),
        };
        Error::Connect {
            target: self.to_string(),
            detail: redact(&detail),
            hint,
            code,
        }
    }
}

/// Finds a password in the libpq password file (the connection string's
/// `passfile`, `PGPASSFILE` or `~/.pgpass`): lines
/// `host:port:db:user:password`, `*` wildcards, `\` escapes. Like libpq, it
/// ignores a file readable by group or others.
fn pgpass_lookup(config: &Config, passfile: Option<&str>) -> Option<String> {
    let path = passfile
        .map(PathBuf::from)
        .or_else(|| env("PGPASSFILE").map(PathBuf::from))
        .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&path).ok()?;
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access; ignoring it (chmod 0600)",
            path.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = match config.get_hosts().first()? {
        Host::Tcp(h) => h.clone(),
        Host::Unix(_) => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let db = config.get_dbname()?;
    let user = config.get_user()?;
    pgpass_match(&text, &host, &port, db, user)
}

fn split_pgpass_line(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    fields.last_mut().unwrap().push(n);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            _ => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

fn pgpass_match(text: &str, host: &str, port: &str, db: &str, user: &str) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f = split_pgpass_line(line);
        if f.len() != 5 {
            continue;
        }
        let ok = |pat: &str, val: &str| pat == "*" || pat == val;
        if ok(&f[0], host) && ok(&f[1], port) && ok(&f[2], db) && ok(&f[3], user) {
            return Some(f[4].clone());
        }
    }
    None
}

/// A connection configured for pgsnap's work: predictable output formats and
/// no timeouts that would cut a long COPY.
pub struct Session {
    pub client: Client,
}

impl Session {
    pub async fn open(info: &ConnInfo) -> Result<Session> {
        let client = info.connect().await?;
        // As pg_dump's setup_connection: text output must not depend on the
        // server's or the role's settings.
        client
            .batch_execute(
                "SET client_encoding = 'UTF8';
                 SET DateStyle = 'ISO';
                 SET IntervalStyle = 'postgres';
                 SET extra_float_digits = 3;
                 SET statement_timeout = 0;
                 SET lock_timeout = 0;
                 SET idle_in_transaction_session_timeout = 0;
                 SET synchronize_seqscans = off;
                 SET search_path = pg_catalog;",
            )
            .await
            .map_err(|e| Error::pg("setting up the session", e))?;
        // The server looks for its client every second while a statement
        // runs (PostgreSQL 14+, where the platform allows; older servers
        // refuse the setting and do without): a session left by a pgsnap
        // that was stopped (Ctrl-C) or killed while it waited for a lock
        // ends then, instead of holding the locks it had until the wait is
        // over.
        let _ = client
            .batch_execute("SET client_connection_check_interval = 1000")
            .await;
        Ok(Session { client })
    }

    /// Gives the session the client_encoding COPY needs for the data of a
    /// database in `db_encoding` (`pg_encoding_to_char`); see
    /// [`copy_encoding`]. Nothing to do for any encoding but SQL_ASCII.
    pub async fn set_copy_encoding(&self, db_encoding: &str) -> Result<()> {
        match copy_encoding(db_encoding) {
            "UTF8" => Ok(()),
            enc => set_client_encoding(&self.client, enc).await,
        }
    }
}

/// `SET client_encoding` to `enc`, one of [`copy_encoding`]'s answers.
pub async fn set_client_encoding(client: &Client, enc: &'static str) -> Result<()> {
    client
        .batch_execute(&format!("SET client_encoding = '{enc}'"))
        .await
        .map_err(|e| Error::pg("setting the client encoding for COPY", e))
}

/// The client_encoding of COPY data for a database in `db_encoding`. A
/// SQL_ASCII database stores bytes of no encoding: the server refuses to
/// send those that are not UTF-8 as UTF8, and stores them back unchanged
/// only from SQL_ASCII. Its data moves as SQL_ASCII, byte for byte, as
/// pg_dump moves it; every other encoding converts to and from UTF8
/// exactly. Everything but COPY data stays UTF8: the schema and names are
/// read as Rust strings.
pub fn copy_encoding(db_encoding: &str) -> &'static str {
    if db_encoding.eq_ignore_ascii_case("SQL_ASCII") {
        "SQL_ASCII"
    } else {
        "UTF8"
    }
}

/// Drives a connection's I/O on the runtime. A server that ends a session
/// (`pg_terminate_backend`, a shutdown) says why in a message no request
/// waits for: tokio-postgres hands it to the connection task alone, and the
/// client's next call only learns "connection closed". The reason is kept
/// here, before the connection (and with it the client's channel) is dropped,
/// so that [`Error::pg`] can name it.
fn spawn_connection<T>(connection: T)
where
    T: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>
        + Send
        + Unpin
        + 'static,
{
    tokio::spawn(async move {
        let mut connection = connection;
        // tokio-postgres closes the client's channel inside the poll that
        // returns the server's reason, so a client can see "closed" before
        // this task records why: the count of polls under way lets
        // `recent_close_reason` wait out that window.
        std::future::poll_fn(|cx| {
            IN_POLL.fetch_add(1, Ordering::SeqCst);
            let polled = std::pin::Pin::new(&mut connection).poll(cx);
            if let std::task::Poll::Ready(Err(e)) = &polled {
                tracing::debug!("connection closed: {e}");
                if let Some(db) = e.as_db_error() {
                    record_close_reason(db.message());
                }
            }
            IN_POLL.fetch_sub(1, Ordering::SeqCst);
            polled
        })
        .await
        .ok();
        drop(connection);
    });
}

/// Connection tasks inside a poll right now.
static IN_POLL: AtomicUsize = AtomicUsize::new(0);

/// The longest a closed client waits for its connection task to record
/// the server's reason: the task is mid-poll, microseconds from it.
const CLOSE_REASON_WAIT: Duration = Duration::from_millis(50);

/// How long a recorded reason stays an explanation: a session closed long
/// ago (in a process that runs for days) says nothing about a new one.
const CLOSE_REASON_FRESH: Duration = Duration::from_secs(60);

static CLOSE_REASON: std::sync::Mutex<Option<(std::time::Instant, String)>> =
    std::sync::Mutex::new(None);

fn record_close_reason(message: &str) {
    if let Ok(mut slot) = CLOSE_REASON.lock() {
        *slot = Some((std::time::Instant::now(), message.to_string()));
    }
}

/// What the server said when it last ended one of this process's sessions,
/// if that was within the last minute.
pub(crate) fn recent_close_reason() -> Option<String> {
    let started = std::time::Instant::now();
    loop {
        let recorded = {
            let slot = CLOSE_REASON.lock().ok()?;
            match &*slot {
                Some((at, msg)) if at.elapsed() < CLOSE_REASON_FRESH => Some(msg.clone()),
                _ => None,
            }
        };
        if recorded.is_some()
            || IN_POLL.load(Ordering::SeqCst) == 0
            || started.elapsed() >= CLOSE_REASON_WAIT
        {
            return recorded;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A string that does not parse is not echoed: where its password
    /// ends cannot be told, and redaction would miss it.
    #[test]
    fn unparsable_strings_are_not_echoed() {
        for conn in [
            "postgres//bkp:SECRETPW@127.0.0.1:5432/app",
            "postgres:bkp:SECRETPW@127.0.0.1/app",
            "postgres://odd:p@ss:SECRETPW@127.0.0.1:5432/app",
        ] {
            let err = ConnInfo::parse(conn).unwrap_err().to_string();
            assert!(!err.contains("SECRETPW"), "{err}");
            assert!(err.contains("invalid connection string"), "{err}");
        }
        let err = ConnInfo::parse("postgres://odd:p@ss:SECRETPW@127.0.0.1:5432/app")
            .unwrap_err()
            .to_string();
        assert!(err.contains("%40"), "{err}");
    }

    /// `%` not followed by two hex digits is refused, as libpq refuses it,
    /// without echoing the URL; well-formed escapes pass.
    #[test]
    fn bad_percent_encoding_is_refused_unechoed() {
        for conn in [
            "postgres://u:SECRET%zz@127.0.0.1/app",
            "postgres://u:SECRET%4@127.0.0.1/app",
            "postgresql://u:SECRET@127.0.0.1/app%",
        ] {
            let err = ConnInfo::parse(conn).unwrap_err().to_string();
            assert!(!err.contains("SECRET"), "{err}");
            assert!(err.contains("invalid percent-encoding"), "{err}");
        }
        assert!(percent_encoding_valid("postgres://u:p%40ss%2f@h/db"));
        // Key=value strings have no percent-encoding.
        assert!(ConnInfo::parse("host=127.0.0.1 password=50%off dbname=app").is_ok());
    }

    #[test]
    fn redacts_url_and_keyword_passwords() {
        assert_eq!(
            redact("postgres://bob:hunter2@db.example:5432/app?sslmode=require"),
            "postgres://bob:***@db.example:5432/app?sslmode=require"
        );
        assert_eq!(
            redact("host=db user=bob password=hunter2 dbname=app"),
            "host=db user=bob password=*** dbname=app"
        );
        assert_eq!(
            redact("host=db password='a b\\' c' dbname=app"),
            "host=db password=*** dbname=app"
        );
        assert_eq!(
            redact("postgres://h/db?password=hunter2&x=1"),
            "postgres://h/db?password=***&x=1"
        );
        assert_eq!(redact("postgres:///app"), "postgres:///app");
        // The parser ends the credentials at the first `@`, not at a `/`
        // or `?` before it.
        assert_eq!(
            redact("postgres://sec:S3cr3t/sp?x@127.0.0.1:5/tiny?sslmod=require"),
            "postgres://sec:***@127.0.0.1:5/tiny?sslmod=require"
        );
        assert_eq!(redact("postgres://h:5/db?x=a"), "postgres://h:5/db?x=a");
        assert_eq!(
            redact("host=db password = hunter2 bogus=1"),
            "host=db password =*** bogus=1"
        );
        assert_eq!(
            redact("password= 'hunter 2' passwordless=x"),
            "password=*** passwordless=x"
        );
    }

    #[test]
    fn pgpass_matches_with_wildcards_and_escapes() {
        let text = "# comment\nother:5432:*:bob:nope\nlocalhost:*:app:bob:pa\\:ss\n*:*:*:*:any\n";
        assert_eq!(
            pgpass_match(text, "localhost", "5433", "app", "bob").as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            pgpass_match(text, "h", "1", "d", "u").as_deref(),
            Some("any")
        );
    }

    #[test]
    fn ssl_params_are_taken_out_of_both_forms() {
        let (rest, v) = take_param(
            "postgres://u@h/db?sslmode=verify-full&application_name=x",
            "sslmode",
        );
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(v.as_deref(), Some("verify-full"));
        let (rest, v) = take_param(
            "postgres://u@h/db?sslrootcert=%2Ftmp%2Fca.pem",
            "sslrootcert",
        );
        assert_eq!(rest, "postgres://u@h/db");
        assert_eq!(v.as_deref(), Some("/tmp/ca.pem"));
        let (rest, v) = take_param("host=h sslmode=require dbname=d", "sslmode");
        assert_eq!(
            rest.split_whitespace().collect::<Vec<_>>(),
            ["host=h", "dbname=d"]
        );
        assert_eq!(v.as_deref(), Some("require"));
        let (rest, v) = take_param("host=h sslrootcert='/a b/ca.pem'", "sslrootcert");
        assert_eq!(rest, "host=h");
        assert_eq!(v.as_deref(), Some("/a b/ca.pem"));
        assert_eq!(take_param("host=h", "sslmode").1, None);
        let c = ConnInfo::parse("postgres://u@h/db?sslmode=verify-full").unwrap();
        assert_eq!(c.tls_mode(), TlsMode::VerifyFull);
        assert!(ConnInfo::parse("postgres://u@h/db?sslmode=bogus").is_err());
    }

    #[test]
    fn display_never_shows_password() {
        let c = ConnInfo::parse("postgres://bob:hunter2@127.0.0.1:5433/app").unwrap();
        let shown = format!("{c} {c:?}");
        assert!(!shown.contains("hunter2"));
        assert_eq!(c.to_string(), "bob@127.0.0.1:5433/app");
    }

    /// No user before the password: libpq's default user (PGUSER, the OS
    /// user), as psql takes it; it was an empty user name.
    #[test]
    fn an_empty_user_is_the_default_user() {
        let c = ConnInfo::parse("postgres://:pw@127.0.0.1:5433/app").unwrap();
        assert!(!c.to_string().starts_with('@'), "{c}");
    }
}
