//! The data phase: authenticate every chunk first, then load tables over
//! parallel `COPY ... FROM STDIN`, several streams into one big table.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::archive::index::ChunkRef;
use crate::archive::reader::OpenedChunk;
use crate::error::{Error, Result};
use crate::pg::conn::Session;
use crate::pg::copy::{self, CopyFormat};
use crate::pg::snapshot::{ident, qualified};
use crate::pg::transcode::{Kind, Transcoder};
use crate::pg::unpad::Unpadder;
use crate::progress::{Event, Progress};
use crate::repo::reader::StoredArchive;

use super::plan::{Plan, PlannedTable};
use super::units::{Source, Unit};

/// Up to this many archive bytes to load, the authentication pass keeps
/// the chunks it fetched and decrypted for the load: a selective restore
/// from S3 reads its chunks once, and every restore that size decrypts them
/// once. Beyond it they are fetched and decrypted again (memory stays
/// bounded).
const KEEP_BYTES: u64 = 128 * 1024 * 1024;
/// Chunks fetched per ranged read while loading.
const FETCH_BATCH: usize = 8;
/// Chunks a stream holds ready ahead of its COPY. A worker thread
/// decompresses and converts a chunk several times faster than a server
/// loads it, so two keep the COPY fed; each is up to a chunk's size
/// (4 MiB) of memory, and a deeper queue only filled the process with
/// chunks waiting (two streams held some 200 MiB at 16 each).
const AHEAD: usize = 2;
/// Chunks a stream into a shared table takes at a time: what it holds
/// ahead of its COPY is what a joining stream cannot have.
const SHARED_BATCH: usize = 2;

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
    let opened = archive.open_chunks(entry, refs).await?;
    tokio::task::spawn_blocking(move || opened.iter().map(|o| o.decompress()).collect())
        .await
        .map_err(join_err)?
}

/// What a load does to a unit's rows on their way to the server, on the
/// worker thread that opens the chunks. It keeps state across chunks: a row
/// may span them.
enum Rewrite {
    /// Text or binary as stored, `character(n)` padding trimmed.
    Unpad(Unpadder),
    /// Text converted to binary COPY (padding trimmed too).
    Transcode(Transcoder),
}

impl Rewrite {
    fn feed(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        match self {
            Rewrite::Unpad(u) => {
                u.feed(data, out);
                Ok(())
            }
            Rewrite::Transcode(t) => Ok(t.feed(data, out)?),
        }
    }

    fn finish(self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Rewrite::Unpad(u) => {
                u.finish(out);
                Ok(())
            }
            Rewrite::Transcode(t) => Ok(t.finish()?),
        }
    }
}

/// Decompresses one opened chunk and rewrites it when `rewrite` is given
/// (handed back for the next chunk), on a worker thread. Returns the
/// chunk's stored length, which is what progress counts, with its bytes.
async fn open_rewritten(
    opened: OpenedChunk,
    mut rewrite: Option<Rewrite>,
) -> Result<(usize, Vec<u8>, Option<Rewrite>)> {
    tokio::task::spawn_blocking(move || {
        let raw = opened.decompress()?;
        drop(opened);
        let len = raw.len();
        let data = match rewrite.as_mut() {
            Some(r) => {
                let mut rewritten = Vec::with_capacity(len);
                r.feed(&raw, &mut rewritten)?;
                rewritten
            }
            None => raw,
        };
        Ok((len, data, rewrite))
    })
    .await
    .map_err(join_err)?
}

/// Authenticates every chunk the plan will load, on all cores: a tampered
/// chunk or a wrong key fails the restore before the target is touched.
/// Up to `KEEP_BYTES`, the decrypted chunks are kept for the load: returns
/// whether they were.
pub async fn authenticate(archive: &StoredArchive, plan: &Plan, jobs: usize) -> Result<bool> {
    let mut batches: Vec<(u32, Vec<ChunkRef>, String)> = Vec::new();
    for t in plan.tables.iter().filter(|t| t.load_data) {
        let entry = t.entry.expect("loaded tables have an entry");
        for group in t.chunk_refs.chunks(16) {
            batches.push((
                entry,
                group.to_vec(),
                format!("table {}", qualified(&t.schema, &t.name)),
            ));
        }
    }
    if let Some((entry, chunks)) = &plan.large_objects {
        for group in chunks.chunks(16) {
            batches.push((*entry, group.to_vec(), "the large objects".into()));
        }
    }
    let parallel = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(jobs);
    let keep = plan.bytes_to_read <= KEEP_BYTES;
    let results = futures::stream::iter(batches)
        .map(|(entry, refs, what)| async move {
            let opened = archive
                .open_chunks(entry, &refs)
                .await
                .map_err(|e| tampered(e, &what, &refs))?;
            if keep {
                archive.keep(refs.iter().copied().zip(opened));
            }
            Ok::<(), Error>(())
        })
        .buffer_unordered(parallel);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        r?;
    }
    Ok(keep)
}

/// The key opened the archive, so a chunk that does not authenticate was
/// altered or damaged: name its table and bytes, and that nothing changed
/// (this runs before the first statement on the target).
fn tampered(e: Error, what: &str, refs: &[ChunkRef]) -> Error {
    match (e, refs.first(), refs.last()) {
        (Error::Auth, Some(first), Some(last)) => Error::tampered(format_args!(
            "a chunk of {what} (archive bytes {}..{})",
            first.offset,
            last.offset + last.len as u64
        )),
        (e, _, _) => e,
    }
}

/// A foreign key's validation is a query on both of its tables, which
/// `FORCE ROW LEVEL SECURITY` subjects to their owner's policies (an error
/// under `row_security = off`) when the restoring role owns them and is not
/// a superuser. As for the loads, the flag is lifted around it: the
/// statements join the constraint's in one query string, which the server
/// runs as one transaction, so no other session sees it lifted.
pub(super) fn forced_row_security(
    plan: &Plan,
    relations: impl IntoIterator<Item = Option<u32>>,
) -> BTreeSet<String> {
    relations
        .into_iter()
        .flatten()
        .filter_map(|id| plan.model.owning_relation(id))
        .filter_map(|id| {
            plan.tables
                .iter()
                .find(|t| t.object_id == id && t.force_rls)
        })
        .map(|t| qualified(&t.schema, &t.name))
        .collect()
}

/// Lifts `forced` tables' FORCE ROW LEVEL SECURITY around the first of
/// `stmts` (see [`forced_row_security`]).
pub(super) fn lift_forced_row_security(forced: &BTreeSet<String>, stmts: &mut [String]) {
    let Some(first) = stmts.first_mut().filter(|_| !forced.is_empty()) else {
        return;
    };
    let mut sql = String::new();
    for t in forced {
        sql.push_str(&format!("{}; ", force_row_security(t, false)));
    }
    sql.push_str(first.trim_end().trim_end_matches(';'));
    for t in forced {
        sql.push_str(&format!("; {}", force_row_security(t, true)));
    }
    *first = sql;
}

/// The statement setting (`on`) or lifting a table's `FORCE ROW LEVEL
/// SECURITY`, for the loads and foreign keys of `PlannedTable::force_rls`.
fn force_row_security(table: &str, on: bool) -> String {
    let no = if on { "" } else { "NO " };
    format!("ALTER TABLE ONLY {table} {no}FORCE ROW LEVEL SECURITY")
}

/// `COPY ... FROM STDIN` for a table, in `format`, of text in `encoding`
/// (`SchemaModel::data_encoding`), with FREEZE when asked (see
/// [`load_unit`]).
pub fn copy_in_sql(
    t: &PlannedTable,
    format: CopyFormat,
    encoding: Option<&str>,
    freeze: bool,
) -> String {
    let q = qualified(&t.schema, &t.name);
    let cols = if t.columns.is_empty() {
        String::new()
    } else {
        let cols: Vec<String> = t.columns.iter().map(|c| ident(c)).collect();
        format!(" ({})", cols.join(", "))
    };
    let mut options = format.options_in(encoding);
    if freeze {
        options.push("FREEZE".into());
    }
    let with = if options.is_empty() {
        String::new()
    } else {
        format!(" ({})", options.join(", "))
    };
    format!("COPY {q}{cols} FROM STDIN{with}")
}

/// How a table's units go to the server: its name, its COPY statements by
/// format on the wire (without and with FREEZE), and what the load does to
/// its rows on the way (see [`load_unit`]). One per table, shared by its
/// units.
pub(super) struct TableLoad {
    pub table: String,
    text: [String; 2],
    binary: [String; 2],
    /// The entry's stored format.
    format: CopyFormat,
    /// `PlannedTable::unpad`.
    unpad: Vec<usize>,
    /// `PlannedTable::transcode`.
    transcode: Vec<Kind>,
    /// Set when another stream of the restore failed: a stream still
    /// sending ends its COPY with an error, so the server rolls it back,
    /// and what the restore leaves is what had committed (see
    /// `schedule::left_behind`).
    cancel: Arc<AtomicBool>,
    /// The restore is one transaction (`--single-transaction`): each COPY
    /// runs in a savepoint instead of a transaction of its own, so that a
    /// conversion's abandoned COPY can be undone and tried again as text.
    in_transaction: bool,
    /// `PlannedTable::force_rls`: each COPY runs in a transaction that
    /// lifts `FORCE ROW LEVEL SECURITY` and sets it again.
    force_rls: bool,
}

impl TableLoad {
    /// `encoding`: the archive's text's, `SchemaModel::data_encoding`.
    pub fn new(
        t: &PlannedTable,
        encoding: Option<&str>,
        cancel: Arc<AtomicBool>,
        in_transaction: bool,
    ) -> TableLoad {
        let both = |f| {
            [
                copy_in_sql(t, f, encoding, false),
                copy_in_sql(t, f, encoding, true),
            ]
        };
        TableLoad {
            table: qualified(&t.schema, &t.name),
            text: both(CopyFormat::Text),
            binary: both(CopyFormat::Binary),
            format: t.copy_format,
            unpad: t.unpad.clone(),
            transcode: t.transcode.clone(),
            cancel,
            in_transaction,
            force_rls: t.force_rls,
        }
    }

    fn sql(&self, wire: CopyFormat, freeze: bool) -> &str {
        let sql = match wire {
            CopyFormat::Text => &self.text,
            CopyFormat::Binary => &self.binary,
        };
        &sql[usize::from(freeze)]
    }
}

/// Streams one unit into the table; returns the rows the server took (the
/// COPY command tag), which the post-restore check compares with the
/// manifest.
///
/// A text unit of a table whose column types [`Transcoder`] knows goes to
/// the server as binary COPY, converted here: the server's text input
/// functions (dates, numbers, bytea's hex) are a large part of a load, and
/// this side's conversion is cheaper. A value it cannot convert (a form it
/// does not know) abandons that COPY, which loads nothing, and the stream
/// starts it over as the stored text with the chunks it had taken.
pub(super) async fn load_unit(
    session: &Session,
    archive: &Arc<StoredArchive>,
    load: &TableLoad,
    unit: &Unit,
    progress: &Arc<dyn Progress>,
) -> Result<u64> {
    let batch = if unit.shared {
        SHARED_BATCH
    } else {
        FETCH_BATCH
    };
    if !unit.freeze {
        unit.queue.free().await;
    }
    // A frozen stream of a shared table ends its COPY when another stream
    // asks to join, commits, and goes on unfrozen (see `units`).
    let source = Source::new(unit, batch);
    let first = load_copy(session, archive, load, source, unit.freeze, progress).await;
    if !unit.freeze {
        return first.map(|(rows, _)| rows);
    }
    unit.queue.release();
    let (rows, mut source) = first?;
    if !unit.shared || unit.queue.remaining() == 0 {
        return Ok(rows);
    }
    tracing::debug!("{}: {rows} rows loaded frozen; the rest shared", load.table);
    source.unfrozen();
    let (more, _) = load_copy(session, archive, load, source, false, progress).await?;
    Ok(rows + more)
}

/// One COPY of a stream (frozen or not), converted to binary where the
/// table's types allow, else, or when a value defeats the conversion, as
/// the stored text; hands the source back for the stream's next COPY.
async fn load_copy(
    session: &Session,
    archive: &Arc<StoredArchive>,
    load: &TableLoad,
    mut source: Source,
    freeze: bool,
    progress: &Arc<dyn Progress>,
) -> Result<(u64, Source)> {
    // Chunks whose rows progress has counted: a retry sends them again,
    // uncounted (QA: the progress line said twice the rows).
    let counted = Arc::new(AtomicUsize::new(0));
    if !load.transcode.is_empty() {
        let rewrite = Rewrite::Transcode(Transcoder::new(load.transcode.clone(), &load.unpad));
        let attempt = load_stream(
            session,
            archive,
            load,
            (source, &counted),
            freeze,
            Some(rewrite),
            progress,
        );
        match attempt.await {
            Ok(done) => return Ok(done),
            Err((Error::Transcode(e), Some(s))) => {
                tracing::info!("{}: loading as text: {e}", load.table);
                source = s.restart();
            }
            Err((e, _)) => return Err(e),
        }
    }
    let rewrite = Unpadder::new(load.format, &load.unpad).map(Rewrite::Unpad);
    load_stream(
        session,
        archive,
        load,
        (source, &counted),
        freeze,
        rewrite,
        progress,
    )
    .await
    .map_err(|(e, _)| e)
}

/// One COPY statement of a stream: the chunks `source` hands out, rewritten
/// by `rewrite`, binary when the rewrite converts to it, else as stored.
/// The source comes back after the COPY, and after a failed conversion for
/// the retry.
async fn load_stream(
    session: &Session,
    archive: &Arc<StoredArchive>,
    load: &TableLoad,
    (mut source, counted): (Source, &Arc<AtomicUsize>),
    freeze: bool,
    mut rewrite: Option<Rewrite>,
    progress: &Arc<dyn Progress>,
) -> std::result::Result<(u64, Source), (Error, Option<Source>)> {
    let wire = match rewrite {
        Some(Rewrite::Transcode(_)) => CopyFormat::Binary,
        _ => load.format,
    };
    let sql = load.sql(wire, freeze);
    // A producer fetches and authenticates the next batches (one ranged
    // read each) and decompresses and rewrites their chunks one at a time
    // while COPY consumes.
    let (tx, rx) = mpsc::channel::<Result<(u64, usize, Bytes)>>(AHEAD);
    let producer = {
        let archive = archive.clone();
        let entry = source.entry;
        tokio::spawn(async move {
            // Ok(false): the COPY stopped taking chunks.
            let fed: Result<bool> = async {
                loop {
                    let group = source.next_batch();
                    if group.is_empty() {
                        return Ok(true);
                    }
                    let opened = archive.open_chunks(entry, &group).await?;
                    for (c, o) in group.iter().zip(opened) {
                        let (len, data, r) = open_rewritten(o, rewrite.take()).await?;
                        rewrite = r;
                        if tx.send(Ok((c.rows, len, Bytes::from(data)))).await.is_err() {
                            return Ok(false);
                        }
                    }
                }
            }
            .await;
            match (fed, rewrite) {
                (Err(e), _) => {
                    let _ = tx.send(Err(e)).await;
                }
                (Ok(true), Some(r)) => {
                    let mut rest = Vec::new();
                    let item = r.finish(&mut rest).map(|()| (0, 0, Bytes::from(rest)));
                    let _ = tx.send(item).await;
                }
                (Ok(_), _) => {}
            }
            source
        })
    };
    let p = progress.clone();
    let cancel = load.cancel.clone();
    // The chunks of a retry (the same, from the start) that an abandoned
    // attempt counted already.
    let counted = counted.clone();
    let mut recounted = 0;
    let chunks = tokio_stream_from(rx)
        .map(move |r| {
            if cancel.load(Ordering::Relaxed) {
                return Err(Error::Stopped(
                    "another stream of the restore failed".into(),
                ));
            }
            r.map(|(rows, len, b)| {
                if recounted >= counted.load(Ordering::Relaxed) {
                    counted.fetch_add(1, Ordering::Relaxed);
                    p.event(Event::Rows {
                        rows,
                        bytes: len as u64,
                    });
                }
                recounted += 1;
                b
            })
        })
        .filter(|r| futures::future::ready(!matches!(r, Ok(b) if b.is_empty())));
    // A binary stream is framed by its header and trailer; the entry holds
    // the tuples only (format-spec.md, 5.1).
    let (head, tail): (&'static [u8], &'static [u8]) = match wire {
        CopyFormat::Binary => (copy::BINARY_HEADER, copy::BINARY_TRAILER),
        CopyFormat::Text => (b"", b""),
    };
    let frame = |b: &'static [u8]| {
        futures::stream::iter((!b.is_empty()).then(|| Ok(Bytes::from_static(b))))
    };
    let stream = frame(head).chain(chunks).chain(frame(tail));
    let res = if freeze || load.in_transaction || load.force_rls {
        load_enclosed(session, load, freeze, sql, stream).await
    } else {
        copy::copy_in(&session.client, sql, stream).await
    };
    // The producer has ended when the COPY did (the channel closed) or
    // when it gave up on a conversion (it ends once it has said so); either
    // way its source is what the stream goes on with.
    match res {
        Ok(rows) => match producer.await {
            Ok(source) => Ok((rows, source)),
            Err(e) => Err((join_err(e), None)),
        },
        Err(e @ Error::Transcode(_)) => Err((e, producer.await.ok())),
        Err(e) => {
            producer.abort();
            Err((e, None))
        }
    }
}

/// A COPY in a transaction of its own, or in a savepoint of the restore's
/// one transaction; frozen, after the TRUNCATE that allows FREEZE (the
/// table was created by this restore, so it is empty: the TRUNCATE only
/// makes its storage new in this (sub)transaction).
async fn load_enclosed<S>(
    session: &Session,
    load: &TableLoad,
    freeze: bool,
    sql: &str,
    stream: S,
) -> Result<u64>
where
    S: futures::Stream<Item = Result<Bytes>>,
{
    let table = &load.table;
    let (begin, commit, rollback) = if load.in_transaction {
        (
            "SAVEPOINT pgsnap_copy",
            "RELEASE SAVEPOINT pgsnap_copy",
            "ROLLBACK TO SAVEPOINT pgsnap_copy",
        )
    } else {
        ("BEGIN", "COMMIT", "ROLLBACK")
    };
    let mut begin = if freeze {
        format!("{begin}; TRUNCATE ONLY {table}")
    } else {
        begin.to_string()
    };
    let commit = if load.force_rls {
        begin.push_str(&format!("; {}", force_row_security(table, false)));
        format!("{}; {commit}", force_row_security(table, true))
    } else {
        commit.to_string()
    };
    session
        .client
        .batch_execute(&begin)
        .await
        .map_err(|e| Error::pg(format!("starting the load of {table}"), e))?;
    let n = copy::copy_in(&session.client, sql, stream).await;
    let end = if n.is_ok() { commit.as_str() } else { rollback };
    let ended = session.client.batch_execute(end).await;
    let n = n?;
    ended.map_err(|e| Error::pg(format!("committing the load of {table}"), e))?;
    Ok(n)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Writes the large objects' contents (created empty by pre-data) from the
/// `large_objects` entry's `oid \t offset \t hex` lines, in one transaction
/// (its own, or the one the restore runs in: `in_transaction`).
pub async fn load_large_objects(
    archive: &StoredArchive,
    plan: &Plan,
    client: &tokio_postgres::Client,
    in_transaction: bool,
) -> Result<()> {
    let Some((entry, chunks)) = &plan.large_objects else {
        return Ok(());
    };
    if !in_transaction {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| Error::pg("starting the large object transaction", e))?;
    }
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
    if in_transaction {
        return Ok(());
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
