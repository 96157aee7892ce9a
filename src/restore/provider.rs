//! Provider-managed names (roles, extensions, schemas a managed-database
//! platform made, recorded by the backup: [`crate::schema::provider`]) that
//! the target lacks. A restore onto a plain server leaves them out and says
//! so, instead of failing on them; where the target has them (back onto the
//! same platform) nothing changes. Runs after the chunks authenticated and
//! before the target checks, and changes nothing on the target.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::schema::provider::{setting_role, ManagedKind, ManagedName};
use crate::schema::{ddl::roles_named, DbObject, ObjectKind};

use super::plan::Plan;
use super::RestoreOptions;

/// The names of `names` that `sql` (`SELECT x FROM unnest($1::text[]) x
/// WHERE NOT EXISTS ...`) reports as absent from the target.
async fn absent(client: &Client, sql: &str, names: Vec<String>) -> Result<BTreeSet<String>> {
    if names.is_empty() {
        return Ok(BTreeSet::new());
    }
    let rows = client
        .query(sql, &[&names])
        .await
        .map_err(|e| Error::pg("checking provider-managed names in the target", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn describe(m: &ManagedName) -> String {
    format!("{}: {}", m.provider, m.reason)
}

/// Leaves out of `plan` what the target lacks and returns the report lines.
pub async fn adapt(client: &Client, plan: &mut Plan, opts: &RestoreOptions) -> Result<Vec<String>> {
    if plan.model.managed.is_empty() {
        return Ok(Vec::new());
    }
    let names_of = |kind: ManagedKind| -> Vec<String> {
        plan.model
            .managed
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.name.clone())
            .collect()
    };
    let missing_roles = absent(
        client,
        "SELECT r FROM unnest($1::text[]) r \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r)",
        names_of(ManagedKind::Role),
    )
    .await?;
    let missing_exts = absent(
        client,
        "SELECT e FROM unnest($1::text[]) e \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = e)",
        names_of(ManagedKind::Extension),
    )
    .await?;
    let missing_schemas = absent(
        client,
        "SELECT s FROM unnest($1::text[]) s \
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = s)",
        names_of(ManagedKind::Schema),
    )
    .await?;

    let missing = Missing {
        roles: missing_roles,
        exts: missing_exts,
        schemas: missing_schemas,
    };
    Ok(leave_out(plan, missing, opts))
}

/// Provider-managed names the target lacks.
struct Missing {
    roles: BTreeSet<String>,
    exts: BTreeSet<String>,
    schemas: BTreeSet<String>,
}

/// The plan without what needs `missing`, and the report lines.
fn leave_out(plan: &mut Plan, missing: Missing, opts: &RestoreOptions) -> Vec<String> {
    let managed: HashMap<(ManagedKind, &str), &ManagedName> = plan
        .model
        .managed
        .iter()
        .map(|m| ((m.kind, m.name.as_str()), m))
        .collect();
    let planned: BTreeSet<u32> = plan
        .pre_data
        .iter()
        .chain(plan.post_data.iter())
        .map(|p| p.id)
        .collect();
    let mut report = Vec::new();
    let mut skipped: BTreeMap<u32, String> = BTreeMap::new();
    for &id in &planned {
        let o = plan.object(id);
        if o.kind == ObjectKind::Extension && o.provider.is_some() && missing.exts.contains(&o.name)
        {
            let why = managed
                .get(&(ManagedKind::Extension, o.name.as_str()))
                .map(|m| describe(m))
                .unwrap_or_default();
            report.push(format!(
                "{}: not restored: a provider-only extension ({why}) the target does not offer",
                o.identity
            ));
            skipped.insert(id, o.identity.clone());
        }
    }
    skip_dependents(plan, &planned, &mut skipped, &mut report);

    // A platform's schema is made again only where something restored
    // lives in it or the platform is there (some role of it exists).
    let present: BTreeSet<&str> = plan
        .model
        .managed
        .iter()
        .filter(|m| m.kind == ManagedKind::Role && !missing.roles.contains(&m.name))
        .map(|m| m.provider.as_str())
        .collect();
    let lived_in: BTreeSet<&str> = planned
        .iter()
        .filter(|id| !skipped.contains_key(id))
        .filter_map(|&id| plan.object(id).schema.as_deref())
        .collect();
    let mut empty_schemas = Vec::new();
    for &id in &planned {
        let o = plan.object(id);
        let Some(provider) = o.provider.as_deref() else {
            continue;
        };
        if o.kind == ObjectKind::Schema
            && missing.schemas.contains(&o.name)
            && !present.contains(provider)
            && !lived_in.contains(o.name.as_str())
        {
            report.push(format!(
                "{}: not restored: made by {provider} for its own extensions, and nothing \
                 restored lives in it",
                o.identity
            ));
            empty_schemas.push((id, o.identity.clone()));
        }
    }
    skipped.extend(empty_schemas);
    skip_dependents(plan, &planned, &mut skipped, &mut report);

    for id in planned.iter().filter(|id| !skipped.contains_key(id)) {
        report.extend(role_lines(plan.object(*id), &missing.roles, &managed, opts));
    }
    drop_from_plan(plan, &skipped);
    plan.skip_roles = missing.roles;
    report
}

/// Objects that need a skipped one (over `deps` and `belongs_to`, to any
/// depth) cannot be created either: they are left out and named.
fn skip_dependents(
    plan: &Plan,
    planned: &BTreeSet<u32>,
    skipped: &mut BTreeMap<u32, String>,
    report: &mut Vec<String>,
) {
    loop {
        let newly: Vec<(u32, String)> = planned
            .iter()
            .filter(|id| !skipped.contains_key(id))
            .filter_map(|&id| {
                let o = plan.object(id);
                o.deps
                    .iter()
                    .chain(o.belongs_to.iter())
                    .find_map(|d| skipped.get(d))
                    .map(|root| (id, root.clone()))
            })
            .collect();
        if newly.is_empty() {
            return;
        }
        for (id, root) in newly {
            report.push(format!(
                "{}: not restored: needs {root}, which was left out",
                plan.object(id).identity
            ));
            skipped.insert(id, root);
        }
    }
}

/// Report lines for an object's ownership, privileges and settings naming
/// provider roles the target lacks (the statements are left out by
/// [`crate::schema::ApplyOptions::skip_roles`]).
fn role_lines(
    o: &DbObject,
    missing: &BTreeSet<String>,
    managed: &HashMap<(ManagedKind, &str), &ManagedName>,
    opts: &RestoreOptions,
) -> Vec<String> {
    let lacking = |roles: Vec<String>| -> Vec<String> {
        let set: BTreeSet<String> = roles.into_iter().filter(|r| missing.contains(r)).collect();
        set.into_iter()
            .map(|r| match managed.get(&(ManagedKind::Role, r.as_str())) {
                Some(m) => format!("{r} ({})", describe(m)),
                None => r,
            })
            .collect()
    };
    let mut out = Vec::new();
    if !opts.no_owner {
        let owners = lacking(o.owner_sql.iter().flat_map(|s| roles_named(s)).collect());
        if !owners.is_empty() {
            out.push(format!(
                "{}: owner {} is a provider-managed role the target does not have; owned by \
                 the restoring role instead",
                o.identity,
                owners.join(", ")
            ));
        }
    }
    if !opts.no_acl {
        let grants = lacking(o.acl_sql.iter().flat_map(|s| roles_named(s)).collect());
        if !grants.is_empty() {
            out.push(format!(
                "{}: privileges granted to or by {} not restored: provider-managed role(s) the \
                 target does not have",
                o.identity,
                grants.join(", ")
            ));
        }
    }
    if o.kind == ObjectKind::Database {
        let settings = lacking(o.create.lines().filter_map(setting_role).collect());
        if !settings.is_empty() {
            out.push(format!(
                "{}: settings of {} in this database not restored: provider-managed role(s) \
                 the target does not have",
                o.identity,
                settings.join(", ")
            ));
        }
    }
    out
}

/// Removes skipped objects, and the tables and sequences they are, from
/// every phase of the plan.
fn drop_from_plan(plan: &mut Plan, skipped: &BTreeMap<u32, String>) {
    if skipped.is_empty() {
        return;
    }
    plan.pre_data.retain(|p| !skipped.contains_key(&p.id));
    plan.post_data.retain(|p| !skipped.contains_key(&p.id));
    plan.tables.retain(|t| !skipped.contains_key(&t.object_id));
    let gone: BTreeSet<(String, String)> = plan
        .model
        .sequences
        .iter()
        .filter(|s| skipped.contains_key(&s.object_id))
        .map(|s| (s.schema.clone(), s.name.clone()))
        .collect();
    plan.sequences
        .retain(|s| !gone.contains(&(s.schema.clone(), s.name.clone())));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::plan::{PlannedObject, PlannedTable};
    use crate::schema::order::tests::{model, obj};
    use crate::schema::Section;

    fn managed(kind: ManagedKind, name: &str) -> ManagedName {
        ManagedName {
            kind,
            name: name.into(),
            provider: "Amazon RDS / Aurora".into(),
            reason: "test".into(),
        }
    }

    /// schema aws_s3 <- extension aws_s3 <- function <- view, and a table
    /// that needs none of it.
    fn plan() -> Plan {
        let mut objects = vec![
            obj(0, ObjectKind::Schema, "aws_s3", &[]),
            obj(1, ObjectKind::Extension, "aws_s3", &[0]),
            obj(2, ObjectKind::Function, "import", &[1]),
            obj(3, ObjectKind::View, "imports", &[2]),
            obj(4, ObjectKind::Table, "orders", &[]),
            obj(5, ObjectKind::Index, "orders_note", &[4]),
        ];
        objects[0].schema = None;
        objects[0].provider = Some("Amazon RDS / Aurora".into());
        objects[1].schema = Some("aws_s3".into());
        objects[1].provider = Some("Amazon RDS / Aurora".into());
        let mut model = model(objects);
        model.managed = vec![
            managed(ManagedKind::Extension, "aws_s3"),
            managed(ManagedKind::Schema, "aws_s3"),
        ];
        let planned = |section: Section| {
            model
                .objects
                .iter()
                .filter(|o| o.section == section)
                .map(|o| PlannedObject {
                    id: o.id,
                    kind: o.kind,
                    identity: o.identity.clone(),
                })
                .collect()
        };
        let table = |id: u32, name: &str| PlannedTable {
            schema: "s".into(),
            name: name.into(),
            rows: 1,
            raw_bytes: 1,
            stored_bytes: 1,
            chunks: 1,
            load_data: true,
            columns: vec![],
            chunk_refs: vec![],
            entry: None,
            object_id: id,
            created_here: true,
            unpad: vec![],
            transcode: vec![],
            copy_format: Default::default(),
            load_after: vec![],
            one_stream: false,
            force_rls: false,
        };
        Plan {
            target_default_tablespace: None,
            pre_data: planned(Section::PreData),
            post_data: planned(Section::PostData),
            tables: vec![table(3, "imports"), table(4, "orders")],
            sequences: vec![],
            skipped_fks: vec![],
            fk_candidates: vec![],
            fk_incoming: vec![],
            fks_to_target: vec![],
            bytes_to_read: 0,
            model,
            full: true,
            retarget: None,
            large_objects: None,
            skipped: vec![],
            skip_roles: BTreeSet::new(),
            definition_only: BTreeSet::new(),
            unfilled: vec![],
            chosen_sequences: Default::default(),
        }
    }

    fn names(set: &[&str]) -> BTreeSet<String> {
        set.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_extension_the_target_lacks_goes_with_what_needs_it_and_its_empty_schema() {
        let mut p = plan();
        let missing = Missing {
            roles: names(&[]),
            exts: names(&["aws_s3"]),
            schemas: names(&["aws_s3"]),
        };
        let report = leave_out(&mut p, missing, &RestoreOptions::default());
        let left: Vec<u32> = p
            .pre_data
            .iter()
            .chain(&p.post_data)
            .map(|o| o.id)
            .collect();
        assert_eq!(left, vec![4, 5]);
        assert_eq!(p.tables.len(), 1);
        assert_eq!(report.len(), 4, "{report:#?}");
        assert!(report[0].contains("provider-only extension"));
        assert!(report[1].contains("Function import") && report[1].contains("aws_s3"));
        assert!(report[3].starts_with("Schema aws_s3: not restored"));
    }

    #[test]
    fn an_extension_the_target_offers_is_restored() {
        let mut p = plan();
        let missing = Missing {
            roles: names(&[]),
            exts: names(&[]),
            schemas: names(&["aws_s3"]),
        };
        assert!(leave_out(&mut p, missing, &RestoreOptions::default()).is_empty());
        assert_eq!(p.pre_data.len() + p.post_data.len(), 6);
    }
}
