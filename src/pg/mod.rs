//! The PostgreSQL side: connecting as libpq would, the exported snapshot that
//! makes a parallel dump consistent, and COPY in and out.

pub mod conn;
pub mod copy;
pub mod snapshot;
pub mod tls;
pub mod transcode;
pub mod unpad;

pub use conn::{ConnInfo, Session};
