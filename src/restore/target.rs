//! The target database: checks made before any change (conflicts, roles),
//! `--clean`, the pre-data transaction, and sequence states.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::snapshot::{ident, qualified};
use crate::progress::{Event, Progress};
use crate::schema::ddl::{roles_listed, roles_named};
use crate::schema::provider::setting_role;
use crate::schema::{
    naming_database, unwrap_current_database, ApplyOptions, DbObject, ObjectKind,
    APPLY_SESSION_SQL, CURRENT_DATABASE_BYTES, DATABASE_PLACEHOLDER,
};

use super::clean;
use super::default_acl;
use super::names;
use super::plan::Plan;
use super::shared;
use super::RestoreOptions;

/// What the checks found.
pub struct Checked {
    /// Objects that exist in the target and are dropped by `--clean`.
    pub conflicts: Vec<u32>,
    /// Shared objects (schemas, extensions) already there: reused.
    pub existing: HashSet<u32>,
    pub target_db: String,
    /// What `--clean` would drop as the check found the target (the
    /// drops themselves are worked out again inside the transaction).
    pub would_drop: Vec<String>,
    /// Of the plan's objects, those among `would_drop`.
    pub would_drop_ids: HashSet<u32>,
    /// What the drops take along that the backup does not have
    /// ([`clean::Drops::lost`]).
    pub lost: Vec<String>,
    /// What the restore will not do as the backup has it, said as a warning
    /// (an extension the target has at another version).
    pub notes: Vec<String>,
    /// The target's foreign keys to the tables `--clean` replaces, from
    /// tables it leaves alone: dropped with them and added back after the
    /// load ([`clean::IncomingKey`]).
    pub incoming: Vec<clean::IncomingKey>,
    /// Statements on a reused `public`-like schema that would change
    /// nothing (its owner or comment as the target has them): left out, as
    /// they need the schema's ownership even so (see `unchanged_properties`).
    pub unchanged: HashSet<String>,
    /// The target database's own tablespace.
    pub default_tablespace: String,
}

impl Checked {
    /// Whether the restore leaves object `id` as the target has it: found
    /// there and reused, and not dropped by `--clean` with a conflict.
    pub fn keeps(&self, id: u32) -> bool {
        self.existing.contains(&id) && !self.would_drop_ids.contains(&id)
    }
}

/// Kinds that may already exist in the target with the same definition and
/// are then reused rather than refused.
pub(super) fn shareable(kind: ObjectKind) -> bool {
    use ObjectKind::*;
    matches!(
        kind,
        Schema
            | Extension
            | Language
            | AccessMethod
            | Collation
            | Conversion
            | ShellType
            | EnumType
            | CompositeType
            | RangeType
            | BaseType
            | Domain
            | Function
            | Procedure
            | Aggregate
            | Operator
            | OperatorFamily
            | OperatorClass
            | Cast
            | Transform
            | TextSearchParser
            | TextSearchTemplate
            | TextSearchDictionary
            | TextSearchConfiguration
            | ForeignDataWrapper
            | ForeignServer
            | UserMapping
            | DefaultPrivileges
            | Database
    )
}

/// The first `n` names and how many more: a restore over a whole database
/// can conflict on thousands of objects, and the message must stay a line
/// one can read (`--dry-run --clean` lists every one).
fn first_of(names: &[String], n: usize) -> String {
    match names.len() > n {
        true => format!(
            "{} (`--dry-run --clean` lists them all)",
            crate::progress::first_n(names, n)
        ),
        false => names.join(", "),
    }
}

pub async fn check(client: &Client, plan: &Plan, opts: &RestoreOptions) -> Result<Checked> {
    // As stored (`CURRENT_DATABASE_BYTES`); the statements on the database
    // name it by the server's own copy where it is not ASCII
    // (`naming_database`): here it is only shown.
    let target_db = client
        .query_one(&format!("SELECT {CURRENT_DATABASE_BYTES}"), &[])
        .await
        .map_err(|e| Error::pg("reading the target database name", e))?;
    let target_db = String::from_utf8_lossy(target_db.get::<_, &[u8]>(0)).into_owned();
    let mut conflicts = Vec::new();
    // A view on a dependency cycle is two objects of the plan (its
    // placeholder and its definition): one relation, one conflict.
    let mut conflicting = HashSet::new();
    let mut existing = HashSet::new();
    let objects: Vec<&DbObject> = plan
        .pre_data
        .iter()
        .chain(plan.post_data.iter())
        .map(|p| plan.object(p.id))
        .collect();
    // Relations (and the other kinds of `clean::conflict_kind`) must be
    // absent.
    let shared_sequences = shared::sequences(plan);
    // A relation taken for its definition only is compared below, with the
    // shared objects: the target's own (a live table a chosen view reads)
    // is reused, never dropped and made anew without its rows.
    let mut definitions_found = HashSet::new();
    let mut domains_found = HashSet::new();
    for (o, addr) in objects
        .iter()
        .zip(clean::find(client, plan, &objects).await?)
    {
        if addr.is_some() && shared_sequences.contains(&o.id) {
            // Reused, once its definition is found alike (below).
            existing.insert(o.id);
            definitions_found.insert(o.id);
        } else if o.kind == ObjectKind::Domain {
            // Compared with the other shared objects below.
            if addr.is_some() {
                domains_found.insert(o.id);
            }
        } else if addr.is_some() && plan.definition_only.contains(&o.id) {
            definitions_found.insert(o.id);
        } else if addr.is_some_and(|a| conflicting.insert(a)) {
            conflicts.push(o.id);
        }
    }
    // An extension the target has in another schema: its objects are not
    // where the backup's definitions name them.
    let mut moved_extensions = Vec::new();
    for o in &objects {
        // Shared objects found by name are reused.
        let probe = match o.kind {
            ObjectKind::Schema => Some("SELECT nspname::text FROM pg_namespace WHERE nspname = $1"),
            ObjectKind::Extension => Some(
                "SELECT n.nspname::text FROM pg_extension e \
                 JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = $1",
            ),
            _ => None,
        };
        if let Some(sql) = probe {
            let hit = client
                .query_opt(sql, &[&o.name])
                .await
                .map_err(|e| Error::pg("checking the target", e))?;
            if let Some(row) = hit {
                existing.insert(o.id);
                let schema: String = row.get(0);
                if o.kind == ObjectKind::Extension
                    && o.provider.is_none()
                    && o.schema.as_deref().is_some_and(|s| s != schema)
                {
                    moved_extensions.push(format!(
                        "{} (in schema {} in the target, {} in the backup)",
                        o.identity,
                        crate::filter::quote_part(&schema),
                        crate::filter::quote_part(o.schema.as_deref().unwrap_or_default())
                    ));
                }
            }
        }
    }
    let created: Vec<&DbObject> = objects
        .iter()
        .copied()
        .filter(|o| !existing.contains(&o.id) && !definitions_found.contains(&o.id))
        .collect();
    let mut taken = names::in_the_way(client, plan, &created).await?;
    taken.extend(names::taken(client, plan, &created, &conflicting).await?);
    if !taken.is_empty() {
        return Err(Error::Refused(format!(
            "the target database {target_db} already has {} object(s) under names this \
             restore needs, which it neither recreates nor drops: {}; nothing was changed \
             (rename them with ALTER ... RENAME TO ..., or restore with --into-schema NAME or \
             into an empty database)",
            taken.len(),
            first_of(&taken, 12)
        )));
    }
    let shared::Existing { same, differing } =
        shared::existing(client, &objects, &definitions_found).await?;
    // A domain whose checks the backup adds after the data (NOT VALID: its
    // rows may break them) would hold the load to them where the target
    // has it: --clean drops it and makes it anew, as pg_restore --clean
    // does; without, it is reused like any shared object.
    let late_checks: HashSet<u32> = plan
        .post_data
        .iter()
        .map(|p| plan.object(p.id))
        .filter(|o| o.kind == ObjectKind::CheckConstraint)
        .filter_map(|o| o.belongs_to)
        .collect();
    for id in same {
        if opts.clean && domains_found.contains(&id) && late_checks.contains(&id) {
            conflicts.push(id);
        } else {
            existing.insert(id);
        }
    }
    if !conflicts.is_empty() && !opts.clean {
        let names: Vec<String> = conflicts
            .iter()
            .map(|id| plan.target_identity(plan.object(*id)))
            .collect();
        return Err(Error::Refused(format!(
            "the target database {target_db} already has {} object(s) this restore would create: \
             {}; nothing was changed (restore into an empty database, or pass --clean to drop \
             these objects, and the backup's objects that depend on them, first)",
            names.len(),
            first_of(&names, 12)
        )));
    }
    // Refused here, before any change, when the drops would reach beyond
    // the objects this restore recreates.
    let drops = if conflicts.is_empty() {
        clean::Drops::default()
    } else {
        clean::drops(client, plan, &conflicts).await?
    };
    // One that --clean drops (it takes a dropped table's row type) is made
    // anew, not reused.
    let mut differing: Vec<String> = differing
        .into_iter()
        .filter(|id| !drops.ids.contains(id))
        .map(|id| plan.object(id).identity.clone())
        .collect();
    differing.extend(moved_extensions);
    if !differing.is_empty() {
        return Err(Error::Refused(format!(
            "the target database {target_db} already has {} object(s) this restore would reuse, \
             defined otherwise than in the backup: {}; nothing was changed (a restore reuses a \
             type, function, shared sequence, or a table a chosen view or child needs, only \
             when the target defines it as the backup does: rename or drop them in the target \
             (an extension: ALTER EXTENSION ... SET SCHEMA), or restore into an empty database)",
            differing.len(),
            first_of(&differing, 12)
        )));
    }
    let would_drop = drops.dropped;
    let would_drop_ids: HashSet<u32> = drops.ids.into_iter().collect();
    // Objects the target has and keeps as they are: their owner, grants
    // and comment stay the target's, so the roles they name do not matter
    // (QA: a reused schema's owner refused a one-table restore).
    let kept: HashSet<u32> = existing
        .iter()
        .copied()
        .filter(|id| !would_drop_ids.contains(id))
        .filter(|&id| !takes_backup_properties(plan, plan.object(id)))
        .collect();
    let lost = drops.lost;
    let incoming = drops.incoming;
    let unchanged = unchanged_properties(client, plan, &existing).await?;
    let uses = named_roles(plan, opts, &kept);
    // Every refusal below is independent of the others: all are said at
    // once, so that the dry run shows each way out to take, not one per
    // run (QA).
    let mut refusals: Vec<String> = Vec::new();
    let missing = missing_roles(client, &uses).await?;
    if !missing.is_empty() {
        // Offer only the flags that would help: a role still missing under
        // --no-owner is named by grants, which only --no-acl leaves out.
        let mut ways = vec!["create them".to_string()];
        let named_by = |what| missing.iter().any(|(_, uses)| uses.contains(&what));
        if named_by("owner") {
            ways.push("pass --no-owner to leave ownership to the restoring role".into());
        }
        if named_by("privileges") {
            ways.push("pass --no-acl to leave privileges out".into());
        }
        if named_by("settings") {
            ways.push(
                "pass --no-database-properties to leave the database's per-role settings out"
                    .into(),
            );
        }
        // A role a policy or user mapping names must exist whatever the
        // flags, which only clear the others (QA: --no-acl offered, then
        // refused again on a policy's role).
        let must: Vec<&str> = missing
            .iter()
            .filter(|(_, uses)| {
                uses.iter()
                    .any(|u| !["owner", "privileges", "settings"].contains(u))
            })
            .map(|(role, _)| role.as_str())
            .collect();
        if ways.len() > 1 && !must.is_empty() {
            ways[0] = format!(
                "create them ({} at least: no flag leaves out what names {})",
                must.join(", "),
                if must.len() == 1 { "it" } else { "them" }
            );
        }
        refusals.push(format!(
            "role(s) named in the backup do not exist in the target: {}; nothing was changed \
             ({})",
            missing
                .iter()
                .map(|(role, uses)| format!("{role} ({})", uses.join(", ")))
                .collect::<Vec<_>>()
                .join(", "),
            ways.join(", or ")
        ));
    }
    let default_tablespace: String = client
        .query_one(
            "SELECT t.spcname::text FROM pg_catalog.pg_database d
               JOIN pg_catalog.pg_tablespace t ON t.oid = d.dattablespace
              WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(|e| Error::pg("reading the target database's tablespace", e))?
        .get(0);
    let spaces = if opts.no_tablespaces {
        Spaces::default()
    } else {
        check_tablespaces(client, &created, &default_tablespace).await?
    };
    // A backup made before the model recorded tablespaces apart: their
    // names are in the definitions, which the flag cannot leave out.
    let older: Vec<String> =
        if opts.no_tablespaces && plan.model.format < crate::schema::TABLESPACE_APART {
            created
                .iter()
                .filter(|o| names_tablespace_inline(o))
                .map(|o| o.identity.clone())
                .collect()
        } else {
            Vec::new()
        };
    if !older.is_empty() {
        refusals.push(format!(
            "this backup's definitions name their tablespaces themselves (it was made by an \
             older pgsnap), so --no-tablespaces cannot leave them out: {}; nothing was changed \
             (restore without --no-tablespaces into a target that has them, or make a new \
             backup)",
            first_of(&older, 5)
        ));
    }
    let (no_conversion, narrower) = encodings(client, plan).await?;
    refusals.extend(no_conversion);
    let listed = |spaces: &[(String, Vec<String>)]| {
        spaces
            .iter()
            .map(|(space, objects)| format!("{space} ({})", crate::progress::first_n(objects, 3)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !spaces.missing.is_empty() {
        refusals.push(format!(
            "tablespace(s) the backup puts objects in do not exist in the target: {}; nothing \
             was changed (create them first with CREATE TABLESPACE ... LOCATION ..., or pass \
             --no-tablespaces to put everything in the target's default tablespace)",
            listed(&spaces.missing)
        ));
    }
    if !spaces.denied.is_empty() {
        refusals.push(format!(
            "the restoring role may not create objects in tablespace(s) the backup puts them \
             in: {}; nothing was changed (GRANT CREATE ON TABLESPACE ... TO the restoring role, \
             or pass --no-tablespaces to put everything in the target's default tablespace)",
            listed(&spaces.denied)
        ));
    }
    let out_of_reach = owners_out_of_reach(client, plan, opts, &unchanged, &kept).await?;
    if !out_of_reach.is_empty() {
        refusals.push(format!(
            "the restoring role may not make {} the owner(s) of what it creates (it is not a \
             member of them); nothing was changed (grant them to the restoring role, or pass \
             --no-owner to leave ownership to it)",
            out_of_reach.join(", ")
        ));
    }
    let no_create = owners_without_create(client, plan, opts, &existing, &kept).await?;
    if !no_create.is_empty() {
        refusals.push(format!(
            "the owner(s) the backup gives objects may not create in the target's schema(s) \
             they are in, which ALTER ... OWNER TO needs: {}; nothing was changed (grant them \
             CREATE on those schemas{} and revoke it after the restore, unless the source \
             grants it too; make the database with them as its owner; or pass --no-owner to \
             leave ownership to the restoring role)",
            first_of(&no_create, 12),
            match &opts.into_schema {
                Some(into) => format!(
                    " (--into-schema's: CREATE SCHEMA {} AUTHORIZATION role first)",
                    ident(into)
                ),
                None => String::new(),
            }
        ));
    }
    let acl_out_of_reach = acl_roles_out_of_reach(client, plan, opts, &kept).await?;
    if !acl_out_of_reach.is_empty() {
        refusals.push(format!(
            "the restoring role may not set the default privileges of, or grant as, {} (it is \
             not a member of them); nothing was changed (grant them to the restoring role, or \
             pass --no-acl to leave privileges out)",
            acl_out_of_reach.join(", ")
        ));
    }
    // A missing role would fail the database's per-role settings too: said
    // once, above.
    let properties = match missing.is_empty() {
        true => try_database_properties(client, plan, opts, &target_db).await,
        false => Ok(()),
    };
    for checked in [
        superuser_only(client, plan).await,
        extensions_out_of_reach(client, plan, &existing).await,
        properties,
    ] {
        match checked {
            Err(Error::Refused(m)) => refusals.push(m),
            other => other?,
        }
    }
    if refusals.len() > 1 {
        let each: Vec<String> = refusals
            .iter()
            .map(|m| m.replacen("; nothing was changed (", " (", 1))
            .collect();
        return Err(Error::Refused(format!(
            "{}; nothing was changed",
            each.join("; and ")
        )));
    }
    if let Some(m) = refusals.pop() {
        return Err(Error::Refused(m));
    }
    let mut notes = extension_versions(client, plan, &existing).await?;
    notes.extend(narrower);
    Ok(Checked {
        conflicts,
        existing,
        default_tablespace,
        notes,
        unchanged,
        target_db,
        would_drop,
        would_drop_ids,
        lost,
        incoming,
    })
}

/// An object of a backup from before schema model format 2, whose
/// `create` places it in its tablespace itself (the model's `tablespace`
/// was not recorded apart then). Read from the text: only such backups
/// are asked.
fn names_tablespace_inline(o: &DbObject) -> bool {
    match o.kind {
        ObjectKind::Table => o.create.contains("\nTABLESPACE "),
        ObjectKind::MaterializedView => o
            .create
            .split(" AS\n")
            .next()
            .is_some_and(|head| head.contains(" TABLESPACE ")),
        ObjectKind::Index | ObjectKind::Constraint => o.create.contains(" SET TABLESPACE "),
        _ => false,
    }
}

/// What the target says of the tablespaces `created` objects are put in,
/// each with those objects: found here rather than by the first CREATE
/// that fails on one, so that the dry run says it too.
#[derive(Default)]
struct Spaces {
    /// Tablespaces the target lacks.
    missing: Vec<(String, Vec<String>)>,
    /// Tablespaces the restoring role may not create in.
    denied: Vec<(String, Vec<String>)>,
}

/// `default` is the target database's own tablespace: an object the
/// backup puts there goes there without a word (see
/// [`crate::schema::ApplyOptions::target_default_tablespace`]), and needs
/// no privilege on it.
async fn check_tablespaces(
    client: &Client,
    created: &[&DbObject],
    default: &str,
) -> Result<Spaces> {
    let mut wanted: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for o in created {
        if let Some(space) = o.tablespace.as_deref().filter(|s| *s != default) {
            wanted.entry(space).or_default().push(o.identity.clone());
        }
    }
    if wanted.is_empty() {
        return Ok(Spaces::default());
    }
    let names: Vec<&str> = wanted.keys().copied().collect();
    let usable: HashMap<String, bool> = client
        .query(
            "SELECT spcname::text, pg_catalog.has_tablespace_privilege(oid, 'CREATE')
               FROM pg_catalog.pg_tablespace WHERE spcname = ANY($1)",
            &[&names],
        )
        .await
        .map_err(|e| Error::pg("checking the target's tablespaces", e))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut spaces = Spaces::default();
    for (space, objects) in wanted {
        let named = crate::schema::ddl::ident(space);
        match usable.get(space) {
            None => spaces.missing.push((named, objects)),
            Some(false) => spaces.denied.push((named, objects)),
            Some(true) => {}
        }
    }
    Ok(spaces)
}

/// Roles of [`named_roles`] that the target lacks, each with what names it
/// (`owner`, `privileges`, `policy`, `user mapping`, `settings`).
async fn missing_roles(
    client: &Client,
    uses: &BTreeMap<String, BTreeSet<&'static str>>,
) -> Result<Vec<(String, Vec<&'static str>)>> {
    let names: Vec<&str> = uses.keys().map(String::as_str).collect();
    let rows = client
        .query(
            "SELECT r FROM unnest($1::text[]) r WHERE NOT EXISTS
               (SELECT 1 FROM pg_roles WHERE rolname = r) ORDER BY 1",
            &[&names],
        )
        .await
        .map_err(|e| Error::pg("checking roles in the target", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            let role: String = r.get(0);
            let what = uses[&role].iter().copied().collect();
            (role, what)
        })
        .collect())
}

/// A schema every database has (`public`: no CREATE of its own), which a
/// full restore gives the backup's owner, grants and comment even where
/// the target has it (see `apply_pre_data`).
fn takes_backup_properties(plan: &Plan, o: &DbObject) -> bool {
    plan.full && o.kind == ObjectKind::Schema && o.create.trim().is_empty()
}

/// The plan's objects whose statements the restore runs: all but those the
/// target has and keeps (`kept`).
fn applied<'a>(plan: &'a Plan, kept: &'a HashSet<u32>) -> impl Iterator<Item = &'a DbObject> {
    plan.pre_data
        .iter()
        .chain(plan.post_data.iter())
        .filter(|p| !kept.contains(&p.id))
        .map(|p| plan.object(p.id))
}

/// Owner roles that exist but the restoring role may not give objects to:
/// `ALTER ... OWNER TO` needs membership in the new owner (a superuser has
/// it in every role). Checked here so that the restore, and its dry run,
/// are refused with the way out instead of failing in the pre-data.
async fn owners_out_of_reach(
    client: &Client,
    plan: &Plan,
    opts: &RestoreOptions,
    unchanged: &HashSet<String>,
    kept: &HashSet<u32>,
) -> Result<Vec<String>> {
    if opts.no_owner {
        return Ok(vec![]);
    }
    // The roles of the `ALTER ... OWNER TO` statements the restore runs (a
    // database's recorded owner is never applied: the target keeps its own).
    let owners: BTreeSet<String> = applied(plan, kept)
        .flat_map(|o| o.owner_sql.iter())
        .filter(|s| !unchanged.contains(*s))
        .flat_map(|s| roles_named(s))
        .filter(|r| !plan.skip_roles.contains(r))
        .collect();
    not_member_of(client, &owners).await
}

/// The owner and comment statements of a reused schema every database has
/// (`public`, which a full restore gives the backup's owner, grants and
/// comment) that the target's already match. ALTER ... OWNER TO the owner
/// it has changes nothing, but COMMENT needs the schema's ownership even
/// then, and the checks want membership in the owner: a role that does not
/// own the target's `public` could not restore at all, `--no-owner` or not
/// (QA: `pg_database_owner` cannot have members).
async fn unchanged_properties(
    client: &Client,
    plan: &Plan,
    existing: &HashSet<u32>,
) -> Result<HashSet<String>> {
    let mut out = HashSet::new();
    if !plan.full {
        return Ok(out);
    }
    for p in &plan.pre_data {
        let o = plan.object(p.id);
        if !takes_backup_properties(plan, o) || !existing.contains(&o.id) {
            continue;
        }
        let row = client
            .query_opt(
                "SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text,
                        pg_catalog.obj_description(n.oid, 'pg_namespace')
                   FROM pg_catalog.pg_namespace n WHERE n.nspname = $1",
                &[&o.name],
            )
            .await
            .map_err(|e| Error::pg(format!("reading {} in the target", o.identity), e))?;
        let Some(row) = row else { continue };
        let on = format!("SCHEMA {}", ident(&o.name));
        let owner = crate::schema::ddl::owner_to(&on, row.get(0));
        let comment = row
            .get::<_, Option<&str>>(1)
            .map(|c| crate::schema::ddl::comment_on(&on, c));
        for s in o.owner_sql.iter().chain(o.comment_sql.iter()) {
            if *s == owner || Some(s) == comment.as_ref() {
                out.insert(s.clone());
            }
        }
    }
    Ok(out)
}

/// Owners that lack CREATE on a schema the target already has (reused,
/// its ACL the target's) and the backup puts objects of theirs in: for a
/// role that is not a superuser, `ALTER ... OWNER TO` needs it (a staging
/// database made by the restoring role, its `public` schema its own, failed
/// the pre-data with "permission denied for schema public", the dry run
/// having passed; QA). As "role on schema".
async fn owners_without_create(
    client: &Client,
    plan: &Plan,
    opts: &RestoreOptions,
    existing: &HashSet<u32>,
    kept: &HashSet<u32>,
) -> Result<Vec<String>> {
    if opts.no_owner {
        return Ok(vec![]);
    }
    let mut reused: BTreeSet<&str> = existing
        .iter()
        .map(|&id| plan.object(id))
        .filter(|o| o.kind == ObjectKind::Schema)
        .map(|o| o.name.as_str())
        .collect();
    // --into-schema's schema: the target's, or made by the restoring role,
    // where another owner may create only as a member of it (QA: the dry
    // run passed, the restore failed on "permission denied for schema").
    reused.extend(opts.into_schema.as_deref());
    let mut pairs: BTreeSet<(String, &str)> = BTreeSet::new();
    for o in applied(plan, kept) {
        let Some(schema) = plan.target_schema(o).filter(|s| reused.contains(s)) else {
            continue;
        };
        for role in o.owner_sql.iter().flat_map(|s| roles_named(s)) {
            if !plan.skip_roles.contains(&role) {
                pairs.insert((role, schema));
            }
        }
    }
    let (roles, schemas): (Vec<String>, Vec<&str>) = pairs.into_iter().unzip();
    let rows = client
        .query(
            "SELECT u.r, u.s FROM unnest($1::text[], $2::text[]) u(r, s)
              WHERE NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
                AND CASE WHEN NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = u.r)
                    THEN false
                    WHEN EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = u.s)
                    THEN NOT pg_catalog.has_schema_privilege(u.r, u.s, 'CREATE')
                    ELSE u.r <> current_user AND NOT pg_catalog.pg_has_role(u.r, current_user, 'USAGE')
                    END
              ORDER BY 1, 2",
            &[&roles, &schemas],
        )
        .await
        .map_err(|e| Error::pg("checking the owners' rights on the target's schemas", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "{} on {}",
                crate::filter::quote_part(r.get(0)),
                crate::filter::quote_part(r.get(1))
            )
        })
        .collect())
}

/// Roles whose privileges statements the restoring role may not run
/// (unless --no-acl): `ALTER DEFAULT PRIVILEGES FOR ROLE r` and a grant
/// made as its grantor (`SET ROLE r; GRANT ...`) need membership in `r`.
/// Checked before any change: a restore as a non-superuser (`--no-owner`)
/// of a backup with another role's default privileges failed at its very
/// end, the data loaded.
async fn acl_roles_out_of_reach(
    client: &Client,
    plan: &Plan,
    opts: &RestoreOptions,
    kept: &HashSet<u32>,
) -> Result<Vec<String>> {
    if opts.no_acl {
        return Ok(vec![]);
    }
    let mut roles = BTreeSet::new();
    for o in applied(plan, kept) {
        if o.kind == ObjectKind::DefaultPrivileges {
            roles.extend(o.owner.iter().cloned());
        }
        for stmt in crate::schema::acl_sql(o, opts.no_owner) {
            if let Some(set_role) = stmt.strip_prefix("SET ROLE ") {
                let grantor = set_role.split(';').next().unwrap_or_default();
                roles.extend(roles_named(&format!("ROLE {grantor}")));
            }
        }
    }
    roles.retain(|r| !plan.skip_roles.contains(r));
    not_member_of(client, &roles).await
}

/// The plan's extensions the target has (`reused`) or has not, by name,
/// with the version each backed-up `CREATE EXTENSION ... VERSION '...'`
/// names (empty when it names none).
fn extensions(plan: &Plan, existing: &HashSet<u32>, reused: bool) -> (Vec<String>, Vec<String>) {
    plan.pre_data
        .iter()
        .map(|p| plan.object(p.id))
        .filter(|o| o.kind == ObjectKind::Extension && existing.contains(&o.id) == reused)
        .map(|o| {
            let version = o
                .create
                .rsplit_once(" VERSION '")
                .and_then(|(_, v)| v.strip_suffix("';"))
                .unwrap_or_default();
            (o.name.clone(), version.to_string())
        })
        .unzip()
}

/// Extensions the target has at another version than the backup's: reused
/// as they are (their objects may differ), which a warning says (QA: citext
/// 1.6 kept over the backup's 1.5 without a word).
async fn extension_versions(
    client: &Client,
    plan: &Plan,
    existing: &HashSet<u32>,
) -> Result<Vec<String>> {
    let (names, versions) = extensions(plan, existing, true);
    let rows = client
        .query(
            "SELECT u.n, u.v, e.extversion FROM unnest($1::text[], $2::text[]) u(n, v)
               JOIN pg_catalog.pg_extension e ON e.extname = u.n
              WHERE u.v <> '' AND e.extversion <> u.v ORDER BY 1",
            &[&names, &versions],
        )
        .await
        .map_err(|e| Error::pg("reading the target's extension versions", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            format!(
                "extension {} is reused at the target's version {}, not the backup's {} (ALTER \
                 EXTENSION ... UPDATE TO changes it)",
                ident(r.get(0)),
                r.get::<_, &str>(2),
                r.get::<_, &str>(1)
            )
        })
        .collect())
}

/// Extensions the restore must create that only a superuser may (not
/// trusted), for a restoring role that is not one: CREATE EXTENSION failed
/// in the pre-data, after a passing dry run, with no word of the way out
/// (QA). A superuser can create them in the target beforehand: the restore
/// then reuses them.
async fn extensions_out_of_reach(
    client: &Client,
    plan: &Plan,
    existing: &HashSet<u32>,
) -> Result<()> {
    let (names, versions) = extensions(plan, existing, false);
    let rows = client
        .query(
            "SELECT u.n FROM unnest($1::text[], $2::text[]) u(n, v)
              WHERE NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user)
                AND EXISTS (SELECT FROM pg_catalog.pg_available_extension_versions a
                             WHERE a.name = u.n AND a.version = u.v
                               AND a.superuser AND NOT a.trusted)
              ORDER BY 1",
            &[&names, &versions],
        )
        .await
        .map_err(|e| Error::pg("checking which extensions need a superuser", e))?;
    if rows.is_empty() {
        return Ok(());
    }
    let needs: Vec<String> = rows.iter().map(|r| ident(r.get(0))).collect();
    Err(Error::Refused(format!(
        "only a superuser may create extension(s) {} in the target; nothing was changed (have \
         a superuser run CREATE EXTENSION in the target first, which the restore then reuses, \
         or restore as a superuser)",
        needs.join(", ")
    )))
}

/// Objects only a superuser may create: event triggers, and publications of
/// all tables or of whole schemas. Refused before any change for another
/// role: they failed after the rows were in, the dry run having passed (QA).
async fn superuser_only(client: &Client, plan: &Plan) -> Result<()> {
    let needs: Vec<String> = plan
        .pre_data
        .iter()
        .chain(plan.post_data.iter())
        .map(|p| plan.object(p.id))
        .filter(|o| match o.kind {
            ObjectKind::EventTrigger | ObjectKind::PublicationSchema => true,
            ObjectKind::Publication => o.create.contains(" FOR ALL TABLES"),
            _ => false,
        })
        .map(|o| o.identity.clone())
        .collect();
    if needs.is_empty() {
        return Ok(());
    }
    let superuser: bool = client
        .query_one(
            "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| Error::pg("checking whether the restoring role is a superuser", e))?
        .get(0);
    if superuser {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "only a superuser may create {} object(s) of the backup: {}; nothing was changed \
         (restore as a superuser, or choose what to restore with --table or --schema, which \
         leave them out)",
        needs.len(),
        first_of(&needs, 12)
    )))
}

/// The target database's properties the backup has (`ALTER DATABASE ...
/// SET`, per-role settings in it, its grants and comment), tried in a
/// transaction that is rolled back: a setting only a superuser may make,
/// or a superuser role's settings, failed them after the rows were in, the
/// dry run having passed (QA).
async fn try_database_properties(
    client: &Client,
    plan: &Plan,
    opts: &RestoreOptions,
    target_db: &str,
) -> Result<()> {
    let Some(db) = plan
        .post_data
        .iter()
        .map(|p| plan.object(p.id))
        .find(|o| o.kind == ObjectKind::Database)
    else {
        return Ok(());
    };
    let stmts = statements(plan, db, opts, target_db);
    if stmts.is_empty() {
        return Ok(());
    }
    let control = |e| Error::pg("trying the database's properties", e);
    client.batch_execute("BEGIN").await.map_err(control)?;
    let failed = failing_statement(client, &stmts)
        .await
        .map(|(s, e)| (s.to_string(), e));
    client.batch_execute("ROLLBACK").await.map_err(control)?;
    // The settings are one element, a statement a line: which one failed,
    // for the message (QA: the first line's name was given for the next
    // one's refusal). The refusal itself stands on the element's trial.
    // A name that is not ASCII is the server's (`naming_database`): the
    // lines are those of the statement the block wraps, each run as such a
    // block, and shown as written.
    let shown = crate::schema::ddl::ident(target_db);
    let show = |stmt: &str| match unwrap_current_database(stmt) {
        Some(written) => written.replace(DATABASE_PLACEHOLDER, &shown),
        None => stmt.to_string(),
    };
    let failed = match failed {
        Some((stmt, e)) => {
            let written = unwrap_current_database(&stmt).unwrap_or(&stmt).trim();
            let one = if written.lines().count() > 1
                && written.lines().all(|l| l.trim_end().ends_with(';'))
            {
                let lines: Vec<String> = written
                    .lines()
                    .map(|l| naming_database(l, target_db))
                    .collect();
                client.batch_execute("BEGIN").await.map_err(control)?;
                let one = failing_statement(client, &lines)
                    .await
                    .map(|(s, e)| (show(s), e));
                client.batch_execute("ROLLBACK").await.map_err(control)?;
                one
            } else {
                None
            };
            Some(one.unwrap_or_else(|| (show(&stmt), e)))
        }
        None => None,
    };
    match failed {
        None => Ok(()),
        Some((stmt, e)) => {
            // Another role's settings in the database: CREATEROLE may set
            // them (a non-superuser's), which a managed database's admin
            // role has where no one is a superuser (QA).
            let who = if stmt.starts_with("ALTER ROLE") {
                "as a superuser, or as a role with CREATEROLE for a non-superuser's settings"
            } else {
                "as a superuser"
            };
            Err(Error::Refused(format!(
                "the restoring role may not give the target database the backed-up database's \
                 settings, grants or comment ({}: {}); nothing was changed (restore {who}, \
                 or pass --no-database-properties to leave them as the target has them)",
                property_statement(&stmt, &shown),
                Error::pg_detail(&e)
            )))
        }
    }
}

/// Of `roles`, those that exist in the target and the restoring role is
/// not a member of (a superuser is a member of every role).
async fn not_member_of(client: &Client, roles: &BTreeSet<String>) -> Result<Vec<String>> {
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let rows = client
        .query(
            // CASE, not AND: a role that does not exist must never reach
            // pg_has_role, which fails on it (the missing ones are refused
            // with the other checks' findings).
            "SELECT r FROM unnest($1::text[]) r
              WHERE CASE WHEN EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r)
                         THEN NOT pg_has_role(r, 'MEMBER') ELSE false END
              ORDER BY 1",
            &[&roles],
        )
        .await
        .map_err(|e| Error::pg("checking role membership in the target", e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Every role the restore names (as owner unless --no-owner, in grants
/// unless --no-acl, in policies and user mappings, in database settings), with what names it.
/// Provider-managed roles the plan already leaves out
/// (`Plan::skip_roles`) are not counted.
fn named_roles(
    plan: &Plan,
    opts: &RestoreOptions,
    kept: &HashSet<u32>,
) -> BTreeMap<String, BTreeSet<&'static str>> {
    let mut uses: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for o in applied(plan, kept) {
        let mut named: Vec<(String, &'static str)> = Vec::new();
        if !opts.no_owner {
            named.extend(o.owner.iter().map(|r| (r.clone(), "owner")));
            named.extend(
                o.owner_sql
                    .iter()
                    .flat_map(|s| roles_named(s))
                    .map(|r| (r, "owner")),
            );
        }
        if !opts.no_acl {
            named.extend(
                crate::schema::acl_sql(o, opts.no_owner)
                    .flat_map(|s| roles_named(s))
                    .map(|r| (r, "privileges")),
            );
        }
        // A policy's or user mapping's roles are neither ownership nor
        // privileges: no flag leaves them out, and creating it fails
        // without them.
        match o.kind {
            ObjectKind::Policy => {
                named.extend(roles_listed(&o.create).into_iter().map(|r| (r, "policy")));
            }
            ObjectKind::UserMapping => named.extend(
                roles_listed(&o.create)
                    .into_iter()
                    .map(|r| (r, "user mapping")),
            ),
            _ => {}
        }
        if o.kind == ObjectKind::Database {
            named.extend(
                o.create
                    .lines()
                    .filter_map(setting_role)
                    .map(|r| (r, "settings")),
            );
        }
        for (role, what) in named {
            if !plan.skip_roles.contains(&role) {
                uses.entry(role).or_default().insert(what);
            }
        }
    }
    uses
}

/// `--data-only`: every table the rows load into exists in the target with
/// every column they fill. Checked before any change: a missing one would
/// otherwise fail its COPY after other tables' rows had committed.
pub async fn check_data_only_tables(client: &Client, plan: &Plan) -> Result<()> {
    let (mut tables, mut columns): (Vec<String>, Vec<Option<&str>>) = (vec![], vec![]);
    for t in plan.tables.iter().filter(|t| t.load_data) {
        let table = qualified(&t.schema, &t.name);
        tables.push(table.clone());
        columns.push(None);
        for c in &t.columns {
            tables.push(table.clone());
            columns.push(Some(c));
        }
    }
    let rows = client
        .query(
            "SELECT u.tab, u.col FROM unnest($1::text[], $2::text[]) WITH ORDINALITY u(tab, col, i)
              WHERE CASE WHEN u.col IS NULL THEN pg_catalog.to_regclass(u.tab) IS NULL
                    ELSE pg_catalog.to_regclass(u.tab) IS NOT NULL AND NOT EXISTS (
                      SELECT FROM pg_catalog.pg_attribute a
                       WHERE a.attrelid = pg_catalog.to_regclass(u.tab) AND a.attname = u.col
                         AND a.attnum > 0 AND NOT a.attisdropped) END
              ORDER BY u.i",
            &[&tables, &columns],
        )
        .await
        .map_err(|e| Error::pg("checking the target's tables for --data-only", e))?;
    let mut missing: Vec<String> = rows
        .iter()
        .map(|r| match r.get::<_, Option<&str>>(1) {
            None => format!("table {}", r.get::<_, &str>(0)),
            Some(c) => format!(
                "column {} of {}",
                crate::filter::quote_part(c),
                r.get::<_, &str>(0)
            ),
        })
        .collect();
    // The sequences it sets afterwards: found missing only then, the rows
    // would already be committed.
    let sequences: Vec<String> = plan
        .sequences
        .iter()
        .map(|s| qualified(&s.schema, &s.name))
        .collect();
    let rows = client
        .query(
            "SELECT s FROM unnest($1::text[]) WITH ORDINALITY u(s, i)
              WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_class c
                                 WHERE c.oid = pg_catalog.to_regclass(u.s) AND c.relkind = 'S')
              ORDER BY u.i",
            &[&sequences],
        )
        .await
        .map_err(|e| Error::pg("checking the target's sequences for --data-only", e))?;
    missing.extend(
        rows.iter()
            .map(|r| format!("sequence {}", r.get::<_, &str>(0))),
    );
    // A state outside the target's sequence's range fails its setval after
    // the rows (and the sequences before it) are set: found here instead.
    let values: Vec<i64> = plan.sequences.iter().map(|s| s.last_value).collect();
    let rows = client
        .query(
            "SELECT u.s, u.v, p.seqmin, p.seqmax
               FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY u(s, v, i)
               JOIN pg_catalog.pg_sequence p ON p.seqrelid = pg_catalog.to_regclass(u.s)
              WHERE u.v NOT BETWEEN p.seqmin AND p.seqmax
              ORDER BY u.i",
            &[&sequences, &values],
        )
        .await
        .map_err(|e| Error::pg("checking the target's sequences for --data-only", e))?;
    let out_of_range: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "sequence {} (the backup's value {} is outside its range {}..{})",
                r.get::<_, &str>(0),
                r.get::<_, i64>(1),
                r.get::<_, i64>(2),
                r.get::<_, i64>(3)
            )
        })
        .collect();
    if missing.is_empty() && !out_of_range.is_empty() {
        return Err(Error::Refused(format!(
            "--data-only would set {} sequence(s) of the target to a value their definition \
             there does not allow: {}; nothing was changed (alter them as in the backup, or \
             restore without --data-only)",
            out_of_range.len(),
            first_of(&out_of_range, 12)
        )));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "--data-only loads rows into tables the target already has, and it lacks {}: {}; \
         nothing was changed (create them first, for example with the same restore and \
         --schema-only, or restore without --data-only)",
        missing.len(),
        first_of(&missing, 12)
    )))
}

/// The tables rows load into, qualified.
fn loaded_tables(plan: &Plan) -> Vec<String> {
    plan.tables
        .iter()
        .filter(|t| t.load_data)
        .map(|t| qualified(&t.schema, &t.name))
        .collect()
}

/// `--data-only`: what the load will meet in the target's tables, as
/// warnings (in the dry run too): tables that already hold rows, which the
/// loaded rows are added to (duplicates where no key refuses them), and
/// triggers that fire for every loaded row (QA: an audit table doubled).
pub async fn data_only_notes(
    client: &Client,
    plan: &Plan,
    opts: &RestoreOptions,
) -> Result<Vec<String>> {
    let tables = loaded_tables(plan);
    let rows = client
        .query(
            "SELECT u.t, pg_catalog.has_table_privilege(c.oid, 'SELECT'),
                    (SELECT count(*) FROM pg_catalog.pg_trigger g
                      WHERE g.tgrelid = c.oid AND NOT g.tgisinternal AND g.tgenabled <> 'D')
               FROM unnest($1::text[]) WITH ORDINALITY u(t, i)
               JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(u.t)
              ORDER BY u.i",
            &[&tables],
        )
        .await
        .map_err(|e| Error::pg("reading the target's tables for --data-only", e))?;
    let mut notes = Vec::new();
    let with_triggers: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, i64>(2) > 0)
        .map(|r| r.get(0))
        .collect();
    if !with_triggers.is_empty() && !opts.disable_triggers {
        notes.push(format!(
            "--data-only: the target's triggers fire for every row loaded into {} table(s): {} \
             (--disable-triggers keeps them quiet, as a superuser)",
            with_triggers.len(),
            first_of(&with_triggers, 12)
        ));
    }
    // Only where the role may read: a load needs INSERT, not SELECT.
    let readable: Vec<String> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(1))
        .map(|r| r.get(0))
        .collect();
    let mut holding = Vec::new();
    for batch in readable.chunks(200) {
        let sql = batch
            .iter()
            .enumerate()
            .map(|(i, t)| format!("SELECT {i} WHERE EXISTS (SELECT FROM {t})"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let found = client
            .query(&sql, &[])
            .await
            .map_err(|e| Error::pg("looking for rows in the target's tables", e))?;
        holding.extend(
            found
                .iter()
                .map(|r| batch[r.get::<_, i32>(0) as usize].clone()),
        );
    }
    if !holding.is_empty() {
        notes.push(format!(
            "--data-only: {} table(s) of the target already hold rows, which the loaded rows are \
             added to (a unique key refuses duplicates, failing that table's load; without one \
             they are duplicated): {}",
            holding.len(),
            first_of(&holding, 12)
        ));
    }
    Ok(notes)
}

/// `--data-only`: no table the rows load into has row-level security that
/// applies to the restoring role (not its owner, or its owner with FORCE
/// ROW LEVEL SECURITY; not a superuser or BYPASSRLS): COPY FROM refuses
/// such a table, and the load failed there with other tables' rows
/// committed (QA).
pub async fn check_data_only_row_security(client: &Client, plan: &Plan) -> Result<()> {
    let tables = loaded_tables(plan);
    let rows = client
        .query(
            "SELECT u.t FROM unnest($1::text[]) WITH ORDINALITY u(t, i)
               JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(u.t)
              WHERE c.relrowsecurity AND pg_catalog.row_security_active(c.oid)
              ORDER BY u.i",
            &[&tables],
        )
        .await
        .map_err(|e| {
            Error::pg(
                "checking the target's row-level security for --data-only",
                e,
            )
        })?;
    if rows.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    Err(Error::Refused(format!(
        "--data-only: row-level security of the target applies to the restoring role on {} \
         table(s), and COPY cannot load rows into them: {}; nothing was changed (restore as \
         a superuser or a role with BYPASSRLS, or as the tables' owner when they are not \
         FORCE ROW LEVEL SECURITY)",
        names.len(),
        first_of(&names, 12)
    )))
}

/// `--disable-triggers`: the restoring role may set
/// `session_replication_role` (a superuser, or granted SET on it), tried
/// here and undone, so a role that may not is refused before any change.
pub async fn check_disable_triggers(client: &Client) -> Result<()> {
    client
        .batch_execute("SET session_replication_role = replica; RESET session_replication_role")
        .await
        .map_err(|e| {
            Error::Refused(format!(
                "--disable-triggers: the restoring role may not set session_replication_role \
                 ({}); nothing was changed (restore as a superuser, grant it SET on that \
                 parameter, or leave the flag out and let the triggers fire)",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |d| d.message().to_string())
            ))
        })
}

/// Rows of a binary archive carry each value in its type's binary form,
/// which the server takes as whatever type the target column has: an `int4`
/// read as `real` loads as garbage without an error. A table this restore
/// does not create (`--data-only`) must therefore have the backup's
/// built-in types, column by column (the server itself checks the type
/// OIDs inside arrays and composites). Text rows are parsed by the target's
/// types, as pg_restore's are, and need no check.
pub async fn check_binary_types(client: &Client, plan: &Plan) -> Result<()> {
    /// OIDs below this are built in, the same in every database.
    const FIRST_NORMAL_OID: u32 = 16384;
    for t in plan.tables.iter().filter(|t| {
        t.load_data && !t.created_here && t.copy_format == crate::pg::copy::CopyFormat::Binary
    }) {
        let Some(info) = plan
            .model
            .tables
            .iter()
            .find(|i| i.object_id == t.object_id)
        else {
            continue;
        };
        let table = qualified(&t.schema, &t.name);
        if info.column_types.len() != info.columns.len() {
            return Err(Error::Refused(format!(
                "--data-only: {table} comes from a binary backup that does not record its column \
                 types, so they cannot be checked against the target's; nothing was changed \
                 (restore the table whole, into a new database or with --into-schema)"
            )));
        }
        let (names, types): (Vec<String>, Vec<i64>) = info
            .columns
            .iter()
            .zip(&info.column_types)
            .filter(|(c, &ty)| t.columns.contains(c) && ty < FIRST_NORMAL_OID)
            .map(|(c, &ty)| (c.clone(), ty as i64))
            .unzip();
        let rows = client
            .query(
                "SELECT c.name, format_type(a.atttypid, a.atttypmod), format_type(c.src::oid, NULL)
                   FROM unnest($2::text[], $3::int8[]) AS c(name, src)
                   JOIN pg_attribute a ON a.attrelid = to_regclass($1) AND a.attname = c.name
                                      AND NOT a.attisdropped
                  WHERE a.atttypid <> c.src::oid",
                &[&table, &names, &types],
            )
            .await
            .map_err(|e| Error::pg(format!("checking the column types of {table}"), e))?;
        if let Some(r) = rows.first() {
            let (col, target, source): (String, String, String) = (r.get(0), r.get(1), r.get(2));
            return Err(Error::Refused(format!(
                "--data-only: column {} of {table} is {target} in the target but {source} in the \
                 backup, and binary rows load only into the types they were taken from; nothing \
                 was changed (make the column {source}, or restore the table whole)",
                crate::filter::quote_part(&col)
            )));
        }
    }
    Ok(())
}

/// The statements that recreate one object under the options.
pub fn statements(
    plan: &Plan,
    o: &DbObject,
    opts: &RestoreOptions,
    target_db: &str,
) -> Vec<String> {
    let apply = ApplyOptions {
        no_owner: opts.no_owner,
        no_acl: opts.no_acl,
        no_comments: false,
        target_db_name: target_db.to_string(),
        skip_roles: plan.skip_roles.clone(),
        no_tablespaces: opts.no_tablespaces,
        target_default_tablespace: plan.target_default_tablespace.clone(),
    };
    plan.sql(o, &apply)
}

/// Session settings for running DDL: an empty search_path (the DDL is
/// schema-qualified), no function body checks (bodies may name objects
/// created later), as pg_dump's scripts set them.
pub async fn prepare_ddl_session(client: &Client) -> Result<()> {
    client
        .batch_execute(APPLY_SESSION_SQL)
        .await
        .map_err(|e| Error::pg("setting up the restore session", e))
}

/// `--clean`: drops exactly the conflicting objects and the backup's
/// objects that depend on them, dependents first (see `super::clean`).
/// Runs inside the pre-data transaction (see `apply_pre_data`), and works
/// the drops out again there: they must match the target as it is now.
async fn drop_conflicts(client: &Client, plan: &Plan, checked: &Checked) -> Result<clean::Drops> {
    if checked.conflicts.is_empty() {
        return Ok(clean::Drops::default());
    }
    let drops = clean::drops(client, plan, &checked.conflicts).await?;
    for stmt in &drops.statements {
        client
            .batch_execute(stmt)
            .await
            .map_err(|e| Error::pg(format!("--clean: {}", brief(stmt)), e))?;
    }
    Ok(drops)
}

/// A statement for a message, cut short: a drop of every table of a big
/// database is tens of kilobytes (QA: a one-line error of 84 KB).
fn brief(stmt: &str) -> String {
    const MAX: usize = 160;
    if stmt.len() <= MAX {
        return stmt.to_string();
    }
    let mut end = MAX;
    while !stmt.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &stmt[..end], stmt.len())
}

/// What the pre-data did to the target.
pub struct PreData {
    /// Identities of the objects `--clean` dropped.
    pub dropped: Vec<String>,
    /// The shared objects found there and reused.
    pub reused: Vec<String>,
    /// The target's keys `--clean` dropped, to add back after the load.
    pub incoming: Vec<clean::IncomingKey>,
}

/// Runs `--clean` drops and the pre-data DDL in one transaction (of its
/// own, or the restore's with `--single-transaction`, which its caller
/// began): if any of it fails, the target is as it was.
pub async fn apply_pre_data(
    client: &Client,
    plan: &Plan,
    checked: &Checked,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<PreData> {
    let own = !opts.single_transaction;
    if own {
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| Error::pg("starting the pre-data transaction", e))?;
    }
    let res = async {
        if let Some(r) = &plan.retarget {
            let q = crate::pg::snapshot::ident(&r.schema);
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {q}"))
                .await
                .map_err(|e| Error::pg(format!("creating schema {q}"), e))?;
        }
        let drops = drop_conflicts(client, plan, checked).await?;
        // A shared object found defined alike is gone when it depended on
        // something --clean dropped (a function taking a table's row type).
        let gone: HashSet<u32> = drops.ids.into_iter().collect();
        let (dropped, incoming) = (drops.dropped, drops.incoming);
        // Objects get their backed-up ACL, not the target's defaults for
        // the restoring role (see `default_acl`); --no-acl takes those.
        let aside = match opts.no_acl {
            true => None,
            false => default_acl::set_aside(client).await?,
        };
        let mut reused = Vec::new();
        for p in &plan.pre_data {
            let o = plan.object(p.id);
            if checked.existing.contains(&o.id) && !gone.contains(&o.id) {
                // A schema every database has (`public`: no CREATE of its
                // own) takes the backup's owner, grants and comment in a
                // full restore, which makes the target the backup's
                // database: left as a new database has it, a revoked
                // CREATE or USAGE would come back open.
                if takes_backup_properties(plan, o) {
                    let mut stmts = statements(plan, o, opts, &checked.target_db);
                    stmts.retain(|s| !checked.unchanged.contains(s));
                    run_statements(client, &o.identity, &stmts).await?;
                }
                reused.push(o.identity.clone());
                continue;
            }
            let stmts = statements(plan, o, opts, &checked.target_db);
            if stmts.is_empty() {
                continue;
            }
            if shareable(o.kind) && !o.create.trim().is_empty() {
                client
                    .batch_execute("SAVEPOINT pgsnap_obj")
                    .await
                    .map_err(|e| Error::pg("savepoint", e))?;
                // Released once done with: a savepoint of the same name
                // nests in the last, and a thousand functions' nested
                // subtransactions slowed each statement after them (QA).
                match client
                    .batch_execute(&format!("{}; RELEASE SAVEPOINT pgsnap_obj", stmts[0]))
                    .await
                {
                    Ok(()) => {}
                    // One compared by definition was found absent: its name
                    // taken now is a clash (an enum named like a table's
                    // row type, QA), not the same object.
                    Err(e) if is_duplicate(&e) && !super::shared::compared(o.kind) => {
                        client
                            .batch_execute("ROLLBACK TO SAVEPOINT pgsnap_obj")
                            .await
                            .map_err(|e| Error::pg("rollback to savepoint", e))?;
                        reused.push(o.identity.clone());
                        continue;
                    }
                    Err(e) => return Err(Error::pg(format!("creating {}", o.identity), e)),
                }
                run_statements(client, &o.identity, &stmts[1..]).await?;
            } else {
                run_statements(client, &o.identity, &stmts).await?;
            }
        }
        if let Some(aside) = aside {
            aside.put_back(client).await?;
        }
        Ok(PreData {
            dropped,
            reused,
            incoming,
        })
    }
    .await;
    match res {
        Ok(v) if own => {
            // The first change that outlives the restore's process.
            if !v.incoming.is_empty() {
                progress.event(Event::KeysDropped(clean::add_back(&v.incoming)));
            }
            progress.event(Event::Changing);
            client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| Error::pg("committing the pre-data transaction", e))?;
            Ok(v)
        }
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(match e {
                // Says so already.
                e @ Error::Refused(_) => e,
                // The restore's own transaction says it itself.
                e if !own => e,
                e => {
                    let mut note = "nothing was changed: the definitions (and --clean's drops) \
                                    run in one transaction, which was rolled back"
                        .to_string();
                    // "out of shared memory": the server's lock table.
                    if matches!(&e, Error::Postgres { code: Some(c), .. } if c == "53200") {
                        note.push_str(&format!(
                            "; that transaction holds a lock on each relation it creates or \
                             drops ({} here) until it commits: raise max_locks_per_transaction \
                             (needs a restart), or restore in parts (--schema)",
                            plan.pre_data
                                .iter()
                                .filter(|p| p.kind.is_relation() || p.kind == ObjectKind::Sequence)
                                .count()
                                + checked.conflicts.len()
                        ));
                    }
                    Error::RolledBack {
                        error: Box::new(e),
                        note,
                    }
                }
            })
        }
    }
}

/// What the target's encoding means for the rows: a refusal, and a
/// warning.
/// - The table data of a backup in the source database's own encoding
///   (`SchemaModel::data_encoding`) loads through the server's conversion
///   to the target's: refused when the server has none (LATIN1 to WIN1252,
///   say, which only UTF-8 connects), before any change rather than at the
///   first COPY. pg_restore fails there too.
/// - A target in an encoding that lacks characters the source's has (UTF8
///   into LATIN1): said beforehand, in the dry run too, since a row with
///   one fails the load (QA: the dry run said nothing).
async fn encodings(client: &Client, plan: &Plan) -> Result<(Option<String>, Option<String>)> {
    if !plan.tables.iter().any(|t| t.load_data && t.rows > 0) {
        return Ok((None, None));
    }
    let to: String = client
        .query_one("SELECT pg_catalog.current_setting('server_encoding')", &[])
        .await
        .map_err(|e| Error::pg("reading the target's encoding", e))?
        .get(0);
    let source = plan.model.encoding.as_str();
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    // UTF8 holds every character, SQL_ASCII stores any byte; the same
    // encoding holds what it held.
    let holds_all = source.is_empty() || is(&to, source) || is(&to, "UTF8") || is(&to, "SQL_ASCII");
    let narrower = (!holds_all).then(|| {
        format!(
            "the target database is in {to} and the backup's in {source}: a value with a \
             character {to} does not have fails its table's load (with --single-transaction \
             nothing is changed; without it, what was created before stays); a database in \
             {source} or UTF8 holds them all"
        )
    });
    let Some(from) = plan.model.data_encoding() else {
        return Ok((None, narrower));
    };
    if is(&to, from) || is(&to, "SQL_ASCII") {
        return Ok((None, narrower));
    }
    // The catalog, not a trial `convert()`: a failed statement would end
    // the one transaction of --single-transaction.
    let converts: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_conversion WHERE condefault \
               AND conforencoding = pg_catalog.pg_char_to_encoding($1) \
               AND contoencoding = pg_catalog.pg_char_to_encoding($2))",
            &[&from, &to],
        )
        .await
        .map_err(|e| Error::pg("checking the target's encoding", e))?
        .get(0);
    if converts {
        return Ok((None, narrower));
    }
    let refusal = format!(
        "the backup's table data is in {from}, as its database holds it, and the server has \
         no conversion from {from} to the target's {to}; nothing was changed (restore into a \
         database in {from} or UTF8)"
    );
    Ok((Some(refusal), None))
}

/// Whether creating a shareable object failed because the target has one
/// of that name. `CREATE TEXT SEARCH PARSER`, `... TEMPLATE` and `...
/// DICTIONARY` do not look first: a catalog's unique index finds the name
/// taken.
fn is_duplicate(e: &tokio_postgres::Error) -> bool {
    let in_catalog = e
        .as_db_error()
        .is_some_and(|d| d.schema() == Some("pg_catalog"));
    matches!(
        e.code(),
        Some(c) if *c == SqlState::DUPLICATE_OBJECT
            || *c == SqlState::DUPLICATE_FUNCTION
            || *c == SqlState::DUPLICATE_SCHEMA
            || *c == SqlState::DUPLICATE_TABLE
            || (*c == SqlState::UNIQUE_VIOLATION && in_catalog)
    )
}

/// Creates the restore's event triggers, after everything else, as
/// pg_dump orders them: created sooner, they would fire on the restore's
/// own statements (an index build, a grant) and could refuse them, or
/// write rows the backup does not have.
pub async fn create_event_triggers(
    client: &Client,
    plan: &Plan,
    opts: &RestoreOptions,
    target_db: &str,
) -> Result<()> {
    for p in plan
        .post_data
        .iter()
        .filter(|p| p.kind == ObjectKind::EventTrigger)
    {
        let o = plan.object(p.id);
        run_statements(client, &o.identity, &statements(plan, o, opts, target_db)).await?;
    }
    Ok(())
}

/// Runs an object's statements (see [`statements`]) in order; a failure
/// names the object.
pub async fn run_statements(client: &Client, identity: &str, stmts: &[String]) -> Result<()> {
    for s in stmts {
        client
            .batch_execute(s)
            .await
            .map_err(|e| Error::pg(format!("restoring {identity}"), e))?;
    }
    Ok(())
}

/// Of the chosen tables' foreign keys to tables the restore leaves out
/// (`Plan::fk_candidates`), keeps those whose referenced table the target
/// has, to add after the load: `--table T --clean` dropped T's keys to the
/// live tables with it and made T anew without them (QA). Returns their
/// identities, and a warning for each the target's table cannot take (no
/// unique key on the columns it references), foreseen so that the dry run
/// says it too; the rest stay skipped.
pub async fn foreign_keys_to_target(
    client: &Client,
    plan: &mut Plan,
) -> Result<(Vec<String>, Vec<String>)> {
    let names: Vec<String> = plan
        .fk_candidates
        .iter()
        .map(|(id, _)| relation_name(plan, plan.object(*id).references).unwrap_or_default())
        .collect();
    // Each key's referenced columns, a JSON array per key.
    let columns: Vec<String> = plan
        .fk_candidates
        .iter()
        .map(|(id, _)| {
            serde_json::to_string(&referenced_columns(&plan.object(*id).create)).unwrap_or_default()
        })
        .collect();
    let rows = client
        .query(
            "SELECT t IS NOT NULL, pg_catalog.cardinality(k) = 0 OR EXISTS ( \
                 SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = t AND i.indisunique \
                   AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL \
                   AND i.indexprs IS NULL AND i.indnkeyatts = pg_catalog.cardinality(k) \
                   AND (SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attname) \
                        FROM pg_catalog.generate_series(0, i.indnkeyatts - 1) n \
                        JOIN pg_catalog.pg_attribute a ON a.attrelid = t AND a.attnum = i.indkey[n]) \
                       = (SELECT pg_catalog.array_agg(x ORDER BY x) FROM pg_catalog.unnest(k) x)) \
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY u(n, c, i) \
             CROSS JOIN LATERAL (SELECT CASE WHEN n <> '' THEN pg_catalog.to_regclass(n)::oid END AS t, \
                                        ARRAY(SELECT pg_catalog.jsonb_array_elements_text(c::jsonb)) AS k) l \
             ORDER BY i",
            &[&names, &columns],
        )
        .await
        .map_err(|e| Error::pg("looking for the tables foreign keys reference", e))?;
    let (mut kept, mut warnings) = (Vec::new(), Vec::new());
    for (((id, line), row), name) in plan.fk_candidates.clone().into_iter().zip(rows).zip(&names) {
        if !row.get::<_, bool>(0) {
            continue;
        }
        plan.skipped_fks.retain(|s| *s != line);
        let o = plan.object(id);
        if !row.get::<_, bool>(1) {
            warnings.push(format!(
                "{} will not be added: the target's {name} has no unique key on the columns it \
                 references; once it has one: {}",
                o.identity,
                o.create.trim()
            ));
            continue;
        }
        kept.push(o.identity.clone());
        plan.fks_to_target.push(id);
    }
    Ok((kept, warnings))
}

/// The backup's foreign keys from tables the restore leaves out to tables
/// it restores (`Plan::fk_incoming`) that the target's table of that name
/// lacks: what a `DROP TABLE ... CASCADE` took along, or an interrupted
/// `--clean` had dropped to add back (QA: its rerun restored the table and
/// said only that the keys were skipped). Their tables are not the
/// restore's to change, so each is a warning with its statement.
pub async fn missing_incoming_keys(client: &Client, plan: &Plan) -> Result<Vec<String>> {
    if plan.fk_incoming.is_empty() {
        return Ok(Vec::new());
    }
    let (tables, names): (Vec<String>, Vec<String>) = plan
        .fk_incoming
        .iter()
        .map(|&id| {
            let o = plan.object(id);
            (
                relation_name(plan, o.belongs_to).unwrap_or_default(),
                o.name.clone(),
            )
        })
        .unzip();
    let rows = client
        .query(
            "SELECT t IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c \
                 WHERE c.conrelid = t AND c.conname = n AND c.contype = 'f') \
             FROM unnest($1::text[], $2::text[]) WITH ORDINALITY u(r, n, i) \
             CROSS JOIN LATERAL (SELECT CASE WHEN r <> '' THEN pg_catalog.to_regclass(r)::oid END AS t) l \
             ORDER BY i",
            &[&tables, &names],
        )
        .await
        .map_err(|e| Error::pg("looking for the foreign keys to the restored tables", e))?;
    Ok(plan
        .fk_incoming
        .iter()
        .zip(rows)
        .filter(|(_, row)| row.get::<_, bool>(0))
        .map(|(&id, _)| {
            let o = plan.object(id);
            format!(
                "the backup has {}, which the target's table lacks (dropped with the table it \
                 references, or by an interrupted --clean?): the restore leaves that table as \
                 it is; to add the key: {}",
                o.identity,
                o.create.trim()
            )
        })
        .collect())
}

/// The referenced columns of a foreign key's `ADD CONSTRAINT` as the
/// catalog writes it, every name quoted (`... REFERENCES "s"."t"("a",
/// "b") ...`); empty when it does not read so (no check is made then).
fn referenced_columns(create: &str) -> Vec<String> {
    let Some(at) = create.find(") REFERENCES \"") else {
        return vec![];
    };
    let mut rest = &create[at + ") REFERENCES ".len()..];
    // The table's name: quoted parts joined by dots.
    loop {
        let Some((_, after)) = quoted_name(rest) else {
            return vec![];
        };
        rest = after;
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None => break,
        }
    }
    let Some(mut list) = rest.strip_prefix('(') else {
        return vec![];
    };
    let mut columns = Vec::new();
    loop {
        let Some((name, after)) = quoted_name(list) else {
            return vec![];
        };
        columns.push(name);
        if let Some(r) = after.strip_prefix(", ") {
            list = r;
        } else if after.starts_with(')') {
            return columns;
        } else {
            return vec![];
        }
    }
}

/// The quoted identifier `text` starts with, unquoted, and what follows it.
fn quoted_name(text: &str) -> Option<(String, &str)> {
    if !text.starts_with('"') {
        return None;
    }
    let end = super::plan::closing(text.as_bytes(), 0, b'"', false)?;
    Some((text[1..end - 1].replace("\"\"", "\""), &text[end..]))
}

/// Adds the foreign keys `foreign_keys_to_target` kept, once the rows are
/// in. Restored rows that reference rows the target's table no longer has
/// (deleted since the backup) add it `NOT VALID`: new rows are checked, and
/// a warning says to fix the old ones and validate it. One that cannot be
/// added at all (the target's table differs) is a warning too: the rows
/// are in, and the key was the target's own business before.
pub async fn add_foreign_keys_to_target(
    client: &Client,
    plan: &Plan,
    opts: &RestoreOptions,
    target_db: &str,
    one: bool,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for &id in &plan.fks_to_target {
        let o = plan.object(id);
        let key = Key {
            identity: &o.identity,
            table: relation_name(plan, o.belongs_to).unwrap_or("...".into()),
            name: &o.name,
            what: "restored rows reference rows the target no longer has",
            must: false,
        };
        // As the restore's own keys: FORCE ROW LEVEL SECURITY on a table
        // it created is lifted around the validation (QA: not added, exit 0).
        let forced = super::data::forced_row_security(plan, [o.belongs_to, o.references]);
        let stmts = statements(plan, o, opts, target_db);
        warnings.extend(add_key(client, &key, stmts, &forced, one).await?);
    }
    Ok(warnings)
}

/// Adds back the target's foreign keys that `--clean` dropped with the
/// tables they reference ([`clean::IncomingKey`]), once those tables' rows
/// are in, taking each from `pending` as it goes: what is left there when
/// this fails is not back. The target's rows that reference rows the
/// backup does not have (made since it) add the key `NOT VALID`, with a
/// warning, as for the restore's own keys to the target's tables; a key
/// that cannot go back at all (rows violate it on a partitioned table,
/// which takes no `NOT VALID` key) fails the restore, whose error gives
/// the statements still to run.
pub async fn add_incoming_keys(
    client: &Client,
    plan: &Plan,
    pending: &mut Vec<clean::IncomingKey>,
    one: bool,
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    // Each is tried, whatever became of the others (QA: one that failed
    // left those after it out too); the first failure fails the restore,
    // with those that did not go back still in `pending`.
    let mut failed = None;
    let mut i = 0;
    while let Some(k) = pending.get(i) {
        let identity = k.identity();
        let key = Key {
            identity: &identity,
            table: k.table.clone(),
            name: &k.name,
            what: "the target's rows reference rows the restored table does not have",
            must: true,
        };
        let forced: BTreeSet<String> = plan
            .tables
            .iter()
            .filter(|t| t.force_rls && qualified(&t.schema, &t.name) == k.references)
            .map(|t| qualified(&t.schema, &t.name))
            .collect();
        match add_key(client, &key, k.add_statements(), &forced, one).await {
            Ok(w) => {
                warnings.extend(w);
                pending.remove(i);
            }
            // In one transaction the first failure ends it all.
            Err(e) if one => return Err(e),
            Err(e) => {
                failed.get_or_insert(e);
                i += 1;
            }
        }
        // What a stop from here on says is not back (QA: it named all).
        if !one {
            progress.event(Event::KeysDropped(clean::add_back(pending)));
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(warnings),
    }
}

/// A foreign key added after the load, as messages name it.
struct Key<'a> {
    identity: &'a str,
    /// Its table, qualified.
    table: String,
    name: &'a str,
    /// Why adding it may find rows without a match.
    what: &'static str,
    /// The target's own, which the restore dropped: not adding it fails
    /// the restore rather than warn.
    must: bool,
}

/// Adds one key after the load (`stmts`: its `ADD CONSTRAINT` first):
/// `NOT VALID` when rows violate it, a warning either way it did not go in
/// whole; an error when a lock was not granted in time, or in one
/// transaction. `forced`: tables whose FORCE ROW LEVEL SECURITY is lifted
/// around it.
async fn add_key(
    client: &Client,
    key: &Key<'_>,
    stmts: Vec<String>,
    forced: &BTreeSet<String>,
    one: bool,
) -> Result<Option<String>> {
    let lifted = |mut stmts: Vec<String>| {
        super::data::lift_forced_row_security(forced, &mut stmts);
        stmts
    };
    let failed = match add_atomically(client, &lifted(stmts.clone()), one).await? {
        None => return Ok(None),
        Some(e) => e,
    };
    let not_valid = stmts
        .first()
        .map(|s| s.trim_end())
        .filter(|s| !s.ends_with("NOT VALID;"))
        .map(|s| format!("{} NOT VALID;", s.trim_end_matches(';')));
    let violated = failed.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION);
    let failed = match not_valid.filter(|_| violated) {
        Some(first) => {
            let mut nv = stmts.clone();
            nv[0] = first;
            match add_atomically(client, &lifted(nv), one).await? {
                None => {
                    return Ok(Some(format!(
                        "{} was added NOT VALID: {} ({}); new rows are checked; fix the old \
                         ones, then run ALTER TABLE {} VALIDATE CONSTRAINT {}",
                        key.identity,
                        key.what,
                        Error::pg_detail(&failed),
                        key.table,
                        ident(key.name)
                    )));
                }
                Some(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => e,
                // A partitioned table takes no NOT VALID key (PostgreSQL
                // 15): the rows that violate it are what to say.
                Some(_) => failed,
            }
        }
        None => failed,
    };
    // A lock not granted in time fails the restore, as every wait past
    // --lock-timeout does, and so does any failure in one transaction,
    // which promises all or nothing: exit 0 without the key read as a
    // whole restore (QA). So does the target's own key that --clean
    // dropped: exit 0 without it changed the live schema unasked (QA).
    if one || key.must || failed.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return Err(Error::pg(format!("restoring {}", key.identity), failed));
    }
    Ok(Some(format!(
        "{} was not added: {}; once the target's table can take it: {}",
        key.identity,
        Error::pg_detail(&failed),
        stmts.join(" ")
    )))
}

/// The qualified name of the relation object `id` is or belongs to (a
/// constraint's table).
fn relation_name(plan: &Plan, id: Option<u32>) -> Option<String> {
    let r = plan.object(plan.model.owning_relation(id?)?);
    Some(qualified(r.schema.as_deref().unwrap_or_default(), &r.name))
}

/// Runs `stmts` all or none (a transaction, or a savepoint inside the
/// restore's one): the statement error, if one failed.
async fn add_atomically(
    client: &Client,
    stmts: &[String],
    one: bool,
) -> Result<Option<tokio_postgres::Error>> {
    let (begin, commit, rollback) = if one {
        (
            "SAVEPOINT pgsnap_fk",
            "RELEASE SAVEPOINT pgsnap_fk",
            "ROLLBACK TO SAVEPOINT pgsnap_fk",
        )
    } else {
        ("BEGIN", "COMMIT", "ROLLBACK")
    };
    let control = |e| Error::pg("adding a foreign key to a table of the target", e);
    client.batch_execute(begin).await.map_err(control)?;
    let failed = failing_statement(client, stmts).await.map(|(_, e)| e);
    let end = if failed.is_some() { rollback } else { commit };
    client.batch_execute(end).await.map_err(control)?;
    Ok(failed)
}

/// Runs `stmts` in order up to the first that fails: that statement and
/// its error, if one did.
async fn failing_statement<'a>(
    client: &Client,
    stmts: &'a [String],
) -> Option<(&'a str, tokio_postgres::Error)> {
    for s in stmts {
        if let Err(e) = client.batch_execute(s).await {
            return Some((s, e));
        }
    }
    None
}

/// A database property's statement for a message: what it sets, and not
/// the value, which may be a secret (a custom setting holding a token, a
/// comment). `db` is the target's name as the statements quote it; only
/// the shapes the backup writes are named, anything else by its command.
fn property_statement(stmt: &str, db: &str) -> String {
    let stmt = stmt.trim().trim_end_matches(';');
    let setting = |head: &str, rest: &str| match rest.strip_prefix("SET ") {
        Some(r) => {
            let name = r
                .split(|c: char| c.is_whitespace() || c == '=')
                .next()
                .unwrap_or_default();
            format!("{head} SET {name}")
        }
        None => format!(
            "{head} {}",
            rest.split_whitespace().next().unwrap_or_default()
        ),
    };
    let head = format!("ALTER DATABASE {db}");
    if let Some(rest) = stmt.strip_prefix(&format!("{head} ")) {
        return setting(&head, rest);
    }
    let marker = format!(" IN DATABASE {db} ");
    if let (true, Some(at)) = (stmt.starts_with("ALTER ROLE "), stmt.find(&marker)) {
        return setting(&stmt[..at + marker.len() - 1], &stmt[at + marker.len()..]);
    }
    if stmt.starts_with("COMMENT ON DATABASE ") {
        return format!("COMMENT ON DATABASE {db}");
    }
    if stmt.starts_with("GRANT ") || stmt.starts_with("REVOKE ") {
        return stmt.to_string();
    }
    stmt.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Sets every restored sequence to its state at the backup's snapshot.
pub async fn set_sequences(
    client: &Client,
    plan: &Plan,
    checked: &Checked,
    opts: &RestoreOptions,
) -> Result<Vec<String>> {
    // A shared sequence the target already has goes on from its own state,
    // unless that is behind the backup's: the restored rows may hold the
    // numbers between (a schema's own sequence, reused with `--schema`,
    // would hand them out again). It moves forward only, never back.
    let reused: HashSet<(&str, &str)> = checked
        .existing
        .iter()
        .map(|&id| plan.object(id))
        .filter(|o| o.kind == ObjectKind::Sequence)
        .filter_map(|o| Some((plan.target_schema(o)?, o.name.as_str())))
        .collect();
    // With --data-only every sequence is the target's, live: one the
    // application has moved past the backup's value is not set back (a
    // table's rows loaded with --data-only brought its sequence back with
    // them, and the numbers handed out since came out again; QA). Only a
    // sequence named with --table is set exactly: the way to set it back.
    let chosen: HashSet<(&str, &str)> = plan
        .chosen_sequences
        .iter()
        .map(|&id| plan.object(id))
        .filter_map(|o| Some((plan.target_schema(o)?, o.name.as_str())))
        .collect();
    let mut kept = Vec::new();
    for s in &plan.sequences {
        let q = qualified(&s.schema, &s.name);
        let key = (s.schema.as_str(), s.name.as_str());
        let forward_only = reused.contains(&key) || (opts.data_only && !chosen.contains(&key));
        if forward_only {
            match against(client, &q, s.last_value, s.is_called).await? {
                Ordering::Less => {}
                Ordering::Equal => continue,
                Ordering::Greater => {
                    if !reused.contains(&key) {
                        kept.push(q);
                    }
                    continue;
                }
            }
        }
        client
            .execute(
                "SELECT pg_catalog.setval($1::text::regclass, $2, $3)",
                &[&q, &s.last_value, &s.is_called],
            )
            .await
            .map_err(|e| Error::pg(format!("setting sequence {q}"), e))?;
    }
    Ok(match kept.is_empty() {
        true => vec![],
        false => vec![format!(
            "--data-only left {} sequence(s) as the target has them, past the backup's value, \
             so that no number is handed out twice: {} (to set one back, name it with --table, \
             or for an identity column's run setval)",
            kept.len(),
            first_of(&kept, 12)
        )],
    })
}

/// Where sequence `q` of the target stands against the backup's state
/// (`last_value`, `is_called`), in the sequence's direction: `Less` when it
/// would hand out a value the backup's had already passed.
async fn against(client: &Client, q: &str, last_value: i64, is_called: bool) -> Result<Ordering> {
    let row = client
        .query_one(
            &format!(
                "SELECT s.last_value, s.is_called, p.seqincrement FROM {q} s, \
                 pg_catalog.pg_sequence p WHERE p.seqrelid = $1::text::regclass"
            ),
            &[&q],
        )
        .await
        .map_err(|e| Error::pg(format!("reading sequence {q}"), e))?;
    let step = i128::from(row.get::<_, i64>(2));
    let next = |last: i64, called: bool| i128::from(last) + if called { step } else { 0 };
    let theirs = next(row.get(0), row.get(1));
    let ours = next(last_value, is_called);
    Ok(if step > 0 {
        theirs.cmp(&ours)
    } else {
        ours.cmp(&theirs)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn brief_cuts_a_long_statement_at_a_character() {
        assert_eq!(super::brief("DROP TABLE a"), "DROP TABLE a");
        let long = format!("DROP TABLE {}", "\"é\", ".repeat(200));
        let b = super::brief(&long);
        assert!(b.len() < 200, "{b}");
        assert!(
            b.ends_with(&format!("... ({} bytes in all)", long.len())),
            "{b}"
        );
    }

    use super::{first_of, referenced_columns};

    #[test]
    fn a_foreign_keys_referenced_columns_are_read_from_its_definition() {
        assert_eq!(
            referenced_columns(
                "ALTER TABLE ONLY \"s\".\"o\" ADD CONSTRAINT \"k\" FOREIGN KEY (\"a\", \"b\") \
                 REFERENCES \"my \"\"s\"\"\".\"T(x)\"(\"id\", \"Two, \"\"q\"\"\") ON DELETE CASCADE;"
            ),
            ["id", "Two, \"q\""]
        );
        assert!(referenced_columns("ALTER TABLE x ADD CHECK (a > 0);").is_empty());
        assert!(referenced_columns(") REFERENCES \"s\".\"t\"(\"id\"").is_empty());
    }

    #[test]
    fn long_lists_are_cut_with_a_count() {
        let names: Vec<String> = (0..15).map(|i| format!("t{i}")).collect();
        assert_eq!(first_of(&names[..2], 12), "t0, t1");
        let cut = first_of(&names, 12);
        assert!(
            cut.starts_with("t0, t1,") && cut.contains("t11 and 3 more"),
            "{cut}"
        );
    }

    /// An older backup's definitions that place objects themselves are
    /// found (only backups before model format 2 are asked).
    #[test]
    fn older_definitions_naming_a_tablespace_are_told_apart() {
        use crate::schema::order::tests::obj;
        use crate::schema::ObjectKind;
        let with = |kind, create: &str, space: Option<&str>| {
            let mut o = obj(0, kind, "x", &[]);
            o.create = create.into();
            o.tablespace = space.map(Into::into);
            super::names_tablespace_inline(&o)
        };
        let table = "CREATE TABLE \"s\".\"t\" (\n    \"id\" integer\n)\nTABLESPACE \"fast\";";
        assert!(with(ObjectKind::Table, table, None));
        assert!(!with(
            ObjectKind::Table,
            "CREATE TABLE \"s\".\"t\" (\n);",
            None
        ));
        let index =
            "CREATE INDEX i ON s.t USING btree (id);\nALTER INDEX \"s\".i SET TABLESPACE \"fast\";";
        assert!(with(ObjectKind::Index, index, None));
        let mv = "CREATE MATERIALIZED VIEW \"s\".\"m\" TABLESPACE \"fast\" AS\n SELECT 1;";
        assert!(with(ObjectKind::MaterializedView, mv, None));
        let quoted = "CREATE MATERIALIZED VIEW \"s\".\"m\" AS\n SELECT ' TABLESPACE ';";
        assert!(!with(ObjectKind::MaterializedView, quoted, None));
    }

    /// A property's statement in a message names what it sets, never the
    /// value (a custom setting may hold a token).
    #[test]
    fn property_statements_leave_values_out() {
        for (stmt, said) in [
            (
                "ALTER ROLE \"r\" IN DATABASE \"d\" SET app.token TO 'secret';",
                "ALTER ROLE \"r\" IN DATABASE \"d\" SET app.token",
            ),
            (
                "ALTER DATABASE \"d\" SET work_mem='7MB';",
                "ALTER DATABASE \"d\" SET work_mem",
            ),
            (
                "COMMENT ON DATABASE \"d\" IS 'the key is x';",
                "COMMENT ON DATABASE \"d\"",
            ),
            // QA: cut at the value's " SET ", the comment was printed.
            (
                "COMMENT ON DATABASE \"d\" IS 'vault token SET s3cr3t end';",
                "COMMENT ON DATABASE \"d\"",
            ),
            (
                "ALTER DATABASE \"d\" SET search_path TO 'a SET b';",
                "ALTER DATABASE \"d\" SET search_path",
            ),
            (
                "REVOKE CONNECT ON DATABASE \"d\" FROM PUBLIC;",
                "REVOKE CONNECT ON DATABASE \"d\" FROM PUBLIC",
            ),
            ("SELECT 'x SET y IS z'", "SELECT"),
        ] {
            assert_eq!(super::property_statement(stmt, "\"d\""), said);
        }
    }
}
