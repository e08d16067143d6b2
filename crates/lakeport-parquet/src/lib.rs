//! Lakeport's columnar side: the synchronous file pipeline of batch ingestion (spec §7).
//! [`BatchProcessor`] decodes uploaded JSON, CSV and Parquet files as streams, validates each
//! row against the dataset's resolved XDM schema, writes passing rows as Snappy Parquet parts
//! typed by [`arrow_schema()`], and writes rejected rows with their reasons as JSON Lines
//! (`failed/`, and `meta/` diagnostics). [`preview()`] shows the first rows of an upload
//! (spec §3.6); [`parquet_rows()`] reads Parquet back as JSON rows (dataset preview, §4).
//!
//! Everything here is blocking code: the job runner calls it under `spawn_blocking`. There
//! is no tokio here, and no decision about the batch outcome: the caller reads the counts
//! and the file-level errors and applies spec §7.3.
//!
//! The Arrow and Parquet dependencies live here and nowhere else, so they compile in
//! parallel with the HTTP crate. Only `lakeport-jobs` and the `lakeport` binary may depend on
//! this crate; it may depend on `lakeport-domain`, but must never depend on `lakeport-api` or
//! `lakeport-metastore`.

mod arrow_value;
mod columns;
mod compact;
mod direct;
mod error;
mod format;
mod output;
mod preview;
mod process;
mod read;
mod reuse;
mod schema;
#[doc(hidden)]
pub mod stage;

pub use compact::{compact, file_schema};
pub use error::{FileError, ProcessError, SetupError, WriteError};
pub use format::{Charset, CsvOptions, FileFormat};
pub use output::OutputFile;
pub use preview::{
    DEFAULT_PREVIEW_BYTES, DEFAULT_PREVIEW_ROWS, Preview, PreviewLimits, parquet_json_lines,
    parquet_rows, preview, preview_stream,
};
pub use process::{BatchOutput, BatchProcessor, DEFAULT_MAX_ROW_BYTES, FileStats, ProcessOptions};
pub use schema::{MappingError, XDM_TYPE_METADATA_KEY, arrow_field, arrow_schema};
