//! HTTP tests: the real router over a real SQLite metastore in a temporary directory,
//! driven with `tower::ServiceExt::oneshot`.

mod access;
mod batches;
mod datasets;
mod early;
mod flow;
mod gateway;
mod import;
mod ingest;
mod lake;
mod openapi;
mod queries;
mod registry;
mod streaming;
mod support {
    pub use lakeport_test_support::*;
}
