//! `pgsnap restore`, `pgsnap verify` and `pgsnap key`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use pgsnap::credentials::Credentials;
use pgsnap::filter::Pattern;
use pgsnap::pg::ConnInfo;
use pgsnap::restore::{self, RestoreOptions, RestoreReport};
use pgsnap::verify;
use pgsnap::Error;

use super::args::{KeyCommand, RestoreArgs, VerifyArgs};
use super::output::{bytes, count};
use super::progress::Reporter;
use super::repo_cmds::open;

fn print_plan(r: &RestoreReport) {
    let Some(plan) = &r.plan else { return };
    out!("dry run: nothing was changed");
    out!("backup {} -> database {}", r.backup_id, r.database);
    out!("pre-data objects, in order:");
    if let Some(into) = &plan.retarget {
        // The restore creates it first, outside the model's objects.
        out!(
            "  schema {} (--into-schema, unless it exists)",
            pgsnap::pg::snapshot::ident(&into.schema)
        );
    }
    for o in &plan.pre_data {
        if r.reused.contains(&o.identity) {
            out!("  {}  [reused: the target has it]", o.identity);
        } else {
            out!("  {}", o.identity);
        }
    }
    out!("tables:");
    for t in &plan.tables {
        out!(
            "  {}  {}  {}  ({}, {} to read){}",
            pgsnap::filter::spell(&t.schema, &t.name),
            count(t.rows, "row"),
            bytes(t.raw_bytes),
            count(t.chunks as u64, "chunk"),
            bytes(t.stored_bytes),
            if t.load_data { "" } else { "  [no data]" }
        );
    }
    out!("post-data objects, in order:");
    for o in &plan.post_data {
        out!("  {}", o.identity);
    }
    for f in &r.foreign_keys_to_target {
        out!("  {f}  [after the load: references a table the target has]");
    }
    for f in &r.foreign_keys_from_target {
        out!("  {f}  [after the load: the target's, dropped by --clean and added back]");
    }
    for s in &plan.skipped_fks {
        out!("skipped foreign key: {s}");
    }
    for s in &r.skipped {
        out!("skipped: {s}");
    }
    for w in &r.warnings {
        out!("warning: {w}");
    }
    for d in &r.dropped {
        out!("--clean would drop: {d}");
    }
    out!(
        "estimated archive bytes to read: {} of {}",
        bytes(plan.bytes_to_read),
        bytes(r.archive_bytes)
    );
    out!(
        "target checked: no object in the way{}, every role it names exists; the chunks are \
         authenticated when the restore runs (or by `pgsnap verify`)",
        if r.dropped.is_empty() {
            ""
        } else {
            " but those --clean drops"
        }
    );
}

pub async fn restore(a: RestoreArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let tables = a
        .tables
        .iter()
        .map(|t| Pattern::table(t).map_err(|e| Error::Usage(format!("--table: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let jobs =
        match (a.single_transaction, a.jobs) {
            (true, Some(j)) if j > 1 => return Err(Error::Usage(
                "--single-transaction restores on one connection: it cannot be used with --jobs \
                 above 1"
                    .into(),
            )
            .into()),
            (true, _) => 1,
            (false, j) => j.unwrap_or(2),
        };
    let opts = RestoreOptions {
        jobs: usize::from(jobs),
        tables,
        schemas: a.schemas.clone(),
        schema_only: a.schema_only,
        data_only: a.data_only,
        into_schema: a
            .into_schema
            .as_deref()
            .map(pgsnap::filter::identifier)
            .transpose()
            .map_err(|e| Error::Usage(format!("--into-schema: {e}")))?,
        clean: a.clean,
        dry_run: a.dry_run,
        no_owner: a.no_owner,
        no_acl: a.no_acl,
        no_database_properties: a.no_database_properties,
        no_tablespaces: a.no_tablespaces,
        single_transaction: a.single_transaction,
        disable_triggers: a.disable_triggers,
        lock_timeout: Some(a.lock_timeout),
    };
    let target = ConnInfo::parse(&a.db)?;
    if !target.database_given() {
        // libpq's rules would take PGDATABASE or the user's name: a
        // restore (--clean drops) goes only where it is told (QA).
        return Err(Error::Usage(
            "--db names no database: name the target in it (postgres://HOST/DBNAME or \
             dbname=DBNAME); a restore does not take it from PGDATABASE or the user name"
                .into(),
        )
        .into());
    }
    let creds = Credentials::from_args(a.key.key_file.as_deref(), None)?;
    let repo = open(&a.repo.repo).await?;
    let (manifest, mut passed_over) = repo
        .resolve_of(&a.id, a.source.source_database.as_deref())
        .await?;
    if let Some(w) = passed_over.as_ref().filter(|_| !quiet) {
        err!("pgsnap: warning: {w}");
    }
    // A full restore of a partial backup brings back only part of the
    // database: said, so that `restore latest` after a one-table backup is
    // not taken for the whole.
    let partial = manifest
        .filter
        .as_ref()
        .filter(|_| a.tables.is_empty() && a.schemas.is_empty())
        .map(|f| {
            format!(
                "backup {} is partial: it holds only what {} chose, not the whole database",
                manifest.id,
                f.describe()
            )
        });
    if let Some(w) = partial.as_ref().filter(|_| !quiet) {
        err!("pgsnap: warning: {w}");
    }
    passed_over = match (passed_over, partial) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    if a.request_thaw {
        let head = repo.storage().head(&manifest.archive.key).await?;
        if head.as_ref().is_some_and(|h| h.needs_thaw()) {
            repo.storage()
                .request_thaw(&manifest.archive.key, 7)
                .await
                .context("requesting the thaw")?;
            return Err(Error::NotThawed(format!(
                "backup {}'s archive is in storage class {}: a 7-day thaw was requested; nothing \
                 was restored; run the restore again once the thaw completed (minutes to hours)",
                manifest.id,
                head.and_then(|h| h.storage_class).unwrap_or_default()
            ))
            .into());
        }
    }
    let reporter = Arc::new(Reporter::new("restore", quiet || a.dry_run));
    let result = restore::run(&repo, &manifest, &creds, &target, &opts, reporter.clone()).await;
    reporter.finish(result.is_ok());
    let mut report = result.with_context(|| format!("restore of {} failed", manifest.id))?;
    // Warnings go to stderr whatever stdout carries (the text plan of a
    // dry run lists them itself); --quiet leaves them to the report.
    if !quiet && (a.json || !a.dry_run) {
        for w in &report.warnings {
            err!("pgsnap: warning: {w}");
        }
    }
    // Said on stderr before the restore began.
    report.warnings.extend(passed_over);
    if a.json {
        // `ok` as in every --json object, failures' included.
        let mut v = serde_json::to_value(&report)?;
        v["ok"] = true.into();
        out!("{}", serde_json::to_string(&v)?);
    } else if a.dry_run {
        print_plan(&report);
    } else {
        // Notes, not errors: --quiet leaves them to the report (--json).
        if !quiet {
            for s in &report.skipped_foreign_keys {
                err!("pgsnap: skipped foreign key {s}");
            }
            for s in &report.skipped {
                err!("pgsnap: skipped {s}");
            }
        }
        let checked = if a.schema_only {
            "no rows loaded (--schema-only)"
        } else {
            "row counts match the backup"
        };
        // A chunk authenticated before the load and read again for it
        // counts twice (QA: "read 297.4 MiB of 148.7 MiB" read as an error);
        // so do the bytes between one table's chunks, which a ranged read
        // takes along (the tables' chunks interleave in the archive), when
        // another table's read takes them again (the note said "read
        // again to load" of a restore that had kept its chunks).
        let why = match report.chunks_read_twice {
            true => "authenticated first, then read again to load",
            false => "ranges read for one table held parts of another's",
        };
        let read = if report.bytes_read > report.archive_bytes {
            format!(
                "read {} from an archive of {} ({why})",
                bytes(report.bytes_read),
                bytes(report.archive_bytes)
            )
        } else {
            format!(
                "read {} of {}",
                bytes(report.bytes_read),
                bytes(report.archive_bytes)
            )
        };
        // A warning may be about the result (a foreign key left NOT VALID):
        // --quiet keeps stderr to errors, so the summary carries it (QA:
        // a quiet restore said only that it had succeeded).
        let warned = match (report.warnings.len(), quiet) {
            (0, _) => String::new(),
            (n, false) => format!("; {} (above)", count(n as u64, "warning")),
            (n, true) => format!(
                "; {}: {}",
                count(n as u64, "warning"),
                report.warnings.join("; ")
            ),
        };
        out!(
            "restored backup {} into {}: {}, {}, {read} in {:.1}s; {checked}{warned}",
            report.backup_id,
            report.database,
            count(report.tables as u64, "table"),
            count(report.rows, "row"),
            report.seconds
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let creds = Credentials::from_args(a.key.key_file.as_deref(), None)?;
    let repo = open(&a.repo.repo).await?;
    let manifest = repo
        .resolve_newest_of(&a.id, a.source.source_database.as_deref())
        .await?;
    let report = verify::run(&repo, &manifest, &creds).await?;
    let error = (!report.ok).then(|| {
        let failed: Vec<&str> = report
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect();
        format!(
            "verification of backup {} failed: {} (the backup is damaged: restore from another \
             one, see `pgsnap list`, and make a new backup)",
            report.backup_id,
            failed.join("; ")
        )
    });
    if let Some(error) = &error {
        // Like every failure, one line on stderr (a cron job may keep
        // only that), whatever stdout carries.
        err!("pgsnap: error: {error}");
    }
    if a.json {
        let mut v = serde_json::to_value(&report)?;
        if let Some(error) = error {
            // The shape every failure has with --json (README), beside the
            // report's own fields.
            v["error"] = error.into();
            v["exit_code"] = 1.into();
        }
        out!("{}", serde_json::to_string(&v)?);
    } else {
        for c in &report.checks {
            out!("{}  {}", if c.ok { "ok    " } else { "FAILED" }, c.what);
        }
        out!(
            "{}: backup {} ({}, {})",
            if report.ok {
                "verified"
            } else {
                "verification FAILED"
            },
            report.backup_id,
            count(report.chunks as u64, "chunk"),
            bytes(report.archive_bytes)
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub fn key(cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeyCommand::Generate { out } => {
            pgsnap::keys::KeyFileKey::generate_file(&out)?;
            err!(
                "pgsnap: wrote a new key file to {} (mode 0600); keep a copy apart from the backups",
                out.display()
            );
            out!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
