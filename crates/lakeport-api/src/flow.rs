//! The Flow Service subset that yields streaming inlets (`/data/foundation/flowservice`,
//! spec §10.1): connection specs, base/source/target connections and flows.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakeport_domain::flow::{self, FlowKind, FlowRequestError};
use lakeport_domain::now_millis;
use rand::RngCore;
use serde_json::{Value, json};

use crate::AppState;
use crate::context::{RequestContext, origin};
use crate::error::{ApiError, Service};
use crate::extract;

const SERVICE: Service = Service::Flow;
/// The base path of the Flow Service.
pub const BASE_PATH: &str = "/data/foundation/flowservice";
/// Default and largest page of a listing.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/connectionSpecs", get(list_connection_specs))
        .route("/connectionSpecs/{id}", get(get_connection_spec))
        .route("/{kind}", get(list_objects).post(create_object))
        .route("/{kind}/{id}", get(get_object).delete(delete_object))
}

fn kind_of(segment: &str) -> Result<FlowKind, ApiError> {
    FlowKind::from_path(segment).ok_or_else(|| {
        ApiError::not_found(SERVICE, format!(
                "the Flow Service subset has no collection {segment:?}; it serves connectionSpecs, connections, sourceConnections, targetConnections and flows"
            ),
        )
    })
}

fn not_found(kind: FlowKind, id: &str) -> ApiError {
    ApiError::not_found(
        SERVICE,
        format!("{} {id} does not exist in this sandbox", kind.noun()),
    )
}

fn request_error(err: &FlowRequestError) -> ApiError {
    ApiError::flow_request(err)
}

fn metastore_error(err: lakeport_metastore::MetastoreError) -> ApiError {
    ApiError::from_metastore(SERVICE, err)
}

async fn list_connection_specs(RawQuery(query): RawQuery) -> Result<Response, ApiError> {
    let pairs = extract::query_pairs(SERVICE, query.as_deref())?;
    let items = filter(flow::connection_specs(), &pairs)?;
    Ok(Json(json!({"items": items})).into_response())
}

async fn get_connection_spec(Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = id.to_ascii_lowercase();
    let spec = flow::connection_specs()
        .into_iter()
        .find(|spec| spec["id"] == id.as_str())
        .ok_or_else(|| {
            ApiError::not_found(SERVICE, format!(
                    "connection spec {id} is not known; Lakeport has {} (HTTP API streaming) and {} (data lake)",
                    flow::STREAMING_SPEC_ID,
                    flow::DATALAKE_SPEC_ID
                ),
            )
        })?;
    Ok(Json(json!({"items": [spec]})).into_response())
}

async fn create_object(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let reference = flow::check_request(kind, &body).map_err(|err| request_error(&err))?;
    let id = lakeport_domain::ids::new_uuid();
    let inlet = (kind == FlowKind::Connection).then(|| {
        let mut random = [0u8; 32];
        rand::rng().fill_bytes(&mut random);
        let inlet_id = flow::new_inlet_id(random);
        let inlet_url = format!(
            "{}/collection/{inlet_id}",
            streaming_origin(&state, &headers)
        );
        (inlet_id, inlet_url)
    });
    let doc = flow::build_object(
        kind,
        &body,
        &id,
        inlet.as_ref().map(|(id, url)| (id.as_str(), url.as_str())),
        &ctx.tenant,
        &ctx.actor,
        now_millis(),
    );
    let stored = state
        .metastore()
        .insert_flow_object(&ctx.tenant, kind, doc, &reference)
        .await
        .map_err(metastore_error)?;
    tracing::info!(tenant.org = ctx.tenant.org(), flow.kind = kind.as_str(), flow.id = %id, "flow service object created");
    let location = format!(
        "{}{BASE_PATH}/{}/{id}",
        origin(&state, &headers),
        kind.as_str()
    );
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(json!({"id": id, "etag": stored.get("etag").cloned().unwrap_or(Value::Null)})),
    )
        .into_response())
}

/// The origin inlet URLs use: the configured streaming origin, else the public one.
fn streaming_origin(state: &AppState, headers: &HeaderMap) -> String {
    match state.stream_config().origin.as_deref() {
        Some(origin) => origin.trim_end_matches('/').to_owned(),
        None => origin(state, headers),
    }
}

async fn get_object(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    let id = extract::id(SERVICE, &id)?;
    let doc = state
        .metastore()
        .get_flow_object(&ctx.tenant, kind, &id)
        .await
        .map_err(metastore_error)?
        .ok_or_else(|| not_found(kind, &id))?;
    Ok(Json(json!({"items": [flow::present(kind, doc)]})).into_response())
}

async fn delete_object(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    let id = extract::id(SERVICE, &id)?;
    let deleted = state
        .metastore()
        .delete_flow_object(&ctx.tenant, kind, &id)
        .await
        .map_err(metastore_error)?;
    if !deleted {
        return Err(not_found(kind, &id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn list_objects(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let kind = kind_of(&kind)?;
    let pairs = extract::query_pairs(SERVICE, query.as_deref())?;
    let docs = state
        .metastore()
        .list_flow_objects(&ctx.tenant, kind)
        .await
        .map_err(metastore_error)?;
    let items: Vec<Value> = docs
        .into_iter()
        .map(|doc| Value::Object(flow::present(kind, doc)))
        .collect();
    let mut items = filter(items, &pairs)?;
    if let Some((_, order)) = pairs.iter().find(|(key, _)| key == "orderby") {
        let (descending, field) = match order.strip_prefix('-') {
            Some(field) => (true, field),
            None => (false, order.strip_prefix('+').unwrap_or(order)),
        };
        let field = field.to_owned();
        items.sort_by(|a, b| {
            let ordering = compare(&a[&field], &b[&field]);
            if descending {
                ordering.reverse()
            } else {
                ordering
            }
        });
    }
    let number = |name: &str| -> Result<Option<usize>, ApiError> {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| {
                value.parse::<usize>().map_err(|_| {
                    ApiError::invalid_query(
                        SERVICE,
                        format!(
                            "query parameter {name:?}: {value:?} is not a non-negative integer"
                        ),
                    )
                })
            })
            .transpose()
    };
    let limit = number("limit")?
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, MAX_LIMIT);
    // The continuation token is the offset of the next page; it holds no `=` or `&`,
    // as aepp cuts the `next` href at the first `=` (spec §10.1).
    let offset = number("continuationToken")?.unwrap_or(0);
    let total = items.len();
    let page: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let next = offset + page.len();
    let links = if next < total {
        json!({"next": {"href": format!("/{}?continuationToken={next}", kind.as_str())}})
    } else {
        json!({})
    };
    let mut body = json!({"items": page, "_links": links});
    if pairs
        .iter()
        .any(|(key, value)| key == "count" && value.eq_ignore_ascii_case("true"))
    {
        body["count"] = json!(total);
    }
    Ok(Json(body).into_response())
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Value::String(a), Value::String(b)) => a.cmp(b),
        (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
        (Value::Null, _) => std::cmp::Ordering::Less,
        (_, Value::Null) => std::cmp::Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Keeps the items matching every `property=<dotted.path>==<value>` (or `!=`) filter.
fn filter(items: Vec<Value>, pairs: &[(String, String)]) -> Result<Vec<Value>, ApiError> {
    let mut filters = Vec::new();
    for (_, expression) in pairs.iter().filter(|(key, _)| key == "property") {
        let (path, value, equal) = if let Some((path, value)) = expression.split_once("!=") {
            (path, value, false)
        } else if let Some((path, value)) = expression.split_once("==") {
            (path, value, true)
        } else {
            return Err(ApiError::invalid_query(
                SERVICE,
                format!(
                    "query parameter \"property\": {expression:?} is not <dotted.path>==<value> or <dotted.path>!=<value>"
                ),
            ));
        };
        filters.push((
            path.split('.').map(str::to_owned).collect::<Vec<_>>(),
            value.to_owned(),
            equal,
        ));
    }
    Ok(items
        .into_iter()
        .filter(|item| {
            filters.iter().all(|(path, value, equal)| {
                let mut found = item;
                for key in path {
                    found = &found[key.as_str()];
                }
                let text = match found {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (text == *value) == *equal
            })
        })
        .collect())
}
