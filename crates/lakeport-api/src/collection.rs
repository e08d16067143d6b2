//! Streaming inlets (`/collection`, spec §10.2–10.4): one message or a batch of messages
//! per call, checked, optionally validated at once, and acknowledged only once appended
//! to the target dataset's durable log in the metastore.
//!
//! Answers use the Data Collection Core Service shapes (`type`, `status`, `title`,
//! `report.message`), not the problem body of §1.6.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use lakeport_domain::Doc;
use lakeport_domain::flow::InletFlow;
use lakeport_domain::now_millis;
use lakeport_domain::query::ObjectKind;
use lakeport_domain::xdm::resolve::resolve;
use lakeport_domain::xdm::validate::{
    Source, UnknownFields, Validator, ValidatorOptions, Violation,
};
use lakeport_metastore::{AppendOutcome, Inlet, MetastoreError, NewStreamRecord, StreamAppend};
use serde_json::{Value, json};

use crate::AppState;
use crate::context::InletAuthError;
use crate::error::InletProblem;
use crate::extract;
use crate::inlets::{AppendError, CachedInlet};

/// The most violations a sync-validation report lists (spec §10.3).
const MAX_REPORTED_VIOLATIONS: usize = 5;
/// How often a request routes its records again after its append found the routing stale
/// (the tenant's Flow Service objects changed meanwhile) before answering 503.
const ROUTING_ATTEMPTS: usize = 3;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/collection/{inlet_id}", post(send_message))
        .route("/collection/batch/{inlet_id}", post(send_messages))
}

fn bad_request(message: impl Into<String>) -> Response {
    InletProblem::invalid_message(message).into_response()
}

fn storage_failure(err: &MetastoreError) -> Response {
    tracing::error!(error = %err, "stream records could not be stored; nothing was acknowledged");
    InletProblem::unavailable().into_response()
}

/// Opens the inlet of a collection call, then decodes its query string: a query the
/// decoder refuses (a NUL, %00) is a 400 naming the inlet, never silently ignored.
async fn open_request(
    state: &AppState,
    inlet_id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Arc<CachedInlet>, Vec<(String, String)>), Response> {
    let entry = open_inlet(state, inlet_id, headers).await?;
    match extract::query_pairs(crate::error::Service::Gateway, query) {
        Ok(pairs) => Ok((entry, pairs)),
        Err(err) => Err(bad_request(message_text(
            inlet_id,
            &entry.inlet,
            &err.detail,
        ))),
    }
}

/// Looks up the inlet (through the cache) and checks its credentials.
async fn open_inlet(
    state: &AppState,
    inlet_id: &str,
    headers: &HeaderMap,
) -> Result<Arc<CachedInlet>, Response> {
    let unknown = || {
        InletProblem::inlet_not_found(format!(
            "inletId: [{inlet_id}] no streaming connection has this inlet; it was never created or has been deleted"
        ))
        .into_response()
    };
    // Inlet ids are 64 lower-case hex characters: anything else cannot exist.
    if inlet_id.len() != 64
        || !inlet_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(unknown());
    }
    let entry = state
        .inlet_cache()
        .get(state.metastore(), inlet_id)
        .await
        .map_err(|err| storage_failure(&err))?
        .ok_or_else(unknown)?;
    let inlet = &entry.inlet;
    let required = inlet
        .connection
        .get("auth")
        .and_then(|auth| auth.get("params"))
        .and_then(|params| params.get("authenticationRequired"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if required {
        match state.auth().check_inlet_token(headers, inlet.tenant.org()) {
            Ok(()) => {}
            // Adobe writes `status` as a string and sometimes answers 403 for expired tokens;
            // Lakeport sends the integer 401 (spec §10.4).
            Err(InletAuthError::Invalid) => {
                return Err(InletProblem::unauthorized(
                    "This inlet requires authentication: send Authorization: Bearer <a valid access token>",
                )
                .into_response());
            }
            Err(InletAuthError::NotEntitled) => {
                return Err(InletProblem::not_entitled(format!(
                    "The access token is not entitled to organization {}, which owns this inlet",
                    inlet.tenant.org()
                ))
                .into_response());
            }
        }
    }
    Ok(entry)
}

/// Reads the body: at most `stream.max_body_bytes`, JSON (or no `Content-Type`).
async fn read_body(state: &AppState, headers: &HeaderMap, body: Body) -> Result<Value, Response> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let media = content_type
            .to_str()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let json = media == "application/json"
            || media == "text/json"
            || (media.starts_with("application/") && media.ends_with("+json"));
        if !json {
            return Err(InletProblem::unsupported_media_type(format!(
                "Content-Type {media:?} is not supported; send application/json (Smile bodies are not supported)"
            ))
            .into_response());
        }
    }
    let limit = state.stream_config().max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|err| {
        if extract::is_length_limit(&err) {
            InletProblem::too_large(format!(
                "the request body exceeds {limit} bytes; send fewer or smaller messages per request"
            ))
            .into_response()
        } else {
            bad_request(format!(
                "the request body could not be read to the end: {err}"
            ))
        }
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|err| bad_request(format!("the request body is not valid JSON: {err}")))?;
    // JSON can only carry U+0000 escaped; no Lakeport value holds one (PostgreSQL text
    // cannot), so refuse it here rather than let a lookup fail in the database.
    if bytes.windows(6).any(|window| window == b"\\u0000")
        && let Some(at) = extract::nul_position(&value)
    {
        return Err(bad_request(format!(
            "{at}: the body holds a NUL character (\\u0000), which Lakeport does not store; remove it"
        )));
    }
    Ok(value)
}

/// The flow named by `x-adobe-flow-id` (header, else query parameter).
fn flow_header(headers: &HeaderMap, pairs: &[(String, String)]) -> Option<String> {
    headers
        .get("x-adobe-flow-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            pairs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case("x-adobe-flow-id"))
                .map(|(_, value)| value.clone())
        })
        .filter(|flow| !flow.is_empty())
}

/// A message that passed the checks of spec §10.2.
struct Checked<'m> {
    dataset: Arc<Doc>,
    dataset_id: String,
    entity: &'m Value,
}

/// Returns a dataset of the inlet's tenant, looked up once per cached inlet.
async fn dataset_of(
    state: &AppState,
    entry: &CachedInlet,
    id: &str,
) -> Result<Option<Arc<Doc>>, MetastoreError> {
    if let Some(found) = entry.dataset(id) {
        return Ok(found);
    }
    let found = state
        .metastore()
        .get(&entry.inlet.tenant, ObjectKind::Dataset, &[id.to_owned()])
        .await?
        .into_iter()
        .next()
        .map(Arc::new);
    entry.remember_dataset(id, found.clone());
    Ok(found)
}

/// Why a message was refused: its reason, or a failure of the metastore.
enum Refusal {
    Message(String),
    Store(MetastoreError),
}

impl From<MetastoreError> for Refusal {
    fn from(err: MetastoreError) -> Self {
        Self::Store(err)
    }
}

fn schema_id(value: Option<&Value>) -> Option<&str> {
    value?.get("schemaRef")?.get("id")?.as_str()
}

fn dataset_schema_id(dataset: &Doc) -> Option<&str> {
    dataset.get("schemaRef")?.get("id")?.as_str()
}

/// Runs the checks (1)–(5) of spec §10.2 on one message.
async fn check_message<'m>(
    state: &AppState,
    entry: &CachedInlet,
    message: &'m Value,
    flow_from_header: Option<&str>,
) -> Result<Checked<'m>, Refusal> {
    let inlet = &entry.inlet;
    let refuse = |reason: &str| Refusal::Message(reason.to_owned());
    let raw = inlet
        .connection
        .get("auth")
        .and_then(|auth| auth.get("params"))
        .and_then(|params| params.get("dataType"))
        .and_then(Value::as_str)
        == Some("raw");
    let (header, entity) = if raw {
        if !message.is_object() {
            return Err(refuse("a raw inlet takes a JSON object per message"));
        }
        (None, message)
    } else {
        let header = message.get("header").filter(|header| header.is_object());
        let body = message.get("body").filter(|body| body.is_object());
        let (Some(header), Some(body)) = (header, body) else {
            return Err(refuse("Message has unknown xdm format"));
        };
        let Some(entity) = body.get("xdmEntity").filter(|entity| entity.is_object()) else {
            return Err(refuse("Message has unknown xdm format"));
        };
        if let Some(org) = header.get("imsOrgId")
            && org.as_str() != Some(inlet.tenant.org())
        {
            return Err(refuse(
                "Message has an absent or wrong ims org in the header",
            ));
        }
        // The body's schema must agree with the header's.
        (Some((header, body)), entity)
    };
    let named_dataset = header
        .and_then(|(header, _)| header.get("datasetId"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let named_flow = header
        .and_then(|(header, _)| header.get("flowId"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .or(flow_from_header);
    let flow: Option<&InletFlow> = match named_flow {
        Some(flow_id) => Some(
            inlet
                .flows
                .iter()
                .find(|flow| flow.flow_id == flow_id)
                .ok_or_else(|| {
                    Refusal::Message(format!(
                        "flow {flow_id} is not a flow of this inlet (header.flowId or x-adobe-flow-id)"
                    ))
                })?,
        ),
        None if named_dataset.is_some() => None,
        None => match inlet.flows.as_slice() {
            [only] => Some(only),
            [] => {
                return Err(refuse(
                    "this inlet has no flow yet: create one, or name the dataset in header.datasetId",
                ));
            }
            _ => {
                return Err(refuse(
                    "this inlet feeds several flows: name one in header.flowId or x-adobe-flow-id, or the dataset in header.datasetId",
                ));
            }
        },
    };
    if flow.is_some_and(|flow| flow.mapping) {
        return Err(refuse(
            "the flow maps records with a Mapping (Data Prep) transformation, which Lakeport does not support yet; use a flow without transformations",
        ));
    }
    let Some(dataset_id) = named_dataset
        .map(str::to_owned)
        .or_else(|| flow.and_then(|flow| flow.dataset_id.clone()))
    else {
        return Err(refuse("the flow has no target dataset"));
    };
    let Some(dataset) = dataset_of(state, entry, &dataset_id).await? else {
        return Err(Refusal::Message(format!(
            "dataset {dataset_id} does not exist in the inlet's organization and sandbox"
        )));
    };
    let dataset_schema = dataset_schema_id(&dataset);
    if let Some((header, body)) = header {
        for (place, sent) in [
            ("header.schemaRef.id", schema_id(Some(header))),
            ("body.xdmMeta.schemaRef.id", schema_id(body.get("xdmMeta"))),
        ] {
            if let Some(sent) = sent
                && Some(sent) != dataset_schema
            {
                return Err(Refusal::Message(format!(
                    "{place} {sent} is not the schema of dataset {dataset_id} ({})",
                    dataset_schema.unwrap_or("none")
                )));
            }
        }
    }
    Ok(Checked {
        dataset,
        dataset_id,
        entity,
    })
}

fn message_text(inlet_id: &str, inlet: &Inlet, reason: &str) -> String {
    format!(
        "inletId: [{inlet_id}] imsOrgId: [{}] {reason}",
        inlet.tenant.org()
    )
}

/// Compiles the streaming validator of a dataset's schema: the batch path's engine plus
/// the unknown-property rule. `Err` holds a reason the message is refused for.
async fn streaming_validator(
    state: &AppState,
    inlet: &Inlet,
    dataset: &Doc,
) -> Result<Result<Validator, String>, MetastoreError> {
    let Some(schema_id) = dataset_schema_id(dataset) else {
        return Ok(Err(
            "the dataset has no schemaRef, so messages cannot be validated".to_owned(),
        ));
    };
    let resources = match lakeport_metastore::references::referenced(
        state.metastore(),
        &inlet.tenant,
        vec![schema_id.to_owned()],
    )
    .await
    {
        Ok(resources) => resources,
        Err(lakeport_metastore::references::NeighbourhoodError::Metastore(err)) => {
            return Err(err);
        }
        Err(err) => {
            return Ok(Err(format!(
                "the dataset's schema cannot be resolved: {err}"
            )));
        }
    };
    let find = |id: &str| resources.find(id);
    let Some(schema) = find(schema_id) else {
        return Ok(Err(format!(
            "the dataset's schema {schema_id} no longer exists"
        )));
    };
    let full = match resolve(&schema, &find) {
        Ok(resolved) => resolved.full,
        Err(err) => {
            return Ok(Err(format!(
                "the dataset's schema cannot be resolved: {err}"
            )));
        }
    };
    Ok(Validator::compile_with(
        &full,
        ValidatorOptions {
            unknown_fields: UnknownFields::Reject,
            ..ValidatorOptions::default()
        },
    )
    .map_err(|err| format!("the dataset's schema cannot be compiled: {err}")))
}

/// Renders violations as `_streamingValidation`: one alone, several wrapped at `#`.
fn streaming_report(violations: &[Violation]) -> Value {
    let shown: Vec<Value> = violations
        .iter()
        .take(MAX_REPORTED_VIOLATIONS)
        .map(|violation| {
            json!({
                "schemaLocation": violation.schema_location,
                "pointerToViolation": format!("#{}", violation.pointer),
                "keyword": violation.keyword,
                "message": violation.message,
                "causingExceptions": [],
            })
        })
        .collect();
    if shown.len() == 1 {
        return json!([shown[0]]);
    }
    json!([{
        "schemaLocation": "#",
        "pointerToViolation": "#",
        "message": format!("{} schema violations found", shown.len()),
        "causingExceptions": shown,
    }])
}

/// Reads `syncValidation` (or its older alias) as a boolean in any case.
fn sync_validation(pairs: &[(String, String)]) -> Result<bool, String> {
    let Some((name, value)) = pairs
        .iter()
        .find(|(key, _)| key == "syncValidation" || key == "synchronousValidation")
    else {
        return Ok(false);
    };
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" | "" => Ok(false),
        _ => Err(format!(
            "query parameter {name:?}: {value:?} is not true or false"
        )),
    }
}

/// Returns the dataset's streaming validator, compiled once per cached inlet.
async fn cached_validator(
    state: &AppState,
    entry: &CachedInlet,
    dataset_id: &str,
    dataset: &Doc,
) -> Result<Arc<Result<Validator, String>>, MetastoreError> {
    if let Some(validator) = entry.validator(dataset_id) {
        return Ok(validator);
    }
    let validator = Arc::new(streaming_validator(state, &entry.inlet, dataset).await?);
    entry.remember_validator(dataset_id, Arc::clone(&validator));
    Ok(validator)
}

/// Appends one request's records through the group committer, routed with `entry`'s
/// Flow Service generation. `Ok(None)`: the routing was stale, nothing was appended.
async fn append(
    state: &AppState,
    inlet_id: &str,
    entry: &Arc<CachedInlet>,
    records: Vec<NewStreamRecord>,
) -> Result<Option<Vec<lakeport_metastore::AppendedRecord>>, Response> {
    let group = StreamAppend {
        tenant: entry.inlet.tenant.clone(),
        generation: Some(entry.inlet.generation),
        records,
    };
    match state.appender().append(group).await {
        Ok(AppendOutcome::Appended(positions)) => Ok(Some(positions)),
        Ok(AppendOutcome::Stale) => {
            state.inlet_cache().invalidate(inlet_id, entry);
            Ok(None)
        }
        Err(AppendError::Full(reason)) => {
            tracing::debug!(inlet.id = %inlet_id, "{reason}");
            Err(InletProblem::busy(reason).into_response())
        }
        Err(AppendError::Store(err)) => Err(storage_failure(&err)),
    }
}

fn routing_kept_changing() -> Response {
    InletProblem::busy(
        "The inlet's flows changed while the records were being stored; nothing was acknowledged. Retry the request.",
    )
    .into_response()
}

/// `<receivedTimeMs>:<node>:<chunk>.<line>` (opaque to clients, spec §10.2).
fn xaction_id(received: i64, position: lakeport_metastore::AppendedRecord) -> String {
    format!("{received}:0001:{}.{}", position.chunk, position.line)
}

/// `POST /collection/{inletId}`: one message.
async fn send_message(
    State(state): State<AppState>,
    Path(inlet_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (mut entry, pairs) = match open_request(&state, &inlet_id, query.as_deref(), &headers).await
    {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let validate = match sync_validation(&pairs) {
        Ok(validate) => validate,
        Err(reason) => return bad_request(message_text(&inlet_id, &entry.inlet, &reason)),
    };
    let message = match read_body(&state, &headers, body).await {
        Ok(message) => message,
        Err(response) => return response,
    };
    let received = now_millis();
    let flow = flow_header(&headers, &pairs);
    for attempt in 1..=ROUTING_ATTEMPTS {
        if attempt > 1 {
            entry = match open_inlet(&state, &inlet_id, &headers).await {
                Ok(entry) => entry,
                Err(response) => return response,
            };
        }
        let inlet = &entry.inlet;
        let checked = match check_message(&state, &entry, &message, flow.as_deref()).await {
            Ok(checked) => checked,
            Err(Refusal::Message(reason)) => {
                return bad_request(message_text(&inlet_id, inlet, &reason));
            }
            Err(Refusal::Store(err)) => return storage_failure(&err),
        };
        let mut sync = json!({"skipped": true});
        if validate {
            let validator =
                match cached_validator(&state, &entry, &checked.dataset_id, &checked.dataset).await
                {
                    Ok(validator) => validator,
                    Err(err) => return storage_failure(&err),
                };
            let validator = match validator.as_ref() {
                Ok(validator) => validator,
                Err(reason) => return bad_request(message_text(&inlet_id, inlet, reason)),
            };
            if let Err(violations) = validator.validate(checked.entity.clone(), Source::Json) {
                // A failing message is dropped, never logged (spec §10.3).
                return InletProblem::invalid_record(
                    message_text(&inlet_id, inlet, "Message is invalid"),
                    streaming_report(&violations),
                )
                .into_response();
            }
            sync = json!({"status": "pass"});
        }
        let record = NewStreamRecord {
            dataset_id: checked.dataset_id,
            connection_id: connection_id(inlet),
            received,
            body: checked.entity.to_string(),
        };
        let positions = match append(&state, &inlet_id, &entry, vec![record]).await {
            Ok(Some(positions)) => positions,
            Ok(None) => continue,
            Err(response) => return response,
        };
        let Some(position) = positions.first().copied() else {
            return routing_kept_changing();
        };
        return Json(json!({
            "inletId": inlet_id,
            "xactionId": xaction_id(received, position),
            "receivedTimeMs": received,
            "syncValidation": sync,
        }))
        .into_response();
    }
    routing_kept_changing()
}

fn connection_id(inlet: &Inlet) -> String {
    inlet
        .connection
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `POST /collection/batch/{inletId}`: `{"messages": […]}`, 207 with one entry per
/// message. `syncValidation` is ignored here whatever its value (aepp always sends it).
async fn send_messages(
    State(state): State<AppState>,
    Path(inlet_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (mut entry, pairs) = match open_request(&state, &inlet_id, query.as_deref(), &headers).await
    {
        Ok(opened) => opened,
        Err(response) => return response,
    };
    let document = match read_body(&state, &headers, body).await {
        Ok(document) => document,
        Err(response) => return response,
    };
    let Some(messages) = document.get("messages").and_then(Value::as_array) else {
        return bad_request(message_text(
            &inlet_id,
            &entry.inlet,
            "the body must be {\"messages\": [message, …]}",
        ));
    };
    let received = now_millis();
    let request_id = lakeport_domain::ids::new_uuid();
    let flow = flow_header(&headers, &pairs);
    for attempt in 1..=ROUTING_ATTEMPTS {
        if attempt > 1 {
            entry = match open_inlet(&state, &inlet_id, &headers).await {
                Ok(entry) => entry,
                Err(response) => return response,
            };
        }
        let inlet = &entry.inlet;
        let connection = connection_id(inlet);
        let mut responses: Vec<Value> = Vec::with_capacity(messages.len());
        let mut records = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match check_message(&state, &entry, message, flow.as_deref()).await {
                Ok(checked) => {
                    records.push(NewStreamRecord {
                        dataset_id: checked.dataset_id,
                        connection_id: connection.clone(),
                        received,
                        body: checked.entity.to_string(),
                    });
                    responses.push(json!({"xactionId": format!("{request_id}:{index}")}));
                }
                Err(Refusal::Message(reason)) => responses.push(json!({
                    "statusCode": 400,
                    "message": message_text(&inlet_id, inlet, &reason),
                })),
                Err(Refusal::Store(err)) => return storage_failure(&err),
            }
        }
        if !records.is_empty() {
            match append(&state, &inlet_id, &entry, records).await {
                Ok(Some(_)) => {}
                Ok(None) => continue,
                Err(response) => return response,
            }
        }
        return (
            StatusCode::MULTI_STATUS,
            Json(json!({
                "inletId": inlet_id,
                "batchId": request_id,
                "receivedTimeMs": received,
                "responses": responses,
            })),
        )
            .into_response();
    }
    routing_kept_changing()
}
