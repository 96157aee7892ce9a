//! Shared objects the target already has (types, functions, operators,
//! collations, ...): whether their definitions there are the backup's.
//!
//! A restore reuses such an object rather than refusing it, so that one
//! table can come back into a live database whose types and functions it
//! uses. But a type of the same name with other enum labels, attributes or
//! a domain's other check would take the restored rows in a different
//! shape (or fail them half-way through the load), and a function of the
//! same signature with another body would run in place of the backup's in
//! defaults, triggers and indexes. So a shared object whose definition in
//! the target differs from the backup's refuses the restore before any
//! change, with or without `--clean`: dropping it would reach objects of
//! the target the restore does not recreate.
//!
//! The target's definitions are read with the same catalog reader as a
//! backup's, so the two `CREATE` texts compare as they are.
//!
//! In a selective restore, a sequence that no restored table owns (one a
//! column default of several tables draws from) is shared the same way:
//! when the target has it, it is reused and keeps its state, since setting
//! it back to the backup's would hand out numbers the target's other
//! tables already hold.

use std::collections::{HashMap, HashSet};

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::schema::catalog::{read_schema_with, ReadOptions};
use crate::schema::{DbObject, ObjectKind};

use super::plan::Plan;
use super::target::shareable;

/// Kinds compared by definition: the shareable ones but schemas and
/// extensions, reused by name (an extension's members come with it), the
/// server's languages and access methods, shell types (placeholders), the
/// database itself, default privileges, and user mappings, whose options
/// may hold a password that has no business in a comparison.
fn compared(kind: ObjectKind) -> bool {
    use ObjectKind::*;
    shareable(kind)
        && !matches!(
            kind,
            Schema
                | Extension
                | Language
                | AccessMethod
                | ShellType
                | UserMapping
                | DefaultPrivileges
                | Database
        )
}

/// What the target already has of the restore's shared objects.
#[derive(Default)]
pub struct Existing {
    /// Ids of objects the target defines as the backup does: reused, and
    /// left as they are (a function's `CREATE OR REPLACE`, owner, grants
    /// and comment would otherwise run over the target's own).
    pub same: Vec<u32>,
    /// Ids of objects the target defines otherwise.
    pub differing: Vec<u32>,
}

/// Compares `objects` of the compared kinds with the target's. Reads the
/// target's catalog only when there are some.
pub async fn existing(client: &Client, objects: &[&DbObject]) -> Result<Existing> {
    let ours: Vec<&DbObject> = objects
        .iter()
        .copied()
        .filter(|o| compared(o.kind) && o.provider.is_none() && !o.create.trim().is_empty())
        .collect();
    let mut found = Existing::default();
    if ours.is_empty() {
        return Ok(found);
    }
    // No locks: this only reads definitions, and must not wait behind (or
    // hold up) the target's own work on its tables.
    let target = read_schema_with(client, &ReadOptions { lock_tables: false })
        .await
        .map_err(|e| Error::Schema(format!("reading the target's definitions: {e}")))?;
    let theirs: HashMap<&str, &str> = target
        .objects
        .iter()
        .filter(|o| compared(o.kind))
        .map(|o| (o.identity.as_str(), o.create.as_str()))
        .collect();
    for o in ours {
        match theirs.get(o.identity.as_str()) {
            Some(create) if *create == o.create => found.same.push(o.id),
            Some(_) => found.differing.push(o.id),
            None => {}
        }
    }
    Ok(found)
}

/// The sequences of a selective restore that no table it restores owns.
pub fn sequences(plan: &Plan) -> HashSet<u32> {
    if plan.full {
        return HashSet::new();
    }
    let objects = || plan.pre_data.iter().map(|p| plan.object(p.id));
    let owned: HashSet<u32> = objects()
        .filter(|o| o.kind == ObjectKind::SequenceOwnedBy)
        .flat_map(|o| o.deps.iter().copied())
        .collect();
    objects()
        .filter(|o| o.kind == ObjectKind::Sequence && !owned.contains(&o.id))
        .map(|o| o.id)
        .collect()
}
