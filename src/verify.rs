//! `verify`: checks a backup without a database. It reads the archive once,
//! front to back, and holds it against everything that can be checked:
//! every segment authenticates in order, the index lists exactly the
//! segments found, the footer points at it, the archive's SHA-256 and size
//! equal the manifest's, and the rows counted in every table's decrypted
//! data equal the index's and the manifest's counts.

use std::collections::HashMap;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::backup::{kind, TableMeta};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::pg::copy::TupleFramer;
use crate::repo::{Manifest, Repository, Storage, Version};

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub backup_id: String,
    pub ok: bool,
    pub archive_bytes: u64,
    /// Data chunks that authenticated: all of them, or those before the
    /// one that failed.
    pub chunks: u64,
    pub tables: usize,
    pub rows: u64,
    pub sha256: String,
    pub seconds: f64,
    pub checks: Vec<Check>,
}

/// Blocking `Read` over an object in storage, in large ranged reads with a
/// few fetched ahead (remote storage answers with latency, not bandwidth);
/// runs on a blocking thread and drives the async storage through the
/// runtime. Memory: `READ_AHEAD` blocks.
struct StorageRead {
    storage: Arc<dyn Storage>,
    key: String,
    size: u64,
    /// The version every block is read from: one archive, even if its key
    /// is written again during the read.
    version: Option<Version>,
    pos: u64,
    buf: bytes::Bytes,
    rt: tokio::runtime::Handle,
    hasher: Sha256,
    /// Ranged reads in flight, in order.
    ahead: std::collections::VecDeque<tokio::task::JoinHandle<Result<bytes::Bytes>>>,
    next_fetch: u64,
}

/// Set when the future awaiting a verify's read is dropped: the read, on
/// a thread of its own, then stops at its next segment.
#[derive(Default)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

const READ_BLOCK: u64 = 8 * 1024 * 1024;
const READ_AHEAD: usize = 4;

impl StorageRead {
    fn new(
        storage: Arc<dyn Storage>,
        key: String,
        size: u64,
        version: Option<Version>,
        rt: tokio::runtime::Handle,
    ) -> StorageRead {
        StorageRead {
            storage,
            key,
            size,
            version,
            pos: 0,
            buf: bytes::Bytes::new(),
            rt,
            hasher: Sha256::new(),
            ahead: Default::default(),
            next_fetch: 0,
        }
    }
}

impl Drop for StorageRead {
    fn drop(&mut self) {
        for h in &self.ahead {
            h.abort();
        }
    }
}

impl Read for StorageRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.buf.is_empty() {
            if self.pos >= self.size {
                return Ok(0);
            }
            while self.ahead.len() < READ_AHEAD && self.next_fetch < self.size {
                let end = (self.next_fetch + READ_BLOCK).min(self.size);
                let (s, k, range) = (self.storage.clone(), self.key.clone(), self.next_fetch..end);
                let v = self.version.clone();
                self.ahead.push_back(
                    self.rt
                        .spawn(async move { s.get_range_of(&k, range, v.as_ref()).await }),
                );
                self.next_fetch = end;
            }
            let next = self.ahead.pop_front().expect("a read is in flight");
            let data = self
                .rt
                .block_on(next)
                .map_err(|e| std::io::Error::other(e.to_string()))?
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            self.hasher.update(&data);
            self.pos += data.len() as u64;
            self.buf = data;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}

/// Rows of one table entry as the data streams by: `\n` terminators for
/// COPY text, tuples for binary (which format applies is known only from
/// the index, at the end).
struct Counted {
    lines: u64,
    tuples: u64,
    framer: TupleFramer,
}

impl Counted {
    fn new() -> Counted {
        Counted {
            lines: 0,
            tuples: 0,
            framer: TupleFramer::tuples(),
        }
    }
}

/// The archive's header did not parse or authenticate (`e`). Whether the
/// archive is still the one the backup wrote tells damage from a key or a
/// version that does not fit: its SHA-256 against the manifest's.
async fn header_failure(
    storage: Arc<dyn Storage>,
    m: &Manifest,
    (size, version): (u64, Option<Version>),
    e: Error,
) -> Error {
    let key = m.archive.key.clone();
    let rt = tokio::runtime::Handle::current();
    let sha = tokio::task::spawn_blocking(move || {
        let mut r = StorageRead::new(storage, key, size, version, rt);
        std::io::copy(&mut r, &mut std::io::sink()).ok()?;
        Some(hex::encode(r.hasher.clone().finalize()))
    })
    .await
    .ok()
    .flatten();
    match sha {
        Some(sha) if sha != m.archive.sha256 || size != m.archive.size_bytes => {
            Error::Integrity(format!(
                "backup `{}` is damaged: its archive's header {} ({e}), and the archive's \
                 SHA-256 differs from its manifest's: it was altered or damaged after it was \
                 written; restore the archive from a copy of the repository, or use another \
                 backup",
                m.id,
                match e {
                    Error::Auth => "does not authenticate",
                    Error::WrongKey(_) => "opens with none of the keys given",
                    _ => "cannot be read",
                }
            ))
        }
        // As the manifest says it was written: the key is wrong, which is
        // what the error's advice would have had one run this to learn
        // (QA: circular in verify's own output).
        Some(_) => match e {
            Error::WrongKey(m) => Error::WrongKey(format!(
                "{}; the archive is as the backup wrote it (its SHA-256 matches its manifest's), \
                 so the keys given are not ones it was made with",
                m.strip_suffix(crate::credentials::ASK_VERIFY).unwrap_or(&m)
            )),
            // A newer format, say.
            e => e,
        },
        None => e,
    }
}

pub async fn run(repo: &Repository, m: &Manifest, creds: &Credentials) -> Result<VerifyReport> {
    let t0 = std::time::Instant::now();
    let storage = repo.storage().clone();
    repo.check_archive_readable(m).await?;
    let meta = storage
        .head(&m.archive.key)
        .await?
        .ok_or_else(|| Error::Integrity(format!("archive {} is missing", m.archive.key)))?;
    let (size, version) = (meta.size, meta.version);
    let rt = tokio::runtime::Handle::current();
    let key = m.archive.key.clone();
    let (summary_res, sha, counted, seen) = {
        // The header and its key slot first (a KMS call, briefly), then the
        // long read on a blocking thread of its own, so that the task
        // awaiting it still notices a stop (a signal, a backup's
        // `--max-duration`) and drops it, which ends the read at its next
        // segment. The header's read is a blocking one too, on a thread of
        // its own: not `block_in_place`, which panics on a current-thread
        // runtime (QA: an application's `#[tokio::test]`).
        let reader = (storage.clone(), key, size, version.clone(), rt);
        let unlocked = async {
            let (r, mut head) = tokio::task::spawn_blocking(move || {
                let (storage, key, size, version, rt) = reader;
                let mut r = StorageRead::new(storage, key, size, version, rt);
                // The header is parsed from a prefix; the hasher sees each
                // byte once.
                let limit = (crate::archive::format::MAX_HEADER_LEN as u64).min(size);
                let mut head = Vec::new();
                r.by_ref()
                    .take(limit)
                    .read_to_end(&mut head)
                    .map_err(|e| Error::io("reading the archive", e))?;
                Ok::<_, Error>((r, head))
            })
            .await
            .map_err(|e| Error::task("reading the archive's header", e))??;
            let (header, len) = crate::archive::format::Header::parse(&head)?;
            let open = creds.unlock(&header).await?;
            Ok::<_, Error>((r, open, head.split_off(len)))
        }
        .await;
        let (r, open, rest) = match unlocked {
            Ok(u) => u,
            // A key slot altered in place reads as a wrong key (KMS refuses
            // the ciphertext): the archive's SHA-256 tells them apart.
            Err(
                e @ (Error::Auth
                | Error::Format(_)
                | Error::Unsupported(_)
                | Error::Truncated { .. }
                | Error::WrongKey(_)),
            ) => return Err(header_failure(storage, m, (size, version), e).await),
            Err(e) => return Err(e),
        };
        let stop = StopOnDrop::default();
        let stopped = stop.0.clone();
        tokio::task::spawn_blocking(move || {
            let mut r = r;
            let mut counted: HashMap<u32, Counted> = HashMap::new();
            // Segments authenticated, for the report of a check that fails
            // part way (the summary counts them when it does not).
            let mut seen = 0u64;
            let mut ends = Vec::new();
            let res =
                open.read_stream_located(std::io::Cursor::new(rest).chain(&mut r), |seg, data| {
                    if stopped.load(Ordering::Relaxed) {
                        return Err(Error::Stopped("verify stopped".into()));
                    }
                    seen += 1;
                    let e = counted.entry(seg.entry).or_insert_with(Counted::new);
                    e.lines += memchr::memchr_iter(b'\n', data).count() as u64;
                    e.tuples += e.framer.feed(data, None, &mut ends);
                    ends.clear();
                    Ok(())
                });
            // Drain whatever the stream left (it refuses trailing bytes, but
            // the hash must cover every byte on the success path).
            let mut sink = Vec::new();
            if !stopped.load(Ordering::Relaxed) {
                let _ = r.read_to_end(&mut sink);
            }
            let sha = hex::encode(r.hasher.clone().finalize());
            (res, sha, counted, seen)
        })
        .await
        .map_err(|e| Error::task("verifying the archive", e))?
    };
    let mut checks = Vec::new();
    let summary = match summary_res {
        Ok(s) => {
            checks.push(Check {
                what: format!(
                    "{} data chunks, the index and the footer authenticate",
                    s.segments
                ),
                ok: true,
            });
            Some(s)
        }
        // The key opened the header, so a part that does not authenticate
        // was altered or damaged, not read with a wrong key: say where.
        Err((Error::Auth, at)) => {
            let whose = entry_at(&storage, m, creds, at).await;
            checks.push(Check {
                what: format!(
                    "archive content: the segment at archive byte {at}{whose} {}",
                    Error::DAMAGED
                ),
                ok: false,
            });
            None
        }
        Err((e, at)) => {
            checks.push(Check {
                what: format!("archive content, at archive byte {at}: {e}"),
                ok: false,
            });
            None
        }
    };
    checks.push(Check {
        what: format!(
            "archive size {size} bytes {} the manifest's {}",
            if size == m.archive.size_bytes {
                "equals"
            } else {
                "differs from"
            },
            m.archive.size_bytes
        ),
        ok: size == m.archive.size_bytes,
    });
    checks.push(Check {
        what: format!(
            "archive SHA-256 {sha} {} the manifest's",
            if sha == m.archive.sha256 {
                "equals"
            } else {
                "differs from"
            }
        ),
        ok: sha == m.archive.sha256,
    });
    // The index (authenticated) names the backup it was written for: a
    // manifest pointed at another backup's archive, its hashes copied,
    // fails here.
    if let Some(written_for) = summary
        .as_ref()
        .and_then(|s| s.index.meta.get("backup_id"))
        .and_then(|v| v.as_str())
    {
        checks.push(Check {
            what: format!("the archive was written for backup {written_for}"),
            ok: written_for == m.id,
        });
    }
    let mut rows_total = 0;
    let mut tables = 0;
    if let Some(s) = &summary {
        let by_name = crate::restore::manifest_rows(m);
        for e in s.index.entries.iter().filter(|e| e.kind == kind::TABLE) {
            tables += 1;
            let meta: TableMeta = match serde_json::from_value(e.meta.clone()) {
                Ok(m) => m,
                Err(err) => {
                    checks.push(Check {
                        what: format!("index entry {}: {err}", e.id),
                        ok: false,
                    });
                    continue;
                }
            };
            // The index says how to count (it comes last in the archive,
            // so the data was counted both ways as it streamed by).
            let counted_rows = match (counted.get(&e.id), meta.copy_format.as_str()) {
                (None, _) => 0,
                (Some(c), "binary") if c.framer.at_boundary() => c.tuples,
                (Some(c), "binary") => {
                    let why = c.framer.error().unwrap_or("the data ends inside a row");
                    checks.push(Check {
                        what: format!("table {}.{}: {why}", meta.schema, meta.name),
                        ok: false,
                    });
                    continue;
                }
                (Some(c), _) => c.lines,
            };
            let expected = by_name
                .get(&(meta.schema.clone(), meta.name.clone()))
                .copied();
            let ok = counted_rows == e.rows && expected == Some(e.rows);
            rows_total += counted_rows;
            if !ok {
                checks.push(Check {
                    what: format!(
                        "table {}.{}: {counted_rows} rows in the data, index says {}, manifest \
                         says {}",
                        meta.schema,
                        meta.name,
                        e.rows,
                        expected.map_or("nothing".to_string(), |n| n.to_string())
                    ),
                    ok: false,
                });
            }
        }
        let ok = tables == m.tables.len() && rows_total == m.rows;
        checks.push(Check {
            what: format!(
                "{} and {} counted; the manifest lists {} and {}",
                crate::progress::count(tables as u64, "table"),
                crate::progress::count(rows_total, "row"),
                crate::progress::count(m.tables.len() as u64, "table"),
                crate::progress::count(m.rows, "row")
            ),
            ok,
        });
    }
    let ok = checks.iter().all(|c| c.ok);
    Ok(VerifyReport {
        backup_id: m.id.clone(),
        ok,
        archive_bytes: size,
        chunks: summary.as_ref().map_or(seen, |s| s.segments),
        tables,
        rows: rows_total,
        sha256: sha,
        seconds: t0.elapsed().as_secs_f64(),
        checks,
    })
}

/// Whose chunk the damaged segment at archive byte `at` is (` (a chunk of
/// table "app"."users")`), from the archive's index, when the index itself
/// authenticates; empty otherwise. Only read after a failure.
async fn entry_at(
    storage: &Arc<dyn Storage>,
    m: &Manifest,
    creds: &Credentials,
    at: u64,
) -> String {
    let Ok(archive) =
        crate::repo::reader::StoredArchive::open(storage.clone(), &m.archive.key, creds).await
    else {
        return String::new();
    };
    let hit = archive.index.entries.iter().find(|e| {
        e.chunks
            .iter()
            .any(|c| c.offset <= at && at < c.offset + c.len as u64)
    });
    let Some(e) = hit else {
        return String::new();
    };
    if e.kind == kind::SCHEMA {
        return " (the schema section)".into();
    }
    match serde_json::from_value::<TableMeta>(e.meta.clone()) {
        Ok(t) if e.kind == kind::TABLE => format!(
            " (a chunk of table {})",
            crate::pg::snapshot::qualified(&t.schema, &t.name)
        ),
        _ => format!(" (a chunk of index entry {}, {})", e.id, e.kind),
    }
}
