//! The closure of a set of tables: every object needed to recreate them.
//!
//! Starting from the requested relations, the closure takes every object
//! that belongs to one of them (indexes, constraints, triggers, rules,
//! policies, OWNED BY links, attachments, refreshes), then every dependency
//! of everything taken, transitively: schemas, types, domains, collations,
//! functions, sequences, extensions, ... Three kinds of objects are left out
//! and reported:
//! - foreign keys between a requested table and a table outside the set
//!   (`skipped_fks`): creating them would need the other table's rows;
//! - attachments to a parent outside the set (`ALTER TABLE ... ATTACH
//!   PARTITION`, `ALTER INDEX ... ATTACH PARTITION`): the child is restored
//!   as a standalone table (`skipped`), and its indexes and key constraints
//!   do not bring the parent's (on which they depend) along;
//! - nothing else: a relation outside the set that a taken object cannot be
//!   created without (an inheritance parent named in `INHERITS`, a table a
//!   view reads) is included for its definition only (no data, no indexes)
//!   and listed in `extra_relations`.

use std::collections::BTreeSet;

use super::model::{Closure, ObjectKind, SchemaModel, Skipped, TableRef};

impl SchemaModel {
    /// The set of object ids needed to recreate `tables` (see the module
    /// documentation for what is left out).
    pub fn closure(&self, tables: &[TableRef]) -> Closure {
        self.closure_from(tables, &[])
    }

    /// [`Self::closure`] of `tables` and of the objects `roots` (views, or
    /// the functions and types of a schema chosen whole): a root relation
    /// brings what belongs to it as a table does, any root its
    /// dependencies.
    pub fn closure_from(&self, tables: &[TableRef], roots: &[u32]) -> Closure {
        let mut out = Closure::default();
        let mut wanted: BTreeSet<u32> = BTreeSet::new();
        for t in tables {
            match self.find_relation(&t.schema, &t.name) {
                Some(o) => {
                    wanted.insert(o.id);
                }
                None => out.unknown_tables.push(t.clone()),
            }
        }
        let roots: Vec<u32> = roots
            .iter()
            .copied()
            .filter(|&r| (r as usize) < self.objects.len())
            .collect();
        wanted.extend(
            roots
                .iter()
                .copied()
                .filter(|&r| self.object(r).kind.is_relation()),
        );
        let owning_relation = |id: u32| self.owning_relation(id);
        let mut taken: BTreeSet<u32> = wanted.clone();
        taken.extend(roots.iter().copied());
        let mut stack: Vec<u32> = taken.iter().copied().collect();
        for o in &self.objects {
            let Some(rel) = o.belongs_to.and_then(owning_relation) else {
                continue;
            };
            if !wanted.contains(&rel) || o.kind.is_relation() {
                continue;
            }
            // The other side of a link: the referenced table of a foreign
            // key, the parent of an attachment.
            let other = o.references.and_then(owning_relation);
            match (o.kind, other) {
                (ObjectKind::ForeignKey, Some(r)) if !wanted.contains(&r) => {
                    out.skipped_fks.push(Skipped {
                        object_id: o.id,
                        identity: o.identity.clone(),
                        reason: format!(
                            "references {}, which is not being restored",
                            self.object(r).identity
                        ),
                    });
                    continue;
                }
                (ObjectKind::TableAttach | ObjectKind::IndexAttach, Some(r))
                    if !wanted.contains(&r) =>
                {
                    out.skipped.push(Skipped {
                        object_id: o.id,
                        identity: o.identity.clone(),
                        reason: format!(
                            "its parent {} is not being restored",
                            self.object(r).identity
                        ),
                    });
                    continue;
                }
                _ => {}
            }
            if taken.insert(o.id) {
                stack.push(o.id);
            }
        }
        // Foreign keys of tables outside the set that point into it.
        for o in &self.objects {
            if o.kind != ObjectKind::ForeignKey {
                continue;
            }
            let from = o.belongs_to.and_then(owning_relation);
            let to = o.references.and_then(owning_relation);
            if let (Some(f), Some(t)) = (from, to) {
                if !wanted.contains(&f) && wanted.contains(&t) {
                    out.skipped_fks.push(Skipped {
                        object_id: o.id,
                        identity: o.identity.clone(),
                        reason: format!(
                            "belongs to {}, which is not being restored",
                            self.object(f).identity
                        ),
                    });
                }
            }
        }
        // A partition's index or key constraint depends on its parent's,
        // but is created on its own; only the attachment needs the parent's,
        // and that was left out above with its parent.
        let part = |k: ObjectKind| matches!(k, ObjectKind::Index | ObjectKind::Constraint);
        let parents_part = |of: &super::model::DbObject, dep: &super::model::DbObject| {
            part(of.kind)
                && part(dep.kind)
                && dep
                    .belongs_to
                    .and_then(owning_relation)
                    .is_some_and(|r| !wanted.contains(&r))
        };
        // A domain's checks made after the data (NOT VALID) are objects
        // of their own, which belong to it: taken with it.
        let mut checks_of: std::collections::HashMap<u32, Vec<u32>> = Default::default();
        for o in &self.objects {
            if let (ObjectKind::CheckConstraint, Some(d)) = (o.kind, o.belongs_to) {
                if self.objects.get(d as usize).map(|d| d.kind) == Some(ObjectKind::Domain) {
                    checks_of.entry(d).or_default().push(o.id);
                }
            }
        }
        let mut extra = BTreeSet::new();
        while let Some(id) = stack.pop() {
            for &c in checks_of.get(&id).into_iter().flatten() {
                if taken.insert(c) {
                    stack.push(c);
                }
            }
            for &d in &self.object(id).deps {
                if (d as usize) >= self.objects.len() || taken.contains(&d) {
                    continue;
                }
                let dep = self.object(d);
                if parents_part(self.object(id), dep) {
                    continue;
                }
                if dep.kind.is_relation() && !wanted.contains(&d) {
                    extra.insert(d);
                }
                taken.insert(d);
                stack.push(d);
            }
        }
        out.objects = taken.into_iter().collect();
        out.extra_relations = extra.into_iter().collect();
        out.skipped_fks.sort_by_key(|s| s.object_id);
        out.skipped_fks.dedup_by_key(|s| s.object_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::model::{DbObject, Section, FORMAT_VERSION};
    use crate::schema::order::tests::{model, obj};

    fn owned(mut o: DbObject, by: u32, references: Option<u32>) -> DbObject {
        o.belongs_to = Some(by);
        o.references = references;
        o
    }

    /// schema s; type mood; function f; sequence q; tables a (uses mood,
    /// default nextval(q) and f), b, parted p with partition p1;
    /// fk a->b, fk b->a, index on a, trigger on a using f, policy on b,
    /// view v over a.
    fn sample() -> SchemaModel {
        use ObjectKind::*;
        model(vec![
            obj(0, Schema, "s", &[]),
            obj(1, EnumType, "mood", &[0]),
            obj(2, Function, "f", &[0]),
            obj(3, Sequence, "q", &[0]),
            obj(4, Table, "a", &[0, 1, 2, 3]),
            obj(5, Table, "b", &[0]),
            owned(obj(6, ForeignKey, "a_b_fk", &[4, 5]), 4, Some(5)),
            owned(obj(7, ForeignKey, "b_a_fk", &[5, 4]), 5, Some(4)),
            owned(obj(8, Index, "a_idx", &[4]), 4, None),
            owned(obj(9, Trigger, "a_trg", &[4, 2]), 4, None),
            owned(obj(10, Policy, "b_pol", &[5]), 5, None),
            obj(11, View, "v", &[0, 4]),
            owned(obj(12, SequenceOwnedBy, "q", &[3, 4]), 4, None),
            obj(13, Table, "p", &[0]),
            obj(14, Table, "p1", &[0]),
            owned(obj(15, TableAttach, "p1", &[13, 14]), 14, Some(13)),
            obj(16, Schema, "unused", &[]),
        ])
    }

    #[test]
    fn table_closure_takes_dependencies_and_own_objects() {
        let m = sample();
        let c = m.closure(&[TableRef::new("s", "a")]);
        assert_eq!(c.objects, vec![0, 1, 2, 3, 4, 8, 9, 12]);
        let fks: Vec<u32> = c.skipped_fks.iter().map(|s| s.object_id).collect();
        assert_eq!(fks, vec![6, 7]);
        assert!(c.skipped.is_empty());
        assert!(c.extra_relations.is_empty());
        assert!(c.unknown_tables.is_empty());
    }

    #[test]
    fn foreign_keys_inside_the_set_are_kept() {
        let m = sample();
        let c = m.closure(&[TableRef::new("s", "a"), TableRef::new("s", "b")]);
        assert_eq!(c.objects, vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]);
        assert!(c.skipped_fks.is_empty());
    }

    #[test]
    fn partition_without_parent_is_standalone() {
        let m = sample();
        let c = m.closure(&[TableRef::new("s", "p1")]);
        assert_eq!(c.objects, vec![0, 14]);
        assert_eq!(c.skipped.len(), 1);
        assert_eq!(c.skipped[0].object_id, 15);
        let c = m.closure(&[TableRef::new("s", "p1"), TableRef::new("s", "p")]);
        assert_eq!(c.objects, vec![0, 13, 14, 15]);
    }

    #[test]
    fn roots_bring_their_dependencies_and_a_view_its_tables_as_definitions() {
        let m = sample();
        // The view v reads a: a comes for its definition only.
        let c = m.closure_from(&[], &[11, 2]);
        assert_eq!(c.objects, vec![0, 1, 2, 3, 4, 11]);
        assert_eq!(c.extra_relations, vec![4]);
        assert!(c.skipped_fks.is_empty());
    }

    #[test]
    fn a_domain_brings_its_checks_made_after_the_data() {
        use ObjectKind::*;
        let m = model(vec![
            obj(0, Schema, "s", &[]),
            obj(1, Domain, "d", &[0]),
            owned(obj(2, CheckConstraint, "d_chk", &[1]), 1, None),
            obj(3, Table, "t", &[0, 1]),
        ]);
        let c = m.closure(&[TableRef::new("s", "t")]);
        assert_eq!(c.objects, vec![0, 1, 2, 3]);
    }

    #[test]
    fn subset_renumbers_consistently() {
        let m = sample();
        let c = m.closure(&[TableRef::new("s", "a")]);
        let keep: BTreeSet<u32> = c.objects.iter().copied().collect();
        let sub = m.subset(&keep);
        sub.validate().unwrap();
        assert_eq!(sub.objects.len(), keep.len());
        let names: Vec<&str> = sub.objects.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["s", "mood", "f", "q", "a", "a_idx", "a_trg", "q"]);
        // a's dependencies point at the renumbered schema, type, function
        // and sequence.
        let a = sub.find_relation("s", "a").unwrap();
        assert_eq!(a.deps, vec![0, 1, 2, 3]);
        assert_eq!(sub.objects[5].belongs_to, Some(a.id));
        let json = sub.to_json().unwrap();
        assert_eq!(SchemaModel::from_json(&json).unwrap(), sub);
    }

    #[test]
    fn damaged_models_are_refused() {
        let m = sample();
        let json = m.to_json().unwrap();
        assert_eq!(SchemaModel::from_json(&json).unwrap(), m);
        let mut bad = m.clone();
        bad.objects[3].deps.push(99);
        assert!(SchemaModel::from_json(&bad.to_json().unwrap()).is_err());
        let mut bad = m.clone();
        bad.objects[2].id = 7;
        assert!(SchemaModel::from_json(&bad.to_json().unwrap()).is_err());
        let mut bad = m;
        bad.format = FORMAT_VERSION + 1;
        let err = SchemaModel::from_json(&bad.to_json().unwrap()).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn view_pulls_in_definition_of_its_tables() {
        let m = sample();
        let c = m.closure(&[TableRef::new("s", "v"), TableRef::new("s", "nope")]);
        assert_eq!(c.objects, vec![0, 1, 2, 3, 4, 11]);
        assert_eq!(c.extra_relations, vec![4]);
        assert_eq!(c.unknown_tables, vec![TableRef::new("s", "nope")]);
        // Only the definition: not a's index, trigger or OWNED BY.
        assert!(!c.objects.contains(&8));
        let _ = Section::PreData;
    }
}
