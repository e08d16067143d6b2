//! The Flow Service subset that yields streaming inlets (spec §10.1) and the rules of the
//! streaming path (spec §10.2–10.3): the fixed connection and flow specs, the objects a
//! request creates, the inlet id, and the Catalog batch a sealed segment becomes.

use serde_json::{Value, json};

use crate::Doc;
use crate::catalog::Actor;
use crate::catalog::import::NewImportBatch;
use crate::tenant::Tenant;

/// The HTTP API streaming source connection spec.
pub const STREAMING_SPEC_ID: &str = "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb";
/// The provider of the streaming connection spec.
pub const STREAMING_PROVIDER_ID: &str = "521eee4d-8cbe-4906-bb48-fb6bd4450033";
/// The data lake target connection spec.
pub const DATALAKE_SPEC_ID: &str = "c604ff05-7f1a-43c0-8e18-33bf874cb11c";
/// The streaming flow spec without a transformation.
pub const FLOW_SPEC_ID: &str = "d8a6f005-7eaf-4153-983e-e8574508b877";
/// The streaming flow spec with a Mapping (Data Prep) transformation.
pub const MAPPING_FLOW_SPEC_ID: &str = "c1a19761-d2c7-4702-b9fa-fe91f0613e81";

/// At most this many objects of one kind per tenant (listing reads them all).
pub const MAX_OBJECTS_PER_KIND: usize = 1000;

/// The kind of a Flow Service object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlowKind {
    Connection,
    SourceConnection,
    TargetConnection,
    Flow,
}

impl FlowKind {
    /// All kinds, in the order a flow chain is built.
    pub const ALL: [Self; 4] = [
        Self::Connection,
        Self::SourceConnection,
        Self::TargetConnection,
        Self::Flow,
    ];

    /// Returns the path segment (and stored kind name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connection => "connections",
            Self::SourceConnection => "sourceConnections",
            Self::TargetConnection => "targetConnections",
            Self::Flow => "flows",
        }
    }

    /// Returns the noun used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::SourceConnection => "source connection",
            Self::TargetConnection => "target connection",
            Self::Flow => "flow",
        }
    }

    /// Parses a path segment.
    pub fn from_path(segment: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == segment)
    }
}

/// Returns the connection specs Lakeport knows (spec §10.1 table).
pub fn connection_specs() -> Vec<Value> {
    vec![
        json!({
            "id": STREAMING_SPEC_ID,
            "name": "Streaming Connection",
            "providerId": STREAMING_PROVIDER_ID,
            "version": "1.0",
            "type": "streaming",
            "attributes": {"category": "Streaming", "isSource": true},
            "authSpec": [{"name": "Streaming Connection", "type": "Streaming Connection",
                "spec": {"type": "object", "properties": {
                    "dataType": {"type": "string", "enum": ["xdm", "raw"]},
                    "name": {"type": "string"}, "sourceId": {"type": "string"},
                    "authenticationRequired": {"type": "boolean"}}}}],
            "sourceSpec": {"attributes": {"uiAttributes": {"isSource": true}}},
            "permissionsInfo": {}
        }),
        json!({
            "id": DATALAKE_SPEC_ID,
            "name": "datalake",
            "providerId": STREAMING_PROVIDER_ID,
            "version": "1.0",
            "type": "target",
            "attributes": {"category": "Database", "isDestination": true},
            "targetSpec": {"attributes": {"isTarget": true}},
            "permissionsInfo": {}
        }),
    ]
}

/// Why a Flow Service request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowRequestError {
    /// A spec id Lakeport does not implement (`FLOW-9001-400`).
    #[error("{0}")]
    UnsupportedSpec(String),
    /// A malformed body (`FLOW-9002-400`).
    #[error("{0}")]
    InvalidBody(String),
}

fn text_at<'a>(body: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut value = body;
    for key in path {
        value = value.get(key)?;
    }
    value.as_str()
}

fn required_text<'a>(body: &'a Value, path: &[&str]) -> Result<&'a str, FlowRequestError> {
    text_at(body, path)
        .filter(|text| !text.trim().is_empty())
        .ok_or_else(|| {
            FlowRequestError::InvalidBody(format!(
                "{} is required and must be a non-empty string",
                path.join(".")
            ))
        })
}

fn spec_id(body: &Value, key: &str) -> Result<String, FlowRequestError> {
    Ok(required_text(body, &[key, "id"])?.to_ascii_lowercase())
}

/// Checks the body's `connectionSpec.id` against what `kind` needs.
fn check_connection_spec(body: &Value, expected: &str, what: &str) -> Result<(), FlowRequestError> {
    let id = spec_id(body, "connectionSpec")?;
    if id == expected {
        Ok(())
    } else {
        Err(FlowRequestError::UnsupportedSpec(format!(
            "connectionSpec {id} is not supported for {what}; Lakeport implements {expected}"
        )))
    }
}

/// Returns the ids listed in `key` (an array of strings, exactly one).
pub fn single_reference(body: &Value, key: &str) -> Result<String, FlowRequestError> {
    let list = body.get(key).and_then(Value::as_array).ok_or_else(|| {
        FlowRequestError::InvalidBody(format!("{key} is required: an array of one id"))
    })?;
    match list.as_slice() {
        [Value::String(id)] if !id.is_empty() => Ok(id.clone()),
        _ => Err(FlowRequestError::InvalidBody(format!(
            "{key} must hold exactly one id (Lakeport's streaming flows have one {})",
            if key.starts_with("source") {
                "source connection"
            } else {
                "target connection"
            }
        ))),
    }
}

/// What a checked request refers to, for the metastore to resolve in the tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    None,
    /// A source connection's base connection.
    BaseConnection(String),
    /// A target connection's dataset and the schema id it names, if any.
    Dataset {
        dataset_id: String,
        schema_id: Option<String>,
    },
    /// A flow's source and target connections.
    Connections {
        source: String,
        target: String,
    },
}

/// Checks a create request of `kind` and returns what it references.
///
/// # Errors
/// A missing or malformed member, or a spec Lakeport does not implement.
pub fn check_request(kind: FlowKind, body: &Value) -> Result<Reference, FlowRequestError> {
    if !body.is_object() {
        return Err(FlowRequestError::InvalidBody(
            "the request body must be a JSON object".to_owned(),
        ));
    }
    required_text(body, &["name"])?;
    match kind {
        FlowKind::Connection => {
            check_connection_spec(body, STREAMING_SPEC_ID, "a base connection")?;
            let params = body.get("auth").and_then(|auth| auth.get("params"));
            if let Some(data_type) = params.and_then(|p| p.get("dataType")) {
                match data_type.as_str().map(str::to_ascii_lowercase).as_deref() {
                    Some("xdm" | "raw") => {}
                    _ => {
                        return Err(FlowRequestError::InvalidBody(
                            "auth.params.dataType must be \"xdm\" or \"raw\"".to_owned(),
                        ));
                    }
                }
            }
            if let Some(flag) = params.and_then(|p| p.get("authenticationRequired"))
                && !flag.is_boolean()
            {
                return Err(FlowRequestError::InvalidBody(
                    "auth.params.authenticationRequired must be a boolean".to_owned(),
                ));
            }
            Ok(Reference::None)
        }
        FlowKind::SourceConnection => {
            check_connection_spec(body, STREAMING_SPEC_ID, "a source connection")?;
            Ok(Reference::BaseConnection(
                required_text(body, &["baseConnectionId"])?.to_owned(),
            ))
        }
        FlowKind::TargetConnection => {
            check_connection_spec(body, DATALAKE_SPEC_ID, "a target connection")?;
            let dataset_id = required_text(body, &["params", "dataSetId"])?.to_owned();
            let schema_id = text_at(body, &["data", "schema", "id"]).map(str::to_owned);
            Ok(Reference::Dataset {
                dataset_id,
                schema_id,
            })
        }
        FlowKind::Flow => {
            let spec = spec_id(body, "flowSpec")?;
            if spec != FLOW_SPEC_ID && spec != MAPPING_FLOW_SPEC_ID {
                return Err(FlowRequestError::UnsupportedSpec(format!(
                    "flowSpec {spec} is not supported; Lakeport implements the streaming flow specs {FLOW_SPEC_ID} and {MAPPING_FLOW_SPEC_ID} (with a Mapping transformation)"
                )));
            }
            Ok(Reference::Connections {
                source: single_reference(body, "sourceConnectionIds")?,
                target: single_reference(body, "targetConnectionIds")?,
            })
        }
    }
}

/// Returns 64 lower-case hex characters from 32 random bytes.
pub fn new_inlet_id(random: [u8; 32]) -> String {
    random.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Returns the stored document of a new object: the request's members (unknown ones
/// kept) with the system fields set, and for a base connection its inlet.
pub fn build_object(
    kind: FlowKind,
    body: &Value,
    id: &str,
    inlet: Option<(&str, &str)>,
    tenant: &Tenant,
    actor: &Actor,
    now: i64,
) -> Doc {
    let mut doc = body.as_object().cloned().unwrap_or_default();
    for key in ["id", "etag", "version", "inheritedAttributes"] {
        doc.remove(key);
    }
    let etag = format!("\"{}\"", crate::ids::new_object_id());
    doc.insert("id".into(), json!(id));
    doc.entry("description").or_insert_with(|| json!(""));
    doc.insert("state".into(), json!("enabled"));
    doc.insert("createdAt".into(), json!(now));
    doc.insert("updatedAt".into(), json!(now));
    doc.insert("createdBy".into(), json!(actor.user));
    doc.insert("updatedBy".into(), json!(actor.user));
    doc.insert("createdClient".into(), json!(actor.client_id));
    doc.insert("updatedClient".into(), json!(actor.client_id));
    doc.insert("imsOrgId".into(), json!(tenant.org()));
    doc.insert("sandboxId".into(), json!(tenant.sandbox_id()));
    doc.insert("sandboxName".into(), json!(tenant.sandbox()));
    doc.insert("etag".into(), json!(etag));
    doc.insert("version".into(), json!(etag));
    if let (FlowKind::Connection, Some((inlet_id, inlet_url))) = (kind, inlet) {
        let auth = doc
            .entry("auth")
            .or_insert_with(|| json!({"specName": "Streaming Connection"}));
        if !auth.is_object() {
            *auth = json!({"specName": "Streaming Connection"});
        }
        let params = auth
            .as_object_mut()
            .expect("auth was made an object")
            .entry("params")
            .or_insert_with(|| json!({}));
        if !params.is_object() {
            *params = json!({});
        }
        let params = params.as_object_mut().expect("params was made an object");
        let data_type = params
            .get("dataType")
            .and_then(Value::as_str)
            .map_or_else(|| "xdm".to_owned(), str::to_ascii_lowercase);
        params.insert("dataType".into(), json!(data_type));
        let name = params
            .get("name")
            .cloned()
            .or_else(|| doc_name(body))
            .unwrap_or_else(|| json!(id));
        params.insert("name".into(), name.clone());
        params.entry("sourceId").or_insert(name);
        params
            .entry("authenticationRequired")
            .or_insert(json!(false));
        params.insert("inletId".into(), json!(inlet_id));
        params.insert("inletUrl".into(), json!(inlet_url));
    }
    doc
}

fn doc_name(body: &Value) -> Option<Value> {
    body.get("name").filter(|name| name.is_string()).cloned()
}

/// Returns the document as GET shows it: flows get `inheritedAttributes` (aepp filters
/// streaming flows on `properties.isSourceFlow`).
pub fn present(kind: FlowKind, mut doc: Doc) -> Doc {
    if kind == FlowKind::Flow {
        let ids = |key: &str| {
            doc.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let sources: Vec<Value> = ids("sourceConnectionIds")
            .into_iter()
            .map(|id| json!({"id": id, "connectionSpec": {"id": STREAMING_SPEC_ID, "version": "1.0"}}))
            .collect();
        let targets: Vec<Value> = ids("targetConnectionIds")
            .into_iter()
            .map(|id| json!({"id": id, "connectionSpec": {"id": DATALAKE_SPEC_ID, "version": "1.0"}}))
            .collect();
        doc.insert(
            "inheritedAttributes".into(),
            json!({"sourceConnections": sources, "targetConnections": targets,
                   "properties": {"isSourceFlow": true}}),
        );
    }
    doc
}

/// Returns the inlet id of a base connection document, if it has one.
pub fn inlet_id_of(doc: &Doc) -> Option<&str> {
    doc.get("auth")?.get("params")?.get("inletId")?.as_str()
}

/// Returns when a Flow Service object was created (`createdAt`, epoch milliseconds).
pub fn created_at(doc: &Doc) -> i64 {
    doc.get("createdAt")
        .and_then(Value::as_i64)
        .unwrap_or_default()
}

/// Returns the base connection a source connection reads from (`baseConnectionId`).
pub fn base_connection_id(doc: &Doc) -> Option<&str> {
    doc.get("baseConnectionId")?.as_str()
}

/// Returns the ids a flow document names under `key` (`sourceConnectionIds`, …).
pub fn ids_of<'a>(doc: &'a Doc, key: &str) -> Vec<&'a str> {
    doc.get(key)
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Returns whether a flow uses a Mapping transformation (not supported yet, spec §10.5).
pub fn has_mapping(flow: &Doc) -> bool {
    let spec = flow
        .get("flowSpec")
        .and_then(|spec| spec.get("id"))
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase);
    spec.as_deref() == Some(MAPPING_FLOW_SPEC_ID)
        || flow
            .get("transformations")
            .and_then(Value::as_array)
            .is_some_and(|list| !list.is_empty())
}

/// A flow that an inlet feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InletFlow {
    pub flow_id: String,
    /// The dataset of its target connection.
    pub dataset_id: Option<String>,
    /// Whether the flow maps records (Data Prep), which Lakeport does not do yet.
    pub mapping: bool,
}

/// Returns the flows fed by base connection `connection_id`, oldest first.
pub fn inlet_flows(
    connection_id: &str,
    sources: &[Doc],
    targets: &[Doc],
    flows: &[Doc],
) -> Vec<InletFlow> {
    let source_ids: Vec<&str> = sources
        .iter()
        .filter(|source| {
            source.get("baseConnectionId").and_then(Value::as_str) == Some(connection_id)
        })
        .filter_map(|source| source.get("id").and_then(Value::as_str))
        .collect();
    flows
        .iter()
        .filter(|flow| {
            ids_of(flow, "sourceConnectionIds")
                .iter()
                .any(|id| source_ids.contains(id))
        })
        .map(|flow| {
            let target_id = ids_of(flow, "targetConnectionIds").first().copied();
            let dataset_id = targets
                .iter()
                .find(|target| {
                    target.get("id").and_then(Value::as_str) == target_id && target_id.is_some()
                })
                .and_then(|target| {
                    text_at(&Value::Object(target.clone()), &["params", "dataSetId"])
                        .map(str::to_owned)
                });
            InletFlow {
                flow_id: flow
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                dataset_id,
                mapping: has_mapping(flow),
            }
        })
        .collect()
}

/// The actor recorded on batches the streaming flusher creates.
pub fn stream_actor() -> Actor {
    Actor {
        client_id: "lakeport-streaming".to_owned(),
        user: "lakeport-streaming@AdobeID".to_owned(),
    }
}

/// Returns the `externalId` of segment `segment` of a dataset (spec §10.3).
pub fn segment_external_id(dataset_id: &str, segment: i64) -> String {
    format!("stream:{dataset_id}:{segment}")
}

/// Returns the batch request a sealed segment becomes: JSON input, error diagnostics on,
/// partial ingestion up to 100 %, the streaming tags (spec §10.3 step 3).
pub fn segment_batch_request(dataset_id: &str, segment: i64) -> NewImportBatch {
    let mut tags = Doc::new();
    tags.insert("lakeport/source".into(), json!(["streaming"]));
    tags.insert("lakeport/segment".into(), json!([segment.to_string()]));
    NewImportBatch {
        dataset_id: dataset_id.to_owned(),
        input_format: Some(json!({"format": "json"})),
        external_id: Some(segment_external_id(dataset_id, segment)),
        replay: None,
        tags,
        enable_error_diagnostics: true,
        partial_ingestion_percent: Some(100.0),
    }
}

/// Returns whether a batch was made by the streaming flusher (tag `lakeport/source`).
pub fn is_stream_batch(batch: &Doc) -> bool {
    crate::catalog::tag_values(batch, "lakeport/source").any(|value| value == "streaming")
}

/// The file name of a segment's records in its batch.
pub const SEGMENT_FILE: &str = "records.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(kind: FlowKind, body: Value, expected: &str) {
        let actual = match check_request(kind, &body) {
            Ok(reference) => format!("{reference:?}"),
            Err(err) => format!("error: {err}"),
        };
        assert_eq!(actual, expected);
    }

    #[test]
    fn requests_are_checked() {
        check(
            FlowKind::Connection,
            json!({"name": "c", "connectionSpec": {"id": STREAMING_SPEC_ID}}),
            "None",
        );
        check(
            FlowKind::Connection,
            json!({"name": "c", "connectionSpec": {"id": DATALAKE_SPEC_ID}}),
            "error: connectionSpec c604ff05-7f1a-43c0-8e18-33bf874cb11c is not supported for a base connection; Lakeport implements bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb",
        );
        check(
            FlowKind::Connection,
            json!({"connectionSpec": {"id": STREAMING_SPEC_ID}}),
            "error: name is required and must be a non-empty string",
        );
        check(
            FlowKind::TargetConnection,
            json!({"name": "t", "connectionSpec": {"id": DATALAKE_SPEC_ID}, "params": {"dataSetId": "d1"}}),
            "Dataset { dataset_id: \"d1\", schema_id: None }",
        );
        check(
            FlowKind::Flow,
            json!({"name": "f", "flowSpec": {"id": FLOW_SPEC_ID}, "sourceConnectionIds": ["s"], "targetConnectionIds": ["t", "u"]}),
            "error: targetConnectionIds must hold exactly one id (Lakeport's streaming flows have one target connection)",
        );
    }

    #[test]
    fn flow_ids_are_version_7_uuids_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| crate::ids::new_uuid()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        let id = &ids[0];
        assert_eq!(id.len(), 36);
        assert_eq!((&id[14..15], &id[8..9]), ("7", "-"));
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }

    #[test]
    fn a_base_connection_gets_its_inlet_and_defaults() {
        let tenant = Tenant::parse("A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg", "prod").unwrap();
        let actor = Actor {
            client_id: "c".into(),
            user: "c@AdobeID".into(),
        };
        let doc = build_object(
            FlowKind::Connection,
            &json!({"name": "My inlet", "connectionSpec": {"id": STREAMING_SPEC_ID}, "providerId": "p"}),
            "id1",
            Some(("ab", "http://x/collection/ab")),
            &tenant,
            &actor,
            5,
        );
        assert_eq!(
            doc["auth"]["params"],
            json!({"dataType": "xdm", "name": "My inlet", "sourceId": "My inlet",
                   "authenticationRequired": false, "inletId": "ab", "inletUrl": "http://x/collection/ab"})
        );
        assert_eq!(doc["providerId"], json!("p"));
        assert_eq!(inlet_id_of(&doc), Some("ab"));
        assert_eq!(new_inlet_id([0xab; 32]).len(), 64);
    }
}
