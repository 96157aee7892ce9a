//! Reading archives: unlocking the header, opening the index and chunks, and
//! verifying a whole archive as a stream.
//!
//! Owns every check a reader makes on untrusted bytes. The building blocks are
//! sans-IO (they take byte slices) so they can be driven by any transport —
//! local files, S3 range GETs, async code: [`Header::parse`] ->
//! [`Header::unlock`] -> [`Footer::parse`] -> [`OpenArchive::open_index`] ->
//! [`OpenArchive::open_chunk`]. [`OpenArchive::read_stream`] verifies a whole
//! archive read front to back; [`ArchiveFile`] is a small synchronous
//! convenience over a local file.
//!
//! Lengths read from the archive are checked against the format limits before
//! anything is allocated for them.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use bytes::BytesMut;
use hmac::Mac;

use crate::archive::codec::{decompress_exact, Codec};
use crate::archive::format::*;
pub use crate::archive::format::{Footer, Header};
use crate::archive::index::{ChunkRef, Index, IndexLayout};
use crate::archive::seal::{header_mac, segment_aad, segment_nonce, SegmentCipher};
use crate::archive::slots::{KeySlot, Unlock};
use crate::error::{Error, Result};
use crate::keys::DataKey;

impl Header {
    /// Finds a slot that opens with `how`, unwraps the data key and verifies
    /// the header MAC (so any modified header byte is detected here).
    ///
    /// Errors: [`Error::WrongKey`] if no slot matches (the message lists the
    /// slot kinds the archive has), [`Error::Auth`] if the key unwrapped but
    /// the header fails its MAC, or a slot that should match does not open.
    pub fn unlock(&self, how: &Unlock<'_>) -> Result<OpenArchive> {
        let aad = self.slot_aad().to_vec();
        let dk = match how {
            Unlock::DataKey(dk) => dk.clone(),
            Unlock::KeyFile(kf) => {
                let id = kf.key_id();
                let matching: Vec<&KeySlot> = self
                    .slots
                    .iter()
                    .filter(|s| matches!(s, KeySlot::KeyFile { key_id, .. } if *key_id == id))
                    .collect();
                if matching.is_empty() {
                    return Err(Error::WrongKey(format!(
                        "this archive was not made with this key file (key id {}); its key slots: {}",
                        hex::encode(id),
                        self.slot_kinds()
                    )));
                }
                let mut found = None;
                for s in matching {
                    if let Some(dk) = s.try_unlock(how, &self.archive_id, &aad)? {
                        found = Some(dk);
                        break;
                    }
                }
                // The key id matched, so a failed unwrap means a modified slot.
                found.ok_or(Error::Auth)?
            }
            Unlock::Passphrase(_) => {
                let mut found = None;
                let mut any = false;
                for s in self
                    .slots
                    .iter()
                    .filter(|s| matches!(s, KeySlot::Passphrase { .. }))
                {
                    any = true;
                    if let Some(dk) = s.try_unlock(how, &self.archive_id, &aad)? {
                        found = Some(dk);
                        break;
                    }
                }
                match found {
                    Some(dk) => dk,
                    None if any => {
                        return Err(Error::WrongKey(
                            "wrong passphrase (or the passphrase slot was modified)".into(),
                        ))
                    }
                    None => {
                        return Err(Error::WrongKey(format!(
                            "this archive has no passphrase slot; its key slots: {}",
                            self.slot_kinds()
                        )))
                    }
                }
            }
        };
        self.open_with_data_key(dk)
    }

    fn open_with_data_key(&self, dk: DataKey) -> Result<OpenArchive> {
        let body = &self.raw[..self.raw.len() - MAC_LEN];
        header_mac(&dk, &self.archive_id, body)
            .verify_slice(&self.mac)
            .map_err(|_| Error::Auth)?;
        Ok(OpenArchive {
            cipher: SegmentCipher::new(self.cipher, &dk, &self.archive_id),
            header: self.clone(),
        })
    }
}

/// What a streamed data segment was (passed to the `read_stream` callback).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    pub counter: u32,
    /// Offset of the frame from the start of the archive.
    pub offset: u64,
    /// Frame length including the length field.
    pub frame_len: u32,
    pub entry: u32,
    pub codec: Codec,
    pub raw_len: u32,
}

/// Result of a successful [`OpenArchive::read_stream`].
#[derive(Clone, Debug)]
pub struct StreamSummary {
    pub index: Index,
    pub footer: Footer,
    /// Total archive length (header included).
    pub bytes: u64,
    /// Data segments seen.
    pub segments: u64,
}

/// An archive whose header has been authenticated: holds the derived payload
/// key and opens segments.
pub struct OpenArchive {
    header: Header,
    cipher: SegmentCipher,
}

impl std::fmt::Debug for OpenArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenArchive")
            .field("archive_id", &hex::encode(self.header.archive_id))
            .finish_non_exhaustive()
    }
}

/// Decrypted segment: inner header fields and the plaintext buffer.
struct Plain {
    entry: u32,
    codec: Codec,
    raw_len: u32,
}

/// A data segment that authenticated, decrypted but still compressed (see
/// [`OpenArchive::authenticate_chunk`]).
pub struct OpenedChunk {
    plain: Plain,
    /// The decrypted segment: inner header, payload, and the tag's room.
    buf: BytesMut,
}

impl OpenedChunk {
    /// The entry the segment says it belongs to.
    pub fn entry(&self) -> u32 {
        self.plain.entry
    }

    /// Its raw contents.
    pub fn decompress(&self) -> Result<Vec<u8>> {
        OpenArchive::payload(&self.buf, &self.plain)
    }
}

impl OpenArchive {
    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn archive_id(&self) -> [u8; ARCHIVE_ID_LEN] {
        self.header.archive_id
    }

    pub fn header_len(&self) -> u64 {
        self.header.len() as u64
    }

    /// Decrypts `ct` (ciphertext + tag) in place as segment (counter, last)
    /// and parses the inner header. On `Err(Auth)` `ct` is unchanged.
    fn decrypt(&self, counter: u32, last: bool, ct: &mut [u8]) -> Result<Plain> {
        let nonce = segment_nonce(&self.header.nonce_prefix, counter, last);
        let aad = segment_aad(&self.header.archive_id, counter, last);
        let pt = self.cipher.open_in_place(&nonce, &aad, ct)?;
        let mut r = ByteReader::new(pt);
        let entry = r.u32().map_err(|_| Error::format("segment too short"))?;
        let codec = Codec::from_id(r.u8().map_err(|_| Error::format("segment too short"))?)?;
        let raw_len = r.u32().map_err(|_| Error::format("segment too short"))?;
        Ok(Plain {
            entry,
            codec,
            raw_len,
        })
    }

    /// Decompresses the payload of a decrypted segment held in `ct`.
    fn payload(ct: &[u8], p: &Plain) -> Result<Vec<u8>> {
        let payload = &ct[INNER_HEADER_LEN..ct.len() - TAG_LEN];
        decompress_exact(p.codec, payload, p.raw_len as usize)
    }

    fn check_frame(frame: &[u8], expected_len: u32, max_ct: u32) -> Result<()> {
        if frame.len() != expected_len as usize || frame.len() < FRAME_LEN_FIELD {
            return Err(Error::format(format!(
                "frame is {} bytes, index says {expected_len}",
                frame.len()
            )));
        }
        let ct_len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes"));
        if ct_len as usize != frame.len() - FRAME_LEN_FIELD
            || ct_len < MIN_SEGMENT_LEN
            || ct_len > max_ct
        {
            return Err(Error::format(
                "segment length field does not match its frame",
            ));
        }
        Ok(())
    }

    /// Authenticates and decodes the index segment located by `footer`.
    /// `frame` is the complete index frame (`footer.index_frame_len` bytes at
    /// `footer.index_offset`). The caller should also have checked
    /// [`Footer::check_against`] with the archive length.
    pub fn open_index(&self, frame: &[u8], footer: &Footer) -> Result<Index> {
        Self::check_frame(frame, footer.index_frame_len, MAX_SEGMENT_LEN)?;
        let mut ct = frame[FRAME_LEN_FIELD..].to_vec();
        let p = self.decrypt(footer.index_counter, true, &mut ct)?;
        self.decode_index(&ct, &p, footer.index_offset, footer.index_counter)
    }

    fn decode_index(
        &self,
        ct: &[u8],
        p: &Plain,
        index_offset: u64,
        index_counter: u32,
    ) -> Result<Index> {
        if p.entry != INDEX_ENTRY_ID {
            return Err(Error::format("final segment is not an index"));
        }
        if p.raw_len > MAX_INDEX_RAW_LEN {
            return Err(Error::format("index exceeds the size limit"));
        }
        let json = Self::payload(ct, p)?;
        Index::from_json(
            &json,
            &IndexLayout {
                header_len: self.header_len(),
                chunk_size: self.header.chunk_size,
                index_offset,
                index_counter,
            },
        )
    }

    /// Authenticates and decompresses one data segment. `frame` is the
    /// `chunk.len` bytes at `chunk.offset`. Returns the entry id stored inside
    /// the segment (check it against the entry you expected) and the raw bytes.
    pub fn open_chunk(&self, chunk: &ChunkRef, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let opened = self.authenticate_chunk(chunk, frame)?;
        Ok((opened.entry(), opened.decompress()?))
    }

    /// Authenticates and decrypts a data segment (AEAD and its index record)
    /// without decompressing it. What authenticates was sealed by the key
    /// holder, so this is the cheap check to run over every chunk before a
    /// restore touches anything; the result is kept for the load, which
    /// then only decompresses (one AEAD pass per chunk, not two).
    pub fn authenticate_chunk(&self, chunk: &ChunkRef, frame: &[u8]) -> Result<OpenedChunk> {
        self.authenticate_frame(chunk, BytesMut::from(frame))
    }

    /// [`authenticate_chunk`](Self::authenticate_chunk), decrypting `frame`
    /// where it is: a restore authenticates its whole archive before it
    /// starts, and a copy of every frame was as much fresh memory again.
    pub fn authenticate_frame(&self, chunk: &ChunkRef, mut frame: BytesMut) -> Result<OpenedChunk> {
        Self::check_frame(&frame, chunk.len, self.header.max_data_segment_len())?;
        let mut ct = frame.split_off(FRAME_LEN_FIELD);
        let p = self.decrypt(chunk.counter, false, &mut ct)?;
        if p.raw_len != chunk.raw_len
            || p.raw_len > self.header.chunk_size
            || p.entry == INDEX_ENTRY_ID
        {
            return Err(Error::format("segment does not match its index record"));
        }
        Ok(OpenedChunk { plain: p, buf: ct })
    }

    /// Like [`open_chunk`](Self::open_chunk) but also checks the entry id.
    pub fn open_entry_chunk(&self, entry: u32, chunk: &ChunkRef, frame: &[u8]) -> Result<Vec<u8>> {
        let (got, raw) = self.open_chunk(chunk, frame)?;
        if got != entry {
            return Err(Error::format(format!(
                "segment {} belongs to entry {got}, not {entry}",
                chunk.counter
            )));
        }
        Ok(raw)
    }

    /// Reads the rest of an archive sequentially from `r`, which must be
    /// positioned right after the header, and authenticates everything:
    /// every segment in order, the index (which must be the final segment and
    /// list every data segment exactly where it was found), the footer, and
    /// that nothing follows the footer.
    ///
    /// `on_segment` receives each data segment's plaintext as soon as it is
    /// authenticated. Truncation and a lying index are only detected at the
    /// end, so treat what it received as provisional until this returns `Ok`.
    /// For async sources use [`StreamVerifier`] directly.
    pub fn read_stream<R: Read>(
        &self,
        r: R,
        on_segment: impl FnMut(SegmentInfo, &[u8]) -> Result<()>,
    ) -> Result<StreamSummary> {
        self.read_stream_located(r, on_segment).map_err(|(e, _)| e)
    }

    /// [`read_stream`](Self::read_stream), whose error also gives the
    /// archive offset of the frame (or footer) where reading stopped: what
    /// a report of a damaged archive should name.
    pub fn read_stream_located<R: Read>(
        &self,
        mut r: R,
        mut on_segment: impl FnMut(SegmentInfo, &[u8]) -> Result<()>,
    ) -> std::result::Result<StreamSummary, (Error, u64)> {
        let mut v = StreamVerifier::new(self);
        let mut block = vec![0u8; 256 * 1024];
        loop {
            let n = match r.read(&mut block) {
                Ok(0) => {
                    let at = v.position();
                    return v.finish().map_err(|e| (e, at));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err((e.into(), v.position())),
            };
            if let Err(e) = v.push(&block[..n], &mut on_segment) {
                return Err((e, v.position()));
            }
        }
    }
}

/// Where a [`StreamVerifier`] is in the archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StreamState {
    /// Expecting a frame (data segment or the index).
    Frames,
    /// The index was read; expecting the 24-byte footer.
    Footer,
    /// Footer read; nothing else may follow.
    Done,
}

/// Push-based (sans-IO) streaming verifier: feed it the archive bytes that
/// follow the header, in pieces of any size, then call
/// [`finish`](Self::finish). Suited to async sources (an S3 GET body, a
/// socket): it never blocks and buffers at most one frame plus the last
/// pushed piece. See [`OpenArchive::read_stream`] for what is verified.
pub struct StreamVerifier<'a> {
    open: &'a OpenArchive,
    state: StreamState,
    /// Unconsumed bytes (at most one frame plus one pushed piece).
    buf: Vec<u8>,
    /// Archive offset of `buf[0]`.
    offset: u64,
    counter: u32,
    /// (offset, frame_len, entry, raw_len) of every data segment, by counter.
    seen: Vec<(u64, u32, u32, u32)>,
    index: Option<(Index, u64, u32)>,
    footer: Option<Footer>,
}

impl std::fmt::Debug for StreamVerifier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamVerifier")
            .field("state", &self.state)
            .field("offset", &self.offset)
            .field("segments", &self.counter)
            .finish_non_exhaustive()
    }
}

impl<'a> StreamVerifier<'a> {
    pub fn new(open: &'a OpenArchive) -> Self {
        StreamVerifier {
            open,
            state: StreamState::Frames,
            buf: Vec::new(),
            offset: open.header_len(),
            counter: 0,
            seen: Vec::new(),
            index: None,
            footer: None,
        }
    }

    /// Archive offset up to which bytes have been consumed and verified.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Feeds the next bytes. Calls `on_segment` for every data segment that
    /// is complete and authenticated.
    pub fn push(
        &mut self,
        data: &[u8],
        mut on_segment: impl FnMut(SegmentInfo, &[u8]) -> Result<()>,
    ) -> Result<()> {
        if self.state == StreamState::Done {
            if data.is_empty() {
                return Ok(());
            }
            return Err(Error::format(format!(
                "unexpected data after the footer at offset {}",
                self.offset
            )));
        }
        self.buf.extend_from_slice(data);
        let mut consumed = 0usize;
        let r = self.process(&mut consumed, &mut on_segment);
        self.buf.drain(..consumed);
        r
    }

    fn process(
        &mut self,
        consumed: &mut usize,
        on_segment: &mut impl FnMut(SegmentInfo, &[u8]) -> Result<()>,
    ) -> Result<()> {
        let open = self.open;
        let max_data = open.header.max_data_segment_len();
        loop {
            let avail = &mut self.buf[*consumed..];
            match self.state {
                StreamState::Done => {
                    if !avail.is_empty() {
                        return Err(Error::format(format!(
                            "unexpected data after the footer at offset {}",
                            self.offset
                        )));
                    }
                    return Ok(());
                }
                StreamState::Footer => {
                    if avail.len() < FOOTER_LEN {
                        return Ok(());
                    }
                    let fbytes: [u8; FOOTER_LEN] = avail[..FOOTER_LEN].try_into().expect("len");
                    let footer = Footer::parse(&fbytes)?;
                    let (_, index_offset, frame_len) = self.index.as_ref().expect("index read");
                    if footer.index_offset != *index_offset
                        || footer.index_frame_len != *frame_len
                        || footer.index_counter != self.counter
                    {
                        return Err(Error::format("footer does not match the index segment"));
                    }
                    self.footer = Some(footer);
                    *consumed += FOOTER_LEN;
                    self.offset += FOOTER_LEN as u64;
                    self.state = StreamState::Done;
                }
                StreamState::Frames => {
                    if avail.len() < FRAME_LEN_FIELD {
                        return Ok(());
                    }
                    let ct_len = u32::from_le_bytes(avail[..4].try_into().expect("4 bytes"));
                    if !(MIN_SEGMENT_LEN..=MAX_SEGMENT_LEN).contains(&ct_len) {
                        return Err(Error::format(format!(
                            "segment {}: invalid length {ct_len}",
                            self.counter
                        )));
                    }
                    let frame_len = ct_len + FRAME_LEN_FIELD as u32;
                    if avail.len() < frame_len as usize {
                        return Ok(());
                    }
                    let ct = &mut avail[FRAME_LEN_FIELD..frame_len as usize];
                    let as_data = if ct_len <= max_data {
                        match open.decrypt(self.counter, false, ct) {
                            Ok(p) => Some(p),
                            Err(Error::Auth) => None,
                            Err(e) => return Err(e),
                        }
                    } else {
                        None
                    };
                    if let Some(p) = as_data {
                        if p.entry == INDEX_ENTRY_ID || p.raw_len > open.header.chunk_size {
                            return Err(Error::format(format!(
                                "segment {}: invalid inner header",
                                self.counter
                            )));
                        }
                        let raw = OpenArchive::payload(ct, &p)?;
                        on_segment(
                            SegmentInfo {
                                counter: self.counter,
                                offset: self.offset,
                                frame_len,
                                entry: p.entry,
                                codec: p.codec,
                                raw_len: p.raw_len,
                            },
                            &raw,
                        )?;
                        self.seen.push((self.offset, frame_len, p.entry, p.raw_len));
                        self.counter = self
                            .counter
                            .checked_add(1)
                            .filter(|c| *c < u32::MAX)
                            .ok_or_else(|| Error::format("too many segments"))?;
                    } else {
                        // Not a valid data segment: it must be the index.
                        let p = open.decrypt(self.counter, true, ct)?;
                        let index = open.decode_index(ct, &p, self.offset, self.counter)?;
                        self.index = Some((index, self.offset, frame_len));
                        self.state = StreamState::Footer;
                    }
                    *consumed += frame_len as usize;
                    self.offset += frame_len as u64;
                }
            }
        }
    }

    /// Call at end of input. Fails if the archive was truncated; otherwise
    /// cross-checks the index against the segments seen and returns it.
    pub fn finish(self) -> Result<StreamSummary> {
        if self.state != StreamState::Done || !self.buf.is_empty() {
            let needed = match self.state {
                StreamState::Footer => self.offset + FOOTER_LEN as u64,
                _ => self.offset + self.buf.len() as u64 + 1,
            };
            return Err(Error::Truncated { needed });
        }
        let (index, _, _) = self.index.expect("done implies index");
        for e in &index.entries {
            for c in &e.chunks {
                // Index validation guarantees counters 0..N, all present.
                let s = self.seen[c.counter as usize];
                if s != (c.offset, c.len, e.id, c.raw_len) {
                    return Err(Error::format(format!(
                        "index record for segment {} does not match the segment",
                        c.counter
                    )));
                }
            }
        }
        Ok(StreamSummary {
            index,
            footer: self.footer.expect("done implies footer"),
            bytes: self.offset,
            segments: self.counter as u64,
        })
    }
}

#[cfg(unix)]
fn read_exact_at(f: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(f, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(f: &File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match f.seek_read(buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Synchronous random-access reader over a local archive file.
///
/// `open` authenticates the header, footer and index; chunk reads then
/// authenticate each chunk they touch; `verify_all` checks every byte.
#[derive(Debug)]
pub struct ArchiveFile {
    file: File,
    len: u64,
    archive: OpenArchive,
    footer: Footer,
    index: Index,
}

impl ArchiveFile {
    pub fn open(path: &Path, how: &Unlock<'_>) -> Result<ArchiveFile> {
        let file = File::open(path).map_err(|source| Error::IoPath {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_file(file, how)
    }

    pub fn from_file(file: File, how: &Unlock<'_>) -> Result<ArchiveFile> {
        let len = file.metadata()?.len();
        let read = |off: u64, n: usize| -> Result<Vec<u8>> {
            if !matches!(off.checked_add(n as u64), Some(end) if end <= len) {
                return Err(Error::Truncated {
                    needed: off.saturating_add(n as u64),
                });
            }
            let mut b = vec![0u8; n];
            read_exact_at(&file, &mut b, off)?;
            Ok(b)
        };
        let mut want = 4096.min(len as usize).max(1);
        let (header, header_len) = loop {
            let bytes = read(0, want.min(len as usize))?;
            match Header::parse(&bytes) {
                Ok(h) => break h,
                Err(Error::Truncated { needed })
                    if needed > want as u64 && needed <= len && needed <= MAX_HEADER_LEN as u64 =>
                {
                    want = needed as usize;
                }
                Err(e) => return Err(e),
            }
        };
        let archive = header.unlock(how)?;
        if len < header_len as u64 + FOOTER_LEN as u64 {
            return Err(Error::Truncated {
                needed: header_len as u64 + FOOTER_LEN as u64,
            });
        }
        let fbytes: [u8; FOOTER_LEN] = read(len - FOOTER_LEN as u64, FOOTER_LEN)?
            .try_into()
            .expect("footer length");
        let footer = Footer::parse(&fbytes)?;
        footer.check_against(header_len, len)?;
        let frame = read(footer.index_offset, footer.index_frame_len as usize)?;
        let index = archive.open_index(&frame, &footer)?;
        Ok(ArchiveFile {
            file,
            len,
            archive,
            footer,
            index,
        })
    }

    pub fn header(&self) -> &Header {
        self.archive.header()
    }
    pub fn index(&self) -> &Index {
        &self.index
    }
    pub fn footer(&self) -> &Footer {
        &self.footer
    }
    pub fn archive(&self) -> &OpenArchive {
        &self.archive
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads and opens one chunk; returns (entry id in the segment, raw bytes).
    pub fn read_chunk(&self, chunk: &ChunkRef) -> Result<(u32, Vec<u8>)> {
        let mut frame = vec![0u8; chunk.len as usize];
        read_exact_at(&self.file, &mut frame, chunk.offset)?;
        self.archive.open_chunk(chunk, &frame)
    }

    /// Calls `f` with each chunk of `entry_id`, in order.
    pub fn for_each_chunk(
        &self,
        entry_id: u32,
        mut f: impl FnMut(&ChunkRef, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let entry = self
            .index
            .entry(entry_id)
            .ok_or_else(|| Error::InvalidInput(format!("no entry {entry_id} in the archive")))?;
        for c in &entry.chunks {
            let mut frame = vec![0u8; c.len as usize];
            read_exact_at(&self.file, &mut frame, c.offset)?;
            let raw = self.archive.open_entry_chunk(entry_id, c, &frame)?;
            f(c, raw)?;
        }
        Ok(())
    }

    /// Writes the entry's byte stream to `w`; returns the byte count.
    pub fn read_entry_to(&self, entry_id: u32, mut w: impl Write) -> Result<u64> {
        let mut n = 0u64;
        self.for_each_chunk(entry_id, |_, raw| {
            w.write_all(&raw)?;
            n += raw.len() as u64;
            Ok(())
        })?;
        Ok(n)
    }

    /// The entry's complete byte stream in memory.
    pub fn read_entry(&self, entry_id: u32) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.read_entry_to(entry_id, &mut out)?;
        Ok(out)
    }

    /// Reads the whole file front to back and authenticates every byte
    /// (see [`OpenArchive::read_stream`]).
    pub fn verify_all(&self) -> Result<StreamSummary> {
        let reader = PositionedReader {
            file: &self.file,
            pos: self.archive.header_len(),
        };
        let s = self.archive.read_stream(
            std::io::BufReader::with_capacity(1 << 20, reader),
            |_, _| Ok(()),
        )?;
        if s.index != self.index || s.bytes != self.len {
            return Err(Error::format("archive changed while it was being read"));
        }
        Ok(s)
    }
}

/// `Read` over a shared `&File` using positioned reads (no shared cursor).
struct PositionedReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::slots::SlotSpec;
    use crate::archive::writer::{ArchiveOptions, ArchiveWriter, EntryInfo};
    use crate::keys::KeyFileKey;

    #[test]
    fn write_then_read() {
        let kf = KeyFileKey::generate();
        let dk = DataKey::generate();
        let opts = ArchiveOptions {
            chunk_size: 100,
            ..Default::default()
        };
        let mut w =
            ArchiveWriter::new(Vec::new(), opts, &dk, vec![SlotSpec::KeyFile(&kf)]).unwrap();
        let data: Vec<u8> = (0..1000u32).flat_map(|i| (i % 13).to_le_bytes()).collect();
        for (i, c) in data.chunks(100).enumerate() {
            w.write_chunk(7, i as u64, c).unwrap();
        }
        let info = EntryInfo {
            id: 7,
            kind: "table".into(),
            name: Some("t".into()),
            meta: serde_json::Value::Null,
        };
        let (bytes, summary) = w.finish(vec![info], serde_json::json!({"x": 1})).unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.pgsnap");
        std::fs::write(&p, &bytes).unwrap();
        let a = ArchiveFile::open(&p, &Unlock::KeyFile(&kf)).unwrap();
        assert_eq!(a.read_entry(7).unwrap(), data);
        let s = a.verify_all().unwrap();
        assert_eq!(s.segments, 40);
        assert_eq!(a.index().entry(7).unwrap().rows, (0..40).sum::<u64>());
    }
}
