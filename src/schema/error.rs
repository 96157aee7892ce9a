//! Errors of the schema module.

use thiserror::Error;

/// Everything that can go wrong while reading a schema from the catalogs or
/// applying it to a target database.
#[derive(Debug, Error)]
pub enum SchemaError {
    /// A catalog query failed.
    #[error("reading the catalog ({what}): {}", pg_message(source))]
    Catalog {
        what: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A DDL statement failed on the target.
    #[error("creating {identity}: {}\nSQL: {sql}", pg_message(source))]
    Apply {
        identity: String,
        sql: String,
        #[source]
        source: tokio_postgres::Error,
    },
    /// A session setting on the target or source could not be set.
    #[error("preparing the session: {}", pg_message(.0))]
    Session(#[source] tokio_postgres::Error),
    /// The catalog held something this module does not understand.
    #[error("unsupported catalog content: {0}")]
    Unsupported(String),
    /// The serialized model is of an unknown format version.
    #[error("schema model format {found} is not supported (this build reads up to {supported})")]
    Format { found: u32, supported: u32 },
    /// A table named by the caller does not exist in the model.
    #[error("table {0} is not in the schema")]
    UnknownTable(String),
}

/// The server's message (with detail and hint) of a database error, or the
/// client error's own text.
pub fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{}: {}", db.severity(), db.message());
            if let Some(d) = db.detail() {
                m.push_str(&format!(" (detail: {d})"));
            }
            if let Some(h) = db.hint() {
                m.push_str(&format!(" (hint: {h})"));
            }
            m
        }
        None => e.to_string(),
    }
}
