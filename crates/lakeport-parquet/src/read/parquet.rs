//! Parquet input through parquet's Arrow reader, one record batch at a time.

use std::fs::File;
use std::path::Path;

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, FieldRef, Schema};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::basic::{Encoding, PageType};
use serde_json::Value;

use super::{Flow, RowSink, empty, oversized, undecodable};
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
    let undecodable_footer =
        |err: parquet::errors::ParquetError| undecodable(name, FORMAT, err.to_string());
    let mut metadata =
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(undecodable_footer)?;
    if let Some(schema) = keeping_dictionaries(&metadata) {
        let options = ArrowReaderOptions::new().with_schema(Arc::new(schema));
        metadata = ArrowReaderMetadata::try_new(metadata.metadata().clone(), options)
            .map_err(undecodable_footer)?;
    }
    Ok((
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata),
        size,
    ))
}

/// Returns the file's Arrow schema with every top-level text or binary column that is
/// dictionary-encoded in every row group read as an Arrow dictionary, or `None` when there
/// is none. Decoded plainly, a dictionary of one large value repeated on every row is that
/// value times the rows of a batch (a kilobyte file can be gigabytes); kept as a dictionary,
/// it is held once and each row's value is built when the row is.
pub(crate) fn keeping_dictionaries(metadata: &ArrowReaderMetadata) -> Option<Schema> {
    let parquet = metadata.metadata();
    let leaves = parquet.file_metadata().schema_descr();
    let schema = metadata.schema();
    let mut changed = false;
    let fields: Vec<FieldRef> = schema
        .fields()
        .iter()
        .map(|field| {
            let text = matches!(
                field.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
            );
            let leaf = leaves
                .columns()
                .iter()
                .position(|column| column.path().parts() == [field.name().as_str()]);
            let dictionary_everywhere = leaf.is_some_and(|leaf| {
                parquet.row_groups().iter().all(|group| {
                    group.column(leaf).dictionary_page_offset().is_some()
                        && group
                            .column(leaf)
                            .page_encoding_stats()
                            .is_none_or(|stats| {
                                stats.iter().all(|stat| {
                                    !matches!(
                                        stat.page_type,
                                        PageType::DATA_PAGE | PageType::DATA_PAGE_V2
                                    ) || matches!(
                                        stat.encoding,
                                        Encoding::RLE_DICTIONARY | Encoding::PLAIN_DICTIONARY
                                    )
                                })
                            })
                })
            });
            if text && dictionary_everywhere {
                changed = true;
                let data_type = DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(field.data_type().clone()),
                );
                Arc::new(
                    Field::new(field.name(), data_type, field.is_nullable())
                        .with_metadata(field.metadata().clone()),
                )
            } else {
                field.clone()
            }
        })
        .collect();
    changed.then(|| Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The most uncompressed bytes, as the footer counts them, a record batch is sized for.
const BATCH_BYTES: u64 = 64 * 1024 * 1024;

/// Reads every row into the sink as a JSON object (until the sink stops). With the
/// dataset's resolved `schema`, timestamps for XDM `date` fields are handed over as dates
/// (see [`dates_from_timestamps`]); without it (previews), values are shown as they are.
///
/// Memory is bounded by the footer before any page is read: a row group whose rows average
/// more than `max_row_bytes` uncompressed is refused (a few kilobytes of zstd can hold
/// gigabytes), and record batches hold about [`BATCH_BYTES`] (at most `batch_rows` rows).
/// A decoded row larger than `max_row_bytes` is a corrupt row.
///
/// # Errors
///
/// `INGEST-9201-400` when a page cannot be decoded or a row group is too large for its rows,
/// or whatever the sink returns.
pub(crate) fn read(
    builder: ParquetRecordBatchReaderBuilder<File>,
    name: &str,
    batch_rows: usize,
    schema: Option<&Value>,
    max_row_bytes: usize,
    sink: &mut impl RowSink,
) -> Result<(), ProcessError> {
    let reader = reader(builder, name, batch_rows, max_row_bytes)?;
    let mut row_number: u64 = 0;
    for batch in reader {
        let batch = batch
            .and_then(without_dictionaries)
            .and_then(|batch| match schema {
                Some(schema) => dates_from_timestamps(batch, schema),
                None => Ok(batch),
            })
            .map_err(|err| undecodable(name, FORMAT, err.to_string()))?;
        if read_batch(&batch, &mut row_number, max_row_bytes, sink)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

/// Checks the row groups against `max_row_bytes` (see [`read`]) and returns the record
/// batch reader, sized by bytes as [`read`] describes.
///
/// # Errors
///
/// `INGEST-9201-400` when a row group is too large for its rows or the reader cannot be
/// built.
pub(crate) fn reader(
    builder: ParquetRecordBatchReaderBuilder<File>,
    name: &str,
    batch_rows: usize,
    max_row_bytes: usize,
) -> Result<ParquetRecordBatchReader, ProcessError> {
    let mut widest: u64 = 1;
    for (index, group) in builder.metadata().row_groups().iter().enumerate() {
        let rows = u64::try_from(group.num_rows()).unwrap_or(0).max(1);
        let bytes: u64 = group
            .columns()
            .iter()
            .map(|column| u64::try_from(column.uncompressed_size()).unwrap_or(0))
            .sum::<u64>()
            .max(u64::try_from(group.total_byte_size()).unwrap_or(0));
        let per_row = bytes.div_ceil(rows);
        if per_row > max_row_bytes as u64 {
            return Err(undecodable(
                name,
                FORMAT,
                format!(
                    "row group {} holds {bytes} bytes uncompressed for {rows} rows, more than \
                     the maximum row size of {max_row_bytes} bytes per row",
                    index + 1
                ),
            ));
        }
        widest = widest.max(per_row);
    }
    let by_bytes = usize::try_from(BATCH_BYTES / widest).unwrap_or(usize::MAX);
    builder
        .with_batch_size(batch_rows.min(by_bytes).max(1))
        .build()
        .map_err(|err| undecodable(name, FORMAT, err.to_string()))
}

/// Returns the file-level error of a record batch that cannot be decoded.
pub(crate) fn undecodable_batch(name: &str, err: &arrow_schema::ArrowError) -> ProcessError {
    undecodable(name, FORMAT, err.to_string())
}

fn read_batch(
    batch: &RecordBatch,
    row_number: &mut u64,
    max_row_bytes: usize,
    sink: &mut impl RowSink,
) -> Result<Flow, ProcessError> {
    for index in 0..batch.num_rows() {
        *row_number += 1;
        if read_row(batch, index, *row_number, max_row_bytes, sink)? == Flow::Stop {
            return Ok(Flow::Stop);
        }
    }
    Ok(Flow::Continue)
}

/// Hands row `index` of `batch` (row `row_number` of the file, from 1) to the sink as a JSON
/// object, or as a corrupt row when it is larger than `max_row_bytes` or cannot be read.
pub(crate) fn read_row(
    batch: &RecordBatch,
    index: usize,
    row_number: u64,
    max_row_bytes: usize,
    sink: &mut impl RowSink,
) -> Result<Flow, ProcessError> {
    let row = row_object(batch, index);
    let size = row.as_ref().map_or(0, |row| json_size(row.values()));
    match row {
        Ok(_) if size > max_row_bytes => sink.corrupt(
            format!("row {row_number}").as_bytes(),
            oversized(
                &format!("row {row_number}"),
                size as u64,
                max_row_bytes,
                false,
            ),
        ),
        Ok(row) => sink.row(Value::Object(row), &|| {
            Value::Object(row_object(batch, index).unwrap_or_default())
        }),
        Err(reason) => sink.corrupt(
            format!("row {row_number}").as_bytes(),
            format!("row {row_number} cannot be decoded: {reason}"),
        ),
    }
}

/// Returns about how many bytes `values` take as compact JSON (strings unescaped), without
/// writing them.
fn json_size<'v>(values: impl Iterator<Item = &'v Value>) -> usize {
    values.map(value_size).sum()
}

/// About the bytes of `value` written as JSON.
pub(crate) fn value_size(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 8,
        Value::String(text) => text.len() + 3,
        Value::Array(elements) => 2 + json_size(elements.iter()),
        Value::Object(fields) => {
            2 + fields
                .iter()
                .map(|(key, value)| key.len() + 4 + value_size(value))
                .sum::<usize>()
        }
    }
}
