//! Key slots: the records in the header that each wrap the archive's data key
//! under one user secret (key file, passphrase, AWS KMS).
//!
//! Owns slot (de)serialisation, wrapping for new archives and unwrapping when
//! opening. Any one slot opens the archive. Unknown kinds are kept as opaque
//! bytes and skipped so that newer writers can add kinds without breaking
//! older readers (they remain covered by the header MAC).
//!
//! Every wrap is AES-256-GCM (independent of the archive's segment cipher)
//! with AAD = the fixed header bytes (magic .. nonce_prefix), so a slot cannot
//! be moved to another archive or header.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::archive::format::*;
use crate::archive::seal::hkdf32;
use crate::error::{Error, Result};
use crate::keys::{DataKey, KeyFileKey, Passphrase, KEY_LEN};

/// Argon2id cost parameters of a passphrase slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p: u32,
}

impl Default for Argon2Params {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option with a
    /// single lane because the argon2 crate computes lanes sequentially here).
    fn default() -> Self {
        Argon2Params {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p: 1,
        }
    }
}

impl Argon2Params {
    /// Refuses parameters that are invalid or absurd (memory/time bombs in a
    /// hostile header) before any KDF work is done.
    pub fn check(&self) -> Result<()> {
        let ok = (1..=MAX_ARGON2_P).contains(&self.p)
            && (1..=MAX_ARGON2_T).contains(&self.t_cost)
            && self.m_cost_kib <= MAX_ARGON2_M_KIB
            && self.m_cost_kib >= 8 * self.p;
        if ok {
            Ok(())
        } else {
            Err(Error::format(format!(
                "passphrase slot has unacceptable Argon2id parameters m={}KiB t={} p={}",
                self.m_cost_kib, self.t_cost, self.p
            )))
        }
    }

    fn derive(
        &self,
        pass: &Passphrase,
        salt: &[u8; ARGON2_SALT_LEN],
    ) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        self.check()?;
        let params = argon2::Params::new(self.m_cost_kib, self.t_cost, self.p, Some(KEY_LEN))
            .map_err(|e| Error::format(format!("argon2 parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        a.hash_password_into(pass.as_bytes(), salt, out.as_mut())
            .map_err(|e| Error::InvalidInput(format!("argon2: {e}")))?;
        Ok(out)
    }
}

/// One key slot record.
#[derive(Clone, PartialEq, Eq)]
pub enum KeySlot {
    /// Data key wrapped with a key derived from a key file.
    KeyFile {
        key_id: [u8; KEY_ID_LEN],
        wrap_nonce: [u8; NONCE_LEN],
        wrapped: [u8; WRAPPED_KEY_LEN],
    },
    /// Data key wrapped with an Argon2id-derived key.
    Passphrase {
        params: Argon2Params,
        salt: [u8; ARGON2_SALT_LEN],
        wrap_nonce: [u8; NONCE_LEN],
        wrapped: [u8; WRAPPED_KEY_LEN],
    },
    /// Data key encrypted by AWS KMS with encryption context
    /// `{"pgsnap:archive_id": hex(archive_id)}`.
    Kms { key_id: String, ciphertext: Vec<u8> },
    /// A kind this version does not know; kept verbatim and skipped.
    Unknown { kind: u8, body: Vec<u8> },
}

impl fmt::Debug for KeySlot {
    // Wrapped keys are not secret, but there is no reason to dump them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySlot::KeyFile { key_id, .. } => {
                write!(f, "KeySlot::KeyFile {{ key_id: {} }}", hex::encode(key_id))
            }
            KeySlot::Passphrase { params, .. } => {
                write!(f, "KeySlot::Passphrase {{ params: {params:?} }}")
            }
            KeySlot::Kms { key_id, ciphertext } => write!(
                f,
                "KeySlot::Kms {{ key_id: {key_id:?}, ciphertext: {} bytes }}",
                ciphertext.len()
            ),
            KeySlot::Unknown { kind, body } => {
                write!(
                    f,
                    "KeySlot::Unknown {{ kind: {kind}, body: {} bytes }}",
                    body.len()
                )
            }
        }
    }
}

/// How to open an archive.
#[derive(Debug)]
pub enum Unlock<'a> {
    KeyFile(&'a KeyFileKey),
    Passphrase(&'a Passphrase),
    /// A data key obtained elsewhere (e.g. from KMS `Decrypt` of a KMS slot).
    DataKey(DataKey),
}

/// A recipe for one key slot of a new archive; built by the writer once the
/// archive id and header are known.
#[derive(Debug)]
pub enum SlotSpec<'a> {
    KeyFile(&'a KeyFileKey),
    Passphrase(&'a Passphrase, Argon2Params),
    /// A KMS-encrypted copy of the data key (made by the caller with the
    /// encryption context from [`kms_encryption_context`]).
    Kms {
        key_id: String,
        ciphertext: Vec<u8>,
    },
    /// A slot built by the caller.
    Prebuilt(KeySlot),
}

impl SlotSpec<'_> {
    /// Builds the slot for an archive whose fixed header bytes are `aad`.
    pub fn build(
        &self,
        dk: &DataKey,
        archive_id: &[u8; ARCHIVE_ID_LEN],
        aad: &[u8],
    ) -> Result<KeySlot> {
        match self {
            SlotSpec::KeyFile(k) => KeySlot::for_key_file(k, dk, archive_id, aad),
            SlotSpec::Passphrase(p, params) => KeySlot::for_passphrase(p, dk, aad, *params),
            SlotSpec::Kms { key_id, ciphertext } => {
                KeySlot::kms(key_id.clone(), ciphertext.clone())
            }
            SlotSpec::Prebuilt(s) => Ok(s.clone()),
        }
    }
}

/// The KMS encryption context that binds a KMS slot to its archive:
/// `("pgsnap:archive_id", lowercase hex of archive_id)`.
pub fn kms_encryption_context(archive_id: &[u8; ARCHIVE_ID_LEN]) -> (&'static str, String) {
    (KMS_CONTEXT_KEY, hex::encode(archive_id))
}

/// Turns the plaintext returned by KMS for a KMS slot into the data key
/// (refuses anything but 32 bytes). Use with [`Unlock::DataKey`]; the header
/// MAC check then confirms it is the right key.
pub fn data_key_from_kms_plaintext(plaintext: &[u8]) -> Result<DataKey> {
    DataKey::from_slice(plaintext)
}

fn wrap(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    dk: &DataKey,
) -> Result<[u8; WRAPPED_KEY_LEN]> {
    let c = Aes256Gcm::new(key.into());
    let mut buf = Zeroizing::new(*dk.expose_secret());
    let tag = c
        .encrypt_in_place_detached(nonce.into(), aad, buf.as_mut())
        .map_err(|_| Error::InvalidInput("key wrap failed".into()))?;
    let mut out = [0u8; WRAPPED_KEY_LEN];
    out[..KEY_LEN].copy_from_slice(buf.as_ref());
    out[KEY_LEN..].copy_from_slice(&tag);
    Ok(out)
}

fn unwrap(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    wrapped: &[u8; WRAPPED_KEY_LEN],
) -> Option<DataKey> {
    let c = Aes256Gcm::new(key.into());
    let mut buf = Zeroizing::new([0u8; KEY_LEN]);
    buf.copy_from_slice(&wrapped[..KEY_LEN]);
    c.decrypt_in_place_detached(nonce.into(), aad, buf.as_mut(), wrapped[KEY_LEN..].into())
        .ok()?;
    Some(DataKey::from_bytes(*buf))
}

fn random<const N: usize>() -> [u8; N] {
    let mut a = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut a);
    a
}

impl KeySlot {
    /// Key-file slot with a random wrap nonce.
    pub fn for_key_file(
        kf: &KeyFileKey,
        dk: &DataKey,
        archive_id: &[u8; ARCHIVE_ID_LEN],
        aad: &[u8],
    ) -> Result<KeySlot> {
        KeySlot::key_file_with_nonce(kf, dk, archive_id, aad, random())
    }

    /// Key-file slot with an explicit nonce (deterministic test vectors).
    pub fn key_file_with_nonce(
        kf: &KeyFileKey,
        dk: &DataKey,
        archive_id: &[u8; ARCHIVE_ID_LEN],
        aad: &[u8],
        wrap_nonce: [u8; NONCE_LEN],
    ) -> Result<KeySlot> {
        let kek = hkdf32(kf.secret(), archive_id, INFO_KEYFILE_SLOT);
        Ok(KeySlot::KeyFile {
            key_id: kf.key_id(),
            wrap_nonce,
            wrapped: wrap(&kek, &wrap_nonce, aad, dk)?,
        })
    }

    /// Passphrase slot with a random salt and nonce. Runs Argon2id once.
    pub fn for_passphrase(
        pass: &Passphrase,
        dk: &DataKey,
        aad: &[u8],
        params: Argon2Params,
    ) -> Result<KeySlot> {
        KeySlot::passphrase_with(pass, dk, aad, params, random(), random())
    }

    /// Passphrase slot with explicit salt and nonce (deterministic test vectors).
    pub fn passphrase_with(
        pass: &Passphrase,
        dk: &DataKey,
        aad: &[u8],
        params: Argon2Params,
        salt: [u8; ARGON2_SALT_LEN],
        wrap_nonce: [u8; NONCE_LEN],
    ) -> Result<KeySlot> {
        params
            .check()
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let kek = params.derive(pass, &salt)?;
        Ok(KeySlot::Passphrase {
            params,
            salt,
            wrap_nonce,
            wrapped: wrap(&kek, &wrap_nonce, aad, dk)?,
        })
    }

    /// KMS slot (validates the field lengths).
    pub fn kms(key_id: String, ciphertext: Vec<u8>) -> Result<KeySlot> {
        if key_id.len() > MAX_KMS_KEY_ID_LEN
            || ciphertext.len() > MAX_KMS_CIPHERTEXT_LEN
            || ciphertext.is_empty()
        {
            return Err(Error::InvalidInput(format!(
                "KMS slot: key id ({} bytes, max {MAX_KMS_KEY_ID_LEN}) or ciphertext ({} bytes, 1..={MAX_KMS_CIPHERTEXT_LEN}) out of range",
                key_id.len(),
                ciphertext.len()
            )));
        }
        Ok(KeySlot::Kms { key_id, ciphertext })
    }

    pub fn kind(&self) -> u8 {
        match self {
            KeySlot::KeyFile { .. } => SLOT_KEY_FILE,
            KeySlot::Passphrase { .. } => SLOT_PASSPHRASE,
            KeySlot::Kms { .. } => SLOT_KMS,
            KeySlot::Unknown { kind, .. } => *kind,
        }
    }

    /// Human-readable kind, e.g. for "the archive has slots: key file, kms".
    pub fn kind_name(&self) -> String {
        match self {
            KeySlot::KeyFile { key_id, .. } => format!("key file (id {})", hex::encode(key_id)),
            KeySlot::Passphrase { .. } => "passphrase".into(),
            KeySlot::Kms { key_id, .. } => format!("aws kms ({key_id})"),
            KeySlot::Unknown { kind, .. } => format!("unknown kind {kind}"),
        }
    }

    /// Parses a slot body of the given kind. Known kinds must have exactly the
    /// expected length; unknown kinds are kept opaque.
    pub fn parse(kind: u8, body: &[u8]) -> Result<KeySlot> {
        let mut r = ByteReader::new(body);
        let slot = match kind {
            SLOT_KEY_FILE => {
                if body.len() != KEY_FILE_SLOT_BODY_LEN as usize {
                    return Err(Error::format("key-file slot has the wrong length"));
                }
                KeySlot::KeyFile {
                    key_id: r.array()?,
                    wrap_nonce: r.array()?,
                    wrapped: r.array()?,
                }
            }
            SLOT_PASSPHRASE => {
                if body.len() != PASSPHRASE_SLOT_BODY_LEN as usize {
                    return Err(Error::format("passphrase slot has the wrong length"));
                }
                let params = Argon2Params {
                    m_cost_kib: r.u32()?,
                    t_cost: r.u32()?,
                    p: r.u32()?,
                };
                KeySlot::Passphrase {
                    params,
                    salt: r.array()?,
                    wrap_nonce: r.array()?,
                    wrapped: r.array()?,
                }
            }
            SLOT_KMS => {
                let bad = || Error::format("malformed KMS slot");
                let n = r.u16().map_err(|_| bad())? as usize;
                if n > MAX_KMS_KEY_ID_LEN {
                    return Err(bad());
                }
                let key_id = std::str::from_utf8(r.take(n).map_err(|_| bad())?)
                    .map_err(|_| bad())?
                    .to_string();
                let m = r.u32().map_err(|_| bad())? as usize;
                if m == 0 || m > MAX_KMS_CIPHERTEXT_LEN {
                    return Err(bad());
                }
                let ciphertext = r.take(m).map_err(|_| bad())?.to_vec();
                if r.remaining() != 0 {
                    return Err(bad());
                }
                KeySlot::Kms { key_id, ciphertext }
            }
            _ => KeySlot::Unknown {
                kind,
                body: body.to_vec(),
            },
        };
        Ok(slot)
    }

    /// Appends the slot record (kind, body_len, body).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.push(self.kind());
        let len_pos = out.len();
        out.extend_from_slice(&[0; 4]);
        match self {
            KeySlot::KeyFile {
                key_id,
                wrap_nonce,
                wrapped,
            } => {
                out.extend_from_slice(key_id);
                out.extend_from_slice(wrap_nonce);
                out.extend_from_slice(wrapped);
            }
            KeySlot::Passphrase {
                params,
                salt,
                wrap_nonce,
                wrapped,
            } => {
                out.extend_from_slice(&params.m_cost_kib.to_le_bytes());
                out.extend_from_slice(&params.t_cost.to_le_bytes());
                out.extend_from_slice(&params.p.to_le_bytes());
                out.extend_from_slice(salt);
                out.extend_from_slice(wrap_nonce);
                out.extend_from_slice(wrapped);
            }
            KeySlot::Kms { key_id, ciphertext } => {
                out.extend_from_slice(&(key_id.len() as u16).to_le_bytes());
                out.extend_from_slice(key_id.as_bytes());
                out.extend_from_slice(&(ciphertext.len() as u32).to_le_bytes());
                out.extend_from_slice(ciphertext);
            }
            KeySlot::Unknown { body, .. } => out.extend_from_slice(body),
        }
        let body_len = (out.len() - len_pos - 4) as u32;
        out[len_pos..len_pos + 4].copy_from_slice(&body_len.to_le_bytes());
    }

    /// Tries to unwrap the data key from this slot. `Ok(None)` means "not
    /// this slot" (other kind, other key file, wrong passphrase).
    pub(crate) fn try_unlock(
        &self,
        how: &Unlock<'_>,
        archive_id: &[u8; ARCHIVE_ID_LEN],
        aad: &[u8],
    ) -> Result<Option<DataKey>> {
        match (self, how) {
            (
                KeySlot::KeyFile {
                    key_id,
                    wrap_nonce,
                    wrapped,
                },
                Unlock::KeyFile(kf),
            ) => {
                if *key_id != kf.key_id() {
                    return Ok(None);
                }
                let kek = hkdf32(kf.secret(), archive_id, INFO_KEYFILE_SLOT);
                Ok(unwrap(&kek, wrap_nonce, aad, wrapped))
            }
            (
                KeySlot::Passphrase {
                    params,
                    salt,
                    wrap_nonce,
                    wrapped,
                },
                Unlock::Passphrase(p),
            ) => {
                let kek = params.derive(p, salt)?;
                Ok(unwrap(&kek, wrap_nonce, aad, wrapped))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_records_roundtrip() {
        let dk = DataKey::generate();
        let kf = KeyFileKey::generate();
        let pw = Passphrase::new("correct horse").unwrap();
        let aad = [7u8; HEADER_FIXED_LEN];
        let id = [3u8; 16];
        let cheap = Argon2Params {
            m_cost_kib: 64,
            t_cost: 1,
            p: 1,
        };
        let slots = vec![
            KeySlot::for_key_file(&kf, &dk, &id, &aad).unwrap(),
            KeySlot::for_passphrase(&pw, &dk, &aad, cheap).unwrap(),
            KeySlot::kms("arn:aws:kms:eu-west-1:1:key/x".into(), vec![1, 2, 3]).unwrap(),
            KeySlot::Unknown {
                kind: 77,
                body: vec![9; 5],
            },
        ];
        for s in &slots {
            let mut out = Vec::new();
            s.write_to(&mut out);
            let len = u32::from_le_bytes(out[1..5].try_into().unwrap()) as usize;
            assert_eq!(len, out.len() - 5);
            assert_eq!(&KeySlot::parse(out[0], &out[5..]).unwrap(), s);
        }
        let k = slots[0]
            .try_unlock(&Unlock::KeyFile(&kf), &id, &aad)
            .unwrap()
            .unwrap();
        assert_eq!(k.expose_secret(), dk.expose_secret());
        let k = slots[1]
            .try_unlock(&Unlock::Passphrase(&pw), &id, &aad)
            .unwrap()
            .unwrap();
        assert_eq!(k.expose_secret(), dk.expose_secret());
        let other = KeyFileKey::generate();
        assert!(slots[0]
            .try_unlock(&Unlock::KeyFile(&other), &id, &aad)
            .unwrap()
            .is_none());
        // Moving the slot to another header (different AAD) fails.
        assert!(slots[0]
            .try_unlock(&Unlock::KeyFile(&kf), &id, &[8u8; HEADER_FIXED_LEN])
            .unwrap()
            .is_none());
        let bad = Passphrase::new("wrong").unwrap();
        assert!(slots[1]
            .try_unlock(&Unlock::Passphrase(&bad), &id, &aad)
            .unwrap()
            .is_none());
    }

    #[test]
    fn absurd_argon2_refused() {
        for p in [
            Argon2Params {
                m_cost_kib: MAX_ARGON2_M_KIB + 1,
                t_cost: 1,
                p: 1,
            },
            Argon2Params {
                m_cost_kib: 64,
                t_cost: 101,
                p: 1,
            },
            Argon2Params {
                m_cost_kib: 64,
                t_cost: 1,
                p: 0,
            },
            Argon2Params {
                m_cost_kib: 7,
                t_cost: 1,
                p: 1,
            },
        ] {
            assert!(p.check().is_err(), "{p:?}");
        }
    }
}
