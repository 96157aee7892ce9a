//! The CPU half of a backup: compress + seal chunks on worker threads and
//! write them in order on a writer thread, with bounded memory.
//!
//! Owns the threading. Design:
//! - `submit` first takes a *permit* (a token from a bounded channel
//!   preloaded with `max_in_flight` tokens), then assigns the next counter
//!   and queues the job. The writer thread returns the permit after the chunk
//!   is written, so at most `max_in_flight` chunks exist anywhere (queued,
//!   being sealed, or waiting in the reorder buffer): memory is bounded and
//!   the reorder buffer can never grow past `max_in_flight`.
//! - Because a counter is only assigned once its permit is held, and queueing
//!   never blocks, every assigned counter is eventually sealed: the writer
//!   cannot wait forever for a gap.
//! - The first error anywhere is recorded; every thread then stops, the
//!   channels disconnect, and blocked or later `submit` calls fail fast with
//!   `Error::Pipeline`. `finish` returns the original error.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::archive::seal::{SealedChunk, Sealer};
use crate::archive::writer::{ArchiveSummary, ArchiveWriter, EntryInfo};
use crate::error::{Error, Result};

struct Job {
    counter: u32,
    entry: u32,
    rows: u64,
    raw: Vec<u8>,
}

struct Shared {
    /// `None` once `finish` started: later submits are refused.
    jobs: Mutex<Option<(Sender<Job>, u32)>>,
    permits: Receiver<()>,
    failed: AtomicBool,
    first_error: Mutex<Option<Error>>,
    first_error_msg: Mutex<Option<String>>,
    chunk_size: usize,
    /// Progress counters, updated by the writer thread.
    written_chunks: AtomicU64,
    written_bytes: AtomicU64,
    written_raw_bytes: AtomicU64,
}

/// Progress of a pipeline (for progress bars); see [`ChunkSender::progress`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Data chunks written to the output.
    pub chunks: u64,
    /// Archive bytes written so far (header included).
    pub bytes: u64,
    /// Raw (uncompressed) bytes of the chunks written.
    pub raw_bytes: u64,
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *self
                .first_error_msg
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    fn failure(&self) -> Error {
        let msg = self
            .first_error_msg
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_else(|| "pipeline stopped".into());
        Error::Pipeline(msg)
    }
}

/// A cheap, cloneable, `Send` handle for submitting chunks from any thread.
#[derive(Clone)]
pub struct ChunkSender {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ChunkSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkSender")
    }
}

impl ChunkSender {
    /// Queues `raw` (the next bytes of entry `entry`, with `rows` rows
    /// completed in it). Blocks while `max_in_flight` chunks are in flight.
    /// Data longer than the chunk size is split into several chunks; all
    /// rows are attributed to the last piece. Counters are assigned in the
    /// order submits acquire the queue, so concurrent submits for the *same*
    /// entry must be serialised by the caller to keep the entry's byte order.
    pub fn submit(&self, entry: u32, rows: u64, raw: Vec<u8>) -> Result<()> {
        let cs = self.shared.chunk_size;
        if raw.len() <= cs {
            return self.submit_one(entry, rows, raw);
        }
        let pieces = raw.len().div_ceil(cs);
        for (i, piece) in raw.chunks(cs).enumerate() {
            let r = if i + 1 == pieces { rows } else { 0 };
            self.submit_one(entry, r, piece.to_vec())?;
        }
        Ok(())
    }

    /// What the writer thread has written so far.
    pub fn progress(&self) -> Progress {
        let s = &self.shared;
        Progress {
            chunks: s.written_chunks.load(Ordering::Relaxed),
            bytes: s.written_bytes.load(Ordering::Relaxed),
            raw_bytes: s.written_raw_bytes.load(Ordering::Relaxed),
        }
    }

    fn submit_one(&self, entry: u32, rows: u64, raw: Vec<u8>) -> Result<()> {
        let s = &self.shared;
        if s.failed.load(Ordering::SeqCst) {
            return Err(s.failure());
        }
        // Blocks until the writer has written an older chunk; fails when the
        // writer thread is gone (error or finish).
        if s.permits.recv().is_err() {
            return Err(s.failure());
        }
        if s.failed.load(Ordering::SeqCst) {
            return Err(s.failure());
        }
        let mut guard = s.jobs.lock().unwrap_or_else(|p| p.into_inner());
        let Some((tx, next)) = guard.as_mut() else {
            return Err(Error::InvalidInput(
                "submit after the pipeline was finished".into(),
            ));
        };
        if *next == u32::MAX {
            return Err(Error::InvalidInput("too many chunks in one archive".into()));
        }
        let counter = *next;
        *next += 1;
        // Unbounded: never blocks, so holding the lock here is fine.
        if tx
            .send(Job {
                counter,
                entry,
                rows,
                raw,
            })
            .is_err()
        {
            drop(guard);
            return Err(s.failure());
        }
        Ok(())
    }
}

/// Parallel compress/seal/write driver around an [`ArchiveWriter`].
pub struct ChunkPipeline<W: Write + Send + 'static> {
    sender: ChunkSender,
    workers: Vec<JoinHandle<()>>,
    /// `None` only after `finish` took it.
    writer: Option<JoinHandle<Option<ArchiveWriter<W>>>>,
}

impl<W: Write + Send + 'static> ChunkPipeline<W> {
    /// Starts `threads` sealing workers (at least 1) and the writer thread.
    /// At most `max_in_flight` (at least 1) chunks are buffered; memory use is
    /// about `max_in_flight * 2 * chunk_size`. A good value is `2 * threads + 2`.
    pub fn new(writer: ArchiveWriter<W>, threads: usize, max_in_flight: usize) -> Self {
        let threads = threads.max(1);
        let max_in_flight = max_in_flight.max(1);
        let sealer = writer.sealer();
        let (permit_tx, permit_rx) = bounded::<()>(max_in_flight);
        for _ in 0..max_in_flight {
            permit_tx.send(()).expect("capacity");
        }
        let (job_tx, job_rx) = unbounded::<Job>();
        let (res_tx, res_rx) = unbounded::<SealedChunk>();
        let shared = Arc::new(Shared {
            jobs: Mutex::new(Some((job_tx, writer.next_counter()))),
            permits: permit_rx,
            failed: AtomicBool::new(false),
            first_error: Mutex::new(None),
            first_error_msg: Mutex::new(None),
            chunk_size: sealer.chunk_size() as usize,
            written_chunks: AtomicU64::new(0),
            written_bytes: AtomicU64::new(writer.bytes_written()),
            written_raw_bytes: AtomicU64::new(0),
        });
        let workers = (0..threads)
            .map(|i| {
                let (rx, tx, sealer, shared) = (
                    job_rx.clone(),
                    res_tx.clone(),
                    Arc::clone(&sealer),
                    Arc::clone(&shared),
                );
                std::thread::Builder::new()
                    .name(format!("pgsnap-seal-{i}"))
                    .spawn(move || {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            worker(rx, tx, &sealer, &shared)
                        }));
                        if r.is_err() {
                            // Without this the writer would wait forever for
                            // the lost counter.
                            shared.fail(Error::Pipeline("a sealing thread panicked".into()));
                        }
                    })
                    .expect("spawn sealing thread")
            })
            .collect();
        drop(res_tx);
        let wshared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("pgsnap-archive-writer".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    write_loop(writer, res_rx, permit_tx, &wshared)
                }));
                r.unwrap_or_else(|_| {
                    wshared.fail(Error::Pipeline("the archive writer thread panicked".into()));
                    None
                })
            })
            .expect("spawn writer thread");
        ChunkPipeline {
            sender: ChunkSender { shared },
            workers,
            writer: Some(writer),
        }
    }

    /// A handle to submit from other threads.
    pub fn sender(&self) -> ChunkSender {
        self.sender.clone()
    }

    /// See [`ChunkSender::submit`].
    pub fn submit(&self, entry: u32, rows: u64, raw: Vec<u8>) -> Result<()> {
        self.sender.submit(entry, rows, raw)
    }

    /// Stops without finishing the archive: queued chunks are discarded,
    /// every thread is joined, and the inner writer is dropped, which for a
    /// storage writer discards the partial object. Call it on any failure
    /// before returning: threads left running could outlive the process's
    /// cleanup.
    ///
    /// Returns the error that stopped a pipeline thread, if one did: a
    /// submitter only sees `Error::Pipeline` with its text, and the caller
    /// wants the original (an I/O error keeps its errno, e.g. a full disk).
    pub fn abort(mut self) -> Option<Error> {
        self.stop_and_join();
        let cause = self
            .sender
            .shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        cause
    }

    /// Stops every thread and waits for them; the inner writer is dropped
    /// unfinished.
    fn stop_and_join(&mut self) {
        let shared = &self.sender.shared;
        // Stop without recording an error of our own, so that what is left
        // in `first_error` afterwards is a real cause.
        shared.failed.store(true, Ordering::SeqCst);
        shared.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        for w in std::mem::take(&mut self.workers) {
            let _ = w.join();
        }
        if let Some(w) = self.writer.take() {
            drop(w.join());
        }
    }

    /// Waits for every submitted chunk to be written, then seals the index
    /// and footer. All submits must have returned before this is called;
    /// later submits fail. Returns the first error of any thread.
    pub fn finish(
        mut self,
        entries: Vec<EntryInfo>,
        meta: serde_json::Value,
    ) -> Result<(W, ArchiveSummary)> {
        let shared = Arc::clone(&self.sender.shared);
        // Dropping the job sender lets the workers drain the queue and exit.
        shared.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut panicked = false;
        for w in std::mem::take(&mut self.workers) {
            panicked |= w.join().is_err();
        }
        let writer = self.writer.take().expect("finish runs once").join();
        if let Some(e) = shared
            .first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            return Err(e);
        }
        match writer {
            Ok(Some(w)) if !panicked => w.finish(entries, meta),
            _ => Err(Error::Pipeline("a pipeline thread panicked".into())),
        }
    }
}

impl<W: Write + Send + 'static> Drop for ChunkPipeline<W> {
    /// Dropping a pipeline without `finish` or `abort` (a backup future
    /// cancelled: a deadline, Ctrl-C) abandons the archive like `abort`,
    /// and waits for the threads so the inner writer is dropped (its
    /// partial object discarded) before the caller goes on, and before a
    /// process that is about to exit does. Inside a current-thread runtime
    /// it cannot wait (a storage writer may need that thread to finish), so
    /// there the threads finish on their own.
    fn drop(&mut self) {
        if self.writer.is_none() {
            return; // finished or aborted
        }
        use tokio::runtime::{Handle, RuntimeFlavor};
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Err(_) => self.stop_and_join(),
            Ok(RuntimeFlavor::CurrentThread) => {
                let shared = &self.sender.shared;
                shared.failed.store(true, Ordering::SeqCst);
                shared.jobs.lock().unwrap_or_else(|p| p.into_inner()).take();
            }
            Ok(_) => tokio::task::block_in_place(|| self.stop_and_join()),
        }
    }
}

fn worker(jobs: Receiver<Job>, results: Sender<SealedChunk>, sealer: &Sealer, shared: &Shared) {
    for job in jobs {
        if shared.failed.load(Ordering::SeqCst) {
            return;
        }
        match sealer.seal(job.counter, job.entry, job.rows, &job.raw) {
            Ok(c) => {
                if results.send(c).is_err() {
                    return; // writer gone (it recorded why)
                }
            }
            Err(e) => {
                shared.fail(e);
                return;
            }
        }
    }
}

fn write_loop<W: Write>(
    mut writer: ArchiveWriter<W>,
    results: Receiver<SealedChunk>,
    permits: Sender<()>,
    shared: &Shared,
) -> Option<ArchiveWriter<W>> {
    let mut pending: BTreeMap<u32, SealedChunk> = BTreeMap::new();
    for chunk in results {
        pending.insert(chunk.counter(), chunk);
        while let Some(c) = pending.remove(&writer.next_counter()) {
            let raw_len = c.raw_len() as u64;
            if let Err(e) = writer.write_sealed(c) {
                shared.fail(e);
                // Returning drops `permits` and `results`: blocked submitters
                // and workers wake up with an error instead of deadlocking.
                return None;
            }
            shared.written_chunks.fetch_add(1, Ordering::Relaxed);
            shared
                .written_raw_bytes
                .fetch_add(raw_len, Ordering::Relaxed);
            shared
                .written_bytes
                .store(writer.bytes_written(), Ordering::Relaxed);
            let _ = permits.try_send(());
        }
        if shared.failed.load(Ordering::SeqCst) {
            return None;
        }
    }
    if !pending.is_empty() {
        if !shared.failed.load(Ordering::SeqCst) {
            shared.fail(Error::Pipeline(format!(
                "internal: chunk {} never arrived",
                writer.next_counter()
            )));
        }
        return None;
    }
    Some(writer)
}
