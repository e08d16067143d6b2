//! The Batch Ingestion API's "create a batch" request (spec §3.1) and replay rules (§6.3).

use serde_json::{Value, json};

use super::{
    DocumentError, WriteContext, as_object, invalid, normalize_input_format, normalize_tags,
};
use crate::Doc;
use crate::status::BatchStatus;

/// A parsed `POST /import/batches` body.
#[derive(Debug, Clone, PartialEq)]
pub struct NewImportBatch {
    pub dataset_id: String,
    /// The normalised `inputFormat`, when one was sent.
    pub input_format: Option<Value>,
    pub external_id: Option<String>,
    pub replay: Option<Replay>,
    pub tags: Doc,
    pub enable_error_diagnostics: bool,
    pub partial_ingestion_percent: Option<f64>,
}

/// The `replay` block of a batch that replaces earlier batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub predecessors: Vec<String>,
    pub predecessors_by_external_id: Vec<String>,
    pub listing_type: ListingType,
    pub reason: Option<String>,
}

/// Which predecessors a successful replay deactivates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListingType {
    /// Only the listed predecessors.
    Immediate,
    /// The listed predecessors and, transitively, their own predecessors.
    All,
}

impl ListingType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "IMMEDIATE",
            Self::All => "ALL",
        }
    }
}

/// Why a replay predecessor was refused (spec §6.3).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("replay predecessor {reference} does not exist")]
    Unknown { reference: String },
    #[error("replay predecessor {reference} belongs to dataset {actual}, not {expected}")]
    OtherDataset {
        reference: String,
        actual: String,
        expected: String,
    },
    #[error("replay predecessor {reference} is {status}; only a successful batch can be replayed")]
    NotSuccessful { reference: String, status: String },
}

impl NewImportBatch {
    /// Parses and checks the request body.
    ///
    /// # Errors
    /// Returns the first field that is missing or malformed.
    pub fn parse(body: Value) -> Result<Self, DocumentError> {
        let mut body = as_object(body)?;
        let dataset_id = match body.remove("datasetId") {
            Some(Value::String(id)) if !id.trim().is_empty() => id.trim().to_owned(),
            Some(Value::String(_)) | None => {
                return Err(invalid(
                    "datasetId",
                    "is required: the id of the dataset to ingest into",
                ));
            }
            Some(_) => return Err(invalid("datasetId", "must be a string")),
        };
        let input_format = match body.remove("inputFormat") {
            None | Some(Value::Null) => None,
            Some(mut format) => {
                normalize_input_format(&mut format)?;
                Some(format)
            }
        };
        let external_id = match body.remove("externalId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if !id.is_empty() && id.len() <= 256 => Some(id),
            Some(_) => {
                return Err(invalid(
                    "externalId",
                    "must be a string of 1 to 256 characters",
                ));
            }
        };
        let replay = match body.remove("replay") {
            None | Some(Value::Null) => None,
            Some(value) => Some(Replay::parse(value)?),
        };
        let tags = match body.remove("tags") {
            None | Some(Value::Null) => Doc::new(),
            Some(mut tags) => {
                normalize_tags("tags", &mut tags)?;
                as_object(tags).expect("normalize_tags accepts only objects")
            }
        };
        let enable_error_diagnostics = match body.remove("enableErrorDiagnostics") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(flag)) => flag,
            Some(_) => return Err(invalid("enableErrorDiagnostics", "must be true or false")),
        };
        let percent = match (
            body.remove("partialIngestionPercent"),
            body.remove("partialIngestionPercentage"),
        ) {
            (Some(value), _) => Some(("partialIngestionPercent", value)),
            (None, Some(value)) => Some(("partialIngestionPercentage", value)),
            (None, None) => None,
        };
        let partial_ingestion_percent = match percent {
            None | Some((_, Value::Null)) => None,
            Some((field, value)) => match value.as_f64() {
                Some(n) if (0.0..=100.0).contains(&n) => Some(n),
                _ => {
                    return Err(invalid(
                        field,
                        format!("is {value}; expected a number from 0 to 100"),
                    ));
                }
            },
        };
        Ok(Self {
            dataset_id,
            input_format,
            external_id,
            replay,
            tags,
            enable_error_diagnostics,
            partial_ingestion_percent,
        })
    }
}

impl Replay {
    fn parse(value: Value) -> Result<Self, DocumentError> {
        let mut object = as_object(value).map_err(|_| {
            invalid(
                "replay",
                "must be an object {\"predecessors\": [...], \"reason\": ...}",
            )
        })?;
        let predecessors = id_list(&mut object, "predecessors")?;
        let predecessors_by_external_id = id_list(&mut object, "predecessorsByExternalId")?;
        if predecessors.is_empty() && predecessors_by_external_id.is_empty() {
            return Err(invalid(
                "replay.predecessors",
                "must name at least one batch (or use replay.predecessorsByExternalId)",
            ));
        }
        let listing_type = match object.get("predecessorListingType") {
            None | Some(Value::Null) => ListingType::Immediate,
            Some(value) => match value.as_str().map(str::to_ascii_uppercase).as_deref() {
                Some("IMMEDIATE") => ListingType::Immediate,
                Some("ALL") => ListingType::All,
                _ => {
                    return Err(invalid(
                        "replay.predecessorListingType",
                        format!("is {value}; expected IMMEDIATE or ALL"),
                    ));
                }
            },
        };
        let reason = match object.get("reason") {
            None | Some(Value::Null) => None,
            Some(Value::String(reason)) => Some(reason.clone()),
            Some(_) => return Err(invalid("replay.reason", "must be a string")),
        };
        Ok(Self {
            predecessors,
            predecessors_by_external_id,
            listing_type,
            reason,
        })
    }

    /// Returns the replay block as stored on the batch, with ids as resolved.
    pub fn to_value(&self, resolved_ids: &[String]) -> Value {
        let mut value = json!({
            "predecessors": resolved_ids,
            "predecessorListingType": self.listing_type.as_str(),
        });
        if !self.predecessors_by_external_id.is_empty() {
            value["predecessorsByExternalId"] = json!(self.predecessors_by_external_id);
        }
        if let Some(reason) = &self.reason {
            value["reason"] = json!(reason);
        }
        value
    }
}

fn id_list(object: &mut Doc, field: &str) -> Result<Vec<String>, DocumentError> {
    match object.remove(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                Value::String(id) if !strip_decoration(&id).is_empty() => {
                    Ok(strip_decoration(&id).to_owned())
                }
                _ => Err(invalid(
                    &format!("replay.{field}"),
                    "must be an array of non-empty strings",
                )),
            })
            .collect(),
        Some(_) => Err(invalid(
            &format!("replay.{field}"),
            "must be an array of strings",
        )),
    }
}

/// Strips the `$` or `${...}` decoration some clients put around replay ids (spec §8 item 8).
pub fn strip_decoration(id: &str) -> &str {
    let id = id.trim();
    if let Some(inner) = id
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    {
        return inner.trim();
    }
    id.strip_prefix('$').unwrap_or(id)
}

/// Checks one replay predecessor and returns its batch id.
///
/// # Errors
/// Returns why the predecessor cannot be replayed.
pub fn check_predecessor(
    reference: &str,
    predecessor: Option<&Doc>,
    dataset_id: &str,
) -> Result<String, ReplayError> {
    let Some(batch) = predecessor else {
        return Err(ReplayError::Unknown {
            reference: reference.to_owned(),
        });
    };
    let actual = super::batch_dataset_id(batch).unwrap_or_default();
    if actual != dataset_id {
        return Err(ReplayError::OtherDataset {
            reference: reference.to_owned(),
            actual: actual.to_owned(),
            expected: dataset_id.to_owned(),
        });
    }
    match super::batch_status(batch) {
        Some(BatchStatus::Success) => {}
        status => {
            return Err(ReplayError::NotSuccessful {
                reference: reference.to_owned(),
                status: status.map_or("unknown", BatchStatus::as_str).to_owned(),
            });
        }
    }
    Ok(batch
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(reference)
        .to_owned())
}

/// Returns the input format a batch gets when the request names none: the dataset's
/// `fileDescription.format` when it is ingestible, else parquet (spec §8 item 1).
pub fn default_input_format(dataset: &Doc) -> &'static str {
    let format = dataset
        .get("fileDescription")
        .and_then(|d| d.get("format"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    match format.as_deref() {
        Some("json") => "json",
        Some("csv") => "csv",
        _ => "parquet",
    }
}

/// Builds the batch document of a new import batch in status `loading`.
pub fn build_import_batch(
    request: &NewImportBatch,
    dataset: &Doc,
    id: &str,
    replay_ids: &[String],
    ctx: &WriteContext<'_>,
) -> Doc {
    let client = &ctx.actor.client_id;
    let mut tags = request.tags.clone();
    tags.insert("acp_producer".into(), json!([client]));
    tags.insert(
        "acp_stagePath".into(),
        json!([format!("{client}/stage/{id}")]),
    );
    tags.insert("use_plan_b_batch_status".into(), json!(["false"]));
    if request.enable_error_diagnostics {
        tags.insert("acp_enableErrorDiagnostics".into(), json!(["true"]));
    }
    if let Some(percent) = request.partial_ingestion_percent {
        tags.insert(
            "acp_partialIngestionPercent".into(),
            json!([format_percent(percent)]),
        );
    }
    let mut input_format = request.input_format.clone().unwrap_or_else(|| json!({}));
    if input_format.get("format").is_none() {
        input_format["format"] = json!(default_input_format(dataset));
    }
    let dataset_id = dataset
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(&request.dataset_id);
    let mut doc = Doc::new();
    doc.insert("id".into(), json!(id));
    doc.insert("imsOrg".into(), json!(ctx.tenant.org()));
    doc.insert("sandboxId".into(), json!(ctx.tenant.sandbox_id()));
    doc.insert("updated".into(), json!(ctx.now));
    doc.insert("status".into(), json!(BatchStatus::Loading.as_str()));
    doc.insert("created".into(), json!(ctx.now));
    doc.insert(
        "relatedObjects".into(),
        json!([{"type": "dataSet", "id": dataset_id}]),
    );
    doc.insert("version".into(), json!("1.0.0"));
    doc.insert("tags".into(), Value::Object(tags));
    doc.insert("createdUser".into(), json!(ctx.actor.user));
    doc.insert("updatedUser".into(), json!(ctx.actor.user));
    doc.insert(
        "externalId".into(),
        json!(request.external_id.as_deref().unwrap_or(id)),
    );
    doc.insert("createdClient".into(), json!(client));
    doc.insert("inputFormat".into(), input_format);
    if let Some(replay) = &request.replay {
        doc.insert("replay".into(), replay.to_value(replay_ids));
    }
    if request.enable_error_diagnostics {
        doc.insert("enableErrorDiagnostics".into(), json!(true));
    }
    if let Some(percent) = request.partial_ingestion_percent {
        doc.insert("partialIngestionPercent".into(), json!(percent));
    }
    doc
}

fn format_percent(percent: f64) -> String {
    if percent.fract() == 0.0 {
        format!("{}", percent as i64)
    } else {
        percent.to_string()
    }
}
