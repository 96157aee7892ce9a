//! pgsnap: native, encrypted, seekable PostgreSQL backups.

pub mod error;
pub mod filter;
pub mod pg;
pub mod repo;

pub use error::{Error, Result};
