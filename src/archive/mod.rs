//! The pgsnap archive format (version 1): an encrypted, authenticated,
//! seekable container of chunked byte streams. See `format-spec.md` at the
//! repository root for the byte-level specification.
//!
//! Module map:
//! - [`format`](mod@format): constants, limits, header and footer layout;
//! - [`codec`]: compression codecs and bounded decompression;
//! - [`seal`]: ciphers, key derivation, nonces/AAD and the thread-safe [`Sealer`];
//! - [`slots`]: key slots (key file, passphrase, KMS) and unlocking;
//! - [`index`]: the index (entries and chunk locations) and its validation;
//! - [`writer`]: the sequential [`ArchiveWriter`];
//! - [`pipeline`]: the multi-threaded [`ChunkPipeline`];
//! - [`reader`]: sans-IO opening of header/index/chunks, the streaming
//!   verifier and the local-file [`ArchiveFile`].
//!
//! # Writing and reading
//!
//! ```
//! use pgsnap::archive::{ArchiveFile, ArchiveOptions, ArchiveWriter, ChunkPipeline, EntryInfo, SlotSpec, Unlock};
//! use pgsnap::keys::{DataKey, KeyFileKey};
//! # fn main() -> pgsnap::Result<()> {
//! # let dir = tempfile::tempdir()?;
//! # let path = dir.path().join("backup.pgsnap");
//! let key = KeyFileKey::generate(); // or KeyFileKey::load(path)
//! let file = std::fs::File::create(&path)?;
//! let writer = ArchiveWriter::new(file, ArchiveOptions::default(), &DataKey::generate(), vec![SlotSpec::KeyFile(&key)])?;
//! let pipeline = ChunkPipeline::new(writer, 2, 6);
//! let tx = pipeline.sender(); // Clone + Send; call from spawn_blocking in async code
//! tx.submit(1, 2, b"1\talice\n2\tbob\n".to_vec())?;
//! let entry = EntryInfo { id: 1, kind: "table".into(), name: Some("public.users".into()), meta: serde_json::Value::Null };
//! let (_file, summary) = pipeline.finish(vec![entry], serde_json::json!({}))?;
//! assert_eq!(summary.entries[0].rows, 2);
//!
//! let archive = ArchiveFile::open(&path, &Unlock::KeyFile(&key))?;
//! assert_eq!(archive.read_entry(1)?, b"1\talice\n2\tbob\n");
//! archive.verify_all()?;
//! # Ok(()) }
//! ```
//!
//! # KMS slots
//!
//! The KMS encryption context contains the archive id, so choose the id
//! first: `let id = writer::new_archive_id();`, call KMS `GenerateDataKey`
//! (or `Encrypt` of a [`DataKey`](crate::keys::DataKey)) with the context
//! from [`slots::kms_encryption_context`], then
//! `ArchiveWriter::new_with_id(w, opts, &data_key, id, vec![SlotSpec::Kms { key_id, ciphertext }, ...])`.
//! To read, KMS-`Decrypt` the slot's ciphertext with the same context and
//! unlock with `Unlock::DataKey(slots::data_key_from_kms_plaintext(&plaintext)?)`.

pub mod codec;
pub mod format;
#[doc(hidden)]
pub mod fuzz;
pub mod index;
pub mod pipeline;
pub mod reader;
pub mod seal;
pub mod slots;
pub mod writer;

pub use codec::{Codec, Compression};
pub use format::{Footer, Header};
pub use index::{ChunkRef, Entry, Index};
pub use pipeline::{ChunkPipeline, ChunkSender, Progress};
pub use reader::{
    ArchiveFile, OpenArchive, OpenedChunk, SegmentInfo, StreamSummary, StreamVerifier,
};
pub use seal::{Cipher, SealedChunk, Sealer};
pub use slots::{Argon2Params, KeySlot, SlotSpec, Unlock};
pub use writer::{ArchiveOptions, ArchiveSummary, ArchiveWriter, EntryInfo, EntrySummary};
