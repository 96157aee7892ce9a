//! The data and post-data phases on one dependency-aware scheduler, over
//! `jobs` connections.
//!
//! Tasks are the data units (COPY streams, see `units`) and the
//! post-data objects (indexes, constraints, triggers, ...). A post-data
//! object runs once the objects it depends on are done and the rows of its
//! table (and of the table a foreign key references) are in: so the index
//! builds of a table that finished loading overlap the load of the others,
//! as pg_restore's scheduler does, instead of waiting for the whole data
//! phase. Objects whose tables cannot be told apart that simply (on a view,
//! a partitioned or inheritance tree, a domain, ...) wait for all the data.
//!
//! Two post-data objects never run on one table (or partition tree) at once
//! (they would queue on its lock or deadlock, as pg_restore also avoids);
//! the streams of a shared table do run together. Data goes first, biggest
//! first, since every post-data object waits for some (with `--data-only`,
//! a table after the tables its foreign keys reference, see `key_order`); post-data objects
//! follow in the order of their table's size, so the longest index builds
//! start early. A job with neither opens another stream into the shared
//! table with the most chunks left, so the last loads end together instead
//! of one stream holding up its table's indexes while a core idles.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::pg::conn::{ConnInfo, Session};
use crate::progress::{Event, Progress};
use crate::repo::reader::StoredArchive;
use crate::schema::{DbObject, ObjectKind, RelKind, APPLY_SESSION_SQL};

use super::data;
use super::plan::Plan;
use super::target::{run_statements, statements};
use super::units::{self, Unit, JOIN_MIN_CHUNKS};
use super::RestoreOptions;

/// What the scheduler ran: rows the server took per planned table (from the
/// COPY command tags) and when the last row was in.
pub struct Outcome {
    pub rows: Vec<u64>,
    pub data_seconds: f64,
    /// The session the caller gave, back.
    pub given: Option<Session>,
}

enum Task {
    Data(Unit),
    Post(u32),
}

/// What the scheduler locks for an object: the tables it is on and
/// references (through an index, for an index attachment), each taken as
/// the root of its partition or inheritance tree. DDL on a parent takes
/// locks on every child and DDL on a child on its parent, in orders two
/// sessions may not agree on (a deadlock, seen in tests), so one tree runs
/// one object at a time.
struct Locks {
    root: HashMap<u32, u32>,
}

impl Locks {
    fn new(plan: &Plan) -> Locks {
        let parent: HashMap<u32, u32> = plan
            .model
            .tables
            .iter()
            .filter_map(|t| t.parent.map(|p| (t.object_id, p)))
            .collect();
        let root = plan
            .model
            .tables
            .iter()
            .map(|t| {
                let mut r = t.object_id;
                // Bounded: a hostile archive could claim a cycle.
                for _ in 0..parent.len() {
                    match parent.get(&r) {
                        Some(&p) => r = p,
                        None => break,
                    }
                }
                (t.object_id, r)
            })
            .collect();
        Locks { root }
    }

    fn keys(&self, plan: &Plan, id: u32) -> Vec<u32> {
        let o = plan.object(id);
        let mut keys: Vec<u32> = o
            .belongs_to
            .into_iter()
            .chain(o.references)
            .map(|x| {
                // An index or constraint stands for its table.
                let t = match plan.object(x) {
                    r if r.kind.is_relation() => x,
                    other => other.belongs_to.unwrap_or(x),
                };
                self.root.get(&t).copied().unwrap_or(t)
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }
}

/// A materialized view's refresh waits for the refreshes of the
/// materialized views it reads through views too: the backup's
/// dependencies name only the ones it reads directly, and one read through
/// a view could be refreshed after it, failing it ("has not been
/// populated") on one job's luck.
fn refreshes_after_what_they_read(plan: &Plan, in_set: &HashSet<u32>) -> Vec<(u32, Vec<u32>)> {
    let refresh_of: HashMap<u32, u32> = in_set
        .iter()
        .map(|&id| plan.object(id))
        .filter(|o| o.kind == ObjectKind::MatviewRefresh)
        .filter_map(|o| o.belongs_to.map(|mv| (mv, o.id)))
        .collect();
    refresh_of
        .iter()
        .filter_map(|(&mv, &refresh)| {
            let deps: Vec<u32> = plan
                .model
                .rows_read(mv, |_| false)
                .into_iter()
                .filter_map(|d| refresh_of.get(&d).copied())
                .filter(|&d| d != refresh)
                .collect();
            (!deps.is_empty()).then_some((refresh, deps))
        })
        .collect()
}

/// A unique index on a partitioned table is valid, and a foreign key can
/// reference it, only once every partition's index is attached to it (down
/// the whole tree): so each foreign key waits for the attachments below the
/// indexes and constraints of the table it references, as pg_dump orders
/// them. A sequential run gets this from the section order; the parallel
/// one needs it spelled out.
fn attachments_before_foreign_keys(plan: &Plan, in_set: &HashSet<u32>) -> Vec<(u32, Vec<u32>)> {
    // Attachments by the parent index they attach to.
    let mut below: HashMap<u32, Vec<(u32, u32)>> = HashMap::new();
    for &id in in_set {
        let o = plan.object(id);
        if let (ObjectKind::IndexAttach, Some(child), Some(parent)) =
            (o.kind, o.belongs_to, o.references)
        {
            below.entry(parent).or_default().push((id, child));
        }
    }
    if below.is_empty() {
        return vec![];
    }
    let mut indexes_of: HashMap<u32, Vec<u32>> = HashMap::new();
    for x in &plan.model.objects {
        if let (ObjectKind::Constraint | ObjectKind::Index, Some(t)) = (x.kind, x.belongs_to) {
            indexes_of.entry(t).or_default().push(x.id);
        }
    }
    let mut out = Vec::new();
    for &id in in_set {
        let o = plan.object(id);
        let (ObjectKind::ForeignKey, Some(referenced)) = (o.kind, o.references) else {
            continue;
        };
        let mut stack = indexes_of.get(&referenced).cloned().unwrap_or_default();
        let mut deps = Vec::new();
        while let Some(index) = stack.pop() {
            for &(attach, child) in below.get(&index).into_iter().flatten() {
                deps.push(attach);
                stack.push(child);
            }
        }
        if !deps.is_empty() {
            out.push((id, deps));
        }
    }
    out
}

/// How a post-data task holds its tables. Two `CREATE INDEX` on one table
/// run at once (their SHARE locks do not conflict), so a big table's
/// indexes build side by side. A task that then asks, in the same
/// transaction, for a stronger lock (a key's `ADD CONSTRAINT ... USING
/// INDEX`, an index's `CLUSTER ON`) waits for the other builds to end; two
/// such at once would wait for each other, so there is one at a time per
/// table. Everything else takes its tables alone: it would only queue on
/// their locks, or deadlock (pg_restore avoids it the same way).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Share,
    ShareThenMore,
    Alone,
}

fn mode(o: &DbObject) -> Mode {
    // Anything after the first line is another statement (or, rarely, an
    // expression's line break: then the safer mode).
    let more = o.create.trim_end().contains('\n');
    match o.kind {
        ObjectKind::Index if !more => Mode::Share,
        ObjectKind::Index => Mode::ShareThenMore,
        ObjectKind::Constraint if o.create.starts_with("CREATE UNIQUE INDEX ") => {
            Mode::ShareThenMore
        }
        _ => Mode::Alone,
    }
}

/// What the running post-data tasks hold, per lock key (a table, or a
/// partition or inheritance tree's root); a key with nothing held has no
/// entry.
#[derive(Default)]
struct TableLocks(HashMap<u32, Held>);

#[derive(Default)]
struct Held {
    shares: usize,
    more: bool,
    alone: bool,
}

impl TableLocks {
    /// Takes `keys` in `mode` if that is compatible with what is held.
    fn take(&mut self, keys: &[u32], mode: Mode) -> bool {
        let free = keys.iter().all(|k| match self.0.get(k) {
            None => true,
            Some(h) => match mode {
                Mode::Alone => false,
                Mode::ShareThenMore => !h.alone && !h.more,
                Mode::Share => !h.alone,
            },
        });
        if free {
            for &k in keys {
                let h = self.0.entry(k).or_default();
                match mode {
                    Mode::Alone => h.alone = true,
                    Mode::ShareThenMore => {
                        h.more = true;
                        h.shares += 1;
                    }
                    Mode::Share => h.shares += 1,
                }
            }
        }
        free
    }

    fn release(&mut self, keys: &[u32], mode: Mode) {
        for k in keys {
            let Some(h) = self.0.get_mut(k) else { continue };
            match mode {
                Mode::Alone => h.alone = false,
                Mode::ShareThenMore => {
                    h.more = false;
                    h.shares = h.shares.saturating_sub(1);
                }
                Mode::Share => h.shares = h.shares.saturating_sub(1),
            }
            if !h.alone && !h.more && h.shares == 0 {
                self.0.remove(k);
            }
        }
    }
}

/// Plain tables outside any partition or inheritance tree: an object on one
/// of them touches that table's rows only.
fn simple_tables(plan: &Plan) -> HashSet<u32> {
    let parents: HashSet<u32> = plan.model.tables.iter().filter_map(|t| t.parent).collect();
    plan.model
        .tables
        .iter()
        .filter(|t| t.kind == RelKind::Ordinary && t.parent.is_none())
        .filter(|t| !parents.contains(&t.object_id))
        .map(|t| t.object_id)
        .collect()
}

/// The sessions [`run`] starts with.
pub enum Sessions {
    /// `--single-transaction`: the caller's, in its transaction; everything
    /// runs on it, and [`Outcome`] gives it back.
    One(Session),
    /// The load's connections, opened before any change ([`open_sessions`]).
    Workers(Vec<Session>),
}

pub async fn run(
    archive: &Arc<StoredArchive>,
    plan: &Plan,
    target: &ConnInfo,
    opts: &RestoreOptions,
    target_db: &str,
    progress: &Arc<dyn Progress>,
    sessions: Sessions,
) -> Result<Outcome> {
    let t0 = Instant::now();
    let (given, opened) = match sessions {
        Sessions::One(s) => (Some(s), Vec::new()),
        Sessions::Workers(v) => (None, v),
    };
    // `--single-transaction`: everything on the caller's session, in its
    // transaction.
    let one = given.is_some();
    let jobs = if one { 1 } else { opts.jobs };
    let mut units: VecDeque<Unit> = units::units(plan, archive.header.chunk_size, jobs);
    // Rows still to load, per table object: the data a post-data object waits for.
    let mut pending_units: HashMap<u32, usize> = HashMap::new();
    for u in &units {
        *pending_units
            .entry(plan.tables[u.table].object_id)
            .or_default() += 1;
    }
    // The progress counts tables as their last stream ends; one with no
    // rows to load is done at once.
    let table_done = |t: &super::plan::PlannedTable, rows: u64| Event::TableDone {
        schema: t.schema.clone(),
        name: t.name.clone(),
        rows,
    };
    // Counted as `Planned` counts them: the tables whose rows the backup
    // holds (not a partitioned parent or a materialized view).
    for t in plan.tables.iter().filter(|t| t.entry.is_some()) {
        if !pending_units.contains_key(&t.object_id) {
            progress.event(table_done(t, 0));
        }
    }
    let in_plan: HashSet<u32> = plan.tables.iter().map(|t| t.object_id).collect();
    let locks = Locks::new(plan);
    let simple = simple_tables(plan);

    // Event triggers come last, after this (`target::create_event_triggers`).
    let ids: Vec<u32> = plan
        .post_data
        .iter()
        .filter(|p| p.kind != ObjectKind::EventTrigger)
        .map(|p| p.id)
        .collect();
    let in_set: HashSet<u32> = ids.iter().copied().collect();
    // Remaining in-set dependencies of each object.
    let mut waiting: HashMap<u32, HashSet<u32>> = ids
        .iter()
        .map(|&id| {
            let deps = plan
                .object(id)
                .deps
                .iter()
                .copied()
                .filter(|d| in_set.contains(d) && *d != id)
                .collect();
            (id, deps)
        })
        .collect();
    for (fk, deps) in attachments_before_foreign_keys(plan, &in_set) {
        waiting.entry(fk).or_default().extend(deps);
    }
    for (refresh, deps) in refreshes_after_what_they_read(plan, &in_set) {
        waiting.entry(refresh).or_default().extend(deps);
    }
    let mut dependents: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&id, deps) in &waiting {
        for &d in deps {
            dependents.entry(d).or_default().push(id);
        }
    }
    // Each object's lock keys, once: they are asked for at every turn.
    let keys_of: HashMap<u32, Vec<u32>> =
        ids.iter().map(|&id| (id, locks.keys(plan, id))).collect();
    // Whether an object waits only for its own keys' rows (else for all).
    let narrow: HashSet<u32> = keys_of
        .iter()
        .filter(|(_, keys)| {
            !keys.is_empty()
                && keys
                    .iter()
                    .all(|k| in_plan.contains(k) && simple.contains(k))
        })
        .map(|(&id, _)| id)
        .collect();
    let size_of: HashMap<u32, u64> = plan
        .tables
        .iter()
        .map(|t| (t.object_id, t.raw_bytes))
        .collect();
    let position: HashMap<u32, usize> = ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let prio = |id: u32| {
        let size = plan
            .object(id)
            .belongs_to
            .and_then(|t| size_of.get(&t))
            .copied()
            .unwrap_or(0);
        (std::cmp::Reverse(size), position[&id])
    };

    let mut tasks = units.len() + ids.len();
    let mut idle = Vec::new();
    if let Some(s) = given {
        idle.push(s);
    } else {
        // A shared table takes more streams than there are tasks at the
        // start: a lone big table without indexes still loads on every job.
        let wanted = if units.iter().any(|u| u.shared) {
            jobs
        } else {
            jobs.min(tasks)
        };
        // Those opened before any change first (see `open_sessions`).
        idle.extend(opened.into_iter().take(wanted.max(1)));
        while idle.len() < wanted.max(1) {
            idle.push(open_session(target, &plan.model.encoding, opts).await?);
        }
    }
    // Per table: how its units load.
    let cancel = Arc::new(AtomicBool::new(false));
    let loads: Arc<Vec<data::TableLoad>> = Arc::new(
        plan.tables
            .iter()
            .map(|t| data::TableLoad::new(t, plan.model.data_encoding(), cancel.clone(), one))
            .collect(),
    );
    let mut rows = vec![0u64; plan.tables.len()];
    let mut data_seconds = if units.is_empty() { Some(0.0) } else { None };
    if data_seconds.is_some() {
        progress.event(Event::Phase("post-data"));
    }
    let mut locked = TableLocks::default();
    let mode_of: HashMap<u32, Mode> = ids.iter().map(|&id| (id, mode(plan.object(id)))).collect();
    // Post-data objects whose dependencies are done, kept as they come
    // rather than found by a scan of all of them at every turn, which made
    // a restore of thousands of tables quadratic (QA: 2x the objects, 5x
    // the CPU): ready to start in order of priority, or held until the
    // rows they wait for are in.
    let mut gate = Gate::default();
    for (&id, d) in &waiting {
        if d.is_empty() {
            gate.admit(
                id,
                narrow.contains(&id),
                &keys_of[&id],
                &pending_units,
                &prio,
            );
        }
    }
    let mut running: JoinSet<(Task, Session, Result<u64>)> = JoinSet::new();
    let mut done = 0usize;
    // Shared tables whose load has started: templates for more streams.
    let mut joinable: Vec<Unit> = Vec::new();
    while done < tasks {
        // Data first. Units need no lock of their own: several COPY streams
        // into one table is the point of splitting it, and no post-data
        // object on a table starts before all its units are done.
        while !idle.is_empty() {
            // The first unit whose referenced tables (`--data-only`, see
            // `key_order`) have their rows in.
            let Some(unit) = units
                .iter()
                .position(|u| {
                    plan.tables[u.table]
                        .load_after
                        .iter()
                        .all(|&t| !pending_units.contains_key(&plan.tables[t].object_id))
                })
                .and_then(|i| units.remove(i))
            else {
                break;
            };
            if unit.shared {
                joinable.push(unit.helper());
            }
            let session = idle.pop().expect("checked non-empty");
            spawn_load(&mut running, unit, session, t0, (archive, &loads, progress));
        }
        // Then whatever post-data is ready.
        let mut started = Vec::new();
        for &(p, id) in &gate.ready {
            if idle.is_empty() {
                break;
            }
            if !locked.take(&keys_of[&id], mode_of[&id]) {
                continue;
            }
            started.push((p, id));
            waiting.remove(&id);
            let session = idle.pop().expect("checked non-empty");
            let o = plan.object(id);
            let mut stmts = statements(plan, o, opts, target_db);
            if o.kind == ObjectKind::ForeignKey {
                let forced = data::forced_row_security(plan, [o.belongs_to, o.references]);
                data::lift_forced_row_security(&forced, &mut stmts);
            }
            // While other jobs still load data, an index build keeps to its
            // own core: parallel workers would only take CPU from the COPY
            // streams, which are the longest tasks. Once the loads are done
            // (the last, biggest tables' indexes), idle cores are the
            // workers'. Sent with the first statement: no extra round trip.
            let builds = matches!(o.kind, ObjectKind::Index | ObjectKind::Constraint);
            if let (true, Some(first)) = (builds, stmts.first_mut()) {
                let workers = if pending_units.is_empty() {
                    "RESET max_parallel_maintenance_workers"
                } else {
                    "SET max_parallel_maintenance_workers = 0"
                };
                *first = format!("{workers}; {first}");
            }
            let identity = o.identity.clone();
            tracing::debug!("{:.2}s: building {identity}", t0.elapsed().as_secs_f64());
            running.spawn(async move {
                let res = run_statements(&session.client, &identity, &stmts)
                    .await
                    .map(|()| 0);
                (Task::Post(id), session, res)
            });
        }
        for s in started {
            gate.ready.remove(&s);
        }
        // Then, with nothing else to do, a hand with the shared table that
        // has the most chunks left.
        while !idle.is_empty() {
            let Some(template) = joinable
                .iter()
                .filter(|u| u.queue.remaining() >= JOIN_MIN_CHUNKS)
                .max_by_key(|u| u.queue.remaining())
            else {
                break;
            };
            let unit = template.helper();
            // A frozen stream on the table ends its COPY to let this one in.
            unit.queue.ask();
            *pending_units
                .get_mut(&plan.tables[unit.table].object_id)
                .expect("a table with chunks left is still loading") += 1;
            tasks += 1;
            let session = idle.pop().expect("checked non-empty");
            spawn_load(&mut running, unit, session, t0, (archive, &loads, progress));
        }
        let Some(joined) = running.join_next().await else {
            let stuck: Vec<String> = waiting
                .keys()
                .take(5)
                .map(|id| plan.object(*id).identity.clone())
                .collect();
            return Err(Error::Schema(format!(
                "post-data dependencies cannot be satisfied (a cycle?): {}",
                stuck.join(", ")
            )));
        };
        let (task, session, res) = joined.map_err(|e| Error::task("restore worker", e))?;
        let n = match res {
            Ok(n) => n,
            Err(e) if one => {
                // The only session: nothing else runs.
                let _ = session.client.batch_execute("ROLLBACK").await;
                return Err(Error::rolled_back(e));
            }
            Err(e) => {
                // The other streams end their COPY with an error at their
                // next chunk, which the server rolls back; one that had
                // sent its last chunk commits. Waiting for each (rather
                // than dropping them, which leaves unknown whether a COPY
                // that was finishing committed) tells exactly which rows
                // stay, which matters after --data-only. Post-data tasks
                // (index builds, which may be long) are cut off: their
                // objects go with a --clean rerun either way.
                cancel.store(true, Ordering::Relaxed);
                if !opts.data_only {
                    running.abort_all();
                }
                while let Some(j) = running.join_next().await {
                    if let Ok((Task::Data(unit), _, Ok(n))) = j {
                        unit_loaded(plan, &unit, n, &mut rows, &mut pending_units);
                    }
                }
                return Err(left_behind(plan, opts, &rows, &pending_units, e));
            }
        };
        idle.push(session);
        done += 1;
        tracing::debug!(
            "{:.2}s: {} done",
            t0.elapsed().as_secs_f64(),
            match &task {
                Task::Data(unit) => loads[unit.table].table.clone(),
                Task::Post(id) => plan.object(*id).identity.clone(),
            }
        );
        match task {
            Task::Data(unit) => {
                unit_loaded(plan, &unit, n, &mut rows, &mut pending_units);
                let t = &plan.tables[unit.table];
                if !pending_units.contains_key(&t.object_id) {
                    progress.event(table_done(t, rows[unit.table]));
                    gate.table_loaded(t.object_id, pending_units.is_empty(), &prio);
                }
                if pending_units.is_empty() && data_seconds.is_none() {
                    data_seconds = Some(t0.elapsed().as_secs_f64());
                    progress.event(Event::Phase("post-data"));
                }
            }
            Task::Post(id) => {
                locked.release(&keys_of[&id], mode_of[&id]);
                for d in dependents.get(&id).into_iter().flatten() {
                    if let Some(w) = waiting.get_mut(d) {
                        if w.remove(&id) && w.is_empty() {
                            gate.admit(*d, narrow.contains(d), &keys_of[d], &pending_units, &prio);
                        }
                    }
                }
            }
        }
    }
    Ok(Outcome {
        rows,
        data_seconds: data_seconds.unwrap_or_else(|| t0.elapsed().as_secs_f64()),
        given: if one { idle.pop() } else { None },
    })
}

/// A post-data object's place in the schedule: (larger table first, then
/// the plan's order).
type Priority = (std::cmp::Reverse<u64>, usize);

/// Post-data objects whose dependencies are done (see `run`).
#[derive(Default)]
struct Gate {
    /// Free to start (locks allowing), by priority.
    ready: BTreeSet<(Priority, u32)>,
    /// Objects waiting for their own tables' rows (narrow ones), by table.
    held_by: HashMap<u32, Vec<u32>>,
    /// How many of its tables each held narrow object still waits for.
    tables_left: HashMap<u32, usize>,
    /// Objects waiting for every table's rows.
    held_for_all: Vec<u32>,
}

impl Gate {
    /// `id`, its dependencies done: ready, or held until its rows are in
    /// (`narrow`: those of its own `keys`; otherwise every table's).
    fn admit(
        &mut self,
        id: u32,
        narrow: bool,
        keys: &[u32],
        pending: &HashMap<u32, usize>,
        prio: &impl Fn(u32) -> Priority,
    ) {
        if !narrow {
            match pending.is_empty() {
                true => _ = self.ready.insert((prio(id), id)),
                false => self.held_for_all.push(id),
            }
            return;
        }
        let loading: BTreeSet<u32> = keys
            .iter()
            .copied()
            .filter(|k| pending.contains_key(k))
            .collect();
        if loading.is_empty() {
            self.ready.insert((prio(id), id));
            return;
        }
        self.tables_left.insert(id, loading.len());
        for k in loading {
            self.held_by.entry(k).or_default().push(id);
        }
    }

    /// `table`'s last rows are in (`all`: every table's are).
    fn table_loaded(&mut self, table: u32, all: bool, prio: &impl Fn(u32) -> Priority) {
        for id in self.held_by.remove(&table).unwrap_or_default() {
            let left = self
                .tables_left
                .get_mut(&id)
                .expect("a held object counts its tables");
            *left -= 1;
            if *left == 0 {
                self.tables_left.remove(&id);
                self.ready.insert((prio(id), id));
            }
        }
        if all {
            for id in std::mem::take(&mut self.held_for_all) {
                self.ready.insert((prio(id), id));
            }
        }
    }
}

/// Counts a unit's committed rows and that its table has one unit fewer
/// to wait for (none left: its post-data may start).
fn unit_loaded(
    plan: &Plan,
    unit: &Unit,
    n: u64,
    rows: &mut [u64],
    pending_units: &mut HashMap<u32, usize>,
) {
    rows[unit.table] += n;
    let table = plan.tables[unit.table].object_id;
    let left = pending_units
        .get_mut(&table)
        .expect("a unit's table is counted until its last unit is done");
    *left -= 1;
    if *left == 0 {
        pending_units.remove(&table);
    }
}

/// `e`, with what a restore that failed in its data or post-data phase
/// leaves in the target: the pre-data and every finished COPY stream are
/// committed. After `--data-only` the operator must know which tables
/// hold rows already, to remove them before loading again.
pub(super) fn left_behind(
    plan: &Plan,
    opts: &RestoreOptions,
    rows: &[u64],
    pending: &HashMap<u32, usize>,
    e: Error,
) -> Error {
    if !opts.data_only {
        return Error::Incomplete {
            error: Box::new(e),
            left: "the target keeps what this restore created and loaded before the failure: \
                   run it again with --clean, or into a new database (--single-transaction \
                   leaves nothing behind)"
                .into(),
        };
    }
    let kept: Vec<String> = plan
        .tables
        .iter()
        .zip(rows)
        .filter(|(_, &n)| n > 0)
        .map(|(t, &n)| {
            let name = crate::filter::spell(&t.schema, &t.name);
            if pending.contains_key(&t.object_id) {
                format!("{name} ({n} of {} rows)", t.rows)
            } else {
                format!("{name} ({})", crate::progress::count(n, "row"))
            }
        })
        .collect();
    // A line one can read: the first dozen, and how many more.
    let shown = match kept.len() {
        0..=12 => kept.join(", "),
        n => format!("{} and {} more tables", kept[..12].join(", "), n - 12),
    };
    let mut left = if kept.is_empty() {
        "no rows were committed: the target's tables are as they were".to_string()
    } else {
        format!(
            "rows loaded before the failure stay committed in {shown}: delete them before \
             loading again (--single-transaction loads all or nothing)"
        )
    };
    if !opts.disable_triggers && e.from_trigger_or_key() {
        left.push_str(
            "; the target's triggers and foreign keys check the rows as they load: \
             --disable-triggers (superuser) keeps them quiet",
        );
    }
    Error::Incomplete {
        error: Box::new(e),
        left,
    }
}

/// Starts a unit's COPY stream on `session`.
fn spawn_load(
    running: &mut JoinSet<(Task, Session, Result<u64>)>,
    unit: Unit,
    session: Session,
    t0: Instant,
    (archive, loads, progress): (
        &Arc<StoredArchive>,
        &Arc<Vec<data::TableLoad>>,
        &Arc<dyn Progress>,
    ),
) {
    let (archive, loads, progress) = (archive.clone(), loads.clone(), progress.clone());
    tracing::debug!(
        "{:.2}s: loading {} ({} chunks left{})",
        t0.elapsed().as_secs_f64(),
        loads[unit.table].table,
        unit.queue.remaining(),
        if unit.shared { ", shared" } else { "" }
    );
    running.spawn(async move {
        let load = &loads[unit.table];
        let res = data::load_unit(&session, &archive, load, &unit, &progress).await;
        (Task::Data(unit), session, res)
    });
}

/// Memory for a session's index builds: what the server gives its shared
/// buffers (a measure of its RAM that needs no privilege to read), between
/// 256 MB and 512 MB, and never less than its own setting. A 5M-row
/// integer key sorts in memory from about 300 MB: 0.96 s against 1.2 s
/// spilling to disk at 256 MB, on the benchmark database.
const MAINTENANCE_WORK_MEM_SQL: &str = "SELECT pg_catalog.set_config('maintenance_work_mem', \
    (GREATEST(pg_catalog.pg_size_bytes(pg_catalog.current_setting('maintenance_work_mem')), \
      LEAST(512 * 1024 * 1024::int8, GREATEST(256 * 1024 * 1024::int8, \
        pg_catalog.pg_size_bytes(pg_catalog.current_setting('shared_buffers'))))) / 1024)::text || 'kB', false)";

/// The load's `--jobs` connections, opened before the restore changes
/// anything: a target that cannot take them (`max_connections`) fails the
/// restore here, with nothing changed, rather than after `--clean` dropped
/// the tables it was to load.
pub async fn open_sessions(
    plan: &Plan,
    target: &ConnInfo,
    opts: &RestoreOptions,
) -> Result<Vec<Session>> {
    let mut out = Vec::with_capacity(opts.jobs);
    for _ in 0..opts.jobs {
        match open_session(target, &plan.model.encoding, opts).await {
            Ok(s) => out.push(s),
            Err(e) => {
                return Err(Error::Refused(format!(
                    "opening the restore's load connection {} of {} (--jobs {}; the restore \
                     needs one more for its schema) failed: {e}; nothing was changed (free \
                     connections on the server, lower --jobs, or restore on one connection \
                     with --single-transaction)",
                    out.len() + 1,
                    opts.jobs,
                    opts.jobs
                )))
            }
        }
    }
    Ok(out)
}

/// One connection for both kinds of task: DDL settings (schema-qualified
/// names, no body checks), memory for index builds, no waiting on the WAL
/// flush at each commit (a failed restore is redone from scratch), and the
/// client encoding of the archive's COPY data (`pg::conn::copy_encoding`).
async fn open_session(target: &ConnInfo, encoding: &str, opts: &RestoreOptions) -> Result<Session> {
    let s = Session::open(target).await?;
    configure(&s, encoding, opts).await?;
    Ok(s)
}

/// Sets up `s` as a restore session (see `open_session`); `replica`:
/// `--disable-triggers`, the target's triggers (foreign-key checks
/// included) do not fire in it.
pub(super) async fn configure(s: &Session, encoding: &str, opts: &RestoreOptions) -> Result<()> {
    let replica = if opts.disable_triggers {
        "; SET session_replication_role = replica"
    } else {
        ""
    };
    super::set_lock_timeout(s, opts).await?;
    s.client
        .batch_execute(APPLY_SESSION_SQL)
        .await
        .and(
            s.client
                .batch_execute(&format!(
                    "{MAINTENANCE_WORK_MEM_SQL}; SET synchronous_commit = off{replica}"
                ))
                .await,
        )
        .map_err(|e| Error::pg("setting up a restore session", e))?;
    // A SQL_ASCII backup's bytes load unchecked only into a SQL_ASCII
    // target. Into another the session stays UTF8, so the server checks
    // them (and converts them to the target's encoding): bytes that are not
    // UTF-8 fail the load, naming them, where they were stored as they
    // were, and broke the target's later queries of them (QA; pg_restore
    // stores them too). A binary archive's load was checked already.
    if crate::pg::conn::copy_encoding(encoding) == "SQL_ASCII" {
        let target: String = s
            .client
            .query_one("SELECT pg_catalog.current_setting('server_encoding')", &[])
            .await
            .map_err(|e| Error::pg("reading the target's encoding", e))?
            .get(0);
        if !target.eq_ignore_ascii_case("SQL_ASCII") {
            return Ok(());
        }
    }
    s.set_copy_encoding(encoding).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_builds_share_a_table_and_one_may_upgrade() {
        let mut l = TableLocks::default();
        assert!(l.take(&[1], Mode::Share));
        assert!(l.take(&[1], Mode::Share));
        assert!(l.take(&[1], Mode::ShareThenMore));
        assert!(
            !l.take(&[1], Mode::ShareThenMore),
            "two upgrades could deadlock"
        );
        assert!(!l.take(&[1], Mode::Alone));
        assert!(l.take(&[2], Mode::Alone));
        assert!(!l.take(&[2], Mode::Share));
        assert!(!l.take(&[1, 3], Mode::Alone));
        l.release(&[1], Mode::ShareThenMore);
        assert!(l.take(&[1], Mode::ShareThenMore));
        l.release(&[1], Mode::ShareThenMore);
        l.release(&[1], Mode::Share);
        l.release(&[1], Mode::Share);
        assert!(l.take(&[1, 3], Mode::Alone));
        l.release(&[2], Mode::Alone);
        assert!(l.take(&[2], Mode::Share));
    }
}
