//! The manifest: the record of one finished backup, written after its
//! archive is durable. A backup exists for `list` only when its manifest does
//! and its archive matches it. Manifests hold sizes, counts, checksums and
//! timings, never a secret.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

pub const MANIFEST_TYPE: &str = "pgsnap-manifest";
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    #[serde(rename = "type")]
    pub kind: String,
    pub manifest_version: u32,
    pub id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// The source database's name.
    pub database: String,
    /// `user@host:port/db` of the source, without password.
    pub source: String,
    pub server_version: String,
    pub pgsnap_version: String,
    pub archive: ArchiveRecord,
    /// Kinds of the key slots that open the archive (`key-file`, `passphrase`, `aws-kms`).
    pub key_slots: Vec<String>,
    pub tables: Vec<TableRecord>,
    pub rows: u64,
    /// Uncompressed bytes of table data.
    pub data_bytes: u64,
    pub timings: Timings,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub jobs: u32,
    /// What a partial backup was limited to (`--table`, `--schema`,
    /// `--exclude-...`); absent for a backup of the whole database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<FilterRecord>,
}

/// The patterns a partial backup was made with, as given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilterRecord {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_tables: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schemas: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_schemas: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_table_data: Vec<String>,
}

impl FilterRecord {
    /// The options that made it, as one would type them
    /// (`--table app.orders --exclude-table-data app.log`).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (flag, pats) in [
            ("--table", &self.tables),
            ("--exclude-table", &self.exclude_tables),
            ("--schema", &self.schemas),
            ("--exclude-schema", &self.exclude_schemas),
            ("--exclude-table-data", &self.exclude_table_data),
        ] {
            parts.extend(pats.iter().map(|p| format!("{flag} {p}")));
        }
        parts.join(" ")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveRecord {
    /// The archive's storage key, relative to the repository.
    pub key: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub archive_id: String,
    pub format_version: u16,
    pub cipher: String,
    pub compression: String,
    pub chunk_size: u32,
    pub chunks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TableRecord {
    pub schema: String,
    pub name: String,
    pub rows: u64,
    /// Uncompressed COPY text bytes.
    pub bytes: u64,
    /// Bytes this table's chunks take in the archive.
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub connect_seconds: f64,
    pub schema_seconds: f64,
    pub data_seconds: f64,
    pub total_seconds: f64,
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("manifest serializes");
        v.push(b'\n');
        v
    }

    pub fn from_json(data: &[u8]) -> Result<Manifest, String> {
        let m: Manifest = serde_json::from_slice(data).map_err(|e| e.to_string())?;
        if m.kind != MANIFEST_TYPE {
            return Err(format!("not a pgsnap manifest (type `{}`)", m.kind));
        }
        if m.manifest_version > MANIFEST_VERSION {
            return Err(format!(
                "manifest version {} is newer than this pgsnap understands ({MANIFEST_VERSION}); \
                 upgrade pgsnap",
                m.manifest_version
            ));
        }
        Ok(m)
    }
}

/// RFC 3339 in UTC with second precision, as every output prints times.
pub fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
