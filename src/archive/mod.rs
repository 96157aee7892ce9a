//! The pgsnap archive format (version 1): an encrypted, authenticated,
//! seekable container of chunked byte streams. See `format-spec.md` at the
//! repository root for the byte-level specification.
//!
//! Module map:
//! - [`format`]: constants, limits, header and footer layout;
//! - [`codec`]: compression codecs and bounded decompression;
//! - [`seal`]: ciphers, key derivation, nonces/AAD and the thread-safe [`Sealer`];
//! - [`slots`]: key slots (key file, passphrase, KMS) and unlocking;
//! - [`index`]: the index (entries and chunk locations) and its validation;
//! - [`writer`]: the sequential [`ArchiveWriter`];
//! - [`pipeline`]: the multi-threaded [`ChunkPipeline`];
//! - [`reader`]: sans-IO opening of header/index/chunks, the streaming
//!   verifier and the local-file [`ArchiveFile`].

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
pub use pipeline::{ChunkPipeline, ChunkSender};
pub use reader::{ArchiveFile, OpenArchive, SegmentInfo, StreamSummary};
pub use seal::{Cipher, SealedChunk, Sealer};
pub use slots::{Argon2Params, KeySlot, SlotSpec, Unlock};
pub use writer::{ArchiveOptions, ArchiveSummary, ArchiveWriter, EntryInfo, EntrySummary};
