//! S3 repositories and AWS KMS key slots, against moto on 127.0.0.1 (started
//! by the harness) and a real PostgreSQL.
//!
//! The storage suite runs on both storages (S3 and a local directory) so the
//! two stay equivalent; then the binary end to end on S3: backup with a KMS
//! slot into a versioned bucket, list, show, verify, full and selective
//! restore, the object's metadata, SSE-KMS and tags, KMS refusals, a killed
//! run, and archive storage classes.
mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials as AwsCreds, Region};
use bytes::Bytes;
use common::{pg, pgsnap_ok, table_contents, Cluster, Workdir};
use pgsnap::repo::s3::{S3Storage, S3Tuning, MIN_PART_SIZE};
use pgsnap::repo::{LocalStorage, Repository, Storage, UploadOptions};

fn endpoint() -> String {
    common::moto().endpoint.clone()
}

fn s3_client() -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(AwsCreds::new("testing", "testing", None, None, "test"))
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

fn kms_client() -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint())
        .credentials_provider(AwsCreds::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

async fn new_bucket(versioned: bool) -> String {
    let name = format!(
        "pgsnap-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
    );
    let c = s3_client();
    c.create_bucket().bucket(&name).send().await.unwrap();
    if versioned {
        c.put_bucket_versioning()
            .bucket(&name)
            .versioning_configuration(
                aws_sdk_s3::types::VersioningConfiguration::builder()
                    .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    name
}

/// Small parts (S3's minimum) so a few MiB exercise multipart uploads.
fn small_parts() -> S3Tuning {
    S3Tuning {
        part_size: MIN_PART_SIZE,
        max_in_flight: 3,
        in_flight_bytes: 3 * MIN_PART_SIZE,
        ..Default::default()
    }
}

async fn s3_storage(tuning: S3Tuning) -> (Arc<dyn Storage>, String) {
    let bucket = new_bucket(false).await;
    let s = S3Storage::new(s3_client(), &bucket, "env/test").with_tuning(tuning);
    (Arc::new(s), bucket)
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| {
            (i as u32)
                .wrapping_mul(2654435761)
                .rotate_left(seed as u32 % 31) as u8
                ^ seed
        })
        .collect()
}

/// Writes `data` through a storage writer in odd-sized pieces on a blocking
/// thread (as the archive writer thread does), then finishes or not.
async fn write_object(
    s: Arc<dyn Storage>,
    key: &str,
    data: Vec<u8>,
    end: End,
) -> pgsnap::Result<Option<pgsnap::repo::ObjectMeta>> {
    let key = key.to_string();
    tokio::task::spawn_blocking(move || {
        let mut w = s.writer(&key)?;
        for piece in data.chunks(777_777) {
            w.write_all(piece).map_err(pgsnap::Error::Io)?;
        }
        match end {
            End::Finish => {
                let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
                let meta: BTreeMap<String, String> = [
                    ("sha256".to_string(), sha),
                    ("database".to_string(), "bäckup db".to_string()),
                ]
                .into();
                w.finish(&meta).map(Some)
            }
            End::Abort => {
                w.abort();
                Ok(None)
            }
            End::Drop => {
                drop(w);
                Ok(None)
            }
        }
    })
    .await
    .unwrap()
}

#[derive(Clone, Copy)]
enum End {
    Finish,
    Abort,
    Drop,
}

/// The storage trait's contract, for any implementation.
async fn storage_suite(s: Arc<dyn Storage>) {
    // put / get / head / range / list / delete
    s.put("a/one", Bytes::from_static(b"hello world"))
        .await
        .unwrap();
    s.put("a/two", Bytes::from(pattern(3000, 1))).await.unwrap();
    s.put("b/three", Bytes::from_static(b"3")).await.unwrap();
    assert_eq!(&s.get("a/one").await.unwrap()[..], b"hello world");
    // put_new writes only where nothing is (a run's claim on its id).
    assert!(!s.put_new("a/one", Bytes::from_static(b"x")).await.unwrap());
    assert_eq!(&s.get("a/one").await.unwrap()[..], b"hello world");
    assert!(s.put_new("c/new", Bytes::from_static(b"n")).await.unwrap());
    assert!(!s.put_new("c/new", Bytes::from_static(b"m")).await.unwrap());
    assert_eq!(&s.get("c/new").await.unwrap()[..], b"n");
    s.delete("c/new").await.unwrap();
    assert_eq!(s.head("a/one").await.unwrap().unwrap().size, 11);
    assert!(s.head("a/none").await.unwrap().is_none());
    assert_eq!(&s.get_range("a/one", 6..11).await.unwrap()[..], b"world");
    assert_eq!(&s.get_range("a/one", 0..1).await.unwrap()[..], b"h");
    assert!(s.get_range("a/one", 3..3).await.unwrap().is_empty());
    assert_eq!(
        &s.get_range("a/two", 1000..2500).await.unwrap()[..],
        &pattern(3000, 1)[1000..2500]
    );
    assert!(
        s.get_range("a/one", 5..20).await.is_err(),
        "range past the end"
    );
    assert!(s.get("a/none").await.is_err());
    let keys: Vec<String> = s
        .list("a/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(keys, ["a/one", "a/two"]);
    let all: Vec<String> = s
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(all, ["a/one", "a/two", "b/three"]);
    let sized = s.list("a/t").await.unwrap();
    assert_eq!(sized[0].size, 3000);
    assert!(sized[0].modified.is_some());
    s.delete("a/one").await.unwrap();
    s.delete("a/one").await.unwrap(); // deleting what is gone is fine
    assert!(s.head("a/one").await.unwrap().is_none());

    // Streamed writes: smaller than a part, and several parts.
    for (key, len) in [
        ("w/small", 1234usize),
        ("w/multi", 3 * MIN_PART_SIZE + 4321),
    ] {
        let data = pattern(len, 7);
        let m = write_object(s.clone(), key, data.clone(), End::Finish)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.size, len as u64);
        assert_eq!(&s.get(key).await.unwrap()[..], &data[..], "{key}");
        assert_eq!(s.head(key).await.unwrap().unwrap().size, len as u64);
    }
    // Abandoned writes leave nothing under their key.
    for (key, end) in [("w/aborted", End::Abort), ("w/dropped", End::Drop)] {
        write_object(s.clone(), key, pattern(2 * MIN_PART_SIZE + 10, 3), end)
            .await
            .unwrap();
        assert!(s.head(key).await.unwrap().is_none(), "{key}");
        let left: Vec<String> = s
            .list("w/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        assert_eq!(left, ["w/multi", "w/small"], "{key}");
    }
    // A finish whose metadata contradicts the bytes is refused; nothing stays.
    let bad = {
        let s = s.clone();
        tokio::task::spawn_blocking(move || {
            let mut w = s.writer("w/bad").unwrap();
            w.write_all(&pattern(MIN_PART_SIZE + 5, 9)).unwrap();
            let meta: BTreeMap<String, String> = [("sha256".to_string(), "00".repeat(32))].into();
            w.finish(&meta)
        })
        .await
        .unwrap()
    };
    if s.location().starts_with("s3://") {
        assert!(bad.is_err(), "S3 checks the sha256 it was given");
        assert!(s.head("w/bad").await.unwrap().is_none());
    } else {
        s.delete("w/bad").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_suite_local() {
    let dir = tempfile::tempdir().unwrap();
    storage_suite(Arc::new(LocalStorage::new(dir.path()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_suite_s3() {
    let (s, bucket) = s3_storage(small_parts()).await;
    storage_suite(s.clone()).await;
    assert_eq!(s.location(), format!("s3://{bucket}/env/test"));
    // Keys are relative to the prefix.
    let raw = s3_client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(raw
        .contents()
        .iter()
        .all(|o| o.key().unwrap().starts_with("env/test/")));
    // The finished multipart object carries its metadata (non-ASCII encoded).
    let h = s.head("w/multi").await.unwrap().unwrap();
    assert_eq!(h.metadata["database"], "b%C3%A4ckup db");
    assert_eq!(h.metadata["sha256"].len(), 64);
    // No multipart upload is left behind by finish, abort or drop.
    let s3 = S3Storage::new(s3_client(), &bucket, "env/test");
    assert!(s3.multipart_uploads().await.unwrap().is_empty());
}

/// A restore reads its archive twice (authenticate every chunk, then load):
/// reads of the version `head` saw fail, saying the archive changed, once
/// the key is written again in between (versioned bucket or not), rather
/// than load bytes of another archive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stay_with_the_version_head_saw() {
    for versioned in [true, false] {
        let bucket = new_bucket(versioned).await;
        let s: Arc<dyn Storage> = Arc::new(S3Storage::new(s3_client(), &bucket, "p"));
        s.put("arch", Bytes::from(pattern(5000, 1))).await.unwrap();
        let version = s.head("arch").await.unwrap().unwrap().version;
        assert!(version.is_some(), "versioned {versioned}");
        let read = || s.get_range_of("arch", 100..900, version.as_ref());
        let first = |b: &[u8]| b == &pattern(5000, 1)[100..900];
        assert!(first(&read().await.unwrap()));
        s.put("arch", Bytes::from(pattern(5000, 2))).await.unwrap();
        let err = read().await.unwrap_err().to_string();
        assert!(err.contains("changed while it was being read"), "{err}");
        // Unpinned reads see the new bytes.
        let now = s.get_range("arch", 100..900).await.unwrap();
        assert!(now == pattern(5000, 2)[100..900], "the new bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_parts_completing_out_of_order_assemble_in_order() {
    // Part 1 waits longest: parts finish 3, 2, 1.
    let tuning = S3Tuning {
        part_delay: Some(Arc::new(|n| {
            Duration::from_millis(match n {
                1 => 900,
                2 => 450,
                _ => 0,
            })
        })),
        ..small_parts()
    };
    let (s, _) = s3_storage(tuning).await;
    let data = pattern(3 * MIN_PART_SIZE - 17, 5);
    write_object(s.clone(), "ooo", data.clone(), End::Finish)
        .await
        .unwrap();
    assert_eq!(&s.get("ooo").await.unwrap()[..], &data[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_metadata_by_multipart_copy_above_the_threshold() {
    // The > 5 GiB path (UploadPartCopy), with the threshold lowered.
    let tuning = S3Tuning {
        copy_part_threshold: 0,
        copy_part_size: MIN_PART_SIZE as u64,
        ..small_parts()
    };
    let (s, _) = s3_storage(tuning).await;
    let data = pattern(2 * MIN_PART_SIZE + 99, 11);
    let m = write_object(s.clone(), "big", data.clone(), End::Finish)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.metadata["database"], "b%C3%A4ckup db");
    assert_eq!(&s.get("big").await.unwrap()[..], &data[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_unfinished_uploads_are_swept_and_aborted() {
    let bucket = new_bucket(false).await;
    let s3 = S3Storage::new(s3_client(), &bucket, "p").with_tuning(small_parts());
    // A killed run's upload.
    s3_client()
        .create_multipart_upload()
        .bucket(&bucket)
        .key("p/2026-11-25/x/x.pgsnap")
        .send()
        .await
        .unwrap();
    assert_eq!(s3.multipart_uploads().await.unwrap().len(), 1);
    // (moto reports every upload as initiated in 2010, so the age cut-off
    // itself cannot be seen here; it compares ListMultipartUploads'
    // `Initiated` with the time given.)
    let now = chrono::Utc::now();
    assert_eq!(
        s3.sweep_uploads(now + chrono::Duration::days(2), &[])
            .await
            .unwrap(),
        1
    );
    assert!(s3.multipart_uploads().await.unwrap().is_empty());

    // A writer whose run failed elsewhere: abort_unfinished discards it even
    // while the writer still exists.
    let s3 = Arc::new(s3);
    let s2 = s3.clone();
    let w = tokio::task::spawn_blocking(move || {
        let mut w = s2.writer("2026-11-25/y/y.pgsnap").unwrap();
        w.write_all(&pattern(MIN_PART_SIZE + 1, 1)).unwrap();
        w
    })
    .await
    .unwrap();
    assert_eq!(s3.multipart_uploads().await.unwrap().len(), 1);
    assert_eq!(s3.abort_unfinished("2026-11-25/other").await.unwrap(), 0);
    assert_eq!(
        s3.abort_unfinished("2026-11-25/y/y.pgsnap").await.unwrap(),
        1
    );
    assert!(s3.multipart_uploads().await.unwrap().is_empty());
    tokio::task::spawn_blocking(move || drop(w)).await.unwrap();
    assert!(s3.head("2026-11-25/y/y.pgsnap").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_abandoned_while_being_created_is_aborted_too() {
    // A run that hits --max-duration while its writer's
    // CreateMultipartUpload is in flight: abort_unfinished must wait for that
    // upload to exist and abort it, since the process exits right after.
    let bucket = new_bucket(false).await;
    // The hook says when the writer is about to create its upload, then
    // holds it there a while: the abort comes while it is being created,
    // however slow the machine is to get there.
    let (creating_tx, creating_rx) = std::sync::mpsc::sync_channel::<()>(1);
    let tuning = S3Tuning {
        before_create: Some(Arc::new(move || {
            let _ = creating_tx.try_send(());
            std::thread::sleep(Duration::from_millis(500));
        })),
        ..small_parts()
    };
    let s3 = Arc::new(S3Storage::new(s3_client(), &bucket, "p").with_tuning(tuning));
    let s2 = s3.clone();
    let data = pattern(MIN_PART_SIZE + 1, 2);
    let w = tokio::task::spawn_blocking(move || {
        let mut w = s2.writer("2026-11-25/z/z.pgsnap").unwrap();
        // Fails once the key is abandoned, which is the point.
        let _ = w.write_all(&data);
        w
    });
    tokio::task::spawn_blocking(move || creating_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s3.abort_unfinished("2026-11-25/z/z.pgsnap").await.unwrap(),
        1
    );
    assert!(s3.multipart_uploads().await.unwrap().is_empty());
    let w = w.await.unwrap();
    tokio::task::spawn_blocking(move || drop(w)).await.unwrap();
    assert!(s3.multipart_uploads().await.unwrap().is_empty());
    assert!(s3.head("2026-11-25/z/z.pgsnap").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------
// The binary against S3 and KMS.

const SMALL: &str = r#"
CREATE SCHEMA app;
CREATE TABLE app.users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, note text);
CREATE TABLE app.orders (id serial PRIMARY KEY, user_id bigint REFERENCES app.users(id), total numeric(10,2), payload jsonb);
CREATE TABLE app.audit (id bigserial PRIMARY KEY, line text);
INSERT INTO app.users (email, note)
  SELECT 'u' || g || '@example.com', CASE WHEN g % 3 = 0 THEN E'multi\nline' END
  FROM generate_series(1, 3000) g;
INSERT INTO app.orders (user_id, total, payload)
  SELECT 1 + g % 3000, g * 1.25, jsonb_build_object('n', g) FROM generate_series(1, 10000) g;
INSERT INTO app.audit (line) SELECT md5(g::text) FROM generate_series(1, 20000) g;
"#;

/// `pgsnap` with the AWS SDK pointed at moto.
fn aws_pgsnap(args: &[&str], extra_env: &[(&str, &str)]) -> std::process::Output {
    aws_command(args, extra_env).output().expect("run pgsnap")
}

/// The command [`aws_pgsnap`] runs, to spawn.
fn aws_command(args: &[&str], extra_env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgsnap"));
    cmd.args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PGSNAP_REPO")
        .env_remove("PGSNAP_KEY_FILE")
        .env_remove("PGSNAP_KMS_KEY_ID")
        .env_remove("AWS_PROFILE")
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

fn aws_pgsnap_ok(args: &[&str], extra_env: &[(&str, &str)]) -> String {
    let out = aws_pgsnap(args, extra_env);
    assert!(
        out.status.success(),
        "pgsnap {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// One clear line on stderr, exit 1.
fn one_line_failure(out: &std::process::Output) -> String {
    one_line_failure_with(out, 1)
}

/// [`one_line_failure`] with exit status `code`.
fn one_line_failure_with(out: &std::process::Output, code: i32) -> String {
    assert_eq!(out.status.code(), Some(code), "{out:?}");
    let all = String::from_utf8_lossy(&out.stderr).to_string();
    let errors: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("pgsnap: error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{all}");
    assert!(!all.contains("panicked") && !all.contains("WARN"), "{all}");
    errors[0].to_string()
}

async fn kms_key(alias: Option<&str>) -> String {
    let k = kms_client();
    let key = k.create_key().send().await.unwrap();
    let id = key.key_metadata().unwrap().key_id().to_string();
    if let Some(a) = alias {
        k.create_alias()
            .alias_name(a)
            .target_key_id(&id)
            .send()
            .await
            .unwrap();
    }
    id
}

async fn object_keys(bucket: &str) -> Vec<String> {
    s3_client()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_to_s3_with_kms_then_verify_and_restore_without_key_file() {
    let pg = pg();
    let src = pg.create_db("s3_src");
    pg.psql(&src, SMALL);
    let w = Workdir::new();
    let bucket = new_bucket(true).await;
    let alias = format!("alias/pgsnap-{bucket}");
    let key_id = kms_key(Some(&alias)).await;
    let repo = format!("s3://{bucket}/prod");

    // A KMS slot plus a key-file break-glass slot.
    let out = aws_pgsnap_ok(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--kms-key-id",
            &alias,
            "--key-file",
            &w.key(),
            "--storage-class",
            "STANDARD_IA",
            "--retention-class",
            "daily",
            "--verify-upload",
            "full",
            "--json",
        ],
        &[],
    );
    let b: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let id = b["id"].as_str().unwrap().to_string();
    assert_eq!(b["ok"], true, "{b}");
    let date = format!("{}-{}-{}", &id[..4], &id[4..6], &id[6..8]);

    // Layout: PREFIX/config and PREFIX/YYYY-MM-DD/<id>/.
    let mut keys = object_keys(&bucket).await;
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("prod/{date}/{id}/{id}.manifest.json"),
            format!("prod/{date}/{id}/{id}.pgsnap"),
            "prod/config".to_string(),
        ]
    );

    // The archive object: metadata, SSE-KMS, storage class, tag.
    let archive_key = format!("prod/{date}/{id}/{id}.pgsnap");
    let c = s3_client();
    let h = c
        .head_object()
        .bucket(&bucket)
        .key(&archive_key)
        .send()
        .await
        .unwrap();
    let meta = h.metadata().unwrap();
    assert_eq!(meta["sha256"], b["sha256"].as_str().unwrap());
    assert_eq!(meta["size"], b["size_bytes"].to_string());
    assert_eq!(meta["backup-id"], id);
    assert_eq!(meta["database"], src);
    assert_eq!(meta["pgsnap-version"], env!("CARGO_PKG_VERSION"));
    assert!(meta.contains_key("server-version"));
    assert_eq!(
        h.server_side_encryption(),
        Some(&aws_sdk_s3::types::ServerSideEncryption::AwsKms)
    );
    assert!(
        h.ssekms_key_id().unwrap().contains(&alias) || h.ssekms_key_id().unwrap().contains(&key_id)
    );
    assert_eq!(h.storage_class().map(|c| c.as_str()), Some("STANDARD_IA"));
    assert_eq!(h.content_length(), b["size_bytes"].as_i64());
    let tags = c
        .get_object_tagging()
        .bucket(&bucket)
        .key(&archive_key)
        .send()
        .await
        .unwrap();
    assert!(tags
        .tag_set()
        .iter()
        .any(|t| t.key() == "pgsnap-retention" && t.value() == "daily"));
    // The metadata copy's first version is gone: one version per object.
    let versions = c
        .list_object_versions()
        .bucket(&bucket)
        .prefix(&archive_key)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1, "{versions:?}");
    // The run's claim on its id is gone with its versions: no zero-byte
    // noncurrent version and delete marker per backup.
    let all = c
        .list_object_versions()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let claims: Vec<_> = all
        .versions()
        .iter()
        .filter_map(|v| v.key())
        .chain(all.delete_markers().iter().filter_map(|m| m.key()))
        .filter(|k| k.contains(".tmp-"))
        .collect();
    assert!(claims.is_empty(), "{claims:?}");

    // list / show.
    let list: serde_json::Value =
        serde_json::from_str(&aws_pgsnap_ok(&["list", "--repo", &repo, "--json"], &[])).unwrap();
    let e = &list.as_array().unwrap()[0];
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["status"], "complete");
    assert_eq!(e["key_slots"], serde_json::json!(["aws-kms", "key-file"]));
    let show: serde_json::Value = serde_json::from_str(&aws_pgsnap_ok(
        &["show", "--repo", &repo, "latest", "--json"],
        &[],
    ))
    .unwrap();
    assert_eq!(show["archive"]["sha256"], meta["sha256"].as_str());

    // verify through KMS, no key file.
    let v: serde_json::Value = serde_json::from_str(&aws_pgsnap_ok(
        &["verify", "--repo", &repo, &id, "--json"],
        &[],
    ))
    .unwrap();
    assert_eq!(v["ok"], true, "{v}");
    // Break-glass: KMS unreachable, the key file opens it.
    let dead_kms = [("AWS_ENDPOINT_URL_KMS", "http://127.0.0.1:9")];
    aws_pgsnap_ok(
        &["verify", "--repo", &repo, &id, "--key-file", &w.key()],
        &dead_kms,
    );
    // Neither: one line naming the slots.
    let other = Workdir::new();
    let err = one_line_failure(&aws_pgsnap(
        &["verify", "--repo", &repo, &id, "--key-file", &other.key()],
        &dead_kms,
    ));
    assert!(err.contains("aws kms") && err.contains("key file"), "{err}");

    // Full restore through KMS, no key file.
    let dst = pg.create_db("s3_dst");
    let out = aws_pgsnap_ok(
        &[
            "restore",
            "--repo",
            &repo,
            "latest",
            "--db",
            &pg.url(&dst),
            "--json",
        ],
        &[],
    );
    let r: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(r["rows"], 33000);
    assert_eq!(table_contents(pg, &src), table_contents(pg, &dst));

    // Selective restore reads a fraction of the archive by range.
    let one = pg.create_db("s3_one");
    let out = aws_pgsnap_ok(
        &[
            "restore",
            "--repo",
            &repo,
            &id,
            "--db",
            &pg.url(&one),
            "--table",
            "app.users",
            "--json",
        ],
        &[],
    );
    let r: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(r["rows"], 3000);
    assert!(
        r["bytes_read"].as_u64().unwrap() < r["archive_bytes"].as_u64().unwrap() / 2,
        "{r}"
    );
    let got = table_contents(pg, &one);
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0],
        table_contents(pg, &src)
            .into_iter()
            .find(|t| t.0 == "app.users")
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_refusals_are_one_line_and_leave_nothing_complete() {
    let pg = pg();
    let src = pg.create_db("s3_kms_bad");
    pg.psql(
        &src,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g",
    );
    let bucket = new_bucket(true).await;
    let repo = format!("s3://{bucket}/env");

    // Unknown key.
    let err = one_line_failure(&aws_pgsnap(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--kms-key-id",
            "alias/nope",
        ],
        &[],
    ));
    assert!(
        err.contains("KMS GenerateDataKey") && err.contains("alias/nope"),
        "{err}"
    );
    assert!(err.contains("NotFound"), "{err}");

    // A disabled key and a key these credentials may not use. moto does not
    // enforce key states or policies, so a stand-in KMS endpoint answers as
    // AWS KMS does for those.
    for (code, msg) in [
        (
            "DisabledException",
            "arn:aws:kms:us-east-1:123456789012:key/k is disabled.",
        ),
        (
            "AccessDeniedException",
            "User is not authorized to perform: kms:GenerateDataKey",
        ),
    ] {
        let kms = refusing_kms(code, msg);
        let key = kms_key(None).await;
        let err = one_line_failure(&aws_pgsnap(
            &[
                "backup",
                "--db",
                &pg.url(&src),
                "--repo",
                &repo,
                "--kms-key-id",
                &key,
            ],
            &[("AWS_ENDPOINT_URL_KMS", &kms)],
        ));
        assert!(
            err.contains("KMS GenerateDataKey") && err.contains(code) && err.contains(&key),
            "{err}"
        );
        if code == "AccessDeniedException" {
            assert!(
                err.contains("may not use this key") && err.contains("kms:GenerateDataKey on it"),
                "{err}"
            );
        }
        assert!(
            !err.contains("testing"),
            "no credentials in messages: {err}"
        );
    }

    // Nothing that looks like a backup: no archive, no manifest, no upload.
    let keys = object_keys(&bucket).await;
    assert!(keys.iter().all(|k| k == "env/config"), "{keys:?}");
    let list = aws_pgsnap_ok(&["list", "--repo", &repo, "--json"], &[]);
    assert_eq!(list.trim(), "[]");
    let s3 = S3Storage::new(s3_client(), &bucket, "env");
    assert!(s3.multipart_uploads().await.unwrap().is_empty());

    // Neither key file nor KMS key: a usage error.
    let out = aws_pgsnap(&["backup", "--db", &pg.url(&src), "--repo", &repo], &[]);
    assert_eq!(out.status.code(), Some(2));
}

/// A backup running in the background into a new bucket, its multipart
/// upload begun (see [`backup_mid_upload`]).
struct Uploading {
    child: std::process::Child,
    /// The database backed up.
    src: String,
    w: Workdir,
    bucket: String,
    /// `s3://bucket/prefix`.
    repo: String,
    s3: S3Storage,
}

/// Makes database `db` of about 40 MB of poorly compressible text (several
/// 5 MiB parts) and starts `pgsnap backup -q` of it into a new bucket under
/// `prefix`, in 5 MiB parts; returns once its multipart upload has begun.
async fn backup_mid_upload(pg: &Cluster, db: &str, prefix: &str) -> Uploading {
    let src = pg.create_db(db);
    pg.psql(
        &src,
        "CREATE TABLE big AS SELECT g, md5(g::text) || md5((g * 7)::text) || md5(random()::text) AS s \
         FROM generate_series(1, 400000) g",
    );
    let w = Workdir::new();
    let bucket = new_bucket(true).await;
    let repo = format!("s3://{bucket}/{prefix}");
    let mut child = aws_command(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--key-file",
            &w.key(),
            "-q",
        ],
        &[("PGSNAP_S3_PART_SIZE", &MIN_PART_SIZE.to_string())],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let s3 = S3Storage::new(s3_client(), &bucket, prefix);
    let t = Instant::now();
    while s3.multipart_uploads().await.unwrap().is_empty() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "backup ended before its upload started"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no multipart upload appeared"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Uploading {
        child,
        src,
        w,
        bucket,
        repo,
        s3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backup_leaves_no_complete_object_and_its_upload_is_swept() {
    let pg = pg();
    let Uploading {
        mut child,
        src,
        w,
        bucket,
        repo,
        s3,
    } = backup_mid_upload(pg, "s3_kill", "k").await;
    child.kill().unwrap();
    child.wait().unwrap();

    // Only the run's claim on its backup id is left, a temporary object.
    let keys = object_keys(&bucket).await;
    assert!(
        keys.iter()
            .all(|k| k == "k/config" || k.ends_with(".tmp-claim")),
        "{keys:?}"
    );
    assert_eq!(
        aws_pgsnap_ok(&["list", "--repo", &repo, "--json"], &[]).trim(),
        "[]"
    );
    // The next backup's sweep aborts it once a day old, and removes the
    // claim.
    let repo_handle = Repository::open(Arc::new(s3)).await.unwrap();
    let later = chrono::Utc::now() + chrono::Duration::days(2);
    assert_eq!(repo_handle.sweep_stale(later).await.unwrap(), 2);
    assert_eq!(object_keys(&bucket).await, vec!["k/config".to_string()]);
    let s3 = S3Storage::new(s3_client(), &bucket, "k");
    assert!(s3.multipart_uploads().await.unwrap().is_empty());

    // A run stopped mid-upload (--max-duration) discards its upload before
    // it reports the failure.
    let out = aws_pgsnap(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--key-file",
            &w.key(),
            "--max-duration",
            // Under the load phase's 0.8 s on a quiet machine (1 s let the
            // whole backup finish first), past the start of the upload.
            "0.6s",
        ],
        &[("PGSNAP_S3_PART_SIZE", &MIN_PART_SIZE.to_string())],
    );
    let err = one_line_failure(&out);
    assert!(err.contains("max-duration"), "{err}");
    assert!(s3.multipart_uploads().await.unwrap().is_empty());
    let keys = object_keys(&bucket).await;
    assert!(keys.iter().all(|k| k == "k/config"), "{keys:?}");
}

/// A backup's sweep of killed runs' uploads left a running backup's alone
/// only by its age: one older than a day (a long backup), or on storage
/// that misreports when uploads began (moto: 2010), was aborted under it
/// (QA). A run alive keeps its claim fresh, and its upload is spared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_leaves_a_running_backups_upload_alone() {
    let pg = pg();
    let Uploading {
        child: first,
        src,
        w,
        repo,
        ..
    } = backup_mid_upload(pg, "s3_two", "two").await;
    let backup = [
        "backup",
        "--db",
        &pg.url(&src),
        "--repo",
        &repo,
        "--key-file",
        &w.key(),
        "-q",
    ];
    // A second backup starts (and sweeps) while the first uploads.
    aws_pgsnap_ok(&backup, &[]);
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = aws_pgsnap_ok(&["list", "--repo", &repo, "--json"], &[]);
    let listed: serde_json::Value = serde_json::from_str(listed.trim()).unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_in_glacier_is_refused_before_any_change_until_thawed() {
    let pg = pg();
    let src = pg.create_db("s3_glacier");
    // Rows that do not compress: an archive of more than one part, so the
    // upload is multipart and its metadata is set by a copy, which S3
    // refuses from an object already in GLACIER.
    pg.psql(
        &src,
        "CREATE TABLE t AS SELECT g, decode(md5(g::text) || md5((-g)::text), 'hex') AS r \
         FROM generate_series(1, 250000) g",
    );
    let w = Workdir::new();
    let bucket = new_bucket(false).await;
    let repo = format!("s3://{bucket}/cold");
    aws_pgsnap_ok(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--key-file",
            &w.key(),
            "--storage-class",
            "GLACIER",
        ],
        &[("PGSNAP_S3_PART_SIZE", &MIN_PART_SIZE.to_string())],
    );
    let listed = object_keys(&bucket).await;
    let archive = listed.iter().find(|k| k.ends_with(".pgsnap")).unwrap();
    let h = s3_client()
        .head_object()
        .bucket(&bucket)
        .key(archive)
        .send()
        .await
        .unwrap();
    assert_eq!(h.storage_class().map(|c| c.as_str()), Some("GLACIER"));
    assert!(h.content_length().unwrap() > MIN_PART_SIZE as i64, "{h:?}");
    // Reading it back at once cannot work: refused before the run.
    let out = aws_pgsnap(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--key-file",
            &w.key(),
            "--storage-class",
            "GLACIER",
            "--verify-upload",
            "full",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let dst = pg.create_db("s3_glacier_dst");
    let (key, url) = (w.key(), pg.url(&dst));
    let restore = |extra: &[&str]| {
        aws_pgsnap(
            &common::restore_args(&repo, &key, "latest", &url, extra),
            &[],
        )
    };
    // Not thawed: nothing done, and exit 75 (EX_TEMPFAIL), so that a
    // script can tell "retry later" from a failure (QA: a requested thaw
    // exited 1, as an error).
    let err = one_line_failure_with(&restore(&[]), 75);
    assert!(
        err.contains("GLACIER") && err.contains("--request-thaw"),
        "{err}"
    );
    assert!(table_contents(pg, &dst).is_empty(), "nothing was restored");
    let out = restore(&["--request-thaw", "--json"]);
    let err = one_line_failure_with(&out, 75);
    assert!(err.contains("thaw was requested"), "{err}");
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(last["exit_code"], 75, "{last}");
    // moto completes thaws at once; the restore now goes through.
    let out = restore(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(table_contents(pg, &src), table_contents(pg, &dst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_options_are_refused_for_local_repositories() {
    let w = Workdir::new();
    let out = common::pgsnap(&[
        "backup",
        "--db",
        "postgres://x@127.0.0.1:1/x",
        "--repo",
        &w.repo(),
        "--key-file",
        &w.key(),
        "--storage-class",
        "STANDARD_IA",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let _ = pgsnap_ok;
    let _ = UploadOptions::default();
}

/// A stand-in KMS endpoint on 127.0.0.1 that refuses every request with
/// `code` the way AWS KMS does (HTTP 400, JSON error body).
fn refusing_kms(code: &str, message: &str) -> String {
    failing_kms("400 Bad Request", code, message)
}

/// [`refusing_kms`] with another HTTP status (`500 Internal Server Error`
/// for KMS failing on its side).
fn failing_kms(status: &str, code: &str, message: &str) -> String {
    use std::io::{BufRead, BufReader, Read};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = serde_json::json!({ "__type": code, "message": message }).to_string();
    let (code, status) = (code.to_string(), status.to_string());
    std::thread::spawn(move || {
        // Bounded: a test makes a handful of requests (with SDK retries).
        for conn in listener.incoming().take(50) {
            let Ok(mut conn) = conn else { break };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut sink = vec![0u8; len];
            let _ = r.read_exact(&mut sink);
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Type: application/x-amz-json-1.1\r\n\
                 x-amzn-ErrorType: {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A stand-in S3 that answers every request as S3 does for a bucket in
/// another region: 301 with `x-amz-bucket-region`, and (but to a HEAD) a
/// PermanentRedirect body.
fn s3_in_another_region(region: &str) -> String {
    use std::io::{BufRead, BufReader};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let region = region.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(50) {
            let Ok(mut conn) = conn else { break };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut head = false;
            let mut first = true;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if first {
                    head = line.starts_with("HEAD ");
                    first = false;
                }
            }
            let body = if head {
                String::new()
            } else {
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>PermanentRedirect</Code>\
                     <Message>The bucket you are attempting to access must be addressed using the \
                     specified endpoint. Please send all future requests to this endpoint.</Message>\
                     <Endpoint>b.s3.{region}.amazonaws.com</Endpoint><Bucket>b</Bucket></Error>"
                )
            };
            let _ = write!(
                conn,
                "HTTP/1.1 301 Moved Permanently\r\nContent-Type: application/xml\r\n\
                 x-amz-bucket-region: {region}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A backup of a small database into a new bucket, its key wrapped by a
/// new KMS key only; returns the repository.
async fn kms_backup(pg: &Cluster, db: &str) -> String {
    let src = pg.create_db(db);
    pg.psql(
        &src,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g",
    );
    let bucket = new_bucket(false).await;
    let repo = format!("s3://{bucket}/r");
    let key = kms_key(None).await;
    aws_pgsnap_ok(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--kms-key-id",
            &key,
        ],
        &[],
    );
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_refusal_on_reading_names_the_slots() {
    let pg = pg();
    let repo = kms_backup(pg, "s3_kms_read").await;
    // The key was disabled since: verify and restore fail in one line.
    let kms = refusing_kms("DisabledException", "the key is disabled.");
    let err = one_line_failure(&aws_pgsnap(
        &["verify", "--repo", &repo, "latest"],
        &[("AWS_ENDPOINT_URL_KMS", &kms)],
    ));
    assert!(
        err.contains("KMS Decrypt") && err.contains("DisabledException") && err.contains("aws kms"),
        "{err}"
    );
    let dst = pg.create_db("s3_kms_read_dst");
    let err = one_line_failure(&aws_pgsnap(
        &["restore", "--repo", &repo, "latest", "--db", &pg.url(&dst)],
        &[("AWS_ENDPOINT_URL_KMS", &kms)],
    ));
    assert!(err.contains("DisabledException"), "{err}");
    assert!(table_contents(pg, &dst).is_empty());
}

#[test]
fn unreachable_s3_is_one_short_line() {
    let out = aws_pgsnap(
        &["list", "--repo", "s3://nobucket/p"],
        &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9")],
    );
    let err = one_line_failure(&out);
    assert!(
        err.contains("S3 HeadObject s3://nobucket/p/config")
            && err.contains("could not be reached: check the endpoint"),
        "{err}"
    );
    assert!(err.len() < 500 && !err.contains("Some("), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_named_and_an_empty_prefix_is_no_repository() {
    // HeadObject of the config answers a bare 404 for a missing bucket as
    // for a missing key: list, show and restore used to call a typo in the
    // bucket name "no pgsnap repository".
    let missing = format!("pgsnap-missing-{}", std::process::id());
    let repo = format!("s3://{missing}/prefix");
    for args in [
        vec!["list", "--repo", repo.as_str()],
        vec!["show", "--repo", repo.as_str(), "latest"],
        vec!["verify", "--repo", repo.as_str(), "latest"],
    ] {
        let err = one_line_failure(&aws_pgsnap(&args, &[]));
        assert!(
            err.contains(&format!("S3 bucket `{missing}` does not exist"))
                && err.contains("NoSuchBucket")
                && err.contains("create the bucket"),
            "{args:?}: {err}"
        );
        assert!(!err.contains("no pgsnap repository"), "{args:?}: {err}");
    }
    // A backup into it says the same (it lists the prefix before creating
    // the repository there).
    let w = Workdir::new();
    let err = one_line_failure(&aws_pgsnap(
        &[
            "backup",
            "--db",
            "postgres://x@127.0.0.1:1/x",
            "--repo",
            &repo,
            "--key-file",
            &w.key(),
        ],
        &[],
    ));
    assert!(
        err.contains(&format!("S3 bucket `{missing}` does not exist"))
            && err.contains("create the bucket"),
        "{err}"
    );
    // A bucket that exists but holds no repository under the prefix keeps
    // the message it had.
    let bucket = new_bucket(false).await;
    let err = one_line_failure(&aws_pgsnap(
        &["list", "--repo", &format!("s3://{bucket}/prefix")],
        &[],
    ));
    assert!(
        err.contains(&format!("no pgsnap repository at s3://{bucket}/prefix")),
        "{err}"
    );
    // A bucket in another region than AWS_REGION: named, with the region
    // to set (S3's redirect says nothing a user can act on).
    let elsewhere = s3_in_another_region("eu-west-1");
    for args in [
        vec!["list", "--repo", "s3://b/prefix"],
        vec!["show", "--repo", "s3://b/prefix", "latest"],
    ] {
        let err = one_line_failure(&aws_pgsnap(&args, &[("AWS_ENDPOINT_URL", &elsewhere)]));
        assert!(
            err.contains("S3 bucket `b` is in region eu-west-1, not us-east-1")
                && err.contains("set AWS_REGION=eu-west-1"),
            "{args:?}: {err}"
        );
    }
}

/// `pgsnap` with no AWS credentials anywhere: an empty environment (no
/// `AWS_*` variables), a HOME without `~/.aws`, and instance metadata off
/// so that the SDK does not wait for an EC2 endpoint that is not there.
fn pgsnap_without_aws_credentials(args: &[&str], home: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pgsnap"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("AWS_CONFIG_FILE", home.join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_REGION", "us-east-1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run pgsnap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_aws_credentials_is_one_line_naming_the_ways_to_give_them() {
    let pg = pg();
    let src = pg.create_db("s3_nocreds");
    pg.psql(
        &src,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g",
    );
    let home = tempfile::tempdir().unwrap();
    let check = |err: &str, service: &str| {
        assert!(
            err.contains(&format!("no AWS credentials found for {service}"))
                && err.contains("AWS_ACCESS_KEY_ID")
                && err.contains("AWS_PROFILE"),
            "{err}"
        );
        // Not the SDK's report of every provider in its chain.
        assert!(
            !err.contains("ProviderChain")
                && !err.contains("provider")
                && !err.contains("wrong key")
                && err.len() < 600,
            "{err}"
        );
    };

    // S3.
    let bucket = new_bucket(false).await;
    let t = Instant::now();
    let err = one_line_failure(&pgsnap_without_aws_credentials(
        &["list", "--repo", &format!("s3://{bucket}/p")],
        home.path(),
    ));
    check(&err, &format!("s3://{bucket}"));
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());

    // KMS, reading an archive whose only slot is KMS (in a local
    // repository, so that only KMS needs credentials).
    let w = Workdir::new();
    let key = kms_key(None).await;
    aws_pgsnap_ok(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &w.repo(),
            "--kms-key-id",
            &key,
        ],
        &[],
    );
    let err = one_line_failure(&pgsnap_without_aws_credentials(
        &["verify", "--repo", &w.repo(), "latest"],
        home.path(),
    ));
    check(&err, "KMS");
    // And making one.
    let err = one_line_failure(&pgsnap_without_aws_credentials(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &w.repo(),
            "--kms-key-id",
            &key,
        ],
        home.path(),
    ));
    check(&err, "KMS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_unreachable_on_reading_is_not_a_wrong_key() {
    let pg = pg();
    let repo = kms_backup(pg, "s3_kms_down").await;
    // Nothing listens on port 9: KMS cannot be asked at all.
    let dead = "http://127.0.0.1:9";
    let err = one_line_failure(&aws_pgsnap(
        &["verify", "--repo", &repo, "latest"],
        &[("AWS_ENDPOINT_URL_KMS", dead)],
    ));
    let unreachable = |err: &str, endpoint: &str| {
        assert!(
            err.contains("KMS Decrypt")
                && err.contains(&format!("KMS at {endpoint} could not be reached or failed"))
                && err.contains("retry when KMS can be reached"),
            "{err}"
        );
        assert!(
            !err.contains("wrong key") && !err.contains("no key opens"),
            "{err}"
        );
    };
    unreachable(&err, dead);
    let dst = pg.create_db("s3_kms_down_dst");
    let err = one_line_failure(&aws_pgsnap(
        &["restore", "--repo", &repo, "latest", "--db", &pg.url(&dst)],
        &[("AWS_ENDPOINT_URL_KMS", dead)],
    ));
    unreachable(&err, dead);
    assert!(table_contents(pg, &dst).is_empty());

    // KMS failing on its side (HTTP 500) is no verdict on the key either.
    let failing = failing_kms(
        "500 Internal Server Error",
        "KMSInternalException",
        "internal error",
    );
    let err = one_line_failure(&aws_pgsnap(
        &["verify", "--repo", &repo, "latest"],
        &[("AWS_ENDPOINT_URL_KMS", &failing)],
    ));
    unreachable(&err, &failing);
    assert!(err.contains("KMSInternalException"), "{err}");

    // KMS answering and refusing the ciphertext is a wrong key.
    let refusing = refusing_kms(
        "InvalidCiphertextException",
        "the ciphertext refers to a customer master key that does not exist",
    );
    let err = one_line_failure(&aws_pgsnap(
        &["verify", "--repo", &repo, "latest"],
        &[("AWS_ENDPOINT_URL_KMS", &refusing)],
    ));
    assert!(
        err.contains("wrong key")
            && err.contains("InvalidCiphertextException")
            && !err.contains("could not be reached"),
        "{err}"
    );

    // A disabled key (or one pending deletion) is refused for its state:
    // no verdict on whether it is the right one, and how to enable it.
    // (moto does not refuse a disabled key's Decrypt; a stand-in does.)
    let disabled = refusing_kms(
        "DisabledException",
        "arn:aws:kms:us-east-1:123456789012:key/x is disabled.",
    );
    // Credentials that may not use the key: no verdict on the key either
    // (QA: "wrong key: no key opens this archive: ... 403").
    let denied = refusing_kms(
        "AccessDeniedException",
        "User: arn:aws:iam::123456789012:user/ro is not authorized to perform: kms:Decrypt",
    );
    let cases: [(&str, &[&str]); 2] = [
        (
            &disabled,
            &[
                "DisabledException",
                "was refused for the key's state",
                "aws kms enable-key",
            ],
        ),
        (
            &denied,
            &[
                "AccessDeniedException",
                "may not use this key (they need kms:Decrypt",
            ],
        ),
    ];
    for (kms, says) in cases {
        for args in [
            vec!["verify", "--repo", &repo, "latest"],
            vec!["restore", "--repo", &repo, "latest", "--db", &pg.url(&dst)],
        ] {
            let err = one_line_failure(&aws_pgsnap(&args, &[("AWS_ENDPOINT_URL_KMS", kms)]));
            assert!(
                says.iter().all(|s| err.contains(s))
                    && !err.contains("wrong key")
                    && !err.contains("no key opens"),
                "{err}"
            );
        }
    }
    assert!(table_contents(pg, &dst).is_empty());
}

/// No AWS region anywhere (no variable, no profile): a configuration
/// error, exit 1 with the way to give one, not a usage error (exit 2).
#[test]
fn no_region_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let none = dir.path().join("none");
    for args in [
        &["list", "--repo", "s3://pgsnap-test-bucket/prod"][..],
        &[
            "backup",
            "--db",
            "postgres://nobody@127.0.0.1:1/x",
            "--repo",
            &dir.path().join("repo").to_string_lossy(),
            "--kms-key-id",
            "alias/x",
        ][..],
    ] {
        let out = common::scrubbed(Command::new(env!("CARGO_BIN_EXE_pgsnap")).args(args))
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env_remove("AWS_PROFILE")
            .env("AWS_CONFIG_FILE", &none)
            .env("AWS_SHARED_CREDENTIALS_FILE", &none)
            .output()
            .unwrap();
        let err = common::failure_stderr(&out, 1);
        assert!(
            err.contains("no AWS region") && err.contains("AWS_REGION"),
            "{args:?}: {err}"
        );
    }
}

/// An endpoint that takes the connection and never answers (a stalled
/// proxy, a stopped server): S3 and KMS requests give up after
/// `PGSNAP_AWS_TIMEOUT` seconds and say so in one line, instead of holding
/// the run (and a backup's database snapshot) forever.
#[test]
fn an_endpoint_that_never_answers_times_out() {
    // Never accepted: the kernel completes the handshake, nothing replies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let w = Workdir::new();
    for (what, args) in [
        ("S3", vec!["list", "--repo", "s3://silent/prod"]),
        (
            "KMS",
            vec![
                "backup",
                "--db",
                "postgres://127.0.0.1:1/none",
                "--repo",
                &w.repo(),
                "--kms-key-id",
                "alias/any",
            ],
        ),
    ] {
        let t = std::time::Instant::now();
        let out = aws_pgsnap(
            &args,
            &[("AWS_ENDPOINT_URL", &url), ("PGSNAP_AWS_TIMEOUT", "1")],
        );
        let line = one_line_failure(&out);
        assert!(
            t.elapsed() < std::time::Duration::from_secs(60),
            "{what}: {:?}",
            t.elapsed()
        );
        assert!(
            line.to_lowercase().contains("timeout") || line.contains("timed out"),
            "{what}: {line}"
        );
    }
    drop(silent);
}

/// S3 refuses a HEAD request with a bare status (an error has no body to
/// name it): wrong credentials or a denied HeadObject, the first request
/// of every command, must still say what to check.
#[test]
fn a_bare_403_says_access_denied() {
    use std::io::{Read, Write};
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in server.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 8192];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    let out = aws_pgsnap(
        &["list", "--repo", "s3://denied/prod"],
        &[("AWS_ENDPOINT_URL", &url)],
    );
    let line = one_line_failure(&out);
    assert!(line.contains("HTTP 403 Forbidden: access denied"), "{line}");
    assert!(line.contains("check the AWS credentials"), "{line}");
}

/// A backup under a KMS key of one region opens in another (disaster
/// recovery): the slot names the key by its ARN, and Decrypt goes to the
/// ARN's region, not to AWS_REGION's, where the key is unknown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_key_of_another_region_opens_its_archive() {
    let pg = pg();
    let src = pg.create_db("s3_kms_region");
    pg.psql(
        &src,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g",
    );
    let eu = aws_sdk_kms::Client::from_conf(
        kms_client()
            .config()
            .to_builder()
            .region(Region::new("eu-west-1"))
            .build(),
    );
    let arn = eu
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    assert!(arn.contains(":eu-west-1:"), "{arn}");
    let bucket = new_bucket(false).await;
    let repo = format!("s3://{bucket}/dr");
    // The backup runs in us-east-1 with the eu-west-1 key's ARN, and is
    // verified and restored from eu-west-1 and us-east-1 alike.
    aws_pgsnap_ok(
        &[
            "backup",
            "--db",
            &pg.url(&src),
            "--repo",
            &repo,
            "--kms-key-id",
            &arn,
        ],
        &[],
    );
    for region in ["eu-west-1", "us-east-1"] {
        aws_pgsnap_ok(
            &["verify", "--repo", &repo, "latest"],
            &[("AWS_REGION", region)],
        );
    }
    let dst = pg.create_db("s3_kms_region_dst");
    aws_pgsnap_ok(
        &["restore", "--repo", &repo, "latest", "--db", &pg.url(&dst)],
        &[("AWS_REGION", "us-east-1")],
    );
    assert_eq!(table_contents(pg, &src), table_contents(pg, &dst));
}

/// On S3 a repository is a prefix, and other things may live beside or
/// below it: a prefix holding someone else's objects is not taken for a
/// repository that lost its config, and a repository nested below another
/// one's prefix is not listed as the outer one's (damaged) backups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_objects_under_a_prefix_are_not_a_repository() {
    let pg = pg();
    let src = pg.create_db("s3_mixed");
    pg.psql(
        &src,
        "CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g",
    );
    let w = Workdir::new();
    let bucket = new_bucket(false).await;
    let backup_to = |repo: String| {
        aws_pgsnap(
            &[
                "backup",
                "--db",
                &pg.url(&src),
                "--repo",
                &repo,
                "--key-file",
                &w.key(),
            ],
            &[],
        )
    };
    assert!(backup_to(format!("s3://{bucket}/data/x")).status.success());
    s3_client()
        .put_object()
        .bucket(&bucket)
        .key("data/payroll.csv")
        .body(aws_sdk_s3::primitives::ByteStream::from_static(b"a,b\n"))
        .send()
        .await
        .unwrap();
    let line = one_line_failure(&backup_to(format!("s3://{bucket}/data")));
    assert!(line.contains("holds no pgsnap repository"), "{line}");
    let keys = object_keys(&bucket).await;
    assert!(!keys.contains(&"data/config".to_string()), "{keys:?}");

    // A repository at the bucket's root, another below it.
    let nested = new_bucket(false).await;
    assert!(backup_to(format!("s3://{nested}")).status.success());
    assert!(backup_to(format!("s3://{nested}/prod")).status.success());
    for (repo, n) in [
        (format!("s3://{nested}"), 1),
        (format!("s3://{nested}/prod"), 1),
    ] {
        let out = aws_pgsnap(&["list", "--repo", &repo, "--json"], &[]);
        assert!(out.status.success(), "{out:?}");
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows = list.as_array().unwrap();
        assert_eq!(rows.len(), n, "{repo}: {list}");
        assert!(
            rows.iter().all(|r| r["status"] == "complete"),
            "{repo}: {list}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("names backup"),
            "{out:?}"
        );
    }
}
