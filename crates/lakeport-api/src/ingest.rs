//! The Batch Ingestion API (`/data/foundation/import`, spec §3). This issue provides
//! batch creation; uploads and signals build on it.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use lakeport_domain::catalog::import::NewImportBatch;
use lakeport_domain::ids::new_ulid;
use lakeport_domain::now_millis;

use crate::AppState;
use crate::context::{RequestContext, origin};
use crate::error::{ApiError, Service};
use crate::extract;

const SERVICE: Service = Service::Ingest;

/// Returns the Import routes, relative to `/data/foundation/import`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/batches", post(create_batch))
}

/// `POST /batches`: creates a batch in `loading` and answers 201 with the bare batch
/// object, exactly as Adobe's "Create a batch" page shows (spec §3.1).
async fn create_batch(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let request =
        NewImportBatch::parse(body).map_err(|err| ApiError::from_document(SERVICE, &err))?;
    let batch_id = new_ulid();
    let batch = state
        .metastore()
        .create_import_batch(&ctx.tenant, &request, &batch_id, &ctx.actor, now_millis())
        .await
        .map_err(|err| ApiError::from_metastore(SERVICE, err))?;
    tracing::info!(
        batch.id = %batch_id,
        dataset.id = %request.dataset_id,
        tenant.org = ctx.tenant.org(),
        tenant.sandbox = ctx.tenant.sandbox(),
        "batch created"
    );
    let location = format!(
        "{}/data/foundation/catalog/batches/{batch_id}",
        origin(&state, &headers)
    );
    let mut response = (StatusCode::CREATED, Json(batch)).into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert("location", value);
    }
    Ok(response)
}
