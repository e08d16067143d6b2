//! `/dataSets` (spec §2.3 items 1–9).

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use lakeport_domain::catalog::{self, WriteContext};
use lakeport_domain::ids::{DatasetId, ResourceId, new_object_id};
use lakeport_domain::ingest::{JobKind, TableJob};
use lakeport_domain::now_millis;
use lakeport_domain::query::ObjectKind;
use rand::Rng;
use serde_json::{Value, json};

use super::{
    SERVICE, UpdateMode, created, delete_object_reporting, get_objects, list_objects,
    metastore_error, update_object,
};
use crate::AppState;
use crate::context::RequestContext;
use crate::error::ApiError;
use crate::extract;

const KIND: ObjectKind = ObjectKind::Dataset;
/// The dataset field holding its table's latest version (spec §12).
const TABLE_VERSION_FIELD: &str = "tableVersion";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dataSets", get(list_datasets).post(create_dataset))
        .route(
            "/dataSets/{id}",
            get(get_datasets)
                .put(put_dataset)
                .patch(patch_dataset)
                .delete(delete_dataset),
        )
        .route("/v2/dataSets/{id}", patch(patch_dataset_v2))
        .route("/dataSets/{id}/views/{view_id}/files", get(list_view_files))
        .route("/dataSets/{id}/optimize", post(optimize_table))
        .route("/dataSets/{id}/vacuum", post(vacuum_table))
        .route("/dataSets/{id}/jobs/{job_id}", get(get_table_job))
}

/// `POST /dataSets/{id}/optimize` (a Lakeport extension, spec §12): queues the compaction
/// of the dataset table's small files; 202 with the job.
async fn optimize_table(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    queue_table_job(&state, &ctx, &id, JobKind::OptimizeTable).await
}

/// `POST /dataSets/{id}/vacuum` (a Lakeport extension, spec §12): queues the deletion of
/// the compacted files no version of the retention period reads; 202 with the job.
async fn vacuum_table(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    queue_table_job(&state, &ctx, &id, JobKind::VacuumTable).await
}

async fn queue_table_job(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
    kind: JobKind,
) -> Result<Response, ApiError> {
    let id = extract::id(SERVICE, id)?;
    existing_dataset(state, ctx, &id).await?;
    let dataset_id = DatasetId::from(id);
    let metastore = state.metastore();
    let job_id = metastore
        .enqueue_table_job(&ctx.tenant, kind, &dataset_id)
        .await
        .map_err(metastore_error)?;
    let job = metastore
        .table_job(&ctx.tenant, &dataset_id, job_id)
        .await
        .map_err(metastore_error)?
        .ok_or_else(|| {
            ApiError::not_found(
                SERVICE,
                format!("job {job_id} of dataset {dataset_id} vanished"),
            )
        })?;
    Ok((StatusCode::ACCEPTED, Json(table_job_json(&job))).into_response())
}

/// `GET /dataSets/{id}/jobs/{jobId}`: a table job's state and, once done, what it did.
async fn get_table_job(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, job_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = extract::id(SERVICE, &id)?;
    let unknown = || ApiError::not_found(SERVICE, format!("dataset {id} has no job {job_id}"));
    let number = job_id
        .parse::<i64>()
        .ok()
        .filter(|number| *number > 0)
        .ok_or_else(unknown)?;
    let job = state
        .metastore()
        .table_job(&ctx.tenant, &DatasetId::from(id.clone()), number)
        .await
        .map_err(metastore_error)?
        .ok_or_else(unknown)?;
    Ok(Json(table_job_json(&job)).into_response())
}

fn table_job_json(job: &TableJob) -> Value {
    let operation = match job.kind {
        JobKind::OptimizeTable => "optimize",
        _ => "vacuum",
    };
    let mut out = json!({
        "id": job.id.to_string(),
        "dataSetId": job.dataset_id,
        "operation": operation,
        "status": job.status,
        "attempts": job.attempts,
        "created": job.created,
        "updated": job.updated,
    });
    if let Some(error) = &job.error {
        out["error"] = json!(error);
    }
    if let Some(result) = job
        .result
        .as_deref()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    {
        out["result"] = result;
    }
    out
}

/// The dataset, or the 404 that names it.
async fn existing_dataset(
    state: &AppState,
    ctx: &RequestContext,
    id: &str,
) -> Result<lakeport_domain::Doc, ApiError> {
    state
        .metastore()
        .get(&ctx.tenant, KIND, &[id.to_owned()])
        .await
        .map_err(metastore_error)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ApiError::not_found(
                SERVICE,
                format!("dataset {id} does not exist in this sandbox"),
            )
        })
}

async fn list_datasets(
    State(state): State<AppState>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list_objects(&state, &ctx, KIND, query.as_deref(), &headers).await
}

pub(crate) async fn create_dataset(
    State(state): State<AppState>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = extract::query_pairs(SERVICE, query.as_deref())?;
    let request_data_source = match params.iter().find(|(key, _)| key == "requestDataSource") {
        None => false,
        Some((_, value)) => match value.to_ascii_lowercase().as_str() {
            "true" => true,
            "false" => false,
            _ => {
                return Err(ApiError::invalid_query(
                    SERVICE,
                    format!(
                        "query parameter \"requestDataSource\": {value:?} is not true or false"
                    ),
                ));
            }
        },
    };
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let id = new_object_id();
    let view_id = new_object_id();
    // The dataset's root in the lake, where its Delta table lives (spec §12).
    let base_path = format!(
        "{}/{}/{}/datasets/{id}",
        state.lake_root(),
        ctx.tenant.org(),
        ctx.tenant.sandbox()
    );
    let write = WriteContext {
        tenant: &ctx.tenant,
        actor: &ctx.actor,
        now: now_millis(),
    };
    let mut doc = catalog::new_dataset(body, &id, &view_id, &base_path, &write)
        .map_err(|err| ApiError::from_document(SERVICE, &err))?;
    let schema = check_schema_ref(&state, &ctx, &doc).await?;
    if !doc.contains_key("classification") {
        // Clients read classification.dataBehavior unconditionally (spec §9).
        doc.insert("classification".into(), classification(schema.as_ref()));
    }
    if request_data_source && !doc.contains_key("dataSourceId") {
        doc.insert(
            "dataSourceId".into(),
            json!(rand::rng().random_range(10_000..100_000_000)),
        );
    }
    if extract::validate_only(&headers) {
        return Ok((StatusCode::OK, Json(json!([]))).into_response());
    }
    // The dataset's (empty) Delta table exists when the dataset appears (spec §12); a table
    // that cannot be made now is made by the first promotion.
    let tables = state.tables().cloned();
    if let Some(tables) = &tables {
        match tables.create(&ctx.tenant, &id, &doc).await {
            Ok(Some(version)) => {
                doc.insert(TABLE_VERSION_FIELD.into(), json!(version));
            }
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(dataset.id = %id, error = %err, "could not create the dataset's table; its first promotion creates it");
            }
        }
    }
    if let Err(err) = state.metastore().insert(&ctx.tenant, KIND, doc).await {
        if let Some(tables) = &tables
            && let Err(cleanup) = tables.delete(&ctx.tenant, &id).await
        {
            tracing::warn!(dataset.id = %id, error = %cleanup, "could not delete the table of a dataset that was not created");
        }
        return Err(metastore_error(err));
    }
    tracing::info!(dataset.id = %id, tenant.org = ctx.tenant.org(), tenant.sandbox = ctx.tenant.sandbox(), "dataset created");
    Ok(created(&state, &headers, KIND, &id))
}

async fn get_datasets(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(ids): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    get_objects(&state, &ctx, KIND, &ids, query.as_deref()).await
}

async fn put_dataset(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update_object(&state, &ctx, KIND, &id, &headers, body, UpdateMode::Put).await
}

async fn patch_dataset(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update_object(&state, &ctx, KIND, &id, &headers, body, UpdateMode::Patch).await
}

async fn patch_dataset_v2(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    update_object(
        &state,
        &ctx,
        KIND,
        &id,
        &headers,
        body,
        UpdateMode::DeepMergePatch,
    )
    .await
}

async fn delete_dataset(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (response, deleted) = delete_object_reporting(&state, &ctx, KIND, &id).await?;
    // Deleting a dataset deletes its table (spec §12).
    if deleted && let Some(tables) = state.tables() {
        match tables.delete(&ctx.tenant, &id).await {
            Ok(objects) => {
                tracing::info!(dataset.id = %id, objects, "dataset table deleted");
            }
            Err(err) => {
                tracing::warn!(dataset.id = %id, error = %err, "could not delete the dataset's table");
            }
        }
    }
    tracing::info!(dataset.id = %id, tenant.org = ctx.tenant.org(), "dataset delete handled");
    Ok(response)
}

/// `GET /dataSets/{id}/views/{viewId}/files`: the legacy form of the dataset's `files`
/// reference (spec §8 item 18).
async fn list_view_files(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((id, view_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = extract::id(SERVICE, &id)?;
    let view_id = extract::id(SERVICE, &view_id)?;
    let dataset = state
        .metastore()
        .get(&ctx.tenant, KIND, std::slice::from_ref(&id))
        .await
        .map_err(metastore_error)?;
    let Some(dataset) = dataset.first() else {
        return Err(ApiError::not_found(
            SERVICE,
            format!("dataset {id} does not exist in this sandbox"),
        ));
    };
    if catalog::dataset_view_id(dataset) != Some(view_id.as_str()) {
        return Err(ApiError::not_found(
            SERVICE,
            format!("dataset {id} has no view {view_id}"),
        ));
    }
    let mut query = query.unwrap_or_default();
    if !query.is_empty() {
        query.push('&');
    }
    query.push_str(&serde_urlencoded::to_string([("dataSetId", id.as_str())]).unwrap_or_default());
    list_objects(
        &state,
        &ctx,
        ObjectKind::DatasetFile,
        Some(&query),
        &headers,
    )
    .await
}

/// A dataset's `schemaRef.id` must name a schema of the same org and sandbox (spec §2.3).
pub(super) async fn check_schema_ref(
    state: &AppState,
    ctx: &RequestContext,
    doc: &lakeport_domain::Doc,
) -> Result<Option<lakeport_domain::Doc>, ApiError> {
    let Some(schema_id) = catalog::dataset_schema_id(doc) else {
        return Ok(None);
    };
    // An id no resource can have (empty, a control character) names no schema.
    let found = match ResourceId::parse(schema_id) {
        Ok(id) => state
            .metastore()
            .get_resource(&ctx.tenant, &id)
            .await
            .map_err(metastore_error)?,
        Err(_) => None,
    };
    let is_schema = found
        .as_ref()
        .and_then(lakeport_domain::xdm::registry::kind_of)
        == Some(lakeport_domain::xdm::registry::ResourceKind::Schema);
    if is_schema {
        Ok(found)
    } else {
        Err(ApiError::unknown_schema(format!(
            "schemaRef.id {schema_id:?} does not name a schema in this sandbox's Schema Registry; create it with POST /data/foundation/schemaregistry/tenant/schemas first"
        )))
    }
}

/// Returns a dataset's `classification`: its data behavior, from the behavior its schema's
/// class extends, and `managedBy: CUSTOMER`.
fn classification(schema: Option<&lakeport_domain::Doc>) -> Value {
    let extends = schema
        .and_then(|schema| schema.get("meta:extends"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |behavior: &str| extends.iter().any(|id| id.as_str() == Some(behavior));
    let behavior = if has("https://ns.adobe.com/xdm/data/time-series") {
        Some("time-series")
    } else if has("https://ns.adobe.com/xdm/data/adhoc") {
        Some("adhoc")
    } else if has("https://ns.adobe.com/xdm/data/record") {
        Some("record")
    } else {
        None
    };
    match behavior {
        Some(behavior) => json!({"dataBehavior": behavior, "managedBy": "CUSTOMER"}),
        None => json!({"managedBy": "CUSTOMER"}),
    }
}
