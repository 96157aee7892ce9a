//! Restore: whole databases or chosen tables, parallel, exact, and safe.
//!
//! Plan, then execute. The plan is made from the archive's footer, index and
//! schema section alone: which objects in which order, which chunks. Before
//! the first statement runs on the target, three things are checked:
//! every chunk the restore will use authenticates (so a tampered archive or a
//! wrong key changes nothing, see docs/design.md, "Restore safety"), no object the
//! restore creates already exists (unless `--clean`), and every role named
//! as owner (unless `--no-owner`) or in privileges (unless `--no-acl`)
//! exists; provider-managed roles, extensions and schemas the target lacks
//! are left out and reported instead (`provider`). Then: pre-data DDL in one
//! transaction; table data over parallel `COPY ... FROM STDIN` and post-data
//! (indexes, constraints, triggers, ...) on one dependency-aware parallel
//! scheduler, so a table's indexes build while others still load; sequence
//! states; and a check of every table's rows (as the server counted them in
//! the COPY command tags) against the manifest.

mod clean;
mod data;
mod default_acl;
#[doc(hidden)]
pub mod fuzz;
mod key_order;
mod names;
mod plan;
mod provider;
mod schedule;
mod shared;
mod target;
mod units;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use crate::backup::{kind, TableMeta};
use crate::credentials::Credentials;
use crate::error::{Error, Result};
use crate::pg::conn::{copy_encoding, ConnInfo, Session};
use crate::pg::snapshot::qualified;
use crate::progress::{Event, Progress};
use crate::repo::reader::StoredArchive;
use crate::repo::{Manifest, Repository};

pub use plan::{Plan, PlannedTable, TableName};

/// What a restore stopped or failed after `--clean` dropped the target's
/// foreign keys to the tables it replaces ([`Event::KeysDropped`]) says
/// about them: the statements that add them back, or nothing when there
/// are none.
pub fn keys_not_back(add_back: &[String]) -> String {
    if add_back.is_empty() {
        return String::new();
    }
    format!(
        "; --clean dropped the target's foreign keys to the tables it replaces, and they are not \
         back: once the rows are in, run {}",
        add_back.join(" ")
    )
}

/// What [`run`] restores, and how: the `pgsnap restore` flags. The
/// default restores everything with one job and no lock timeout (the
/// binary's defaults are two jobs and 60 s).
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Parallel sessions for the data and the post-data (0 counts as 1).
    pub jobs: usize,
    /// Tables to restore, with what they need (`--table`); empty with
    /// empty `schemas`: the whole backup.
    pub tables: Vec<TableName>,
    /// Schemas to restore whole (`--schema`), by exact name.
    pub schemas: Vec<String>,
    /// Definitions only, no rows.
    pub schema_only: bool,
    /// Rows only, into tables the target already has.
    pub data_only: bool,
    /// Create the chosen tables in this schema instead of their own (a new
    /// one, next to the live tables). The exact name: the CLI folds an
    /// unquoted one to lower case first; the library does not.
    pub into_schema: Option<String>,
    /// Drop the objects the restore would create where the target has them
    /// (and put back the target's foreign keys to them after the load).
    pub clean: bool,
    /// Check and plan only: the report's `plan` says what would run.
    pub dry_run: bool,
    /// Objects belong to the restoring role, not the backup's owners.
    pub no_owner: bool,
    /// Leave privileges (grants, default privileges) out.
    pub no_acl: bool,
    /// Leave the target database's own settings, grants and comment alone.
    pub no_database_properties: bool,
    /// Create every relation and index in the target's default tablespace
    /// (`--no-tablespaces`), not the one the backup names, which the target
    /// may lack (another server, a managed database).
    pub no_tablespaces: bool,
    /// Run the whole restore (`--clean`'s drops included) in one
    /// transaction on one connection: it commits only once every row is in
    /// and checked, and a failure anywhere leaves the target as it was.
    /// `jobs` is then 1. Slower, and holds its locks to the end.
    pub single_transaction: bool,
    /// With `data_only`: the target's triggers, foreign-key checks
    /// included, do not fire while rows load (`session_replication_role =
    /// replica` in the load sessions, which needs a superuser or that
    /// parameter's SET privilege), as `pg_restore --disable-triggers`.
    pub disable_triggers: bool,
    /// Wait at most this long for each lock the restore's statements ask
    /// for in the target (`--clean`'s drops of tables a live application
    /// reads, say); `None` waits as long as it takes, as pg_restore does.
    pub lock_timeout: Option<std::time::Duration>,
}

/// The session's `lock_timeout` from [`RestoreOptions::lock_timeout`].
pub(crate) async fn set_lock_timeout(s: &Session, opts: &RestoreOptions) -> Result<()> {
    let Some(t) = opts.lock_timeout else {
        return Ok(());
    };
    s.client
        // The server's limit is an int of milliseconds (24.8 days).
        .batch_execute(&format!(
            "SET lock_timeout = {}",
            t.as_millis().clamp(1, i32::MAX as u128)
        ))
        .await
        .map_err(|e| Error::pg("setting lock_timeout", e))
}

/// A lock the restore waited for longer than `--lock-timeout`: says so,
/// and what to do (whatever wraps it: a rolled back or partial restore).
fn explain_lock_timeout(e: Error, opts: &RestoreOptions) -> Error {
    match e {
        Error::Postgres {
            context,
            detail,
            code,
        } if code.as_deref() == Some("55P03") => Error::Postgres {
            context,
            detail: format!(
                "{detail}: a lock was not granted within {}s; another session holds a lock on \
                 an object this restore drops, creates or changes (see pg_locks); retry when it \
                 is done, or raise --lock-timeout",
                opts.lock_timeout.map_or(0.0, |t| t.as_secs_f64())
            ),
            code,
        },
        Error::RolledBack { error, note } => Error::RolledBack {
            error: Box::new(explain_lock_timeout(*error, opts)),
            note,
        },
        Error::Incomplete { error, left } => Error::Incomplete {
            error: Box::new(explain_lock_timeout(*error, opts)),
            left,
        },
        e => e,
    }
}

/// One table's post-restore check.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub schema: String,
    pub name: String,
    pub expected_rows: u64,
    pub restored_rows: u64,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    pub backup_id: String,
    pub database: String,
    pub dry_run: bool,
    pub tables: usize,
    pub rows: u64,
    pub bytes_read: u64,
    /// The load read its chunks again after the authentication pass had
    /// (more than `data::KEEP_BYTES` to load): `bytes_read` counts them
    /// twice.
    pub chunks_read_twice: bool,
    pub archive_bytes: u64,
    pub seconds: f64,
    pub objects: usize,
    pub skipped_foreign_keys: Vec<String>,
    /// The chosen tables' foreign keys to tables the restore leaves out and
    /// the target has: added after the load (NOT VALID, with a warning,
    /// where restored rows reference rows the target no longer has).
    pub foreign_keys_to_target: Vec<String>,
    /// The target's foreign keys, on tables the restore leaves alone, to the
    /// tables `--clean` replaces: dropped with them and added back after the
    /// load as the target had them (NOT VALID, with a warning, where the
    /// target's rows reference rows the backup does not have).
    pub foreign_keys_from_target: Vec<String>,
    /// Objects and statements left out, with why: with --into-schema
    /// (triggers, policies, ...); provider-managed roles, extensions and
    /// schemas the target lacks (ownership falls back to the restoring role).
    pub skipped: Vec<String>,
    pub reused: Vec<String>,
    pub dropped: Vec<String>,
    /// What may make the restore fail though nothing refused it (foreign
    /// keys in a cycle with --data-only).
    pub warnings: Vec<String>,
    pub checks: Vec<TableCheck>,
    /// Seconds spent in each phase, in order.
    pub phases: Vec<(String, f64)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

/// Restores `manifest`'s backup into the database `target` names.
pub async fn run(
    repo: &Repository,
    manifest: &Manifest,
    creds: &Credentials,
    target: &ConnInfo,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    run_inner(repo, manifest, creds, target, opts, progress)
        .await
        .map_err(|e| explain_lock_timeout(e, opts))
}

async fn run_inner(
    repo: &Repository,
    manifest: &Manifest,
    creds: &Credentials,
    target: &ConnInfo,
    opts: &RestoreOptions,
    progress: Arc<dyn Progress>,
) -> Result<RestoreReport> {
    let t0 = Instant::now();
    if opts.schema_only && opts.data_only {
        return Err(Error::Usage(
            "--schema-only and --data-only exclude each other".into(),
        ));
    }
    // --data-only creates nothing, so --clean would drop nothing: refused
    // rather than accepted and silently ignored (pg_restore refuses it too).
    if opts.clean && opts.data_only {
        return Err(Error::Usage(
            "--clean and --data-only cannot be used together: --data-only creates nothing for \
             --clean to replace"
                .into(),
        ));
    }
    if let Some(schema) = &opts.into_schema {
        check_schema_name(schema)?;
    }
    progress.event(Event::Phase("open"));
    repo.check_archive_readable(manifest).await?;
    let archive = StoredArchive::open(repo.storage().clone(), &manifest.archive.key, creds)
        .await
        .map_err(|e| header_damage(manifest, e))?;
    if archive.size() != manifest.archive.size_bytes {
        return Err(Error::Integrity(format!(
            "archive is {} bytes, manifest says {}",
            archive.size(),
            manifest.archive.size_bytes
        )));
    }
    check_against_manifest(&archive, manifest)?;
    let plan = plan::make(&archive, manifest, opts).await?;
    // A copy is made next to the live tables, never over them: in their
    // own schema, --clean replaced the live objects (QA).
    if let Some(r) = &plan.retarget {
        // Named by a chosen table rather than its sequence (QA).
        let own = |(s, n): &&(String, String)| {
            *s == r.schema && plan.tables.iter().any(|t| t.schema == *s && t.name == *n)
        };
        let clash = r.relations.iter().find(own);
        if let Some((schema, name)) = clash.or(r.relations.iter().find(|(s, _)| *s == r.schema)) {
            return Err(Error::Usage(format!(
                "--into-schema {} is the schema {} is in: name a new schema for the copy",
                crate::pg::snapshot::ident(&r.schema),
                qualified(schema, name)
            )));
        }
    }
    let mut report = RestoreReport {
        backup_id: manifest.id.clone(),
        database: target.dbname().to_string(),
        dry_run: opts.dry_run,
        tables: plan.data_tables(),
        rows: plan::total(plan.tables.iter().map(|t| t.rows)),
        bytes_read: 0,
        chunks_read_twice: false,
        archive_bytes: archive.size(),
        seconds: 0.0,
        objects: plan.pre_data.len() + plan.post_data.len(),
        skipped_foreign_keys: plan.skipped_fks.clone(),
        foreign_keys_to_target: vec![],
        foreign_keys_from_target: vec![],
        skipped: plan.skipped.clone(),
        reused: vec![],
        dropped: vec![],
        warnings: vec![],
        checks: vec![],
        phases: vec![],
        plan: None,
    };
    // From the start: "open" is the archive's header, key, index and plan.
    let mut mark = t0;
    let mut phase = |name: &str, report: &mut RestoreReport| {
        report
            .phases
            .push((name.to_string(), mark.elapsed().as_secs_f64()));
        mark = Instant::now();
    };
    phase("open", &mut report);
    let mut plan = plan;
    if opts.dry_run {
        // The target's checks only read: a dry run fails wherever the
        // restore would be refused (no such database, objects already
        // there without --clean, missing roles). It reads no chunk: the
        // restore authenticates them, `pgsnap verify` too.
        progress.event(Event::Phase("check target"));
        let session = Session::open(target).await?;
        set_lock_timeout(&session, opts).await?;
        let checked = check_target(&session.client, &mut plan, opts, &mut report).await?;
        // What the restore would leave as the target has it (a --clean drop
        // that takes one along makes it anew).
        report.reused = plan
            .pre_data
            .iter()
            .filter(|p| checked.keeps(p.id))
            .map(|p| p.identity.clone())
            .collect();
        if opts.clean {
            report.dropped = checked.would_drop;
        }
        report.bytes_read = archive.bytes_read();
        report.seconds = t0.elapsed().as_secs_f64();
        report.plan = Some(plan);
        return Ok(report);
    }

    // The target's checks only read, and come first: a wrong database
    // name, an object in the way or a missing role is reported at once,
    // not after the whole archive was fetched and authenticated.
    progress.event(Event::Phase("check target"));
    let session = Session::open(target).await?;
    set_lock_timeout(&session, opts).await?;
    let checked = check_target(&session.client, &mut plan, opts, &mut report).await?;
    phase("check target", &mut report);

    // Nothing below may change the target until every chunk the (checked)
    // plan loads authenticated.
    progress.event(Event::Phase("authenticate"));
    report.chunks_read_twice = !data::authenticate(&archive, &plan, opts.jobs).await?;
    phase("authenticate", &mut report);

    let one = opts.single_transaction;
    let workers = if one {
        Vec::new()
    } else {
        schedule::open_sessions(&plan, target, opts).await?
    };

    progress.event(Event::Phase("pre-data"));
    if one {
        schedule::configure(&session, &plan.model.encoding, opts).await?;
        session
            .client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| Error::pg("starting the restore's transaction", e))?;
    }
    let rolled_back = |e: Error| if one { Error::rolled_back(e) } else { e };
    let pre = target::apply_pre_data(&session.client, &plan, &checked, opts, progress.as_ref())
        .await
        .map_err(rolled_back)?;
    report.dropped = pre.dropped;
    report.reused = pre.reused;
    report.foreign_keys_from_target = pre.incoming.iter().map(|k| k.identity()).collect();
    // Until they are back, a failure says how to add them (not with
    // --single-transaction, which rolls their drops back).
    let mut incoming = pre.incoming;
    let not_back = |e: Error, incoming: &[clean::IncomingKey]| match (one, e) {
        (false, Error::Incomplete { error, left }) => Error::Incomplete {
            error,
            left: format!("{left}{}", keys_not_back(&clean::add_back(incoming))),
        },
        (_, e) => e,
    };
    phase("pre-data", &mut report);

    progress.event(Event::Planned {
        tables: plan.data_tables(),
        rows_estimate: report.rows,
        bytes_estimate: plan::total(plan.tables.iter().map(|t| t.raw_bytes)),
    });
    progress.event(Event::Phase("data"));
    let archive = Arc::new(archive);
    let started = Instant::now();
    let (kept, given) = if one {
        (None, Some(session))
    } else {
        (Some(session), None)
    };
    let outcome = schedule::run(
        &archive,
        &plan,
        target,
        opts,
        &checked.target_db,
        &progress,
        match given {
            Some(s) => schedule::Sessions::One(s),
            None => schedule::Sessions::Workers(workers),
        },
    )
    .await
    .map_err(|e| not_back(repeat_warnings(e, &report.warnings), &incoming))?;
    let session = kept
        .or(outcome.given)
        .expect("the scheduler gives the session back");
    // Data and post-data overlap (see `schedule`): "data" ends when the last
    // row is in, "post-data" when the last index or constraint is.
    report.phases.push(("data".into(), outcome.data_seconds));
    report.phases.push((
        "post-data".into(),
        (started.elapsed().as_secs_f64() - outcome.data_seconds).max(0.0),
    ));
    report.checks = check_rows(&plan, &outcome.rows);
    // The rows loaded, not the backup's: none with --schema-only.
    report.rows = report.checks.iter().map(|c| c.restored_rows).sum();
    // Checked before the sequences are set: in one transaction a mismatch
    // then rolls everything back, setval's (not transactional) included.
    let finish = async {
        if let Some(bad) = report.checks.iter().find(|c| !c.ok) {
            return Err(Error::Integrity(format!(
                "restored table {} has {} rows, the backup has {}",
                qualified(&bad.schema, &bad.name),
                bad.restored_rows,
                bad.expected_rows
            )));
        }
        data::load_large_objects(&archive, &plan, &session.client, one).await?;
        let mut fk_warnings = target::add_incoming_keys(
            &session.client,
            &plan,
            &mut incoming,
            one,
            progress.as_ref(),
        )
        .await?;
        fk_warnings.extend(
            target::add_foreign_keys_to_target(
                &session.client,
                &plan,
                opts,
                &checked.target_db,
                one,
            )
            .await?,
        );
        if one {
            // Deferred constraints are checked now rather than at COMMIT:
            // a violation must fail the restore before setval, which no
            // rollback takes back.
            session
                .client
                .batch_execute("SET CONSTRAINTS ALL IMMEDIATE")
                .await
                .map_err(|e| Error::pg("checking deferred constraints", e))?;
        }
        target::create_event_triggers(&session.client, &plan, opts, &checked.target_db).await?;
        let kept = target::set_sequences(&session.client, &plan, &checked, opts).await?;
        if one {
            session
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| Error::pg("committing the restore's transaction", e))?;
        }
        Ok(fk_warnings.into_iter().chain(kept).collect::<Vec<_>>())
    };
    let late_warnings = match finish.await {
        Ok(w) => w,
        Err(e) => {
            if one {
                let _ = session.client.batch_execute("ROLLBACK").await;
                return Err(rolled_back(e));
            }
            // Every stream committed: the loaded rows stay.
            return Err(not_back(
                schedule::left_behind(&plan, opts, &outcome.rows, &Default::default(), e),
                &incoming,
            ));
        }
    };
    report.warnings.extend(late_warnings);
    report.bytes_read = archive.bytes_read();
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

/// `into_schema` as the library takes it, the exact name (the CLI folds
/// an unquoted one to lower case first): one the server would cut short
/// (QA: the report then named a schema that did not exist), or one it
/// refuses, is refused before anything is read.
fn check_schema_name(schema: &str) -> Result<()> {
    let why = if schema.is_empty() {
        "is empty"
    } else if schema.len() > crate::filter::MAX_NAME_BYTES {
        "is longer than PostgreSQL's 63 bytes"
    } else if schema.starts_with("pg_") || schema == "information_schema" {
        "is one of PostgreSQL's own schemas"
    } else {
        return Ok(());
    };
    Err(Error::Usage(format!(
        "--into-schema: the schema name {} {why}",
        crate::pg::snapshot::ident(schema)
    )))
}

/// A warning given before the load (foreign keys in a cycle) is likely
/// what made it fail: the error of a load that failed repeats it.
fn repeat_warnings(e: Error, warnings: &[String]) -> Error {
    if warnings.is_empty() {
        return e;
    }
    let w = format!("warning: {}", warnings.join("; "));
    match e {
        Error::Incomplete { error, left } => Error::Incomplete {
            error,
            left: format!("{left}; {w}"),
        },
        Error::RolledBack { error, note } => Error::RolledBack {
            error,
            note: format!("{note}; {w}"),
        },
        e => e,
    }
}

/// Fits the plan to the target (provider-managed objects it lacks, whether
/// rows may go as binary) and checks it, changing nothing: the same for a
/// restore and its dry run.
async fn check_target(
    client: &tokio_postgres::Client,
    plan: &mut Plan,
    opts: &RestoreOptions,
    report: &mut RestoreReport,
) -> Result<target::Checked> {
    target::prepare_ddl_session(client).await?;
    report
        .skipped
        .extend(provider::adapt(client, plan, opts).await?);
    keep_transcoding_if_exact(client, plan).await?;
    if opts.data_only {
        target::check_data_only_tables(client, plan).await?;
        target::check_data_only_row_security(client, plan).await?;
    }
    if opts.disable_triggers {
        target::check_disable_triggers(client).await?;
    }
    target::check_binary_types(client, plan).await?;
    report.warnings = key_order::set(client, plan).await?;
    if opts.data_only {
        report
            .warnings
            .extend(target::data_only_notes(client, plan, opts).await?);
    }
    report.tables = plan.data_tables();
    report.rows = plan.tables.iter().map(|t| t.rows).sum();
    let checked = target::check(client, plan, opts).await?;
    let (to_target, unaddable) = target::foreign_keys_to_target(client, plan).await?;
    // One transaction promises the whole restore or nothing: as a key
    // that fails to go in then fails it, one foreseen not to refuses it.
    if opts.single_transaction && !unaddable.is_empty() {
        return Err(Error::Refused(format!(
            "{}; nothing was changed (--single-transaction restores all or nothing: give the \
             target's table that key first, or restore without --single-transaction to load the \
             rows without it)",
            unaddable.join("; ")
        )));
    }
    report.foreign_keys_to_target = to_target;
    report.warnings.extend(unaddable);
    report
        .warnings
        .extend(target::missing_incoming_keys(client, plan).await?);
    report.foreign_keys_from_target = checked.incoming.iter().map(|k| k.identity()).collect();
    // The backup's copy of such a key (its table is not restored) is not
    // skipped: the target's own goes back (QA: listed as both).
    plan.skipped_fks.retain(|line| {
        !report
            .foreign_keys_from_target
            .iter()
            .any(|k| line.starts_with(&format!("{k}: ")))
    });
    if opts.schema_only && !report.foreign_keys_from_target.is_empty() {
        report.warnings.push(format!(
            "with --schema-only the tables --clean replaces come back empty: the target's keys \
             to them go back NOT VALID where its rows reference them: {}",
            report.foreign_keys_from_target.join(", ")
        ));
    }
    report.skipped_foreign_keys = plan.skipped_fks.clone();
    report.warnings.extend(checked.notes.iter().cloned());
    if !checked.lost.is_empty() {
        report.warnings.push(format!(
            "--clean also drops what the target has on the tables it replaces and the backup \
             does not, which the restore does not bring back: {}",
            checked.lost.join(", ")
        ));
    }
    let unpopulated = unpopulated_reads(client, plan, &checked, opts).await?;
    fit_to_checked(plan, &checked, &unpopulated, opts, report);
    report.objects = plan.pre_data.len() + plan.post_data.len();
    Ok(checked)
}

/// Of the materialized views the plan's unfilled refreshes read and the
/// target has (reused, or in place with --data-only), those it has
/// unpopulated: a refresh that reads one fails (`materialized view ... has
/// not been populated`), so it is not put back.
async fn unpopulated_reads(
    client: &tokio_postgres::Client,
    plan: &Plan,
    checked: &target::Checked,
    opts: &RestoreOptions,
) -> Result<std::collections::HashSet<u32>> {
    let reads: Vec<&crate::schema::DbObject> = plan
        .unfilled
        .iter()
        .flat_map(|u| u.reads.iter().copied())
        .filter(|&r| opts.data_only || checked.keeps(r))
        .map(|r| plan.model.object(r))
        .filter(|o| o.kind == crate::schema::ObjectKind::MaterializedView)
        .collect();
    let mut found = std::collections::HashSet::new();
    for o in reads {
        let name =
            crate::pg::snapshot::qualified(plan.target_schema(o).unwrap_or_default(), &o.name);
        let populated: Option<bool> = client
            .query_one(
                "SELECT (SELECT relispopulated FROM pg_catalog.pg_class \
                 WHERE oid = pg_catalog.to_regclass($1))",
                &[&name],
            )
            .await
            .map_err(|e| Error::pg("checking the target's materialized views", e))?
            .get(0);
        if populated == Some(false) {
            found.insert(o.id);
        }
    }
    Ok(found)
}

/// What the target's checks change in the plan (what the target has is
/// left as it is), and what they have the report say.
fn fit_to_checked(
    plan: &mut Plan,
    checked: &target::Checked,
    unpopulated: &std::collections::HashSet<u32>,
    opts: &RestoreOptions,
    report: &mut RestoreReport,
) {
    plan.target_default_tablespace = Some(checked.default_tablespace.clone());
    let kept = |id: u32| checked.keeps(id);
    // A note of `skipped` that no longer holds.
    let forget = |plan: &mut Plan, report: &mut RestoreReport, note: &str| {
        plan.skipped.retain(|s| s != note);
        report.skipped.retain(|s| s != note);
    };
    // A reused domain is left as the target has it: its checks made after
    // the data (NOT VALID, objects of their own) with it.
    // So is a reused materialized view: its refresh (taken because a
    // chosen one's waits for it) would replace the target's contents.
    plan.post_data.retain(|p| {
        let o = plan.model.object(p.id);
        !(matches!(
            o.kind,
            crate::schema::ObjectKind::CheckConstraint | crate::schema::ObjectKind::MatviewRefresh
        ) && o.belongs_to.is_some_and(kept))
    });
    // A materialized view's refresh left out for want of rows is put back
    // where the target has every relation it reads, rows and all (reused,
    // or in place with --data-only): refreshed from them, as pg_restore
    // would, rather than left unpopulated.
    for u in std::mem::take(&mut plan.unfilled) {
        let o = plan.model.object(u.refresh);
        // A reused one stays as the target has it: nothing to say.
        if o.belongs_to.is_some_and(kept) {
            forget(plan, report, &u.note);
            continue;
        }
        if opts.schema_only || !(opts.data_only || u.reads.iter().all(|&r| kept(r))) {
            continue;
        }
        let empty: Vec<&str> = u
            .reads
            .iter()
            .filter(|r| unpopulated.contains(r))
            .map(|&r| plan.model.object(r).identity.as_str())
            .collect();
        if !empty.is_empty() {
            // Left out still, and said why: refreshed, it would fail.
            let note = format!(
                "{} (it reads {}, which the target has unpopulated: the view is left \
                 unpopulated; refresh those, then it, with REFRESH MATERIALIZED VIEW)",
                o.identity,
                empty.join(", ")
            );
            for notes in [&mut plan.skipped, &mut report.skipped] {
                if let Some(n) = notes.iter_mut().find(|n| **n == u.note) {
                    *n = note.clone();
                }
            }
            continue;
        }
        let back = plan::PlannedObject {
            id: o.id,
            kind: o.kind,
            identity: plan.target_identity(o),
        };
        plan.post_data.push(back);
        forget(plan, report, &u.note);
    }
    // A table taken for its definition only that the target lacks is made
    // without its rows (nor its keys): said, so it is not taken for the
    // backup's table.
    let stand_ins: Vec<String> = plan
        .pre_data
        .iter()
        .filter(|p| plan.definition_only.contains(&p.id) && !kept(p.id))
        .filter(|p| p.kind == crate::schema::ObjectKind::Table)
        .map(|p| {
            format!(
                "rows and keys of {} (created empty, for the definitions that need it; choose \
                 it with --table too for its rows)",
                p.identity
            )
        })
        .collect();
    plan.skipped.extend(stand_ins.iter().cloned());
    report.skipped.extend(stand_ins);
    // Where the target's domain holds such a check while rows load (one
    // it keeps, or any with --data-only), the rows that break it fail the
    // load: said before, since only the rows can tell.
    let live = |id: u32| opts.data_only || kept(id);
    let loaded: std::collections::BTreeSet<u32> = plan
        .tables
        .iter()
        .filter(|t| t.load_data)
        .flat_map(|t| plan.model.object(t.object_id).deps.iter().copied())
        .collect();
    let mut domains: Vec<String> = plan
        .model
        .objects
        .iter()
        .filter(|o| o.kind == crate::schema::ObjectKind::CheckConstraint)
        .filter_map(|o| o.belongs_to)
        .filter(|&d| loaded.contains(&d) && live(d))
        .map(|d| plan.model.object(d))
        .filter(|d| d.kind == crate::schema::ObjectKind::Domain)
        .map(|d| d.identity.clone())
        .collect();
    domains.sort();
    domains.dedup();
    if !domains.is_empty() {
        report.warnings.push(format!(
            "the target's {} already check(s) the rows it loads with a constraint the backup \
             adds NOT VALID, after its rows: rows that break it fail the load; {}",
            domains.join(", "),
            if opts.data_only {
                "drop the constraint for the load, or restore into an empty database"
            } else {
                "restore with --clean (which makes the domain anew) or into an empty database"
            }
        ));
    }
}

/// The post-restore check: the rows the server took for each table, from
/// the COPY command tags of its streams, against the manifest's count.
fn check_rows(plan: &Plan, restored: &[u64]) -> Vec<TableCheck> {
    plan.tables
        .iter()
        .zip(restored)
        .filter(|(t, _)| t.load_data)
        .map(|(t, &n)| TableCheck {
            schema: t.schema.clone(),
            name: t.name.clone(),
            expected_rows: t.rows,
            restored_rows: n,
            ok: n == t.rows,
        })
        .collect()
}

/// The archive is the one the manifest describes: its id, its tables and
/// their rows. A manifest pointed at another backup's archive would
/// otherwise restore that backup, and the row check after the load would
/// pass against that archive's own counts.
fn check_against_manifest(archive: &StoredArchive, m: &Manifest) -> Result<()> {
    let wrong = |what: String| {
        Error::Integrity(format!(
            "archive {} is not the one the manifest of backup {} describes: {what}; nothing was \
             changed (`pgsnap verify {}` checks the whole backup)",
            m.archive.key, m.id, m.id
        ))
    };
    let id = hex::encode(archive.header.archive_id);
    if id != m.archive.archive_id {
        return Err(wrong(format!(
            "its id is {id}, the manifest says {}",
            m.archive.archive_id
        )));
    }
    // The index (authenticated) names the backup it was written for.
    if let Some(written_for) = archive.index.meta.get("backup_id").and_then(|v| v.as_str()) {
        if written_for != m.id {
            return Err(wrong(format!("it was written for backup {written_for}")));
        }
    }
    let expected = manifest_rows(m);
    let mut tables = 0;
    for e in archive.entries_of_kind(kind::TABLE) {
        let meta: TableMeta = serde_json::from_value(e.meta.clone())
            .map_err(|err| Error::Format(format!("index entry {}: {err}", e.id)))?;
        tables += 1;
        let says = expected.get(&(meta.schema.clone(), meta.name.clone()));
        if says != Some(&e.rows) {
            return Err(wrong(format!(
                "it holds {} rows of table {}, the manifest says {}",
                e.rows,
                qualified(&meta.schema, &meta.name),
                says.map_or("nothing of it".to_string(), |n| n.to_string())
            )));
        }
    }
    if tables != expected.len() {
        return Err(wrong(format!(
            "it holds {tables} tables, the manifest lists {}",
            expected.len()
        )));
    }
    Ok(())
}

/// Per-table row counts from a manifest, for checks.
pub fn manifest_rows(m: &Manifest) -> BTreeMap<(String, String), u64> {
    m.tables
        .iter()
        .map(|t| ((t.schema.clone(), t.name.clone()), t.rows))
        .collect()
}

/// Text rows go to the server as binary COPY only where the binary forms
/// mean what the text does: from PostgreSQL 12 on, float4's input rounds
/// the decimal once, as this side's conversion does (before, it rounded
/// through a double, which can differ in rare halfway cases); and for text
/// in UTF-8 only: a SQL_ASCII database's bytes, and the text of a database
/// in another encoding (`SchemaModel::data_encoding`), load as the stored
/// text.
async fn keep_transcoding_if_exact(
    client: &tokio_postgres::Client,
    plan: &mut plan::Plan,
) -> Result<()> {
    let row = client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::int4",
            &[],
        )
        .await
        .map_err(|e| Error::pg("reading the target's server version", e))?;
    if row.get::<_, i32>(0) < 120000
        || copy_encoding(&plan.model.encoding) != "UTF8"
        || plan.model.data_encoding().is_some()
    {
        for t in &mut plan.tables {
            t.transcode.clear();
        }
    }
    Ok(())
}

/// A header this version cannot read, of an archive whose manifest says it
/// was written in a format, cipher and compression this version reads:
/// damage, not a newer format (QA: a flipped byte read as "unsupported:
/// cipher id 254"). Only a read of the whole archive tells for sure, which
/// `verify` does; the restore, refused either way, says where to look.
fn header_damage(m: &Manifest, e: Error) -> Error {
    use crate::archive::{codec::Compression, seal::Cipher};
    let a = &m.archive;
    let ours = a.format_version <= crate::archive::format::VERSION
        && a.cipher.parse::<Cipher>().is_ok()
        && a.compression.parse::<Compression>().is_ok();
    match e {
        Error::Unsupported(what) | Error::Format(what) if ours => Error::Integrity(format!(
            "backup `{}`'s archive does not read ({what}), though its manifest says it \
             was written in format {} with {} and {}, which this version reads: it was likely \
             damaged or altered after it was written (`pgsnap verify` checks it against its \
             manifest's SHA-256); nothing was changed; restore the archive from a copy of the \
             repository, or use another backup",
            m.id, a.format_version, a.cipher, a.compression
        )),
        e => e,
    }
}
