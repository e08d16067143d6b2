//! `/batches` and `/lastBatches` (spec §2.3 items 10–18).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakeport_domain::catalog::{self, WriteContext};
use lakeport_domain::ids::new_ulid;
use lakeport_domain::now_millis;
use lakeport_domain::query::ObjectKind;
use serde_json::{Map, Value, json};

use super::{
    SERVICE, UpdateMode, created, delete_object, get_objects, list_objects, list_query,
    metastore_error, update_object,
};
use crate::AppState;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::extract;

const KIND: ObjectKind = ObjectKind::Batch;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/batches", get(list_batches).post(create_batch))
        .route(
            "/batches/{id}",
            get(get_batches)
                .post(create_batch_with_id)
                .put(put_batch)
                .patch(patch_batch)
                .delete(delete_batch),
        )
        .route("/lastBatches", get(list_last_batches))
}

async fn list_batches(
    State(state): State<AppState>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list_objects(&state, &ctx, KIND, query.as_deref(), &headers).await
}

async fn create_batch(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    insert_batch(&state, &ctx, &headers, body, new_ulid()).await
}

/// `POST /batches/{id}`: a producer creates a batch with an id of its choosing.
async fn create_batch_with_id(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = extract::id(SERVICE, &id)?;
    insert_batch(&state, &ctx, &headers, body, id).await
}

async fn insert_batch(
    state: &AppState,
    ctx: &RequestContext,
    headers: &HeaderMap,
    body: Body,
    id: String,
) -> Result<Response, ApiError> {
    let (body, _) = extract::json_body(SERVICE, headers, body).await?;
    let write = WriteContext {
        tenant: &ctx.tenant,
        actor: &ctx.actor,
        now: now_millis(),
    };
    let doc = catalog::new_catalog_batch(body, &id, &write)
        .map_err(|err| ApiError::from_document(SERVICE, &err))?;
    if extract::validate_only(headers) {
        return Ok((StatusCode::OK, Json(json!([]))).into_response());
    }
    state
        .metastore()
        .insert(&ctx.tenant, KIND, doc)
        .await
        .map_err(metastore_error)?;
    tracing::info!(batch.id = %id, tenant.org = ctx.tenant.org(), "catalog batch created");
    Ok(created(state, headers, KIND, &id))
}

async fn get_batches(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(ids): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    get_objects(&state, &ctx, KIND, &ids, query.as_deref()).await
}

async fn put_batch(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update_object(&state, &ctx, KIND, &id, &headers, body, UpdateMode::Put).await
}

async fn patch_batch(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update_object(&state, &ctx, KIND, &id, &headers, body, UpdateMode::Patch).await
}

async fn delete_batch(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    delete_object(&state, &ctx, KIND, &id).await
}

/// `GET /lastBatches`: the last batch of each dataset (spec §2.3 item 18).
async fn list_last_batches(
    State(state): State<AppState>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let mut raw = query.unwrap_or_default();
    if !raw.is_empty() {
        raw.push('&');
    }
    // Only datasets that have had a batch appear.
    raw.push_str("property=lastBatchId");
    let rename = [
        ("dataSetId", "id"),
        ("lastSuccessfulBatchId", "lastSuccessfulBatch"),
        ("lastFailedBatchId", "lastFailedBatch"),
    ];
    let (query, _) = list_query(&state, ObjectKind::Dataset, Some(&raw), &headers, &rename)?;
    let datasets = state
        .metastore()
        .list(&ctx.tenant, ObjectKind::Dataset, &query)
        .await
        .map_err(metastore_error)?;
    let mut map = Map::new();
    for dataset in datasets {
        let field = |name: &str| dataset.get(name).cloned().unwrap_or(Value::Null);
        let mut entry = json!({
            "lastBatchId": field("lastBatchId"),
            "lastBatchStatus": field("lastBatchStatus"),
            "lastSuccessfulBatchId": field("lastSuccessfulBatch"),
            "lastFailedBatchId": field("lastFailedBatch"),
            "imsOrg": field("imsOrg"),
            "sandboxId": field("sandboxId"),
            "created": field("created"),
            "updated": field("updated"),
        });
        if let (Some(properties), Value::Object(object)) = (&query.properties, &mut entry) {
            *object = catalog::project(object, properties);
        }
        let id = dataset
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        map.insert(id, entry);
    }
    Ok(Json(Value::Object(map)).into_response())
}
