//! `list` and `show`.

use std::process::ExitCode;

use pgsnap::filter::spell;
use pgsnap::repo::manifest::rfc3339;
use pgsnap::repo::{self, BackupEntry, Repository};
use serde_json::json;

use super::args::{ListArgs, ShowArgs};

use super::output::{bytes, count};

pub async fn open(spec: &str) -> anyhow::Result<Repository> {
    Ok(Repository::open(repo::storage_for(spec).await?).await?)
}

fn summary_json(b: &BackupEntry) -> serde_json::Value {
    let m = &b.manifest;
    // `complete` or `damaged`, as the table says, with why apart (QA: a
    // script testing for `damaged` missed `archive missing`).
    let (status, reason) = match b.is_complete() {
        true => ("complete", None),
        false => ("damaged", Some(&b.status)),
    };
    json!({
        "id": m.id,
        // The name restore's and verify's reports use for the same id.
        "backup_id": m.id,
        "status": status,
        "reason": reason,
        "started_at": rfc3339(&m.started_at),
        "finished_at": rfc3339(&m.finished_at),
        "database": m.database,
        "size_bytes": m.archive.size_bytes,
        "tables": m.tables.len(),
        "rows": m.rows,
        "sha256": m.archive.sha256,
        "duration_seconds": m.timings.total_seconds,
        "key_slots": m.key_slots,
        "tags": m.tags,
        // What a partial backup was limited to (null: the whole database).
        "filter": m.filter,
    })
}

pub async fn list(a: ListArgs) -> anyhow::Result<ExitCode> {
    let repo = open(&a.repo.repo).await?;
    // A backup whose manifest cannot be read is listed too, as damaged:
    // a script that checks the statuses must see it.
    let (backups, unreadable) = repo.list_all().await?;
    if a.json {
        let mut arr: Vec<_> = backups.iter().map(summary_json).collect();
        arr.extend(unreadable.iter().map(|u| {
            json!({
                "id": u.id,
                "backup_id": u.id,
                // As the table says it; why, apart (QA: a script testing
                // `status == "damaged"` missed it).
                "status": "damaged",
                "reason": u.reason,
            })
        }));
        out!("{}", serde_json::Value::Array(arr));
        return Ok(ExitCode::SUCCESS);
    }
    for u in &unreadable {
        err!("pgsnap: warning: backup {} is damaged: {}", u.id, u.reason);
    }
    if backups.is_empty() && unreadable.is_empty() {
        err!("no backups in {}", repo.location());
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{:<22}  {:<9}  {:<20}  {:<16}  {:>6}  {:>12}  {:>10}  TAGS",
        "ID",
        "STATUS",
        "STARTED (UTC)",
        "DATABASE",
        "TABLES",
        "ROWS",
        "SIZE"
    );
    for b in &backups {
        let m = &b.manifest;
        let status = if b.is_complete() {
            "complete"
        } else {
            "damaged"
        };
        out!(
            "{:<22}  {:<9}  {:<20}  {:<16}  {:>6}  {:>12}  {:>10}  {}",
            m.id,
            status,
            m.started_at.format("%Y-%m-%d %H:%M:%S"),
            m.database,
            m.tables.len(),
            m.rows,
            bytes(m.archive.size_bytes),
            m.tags
                .iter()
                .map(|(k, v)| format!("{}={}", tag_part(k), tag_part(v)))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    for u in &unreadable {
        out!(
            "{:<22}  {:<9}  {:<20}  {:<16}  {:>6}  {:>12}  {:>10}  ",
            u.id,
            "damaged",
            "?",
            "?",
            "?",
            "?",
            "?"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A tag's key or value as `list` and `show` print it: as it is, or
/// double-quoted with escapes when it holds what would make `k=v,k=v`
/// ambiguous (a comma, `=`, a quote, blanks, a line break) or is empty.
fn tag_part(s: &str) -> String {
    let plain = !s.is_empty()
        && !s
            .chars()
            .any(|c| matches!(c, ',' | '=' | '"' | '\\') || c.is_whitespace() || c.is_control());
    if plain {
        s.to_string()
    } else {
        format!("{s:?}")
    }
}

pub async fn show(a: ShowArgs) -> anyhow::Result<ExitCode> {
    let repo = open(&a.repo.repo).await?;
    // A backup named by its id is shown whatever its state (what it held,
    // where its archive should be); `latest` is the newest complete one.
    let database = a.source.source_database.as_deref();
    let (m, status) = if a.id == "latest" {
        let (m, warning) = repo.resolve_of(&a.id, database).await?;
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        (m, "complete".to_string())
    } else {
        let b = repo.entry(&a.id).await?;
        repo::check_database(&b.manifest, database)?;
        (b.manifest, b.status)
    };
    if a.json {
        let mut v = serde_json::to_value(&m)?;
        v["ok"] = json!(true);
        v["status"] = json!(status);
        v["backup_id"] = json!(m.id);
        out!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    out!("backup      {}", m.id);
    if status == "complete" {
        out!("status      complete");
    } else {
        out!("status      damaged: {status}");
    }
    out!("database    {} ({})", m.database, m.source);
    out!("server      PostgreSQL {}", m.server_version);
    out!(
        "started     {}   finished {}   ({:.1}s)",
        rfc3339(&m.started_at),
        rfc3339(&m.finished_at),
        m.timings.total_seconds
    );
    out!(
        "archive     {} ({}), sha256 {}",
        m.archive.key,
        bytes(m.archive.size_bytes),
        m.archive.sha256
    );
    out!(
        "format      v{}, {}, {}, chunks of {}; key slots: {}",
        m.archive.format_version,
        m.archive.cipher,
        m.archive.compression,
        bytes(m.archive.chunk_size as u64),
        m.key_slots.join(", ")
    );
    out!(
        "data        {}, {}, {} uncompressed",
        count(m.tables.len() as u64, "table"),
        count(m.rows, "row"),
        bytes(m.data_bytes)
    );
    if let Some(f) = &m.filter {
        out!("partial     only what {} chose", f.describe());
    }
    for (k, v) in &m.tags {
        out!("tag         {}={}", tag_part(k), tag_part(v));
    }
    out!();
    // Names as --table takes them; the column as wide as the longest.
    let names: Vec<String> = m.tables.iter().map(|t| spell(&t.schema, &t.name)).collect();
    let w = names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(0)
        .max(5);
    out!(
        "{:<w$}  {:>12}  {:>10}  {:>10}",
        "TABLE",
        "ROWS",
        "DATA",
        "STORED"
    );
    for (t, name) in m.tables.iter().zip(&names) {
        out!(
            "{:<w$}  {:>12}  {:>10}  {:>10}",
            name,
            t.rows,
            bytes(t.bytes),
            bytes(t.stored_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::tag_part;

    #[test]
    fn tag_parts_that_would_be_ambiguous_are_quoted() {
        assert_eq!(tag_part("prod"), "prod");
        assert_eq!(tag_part("eu-west-1"), "eu-west-1");
        assert_eq!(tag_part("a,b"), r#""a,b""#);
        assert_eq!(tag_part("x=y"), r#""x=y""#);
        assert_eq!(tag_part("two words"), r#""two words""#);
        assert_eq!(tag_part("line\nbreak"), r#""line\nbreak""#);
        assert_eq!(tag_part(""), r#""""#);
    }
}
