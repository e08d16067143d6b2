//! Backend-neutral pieces both SQL backends use: how chunk lists are stored, and the
//! upload-target decision once the batch is loaded.

use lakeport_domain::Doc;
use lakeport_domain::catalog;
use lakeport_domain::ingest::Chunk;
use lakeport_domain::status::BatchStatus;
use serde_json::{Value, json};

use crate::MetastoreError;

/// Encodes received chunks as the text stored in `batch_files.chunks`.
pub(crate) fn chunks_to_text(chunks: &[Chunk]) -> String {
    let list: Vec<Value> = chunks
        .iter()
        .map(|c| json!([c.first, c.last, c.total]))
        .collect();
    Value::Array(list).to_string()
}

/// Decodes `batch_files.chunks`.
pub(crate) fn chunks_from_text(text: &str) -> Vec<Chunk> {
    serde_json::from_str::<Vec<(u64, u64, Option<u64>)>>(text)
        .unwrap_or_default()
        .into_iter()
        .map(|(first, last, total)| Chunk { first, last, total })
        .collect()
}

/// Encodes a promotion's diagnostics files as the text stored in `batch_outputs.files`.
pub(crate) fn diagnostics_files_to_text(files: &[crate::DiagnosticsFile]) -> String {
    serde_json::to_string(files).unwrap_or_else(|_| "[]".to_owned())
}

/// Decodes `batch_outputs.files`.
pub(crate) fn diagnostics_files_from_text(
    text: &str,
) -> Result<Vec<crate::DiagnosticsFile>, MetastoreError> {
    serde_json::from_str(text).map_err(|err| MetastoreError::Backend {
        doing: "reading the recorded diagnostics files",
        source: Box::new(err),
    })
}

/// What an upload into `dataset_id` finds about a loaded batch (spec §3.2).
pub(crate) enum UploadCheck {
    /// The batch accepts uploads into this dataset.
    Accepted,
    /// The batch belongs to another dataset; the caller decides between "dataset unknown"
    /// (404) and "wrong dataset" (400) by looking the dataset up.
    OtherDataset { actual: String },
}

/// Checks the batch's dataset and status.
///
/// # Errors
/// [`MetastoreError::BatchNotLoading`] when the batch is past `loading`.
pub(crate) fn check_upload(
    batch: &Doc,
    batch_id: &str,
    dataset_id: &str,
) -> Result<UploadCheck, MetastoreError> {
    let actual = catalog::batch_dataset_id(batch).unwrap_or_default();
    if actual != dataset_id {
        return Ok(UploadCheck::OtherDataset {
            actual: actual.to_owned(),
        });
    }
    let status = catalog::batch_status(batch).unwrap_or(BatchStatus::Loading);
    if status != BatchStatus::Loading {
        return Err(MetastoreError::BatchNotLoading {
            batch_id: batch_id.to_owned(),
            status: status.as_str().to_owned(),
        });
    }
    Ok(UploadCheck::Accepted)
}
