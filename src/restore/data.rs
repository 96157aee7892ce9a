//! The data phase: authenticate every chunk first, then load tables over
//! parallel `COPY ... FROM STDIN`, several streams into one big table.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::archive::index::ChunkRef;
use crate::error::{Error, Result};
use crate::pg::conn::{ConnInfo, Session};
use crate::pg::copy;
use crate::pg::snapshot::{ident, qualified};
use crate::progress::{Event, Progress};
use crate::repo::reader::StoredArchive;

use super::plan::{Plan, PlannedTable};

/// The smallest piece of a table worth its own COPY stream.
const MIN_UNIT_RAW_BYTES: u64 = 4 * 1024 * 1024;
/// Chunks fetched per ranged read while loading.
const FETCH_BATCH: usize = 8;

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::task("restore worker", e)
}

/// Opens every chunk of `refs` (authenticate + decompress) and returns the
/// raw contents in order; checks each belongs to `entry`.
async fn open_batch(
    archive: &StoredArchive,
    entry: u32,
    refs: &[ChunkRef],
) -> Result<Vec<Vec<u8>>> {
    let frames = archive.fetch(refs).await?;
    let open = archive.open.clone();
    tokio::task::spawn_blocking(move || {
        frames
            .into_iter()
            .map(|(c, frame)| {
                let (eid, raw) = open.open_chunk(&c, &frame)?;
                if eid != entry {
                    return Err(Error::Auth);
                }
                Ok(raw)
            })
            .collect()
    })
    .await
    .map_err(join_err)?
}

/// Authenticates every chunk the plan will load, on all cores, keeping
/// nothing: a tampered chunk or a wrong key fails the restore before the
/// target is touched.
pub async fn authenticate(archive: &StoredArchive, plan: &Plan, jobs: usize) -> Result<()> {
    let mut batches: Vec<(u32, Vec<ChunkRef>)> = Vec::new();
    for t in plan.tables.iter().filter(|t| t.load_data) {
        let entry = t.entry.expect("loaded tables have an entry");
        for group in t.chunk_refs.chunks(16) {
            batches.push((entry, group.to_vec()));
        }
    }
    if let Some((entry, chunks)) = &plan.large_objects {
        for group in chunks.chunks(16) {
            batches.push((*entry, group.to_vec()));
        }
    }
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(jobs);
    let results = futures::stream::iter(batches)
        .map(|(entry, refs)| async move {
            let frames = archive.fetch(&refs).await?;
            let open = archive.open.clone();
            tokio::task::spawn_blocking(move || {
                for (c, frame) in frames {
                    if open.authenticate_chunk(&c, &frame)? != entry {
                        return Err(Error::Auth);
                    }
                }
                Ok(())
            })
            .await
            .map_err(join_err)?
        })
        .buffer_unordered(parallel);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(())
}

pub(super) struct Unit {
    table: usize,
    entry: u32,
    chunks: Vec<ChunkRef>,
    raw: u64,
}

/// Cuts each table's chunks into units for parallel COPY streams. A unit may
/// end only after a chunk shorter than the archive's chunk size: only those
/// are sure to end at a row boundary (see `pg::copy::Chunker`).
///
/// Tables are split only where one is bigger than a job's fair share of all
/// the data: concurrent COPY streams into one table contend for its
/// extension lock, so whole tables on separate jobs load faster whenever
/// there are enough of them.
pub(super) fn units(plan: &Plan, chunk_size: u32, jobs: usize) -> VecDeque<Unit> {
    let total = super::plan::total(
        plan.tables
            .iter()
            .filter(|t| t.load_data)
            .map(|t| t.raw_bytes),
    );
    let unit_bytes = (total / jobs.max(1) as u64).max(MIN_UNIT_RAW_BYTES);
    let mut out = Vec::new();
    for (i, t) in plan.tables.iter().enumerate() {
        if !t.load_data || t.chunk_refs.is_empty() {
            continue;
        }
        let entry = t.entry.expect("loaded tables have an entry");
        let mut cur = Vec::new();
        let mut raw = 0;
        for c in &t.chunk_refs {
            cur.push(*c);
            raw += c.raw_len as u64;
            if raw >= unit_bytes && c.raw_len < chunk_size {
                out.push(Unit {
                    table: i,
                    entry,
                    chunks: std::mem::take(&mut cur),
                    raw,
                });
                raw = 0;
            }
        }
        if !cur.is_empty() {
            out.push(Unit {
                table: i,
                entry,
                chunks: cur,
                raw,
            });
        }
    }
    // Largest tables first, so the long streams start early.
    out.sort_by_key(|u| std::cmp::Reverse(plan.tables[u.table].raw_bytes));
    out.into()
}

pub fn copy_in_sql(t: &PlannedTable) -> String {
    let q = qualified(&t.schema, &t.name);
    if t.columns.is_empty() {
        format!("COPY {q} FROM STDIN")
    } else {
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        format!("COPY {q} ({}) FROM STDIN", cols.join(", "))
    }
}

/// Loads every planned table's rows with `jobs` connections.
pub async fn load(
    archive: &Arc<StoredArchive>,
    plan: &Plan,
    target: &ConnInfo,
    jobs: usize,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    let queue = Arc::new(Mutex::new(units(plan, archive.header.chunk_size, jobs)));
    let n = jobs.max(1).min(queue.lock().unwrap().len());
    let sqls: Arc<Vec<String>> = Arc::new(plan.tables.iter().map(copy_in_sql).collect());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let session = Session::open(target).await?;
        session
            .client
            .batch_execute("SET synchronous_commit = off")
            .await
            .map_err(|e| Error::pg("setting up a load session", e))?;
        let queue = queue.clone();
        let archive = archive.clone();
        let sqls = sqls.clone();
        let progress = progress.clone();
        set.spawn(async move {
            loop {
                let unit = queue.lock().unwrap().pop_front();
                let Some(unit) = unit else {
                    return Ok::<(), Error>(());
                };
                load_unit(&session, &archive, &sqls[unit.table], unit, &progress).await?;
            }
        });
    }
    let mut first = None;
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.map_err(join_err).and_then(|r| r) {
            if first.is_none() {
                first = Some(e);
                set.abort_all();
            }
        }
    }
    first.map_or(Ok(()), Err)
}

async fn load_unit(
    session: &Session,
    archive: &Arc<StoredArchive>,
    sql: &str,
    unit: Unit,
    progress: &Arc<dyn Progress>,
) -> Result<()> {
    // A producer fetches and opens the next batches while COPY consumes.
    let (tx, rx) = mpsc::channel::<Result<Bytes>>(2 * FETCH_BATCH);
    let producer = {
        let archive = archive.clone();
        let chunks = unit.chunks;
        let entry = unit.entry;
        tokio::spawn(async move {
            for group in chunks.chunks(FETCH_BATCH) {
                match open_batch(&archive, entry, group).await {
                    Ok(raws) => {
                        for raw in raws {
                            if tx.send(Ok(Bytes::from(raw))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                }
            }
        })
    };
    let p = progress.clone();
    let stream = tokio_stream_from(rx).map(move |r| {
        if let Ok(b) = &r {
            p.event(Event::Rows {
                rows: memchr::memchr_iter(b'\n', b).count() as u64,
                bytes: b.len() as u64,
            });
        }
        r
    });
    let res = copy::copy_in(&session.client, sql, stream).await;
    producer.abort();
    let _ = unit.raw;
    res.map(|_| ())
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Writes the large objects' contents (created empty by pre-data) from the
/// `large_objects` entry's `oid \t offset \t hex` lines, in one transaction.
pub async fn load_large_objects(
    archive: &StoredArchive,
    plan: &Plan,
    client: &tokio_postgres::Client,
) -> Result<()> {
    let Some((entry, chunks)) = &plan.large_objects else {
        return Ok(());
    };
    client
        .batch_execute("BEGIN")
        .await
        .map_err(|e| Error::pg("starting the large object transaction", e))?;
    let put = client
        .prepare("SELECT pg_catalog.lo_put($1, $2, $3)")
        .await
        .map_err(|e| Error::pg("preparing lo_put", e))?;
    let mut carry: Vec<u8> = Vec::new();
    for group in chunks.chunks(FETCH_BATCH) {
        for raw in open_batch(archive, *entry, group).await? {
            carry.extend_from_slice(&raw);
            let Some(end) = memchr::memrchr(b'\n', &carry) else {
                continue;
            };
            let rest = carry.split_off(end + 1);
            for line in carry.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let (oid, offset, data) = parse_lo_line(line)?;
                client
                    .execute(&put, &[&oid, &offset, &data])
                    .await
                    .map_err(|e| Error::pg(format!("writing large object {oid}"), e))?;
            }
            carry = rest;
        }
    }
    if !carry.is_empty() {
        return Err(Error::Format("large object data ends inside a line".into()));
    }
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| Error::pg("committing large objects", e))
}

pub(super) fn parse_lo_line(line: &[u8]) -> Result<(u32, i64, Vec<u8>)> {
    let bad = || Error::Format("malformed large object line".into());
    let mut parts = line.splitn(3, |&b| b == b'\t');
    let oid = std::str::from_utf8(parts.next().ok_or_else(bad)?)
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        .ok_or_else(bad)?;
    let offset = std::str::from_utf8(parts.next().ok_or_else(bad)?)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(bad)?;
    let data = hex::decode(parts.next().ok_or_else(bad)?).map_err(|_| bad())?;
    Ok((oid, offset, data))
}
