//! The library's error type.
//!
//! Rules: every message names what failed and, where the user can act, what
//! to do; it fits on one line; it never contains a password, key or
//! passphrase. Variants are grouped by what the caller can do about them
//! (fix the invocation, fix the environment, distrust the archive), which is
//! also how the binary picks its exit code.

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The invocation is wrong (bad flag value, bad connection string).
    #[error("{0}")]
    Usage(String),

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot connect to {target}: {detail} ({hint})")]
    Connect {
        target: String,
        detail: String,
        hint: String,
    },

    /// A statement failed on the server.
    #[error("{context}: {detail}")]
    Postgres { context: String, detail: String },

    /// The repository is missing, malformed or holds no such backup.
    #[error("{0}")]
    Repo(String),

    /// Something in the archive is malformed (not a key problem).
    #[error("archive is malformed: {0}")]
    Format(String),

    /// Authentication of archive data failed: tampered or corrupt.
    #[error("archive failed authentication: {0}")]
    Auth(String),

    /// No key slot opens the archive with the key given.
    #[error("{0}")]
    WrongKey(String),

    #[error("{0}")]
    Schema(String),

    /// A restore was refused before any change (conflicts, missing roles).
    #[error("{0}")]
    Refused(String),

    /// A check after the work failed (row counts, checksums).
    #[error("{0}")]
    Integrity(String),

    #[error("interrupted")]
    Interrupted,
}

impl Error {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn io_path(what: &str, path: &std::path::Path, source: std::io::Error) -> Error {
        Error::io(format!("{what} {}", path.display()), source)
    }

    /// A server error with its message, detail and hint on one line.
    pub fn pg(context: impl Into<String>, e: tokio_postgres::Error) -> Error {
        let detail = match e.as_db_error() {
            Some(db) => {
                let mut s = db.message().to_string();
                if let Some(d) = db.detail() {
                    s.push_str(&format!(" ({d})"));
                }
                if let Some(h) = db.hint() {
                    s.push_str(&format!("; hint: {h}"));
                }
                s
            }
            None => {
                let mut s = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(inner) = src {
                    s = format!("{s}: {inner}");
                    src = inner.source();
                }
                s
            }
        };
        Error::Postgres {
            context: context.into(),
            detail: detail.replace('\n', " "),
        }
    }

    /// True when the caller gave bad input (exit code 2 in the binary).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage(_))
    }
}
