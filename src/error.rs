//! The library's error type.
//!
//! Rules: every message names what failed and, where the user can act, what
//! to do; it fits on one line; it never contains a password, key, key-file
//! content or passphrase. Variants are grouped by what the caller can do
//! about them (fix the invocation, fix the environment, distrust the
//! archive), which is also how the binary picks its exit code.

use std::path::PathBuf;

/// Library-wide error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The invocation is wrong (bad flag value, bad connection string).
    #[error("{0}")]
    Usage(String),

    /// An I/O error without more context.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    IoPath {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An I/O error while doing something named.
    #[error("{context}: {source}")]
    IoContext {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A write failed because the file system is full (or the user's quota
    /// is used up). Its own variant because the fix is not in pgsnap's
    /// input but on the machine, and the message says so.
    #[error("{context}: {reason}")]
    NoSpace {
        context: String,
        /// What ran out, and what to do: `no space left on device; free
        /// space there or use another repository`, say.
        reason: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// `target` is the connection without its password. `code` is the
    /// server's SQLSTATE when it answered (`28P01`: wrong password,
    /// `28000`: no such role or no pg_hba.conf entry, `3D000`: no such
    /// database, `53300`: too many connections), `None` when it could not
    /// be reached: so that an application tells them apart without reading
    /// the message.
    #[error("cannot connect to {target}: {detail} ({hint})")]
    Connect {
        target: String,
        detail: String,
        hint: String,
        code: Option<String>,
    },

    /// Restore could not convert a table's text rows to binary COPY; the
    /// load then sends the text instead, so this never ends a restore.
    #[error("{0}")]
    Transcode(#[from] crate::pg::transcode::TranscodeError),

    /// A statement failed on the server, or a check pgsnap makes of it.
    /// `code` is the SQLSTATE when the server reported the error, for
    /// callers that act on the kind of failure rather than its words (the
    /// server's messages follow its `lc_messages`).
    #[error("{context}: {detail}")]
    Postgres {
        context: String,
        detail: String,
        code: Option<String>,
    },

    /// The repository is missing, malformed or holds no such backup.
    #[error("{0}")]
    Repo(String),

    /// The bytes are not a valid archive (structure, limits, index consistency).
    #[error("invalid archive: {0}")]
    Format(String),

    /// The input ended before a complete structure could be parsed.
    ///
    /// For sans-IO parsers (`Header::parse`) this means "give me at least
    /// `needed` bytes and call again"; for whole-archive readers it means the
    /// archive is truncated.
    #[error("archive truncated or incomplete: at least {needed} bytes needed")]
    Truncated { needed: u64 },

    /// AEAD or MAC verification failed. Deliberately opaque: we cannot tell a
    /// wrong key from tampered data and must not pretend we can.
    #[error("decryption failed: wrong key or tampered data")]
    Auth,

    /// Part of an archive did not authenticate although its key opened the
    /// archive: it was altered or damaged after it was written. The message
    /// names the part (table, segment, archive bytes).
    #[error("{0}")]
    Tampered(String),

    /// No key slot of the archive can be opened with the key that was given.
    #[error("wrong key: {0}")]
    WrongKey(String),

    /// Something this version does not support (newer format version, unknown cipher...).
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// Problems with a key file (missing, malformed, already exists...).
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },

    /// The caller passed an invalid argument (bad option, out-of-order chunk...).
    #[error("invalid argument: {0}")]
    InvalidInput(String),

    /// A background pipeline thread failed; the message is the first error's text.
    /// `ChunkPipeline::finish` returns the original error.
    #[error("archive pipeline failed: {0}")]
    Pipeline(String),

    /// Reading or recreating the schema failed.
    #[error("{0}")]
    Schema(String),

    /// A restore was refused before any change (conflicts, missing roles).
    #[error("{0}")]
    Refused(String),

    /// The archive sits in an archive storage class (S3 Glacier) without a
    /// readable copy: nothing was done, and the same command succeeds once
    /// a thaw completes (whether this run requested it or not).
    #[error("{0}")]
    NotThawed(String),

    /// A restore failed after it had changed the target: `left` says what
    /// the target keeps and what to do about it.
    #[error("{error}; {left}")]
    Incomplete { error: Box<Error>, left: String },

    /// A `--single-transaction` restore failed and its transaction was
    /// rolled back: the target is as it was. `note` says so, and repeats
    /// any warning that may explain the failure.
    #[error("{error}; {note}")]
    RolledBack { error: Box<Error>, note: String },

    /// The run was asked to stop (`BackupOptions::stop`: Ctrl-C, SIGTERM);
    /// the message says what was left.
    #[error("{0}")]
    Stopped(String),

    /// A storage service (S3) refused or failed a request; the message names
    /// the operation, the object and the service's error code.
    #[error("{0}")]
    Storage(String),

    /// AWS KMS answered and refused (access denied, disabled key, wrong key
    /// id, a ciphertext it does not take).
    #[error("{0}")]
    Kms(String),

    /// AWS KMS could not be asked (unreachable endpoint, timeout) or failed
    /// on its side (HTTP 5xx, throttling): nothing is known about the key,
    /// and the message must not suggest it is wrong.
    #[error("{0}")]
    KmsUnavailable(String),

    /// AWS KMS refused the key because of its state (disabled, pending
    /// deletion, its custom key store unavailable): a verdict on the key's
    /// state, not on whether it is the right one.
    #[error("{0}")]
    KmsKeyState(String),

    /// No AWS credentials (or no region) could be loaded for S3 or KMS: the
    /// environment's configuration, not the command line. The message names
    /// the ways of giving them (never a credential).
    #[error("{0}")]
    AwsCredentials(String),

    /// A check after the work failed (row counts, checksums, sizes).
    #[error("{0}")]
    Integrity(String),
}

/// Why a write failed when it failed for lack of space, by errno: the
/// `io::ErrorKind`s for these (`StorageFull`, `QuotaExceeded`) are newer than
/// the crate's minimum Rust version.
fn no_space_reason(e: &std::io::Error) -> Option<&'static str> {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => {
            Some("no space left on device; free space there or use another repository")
        }
        Some(libc::EDQUOT) => {
            Some("disk quota exceeded; free space there or use another repository")
        }
        // The process's file size limit (`ulimit -f`): the binary ignores
        // SIGXFSZ so that the write fails instead of the process dying.
        Some(libc::EFBIG) => {
            Some("file size limit exceeded; raise the limit (ulimit -f) or use another repository")
        }
        _ => None,
    }
}

/// `Result` with the library [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Marks the function an error was raised in, in [`Error::pg`]'s detail.
const IN_FUNCTION: &str = "raised in ";

impl Error {
    /// What a failed `--single-transaction` restore says besides its error.
    pub const ROLLED_BACK: &'static str =
        "the restore ran in one transaction, which was rolled back: the target is as it was";

    pub(crate) fn rolled_back(e: Error) -> Error {
        match e {
            e @ Error::RolledBack { .. } => e,
            e => Error::RolledBack {
                error: Box::new(e),
                note: Error::ROLLED_BACK.into(),
            },
        }
    }

    pub(crate) fn format(msg: impl Into<String>) -> Self {
        Error::Format(msg.into())
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        match no_space_reason(&source) {
            Some(reason) => Error::NoSpace {
                context: context.into(),
                reason,
                source,
            },
            None => Error::IoContext {
                context: context.into(),
                source,
            },
        }
    }

    /// `self`, or [`Error::NoSpace`] naming `context` when `self` is a bare
    /// I/O error from a full file system. Writers behind a `Write` (the
    /// archive writer) only have an `io::Error` and no path to name; their
    /// caller knows what was being written.
    pub fn on_write(self, context: impl FnOnce() -> String) -> Error {
        match self {
            Error::Io(source) => match no_space_reason(&source) {
                Some(reason) => Error::NoSpace {
                    context: context(),
                    reason,
                    source,
                },
                None => Error::Io(source),
            },
            e => e,
        }
    }

    /// A blocking or spawned task that panicked or was cancelled.
    pub fn task(context: &str, e: tokio::task::JoinError) -> Error {
        Error::io(context, std::io::Error::other(e.to_string()))
    }

    pub fn io_path(what: &str, path: &std::path::Path, source: std::io::Error) -> Error {
        Error::io(format!("{what} {}", path.display()), source)
    }

    /// A server error with its message, detail and hint on one line.
    pub fn pg(context: impl Into<String>, e: tokio_postgres::Error) -> Error {
        Error::Postgres {
            context: context.into(),
            detail: Error::pg_detail(&e),
            code: e.code().map(|c| c.code().to_string()),
        }
    }

    /// [`Error::pg`]'s one line without a context: for a warning or a
    /// refusal that quotes the server.
    pub fn pg_detail(e: &tokio_postgres::Error) -> String {
        let detail = match e.as_db_error() {
            Some(db) => {
                let mut s = db.message().to_string();
                if let Some(d) = db.detail() {
                    s.push_str(&format!(" ({d})"));
                }
                if let Some(h) = db.hint() {
                    s.push_str(&format!("; hint: {h}"));
                }
                // Raised inside a function (a trigger's, say): which one.
                if let Some(w) = db.where_().and_then(|w| w.lines().next()) {
                    if w.contains(" function ") {
                        s.push_str(&format!(" ({IN_FUNCTION}{w})"));
                    }
                }
                s
            }
            None => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(e);
                while let Some(inner) = src {
                    s = format!("{s}: {inner}");
                    src = inner.source();
                }
                if e.is_closed() {
                    if let Some(reason) = crate::pg::conn::recent_close_reason() {
                        s = format!("{s} (the server said: {reason})");
                    }
                }
                s
            }
        };
        detail.replace('\n', " ")
    }

    /// Whether the server refused with a foreign key's check or from
    /// inside a function (a trigger's): what `--disable-triggers` quiets.
    pub fn from_trigger_or_key(&self) -> bool {
        let mut e = self;
        while let Error::Incomplete { error, .. } | Error::RolledBack { error, .. } = e {
            e = error;
        }
        matches!(e, Error::Postgres { code, detail, .. }
            if code.as_deref() == Some("23503") || detail.contains(IN_FUNCTION))
    }

    /// What a part of an archive that does not authenticate means once its
    /// key opened the archive's header: damage, not a wrong key. Spelled
    /// once, here, for restore's errors and verify's report alike (tests and
    /// runbooks match on these words).
    pub const DAMAGED: &'static str =
        "does not authenticate: the archive was altered or damaged after it was written";

    /// [`Error::Tampered`] for a restore that found `location` (what did not
    /// authenticate, with its archive bytes, as the sentence's subject)
    /// damaged before it changed anything.
    pub(crate) fn tampered(location: impl std::fmt::Display) -> Error {
        Error::Tampered(format!(
            "{location} {}; nothing was changed (check it with `pgsnap verify`, restore from \
             another backup)",
            Error::DAMAGED
        ))
    }

    /// True when the caller gave bad input (exit code 2 in the binary).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }

    /// Nothing was done, and the same command will succeed later without
    /// a change (an archive being thawed): the CLI's exit status 75
    /// (EX_TEMPFAIL), so that a script can wait and retry.
    pub fn is_retry_later(&self) -> bool {
        matches!(self, Error::NotThawed(_))
    }
}
