//! How the data phase cuts tables into COPY streams: a unit is one stream's
//! load of a table, taking the table's chunks from a queue it may share
//! with other streams.
//!
//! A table is not cut up front. The big ones are *shared*: each starts as
//! one stream, and a job with nothing else to do (no table left to start,
//! no index ready to build) opens another stream on the shared table with
//! the most chunks left (see `schedule::run`). So the streams end together
//! whatever each table costs the server per byte, which a split made up
//! front by bytes cannot know: on the benchmark database `events` costs
//! about twice what `pgbench_accounts` does per byte (jsonb).
//!
//! A table this restore created is loaded frozen (TRUNCATE and COPY FREEZE
//! in one transaction, see `data::load_unit`), which holds its lock to the
//! commit. So a shared table's first stream loads frozen until another
//! stream asks to join: it then ends its COPY at the next run of rows,
//! commits, and goes on unfrozen beside the newcomer, which waits for that
//! commit. Most of the table stays frozen, as a table loaded alone is.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::archive::index::ChunkRef;

use super::plan::Plan;

/// A shared table gets a new stream only while at least this many of its
/// chunks are left: fewer would end before a new COPY got going.
pub(super) const JOIN_MIN_CHUNKS: usize = 4;

/// The chunks of a table's load that no stream has taken yet, and whether
/// a frozen stream holds the table.
pub(super) struct ChunkQueue {
    chunks: Mutex<VecDeque<ChunkRef>>,
    chunk_size: u32,
    /// Another stream wants in: a frozen stream ends its COPY.
    asked: AtomicBool,
    /// True while a frozen stream's transaction holds the table.
    held: watch::Sender<bool>,
}

impl ChunkQueue {
    /// `held`: the table's first stream loads it frozen.
    pub fn new(chunks: &[ChunkRef], chunk_size: u32, held: bool) -> Arc<ChunkQueue> {
        Arc::new(ChunkQueue {
            chunks: Mutex::new(chunks.iter().copied().collect()),
            chunk_size,
            asked: AtomicBool::new(false),
            held: watch::Sender::new(held),
        })
    }

    /// Asks a frozen stream to let the table go (see the module's doc).
    pub fn ask(&self) {
        self.asked.store(true, Ordering::Release);
    }

    /// The frozen stream committed: others may load the table now.
    pub fn release(&self) {
        self.held.send_replace(false);
    }

    /// Waits until no frozen stream holds the table.
    pub async fn free(&self) {
        let mut rx = self.held.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = rx.wait_for(|held| !*held).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<ChunkRef>> {
        // A panic elsewhere cannot leave the queue half-changed: every
        // change is one pop.
        self.chunks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Up to `max` chunks, or more until one ends at a row boundary: a
    /// stream's rows must be whole. Only a chunk shorter than the archive's
    /// chunk size is sure to end one (see `pg::copy::Chunker`).
    pub fn take(&self, max: usize) -> Vec<ChunkRef> {
        let mut q = self.lock();
        let mut out = Vec::new();
        while let Some(c) = q.pop_front() {
            out.push(c);
            if out.len() >= max && c.raw_len < self.chunk_size {
                break;
            }
        }
        out
    }

    pub fn remaining(&self) -> usize {
        self.lock().len()
    }
}

/// One COPY stream's load of a table.
pub(super) struct Unit {
    /// Index into `Plan::tables`.
    pub table: usize,
    pub entry: u32,
    pub queue: Arc<ChunkQueue>,
    /// This restore created the table and this is its first stream: the
    /// load may TRUNCATE it and COPY FREEZE in one transaction (until
    /// another stream asks to join, if it is shared).
    pub freeze: bool,
    /// Other streams may join the table's load (see [`Unit::helper`]).
    pub shared: bool,
}

impl Unit {
    /// Another stream for a shared unit's table, on the same queue.
    pub fn helper(&self) -> Unit {
        Unit {
            table: self.table,
            entry: self.entry,
            queue: self.queue.clone(),
            freeze: false,
            shared: true,
        }
    }
}

/// A unit per table with data to load, largest first so the long streams
/// start early. With more than one job, the largest table is shared, and
/// so is any table beyond a job's fair share of all the data.
pub(super) fn units(plan: &Plan, chunk_size: u32, jobs: usize) -> VecDeque<Unit> {
    let loaded: Vec<usize> = (0..plan.tables.len())
        .filter(|&i| plan.tables[i].load_data && !plan.tables[i].chunk_refs.is_empty())
        .collect();
    let total = super::plan::total(loaded.iter().map(|&i| plan.tables[i].raw_bytes));
    let fair = total / jobs.max(1) as u64;
    let largest = loaded
        .iter()
        .copied()
        .max_by_key(|&i| plan.tables[i].raw_bytes);
    let mut out: Vec<Unit> = loaded
        .into_iter()
        .map(|i| {
            let t = &plan.tables[i];
            let shared = jobs > 1
                && !t.one_stream
                && t.chunk_refs.len() >= 2 * JOIN_MIN_CHUNKS
                && (Some(i) == largest || t.raw_bytes > fair);
            Unit {
                table: i,
                entry: t.entry.expect("loaded tables have an entry"),
                queue: ChunkQueue::new(&t.chunk_refs, chunk_size, t.created_here),
                freeze: t.created_here,
                shared,
            }
        })
        .collect();
    out.sort_by_key(|u| std::cmp::Reverse(plan.tables[u.table].raw_bytes));
    out.into()
}

/// Where one stream's chunks come from: first those an abandoned attempt
/// of the same stream had taken, then the table's queue. What it hands out
/// is recorded, so a retry can load exactly that again.
pub(super) struct Source {
    /// The table's entry, which every chunk must belong to.
    pub entry: u32,
    replay: VecDeque<ChunkRef>,
    queue: Arc<ChunkQueue>,
    taken: Vec<ChunkRef>,
    batch: usize,
    /// End (hand out nothing more from the queue) once another stream asks
    /// to join: this is a shared table's first stream, holding it frozen.
    yields: bool,
}

impl Source {
    pub fn new(unit: &Unit, batch: usize) -> Source {
        Source {
            entry: unit.entry,
            replay: VecDeque::new(),
            queue: unit.queue.clone(),
            taken: Vec::new(),
            batch,
            yields: unit.freeze && unit.shared,
        }
    }

    /// The stream's frozen COPY committed: what it took is loaded, and its
    /// next COPY, unfrozen, no longer gives way.
    pub fn unfrozen(&mut self) {
        self.taken.clear();
        self.yields = false;
    }

    /// The next chunks in this stream's order; empty when all are out.
    pub fn next_batch(&mut self) -> Vec<ChunkRef> {
        let group: Vec<ChunkRef> = if self.replay.is_empty() {
            if self.yields && self.queue.asked.load(Ordering::Acquire) {
                return Vec::new();
            }
            self.queue.take(self.batch)
        } else {
            let n = self.batch.min(self.replay.len());
            self.replay.drain(..n).collect()
        };
        self.taken.extend_from_slice(&group);
        group
    }

    /// The same stream again from its start: what it took comes first.
    pub fn restart(self) -> Source {
        let mut replay: VecDeque<ChunkRef> = self.taken.into();
        replay.extend(self.replay);
        Source {
            entry: self.entry,
            replay,
            queue: self.queue,
            taken: Vec::new(),
            batch: self.batch,
            yields: self.yields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(counter: u32, raw_len: u32) -> ChunkRef {
        ChunkRef {
            counter,
            offset: u64::from(counter) * 100,
            len: 100,
            rows: 1,
            raw_len,
        }
    }

    /// A shared table's first unit over `n` chunks that each end a row
    /// (chunk size 10), loaded frozen or not.
    fn shared_unit(n: u32, frozen: bool) -> Unit {
        let all: Vec<ChunkRef> = (0..n).map(|i| chunk(i, 5)).collect();
        Unit {
            table: 0,
            entry: 1,
            queue: ChunkQueue::new(&all, 10, frozen),
            freeze: frozen,
            shared: true,
        }
    }

    fn counters(c: &[ChunkRef]) -> Vec<u32> {
        c.iter().map(|c| c.counter).collect()
    }

    #[test]
    fn a_take_ends_at_a_row_boundary() {
        // 10 is the chunk size: full chunks may end inside a row.
        let q = ChunkQueue::new(
            &[
                chunk(0, 10),
                chunk(1, 10),
                chunk(2, 9),
                chunk(3, 4),
                chunk(4, 10),
            ],
            10,
            false,
        );
        assert_eq!(counters(&q.take(1)), vec![0, 1, 2]);
        assert_eq!(counters(&q.take(1)), vec![3]);
        assert_eq!(q.remaining(), 1);
        // The last chunk ends the table, boundary or not.
        assert_eq!(counters(&q.take(1)), vec![4]);
        assert!(q.take(1).is_empty());
    }

    #[test]
    fn streams_on_one_queue_take_each_chunk_once_and_a_restart_replays_its_own() {
        let unit = shared_unit(10, false);
        let mut a = Source::new(&unit, 3);
        let mut b = Source::new(&unit.helper(), 3);
        assert_eq!(counters(&a.next_batch()), vec![0, 1, 2]);
        assert_eq!(counters(&b.next_batch()), vec![3, 4, 5]);
        assert_eq!(counters(&a.next_batch()), vec![6, 7, 8]);
        // `a` gives up and starts over: its own chunks again, then the queue.
        let mut a = a.restart();
        let mut seen = Vec::new();
        loop {
            let g = a.next_batch();
            if g.is_empty() {
                break;
            }
            seen.extend(counters(&g));
        }
        assert_eq!(seen, vec![0, 1, 2, 6, 7, 8, 9]);
        assert!(b.next_batch().is_empty());
    }

    #[test]
    fn a_frozen_stream_ends_when_asked_and_goes_on_unfrozen() {
        let unit = shared_unit(6, true);
        let mut first = Source::new(&unit, 2);
        assert_eq!(counters(&first.next_batch()), vec![0, 1]);
        unit.queue.ask();
        assert!(first.next_batch().is_empty(), "a frozen stream gives way");
        first.unfrozen();
        assert_eq!(counters(&first.next_batch()), vec![2, 3]);
        // A restart replays only what it took since the commit.
        let mut first = first.restart();
        assert_eq!(counters(&first.next_batch()), vec![2, 3]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let waiting = rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_millis(10), unit.queue.free()).await
        });
        assert!(waiting.is_err(), "the table is held until the commit");
        unit.queue.release();
        rt.block_on(unit.queue.free());
    }
}
