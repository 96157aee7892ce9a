//! Byte-level layout of format version 1: constants, limits, header and footer.
//!
//! Owns every number in `format-spec.md` and the (de)serialisation of the two
//! plain-text structures, the header and the footer. It does no cryptography:
//! MAC verification and key unwrapping live in `reader`/`slots`, sealing in
//! `seal`. Parsers here are bounds-checked and never allocate more than the
//! limits below, whatever the input claims.

use crate::archive::codec::Codec;
use crate::archive::seal::Cipher;
use crate::archive::slots::KeySlot;
use crate::error::{Error, Result};

/// `"\x89PGSNAP\n"`: the high byte catches 7-bit transfers, the `\n` catches
/// newline translation (same trick as PNG).
pub const MAGIC: [u8; 8] = *b"\x89PGSNAP\n";
/// Footer magic.
pub const FOOTER_MAGIC: [u8; 8] = *b"PGSNAPIX";
/// The only version this code reads and writes.
pub const VERSION: u16 = 1;

pub const ARCHIVE_ID_LEN: usize = 16;
pub const NONCE_PREFIX_LEN: usize = 7;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const MAC_LEN: usize = 32;

/// magic + version + cipher + compression + chunk_size + archive_id + nonce_prefix.
/// These bytes are the AAD of every key-slot wrap.
pub const HEADER_FIXED_LEN: usize = 8 + 2 + 1 + 1 + 4 + ARCHIVE_ID_LEN + NONCE_PREFIX_LEN;
/// Fixed part + slot_count + (at least one slot) + mac: smallest possible header.
pub const HEADER_MIN_LEN: usize = HEADER_FIXED_LEN + 1 + SLOT_RECORD_HEADER_LEN + MAC_LEN;
/// Readers refuse longer headers (slots are small; this bounds what an
/// untrusted header can make us buffer).
pub const MAX_HEADER_LEN: usize = 64 * 1024;
/// kind u8 + body_len u32.
pub const SLOT_RECORD_HEADER_LEN: usize = 5;
/// Readers refuse a single slot body longer than this.
pub const MAX_SLOT_BODY_LEN: u32 = 16 * 1024;

/// Smallest and largest `chunk_size` a reader accepts.
pub const MIN_CHUNK_SIZE: u32 = 1;
pub const MAX_CHUNK_SIZE: u32 = 64 * 1024 * 1024;

/// Segment plaintext inner header: entry_id u32 + codec u8 + raw_len u32.
pub const INNER_HEADER_LEN: usize = 9;
/// The frame's own length prefix.
pub const FRAME_LEN_FIELD: usize = 4;
/// Smallest ciphertext (empty payload): inner header + tag.
pub const MIN_SEGMENT_LEN: u32 = (INNER_HEADER_LEN + TAG_LEN) as u32;
/// Absolute cap on any segment's ciphertext length.
pub const MAX_SEGMENT_LEN: u32 = 128 * 1024 * 1024;

/// entry_id of the index segment.
pub const INDEX_ENTRY_ID: u32 = 0xFFFF_FFFF;
/// Readers refuse an index whose decompressed JSON is larger.
pub const MAX_INDEX_RAW_LEN: u32 = 256 * 1024 * 1024;
/// JSON `format` field of the index.
pub const INDEX_FORMAT: u32 = 1;

/// Footer length: index_offset u64 + index_frame_len u32 + index_counter u32 + magic.
pub const FOOTER_LEN: usize = 24;

/// HKDF `info` strings (domain separation between the derived keys).
pub const INFO_HEADER_MAC: &[u8] = b"pgsnap v1 header";
pub const INFO_PAYLOAD: &[u8] = b"pgsnap v1 payload";
pub const INFO_KEYFILE_SLOT: &[u8] = b"pgsnap v1 keyfile slot";

/// Key slot kinds.
pub const SLOT_KEY_FILE: u8 = 1;
pub const SLOT_PASSPHRASE: u8 = 2;
pub const SLOT_KMS: u8 = 3;
/// Wrapped data key: 32-byte key + 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 48;
pub const KEY_ID_LEN: usize = 8;
pub const ARGON2_SALT_LEN: usize = 16;
/// Body of a key-file slot: key_id + wrap_nonce + wrapped.
pub const KEY_FILE_SLOT_BODY_LEN: u32 = (KEY_ID_LEN + NONCE_LEN + WRAPPED_KEY_LEN) as u32;
/// Body of a passphrase slot: m, t, p (u32 each) + salt + wrap_nonce + wrapped.
pub const PASSPHRASE_SLOT_BODY_LEN: u32 =
    (12 + ARGON2_SALT_LEN + NONCE_LEN + WRAPPED_KEY_LEN) as u32;
/// Argon2id limits a reader enforces before running the KDF.
pub const MAX_ARGON2_M_KIB: u32 = 4 * 1024 * 1024;
pub const MAX_ARGON2_T: u32 = 100;
pub const MAX_ARGON2_P: u32 = 64;
/// KMS slot field limits.
pub const MAX_KMS_KEY_ID_LEN: usize = 2048;
pub const MAX_KMS_CIPHERTEXT_LEN: usize = 8192;
/// Encryption-context key bound to the KMS data key.
pub const KMS_CONTEXT_KEY: &str = "pgsnap:archive_id";

/// Upper bound on the compressed size of `raw` bytes for any codec in v1:
/// covers zstd's `ZSTD_COMPRESSBOUND` (`n + n/256 + 64`) and LZ4 block worst
/// case (`n + n/255 + 16`) with room to spare.
pub const fn max_payload_len(raw: u32) -> u64 {
    raw as u64 + raw as u64 / 128 + 4096
}

/// Largest ciphertext length a data segment may have in an archive with this
/// `chunk_size`. Readers refuse larger frames before allocating for them.
pub const fn max_data_segment_len(chunk_size: u32) -> u32 {
    let n = INNER_HEADER_LEN as u64 + max_payload_len(chunk_size) + TAG_LEN as u64;
    if n > MAX_SEGMENT_LEN as u64 {
        MAX_SEGMENT_LEN
    } else {
        n as u32
    }
}

/// Bounds-checked little-endian reader over a byte slice. Running out of bytes
/// yields `Error::Truncated` with the total length that would have been needed.
pub(crate) struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        ByteReader { buf, pos: 0 }
    }
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(Error::Truncated {
                needed: (self.pos as u64).saturating_add(n as u64),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// The parsed archive header. Nothing in it is trusted until
/// [`Header::unlock`](crate::archive::reader) has verified `mac`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub cipher: Cipher,
    /// Archive default codec (each segment names its own).
    pub compression: Codec,
    pub chunk_size: u32,
    pub archive_id: [u8; ARCHIVE_ID_LEN],
    pub nonce_prefix: [u8; NONCE_PREFIX_LEN],
    pub slots: Vec<KeySlot>,
    pub mac: [u8; MAC_LEN],
    /// The exact header bytes (including the MAC) as read or written; the MAC
    /// is checked over `raw[..raw.len() - 32]`.
    pub(crate) raw: Vec<u8>,
}

impl Header {
    /// Serialises the fixed part (the AAD of slot wraps).
    pub(crate) fn fixed_bytes(
        cipher: Cipher,
        compression: Codec,
        chunk_size: u32,
        archive_id: &[u8; ARCHIVE_ID_LEN],
        nonce_prefix: &[u8; NONCE_PREFIX_LEN],
    ) -> Vec<u8> {
        let mut b = Vec::with_capacity(HEADER_FIXED_LEN);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        b.push(cipher.id());
        b.push(compression.id());
        b.extend_from_slice(&chunk_size.to_le_bytes());
        b.extend_from_slice(archive_id);
        b.extend_from_slice(nonce_prefix);
        debug_assert_eq!(b.len(), HEADER_FIXED_LEN);
        b
    }

    /// Parses a header from the start of `bytes`.
    ///
    /// Returns the header and its length in bytes (where the body starts).
    /// If `bytes` is too short, returns `Error::Truncated { needed }`: read at
    /// least `needed` bytes and call again (sans-IO). `needed` never exceeds
    /// [`MAX_HEADER_LEN`]. The MAC is *not* verified here.
    pub fn parse(bytes: &[u8]) -> Result<(Header, usize)> {
        let mut r = ByteReader::new(bytes);
        let magic: [u8; 8] = r.array()?;
        if magic != MAGIC {
            return Err(Error::format("not a pgsnap archive (bad magic)"));
        }
        let version = r.u16()?;
        if version != VERSION {
            return Err(Error::Unsupported(format!(
                "archive format version {version} (this pgsnap reads version {VERSION})"
            )));
        }
        let cipher = Cipher::from_id(r.u8()?)?;
        let compression = Codec::from_id(r.u8()?)?;
        let chunk_size = r.u32()?;
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(Error::format(format!(
                "chunk_size {chunk_size} out of range {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
            )));
        }
        let archive_id = r.array()?;
        let nonce_prefix = r.array()?;
        let slot_count = r.u8()?;
        if slot_count == 0 {
            return Err(Error::format("header has no key slots"));
        }
        let mut slots = Vec::with_capacity(slot_count as usize);
        for _ in 0..slot_count {
            let kind = r.u8()?;
            let body_len = r.u32()?;
            if body_len > MAX_SLOT_BODY_LEN {
                return Err(Error::format(format!(
                    "key slot body of {body_len} bytes exceeds limit {MAX_SLOT_BODY_LEN}"
                )));
            }
            // Keep the header-size limit ahead of Truncated so a hostile
            // header cannot make a sans-IO caller read without bound.
            if r.pos() + body_len as usize + MAC_LEN > MAX_HEADER_LEN {
                return Err(Error::format(format!(
                    "header exceeds {MAX_HEADER_LEN} bytes"
                )));
            }
            let body = r.take(body_len as usize)?;
            slots.push(KeySlot::parse(kind, body)?);
        }
        let mac = r.array()?;
        let len = r.pos();
        Ok((
            Header {
                version,
                cipher,
                compression,
                chunk_size,
                archive_id,
                nonce_prefix,
                slots,
                mac,
                raw: bytes[..len].to_vec(),
            },
            len,
        ))
    }

    /// Header length in bytes (offset of the first segment).
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Always false; a header is never empty (for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// The exact bytes of this header.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The AAD used for key-slot wraps (the fixed part of the header).
    pub fn slot_aad(&self) -> &[u8] {
        &self.raw[..HEADER_FIXED_LEN]
    }

    /// Largest data segment ciphertext this archive may contain.
    pub fn max_data_segment_len(&self) -> u32 {
        max_data_segment_len(self.chunk_size)
    }

    /// Short description of the slot kinds, for "wrong key" messages.
    pub fn slot_kinds(&self) -> String {
        let kinds: Vec<String> = self.slots.iter().map(|s| s.kind_name()).collect();
        kinds.join(", ")
    }
}

/// The fixed-size trailer that locates the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    /// Offset of the index segment's frame (its length field) from the start of the archive.
    pub index_offset: u64,
    /// Index frame length including its 4-byte length field.
    pub index_frame_len: u32,
    /// Counter of the index segment (= number of data segments).
    pub index_counter: u32,
}

impl Footer {
    pub const LEN: usize = FOOTER_LEN;

    /// Parses the footer. Only checks the magic and the frame length range;
    /// everything else is proven when the index authenticates.
    pub fn parse(bytes: &[u8; FOOTER_LEN]) -> Result<Footer> {
        let mut r = ByteReader::new(bytes);
        let index_offset = r.u64()?;
        let index_frame_len = r.u32()?;
        let index_counter = r.u32()?;
        let magic: [u8; 8] = r.array()?;
        if magic != FOOTER_MAGIC {
            return Err(Error::format(
                "bad footer magic (archive truncated or not a pgsnap archive)",
            ));
        }
        let min = FRAME_LEN_FIELD as u32 + MIN_SEGMENT_LEN;
        if index_frame_len < min || index_frame_len - FRAME_LEN_FIELD as u32 > MAX_SEGMENT_LEN {
            return Err(Error::format(format!(
                "footer: index frame length {index_frame_len} out of range"
            )));
        }
        Ok(Footer {
            index_offset,
            index_frame_len,
            index_counter,
        })
    }

    pub fn to_bytes(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[0..8].copy_from_slice(&self.index_offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.index_frame_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.index_counter.to_le_bytes());
        b[16..24].copy_from_slice(&FOOTER_MAGIC);
        b
    }

    /// Checks the footer against the total archive length: the index frame
    /// must end exactly where the footer starts and start after the header.
    /// This is what detects truncation and trailing garbage in random access.
    pub fn check_against(&self, header_len: usize, archive_len: u64) -> Result<()> {
        let end = self
            .index_offset
            .checked_add(self.index_frame_len as u64)
            .and_then(|e| e.checked_add(FOOTER_LEN as u64));
        if end != Some(archive_len) || self.index_offset < header_len as u64 {
            return Err(Error::format(format!(
                "footer does not match archive length {archive_len} (truncated, extended or corrupt)"
            )));
        }
        Ok(())
    }
}
