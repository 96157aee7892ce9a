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
use crate::aws::{
    access_denied_text, credentials_error, is_key_state_refusal, is_refusal, sdk_error_text,
};
use crate::error::{Error, Result};
use crate::keys::DataKey;

/// How long a KMS request waits for its answer to start, each attempt, by
/// default: its requests and answers are a few hundred bytes.
pub const KMS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// A KMS client (credentials and region from the SDK's default chain, or
/// given).
#[derive(Clone, Debug)]
pub struct Kms {
    client: Client,
    /// Where requests go, for messages when KMS cannot be reached: the
    /// endpoint URL when one is configured, else the region.
    endpoint: String,
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
        let endpoint = match client.config().region() {
            Some(r) => format!("KMS in {r}"),
            None => "KMS".to_string(),
        };
        Kms { client, endpoint }
    }

    /// Names the endpoint in messages (`KMS at URL`); [`Kms::new`] can only
    /// name the region, since the client does not say its endpoint URL.
    pub fn with_endpoint_description(mut self, endpoint: impl Into<String>) -> Kms {
        self.endpoint = endpoint.into();
        self
    }

    /// A client from the default chain (environment, profile, roles;
    /// `AWS_ENDPOINT_URL` for test endpoints), with time limits
    /// (`PGSNAP_AWS_TIMEOUT`, default [`KMS_WAIT`]).
    pub async fn from_env() -> Result<Kms> {
        let conf = crate::aws::sdk_config(KMS_WAIT).await?;
        if conf.region().is_none() {
            return Err(Error::AwsCredentials(
                "no AWS region for KMS: set AWS_REGION or a region in the AWS profile".into(),
            ));
        }
        // The client resolves the same way: the KMS-specific variable
        // first, then the general one.
        let url = std::env::var("AWS_ENDPOINT_URL_KMS")
            .ok()
            .filter(|u| !u.is_empty())
            .or_else(|| conf.endpoint_url().map(str::to_string));
        let kms = Kms::new(Client::new(&conf));
        Ok(match url {
            Some(u) => kms.with_endpoint_description(format!("KMS at {u}")),
            None => kms,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The client for requests about `key_id`: a key named by its ARN lives
    /// in the ARN's region, which is not the configured one when a backup
    /// made in one region is restored in another (disaster recovery); KMS
    /// of the configured region would not know the key.
    fn client_for(&self, key_id: &str) -> Client {
        let here = self
            .client
            .config()
            .region()
            .map(|r| r.as_ref().to_string());
        match arn_region(key_id) {
            Some(there) if here.as_deref() != Some(there) => Client::from_conf(
                self.client
                    .config()
                    .to_builder()
                    .region(aws_sdk_kms::config::Region::new(there.to_string()))
                    .build(),
            ),
            _ => self.client.clone(),
        }
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
            .client_for(key_id)
            .generate_data_key()
            .key_id(key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(ck, cv)
            .send()
            .await
            .map_err(|e| {
                if let Some(c) = credentials_error("KMS", &e) {
                    return c;
                }
                if !is_refusal(&e) {
                    return Error::KmsUnavailable(format!(
                        "KMS GenerateDataKey with key `{key_id}` failed: {} could not be reached \
                         or failed: {} (check the endpoint and the network, and retry)",
                        self.endpoint,
                        sdk_error_text(&e)
                    ));
                }
                if let Some(denied) = access_denied_text(&e) {
                    return Error::AwsCredentials(format!(
                        "KMS GenerateDataKey with key `{key_id}` was refused ({denied}): these \
                         AWS credentials may not use this key (they need kms:GenerateDataKey on \
                         it, and the key's policy must allow them)"
                    ));
                }
                if is_key_state_refusal(&e) {
                    return Error::KmsKeyState(format!(
                        "KMS GenerateDataKey with key `{key_id}` was refused for the key's state \
                         ({}): enable it (aws kms enable-key) or cancel its deletion (aws kms \
                         cancel-key-deletion), or name another key, then retry",
                        sdk_error_text(&e)
                    ));
                }
                Error::Kms(format!(
                    "KMS GenerateDataKey with key `{key_id}` failed: {} (check the key id and \
                     that these AWS credentials may use it)",
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

    /// The data key in a KMS slot of archive `archive_id`. A refusal by
    /// KMS is [`Error::Kms`]; KMS not answering (or failing on its side) is
    /// [`Error::KmsUnavailable`], and missing credentials are
    /// [`Error::AwsCredentials`]: only the first says anything about the key.
    pub async fn decrypt(
        &self,
        key_id: &str,
        ciphertext: &[u8],
        archive_id: &[u8; ARCHIVE_ID_LEN],
    ) -> Result<DataKey> {
        let (ck, cv) = kms_encryption_context(archive_id);
        let r = self
            .client_for(key_id)
            .decrypt()
            .key_id(key_id)
            .ciphertext_blob(Blob::new(ciphertext))
            .encryption_context(ck, cv)
            .send()
            .await
            .map_err(|e| {
                if let Some(c) = credentials_error("KMS", &e) {
                    return c;
                }
                if !is_refusal(&e) {
                    return Error::KmsUnavailable(format!(
                        "KMS Decrypt with key `{key_id}`: {} could not be reached or failed: {}",
                        self.endpoint,
                        sdk_error_text(&e)
                    ));
                }
                // Not allowed to ask says nothing of whether it is the
                // archive's key (QA: reported as a wrong key).
                if let Some(denied) = access_denied_text(&e) {
                    return Error::AwsCredentials(format!(
                        "KMS Decrypt with key `{key_id}` was refused ({denied}): these AWS \
                         credentials may not use this key (they need kms:Decrypt on it, and the \
                         key's policy must allow them), which says nothing of whether it is the \
                         archive's key"
                    ));
                }
                if is_key_state_refusal(&e) {
                    return Error::KmsKeyState(format!(
                        "KMS Decrypt with key `{key_id}` was refused for the key's state ({}), \
                         which says nothing of whether it is the right key: enable it (aws kms \
                         enable-key) or cancel its deletion (aws kms cancel-key-deletion), then \
                         retry",
                        sdk_error_text(&e)
                    ));
                }
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

/// The region of a key ARN (`arn:PARTITION:kms:REGION:ACCOUNT:key/ID`, or
/// `alias/NAME`); `None` for key ids and alias names.
fn arn_region(key_id: &str) -> Option<&str> {
    let mut parts = key_id.splitn(6, ':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("kms"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::arn_region;

    #[test]
    fn key_arns_name_their_region() {
        assert_eq!(
            arn_region("arn:aws:kms:eu-west-1:123456789012:key/1234abcd"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws-cn:kms:cn-north-1:123456789012:alias/x"),
            Some("cn-north-1")
        );
        assert_eq!(arn_region("alias/pgsnap"), None);
        assert_eq!(arn_region("1234abcd-12ab-34cd-56ef-1234567890ab"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
    }
}
