//! Names a managed-database platform (AWS RDS/Aurora, Google Cloud SQL and
//! AlloyDB, Azure Flexible Server, Neon) creates in every instance: its
//! administration roles, its own extensions and the schemas they live in.
//!
//! A backup taken there names them (grants to `rds_superuser`, a schema
//! owned by `cloudsqladmin`, `aws_s3` installed), and a plain PostgreSQL
//! lacks them, so a faithful restore would fail on them. The backup records
//! which of these names the database uses ([`SchemaModel::managed`], the
//! [`DbObject::provider`] marker); the restore then leaves out what the
//! target lacks and reports it, and restores everything as it was where
//! the target has them (back onto the same platform). See docs/design.md.
//!
//! The table lists names a user cannot take on that platform (RDS reserves
//! `rds*`, Cloud SQL `cloudsql*`, ...) or that only its own binaries ship.
//! Generic-looking names (Azure's `replication`) count only when the
//! platform's anchor role exists in the source cluster, so a plain server's
//! own role of that name stays an ordinary role.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::ddl::roles_named;
use super::model::{DbObject, ObjectKind, SchemaModel};

/// What kind of name a provider manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedKind {
    Role,
    Extension,
    Schema,
}

/// A provider-managed name the source database uses, as the backup recorded it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ManagedName {
    pub kind: ManagedKind,
    pub name: String,
    /// The platform, e.g. `Amazon RDS / Aurora`.
    pub provider: String,
    /// Why the platform has it.
    pub reason: String,
}

/// One row of the table: an exact name, or a prefix (`rds_`).
struct Entry {
    kind: ManagedKind,
    name: &'static str,
    prefix: bool,
    provider: &'static str,
    /// A role that must exist in the source cluster for the entry to count.
    anchor: Option<&'static str>,
    why: &'static str,
}

const AWS: &str = "Amazon RDS / Aurora";
const CLOUDSQL: &str = "Google Cloud SQL";
const ALLOYDB: &str = "Google AlloyDB";
const GOOGLE: &str = "Google Cloud SQL / AlloyDB";
const AZURE: &str = "Azure Database for PostgreSQL";
const NEON: &str = "Neon";

const fn role(name: &'static str, provider: &'static str, why: &'static str) -> Entry {
    Entry {
        kind: ManagedKind::Role,
        name,
        prefix: false,
        provider,
        anchor: None,
        why,
    }
}

const fn ext(name: &'static str, provider: &'static str, why: &'static str) -> Entry {
    Entry {
        kind: ManagedKind::Extension,
        name,
        prefix: false,
        provider,
        anchor: None,
        why,
    }
}

const fn schema(name: &'static str, provider: &'static str, why: &'static str) -> Entry {
    Entry {
        kind: ManagedKind::Schema,
        name,
        prefix: false,
        provider,
        anchor: None,
        why,
    }
}

const fn anchored(mut e: Entry, anchor: &'static str, prefix: bool) -> Entry {
    e.anchor = Some(anchor);
    e.prefix = prefix;
    e
}

#[rustfmt::skip]
const TABLE: &[Entry] = &[
    // Amazon RDS and Aurora PostgreSQL.
    role("rdsadmin", AWS, "the platform's own superuser; owns its internal objects"),
    role("rds_superuser", AWS, "the customer's stand-in for a superuser, granted to the master user"),
    role("rds_replication", AWS, "may manage logical replication slots"),
    role("rds_password", AWS, "may change passwords when password management is restricted"),
    role("rds_iam", AWS, "logs in with IAM database authentication"),
    role("rds_ad", AWS, "logs in with Kerberos (AWS Managed Microsoft AD)"),
    role("rdsrepladmin", AWS, "replication administrator of older RDS versions"),
    role("rdstopmgr", AWS, "Aurora's topology manager"),
    role("rds_extension", AWS, "may manage trusted-language extensions (pg_tle)"),
    anchored(role("rds_", AWS, "RDS reserves role names starting with rds for the platform"), "rdsadmin", true),
    ext("rds_tools", AWS, "RDS-only helper functions (password hash checks, ...)"),
    ext("aws_commons", AWS, "helper types of aws_s3 and aws_lambda, shipped by AWS only"),
    ext("aws_s3", AWS, "COPY to and from S3, shipped by AWS only"),
    ext("aws_lambda", AWS, "calls AWS Lambda, shipped by AWS only"),
    ext("aws_ml", AWS, "Aurora machine learning (SageMaker, Comprehend)"),
    ext("apg_plan_mgmt", AWS, "Aurora query plan management"),
    ext("aurora_stat_utils", AWS, "Aurora statistics functions"),
    ext("log_fdw", AWS, "reads RDS log files as foreign tables"),
    ext("pg_transport", AWS, "RDS transportable databases"),
    role("apg_plan_mgmt", AWS, "created by the apg_plan_mgmt extension"),
    schema("aws_commons", AWS, "created by the aws_commons extension"),
    schema("aws_s3", AWS, "created by the aws_s3 extension"),
    schema("aws_lambda", AWS, "created by the aws_lambda extension"),
    schema("aws_ml", AWS, "created by the aws_ml extension"),
    schema("apg_plan_mgmt", AWS, "created by the apg_plan_mgmt extension"),
    schema("rds_tools", AWS, "created by the rds_tools extension"),
    // Google Cloud SQL.
    role("cloudsqladmin", CLOUDSQL, "the platform's own superuser"),
    role("cloudsqlsuperuser", CLOUDSQL, "the customer's stand-in for a superuser"),
    role("cloudsqlagent", CLOUDSQL, "the platform's monitoring agent"),
    role("cloudsqlimportexport", CLOUDSQL, "runs the platform's import and export"),
    role("cloudsqlreplica", CLOUDSQL, "the platform's replication user"),
    role("cloudsqliamuser", CLOUDSQL, "group of IAM-authenticated users"),
    role("cloudsqliamserviceaccount", CLOUDSQL, "group of IAM-authenticated service accounts"),
    role("cloudsqliamgroup", CLOUDSQL, "group of IAM group-authenticated users"),
    anchored(role("cloudsql", CLOUDSQL, "Cloud SQL reserves role names starting with cloudsql"), "cloudsqladmin", true),
    // Google AlloyDB.
    role("alloydbadmin", ALLOYDB, "the platform's own superuser"),
    role("alloydbsuperuser", ALLOYDB, "the customer's stand-in for a superuser"),
    role("alloydbreplica", ALLOYDB, "the platform's replication user"),
    role("alloydbiamuser", ALLOYDB, "group of IAM-authenticated users"),
    anchored(role("alloydb", ALLOYDB, "AlloyDB reserves role names starting with alloydb"), "alloydbadmin", true),
    ext("google_columnar_engine", ALLOYDB, "AlloyDB's columnar engine"),
    ext("google_db_advisor", ALLOYDB, "AlloyDB's index advisor"),
    ext("alloydb_scann", ALLOYDB, "AlloyDB's ScaNN vector index"),
    ext("google_ml_integration", GOOGLE, "calls Vertex AI models, shipped by Google only"),
    schema("google_ml", GOOGLE, "created by the google_ml_integration extension"),
    // Azure Database for PostgreSQL (Flexible Server; Single Server's azure_superuser).
    role("azuresu", AZURE, "the platform's own superuser"),
    role("azure_superuser", AZURE, "the platform's superuser on Single Server"),
    role("azure_pg_admin", AZURE, "the customer's stand-in for a superuser"),
    role("azure_ad_user", AZURE, "group of Microsoft Entra ID users"),
    role("azure_ad_admin", AZURE, "group of Microsoft Entra ID administrators"),
    role("azure_ad_mfa", AZURE, "group of Microsoft Entra ID users with MFA"),
    anchored(role("replication", AZURE, "the platform's replication user"), "azure_pg_admin", false),
    anchored(role("localadmin", AZURE, "the platform's local administrator"), "azure_pg_admin", false),
    ext("azure", AZURE, "platform functions of Flexible Server"),
    ext("azure_storage", AZURE, "COPY to and from Azure Blob Storage, shipped by Azure only"),
    ext("pg_azure_storage", AZURE, "Azure Blob Storage access (Cosmos DB for PostgreSQL)"),
    ext("azure_ai", AZURE, "calls Azure OpenAI and AI services, shipped by Azure only"),
    ext("azure_local_ai", AZURE, "runs Azure's in-database AI models"),
    schema("azure_storage", AZURE, "created by the azure_storage extension"),
    schema("azure_ai", AZURE, "created by the azure_ai extension"),
    schema("azure_openai", AZURE, "created by the azure_ai extension"),
    schema("azure_cognitive", AZURE, "created by the azure_ai extension"),
    schema("azure_ml", AZURE, "created by the azure_ai extension"),
    schema("azure_local_ai", AZURE, "created by the azure_local_ai extension"),
    // Neon.
    role("neon_superuser", NEON, "the customer's stand-in for a superuser"),
    role("cloud_admin", NEON, "the platform's own superuser"),
    ext("neon", NEON, "Neon's storage statistics functions"),
    ext("neon_utils", NEON, "Neon's compute utilities"),
];

/// The table entry for a name, given the roles of the source cluster.
fn lookup(kind: ManagedKind, name: &str, source_roles: &HashSet<String>) -> Option<&'static Entry> {
    TABLE.iter().find(|e| {
        e.kind == kind
            && if e.prefix {
                name.starts_with(e.name)
            } else {
                name == e.name
            }
            && e.anchor.map_or(true, |a| source_roles.contains(a))
    })
}

/// Marks what the platform made: extensions and schemas of the table get
/// [`DbObject::provider`], and every table name the model uses (roles named
/// as owners, grantees, grantors, default-privilege roles, in database
/// settings) is listed in [`SchemaModel::managed`]. `source_roles` are the
/// source cluster's role names (for the anchored entries).
pub fn mark(model: &mut SchemaModel, source_roles: &HashSet<String>) {
    let mut found: BTreeMap<(ManagedKind, String), &'static Entry> = BTreeMap::new();
    for o in &mut model.objects {
        let own_kind = match o.kind {
            ObjectKind::Extension => Some(ManagedKind::Extension),
            ObjectKind::Schema => Some(ManagedKind::Schema),
            _ => None,
        };
        if let Some(e) = own_kind.and_then(|k| lookup(k, &o.name, source_roles)) {
            o.provider = Some(e.provider.to_string());
            found.insert((e.kind, o.name.clone()), e);
        }
        for r in object_roles(o) {
            if let Some(e) = lookup(ManagedKind::Role, &r, source_roles) {
                found.insert((ManagedKind::Role, r), e);
            }
        }
    }
    model.managed = found
        .into_iter()
        .map(|((kind, name), e)| ManagedName {
            kind,
            name,
            provider: e.provider.to_string(),
            reason: e.why.to_string(),
        })
        .collect();
}

/// Every role an object's statements name: owner, privileges, and the
/// per-role settings of the database object.
pub fn object_roles(o: &DbObject) -> Vec<String> {
    let mut out: Vec<String> = o.owner.iter().cloned().collect();
    for s in o.owner_sql.iter().chain(o.acl_sql.iter()) {
        out.extend(roles_named(s));
    }
    if o.kind == ObjectKind::Database {
        out.extend(o.create.lines().filter_map(setting_role));
    }
    out.sort();
    out.dedup();
    out
}

/// The role of an `ALTER ROLE "r" IN DATABASE ... SET` line of the
/// database object (other lines: none).
pub fn setting_role(line: &str) -> Option<String> {
    if !line.starts_with("ALTER ROLE \"") {
        return None;
    }
    roles_named(line).into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn exact_names_count_everywhere_prefixes_only_with_their_anchor() {
        let none = roles(&[]);
        let rds = roles(&["rdsadmin"]);
        assert!(lookup(ManagedKind::Role, "rds_superuser", &none).is_some());
        assert!(lookup(ManagedKind::Role, "rds_custom_thing", &none).is_none());
        assert!(lookup(ManagedKind::Role, "rds_custom_thing", &rds).is_some());
        assert!(lookup(ManagedKind::Role, "replication", &rds).is_none());
        assert!(lookup(
            ManagedKind::Role,
            "replication",
            &roles(&["azure_pg_admin"])
        )
        .is_some());
        assert!(lookup(ManagedKind::Role, "app", &rds).is_none());
        assert!(lookup(ManagedKind::Extension, "aws_s3", &none).is_some());
        assert!(lookup(ManagedKind::Extension, "pgcrypto", &none).is_none());
        assert!(lookup(ManagedKind::Schema, "rdsadmin", &none).is_none());
    }

    #[test]
    fn every_entry_says_why() {
        for e in TABLE {
            assert!(!e.why.is_empty() && !e.provider.is_empty(), "{}", e.name);
        }
    }

    #[test]
    fn setting_roles_only_from_alter_role_lines() {
        assert_eq!(
            setting_role("ALTER ROLE \"rdsadmin\" IN DATABASE @@X@@ SET work_mem TO '1MB';"),
            Some("rdsadmin".to_string())
        );
        assert_eq!(
            setting_role("ALTER DATABASE @@X@@ SET search_path TO \"a\";"),
            None
        );
    }
}
