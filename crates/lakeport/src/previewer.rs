//! The Arrow-based previewers wired into the API (which itself never compiles Arrow): the
//! upload preview of Batch Ingestion and the dataset preview of Data Access.

use lakeport_api::access::RowReader;
use lakeport_api::ingest::{PreviewInput, PreviewRequest, PreviewTable, Previewer};
use lakeport_parquet::FileFormat;

/// Previews uploaded JSON, CSV and Parquet files, and reads the lake's Parquet files
/// back as JSON rows, with `lakeport-parquet`.
pub struct ParquetPreviewer;

impl Previewer for ParquetPreviewer {
    fn preview(
        &self,
        name: &str,
        input: PreviewInput,
        request: &PreviewRequest,
    ) -> Result<PreviewTable, String> {
        let format = FileFormat::from_input_format(&request.input_format, None)?;
        let limits = lakeport_parquet::PreviewLimits {
            rows: request.rows,
            max_row_bytes: request.max_row_bytes,
            max_bytes: request.max_bytes,
        };
        let preview = match input {
            PreviewInput::File(file) => {
                lakeport_parquet::preview(name, file.path(), &format, limits)
            }
            PreviewInput::Stream(reader) => {
                lakeport_parquet::preview_stream(name, Box::new(reader), &format, limits)
            }
        }
        .map_err(|err| err.to_string())?;
        Ok(PreviewTable {
            columns: preview.columns,
            rows: preview.rows,
        })
    }
}

impl RowReader for ParquetPreviewer {
    fn rows(
        &self,
        name: &str,
        file: &std::path::Path,
        limit: usize,
    ) -> Result<Vec<serde_json::Value>, String> {
        lakeport_parquet::parquet_rows(name, file, limit).map_err(|err| err.to_string())
    }
}
