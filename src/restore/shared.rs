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
//! tables already hold. It is compared like the rest: another increment,
//! range or type would hand the restored table numbers of another shape.

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
pub(super) fn compared(kind: ObjectKind) -> bool {
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

/// Compares `objects` of the compared kinds, and the `relations` the
/// target was found to have (relations taken for their definitions, shared
/// sequences), with the target's. Reads the target's catalog
/// only when there are some.
pub async fn existing(
    client: &Client,
    objects: &[&DbObject],
    relations: &HashSet<u32>,
) -> Result<Existing> {
    let ours: Vec<&DbObject> = objects
        .iter()
        .copied()
        .filter(|o| {
            relations.contains(&o.id)
                || (compared(o.kind) && o.provider.is_none() && !o.create.trim().is_empty())
        })
        .collect();
    let mut found = Existing::default();
    if ours.is_empty() {
        return Ok(found);
    }
    // No locks: this only reads definitions, and must not wait behind (or
    // hold up) the target's own work on its tables.
    let target = read_schema_with(client, &ReadOptions { lock_tables: false })
        .await
        .map_err(|e| match e {
            // A catalog lock waited for past --lock-timeout: said as such.
            crate::schema::SchemaError::Catalog { what, source }
                if source.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) =>
            {
                Error::pg(format!("reading the target's definitions ({what})"), source)
            }
            e => Error::Schema(format!("reading the target's definitions: {e}")),
        })?;
    let theirs: HashMap<String, &str> = target
        .objects
        .iter()
        .filter(|o| {
            compared(o.kind)
                || (!relations.is_empty()
                    && (o.kind.is_relation() || o.kind == ObjectKind::Sequence))
        })
        .map(|o| (name_key(&o.identity), o.create.as_str()))
        .collect();
    for o in ours {
        match theirs.get(&name_key(&o.identity)) {
            Some(create) if *create == o.create => found.same.push(o.id),
            Some(_) => found.differing.push(o.id),
            // Found by name as a relation of another kind.
            None if relations.contains(&o.id) => found.differing.push(o.id),
            None => {}
        }
    }
    Ok(found)
}

/// What an object's name is unique among in the target: functions,
/// procedures and aggregates share one namespace (a procedure holds the
/// signature of a backup's function just as well), and so do domains and
/// the other types. The identity's kind word is made one for each, so that
/// an object of the other kind under the name is found, and refused as
/// defined otherwise, rather than passing the check and failing the
/// pre-data.
fn name_key(identity: &str) -> String {
    let sig = signature(identity);
    for (kind, as_kind) in [
        ("procedure ", "function "),
        ("aggregate ", "function "),
        ("domain ", "type "),
    ] {
        if let Some(rest) = sig.strip_prefix(kind) {
            return format!("{as_kind}{rest}");
        }
    }
    sig
}

/// What names an object in the target: its identity, but for a function,
/// procedure or aggregate without its arguments' names, which the
/// signature does not include (`f(x int)` and `f(y int)` are one function
/// to the server), nor the default mode `IN`. The catalog reader writes arguments as
/// `[MODE ]["name" ]type` with every identifier quoted, and a type's first
/// quoted part is followed by a dot or ends it, never by a space.
fn signature(identity: &str) -> String {
    let Some(open) = outside_quotes(identity, |c| c == '(').first().copied() else {
        return identity.to_string();
    };
    if !identity.ends_with(')') || !identity[..open].contains(' ') {
        return identity.to_string();
    }
    let args = &identity[open + 1..identity.len() - 1];
    let mut out = identity[..=open].to_string();
    let mut start = 0;
    let mut cuts = outside_quotes(args, |c| c == ',');
    cuts.push(args.len());
    for (i, end) in cuts.into_iter().enumerate() {
        let arg = args[start..end].trim();
        start = end + 1;
        if i > 0 {
            out.push_str(", ");
        }
        let (mode, rest) = match arg.split_once(' ') {
            Some((m, rest)) if matches!(m, "IN" | "OUT" | "INOUT" | "VARIADIC") => (Some(m), rest),
            _ => (None, arg),
        };
        // IN is the default mode, which a procedure's identity spells out
        // and a function's leaves out.
        if let Some(m) = mode.filter(|&m| m != "IN") {
            out.push_str(m);
            out.push(' ');
        }
        out.push_str(without_name(rest));
    }
    out.push(')');
    out
}

/// `"name" type` -> `type`; a type alone stays.
fn without_name(arg: &str) -> &str {
    if !arg.starts_with('"') {
        return arg;
    }
    // The closing quote of the leading identifier (a doubled quote is part
    // of it).
    let b = arg.as_bytes();
    let mut i = 1;
    while i < b.len() {
        if b[i] == b'"' {
            if b.get(i + 1) == Some(&b'"') {
                i += 2;
                continue;
            }
            break;
        }
        i += 1;
    }
    match b.get(i + 1) {
        Some(b' ') => arg[i + 2..].trim_start(),
        _ => arg,
    }
}

/// Byte offsets of the characters `hit` picks that are outside double
/// quotes.
fn outside_quotes(s: &str, hit: impl Fn(char) -> bool) -> Vec<usize> {
    let mut quoted = false;
    s.char_indices()
        .filter(|&(_, c)| {
            if c == '"' {
                quoted = !quoted;
            }
            !quoted && hit(c)
        })
        .map(|(i, _)| i)
        .collect()
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
        .filter(|o| !plan.chosen_sequences.contains(&o.id))
        .map(|o| o.id)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{name_key, signature};

    #[test]
    fn routines_and_types_share_their_namespaces() {
        assert_eq!(
            name_key(r#"procedure "s"."f"(IN "x" integer)"#),
            name_key(r#"function "s"."f"(integer)"#)
        );
        assert_eq!(
            name_key(r#"aggregate "s"."f"(integer)"#),
            name_key(r#"function "s"."f"(integer)"#)
        );
        assert_eq!(name_key(r#"domain "s"."t""#), name_key(r#"type "s"."t""#));
        assert_ne!(
            name_key(r#"operator "s"."+"(integer, integer)"#),
            name_key(r#"function "s"."+"(integer, integer)"#)
        );
    }

    #[test]
    fn signatures_leave_out_argument_names() {
        for (identity, sig) in [
            (
                r#"function "public"."f2"("x" integer)"#,
                r#"function "public"."f2"(integer)"#,
            ),
            (
                r#"function "public"."f2"(integer)"#,
                r#"function "public"."f2"(integer)"#,
            ),
            (
                r#"function "a"."f(x)"("y z" "app"."mood", VARIADIC "n" integer[], "public"."t")"#,
                r#"function "a"."f(x)"("app"."mood", VARIADIC integer[], "public"."t")"#,
            ),
            (
                r#"procedure "p"."q"(INOUT "a""b" text, character varying)"#,
                r#"procedure "p"."q"(INOUT text, character varying)"#,
            ),
            (
                r#"procedure "p"."q"(IN "a" text, IN integer)"#,
                r#"procedure "p"."q"(text, integer)"#,
            ),
            (r#"aggregate "s"."agg"(*)"#, r#"aggregate "s"."agg"(*)"#),
            (r#"type "s"."t""#, r#"type "s"."t""#),
            (
                r#"cast (integer AS "s"."t")"#,
                r#"cast (integer AS "s"."t")"#,
            ),
        ] {
            assert_eq!(signature(identity), sig, "{identity}");
        }
    }
}
