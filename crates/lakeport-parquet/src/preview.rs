//! The upload preview of spec §3.6: the first rows of a file as columns and strings, without
//! a schema.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::error::ProcessError;
use crate::format::FileFormat;
use crate::read::csv::{CsvFile, Next};
use crate::read::{self, Flow, RowSink, undecodable};

/// Rows a preview shows when asked for 0 (spec §3.6: `nrow` 0 or absent means 100).
pub const DEFAULT_PREVIEW_ROWS: usize = 100;

/// The first rows of a file: column names, and per row one optional string per column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preview {
    /// Column names in file order (CSV header, Parquet columns, or the JSON top-level keys
    /// in order of first appearance).
    pub columns: Vec<String>,
    /// One entry per column; `None` for null or absent. Nested values are compact JSON.
    pub rows: Vec<Vec<Option<String>>>,
}

impl Preview {
    /// Returns the `preview` object of spec §3.6: `{"columns": [{"cid": "0", "name": …}],
    /// "rows": [{"0": "…"}]}`, null values as JSON null.
    pub fn to_json(&self) -> Value {
        let columns = self
            .columns
            .iter()
            .enumerate()
            .map(|(cid, name)| {
                let mut column = Map::new();
                column.insert("cid".to_owned(), Value::String(cid.to_string()));
                column.insert("name".to_owned(), Value::String(name.clone()));
                Value::Object(column)
            })
            .collect();
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let cells = (0..self.columns.len()).map(|cid| {
                    let value = row.get(cid).cloned().flatten();
                    (cid.to_string(), value.map_or(Value::Null, Value::String))
                });
                Value::Object(cells.collect())
            })
            .collect();
        let mut preview = Map::new();
        preview.insert("columns".to_owned(), Value::Array(columns));
        preview.insert("rows".to_owned(), Value::Array(rows));
        Value::Object(preview)
    }
}

/// How much a preview may show and read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreviewLimits {
    /// The most rows (0 means [`DEFAULT_PREVIEW_ROWS`]).
    pub rows: usize,
    /// The row limit of ingestion: a JSON or CSV row larger than this fails the preview
    /// without being held in memory.
    pub max_row_bytes: usize,
    /// The most text the preview's cells may hold: the preview stops after the row that
    /// reaches it, so it holds at most this plus one row.
    pub max_bytes: usize,
}

impl PreviewLimits {
    /// `rows` rows (0: the default) within the default row limit and 16 MiB of text.
    pub fn rows(rows: usize) -> Self {
        Self {
            rows,
            max_row_bytes: crate::DEFAULT_MAX_ROW_BYTES,
            max_bytes: DEFAULT_PREVIEW_BYTES,
        }
    }

    fn row_limit(&self) -> usize {
        if self.rows == 0 {
            DEFAULT_PREVIEW_ROWS
        } else {
            self.rows
        }
    }
}

/// The most cell text a preview holds by default.
pub const DEFAULT_PREVIEW_BYTES: usize = 16 * 1024 * 1024;

/// Returns the first rows of the file staged at `file`, within `limits`; `name` is its path
/// inside the batch, for messages.
///
/// # Errors
///
/// [`ProcessError::File`] when the file is empty or cannot be decoded with the given
/// format (for JSON also a line that is not a JSON object: a preview shows rows only; for
/// JSON and CSV a row over the row limit); [`ProcessError::Read`] when it cannot be read.
/// Never [`ProcessError::Write`].
pub fn preview(
    name: &str,
    file: &Path,
    format: &FileFormat,
    limits: PreviewLimits,
) -> Result<Preview, ProcessError> {
    if matches!(format, FileFormat::Parquet) {
        return preview_parquet(name, file, limits);
    }
    let (reader, _) = read::open(file)?;
    preview_rows(name, reader, file, format, limits)
}

/// Like [`preview`], for a JSON or CSV file read as a stream (from remote object storage):
/// only the bytes of the first rows are read.
///
/// # Errors
///
/// As [`preview`]; [`ProcessError::Read`] for a Parquet format, which needs a file.
pub fn preview_stream(
    name: &str,
    stream: Box<dyn std::io::Read + Send>,
    format: &FileFormat,
    limits: PreviewLimits,
) -> Result<Preview, ProcessError> {
    let path = Path::new(name);
    if matches!(format, FileFormat::Parquet) {
        return Err(ProcessError::Read {
            path: path.to_owned(),
            source: std::io::Error::other("a Parquet file is previewed from a local file"),
        });
    }
    preview_rows(name, read::input(stream), path, format, limits)
}

/// Returns the text a preview row holds.
fn row_bytes(cells: &[Option<String>]) -> usize {
    cells.iter().flatten().map(String::len).sum()
}

/// Previews JSON or CSV rows from `reader`; `file` names it in read errors.
fn preview_rows(
    name: &str,
    reader: read::Input,
    file: &Path,
    format: &FileFormat,
    limits: PreviewLimits,
) -> Result<Preview, ProcessError> {
    let max_row_bytes = limits.max_row_bytes.max(1);
    match format {
        FileFormat::Json { multi_line } => {
            let mut sink = ObjectPreview::new(name, "JSON", limits, Vec::new());
            if *multi_line {
                read::json::read_array(reader, file, name, max_row_bytes, &mut sink)?;
            } else {
                read::json::read_lines(reader, file, name, max_row_bytes, &mut sink)?;
            }
            Ok(sink.preview)
        }
        FileFormat::Csv(options) => {
            let mut csv = CsvFile::open(reader, file, name, options, max_row_bytes)?;
            let mut preview = Preview {
                columns: csv.header().to_vec(),
                rows: Vec::new(),
            };
            let mut values = Vec::new();
            let mut bytes = 0;
            while preview.rows.len() < limits.row_limit() && bytes < limits.max_bytes {
                match csv.next(&mut values)? {
                    Next::End => break,
                    Next::Values | Next::Corrupt { .. } => {
                        bytes += row_bytes(&values);
                        preview.rows.push(std::mem::take(&mut values));
                    }
                    Next::Oversized { message, .. } => {
                        return Err(undecodable(name, "CSV", message));
                    }
                }
            }
            Ok(preview)
        }
        // Read from the file by `preview`, before a byte stream was opened.
        FileFormat::Parquet => Ok(Preview {
            columns: Vec::new(),
            rows: Vec::new(),
        }),
    }
}

/// Previews the first rows of a Parquet file.
fn preview_parquet(
    name: &str,
    file: &Path,
    limits: PreviewLimits,
) -> Result<Preview, ProcessError> {
    let (builder, _) = read::parquet::open(file, name)?;
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|field| field.name().clone())
        .collect();
    let mut sink = ObjectPreview::new(name, "Parquet", limits, columns);
    read::parquet::read(
        builder,
        name,
        limits.row_limit().min(read::parquet::BATCH_ROWS),
        None,
        limits.max_row_bytes.max(1),
        &mut sink,
    )?;
    Ok(sink.preview)
}

/// Collects JSON-object rows into preview columns.
struct ObjectPreview<'n> {
    name: &'n str,
    format: &'static str,
    limits: PreviewLimits,
    /// The text held so far.
    bytes: usize,
    preview: Preview,
    positions: HashMap<String, usize>,
}

impl<'n> ObjectPreview<'n> {
    fn new(
        name: &'n str,
        format: &'static str,
        limits: PreviewLimits,
        columns: Vec<String>,
    ) -> Self {
        let positions = columns
            .iter()
            .enumerate()
            .map(|(position, column)| (column.clone(), position))
            .collect();
        Self {
            name,
            format,
            limits,
            bytes: 0,
            preview: Preview {
                columns,
                rows: Vec::new(),
            },
            positions,
        }
    }
}

impl RowSink for ObjectPreview<'_> {
    fn row(&mut self, row: Value, _original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        let Value::Object(fields) = row else {
            return Err(undecodable(
                self.name,
                self.format,
                format!("row {} is not a JSON object", self.preview.rows.len() + 1),
            ));
        };
        let mut cells = vec![None; self.preview.columns.len()];
        for (key, value) in fields {
            let position = *self.positions.entry(key.clone()).or_insert_with(|| {
                self.preview.columns.push(key);
                self.preview.columns.len() - 1
            });
            if cells.len() <= position {
                cells.resize(position + 1, None);
            }
            cells[position] = match value {
                Value::Null => None,
                Value::String(text) => Some(text),
                other => Some(other.to_string()),
            };
        }
        self.bytes += row_bytes(&cells);
        self.preview.rows.push(cells);
        Ok(
            if self.preview.rows.len() >= self.limits.row_limit()
                || self.bytes >= self.limits.max_bytes
            {
                Flow::Stop
            } else {
                Flow::Continue
            },
        )
    }

    fn corrupt(&mut self, _raw: &[u8], message: String) -> Result<Flow, ProcessError> {
        Err(undecodable(self.name, self.format, message))
    }
}

/// Returns up to `limit` rows of a Parquet file as JSON objects: nested values as nested
/// JSON, dates as `YYYY-MM-DD`, timestamps as RFC 3339 in UTC, nulls left out. This is the
/// row form of the dataset preview (spec §4) and of reading output parts back.
///
/// # Errors
///
/// As [`preview()`] for Parquet; `name` names the file in messages.
pub fn parquet_rows(name: &str, file: &Path, limit: usize) -> Result<Vec<Value>, ProcessError> {
    let (builder, _) = read::parquet::open(file, name)?;
    let mut sink = CollectRows {
        name,
        limit,
        rows: Vec::new(),
    };
    if limit > 0 {
        read::parquet::read(
            builder,
            name,
            limit.min(read::parquet::BATCH_ROWS),
            None,
            usize::MAX,
            &mut sink,
        )?;
    }
    Ok(sink.rows)
}

struct CollectRows<'n> {
    name: &'n str,
    limit: usize,
    rows: Vec<Value>,
}

impl RowSink for CollectRows<'_> {
    fn row(&mut self, row: Value, _original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        self.rows.push(row);
        Ok(if self.rows.len() >= self.limit {
            Flow::Stop
        } else {
            Flow::Continue
        })
    }

    fn corrupt(&mut self, _raw: &[u8], message: String) -> Result<Flow, ProcessError> {
        Err(undecodable(self.name, "Parquet", message))
    }
}

/// Writes every row of a Parquet file to `out` as JSON Lines, in the form of
/// [`parquet_rows()`], one record batch at a time (memory holds one batch, whatever the
/// file's size); returns how many rows were written (`lakeport dataset read --output`).
///
/// # Errors
///
/// As [`preview()`] for Parquet, or `out` refused a write.
pub fn parquet_json_lines(
    name: &str,
    file: &Path,
    out: &mut dyn std::io::Write,
) -> Result<u64, ProcessError> {
    let (builder, _) = read::parquet::open(file, name)?;
    let mut sink = WriteRows {
        name,
        out,
        rows: 0,
        line: Vec::new(),
    };
    read::parquet::read(
        builder,
        name,
        read::parquet::BATCH_ROWS,
        None,
        usize::MAX,
        &mut sink,
    )?;
    Ok(sink.rows)
}

struct WriteRows<'a> {
    name: &'a str,
    out: &'a mut dyn std::io::Write,
    rows: u64,
    line: Vec<u8>,
}

impl RowSink for WriteRows<'_> {
    fn row(&mut self, row: Value, _original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, &row)
            .map_err(|err| undecodable(self.name, "Parquet", err.to_string()))?;
        self.line.push(b'\n');
        self.out.write_all(&self.line).map_err(|source| {
            ProcessError::Write(crate::WriteError::Io {
                path: "the JSON Lines output".into(),
                source,
            })
        })?;
        self.rows += 1;
        Ok(Flow::Continue)
    }

    fn corrupt(&mut self, _raw: &[u8], message: String) -> Result<Flow, ProcessError> {
        Err(undecodable(self.name, "Parquet", message))
    }
}
