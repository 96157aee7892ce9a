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
//! A table loaded by one stream alone can be loaded frozen (TRUNCATE and
//! COPY FREEZE in one transaction, see `data::load_unit`); a shared one
//! cannot, since the TRUNCATE would lock the other streams out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use crate::archive::index::ChunkRef;

use super::plan::Plan;

/// A shared table gets a new stream only while at least this many of its
/// chunks are left: fewer would end before a new COPY got going.
pub(super) const JOIN_MIN_CHUNKS: usize = 4;

/// The chunks of a table's load that no stream has taken yet.
pub(super) struct ChunkQueue {
    chunks: Mutex<VecDeque<ChunkRef>>,
    chunk_size: u32,
}

impl ChunkQueue {
    pub fn new(chunks: &[ChunkRef], chunk_size: u32) -> Arc<ChunkQueue> {
        Arc::new(ChunkQueue {
            chunks: Mutex::new(chunks.iter().copied().collect()),
            chunk_size,
        })
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
    /// The table is loaded by this stream alone and this restore created
    /// it: the load may TRUNCATE it and COPY FREEZE in one transaction.
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
                && t.chunk_refs.len() >= 2 * JOIN_MIN_CHUNKS
                && (Some(i) == largest || t.raw_bytes > fair);
            Unit {
                table: i,
                entry: t.entry.expect("loaded tables have an entry"),
                queue: ChunkQueue::new(&t.chunk_refs, chunk_size),
                freeze: !shared && t.created_here,
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
    replay: VecDeque<ChunkRef>,
    queue: Arc<ChunkQueue>,
    taken: Vec<ChunkRef>,
    batch: usize,
}

impl Source {
    pub fn new(unit: &Unit, batch: usize) -> Source {
        Source {
            replay: VecDeque::new(),
            queue: unit.queue.clone(),
            taken: Vec::new(),
            batch,
        }
    }

    /// How many chunks [`Source::next_batch`] hands out at a time, at least
    /// (a take from the queue goes on to a row boundary).
    pub fn batch_len(&self) -> usize {
        self.batch
    }

    /// The next chunks in this stream's order; empty when all are out.
    pub fn next_batch(&mut self) -> Vec<ChunkRef> {
        let group: Vec<ChunkRef> = if self.replay.is_empty() {
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
            replay,
            queue: self.queue,
            taken: Vec::new(),
            batch: self.batch,
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
        let all: Vec<ChunkRef> = (0..10).map(|i| chunk(i, 5)).collect();
        let unit = Unit {
            table: 0,
            entry: 1,
            queue: ChunkQueue::new(&all, 10),
            freeze: false,
            shared: true,
        };
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
}
