//! Sequential archive writer: header, sealed segments in counter order, index,
//! footer.
//!
//! Owns the on-disk order of bytes and the bookkeeping that becomes the index
//! (which chunk belongs to which entry, where it is, how many rows). The CPU
//! work (compression + encryption) is done by a [`Sealer`] that can run on
//! other threads; see `pipeline` for the parallel driver. Every byte written
//! is also hashed (SHA-256) for the backup manifest.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::Arc;

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::archive::codec::Compression;
use crate::archive::format::*;
use crate::archive::index::{ChunkRef, Entry, Index};
use crate::archive::seal::{header_mac, Cipher, SealedChunk, Sealer};
use crate::archive::slots::{KeySlot, SlotSpec};
use crate::error::{Error, Result};
use crate::keys::DataKey;

/// Default target plaintext bytes per chunk: 4 MiB. Measured with zstd 3 on
/// COPY-like text, 4 MiB chunks are 2-3% smaller than 1 MiB chunks, which is
/// what keeps archives below gzip -6 (`pg_dump -Fc`) size on every sample in
/// docs/benchmarks.md; 1 MiB chunks lost by 1.6% on one of them. Per-chunk
/// overhead (29 bytes + an index record of ~90 bytes) is negligible, the
/// pipeline needs about `2 * max_in_flight * 4 MiB` of memory, and a random
/// access reads at most 4 MiB more than it needs.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

/// zstd level used for the index segment.
const INDEX_ZSTD_LEVEL: i32 = 3;

/// Settings of a new archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArchiveOptions {
    pub cipher: Cipher,
    pub compression: Compression,
    /// Maximum plaintext bytes per chunk (1..=64 MiB).
    pub chunk_size: u32,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            cipher: Cipher::Aes256Gcm,
            compression: Compression::default(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// Caller-provided description of an entry, given at [`ArchiveWriter::finish`].
#[derive(Clone, Debug, PartialEq)]
pub struct EntryInfo {
    pub id: u32,
    pub kind: String,
    pub name: Option<String>,
    pub meta: serde_json::Value,
}

/// Per-entry totals of a finished archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySummary {
    pub id: u32,
    pub rows: u64,
    pub raw_bytes: u64,
    /// Bytes of the entry's frames in the archive.
    pub stored_bytes: u64,
    pub chunks: u64,
}

/// What [`ArchiveWriter::finish`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub archive_id: [u8; ARCHIVE_ID_LEN],
    /// Total archive size in bytes.
    pub bytes: u64,
    /// SHA-256 of the complete archive.
    pub sha256: [u8; 32],
    /// Number of data segments.
    pub chunks: u64,
    pub header_len: u64,
    pub index_offset: u64,
    /// In the order of the `entries` passed to `finish`.
    pub entries: Vec<EntrySummary>,
}

/// Writes one archive to `W`. Bytes go straight to `W`; wrap it in a
/// `BufWriter` only if `W` is slow with small writes (frames are large).
pub struct ArchiveWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
    header_len: u64,
    sealer: Arc<Sealer>,
    next_counter: u32,
    chunks: HashMap<u32, Vec<ChunkRef>>,
    stored: HashMap<u32, u64>,
    /// Set after a failed write: the output is in an unknown state.
    poisoned: bool,
}

impl<W: Write> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter")
            .field("archive_id", &hex::encode(self.sealer.archive_id()))
            .field("written", &self.written)
            .field("next_counter", &self.next_counter)
            .finish_non_exhaustive()
    }
}

/// A fresh random archive id (e.g. to build the KMS encryption context before
/// calling [`ArchiveWriter::new_with_id`]).
pub fn new_archive_id() -> [u8; ARCHIVE_ID_LEN] {
    let mut id = [0u8; ARCHIVE_ID_LEN];
    rand::rngs::OsRng.fill_bytes(&mut id);
    id
}

impl<W: Write> ArchiveWriter<W> {
    /// Starts an archive with a random id and writes the header.
    pub fn new(
        w: W,
        opts: ArchiveOptions,
        data_key: &DataKey,
        slots: Vec<SlotSpec<'_>>,
    ) -> Result<Self> {
        Self::new_with_id(w, opts, data_key, new_archive_id(), slots)
    }

    /// Starts an archive with a caller-chosen id (needed for KMS slots, whose
    /// encryption context contains the id). The id must be fresh random bytes.
    pub fn new_with_id(
        w: W,
        opts: ArchiveOptions,
        data_key: &DataKey,
        archive_id: [u8; ARCHIVE_ID_LEN],
        slots: Vec<SlotSpec<'_>>,
    ) -> Result<Self> {
        let mut prefix = [0u8; NONCE_PREFIX_LEN];
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        Self::with_params(w, opts, data_key, archive_id, prefix, slots)
    }

    /// Fully deterministic constructor, for test vectors only. Reusing a
    /// (data key, nonce prefix) pair across archives would be catastrophic.
    #[doc(hidden)]
    pub fn with_params(
        mut w: W,
        opts: ArchiveOptions,
        data_key: &DataKey,
        archive_id: [u8; ARCHIVE_ID_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        slots: Vec<SlotSpec<'_>>,
    ) -> Result<Self> {
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&opts.chunk_size) {
            return Err(Error::InvalidInput(format!(
                "chunk size {} out of range {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}",
                opts.chunk_size
            )));
        }
        if slots.is_empty() || slots.len() > u8::MAX as usize {
            return Err(Error::InvalidInput(format!(
                "an archive needs 1..=255 key slots, got {}",
                slots.len()
            )));
        }
        let mut header = Header::fixed_bytes(
            opts.cipher,
            opts.compression.codec(),
            opts.chunk_size,
            &archive_id,
            &nonce_prefix,
        );
        let aad = header.clone();
        header.push(slots.len() as u8);
        for spec in &slots {
            let slot = spec.build(data_key, &archive_id, &aad)?;
            let start = header.len();
            slot.write_to(&mut header);
            let body = &header[start + SLOT_RECORD_HEADER_LEN..];
            // Caller-built slots (`SlotSpec::Prebuilt`) bypass the
            // constructors' checks: make sure a reader will parse the record
            // back to the same slot (lengths fit their fields, known kinds are
            // well-formed) rather than writing an unreadable header.
            if body.len() > MAX_SLOT_BODY_LEN as usize
                || KeySlot::parse(slot.kind(), body).ok().as_ref() != Some(&slot)
            {
                return Err(Error::InvalidInput(format!(
                    "key slot {} is malformed or too large",
                    slot.kind_name()
                )));
            }
        }
        if header.len() + MAC_LEN > MAX_HEADER_LEN {
            return Err(Error::InvalidInput(
                "header too large (too many key slots)".into(),
            ));
        }
        let mac = header_mac(data_key, &archive_id, &header);
        header.extend_from_slice(&hmac::Mac::finalize(mac).into_bytes());

        let mut hasher = Sha256::new();
        w.write_all(&header)?;
        hasher.update(&header);
        let sealer = Sealer::new(
            opts.cipher,
            data_key,
            archive_id,
            nonce_prefix,
            opts.compression,
            opts.chunk_size,
        );
        Ok(ArchiveWriter {
            inner: w,
            hasher,
            written: header.len() as u64,
            header_len: header.len() as u64,
            sealer: Arc::new(sealer),
            next_counter: 0,
            chunks: HashMap::new(),
            stored: HashMap::new(),
            poisoned: false,
        })
    }

    pub fn archive_id(&self) -> [u8; ARCHIVE_ID_LEN] {
        self.sealer.archive_id()
    }

    /// The sealer for this archive; share it with worker threads.
    pub fn sealer(&self) -> Arc<Sealer> {
        Arc::clone(&self.sealer)
    }

    /// Bytes written so far (header + frames).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Counter the next [`write_sealed`](Self::write_sealed) call must carry.
    pub fn next_counter(&self) -> u32 {
        self.next_counter
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        if self.poisoned {
            return Err(Error::InvalidInput(
                "archive writer failed earlier; output is unusable".into(),
            ));
        }
        if let Err(e) = self.inner.write_all(bytes) {
            self.poisoned = true;
            return Err(e.into());
        }
        self.hasher.update(bytes);
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Appends a chunk sealed by this archive's [`Sealer`]. Chunks must arrive
    /// in counter order (0, 1, 2, ...); anything else is refused.
    pub fn write_sealed(&mut self, chunk: SealedChunk) -> Result<()> {
        if chunk.archive_id != self.sealer.archive_id() {
            return Err(Error::InvalidInput(
                "chunk was sealed for a different archive".into(),
            ));
        }
        if chunk.counter != self.next_counter {
            return Err(Error::InvalidInput(format!(
                "chunk counter {} out of order (expected {})",
                chunk.counter, self.next_counter
            )));
        }
        let offset = self.written;
        self.put(&chunk.frame)?;
        self.next_counter += 1;
        let len = chunk.frame.len() as u32;
        self.chunks.entry(chunk.entry).or_default().push(ChunkRef {
            counter: chunk.counter,
            offset,
            len,
            rows: chunk.rows,
            raw_len: chunk.raw_len,
        });
        *self.stored.entry(chunk.entry).or_default() += len as u64;
        Ok(())
    }

    /// Seals and writes one chunk on the calling thread (no pipeline).
    pub fn write_chunk(&mut self, entry: u32, rows: u64, raw: &[u8]) -> Result<()> {
        let c = self.sealer.seal(self.next_counter, entry, rows, raw)?;
        self.write_sealed(c)
    }

    /// Seals the index (as the final segment), writes the footer and flushes.
    ///
    /// Every entry that received chunks must be described in `entries`;
    /// entries without chunks are allowed (e.g. empty tables). The index lists
    /// entries in the order given.
    pub fn finish(
        mut self,
        entries: Vec<EntryInfo>,
        meta: serde_json::Value,
    ) -> Result<(W, ArchiveSummary)> {
        let mut seen = HashSet::new();
        for e in &entries {
            if e.id == INDEX_ENTRY_ID || !seen.insert(e.id) {
                return Err(Error::InvalidInput(format!(
                    "duplicate or reserved entry id {}",
                    e.id
                )));
            }
        }
        if let Some(id) = self.chunks.keys().find(|id| !seen.contains(id)) {
            return Err(Error::InvalidInput(format!(
                "chunks were written for entry {id}, which is not in the entry list"
            )));
        }
        let mut index_entries = Vec::with_capacity(entries.len());
        let mut summaries = Vec::with_capacity(entries.len());
        for info in entries {
            let chunks = self.chunks.remove(&info.id).unwrap_or_default();
            let rows = chunks.iter().map(|c| c.rows).sum();
            let raw_bytes = chunks.iter().map(|c| c.raw_len as u64).sum();
            summaries.push(EntrySummary {
                id: info.id,
                rows,
                raw_bytes,
                stored_bytes: self.stored.get(&info.id).copied().unwrap_or(0),
                chunks: chunks.len() as u64,
            });
            index_entries.push(Entry {
                id: info.id,
                kind: info.kind,
                name: info.name,
                rows,
                raw_bytes,
                meta: info.meta,
                chunks,
            });
        }
        let index = Index {
            format: INDEX_FORMAT,
            entries: index_entries,
            meta,
        };
        let json = serde_json::to_vec(&index)
            .map_err(|e| Error::InvalidInput(format!("index metadata not serialisable: {e}")))?;
        if json.len() > MAX_INDEX_RAW_LEN as usize {
            return Err(Error::InvalidInput(format!(
                "index of {} bytes exceeds the {MAX_INDEX_RAW_LEN}-byte limit; use a larger chunk size",
                json.len()
            )));
        }
        let (frame, _) = self.sealer.seal_segment(
            self.next_counter,
            true,
            INDEX_ENTRY_ID,
            &json,
            Compression::Zstd(INDEX_ZSTD_LEVEL),
        )?;
        if frame.len() - FRAME_LEN_FIELD > MAX_SEGMENT_LEN as usize {
            return Err(Error::InvalidInput(
                "sealed index exceeds the segment size limit".into(),
            ));
        }
        let index_offset = self.written;
        self.put(&frame)?;
        let footer = Footer {
            index_offset,
            index_frame_len: frame.len() as u32,
            index_counter: self.next_counter,
        };
        self.put(&footer.to_bytes())?;
        self.inner.flush()?;
        let summary = ArchiveSummary {
            archive_id: self.sealer.archive_id(),
            bytes: self.written,
            sha256: self.hasher.finalize().into(),
            chunks: self.next_counter as u64,
            header_len: self.header_len,
            index_offset,
            entries: summaries,
        };
        Ok((self.inner, summary))
    }
}
