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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::archive::codec::Compression;
use crate::archive::pipeline::ChunkPipeline;
use crate::archive::seal::Cipher;
use crate::archive::writer::{ArchiveOptions, ArchiveWriter, EntryInfo};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::filter::TableFilter;
use crate::pg::conn::ConnInfo;
use crate::pg::copy::{self, RowChunk};
use crate::pg::snapshot::{self, qualified, Coordinator};
use crate::progress::{Event, Progress};
use crate::repo::manifest::{ArchiveRecord, Timings, MANIFEST_TYPE, MANIFEST_VERSION};
use crate::repo::{self, Manifest, Repository, TableRecord};
use crate::schema::{self, SchemaModel, TableInfo, TableRef};

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

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub jobs: usize,
    pub compression: Compression,
    pub cipher: Cipher,
    pub chunk_size: u32,
    pub filter: TableFilter,
    pub tags: BTreeMap<String, String>,
    pub lock_timeout: Duration,
    pub max_duration: Option<Duration>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        let a = ArchiveOptions::default();
        BackupOptions {
            jobs: 2,
            compression: a.compression,
            cipher: a.cipher,
            chunk_size: a.chunk_size,
            filter: TableFilter::default(),
            tags: BTreeMap::new(),
            lock_timeout: Duration::from_secs(60),
            max_duration: None,
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
    sql: String,
    pages: i64,
}

fn plan_items(tables: &[(u32, &TableInfo)], jobs: usize, tid_ranges: bool) -> Vec<WorkItem> {
    let mut items = Vec::new();
    for (entry, t) in tables {
        let cols = t
            .columns
            .iter()
            .map(|c| snapshot::ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let q = qualified(&t.schema, &t.name);
        let pages = t.relpages.max(0);
        if tid_ranges && jobs > 1 && pages > 2 * SPLIT_PAGES && !t.columns.is_empty() {
            let parts = (pages / SPLIT_PAGES).clamp(2, 64);
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
                    entry: *entry,
                    sql: format!("COPY (SELECT {cols} FROM ONLY {q} WHERE {cond}) TO STDOUT"),
                    pages: step,
                });
            }
        } else {
            items.push(WorkItem {
                entry: *entry,
                sql: schema::copy_out_sql(t),
                pages,
            });
        }
    }
    items.sort_by_key(|i| std::cmp::Reverse(i.pages));
    items
}

/// Runs a backup into `repo` and returns its committed manifest.
pub async fn run(
    repo: &Repository,
    conn: &ConnInfo,
    keys: &Credentials,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest> {
    match opts.max_duration {
        Some(d) => tokio::time::timeout(d, run_inner(repo, conn, keys, opts, progress))
            .await
            .map_err(|_| Error::Postgres {
                context: "backup".into(),
                detail: format!(
                    "exceeded --max-duration of {}s and was stopped; nothing was kept",
                    d.as_secs()
                ),
            })?,
        None => run_inner(repo, conn, keys, opts, progress).await,
    }
}

async fn run_inner(
    repo: &Repository,
    conn: &ConnInfo,
    keys: &Credentials,
    opts: &BackupOptions,
    progress: Arc<dyn Progress>,
) -> Result<Manifest> {
    let t0 = Instant::now();
    let started_at = Utc::now();
    let id = repo::new_backup_id(started_at);
    if let Err(e) = repo.sweep_stale(started_at).await {
        tracing::warn!("could not sweep stale temporary files: {e}");
    }

    progress.event(Event::Phase("connect"));
    let coord = Coordinator::begin(conn).await?;
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
    let t_connect = t0.elapsed();

    progress.event(Event::Phase("schema"));
    let mut model = schema::read_schema(client)
        .await
        .map_err(|e| Error::Schema(format!("reading the schema: {e}")))?;
    let all: Vec<(String, String)> = model
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    let unmatched = opts.filter.unmatched_includes(&all);
    if !unmatched.is_empty() {
        return Err(Error::Usage(format!(
            "no table matches --table {}",
            unmatched.join(", --table ")
        )));
    }
    if !opts.filter.is_empty() {
        model = restrict_model(model, |s, n| opts.filter.table_selected(s, n));
    }
    let t_schema = t0.elapsed();

    let dumped: Vec<&TableInfo> = model.tables.iter().collect();
    preflight(client, &dumped).await?;
    progress.event(Event::Phase("lock"));
    let lock_list: Vec<(String, String)> = dumped
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    coord
        .lock_tables(conn, &lock_list, opts.lock_timeout)
        .await?;

    let sequences = read_sequences(client, &model).await?;

    // The archive.
    let aopts = ArchiveOptions {
        cipher: opts.cipher,
        compression: opts.compression,
        chunk_size: opts.chunk_size,
    };
    let key = repo::archive_key(&id)?;
    let object = repo.storage().writer(&key)?;
    let (data_key, slots) = keys.new_archive_keys()?;
    let writer = ArchiveWriter::new(object, aopts, &data_key, slots)?;
    let archive_id = writer.archive_id();
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
    let schema_json = serde_json::to_vec(&model)
        .map_err(|e| Error::Schema(format!("serializing the schema: {e}")))?;
    submit_blob(&sender, 0, schema_json, opts.chunk_size as usize).await?;
    let seq_json = serde_json::to_vec(&sequences).expect("sequence states serialize");
    submit_blob(&sender, 1, seq_json, opts.chunk_size as usize).await?;

    let with_data: Vec<(u32, &TableInfo)> = dumped
        .iter()
        .filter(|t| t.has_data && opts.filter.data_selected(&t.schema, &t.name))
        .enumerate()
        .map(|(i, t)| (2 + i as u32, *t))
        .collect();
    for (entry, t) in &with_data {
        entries.push(entry_info(
            *entry,
            kind::TABLE,
            Some(format!("{}.{}", t.schema, t.name)),
            serde_json::to_value(TableMeta {
                schema: t.schema.clone(),
                name: t.name.clone(),
                columns: t.columns.clone(),
                copy_format: "text".into(),
            })
            .expect("table meta serializes"),
        ));
    }
    let items = plan_items(&with_data, jobs, server_version_num >= 140000);
    progress.event(Event::Planned {
        tables: with_data.len(),
        rows_estimate: with_data
            .iter()
            .map(|(_, t)| t.reltuples.max(0.0) as u64)
            .sum(),
        bytes_estimate: with_data
            .iter()
            .map(|(_, t)| t.bytes_estimate.max(0) as u64)
            .sum(),
    });

    progress.event(Event::Phase("data"));
    let t_data0 = t0.elapsed();
    let names = Arc::new(
        with_data
            .iter()
            .map(|(e, t)| (*e, (t.schema.clone(), t.name.clone())))
            .collect(),
    );
    let data_result = copy_all(
        names,
        conn,
        &coord.snapshot_id,
        items,
        jobs,
        opts,
        &sender,
        &progress,
    )
    .await;
    drop(sender);
    // The snapshot is no longer needed; end it before the slow tail.
    let _ = client.batch_execute("COMMIT").await;
    if let Err(e) = data_result {
        drop(pipeline);
        return Err(e);
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
        .map_err(|e| Error::io("archive writer", std::io::Error::other(e.to_string())))??;
    let stored = tokio::task::spawn_blocking(move || object.finish())
        .await
        .map_err(|e| Error::io("archive writer", std::io::Error::other(e.to_string())))??;
    if stored.size != summary.bytes {
        return Err(Error::Integrity(format!(
            "archive {key} is {} bytes after writing {} bytes",
            stored.size, summary.bytes
        )));
    }

    let mut tables = Vec::new();
    let (mut rows, mut data_bytes) = (0, 0);
    for (entry, t) in &with_data {
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
            sha256: hex::encode(summary.sha256),
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
    };
    repo.commit(&manifest).await?;
    Ok(manifest)
}

fn entry_info(id: u32, kind: &str, name: Option<String>, meta: serde_json::Value) -> EntryInfo {
    EntryInfo {
        id,
        kind: kind.to_string(),
        name,
        meta,
    }
}

/// Keeps only the selected tables and what they need (their closure), so a
/// filtered backup restores as exactly what was selected. Object ids are
/// positions in `objects`, so the kept objects are renumbered.
fn restrict_model(model: SchemaModel, keep: impl Fn(&str, &str) -> bool) -> SchemaModel {
    let refs: Vec<TableRef> = model
        .tables
        .iter()
        .filter(|t| keep(&t.schema, &t.name))
        .map(|t| TableRef::new(t.schema.clone(), t.name.clone()))
        .collect();
    let closure = model.closure(&refs);
    let mut kept: std::collections::BTreeSet<u32> = closure.objects.iter().copied().collect();
    // Objects that belong to no table and live in a selected schema's
    // namespace are kept only when the closure needs them; others go.
    kept.retain(|&id| (id as usize) < model.objects.len());
    let map: std::collections::HashMap<u32, u32> = kept
        .iter()
        .enumerate()
        .map(|(new, &old)| (old, new as u32))
        .collect();
    let remap = |id: u32| map.get(&id).copied();
    let mut out = model.clone();
    out.objects = kept
        .iter()
        .map(|&old| {
            let mut o = model.objects[old as usize].clone();
            o.id = map[&old];
            o.deps = o.deps.iter().filter_map(|&d| remap(d)).collect();
            o.belongs_to = o.belongs_to.and_then(remap);
            o.references = o.references.and_then(remap);
            o
        })
        .collect();
    out.tables = model
        .tables
        .iter()
        .filter(|t| keep(&t.schema, &t.name))
        .filter_map(|t| {
            let mut t = t.clone();
            t.object_id = remap(t.object_id)?;
            t.parent = t.parent.and_then(remap);
            Some(t)
        })
        .collect();
    out.sequences = model
        .sequences
        .iter()
        .filter_map(|s| {
            let mut s = s.clone();
            s.object_id = remap(s.object_id)?;
            Some(s)
        })
        .collect();
    out.matviews = model
        .matviews
        .iter()
        .filter_map(|m| {
            let mut m = m.clone();
            m.object_id = remap(m.object_id)?;
            Some(m)
        })
        .collect();
    out.large_objects = vec![];
    out
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
        let s = sender.clone();
        let piece = piece.to_vec();
        tokio::task::spawn_blocking(move || s.submit(entry, 0, piece))
            .await
            .map_err(|e| Error::io("archive pipeline", std::io::Error::other(e.to_string())))??;
    }
    Ok(())
}

/// Fails before any work with the list of tables the role cannot read, and
/// when the lock table cannot hold a lock per table.
async fn preflight(client: &tokio_postgres::Client, tables: &[&TableInfo]) -> Result<()> {
    let oids: Vec<u32> = tables.iter().map(|t| t.oid).collect();
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = ANY($1) AND NOT has_table_privilege(c.oid, 'SELECT')
              ORDER BY 1, 2",
            &[&oids],
        )
        .await
        .map_err(|e| Error::pg("checking table privileges", e))?;
    if !rows.is_empty() {
        let names: Vec<String> = rows.iter().map(|r| qualified(r.get(0), r.get(1))).collect();
        return Err(Error::Postgres {
            context: "preflight".into(),
            detail: format!(
                "permission denied to read {} table(s): {}; grant SELECT or leave them out with \
                 --exclude-table / --exclude-schema",
                names.len(),
                names.join(", ")
            ),
        });
    }
    let cap = client
        .query_one(
            "SELECT current_setting('max_locks_per_transaction')::bigint *
                    (current_setting('max_connections')::bigint +
                     current_setting('max_prepared_transactions')::bigint)",
            &[],
        )
        .await
        .map_err(|e| Error::pg("reading lock settings", e))?;
    let cap: i64 = cap.get(0);
    if tables.len() as i64 > cap / 2 {
        return Err(Error::Postgres {
            context: "preflight".into(),
            detail: format!(
                "{} tables to lock but the server's lock table holds about {cap} locks in all; \
                 raise max_locks_per_transaction (needs a restart) or back up fewer tables",
                tables.len()
            ),
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

/// Runs the work items on `jobs` snapshot-sharing connections.
#[allow(clippy::too_many_arguments)]
async fn copy_all(
    names: Arc<std::collections::HashMap<u32, (String, String)>>,
    conn: &ConnInfo,
    snapshot_id: &str,
    items: Vec<WorkItem>,
    jobs: usize,
    opts: &BackupOptions,
    sender: &crate::archive::pipeline::ChunkSender,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    // Work items left per table, to report a table done when its last ends.
    let mut left: std::collections::HashMap<u32, (usize, u64)> = std::collections::HashMap::new();
    for i in &items {
        left.entry(i.entry).or_default().0 += 1;
    }
    let left = Arc::new(Mutex::new(left));
    let queue = Arc::new(Mutex::new(std::collections::VecDeque::from(items)));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let workers = jobs.min(queue.lock().unwrap().len()).max(1);
    for _ in 0..workers {
        let session = snapshot::adopt(conn, snapshot_id).await?;
        let queue = queue.clone();
        let sender = sender.clone();
        let progress = progress.clone();
        let failed = failed.clone();
        let left = left.clone();
        let names = names.clone();
        let target = opts.chunk_size as usize;
        tasks.spawn(async move {
            loop {
                if failed.load(Ordering::Relaxed) > 0 {
                    return Ok(());
                }
                let item = queue.lock().unwrap().pop_front();
                let Some(item) = item else { return Ok(()) };
                let entry = item.entry;
                let rows_done = Arc::new(AtomicU64::new(0));
                let counter = rows_done.clone();
                let res = copy::copy_out(&session.client, &item.sql, target, |chunk: RowChunk| {
                    let s = sender.clone();
                    let p = progress.clone();
                    counter.fetch_add(chunk.rows, Ordering::Relaxed);
                    async move {
                        let (rows, bytes) = (chunk.rows, chunk.data.len() as u64);
                        tokio::task::spawn_blocking(move || s.submit(entry, rows, chunk.data))
                            .await
                            .map_err(|e| {
                                Error::io("archive pipeline", std::io::Error::other(e.to_string()))
                            })??;
                        p.event(Event::Rows { rows, bytes });
                        Ok(())
                    }
                })
                .await;
                if let Err(e) = res {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
                let finished = {
                    let mut l = left.lock().unwrap();
                    let n = l.get_mut(&entry).expect("entry counted");
                    n.0 -= 1;
                    n.1 += rows_done.load(Ordering::Relaxed);
                    (n.0 == 0).then_some(n.1)
                };
                if let Some(rows) = finished {
                    if let Some((schema, name)) = names.get(&entry) {
                        progress.event(Event::TableDone {
                            schema: schema.clone(),
                            name: name.clone(),
                            rows,
                        });
                    }
                }
            }
        });
    }
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        let r = r.unwrap_or_else(|e| {
            Err(Error::io(
                "copy worker",
                std::io::Error::other(e.to_string()),
            ))
        });
        if let Err(e) = r {
            if first_err.is_none() {
                first_err = Some(e);
                tasks.abort_all();
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
