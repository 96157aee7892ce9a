//! pgsnap: native, encrypted, seekable PostgreSQL backups.

pub mod archive;
pub mod error;
pub mod keys;

pub use error::{Error, Result};
