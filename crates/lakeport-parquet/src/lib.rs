//! Lakeport's columnar side: decoding uploaded files, building Arrow record batches from
//! validated rows and writing them as Parquet (spec §7). Today it holds the first piece: the
//! mapping from a resolved (`xed-full`) XDM schema to an Arrow [`Schema`](arrow_schema::Schema),
//! so that ingestion writes typed columns.
//!
//! The Arrow (and later Parquet) dependencies live here and nowhere else, so they compile in
//! parallel with the HTTP crate. Only `lakeport-jobs` and the `lakeport` binary may depend on
//! this crate; it may depend on `lakeport-domain`, but must never depend on `lakeport-api` or
//! `lakeport-metastore`.

mod schema;

pub use schema::{MappingError, XDM_TYPE_METADATA_KEY, arrow_field, arrow_schema};
