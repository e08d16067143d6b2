//! HTTP tests of the Query Service's REST API (spec §11.4): the real router with DataFusion
//! wired in, over a real metastore and storage; queries run as background jobs that the tests
//! poll, draining the ingestion jobs their CTAS and INSERT INTO batches need; and the web
//! console's SQL page over the same engine.

mod console;
mod rest;
