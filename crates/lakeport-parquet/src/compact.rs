//! Compaction of a dataset's table (`lakeport dataset optimize`, spec §12): small Parquet
//! files of one schema rewritten as one file of the same schema, row groups streamed from
//! each input in order, so memory holds one row group at a time.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::error::WriteError;
use crate::output::OutputFile;

/// Rows per row group of a compacted file (as the batch parts are written).
const ROWS_PER_ROW_GROUP: usize = 100_000;
/// Rows read from an input at a time.
const READ_ROWS: usize = 8_192;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

fn parquet_error(path: &Path) -> impl FnOnce(parquet::errors::ParquetError) -> WriteError + '_ {
    move |source| WriteError::Parquet {
        path: path.to_owned(),
        source,
    }
}

/// Returns the Arrow schema of a Parquet file (from its footer): files compact together
/// only when their schemas are equal.
///
/// # Errors
/// The file cannot be opened or is not Parquet.
pub fn file_schema(path: &Path) -> Result<SchemaRef, WriteError> {
    let file = File::open(path).map_err(io_error(path))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error(path))?;
    Ok(builder.schema().clone())
}

/// Writes the rows of `inputs`, in order, as one Snappy Parquet file at `output`, whose
/// schema is the inputs' (all must have the same one).
///
/// # Errors
/// An input cannot be read, has another schema, or the output cannot be written.
pub fn compact(inputs: &[&Path], output: &Path) -> Result<OutputFile, WriteError> {
    let Some(first) = inputs.first() else {
        return Err(WriteError::Io {
            path: output.to_owned(),
            source: std::io::Error::other("nothing to compact"),
        });
    };
    let schema = file_schema(first)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROWS_PER_ROW_GROUP))
        .set_created_by(format!("lakeport {}", env!("CARGO_PKG_VERSION")))
        .build();
    let file = File::create(output).map_err(io_error(output))?;
    let mut writer = ArrowWriter::try_new(
        BufWriter::with_capacity(256 * 1024, file),
        schema.clone(),
        Some(properties),
    )
    .map_err(parquet_error(output))?;
    let mut records = 0u64;
    for input in inputs {
        let file = File::open(input).map_err(io_error(input))?;
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_error(input))?;
        if builder.schema() != &schema {
            return Err(WriteError::Parquet {
                path: input.to_path_buf(),
                source: parquet::errors::ParquetError::General(
                    "its schema differs from the other files compacted with it".to_owned(),
                ),
            });
        }
        let reader = builder
            .with_batch_size(READ_ROWS)
            .build()
            .map_err(parquet_error(input))?;
        for batch in reader {
            let batch = batch.map_err(|err| parquet_error(input)(err.into()))?;
            records += batch.num_rows() as u64;
            writer.write(&batch).map_err(parquet_error(output))?;
        }
    }
    let buffered = writer.into_inner().map_err(parquet_error(output))?;
    let file = buffered
        .into_inner()
        .map_err(|err| io_error(output)(err.into_error()))?;
    file.sync_all().map_err(io_error(output))?;
    let bytes = file.metadata().map_err(io_error(output))?.len();
    Ok(OutputFile {
        relative_path: output
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        records,
        bytes,
    })
}
