//! The pure core of Lakeport: identifiers, tenants, Catalog documents, the batch state
//! machine and the Catalog query language.
//!
//! This crate owns the rules; it does no IO, is not async and must never depend on tokio,
//! sqlx, axum or object_store. Every other crate may depend on it.

pub mod catalog;
pub mod error;
pub mod flow;
pub mod ids;
pub mod ingest;
pub mod query;
pub mod queryservice;
pub mod status;
pub mod tenant;
pub mod xdm;

pub use error::{ErrorKind, HasKind};

/// A Catalog object as stored and served: a JSON object whose key order is preserved.
pub type Doc = serde_json::Map<String, serde_json::Value>;

/// How hard a commit is made durable (`metastore.durability`): what the configuration names
/// and the embedded metastore applies, one type for both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// A commit survives a crash or kill of the process; the last commits may be lost on
    /// power failure (SQLite's `synchronous=NORMAL` in WAL mode).
    #[default]
    Process,
    /// Every commit is fsynced and survives power failure (`synchronous=FULL`).
    PowerLoss,
}

/// Returns the current time in Unix epoch milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is after 1970");
    i64::try_from(now.as_millis()).expect("epoch milliseconds fit in i64")
}
