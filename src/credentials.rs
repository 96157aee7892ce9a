//! The keys one run holds, and how they become key slots of a new archive or
//! open an existing one.
//!
//! A backup makes one data key per archive and wraps it once per credential:
//! with `--kms-key-id` the data key itself comes from AWS KMS
//! (GenerateDataKey) and its KMS-encrypted copy is a KMS slot; every key file
//! adds a key-file slot around the same data key (a break-glass key for when
//! KMS is unavailable). Any one slot opens the archive. Opening tries the key
//! files first, then the archive's KMS slots through KMS Decrypt (credentials
//! from the AWS SDK's default chain, created only when needed). Nothing here
//! ever formats key material.

use std::path::Path;

use tokio::sync::OnceCell;

use crate::archive::format::{Header, ARCHIVE_ID_LEN};
use crate::archive::reader::OpenArchive;
use crate::archive::slots::{KeySlot, SlotSpec, Unlock};
use crate::error::{Error, Result};
use crate::keys::{DataKey, KeyFileKey};
use crate::kms::Kms;

#[derive(Default)]
pub struct Credentials {
    key_files: Vec<KeyFileKey>,
    /// The KMS key new archives get their data key from.
    kms_key_id: Option<String>,
    /// The KMS client, given or made from the default chain on first use.
    kms: OnceCell<Kms>,
}

impl Credentials {
    pub fn from_key_file(path: &Path) -> Result<Credentials> {
        Ok(Credentials {
            key_files: vec![KeyFileKey::load(path)?],
            ..Default::default()
        })
    }

    /// Key files and a KMS key, as the command line gives them (either may
    /// be absent).
    pub fn from_args(key_file: Option<&Path>, kms_key_id: Option<&str>) -> Result<Credentials> {
        let mut c = match key_file {
            Some(p) => Credentials::from_key_file(p)?,
            None => Credentials::default(),
        };
        if kms_key_id.is_some_and(|k| k.trim().is_empty()) {
            // An unset variable in a script (`--kms-key-id "$KEY"`): KMS
            // would only say "invalid keyId".
            return Err(Error::Usage(
                "--kms-key-id is empty: give a key id, alias/NAME or key ARN".into(),
            ));
        }
        c.kms_key_id = kms_key_id.map(str::to_string);
        Ok(c)
    }

    pub fn add_key_file(&mut self, key: KeyFileKey) {
        self.key_files.push(key);
    }

    /// New archives get their data key from this KMS key (id, alias/NAME or ARN).
    pub fn with_kms_key(mut self, key_id: impl Into<String>) -> Credentials {
        self.kms_key_id = Some(key_id.into());
        self
    }

    /// Use this KMS client instead of one from the default chain.
    pub fn with_kms_client(self, kms: Kms) -> Credentials {
        let _ = self.kms.set(kms);
        self
    }

    pub fn kms_key_id(&self) -> Option<&str> {
        self.kms_key_id.as_deref()
    }

    async fn kms(&self) -> Result<&Kms> {
        self.kms.get_or_try_init(Kms::from_env).await
    }

    /// A new archive's data key and the slots that wrap it, for the archive
    /// `archive_id` (the KMS encryption context names it). KMS errors
    /// (access denied, disabled key, unknown key) surface here, before any
    /// byte is written.
    pub async fn new_archive_keys(
        &self,
        archive_id: &[u8; ARCHIVE_ID_LEN],
    ) -> Result<(DataKey, Vec<SlotSpec<'_>>)> {
        let mut specs: Vec<SlotSpec<'_>> = Vec::new();
        let data_key = match &self.kms_key_id {
            Some(id) => {
                let k = self.kms().await?.generate_data_key(id, archive_id).await?;
                specs.push(SlotSpec::Kms {
                    key_id: k.key_id,
                    ciphertext: k.ciphertext,
                });
                k.data_key
            }
            None if self.key_files.is_empty() => {
                return Err(Error::Usage(
                    "no key to encrypt the backup with: give --key-file or --kms-key-id".into(),
                ))
            }
            None => DataKey::generate(),
        };
        specs.extend(self.key_files.iter().map(SlotSpec::KeyFile));
        Ok((data_key, specs))
    }

    /// The slot kinds a new archive gets, for the manifest.
    pub fn slot_kinds(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .kms_key_id
            .iter()
            .map(|_| "aws-kms".to_string())
            .collect();
        v.extend(self.key_files.iter().map(|_| "key-file".to_string()));
        v
    }

    /// Opens an archive's header with the first credential that fits: the
    /// key files, then KMS for the archive's KMS slots. When none does, the
    /// error is one line naming what was tried and the slots the archive has.
    ///
    /// "No credential fits" ([`Error::WrongKey`]) is said only when every
    /// KMS slot was refused by KMS itself. When KMS could not be asked (no
    /// answer, a failure on its side, no AWS credentials or region), or
    /// refused the key for its state (disabled, pending deletion), nothing
    /// is known about whether it is the right one: the error is then that
    /// ([`Error::KmsUnavailable`], [`Error::AwsCredentials`],
    /// [`Error::KmsKeyState`]), so that nobody goes looking for another key
    /// when the network or the key's state is what failed.
    pub async fn unlock(&self, header: &Header) -> Result<OpenArchive> {
        let mut why = Vec::new();
        let mut could_not_ask: Option<Error> = None;
        for k in &self.key_files {
            match header.unlock(&Unlock::KeyFile(k)) {
                Ok(open) => return Ok(open),
                // Tampering is not a wrong key: say so at once.
                Err(Error::Auth) => return Err(Error::Auth),
                Err(_) => why.push(format!(
                    "the key file with key id {} fits no slot",
                    hex::encode(k.key_id())
                )),
            }
        }
        for slot in &header.slots {
            let KeySlot::Kms { key_id, ciphertext } = slot else {
                continue;
            };
            let kms = match self.kms().await {
                Ok(k) => k,
                Err(e) => {
                    could_not_ask = Some(e);
                    break;
                }
            };
            match kms.decrypt(key_id, ciphertext, &header.archive_id).await {
                // KMS answered: a data key that then fails the header is
                // the archive's problem (tampering), reported as such.
                Ok(dk) => return header.unlock(&Unlock::DataKey(dk)),
                Err(
                    e @ (Error::KmsUnavailable(_)
                    | Error::AwsCredentials(_)
                    | Error::KmsKeyState(_)),
                ) => {
                    could_not_ask.get_or_insert(e);
                }
                Err(e) => why.push(e.to_string()),
            }
        }
        let has_key_file_slot = header
            .slots
            .iter()
            .any(|s| matches!(s, KeySlot::KeyFile { .. }));
        let has_kms_slot = header
            .slots
            .iter()
            .any(|s| matches!(s, KeySlot::Kms { .. }));
        if let Some(e) = could_not_ask {
            // What was tried besides, then what to do: the cause's own
            // advice (how to give credentials) or retrying, and the key
            // file where the archive has a slot for one.
            let mut line = format!("cannot open this archive: {e}");
            for w in &why {
                line.push_str(&format!("; {w}"));
            }
            line.push_str(&format!("; its key slots: {}", header.slot_kinds()));
            let mut ways = Vec::new();
            if matches!(e, Error::KmsUnavailable(_)) {
                ways.push("retry when KMS can be reached");
            }
            if has_key_file_slot {
                ways.push("give --key-file with a key file it was made with");
            }
            if !ways.is_empty() {
                line.push_str(&format!("; {}", ways.join(", or ")));
            }
            return Err(match e {
                Error::AwsCredentials(_) => Error::AwsCredentials(line),
                Error::Usage(_) => Error::Usage(line),
                Error::KmsKeyState(_) => Error::KmsKeyState(line),
                _ => Error::KmsUnavailable(line),
            });
        }
        // Name only the ways this archive can be opened.
        let mut ways = Vec::new();
        if has_key_file_slot {
            ways.push("give --key-file with a key file it was made with");
        }
        if has_kms_slot {
            ways.push("use AWS credentials allowed to use its KMS key");
        }
        if ways.is_empty() {
            ways.push("this version opens only key-file and AWS KMS slots");
        }
        if why.is_empty() {
            // Nothing was tried: a missing argument, not a wrong key (and
            // exit 2, as for a backup given no key).
            return Err(Error::Usage(format!(
                "no key file was given to open this archive (its key slots: {}); {}",
                header.slot_kinds(),
                ways.join(", or ")
            )));
        }
        Err(Error::WrongKey(format!(
            "no key opens this archive: {}; its key slots: {}; {}{ASK_VERIFY}",
            why.join("; "),
            header.slot_kinds(),
            ways.join(", or ")
        )))
    }
}

/// How a wrong-key error ends: only a read of the whole archive tells a
/// wrong key from a damaged header, which `verify` does (and then says
/// which, in place of this).
pub(crate) const ASK_VERIFY: &str =
    " (sure of the key? `pgsnap verify` tells whether the archive was damaged)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_kms_key_id_is_a_usage_error() {
        for empty in ["", "  "] {
            assert!(matches!(
                Credentials::from_args(None, Some(empty)),
                Err(Error::Usage(_))
            ));
        }
        assert!(Credentials::from_args(None, Some("alias/pgsnap")).is_ok());
    }
}
