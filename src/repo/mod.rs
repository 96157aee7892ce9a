//! The repository: where backups live, how they are named, and which of them
//! count as complete.
//!
//! Layout (keys relative to the repository root; `BASE` is `backups/` in a
//! local directory and empty on S3, see [`Storage::backups_base`]):
//! ```text
//! config                                     repository id and format version
//! BASE/YYYY-MM-DD/<id>/<id>.pgsnap           the archive
//! BASE/YYYY-MM-DD/<id>/<id>.manifest.json    written last; its presence makes the backup exist
//! ```
//! A backup's objects share a directory (an S3 prefix), so one date and one
//! id are one listing away, and a per-environment repository prefix gives
//! `s3://bucket/{environment}/{date}/<id>/` paths.
//! Backup ids sort by time: `20261125T020000Z-3f9a` (UTC start, 16 random bits).

pub mod local;
pub mod manifest;
pub mod reader;
pub mod s3;
pub mod storage;

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
pub use local::LocalStorage;
pub use manifest::{Manifest, TableRecord};
pub use s3::S3Storage;
pub use storage::{ObjectMeta, ObjectWriter, Storage, UploadOptions, Version, TEMP_MARKER};

const CONFIG_KEY: &str = "config";
/// How many times, 100 ms apart, a run that finds another creating the
/// repository looks for its config before it gives up.
const CONFIG_WAIT_TRIES: usize = 50;
const CONFIG_TYPE: &str = "pgsnap-repository";
const MANIFEST_SUFFIX: &str = ".manifest.json";
const ARCHIVE_SUFFIX: &str = ".pgsnap";
/// How many manifests are read at once (each is a request on S3).
const MANIFEST_READS: usize = 16;
/// Temporary objects older than this are left-overs of killed runs.
const STALE_AFTER_HOURS: i64 = 24;

/// How often a running backup writes its claim again (see
/// [`Repository::refresh_claim`]): well inside the day after which a
/// sweep takes a run for dead.
pub const CLAIM_REFRESH: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepoConfig {
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub id: String,
    pub created_at: DateTime<Utc>,
}

/// What `list` knows of one backup.
#[derive(Debug, Clone)]
pub struct BackupEntry {
    pub manifest: Manifest,
    /// `complete`, or why not (`archive missing`, `archive size differs`).
    pub status: String,
}

impl BackupEntry {
    pub fn is_complete(&self) -> bool {
        self.status == "complete"
    }
}

/// A manifest [`Repository::list_all`] cannot use.
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The backup id its place names.
    pub id: String,
    pub reason: String,
}

/// One listing of a repository's backups.
struct Listing {
    /// Every manifest's backup id (the one its place names) and key, by id:
    /// oldest first.
    manifests: Vec<(String, String)>,
    /// Every listed object's size, by key.
    sizes: std::collections::HashMap<String, u64>,
}

impl Listing {
    /// The manifests newest first, a start second at a time (an id's first
    /// 16 characters: `20261125T020000Z`).
    fn newest_seconds(&self) -> impl Iterator<Item = &[(String, String)]> {
        self.manifests
            .chunk_by(|a, b| a.0.get(..16) == b.0.get(..16))
            .rev()
    }
}

#[derive(Clone)]
pub struct Repository {
    storage: Arc<dyn Storage>,
    pub config: RepoConfig,
}

/// A new backup id for a run that started at `t`.
pub fn new_backup_id(t: DateTime<Utc>) -> String {
    format!(
        "{}-{:04x}",
        t.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u16>()
    )
}

/// Refuses backup `m` when `database` names another database than its own
/// (an id given with `--source-database`).
pub fn check_database(m: &Manifest, database: Option<&str>) -> Result<()> {
    match database.filter(|db| *db != m.database) {
        Some(db) => Err(Error::Usage(format!(
            "backup `{}` is of database {}, not {db}",
            m.id, m.database
        ))),
        None => Ok(()),
    }
}

/// The date directory of a backup id (`20261125T...` -> `2026-11-25`).
pub(crate) fn id_date(id: &str) -> Result<String> {
    let ok = id.len() >= 17
        && id.is_ascii()
        && id[..8].bytes().all(|b| b.is_ascii_digit())
        && &id[8..9] == "T";
    if !ok {
        return Err(Error::Usage(format!(
            "`{id}` is not a backup id (like 20261125T020000Z-3f9a) or `latest`"
        )));
    }
    Ok(format!("{}-{}-{}", &id[..4], &id[4..6], &id[6..8]))
}

fn archive_key_in(base: &str, id: &str) -> Result<String> {
    Ok(format!("{base}{}/{id}/{id}{ARCHIVE_SUFFIX}", id_date(id)?))
}

fn manifest_key_in(base: &str, id: &str) -> Result<String> {
    Ok(format!("{base}{}/{id}/{id}{MANIFEST_SUFFIX}", id_date(id)?))
}

/// True when a `--repo` argument names an S3 repository.
pub fn is_s3(spec: &str) -> bool {
    spec.starts_with("s3://")
}

/// Opens the storage a `--repo` argument names: a directory, or
/// `s3://BUCKET/PREFIX` (credentials, region and endpoint from the AWS SDK's
/// default chain).
pub async fn storage_for(spec: &str) -> Result<Arc<dyn Storage>> {
    storage_for_upload(spec, UploadOptions::default()).await
}

/// Like [`storage_for`], with the way new archives are stored (SSE-KMS,
/// storage class, tags: S3 only).
pub async fn storage_for_upload(spec: &str, upload: UploadOptions) -> Result<Arc<dyn Storage>> {
    if is_s3(spec) {
        return Ok(Arc::new(
            S3Storage::from_url(spec).await?.with_upload_options(upload),
        ));
    }
    if spec.contains("://") {
        return Err(Error::Usage(format!(
            "unknown repository scheme in `{spec}`: use a directory path or s3://BUCKET/PREFIX"
        )));
    }
    if upload != UploadOptions::default() {
        return Err(Error::Usage(
            "--sse-kms-key-id, --storage-class and --retention-class apply to s3:// \
             repositories only"
                .into(),
        ));
    }
    let path = std::path::Path::new(spec);
    if path.exists() && !path.is_dir() {
        return Err(Error::Usage(format!(
            "repository {spec} is a file; give a directory (a backup creates it)"
        )));
    }
    Ok(Arc::new(LocalStorage::new(spec)))
}

fn new_config() -> RepoConfig {
    RepoConfig {
        kind: CONFIG_TYPE.into(),
        version: 1,
        id: hex::encode(rand::random::<[u8; 16]>()),
        created_at: Utc::now(),
    }
}

/// The backup id of a key in a repository's layout,
/// `{base}YYYY-MM-DD/{id}/{id}.{what}`; `None` for anything else (a file of
/// someone else's, another repository nested below the prefix).
fn backup_id_of_key<'k>(base: &str, key: &'k str) -> Option<&'k str> {
    let mut parts = key.strip_prefix(base)?.split('/');
    let (date, id, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || id_date(id).ok()? != date {
        return None;
    }
    file.strip_prefix(id)?.starts_with('.').then_some(id)
}

/// Whether a location without a config holds a repository that lost it:
/// everything in it is under the backups' folder, and a manifest there
/// reads as one.
async fn holds_only_backups(storage: &dyn Storage) -> Result<bool> {
    let base = storage.backups_base();
    let objects = storage.list("").await?;
    // Besides the backups, only a config being written again by another
    // run (a scheduler starting several backups at once).
    let ours = |k: &str| {
        backup_id_of_key(base, k).is_some()
            || k == CONFIG_KEY
            || (k.starts_with(CONFIG_KEY) && k.contains(TEMP_MARKER))
    };
    if objects.is_empty() || !objects.iter().all(|o| ours(&o.key)) {
        return Ok(false);
    }
    for o in objects
        .iter()
        .filter(|o| o.key.ends_with(MANIFEST_SUFFIX) && !o.key.contains(TEMP_MARKER))
    {
        if Manifest::from_json(&storage.get(&o.key).await?).is_ok() {
            return Ok(true);
        }
    }
    Ok(false)
}

impl Repository {
    /// Opens an existing repository.
    pub async fn open(storage: Arc<dyn Storage>) -> Result<Repository> {
        let data = match storage.head(CONFIG_KEY).await? {
            Some(_) => storage.get(CONFIG_KEY).await?,
            None => {
                // A missing bucket is not an empty repository: say which.
                storage.check_location().await?;
                // Its backups outlive a lost config: they stay readable,
                // and the next backup writes the config again.
                if holds_only_backups(storage.as_ref()).await? {
                    tracing::warn!(
                        "the repository at {} has lost its config file; its backups are read \
                         as they are, and the next backup writes the config again",
                        storage.location()
                    );
                    return Ok(Repository {
                        storage,
                        config: new_config(),
                    });
                }
                return Err(Error::Repo(format!(
                    "no pgsnap repository at {} (a backup creates one)",
                    storage.location()
                )));
            }
        };
        let config: RepoConfig = serde_json::from_slice(&data).map_err(|e| {
            Error::Repo(format!(
                "{}/config is not a pgsnap repository config: {e}",
                storage.location()
            ))
        })?;
        if config.kind != CONFIG_TYPE {
            return Err(Error::Repo(format!(
                "{}/config is not a pgsnap repository config",
                storage.location()
            )));
        }
        if config.version > 1 {
            return Err(Error::Repo(format!(
                "repository format {} is newer than this pgsnap; upgrade pgsnap",
                config.version
            )));
        }
        Ok(Repository { storage, config })
    }

    /// Opens the repository, creating it when the location holds none.
    pub async fn open_or_init(storage: Arc<dyn Storage>) -> Result<Repository> {
        if storage.head(CONFIG_KEY).await?.is_some() {
            return Repository::open(storage).await;
        }
        let existing = storage.list("").await?;
        if !existing.is_empty() {
            // Another run may be creating the repository at this moment (a
            // scheduler starting several backups on its first night): then
            // its config, or the config's temporary file, is all there is.
            if existing.iter().any(|o| o.key == CONFIG_KEY) {
                return Repository::open(storage).await;
            }
            let config_only = existing
                .iter()
                .all(|o| o.key.starts_with(CONFIG_KEY) && o.key.contains(TEMP_MARKER));
            if config_only {
                for _ in 0..CONFIG_WAIT_TRIES {
                    if storage.head(CONFIG_KEY).await?.is_some() {
                        return Repository::open(storage).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
            if !holds_only_backups(storage.as_ref()).await? {
                return Err(Error::Repo(format!(
                "{} is not empty and holds no pgsnap repository; choose an empty or new location",
                    storage.location()
                )));
            }
            tracing::warn!(
                "the repository at {} had lost its config file; its backups are intact, and \
                 the config is written again",
                storage.location()
            );
        }
        let config = new_config();
        let mut data = serde_json::to_vec_pretty(&config).expect("config serializes");
        data.push(b'\n');
        storage.put(CONFIG_KEY, Bytes::from(data)).await?;
        // Runs that all found the location empty all write a config, and
        // the last one stays: read back the one that did, so that every run
        // names the same repository.
        Repository::open(storage).await
    }

    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    pub fn location(&self) -> String {
        self.storage.location()
    }

    /// The key of backup `id`'s archive.
    pub fn archive_key(&self, id: &str) -> Result<String> {
        archive_key_in(self.storage.backups_base(), id)
    }

    /// The key of backup `id`'s manifest.
    pub fn manifest_key(&self, id: &str) -> Result<String> {
        manifest_key_in(self.storage.backups_base(), id)
    }

    /// Fails, before anything is changed, when the archive of `m` cannot be
    /// read now: it sits in an archive storage class (S3 Glacier Flexible
    /// Retrieval, Deep Archive) without a restored copy.
    pub async fn check_archive_readable(&self, m: &Manifest) -> Result<()> {
        let Some(h) = self.storage.head(&m.archive.key).await? else {
            return Err(Error::Integrity(format!(
                "backup `{}` is damaged: its archive {} is missing",
                m.id, m.archive.key
            )));
        };
        if h.needs_thaw() {
            return Err(Error::NotThawed(format!(
                "backup `{}`'s archive {}/{} is in storage class {} and must be thawed before \
                 it can be read (thaw {}); request it with `pgsnap restore ... --request-thaw` \
                 (or `aws s3api restore-object`) and retry when it completes (minutes to hours)",
                m.id,
                self.location(),
                m.archive.key,
                h.storage_class.as_deref().unwrap_or("?"),
                h.thaw_state()
            )));
        }
        Ok(())
    }

    /// Every backup with a manifest, oldest first, with its status.
    /// Manifests that cannot be read are logged and left out.
    pub async fn list(&self) -> Result<Vec<BackupEntry>> {
        let (entries, unreadable) = self.list_all().await?;
        for u in unreadable {
            tracing::warn!(
                "skipping unreadable manifest of backup {}: {}",
                u.id,
                u.reason
            );
        }
        Ok(entries)
    }

    /// [`Repository::list`], and the manifests it cannot read, oldest first:
    /// damaged, cut short, of a newer format, or naming another backup than
    /// the one whose place they are in (a manifest copied over another's
    /// would otherwise list that backup twice and verify it in the other's
    /// name).
    pub async fn list_all(&self) -> Result<(Vec<BackupEntry>, Vec<Unreadable>)> {
        let listing = self.listing().await?;
        let (mut out, mut unreadable) = self.read_entries(&listing, &listing.manifests).await?;
        out.sort_by(|a, b| {
            (a.manifest.started_at, &a.manifest.id).cmp(&(b.manifest.started_at, &b.manifest.id))
        });
        unreadable.sort_by(|a, b| a.id.cmp(&b.id));
        Ok((out, unreadable))
    }

    /// One listing of the repository: every manifest's key with the backup
    /// id its place names, by id (oldest first), and every object's size.
    async fn listing(&self) -> Result<Listing> {
        let objects = self.storage.list(self.storage.backups_base()).await?;
        let mut manifests = Vec::new();
        for o in &objects {
            if !o.key.ends_with(MANIFEST_SUFFIX) || o.key.contains(TEMP_MARKER) {
                continue;
            }
            // The id its place names: `{date}/{id}/{id}.manifest.json`. A
            // manifest elsewhere is not this repository's (another one,
            // nested below an S3 prefix).
            if let Some(id) = backup_id_of_key(self.storage.backups_base(), &o.key) {
                manifests.push((id.to_string(), o.key.clone()));
            }
        }
        manifests.sort();
        let sizes = objects.into_iter().map(|o| (o.key, o.size)).collect();
        Ok(Listing { manifests, sizes })
    }

    /// Reads the manifests `which` (of `listing`), a few at a time: on S3
    /// each is a request, and a year of daily backups is hundreds of them.
    async fn read_entries(
        &self,
        listing: &Listing,
        which: &[(String, String)],
    ) -> Result<(Vec<BackupEntry>, Vec<Unreadable>)> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        // Owned items and storage: a borrowing closure's future is not
        // `Send` for every lifetime, which the CLI's spawned task needs.
        let read = stream::iter(which.iter().cloned())
            .map(|(id, key)| {
                let storage = self.storage.clone();
                async move {
                    let data = storage.get(&key).await?;
                    Ok::<_, Error>((id, key, data))
                }
            })
            .buffered(MANIFEST_READS)
            .try_collect::<Vec<_>>()
            .await?;
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for (id, key, data) in read {
            let manifest = match Manifest::from_json(&data) {
                Ok(m) if self.manifest_key(&m.id).ok().as_deref() == Some(key.as_str()) => m,
                Ok(m) => {
                    unreadable.push(Unreadable {
                        reason: format!("its manifest {key} names backup {}", m.id),
                        id,
                    });
                    continue;
                }
                Err(e) => {
                    unreadable.push(Unreadable {
                        reason: format!("its manifest {key} is unreadable: {e}"),
                        id,
                    });
                    continue;
                }
            };
            let status = match listing.sizes.get(&manifest.archive.key) {
                None => "archive missing".to_string(),
                Some(&s) if s != manifest.archive.size_bytes => format!(
                    "archive size differs ({s} bytes, manifest says {})",
                    manifest.archive.size_bytes
                ),
                Some(_) => "complete".to_string(),
            };
            out.push(BackupEntry { manifest, status });
        }
        Ok((out, unreadable))
    }

    /// The manifests of `listing`, newest first, read one start second at
    /// a time, so that `latest` reads a manifest or two and not the whole
    /// repository's. Ids sort by their start second; within one second the
    /// order is [`Repository::list_all`]'s (start time, then id).
    async fn read_newest(
        &self,
        listing: &Listing,
        second: &[(String, String)],
    ) -> Result<(Vec<BackupEntry>, Vec<Unreadable>)> {
        let (mut entries, unreadable) = self.read_entries(listing, second).await?;
        entries.sort_by(|a, b| {
            (b.manifest.started_at, &b.manifest.id).cmp(&(a.manifest.started_at, &a.manifest.id))
        });
        Ok((entries, unreadable))
    }

    /// The unreadable manifests of backups newer than `than` (by id, which
    /// sorts by start time to the second), as "id (reason)", oldest first.
    fn unreadable_newer(unreadable: &[Unreadable], than: Option<&Manifest>) -> Vec<String> {
        let mut newer: Vec<&Unreadable> = unreadable
            .iter()
            .filter(|u| than.map_or(true, |m| u.id > m.id))
            .collect();
        newer.sort_by(|a, b| a.id.cmp(&b.id));
        newer
            .into_iter()
            .map(|u| format!("{} ({})", u.id, u.reason))
            .collect()
    }

    /// The manifest of `id`, or of the newest complete backup for `latest`.
    /// A newer backup that is damaged is passed over with a warning naming
    /// it (returned, for the caller's report): a restore wants the newest
    /// backup that can be restored, and the operator must still hear that
    /// the newest one cannot. Passed over, `latest` stays with the damaged
    /// backup's database: in a repository that several databases share, the
    /// next backup may be of another one.
    pub async fn resolve_noting(&self, id: &str) -> Result<(Manifest, Option<String>)> {
        self.resolve_of(id, None).await
    }

    /// [`Repository::resolve_noting`] among the backups of database
    /// `database` only, when it is given: `latest` is then its newest
    /// complete backup, and an id of another database's backup is refused.
    pub async fn resolve_of(
        &self,
        id: &str,
        database: Option<&str>,
    ) -> Result<(Manifest, Option<String>)> {
        if id != "latest" {
            let m = self.resolve_id(id).await?;
            check_database(&m, database)?;
            return Ok((m, None));
        }
        let database = self.latest_of(database).await?;
        let database = database.as_deref();
        let listing = self.listing().await?;
        let mut unreadable = Vec::new();
        let mut passed_over = Vec::new();
        let mut of: Option<(String, String)> = None;
        for second in listing.newest_seconds() {
            let (entries, u) = self.read_newest(&listing, second).await?;
            unreadable.extend(u);
            for b in entries {
                let m = &b.manifest;
                if database.is_some_and(|db| db != m.database) {
                    continue;
                }
                if of
                    .as_ref()
                    .is_some_and(|(source, db)| (source, db) != (&m.source, &m.database))
                {
                    continue;
                }
                if b.is_complete() {
                    let mut warning = (!passed_over.is_empty()).then(|| {
                        format!(
                            "`latest` is {}: newer backup(s) of database {} are damaged: {}",
                            m.id,
                            m.database,
                            passed_over.join("; ")
                        )
                    });
                    // Of which database a manifest that cannot be read was is
                    // unknown: any newer one is said.
                    let newer = Self::unreadable_newer(&unreadable, Some(m));
                    if !newer.is_empty() {
                        let w = format!(
                            "newer backup(s) cannot be read, and were passed over: {}",
                            newer.join("; ")
                        );
                        warning = Some(match warning {
                            Some(earlier) => format!("{earlier}; {w}"),
                            None => format!("`latest` is {}: {w}", m.id),
                        });
                    }
                    return Ok((b.manifest, warning));
                }
                of = Some((m.source.clone(), m.database.clone()));
                passed_over.push(format!("{} ({})", m.id, b.status));
            }
        }
        Err(match of {
            Some((_, db)) => Error::Integrity(format!(
                "no complete backup of database {db} in {}: {}",
                self.location(),
                passed_over.join("; ")
            )),
            None => match database {
                Some(db) => self.no_backups_of(db, "no complete backup").await,
                None => Error::Repo(format!("no complete backup in {}", self.location())),
            },
        })
    }

    /// "No backup of database `db`", a usage error naming the databases the
    /// repository does hold backups of (a mistyped --source-database).
    async fn no_backups_of(&self, db: &str, what: &str) -> Error {
        let held = match self.databases().await {
            Ok(dbs) if !dbs.is_empty() => format!(
                "; it holds backups of database(s) {} (--source-database)",
                dbs.join(", ")
            ),
            _ => String::new(),
        };
        let line = format!("{what} of database {db} in {}{held}", self.location());
        match held.is_empty() {
            true => Error::Repo(line),
            false => Error::Usage(line),
        }
    }

    /// The database `latest` is among: the one named, or with none named
    /// the one database the repository's backups are of (none in an empty
    /// one). In a repository that several databases share, `latest` would
    /// be whichever was backed up last, and a restore of it (with
    /// `--clean`) would put another database's data over the target:
    /// refused as ambiguous. Reads every manifest when none is named.
    async fn latest_of(&self, database: Option<&str>) -> Result<Option<String>> {
        match database {
            Some(db) => Ok(Some(db.to_string())),
            None => self.sole_database().await,
        }
    }

    /// The one database the repository's backups are of, or none in an
    /// empty repository; several are a usage error (see `latest_of`).
    async fn sole_database(&self) -> Result<Option<String>> {
        let mut dbs = self.databases().await?;
        if dbs.len() > 1 {
            return Err(Error::Usage(format!(
                "`latest` is ambiguous: {} holds backups of databases {}; name one with \
                 --source-database NAME, or give a backup id (see `pgsnap list`)",
                self.location(),
                dbs.join(", ")
            )));
        }
        Ok(dbs.pop())
    }

    /// The databases the repository's readable manifests are of, sorted.
    /// Reads every manifest.
    pub async fn databases(&self) -> Result<Vec<String>> {
        let (entries, _) = self.list_all().await?;
        let mut out: Vec<String> = entries.into_iter().map(|b| b.manifest.database).collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// [`Repository::resolve_noting`], the warning logged only.
    pub async fn resolve(&self, id: &str) -> Result<Manifest> {
        let (m, warning) = self.resolve_noting(id).await?;
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        Ok(m)
    }

    /// The manifest of backup `id` (not `latest`), if its archive is whole.
    async fn resolve_id(&self, id: &str) -> Result<Manifest> {
        let b = self.entry(id).await?;
        if !b.is_complete() {
            return Err(Error::Integrity(format!(
                "backup `{id}` is damaged: {} ({})",
                b.status, b.manifest.archive.key
            )));
        }
        Ok(b.manifest)
    }

    /// Backup `id` (not `latest`) as `list` sees it: its manifest, and
    /// whether its archive is whole (`show` shows a damaged one too).
    pub async fn entry(&self, id: &str) -> Result<BackupEntry> {
        let key = self.manifest_key(id)?;
        if self.storage.head(&key).await?.is_none() {
            return Err(Error::Repo(format!(
                "no backup `{id}` in {} (see `pgsnap list`)",
                self.location()
            )));
        }
        let data = self.storage.get(&key).await?;
        let m = Manifest::from_json(&data)
            .map_err(|e| Error::Repo(format!("manifest of `{id}` is unreadable: {e}")))?;
        if m.id != id {
            return Err(Error::Integrity(format!(
                "backup `{id}` is damaged: its manifest {key} names backup {}",
                m.id
            )));
        }
        let status = match self.storage.head(&m.archive.key).await? {
            Some(h) if h.size == m.archive.size_bytes => "complete".to_string(),
            Some(h) => format!(
                "archive size differs ({} bytes, manifest says {})",
                h.size, m.archive.size_bytes
            ),
            None => "archive missing".to_string(),
        };
        Ok(BackupEntry {
            manifest: m,
            status,
        })
    }

    /// Like [`Repository::resolve`], but `latest` is the newest backup
    /// whatever its state: a check (`verify latest` every night) must fail
    /// when the newest backup is damaged, not pass on an older one.
    pub async fn resolve_newest(&self, id: &str) -> Result<Manifest> {
        self.resolve_newest_of(id, None).await
    }

    /// [`Repository::resolve_newest`] among the backups of `database` when
    /// it is given (see [`Repository::resolve_of`]). A newer backup whose
    /// manifest cannot be read fails the check too: of which database it
    /// was is unknown.
    pub async fn resolve_newest_of(&self, id: &str, database: Option<&str>) -> Result<Manifest> {
        if id != "latest" {
            let (m, warning) = self.resolve_of(id, database).await?;
            if let Some(w) = warning {
                tracing::warn!("{w}");
            }
            return Ok(m);
        }
        let database = self.latest_of(database).await?;
        let database = database.as_deref();
        let listing = self.listing().await?;
        let mut unreadable = Vec::new();
        for second in listing.newest_seconds() {
            let (entries, u) = self.read_newest(&listing, second).await?;
            unreadable.extend(u);
            let newest = entries
                .into_iter()
                .find(|b| database.map_or(true, |db| db == b.manifest.database));
            let Some(newest) = newest else {
                continue;
            };
            if let Some(u) = Self::unreadable_newer(&unreadable, Some(&newest.manifest)).pop() {
                return Err(Self::newest_unreadable(&u));
            }
            if !newest.is_complete() {
                return Err(Error::Integrity(format!(
                    "the newest backup `{}` is damaged: {}",
                    newest.manifest.id, newest.status
                )));
            }
            return Ok(newest.manifest);
        }
        if let Some(u) = Self::unreadable_newer(&unreadable, None).pop() {
            return Err(Self::newest_unreadable(&u));
        }
        Err(match database {
            Some(db) => self.no_backups_of(db, "no backups").await,
            None => Error::Repo(format!("no backups in {}", self.location())),
        })
    }

    fn newest_unreadable(u: &str) -> Error {
        Error::Integrity(format!(
            "the newest backup {u} is damaged; restore it from a copy of the repository, \
             or check an older one by its id"
        ))
    }

    /// Writes a manifest; the backup becomes visible to `list` here.
    pub async fn commit(&self, m: &Manifest) -> Result<()> {
        self.storage
            .put(&self.manifest_key(&m.id)?, Bytes::from(m.to_json()))
            .await
    }

    /// Claims backup id `id` for a new run: false when another run holds it,
    /// or a backup by it exists. A run's id is its start second and 16
    /// random bits, so runs started in one second into one repository can
    /// draw the same one; without the claim, the second would write its
    /// archive and manifest over the first's and both would report success.
    /// The claim is an object only one writer can create
    /// ([`Storage::put_new`]), released by [`Repository::release_id`] once
    /// the run's manifest is in place or its failure cleaned up; a killed
    /// run's is a temporary object, swept after a day like the rest.
    pub async fn claim_id(&self, id: &str) -> Result<bool> {
        let claim = self.claim_key(id)?;
        if !self.storage.put_new(&claim, Bytes::new()).await? {
            return Ok(false);
        }
        // A run of the same second that already finished has released its
        // claim: what it wrote is there instead.
        for key in [self.manifest_key(id)?, self.archive_key(id)?] {
            if self.storage.head(&key).await?.is_some() {
                self.release_id(id).await;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes the claim [`Repository::claim_id`] made again: a run does so
    /// every [`CLAIM_REFRESH`] while it lives, so that a sweep tells it from
    /// a killed run's, which stops at its start.
    pub async fn refresh_claim(&self, id: &str) {
        let Ok(claim) = self.claim_key(id) else {
            return;
        };
        if let Err(e) = self.storage.put(&claim, Bytes::new()).await {
            tracing::warn!("could not refresh the claim on backup id {id}: {e}");
        }
    }

    /// Gives up the claim [`Repository::claim_id`] made.
    pub async fn release_id(&self, id: &str) {
        let Ok(claim) = self.claim_key(id) else {
            return;
        };
        if let Err(e) = self.storage.discard(&claim).await {
            tracing::warn!("could not remove the claim on backup id {id}: {e}");
        }
    }

    fn claim_key(&self, id: &str) -> Result<String> {
        Ok(format!(
            "{}{}/{id}/{id}{TEMP_MARKER}claim",
            self.storage.backups_base(),
            id_date(id)?
        ))
    }

    /// Removes temporary objects and unfinished (multipart) uploads of runs
    /// that died, older than a day (the age keeps a concurrent run's uploads
    /// safe), and the archive a dead run finished without its manifest
    /// (its claim says a run made it and never ended). Returns how many.
    pub async fn sweep_stale(&self, now: DateTime<Utc>) -> Result<usize> {
        let base = self.storage.backups_base();
        let listed = self.storage.list(base).await?;
        let keys: std::collections::HashSet<&str> = listed.iter().map(|o| o.key.as_str()).collect();
        let claim_suffix = format!("{TEMP_MARKER}claim");
        let mut emptied = std::collections::BTreeSet::new();
        // A run alive keeps its claim fresh ([`Repository::refresh_claim`]):
        // its upload is not a killed run's, however long ago it began (QA:
        // a second backup's sweep aborted a running one's upload).
        let live: Vec<String> = listed
            .iter()
            .filter(|o| o.key.ends_with(&claim_suffix))
            .filter(|o| {
                o.modified
                    .is_some_and(|m| now - m <= Duration::hours(STALE_AFTER_HOURS))
            })
            .filter_map(|o| backup_id_of_key(base, &o.key))
            .filter_map(|id| archive_key_in(base, id).ok())
            .collect();
        let mut n = self
            .storage
            .sweep_uploads(now - Duration::hours(STALE_AFTER_HOURS), &live)
            .await?;
        for o in &listed {
            let old = o
                .modified
                .map(|m| now - m > Duration::hours(STALE_AFTER_HOURS))
                .unwrap_or(false);
            if !o.key.contains(TEMP_MARKER) || !old {
                continue;
            }
            // A stale claim is a run that died. Killed after its archive
            // was whole but before its manifest was written, it left an
            // archive that nothing lists and nothing would ever remove.
            let claim_of = o
                .key
                .ends_with(&claim_suffix)
                .then(|| backup_id_of_key(base, &o.key))
                .flatten();
            if let Some(id) = claim_of {
                if let (Ok(archive), Ok(manifest)) =
                    (archive_key_in(base, id), manifest_key_in(base, id))
                {
                    if keys.contains(archive.as_str()) && !keys.contains(manifest.as_str()) {
                        self.storage.discard(&archive).await?;
                        n += 1;
                    }
                }
            }
            self.storage.discard(&o.key).await?;
            n += 1;
            emptied.insert(backup_id_of_key(base, &o.key));
        }
        // The killed runs' directories go too, once empty (QA: left
        // behind); one a run still writes to keeps its files, and stays.
        for id in emptied.into_iter().flatten() {
            if let Ok(key) = archive_key_in(base, id) {
                self.storage.abort_unfinished(&key).await?;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_name_their_date() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = new_backup_id(t);
        assert!(id.starts_with("20261125T020000Z-"), "{id}");
        assert_eq!(id.len(), "20261125T020000Z-3f9a".len());
        assert_eq!(
            archive_key_in("backups/", &id).unwrap(),
            format!("backups/2026-11-25/{id}/{id}.pgsnap")
        );
        assert_eq!(
            manifest_key_in("", &id).unwrap(),
            format!("2026-11-25/{id}/{id}.manifest.json")
        );
        assert!(archive_key_in("", "../etc").is_err());
        assert!(new_backup_id(t) < new_backup_id(t + Duration::seconds(1)));
    }

    #[test]
    fn only_keys_in_the_layout_are_backups() {
        let id = "20261125T020000Z-3f9a";
        let key = |s: &str| s.replace("ID", id);
        assert_eq!(
            backup_id_of_key("", &key("2026-11-25/ID/ID.pgsnap")),
            Some(id)
        );
        assert_eq!(
            backup_id_of_key("backups/", &key("backups/2026-11-25/ID/ID.manifest.json")),
            Some(id)
        );
        for other in [
            "payroll.csv",
            "prod/2026-11-25/ID/ID.pgsnap",
            "2026-11-26/ID/ID.pgsnap",
            "2026-11-25/ID/other.pgsnap",
            "2026-11-25/ID/IDX.pgsnap",
            "2026-11-25/ID/sub/ID.pgsnap",
            "backups/2026-11-25/ID/ID.pgsnap",
        ] {
            assert_eq!(backup_id_of_key("", &key(other)), None, "{other}");
        }
    }

    /// A run killed after its archive was whole and before its manifest:
    /// its stale claim says so, and the sweep removes the archive with it.
    /// An archive with its manifest, or with no claim (a human's doing, or
    /// an older pgsnap's), stays.
    #[tokio::test]
    async fn the_sweep_removes_a_dead_runs_archive_without_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(local::LocalStorage::new(dir.path()));
        let repo = Repository::open_or_init(storage.clone()).await.unwrap();
        let (dead, done, unclaimed) = (
            "20261125T020000Z-0001",
            "20261125T020000Z-0002",
            "20261125T020000Z-0003",
        );
        assert!(repo.claim_id(dead).await.unwrap());
        assert!(repo.claim_id(done).await.unwrap());
        for id in [dead, done, unclaimed] {
            storage
                .put(
                    &repo.archive_key(id).unwrap(),
                    Bytes::from_static(b"archive"),
                )
                .await
                .unwrap();
        }
        storage
            .put(&repo.manifest_key(done).unwrap(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        // Not yet a day old: nothing goes.
        assert_eq!(repo.sweep_stale(Utc::now()).await.unwrap(), 0);
        let later = Utc::now() + Duration::days(2);
        assert_eq!(repo.sweep_stale(later).await.unwrap(), 3);
        let mut left: Vec<String> = storage
            .list(storage.backups_base())
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect();
        left.sort();
        let mut want = vec![
            repo.archive_key(done).unwrap(),
            repo.manifest_key(done).unwrap(),
            repo.archive_key(unclaimed).unwrap(),
        ];
        want.sort();
        assert_eq!(left, want);
        // The dead run's directory went with its files (QA: left empty).
        let dead_dir = dir
            .path()
            .join(repo.archive_key(dead).unwrap())
            .parent()
            .unwrap()
            .to_path_buf();
        assert!(!dead_dir.exists(), "{dead_dir:?}");
        assert!(dir.path().join(repo.archive_key(done).unwrap()).exists());
    }

    /// Two runs that draw one id: only one gets it, and a finished run's id
    /// (claim released, its manifest there) is not handed out again.
    #[tokio::test]
    async fn a_backup_id_is_claimed_by_one_run() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(local::LocalStorage::new(dir.path()));
        let repo = Repository::open_or_init(storage.clone()).await.unwrap();
        let id = "20261125T020000Z-3f9a";
        assert!(repo.claim_id(id).await.unwrap());
        assert!(!repo.claim_id(id).await.unwrap());
        repo.release_id(id).await;
        assert!(repo.claim_id(id).await.unwrap());
        storage
            .put(&repo.manifest_key(id).unwrap(), Bytes::from_static(b"{}"))
            .await
            .unwrap();
        repo.release_id(id).await;
        assert!(!repo.claim_id(id).await.unwrap());
        // Nothing of the claims is left behind.
        let left: Vec<String> = storage
            .list(storage.backups_base())
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .filter(|k| k.contains(TEMP_MARKER))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// Storage that counts reads, over a local directory.
    struct Counting(LocalStorage, std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl Storage for Counting {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn put(&self, key: &str, data: Bytes) -> Result<()> {
            self.0.put(key, data).await
        }
        async fn put_new(&self, key: &str, data: Bytes) -> Result<bool> {
            self.0.put_new(key, data).await
        }
        fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
            self.0.writer(key)
        }
        async fn get(&self, key: &str) -> Result<Bytes> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.get(key).await
        }
        async fn get_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
            self.0.get_range(key, range).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
            self.0.head(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
            self.0.list(prefix).await
        }
        async fn delete(&self, key: &str) -> Result<()> {
            self.0.delete(key).await
        }
        fn backups_base(&self) -> &'static str {
            self.0.backups_base()
        }
    }

    /// A backup `id` of database `db` started at `t`; its archive is as
    /// long as the manifest says unless `whole` is false.
    async fn put_backup(repo: &Repository, id: &str, db: &str, t: DateTime<Utc>, whole: bool) {
        let archive = repo.archive_key(id).unwrap();
        let manifest = serde_json::json!({
            "type": manifest::MANIFEST_TYPE, "manifest_version": 1, "id": id,
            "started_at": t, "finished_at": t, "database": db, "source": "src",
            "server_version": "15", "pgsnap_version": "0",
            "archive": { "key": archive, "size_bytes": 7, "sha256": "", "archive_id": "",
                         "format_version": 1, "cipher": "", "compression": "",
                         "chunk_size": 0, "chunks": 0 },
            "key_slots": [], "tables": [], "rows": 0, "data_bytes": 0,
            "timings": { "connect_seconds": 0.0, "schema_seconds": 0.0,
                         "data_seconds": 0.0, "total_seconds": 0.0 },
        });
        let storage = repo.storage();
        let body: &'static [u8] = if whole { b"archive" } else { b"arch" };
        storage
            .put(&archive, Bytes::from_static(body))
            .await
            .unwrap();
        storage
            .put(
                &repo.manifest_key(id).unwrap(),
                Bytes::from(manifest.to_string()),
            )
            .await
            .unwrap();
    }

    /// `latest` reads the newest manifests, not every one: on S3 each is a
    /// request, and a repository of a year's backups has hundreds. Within
    /// one start second the order is by start time, and a damaged newer
    /// backup is still passed over with a warning.
    #[tokio::test]
    async fn latest_reads_only_the_newest_manifests() {
        let dir = tempfile::tempdir().unwrap();
        let counting = Arc::new(Counting(
            LocalStorage::new(dir.path()),
            std::sync::atomic::AtomicUsize::new(0),
        ));
        let storage: Arc<dyn Storage> = counting.clone();
        let repo = Repository::open_or_init(storage).await.unwrap();
        let day0 = DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for d in 0..60 {
            let t = day0 + Duration::days(d);
            put_backup(&repo, &new_backup_id(t), "app", t, true).await;
        }
        // Three runs in the newest second: `-ffff` started first, `-0000`
        // last but its archive is cut short, `-8000` between them.
        let t = day0 + Duration::days(60);
        let ms = |n| t + Duration::milliseconds(n);
        let id = |suffix: &str| format!("{}-{suffix}", t.format("%Y%m%dT%H%M%SZ"));
        put_backup(&repo, &id("ffff"), "app", ms(100), true).await;
        put_backup(&repo, &id("8000"), "app", ms(500), true).await;
        put_backup(&repo, &id("0000"), "app", ms(900), false).await;

        let reads = || counting.1.swap(0, std::sync::atomic::Ordering::SeqCst);
        reads();
        let (m, warning) = repo.resolve_of("latest", Some("app")).await.unwrap();
        assert_eq!(m.id, id("8000"));
        let warning = warning.unwrap();
        assert!(warning.contains(&id("0000")), "{warning}");
        assert_eq!(reads(), 3);
        let err = repo
            .resolve_newest_of("latest", Some("app"))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&id("0000")), "{err}");
        assert_eq!(reads(), 3);
        assert_eq!(repo.list().await.unwrap().len(), 63);
        assert_eq!(reads(), 63);
        // No database named: every manifest is read to learn that `latest`
        // is not ambiguous.
        let (m, _) = repo.resolve_noting("latest").await.unwrap();
        assert_eq!(m.id, id("8000"));
        assert_eq!(reads(), 63 + 3);
    }

    /// `latest` in a repository that backups of two databases share is
    /// refused unless the database is named: it would be whichever was
    /// backed up last. Named, each database's newest is its own.
    #[tokio::test]
    async fn latest_of_several_databases_is_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn Storage> = Arc::new(LocalStorage::new(dir.path()));
        let repo = Repository::open_or_init(storage).await.unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-01T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let app = new_backup_id(t);
        put_backup(&repo, &app, "app", t, true).await;
        assert_eq!(repo.resolve("latest").await.unwrap().id, app);
        let t2 = t + Duration::hours(1);
        let other = new_backup_id(t2);
        put_backup(&repo, &other, "other", t2, true).await;
        for err in [
            repo.resolve("latest").await.unwrap_err(),
            repo.resolve_newest("latest").await.unwrap_err(),
        ] {
            assert!(matches!(err, Error::Usage(_)), "{err}");
            assert!(err.to_string().contains("app, other"), "{err}");
        }
        let (m, _) = repo.resolve_of("latest", Some("app")).await.unwrap();
        assert_eq!(m.id, app);
        let m = repo
            .resolve_newest_of("latest", Some("other"))
            .await
            .unwrap();
        assert_eq!(m.id, other);
        // The newest of `app` is damaged: verify's `latest` fails on it
        // though `other`'s newer one is whole.
        let t3 = t + Duration::minutes(30);
        let damaged = new_backup_id(t3);
        put_backup(&repo, &damaged, "app", t3, false).await;
        let err = repo
            .resolve_newest_of("latest", Some("app"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&damaged), "{err}");
        let err = repo
            .resolve_newest_of("latest", Some("none"))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no backups of database none"),
            "{err}"
        );
        // A mistyped name: a usage error naming the databases it holds.
        assert!(matches!(err, Error::Usage(_)), "{err}");
        assert!(err.to_string().contains("app, other"), "{err}");
    }
}
