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
//!
//! What an application needs is also at the crate root. A backup, its
//! check, and one table back into another database, as the `pgsnap` binary
//! runs them:
//!
//! ```no_run
//! use std::{path::Path, sync::Arc};
//! use pgsnap::{BackupOptions, ConnInfo, Credentials, Repository, RestoreOptions};
//!
//! # async fn example() -> pgsnap::Result<()> {
//! let repo = Repository::open_or_init(pgsnap::storage_for("/var/backups/pgsnap").await?).await?;
//! let creds = Credentials::from_key_file(Path::new("/etc/pgsnap/key"))?;
//! let source = ConnInfo::parse("postgres://backup@db/app")?;
//! let progress = Arc::new(pgsnap::progress::Silent);
//! let done = pgsnap::backup::run(&repo, &source, &creds, &BackupOptions::default(), progress.clone()).await?;
//!
//! let manifest = repo.resolve(&done.id).await?;
//! assert!(pgsnap::verify::run(&repo, &manifest, &creds).await?.ok);
//!
//! let opts = RestoreOptions {
//!     jobs: 2,
//!     tables: vec![pgsnap::filter::Pattern::table("app.users").map_err(pgsnap::Error::Usage)?],
//!     ..Default::default()
//! };
//! let target = ConnInfo::parse("postgres://restore@scratch/app_restore")?;
//! let report = pgsnap::restore::run(&repo, &manifest, &creds, &target, &opts, progress).await?;
//! println!("{} rows in {} tables", report.rows, report.tables);
//! # Ok(())
//! # }
//! ```

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

pub use backup::BackupOptions;
pub use credentials::Credentials;
pub use error::{Error, Result};
pub use pg::conn::ConnInfo;
pub use progress::{Event, Progress};
pub use repo::{storage_for, Manifest, Repository};
pub use restore::{RestoreOptions, RestoreReport};
pub use verify::VerifyReport;
