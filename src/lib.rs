//! pgsnap: native, encrypted, seekable PostgreSQL backups.

pub mod error;
pub mod pg;

pub use error::{Error, Result};
