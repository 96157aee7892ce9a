//! A repository in an S3 bucket (or an S3-compatible store: MinIO, moto).
//!
//! `s3://BUCKET/PREFIX`: every key is relative to `PREFIX/`, and backups sit
//! directly under it (`PREFIX/YYYY-MM-DD/<id>/`), so one prefix per
//! environment gives `{environment}/{date}/` paths.
//!
//! Archives stream into a multipart upload while the dump runs; no local
//! temporary file. Parts start at 8 MiB and double every 1,000 parts (S3
//! allows 10,000), which covers archives of about 8 TiB with the last parts
//! at 4 GiB. Up to 4 parts upload concurrently while the next one fills;
//! fewer as parts grow, so that parts in flight stay within 64 MiB (at least
//! one): memory is about (parts in flight + 1) x part size, 40 MiB for the
//! first 8 GiB of an archive. Every part carries its SHA-256 (S3 checks it on
//! arrival). An archive smaller than one part goes up as one PutObject.
//!
//! The archive's SHA-256 is known only at the end, and S3 fixes user
//! metadata when an upload starts: after CompleteMultipartUpload the object
//! is copied onto itself with `MetadataDirective=REPLACE` and the final
//! metadata (a multipart UploadPartCopy above 5 GiB, CopyObject's limit), the
//! pre-copy version is deleted where the bucket is versioned, and the object
//! is read back with HeadObject: its size and its `sha256` metadata must
//! equal what went through the writer. Any failure before that point aborts
//! the multipart upload; any failure after it deletes the object, so a
//! failed run never leaves a complete-looking archive. A run stopped from
//! outside its writer (`--max-duration`, a failure elsewhere) aborts the
//! archive's upload before it exits, waiting for one still being created.
//! Uploads of killed runs are swept at the start of the next backup once a
//! day old.
//!
//! Credentials, region and endpoint come from the AWS SDK's default chain
//! (environment, shared config/profile, ECS/EC2 roles); with an endpoint URL
//! set (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`) requests use path-style
//! addressing, as MinIO and moto expect. Tuning by environment:
//! `PGSNAP_S3_PART_SIZE` (first part size in bytes, at least 5 MiB) and
//! `PGSNAP_S3_UPLOAD_CONCURRENCY` (parts in flight, default 4).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io::{self, Write};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, GlacierJobParameters,
    MetadataDirective, RestoreRequest, ServerSideEncryption, StorageClass, Tier,
};
use aws_sdk_s3::Client;
use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::task::JoinSet;

use super::storage::{is_archive_class, ObjectMeta, ObjectWriter, Storage, UploadOptions, Version};
use crate::aws::{credentials_error, sdk_error_text};
use crate::error::{Error, Result};

/// How long an S3 request waits for its answer to start, each attempt, by
/// default: an 8 MiB part is sent within it at 100 KiB/s.
pub const S3_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

const MIB: usize = 1024 * 1024;
/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: usize = 5 * MIB;
const MAX_PART_SIZE: usize = 5 * 1024 * MIB;
const MAX_PARTS: i32 = 10_000;
/// CopyObject's limit; larger objects are copied part by part.
const COPY_OBJECT_LIMIT: u64 = 5 * 1024 * 1024 * 1024;

/// Part sizes and concurrency of uploads. The defaults suit production; tests
/// use small parts to exercise multipart paths cheaply.
#[derive(Clone)]
pub struct S3Tuning {
    /// Size of the first parts (at least [`MIN_PART_SIZE`]).
    pub part_size: usize,
    /// The part size doubles after this many parts.
    pub grow_every: i32,
    /// Parts uploading at once, at most.
    pub max_in_flight: usize,
    /// ... and at most this many bytes of parts in flight (but always one).
    pub in_flight_bytes: usize,
    /// Objects larger than this get their metadata by multipart copy.
    pub copy_part_threshold: u64,
    /// Size of the ranges of a multipart copy (grown to fit 10,000 parts).
    pub copy_part_size: u64,
    /// Test hook: a delay before uploading part N (to make parts complete
    /// out of order).
    #[doc(hidden)]
    pub part_delay: Option<Arc<dyn Fn(i32) -> Duration + Send + Sync>>,
    /// Test hook: runs on the writer's thread just before
    /// CreateMultipartUpload (to abandon an upload while it is being
    /// created).
    #[doc(hidden)]
    pub before_create: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Default for S3Tuning {
    fn default() -> Self {
        S3Tuning {
            part_size: 8 * MIB,
            grow_every: 1000,
            max_in_flight: 4,
            in_flight_bytes: 64 * MIB,
            copy_part_threshold: COPY_OBJECT_LIMIT,
            copy_part_size: 1024 * MIB as u64,
            part_delay: None,
            before_create: None,
        }
    }
}

impl std::fmt::Debug for S3Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Tuning")
            .field("part_size", &self.part_size)
            .field("grow_every", &self.grow_every)
            .field("max_in_flight", &self.max_in_flight)
            .field("in_flight_bytes", &self.in_flight_bytes)
            .finish_non_exhaustive()
    }
}

impl S3Tuning {
    /// Defaults, with `PGSNAP_S3_PART_SIZE` and `PGSNAP_S3_UPLOAD_CONCURRENCY`
    /// applied.
    pub fn from_env() -> Result<S3Tuning> {
        let mut t = S3Tuning::default();
        if let Ok(v) = std::env::var("PGSNAP_S3_PART_SIZE") {
            t.part_size = v
                .trim()
                .parse()
                .ok()
                .filter(|&n| (MIN_PART_SIZE..=MAX_PART_SIZE).contains(&n))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "PGSNAP_S3_PART_SIZE must be a byte count between {MIN_PART_SIZE} and \
                         {MAX_PART_SIZE}, not `{v}`"
                    ))
                })?;
        }
        if let Ok(v) = std::env::var("PGSNAP_S3_UPLOAD_CONCURRENCY") {
            t.max_in_flight = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "PGSNAP_S3_UPLOAD_CONCURRENCY must be 1..64, not `{v}`"
                    ))
                })?;
            t.in_flight_bytes = t.in_flight_bytes.max(t.max_in_flight * t.part_size);
        }
        Ok(t)
    }

    /// The size of part `n` (1-based).
    pub fn part_size_of(&self, n: i32) -> usize {
        let doublings = ((n.max(1) - 1) / self.grow_every.max(1)).min(20) as u32;
        (self.part_size << doublings).min(MAX_PART_SIZE)
    }

    /// How many parts of `part_size` may be in flight.
    fn in_flight_limit(&self, part_size: usize) -> usize {
        (self.in_flight_bytes / part_size.max(1)).clamp(1, self.max_in_flight.max(1))
    }
}

fn code_of<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// The region S3 says a bucket is in (`x-amz-bucket-region`) and the HTTP
/// status, from the response `e` carries, if any.
fn bucket_region<E, R: 'static>(e: &SdkError<E, R>) -> Option<(String, u16)> {
    let raw: &dyn std::any::Any = e.raw_response()?;
    let http = raw.downcast_ref::<aws_sdk_s3::config::http::HttpResponse>()?;
    let region = http.headers().get("x-amz-bucket-region")?;
    (!region.is_empty()).then(|| (region.to_string(), http.status().as_u16()))
}

fn to_chrono(t: &aws_sdk_s3::primitives::DateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos())
}

/// S3 user metadata travels in HTTP headers: anything but printable ASCII
/// (and `%`) is percent-encoded.
pub fn encode_metadata_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a key for `x-amz-copy-source` (keeps `/`).
fn encode_copy_source(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn b64_sha256(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

/// Runs `fut` to completion from blocking code: directly on a thread outside
/// the runtime (the archive writer thread), on a scoped helper thread when
/// called inside the runtime's context (a `spawn_blocking` closure).
fn block<F: Future + Send>(rt: &Handle, fut: F) -> F::Output
where
    F::Output: Send,
{
    if Handle::try_current().is_err() {
        return rt.block_on(fut);
    }
    std::thread::scope(|sc| {
        sc.spawn(|| rt.block_on(fut))
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// What a writer is doing in S3 that could leave something behind.
enum Upload {
    /// Its CreateMultipartUpload is in flight.
    Creating,
    /// A multipart upload is open: whoever takes this entry aborts it.
    Open(String),
    /// Completing or cleaning up (the writer sees it through).
    Busy,
}

/// Writer -> (full key, what it is doing). `abort_unfinished` aborts the
/// open uploads of a key and waits for the rest, so that nothing is left
/// once it returns, even if the process exits then.
type Registry = Arc<Mutex<HashMap<u64, (String, Upload)>>>;

/// How long `abort_unfinished` waits for writers creating or cleaning up an
/// upload of the key.
const PENDING_UPLOAD_WAIT: Duration = Duration::from_secs(30);

struct Shared {
    client: Client,
    bucket: String,
    prefix: String,
    upload: UploadOptions,
    tuning: S3Tuning,
    /// Writers' uploads not yet completed and checked, or cleaned up.
    uploads: Registry,
    /// Keys whose uploads were abandoned (`abort_unfinished`): writers for
    /// them fail instead of uploading.
    abandoned: Mutex<std::collections::HashSet<String>>,
    next_writer: AtomicU64,
}

impl Shared {
    /// DeleteObject of a full key.
    async fn delete_full(&self, full: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(full)
            .send()
            .await
            .map_err(|e| self.err("DeleteObject", full, e))?;
        Ok(())
    }

    fn lock_uploads(&self) -> std::sync::MutexGuard<'_, HashMap<u64, (String, Upload)>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// GetObject of a whole object, or of `range` (an HTTP Range value).
    async fn get_object(
        &self,
        full: &str,
        range: Option<String>,
        version: Option<&Version>,
    ) -> Result<Bytes> {
        let r = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(full)
            .set_range(range)
            .set_if_match(version.map(|v| v.0.clone()))
            .send()
            .await
            .map_err(|e| match code_of(&e) {
                // Written again since this command first read it: what it
                // read before and what it would read now are different
                // archives.
                Some(code @ "PreconditionFailed") => Error::Integrity(format!(
                    "{} changed while it was being read (S3 GetObject: {code}): it was \
                     written again; run the command again",
                    self.url(full)
                )),
                _ => self.err("GetObject", full, e),
            })?;
        Ok(r.body
            .collect()
            .await
            .map_err(|e| Error::Storage(format!("S3 GetObject {}: {e}", self.url(full))))?
            .into_bytes())
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn url(&self, full_key: &str) -> String {
        format!("s3://{}/{full_key}", self.bucket)
    }

    fn err<E>(
        &self,
        op: &str,
        full_key: &str,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if let Some(c) = credentials_error(&format!("s3://{}", self.bucket), &e) {
            return c;
        }
        // A bucket in another region than the client's: S3 answers with a
        // redirect or a signature error, and names the bucket's region in
        // a header. The fix is the region, whatever the operation.
        let here = self.client.config().region().map(|r| r.to_string());
        if let Some((there, status)) = bucket_region(&e).filter(|(r, _)| Some(r) != here.as_ref()) {
            return Error::Repo(format!(
                "S3 bucket `{}` is in region {there}, not {} (S3 {op} {}: {}): set \
                 AWS_REGION={there}",
                self.bucket,
                here.as_deref().unwrap_or("the one configured"),
                self.url(full_key),
                code_of(&e).map_or_else(|| format!("HTTP {status}"), str::to_string)
            ));
        }
        // Whatever the operation, the fix is the bucket's, not the object's.
        if code_of(&e) == Some("NoSuchBucket") {
            return Error::Repo(format!(
                "S3 bucket `{}` does not exist (S3 {op} {}: NoSuchBucket): check the bucket name \
                 in --repo and the region (AWS_REGION), or create the bucket",
                self.bucket,
                self.url(full_key)
            ));
        }
        Error::Storage(format!(
            "S3 {op} {}: {}",
            self.url(full_key),
            sdk_error_text(&e)
        ))
    }

    fn sse(&self) -> (Option<ServerSideEncryption>, Option<String>) {
        match &self.upload.sse_kms_key_id {
            Some(k) => (Some(ServerSideEncryption::AwsKms), Some(k.clone())),
            None => (None, None),
        }
    }

    fn storage_class(&self) -> Option<StorageClass> {
        self.upload.storage_class.as_deref().map(StorageClass::from)
    }

    /// The class a multipart upload starts in: the final one, except for
    /// the archive classes (GLACIER, DEEP_ARCHIVE), which S3 refuses as the
    /// source of the copy that sets the final metadata; such an upload
    /// starts in STANDARD, and the copy moves it to its class.
    fn upload_class(&self) -> Option<StorageClass> {
        match self.upload.storage_class.as_deref() {
            Some(class) if is_archive_class(class) => None,
            _ => self.storage_class(),
        }
    }

    fn tagging(&self) -> Option<String> {
        if self.upload.tags.is_empty() {
            return None;
        }
        Some(
            self.upload
                .tags
                .iter()
                .map(|(k, v)| format!("{}={}", encode_copy_source(k), encode_copy_source(v)))
                .collect::<Vec<_>>()
                .join("&"),
        )
    }

    async fn head_full(&self, full_key: &str, rel: &str) -> Result<Option<ObjectMeta>> {
        let r = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full_key)
            .send()
            .await;
        match r {
            Ok(h) => Ok(Some(ObjectMeta {
                key: rel.to_string(),
                size: h.content_length().unwrap_or(0).max(0) as u64,
                modified: h.last_modified().and_then(to_chrono),
                metadata: h
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                    .unwrap_or_default(),
                storage_class: Some(
                    h.storage_class()
                        .map(|c| c.as_str().to_string())
                        .unwrap_or_else(|| "STANDARD".into()),
                ),
                restore: h.restore().map(str::to_string),
                version: h.e_tag().map(|t| Version(t.to_string())),
            })),
            Err(SdkError::ServiceError(se)) if se.err().is_not_found() => Ok(None),
            Err(e) => Err(self.err("HeadObject", full_key, e)),
        }
    }

    async fn abort_upload(&self, full_key: &str, upload_id: &str) -> Result<()> {
        let r = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full_key)
            .upload_id(upload_id)
            .send()
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if code_of(&e) == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(self.err("AbortMultipartUpload", full_key, e)),
        }
    }
}

/// A repository in S3. See the module documentation.
pub struct S3Storage {
    s: Arc<Shared>,
}

impl S3Storage {
    /// A repository at `s3://bucket/prefix` through `client`.
    pub fn new(client: Client, bucket: &str, prefix: &str) -> S3Storage {
        let p = prefix.trim_matches('/');
        S3Storage {
            s: Arc::new(Shared {
                client,
                bucket: bucket.to_string(),
                prefix: if p.is_empty() {
                    String::new()
                } else {
                    format!("{p}/")
                },
                upload: UploadOptions::default(),
                tuning: S3Tuning::default(),
                uploads: Arc::default(),
                abandoned: Mutex::default(),
                next_writer: AtomicU64::new(1),
            }),
        }
    }

    /// A client from the SDK's default chain (environment, profile, roles),
    /// with time limits (`PGSNAP_AWS_TIMEOUT`, default [`S3_WAIT`]);
    /// path-style addressing when an endpoint URL is configured.
    pub async fn client_from_env() -> Result<Client> {
        let conf = crate::aws::sdk_config(S3_WAIT).await?;
        if conf.region().is_none() {
            return Err(Error::AwsCredentials(
                "no AWS region for the S3 repository: set AWS_REGION or a region in the AWS \
                 profile"
                    .into(),
            ));
        }
        let path_style =
            conf.endpoint_url().is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some();
        let s3 = aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(path_style)
            .build();
        Ok(Client::from_conf(s3))
    }

    /// `s3://BUCKET[/PREFIX]` with a client from the default chain and the
    /// tuning from the environment.
    pub async fn from_url(spec: &str) -> Result<S3Storage> {
        let rest = spec
            .strip_prefix("s3://")
            .ok_or_else(|| Error::Usage(format!("`{spec}` is not an s3:// URL")))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Usage(format!(
                "`{spec}` names no bucket: use s3://BUCKET/PREFIX"
            )));
        }
        if prefix.split('/').any(|p| p == "." || p == "..") {
            return Err(Error::Usage(format!(
                "`{spec}`: the prefix may not contain `.` or `..` segments"
            )));
        }
        let client = S3Storage::client_from_env().await?;
        Ok(S3Storage::new(client, bucket, prefix).with_tuning(S3Tuning::from_env()?))
    }

    fn shared_mut(&mut self) -> &mut Shared {
        Arc::get_mut(&mut self.s).expect("options are set before the storage is shared")
    }

    /// SSE-KMS key, storage class and tags of archive objects.
    pub fn with_upload_options(mut self, upload: UploadOptions) -> S3Storage {
        self.shared_mut().upload = upload;
        self
    }

    pub fn with_tuning(mut self, tuning: S3Tuning) -> S3Storage {
        self.shared_mut().tuning = tuning;
        self
    }

    pub fn client(&self) -> &Client {
        &self.s.client
    }

    pub fn bucket(&self) -> &str {
        &self.s.bucket
    }

    /// The key prefix, empty or ending in `/`.
    pub fn prefix(&self) -> &str {
        &self.s.prefix
    }

    /// Unfinished multipart uploads under the prefix: (full key, upload id,
    /// initiated).
    pub async fn multipart_uploads(&self) -> Result<Vec<(String, String, Option<DateTime<Utc>>)>> {
        let s = &self.s;
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let r = s
                .client
                .list_multipart_uploads()
                .bucket(&s.bucket)
                .prefix(&s.prefix)
                .set_key_marker(key_marker.clone())
                .set_upload_id_marker(id_marker.clone())
                .send()
                .await
                .map_err(|e| s.err("ListMultipartUploads", &s.prefix, e))?;
            for u in r.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    out.push((
                        k.to_string(),
                        id.to_string(),
                        u.initiated().and_then(to_chrono),
                    ));
                }
            }
            if r.is_truncated() != Some(true) {
                break;
            }
            key_marker = r.next_key_marker().map(str::to_string);
            id_marker = r.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() && id_marker.is_none() {
                break;
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Storage for S3Storage {
    fn location(&self) -> String {
        format!(
            "s3://{}/{}",
            self.s.bucket,
            self.s.prefix.trim_end_matches('/')
        )
        .trim_end_matches('/')
        .to_string()
    }

    fn backups_base(&self) -> &'static str {
        ""
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let s = &self.s;
        let full = s.full(key);
        let (sse, kms) = s.sse();
        s.client
            .put_object()
            .bucket(&s.bucket)
            .key(&full)
            .content_length(data.len() as i64)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(b64_sha256(&data))
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| s.err("PutObject", &full, e))?;
        Ok(())
    }

    async fn put_new(&self, key: &str, data: Bytes) -> Result<bool> {
        let s = &self.s;
        let full = s.full(key);
        let (sse, kms) = s.sse();
        let res = s
            .client
            .put_object()
            .bucket(&s.bucket)
            .key(&full)
            .if_none_match("*")
            .content_length(data.len() as i64)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .body(ByteStream::from(data))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            // Another writer's object is there (or its write is under way).
            Err(e)
                if matches!(
                    code_of(&e),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(s.err("PutObject", &full, e)),
        }
    }

    fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let rt = Handle::try_current()
            .map_err(|_| Error::InvalidInput("S3 uploads need a running tokio runtime".into()))?;
        if rt.runtime_flavor() == RuntimeFlavor::CurrentThread {
            return Err(Error::InvalidInput(
                "S3 uploads need tokio's multi-thread runtime".into(),
            ));
        }
        let s = self.s.clone();
        let id = s.next_writer.fetch_add(1, Ordering::Relaxed);
        Ok(Box::new(S3Writer {
            full_key: s.full(key),
            key: key.to_string(),
            s,
            rt,
            id,
            buf: Vec::new(),
            written: 0,
            hasher: Sha256::new(),
            upload_id: None,
            next_part: 1,
            tasks: JoinSet::new(),
            done: Vec::new(),
            failed: None,
            closed: false,
        }))
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        self.s.get_object(&self.s.full(key), None, None).await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.get_range_of(key, range, None).await
    }

    async fn get_range_of(
        &self,
        key: &str,
        range: Range<u64>,
        version: Option<&Version>,
    ) -> Result<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let s = &self.s;
        let full = s.full(key);
        let bytes = format!("bytes={}-{}", range.start, range.end - 1);
        let body = s.get_object(&full, Some(bytes), version).await?;
        if body.len() as u64 != range.end - range.start {
            return Err(Error::Storage(format!(
                "S3 GetObject {}: asked for bytes {}..{}, got {} bytes",
                s.url(&full),
                range.start,
                range.end,
                body.len()
            )));
        }
        Ok(body)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.s.head_full(&self.s.full(key), key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let s = &self.s;
        let full = s.full(prefix);
        let mut pages = s
            .client
            .list_objects_v2()
            .bucket(&s.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s.err("ListObjectsV2", &full, e))?;
            for o in page.contents() {
                let Some(k) = o.key() else { continue };
                let Some(rel) = k.strip_prefix(&s.prefix) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key: rel.to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o.last_modified().and_then(to_chrono),
                    storage_class: o.storage_class().map(|c| c.as_str().to_string()),
                    ..Default::default()
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.s.delete_full(&self.s.full(key)).await
    }

    async fn discard(&self, key: &str) -> Result<()> {
        let s = &self.s;
        let full = s.full(key);
        // Every version and delete marker of exactly this key. Without
        // s3:ListBucketVersions, a plain delete (the object hidden, its
        // versions kept) is what can be done.
        let listed = s
            .client
            .list_object_versions()
            .bucket(&s.bucket)
            .prefix(&full)
            .send()
            .await;
        let versions: Vec<String> = match listed {
            Ok(r) => r
                .versions()
                .iter()
                .filter(|v| v.key() == Some(full.as_str()))
                .filter_map(|v| v.version_id().map(str::to_string))
                .chain(
                    r.delete_markers()
                        .iter()
                        .filter(|m| m.key() == Some(full.as_str()))
                        .filter_map(|m| m.version_id().map(str::to_string)),
                )
                .collect(),
            Err(e) => {
                tracing::debug!(
                    "could not list the versions of {} ({}); its old versions stay",
                    s.url(&full),
                    sdk_error_text(&e)
                );
                return s.delete_full(&full).await;
            }
        };
        if versions.is_empty() {
            return s.delete_full(&full).await;
        }
        for v in versions {
            s.client
                .delete_object()
                .bucket(&s.bucket)
                .key(&full)
                .version_id(&v)
                .send()
                .await
                .map_err(|e| s.err("DeleteObject (version)", &full, e))?;
        }
        Ok(())
    }

    async fn check_location(&self) -> Result<()> {
        // HeadObject, which found no config, answers a bare 404 for a
        // missing bucket as for a missing key (a HEAD has no body to carry
        // the error code); a listing says NoSuchBucket, which `err` turns
        // into its message. Needs s3:ListBucket, which every command has.
        let s = &self.s;
        s.client
            .list_objects_v2()
            .bucket(&s.bucket)
            .prefix(&s.prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| s.err("ListObjectsV2", &s.prefix, e))?;
        Ok(())
    }

    async fn sweep_uploads(&self, before: DateTime<Utc>, live: &[String]) -> Result<usize> {
        let live: Vec<String> = live.iter().map(|k| self.s.full(k)).collect();
        let mut n = 0;
        for (key, id, initiated) in self.multipart_uploads().await? {
            if initiated.is_some_and(|t| t < before) && !live.contains(&key) {
                self.s.abort_upload(&key, &id).await?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn abort_unfinished(&self, key: &str) -> Result<usize> {
        let full = self.s.full(key);
        self.s
            .abandoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(full.clone());
        // A writer registers before it checks `abandoned` and sends its
        // CreateMultipartUpload, so every upload that can still come into
        // being is in the registry now: abort the open ones, and wait for
        // those being created or cleaned up (the caller may exit next).
        let started = tokio::time::Instant::now();
        let mut n = 0;
        loop {
            let (mut open, mut pending) = (Vec::new(), 0);
            self.s.lock_uploads().retain(|_, (k, st)| match st {
                _ if *k != full => true,
                Upload::Open(id) => {
                    open.push((k.clone(), std::mem::take(id)));
                    false
                }
                _ => {
                    pending += 1;
                    true
                }
            });
            for (key, id) in &open {
                self.s.abort_upload(key, id).await?;
            }
            n += open.len();
            if pending == 0 {
                return Ok(n);
            }
            if started.elapsed() > PENDING_UPLOAD_WAIT {
                tracing::warn!(
                    "{}: an upload still being created or cleaned up was left to the sweep",
                    self.s.url(&full)
                );
                return Ok(n);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn request_thaw(&self, key: &str, days: i32) -> Result<()> {
        let s = &self.s;
        let full = s.full(key);
        let params = GlacierJobParameters::builder()
            .tier(Tier::Standard)
            .build()
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let req = RestoreRequest::builder()
            .days(days)
            .glacier_job_parameters(params)
            .build();
        match s
            .client
            .restore_object()
            .bucket(&s.bucket)
            .key(&full)
            .restore_request(req)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // Already requested: the thaw is on its way.
            Err(e) if code_of(&e) == Some("RestoreAlreadyInProgress") => Ok(()),
            Err(e) => Err(s.err("RestoreObject", &full, e)),
        }
    }
}

/// The streamed multipart upload of one archive. See the module docs.
struct S3Writer {
    s: Arc<Shared>,
    rt: Handle,
    id: u64,
    key: String,
    full_key: String,
    buf: Vec<u8>,
    written: u64,
    hasher: Sha256,
    upload_id: Option<String>,
    next_part: i32,
    tasks: JoinSet<Result<CompletedPart>>,
    done: Vec<CompletedPart>,
    /// The first failure; every later write fails with it.
    failed: Option<String>,
    /// Finished or aborted: nothing left to clean up.
    closed: bool,
}

async fn upload_part(
    s: Arc<Shared>,
    full_key: String,
    upload_id: String,
    n: i32,
    data: Bytes,
    sum: String,
) -> Result<CompletedPart> {
    if let Some(d) = s.tuning.part_delay.as_ref().map(|f| f(n)) {
        tokio::time::sleep(d).await;
    }
    let r = s
        .client
        .upload_part()
        .bucket(&s.bucket)
        .key(&full_key)
        .upload_id(&upload_id)
        .part_number(n)
        .content_length(data.len() as i64)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .checksum_sha256(&sum)
        .body(ByteStream::from(data))
        .send()
        .await
        .map_err(|e| s.err(&format!("UploadPart {n}"), &full_key, e))?;
    Ok(CompletedPart::builder()
        .part_number(n)
        .set_e_tag(r.e_tag().map(str::to_string))
        .checksum_sha256(sum)
        .build())
}

impl S3Writer {
    fn part_size(&self) -> usize {
        self.s.tuning.part_size_of(self.next_part)
    }

    fn abandoned(&self) -> bool {
        self.s
            .abandoned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&self.full_key)
    }

    fn check_not_abandoned(&self) -> Result<()> {
        if self.abandoned() {
            return Err(self.abandoned_error());
        }
        Ok(())
    }

    fn abandoned_error(&self) -> Error {
        Error::Storage(format!(
            "the upload of {} was abandoned",
            self.s.url(&self.full_key)
        ))
    }

    /// Makes this writer's open upload its own to complete or clean up;
    /// false when `abort_unfinished` took it.
    fn claim_upload(&self) -> bool {
        match self.s.lock_uploads().get_mut(&self.id) {
            Some((_, st @ Upload::Open(_))) => {
                *st = Upload::Busy;
                true
            }
            _ => false,
        }
    }

    fn ensure_upload(&mut self) -> Result<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        // Registered as being created before the abandoned check: an
        // `abort_unfinished` either sees this entry and waits for the upload
        // to exist, or marked the key abandoned before the check.
        self.set_state(Upload::Creating);
        let id = match self.create_upload() {
            Ok(id) => id,
            Err(e) => {
                self.s.lock_uploads().remove(&self.id);
                return Err(e);
            }
        };
        self.set_state(Upload::Open(id.clone()));
        self.upload_id = Some(id.clone());
        // Abandoned while creating: `abort_unfinished` is waiting to abort
        // this upload, and the runtime may go once it has; no more calls.
        self.check_not_abandoned()?;
        Ok(id)
    }

    fn set_state(&self, state: Upload) {
        self.s
            .lock_uploads()
            .insert(self.id, (self.full_key.clone(), state));
    }

    /// Checks the key is not abandoned and sends CreateMultipartUpload.
    fn create_upload(&self) -> Result<String> {
        self.check_not_abandoned()?;
        let s = &self.s;
        let (sse, kms) = s.sse();
        if let Some(hook) = &s.tuning.before_create {
            hook();
        }
        let r = block(
            &self.rt,
            s.client
                .create_multipart_upload()
                .bucket(&s.bucket)
                .key(&self.full_key)
                .content_type("application/octet-stream")
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .set_server_side_encryption(sse)
                .set_ssekms_key_id(kms)
                .set_storage_class(s.upload_class())
                .set_tagging(s.tagging())
                .send(),
        )
        .map_err(|e| s.err("CreateMultipartUpload", &self.full_key, e))?;
        r.upload_id().map(str::to_string).ok_or_else(|| {
            Error::Storage(format!(
                "S3 CreateMultipartUpload {}: no upload id in the answer",
                s.url(&self.full_key)
            ))
        })
    }

    fn take_result(
        &mut self,
        r: std::result::Result<Result<CompletedPart>, tokio::task::JoinError>,
    ) -> Result<()> {
        match r {
            Ok(Ok(p)) => {
                self.done.push(p);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::Storage(format!(
                "S3 upload of {}: a part upload task failed: {e}",
                self.s.url(&self.full_key)
            ))),
        }
    }

    /// Collects finished parts; blocks until at most `limit` are in flight.
    fn reap(&mut self, limit: usize) -> Result<()> {
        while let Some(r) = self.tasks.try_join_next() {
            self.take_result(r)?;
        }
        while self.tasks.len() > limit {
            let rt = self.rt.clone();
            let r = block(&rt, self.tasks.join_next());
            match r {
                Some(r) => self.take_result(r)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Sends the buffer as the next part.
    fn send_part(&mut self) -> Result<()> {
        if self.next_part > MAX_PARTS {
            return Err(Error::Storage(format!(
                "S3 upload of {}: archive exceeds {MAX_PARTS} parts",
                self.s.url(&self.full_key)
            )));
        }
        let upload_id = self.ensure_upload()?;
        let limit = self.s.tuning.in_flight_limit(self.part_size());
        self.reap(limit - 1)?;
        let data = Bytes::from(std::mem::take(&mut self.buf));
        let sum = b64_sha256(&data);
        let n = self.next_part;
        self.next_part += 1;
        self.tasks.spawn_on(
            upload_part(
                self.s.clone(),
                self.full_key.clone(),
                upload_id,
                n,
                data,
                sum,
            ),
            &self.rt,
        );
        Ok(())
    }

    fn metadata_map(metadata: &BTreeMap<String, String>) -> HashMap<String, String> {
        metadata
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), encode_metadata_value(v)))
            .collect()
    }

    /// Everything between the last write and a checked, complete object.
    /// Returns whether an object was created (for clean-up on failure).
    fn finish_inner(
        &mut self,
        metadata: &BTreeMap<String, String>,
        created: &mut bool,
    ) -> Result<ObjectMeta> {
        if let Some(e) = &self.failed {
            return Err(Error::Storage(e.clone()));
        }
        let sha = hex::encode(self.hasher.clone().finalize());
        if let Some(given) = metadata.get("sha256") {
            if *given != sha {
                return Err(Error::Integrity(format!(
                    "archive {}: the writer hashed {sha}, the archive says {given}",
                    self.s.url(&self.full_key)
                )));
            }
        }
        self.check_not_abandoned()?;
        let meta = Self::metadata_map(metadata);
        let s = self.s.clone();
        let (sse, kms) = s.sse();
        if self.upload_id.is_none() {
            // Smaller than one part: one PutObject with the final metadata.
            let data = Bytes::from(std::mem::take(&mut self.buf));
            // Registered before the check, as in `ensure_upload`.
            self.set_state(Upload::Busy);
            self.check_not_abandoned()?;
            *created = true;
            block(
                &self.rt,
                s.client
                    .put_object()
                    .bucket(&s.bucket)
                    .key(&self.full_key)
                    .content_type("application/octet-stream")
                    .content_length(data.len() as i64)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .checksum_sha256(b64_sha256(&data))
                    .set_metadata(Some(meta.clone()))
                    .set_server_side_encryption(sse)
                    .set_ssekms_key_id(kms)
                    .set_storage_class(s.storage_class())
                    .set_tagging(s.tagging())
                    .body(ByteStream::from(data))
                    .send(),
            )
            .map_err(|e| s.err("PutObject", &self.full_key, e))?;
        } else {
            if !self.buf.is_empty() {
                self.send_part()?;
            }
            self.reap(0)?;
            let upload_id = self.upload_id.clone().expect("upload started");
            if !self.claim_upload() {
                return Err(self.abandoned_error());
            }
            let mut parts = std::mem::take(&mut self.done);
            parts.sort_by_key(|p| p.part_number());
            let done = block(
                &self.rt,
                s.client
                    .complete_multipart_upload()
                    .bucket(&s.bucket)
                    .key(&self.full_key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send(),
            )
            .map_err(|e| s.err("CompleteMultipartUpload", &self.full_key, e))?;
            *created = true;
            let version = done.version_id().map(str::to_string);
            block(&self.rt, self.replace_metadata(meta.clone(), version))?;
        }
        // The integrity check after upload.
        let head = block(&self.rt, s.head_full(&self.full_key, &self.key))?.ok_or_else(|| {
            Error::Integrity(format!(
                "archive {} is missing right after its upload",
                s.url(&self.full_key)
            ))
        })?;
        if head.size != self.written {
            return Err(Error::Integrity(format!(
                "archive {} is {} bytes in S3 after writing {} bytes",
                s.url(&self.full_key),
                head.size,
                self.written
            )));
        }
        for (k, v) in &meta {
            if head.metadata.get(k) != Some(v) {
                return Err(Error::Integrity(format!(
                    "archive {}: metadata `{k}` is {:?} in S3, expected {v:?}",
                    s.url(&self.full_key),
                    head.metadata.get(k)
                )));
            }
        }
        // Stopped from outside meanwhile (`abort_unfinished` waits for this
        // writer): the run is failing, so the object goes.
        self.check_not_abandoned()?;
        Ok(head)
    }

    /// Copies the completed object onto itself with the final metadata, then
    /// removes the pre-copy version where the bucket keeps versions.
    async fn replace_metadata(
        &self,
        meta: HashMap<String, String>,
        version: Option<String>,
    ) -> Result<()> {
        let s = &self.s;
        let key = &self.full_key;
        let mut source = format!("{}/{}", s.bucket, encode_copy_source(key));
        if let Some(v) = &version {
            source.push_str(&format!("?versionId={}", encode_copy_source(v)));
        }
        let (sse, kms) = s.sse();
        if self.written <= s.tuning.copy_part_threshold {
            s.client
                .copy_object()
                .bucket(&s.bucket)
                .key(key)
                .copy_source(&source)
                .metadata_directive(MetadataDirective::Replace)
                .set_metadata(Some(meta))
                .content_type("application/octet-stream")
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .set_server_side_encryption(sse)
                .set_ssekms_key_id(kms)
                .set_storage_class(s.storage_class())
                .send()
                .await
                .map_err(|e| s.err("CopyObject", key, e))?;
        } else {
            self.multipart_copy(&source, meta).await?;
        }
        if let Some(v) = version.filter(|v| v != "null") {
            if let Err(e) = s
                .client
                .delete_object()
                .bucket(&s.bucket)
                .key(key)
                .version_id(&v)
                .send()
                .await
            {
                tracing::warn!(
                    "could not delete the pre-copy version {v} of {}: {}",
                    s.url(key),
                    sdk_error_text(&e)
                );
            }
        }
        Ok(())
    }

    /// The copy for objects above CopyObject's 5 GiB: UploadPartCopy ranges.
    async fn multipart_copy(&self, source: &str, meta: HashMap<String, String>) -> Result<()> {
        let s = &self.s;
        let key = &self.full_key;
        let (sse, kms) = s.sse();
        let up = s
            .client
            .create_multipart_upload()
            .bucket(&s.bucket)
            .key(key)
            .content_type("application/octet-stream")
            .set_metadata(Some(meta))
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .set_storage_class(s.storage_class())
            .set_tagging(s.tagging())
            .send()
            .await
            .map_err(|e| s.err("CreateMultipartUpload (copy)", key, e))?;
        let upload_id = up.upload_id().unwrap_or_default().to_string();
        let res = async {
            let size = self.written;
            let part = s
                .tuning
                .copy_part_size
                .max(size.div_ceil(MAX_PARTS as u64))
                .max(MIN_PART_SIZE as u64);
            let ranges: Vec<(i32, u64, u64)> = (0..size.div_ceil(part))
                .map(|i| (i as i32 + 1, i * part, ((i + 1) * part).min(size) - 1))
                .collect();
            let sem = Arc::new(tokio::sync::Semaphore::new(s.tuning.max_in_flight.max(1)));
            let mut set = JoinSet::new();
            for (n, a, b) in ranges {
                let (s2, key, source, upload_id, sem) = (
                    s.clone(),
                    key.clone(),
                    source.to_string(),
                    upload_id.clone(),
                    sem.clone(),
                );
                set.spawn(async move {
                    let _permit = sem.acquire_owned().await;
                    let r = s2
                        .client
                        .upload_part_copy()
                        .bucket(&s2.bucket)
                        .key(&key)
                        .upload_id(&upload_id)
                        .part_number(n)
                        .copy_source(&source)
                        .copy_source_range(format!("bytes={a}-{b}"))
                        .send()
                        .await
                        .map_err(|e| s2.err(&format!("UploadPartCopy {n}"), &key, e))?;
                    let res = r.copy_part_result();
                    Ok::<_, Error>(
                        CompletedPart::builder()
                            .part_number(n)
                            .set_e_tag(res.and_then(|c| c.e_tag()).map(str::to_string))
                            .set_checksum_sha256(
                                res.and_then(|c| c.checksum_sha256()).map(str::to_string),
                            )
                            .build(),
                    )
                });
            }
            let mut parts = Vec::new();
            while let Some(r) = set.join_next().await {
                parts.push(r.map_err(|e| Error::Storage(format!("copy task: {e}")))??);
            }
            parts.sort_by_key(|p| p.part_number());
            s.client
                .complete_multipart_upload()
                .bucket(&s.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| s.err("CompleteMultipartUpload (copy)", key, e))?;
            Ok::<_, Error>(())
        }
        .await;
        if res.is_err() {
            let _ = s.abort_upload(key, &upload_id).await;
        }
        res
    }

    /// Stops part uploads and discards the upload (and the object, once
    /// complete). Best effort: failures are logged, and the sweep catches
    /// what is left.
    fn clean_up(&mut self, created: bool) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.tasks.abort_all();
        // Without an entry there is nothing of ours to discard: none was
        // started, or `abort_unfinished` took the upload, and the run that
        // did so may be shutting the runtime down: no more calls.
        let upload_id = match self.s.lock_uploads().get_mut(&self.id) {
            None => return,
            Some((_, st)) => match std::mem::replace(st, Upload::Busy) {
                Upload::Open(id) => Some(id),
                _ if created => None,
                _ => self.upload_id.clone(),
            },
        };
        let s = self.s.clone();
        let key = self.full_key.clone();
        let rt = self.rt.clone();
        let mut tasks = std::mem::take(&mut self.tasks);
        let res = if upload_id.is_none() && !created {
            Ok(())
        } else {
            block(&rt, async move {
                while tasks.join_next().await.is_some() {}
                if let Some(id) = upload_id {
                    s.abort_upload(&key, &id).await?;
                }
                if created {
                    s.delete_full(&key).await?;
                }
                Ok::<_, Error>(())
            })
        };
        self.s.lock_uploads().remove(&self.id);
        if let Err(e) = res {
            tracing::warn!("cleaning up a failed upload: {e}");
        }
    }
}

impl Write for S3Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(e) = &self.failed {
            return Err(io::Error::other(e.clone()));
        }
        if let Err(e) = self.check_not_abandoned() {
            self.failed = Some(e.to_string());
            return Err(io::Error::other(e.to_string()));
        }
        if self.closed {
            return Err(io::Error::other("write after the upload was finished"));
        }
        let ps = self.part_size();
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(ps);
        }
        let n = (ps - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        self.written += n as u64;
        if self.buf.len() >= ps {
            if let Err(e) = self.send_part() {
                let msg = e.to_string();
                self.failed = Some(msg.clone());
                return Err(io::Error::other(msg));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Parts go up when full; finish sends the rest.
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn finish(mut self: Box<Self>, metadata: &BTreeMap<String, String>) -> Result<ObjectMeta> {
        let mut created = false;
        match self.finish_inner(metadata, &mut created) {
            Ok(m) => {
                self.closed = true;
                self.s.lock_uploads().remove(&self.id);
                Ok(m)
            }
            Err(e) => {
                self.clean_up(created);
                Err(e)
            }
        }
    }

    fn abort(mut self: Box<Self>) {
        self.clean_up(false);
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // Dropped without finish (an error elsewhere, a panic): discard.
        self.clean_up(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_cover_multi_terabyte_archives() {
        let t = S3Tuning::default();
        assert_eq!(t.part_size_of(1), 8 * MIB);
        assert_eq!(t.part_size_of(1000), 8 * MIB);
        assert_eq!(t.part_size_of(1001), 16 * MIB);
        let total: u64 = (1..=MAX_PARTS).map(|n| t.part_size_of(n) as u64).sum();
        assert!(total > 8 * (1u64 << 40) - (1u64 << 40), "{total}");
        assert!((1..=MAX_PARTS).all(|n| t.part_size_of(n) <= MAX_PART_SIZE));
        assert_eq!(t.in_flight_limit(8 * MIB), 4);
        assert_eq!(t.in_flight_limit(32 * MIB), 2);
        assert_eq!(t.in_flight_limit(1024 * MIB), 1);
    }

    #[test]
    fn metadata_values_are_header_safe() {
        assert_eq!(encode_metadata_value("app_db"), "app_db");
        assert_eq!(encode_metadata_value("bä%"), "b%C3%A4%25");
        assert_eq!(encode_copy_source("a b/c"), "a%20b/c");
    }
}
