//! Schema: read every object of a database from the catalogs (inside the
//! backup's snapshot), keep it as a model with its DDL and dependency
//! graph, and write it back on restore.
//!
//! - [`read_schema`] reads the model over an open connection;
//! - [`SchemaModel::ordered`] orders a section's objects by their
//!   dependencies, [`SchemaModel::closure`] computes what a set of tables
//!   needs;
//! - [`apply`] runs the DDL on a target;
//! - [`copy_out_sql`] / [`copy_in_sql`] give the data phase's COPY
//!   statements with explicit column lists.
//!
//! The serialized encoding is described in `docs/schema-model.md`.

mod apply;
pub(crate) mod catalog;
mod closure;
pub mod ddl;
mod error;
mod model;
pub mod order;
pub mod provider;

pub use apply::{acl_sql, apply, object_sql, sql_script, ApplyOptions, APPLY_SESSION_SQL};
pub(crate) use apply::{naming_database, unwrap_current_database, CURRENT_DATABASE_BYTES};
pub use catalog::{read_schema, read_schema_with, ReadOptions};
pub use ddl::{copy_in_sql, copy_out_sql};
pub use error::SchemaError;
pub use model::*;
