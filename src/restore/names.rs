//! Names a restore needs in the target that an object it leaves alone
//! already holds.
//!
//! An index's name is a relation name of its schema: a plain index's, and
//! the one a primary key, unique or exclusion constraint creates under its
//! own name. So is a sequence's, an identity column's included, and a
//! statistics object's name is its schema's too. The usual case is the
//! damaged table renamed out of the way before one table is restored under
//! its old name: the renamed table keeps its indexes', sequences' and
//! statistics' names. Creating the restored table's would fail, after its
//! rows are loaded for the indexes, and `--clean` could drop them only by
//! changing that other table. So such names refuse the restore before any
//! change, with or without `--clean`. A name held by (a part of) a table
//! this restore drops with `--clean`, or refuses as a conflict without it,
//! goes with that table and is not listed.
//!
//! The same holds for a relation's own name held by an object of another
//! kind: an index or a composite type named like a table, or an enum whose
//! name the table's row type needs. `--clean` drops copies of what the
//! restore creates, not whatever has the name.

use std::collections::HashSet;

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::schema::catalog::PG_CLASS;
use crate::schema::{DbObject, ObjectKind};

use super::clean::Addr;
use super::plan::Plan;

/// One name the restore needs: where, and for what.
struct Need {
    schema: String,
    name: String,
    /// What needs it, as the message says it.
    what: String,
}

/// Per name, in order: the relation holding it, the table that relation
/// belongs to (an index's table, a sequence's owning table; else itself),
/// what it is, its name and, when it belongs to another, that table's.
const RELATIONS: &str = "SELECT c.oid, o.tab, \
        CASE c.relkind WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' \
          WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' \
          WHEN 'm' THEN 'materialized view' ELSE 'table' END, \
        c.oid::pg_catalog.regclass::text, \
        CASE WHEN o.tab <> c.oid THEN o.tab::pg_catalog.regclass::text END \
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY u(nsp, n, ord) \
    LEFT JOIN pg_catalog.pg_class c \
      ON c.oid = pg_catalog.to_regclass(pg_catalog.format('%I.%I', u.nsp, u.n)) \
    LEFT JOIN LATERAL (SELECT COALESCE( \
        (SELECT i.indrelid FROM pg_catalog.pg_index i WHERE i.indexrelid = c.oid), \
        (SELECT d.refobjid FROM pg_catalog.pg_depend d \
          WHERE c.relkind = 'S' AND d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
            AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
            AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i') LIMIT 1), \
        c.oid) AS tab) o ON c.oid IS NOT NULL \
    ORDER BY u.ord";

/// The same for statistics objects, whose table is the one they are on.
const STATISTICS: &str = "SELECT s.oid, s.stxrelid, 'statistics object', \
        pg_catalog.format('%I.%I', u.nsp, u.n), s.stxrelid::pg_catalog.regclass::text \
    FROM unnest($1::text[], $2::text[]) WITH ORDINALITY u(nsp, n, ord) \
    LEFT JOIN pg_catalog.pg_namespace ns ON ns.nspname = u.nsp \
    LEFT JOIN pg_catalog.pg_statistic_ext s ON s.stxnamespace = ns.oid AND s.stxname = u.n \
    ORDER BY u.ord";

/// The names of `objects` (the restore's, where it creates them) that the
/// target gives to an object of a table outside `conflicting`, each as
/// "what holds it (what needs it)".
pub async fn taken(
    client: &Client,
    plan: &Plan,
    objects: &[&DbObject],
    conflicting: &HashSet<Addr>,
) -> Result<Vec<String>> {
    let mut relations = Vec::new();
    let mut statistics = Vec::new();
    for o in objects {
        let Some(schema) = plan.target_schema(o) else {
            continue;
        };
        let need = |name: &str, what: String| Need {
            schema: schema.to_string(),
            name: name.to_string(),
            what,
        };
        match o.kind {
            ObjectKind::Index | ObjectKind::Constraint | ObjectKind::Sequence => {
                relations.push(need(&o.name, plan.target_identity(o)))
            }
            ObjectKind::StatisticsObject => statistics.push(need(&o.name, plan.target_identity(o))),
            ObjectKind::Table => {
                // Where the CREATE TABLE this restore runs puts it.
                for (schema, name) in identity_sequences(&plan.target_create(o)) {
                    relations.push(Need {
                        schema,
                        name,
                        what: format!("the identity sequence of {}", plan.target_identity(o)),
                    });
                }
            }
            _ => {}
        }
    }
    let mut taken = Vec::new();
    for (lookup, needs) in [(RELATIONS, relations), (STATISTICS, statistics)] {
        if needs.is_empty() {
            continue;
        }
        let schemas: Vec<&str> = needs.iter().map(|n| n.schema.as_str()).collect();
        let names: Vec<&str> = needs.iter().map(|n| n.name.as_str()).collect();
        let rows = client
            .query(lookup, &[&schemas, &names])
            .await
            .map_err(|e| Error::pg("checking the names the restore needs in the target", e))?;
        let mut seen = HashSet::new();
        for (need, row) in needs.into_iter().zip(rows) {
            let (Some(holder), Some(table)) =
                (row.get::<_, Option<u32>>(0), row.get::<_, Option<u32>>(1))
            else {
                continue;
            };
            if conflicting.contains(&(PG_CLASS, table)) || !seen.insert(holder) {
                continue;
            }
            let kind: &str = row.get(2);
            let name: &str = row.get(3);
            let of = row
                .get::<_, Option<&str>>(4)
                .map(|t| format!(" of table {t}"))
                .unwrap_or_default();
            taken.push(format!("{kind} {name}{of} (the name of {})", need.what));
        }
    }
    Ok(taken)
}

/// Per table, view or materialized view the restore creates, in order: an
/// object of its schema under its name that the restore would neither
/// recreate nor could drop as a conflict: a relation of another kind (an
/// index or composite type named like a table), or a type that is not a
/// relation's row type (an enum or domain named like a table, whose row
/// type needs the name).
/// Array types are left out: PostgreSQL renames an automatic one out of
/// the way.
const IN_THE_WAY: &str = "SELECT \
      (SELECT CASE c.relkind WHEN 'i' THEN 'index' WHEN 'I' THEN 'index' \
          WHEN 'S' THEN 'sequence' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' \
          WHEN 'c' THEN 'composite type' WHEN 'f' THEN 'foreign table' ELSE 'table' END \
          || ' ' || c.oid::pg_catalog.regclass::text \
        FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
        WHERE n.nspname = u.nsp AND c.relname = u.n \
          AND c.relkind::text <> ALL (pg_catalog.string_to_array(u.kinds, ','))), \
      (SELECT 'type ' || t.oid::pg_catalog.regtype::text \
        FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
        WHERE n.nspname = u.nsp AND t.typname = u.n AND t.typrelid = 0 \
          AND NOT EXISTS (SELECT FROM pg_catalog.pg_type e WHERE e.typarray = t.oid)) \
    FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY u(nsp, n, kinds, ord) \
    ORDER BY u.ord";

/// The relkinds the target's copy of a relation of `kind` may have (a
/// conflict, which `--clean` drops); each of these kinds has a row type.
/// Indexes are [`taken`]'s: its lookup finds a relation of any kind under
/// their names. A sequence is here: a table under its name was taken for
/// the sequence itself, a conflict `--clean` then failed to drop as one.
fn relkinds(kind: ObjectKind) -> Option<&'static str> {
    Some(match kind {
        ObjectKind::Table => "r,p",
        ObjectKind::ForeignTable => "f",
        ObjectKind::View => "v",
        ObjectKind::MaterializedView => "m",
        ObjectKind::Sequence => "S",
        _ => return None,
    })
}

/// The objects of the target that hold the name of a relation of
/// `objects` without being a copy of it (see [`IN_THE_WAY`]), each as
/// "what holds it (what needs it)".
pub async fn in_the_way(
    client: &Client,
    plan: &Plan,
    objects: &[&DbObject],
) -> Result<Vec<String>> {
    let mut needs = Vec::new();
    for o in objects {
        if let (Some(schema), Some(kinds)) = (plan.target_schema(o), relkinds(o.kind)) {
            needs.push((schema, o.name.as_str(), kinds, plan.target_identity(o)));
        }
    }
    if needs.is_empty() {
        return Ok(vec![]);
    }
    let schemas: Vec<&str> = needs.iter().map(|n| n.0).collect();
    let names: Vec<&str> = needs.iter().map(|n| n.1).collect();
    let kinds: Vec<&str> = needs.iter().map(|n| n.2).collect();
    let rows = client
        .query(IN_THE_WAY, &[&schemas, &names, &kinds])
        .await
        .map_err(|e| Error::pg("checking the names the restore needs in the target", e))?;
    let mut found = Vec::new();
    for (need, row) in needs.iter().zip(rows) {
        for holder in [row.get::<_, Option<String>>(0), row.get(1)]
            .into_iter()
            .flatten()
        {
            found.push(format!("{holder} (the name of {})", need.3));
        }
    }
    Ok(found)
}

/// The identity sequences a `CREATE TABLE` names, as (schema, name):
/// `schema::catalog` writes each as `AS IDENTITY (SEQUENCE NAME "s"."n" ...)`.
pub(super) fn identity_sequences(create: &str) -> Vec<(String, String)> {
    const MARK: &str = " AS IDENTITY (SEQUENCE NAME ";
    let mut found = Vec::new();
    let mut rest = create;
    while let Some(at) = rest.find(MARK) {
        rest = &rest[at + MARK.len()..];
        let Some((schema, after)) = quoted(rest) else {
            continue;
        };
        let Some((name, after)) = after.strip_prefix('.').and_then(quoted) else {
            continue;
        };
        found.push((schema, name));
        rest = after;
    }
    found
}

/// A double-quoted identifier at the start of `s`, unescaped, and what
/// follows it.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut s = s.strip_prefix('"')?;
    let mut ident = String::new();
    loop {
        let end = s.find('"')?;
        ident.push_str(&s[..end]);
        s = &s[end + 1..];
        match s.strip_prefix('"') {
            Some(more) => {
                ident.push('"');
                s = more;
            }
            None => return Some((ident, s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_sequences_are_read_from_the_create_table() {
        let create = "CREATE TABLE \"app\".\"t\" (\n    \"id\" bigint GENERATED BY DEFAULT AS \
                      IDENTITY (SEQUENCE NAME \"app\".\"t_id_seq\" START WITH 1),\n    \"n\" \
                      int GENERATED ALWAYS AS IDENTITY (SEQUENCE NAME \"Odd \"\"S\"\"\".\"a.b\" \
                      CACHE 1),\n    \"x\" int GENERATED ALWAYS AS IDENTITY\n);";
        assert_eq!(
            identity_sequences(create),
            vec![
                ("app".to_string(), "t_id_seq".to_string()),
                ("Odd \"S\"".to_string(), "a.b".to_string())
            ]
        );
        assert!(identity_sequences("CREATE TABLE \"t\" (\"id\" int);").is_empty());
        // Cut short: nothing, and no panic.
        assert!(identity_sequences("x AS IDENTITY (SEQUENCE NAME \"a").is_empty());
        assert!(identity_sequences("x AS IDENTITY (SEQUENCE NAME \"a\"").is_empty());
    }
}
