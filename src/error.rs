//! Library error type.
//!
//! One enum for the whole library so callers can match on the few cases that
//! matter to them (wrong key, tampering, truncated input) and print the rest.
//! Messages never contain key material or key-file content.

use std::path::PathBuf;

/// Library-wide error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
}

/// `Result` with the library [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn format(msg: impl Into<String>) -> Self {
        Error::Format(msg.into())
    }
}
