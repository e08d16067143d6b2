//! The pure core of Lakeport: identifiers, tenants, Catalog documents, the batch state
//! machine and the Catalog query language.
//!
//! This crate owns the rules; it does no IO, is not async and must never depend on tokio,
//! sqlx, axum or object_store. Every other crate may depend on it.

pub mod catalog;
pub mod error;
pub mod ids;
pub mod ingest;
pub mod query;
pub mod status;
pub mod tenant;
pub mod xdm;

pub use error::{ErrorKind, HasKind};

/// A Catalog object as stored and served: a JSON object whose key order is preserved.
pub type Doc = serde_json::Map<String, serde_json::Value>;

/// Returns the current time in Unix epoch milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(now.as_millis()).expect("epoch milliseconds fit in i64")
}
