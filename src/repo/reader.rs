//! Reading an archive out of storage by range: footer, header, index, then
//! only the chunks a caller asks for, adjacent ones fetched together. This is
//! what makes a one-table restore from a large archive cheap, locally or on
//! S3. Every byte fetched is counted (`bytes_read`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};

use crate::archive::format::{Footer, Header, MAX_HEADER_LEN};
use crate::archive::index::{ChunkRef, Entry, Index};
use crate::archive::reader::{OpenArchive, OpenedChunk};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::repo::{Storage, Version};

/// Ranges closer than this are fetched as one: a small wasted gap costs less
/// than another request. Chunks of one table interleave with other tables'
/// (parallel workers write them), so the gap is kept small.
const COALESCE_GAP: u64 = 64 * 1024;
/// Bytes read for the header first.
const FIRST_HEADER_READ: u64 = 4096;
/// Upper bound for one ranged read.
const MAX_RANGE: u64 = 64 * 1024 * 1024;

pub struct StoredArchive {
    storage: Arc<dyn Storage>,
    key: String,
    size: u64,
    /// The version of the object every read asks for: a restore reads its
    /// chunks twice (to authenticate them all, then to load them), and a
    /// key written again between the two must not change what it loads.
    version: Option<Version>,
    pub open: Arc<OpenArchive>,
    pub header: Header,
    pub footer: Footer,
    pub index: Index,
    bytes_read: AtomicU64,
    /// The archive's first bytes, read with the header: ranges within them
    /// are not fetched again (a small archive is whole in them).
    head: Bytes,
    /// Authenticated chunks kept for their one later use, by counter (see
    /// [`StoredArchive::keep`]).
    kept: Mutex<HashMap<u32, OpenedChunk>>,
}

/// `range` of the archive `key`: what the first read (`head`) holds comes
/// from it, the rest is fetched and counted in `counter`. The first chunks
/// follow the header, and a small archive is whole in that read.
async fn read_range(
    storage: &dyn Storage,
    key: &str,
    version: Option<&Version>,
    head: &Bytes,
    counter: &AtomicU64,
    range: std::ops::Range<u64>,
) -> Result<Bytes> {
    let held = head.len() as u64;
    if range.end <= held {
        return Ok(head.slice(range.start as usize..range.end as usize));
    }
    let from = range.start.max(held);
    let rest = storage.get_range_of(key, from..range.end, version).await?;
    counter.fetch_add(rest.len() as u64, Ordering::Relaxed);
    if from == range.start {
        return Ok(rest);
    }
    let mut whole = Vec::with_capacity((range.end - range.start) as usize);
    whole.extend_from_slice(&head[range.start as usize..]);
    whole.extend_from_slice(&rest);
    Ok(Bytes::from(whole))
}

impl StoredArchive {
    /// Reads footer, header and index and unlocks the archive; fails on a
    /// wrong key or any tampering of those parts.
    pub async fn open(
        storage: Arc<dyn Storage>,
        key: &str,
        creds: &Credentials,
    ) -> Result<StoredArchive> {
        let meta = storage
            .head(key)
            .await?
            .ok_or_else(|| Error::Repo(format!("archive {key} is missing")))?;
        let (size, version) = (meta.size, meta.version);
        if size < (Footer::LEN as u64) + 64 {
            return Err(Error::Format(format!(
                "{key} is {size} bytes, too short to be an archive"
            )));
        }
        let counter = AtomicU64::new(0);
        // Most headers fit in the first read; a longer one (many key
        // slots) says how much it needs.
        let limit = (MAX_HEADER_LEN as u64).min(size - Footer::LEN as u64);
        let mut want = FIRST_HEADER_READ.min(limit);
        let (header, head) = loop {
            let head = storage.get_range_of(key, 0..want, version.as_ref()).await?;
            counter.fetch_add(head.len() as u64, Ordering::Relaxed);
            match Header::parse(&head) {
                Ok((h, _)) => break (h, head),
                Err(Error::Truncated { needed }) if needed > want && needed <= limit => {
                    want = needed;
                }
                Err(e) => return Err(e),
            }
        };
        let open = creds.unlock(&header).await?;
        // A small archive is whole in the first read: its footer and index
        // come from there rather than being fetched (and counted) again.
        let fetch = |range| {
            read_range(
                storage.as_ref(),
                key,
                version.as_ref(),
                &head,
                &counter,
                range,
            )
        };
        let foot = fetch(size - Footer::LEN as u64..size).await?;
        let foot: [u8; Footer::LEN] = foot[..]
            .try_into()
            .map_err(|_| Error::Format("short footer".into()))?;
        let footer = Footer::parse(&foot)?;
        let end = footer
            .index_offset
            .checked_add(footer.index_frame_len as u64)
            .filter(|&e| e == size - Footer::LEN as u64)
            .ok_or_else(|| Error::Format("footer does not point at an index before it".into()))?;
        let frame = fetch(footer.index_offset..end).await?;
        // The key opened the header: an index that does not authenticate
        // was altered, not read with a wrong key.
        let index = open.open_index(&frame, &footer).map_err(|e| match e {
            Error::Auth => Error::tampered(format_args!(
                "the archive's index (archive bytes {}..{end})",
                footer.index_offset
            )),
            e => e,
        })?;
        Ok(StoredArchive {
            storage,
            key: key.to_string(),
            size,
            version,
            open: Arc::new(open),
            header,
            footer,
            index,
            bytes_read: counter,
            head,
            kept: Mutex::new(HashMap::new()),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read.load(Ordering::Relaxed)
    }

    pub fn entry(&self, id: u32) -> Option<&Entry> {
        self.index.entries.iter().find(|e| e.id == id)
    }

    pub fn entries_of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.index.entries.iter().filter(move |e| e.kind == kind)
    }

    /// Keeps authenticated chunks for one later [`open_chunks`](Self::open_chunks) of the
    /// same chunks, so a restore that authenticates its chunks before
    /// touching the target reads them from storage, and decrypts them, once
    /// (and loads exactly the bytes it authenticated). The caller bounds the
    /// memory.
    pub fn keep(&self, opened: impl IntoIterator<Item = (ChunkRef, OpenedChunk)>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.extend(opened.into_iter().map(|(c, o)| (c.counter, o)));
    }

    /// `chunks` (sorted by offset) authenticated and decrypted, from those
    /// kept or else fetched and opened on a blocking thread (AEAD is CPU
    /// work); each checked to belong to `entry`.
    pub async fn open_chunks(&self, entry: u32, chunks: &[ChunkRef]) -> Result<Vec<OpenedChunk>> {
        let mut kept: HashMap<u32, OpenedChunk> = {
            let mut all = self.kept.lock().unwrap_or_else(|p| p.into_inner());
            chunks
                .iter()
                .filter_map(|c| all.remove(&c.counter).map(|o| (c.counter, o)))
                .collect()
        };
        let missing: Vec<ChunkRef> = chunks
            .iter()
            .filter(|c| !kept.contains_key(&c.counter))
            .copied()
            .collect();
        if !missing.is_empty() {
            let frames = self.fetch(&missing).await?;
            let open = self.open.clone();
            let opened = tokio::task::spawn_blocking(move || {
                frames
                    .into_iter()
                    .map(|(c, f)| Ok((c.counter, open.authenticate_frame(&c, f)?)))
                    .collect::<Result<Vec<_>>>()
            })
            .await
            .map_err(|e| Error::task("opening chunks", e))??;
            kept.extend(opened);
        }
        chunks
            .iter()
            .map(|c| {
                let o = kept
                    .remove(&c.counter)
                    .ok_or_else(|| Error::Format(format!("chunk {} listed twice", c.counter)))?;
                if o.entry() != entry {
                    return Err(Error::Auth);
                }
                Ok(o)
            })
            .collect()
    }

    /// Fetches the frames of `chunks` (sorted by offset) in coalesced
    /// ranges. Returns each chunk with its frame bytes, still sealed: each
    /// its own part of the range's buffer, to be decrypted where it is.
    pub async fn fetch(&self, chunks: &[ChunkRef]) -> Result<Vec<(ChunkRef, BytesMut)>> {
        let mut out = Vec::with_capacity(chunks.len());
        let mut i = 0;
        while i < chunks.len() {
            let start = chunks[i].offset;
            let mut end = start + chunks[i].len as u64;
            let mut j = i + 1;
            while j < chunks.len() {
                let c = &chunks[j];
                let c_end = c.offset + c.len as u64;
                if c.offset < end || c.offset - end > COALESCE_GAP || c_end - start > MAX_RANGE {
                    break;
                }
                end = c_end;
                j += 1;
            }
            if end > self.size {
                return Err(Error::Format(format!(
                    "index points past the end of the archive ({end} > {})",
                    self.size
                )));
            }
            let data = read_range(
                self.storage.as_ref(),
                &self.key,
                self.version.as_ref(),
                &self.head,
                &self.bytes_read,
                start..end,
            )
            .await?;
            if data.len() as u64 != end - start {
                return Err(Error::Format(format!(
                    "archive bytes {start}..{end} read as {} bytes",
                    data.len()
                )));
            }
            // No copy unless the range is shared (a part of the first
            // read): the frames are decrypted in place.
            let mut rest = BytesMut::from(data);
            let mut at = start;
            for c in &chunks[i..j] {
                rest.advance((c.offset - at) as usize);
                out.push((*c, rest.split_to(c.len as usize)));
                at = c.offset + c.len as u64;
            }
            i = j;
        }
        Ok(out)
    }

    /// Fetches, authenticates and decompresses a whole entry.
    pub async fn read_entry(&self, id: u32) -> Result<Vec<u8>> {
        let entry = self
            .entry(id)
            .ok_or_else(|| Error::Format(format!("index has no entry {id}")))?;
        let mut out = Vec::with_capacity(entry.raw_bytes.min(1 << 30) as usize);
        // The key opened the header: a chunk that does not authenticate, or
        // belongs elsewhere, was altered after it was written.
        let damaged = |c: &ChunkRef| {
            Error::tampered(format_args!(
                "archive entry {id}, segment {} (archive bytes {}..{})",
                c.counter,
                c.offset,
                c.offset + c.len as u64
            ))
        };
        for (c, frame) in self.fetch(&entry.chunks).await? {
            let (eid, raw) = match self.open.open_chunk(&c, &frame) {
                Err(Error::Auth) => return Err(damaged(&c)),
                r => r?,
            };
            if eid != id {
                return Err(damaged(&c));
            }
            out.extend_from_slice(&raw);
        }
        Ok(out)
    }
}
