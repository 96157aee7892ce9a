//! Key material: per-archive data keys, key files and passphrases.
//!
//! Owns how secrets are created, loaded and kept in memory. Every type here
//! zeroizes its bytes on drop and has a redacted `Debug` so a stray `{:?}` or
//! a panic message can never leak a key. Nothing in this module prints key
//! material or key-file content, including in error messages.

use std::fmt;
use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// Length of every symmetric key in the format.
pub const KEY_LEN: usize = 32;

/// Key files are tiny; anything bigger is certainly not one and is not read.
const MAX_KEY_FILE_LEN: u64 = 1024;

/// The random 32-byte key of one archive. All other archive keys are derived
/// from it with HKDF (see `format-spec.md`).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DataKey([u8; KEY_LEN]);

impl DataKey {
    /// A fresh random data key from the OS RNG.
    pub fn generate() -> DataKey {
        let mut k = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        DataKey(k)
    }

    /// Wraps existing key bytes (e.g. a KMS plaintext data key).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> DataKey {
        DataKey(bytes)
    }

    /// Wraps a key given as a slice, refusing anything but 32 bytes.
    /// Intended for the plaintext returned by KMS `Decrypt`/`GenerateDataKey`.
    pub fn from_slice(bytes: &[u8]) -> Result<DataKey> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            Error::InvalidInput(format!(
                "data key must be {KEY_LEN} bytes, got {} bytes",
                bytes.len()
            ))
        })?;
        Ok(DataKey(arr))
    }

    /// The raw key bytes. Only for handing the key to a KMS `Encrypt` call;
    /// never log or persist them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The 32-byte secret of a key file (`pgsnap keygen`).
///
/// On disk a key file is the standard base64 of the 32 bytes followed by a
/// newline; surrounding ASCII whitespace is ignored when loading.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct KeyFileKey([u8; KEY_LEN]);

/// Whether a path is rather a key: base64 of [`KEY_LEN`] bytes, as a key
/// file's content is.
fn looks_like_a_key(path: &Path) -> bool {
    let text = path.to_string_lossy();
    let text = text.trim();
    [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ]
    .iter()
    .any(|engine| engine.decode(text).is_ok_and(|k| k.len() == KEY_LEN))
}

impl KeyFileKey {
    /// Creates a new key file at `path` with 32 random bytes.
    ///
    /// The file is created with `create_new` (an existing file is refused and
    /// left untouched) and, on Unix, mode 0600 from the start so the key is
    /// never readable by others, not even briefly.
    pub fn generate_file(path: &Path) -> Result<()> {
        let key = KeyFileKey::generate();
        let mut text = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.0));
        text.push('\n');

        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| {
            let reason = if path.is_dir() {
                "is a directory; give the path of the key file to create".to_string()
            } else if e.kind() == std::io::ErrorKind::AlreadyExists {
                "already exists; refusing to overwrite it".to_string()
            } else {
                format!("cannot create: {e}")
            };
            Error::KeyFile {
                path: path.to_path_buf(),
                reason,
            }
        })?;
        let write = f.write_all(text.as_bytes()).and_then(|_| f.sync_all());
        if let Err(e) = write {
            // Do not leave a half-written key file behind: it would look valid
            // to a later `create_new` check but could not be loaded.
            drop(f);
            let _ = std::fs::remove_file(path);
            return Err(Error::KeyFile {
                path: path.to_path_buf(),
                reason: format!("cannot write: {e}"),
            });
        }
        Ok(())
    }

    /// A random key that is not (yet) stored anywhere. Mostly for tests.
    pub fn generate() -> KeyFileKey {
        let mut k = [0u8; KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut k);
        KeyFileKey(k)
    }

    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> KeyFileKey {
        KeyFileKey(bytes)
    }

    /// Loads a key file written by [`KeyFileKey::generate_file`].
    ///
    /// Errors name the path and the problem but never echo the content.
    pub fn load(path: &Path) -> Result<KeyFileKey> {
        let err = |reason: String| Error::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            // A secret store that hands out the key file's content where
            // its path belongs: the message must not print the key.
            std::io::ErrorKind::NotFound if looks_like_a_key(path) => Error::Usage(
                "--key-file (or PGSNAP_KEY_FILE) holds what looks like a key itself, not the \
                 path of a key file (not shown); give the path of the file that holds it"
                    .into(),
            ),
            std::io::ErrorKind::NotFound => err("no such file".into()),
            _ => err(format!("cannot read: {e}")),
        })?;
        if !meta.is_file() {
            return Err(err("not a regular file".into()));
        }
        warn_if_shared(path, &meta);
        if meta.len() > MAX_KEY_FILE_LEN {
            return Err(err(format!(
                "not a pgsnap key file ({} bytes; a key file is 45 bytes)",
                meta.len()
            )));
        }
        let content =
            Zeroizing::new(std::fs::read(path).map_err(|e| err(format!("cannot read: {e}")))?);
        KeyFileKey::parse(&content).map_err(|reason| err(reason.into()))
    }

    /// Parses key-file content. The error text never includes the content.
    pub fn parse(content: &[u8]) -> std::result::Result<KeyFileKey, &'static str> {
        let text = content.trim_ascii();
        if text.is_empty() {
            return Err("file is empty; expected a base64-encoded 32-byte key");
        }
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|_| "not a pgsnap key file (content is not valid base64)")?,
        );
        let arr: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| "not a pgsnap key file (key must decode to 32 bytes)")?;
        Ok(KeyFileKey(arr))
    }

    /// First 8 bytes of SHA-256 of the key. Stored in key-file slots so a
    /// reader can say "not made with this key file" without trial decryption.
    /// It identifies the key but reveals nothing usable about it.
    pub fn key_id(&self) -> [u8; 8] {
        let digest = Sha256::digest(self.0);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        id
    }

    pub(crate) fn secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for KeyFileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The key id is a public fingerprint (it is stored in the archive).
        write!(
            f,
            "KeyFileKey(id={}, <redacted>)",
            hex::encode(self.key_id())
        )
    }
}

/// A passphrase used with an Argon2id key slot.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Passphrase(String);

impl Passphrase {
    /// Wraps a passphrase. Refuses an empty one, which would offer no protection.
    pub fn new(s: impl Into<String>) -> Result<Passphrase> {
        let s = s.into();
        if s.is_empty() {
            return Err(Error::InvalidInput("passphrase must not be empty".into()));
        }
        Ok(Passphrase(s))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// A key file others can read is a leaked key waiting to happen: warn, as
/// ssh does for private keys, but go on (refusing would break a restore in
/// an emergency over a mode bit).
#[cfg(unix)]
fn warn_if_shared(path: &Path, meta: &std::fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            "key file {} can be read by other users (mode {mode:04o}); chmod 600 it",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_: &Path, _: &std::fs::Metadata) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let dk = DataKey::from_bytes([0xAB; 32]);
        let kf = KeyFileKey::from_bytes([0xAB; 32]);
        let pw = Passphrase::new("hunter2hunter2").unwrap();
        for s in [format!("{dk:?}"), format!("{kf:?}"), format!("{pw:?}")] {
            assert!(!s.to_lowercase().contains("abab"), "{s}");
            assert!(!s.contains("hunter2"), "{s}");
            assert!(s.contains("redacted"));
        }
    }

    #[test]
    fn key_file_roundtrip_and_refuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        KeyFileKey::generate_file(&p).unwrap();
        let before = std::fs::read(&p).unwrap();
        assert_eq!(before.len(), 45);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let k = KeyFileKey::load(&p).unwrap();
        let err = KeyFileKey::generate_file(&p).unwrap_err().to_string();
        assert!(
            err.contains("k.key") && err.contains("already exists"),
            "{err}"
        );
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(KeyFileKey::load(&p).unwrap().key_id(), k.key_id());
        let err = KeyFileKey::generate_file(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a directory"), "{err}");
    }

    #[test]
    fn key_file_errors_do_not_echo_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.key");
        std::fs::write(&p, "c2VjcmV0LXNlY3JldA==\n").unwrap();
        let err = KeyFileKey::load(&p).unwrap_err().to_string();
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(err.contains("32 bytes"), "{err}");
        std::fs::write(&p, "not base64 !!! secretword").unwrap();
        let err = KeyFileKey::load(&p).unwrap_err().to_string();
        assert!(!err.contains("secretword"), "{err}");
        let missing = dir.path().join("missing.key");
        let err = KeyFileKey::load(&missing).unwrap_err().to_string();
        assert!(
            err.contains("missing.key") && err.contains("no such file"),
            "{err}"
        );
        // The key's content given as its path (a secret store's value):
        // said so, not printed.
        let key = base64::engine::general_purpose::STANDARD.encode([7u8; KEY_LEN]);
        for given in [key.clone(), key.trim_end_matches('=').to_string()] {
            let err = KeyFileKey::load(Path::new(&given)).unwrap_err().to_string();
            assert!(!err.contains(&given[..20]), "{err}");
            assert!(err.contains("looks like a key"), "{err}");
        }
    }
}
