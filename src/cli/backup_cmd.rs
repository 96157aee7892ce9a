//! `pgsnap backup`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use pgsnap::backup::{self, BackupOptions};
use pgsnap::credentials::Credentials;
use pgsnap::filter::{Pattern, TableFilter};
use pgsnap::pg::ConnInfo;
use pgsnap::repo::manifest::rfc3339;
use pgsnap::repo::{self, Repository, UploadOptions};
use pgsnap::Error;
use serde_json::json;

use super::args::BackupArgs;
use super::progress::Reporter;

fn patterns(
    list: &[String],
    flag: &str,
    parse: fn(&str) -> Result<Pattern, String>,
) -> Result<Vec<Pattern>, Error> {
    list.iter()
        .map(|p| parse(p).map_err(|e| Error::Usage(format!("--{flag}: {e}"))))
        .collect()
}

pub async fn run(
    a: BackupArgs,
    quiet: bool,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<ExitCode> {
    let filter = TableFilter {
        include_tables: patterns(&a.tables, "table", Pattern::table)?,
        exclude_tables: patterns(&a.exclude_tables, "exclude-table", Pattern::table)?,
        include_schemas: patterns(&a.schemas, "schema", Pattern::schema)?,
        exclude_schemas: patterns(&a.exclude_schemas, "exclude-schema", Pattern::schema)?,
        exclude_data: patterns(&a.exclude_table_data, "exclude-table-data", Pattern::table)?,
    };
    let mut opts = BackupOptions {
        jobs: a.jobs as usize,
        filter,
        tags: tags(a.tags)?,
        lock_timeout: a.lock_timeout,
        max_duration: a.max_duration,
        stop: Some(stop),
        ..Default::default()
    };
    if let Some(c) = &a.compression {
        opts.compression = c
            .parse()
            .map_err(|e| Error::Usage(format!("--compression: {e}")))?;
    }
    if let Some(c) = &a.cipher {
        opts.cipher = c
            .parse()
            .map_err(|e| Error::Usage(format!("--cipher: {e}")))?;
    }
    if let Some(s) = a.chunk_size {
        opts.chunk_size = s;
    }
    if let Some(s) = a.split_size {
        opts.split_size = s;
    }
    opts.copy_format = a
        .copy_format
        .parse()
        .map_err(|e| Error::Usage(format!("--copy-format: {e}")))?;
    opts.verify_upload = a
        .verify_upload
        .parse()
        .map_err(|e| Error::Usage(format!("--verify-upload: {e}")))?;
    if opts.verify_upload == backup::VerifyUpload::Full
        && a.storage_class
            .as_deref()
            .is_some_and(pgsnap::repo::storage::is_archive_class)
    {
        return Err(Error::Usage(format!(
            "--verify-upload full reads the archive back, which S3 refuses in storage class {} \
             until a thaw: use --verify-upload basic, or run `pgsnap verify` after a thaw",
            a.storage_class.as_deref().unwrap_or_default()
        ))
        .into());
    }
    if a.key.key_file.is_none() && a.kms_key_id.is_none() {
        return Err(Error::Usage(
            "no key to encrypt the backup with: give --key-file or --kms-key-id (or both)".into(),
        )
        .into());
    }
    let conn = ConnInfo::parse(&a.db)?;
    let creds = Credentials::from_args(a.key.key_file.as_deref(), a.kms_key_id.as_deref())?;
    let s3 = repo::is_s3(&a.repo.repo);
    let upload = UploadOptions {
        // SSE-KMS under the data key's KMS key unless told otherwise.
        sse_kms_key_id: a
            .sse_kms_key_id
            .clone()
            .or(if s3 { a.kms_key_id.clone() } else { None }),
        storage_class: a.storage_class.clone(),
        tags: a
            .retention_class
            .iter()
            .map(|c| ("pgsnap-retention".to_string(), c.clone()))
            .collect(),
    };
    let repo = Repository::open_or_init(repo::storage_for_upload(&a.repo.repo, upload).await?)
        .await
        .context("opening the repository")?;
    let reporter = Arc::new(Reporter::new("backup", quiet));
    let result = backup::run(&repo, &conn, &creds, &opts, reporter.clone()).await;
    reporter.finish(result.is_ok());
    let m = result.context("backup failed")?;
    if a.json {
        let tables: Vec<_> = m
            .tables
            .iter()
            .map(|t| {
                json!({"schema": t.schema, "name": t.name, "rows": t.rows,
                       "bytes": t.bytes, "stored_bytes": t.stored_bytes})
            })
            .collect();
        out!(
            "{}",
            json!({
                "ok": true,
                "id": m.id,
                "backup_id": m.id,
                "status": "complete",
                "repo": repo.location(),
                "database": m.database,
                "started_at": rfc3339(&m.started_at),
                "finished_at": rfc3339(&m.finished_at),
                "size_bytes": m.archive.size_bytes,
                "data_bytes": m.data_bytes,
                "sha256": m.archive.sha256,
                "rows": m.rows,
                "tables": tables,
                "timings": m.timings,
            })
        );
    } else {
        if !quiet {
            err!(
                "pgsnap: backup {} complete: {}, {}, {} in {:.1}s",
                m.id,
                super::output::count(m.tables.len() as u64, "table"),
                super::output::count(m.rows, "row"),
                super::output::bytes(m.archive.size_bytes),
                m.timings.total_seconds
            );
        }
        out!("{}", m.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--tag` values as a map; a key given twice is a mistake, not a choice
/// of the last value.
fn tags(pairs: Vec<(String, String)>) -> Result<std::collections::BTreeMap<String, String>, Error> {
    let mut map = std::collections::BTreeMap::new();
    for (k, v) in pairs {
        if map.insert(k.clone(), v).is_some() {
            return Err(Error::Usage(format!("--tag {k} is given twice")));
        }
    }
    Ok(map)
}
