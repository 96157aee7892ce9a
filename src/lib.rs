//! pgsnap: native, encrypted, seekable PostgreSQL backups.
