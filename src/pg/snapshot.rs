//! One consistent view of the database for a parallel dump.
//!
//! The coordinator opens a REPEATABLE READ, READ ONLY transaction, exports
//! its snapshot and takes ACCESS SHARE locks on every table it will dump (as
//! pg_dump does: concurrent DDL then waits for the backup instead of breaking
//! it). Workers adopt the snapshot with `SET TRANSACTION SNAPSHOT`, so every
//! COPY sees exactly the data the coordinator's catalog read saw.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::pg::conn::{ConnInfo, Session};

/// Quotes an identifier for SQL.
pub fn ident(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", ident(schema), ident(name))
}

/// A backup's sessions read every row or fail: with row-level security
/// on, a COPY by a role the policies apply to silently gets the rows they
/// let it see (a tenant policy, none at all), and the backup looked whole.
/// Off, such a COPY fails instead, as pg_dump's does; the preflight names
/// those tables first.
const NO_ROW_SECURITY: &str = "SET row_security = off";

pub struct Coordinator {
    pub session: Session,
    pub snapshot_id: String,
    pub backend_pid: i32,
}

impl Coordinator {
    pub async fn begin(info: &ConnInfo) -> Result<Coordinator> {
        let session = Session::open(info).await?;
        session
            .client
            .batch_execute(&format!(
                "{NO_ROW_SECURITY}; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"
            ))
            .await
            .map_err(|e| Error::pg("starting the snapshot transaction", e))?;
        let row = session
            .client
            .query_one("SELECT pg_export_snapshot(), pg_backend_pid()", &[])
            .await
            .map_err(|e| Error::pg("exporting the snapshot", e))?;
        Ok(Coordinator {
            snapshot_id: row.get(0),
            backend_pid: row.get(1),
            session,
        })
    }

    pub fn client(&self) -> &Client {
        &self.session.client
    }

    /// Locks every table in ACCESS SHARE mode, waiting at most `timeout` for
    /// each. On a timeout the error names the sessions holding conflicting
    /// locks, found over a second connection (this transaction is aborted by
    /// then and cannot ask).
    pub async fn lock_tables(
        &self,
        info: &ConnInfo,
        tables: &[(String, String)],
        timeout: Duration,
    ) -> Result<()> {
        let client = self.client();
        client
            .batch_execute(&format!(
                "SET LOCAL lock_timeout = {}",
                // The server's limit is an int of milliseconds (24.8 days).
                timeout.as_millis().clamp(1, i32::MAX as u128)
            ))
            .await
            .map_err(|e| Error::pg("setting lock_timeout", e))?;
        for (schema, name) in tables {
            let q = qualified(schema, name);
            if let Err(e) = client
                .batch_execute(&format!("LOCK TABLE {q} IN ACCESS SHARE MODE"))
                .await
            {
                if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                    let who = blockers(info, schema, name).await.unwrap_or_default();
                    return Err(Error::Postgres {
                        context: format!("locking table {q}"),
                        detail: format!(
                            "lock not granted within {}s; held by {}; retry later or raise \
                             --lock-timeout",
                            timeout.as_secs_f64(),
                            if who.is_empty() {
                                "another session".into()
                            } else {
                                who
                            }
                        ),
                        code: Some(SqlState::LOCK_NOT_AVAILABLE.code().to_string()),
                    });
                }
                return Err(Error::pg(format!("locking table {q}"), e));
            }
        }
        Ok(())
    }

    /// Of `tables` (locked), those whose `pg_class` row changed since the
    /// snapshot: the version the snapshot sees against the newest, read
    /// over a second connection. Any `ALTER`, `TRUNCATE` or rewrite makes
    /// a new row version; statistics and freezing update it in place, so
    /// (auto)vacuum and analyze do not count.
    pub async fn changed_since_snapshot(
        &self,
        info: &ConnInfo,
        tables: &[u32],
    ) -> Result<Vec<String>> {
        if tables.is_empty() {
            return Ok(vec![]);
        }
        // The table's row and its columns' (a dropped or renamed column
        // changes only those; QA).
        let sql = "SELECT c.oid, c.xmin::text || ':' || coalesce((SELECT \
                     pg_catalog.string_agg(a.xmin::text, ',' ORDER BY a.attnum) \
                     FROM pg_catalog.pg_attribute a WHERE a.attrelid = c.oid), ''), \
                   c.oid::pg_catalog.regclass::text \
                   FROM pg_catalog.pg_class c WHERE c.oid = ANY ($1::oid[])";
        let context = "checking the tables against the snapshot";
        let read = |rows: Vec<tokio_postgres::Row>| -> HashMap<u32, (String, String)> {
            rows.iter()
                .map(|r| (r.get(0), (r.get(1), r.get(2))))
                .collect()
        };
        let seen = read(
            self.client()
                .query(sql, &[&tables])
                .await
                .map_err(|e| Error::pg(context, e))?,
        );
        let now = Session::open(info).await?;
        let newest = read(
            now.client
                .query(sql, &[&tables])
                .await
                .map_err(|e| Error::pg(context, e))?,
        );
        // Gone from the newest catalog: dropped, and its name (which the
        // lock took) made anew (QA: DROP and CREATE AS in one transaction
        // left the table empty).
        let mut changed: Vec<String> = seen
            .iter()
            .filter(|(oid, (version, _))| newest.get(oid).map(|n| &n.0) != Some(version))
            .map(|(_, (_, name))| name.clone())
            .collect();
        changed.sort();
        Ok(changed)
    }
}

/// Describes the sessions holding locks that conflict with ACCESS SHARE on a
/// table (ACCESS EXCLUSIVE: ALTER/DROP/TRUNCATE/VACUUM FULL).
async fn blockers(info: &ConnInfo, schema: &str, name: &str) -> Result<String> {
    let s = Session::open(info).await?;
    let rows = s
        .client
        .query(
            "SELECT a.pid, coalesce(a.usename::text, '?'), coalesce(a.application_name, ''),
                    coalesce(a.state, '?'),
                    coalesce(extract(epoch FROM now() - a.xact_start)::int, 0)
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.granted AND l.mode = 'AccessExclusiveLock'
                AND l.relation = (SELECT c.oid FROM pg_class c JOIN pg_namespace n
                                    ON n.oid = c.relnamespace
                                   WHERE n.nspname = $1 AND c.relname = $2)",
            &[&schema, &name],
        )
        .await
        .map_err(|e| Error::pg("finding blocking sessions", e))?;
    Ok(rows
        .iter()
        .map(|r| {
            // Not the session's query text: it may carry a secret (ALTER
            // ROLE ... PASSWORD), and pid, user and state are enough to
            // find it in pg_stat_activity.
            format!(
                "pid {} (user {}, application '{}', {}, transaction open {} s)",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2),
                r.get::<_, String>(3),
                r.get::<_, i32>(4)
            )
        })
        .collect::<Vec<_>>()
        .join(", "))
}

/// A worker session that sees the coordinator's snapshot.
pub async fn adopt(info: &ConnInfo, snapshot_id: &str) -> Result<Session> {
    let session = Session::open(info).await?;
    session
        .client
        .batch_execute(&format!(
            "{NO_ROW_SECURITY}; BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;
             SET TRANSACTION SNAPSHOT {}",
            postgres_protocol::escape::escape_literal(snapshot_id)
        ))
        .await
        .map_err(|e| Error::pg("adopting the backup snapshot", e))?;
    Ok(session)
}
