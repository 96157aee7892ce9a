//! Segment sealing: cipher choice, key derivation, nonces/AAD and the
//! thread-safe [`Sealer`] that turns a raw chunk into a ready-to-write frame.
//!
//! Owns the cryptographic construction of the body (see `format-spec.md`,
//! "Segments"): payload and header-MAC keys derived from the data key with
//! HKDF-SHA256, a 12-byte nonce `nonce_prefix || counter (BE) || last_flag`
//! and AAD `archive_id || counter (BE) || last_flag`. Binding the counter and
//! the last flag into both makes reordering, truncation and passing a data
//! segment off as the index fail authentication.

use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::archive::codec::{self, Codec, Compression};
use crate::archive::format::*;
use crate::error::{Error, Result};
use crate::keys::{DataKey, KEY_LEN};

/// AEAD used for the segments of an archive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Cipher {
    /// AES-256-GCM: fastest on CPUs with AES-NI/ARMv8 crypto (the default).
    #[default]
    Aes256Gcm,
    /// ChaCha20-Poly1305: constant-time and fast without AES hardware.
    ChaCha20Poly1305,
}

impl Cipher {
    pub fn id(self) -> u8 {
        match self {
            Cipher::Aes256Gcm => 1,
            Cipher::ChaCha20Poly1305 => 2,
        }
    }

    pub fn from_id(id: u8) -> Result<Cipher> {
        match id {
            1 => Ok(Cipher::Aes256Gcm),
            2 => Ok(Cipher::ChaCha20Poly1305),
            _ => Err(Error::Unsupported(format!("cipher id {id}"))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Cipher::Aes256Gcm => "aes-256-gcm",
            Cipher::ChaCha20Poly1305 => "chacha20-poly1305",
        }
    }
}

impl fmt::Display for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Cipher {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "aes-256-gcm" | "aes256gcm" | "aes" => Ok(Cipher::Aes256Gcm),
            "chacha20-poly1305" | "chacha20poly1305" | "chacha" => Ok(Cipher::ChaCha20Poly1305),
            _ => Err(Error::InvalidInput(format!(
                "unknown cipher {s:?} (expected aes-256-gcm or chacha20-poly1305)"
            ))),
        }
    }
}

/// HKDF-SHA256(ikm, salt, info) -> 32 bytes.
pub(crate) fn hkdf32(ikm: &[u8], salt: &[u8], info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut okm = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm.as_mut())
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

/// HMAC key for the header MAC.
pub(crate) fn header_mac_key(
    dk: &DataKey,
    archive_id: &[u8; ARCHIVE_ID_LEN],
) -> Zeroizing<[u8; 32]> {
    hkdf32(dk.expose_secret(), archive_id, INFO_HEADER_MAC)
}

/// HMAC-SHA256 over `bytes`.
pub(crate) fn header_mac(
    dk: &DataKey,
    archive_id: &[u8; ARCHIVE_ID_LEN],
    bytes: &[u8],
) -> hmac::Hmac<Sha256> {
    use hmac::Mac;
    let key = header_mac_key(dk, archive_id);
    let mut m = <hmac::Hmac<Sha256> as Mac>::new_from_slice(key.as_ref())
        .expect("HMAC accepts any key length");
    m.update(bytes);
    m
}

/// The per-archive AEAD instance for segments (payload key already derived).
#[derive(Clone)]
pub(crate) enum SegmentCipher {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

impl fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SegmentCipher(<redacted>)")
    }
}

impl SegmentCipher {
    pub(crate) fn new(cipher: Cipher, dk: &DataKey, archive_id: &[u8; ARCHIVE_ID_LEN]) -> Self {
        let key = hkdf32(dk.expose_secret(), archive_id, INFO_PAYLOAD);
        match cipher {
            Cipher::Aes256Gcm => SegmentCipher::Aes(Box::new(Aes256Gcm::new(key.as_ref().into()))),
            Cipher::ChaCha20Poly1305 => {
                SegmentCipher::ChaCha(Box::new(ChaCha20Poly1305::new(key.as_ref().into())))
            }
        }
    }

    /// Encrypts `buf` in place and returns the tag.
    fn seal_in_place(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = match self {
            SegmentCipher::Aes(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf),
            SegmentCipher::ChaCha(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf),
        }
        .map_err(|_| Error::InvalidInput("segment too large to encrypt".into()))?;
        Ok(tag.into())
    }

    /// Authenticates and decrypts `ct_and_tag` in place; returns the plaintext
    /// slice. On failure the buffer is left as it was (RustCrypto AEADs check
    /// the tag before decrypting), so a caller may retry with other parameters.
    pub(crate) fn open_in_place<'b>(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct_and_tag: &'b mut [u8],
    ) -> Result<&'b mut [u8]> {
        if ct_and_tag.len() < TAG_LEN {
            return Err(Error::Auth);
        }
        let (ct, tag) = ct_and_tag.split_at_mut(ct_and_tag.len() - TAG_LEN);
        let tag: &[u8] = tag;
        let r = match self {
            SegmentCipher::Aes(c) => c.decrypt_in_place_detached(nonce.into(), aad, ct, tag.into()),
            SegmentCipher::ChaCha(c) => {
                c.decrypt_in_place_detached(nonce.into(), aad, ct, tag.into())
            }
        };
        r.map_err(|_| Error::Auth)?;
        Ok(ct)
    }
}

/// Nonce of segment `counter`: `nonce_prefix(7) || counter u32 BE || last_flag`.
pub(crate) fn segment_nonce(
    prefix: &[u8; NONCE_PREFIX_LEN],
    counter: u32,
    last: bool,
) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = last as u8;
    n
}

/// AAD of segment `counter`: `archive_id(16) || counter u32 BE || last_flag`.
pub(crate) fn segment_aad(archive_id: &[u8; ARCHIVE_ID_LEN], counter: u32, last: bool) -> [u8; 21] {
    let mut a = [0u8; 21];
    a[..16].copy_from_slice(archive_id);
    a[16..20].copy_from_slice(&counter.to_be_bytes());
    a[20] = last as u8;
    a
}

/// A sealed data segment, ready to be appended by
/// [`ArchiveWriter::write_sealed`](crate::archive::writer::ArchiveWriter::write_sealed).
#[derive(Clone)]
pub struct SealedChunk {
    pub(crate) counter: u32,
    pub(crate) entry: u32,
    pub(crate) rows: u64,
    pub(crate) raw_len: u32,
    pub(crate) codec: Codec,
    /// Complete frame: `len u32 LE || ciphertext || tag`.
    pub(crate) frame: Vec<u8>,
    pub(crate) archive_id: [u8; ARCHIVE_ID_LEN],
}

impl SealedChunk {
    pub fn counter(&self) -> u32 {
        self.counter
    }
    pub fn entry(&self) -> u32 {
        self.entry
    }
    pub fn rows(&self) -> u64 {
        self.rows
    }
    pub fn raw_len(&self) -> u32 {
        self.raw_len
    }
    pub fn codec(&self) -> Codec {
        self.codec
    }
    /// Frame length on disk, including the 4-byte length field.
    pub fn frame_len(&self) -> usize {
        self.frame.len()
    }

    /// The complete frame as it will appear in the archive.
    pub fn frame(&self) -> &[u8] {
        &self.frame
    }
}

impl fmt::Debug for SealedChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedChunk")
            .field("counter", &self.counter)
            .field("entry", &self.entry)
            .field("rows", &self.rows)
            .field("raw_len", &self.raw_len)
            .field("codec", &self.codec)
            .field("frame_len", &self.frame.len())
            .finish()
    }
}

/// Compresses and seals chunks for one archive. `Send + Sync` and pure CPU:
/// share it in an `Arc` and call [`Sealer::seal`] from as many threads as you like.
#[derive(Debug)]
pub struct Sealer {
    cipher: SegmentCipher,
    archive_id: [u8; ARCHIVE_ID_LEN],
    nonce_prefix: [u8; NONCE_PREFIX_LEN],
    compression: Compression,
    chunk_size: u32,
}

impl Sealer {
    pub(crate) fn new(
        cipher: Cipher,
        dk: &DataKey,
        archive_id: [u8; ARCHIVE_ID_LEN],
        nonce_prefix: [u8; NONCE_PREFIX_LEN],
        compression: Compression,
        chunk_size: u32,
    ) -> Self {
        Sealer {
            cipher: SegmentCipher::new(cipher, dk, &archive_id),
            archive_id,
            nonce_prefix,
            compression,
            chunk_size,
        }
    }

    pub fn archive_id(&self) -> [u8; ARCHIVE_ID_LEN] {
        self.archive_id
    }

    /// Largest `raw` accepted by [`Sealer::seal`] (the archive's chunk_size).
    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Compresses `raw` with the archive's compression (falling back to
    /// storing it if that does not make it smaller) and seals it as data
    /// segment `counter` of entry `entry`. `rows` is only carried through to
    /// the index. `raw` must not exceed the archive's chunk_size.
    pub fn seal(&self, counter: u32, entry: u32, rows: u64, raw: &[u8]) -> Result<SealedChunk> {
        self.seal_with(counter, entry, rows, raw, self.compression)
    }

    /// Like [`Sealer::seal`] with an explicit compression for this chunk
    /// (e.g. `Compression::None` for data known to be incompressible).
    pub fn seal_with(
        &self,
        counter: u32,
        entry: u32,
        rows: u64,
        raw: &[u8],
        compression: Compression,
    ) -> Result<SealedChunk> {
        if entry == INDEX_ENTRY_ID {
            return Err(Error::InvalidInput(format!(
                "entry id {INDEX_ENTRY_ID:#x} is reserved for the index"
            )));
        }
        if counter == u32::MAX {
            return Err(Error::InvalidInput(
                "too many segments in one archive".into(),
            ));
        }
        if raw.len() > self.chunk_size as usize {
            return Err(Error::InvalidInput(format!(
                "chunk of {} bytes exceeds the archive chunk_size {}",
                raw.len(),
                self.chunk_size
            )));
        }
        let (frame, codec) = self.seal_segment(counter, false, entry, raw, compression)?;
        Ok(SealedChunk {
            counter,
            entry,
            rows,
            raw_len: raw.len() as u32,
            codec,
            frame,
            archive_id: self.archive_id,
        })
    }

    /// Builds a complete frame. Layout of the returned buffer:
    /// `len u32 LE | entry u32 | codec u8 | raw_len u32 | payload | tag`, where
    /// everything after `len` is the AEAD ciphertext.
    pub(crate) fn seal_segment(
        &self,
        counter: u32,
        last: bool,
        entry: u32,
        raw: &[u8],
        compression: Compression,
    ) -> Result<(Vec<u8>, Codec)> {
        let raw_len: u32 = raw
            .len()
            .try_into()
            .map_err(|_| Error::InvalidInput("segment larger than 4 GiB".into()))?;
        const HDR: usize = FRAME_LEN_FIELD + INNER_HEADER_LEN;
        let codec = compression.codec();
        let bound = codec::compress_bound(codec, raw.len());
        // One allocation per chunk; compress straight into its final place.
        let mut buf = vec![0u8; HDR + bound.max(raw.len()) + TAG_LEN];
        let mut used_codec = codec;
        let mut payload_len = if codec == Codec::None {
            0
        } else {
            codec::compress_into(compression, raw, &mut buf[HDR..HDR + bound])?
        };
        if codec == Codec::None || payload_len >= raw.len() {
            // Not worth it: store (also keeps every payload <= raw_len).
            buf[HDR..HDR + raw.len()].copy_from_slice(raw);
            payload_len = raw.len();
            used_codec = Codec::None;
        }
        let ct_len = INNER_HEADER_LEN + payload_len + TAG_LEN;
        buf.truncate(HDR + payload_len + TAG_LEN);
        buf[0..4].copy_from_slice(&(ct_len as u32).to_le_bytes());
        buf[4..8].copy_from_slice(&entry.to_le_bytes());
        buf[8] = used_codec.id();
        buf[9..13].copy_from_slice(&raw_len.to_le_bytes());
        let nonce = segment_nonce(&self.nonce_prefix, counter, last);
        let aad = segment_aad(&self.archive_id, counter, last);
        let body_end = HDR + payload_len;
        let tag = self
            .cipher
            .seal_in_place(&nonce, &aad, &mut buf[FRAME_LEN_FIELD..body_end])?;
        buf[body_end..].copy_from_slice(&tag);
        Ok((buf, used_codec))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cipher_names() {
        for c in [Cipher::Aes256Gcm, Cipher::ChaCha20Poly1305] {
            assert_eq!(c.to_string().parse::<Cipher>().unwrap(), c);
            assert_eq!(Cipher::from_id(c.id()).unwrap(), c);
        }
        assert!("des".parse::<Cipher>().is_err());
        assert!(Cipher::from_id(9).is_err());
    }

    #[test]
    fn nonce_layout() {
        let n = segment_nonce(&[1, 2, 3, 4, 5, 6, 7], 0x0A0B0C0D, true);
        assert_eq!(n, [1, 2, 3, 4, 5, 6, 7, 0x0A, 0x0B, 0x0C, 0x0D, 1]);
    }

    #[test]
    fn stores_incompressible_data() {
        let dk = DataKey::generate();
        let s = Sealer::new(
            Cipher::Aes256Gcm,
            &dk,
            [1; 16],
            [2; 7],
            Compression::Zstd(3),
            4096,
        );
        let mut raw = vec![0u8; 4096];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
        let c = s.seal(0, 1, 10, &raw).unwrap();
        assert_eq!(c.codec(), Codec::None);
        assert_eq!(c.frame_len(), 4 + 9 + 4096 + 16);
        let c = s.seal(1, 1, 10, &[b'a'; 4096]).unwrap();
        assert_eq!(c.codec(), Codec::Zstd);
        assert!(s.seal(2, 1, 0, &[0; 4097]).is_err());
        assert!(s.seal(2, INDEX_ENTRY_ID, 0, b"x").is_err());
    }
}
