//! Running a model's DDL on a target database.

use std::collections::BTreeSet;

use tokio_postgres::Client;

use super::ddl::{dollar_quote, ident, roles_named};
use super::error::SchemaError;
use super::model::{DbObject, ObjectKind, SchemaModel, DATABASE_PLACEHOLDER};
use super::provider::setting_role;

/// How to apply.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Skip `ALTER ... OWNER TO` (objects belong to the restoring user).
    pub no_owner: bool,
    /// Skip `GRANT` / `REVOKE` and default privileges.
    pub no_acl: bool,
    /// Skip `COMMENT ON` and `SECURITY LABEL`.
    pub no_comments: bool,
    /// Name of the target database, for database-level statements.
    pub target_db_name: String,
    /// Roles the target lacks whose ownership, privilege and per-role
    /// setting statements are left out (provider-managed roles, see
    /// [`crate::schema::provider`]): ownership then stays with the
    /// restoring role.
    pub skip_roles: BTreeSet<String>,
    /// Create every relation and index in the target's default tablespace,
    /// whatever [`DbObject::tablespace`] says.
    pub no_tablespaces: bool,
    /// The target database's own tablespace: an object the backup puts
    /// there is created without naming it, which is where it goes anyway,
    /// and which a partitioned table or index must (PostgreSQL refuses a
    /// `default_tablespace` equal to the database's for them; QA).
    pub target_default_tablespace: Option<String>,
}

impl ApplyOptions {
    fn keeps(&self, stmt: &str) -> bool {
        self.skip_roles.is_empty()
            || !roles_named(stmt)
                .iter()
                .any(|r| self.skip_roles.contains(r))
    }

    /// The create statement without per-role database settings of skipped
    /// roles (those are single lines of the database object).
    fn create_sql(&self, o: &DbObject) -> String {
        let placed = o.tablespace.as_deref().filter(|space| {
            !self.no_tablespaces && self.target_default_tablespace.as_deref() != Some(*space)
        });
        if let Some(space) = placed {
            // As pg_dump places objects: the CREATE (and a key's or
            // unique constraint's index) is made where it belongs, not
            // built and then moved with ALTER ... SET TABLESPACE.
            return format!(
                "SET default_tablespace = {};\n{}\nSET default_tablespace = '';",
                ident(space),
                o.create
            );
        }
        if o.kind != ObjectKind::Database || self.skip_roles.is_empty() {
            return o.create.clone();
        }
        o.create
            .split('\n')
            .filter(|l| !setting_role(l).is_some_and(|r| self.skip_roles.contains(&r)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Session settings for applying DDL: an empty search_path (every name in
/// the model is qualified), no function body checks (bodies may refer to
/// objects created later), and the database's default tablespace for what
/// names none (not the restoring role's own default), as pg_dump's scripts
/// do.
pub const APPLY_SESSION_SQL: &str = "SELECT pg_catalog.set_config('search_path', '', false); \
     SET check_function_bodies = false; SET client_min_messages = warning; \
     SET standard_conforming_strings = on; SET row_security = off; \
     SET default_tablespace = '';";

/// The statements applying one object, in order.
pub fn object_sql(o: &DbObject, opts: &ApplyOptions) -> Vec<String> {
    let mut out = Vec::new();
    let create = opts.create_sql(o);
    if !create.trim().is_empty() {
        out.push(create);
    }
    if !opts.no_owner {
        out.extend(o.owner_sql.iter().filter(|s| opts.keeps(s)).cloned());
    }
    if !opts.no_acl {
        out.extend(acl_sql(o, opts.no_owner).filter(|s| opts.keeps(s)).cloned());
    }
    if !opts.no_comments {
        out.extend(o.comment_sql.iter().cloned());
    }
    if o.kind == ObjectKind::Database {
        for s in &mut out {
            *s = naming_database(s, &opts.target_db_name);
        }
    }
    out
}

/// The database's name as stored, as `bytea`. pg_database is shared by
/// every database, so a name written from a UTF-8 one is UTF-8 bytes, which
/// a database in another encoding (EUC_JP) cannot convert to text for us
/// (QA); a cast to bytea (whose input reads backslashes as escapes, hence
/// the doubling) hands them over as they are.
pub(crate) const CURRENT_DATABASE_BYTES: &str =
    "pg_catalog.replace(pg_catalog.current_database()::text, '\\', '\\\\')::bytea";

/// `stmt`, which names the target database `name` by
/// [`DATABASE_PLACEHOLDER`], as it runs there: the name written in, or,
/// when it is not ASCII, the block of [`naming_current_database`].
pub(crate) fn naming_database(stmt: &str, name: &str) -> String {
    match name.is_ascii() {
        true => stmt.replace(DATABASE_PLACEHOLDER, &ident(name)),
        false => naming_current_database(stmt),
    }
}

/// The part of [`naming_current_database`]'s block before the statement.
const CURRENT_DATABASE_HEAD: &str = "BEGIN EXECUTE pg_catalog.replace(";

/// `stmt` (which names the target database by [`DATABASE_PLACEHOLDER`])
/// as a block that names it by the server's `current_database()`. A
/// database name is stored once for the whole cluster, as the bytes of the
/// connection that made it (UTF-8 here), and a name in a statement is
/// converted to the database's encoding: in an EUC_JP database, a name
/// that is not ASCII written out would name no database (QA). The server's
/// own copy of the name is right in any encoding.
fn naming_current_database(stmt: &str) -> String {
    let body = format!(
        "{CURRENT_DATABASE_HEAD}{}, '{DATABASE_PLACEHOLDER}', \
         pg_catalog.quote_ident(pg_catalog.current_database())); END",
        dollar_quote(stmt)
    );
    format!("DO {}", dollar_quote(&body))
}

/// The statement inside a block of [`naming_current_database`], still
/// naming the database by [`DATABASE_PLACEHOLDER`]; `None` for any other.
pub(crate) fn unwrap_current_database(block: &str) -> Option<&str> {
    let rest = block.strip_prefix("DO $")?;
    let rest = &rest[rest.find('$')? + 1..];
    let rest = rest
        .strip_prefix(CURRENT_DATABASE_HEAD)?
        .strip_prefix('$')?;
    let tag_end = rest.find('$')?;
    let tag = &rest[..=tag_end];
    let inner = &rest[tag_end + 1..];
    inner.find(&format!("${tag}")).map(|end| &inner[..end])
}

/// An object's privilege statements; with `no_owner`, without those on
/// its owner's own privileges (`REVOKE ALL ... FROM owner`, `GRANT ... TO
/// owner`), as pg_dump --no-owner leaves them out: the restoring role
/// owns the object and holds an owner's privileges, and the old owner,
/// who owns nothing here, must not be handed them as a grant.
pub fn acl_sql(o: &DbObject, no_owner: bool) -> impl Iterator<Item = &String> {
    let owner = o.owner.as_deref().filter(|_| no_owner).map(ident);
    o.acl_sql.iter().filter(move |s| match &owner {
        None => true,
        Some(q) => !owners_own(s, q),
    })
}

/// Whether `stmt` (written by `ddl::acl_statements`) revokes from or
/// grants to the role `q` (quoted) and no one else.
fn owners_own(stmt: &str, q: &str) -> bool {
    (stmt.starts_with("REVOKE ") && stmt.ends_with(&format!(" FROM {q};")))
        || (stmt.starts_with("GRANT ")
            && (stmt.ends_with(&format!(" TO {q};"))
                || stmt.ends_with(&format!(" TO {q} WITH GRANT OPTION;"))))
}

/// The DDL of `objects` as one SQL script (session settings first, each
/// object preceded by a comment naming it), e.g. for a schema-only export
/// or a dry run. Same statements [`apply`] runs.
pub fn sql_script(objects: &[&DbObject], opts: &ApplyOptions) -> String {
    let mut out = String::new();
    for stmt in APPLY_SESSION_SQL.split("; ") {
        out.push_str(stmt.trim_end_matches(';'));
        out.push_str(";\n");
    }
    for o in objects {
        let stmts = object_sql(o, opts);
        if stmts.is_empty() {
            continue;
        }
        let identity = o.identity.replace(['\n', '\r'], " ");
        out.push_str(&format!("\n-- {identity}\n"));
        for s in stmts {
            out.push_str(&s);
            out.push('\n');
        }
    }
    out
}

/// Run the DDL of `objects` in the given order (get it from
/// [`SchemaModel::ordered`]; the caller runs pre-data, loads the data, then
/// runs post-data). Sets the session up with [`APPLY_SESSION_SQL`].
pub async fn apply(
    client: &Client,
    _model: &SchemaModel,
    objects: &[&DbObject],
    opts: &ApplyOptions,
) -> Result<(), SchemaError> {
    client
        .batch_execute(APPLY_SESSION_SQL)
        .await
        .map_err(SchemaError::Session)?;
    for o in objects {
        for sql in object_sql(o, opts) {
            if let Err(source) = client.batch_execute(&sql).await {
                let _ = client.batch_execute("RESET ROLE").await;
                return Err(SchemaError::Apply {
                    identity: o.identity.clone(),
                    sql,
                    source,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_naming_the_current_database_unwraps_to_itself() {
        for stmt in [
            format!("COMMENT ON DATABASE {DATABASE_PLACEHOLDER} IS 'it''s $pgsnap$ here';"),
            format!("ALTER DATABASE {DATABASE_PLACEHOLDER} SET work_mem = '8MB';\nALTER ROLE \"r\" IN DATABASE {DATABASE_PLACEHOLDER} SET a.b = '$x$';"),
        ] {
            let block = naming_current_database(&stmt);
            assert!(block.starts_with("DO $"), "{block}");
            assert!(block.contains("pg_catalog.current_database()"), "{block}");
            assert_eq!(unwrap_current_database(&block), Some(stmt.as_str()));
        }
        assert_eq!(unwrap_current_database("DO $$BEGIN NULL; END$$"), None);
        assert_eq!(
            unwrap_current_database("COMMENT ON DATABASE \"d\" IS 'x';"),
            None
        );
    }
}
