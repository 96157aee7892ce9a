//! pgsnap: native, encrypted, seekable PostgreSQL backups.

pub mod schema;
