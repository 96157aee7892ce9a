//! `--clean`: which objects to drop, and in what order.
//!
//! The conflicts are the objects this restore creates that the target
//! already has: relations, publications, event triggers and large objects
//! (see [`conflict_kind`]). Dropping one takes along, in the server, what
//! depends on it automatically or internally (a table's indexes,
//! constraints, rules, triggers, row type, owned sequences, partitions,
//! publication memberships): its *part*, found here by
//! walking the target's `pg_depend` the way `DROP ... RESTRICT` does. Any
//! other object that depends on a part blocks the drop. When the backup has
//! that object too (a function taking a view's row type, say, recognised by
//! the identity `schema::catalog` gives it), this restore recreates it, so
//! it joins the set and the walk goes on from it; when not, the restore is
//! refused before any change, naming it. Nothing outside the set is dropped,
//! but for one kind of blocker: a foreign key of a table the restore leaves
//! alone that references a replaced table. It is dropped first and added
//! back after the load, as the target had it ([`IncomingKey`]), so that one
//! table can be put back under the live tables that reference it.
//! Tables are never taken out of their partition or inheritance tree:
//! a partition dropped with its parent, or a child detached from a parent
//! that stays, refuses the restore (see [`stranded_tables`]).
//!
//! The set is dropped dependents first, each run of objects of one kind in
//! one statement (objects that depend on each other inside one statement go
//! together, as two tables joined by foreign keys). Objects of different
//! kinds on one dependency cycle (a view calling a function that takes the
//! view's row type) cannot go one after the other: that cycle is dropped
//! with CASCADE, which then reaches only the cycle's own parts, since every
//! other dependent of them is in the set and dropped before.

use std::collections::{BTreeSet, HashMap, HashSet};

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::snapshot::{ident, qualified};
use crate::schema::catalog::{
    PG_CLASS, PG_CONSTRAINT, PG_EVENT_TRIGGER, PG_LARGEOBJECT_METADATA, PG_PROC, PG_PUBLICATION,
    PG_TYPE,
};
use crate::schema::ddl::literal;
use crate::schema::order::components;
use crate::schema::{DbObject, ObjectKind};

use super::plan::Plan;

/// A catalog address as `pg_depend` has it: (catalog OID, object OID).
pub type Addr = (u32, u32);

/// One object of the set: the plan's object and the target's.
struct Member {
    /// The plan object the restore recreates.
    id: u32,
    addr: Addr,
    /// `DROP <keyword>`.
    keyword: &'static str,
    /// The name as `DROP` takes it (with the arguments of a function).
    name: String,
}

/// A `deptype = 'n'` edge of `pg_depend` into the closure of the set.
struct Dep {
    from: Addr,
    from_sub: i32,
    to: Addr,
    to_sub: i32,
}

/// What `--clean` runs, and reports.
#[derive(Default)]
pub struct Drops {
    /// `DROP` statements, in the order they run.
    pub statements: Vec<String>,
    /// Identities of the plan objects dropped, once each.
    pub dropped: Vec<String>,
    /// Their plan ids, in the same order.
    pub ids: Vec<u32>,
    /// What the drops take along that the backup does not have, and the
    /// restore therefore does not bring back: an index, trigger, policy,
    /// rule, statistics object or constraint made on a replaced table in
    /// the target since (`pg_describe_object` of each).
    pub lost: Vec<String>,
    /// The target's foreign keys to replaced tables, from tables the
    /// restore leaves alone: dropped first (their statements lead
    /// `statements`), added back after the load.
    pub incoming: Vec<IncomingKey>,
}

/// A foreign key of a table the restore leaves alone to a table `--clean`
/// replaces, as the target has it. Dropping the table would need it gone
/// (`DROP TABLE` refuses, or CASCADE drops it for good); the restore drops
/// it and adds it back once the replaced table's rows are in, so that the
/// target ends with the keys it had. Its rows are not touched: `ON DELETE
/// CASCADE` does not fire on a `DROP`.
#[derive(Debug, Clone)]
pub struct IncomingKey {
    /// The referencing table, qualified.
    pub table: String,
    /// The constraint's name.
    pub name: String,
    /// `pg_get_constraintdef` under the restore's empty `search_path`, so
    /// every name in it is qualified (`NOT VALID` included when the target
    /// had it so).
    pub definition: String,
    pub comment: Option<String>,
    /// The replaced table it references, qualified.
    pub references: String,
    /// Whether it can come back: the restored table has the unique key it
    /// references (by name, as [`Drops::lost`] tells what the backup has).
    /// One that references a key made since the backup is dropped for good,
    /// said in `lost` (QA: planned as added back, then not added, exit 0).
    returns: bool,
}

/// The statements that add `keys` back, in order: what the restore runs,
/// and what a restore that stops first tells the user to run.
pub fn add_back(keys: &[IncomingKey]) -> Vec<String> {
    keys.iter().flat_map(IncomingKey::add_statements).collect()
}

impl IncomingKey {
    /// As the plan names a constraint: `constraint "k" on "s"."t"`.
    pub fn identity(&self) -> String {
        format!("constraint {} on {}", ident(&self.name), self.table)
    }

    pub fn drop_statement(&self) -> String {
        format!(
            "ALTER TABLE {} DROP CONSTRAINT {}",
            self.table,
            ident(&self.name)
        )
    }

    /// The statements that add it back: the constraint, then its comment.
    pub fn add_statements(&self) -> Vec<String> {
        let mut stmts = vec![format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {};",
            self.table,
            ident(&self.name),
            self.definition
        )];
        if let Some(c) = &self.comment {
            stmts.push(format!(
                "COMMENT ON CONSTRAINT {} ON {} IS {};",
                ident(&self.name),
                self.table,
                literal(c)
            ));
        }
        stmts
    }
}

/// The drops that clear `conflicts` (plan ids of objects the target has,
/// see [`find`]) out of the way, with the objects of the backup that depend
/// on them; refused when something else in the target depends on them.
pub async fn drops(client: &Client, plan: &Plan, conflicts: &[u32]) -> Result<Drops> {
    let mut members = existing_conflicts(client, plan, conflicts).await?;
    let recreated = recreated(plan);
    loop {
        let parts = parts(client, &members).await?;
        let stranded = stranded_tables(client, &members, &parts).await?;
        if !stranded.is_empty() {
            return Err(Error::Refused(format!(
                "--clean would drop or detach {} relation(s) in the target that this restore does \
                 not recreate in place, taking their rows out of the tables they belong to: {}; \
                 nothing was changed (restore the whole partition or inheritance tree, or \
                 restore into another database or with --into-schema)",
                stranded.len(),
                stranded.join(", ")
            )));
        }
        let deps = normal_deps(client, &parts).await?;
        let mut seen = HashSet::new();
        let blockers: Vec<&Dep> = deps
            .iter()
            .filter(|d| !parts.contains_key(&d.from) && seen.insert(d.from))
            .collect();
        let incoming = incoming_keys(client, plan, &blockers, &parts).await?;
        let blockers: Vec<&Dep> = blockers
            .into_iter()
            .filter(|d| !incoming.covered.contains(&d.from))
            .collect();
        if blockers.is_empty() && incoming.not_owned.is_empty() {
            let (mut statements, order) = ordered(&members, &parts, &deps);
            statements.splice(0..0, incoming.keys.iter().map(|k| k.drop_statement()));
            let (keys, gone): (Vec<IncomingKey>, Vec<IncomingKey>) =
                incoming.keys.into_iter().partition(|k| k.returns);
            let mut seen = HashSet::new();
            let ids: Vec<u32> = order
                .into_iter()
                .map(|m| members[m].id)
                .filter(|id| seen.insert(*id))
                .collect();
            let dropped = ids
                .iter()
                .map(|id| plan.target_identity(plan.object(*id)))
                .collect();
            let mut lost = lost_parts(client, plan, &members, &parts).await?;
            lost.extend(gone.iter().map(|k| {
                format!(
                    "{} (it references a unique key of {} that the backup does not have)",
                    k.identity(),
                    k.references
                )
            }));
            return Ok(Drops {
                statements,
                dropped,
                ids,
                lost,
                incoming: keys,
            });
        }
        let mut outside = incoming.not_owned;
        let known: HashSet<Addr> = members.iter().map(|m| m.addr).collect();
        let mut added = HashSet::new();
        for b in owners(client, &blockers).await? {
            match b.member.filter(|_| !known.contains(&b.owner)) {
                Some((keyword, name, identity)) if recreated.contains_key(&identity) => {
                    if added.insert(b.owner) {
                        members.push(Member {
                            id: recreated[&identity],
                            addr: b.owner,
                            keyword,
                            name,
                        });
                    }
                }
                _ => {
                    let line = format!("{} (depends on {})", b.what, b.on);
                    if !outside.contains(&line) {
                        outside.push(line);
                    }
                }
            }
        }
        if !outside.is_empty() {
            return Err(Error::Refused(format!(
                "--clean would have to drop {} object(s) in the target that this restore does \
                 not recreate, which depend on objects it replaces: {}; nothing was changed \
                 (drop or change them first, and make them again after; or restore into an \
                 empty database, or next to the live objects with --into-schema)",
                outside.len(),
                outside.join(", ")
            )));
        }
    }
}

/// The conflicts as the target has them now (one gone meanwhile needs no
/// drop).
async fn existing_conflicts(
    client: &Client,
    plan: &Plan,
    conflicts: &[u32],
) -> Result<Vec<Member>> {
    let objects: Vec<&DbObject> = conflicts.iter().map(|id| plan.object(*id)).collect();
    let found = find(client, plan, &objects).await?;
    Ok(objects
        .iter()
        .zip(found)
        .filter_map(|(o, addr)| {
            Some(Member {
                id: o.id,
                addr: addr?,
                keyword: conflict_kind(o.kind)?.1,
                name: drop_name(plan, o),
            })
        })
        .collect())
}

/// The kinds this restore creates that must not be in the target already
/// (refused, or dropped by `--clean`), with their catalog and `DROP`
/// keyword: relations, and the objects that are not shared (publications,
/// event triggers, large objects). Schemas, types, functions and the other
/// shared kinds found there are reused instead.
pub fn conflict_kind(kind: ObjectKind) -> Option<(u32, &'static str)> {
    Some(match kind {
        ObjectKind::View => (PG_CLASS, "VIEW"),
        ObjectKind::MaterializedView => (PG_CLASS, "MATERIALIZED VIEW"),
        ObjectKind::ForeignTable => (PG_CLASS, "FOREIGN TABLE"),
        ObjectKind::Table => (PG_CLASS, "TABLE"),
        ObjectKind::Sequence => (PG_CLASS, "SEQUENCE"),
        ObjectKind::Index => (PG_CLASS, "INDEX"),
        ObjectKind::Publication => (PG_PUBLICATION, "PUBLICATION"),
        ObjectKind::EventTrigger => (PG_EVENT_TRIGGER, "EVENT TRIGGER"),
        ObjectKind::LargeObject => (PG_LARGEOBJECT_METADATA, LARGE_OBJECT),
        // Found so that `--clean` may drop one whose checks made after the
        // data would hold the load to them (`target::check`); reused
        // otherwise, as the other shared kinds.
        ObjectKind::Domain => (PG_TYPE, "DOMAIN"),
        _ => return None,
    })
}

/// Large objects have no `DROP`: `lo_unlink` (see `statement`).
const LARGE_OBJECT: &str = "LARGE OBJECT";

/// The target's objects that `objects` would collide with, one for each
/// (`None`: no collision, or not a [`conflict_kind`]); one query per
/// catalog, as a database may hold very many large objects.
pub async fn find(
    client: &Client,
    plan: &Plan,
    objects: &[&DbObject],
) -> Result<Vec<Option<Addr>>> {
    let mut found = vec![None; objects.len()];
    for (catalog, lookup) in [
        (PG_CLASS, "pg_catalog.to_regclass(n)::oid"),
        (
            PG_PUBLICATION,
            "(SELECT oid FROM pg_catalog.pg_publication WHERE pubname = n)",
        ),
        (
            PG_EVENT_TRIGGER,
            "(SELECT oid FROM pg_catalog.pg_event_trigger WHERE evtname = n)",
        ),
        (
            PG_LARGEOBJECT_METADATA,
            "(SELECT oid FROM pg_catalog.pg_largeobject_metadata WHERE oid = n::oid)",
        ),
        (
            PG_TYPE,
            "(SELECT t.oid FROM pg_catalog.pg_type t \
               WHERE t.oid = pg_catalog.to_regtype(n) AND t.typtype = 'd')",
        ),
    ] {
        let (at, names): (Vec<usize>, Vec<String>) = objects
            .iter()
            .enumerate()
            .filter(|(_, o)| conflict_kind(o.kind).is_some_and(|k| k.0 == catalog))
            // A relation is looked up where the restore would create it.
            .filter(|(_, o)| catalog != PG_CLASS || plan.target_schema(o).is_some())
            .map(|(i, o)| (i, lookup_name(plan, o)))
            .unzip();
        if names.is_empty() {
            continue;
        }
        let rows = client
            .query(
                &format!(
                    "SELECT {lookup} FROM unnest($1::text[]) WITH ORDINALITY u(n, i) ORDER BY i"
                ),
                &[&names],
            )
            .await
            .map_err(|e| Error::pg("checking the target", e))?;
        for (i, row) in at.into_iter().zip(rows) {
            found[i] = row.get::<_, Option<u32>>(0).map(|oid| (catalog, oid));
        }
    }
    Ok(found)
}

/// The name [`find`] looks `o` up by.
fn lookup_name(plan: &Plan, o: &DbObject) -> String {
    match o.kind {
        ObjectKind::Publication | ObjectKind::EventTrigger | ObjectKind::LargeObject => {
            o.name.clone()
        }
        _ => drop_name(plan, o),
    }
}

/// How `DROP` (or `lo_unlink`) names the target's copy of `o`.
fn drop_name(plan: &Plan, o: &DbObject) -> String {
    match o.kind {
        ObjectKind::Publication | ObjectKind::EventTrigger => ident(&o.name),
        ObjectKind::LargeObject => o.name.clone(),
        _ => qualified(plan.target_schema(o).unwrap_or("public"), &o.name),
    }
}

/// The plan's objects that may join the set, by identity: the kinds that
/// can depend on a relation's row type (or on each other) and that the
/// pre-data recreates when they are missing.
fn recreated(plan: &Plan) -> HashMap<String, u32> {
    use ObjectKind::*;
    plan.pre_data
        .iter()
        .filter(|p| {
            matches!(
                p.kind,
                Function
                    | Procedure
                    | Aggregate
                    | EnumType
                    | CompositeType
                    | RangeType
                    | BaseType
                    | Domain
            )
        })
        .map(|p| (plan.object(p.id).identity.clone(), p.id))
        .collect()
}

/// Every object dropping the members takes along, with the members whose
/// part it is: each member and what depends on it automatically,
/// internally or as a partition, transitively.
async fn parts(client: &Client, members: &[Member]) -> Result<HashMap<Addr, Vec<usize>>> {
    let seeds: Vec<i32> = (0..members.len() as i32).collect();
    let classes: Vec<u32> = members.iter().map(|m| m.addr.0).collect();
    let oids: Vec<u32> = members.iter().map(|m| m.addr.1).collect();
    let rows = client
        .query(
            "WITH RECURSIVE part(seed, classid, objid) AS ( \
                 SELECT * FROM unnest($1::int4[], $2::oid[], $3::oid[]) \
               UNION \
                 SELECT p.seed, d.classid, d.objid FROM part p \
                 JOIN pg_catalog.pg_depend d ON d.refclassid = p.classid AND d.refobjid = p.objid \
                 WHERE d.deptype IN ('a', 'i', 'P', 'S')) \
             SELECT seed, classid, objid FROM part",
            &[&seeds, &classes, &oids],
        )
        .await
        .map_err(|e| Error::pg("--clean: reading the target's dependencies", e))?;
    let mut parts: HashMap<Addr, Vec<usize>> = HashMap::new();
    for r in rows {
        let seed = r.get::<_, i32>(0) as usize;
        parts.entry((r.get(1), r.get(2))).or_default().push(seed);
    }
    Ok(parts)
}

/// The parts of the set that are an index, trigger, policy, rule,
/// statistics object or constraint the backup has none of by that name:
/// made in the target since, they go with the table they are on and do not
/// come back. Named so that a `--clean` (its dry run first) says so. Not
/// the copies PostgreSQL makes itself of a parent's (a partition's index,
/// trigger or key, a key's per-partition twin): they come back with it (QA:
/// a key to a partitioned table was named as lost, and came back).
async fn lost_parts(
    client: &Client,
    plan: &Plan,
    members: &[Member],
    parts: &HashMap<Addr, Vec<usize>>,
) -> Result<Vec<String>> {
    let own: HashSet<Addr> = members.iter().map(|m| m.addr).collect();
    let (classes, oids): (Vec<u32>, Vec<u32>) =
        parts.keys().filter(|a| !own.contains(a)).copied().unzip();
    let rows = client
        .query(
            "SELECT pg_catalog.pg_describe_object(p.classid, p.objid, 0), n.kind, n.name \
             FROM unnest($1::oid[], $2::oid[]) p(classid, objid) \
             CROSS JOIN LATERAL ( \
               SELECT 'index' AS kind, i.relname::text AS name FROM pg_catalog.pg_class i \
                WHERE p.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.oid = p.objid \
                  AND i.relkind IN ('i', 'I') \
                  AND i.relnamespace <> 'pg_toast'::pg_catalog.regnamespace AND NOT i.relispartition \
                  AND NOT EXISTS (SELECT 1 FROM \
                  pg_catalog.pg_constraint k WHERE k.conindid = i.oid AND k.contype IN ('p', 'u', 'x')) \
               UNION ALL SELECT 'trigger', t.tgname::text FROM pg_catalog.pg_trigger t \
                WHERE p.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass AND t.oid = p.objid \
                  AND NOT t.tgisinternal AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d \
                  WHERE d.classid = 'pg_catalog.pg_trigger'::pg_catalog.regclass \
                    AND d.objid = t.oid AND d.deptype = 'P') \
               UNION ALL SELECT 'policy', o.polname::text FROM pg_catalog.pg_policy o \
                WHERE p.classid = 'pg_catalog.pg_policy'::pg_catalog.regclass AND o.oid = p.objid \
               UNION ALL SELECT 'rule', r.rulename::text FROM pg_catalog.pg_rewrite r \
                WHERE p.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = p.objid \
                  AND r.rulename <> '_RETURN' \
               UNION ALL SELECT 'statistics', x.stxname::text FROM pg_catalog.pg_statistic_ext x \
                WHERE p.classid = 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass AND x.oid = p.objid \
               UNION ALL SELECT 'constraint', k.conname::text FROM pg_catalog.pg_constraint k \
                WHERE p.classid = 'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.oid = p.objid \
                  AND k.contype <> 'n' AND k.conparentid = 0) n \
             ORDER BY 1",
            &[&classes, &oids],
        )
        .await
        .map_err(|e| Error::pg("--clean: reading what the drops take along", e))?;
    let has = |kind: &str, name: &str| {
        plan.model.objects.iter().any(|o| match kind {
            "index" => o.kind == ObjectKind::Index && o.name == name,
            "trigger" => o.kind == ObjectKind::Trigger && o.name == name,
            "policy" => o.kind == ObjectKind::Policy && o.name == name,
            "rule" => o.kind == ObjectKind::Rule && o.name == name,
            "statistics" => o.kind == ObjectKind::StatisticsObject && o.name == name,
            // Inline in CREATE TABLE (checks, NOT NULL) or an object.
            _ => {
                matches!(
                    o.kind,
                    ObjectKind::Constraint | ObjectKind::CheckConstraint | ObjectKind::ForeignKey
                ) && o.name == name
                    || o.kind == ObjectKind::Table
                        && o.create.contains(&format!("CONSTRAINT {} ", ident(name)))
            }
        })
    };
    Ok(rows
        .iter()
        .filter(|r| !has(r.get(1), r.get(2)))
        .map(|r| r.get(0))
        .collect())
}

/// Tables a `--clean` would take from their tree: a partition dropped with
/// the partitioned table it belongs to (a part of it, `pg_depend` says)
/// that the restore does not recreate, and a partition or inheritance child
/// the restore recreates while its parent stays (dropping it detaches it;
/// the restore brings it back standalone). Either way the parent's rows
/// shrink while the restore reports success.
async fn stranded_tables(
    client: &Client,
    members: &[Member],
    parts: &HashMap<Addr, Vec<usize>>,
) -> Result<Vec<String>> {
    let relations = |addrs: &mut dyn Iterator<Item = &Addr>| -> Vec<u32> {
        addrs.filter(|a| a.0 == PG_CLASS).map(|a| a.1).collect()
    };
    let member_oids = relations(&mut members.iter().map(|m| &m.addr));
    let part_oids = relations(&mut parts.keys());
    let rows = client
        .query(
            "SELECT format('%s (a partition of %s, dropped with it)', c.oid::pg_catalog.regclass, \
                        i.inhparent::pg_catalog.regclass) \
             FROM unnest($2::oid[]) p(oid) \
             JOIN pg_catalog.pg_class c ON c.oid = p.oid \
             JOIN pg_catalog.pg_inherits i ON i.inhrelid = c.oid \
             WHERE c.relkind IN ('r', 'p', 'f') AND c.oid <> ALL ($1::oid[]) \
             UNION ALL \
             SELECT format('%s (detached from %s, which stays)', i.inhrelid::pg_catalog.regclass, \
                        i.inhparent::pg_catalog.regclass) \
             FROM pg_catalog.pg_inherits i \
             WHERE i.inhrelid = ANY ($1::oid[]) AND i.inhparent <> ALL ($1::oid[]) \
             ORDER BY 1",
            &[&member_oids, &part_oids],
        )
        .await
        .map_err(|e| Error::pg("--clean: reading the target's partitions", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The blockers that are foreign keys of tables outside the set
/// ([`IncomingKey`]), by their root constraint: a key of a partitioned
/// table has a twin on each partition (and one for each partition of a
/// partitioned table it references), all blocking, all dropped and made
/// again with the root.
#[derive(Default)]
struct Incoming {
    keys: Vec<IncomingKey>,
    /// The blockers they account for.
    covered: HashSet<Addr>,
    /// Those whose table the restoring role does not own: it may neither
    /// drop nor add them, so they refuse the restore as any blocker.
    not_owned: Vec<String>,
}

async fn incoming_keys(
    client: &Client,
    plan: &Plan,
    blockers: &[&Dep],
    parts: &HashMap<Addr, Vec<usize>>,
) -> Result<Incoming> {
    let oids: Vec<u32> = blockers
        .iter()
        .filter(|d| d.from.0 == PG_CONSTRAINT)
        .map(|d| d.from.1)
        .collect();
    let mut incoming = Incoming::default();
    if oids.is_empty() {
        return Ok(incoming);
    }
    let relations: Vec<u32> = parts
        .keys()
        .filter(|a| a.0 == PG_CLASS)
        .map(|a| a.1)
        .collect();
    let rows = client
        .query(
            "WITH RECURSIVE up(start, oid) AS ( \
                 SELECT c.oid, c.oid FROM pg_catalog.pg_constraint c \
                 WHERE c.oid = ANY ($1::oid[]) AND c.contype = 'f' \
               UNION ALL \
                 SELECT up.start, c.conparentid FROM up \
                 JOIN pg_catalog.pg_constraint c ON c.oid = up.oid WHERE c.conparentid <> 0) \
             SELECT up.start, r.oid, n.nspname::text, t.relname::text, r.conname::text, \
                    pg_catalog.pg_get_constraintdef(r.oid), \
                    pg_catalog.obj_description(r.oid, 'pg_constraint'), \
                    pg_catalog.pg_has_role(t.relowner, 'USAGE') \
                      AND pg_catalog.has_schema_privilege(n.oid, 'USAGE'), \
                    fn.nspname::text, f.relname::text, \
                    (SELECT i.relname::text FROM pg_catalog.pg_class i WHERE i.oid = r.conindid), \
                    (SELECT k.conname::text FROM pg_catalog.pg_constraint k \
                      WHERE k.conindid = r.conindid AND k.conrelid = r.confrelid \
                        AND k.contype IN ('p', 'u')) \
             FROM up JOIN pg_catalog.pg_constraint r ON r.oid = up.oid \
             JOIN pg_catalog.pg_class t ON t.oid = r.conrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
             JOIN pg_catalog.pg_class f ON f.oid = r.confrelid \
             JOIN pg_catalog.pg_namespace fn ON fn.oid = f.relnamespace \
             WHERE r.conparentid = 0 AND r.conrelid <> ALL ($2::oid[]) \
             ORDER BY 3, 4, 5",
            &[&oids, &relations],
        )
        .await
        .map_err(|e| Error::pg("--clean: reading the target's foreign keys", e))?;
    let mut roots = HashSet::new();
    for r in rows {
        incoming.covered.insert((PG_CONSTRAINT, r.get(0)));
        if !roots.insert(r.get::<_, u32>(1)) {
            continue;
        }
        let key = IncomingKey {
            table: qualified(r.get(2), r.get(3)),
            name: r.get(4),
            definition: r.get(5),
            comment: r.get(6),
            references: qualified(r.get(8), r.get(9)),
            returns: has_unique_key(plan, r.get(10), r.get(11)),
        };
        if r.get::<_, bool>(7) {
            incoming.keys.push(key);
        } else {
            incoming.not_owned.push(format!(
                "{} (references {}; only the owner of {}, with USAGE on its schema, may drop it \
                 and add it back)",
                key.identity(),
                key.references,
                key.table
            ));
        }
    }
    Ok(incoming)
}

/// Whether the backup has a unique key by the name of the target's one
/// that a key references: its index, or the constraint owning it.
fn has_unique_key(plan: &Plan, index: Option<String>, constraint: Option<String>) -> bool {
    plan.model.objects.iter().any(|o| {
        (o.kind == ObjectKind::Index && Some(&o.name) == index.as_ref())
            || (o.kind == ObjectKind::Constraint && Some(&o.name) == constraint.as_ref())
    })
}

/// The ordinary dependencies on objects of the parts: between members
/// they order the drops; from anywhere else they block them.
async fn normal_deps(client: &Client, parts: &HashMap<Addr, Vec<usize>>) -> Result<Vec<Dep>> {
    let (classes, oids): (Vec<u32>, Vec<u32>) = parts.keys().copied().unzip();
    let rows = client
        .query(
            "SELECT DISTINCT ON (d.classid, d.objid, d.refclassid, d.refobjid) \
                    d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid \
             FROM unnest($1::oid[], $2::oid[]) c(classid, objid) \
             JOIN pg_catalog.pg_depend d ON d.refclassid = c.classid AND d.refobjid = c.objid \
             WHERE d.deptype = 'n' AND (d.classid, d.objid) <> (d.refclassid, d.refobjid) \
             ORDER BY d.classid, d.objid, d.refclassid, d.refobjid, d.objsubid, d.refobjsubid",
            &[&classes, &oids],
        )
        .await
        .map_err(|e| Error::pg("--clean: reading the target's dependencies", e))?;
    Ok(rows
        .iter()
        .map(|r| Dep {
            from: (r.get(0), r.get(1)),
            from_sub: r.get(2),
            to: (r.get(3), r.get(4)),
            to_sub: r.get(5),
        })
        .collect())
}

/// A blocking object, resolved to the object that owns it.
struct Blocker {
    /// `pg_describe_object` of the blocker (of its owner when it is an
    /// internal part of it, as a view's rule) and of what it depends on.
    what: String,
    on: String,
    /// The object a `DROP` names: the blocker, or the object it is an
    /// internal or automatic part of (a view for its rule, a table for its
    /// trigger or default, a type for its array type).
    owner: Addr,
    /// The owner's `DROP` keyword, name and identity as `schema::catalog`
    /// writes them, for the kinds that may join the set (functions and
    /// types outside extensions).
    member: Option<(&'static str, String, String)>,
}

async fn owners(client: &Client, blockers: &[&Dep]) -> Result<Vec<Blocker>> {
    let col = |f: fn(&Dep) -> u32| blockers.iter().map(|d| f(d)).collect::<Vec<u32>>();
    let sub = |f: fn(&Dep) -> i32| blockers.iter().map(|d| f(d)).collect::<Vec<i32>>();
    let sql = format!(
        "WITH RECURSIVE b AS ( \
             SELECT * FROM unnest($1::oid[], $2::oid[], $3::int4[], $4::oid[], $5::oid[], $6::int4[]) \
               WITH ORDINALITY b(c, o, s, rc, ro, rs, i)), \
         up(i, classid, objid, depth) AS ( \
             SELECT i, c, o, 0 FROM b \
           UNION ALL \
             SELECT up.i, d.refclassid, d.refobjid, up.depth + 1 FROM up \
             JOIN pg_catalog.pg_depend d ON d.classid = up.classid AND d.objid = up.objid \
             WHERE d.deptype IN ('i', 'a') AND up.depth < 8 \
               AND (d.refclassid, d.refobjid) <> (up.classid, up.objid)), \
         top AS (SELECT DISTINCT ON (i) i, classid, objid FROM up ORDER BY i, depth DESC) \
         SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_depend x \
                       WHERE x.classid = b.c AND x.objid = b.o AND x.deptype = 'i') \
                     THEN pg_catalog.pg_describe_object(top.classid, top.objid, 0) \
                     ELSE pg_catalog.pg_describe_object(b.c, b.o, b.s) END AS what, \
                pg_catalog.pg_describe_object(b.rc, b.ro, b.rs) AS on_what, \
                top.classid, top.objid, n.nspname::text AS schema, \
                coalesce(p.proname, t.typname)::text AS name, p.prokind::text AS prokind, \
                pg_catalog.pg_get_function_identity_arguments(p.oid) AS args, \
                t.typtype::text AS typtype, \
                EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = top.classid \
                        AND e.objid = top.objid AND e.deptype = 'e') AS in_extension \
         FROM b JOIN top ON top.i = b.i \
         LEFT JOIN pg_catalog.pg_proc p ON top.classid = {PG_PROC} AND p.oid = top.objid \
         LEFT JOIN pg_catalog.pg_type t ON top.classid = {PG_TYPE} AND t.oid = top.objid \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = coalesce(p.pronamespace, t.typnamespace) \
         ORDER BY b.i"
    );
    let context = "--clean: reading the target's dependencies";
    // The function arguments spelled as `schema::catalog` read them.
    let saved: String = client
        .query_one(
            "SELECT pg_catalog.current_setting('quote_all_identifiers')",
            &[],
        )
        .await
        .map_err(|e| Error::pg(context, e))?
        .get(0);
    client
        .batch_execute("SET quote_all_identifiers = on")
        .await
        .map_err(|e| Error::pg(context, e))?;
    let rows = client
        .query(
            &sql,
            &[
                &col(|d| d.from.0),
                &col(|d| d.from.1),
                &sub(|d| d.from_sub),
                &col(|d| d.to.0),
                &col(|d| d.to.1),
                &sub(|d| d.to_sub),
            ],
        )
        .await
        .map_err(|e| Error::pg(context, e))?;
    client
        .execute(
            "SELECT pg_catalog.set_config('quote_all_identifiers', $1, false)",
            &[&saved],
        )
        .await
        .map_err(|e| Error::pg(context, e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let described = |c: &str| r.get::<_, Option<String>>(c).unwrap_or_default();
            let owner: Addr = (r.get("classid"), r.get("objid"));
            let member = if r.get::<_, bool>("in_extension") {
                None
            } else {
                member_name(
                    owner.0,
                    r.get("schema"),
                    r.get("name"),
                    r.get("prokind"),
                    r.get("args"),
                    r.get("typtype"),
                )
            };
            Blocker {
                what: described("what"),
                on: described("on_what"),
                owner,
                member,
            }
        })
        .collect())
}

/// `DROP` keyword, name and plan identity of a function or type, spelled
/// as `schema::catalog` spells them (`function "s"."f"(integer)`, `type
/// "s"."t"`), so that the backup's objects can be recognised.
fn member_name(
    class: u32,
    schema: Option<String>,
    name: Option<String>,
    prokind: Option<String>,
    args: Option<String>,
    typtype: Option<String>,
) -> Option<(&'static str, String, String)> {
    let qn = qualified(&schema?, &name?);
    let (keyword, name) = match (class, prokind.as_deref(), typtype.as_deref()) {
        (PG_PROC, Some(kind), _) => {
            let args = args.unwrap_or_default();
            let (keyword, args) = match kind {
                "p" => ("PROCEDURE", args),
                // As the catalog has it: no arguments is `*`.
                "a" if args.is_empty() => ("AGGREGATE", "*".to_string()),
                "a" => ("AGGREGATE", args),
                _ => ("FUNCTION", args),
            };
            (keyword, format!("{qn}({args})"))
        }
        (PG_TYPE, _, Some("d")) => ("DOMAIN", qn),
        (PG_TYPE, _, Some("b" | "c" | "e" | "r")) => ("TYPE", qn),
        _ => return None,
    };
    let identity = format!("{} {name}", keyword.to_lowercase());
    Some((keyword, name, identity))
}

/// The set's `DROP` statements, dependents first (see the module comment),
/// and the members in the order they go (those dropped with another last).
fn ordered(
    members: &[Member],
    parts: &HashMap<Addr, Vec<usize>>,
    deps: &[Dep],
) -> (Vec<String>, Vec<usize>) {
    let covered = covered(members, parts);
    // Edge a -> b: something of a's part depends on b's part, so a first.
    let mut edges: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); members.len()];
    for d in deps {
        let (Some(from), Some(to)) = (parts.get(&d.from), parts.get(&d.to)) else {
            continue;
        };
        for &a in from.iter().filter(|a| !covered[**a]) {
            for &b in to.iter().filter(|b| !covered[**b] && **b != a) {
                edges[a].insert(b as u32);
            }
        }
    }
    let edges: Vec<Vec<u32>> = edges.into_iter().map(|e| e.into_iter().collect()).collect();
    let comps: Vec<Vec<u32>> = components(members.len(), |v| &edges[v])
        .into_iter()
        .filter(|c| !covered[c[0] as usize])
        .collect();
    let mut statements = Vec::new();
    let mut run: (&str, Vec<&str>) = ("", Vec::new());
    let flush = |run: &mut (&str, Vec<&str>), statements: &mut Vec<String>| {
        if !run.1.is_empty() {
            statements.push(statement(run.0, &run.1, false));
            run.1.clear();
        }
    };
    let mut order = Vec::new();
    for c in dependents_first(&comps, &edges, members) {
        let comp = &comps[c];
        order.extend(comp.iter().map(|&m| m as usize));
        let kinds = by_keyword(comp, members);
        if let [(keyword, names)] = kinds.as_slice() {
            if run.0 != *keyword {
                flush(&mut run, &mut statements);
                run.0 = *keyword;
            }
            run.1.extend(names.iter().copied());
            continue;
        }
        // A cycle through objects of different kinds.
        flush(&mut run, &mut statements);
        for (keyword, names) in kinds {
            statements.push(statement(keyword, &names, true));
        }
    }
    flush(&mut run, &mut statements);
    order.extend((0..members.len()).filter(|&m| covered[m]));
    (statements, order)
}

/// One statement dropping `names`, all of one kind, if they exist.
fn statement(keyword: &str, names: &[&str], cascade: bool) -> String {
    if keyword == LARGE_OBJECT {
        // Nothing depends on a large object: never a cascade.
        return format!(
            "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata \
             WHERE oid IN ({})",
            names.join(", ")
        );
    }
    let cascade = if cascade { " CASCADE" } else { "" };
    format!("DROP {keyword} IF EXISTS {}{cascade}", names.join(", "))
}

/// Members that are part of another member (an index of a table, a
/// table's owned sequence): dropping that one takes them along, and
/// dropping them first may not be allowed (an index a constraint uses).
fn covered(members: &[Member], parts: &HashMap<Addr, Vec<usize>>) -> Vec<bool> {
    let part_of = |m: usize| -> &[usize] { parts.get(&members[m].addr).map_or(&[], |v| v) };
    (0..members.len())
        .map(|m| {
            part_of(m)
                .iter()
                .any(|&n| n != m && !part_of(n).contains(&m))
        })
        .collect()
}

/// The order of `comps` (indexes into it) in which each comes before the
/// components it has edges to. Among those free to go, one of the kind
/// just dropped comes first (fewer statements), then by kind and by the
/// plan's order.
fn dependents_first(comps: &[Vec<u32>], edges: &[Vec<u32>], members: &[Member]) -> Vec<usize> {
    let mut comp_of = vec![usize::MAX; members.len()];
    for (c, comp) in comps.iter().enumerate() {
        for &m in comp {
            comp_of[m as usize] = c;
        }
    }
    let mut after: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); comps.len()];
    let mut waiting = vec![0usize; comps.len()];
    for (a, comp) in comps.iter().enumerate() {
        for &m in comp {
            for &b in &edges[m as usize] {
                let b = comp_of[b as usize];
                if b != a && b != usize::MAX && after[a].insert(b) {
                    waiting[b] += 1;
                }
            }
        }
    }
    let rank = |c: usize| {
        let m = &members[comps[c][0] as usize];
        (keyword_rank(m.keyword), comps[c][0])
    };
    let mut ready: BTreeSet<usize> = (0..comps.len()).filter(|&c| waiting[c] == 0).collect();
    let mut out = Vec::with_capacity(comps.len());
    let mut last = "";
    while !ready.is_empty() {
        let same = ready
            .iter()
            .copied()
            .filter(|&c| comps[c].len() == 1 && members[comps[c][0] as usize].keyword == last)
            .min_by_key(|&c| rank(c));
        let c = same.unwrap_or_else(|| ready.iter().copied().min_by_key(|&c| rank(c)).unwrap());
        ready.remove(&c);
        last = members[comps[c][0] as usize].keyword;
        out.push(c);
        for &b in &after[c] {
            waiting[b] -= 1;
            if waiting[b] == 0 {
                ready.insert(b);
            }
        }
    }
    out
}

/// A component's members grouped by `DROP` keyword, in kind order.
fn by_keyword<'a>(comp: &[u32], members: &'a [Member]) -> Vec<(&'static str, Vec<&'a str>)> {
    let mut groups: Vec<(&'static str, Vec<&str>)> = Vec::new();
    let mut sorted: Vec<&Member> = comp.iter().map(|&m| &members[m as usize]).collect();
    sorted.sort_by_key(|m| keyword_rank(m.keyword));
    for m in sorted {
        match groups.last_mut() {
            Some((k, names)) if *k == m.keyword => names.push(&m.name),
            _ => groups.push((m.keyword, vec![&m.name])),
        }
    }
    groups
}

/// Dependents' kinds first, where nothing else decides.
fn keyword_rank(keyword: &str) -> usize {
    const ORDER: [&str; 14] = [
        "EVENT TRIGGER",
        "PUBLICATION",
        LARGE_OBJECT,
        "VIEW",
        "MATERIALIZED VIEW",
        "FOREIGN TABLE",
        "TABLE",
        "SEQUENCE",
        "INDEX",
        "AGGREGATE",
        "PROCEDURE",
        "FUNCTION",
        "DOMAIN",
        "TYPE",
    ];
    ORDER
        .iter()
        .position(|k| *k == keyword)
        .unwrap_or(ORDER.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PG_REWRITE: u32 = 2618;

    fn member(keyword: &'static str, name: &str, addr: Addr) -> Member {
        Member {
            id: 0,
            addr,
            keyword,
            name: name.into(),
        }
    }

    fn dep(from: Addr, to: Addr) -> Dep {
        Dep {
            from,
            from_sub: 0,
            to,
            to_sub: 0,
        }
    }

    fn parts(of: &[(Addr, &[usize])]) -> HashMap<Addr, Vec<usize>> {
        of.iter().map(|(a, m)| (*a, m.to_vec())).collect()
    }

    #[test]
    fn dependents_first_and_cycles_of_two_kinds_together() {
        // v2 selects from v; v calls f, which takes v's row type; v selects
        // from t, whose index goes with it.
        let members = [
            member("VIEW", "v", (PG_CLASS, 10)),
            member("VIEW", "v2", (PG_CLASS, 11)),
            member("FUNCTION", "f(v)", (PG_PROC, 20)),
            member("TABLE", "t", (PG_CLASS, 30)),
            member("INDEX", "t_i", (PG_CLASS, 31)),
        ];
        let parts = parts(&[
            ((PG_CLASS, 10), &[0]),
            ((PG_TYPE, 12), &[0]),
            ((PG_REWRITE, 13), &[0]),
            ((PG_CLASS, 11), &[1]),
            ((PG_REWRITE, 14), &[1]),
            ((PG_PROC, 20), &[2]),
            ((PG_CLASS, 30), &[3]),
            ((PG_CLASS, 31), &[3, 4]),
        ]);
        let deps = [
            dep((PG_REWRITE, 14), (PG_CLASS, 10)),
            dep((PG_PROC, 20), (PG_TYPE, 12)),
            dep((PG_REWRITE, 13), (PG_PROC, 20)),
            dep((PG_REWRITE, 13), (PG_CLASS, 30)),
        ];
        let (statements, order) = ordered(&members, &parts, &deps);
        assert_eq!(
            statements,
            [
                "DROP VIEW IF EXISTS v2",
                "DROP VIEW IF EXISTS v CASCADE",
                "DROP FUNCTION IF EXISTS f(v) CASCADE",
                "DROP TABLE IF EXISTS t",
            ]
        );
        assert_eq!(order, [1, 0, 2, 3, 4]);
    }

    #[test]
    fn a_cycle_of_one_kind_is_one_statement_without_cascade() {
        // Two tables whose foreign keys reference each other, and a view on
        // one of them.
        let members = [
            member("TABLE", "a", (PG_CLASS, 1)),
            member("TABLE", "b", (PG_CLASS, 2)),
            member("VIEW", "w", (PG_CLASS, 3)),
        ];
        let parts = parts(&[
            ((PG_CLASS, 1), &[0]),
            ((PG_CLASS, 2), &[1]),
            ((PG_CLASS, 3), &[2]),
            ((PG_REWRITE, 4), &[2]),
        ]);
        let deps = [
            dep((PG_CLASS, 1), (PG_CLASS, 2)),
            dep((PG_CLASS, 2), (PG_CLASS, 1)),
            dep((PG_REWRITE, 4), (PG_CLASS, 2)),
        ];
        let (statements, _) = ordered(&members, &parts, &deps);
        assert_eq!(
            statements,
            ["DROP VIEW IF EXISTS w", "DROP TABLE IF EXISTS a, b"]
        );
    }

    #[test]
    fn names_spelled_as_the_catalog_spells_them() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            member_name(PG_PROC, s("k"), s("f"), s("f"), s("\"k\".\"v\""), None),
            Some((
                "FUNCTION",
                "\"k\".\"f\"(\"k\".\"v\")".into(),
                "function \"k\".\"f\"(\"k\".\"v\")".into()
            ))
        );
        assert_eq!(
            member_name(PG_PROC, s("k"), s("n"), s("a"), s(""), None).map(|m| m.2),
            s("aggregate \"k\".\"n\"(*)")
        );
        assert_eq!(
            member_name(PG_PROC, s("k"), s("p"), s("p"), s("a integer"), None).map(|m| m.2),
            s("procedure \"k\".\"p\"(a integer)")
        );
        assert_eq!(
            member_name(PG_TYPE, s("k"), s("d"), None, None, s("d")).map(|m| m.2),
            s("domain \"k\".\"d\"")
        );
        assert_eq!(
            member_name(PG_TYPE, s("k"), s("c"), None, None, s("c")).map(|m| m.2),
            s("type \"k\".\"c\"")
        );
        assert_eq!(
            member_name(PG_CLASS, s("k"), s("t"), None, None, None),
            None
        );
    }

    #[test]
    fn large_objects_are_unlinked() {
        assert_eq!(
            statement(LARGE_OBJECT, &["7", "9"], false),
            "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata \
             WHERE oid IN (7, 9)"
        );
    }
}
