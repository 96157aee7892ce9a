//! AWS KMS for key slots: a new archive's data key comes from
//! GenerateDataKey (AES_256), and the KMS-encrypted copy goes into the
//! archive's KMS slot; opening calls Decrypt. Both bind the key to the
//! archive with the encryption context `{"pgsnap:archive_id": hex(id)}`, so
//! a slot copied into another archive does not decrypt (and CloudTrail shows
//! which archive was opened). Plaintext keys never leave this module except
//! as a [`DataKey`].

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;

use crate::archive::format::ARCHIVE_ID_LEN;
use crate::archive::slots::{data_key_from_kms_plaintext, kms_encryption_context};
use crate::error::{Error, Result};
use crate::keys::DataKey;
use crate::repo::s3::sdk_error_text;

/// A KMS client (credentials and region from the SDK's default chain, or
/// given).
#[derive(Clone, Debug)]
pub struct Kms {
    client: Client,
}

/// What GenerateDataKey returned for a new archive.
pub struct NewDataKey {
    pub data_key: DataKey,
    /// The key's ARN as KMS reports it (stored in the slot: an alias may be
    /// repointed later, the ARN stays).
    pub key_id: String,
    pub ciphertext: Vec<u8>,
}

impl Kms {
    pub fn new(client: Client) -> Kms {
        Kms { client }
    }

    /// A client from the default chain (environment, profile, roles;
    /// `AWS_ENDPOINT_URL` for test endpoints).
    pub async fn from_env() -> Result<Kms> {
        let conf = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        if conf.region().is_none() {
            return Err(Error::Usage(
                "no AWS region for KMS: set AWS_REGION or a region in the AWS profile".into(),
            ));
        }
        Ok(Kms::new(Client::new(&conf)))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// A fresh data key for archive `archive_id` under KMS key `key_id`
    /// (key id, `alias/NAME` or ARN).
    pub async fn generate_data_key(
        &self,
        key_id: &str,
        archive_id: &[u8; ARCHIVE_ID_LEN],
    ) -> Result<NewDataKey> {
        let (ck, cv) = kms_encryption_context(archive_id);
        let r = self
            .client
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(ck, cv)
            .send()
            .await
            .map_err(|e| {
                Error::Kms(format!(
                    "KMS GenerateDataKey with key `{key_id}` failed: {} (check the key id, that \
                     the key is enabled, and that these AWS credentials may use it)",
                    sdk_error_text(&e)
                ))
            })?;
        let plaintext = r
            .plaintext()
            .ok_or_else(|| Error::Kms("KMS GenerateDataKey returned no key".into()))?;
        let data_key = data_key_from_kms_plaintext(plaintext.as_ref())?;
        let ciphertext = r
            .ciphertext_blob()
            .ok_or_else(|| Error::Kms("KMS GenerateDataKey returned no ciphertext".into()))?
            .as_ref()
            .to_vec();
        Ok(NewDataKey {
            data_key,
            key_id: r.key_id().unwrap_or(key_id).to_string(),
            ciphertext,
        })
    }

    /// The data key in a KMS slot of archive `archive_id`.
    pub async fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        archive_id: &[u8; ARCHIVE_ID_LEN],
    ) -> Result<DataKey> {
        let (ck, cv) = kms_encryption_context(archive_id);
        let r = self
            .client
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context(ck, cv)
            .send()
            .await
            .map_err(|e| {
                Error::Kms(format!(
                    "KMS Decrypt with key `{key_id}` failed: {}",
                    sdk_error_text(&e)
                ))
            })?;
        let plaintext = r
            .plaintext()
            .ok_or_else(|| Error::Kms("KMS Decrypt returned no key".into()))?;
        data_key_from_kms_plaintext(plaintext.as_ref())
    }
}
