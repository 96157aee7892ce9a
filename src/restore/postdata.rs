//! Post-data on a dependency-aware parallel scheduler: an object runs once
//! everything it depends on is done, on one of `jobs` connections, never two
//! at once on the same table (they would queue on its lock or deadlock, as
//! pg_restore also avoids), biggest tables first so the longest index builds
//! start early.

use std::collections::{HashMap, HashSet};

use tokio::task::JoinSet;

use crate::error::{Error, Result};
use crate::pg::conn::{ConnInfo, Session};

use super::plan::Plan;
use super::target::statements;
use super::RestoreOptions;

/// The tables an object locks: its own table and one it references.
fn lock_keys(plan: &Plan, id: u32) -> Vec<u32> {
    let o = plan.object(id);
    o.belongs_to.into_iter().chain(o.references).collect()
}

pub async fn run(
    plan: &Plan,
    target: &ConnInfo,
    opts: &RestoreOptions,
    target_db: &str,
) -> Result<()> {
    if plan.post_data.is_empty() {
        return Ok(());
    }
    let ids: Vec<u32> = plan.post_data.iter().map(|p| p.id).collect();
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
    let mut dependents: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&id, deps) in &waiting {
        for &d in deps {
            dependents.entry(d).or_default().push(id);
        }
    }
    // Priority: the bigger the table an object is on, the sooner it runs;
    // ties keep the planned (topological) order.
    let size_of: HashMap<u32, u64> = plan
        .tables
        .iter()
        .filter_map(|t| {
            plan.model
                .find_relation(&t.schema, &t.name)
                .map(|o| (o.id, t.raw_bytes))
        })
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

    let jobs = opts.jobs.max(1);
    let mut idle = Vec::new();
    for _ in 0..jobs.min(ids.len()) {
        let s = Session::open(target).await?;
        super::target::prepare_ddl_session(&s.client).await?;
        s.client
            .batch_execute("SET maintenance_work_mem = '256MB'; SET synchronous_commit = off")
            .await
            .map_err(|e| Error::pg("setting up a post-data session", e))?;
        idle.push(s);
    }
    let mut locked: HashSet<u32> = HashSet::new();
    let mut running: JoinSet<(u32, Session, Result<()>)> = JoinSet::new();
    let mut done = 0usize;
    let total = ids.len();
    while done < total {
        // Start whatever is ready, as long as a connection is free.
        let mut ready: Vec<u32> = waiting
            .iter()
            .filter(|(_, d)| d.is_empty())
            .map(|(&id, _)| id)
            .collect();
        ready.sort_by_key(|&id| prio(id));
        for id in ready {
            if idle.is_empty() {
                break;
            }
            let keys = lock_keys(plan, id);
            if keys.iter().any(|k| locked.contains(k)) {
                continue;
            }
            locked.extend(keys.iter().copied());
            waiting.remove(&id);
            let session = idle.pop().expect("checked non-empty");
            let o = plan.object(id);
            let stmts = statements(plan, o, opts, target_db);
            let identity = o.identity.clone();
            running.spawn(async move {
                let mut res = Ok(());
                for s in &stmts {
                    if let Err(e) = session.client.batch_execute(s).await {
                        res = Err(Error::pg(format!("restoring {identity}"), e));
                        break;
                    }
                }
                (id, session, res)
            });
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
        let (id, session, res) = joined.map_err(|e| Error::task("post-data worker", e))?;
        if let Err(e) = res {
            running.abort_all();
            return Err(e);
        }
        for k in lock_keys(plan, id) {
            locked.remove(&k);
        }
        idle.push(session);
        done += 1;
        for d in dependents.get(&id).into_iter().flatten() {
            if let Some(w) = waiting.get_mut(d) {
                w.remove(&id);
            }
        }
    }
    Ok(())
}
