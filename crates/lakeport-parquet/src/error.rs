//! The errors of batch processing: setup, file-level data errors, and output failures.

use std::io;
use std::path::PathBuf;

use lakeport_domain::xdm::validate::SchemaError;
use lakeport_domain::{ErrorKind, HasKind};

use crate::schema::MappingError;

/// Why a [`BatchProcessor`](crate::BatchProcessor) could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the dataset schema cannot be used for validation: {0}")]
    Schema(#[from] SchemaError),
    #[error("the dataset schema cannot be mapped to Arrow: {0}")]
    Mapping(#[from] MappingError),
    #[error("invalid processing options: {0}")]
    Options(String),
    #[error("output directory {path} is not empty; each attempt needs a fresh directory")]
    OutputNotEmpty { path: PathBuf },
    #[error("cannot prepare output directory {path}: {source}")]
    Output { path: PathBuf, source: io::Error },
}

impl HasKind for SetupError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Schema(_) | Self::Mapping(_) => ErrorKind::InvalidInput,
            Self::Options(_) | Self::OutputNotEmpty { .. } | Self::Output { .. } => {
                ErrorKind::Internal
            }
        }
    }
}

/// A file-level data error (spec §7.2 steps 1–2): the whole file, and so the whole batch,
/// fails whatever the partial-ingestion threshold (spec §7.3). `file` is the file's path
/// inside the batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    #[error("file {file} is empty")]
    Empty { file: String },
    #[error("file {file}: the CSV header row is empty")]
    EmptyHeader { file: String },
    #[error("file {file} cannot be decoded as {format}: {reason}")]
    Undecodable {
        file: String,
        format: &'static str,
        reason: String,
    },
    #[error("file {file} does not fit the dataset schema: {reason}")]
    NotInSchema { file: String, reason: String },
}

impl FileError {
    /// Returns the code of the batch `errors` entry (spec §7.4): `106` empty file, `118`
    /// empty CSV header, `INGEST-9201-400` undecodable, `INGEST-9202-400` columns not in the
    /// schema.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty { .. } => "106",
            Self::EmptyHeader { .. } => "118",
            Self::Undecodable { .. } => "INGEST-9201-400",
            Self::NotInSchema { .. } => "INGEST-9202-400",
        }
    }

    /// Returns the path of the file inside the batch.
    pub fn file(&self) -> &str {
        match self {
            Self::Empty { file }
            | Self::EmptyHeader { file }
            | Self::Undecodable { file, .. }
            | Self::NotInSchema { file, .. } => file,
        }
    }
}

impl HasKind for FileError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidInput
    }
}

/// Writing the output of a batch failed: an infrastructure failure (retry the job), not a
/// data error.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot write {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("cannot write Parquet file {path}: {source}")]
    Parquet {
        path: PathBuf,
        source: parquet::errors::ParquetError,
    },
    // A validated row that Arrow refuses means the validator and the Arrow mapping disagree
    // about a type: a bug, reported rather than dropping the row silently.
    #[error("cannot build Arrow columns from validated rows: {0}")]
    Encode(#[source] arrow_schema::ArrowError),
    #[error("the Parquet encoding thread {0}")]
    Thread(String),
}

impl HasKind for WriteError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Why [`BatchProcessor::process_file`](crate::BatchProcessor::process_file) stopped.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The file's content is unusable; the batch fails with [`FileError::code`].
    #[error(transparent)]
    File(#[from] FileError),
    /// The staged file could not be read (storage trouble, not bad data).
    #[error("cannot read staged file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl HasKind for ProcessError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::File(err) => err.kind(),
            Self::Read { .. } => ErrorKind::Internal,
            Self::Write(err) => err.kind(),
        }
    }
}
