//! The target's default privileges (`ALTER DEFAULT PRIVILEGES`) of the
//! restoring role, set aside while the pre-data transaction creates the
//! backup's objects and put back before it commits.
//!
//! Why: an object is created by the restoring role, and PostgreSQL gives a
//! new object the ACL of that role's default privileges. A table whose
//! backup says "no ACL" (NULL: only its owner) would come back readable by
//! whoever the target's defaults grant to, and a function's `EXECUTE` for
//! PUBLIC could be missing, where the backup says otherwise. pg_restore has
//! that flaw. Set aside, the objects are created with the built-in
//! defaults, and their backed-up grants (if any) apply on top, as in the
//! source. The entries are the role's own, which it may always alter; the
//! change is inside the transaction, so no other session sees it, and the
//! entries are checked to be back exactly as they were before it commits.
//!
//! Objects postponed to post-data (a view over a unique index, say) are
//! created after the entries are back and still take them.

use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::schema::ddl::{
    acl_json_sql, default_acl_objtype, default_acl_prefix, default_acl_statements, parse_acl, role,
    AclEntry,
};

/// The restoring role's pg_default_acl entries, as one text to compare
/// and as rows: schema (NULL for global), object type letter, ACL (JSON).
fn entries_sql() -> String {
    format!(
        "SELECT current_user::text, n.nspname::text, d.defaclobjtype::text, {}, \
         d.defaclacl::text FROM pg_catalog.pg_default_acl d \
         LEFT JOIN pg_catalog.pg_namespace n ON n.oid = d.defaclnamespace \
         WHERE d.defaclrole = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user) \
         ORDER BY 2 NULLS FIRST, 3",
        acl_json_sql("d.defaclacl")
    )
}

struct Entry {
    schema: Option<String>,
    objtype: &'static str,
    acl: Vec<AclEntry>,
}

/// Entries set aside, to be put back with [`SetAside::put_back`].
pub struct SetAside {
    role: String,
    entries: Vec<Entry>,
    /// The entries as the target had them (schema, type, aclitem[] text).
    before: Vec<RawEntry>,
}

/// An entry as the target has it: schema, type letter, aclitem[] text.
type RawEntry = (Option<String>, String, String);

async fn read(client: &Client) -> Result<(Option<String>, Vec<Entry>, Vec<RawEntry>)> {
    let rows = client
        .query(&entries_sql(), &[])
        .await
        .map_err(|e| Error::pg("reading the target's default privileges", e))?;
    let mut role = None;
    let mut entries = Vec::new();
    let mut raw = Vec::new();
    for r in rows {
        role = Some(r.get::<_, String>(0));
        let schema: Option<String> = r.get(1);
        let letter: String = r.get(2);
        let acl = parse_acl(r.get::<_, Option<&str>>(3)).unwrap_or_default();
        raw.push((schema.clone(), letter.clone(), r.get::<_, String>(4)));
        if let Some(objtype) = default_acl_objtype(&letter) {
            entries.push(Entry {
                schema,
                objtype,
                acl,
            });
        }
    }
    Ok((role, entries, raw))
}

/// Statements that remove one entry: every grantee's privileges revoked,
/// and a global entry given back the built-in defaults (the owner's
/// privileges, and PUBLIC's on functions and types), which PostgreSQL
/// then keeps as no entry at all.
fn clearing(role_name: &str, e: &Entry) -> Vec<String> {
    let prefix = default_acl_prefix(role_name, e.schema.as_deref());
    let mut grantees: Vec<Option<&str>> = Vec::new();
    for AclEntry(grantee, ..) in &e.acl {
        if !grantees.contains(&grantee.as_deref()) {
            grantees.push(grantee.as_deref());
        }
    }
    let mut out: Vec<String> = grantees
        .into_iter()
        .map(|g| format!("{prefix} REVOKE ALL ON {} FROM {};", e.objtype, role(g)))
        .collect();
    if e.schema.is_none() {
        if matches!(e.objtype, "FUNCTIONS" | "TYPES") {
            out.push(format!("{prefix} GRANT ALL ON {} TO PUBLIC;", e.objtype));
        }
        out.push(format!(
            "{prefix} GRANT ALL ON {} TO {};",
            e.objtype,
            role(Some(role_name))
        ));
    }
    out
}

async fn run(client: &Client, what: &str, stmts: &[String]) -> Result<()> {
    for s in stmts {
        client
            .batch_execute(s)
            .await
            .map_err(|e| Error::pg(format!("{what}: {s}"), e))?;
    }
    Ok(())
}

/// Sets the restoring role's default privileges aside, inside the open
/// transaction; `None` when it has none (the common case: one query).
pub async fn set_aside(client: &Client) -> Result<Option<SetAside>> {
    let (Some(role_name), entries, before) = read(client).await? else {
        return Ok(None);
    };
    let what = "setting the target's default privileges aside for the restore";
    for e in &entries {
        run(client, what, &clearing(&role_name, e)).await?;
    }
    let (_, _, left) = read(client).await?;
    if !left.is_empty() {
        return Err(Error::Schema(format!(
            "{what}: {} entries are left; restore with --no-acl to take the target's default \
             privileges",
            left.len()
        )));
    }
    Ok(Some(SetAside {
        role: role_name,
        entries,
        before,
    }))
}

impl SetAside {
    /// Puts the entries back as they were, and checks they are.
    pub async fn put_back(self, client: &Client) -> Result<()> {
        let what = "putting the target's default privileges back";
        for e in &self.entries {
            let stmts = default_acl_statements(&self.role, e.schema.as_deref(), e.objtype, &e.acl);
            run(client, what, &stmts).await?;
        }
        let (_, _, after) = read(client).await?;
        if after != self.before {
            return Err(Error::Schema(format!(
                "{what}: they differ from the target's before the restore; restore with \
                 --no-acl to take the target's default privileges"
            )));
        }
        Ok(())
    }
}
