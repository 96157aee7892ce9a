//! pgsnap: native, encrypted, seekable PostgreSQL backups.
//!
//! Data flows one way: database -> COPY -> chunk -> compress -> seal ->
//! storage, and back. Modules, by what they own:
//! - [`archive`]: the archive format (format-spec.md): header, key slots,
//!   sealed chunks, index, footer; the parallel chunk pipeline.
//! - [`keys`], [`credentials`], [`kms`]: key material, which keys a run
//!   holds, AWS KMS key slots.
//! - [`pg`]: connections as libpq takes them, the exported snapshot, COPY.
//! - [`schema`]: the catalogs read into a model with DDL and dependencies.
//! - [`backup`], [`restore`], [`verify`]: the operations.
//! - [`repo`]: storage behind one trait (a local directory, S3), manifests,
//!   listing.

pub mod archive;
mod aws;
pub mod backup;
pub mod credentials;
pub mod error;
pub mod filter;
pub mod keys;
pub mod kms;
pub mod pg;
pub mod progress;
pub mod repo;
pub mod restore;
pub mod schema;
pub mod verify;

pub use error::{Error, Result};
