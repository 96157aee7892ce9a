//! Every flag of every subcommand. These names are public interface:
//! scripts and runbooks depend on them.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "pgsnap",
    version,
    about = "Native, encrypted, seekable PostgreSQL backups",
    long_about = "pgsnap backs up PostgreSQL over its own protocol into compressed, encrypted, \
                  seekable archives, and restores whole databases or single tables from them.",
    after_help = "Examples:\n  \
        pgsnap key generate --out /etc/pgsnap/backup.key\n  \
        pgsnap backup --db postgres://app@db/app --repo /backups --key-file /etc/pgsnap/backup.key\n  \
        pgsnap list --repo /backups\n  \
        pgsnap show --repo /backups latest\n\n\
        Exit codes: 0 success, 1 failure, 2 usage error, 75 nothing done: retry later (an \
        archive being thawed)."
)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr; no progress (a restore's warnings go into its summary line).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum Command {
    /// Back up a database into a repository.
    #[command(after_help = "Examples:\n  \
        pgsnap backup --db postgres://app@db.internal/app --repo /backups --key-file backup.key\n  \
        pgsnap backup --db 'host=/var/run/postgresql dbname=app' --repo /backups \\\n      \
        --key-file backup.key --jobs 4 --exclude-table-data 'audit.*' --tag env=production\n  \
        ID=$(pgsnap backup --db postgres:///app --repo /backups --key-file backup.key)\n\n\
        The new backup's id is the last line on stdout (with --json, one JSON object).\n\
        The connection string also takes PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE\n\
        and ~/.pgpass, as libpq does.")]
    Backup(BackupArgs),
    /// Restore a backup, whole or chosen tables, into a database.
    #[command(after_help = "Examples:\n  \
        pgsnap restore --repo /backups --key-file backup.key latest --db postgres:///app_copy\n  \
        pgsnap restore --repo /backups --key-file backup.key latest --db postgres:///scratch \\\n      \
        --table app.orders\n  \
        pgsnap restore --repo /backups --key-file backup.key 20261125T020000Z-3f9a \\\n      \
        --db postgres:///app --dry-run\n  \
        pgsnap restore --repo /backups --key-file backup.key latest --db postgres:///app \\\n      \
        --table app.orders --into-schema restored   # next to the live table, to compare\n  \
        pgsnap restore --repo /backups --key-file backup.key latest --db postgres:///app \\\n      \
        --table app.orders --clean --single-transaction   # all or nothing\n\n\
        Before changing anything, restore authenticates every chunk it will use, refuses\n\
        objects that already exist (unless --clean) and missing owner roles (unless\n\
        --no-owner). After loading, it compares every table's row count with the backup.\n\
        Its parallel streams commit each on its own: a failure leaves what was loaded\n\
        (the error says what); --single-transaction leaves nothing.")]
    Restore(RestoreArgs),
    /// Check a backup without a database: every chunk, the index, the checksum.
    #[command(
        after_help = "Examples:\n  pgsnap verify --repo /backups --key-file backup.key latest\n  \
        pgsnap verify --repo /backups --key-file backup.key 20261125T020000Z-3f9a --json\n\n\
        Exit status 0 only when every check holds."
    )]
    Verify(VerifyArgs),
    /// Manage key files.
    #[command(subcommand)]
    Key(KeyCommand),
    /// List the backups in a repository.
    #[command(after_help = "Examples:\n  pgsnap list --repo /backups\n  \
        pgsnap list --repo /backups --json | jq '.[] | select(.status == \"complete\") | .id'")]
    List(ListArgs),
    /// Show one backup's manifest: sizes, tables, timings.
    #[command(after_help = "Examples:\n  pgsnap show --repo /backups latest\n  \
        pgsnap show --repo /backups 20261125T020000Z-3f9a --json")]
    Show(ShowArgs),
}

impl Command {
    /// The subcommand's name, for messages.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Backup(_) => "backup",
            Command::Restore(_) => "restore",
            Command::Verify(_) => "verify",
            Command::List(_) => "list",
            Command::Show(_) => "show",
            Command::Key(_) => "key",
        }
    }

    /// Whether the command was asked for JSON on stdout.
    pub fn json(&self) -> bool {
        match self {
            Command::Backup(a) => a.json,
            Command::Restore(a) => a.json,
            Command::Verify(a) => a.json,
            Command::List(a) => a.json,
            Command::Show(a) => a.json,
            Command::Key(_) => false,
        }
    }
}

#[derive(Args, Debug)]
pub struct RepoArg {
    /// Repository location: a directory, or s3://BUCKET/PREFIX (AWS credentials, region and
    /// endpoint from the SDK's default chain: AWS_* variables, profile, instance role).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX", env = "PGSNAP_REPO",
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub repo: String,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// One JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    /// Backup id (shown whatever its state, a damaged one with its status), or `latest`
    /// for the newest complete backup.
    #[arg(value_name = "ID|latest")]
    pub id: String,
    #[command(flatten)]
    pub source: SourceDatabaseArg,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `[K]iB`/`MiB`/`GiB` sizes on the command line.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("GiB").or(t.strip_suffix("G")) {
        (n, 1024 * 1024 * 1024)
    } else if let Some(n) = t.strip_suffix("MiB").or(t.strip_suffix("M")) {
        (n, 1024 * 1024)
    } else if let Some(n) = t.strip_suffix("KiB").or(t.strip_suffix("K")) {
        (n, 1024)
    } else {
        (t, 1)
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a size (like 1MiB or 512KiB)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{s}` is too large"))
}

/// A chunk size: 64KiB..64MiB.
pub fn parse_size(s: &str) -> Result<u32, String> {
    let v = parse_bytes(s)?;
    if !(64 * 1024..=64 * 1024 * 1024).contains(&v) {
        return Err(format!(
            "chunk size must be between 64KiB and 64MiB, not {s}"
        ));
    }
    Ok(v as u32)
}

/// A ctid range size: 64KiB..64GiB.
pub fn parse_split_size(s: &str) -> Result<u64, String> {
    let v = parse_bytes(s)?;
    if !(64 * 1024..=64 * 1024 * 1024 * 1024).contains(&v) {
        return Err(format!(
            "split size must be between 64KiB and 64GiB, not {s}"
        ));
    }
    Ok(v)
}

pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else {
        match t.chars().last() {
            Some('s') => (&t[..t.len() - 1], 1.0),
            Some('m') => (&t[..t.len() - 1], 60.0),
            Some('h') => (&t[..t.len() - 1], 3600.0),
            Some('d') => (&t[..t.len() - 1], 86400.0),
            _ => (t, 1.0),
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (like 500ms, 90s, 30m, 2h, 1d)"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(format!("duration must be positive, not {s}"));
    }
    // A number too large for a duration is refused, not a panic.
    std::time::Duration::try_from_secs_f64(n * mult)
        .map_err(|_| format!("`{s}` is too long a duration"))
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("tag `{s}` is not K=V")),
    }
}

/// Which database's backups `latest` is among.
#[derive(Args, Debug)]
pub struct SourceDatabaseArg {
    /// The backed-up database the backup must be of: `latest` is then its newest backup.
    /// Needed for `latest` in a repository that holds backups of several databases.
    #[arg(long, value_name = "NAME")]
    pub source_database: Option<String>,
}

#[derive(Args, Debug)]
pub struct KeyFileArg {
    /// Key file (made by `pgsnap key generate`) that wraps the archive key. Not needed for
    /// archives with an AWS KMS slot when these AWS credentials may use its key.
    #[arg(
        long,
        value_name = "FILE",
        env = "PGSNAP_KEY_FILE",
        hide_env_values = true
    )]
    pub key_file: Option<std::path::PathBuf>,
}

fn parse_storage_class(s: &str) -> Result<String, String> {
    let known = aws_sdk_s3::types::StorageClass::values();
    if known.contains(&s) {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not an S3 storage class ({})",
            known.join(", ")
        ))
    }
}

fn parse_retention_class(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a retention class (letters, digits, - _ .)"
        ))
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Source database: URL or key=value connection string (PG* variables fill the rest).
    #[arg(
        long,
        value_name = "URL",
        env = "PGSNAP_DB",
        hide_env_values = true,
        default_value = "",
        hide_default_value = true
    )]
    pub db: String,
    #[command(flatten)]
    pub repo: RepoArg,
    #[command(flatten)]
    pub key: KeyFileArg,
    /// AWS KMS key (key id, alias/NAME or ARN) the archive's data key comes from (KMS
    /// GenerateDataKey); restore and verify then need no key file. With --key-file as well,
    /// the key file is a second, break-glass way in.
    #[arg(long, value_name = "KEY_ID", env = "PGSNAP_KMS_KEY_ID")]
    pub kms_key_id: Option<String>,
    /// S3 server-side encryption of the archive with this KMS key (default: --kms-key-id).
    #[arg(long, value_name = "KEY_ID")]
    pub sse_kms_key_id: Option<String>,
    /// S3 storage class of the archive object (STANDARD_IA, GLACIER_IR, ...).
    #[arg(long, value_name = "CLASS", value_parser = parse_storage_class)]
    pub storage_class: Option<String>,
    /// Tag the S3 archive object `pgsnap-retention=CLASS` (daily, weekly, ...) for
    /// lifecycle rules.
    #[arg(long, value_name = "CLASS", value_parser = parse_retention_class)]
    pub retention_class: Option<String>,
    /// After the upload, check size and SHA-256 (basic), or also read the archive back and
    /// authenticate every chunk (full).
    #[arg(long, value_name = "basic|full", default_value = "basic")]
    pub verify_upload: String,
    /// Parallel COPY connections.
    #[arg(long, short = 'j', default_value_t = 2, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// zstd[:LEVEL] (default zstd:3), lz4 or none.
    #[arg(long, value_name = "ALGO")]
    pub compression: Option<String>,
    /// aes-256-gcm (default) or chacha20-poly1305.
    #[arg(long, value_name = "CIPHER")]
    pub cipher: Option<String>,
    /// Plaintext bytes per archive chunk (64KiB..64MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub chunk_size: Option<u32>,
    /// Copy tables bigger than twice SIZE as ctid ranges of about SIZE, on
    /// parallel jobs (default 128MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_split_size)]
    pub split_size: Option<u64>,
    /// COPY format of the table data: text (default: smaller archives,
    /// portable) or binary (restores load faster; tables with a column of
    /// an extension's or user-defined type stay text).
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub copy_format: String,
    /// Only tables, views, sequences matching PATTERN ([schema.]name, * and ? wildcards),
    /// with what they need; --schema/--exclude-schema then have no effect; repeatable.
    #[arg(long = "table", short = 't', value_name = "PATTERN")]
    pub tables: Vec<String>,
    /// Leave out tables matching PATTERN; repeatable.
    #[arg(long = "exclude-table", short = 'T', value_name = "PATTERN")]
    pub exclude_tables: Vec<String>,
    /// Only schemas matching PATTERN (every object in them, with what they need); repeatable.
    #[arg(long = "schema", short = 'n', value_name = "PATTERN")]
    pub schemas: Vec<String>,
    /// Leave out schemas matching PATTERN; repeatable.
    #[arg(long = "exclude-schema", short = 'N', value_name = "PATTERN")]
    pub exclude_schemas: Vec<String>,
    /// Keep the definition but not the rows of tables matching PATTERN; repeatable.
    #[arg(long = "exclude-table-data", value_name = "PATTERN")]
    pub exclude_table_data: Vec<String>,
    /// Label the backup (shown by list/show); repeatable.
    #[arg(long = "tag", value_name = "K=V", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
    /// Wait at most this long for each table lock (concurrent DDL holds them).
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,
    /// Abort the backup cleanly past this duration (the snapshot holds back vacuum).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub max_duration: Option<std::time::Duration>,
    /// One JSON object on stdout instead of the id.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("selection").multiple(true).args(["tables", "schemas"]))]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    #[command(flatten)]
    pub key: KeyFileArg,
    /// Backup id, or `latest` (the newest complete backup; a warning names
    /// any newer one that is damaged).
    #[arg(value_name = "ID|latest")]
    pub id: String,
    /// Target database: URL or key=value connection string naming the database (PG*
    /// variables fill the rest). Required: a restore never falls back to the database
    /// PGDATABASE or the user name would give.
    #[arg(
        long,
        value_name = "URL",
        env = "PGSNAP_TARGET_DB",
        hide_env_values = true,
        // An empty string would let the PG* variables name the target.
        value_parser = clap::builder::NonEmptyStringValueParser::new()
    )]
    pub db: String,
    /// Parallel connections for data and index builds [default: 2; 1 with
    /// --single-transaction].
    #[arg(long, short = 'j', allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// Restore only this table, materialized view, view or sequence (SCHEMA.NAME, SQL
    /// quoting) with what it needs; repeatable. A view's tables are the target's when it
    /// has them; a sequence comes back with its state (with --data-only, only its state).
    #[arg(long = "table", short = 't', value_name = "SCHEMA.NAME")]
    pub tables: Vec<String>,
    /// Restore only this schema: its tables, views, functions, types and sequences
    /// (SQL quoting: '"My Schema"'; unquoted names fold to lower case); repeatable.
    #[arg(long = "schema", short = 'n', value_name = "NAME")]
    pub schemas: Vec<String>,
    /// Definitions only, no rows.
    #[arg(long, conflicts_with = "data_only")]
    pub schema_only: bool,
    /// Rows only, into existing tables.
    #[arg(long)]
    pub data_only: bool,
    /// With --data-only: the target's triggers, foreign-key checks included, do not fire
    /// while rows load (session_replication_role = replica; needs a superuser).
    #[arg(long, requires = "data_only")]
    pub disable_triggers: bool,
    /// Wait at most this long for each lock in the target (`--clean` dropping tables a live
    /// application reads): past it the restore fails, naming the wait, instead of queueing
    /// the application's queries behind it indefinitely.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub lock_timeout: std::time::Duration,
    #[command(flatten)]
    pub source: SourceDatabaseArg,
    /// Create the chosen tables in this (new) schema, next to the live ones (SQL quoting:
    /// unquoted names fold to lower case).
    #[arg(long, value_name = "NAME", requires = "selection")]
    pub into_schema: Option<String>,
    /// Drop the objects this restore would create when they exist in the target
    /// (not with --data-only, which creates none). The target's foreign keys to
    /// a dropped table, from tables the restore leaves alone, are dropped with
    /// it and added back after the load.
    #[arg(long, conflicts_with = "data_only")]
    pub clean: bool,
    /// Check the key, the archive's index and the target (conflicts, roles), print the plan,
    /// change nothing. Chunks are not read: `pgsnap verify` authenticates them.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not restore ownership: objects belong to the restoring role.
    #[arg(long)]
    pub no_owner: bool,
    /// Do not restore grants.
    #[arg(long)]
    pub no_acl: bool,
    /// Leave the target database's own settings (ALTER DATABASE ... SET), grants and comment
    /// as they are; a full restore otherwise gives it the backed-up database's.
    #[arg(long)]
    pub no_database_properties: bool,
    /// Create every table, index and materialized view in the target's default tablespace,
    /// not the one the backup names (which the target may lack), as pg_restore
    /// --no-tablespaces.
    #[arg(long)]
    pub no_tablespaces: bool,
    /// Restore in one transaction on one connection: it commits only once every row is in
    /// and every table's row count checked; any failure (or Ctrl-C) leaves the target as it
    /// was, --clean's drops included. Slower than --jobs, and holds its locks to the end.
    #[arg(long, short = '1')]
    pub single_transaction: bool,
    /// If the archive sits in S3 Glacier Flexible Retrieval or Deep Archive, request a
    /// 7-day restored copy (RestoreObject, Standard tier) and stop with exit status 75; run
    /// the restore again once the thaw completed (hours).
    #[arg(long)]
    pub request_thaw: bool,
    /// One JSON object as the last line on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub repo: RepoArg,
    #[command(flatten)]
    pub key: KeyFileArg,
    /// Backup id, or `latest`: the newest backup, which fails the check if
    /// it is damaged (restore and show take the newest complete one).
    #[arg(value_name = "ID|latest")]
    pub id: String,
    #[command(flatten)]
    pub source: SourceDatabaseArg,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Write a new random key file (mode 0600); never overwrites.
    #[command(
        after_help = "Examples:\n  pgsnap key generate --out /etc/pgsnap/backup.key\n\n\
        Keep a copy of the key file somewhere safe and apart from the backups: without it\n\
        (or another key slot) the backups cannot be read."
    )]
    Generate {
        /// Where to write the key file.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_take_units_down_to_milliseconds_and_never_panic() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("1e30d").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
