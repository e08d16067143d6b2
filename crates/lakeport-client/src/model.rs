//! Typed views of the documents the services answer with. Catalog objects are permissive
//! JSON documents, so each view keeps the whole document (`doc`) and reads the fields it
//! knows through accessors that tolerate missing or oddly typed values.

use serde_json::{Map, Value};

/// A batch status (spec §6.1). Unknown values are kept verbatim so a newer server does not
/// break the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchStatus {
    Loading,
    Loaded,
    Queued,
    Staging,
    Processing,
    Staged,
    Retrying,
    Stalled,
    Success,
    Failed,
    Aborted,
    Abandoned,
    Inactive,
    Deleted,
    Other(String),
}

impl BatchStatus {
    /// Parses a status; the synonyms `active` and `failure` map to `Success` and `Failed`.
    pub fn parse(text: &str) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "loading" => Self::Loading,
            "loaded" => Self::Loaded,
            "queued" => Self::Queued,
            "staging" => Self::Staging,
            "processing" => Self::Processing,
            "staged" => Self::Staged,
            "retrying" => Self::Retrying,
            "stalled" => Self::Stalled,
            "success" | "active" => Self::Success,
            "failed" | "failure" => Self::Failed,
            "aborted" => Self::Aborted,
            "abandoned" => Self::Abandoned,
            "inactive" => Self::Inactive,
            "deleted" => Self::Deleted,
            _ => Self::Other(text.to_owned()),
        }
    }

    /// Returns the wire spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Loading => "loading",
            Self::Loaded => "loaded",
            Self::Queued => "queued",
            Self::Staging => "staging",
            Self::Processing => "processing",
            Self::Staged => "staged",
            Self::Retrying => "retrying",
            Self::Stalled => "stalled",
            Self::Success => "success",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::Abandoned => "abandoned",
            Self::Inactive => "inactive",
            Self::Deleted => "deleted",
            Self::Other(text) => text,
        }
    }

    /// Returns whether the batch will not change any more without a client signal:
    /// terminal states, plus `stalled`, which waits for an operator.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            Self::Success
                | Self::Failed
                | Self::Aborted
                | Self::Abandoned
                | Self::Inactive
                | Self::Deleted
                | Self::Stalled
        )
    }
}

impl std::fmt::Display for BatchStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A signal for `POST /import/batches/{id}?action=…` (spec §3.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchAction {
    Complete,
    Abort,
    Fail,
    Revert,
}

impl BatchAction {
    /// Returns the wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "COMPLETE",
            Self::Abort => "ABORT",
            Self::Fail => "FAIL",
            Self::Revert => "REVERT",
        }
    }
}

/// One entry of a batch's `errors[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchError {
    pub code: String,
    pub description: String,
    pub record_count: Option<u64>,
}

/// A batch as the Catalog shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub id: String,
    pub status: BatchStatus,
    pub doc: Map<String, Value>,
}

impl Batch {
    pub(crate) fn from_doc(id: String, doc: Map<String, Value>) -> Self {
        let status = BatchStatus::parse(doc.get("status").and_then(Value::as_str).unwrap_or(""));
        Self { id, status, doc }
    }

    /// Returns the dataset of the batch (`relatedObjects` entry of type `dataSet`).
    pub fn dataset_id(&self) -> Option<&str> {
        self.doc
            .get("relatedObjects")?
            .as_array()?
            .iter()
            .find(|object| object["type"] == "dataSet")?
            .get("id")?
            .as_str()
    }

    /// Returns the creation time in epoch milliseconds.
    pub fn created(&self) -> Option<i64> {
        self.doc.get("created").and_then(Value::as_i64)
    }

    /// Returns the input format (`inputFormat.format`).
    pub fn format(&self) -> Option<&str> {
        self.doc.get("inputFormat")?.get("format")?.as_str()
    }

    /// Returns the rows read from the uploaded files (`metrics.inputRecordCount`, or the
    /// legacy `recordsRead`).
    pub fn rows_read(&self) -> Option<u64> {
        let metrics = self.doc.get("metrics")?;
        number(metrics.get("inputRecordCount")).or_else(|| number(metrics.get("recordsRead")))
    }

    /// Returns the rows promoted into the dataset (`recordCount`).
    pub fn rows_ingested(&self) -> Option<u64> {
        number(self.doc.get("recordCount"))
    }

    /// Returns the rows rejected by validation (`failedRecordCount`).
    pub fn rows_rejected(&self) -> Option<u64> {
        number(self.doc.get("failedRecordCount"))
            .or_else(|| number(self.doc.get("metrics")?.get("failedRecordCount")))
    }

    /// Returns the batch's `errors[]`.
    pub fn errors(&self) -> Vec<BatchError> {
        let Some(errors) = self.doc.get("errors").and_then(Value::as_array) else {
            return Vec::new();
        };
        errors
            .iter()
            .map(|error| BatchError {
                code: match error.get("code") {
                    Some(Value::String(code)) => code.clone(),
                    Some(other) => other.to_string(),
                    None => String::new(),
                },
                description: error
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                record_count: number(error.get("recordCount")),
            })
            .collect()
    }
}

/// A dataset as the Catalog shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub id: String,
    pub doc: Map<String, Value>,
}

impl Dataset {
    /// Returns the dataset name.
    pub fn name(&self) -> Option<&str> {
        self.doc.get("name").and_then(Value::as_str)
    }

    /// Returns the `$id` of the dataset's schema (`schemaRef.id`).
    pub fn schema_id(&self) -> Option<&str> {
        self.doc.get("schemaRef")?.get("id")?.as_str()
    }

    /// Returns the creation time in epoch milliseconds.
    pub fn created(&self) -> Option<i64> {
        self.doc.get("created").and_then(Value::as_i64)
    }

    /// Returns the id and status of the dataset's last batch.
    pub fn last_batch(&self) -> Option<(&str, &str)> {
        Some((
            self.doc.get("lastBatchId")?.as_str()?,
            self.doc
                .get("lastBatchStatus")
                .and_then(Value::as_str)
                .unwrap_or(""),
        ))
    }
}

/// A Schema Registry list item (`xed-id` summary).
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaSummary {
    /// The `$id` URI.
    pub id: String,
    pub alt_id: Option<String>,
    pub title: Option<String>,
    pub version: Option<String>,
}

impl SchemaSummary {
    pub(crate) fn from_value(value: &Value) -> Option<Self> {
        let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Self {
            id: text("$id")?,
            alt_id: text("meta:altId"),
            title: text("title"),
            version: text("version"),
        })
    }
}

/// The Schema Registry container a call addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// The organization's own resources.
    Tenant,
    /// Adobe's read-only built-ins.
    Global,
}

impl Container {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Global => "global",
        }
    }
}

/// A dataset file of a batch, as Data Access lists it (spec §4 item 1).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportFile {
    pub id: String,
    pub records: Option<u64>,
    pub size: Option<u64>,
    pub is_valid: bool,
}

impl ExportFile {
    pub(crate) fn from_value(value: &Value) -> Option<Self> {
        Some(Self {
            id: value.get("dataSetFileId")?.as_str()?.to_owned(),
            records: number(value.get("records")),
            size: number(value.get("size")),
            is_valid: value
                .get("isValid")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        })
    }
}

/// A physical file behind a dataset file, or a diagnostics file (spec §4 items 2 and 4).
#[derive(Debug, Clone, PartialEq)]
pub enum FileEntry {
    /// A file to fetch with `?path=<name>`.
    File { name: String, length: Option<u64> },
    /// A directory-backed dataset file id that lists further files.
    Nested { id: String },
}

impl FileEntry {
    pub(crate) fn from_value(value: &Value) -> Option<Self> {
        if let Some(id) = value.get("dataSetFileId").and_then(Value::as_str) {
            return Some(Self::Nested { id: id.to_owned() });
        }
        Some(Self::File {
            name: value.get("name")?.as_str()?.to_owned(),
            length: number(value.get("length")),
        })
    }
}

/// Reads a count that may be a JSON number or, as Data Access sends them, a string.
fn number(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(number) => number
            .as_u64()
            .or_else(|| number.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}
