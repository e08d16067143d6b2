//! Fixtures and helpers shared by the pipeline tests.

use std::fs;
use std::path::{Path, PathBuf};

use lakeport_parquet::{
    BatchOutput, BatchProcessor, FileFormat, FileStats, ProcessError, ProcessOptions, parquet_rows,
};
use serde_json::Value;
use tempfile::TempDir;

/// Returns a schema from `testdata/`.
pub fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name);
    serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap()
}

/// A temp directory with staged inputs under `in/` and the batch output under `out/`.
pub struct Batch {
    pub dir: TempDir,
    pub processor: Option<BatchProcessor>,
}

impl Batch {
    pub fn new(schema_name: &str, options: ProcessOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let processor =
            BatchProcessor::new(&schema(schema_name), &dir.path().join("out"), options).unwrap();
        Self {
            dir,
            processor: Some(processor),
        }
    }

    /// Stages `bytes` as `name` and returns its path.
    pub fn stage(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join("in").join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Stages and processes one file.
    pub fn process(
        &mut self,
        name: &str,
        bytes: &[u8],
        format: &FileFormat,
    ) -> Result<FileStats, ProcessError> {
        let path = self.stage(name, bytes);
        self.processor
            .as_mut()
            .unwrap()
            .process_file(name, &path, format)
    }

    pub fn finish(&mut self) -> BatchOutput {
        self.processor.take().unwrap().finish().unwrap()
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// Returns every row of every part, in order.
    pub fn output_rows(&self, output: &BatchOutput) -> Vec<Value> {
        output
            .parts
            .iter()
            .flat_map(|part| {
                parquet_rows(
                    &part.relative_path,
                    &self.out().join(&part.relative_path),
                    usize::MAX,
                )
                .unwrap()
            })
            .collect()
    }

    /// Returns the JSON lines of an output file.
    pub fn json_lines(&self, relative_path: &str) -> Vec<Value> {
        fs::read_to_string(self.out().join(relative_path))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }
}

pub fn json_lines_format() -> FileFormat {
    FileFormat::Json { multi_line: false }
}

/// Joins JSON values into a JSON Lines file.
pub fn jsonl(rows: &[Value]) -> Vec<u8> {
    rows.iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// Returns the relative paths of output files.
pub fn paths(files: &[lakeport_parquet::OutputFile]) -> Vec<&str> {
    files
        .iter()
        .map(|file| file.relative_path.as_str())
        .collect()
}
