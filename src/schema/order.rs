//! Topological ordering of objects within a section.
//!
//! Kahn's algorithm over the dependency edges, always taking the ready
//! object with the smallest sort key (kind priority, schema, name, id), so
//! the order is deterministic and close to pg_dump's. When every remaining
//! object waits on another one (a cycle the model did not break already),
//! the smallest remaining object on a cycle is emitted anyway and its
//! unsatisfied dependencies are ignored; the reader breaks the cycles it
//! knows how to (view placeholders, separated defaults) before that.

use std::collections::{BTreeSet, HashMap};

use super::model::{DbObject, ObjectKind, SchemaModel, Section};

/// Sort priority of a kind inside its section (lower first), modelled on
/// pg_dump's object type priorities. Default privileges and database-level
/// settings come at the very end (they must not affect the restore itself),
/// event triggers after everything (they must not fire during it).
pub fn kind_priority(kind: ObjectKind) -> u32 {
    use ObjectKind::*;
    match kind {
        Schema => 1,
        Extension => 2,
        Language => 3,
        AccessMethod => 3,
        Collation => 4,
        ShellType => 5,
        EnumType | CompositeType | RangeType | BaseType => 6,
        Domain => 7,
        Function | Procedure => 8,
        Aggregate | Conversion => 9,
        Operator => 10,
        OperatorFamily => 11,
        OperatorClass => 12,
        Cast => 13,
        Transform => 14,
        TextSearchParser => 15,
        TextSearchTemplate => 16,
        TextSearchDictionary => 17,
        TextSearchConfiguration => 18,
        ForeignDataWrapper => 19,
        ForeignServer => 20,
        UserMapping => 21,
        Sequence => 22,
        Table | ForeignTable | View | MaterializedView => 23,
        TableAttach => 24,
        ColumnDefault => 24,
        SequenceOwnedBy => 25,
        LargeObject => 26,
        Database => 51,
        MatviewRefresh => 40,
        Index => 30,
        IndexAttach => 31,
        Constraint => 32,
        CheckConstraint => 33,
        Rule => 34,
        Trigger => 35,
        ForeignKey => 36,
        Policy => 37,
        StatisticsObject => 38,
        Publication => 41,
        PublicationTable | PublicationSchema => 42,
        EventTrigger => 60,
        DefaultPrivileges => 50,
        ExtensionMemberAcl => 26,
    }
}

type Key<'a> = (u32, Option<&'a str>, &'a str, u32);

fn key(o: &DbObject) -> Key<'_> {
    (
        kind_priority(o.kind),
        o.schema.as_deref(),
        o.name.as_str(),
        o.id,
    )
}

/// Order `nodes` so every object comes after the objects it depends on that
/// are also in `nodes` (dependencies outside it are taken as satisfied).
pub fn sort_objects<'a>(nodes: &[&'a DbObject]) -> Vec<&'a DbObject> {
    let index: HashMap<u32, usize> = nodes.iter().enumerate().map(|(i, o)| (o.id, i)).collect();
    let mut waiting = vec![0usize; nodes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, o) in nodes.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for d in &o.deps {
            if let Some(&j) = index.get(d) {
                if j != i && seen.insert(j) {
                    waiting[i] += 1;
                    dependents[j].push(i);
                }
            }
        }
    }
    let mut ready: BTreeSet<(Key<'a>, usize)> = BTreeSet::new();
    let mut pending: BTreeSet<(Key<'a>, usize)> = BTreeSet::new();
    for (i, o) in nodes.iter().enumerate() {
        if waiting[i] == 0 {
            ready.insert((key(o), i));
        } else {
            pending.insert((key(o), i));
        }
    }
    let mut done = vec![false; nodes.len()];
    let mut out = Vec::with_capacity(nodes.len());
    while out.len() < nodes.len() {
        let next = match ready.pop_first() {
            Some((_, i)) => i,
            None => {
                // A cycle: every pending object waits. Emit the smallest one
                // that lies on a cycle (not merely downstream of one).
                let i = pending
                    .iter()
                    .map(|(_, i)| *i)
                    .find(|&i| on_cycle(i, nodes, &index, &done))
                    .unwrap_or_else(|| pending.first().unwrap().1);
                i
            }
        };
        pending.remove(&(key(nodes[next]), next));
        done[next] = true;
        out.push(nodes[next]);
        for &d in &dependents[next] {
            if done[d] {
                continue;
            }
            waiting[d] = waiting[d].saturating_sub(1);
            if waiting[d] == 0 && pending.remove(&(key(nodes[d]), d)) {
                ready.insert((key(nodes[d]), d));
            }
        }
    }
    out
}

/// Whether node `start` can reach itself through not-yet-emitted deps.
fn on_cycle(start: usize, nodes: &[&DbObject], index: &HashMap<u32, usize>, done: &[bool]) -> bool {
    let mut stack = vec![start];
    let mut seen = vec![false; nodes.len()];
    while let Some(i) = stack.pop() {
        for d in &nodes[i].deps {
            if let Some(&j) = index.get(d) {
                if done[j] {
                    continue;
                }
                if j == start {
                    return true;
                }
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
    }
    false
}

/// Strongly connected components with more than one member (or a self
/// loop), as lists of object ids; used by the reader to break cycles.
pub fn cycles(objects: &[DbObject]) -> Vec<Vec<u32>> {
    components(objects.len(), |v| &objects[v].deps)
        .into_iter()
        .filter(|c| c.len() > 1 || objects[c[0] as usize].deps.contains(&c[0]))
        .collect()
}

/// Every strongly connected component of the graph of `n` nodes whose
/// edges from node `v` are `deps(v)` (targets `>= n` are ignored), members
/// sorted; a component comes after every component it has edges to.
pub fn components<'a>(n: usize, deps: impl Fn(usize) -> &'a [u32]) -> Vec<Vec<u32>> {
    // Tarjan's algorithm, iterative.
    let mut idx = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut counter = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if idx[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        idx[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut ei)) = call.last_mut() {
            let deps = deps(v);
            if *ei < deps.len() {
                let w = deps[*ei] as usize;
                *ei += 1;
                if w >= n {
                    continue;
                }
                if idx[w] == usize::MAX {
                    idx[w] = counter;
                    low[w] = counter;
                    counter += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(idx[w]);
                }
            } else {
                call.pop();
                if let Some(&(u, _)) = call.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == idx[v] {
                    let mut comp = Vec::new();
                    loop {
                        let w = stack.pop().unwrap();
                        on_stack[w] = false;
                        comp.push(w as u32);
                        if w == v {
                            break;
                        }
                    }
                    comp.sort_unstable();
                    out.push(comp);
                }
            }
        }
    }
    out
}

impl SchemaModel {
    /// The objects of `section` in an order that satisfies their
    /// dependencies (deterministic; cycles broken as described above).
    pub fn ordered(&self, section: Section) -> Vec<&DbObject> {
        let nodes: Vec<&DbObject> = self
            .objects
            .iter()
            .filter(|o| o.section == section)
            .collect();
        sort_objects(&nodes)
    }

    /// Like [`SchemaModel::ordered`], restricted to the given object ids.
    pub fn ordered_subset(&self, section: Section, ids: &[u32]) -> Vec<&DbObject> {
        let want: BTreeSet<u32> = ids.iter().copied().collect();
        let nodes: Vec<&DbObject> = self
            .objects
            .iter()
            .filter(|o| o.section == section && want.contains(&o.id))
            .collect();
        sort_objects(&nodes)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A model of just `objects`.
    pub(crate) fn model(objects: Vec<DbObject>) -> crate::schema::SchemaModel {
        crate::schema::SchemaModel {
            format: crate::schema::FORMAT_VERSION,
            server_version_num: 150000,
            database: "d".into(),
            encoding: "UTF8".into(),
            objects,
            tables: vec![],
            sequences: vec![],
            matviews: vec![],
            large_objects: vec![],
            extension_tables: vec![],
            managed: vec![],
        }
    }

    pub(crate) fn obj(id: u32, kind: ObjectKind, name: &str, deps: &[u32]) -> DbObject {
        DbObject {
            id,
            kind,
            schema: Some("s".into()),
            name: name.into(),
            identity: format!("{kind:?} {name}"),
            owner: None,
            section: if kind_priority(kind) >= 30 {
                Section::PostData
            } else {
                Section::PreData
            },
            create: String::new(),
            drop: None,
            owner_sql: vec![],
            acl_sql: vec![],
            comment_sql: vec![],
            deps: deps.to_vec(),
            belongs_to: None,
            references: None,
            provider: None,
            tablespace: None,
        }
    }

    fn names(v: &[&DbObject]) -> Vec<String> {
        v.iter().map(|o| o.name.clone()).collect()
    }

    #[test]
    fn respects_dependencies_over_priority() {
        // A function (priority 8) depending on a table (23) must follow it.
        let objs = [
            obj(0, ObjectKind::Schema, "s", &[]),
            obj(1, ObjectKind::Function, "f", &[0, 2]),
            obj(2, ObjectKind::Table, "t", &[0]),
            obj(3, ObjectKind::EnumType, "a_type", &[0]),
        ];
        let refs: Vec<&DbObject> = objs.iter().collect();
        assert_eq!(names(&sort_objects(&refs)), ["s", "a_type", "t", "f"]);
    }

    #[test]
    fn deterministic_by_priority_then_name() {
        let objs = [
            obj(0, ObjectKind::Table, "b", &[]),
            obj(1, ObjectKind::Table, "a", &[]),
            obj(2, ObjectKind::Schema, "z", &[]),
            obj(3, ObjectKind::Sequence, "q", &[]),
        ];
        let refs: Vec<&DbObject> = objs.iter().collect();
        assert_eq!(names(&sort_objects(&refs)), ["z", "q", "a", "b"]);
        let rev: Vec<&DbObject> = objs.iter().rev().collect();
        assert_eq!(names(&sort_objects(&rev)), ["z", "q", "a", "b"]);
    }

    #[test]
    fn breaks_cycles_and_keeps_everything() {
        // v1 -> v2 -> v1 (cycle), t depends on v1, u independent.
        let objs = [
            obj(0, ObjectKind::View, "v1", &[1]),
            obj(1, ObjectKind::View, "v2", &[0]),
            obj(2, ObjectKind::Table, "t", &[0]),
            obj(3, ObjectKind::Table, "u", &[]),
        ];
        let refs: Vec<&DbObject> = objs.iter().collect();
        let out = names(&sort_objects(&refs));
        assert_eq!(out.len(), 4);
        // u is ready first; the cycle is broken at its smallest member v1,
        // then v2 and t (which waited on v1) follow.
        assert_eq!(out, ["u", "v1", "t", "v2"]);
    }

    #[test]
    fn cycle_breaking_skips_nodes_merely_downstream() {
        // a (smallest) waits on the cycle b <-> c but is not on it.
        let objs = [
            obj(0, ObjectKind::Table, "a", &[1]),
            obj(1, ObjectKind::Table, "b", &[2]),
            obj(2, ObjectKind::Table, "c", &[1]),
        ];
        let refs: Vec<&DbObject> = objs.iter().collect();
        assert_eq!(names(&sort_objects(&refs)), ["b", "a", "c"]);
    }

    #[test]
    fn ignores_dependencies_outside_the_set() {
        let objs = [
            obj(0, ObjectKind::Table, "a", &[7, 9]),
            obj(1, ObjectKind::Index, "i", &[0]),
        ];
        let refs: Vec<&DbObject> = objs.iter().collect();
        assert_eq!(names(&sort_objects(&refs)), ["a", "i"]);
    }

    #[test]
    fn finds_strongly_connected_components() {
        let objs = [
            obj(0, ObjectKind::View, "v1", &[1]),
            obj(1, ObjectKind::Function, "f", &[2]),
            obj(2, ObjectKind::View, "v2", &[0]),
            obj(3, ObjectKind::Table, "t", &[0]),
            obj(4, ObjectKind::Table, "self", &[4]),
        ];
        let mut c = cycles(&objs);
        c.sort();
        assert_eq!(c, vec![vec![0, 1, 2], vec![4]]);
    }
}
