//! The backup: one snapshot, parallel COPY, one archive, then a manifest.
//!
//! Plan, then execute. The coordinator opens the snapshot, reads the schema,
//! checks privileges and lock capacity, and locks the tables; the plan is the
//! list of COPY work items (big tables cut into ctid ranges), largest first.
//! Workers adopt the snapshot and stream COPY text through the chunker into
//! the archive pipeline, whose worker threads compress and seal while one
//! thread writes the archive in order. The manifest is committed only after
//! the archive is durable, so a backup that failed anywhere never appears in
//! `list`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::archive::codec::Compression;
use crate::archive::pipeline::ChunkPipeline;
use crate::archive::seal::Cipher;
use crate::archive::writer::{new_archive_id, ArchiveOptions, ArchiveWriter, EntryInfo};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::filter::TableFilter;
use crate::pg::conn::{copy_encoding, set_client_encoding, ConnInfo};
use crate::pg::copy::{self, CopyFormat, RowChunk};
use crate::pg::snapshot::{self, qualified, Coordinator};
use crate::progress::{Event, Progress};
use crate::repo::manifest::{ArchiveRecord, Timings, MANIFEST_TYPE, MANIFEST_VERSION};
use crate::repo::{self, Manifest, Repository, TableRecord};
use crate::schema::{self, DbObject, ObjectKind, SchemaModel, TableInfo};

/// Entry kinds in the archive index (format-spec.md, "Entries").
pub mod kind {
    pub const SCHEMA: &str = "schema";
    pub const TABLE: &str = "table";
    pub const SEQUENCES: &str = "sequences";
    pub const LARGE_OBJECTS: &str = "large_objects";
}

/// Tables bigger than this are cut into ctid ranges so one huge table keeps
/// every job busy.
const SPLIT_PAGES: i64 = 16 * 1024; // 128 MiB of 8 KiB pages

/// What [`run`] backs up, and how: the `pgsnap backup` flags, with the
/// binary's defaults as [`Default`].
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Parallel COPY sessions sharing the snapshot (0 counts as 1).
    pub jobs: usize,
    /// How the chunks are compressed (zstd level 3 by default).
    pub compression: Compression,
    /// The AEAD sealing the chunks.
    pub cipher: Cipher,
    /// Bytes of COPY data per chunk, before compression.
    pub chunk_size: u32,
    /// Tables bigger than twice this are copied as ctid ranges of about
    /// this size, on parallel jobs.
    pub split_size: u64,
    /// The COPY format of table data; binary falls back to text per table
    /// where a column's type has no binary I/O of PostgreSQL's own.
    pub copy_format: CopyFormat,
    /// Which schemas and tables, and whose rows (`--table`, `--schema`,
    /// `--exclude-*`); empty: the whole database.
    pub filter: TableFilter,
    /// Recorded in the manifest, shown by `list`.
    pub tags: BTreeMap<String, String>,
    /// How long to wait for each table's lock (a session holding it in
    /// ACCESS EXCLUSIVE, an `ALTER TABLE`) before failing, naming it.
    pub lock_timeout: Duration,
    /// Stop (and keep nothing) past this long: a backup must not hold its
    /// snapshot, and vacuum with it, indefinitely.
    pub max_duration: Option<Duration>,
    /// How the stored archive is checked after its upload.
    pub verify_upload: VerifyUpload,
    /// When this turns true the backup stops as it would on an error:
    /// its archive is discarded and nothing is listed ([`Error::Stopped`]).
    /// The binary sends it on SIGINT and SIGTERM.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// How the stored archive is checked after its upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyUpload {
    /// Size (everywhere) and the SHA-256 in the object's metadata (S3)
    /// equal what was written.
    #[default]
    Basic,
    /// Also read the stored archive back and authenticate every chunk
    /// (`pgsnap verify` before the manifest is committed).
    Full,
}

impl std::str::FromStr for VerifyUpload {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "basic" => Ok(VerifyUpload::Basic),
            "full" => Ok(VerifyUpload::Full),
            _ => Err(format!("`{s}` is not basic or full")),
        }
    }
}

impl Default for BackupOptions {
    fn default() -> Self {
        let a = ArchiveOptions::default();
        BackupOptions {
            jobs: 2,
            compression: a.compression,
            cipher: a.cipher,
            chunk_size: a.chunk_size,
            split_size: SPLIT_PAGES as u64 * 8192,
            copy_format: CopyFormat::Text,
            filter: TableFilter::default(),
            tags: BTreeMap::new(),
            lock_timeout: Duration::from_secs(60),
            max_duration: None,
            verify_upload: VerifyUpload::Basic,
            stop: None,
        }
    }
}

/// A sequence's state at the snapshot, stored in the `sequences` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SequenceState {
    pub schema: String,
    pub name: String,
    pub last_value: i64,
    pub is_called: bool,
}

/// Per-table metadata stored with its index entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableMeta {
    pub schema: String,
    pub name: String,
    pub columns: Vec<String>,
    pub copy_format: String,
}

/// One COPY to run: a whole table or a ctid range of it.
#[derive(Debug, Clone)]
struct WorkItem {
    entry: u32,
    /// The table, quoted and qualified, for the worker's lock.
    table: String,
    sql: String,
    format: CopyFormat,
    pages: i64,
}

/// `encoding`: `schema::copy_option_encoding`'s, for text COPY.
fn plan_items(
    tables: &[(u32, &TableInfo, CopyFormat)],
    jobs: usize,
    tid_ranges: bool,
    split_size: u64,
    encoding: Option<&str>,
) -> Vec<WorkItem> {
    let split_pages = (split_size / 8192).max(1) as i64;
    let mut items = Vec::new();
    for &(entry, t, format) in tables {
        let with = match format.options_in(encoding).as_slice() {
            [] => String::new(),
            opts => format!(" ({})", opts.join(", ")),
        };
        let cols = t
            .columns
            .iter()
            .map(|c| snapshot::ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let q = qualified(&t.schema, &t.name);
        let pages = t.relpages.max(0);
        if tid_ranges && jobs > 1 && pages > 2 * split_pages && !t.columns.is_empty() {
            let parts = (pages / split_pages).clamp(2, 64);
            let step = pages / parts + 1;
            for i in 0..parts {
                let lo = i * step;
                let cond = if i == parts - 1 {
                    // Open-ended: pages added after the stats were taken.
                    format!("ctid >= '({lo},0)'::tid")
                } else {
                    format!(
                        "ctid >= '({lo},0)'::tid AND ctid < '({},0)'::tid",
                        lo + step
                    )
                };
                items.push(WorkItem {
                    entry,
                    table: q.clone(),
                    sql: format!("COPY (SELECT {cols} FROM ONLY {q} WHERE {cond}) TO STDOUT{with}"),
                    format,
                    pages: step,
                });
            }
        } else {
            items.push(WorkItem {
                entry,
                table: q.clone(),
                sql: format!("{}{with}", schema::copy_out_sql(t)),
                format,
                pages,
            });
        }
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.pages));
    items
}

/// Runs a backup into `repo` and returns its committed manifest. On any
/// failure nothing that looks complete is left: the archive's upload is
/// discarded before the error returns. A stop (`BackupOptions::stop`,
/// `--max-duration`) ends the run anywhere before the manifest's commit;
/// once that has begun, the run finishes it and succeeds or fails by it.
pub async fn run(
    repo: &Repository,
    conn: &ConnInfo,
    keys: &Credentials,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest> {
    // The run's time counts from here: claiming the id is a round trip or
    // more to the repository (QA: a backup to S3 said "complete in 0.1s"
    // after 2.7 s).
    let t0 = Instant::now();
    let started_at = Utc::now();
    let id = claim_new_id(repo, started_at).await?;
    let mut dropped = ReleaseOnDrop(Some((repo.clone(), id.clone())));
    let heartbeat = async {
        loop {
            tokio::time::sleep(repo::CLAIM_REFRESH).await;
            repo.refresh_claim(&id).await;
        }
    };
    let res = tokio::select! {
        r = run_as(repo, conn, keys, opts, progress, (t0, started_at), &id) => r,
        never = heartbeat => never,
    };
    dropped.0 = None;
    repo.release_id(&id).await;
    if res.is_err() {
        // The claim kept the failed run's directory from going with the
        // rest of it (`discard_archive`): it goes now, where it is empty.
        if let Ok(key) = repo.archive_key(&id) {
            let _ = repo.storage().abort_unfinished(&key).await;
        }
    }
    res
}

/// A run whose future an application drops (a timeout, a `select!`) ends
/// where it waits, past the release of its claim: released here then, on
/// the runtime, as its end would have (QA: a claim left per dropped run,
/// swept only a day later).
struct ReleaseOnDrop(Option<(Repository, String)>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let Some((repo, id)) = self.0.take() else {
            return;
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                repo.release_id(&id).await;
                if let Ok(key) = repo.archive_key(&id) {
                    let _ = repo.storage().abort_unfinished(&key).await;
                }
            });
        }
    }
}

/// Snapshots a backup takes before giving up on tables that keep changing
/// while it waits for their locks.
const SNAPSHOT_TRIES: usize = 3;

/// A backup id for a run started at `started_at` that no other run holds
/// (see [`Repository::claim_id`]).
async fn claim_new_id(repo: &Repository, started_at: chrono::DateTime<Utc>) -> Result<String> {
    const TRIES: usize = 16;
    for _ in 0..TRIES {
        let id = repo::new_backup_id(started_at);
        if repo.claim_id(&id).await? {
            return Ok(id);
        }
    }
    Err(Error::Repo(format!(
        "could not claim a new backup id in {}: {TRIES} ids drawn for this second were \
         taken by other runs; start the backup again",
        repo.location()
    )))
}

/// [`run`] under backup id `id`, claimed.
async fn run_as(
    repo: &Repository,
    conn: &ConnInfo,
    keys: &Credentials,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
    (t0, started_at): (Instant, chrono::DateTime<Utc>),
    id: &str,
) -> Result<Manifest> {
    let id = id.to_string();
    let key = repo.archive_key(&id)?;
    let finishing = Arc::new(tokio::sync::Mutex::new(()));
    let run = Run {
        t0,
        started_at,
        id: &id,
        key: &key,
        finishing: &finishing,
    };
    let res = run_with_deadline(repo, conn, keys, opts, progress, run)
        .await
        // The archive writer sees only an `io::Error`; name the archive when
        // it is a full disk. Nothing else in a backup writes.
        .map_err(|e| e.on_write(|| format!("writing the archive {}/{key}", repo.location())))
        .map_err(explain_not_utf8);
    match res {
        Ok(manifest) => commit(repo, &manifest).await.map(|()| manifest),
        Err(e) => {
            // A stop drops the run wherever it is, but not a finish already
            // on its thread (blocking work cannot be cancelled): it would
            // put the whole archive under its name after the discard.
            let _finished = finishing.lock().await;
            // Wherever the archive writer is (even if still running), its
            // upload is gone when the error is reported.
            discard_archive(repo, &key).await;
            Err(with_leftovers(repo, &id, e).await)
        }
    }
}

/// A full repository that holds left-overs of stopped or killed runs
/// (temporary files the sweep removes only once a day old, as a run may
/// still be writing them): the message says how much of the space they
/// take, and what to do. `id` is the failed run's.
async fn with_leftovers(repo: &Repository, id: &str, e: Error) -> Error {
    let Error::NoSpace {
        context,
        reason,
        source,
    } = e
    else {
        return e;
    };
    let left: Vec<u64> = match repo.storage().list(repo.storage().backups_base()).await {
        Ok(objects) => objects
            .iter()
            // Not this run's own claim on its id.
            .filter(|o| o.key.contains(repo::TEMP_MARKER) && !o.key.contains(id))
            .map(|o| o.size)
            .collect(),
        Err(_) => Vec::new(),
    };
    let context = match left.len() {
        0 => context,
        n => format!(
            "{context}, beside {n} left-over(s) of stopped or killed runs taking {:.1} MiB \
             (files named *{}*, which a backup removes once a day old; delete them if no \
             backup is running)",
            left.iter().sum::<u64>() as f64 / (1024.0 * 1024.0),
            repo::TEMP_MARKER
        ),
    };
    Error::NoSpace {
        context,
        reason,
        source,
    }
}

/// Table data moves in the database's own bytes where it must (SQL_ASCII,
/// `pg::conn::copy_encoding`), so a backup meets bytes that are not UTF-8
/// only in names and definitions, which pgsnap reads as Rust strings: say
/// so, and what to do.
fn explain_not_utf8(e: Error) -> Error {
    match e {
        // character_not_in_repertoire: the server's "invalid byte sequence
        // for encoding", in whatever language its messages are in.
        Error::Postgres {
            context,
            detail,
            code,
        } if code.as_deref() == Some("22021") => Error::Postgres {
            context,
            detail: format!(
                "{detail}; pgsnap reads names and definitions as UTF-8: in a SQL_ASCII \
                 database, rename the objects whose names or definitions are not UTF-8"
            ),
            code,
        },
        e => e,
    }
}

/// What names one backup run.
#[derive(Clone, Copy)]
struct Run<'a> {
    /// When the run began (before its id was claimed): its timings count
    /// from here.
    t0: Instant,
    started_at: chrono::DateTime<Utc>,
    id: &'a str,
    /// The archive's key.
    key: &'a str,
    /// Held while the archive object is being finished (made visible
    /// under its key) on a blocking thread; see `run_as`.
    finishing: &'a Arc<tokio::sync::Mutex<()>>,
}

async fn run_with_deadline(
    repo: &Repository,
    conn: &ConnInfo,
    keys: &Credentials,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
    run: Run<'_>,
) -> Result<Manifest> {
    let inner = run_inner(repo, conn, keys, opts, progress, run);
    let bounded = async {
        match opts.max_duration {
            Some(d) => tokio::time::timeout(d, inner).await.map_err(|_| {
                Error::Stopped(format!(
                    "exceeded --max-duration of {:?} and was stopped; nothing was kept",
                    d
                ))
            })?,
            None => inner.await,
        }
    };
    let Some(mut stop) = opts.stop.clone() else {
        return bounded.await;
    };
    tokio::select! {
        r = bounded => r,
        // A closed channel never stops the run.
        Ok(_) = stop.wait_for(|s| *s) => Err(Error::Stopped(
            "backup stopped on request; its archive was discarded, nothing was kept".into(),
        )),
    }
}

async fn run_inner(
    repo: &Repository,
    conn: &ConnInfo,
    keys: &Credentials,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
    run: Run<'_>,
) -> Result<Manifest> {
    let t0 = run.t0;
    let started_at = run.started_at;
    let id = run.id.to_string();
    // Keys first: a KMS refusal (access denied, disabled or unknown key)
    // ends the run before the database or the repository is touched.
    let archive_id = new_archive_id();
    let (data_key, slots) = keys.new_archive_keys(&archive_id).await?;
    if let Err(e) = repo.sweep_stale(started_at).await {
        tracing::warn!("could not sweep stale temporary files: {e}");
    }

    progress.event(Event::Phase("connect"));
    // The snapshot comes before the locks (the tables to lock are read
    // under it), so a table that a transaction rewrote (TRUNCATE, ALTER
    // TABLE ... TYPE) or changed while the backup waited for its lock
    // would be read through a snapshot older than its new storage: empty,
    // or not matching its definition (QA: a TRUNCATE-and-reload left 0 of
    // 47,307 rows, and verify and restore passed). Found once the locks
    // are held, when nothing can change them any more: the run starts
    // again on a new snapshot.
    let mut tries = 0;
    let mut partition_warnings: Vec<String>;
    let (coord, t_connect) = loop {
        let coord = Coordinator::begin(conn).await?;
        let client = coord.client();
        let t_connect = t0.elapsed();

        // Lock first, as pg_dump does, so the definitions read next cannot
        // change under the backup; then read the schema without its own locking.
        progress.event(Event::Phase("lock"));
        let candidates = list_tables(client).await?;
        let unmatched = opts.filter.unmatched_includes(
            &candidates
                .iter()
                .map(|(_, s, n, _)| (s.clone(), n.clone()))
                .collect::<Vec<_>>(),
        );
        if !unmatched.is_empty() {
            return Err(Error::Usage(format!(
                "no table, view or sequence matches --table {}",
                unmatched.join(", --table ")
            )));
        }
        if !opts.filter.include_schemas.is_empty() {
            // As pg_dump: a --schema that names no schema is a mistake, not a
            // request for an empty backup.
            let schemas: Vec<String> = client
                .query("SELECT nspname::text FROM pg_catalog.pg_namespace", &[])
                .await
                .map_err(|e| Error::pg("listing schemas", e))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let missing: Vec<&str> = opts
                .filter
                .include_schemas
                .iter()
                .filter(|p| !schemas.iter().any(|s| p.matches(s, "")))
                .map(|p| p.as_str())
                .collect();
            if !missing.is_empty() {
                return Err(Error::Usage(format!(
                    "no schema matches --schema {}",
                    missing.join(", --schema ")
                )));
            }
        }
        let selected: Vec<&(u32, String, String, bool)> = candidates
            .iter()
            .filter(|(_, s, n, table)| *table && opts.filter.table_selected(s, n))
            .collect();
        let locked: Vec<u32> = selected.iter().map(|t| t.0).collect();
        // Said once, for the snapshot the backup keeps: a retry would
        // repeat it.
        partition_warnings = if opts.filter.include_tables.is_empty() {
            Vec::new()
        } else {
            partitions_left_out(client, &locked, &opts.filter).await?
        };
        let data_of: Vec<u32> = selected
            .iter()
            .filter(|(_, s, n, _)| opts.filter.data_selected(s, n))
            .map(|t| t.0)
            .collect();
        preflight(client, &locked, &data_of, opts.filter.keeps_large_objects()).await?;
        let lock_list: Vec<(String, String)> = selected
            .iter()
            .map(|(_, s, n, _)| (s.clone(), n.clone()))
            .collect();
        // A table dropped (or renamed) since the snapshot: its name no
        // longer locks (QA: 4 of 10 backups failed under concurrent DDL);
        // the new snapshot will not list it.
        let changed = match coord.lock_tables(conn, &lock_list, opts.lock_timeout).await {
            Err(Error::Postgres {
                code: Some(c),
                context,
                ..
            }) if c == "42P01" => vec![context.trim_start_matches("locking table ").to_string()],
            r => {
                r?;
                coord.changed_since_snapshot(conn, &locked).await?
            }
        };
        if changed.is_empty() {
            break (coord, t_connect);
        }
        tries += 1;
        if tries == SNAPSHOT_TRIES {
            return Err(Error::Postgres {
                context: "taking a consistent snapshot".into(),
                detail: format!(
                    "{} changed between the backup's snapshot and its locks on each of \
                     {SNAPSHOT_TRIES} tries (TRUNCATE, ALTER TABLE, DROP TABLE, VACUUM FULL, \
                     GRANT); run it again when they are quiet",
                    crate::progress::first_n(&changed, 5)
                ),
                code: None,
            });
        }
        tracing::info!(
            "{} changed between the snapshot and the locks; taking a new snapshot",
            crate::progress::first_n(&changed, 5)
        );
    };
    for w in partition_warnings {
        tracing::warn!("{w}");
    }
    let client = coord.client();
    let ver = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await
        .map_err(|e| Error::pg("reading the server version", e))?;
    let server_version: String = ver.get(0);
    let server_version_num: i32 = ver.get(1);

    progress.event(Event::Phase("schema"));
    let read = schema::ReadOptions { lock_tables: false };
    let mut model = schema::read_schema_with(client, &read)
        .await
        .map_err(|e| Error::Schema(format!("reading the schema: {e}")))?;
    if !opts.filter.is_empty() {
        model = restrict_model(&model, &opts.filter);
    }
    let t_schema = t0.elapsed();
    let dumped: Vec<&TableInfo> = model.tables.iter().collect();

    let sequences = read_sequences(client, &model).await?;

    // The archive.
    let aopts = ArchiveOptions {
        cipher: opts.cipher,
        compression: opts.compression,
        chunk_size: opts.chunk_size,
    };
    let key = run.key.to_string();
    let object = repo.storage().writer(&key)?;
    let writer = ArchiveWriter::new_with_id(object, aopts, &data_key, archive_id, slots)?;
    drop(data_key);
    let jobs = opts.jobs.max(1);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(jobs.max(2));
    let pipeline = ChunkPipeline::new(writer, threads, 2 * jobs + threads + 2);
    let sender = pipeline.sender();

    // Entry 0: the schema model; entry 1: sequence states; then tables.
    let mut entries = vec![
        entry_info(
            0,
            kind::SCHEMA,
            None,
            serde_json::json!({"encoding": "json"}),
        ),
        entry_info(
            1,
            kind::SEQUENCES,
            None,
            serde_json::json!({"encoding": "json"}),
        ),
    ];

    // Binary COPY sends text in the session's encoding, UTF-8: text COPY
    // keeps a database's own encoding (`ENCODING`), which binary cannot.
    let native = crate::schema::copy_option_encoding(&model.encoding);
    let text_only = match opts.copy_format {
        CopyFormat::Binary if native.is_none() => text_only_tables(client, &dumped).await?,
        CopyFormat::Binary => {
            tracing::warn!(
                "--copy-format binary: the database is in {}, which binary COPY would convert to \
                 UTF-8 and back, not always exactly; its tables are copied as text, in {0}",
                model.encoding
            );
            dumped.iter().map(|t| t.oid).collect()
        }
        CopyFormat::Text => HashSet::new(),
    };
    let with_data: Vec<(u32, &TableInfo, CopyFormat)> = dumped
        .iter()
        .filter(|t| t.has_data && opts.filter.data_selected(&t.schema, &t.name))
        .enumerate()
        .map(|(i, t)| {
            let format = if text_only.contains(&t.oid) {
                CopyFormat::Text
            } else {
                opts.copy_format
            };
            (2 + i as u32, *t, format)
        })
        .collect();
    for (entry, t, format) in &with_data {
        entries.push(entry_info(
            *entry,
            kind::TABLE,
            Some(format!("{}.{}", t.schema, t.name)),
            serde_json::to_value(TableMeta {
                schema: t.schema.clone(),
                name: t.name.clone(),
                columns: t.columns.clone(),
                copy_format: format.name().into(),
            })
            .expect("table meta serializes"),
        ));
    }
    // Large objects' contents travel in one entry after the tables (full
    // backups only, as pg_dump includes them).
    let lo_entry =
        (opts.filter.keeps_large_objects() && !model.large_objects.is_empty()).then(|| {
            let id = 2 + with_data.len() as u32;
            entries.push(entry_info(
                id,
                kind::LARGE_OBJECTS,
                None,
                serde_json::json!({"encoding": "oid-offset-hex lines"}),
            ));
            id
        });
    let items = plan_items(
        &with_data,
        jobs,
        server_version_num >= 140000,
        opts.split_size,
        native,
    );
    progress.event(Event::Planned {
        tables: with_data.len(),
        rows_estimate: with_data
            .iter()
            .map(|(_, t, _)| t.reltuples.max(0.0) as u64)
            .sum(),
        bytes_estimate: with_data
            .iter()
            .map(|(_, t, _)| t.bytes_estimate.max(0) as u64)
            .sum(),
    });

    progress.event(Event::Phase("data"));
    let t_data0 = t0.elapsed();
    let names = with_data
        .iter()
        .map(|(e, t, _)| (*e, (t.schema.clone(), t.name.clone())))
        .collect();
    // Everything that feeds the pipeline; on any error the pipeline is
    // aborted below, which discards the partial archive.
    let data_result = async {
        let schema_json = serde_json::to_vec(&model)
            .map_err(|e| Error::Schema(format!("serializing the schema: {e}")))?;
        submit_blob(&sender, 0, schema_json, opts.chunk_size as usize).await?;
        let seq_json = serde_json::to_vec(&sequences).expect("sequence states serialize");
        submit_blob(&sender, 1, seq_json, opts.chunk_size as usize).await?;
        copy_all(
            client,
            names,
            &model.encoding,
            conn,
            &coord.snapshot_id,
            items,
            jobs,
            opts,
            &sender,
            &progress,
        )
        .await?;
        if let Some(entry) = lo_entry {
            copy_large_objects(client, &model, entry, &sender, opts.chunk_size as usize).await?;
        }
        Ok(())
    }
    .await;
    drop(sender);
    // The snapshot is no longer needed; end it before the slow tail.
    let _ = client.batch_execute("COMMIT").await;
    if let Err(e) = data_result {
        let cause = tokio::task::spawn_blocking(move || pipeline.abort())
            .await
            .ok()
            .flatten();
        // A COPY that stopped because the archive writer failed reports only
        // the writer's message (`Error::Pipeline`); the writer's own error
        // keeps its errno, which tells a full disk apart.
        return Err(match (e, cause) {
            (Error::Pipeline(_), Some(cause)) => cause,
            (e, _) => e,
        });
    }
    let t_data = t0.elapsed() - t_data0;

    let meta = serde_json::json!({
        "backup_id": id,
        "database": conn.dbname(),
        "server_version": server_version,
        "pgsnap_version": env!("CARGO_PKG_VERSION"),
        "snapshot_time": started_at,
    });
    let (object, summary) = tokio::task::spawn_blocking(move || pipeline.finish(entries, meta))
        .await
        .map_err(|e| Error::task("archive writer", e))??;
    let sha256 = hex::encode(summary.sha256);
    // The archive object's user metadata (S3): set once the hash is known.
    let object_meta: BTreeMap<String, String> = [
        ("sha256", sha256.clone()),
        ("size", summary.bytes.to_string()),
        ("backup-id", id.clone()),
        ("archive-id", hex::encode(archive_id)),
        ("database", conn.dbname().to_string()),
        ("server-version", server_version.clone()),
        ("pgsnap-version", env!("CARGO_PKG_VERSION").to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let busy = run.finishing.clone().lock_owned().await;
    let stored = tokio::task::spawn_blocking(move || {
        let stored = object.finish(&object_meta);
        drop(busy);
        stored
    })
    .await
    .map_err(|e| Error::task("archive writer", e))??;
    // The integrity check after upload: what the storage holds is what was
    // written (the S3 writer also compared its own hash and the metadata).
    let stored_sha = stored.metadata.get("sha256");
    if stored.size != summary.bytes || stored_sha.is_some_and(|s| *s != sha256) {
        let _ = repo.storage().discard(&key).await;
        return Err(Error::Integrity(format!(
            "archive {key} does not match what was written: {} bytes{} stored, {} bytes, \
             sha256 {sha256} written; the backup was discarded",
            stored.size,
            stored_sha
                .map(|s| format!(", sha256 {s}"))
                .unwrap_or_default(),
            summary.bytes
        )));
    }

    let mut tables = Vec::new();
    let (mut rows, mut data_bytes) = (0, 0);
    for (entry, t, _) in &with_data {
        let s = summary
            .entries
            .iter()
            .find(|e| e.id == *entry)
            .expect("every table entry is summarized");
        rows += s.rows;
        data_bytes += s.raw_bytes;
        tables.push(TableRecord {
            schema: t.schema.clone(),
            name: t.name.clone(),
            rows: s.rows,
            bytes: s.raw_bytes,
            stored_bytes: s.stored_bytes,
        });
    }
    let finished_at = Utc::now();
    let manifest = Manifest {
        kind: MANIFEST_TYPE.into(),
        manifest_version: MANIFEST_VERSION,
        id: id.clone(),
        started_at,
        finished_at,
        database: conn.dbname().to_string(),
        source: conn.to_string(),
        server_version,
        pgsnap_version: env!("CARGO_PKG_VERSION").into(),
        archive: ArchiveRecord {
            key: key.clone(),
            size_bytes: summary.bytes,
            sha256: sha256.clone(),
            archive_id: hex::encode(archive_id),
            format_version: crate::archive::format::VERSION,
            cipher: opts.cipher.to_string(),
            compression: opts.compression.to_string(),
            chunk_size: opts.chunk_size,
            chunks: summary.chunks,
        },
        key_slots: keys.slot_kinds(),
        tables,
        rows,
        data_bytes,
        timings: Timings {
            connect_seconds: t_connect.as_secs_f64(),
            schema_seconds: (t_schema - t_connect).as_secs_f64(),
            data_seconds: t_data.as_secs_f64(),
            total_seconds: t0.elapsed().as_secs_f64(),
        },
        tags: opts.tags.clone(),
        jobs: jobs as u32,
        filter: filter_record(&opts.filter),
    };
    if opts.verify_upload == VerifyUpload::Full {
        progress.event(Event::Phase("verify upload"));
        let report = crate::verify::run(repo, &manifest, keys).await;
        let failed = match report {
            Ok(r) if r.ok => None,
            Ok(r) => Some(
                r.checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| c.what.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failed {
            let _ = repo.storage().discard(&key).await;
            return Err(Error::Integrity(format!(
                "the uploaded archive {key} failed verification ({why}); the backup was discarded"
            )));
        }
    }
    Ok(manifest)
}

/// Commits the manifest of a backup whose archive is written and checked.
/// Not cancelled by a stop or `--max-duration`: a commit cut off halfway
/// could list a backup whose run reported failure.
async fn commit(repo: &Repository, manifest: &Manifest) -> Result<()> {
    let Err(e) = repo.commit(manifest).await else {
        return Ok(());
    };
    // Without its manifest the archive is invisible to `list` but keeps its
    // space, and the usual reason for a failed manifest write is a full
    // disk: remove it rather than leave an orphan behind. (The manifest
    // too, in case only the directory sync after its rename failed: a
    // manifest without its archive would list as broken.)
    if let Ok(mkey) = repo.manifest_key(&manifest.id) {
        let _ = repo.storage().discard(&mkey).await;
    }
    discard_archive(repo, &manifest.archive.key).await;
    Err(e)
}

/// The manifest's record of a partial backup's filter.
fn filter_record(f: &TableFilter) -> Option<crate::repo::manifest::FilterRecord> {
    if f.is_empty() {
        return None;
    }
    let texts = |ps: &[crate::filter::Pattern]| ps.iter().map(|p| p.as_str().to_string()).collect();
    Some(crate::repo::manifest::FilterRecord {
        tables: texts(&f.include_tables),
        exclude_tables: texts(&f.exclude_tables),
        schemas: texts(&f.include_schemas),
        exclude_schemas: texts(&f.exclude_schemas),
        exclude_table_data: texts(&f.exclude_data),
    })
}

/// Removes what a failed run wrote of its archive: an unfinished upload
/// (wherever its writer is), or the whole archive when the failure came
/// after it was written (a stop during `--verify-upload full`, say). Only
/// ever called before the run's manifest is committed.
async fn discard_archive(repo: &Repository, key: &str) {
    match repo.storage().abort_unfinished(key).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("discarded {n} unfinished upload(s) of the failed backup"),
        Err(e) => tracing::warn!("could not discard the failed backup's upload: {e}"),
    }
    if let Err(e) = repo.storage().discard(key).await {
        tracing::warn!("could not remove the archive of the failed backup: {e}");
    }
}

fn entry_info(id: u32, kind: &str, name: Option<String>, meta: serde_json::Value) -> EntryInfo {
    EntryInfo {
        id,
        kind: kind.to_string(),
        name,
        meta,
    }
}

/// The part of the schema a filtered backup holds, chosen as pg_dump
/// chooses:
/// - with `--table`, the relations named (tables, views, materialized
///   views, sequences, foreign tables) and what belongs to them;
/// - otherwise every object of the schemas kept (all of them, or those
///   `--schema` names: then objects of no schema, such as casts, event
///   triggers and publications, are left out too), less the relations
///   `--exclude-table` names, with what belongs to them.
///
/// Unlike pg_dump, what the kept objects need comes along (relations for
/// their definition only, without rows), so a partial backup restores into
/// an empty database.
fn restrict_model(model: &SchemaModel, filter: &TableFilter) -> SchemaModel {
    // A sequence a column owns goes with its table, as in pg_dump.
    let owned: HashSet<u32> = model.owned_sequences().map(|(seq, _)| seq).collect();
    let name_selected =
        |o: &DbObject| filter.table_selected(o.schema.as_deref().unwrap_or(""), &o.name);
    let roots: Vec<u32> = model
        .objects
        .iter()
        .filter(|o| {
            if o.kind.is_relation() {
                return name_selected(o);
            }
            if o.kind == ObjectKind::Sequence {
                return name_selected(o)
                    && (!filter.include_tables.is_empty() || !owned.contains(&o.id));
            }
            // What belongs to a relation comes with it.
            if !filter.include_tables.is_empty() || model.owning_relation(o.id).is_some() {
                return false;
            }
            match (o.kind, o.schema.as_deref()) {
                (ObjectKind::Schema, _) => filter.schema_selected(&o.name),
                (ObjectKind::LargeObject, _) => filter.keeps_large_objects(),
                (_, Some(schema)) => filter.schema_selected(schema),
                (_, None) => filter.include_schemas.is_empty(),
            }
        })
        .map(|o| o.id)
        .collect();
    let closure = model.closure_from(&[], &roots);
    let kept: std::collections::BTreeSet<u32> = closure.objects.iter().copied().collect();
    let mut out = model.subset(&kept);
    // Relations taken only for their definition carry no data.
    out.tables
        .retain(|t| filter.table_selected(&t.schema, &t.name));
    out
}

/// Relations in user schemas that `--table` may name (tables, views,
/// materialized views, sequences, foreign tables), not owned by an
/// extension; `true` for the ordinary and partitioned tables, which the
/// backup locks.
async fn list_tables(client: &tokio_postgres::Client) -> Result<Vec<(u32, String, String, bool)>> {
    let sql = format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind IN ('r', 'p') \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {} \
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                            WHERE d.classid = 'pg_catalog.pg_class'::regclass \
                              AND d.objid = c.oid AND d.deptype = 'e') \
         ORDER BY c.oid",
        schema::catalog::USER_NS
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| Error::pg("listing tables", e))?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, u32>(0), r.get(1), r.get(2), r.get(3)))
        .collect())
}

/// The object identifier alias types: their binary form is the bare OID,
/// which names another object (or none) in the database a restore creates;
/// their text form is the object's name.
const OID_ALIAS_TYPES: [&str; 11] = [
    "regclass",
    "regcollation",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regoper",
    "regoperator",
    "regproc",
    "regprocedure",
    "regrole",
    "regtype",
];

/// Tables with a column whose type, or array element type, is not one of
/// PostgreSQL's own with binary send/receive functions: an extension's or
/// a user's type may have none, or a binary form that another build of it
/// would not read back. Those tables stay in text format.
/// So do tables with an OID alias column (`regclass`, ...): see
/// [`OID_ALIAS_TYPES`].
async fn text_only_tables(
    client: &tokio_postgres::Client,
    tables: &[&TableInfo],
) -> Result<HashSet<u32>> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = client
        .query(
            "SELECT DISTINCT a.attrelid FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_type e ON e.oid = t.typelem AND t.typlen = -1 \
             WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped \
               AND a.attgenerated = '' \
               AND (t.oid >= 16384 OR t.typsend::oid = 0 OR t.typreceive::oid = 0 \
                    OR t.typname::text = ANY($2) \
                    OR (e.oid IS NOT NULL AND (e.oid >= 16384 OR e.typsend::oid = 0 \
                                              OR e.typreceive::oid = 0 \
                                              OR e.typname::text = ANY($2))))",
            &[&oids, &&OID_ALIAS_TYPES[..]],
        )
        .await
        .map_err(|e| Error::pg("checking column types for binary COPY", e))?;
    Ok(rows.iter().map(|r| r.get::<_, u32>(0)).collect())
}

/// Bytes of a large object per line of the `large_objects` entry.
const LO_PIECE: i32 = 256 * 1024;

/// Reads every large object's contents in the snapshot and writes them as
/// lines `oid \t offset \t hex\n` (format-spec.md, 5.1): whole lines per
/// chunk, like table rows, so the chunker applies unchanged.
async fn copy_large_objects(
    client: &tokio_postgres::Client,
    model: &SchemaModel,
    entry: u32,
    sender: &crate::archive::pipeline::ChunkSender,
    chunk_size: usize,
) -> Result<()> {
    let mut chunker = copy::Chunker::new(chunk_size);
    for lo in &model.large_objects {
        let mut offset: i64 = 0;
        loop {
            let row = client
                .query_one(
                    "SELECT pg_catalog.lo_get($1, $2, $3)",
                    &[&lo.oid, &offset, &LO_PIECE],
                )
                .await
                .map_err(|e| Error::pg(format!("reading large object {}", lo.oid), e))?;
            let data: Vec<u8> = row.get(0);
            if data.is_empty() && offset > 0 {
                break;
            }
            let line = format!("{}\t{offset}\t{}\n", lo.oid, hex::encode(&data));
            for c in chunker.push(line.as_bytes()) {
                submit_chunk(sender, entry, c.rows, c.data).await?;
            }
            offset += data.len() as i64;
            if data.len() < LO_PIECE as usize {
                break;
            }
        }
    }
    if let Some(c) = chunker.finish()? {
        submit_chunk(sender, entry, c.rows, c.data).await?;
    }
    Ok(())
}

/// Hands one chunk to the pipeline from a blocking thread: `submit` blocks
/// while the pipeline is full, which is the backpressure on COPY.
async fn submit_chunk(
    sender: &crate::archive::pipeline::ChunkSender,
    entry: u32,
    rows: u64,
    data: Vec<u8>,
) -> Result<()> {
    let s = sender.clone();
    tokio::task::spawn_blocking(move || s.submit(entry, rows, data))
        .await
        .map_err(|e| Error::task("archive pipeline", e))?
}

/// Cuts a serialized blob into chunk-sized pieces for entries that are not
/// row data (the schema, sequence states).
async fn submit_blob(
    sender: &crate::archive::pipeline::ChunkSender,
    entry: u32,
    data: Vec<u8>,
    chunk_size: usize,
) -> Result<()> {
    for piece in data.chunks(chunk_size.max(1)) {
        submit_chunk(sender, entry, 0, piece.to_vec()).await?;
    }
    Ok(())
}

/// `--table` naming a partitioned table without (all) its partitions: its
/// rows are theirs, so the backup holds none of those left out. Said, as
/// the restore says it (QA: `-t s.pt` backed up 0 rows without a word).
/// Returns the warnings to give.
async fn partitions_left_out(
    client: &tokio_postgres::Client,
    oids: &[u32],
    filter: &crate::filter::TableFilter,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT pn.nspname::text, p.relname::text, cn.nspname::text, c.relname::text
               FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
               JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
               JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
               JOIN pg_catalog.pg_namespace cn ON cn.oid = c.relnamespace
              WHERE p.oid = ANY($1) AND p.relkind = 'p'
              ORDER BY 1, 2, 3, 4",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg("listing the partitions of chosen tables", e))?;
    let mut left: Vec<(String, Vec<String>)> = Vec::new();
    for r in &rows {
        let (ps, pn, cs, cn): (String, String, String, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3));
        if filter.table_selected(&cs, &cn) {
            continue;
        }
        let parent = crate::filter::spell(&ps, &pn);
        match left.last_mut() {
            Some((p, kids)) if *p == parent => kids.push(crate::filter::spell(&cs, &cn)),
            _ => left.push((parent, vec![crate::filter::spell(&cs, &cn)])),
        }
    }
    Ok(left
        .into_iter()
        .map(|(parent, kids)| {
            format!(
                "partitions of {parent} not chosen: {}; their rows are not in the backup (name \
                 them with --table too, or a pattern such as --table '{parent}*')",
                kids.join(", ")
            )
        })
        .collect())
}

/// Refusals for what does not come back the same from UTF-8 in a database
/// in another encoding than UTF8 and SQL_ASCII (none for those): names and
/// definitions are read as UTF-8, and the server's conversion there and
/// back is not exact for every encoding. An EUC_JP name spelled with one of
/// its duplicate codes reads as the other spelling, which names another
/// table or none (QA: two tables were backed up as one, or the locks failed
/// as if the table changed); an enum label, a check's or a partition
/// bound's literal, a default, a function body, a view, an index, a comment
/// or another object's name comes back respelled while the rows keep their
/// bytes, so they no longer match (QA: an enum's rows failed to load).
async fn off_utf8(client: &tokio_postgres::Client, oids: &[u32]) -> Result<Vec<String>> {
    let context = "checking names and definitions against the database's encoding";
    let enc: String = client
        .query_one("SELECT pg_catalog.current_setting('server_encoding')", &[])
        .await
        .map_err(|e| Error::pg(context, e))?
        .get(0);
    if crate::schema::copy_option_encoding(&enc).is_none() {
        return Ok(Vec::new());
    }
    let enc = crate::schema::ddl::literal(&enc);
    let changes = |x: &str| {
        format!(
            "pg_catalog.convert(pg_catalog.convert_to({x}, 'UTF8'), 'UTF8', {enc}) \
             <> pg_catalog.convert_to({x}, {enc})"
        )
    };
    let mut refusals = Vec::new();
    let tables = tables_where(
        client,
        &format!(
            "EXISTS (SELECT FROM (SELECT n.nspname::text UNION ALL SELECT c.relname::text
                                  UNION ALL SELECT a.attname::text FROM pg_attribute a
                                   WHERE a.attrelid = c.oid AND a.attnum > 0) x(name)
                      WHERE {})",
            changes("x.name")
        ),
        oids,
        context,
    )
    .await?;
    if !tables.is_empty() {
        refusals.push(format!(
            "{} table(s) whose name, schema's name or column names PostgreSQL does not convert \
             to UTF-8 and back unchanged (the database's encoding has two codes for one \
             character): {}; rename them, or leave them out with --exclude-table",
            tables.len(),
            tables.join(", ")
        ));
    }
    let rows = client
        .query(
            &format!(
                "WITH user_ns AS (
               SELECT oid FROM pg_catalog.pg_namespace
                WHERE nspname NOT IN ('pg_catalog', 'information_schema')
                  AND nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp%'),
             texts(what, t) AS (
               SELECT 'schema ' || n.nspname, n.nspname::text FROM pg_catalog.pg_namespace n
                WHERE n.oid IN (SELECT oid FROM user_ns)
               UNION ALL
               -- Tables' names and columns are the table check's.
               SELECT 'relation ' || c.oid::regclass::text, c.relname::text
                 FROM pg_catalog.pg_class c
                WHERE c.relkind NOT IN ('r', 'p', 'f')
                  AND c.relnamespace IN (SELECT oid FROM user_ns)
               UNION ALL
               SELECT 'view ' || c.oid::regclass::text, pg_catalog.pg_get_viewdef(c.oid)
                 FROM pg_catalog.pg_class c
                WHERE c.relkind IN ('v', 'm') AND c.relnamespace IN (SELECT oid FROM user_ns)
               UNION ALL
               SELECT 'partition bound of ' || c.oid::regclass::text,
                      pg_catalog.pg_get_expr(c.relpartbound, c.oid)
                 FROM pg_catalog.pg_class c
                WHERE c.relpartbound IS NOT NULL AND c.relnamespace IN (SELECT oid FROM user_ns)
               UNION ALL
               SELECT 'index ' || i.indexrelid::regclass::text,
                      pg_catalog.pg_get_indexdef(i.indexrelid)
                 FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
                WHERE c.relnamespace IN (SELECT oid FROM user_ns)
               UNION ALL
               SELECT 'type ' || pg_catalog.format_type(t.oid, NULL), t.typname::text
                 FROM pg_catalog.pg_type t WHERE t.typnamespace IN (SELECT oid FROM user_ns)
               UNION ALL
               SELECT 'label of enum ' || pg_catalog.format_type(e.enumtypid, NULL),
                      e.enumlabel::text
                 FROM pg_catalog.pg_enum e
               UNION ALL
               SELECT 'constraint ' || c.conname || ' of ' ||
                      CASE WHEN c.conrelid <> 0 THEN c.conrelid::regclass::text
                           ELSE pg_catalog.format_type(c.contypid, NULL) END,
                      c.conname::text || ' ' || pg_catalog.pg_get_constraintdef(c.oid)
                 FROM pg_catalog.pg_constraint c
                WHERE c.connamespace IN (SELECT oid FROM user_ns)
               UNION ALL
               SELECT 'default of ' || d.adrelid::regclass::text,
                      pg_catalog.pg_get_expr(d.adbin, d.adrelid)
                 FROM pg_catalog.pg_attrdef d
               UNION ALL
               SELECT 'function ' || p.oid::regprocedure::text,
                      p.proname::text || ' ' || coalesce(p.prosrc, '')
                 FROM pg_catalog.pg_proc p WHERE p.pronamespace IN (SELECT oid FROM user_ns)
               UNION ALL
               SELECT 'comment', d.description FROM pg_catalog.pg_description d
                WHERE d.objoid >= 16384)
             SELECT DISTINCT what FROM texts WHERE t IS NOT NULL AND {} ORDER BY 1",
                changes("t")
            ),
            &[],
        )
        .await
        .map_err(|e| Error::pg(context, e))?;
    let defs: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if !defs.is_empty() {
        refusals.push(format!(
            "{} definition(s) hold text PostgreSQL does not convert to UTF-8 and back \
             unchanged (the database's encoding has two codes for one character, and pgsnap \
             reads definitions as UTF-8 while the rows keep their bytes, so they would no \
             longer match): {}; write those characters with their other code in these \
             definitions, or back up with pg_dump",
            defs.len(),
            crate::progress::first_n(&defs, 8)
        ));
    }
    Ok(refusals)
}

/// Of the tables `oids`, those (qualified, sorted) for which `condition`
/// on `c` (their pg_class row) holds.
async fn tables_where(
    client: &tokio_postgres::Client,
    condition: &str,
    oids: &[u32],
    context: &str,
) -> Result<Vec<String>> {
    let rows = client
        .query(
            &format!(
                "SELECT n.nspname, c.relname FROM pg_class c
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE c.oid = ANY($1) AND {condition}
                  ORDER BY 1, 2"
            ),
            &[&oids.to_vec()],
        )
        .await
        .map_err(|e| Error::pg(context, e))?;
    Ok(rows.iter().map(|r| qualified(r.get(0), r.get(1))).collect())
}

/// Fails before any work with the list of tables the role cannot read or
/// read only part of (row-level security), and when the lock table cannot
/// hold a lock per table.
async fn preflight(
    client: &tokio_postgres::Client,
    oids: &[u32],
    data_of: &[u32],
    large_objects: bool,
) -> Result<()> {
    let refuse = |detail: String| Error::Postgres {
        context: "preflight".into(),
        detail,
        code: None,
    };
    // Every refusal at once, each with its way out (QA: a second run
    // found the large objects the first did not mention).
    let mut refusals: Vec<String> = Vec::new();
    let names = tables_where(
        client,
        "NOT has_table_privilege(c.oid, 'SELECT')",
        oids,
        "checking table privileges",
    )
    .await?;
    if !names.is_empty() {
        refusals.push(format!(
            "permission denied to read {} table(s): {}; grant SELECT or leave them out with \
             --exclude-table / --exclude-schema",
            names.len(),
            names.join(", ")
        ));
    }
    refusals.extend(off_utf8(client, oids).await?);
    // A table it may read in a schema it may not use: its lock failed on
    // the next run, after the advice to grant SELECT (QA).
    let names = tables_where(
        client,
        "NOT has_schema_privilege(c.relnamespace, 'USAGE')",
        oids,
        "checking schema privileges",
    )
    .await?;
    if !names.is_empty() {
        refusals.push(format!(
            "permission denied for the schema(s) of {} table(s): {}; grant USAGE on their \
             schemas (GRANT USAGE ON SCHEMA ... TO the backup role) or leave them out with \
             --exclude-schema / --exclude-table",
            names.len(),
            names.join(", ")
        ));
    }
    // Row-level security the role is subject to (not the owner, or the
    // owner of a table with FORCE; not a superuser or BYPASSRLS): its COPY
    // would fail (`row_security = off`, see `pg::snapshot`) where it once
    // saved only the rows the policies let it see. Only the tables whose
    // rows are read: a partitioned table's are its partitions', copied
    // each from its own (whose policies are their own), and
    // --exclude-table-data reads none (QA: both refused).
    let names = tables_where(
        client,
        "c.relkind <> 'p' AND c.relrowsecurity AND row_security_active(c.oid)",
        data_of,
        "checking row-level security",
    )
    .await?;
    if !names.is_empty() {
        refusals.push(format!(
            "row-level security would hide rows of {} table(s) from this role: {}; back up as a \
             role that bypasses it (the tables' owner when they are not FORCE ROW LEVEL \
             SECURITY, a superuser, or a role with BYPASSRLS), or leave their rows out with \
             --exclude-table-data (or the tables with --exclude-table)",
            names.len(),
            names.join(", ")
        ));
    }
    // Large objects the role may not read (PostgreSQL 15 has no
    // has_largeobject_privilege: their ACL, as the server reads it): the
    // backup failed at the first, in its data phase (QA).
    if large_objects {
        let rows = client
            .query(
                "SELECT m.oid::int8 FROM pg_largeobject_metadata m
                  WHERE NOT (current_setting('lo_compat_privileges')::bool
                     OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
                     OR (m.lomacl IS NULL AND pg_has_role(m.lomowner, 'USAGE'))
                     OR EXISTS (SELECT FROM aclexplode(m.lomacl) a
                                 WHERE a.privilege_type = 'SELECT'
                                   AND (a.grantee = 0 OR pg_has_role(a.grantee, 'USAGE'))))
                  ORDER BY 1",
                &[],
            )
            .await
            .map_err(|e| Error::pg("checking large object privileges", e))?;
        if !rows.is_empty() {
            let oids: Vec<String> = rows
                .iter()
                .map(|r| r.get::<_, i64>(0).to_string())
                .collect();
            refusals.push(format!(
                "permission denied to read {} large object(s): {}; grant SELECT on them (GRANT \
                 SELECT ON LARGE OBJECT oid TO role), back up as their owner or a superuser, or \
                 choose tables with --table or --schema (which leaves large objects out)",
                oids.len(),
                crate::progress::first_n(&oids, 12)
            ));
        }
    }
    if !refusals.is_empty() {
        return Err(refuse(refusals.join("; and ")));
    }
    let row = client
        .query_one(
            "SELECT current_setting('max_locks_per_transaction')::bigint,
                    current_setting('max_connections')::bigint +
                    current_setting('max_prepared_transactions')::bigint",
            &[],
        )
        .await
        .map_err(|e| Error::pg("reading lock settings", e))?;
    let (per_transaction, slots): (i64, i64) = (row.get(0), row.get(1));
    let cap = per_transaction * slots;
    // Each table is locked twice until the end: by the session holding the
    // snapshot, and by the one that copies it.
    let needed = 2 * oids.len() as i64;
    if needed > cap {
        return Err(Error::Postgres {
            context: "preflight".into(),
            detail: format!(
                "{} tables to lock twice each (by the snapshot's session and by the one copying \
                 it), {needed} locks, but the server's lock table holds about {cap} in all \
                 (max_locks_per_transaction {per_transaction} x {slots} connections); raise \
                 max_locks_per_transaction to at least {} (needs a restart) or back up fewer \
                 tables (--schema, --table)",
                oids.len(),
                (needed + slots - 1) / slots.max(1) + 16,
            ),
            code: None,
        });
    }
    Ok(())
}

async fn read_sequences(
    client: &tokio_postgres::Client,
    model: &SchemaModel,
) -> Result<Vec<SequenceState>> {
    let mut out = Vec::new();
    for s in &model.sequences {
        let q = qualified(&s.schema, &s.name);
        let row = client
            .query_one(&format!("SELECT last_value, is_called FROM {q}"), &[])
            .await
            .map_err(|e| Error::pg(format!("reading sequence {q}"), e))?;
        out.push(SequenceState {
            schema: s.schema.clone(),
            name: s.name.clone(),
            last_value: row.get(0),
            is_called: row.get(1),
        });
    }
    Ok(out)
}

/// Per-table bookkeeping shared by the COPY workers: work items left and
/// rows so far, to report a table done when its last item ends.
struct Tally {
    left: Mutex<std::collections::HashMap<u32, (usize, u64)>>,
    names: std::collections::HashMap<u32, (String, String)>,
    progress: Arc<dyn Progress>,
}

impl Tally {
    fn item_done(&self, entry: u32, rows: u64) {
        let finished = {
            let mut l = self.left.lock().unwrap();
            let n = l.get_mut(&entry).expect("entry counted");
            n.0 -= 1;
            n.1 += rows;
            (n.0 == 0).then_some(n.1)
        };
        if let (Some(rows), Some((schema, name))) = (finished, self.names.get(&entry)) {
            self.progress.event(Event::TableDone {
                schema: schema.clone(),
                name: name.clone(),
                rows,
            });
        }
    }
}

/// Per-table locks for tables copied as several ctid ranges at once.
///
/// Chunks of whole rows may reach the archive in any order, but the pieces
/// of a row longer than a chunk (see `copy::Chunker`) must follow each other
/// within the table's entry, or a restore would splice another range's rows
/// into the middle of that row. A worker holds its table's lock from a long
/// row's first piece to its last; every other worker on that table takes
/// the lock for each chunk it hands over.
type EntryLocks = Arc<std::collections::HashMap<u32, Arc<tokio::sync::Mutex<()>>>>;

fn entry_locks(items: &[WorkItem]) -> EntryLocks {
    let mut count = std::collections::HashMap::<u32, usize>::new();
    for i in items {
        *count.entry(i.entry).or_default() += 1;
    }
    Arc::new(
        count
            .into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|(e, _)| (e, Arc::new(tokio::sync::Mutex::new(()))))
            .collect(),
    )
}

/// Streams one work item's COPY into the pipeline; returns its rows.
async fn copy_item(
    client: &tokio_postgres::Client,
    item: &WorkItem,
    target: usize,
    sender: &crate::archive::pipeline::ChunkSender,
    progress: &Arc<dyn Progress>,
    locks: &EntryLocks,
) -> Result<u64> {
    let entry = item.entry;
    let rows_done = AtomicU64::new(0);
    let lock = locks.get(&entry).cloned();
    let held: Mutex<Option<tokio::sync::OwnedMutexGuard<()>>> = Mutex::new(None);
    copy::copy_out(client, &item.sql, item.format, target, |chunk: RowChunk| {
        rows_done.fetch_add(chunk.rows, Ordering::Relaxed);
        let (lock, held) = (lock.clone(), &held);
        async move {
            let holding = held.lock().unwrap_or_else(|p| p.into_inner()).is_some();
            if let (Some(lock), false) = (lock, holding) {
                let guard = lock.lock_owned().await;
                *held.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
            }
            let (rows, bytes) = (chunk.rows, chunk.data.len() as u64);
            submit_chunk(sender, entry, rows, chunk.data).await?;
            // A chunk with no row ending in it is a piece of a long row:
            // keep the table until the row's last piece is handed over.
            if rows > 0 {
                held.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
            progress.event(Event::Rows { rows, bytes });
            Ok(())
        }
    })
    .await?;
    Ok(rows_done.load(Ordering::Relaxed))
}

/// Takes the worker's own ACCESS SHARE lock without waiting. It fails when
/// another session queued for an exclusive lock (DROP, ALTER) after the
/// coordinator locked the table: waiting would deadlock (that session waits
/// for the coordinator, which waits for this worker), so the item goes to
/// the coordinator, which already holds the lock.
async fn try_lock(client: &tokio_postgres::Client, table: &str) -> Result<bool> {
    client
        .batch_execute("SAVEPOINT pgsnap_lock")
        .await
        .map_err(|e| Error::pg("savepoint", e))?;
    match client
        .batch_execute(&format!("LOCK TABLE {table} IN ACCESS SHARE MODE NOWAIT"))
        .await
    {
        Ok(()) => Ok(true),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
            client
                .batch_execute("ROLLBACK TO SAVEPOINT pgsnap_lock")
                .await
                .map_err(|e| Error::pg("rollback to savepoint", e))?;
            Ok(false)
        }
        Err(e) => Err(Error::pg(format!("locking {table}"), e)),
    }
}

/// Runs the work items on `jobs` snapshot-sharing connections; items whose
/// table a worker cannot lock run on the coordinator at the end.
#[allow(clippy::too_many_arguments)]
async fn copy_all(
    coordinator: &tokio_postgres::Client,
    names: std::collections::HashMap<u32, (String, String)>,
    encoding: &str,
    conn: &ConnInfo,
    snapshot_id: &str,
    items: Vec<WorkItem>,
    jobs: usize,
    opts: &BackupOptions,
    sender: &crate::archive::pipeline::ChunkSender,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let mut left = std::collections::HashMap::new();
    for i in &items {
        left.entry(i.entry).or_insert((0usize, 0u64)).0 += 1;
    }
    let tally = Arc::new(Tally {
        left: Mutex::new(left),
        names,
        progress: progress.clone(),
    });
    let target = opts.chunk_size as usize;
    let locks = entry_locks(&items);
    let workers = jobs.min(items.len()).max(1);
    let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(items)));
    let deferred = Arc::new(Mutex::new(Vec::new()));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        let session = snapshot::adopt(conn, snapshot_id).await?;
        session.set_copy_encoding(encoding).await?;
        let (queue, deferred, failed, tally) = (
            queue.clone(),
            deferred.clone(),
            failed.clone(),
            tally.clone(),
        );
        let (sender, progress, locks) = (sender.clone(), progress.clone(), locks.clone());
        tasks.spawn(async move {
            loop {
                if failed.load(Ordering::Relaxed) > 0 {
                    return Ok(());
                }
                let item = queue.lock().unwrap().pop_front();
                let Some(item) = item else { return Ok(()) };
                let res = match try_lock(&session.client, &item.table).await {
                    Ok(true) => {
                        copy_item(&session.client, &item, target, &sender, &progress, &locks).await
                    }
                    Ok(false) => {
                        deferred.lock().unwrap().push(item);
                        continue;
                    }
                    Err(e) => Err(e),
                };
                match res {
                    Ok(rows) => tally.item_done(item.entry, rows),
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        });
    }
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap_or_else(|e| Err(Error::task("copy worker", e)));
        if let Err(e) = r {
            if first_err.is_none() {
                first_err = Some(e);
                tasks.abort_all();
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let deferred = std::mem::take(&mut *deferred.lock().unwrap());
    let enc = copy_encoding(encoding);
    let raw = enc != "UTF8" && !deferred.is_empty();
    if raw {
        set_client_encoding(coordinator, enc).await?;
    }
    for item in deferred {
        tracing::info!(
            "{} is wanted by another session; copying it on the coordinator",
            item.table
        );
        let rows = copy_item(coordinator, &item, target, sender, progress, &locks).await?;
        tally.item_done(item.entry, rows);
    }
    if raw {
        // The coordinator goes on to read names (sequences) as strings.
        set_client_encoding(coordinator, "UTF8").await?;
    }
    Ok(())
}
