//! The one storage trait every repository operation goes through.
//!
//! Keys are `/`-separated relative names. Small objects (config, manifests)
//! are written whole with [`Storage::put`]; archives stream through an
//! [`ObjectWriter`], which only makes the object visible under its key when
//! [`ObjectWriter::finish`] succeeds, so a failed or killed run never leaves
//! something that looks complete. Readers fetch by range, so one table can be
//! read out of a large archive without downloading it.

use std::io::Write;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::Result;

#[derive(Debug, Clone)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
}

/// A streamed upload. `Write` is blocking: it runs on the archive writer
/// thread, never on the async runtime.
pub trait ObjectWriter: Write + Send {
    /// Makes the object durable and visible under its key.
    fn finish(self: Box<Self>) -> Result<ObjectMeta>;
    /// Discards everything written; the key stays absent.
    fn abort(self: Box<Self>);
}

#[async_trait]
pub trait Storage: Send + Sync {
    /// Where this storage is, for messages (`/backups`, `s3://bucket/prefix`).
    fn location(&self) -> String;
    async fn put(&self, key: &str, data: Bytes) -> Result<()>;
    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;
    async fn get(&self, key: &str) -> Result<Bytes>;
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>>;
    /// Every object whose key starts with `prefix`, including unfinished
    /// uploads' temporary objects where the storage has them (their keys
    /// contain [`TEMP_MARKER`]).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;
    async fn delete(&self, key: &str) -> Result<()>;
}

/// Part of the name of an object that is still being written.
pub const TEMP_MARKER: &str = ".tmp-";
