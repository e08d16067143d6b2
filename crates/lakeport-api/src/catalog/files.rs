//! `/dataSetFiles` (spec §2.3 items 19–20). Files appear once ingestion promotes batches.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use lakeport_domain::query::ObjectKind;

use super::{get_objects, list_objects};
use crate::AppState;
use crate::context::RequestContext;
use crate::error::ApiError;

const KIND: ObjectKind = ObjectKind::DatasetFile;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/dataSetFiles", get(list_dataset_files))
        .route("/dataSetFiles/{id}", get(get_dataset_files))
}

async fn list_dataset_files(
    State(state): State<AppState>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list_objects(&state, &ctx, KIND, query.as_deref(), &headers).await
}

async fn get_dataset_files(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(ids): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    get_objects(&state, &ctx, KIND, &ids, query.as_deref()).await
}
