//! The Catalog Service (`/data/foundation/catalog`, spec §2): datasets, batches, dataset
//! files and `lastBatches`, with the query conventions of §2.2.

mod batches;
pub(crate) mod datasets;
mod files;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakeport_domain::catalog::{self, Mutation, WriteContext};
use lakeport_domain::query::{ListQuery, ObjectKind};
use lakeport_domain::{Doc, now_millis};
use lakeport_metastore::UpdateOptions;
use serde_json::{Value, json};

use crate::AppState;
use crate::context::{RequestContext, origin};
use crate::error::{ApiError, Service};
use crate::extract::{self, BodyType};

const SERVICE: Service = Service::Catalog;

/// Returns the Catalog routes, relative to `/data/foundation/catalog`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .merge(datasets::routes())
        .merge(batches::routes())
        .merge(files::routes())
}

/// `GET /` (spec §2.3 item 26): links to the collections.
async fn root() -> Json<Value> {
    Json(
        json!({"batches": "@/batches", "dataSets": "@/dataSets", "dataSetFiles": "@/dataSetFiles"}),
    )
}

fn metastore_error(err: lakeport_metastore::MetastoreError) -> ApiError {
    ApiError::from_metastore(SERVICE, err)
}

/// Returns the reference array that Catalog writes answer with: `["@/dataSets/<id>"]`.
fn reference(kind: ObjectKind, id: &str) -> Value {
    json!([format!("@/{}/{id}", kind.collection())])
}

fn version_headers(response: &mut Response, doc: &Doc) {
    if let Some(version) = catalog::object_version(doc)
        && let Ok(value) = HeaderValue::from_str(&format!("\"{version}\""))
    {
        // Adobe's docs spell it `E-Tag`; send both (spec §8 item 10).
        response.headers_mut().insert("etag", value.clone());
        response.headers_mut().insert("e-tag", value);
    }
}

/// Renders documents as the Catalog map keyed by id, in order, projected if asked.
fn render_map(docs: Vec<Doc>, properties: Option<&[String]>) -> Value {
    let mut map = serde_json::Map::with_capacity(docs.len());
    for doc in docs {
        let id = catalog::object_id(&doc).unwrap_or_default().to_owned();
        let shown = match properties {
            Some(fields) => catalog::project(&doc, fields),
            None => doc,
        };
        map.insert(id, Value::Object(shown));
    }
    Value::Object(map)
}

/// Headers that may carry list controls; query parameters win (spec §2.2.1).
const HEADER_PARAMETERS: [&str; 4] = ["limit", "start", "orderBy", "properties"];

/// Parses a legacy `Range: objects=a-b` header into (start, end).
fn objects_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, ApiError> {
    let Some(range) = headers.get("range").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = range.trim().strip_prefix("objects=") else {
        return Ok(None);
    };
    let parsed = spec
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .filter(|(a, b)| a <= b);
    match parsed {
        Some(range) => Ok(Some(range)),
        None => Err(ApiError::invalid_query(
            SERVICE,
            format!("Range {range:?} must be objects=<first>-<last> with first <= last"),
        )),
    }
}

/// Parses the list query of a collection from the query string and headers.
fn list_query(
    state: &AppState,
    kind: ObjectKind,
    raw_query: Option<&str>,
    headers: &HeaderMap,
    rename: &[(&str, &str)],
) -> Result<(ListQuery, Option<(u64, u64)>), ApiError> {
    let mut params = extract::query_pairs(SERVICE, raw_query)?;
    for name in HEADER_PARAMETERS {
        let in_query = params
            .iter()
            .any(|(key, _)| key == name || (name == "orderBy" && key == "sort"));
        if !in_query && let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            params.push((name.to_owned(), value.to_owned()));
        }
    }
    let range = objects_range(headers)?;
    if let Some((first, last)) = range {
        params.retain(|(key, _)| !matches!(key.as_str(), "start" | "offset" | "limit"));
        params.push(("start".into(), first.to_string()));
        let count = (last - first).saturating_add(1);
        params.push(("limit".into(), count.to_string()));
    }
    for (key, _) in &mut params {
        if let Some((_, to)) = rename.iter().find(|(from, _)| from == key) {
            *key = (*to).to_owned();
        }
    }
    let query = ListQuery::parse(kind, &params, state.limits())
        .map_err(|err| ApiError::from_query(SERVICE, &err))?;
    Ok((query, range))
}

/// Lists a collection (`GET /dataSets`, `/batches`, `/dataSetFiles`).
async fn list_objects(
    state: &AppState,
    ctx: &RequestContext,
    kind: ObjectKind,
    raw_query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (query, range) = list_query(state, kind, raw_query, headers, &[])?;
    let docs = state
        .metastore()
        .list(&ctx.tenant, kind, &query)
        .await
        .map_err(metastore_error)?;
    let mut response = Json(render_map(docs, query.properties.as_deref())).into_response();
    if let Some((first, _)) = range {
        let total = state
            .metastore()
            .count(&ctx.tenant, kind, &query)
            .await
            .map_err(metastore_error)?;
        let last = first
            .saturating_add(u64::from(query.limit))
            .min(total)
            .saturating_sub(1)
            .max(first);
        if let Ok(value) = HeaderValue::from_str(&format!("objects {first}-{last}/{total}")) {
            response.headers_mut().insert("content-range", value);
        }
    }
    Ok(response)
}

/// Looks up one or more comma-separated ids (`GET /dataSets/{id1},{id2}`).
async fn get_objects(
    state: &AppState,
    ctx: &RequestContext,
    kind: ObjectKind,
    ids_segment: &str,
    raw_query: Option<&str>,
) -> Result<Response, ApiError> {
    let ids = extract::ids(SERVICE, ids_segment)?;
    let params = extract::query_pairs(SERVICE, raw_query)?;
    let properties: Option<Vec<String>> =
        params
            .iter()
            .find(|(key, _)| key == "properties")
            .map(|(_, value)| {
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
    let aggregate = params
        .iter()
        .any(|(key, value)| key == "aggregate" && value.eq_ignore_ascii_case("true"));
    let mut docs = state
        .metastore()
        .get(&ctx.tenant, kind, &ids)
        .await
        .map_err(metastore_error)?;
    if docs.is_empty() {
        return Err(ApiError::not_found(
            SERVICE,
            format!(
                "{} {} does not exist in this sandbox",
                kind.noun(),
                ids.join(",")
            ),
        ));
    }
    if aggregate && kind == ObjectKind::Batch {
        docs.iter_mut().for_each(catalog::aggregate_related);
    }
    let single = (docs.len() == 1 && ids.len() == 1).then(|| docs[0].clone());
    let mut response = Json(render_map(docs, properties.as_deref())).into_response();
    if let Some(doc) = single {
        version_headers(&mut response, &doc);
    }
    Ok(response)
}

/// Which kind of update a route performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UpdateMode {
    Put,
    Patch,
    DeepMergePatch,
}

/// Applies PUT / PATCH / v2 PATCH to one object.
async fn update_object(
    state: &AppState,
    ctx: &RequestContext,
    kind: ObjectKind,
    id_segment: &str,
    headers: &HeaderMap,
    body: Body,
    mode: UpdateMode,
) -> Result<Response, ApiError> {
    let id = extract::id(SERVICE, id_segment)?;
    let (value, body_type) = extract::json_body(SERVICE, headers, body).await?;
    let mutation = match (mode, body_type, value) {
        (UpdateMode::Patch, BodyType::JsonPatch, patch) => Mutation::JsonPatch(patch),
        // A JSON array under application/json can only be meant as a JSON Patch.
        (UpdateMode::Patch, BodyType::Json, patch @ Value::Array(_)) => Mutation::JsonPatch(patch),
        (_, BodyType::JsonPatch, _) => {
            return Err(ApiError::content_type(
                SERVICE,
                "A valid content type must be given: JSON Patch is only accepted by PATCH /dataSets/{id} and PATCH /batches/{id}; send Content-Type: application/json",
            ));
        }
        (mode, BodyType::Json, value) => {
            let object =
                catalog::as_object(value).map_err(|err| ApiError::from_document(SERVICE, &err))?;
            match mode {
                UpdateMode::Put => Mutation::Replace(object),
                UpdateMode::Patch => Mutation::MergeTopLevel(object),
                UpdateMode::DeepMergePatch => Mutation::DeepMerge(object),
            }
        }
    };
    let if_match = headers
        .get("if-match")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if mode == UpdateMode::Put && extract::validate_only(headers) {
        let current = state
            .metastore()
            .get(&ctx.tenant, kind, std::slice::from_ref(&id))
            .await
            .map_err(metastore_error)?;
        let Some(current) = current.first() else {
            return Err(ApiError::not_found(
                SERVICE,
                format!("{} {id} does not exist in this sandbox", kind.noun()),
            ));
        };
        let write = WriteContext {
            tenant: &ctx.tenant,
            actor: &ctx.actor,
            now: now_millis(),
        };
        catalog::apply_mutation(kind, current, mutation, &write)
            .map_err(|err| ApiError::from_document(SERVICE, &err))?;
        return Ok((StatusCode::OK, Json(json!([]))).into_response());
    }
    if kind == ObjectKind::Dataset {
        // A changed schemaRef must resolve in the registry, as on create.
        let current = state
            .metastore()
            .get(&ctx.tenant, kind, std::slice::from_ref(&id))
            .await
            .map_err(metastore_error)?;
        if let Some(current) = current.first() {
            let write = WriteContext {
                tenant: &ctx.tenant,
                actor: &ctx.actor,
                now: now_millis(),
            };
            let preview = catalog::apply_mutation(kind, current, mutation.clone(), &write)
                .map_err(|err| ApiError::from_document(SERVICE, &err))?;
            if preview.get("schemaRef") != current.get("schemaRef") {
                datasets::check_schema_ref(state, ctx, &preview).await?;
            }
        }
    }
    let tenant = ctx.tenant.clone();
    let actor = ctx.actor.clone();
    let change = Box::new(move |current: &Doc| {
        let write = WriteContext {
            tenant: &tenant,
            actor: &actor,
            now: now_millis(),
        };
        catalog::apply_mutation(kind, current, mutation, &write)
    });
    let updated = state
        .metastore()
        .update(&ctx.tenant, kind, &id, UpdateOptions { if_match }, change)
        .await
        .map_err(metastore_error)?;
    let mut response = Json(reference(kind, &id)).into_response();
    version_headers(&mut response, &updated);
    Ok(response)
}

/// Deletes one object; an unknown id answers 200 with `[]` (spec §8 item 19).
async fn delete_object(
    state: &AppState,
    ctx: &RequestContext,
    kind: ObjectKind,
    id_segment: &str,
) -> Result<Response, ApiError> {
    Ok(delete_object_reporting(state, ctx, kind, id_segment)
        .await?
        .0)
}

/// Deletes an object; returns the response and whether the object existed.
async fn delete_object_reporting(
    state: &AppState,
    ctx: &RequestContext,
    kind: ObjectKind,
    id_segment: &str,
) -> Result<(Response, bool), ApiError> {
    let id = extract::id(SERVICE, id_segment)?;
    let deleted = state
        .metastore()
        .delete(&ctx.tenant, kind, &id, &ctx.actor)
        .await
        .map_err(metastore_error)?;
    let body = if deleted {
        reference(kind, &id)
    } else {
        json!([])
    };
    Ok((Json(body).into_response(), deleted))
}

/// Answers a create: 201, the reference array and `Location` (spec §1.5).
fn created(state: &AppState, headers: &HeaderMap, kind: ObjectKind, id: &str) -> Response {
    let location = format!(
        "{}/data/foundation/catalog/{}/{id}",
        origin(state, headers),
        kind.collection()
    );
    let mut response = (StatusCode::CREATED, Json(reference(kind, id))).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert("location", value);
    }
    response
}
