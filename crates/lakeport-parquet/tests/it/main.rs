//! The batch pipeline end to end: real input files in, real Parquet and JSON Lines out, read
//! back with parquet's reader.

mod csv_input;
mod differential;
mod differential_csv;
mod differential_parquet;
mod file_errors;
mod golden;
mod json_input;
mod parquet_input;
mod parquet_types;
mod preview;
mod rejects;
mod rolling;
mod row_limit;
mod support;
