//! Catalog documents (spec §2.1): building new datasets and batches, applying PUT, PATCH
//! (top-level merge, JSON Patch, deep merge) while keeping system fields intact, version
//! bumps and projections. Catalog is a permissive document store: unknown top-level fields
//! are stored and returned verbatim, known ones are type-checked.

use serde_json::{Map, Value, json};

use crate::Doc;
use crate::query::ObjectKind;
use crate::status::BatchStatus;
use crate::tenant::Tenant;

/// Who performs a write: the API key's client id and the token's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub client_id: String,
    pub user: String,
}

/// Everything a write needs to know besides the body.
#[derive(Debug, Clone)]
pub struct WriteContext<'a> {
    pub tenant: &'a Tenant,
    pub actor: &'a Actor,
    pub now: i64,
}

/// A body that cannot become (part of) a Catalog document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("the body must be a JSON object")]
    NotAnObject,
    #[error("field `{field}` {reason}")]
    InvalidField { field: String, reason: String },
    #[error("field `{field}` is read-only and cannot be changed")]
    ReadOnly { field: String },
    #[error("the JSON Patch cannot be applied: {0}")]
    Patch(String),
}

fn invalid(field: &str, reason: impl Into<String>) -> DocumentError {
    DocumentError::InvalidField {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Fields that every Catalog object carries and only the system sets (spec §1.5).
const COMMON_SYSTEM_FIELDS: &[&str] = &[
    "id",
    "imsOrg",
    "sandboxId",
    "created",
    "updated",
    "createdClient",
    "createdUser",
    "updatedUser",
    "version",
];

const DATASET_SYSTEM_FIELDS: &[&str] = &[
    "viewId",
    "basePath",
    "files",
    "persistence",
    "lastBatchId",
    "lastBatchStatus",
    "lastSuccessfulBatch",
    "lastFailedBatch",
    "tableVersion",
];

/// The tag that real clients read unconditionally from every dataset (spec §9).
pub const TABLE_NAME_TAG: &str = "adobe/pqs/table";

/// The tag naming the format a dataset is stored in: every dataset is a Delta Lake table
/// (spec §12), whose location is the dataset's `basePath`.
pub const TABLE_FORMAT_TAG: &str = "adobe/siphon/table/format";

/// A change requested by a client.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// PUT: replace every mutable field.
    Replace(Doc),
    /// PATCH with `application/json`: top-level keys replace those keys.
    MergeTopLevel(Doc),
    /// PATCH with `application/json-patch+json`: RFC 6902 operations.
    JsonPatch(Value),
    /// `PATCH /v2/dataSets/{id}`: deep merge creating missing objects; `null` removes.
    DeepMerge(Doc),
}

/// Returns the body as an object.
///
/// # Errors
/// [`DocumentError::NotAnObject`] for arrays, strings and other JSON values.
pub fn as_object(body: Value) -> Result<Doc, DocumentError> {
    match body {
        Value::Object(map) => Ok(map),
        _ => Err(DocumentError::NotAnObject),
    }
}

fn system_fields(kind: ObjectKind) -> impl Iterator<Item = &'static str> {
    let extra: &[&str] = match kind {
        ObjectKind::Dataset => DATASET_SYSTEM_FIELDS,
        ObjectKind::Batch => &["externalId", "tableVersion"],
        ObjectKind::DatasetFile => &[],
    };
    COMMON_SYSTEM_FIELDS.iter().chain(extra).copied()
}

/// Refuses `imsOrg`/`sandboxId` values that name another tenant and drops every other
/// read-only field from a create body (they are ignored on write, spec §1.5).
fn strip_system_fields(
    kind: ObjectKind,
    body: &mut Doc,
    tenant: &Tenant,
    keep: &[&str],
) -> Result<(), DocumentError> {
    if let Some(org) = body.get("imsOrg")
        && org.as_str() != Some(tenant.org())
    {
        return Err(invalid(
            "imsOrg",
            format!(
                "is {org} but the request is for organization {}",
                tenant.org()
            ),
        ));
    }
    if let Some(sandbox_id) = body.get("sandboxId")
        && sandbox_id.as_str() != Some(tenant.sandbox_id().as_str())
    {
        return Err(invalid(
            "sandboxId",
            format!(
                "is {sandbox_id} but the request is for sandbox {} ({})",
                tenant.sandbox(),
                tenant.sandbox_id()
            ),
        ));
    }
    for field in system_fields(kind) {
        if !keep.contains(&field) {
            body.remove(field);
        }
    }
    Ok(())
}

fn stamp_created(doc: &mut Doc, id: &str, ctx: &WriteContext<'_>) {
    doc.insert("id".into(), json!(id));
    doc.insert("imsOrg".into(), json!(ctx.tenant.org()));
    doc.insert("sandboxId".into(), json!(ctx.tenant.sandbox_id()));
    doc.insert("version".into(), json!("1.0.0"));
    doc.insert("created".into(), json!(ctx.now));
    doc.insert("updated".into(), json!(ctx.now));
    doc.insert("createdClient".into(), json!(ctx.actor.client_id));
    doc.insert("createdUser".into(), json!(ctx.actor.user));
    doc.insert("updatedUser".into(), json!(ctx.actor.user));
}

/// Returns the table name shown in a dataset's `adobe/pqs/table` tag: the name in lower
/// case with every run of other characters turned into `_`, or `dataset_<id>` without one.
pub fn table_name(name: Option<&str>, id: &str) -> String {
    let mut table = String::new();
    for ch in name.unwrap_or("").chars() {
        if ch.is_ascii_alphanumeric() {
            table.push(ch.to_ascii_lowercase());
        } else if !table.ends_with('_') && !table.is_empty() {
            table.push('_');
        }
    }
    let table = table.trim_end_matches('_').to_owned();
    if table.is_empty() {
        format!("dataset_{id}")
    } else {
        table
    }
}

/// Builds a new dataset document from a `POST /dataSets` body.
///
/// # Errors
/// Returns the first field that is invalid.
pub fn new_dataset(
    body: Value,
    id: &str,
    view_id: &str,
    base_path: &str,
    ctx: &WriteContext<'_>,
) -> Result<Doc, DocumentError> {
    let mut doc = as_object(body)?;
    strip_system_fields(ObjectKind::Dataset, &mut doc, ctx.tenant, &[])?;
    if !doc.contains_key("schemaRef")
        && let Some(Value::String(schema)) = doc.get("schema")
    {
        // The legacy `schema` URI implies the schemaRef (spec §2.1.2).
        let schema_ref =
            json!({"id": schema, "contentType": "application/vnd.adobe.xed+json;version=1"});
        doc.insert("schemaRef".into(), schema_ref);
    }
    doc.entry("tags").or_insert_with(|| json!({}));
    validate(ObjectKind::Dataset, &mut doc)?;
    stamp_created(&mut doc, id, ctx);
    doc.insert("viewId".into(), json!(view_id));
    doc.insert("basePath".into(), json!(base_path));
    doc.insert(
        "files".into(),
        json!(format!("@/dataSetFiles?dataSetId={id}")),
    );
    ensure_table_tag(&mut doc, None);
    Ok(doc)
}

fn ensure_table_tag(doc: &mut Doc, previous: Option<&Doc>) {
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let table = previous
        .and_then(|p| p.get("tags"))
        .and_then(|tags| tags.get(TABLE_NAME_TAG))
        .cloned()
        .unwrap_or_else(|| json!([table_name(doc.get("name").and_then(Value::as_str), &id)]));
    let tags = doc.entry("tags").or_insert_with(|| json!({}));
    if let Value::Object(tags) = tags {
        tags.insert(TABLE_NAME_TAG.into(), table);
        tags.insert(TABLE_FORMAT_TAG.into(), json!(["delta"]));
    }
}

/// Builds a new batch document from a Catalog `POST /batches` body, where the producer
/// sets the status itself.
///
/// # Errors
/// Returns the first invalid field; `status` is required.
pub fn new_catalog_batch(
    body: Value,
    id: &str,
    ctx: &WriteContext<'_>,
) -> Result<Doc, DocumentError> {
    let mut doc = as_object(body)?;
    strip_system_fields(ObjectKind::Batch, &mut doc, ctx.tenant, &["externalId"])?;
    if !doc.contains_key("status") {
        return Err(invalid(
            "status",
            "is required when a batch is created through the Catalog",
        ));
    }
    doc.entry("relatedObjects").or_insert_with(|| json!([]));
    doc.entry("tags").or_insert_with(|| json!({}));
    validate(ObjectKind::Batch, &mut doc)?;
    let external_id = doc.remove("externalId").unwrap_or_else(|| json!(id));
    stamp_created(&mut doc, id, ctx);
    doc.insert("externalId".into(), external_id);
    Ok(doc)
}

/// Applies a client mutation to a stored document and returns the new document with
/// system fields preserved, `updated`/`updatedUser` set and `version` bumped.
///
/// # Errors
/// Returns an error when the body is invalid, a JSON Patch fails or touches a read-only
/// field, or the result is not a valid document.
pub fn apply_mutation(
    kind: ObjectKind,
    current: &Doc,
    mutation: Mutation,
    ctx: &WriteContext<'_>,
) -> Result<Doc, DocumentError> {
    let mut next = match mutation {
        Mutation::Replace(mut body) => {
            strip_system_fields(kind, &mut body, ctx.tenant, &[])?;
            body
        }
        Mutation::MergeTopLevel(mut body) => {
            strip_system_fields(kind, &mut body, ctx.tenant, &[])?;
            let mut next = current.clone();
            for (key, value) in body {
                next.insert(key, value);
            }
            next
        }
        Mutation::DeepMerge(mut body) => {
            strip_system_fields(kind, &mut body, ctx.tenant, &[])?;
            let mut next = Value::Object(current.clone());
            deep_merge(&mut next, Value::Object(body));
            as_object(next)?
        }
        Mutation::JsonPatch(patch) => {
            let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|err| {
                DocumentError::Patch(format!(
                    "the body must be an array of RFC 6902 operations ({err})"
                ))
            })?;
            let mut value = Value::Object(current.clone());
            json_patch::patch(&mut value, &patch)
                .map_err(|err| DocumentError::Patch(err.to_string()))?;
            let next = as_object(value)?;
            for field in system_fields(kind) {
                if next.get(field) != current.get(field) {
                    return Err(DocumentError::ReadOnly {
                        field: field.to_owned(),
                    });
                }
            }
            next
        }
    };
    if kind == ObjectKind::Batch && !next.contains_key("status") {
        // A producer PUT that leaves out the status keeps it: a batch always has one.
        if let Some(status) = current.get("status") {
            next.insert("status".into(), status.clone());
        }
    }
    validate(kind, &mut next)?;
    for field in system_fields(kind) {
        match current.get(field) {
            Some(value) => next.insert(field.to_owned(), value.clone()),
            None => next.remove(field),
        };
    }
    if kind == ObjectKind::Dataset {
        ensure_table_tag(&mut next, Some(current));
    }
    touch(&mut next, ctx);
    Ok(next)
}

/// Marks a document as changed: sets `updated` and `updatedUser` and bumps the patch
/// component of `version` (spec §1.4).
pub fn touch(doc: &mut Doc, ctx: &WriteContext<'_>) {
    let version = doc
        .get("version")
        .and_then(Value::as_str)
        .map(bump_version)
        .unwrap_or_else(|| "1.0.0".to_owned());
    doc.insert("version".into(), json!(version));
    doc.insert("updated".into(), json!(ctx.now));
    doc.insert("updatedUser".into(), json!(ctx.actor.user));
}

/// Returns the version with its patch component incremented (`1.0.4` → `1.0.5`).
pub fn bump_version(version: &str) -> String {
    let mut parts: Vec<u64> = version.split('.').filter_map(|p| p.parse().ok()).collect();
    if parts.len() != 3 {
        return "1.0.1".to_owned();
    }
    parts[2] += 1;
    format!("{}.{}.{}", parts[0], parts[1], parts[2])
}

/// Returns true when an `If-Match` header value names this version. Quotes and a weak
/// `W/` prefix are ignored (spec §8 item 10); `*` matches any version.
pub fn if_match_accepts(header: &str, version: &str) -> bool {
    header.split(',').any(|candidate| {
        let candidate = candidate.trim();
        let candidate = candidate.strip_prefix("W/").unwrap_or(candidate);
        let candidate = candidate.trim_matches('"');
        candidate == "*" || candidate == version
    })
}

fn deep_merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(&key);
                } else {
                    let slot = target.entry(key).or_insert(Value::Null);
                    if !slot.is_object() {
                        *slot = Value::Object(Map::new());
                    }
                    if value.is_object() {
                        deep_merge(slot, value);
                    } else {
                        *slot = value;
                    }
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

/// Returns a copy of the document holding only the requested top-level fields.
pub fn project(doc: &Doc, properties: &[String]) -> Doc {
    properties
        .iter()
        .filter_map(|field| doc.get(field).map(|value| (field.clone(), value.clone())))
        .collect()
}

/// Returns the id of the dataset a batch belongs to: the first `relatedObjects` entry of
/// type `dataSet`.
pub fn batch_dataset_id(batch: &Doc) -> Option<&str> {
    batch
        .get("relatedObjects")?
        .as_array()?
        .iter()
        .find(|object| object.get("type").and_then(Value::as_str) == Some("dataSet"))?
        .get("id")?
        .as_str()
}

/// Returns the batch status of a batch document.
pub fn batch_status(batch: &Doc) -> Option<BatchStatus> {
    batch.get("status")?.as_str()?.parse().ok()
}

/// Returns the id of the XDM schema a dataset conforms to (`schemaRef.id`).
pub fn dataset_schema_id(dataset: &Doc) -> Option<&str> {
    dataset.get("schemaRef")?.get("id")?.as_str()
}

/// Returns the id of a dataset's view (`viewId`).
pub fn dataset_view_id(dataset: &Doc) -> Option<&str> {
    dataset.get("viewId")?.as_str()
}

/// Returns the name a dataset's table is queried by (its `adobe/pqs/table` tag).
pub fn dataset_table_name(dataset: &Doc) -> Option<&str> {
    tag_values(dataset, TABLE_NAME_TAG).next()
}

/// Returns the values of one of an object's `tags` (a tag holds a list of strings).
pub fn tag_values<'a>(doc: &'a Doc, tag: &str) -> impl Iterator<Item = &'a str> {
    doc.get("tags")
        .and_then(|tags| tags.get(tag))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// Returns whether a dataset file is valid: only a file marked `isValid: false` is not.
pub fn file_is_valid(file: &Doc) -> bool {
    file.get("isValid") != Some(&Value::Bool(false))
}

/// Folds `status`, `metrics` and `errors` of related objects into the batch's own fields
/// (`?aggregate=true`, spec §2.3 item 13).
pub fn aggregate_related(batch: &mut Doc) {
    let related: Vec<Value> = batch
        .get("relatedObjects")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for object in related {
        if let Some(status) = object.get("status")
            && !batch.contains_key("status")
        {
            batch.insert("status".into(), status.clone());
        }
        if let Some(Value::Array(errors)) = object.get("errors") {
            let root = batch.entry("errors").or_insert_with(|| json!([]));
            if let Value::Array(root) = root {
                root.extend(errors.iter().cloned());
            }
        }
        if let Some(Value::Object(metrics)) = object.get("metrics") {
            let root = batch
                .entry("metrics")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(root) = root {
                for (name, value) in metrics {
                    let sum = root.get(name).and_then(Value::as_f64).unwrap_or(0.0)
                        + value.as_f64().unwrap_or(0.0);
                    let merged = if sum.fract() == 0.0 && sum.abs() < 9e15 {
                        json!(sum as i64)
                    } else {
                        json!(sum)
                    };
                    root.insert(name.clone(), merged);
                }
            }
        }
    }
}

/// Returns the `id` of a stored object.
pub fn object_id(doc: &Doc) -> Option<&str> {
    doc.get("id")?.as_str()
}

/// Returns the `version` of a stored object.
pub fn object_version(doc: &Doc) -> Option<&str> {
    doc.get("version")?.as_str()
}

/// Returns a batch's `externalId`, which is its id when the producer gave none.
pub fn batch_external_id(batch: &Doc) -> Option<&str> {
    batch
        .get("externalId")
        .and_then(Value::as_str)
        .or_else(|| object_id(batch))
}

/// Returns the batches a replay batch names as its predecessors, and whether their own
/// predecessors are replaced too (`predecessorListingType` `ALL`).
pub fn replay_predecessors(batch: &Doc) -> (Vec<String>, bool) {
    let Some(replay) = batch.get("replay") else {
        return (Vec::new(), false);
    };
    let ids = replay
        .get("predecessors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let transitive = replay.get("predecessorListingType").and_then(Value::as_str) == Some("ALL");
    (ids, transitive)
}

/// Returns who created an object: the actor recorded when the system itself changes it.
pub fn creator(doc: &Doc) -> Actor {
    let field = |key: &str, default: &str| {
        doc.get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    Actor {
        client_id: field("createdClient", "lakeport"),
        user: field("createdUser", "lakeport@AdobeID"),
    }
}

/// Records a batch's creation or status change on its dataset's `lastBatch*` fields.
/// These are system bookkeeping and do not bump the dataset's version.
pub fn record_batch_on_dataset(
    dataset: &mut Doc,
    batch_id: &str,
    status: BatchStatus,
    created: bool,
) {
    let is_last = dataset.get("lastBatchId").and_then(Value::as_str) == Some(batch_id);
    if created || is_last {
        dataset.insert("lastBatchId".into(), json!(batch_id));
        dataset.insert("lastBatchStatus".into(), json!(status.as_str()));
    }
    match status {
        BatchStatus::Success => {
            dataset.insert("lastSuccessfulBatch".into(), json!(batch_id));
        }
        BatchStatus::Failed => {
            dataset.insert("lastFailedBatch".into(), json!(batch_id));
        }
        _ => {}
    }
}

const RELATED_TYPES: &[&str] = &[
    "batch",
    "connection",
    "connector",
    "dataSet",
    "dataSetFile",
    "dataSetView",
    "transform",
];
const DATASET_FORMATS: &[&str] = &["", "csv", "text", "parquet", "json", "sequencefile", "avro"];
const BATCH_FORMATS: &[&str] = &["json", "parquet", "csv", "avro"];
const CHARSETS: &[&str] = &["UTF-8", "US-ASCII", "ISO-8859-1"];

/// Type-checks the known fields of a document and normalises what the spec tells us to
/// (tag scalars become string arrays, status synonyms become canonical names).
fn validate(kind: ObjectKind, doc: &mut Doc) -> Result<(), DocumentError> {
    if let Some(tags) = doc.get_mut("tags") {
        normalize_tags("tags", tags)?;
    }
    match kind {
        ObjectKind::Dataset => validate_dataset(doc),
        ObjectKind::Batch => validate_batch(doc),
        ObjectKind::DatasetFile => Ok(()),
    }
}

fn validate_dataset(doc: &mut Doc) -> Result<(), DocumentError> {
    for field in ["name", "description", "schema"] {
        expect_string(doc, field)?;
    }
    if let Some(schema_ref) = doc.get("schemaRef") {
        let Value::Object(schema_ref) = schema_ref else {
            return Err(invalid(
                "schemaRef",
                "must be an object {\"id\": ..., \"contentType\": ...}",
            ));
        };
        match schema_ref.get("id") {
            Some(Value::String(id)) if !id.is_empty() => {}
            Some(Value::String(_)) | None => {
                return Err(invalid(
                    "schemaRef.id",
                    "is required: the $id of the dataset's XDM schema",
                ));
            }
            Some(_) => return Err(invalid("schemaRef.id", "must be a string")),
        }
        if let Some(content_type) = schema_ref.get("contentType") {
            let Some(content_type) = content_type.as_str() else {
                return Err(invalid("schemaRef.contentType", "must be a string"));
            };
            if !content_type.starts_with("application/vnd.adobe.xed") {
                return Err(invalid(
                    "schemaRef.contentType",
                    format!(
                        "is {content_type:?}; expected an XDM media type such as application/vnd.adobe.xed+json;version=1"
                    ),
                ));
            }
        }
    }
    if let Some(description) = doc.get("fileDescription") {
        let Value::Object(description) = description else {
            return Err(invalid("fileDescription", "must be an object"));
        };
        if let Some(format) = description.get("format") {
            match format.as_str() {
                Some(format) if DATASET_FORMATS.contains(&format.to_ascii_lowercase().as_str()) => {
                }
                _ => {
                    return Err(invalid(
                        "fileDescription.format",
                        format!(
                            "is {format}; expected one of csv, text, parquet, json, sequencefile, avro"
                        ),
                    ));
                }
            }
        }
        for flag in ["persisted", "header"] {
            if let Some(value) = description.get(flag)
                && !value.is_boolean()
            {
                return Err(invalid(
                    &format!("fileDescription.{flag}"),
                    "must be true or false",
                ));
            }
        }
    }
    expect_bool(doc, "enableErrorDiagnostics")?;
    expect_object(doc, "observableSchema")?;
    expect_object(doc, "classification")?;
    expect_object(doc, "extensions")?;
    if let Some(value) = doc.get("dataSourceId")
        && !value.is_i64()
        && !value.is_u64()
    {
        return Err(invalid("dataSourceId", "must be an integer"));
    }
    if let Some(state) = doc.get("state") {
        match state.as_str() {
            Some("DRAFT" | "ACTIVE" | "DEPRECATED") => {}
            _ => {
                return Err(invalid(
                    "state",
                    format!("is {state}; expected DRAFT, ACTIVE or DEPRECATED"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_batch(doc: &mut Doc) -> Result<(), DocumentError> {
    if let Some(status) = doc.get("status") {
        let Some(text) = status.as_str() else {
            return Err(invalid("status", "must be a string"));
        };
        let status: BatchStatus = text
            .parse()
            .map_err(|err: crate::status::UnknownName| invalid("status", err.to_string()))?;
        doc.insert("status".into(), json!(status.as_str()));
    }
    expect_string(doc, "externalId")?;
    if let Some(related) = doc.get("relatedObjects") {
        let Value::Array(related) = related else {
            return Err(invalid(
                "relatedObjects",
                "must be an array of {\"type\", \"id\"} objects",
            ));
        };
        for (index, object) in related.iter().enumerate() {
            let field = format!("relatedObjects[{index}]");
            let Value::Object(object) = object else {
                return Err(invalid(
                    &field,
                    "must be an object with \"type\" and \"id\"",
                ));
            };
            match object.get("type").and_then(Value::as_str) {
                Some(kind) if RELATED_TYPES.contains(&kind) => {}
                _ => {
                    return Err(invalid(
                        &format!("{field}.type"),
                        format!("must be one of {}", RELATED_TYPES.join(", ")),
                    ));
                }
            }
            if !object.get("id").is_some_and(Value::is_string) {
                return Err(invalid(&format!("{field}.id"), "must be a string"));
            }
        }
    }
    if let Some(format) = doc.get_mut("inputFormat") {
        normalize_input_format(format)?;
    }
    for field in [
        "started",
        "completed",
        "recordCount",
        "failedRecordCount",
        "size",
    ] {
        if let Some(value) = doc.get(field)
            && !value.is_u64()
        {
            return Err(invalid(field, "must be a non-negative integer"));
        }
    }
    expect_object(doc, "metrics")?;
    expect_object(doc, "availableDates")?;
    expect_object(doc, "replay")?;
    if let Some(errors) = doc.get("errors")
        && !errors
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_object))
    {
        return Err(invalid(
            "errors",
            "must be an array of {\"code\", \"description\"} objects",
        ));
    }
    Ok(())
}

/// Checks an `inputFormat` object and stores its format lower-case and its CSV `header`
/// as the string `"true"`/`"false"` the Catalog uses (spec §2.1.1).
///
/// # Errors
/// Returns the first invalid member.
pub fn normalize_input_format(format: &mut Value) -> Result<(), DocumentError> {
    let Value::Object(object) = format else {
        return Err(invalid(
            "inputFormat",
            "must be an object such as {\"format\": \"json\"}",
        ));
    };
    if let Some(value) = object.get("format") {
        let lower = value.as_str().map(str::to_ascii_lowercase);
        match lower {
            Some(lower) if BATCH_FORMATS.contains(&lower.as_str()) => {
                object.insert("format".into(), json!(lower));
            }
            _ => {
                return Err(invalid(
                    "inputFormat.format",
                    format!("is {value}; expected json, parquet or csv"),
                ));
            }
        }
    }
    if let Some(value) = object.get("isMultiLineJson")
        && !value.is_boolean()
    {
        return Err(invalid(
            "inputFormat.isMultiLineJson",
            "must be true or false",
        ));
    }
    for field in ["delimiter", "quote", "escape", "nullMarker"] {
        if let Some(value) = object.get(field) {
            let Some(text) = value.as_str() else {
                return Err(invalid(&format!("inputFormat.{field}"), "must be a string"));
            };
            if field != "nullMarker" && text.chars().count() != 1 {
                return Err(invalid(
                    &format!("inputFormat.{field}"),
                    format!("is {text:?}; it must be exactly one character"),
                ));
            }
        }
    }
    if let Some(value) = object.get("charset") {
        match value.as_str() {
            Some(charset) if CHARSETS.iter().any(|c| c.eq_ignore_ascii_case(charset)) => {}
            _ => {
                return Err(invalid(
                    "inputFormat.charset",
                    format!("is {value}; expected one of {}", CHARSETS.join(", ")),
                ));
            }
        }
    }
    if let Some(value) = object.get("header") {
        let header = match value {
            Value::Bool(flag) => *flag,
            Value::String(text) if text.eq_ignore_ascii_case("true") => true,
            Value::String(text) if text.eq_ignore_ascii_case("false") => false,
            _ => return Err(invalid("inputFormat.header", "must be true or false")),
        };
        object.insert("header".into(), json!(header.to_string()));
    }
    Ok(())
}

/// Coerces tag values to arrays of strings (spec §8 item 3).
///
/// # Errors
/// Returns an error when tags are not an object or a value is an object.
pub fn normalize_tags(field: &str, tags: &mut Value) -> Result<(), DocumentError> {
    let Value::Object(tags) = tags else {
        return Err(invalid(
            field,
            "must be an object mapping tag names to arrays of strings",
        ));
    };
    for (name, value) in tags.iter_mut() {
        let items = match value.take() {
            Value::Array(items) => items,
            scalar => vec![scalar],
        };
        let mut strings = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Value::String(text) => strings.push(Value::String(text)),
                Value::Number(n) => strings.push(Value::String(n.to_string())),
                Value::Bool(b) => strings.push(Value::String(b.to_string())),
                _ => {
                    return Err(invalid(
                        &format!("{field}.{name}"),
                        "must be a string or an array of strings",
                    ));
                }
            }
        }
        *value = Value::Array(strings);
    }
    Ok(())
}

fn expect_string(doc: &Doc, field: &str) -> Result<(), DocumentError> {
    match doc.get(field) {
        Some(value) if !value.is_string() => Err(invalid(field, "must be a string")),
        _ => Ok(()),
    }
}

fn expect_bool(doc: &Doc, field: &str) -> Result<(), DocumentError> {
    match doc.get(field) {
        Some(value) if !value.is_boolean() => Err(invalid(field, "must be true or false")),
        _ => Ok(()),
    }
}

fn expect_object(doc: &Doc, field: &str) -> Result<(), DocumentError> {
    match doc.get(field) {
        Some(value) if !value.is_object() => Err(invalid(field, "must be an object")),
        _ => Ok(()),
    }
}

pub mod import;

#[cfg(test)]
mod tests;
