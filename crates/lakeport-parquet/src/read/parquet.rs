//! Parquet input through parquet's Arrow reader, one record batch at a time.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use super::{Flow, RowSink, empty, undecodable};
use crate::arrow_value::{dates_from_timestamps, row_object, without_dictionaries};
use crate::error::ProcessError;

const FORMAT: &str = "Parquet";

/// Rows decoded per record batch: enough to amortise decoding, small enough to stay cheap.
pub(crate) const BATCH_ROWS: usize = 8192;

/// Opens a Parquet file and reads its footer; returns the reader builder and the file size.
///
/// # Errors
///
/// `106` for a zero-byte file, `INGEST-9201-400` when the footer cannot be read.
pub(crate) fn open(
    path: &Path,
    name: &str,
) -> Result<(ParquetRecordBatchReaderBuilder<File>, u64), ProcessError> {
    let read_error = |source| ProcessError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    if size == 0 {
        return Err(empty(name));
    }
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|err| undecodable(name, FORMAT, err.to_string()))?;
    Ok((builder, size))
}

/// Reads every row into the sink as a JSON object (until the sink stops). With the
/// dataset's resolved `schema`, timestamps for XDM `date` fields are handed over as dates
/// (see [`dates_from_timestamps`]); without it (previews), values are shown as they are.
///
/// # Errors
///
/// `INGEST-9201-400` when a page cannot be decoded, or whatever the sink returns.
pub(crate) fn read(
    builder: ParquetRecordBatchReaderBuilder<File>,
    name: &str,
    batch_rows: usize,
    schema: Option<&Value>,
    sink: &mut impl RowSink,
) -> Result<(), ProcessError> {
    let reader = builder
        .with_batch_size(batch_rows)
        .build()
        .map_err(|err| undecodable(name, FORMAT, err.to_string()))?;
    let mut row_number: u64 = 0;
    for batch in reader {
        let batch = batch
            .and_then(without_dictionaries)
            .and_then(|batch| match schema {
                Some(schema) => dates_from_timestamps(batch, schema),
                None => Ok(batch),
            })
            .map_err(|err| undecodable(name, FORMAT, err.to_string()))?;
        if read_batch(&batch, &mut row_number, sink)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

fn read_batch(
    batch: &RecordBatch,
    row_number: &mut u64,
    sink: &mut impl RowSink,
) -> Result<Flow, ProcessError> {
    for index in 0..batch.num_rows() {
        *row_number += 1;
        let flow = match row_object(batch, index) {
            Ok(row) => sink.row(Value::Object(row), &|| {
                Value::Object(row_object(batch, index).unwrap_or_default())
            })?,
            Err(reason) => sink.corrupt(
                format!("row {row_number}").as_bytes(),
                format!("row {row_number} cannot be decoded: {reason}"),
            )?,
        };
        if flow == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}
