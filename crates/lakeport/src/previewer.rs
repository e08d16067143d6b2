//! The Arrow-based previewer wired into the API (which itself never compiles Arrow).

use lakeport_api::ingest::{PreviewRequest, PreviewTable, Previewer};
use lakeport_parquet::FileFormat;

/// Previews uploaded JSON, CSV and Parquet files with `lakeport-parquet`.
pub struct ParquetPreviewer;

impl Previewer for ParquetPreviewer {
    fn preview(
        &self,
        file: &std::path::Path,
        request: &PreviewRequest,
    ) -> Result<PreviewTable, String> {
        let format = FileFormat::from_input_format(&request.input_format, None)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let preview = lakeport_parquet::preview(&name, file, &format, request.rows)
            .map_err(|err| err.to_string())?;
        Ok(PreviewTable {
            columns: preview.columns,
            rows: preview.rows,
        })
    }
}
