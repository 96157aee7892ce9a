//! The archive index: which entries (tables, schema, blobs...) the archive
//! holds and where each entry's chunks are.
//!
//! Owns the JSON data model of the final segment and its validation. The
//! index is authenticated (it is the last sealed segment), but it is still
//! checked for internal consistency before use so a reader never follows an
//! offset that does not point at a real frame: all data segments must be
//! listed exactly once and, sorted by counter, must tile the body from the
//! end of the header to the index frame without gaps or overlaps.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::archive::format::*;
use crate::error::{Error, Result};

/// The decoded index.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub format: u32,
    pub entries: Vec<Entry>,
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// One logical stream in the archive (e.g. one table's COPY data).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u32,
    pub kind: String,
    pub name: Option<String>,
    /// Sum of the chunks' rows.
    pub rows: u64,
    /// Sum of the chunks' raw_len.
    pub raw_bytes: u64,
    /// Opaque to the archive layer.
    #[serde(default)]
    pub meta: serde_json::Value,
    /// In ascending counter order; concatenating their plaintexts gives the
    /// entry's byte stream.
    pub chunks: Vec<ChunkRef>,
}

/// Where one data segment is and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    /// Segment counter (nonce/AAD input).
    pub counter: u32,
    /// Offset of the frame (its length field) from the start of the archive.
    pub offset: u64,
    /// Frame length including the 4-byte length field.
    pub len: u32,
    /// Rows attributed to this chunk by the writer.
    pub rows: u64,
    /// Decompressed length.
    pub raw_len: u32,
}

impl ChunkRef {
    /// Byte range `[offset, offset + len)` of the frame.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + self.len as u64
    }
}

/// Where the index sits in the archive; needed to validate it.
#[derive(Clone, Copy, Debug)]
pub struct IndexLayout {
    pub header_len: u64,
    pub chunk_size: u32,
    pub index_offset: u64,
    pub index_counter: u32,
}

impl Index {
    /// Parses and validates index JSON.
    pub fn from_json(json: &[u8], layout: &IndexLayout) -> Result<Index> {
        let index: Index =
            serde_json::from_slice(json).map_err(|e| Error::format(format!("index JSON: {e}")))?;
        index.validate(layout)?;
        Ok(index)
    }

    pub fn entry(&self, id: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Total number of data segments.
    pub fn chunk_count(&self) -> usize {
        self.entries.iter().map(|e| e.chunks.len()).sum()
    }

    /// Checks everything a reader relies on (see the module docs).
    pub fn validate(&self, l: &IndexLayout) -> Result<()> {
        let bad = |m: String| Err(Error::format(format!("index: {m}")));
        if self.format != INDEX_FORMAT {
            return Err(Error::Unsupported(format!("index format {}", self.format)));
        }
        let mut ids = HashSet::with_capacity(self.entries.len());
        let max_frame = FRAME_LEN_FIELD as u64 + max_data_segment_len(l.chunk_size) as u64;
        let min_frame = FRAME_LEN_FIELD as u64 + MIN_SEGMENT_LEN as u64;
        let mut all: Vec<(u32, u64, u32)> = Vec::with_capacity(self.chunk_count());
        for e in &self.entries {
            if e.id == INDEX_ENTRY_ID || !ids.insert(e.id) {
                return bad(format!("duplicate or reserved entry id {}", e.id));
            }
            let (mut rows, mut raw) = (0u64, 0u64);
            for (i, c) in e.chunks.iter().enumerate() {
                if i > 0 && e.chunks[i - 1].counter >= c.counter {
                    return bad(format!(
                        "chunks of entry {} not in ascending counter order",
                        e.id
                    ));
                }
                if (c.len as u64) < min_frame || c.len as u64 > max_frame {
                    return bad(format!(
                        "chunk {} has invalid frame length {}",
                        c.counter, c.len
                    ));
                }
                if c.raw_len > l.chunk_size {
                    return bad(format!("chunk {} raw_len exceeds chunk_size", c.counter));
                }
                rows = rows
                    .checked_add(c.rows)
                    .ok_or_else(|| Error::format("index: row count overflow"))?;
                raw += c.raw_len as u64;
                all.push((c.counter, c.offset, c.len));
            }
            if rows != e.rows || raw != e.raw_bytes {
                return bad(format!("entry {} totals do not match its chunks", e.id));
            }
        }
        if all.len() as u64 != l.index_counter as u64 {
            return bad(format!(
                "{} chunks listed but the index is segment {}",
                all.len(),
                l.index_counter
            ));
        }
        all.sort_unstable_by_key(|c| c.0);
        let mut expect_offset = l.header_len;
        for (i, (counter, offset, len)) in all.iter().enumerate() {
            if *counter as usize != i {
                return bad(format!("segment counter {i} missing or duplicated"));
            }
            if *offset != expect_offset {
                return bad(format!(
                    "chunk {counter} offset {offset} does not match the frame layout"
                ));
            }
            expect_offset += *len as u64;
        }
        if expect_offset != l.index_offset {
            return bad("data segments do not end where the index starts".into());
        }
        Ok(())
    }

    /// Byte ranges `(offset, length)` covering the frames of the given entries,
    /// with adjacent frames merged, sorted by offset. Use them for a few large
    /// range reads instead of one per chunk. Unknown ids are ignored.
    pub fn coalesced_ranges(&self, entry_ids: &[u32]) -> Vec<(u64, u64)> {
        let mut frames: Vec<(u64, u64)> = self
            .entries
            .iter()
            .filter(|e| entry_ids.contains(&e.id))
            .flat_map(|e| e.chunks.iter().map(|c| (c.offset, c.len as u64)))
            .collect();
        frames.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (off, len) in frames {
            match out.last_mut() {
                Some((o, l)) if *o + *l == off => *l += len,
                _ => out.push((off, len)),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(counter: u32, offset: u64, len: u32) -> ChunkRef {
        ChunkRef {
            counter,
            offset,
            len,
            rows: 1,
            raw_len: 10,
        }
    }

    fn sample() -> (Index, IndexLayout) {
        let e = |id, chunks: Vec<ChunkRef>| Entry {
            id,
            kind: "table".into(),
            name: None,
            rows: chunks.len() as u64,
            raw_bytes: 10 * chunks.len() as u64,
            meta: serde_json::Value::Null,
            chunks,
        };
        let idx = Index {
            format: 1,
            entries: vec![
                e(1, vec![chunk(0, 100, 40), chunk(2, 180, 40)]),
                e(2, vec![chunk(1, 140, 40), chunk(3, 220, 40)]),
            ],
            meta: serde_json::Value::Null,
        };
        let l = IndexLayout {
            header_len: 100,
            chunk_size: 1000,
            index_offset: 260,
            index_counter: 4,
        };
        (idx, l)
    }

    #[test]
    fn validates_layout() {
        let (idx, l) = sample();
        idx.validate(&l).unwrap();
        let mut bad = idx.clone();
        bad.entries[0].chunks[1].offset = 181;
        assert!(bad.validate(&l).is_err());
        let mut bad = idx.clone();
        bad.entries[0].chunks.swap(0, 1);
        assert!(bad.validate(&l).is_err());
        let mut bad = idx.clone();
        bad.entries[1].id = 1;
        assert!(bad.validate(&l).is_err());
        assert!(idx
            .validate(&IndexLayout {
                index_counter: 5,
                ..l
            })
            .is_err());
        assert!(idx
            .validate(&IndexLayout {
                index_offset: 300,
                ..l
            })
            .is_err());
    }

    #[test]
    fn coalesces() {
        let (idx, _) = sample();
        assert_eq!(idx.coalesced_ranges(&[1]), vec![(100, 40), (180, 40)]);
        assert_eq!(idx.coalesced_ranges(&[1, 2]), vec![(100, 160)]);
        assert!(idx.coalesced_ranges(&[9]).is_empty());
    }
}
