//! The keys one run holds, and how they become key slots of a new archive or
//! open an existing one.
//!
//! A backup makes a fresh random data key per archive and wraps it once per
//! credential (key file, passphrase, later AWS KMS); any one of them opens
//! the archive again. Nothing here ever formats key material.

use std::path::Path;

use crate::archive::format::Header;
use crate::archive::reader::OpenArchive;
use crate::archive::slots::{SlotSpec, Unlock};
use crate::error::{Error, Result};
use crate::keys::{DataKey, KeyFileKey};

#[derive(Default)]
pub struct Credentials {
    key_files: Vec<KeyFileKey>,
}

impl Credentials {
    pub fn from_key_file(path: &Path) -> Result<Credentials> {
        Ok(Credentials {
            key_files: vec![KeyFileKey::load(path)?],
        })
    }

    pub fn add_key_file(&mut self, key: KeyFileKey) {
        self.key_files.push(key);
    }

    /// A new archive's data key and the slots that wrap it.
    pub fn new_archive_keys(&self) -> Result<(DataKey, Vec<SlotSpec<'_>>)> {
        if self.key_files.is_empty() {
            return Err(Error::Usage(
                "no key to encrypt the backup with: give --key-file".into(),
            ));
        }
        let specs = self.key_files.iter().map(SlotSpec::KeyFile).collect();
        Ok((DataKey::generate(), specs))
    }

    /// The slot kinds a new archive gets, for the manifest.
    pub fn slot_kinds(&self) -> Vec<String> {
        self.key_files
            .iter()
            .map(|_| "key-file".to_string())
            .collect()
    }

    /// Opens an archive's header with the first credential that fits.
    pub fn unlock(&self, header: &Header) -> Result<OpenArchive> {
        let mut last = None;
        for k in &self.key_files {
            match header.unlock(&Unlock::KeyFile(k)) {
                Ok(open) => return Ok(open),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::WrongKey(format!(
                "no key given to open the archive; it has key slots: {}",
                header.slot_kinds()
            ))
        }))
    }
}
