//! The one storage trait every repository operation goes through.
//!
//! Keys are `/`-separated relative names. Small objects (config, manifests)
//! are written whole with [`Storage::put`]; archives stream through an
//! [`ObjectWriter`], which only makes the object visible under its key when
//! [`ObjectWriter::finish`] succeeds, so a failed or killed run never leaves
//! something that looks complete. Readers fetch by range, so one table can be
//! read out of a large archive without downloading it.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    /// User metadata where the storage keeps it (S3: `x-amz-meta-*`, from
    /// `head`); empty for local directories and in listings.
    pub metadata: BTreeMap<String, String>,
    /// The storage class where the storage has them (S3: `STANDARD`,
    /// `GLACIER`, ...).
    pub storage_class: Option<String>,
    /// S3's `x-amz-restore` of an archived object (`ongoing-request="false",
    /// expiry-date=...` once a thaw completed).
    pub restore: Option<String>,
    /// Which version of the object this is, where the storage can tell
    /// (S3, from `head`): [`Storage::get_range_of`] reads that one.
    pub version: Option<Version>,
}

/// One version of an object, by its ETag (S3), so that reads made minutes
/// apart (a restore authenticates an archive's chunks, then reads them
/// again to load them) see the same bytes, or fail, if the key is written
/// again between them. Not by version id, which would keep the old bytes
/// readable in a versioned bucket: reading by version id needs
/// `s3:GetObjectVersion`, which a restore's policy need not grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

/// Whether S3 storage class `class` is an archive class (S3 Glacier
/// Flexible Retrieval, Deep Archive): an object there cannot be read, nor
/// copied, until a thaw.
pub fn is_archive_class(class: &str) -> bool {
    matches!(class, "GLACIER" | "DEEP_ARCHIVE")
}

impl ObjectMeta {
    /// True when the object sits in an archive storage class (S3 Glacier
    /// Flexible Retrieval or Deep Archive) and no restored copy is available:
    /// reading it fails until a thaw is requested and completes.
    pub fn needs_thaw(&self) -> bool {
        let archived = self.storage_class.as_deref().is_some_and(is_archive_class);
        let restored = self
            .restore
            .as_deref()
            .is_some_and(|r| r.contains("ongoing-request=\"false\""));
        archived && !restored
    }

    /// The thaw state for messages: `not requested` or `in progress`.
    pub fn thaw_state(&self) -> &'static str {
        match self.restore.as_deref() {
            Some(r) if r.contains("ongoing-request=\"true\"") => "in progress",
            Some(r) if r.contains("ongoing-request=\"false\"") => "done",
            _ => "not requested",
        }
    }
}

/// How new archive objects are stored, where the storage has such choices
/// (S3); a local directory accepts only the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadOptions {
    /// SSE-KMS key for server-side encryption (key id, alias or ARN).
    pub sse_kms_key_id: Option<String>,
    /// S3 storage class of archive objects (`STANDARD_IA`, `GLACIER_IR`, ...).
    pub storage_class: Option<String>,
    /// Object tags of archive objects (lifecycle rules select on them).
    pub tags: BTreeMap<String, String>,
}

/// A streamed upload. `Write` is blocking: it runs on the archive writer
/// thread, never on the async runtime.
pub trait ObjectWriter: Write + Send {
    /// Makes the object durable and visible under its key, with `metadata`
    /// as its user metadata (known only now: it holds the archive's SHA-256).
    /// Storages without user metadata ignore it. The returned meta is the
    /// stored object's, checked against what was written.
    fn finish(self: Box<Self>, metadata: &BTreeMap<String, String>) -> Result<ObjectMeta>;
    /// Discards everything written; the key stays absent.
    fn abort(self: Box<Self>);
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Where this storage is, for messages (`/backups`, `s3://bucket/prefix`).
    fn location(&self) -> String;
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;
    /// Writes `data` at `key` only when no object is there, and says
    /// whether it did. Atomic against another writer of the same key (an
    /// exclusive create; S3's conditional write), which makes it a claim:
    /// two runs can never both get `true` for one key.
    async fn put_new(&self, key: &str, data: Bytes) -> Result<bool>;
    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;
    async fn get(&self, key: &str) -> Result<Bytes>;
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    /// [`Storage::get_range`] of one version of the object (from
    /// [`ObjectMeta::version`]), where the storage has versions.
    async fn get_range_of(
        &self,
        key: &str,
        range: Range<u64>,
        version: Option<&Version>,
    ) -> Result<Bytes> {
        let _ = version;
        self.get_range(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;
    /// Every object whose key starts with `prefix`, including unfinished
    /// uploads' temporary objects where the storage has them (their keys
    /// contain [`TEMP_MARKER`]).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    async fn delete(&self, key: &str) -> Result<()>;
    /// Removes what a run of pgsnap wrote at `key` and that must not
    /// survive it (a failed run's archive, a released claim), all of it: in
    /// a versioned bucket a delete only hides the object behind a delete
    /// marker, and the failed archive would keep its space as a noncurrent
    /// version. Never for backups that were complete (their old versions
    /// are what versioning is there to keep).
    async fn discard(&self, key: &str) -> Result<()> {
        self.delete(key).await
    }

    /// Where backups go under the repository root: `backups/` in a local
    /// directory (beside `config`), nothing on S3, whose prefix already names
    /// the place (`PREFIX/YYYY-MM-DD/<id>/`).
    fn backups_base(&self) -> &'static str {
        "backups/"
    }

    /// Fails, with a message saying so, when the place the repository is
    /// in does not exist (an S3 bucket). Called when no repository was found
    /// there, to tell "no repository here" from "no such place".
    async fn check_location(&self) -> Result<()> {
        Ok(())
    }

    /// Discards unfinished uploads (S3 multipart uploads) under the
    /// repository that started before `before`: left-overs of killed runs,
    /// but for the uploads to `live` (keys that runs still alive write: a
    /// backup longer than the cut-off, or any on storage that misreports
    /// when an upload began). Returns how many.
    async fn sweep_uploads(&self, before: DateTime<Utc>, live: &[String]) -> Result<usize> {
        let _ = (before, live);
        Ok(0)
    }

    /// Discards the unfinished uploads to `key` that this storage value
    /// started (a failed run's clean-up, awaited before the failure is
    /// reported, wherever its writer is); a writer for `key` still alive then
    /// fails rather than start a new upload. Returns how many.
    async fn abort_unfinished(&self, key: &str) -> Result<usize> {
        let _ = key;
        Ok(0)
    }

    /// Asks for a readable copy of an object in an archive storage class
    /// (S3 RestoreObject) for `days`. Storages without archive classes refuse.
    async fn request_thaw(&self, key: &str, days: i32) -> Result<()> {
        let _ = days;
        Err(crate::error::Error::Usage(format!(
            "{key}: this repository has no archive storage classes to thaw"
        )))
    }
}

/// Part of the name of an object that is still being written.
pub const TEMP_MARKER: &str = ".tmp-";
