//! The order `--data-only` loads tables in. The target's tables already
//! exist, with their foreign keys in force, so a row loaded before the row
//! it references is refused: a referenced table's rows must be committed
//! before a referencing table's load starts (pg_dump orders a data-only
//! dump the same way). A table created by the restore gets its foreign keys
//! after all the data and needs no order.
//!
//! The keys are read from the target, not the backup: they are what the
//! server enforces, and the target of a data-only restore may differ.

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::snapshot::qualified;

use super::plan::Plan;

/// Fills `load_after` and `one_stream` of the tables the restore loads but
/// does not create. Tables whose keys make a cycle load in any order among
/// themselves (no order satisfies them all): the warnings returned name
/// them.
pub async fn set(client: &Client, plan: &mut Plan) -> Result<Vec<String>> {
    let loaded: Vec<usize> = (0..plan.tables.len())
        .filter(|&i| plan.tables[i].load_data && !plan.tables[i].created_here)
        .collect();
    if loaded.is_empty() {
        return Ok(vec![]);
    }
    let names: Vec<String> = loaded
        .iter()
        .map(|&i| qualified(&plan.tables[i].schema, &plan.tables[i].name))
        .collect();
    // Pairs (referencing, referenced) as positions in `names`. A key that
    // references a partitioned (or inherited) table stands for every table
    // below it, each loaded as a table of its own.
    let rows = client
        .query(
            "WITH RECURSIVE t(i, oid) AS (
                 SELECT u.i, pg_catalog.to_regclass(u.name)::oid
                   FROM unnest($1::text[]) WITH ORDINALITY AS u(name, i)),
             fk AS (
                 SELECT conrelid, confrelid FROM pg_catalog.pg_constraint WHERE contype = 'f'),
             below(root, rel) AS (
                 SELECT confrelid, confrelid FROM fk
                 UNION
                 SELECT b.root, h.inhrelid FROM below b
                   JOIN pg_catalog.pg_inherits h ON h.inhparent = b.rel)
             SELECT DISTINCT a.i::int8 - 1, r.i::int8 - 1
               FROM fk
               JOIN t a ON a.oid = fk.conrelid
               JOIN below b ON b.root = fk.confrelid
               JOIN t r ON r.oid = b.rel",
            &[&names],
        )
        .await
        .map_err(|e| Error::pg("reading the target's foreign keys", e))?;
    let edges: Vec<(usize, usize)> = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0) as usize, r.get::<_, i64>(1) as usize))
        .collect();
    let (order, cycles) = acyclic(loaded.len(), &edges);
    for &(from, _) in edges.iter().filter(|(a, b)| a == b) {
        plan.tables[loaded[from]].one_stream = true;
    }
    for (from, to) in order {
        plan.tables[loaded[from]].load_after.push(loaded[to]);
    }
    let warnings = cycles
        .iter()
        .map(|cycle| {
            let names: Vec<String> = cycle
                .iter()
                .map(|&i| {
                    let t = &plan.tables[loaded[i]];
                    crate::filter::spell(&t.schema, &t.name)
                })
                .collect();
            format!(
                "--data-only: the foreign keys of {} refer to each other in a cycle, so no load \
                 order satisfies them all; a row whose referenced row is not in yet is refused \
                 (make those keys DEFERRABLE, or drop them and add them back after the restore)",
                names.join(", ")
            )
        })
        .collect();
    Ok(warnings)
}

/// Of the edges `a -> b` (a must wait for b) over `n` nodes, those between
/// different strongly connected components, which order the nodes without
/// a cycle; and the components of more than one node, whose own edges are
/// dropped. A self-edge is never an order.
fn acyclic(n: usize, edges: &[(usize, usize)]) -> (Vec<(usize, usize)>, Vec<Vec<usize>>) {
    let comp = components(n, edges);
    let mut kept: Vec<(usize, usize)> = edges
        .iter()
        .copied()
        .filter(|&(a, b)| a < n && b < n && comp[a] != comp[b])
        .collect();
    kept.sort_unstable();
    kept.dedup();
    let mut members: Vec<Vec<usize>> = vec![vec![]; n];
    for (v, &c) in comp.iter().enumerate() {
        members[c].push(v);
    }
    let cycles = members.into_iter().filter(|m| m.len() > 1).collect();
    (kept, cycles)
}

/// Strongly connected components (Kosaraju, iterative): a component number
/// for each node.
fn components(n: usize, edges: &[(usize, usize)]) -> Vec<usize> {
    let mut out_of: Vec<Vec<usize>> = vec![vec![]; n];
    let mut into: Vec<Vec<usize>> = vec![vec![]; n];
    for &(a, b) in edges {
        if a < n && b < n {
            out_of[a].push(b);
            into[b].push(a);
        }
    }
    // Finish order of a depth-first walk over the edges.
    let mut seen = vec![false; n];
    let mut finished = Vec::with_capacity(n);
    for start in 0..n {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let mut stack = vec![(start, 0usize)];
        while let Some((v, next)) = stack.pop() {
            if let Some(&w) = out_of[v].get(next) {
                stack.push((v, next + 1));
                if !seen[w] {
                    seen[w] = true;
                    stack.push((w, 0));
                }
            } else {
                finished.push(v);
            }
        }
    }
    // Then over the reversed edges, latest finished first.
    let mut comp = vec![usize::MAX; n];
    let mut c = 0;
    for &start in finished.iter().rev() {
        if comp[start] != usize::MAX {
            continue;
        }
        let mut stack = vec![start];
        comp[start] = c;
        while let Some(v) = stack.pop() {
            for &w in &into[v] {
                if comp[w] == usize::MAX {
                    comp[w] = c;
                    stack.push(w);
                }
            }
        }
        c += 1;
    }
    comp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_keeps_its_order_and_a_cycle_is_set_apart() {
        // 0 -> 1 -> 2, and 3 <-> 4 with 4 -> 1; 5 refers to itself.
        let edges = [(0, 1), (1, 2), (3, 4), (4, 3), (4, 1), (5, 5)];
        let (kept, cycles) = acyclic(6, &edges);
        assert_eq!(kept, vec![(0, 1), (1, 2), (4, 1)]);
        assert_eq!(cycles, vec![vec![3, 4]]);
    }

    #[test]
    fn a_longer_cycle_is_one_component() {
        let edges = [(0, 1), (1, 2), (2, 0), (3, 0)];
        let (kept, cycles) = acyclic(4, &edges);
        assert_eq!(kept, vec![(3, 0)]);
        assert_eq!(cycles.len(), 1);
        let mut c = cycles[0].clone();
        c.sort_unstable();
        assert_eq!(c, vec![0, 1, 2]);
    }

    #[test]
    fn edges_out_of_range_are_ignored() {
        let (kept, cycles) = acyclic(2, &[(0, 1), (0, 7)]);
        assert_eq!(kept, vec![(0, 1)]);
        assert!(cycles.is_empty());
    }
}
