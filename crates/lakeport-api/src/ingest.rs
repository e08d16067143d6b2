//! The Batch Ingestion API (`/data/foundation/import`, spec §3): create a batch, upload
//! files (single `PUT` or chunked), preview them, and signal the batch.
//!
//! Upload handlers stream bodies into object storage and never parse them; every staged
//! file lives under a key with its own upload id, so a replacement or a crash never
//! damages bytes that were already acknowledged.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures::{StreamExt, TryStreamExt};
use lakeport_domain::catalog::{self, import::NewImportBatch};
use lakeport_domain::ids::{BatchId, DatasetId, new_ulid};
use lakeport_domain::ingest::{self, Chunk};
use lakeport_domain::now_millis;
use lakeport_domain::status::{BatchAction, BatchStatus};
use lakeport_metastore::{BatchFile, UploadLimits};
use lakeport_storage::{Key, StorageError, keys};
use rand::RngCore;
use serde_json::{Value, json};

use crate::AppState;
use crate::context::{RequestContext, origin};
use crate::error::{ApiError, Service};
use crate::extract;

const SERVICE: Service = Service::Ingest;

/// Parses uploaded files for `GET …/preview`; the binary wires in the Arrow-based
/// implementation so this crate never compiles Arrow.
pub trait Previewer: Send + Sync {
    /// Returns up to `request.rows` rows of an uploaded file as strings; `name` is the file's
    /// path in the batch.
    ///
    /// # Errors
    /// A message saying why the file cannot be parsed with the given options.
    fn preview(
        &self,
        name: &str,
        input: PreviewInput,
        request: &PreviewRequest,
    ) -> Result<PreviewTable, String>;
}

/// Where a previewed file is read from.
pub enum PreviewInput {
    /// A local file: in place, or a scratch copy of a remote Parquet object.
    File(lakeport_storage::ReadableFile),
    /// A JSON or CSV object of remote storage, read only as far as the preview needs.
    Stream(lakeport_storage::BlockingReader),
}

/// What to preview: the format options (shaped like a batch's `inputFormat`) and how many
/// rows.
#[derive(Debug, Clone, PartialEq)]
pub struct PreviewRequest {
    pub input_format: Value,
    pub rows: usize,
    /// The row limit (`ingest.max_row_bytes`): a larger JSON or CSV row fails the preview
    /// without being read into memory.
    pub max_row_bytes: usize,
    /// The most cell text this file's preview may hold: it stops after the row that reaches
    /// it.
    pub max_bytes: usize,
}

/// The most cell text one upload preview holds, over all its files: it stops after the row
/// that reaches it (so that 1,000 rows at the row limit cannot take a gigabyte).
pub const PREVIEW_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A preview: column names and rows of rendered values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreviewTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Returns the Import routes, relative to `/data/foundation/import`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/batches", post(create_batch))
        .route("/batches/{batch}", post(signal_batch))
        .route(
            "/batches/{batch}/datasets/{dataset}/files/{*path}",
            axum::routing::put(upload_file)
                .post(file_action)
                .patch(upload_chunk)
                .head(upload_progress),
        )
        .route("/batches/{batch}/datasets/{dataset}/preview", get(preview))
}

fn metastore_error(err: lakeport_metastore::MetastoreError) -> ApiError {
    ApiError::from_metastore(SERVICE, err)
}

fn storage_error(err: StorageError, limit: u64) -> ApiError {
    match err {
        StorageError::TooLarge { .. } => too_large(limit),
        StorageError::Body(reason) => ApiError::incomplete_body(format!(
            "the upload body could not be read to the end: {reason}"
        )),
        err => ApiError::from_storage(SERVICE, &err),
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError::upload_too_large(format!(
        "the body exceeds {limit} bytes; upload larger files in chunks (action=INITIALIZE, PATCH with Content-Range, action=COMPLETE)"
    ))
}

fn new_upload_id() -> String {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn limits(state: &AppState) -> UploadLimits {
    let config = state.ingest_config();
    UploadLimits {
        max_files: config.max_files_per_batch,
        max_batch_bytes: config.max_batch_bytes,
    }
}

/// `POST /batches`: creates a batch in `loading` and answers 201 with the bare batch
/// object, exactly as Adobe's "Create a batch" page shows (spec §3.1).
pub(crate) async fn create_batch(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let request =
        NewImportBatch::parse(body).map_err(|err| ApiError::from_document(SERVICE, &err))?;
    let batch_id = BatchId::from(new_ulid());
    let batch = state
        .metastore()
        .create_import_batch(&ctx.tenant, &request, &batch_id, &ctx.actor, now_millis())
        .await
        .map_err(metastore_error)?;
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

fn query_value(raw: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    Ok(extract::query_pairs(SERVICE, raw)?
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value))
}

fn unknown_action(value: Option<&str>, allowed: &str) -> ApiError {
    let detail = match value {
        None => format!("the action query parameter is required: action={allowed}"),
        Some(value) => format!("action {value:?} is not one of {allowed}"),
    };
    ApiError::invalid_action(detail)
}

/// `POST /batches/{batch}?action=COMPLETE|ABORT|FAIL|REVERT` (spec §3.7): 200, empty body.
pub(crate) async fn signal_batch(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(batch): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let batch_id = extract::batch_id(SERVICE, &batch)?;
    let action_text = query_value(query.as_deref(), "action")?;
    let allowed = "COMPLETE, ABORT, FAIL or REVERT";
    let action: BatchAction = action_text
        .as_deref()
        .ok_or_else(|| unknown_action(None, allowed))?
        .parse()
        .map_err(|_| unknown_action(action_text.as_deref(), allowed))?;
    // REVERT's delayed clean-up is enqueued by the metastore in the signal's transaction.
    let cleanup_delay_ms = i64::try_from(
        state
            .ingest_config()
            .deleted_data_grace_secs
            .saturating_mul(1000),
    )
    .unwrap_or(i64::MAX);
    let batch = state
        .metastore()
        .signal_batch(
            &ctx.tenant,
            &batch_id,
            action,
            &ctx.actor,
            now_millis(),
            cleanup_delay_ms,
        )
        .await
        .map_err(metastore_error)?;
    tracing::info!(
        batch.id = %batch_id,
        batch.action = %action,
        batch.status = catalog::batch_status(&batch).map(BatchStatus::as_str).unwrap_or_default(),
        tenant.org = ctx.tenant.org(),
        "batch signalled"
    );
    Ok(StatusCode::OK.into_response())
}

/// The batch, dataset and file path of a file route, checked.
struct FileTarget {
    batch_id: BatchId,
    dataset_id: DatasetId,
    path: String,
}

fn file_target(batch: &str, dataset: &str, path: &str) -> Result<FileTarget, ApiError> {
    let batch_id = extract::batch_id(SERVICE, batch)?;
    let dataset_id = extract::dataset_id(SERVICE, dataset)?;
    keys::check_file_path(path).map_err(|err| ApiError::invalid_file_path(err.to_string()))?;
    Ok(FileTarget {
        batch_id,
        dataset_id,
        path: path.to_owned(),
    })
}

fn require_octet_stream(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let media_type = content_type.map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    if media_type.as_deref() == Some("application/octet-stream") {
        Ok(())
    } else {
        Err(ApiError::upload_media_type(format!(
            "file bytes must be sent with Content-Type: application/octet-stream, not {}",
            content_type.map_or_else(|| "no Content-Type".to_owned(), |v| format!("{v:?}"))
        )))
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers.get("content-length")?.to_str().ok()?.parse().ok()
}

impl FileTarget {
    fn staged_key(&self, ctx: &RequestContext, upload_id: &str) -> Key {
        keys::staged_file(
            ctx.tenant.org(),
            ctx.tenant.sandbox(),
            &self.batch_id,
            upload_id,
        )
    }

    fn upload_prefix(&self, ctx: &RequestContext, upload_id: &str) -> Key {
        keys::staged_upload(
            ctx.tenant.org(),
            ctx.tenant.sandbox(),
            &self.batch_id,
            upload_id,
        )
    }

    fn chunks_prefix(&self, ctx: &RequestContext, upload_id: &str) -> Key {
        keys::chunks(
            ctx.tenant.org(),
            ctx.tenant.sandbox(),
            &self.batch_id,
            upload_id,
        )
    }
}

/// Deletes objects that are no longer referenced; failures only leave garbage behind that
/// the batch clean-up removes later.
async fn discard(state: &AppState, prefix: &Key) {
    if let Err(err) = state.storage().delete_prefix(prefix).await {
        tracing::warn!(key = %prefix, error = %err, "could not delete superseded upload objects");
    }
}

/// `PUT /batches/{b}/datasets/{d}/files/{path}` (spec §3.2): 200, empty body.
pub(crate) async fn upload_file(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((batch, dataset, path)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let target = file_target(&batch, &dataset, &path)?;
    require_octet_stream(&headers)?;
    let limit = state.ingest_config().max_put_bytes;
    if content_length(&headers).is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    state
        .metastore()
        .upload_target(&ctx.tenant, &target.batch_id, &target.dataset_id)
        .await
        .map_err(metastore_error)?;
    let upload_id = new_upload_id();
    let key = target.staged_key(&ctx, &upload_id);
    let watch = match state.upload_watcher() {
        Some(watcher) => {
            watcher
                .watch(lakeport_storage::StartingUpload {
                    org: ctx.tenant.org().to_owned(),
                    sandbox: ctx.tenant.sandbox().to_owned(),
                    batch_id: target.batch_id.to_string(),
                    dataset_id: target.dataset_id.to_string(),
                    path: target.path.clone(),
                    upload_id: upload_id.clone(),
                    declared_bytes: content_length(&headers),
                })
                .await
        }
        None => None,
    };
    let size = state
        .storage()
        .put_stream_watched(
            &key,
            body.into_data_stream(),
            limit,
            content_length(&headers),
            watch,
        )
        .await
        .map_err(|err| storage_error(err, limit))?;
    let recorded = state
        .metastore()
        .record_file(
            &ctx.tenant,
            &target.batch_id,
            &target.dataset_id,
            &target.path,
            &upload_id,
            size,
            limits(&state),
        )
        .await;
    match recorded {
        Ok(previous) => {
            if let Some(previous) = previous {
                discard(&state, &target.upload_prefix(&ctx, &previous)).await;
                discard(&state, &target.chunks_prefix(&ctx, &previous)).await;
            }
        }
        Err(err) => {
            discard(&state, &target.upload_prefix(&ctx, &upload_id)).await;
            return Err(metastore_error(err));
        }
    }
    tracing::info!(batch.id = %target.batch_id, file.path = %target.path, size_bytes = size, "file uploaded");
    Ok(StatusCode::OK.into_response())
}

fn file_json(path: &str, size: u64) -> Value {
    json!({"name": path, "sizeInBytes": size})
}

fn range_header(response: &mut Response, end: Option<u64>) {
    if let Some(end) = end
        && let Ok(value) = HeaderValue::from_str(&format!("bytes=0-{end}"))
    {
        response.headers_mut().insert("range", value);
    }
}

/// `POST …/files/{path}?action=INITIALIZE|COMPLETE` (spec §3.3).
async fn file_action(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((batch, dataset, path)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let target = file_target(&batch, &dataset, &path)?;
    let action = query_value(query.as_deref(), "action")?;
    match action.as_deref().map(str::to_ascii_uppercase).as_deref() {
        Some("INITIALIZE") => initialize_upload(&state, &ctx, &target).await,
        Some("COMPLETE") => complete_upload(&state, &ctx, &target).await,
        _ => Err(unknown_action(action.as_deref(), "INITIALIZE or COMPLETE")),
    }
}

async fn initialize_upload(
    state: &AppState,
    ctx: &RequestContext,
    target: &FileTarget,
) -> Result<Response, ApiError> {
    let upload_id = new_upload_id();
    let previous = state
        .metastore()
        .start_chunked_upload(
            &ctx.tenant,
            &target.batch_id,
            &target.dataset_id,
            &target.path,
            &upload_id,
        )
        .await
        .map_err(metastore_error)?;
    if let Some(previous) = previous {
        discard(state, &target.chunks_prefix(ctx, &previous)).await;
    }
    tracing::info!(batch.id = %target.batch_id, file.path = %target.path, "chunked upload initialized");
    Ok((StatusCode::CREATED, Json(file_json(&target.path, 0))).into_response())
}

async fn chunked_file(
    state: &AppState,
    ctx: &RequestContext,
    target: &FileTarget,
) -> Result<(String, Vec<Chunk>), ApiError> {
    let file = state
        .metastore()
        .batch_file(&ctx.tenant, &target.batch_id, &target.path)
        .await
        .map_err(metastore_error)?;
    match file {
        Some(BatchFile {
            upload_id,
            chunks: Some(chunks),
            ..
        }) => Ok((upload_id, chunks)),
        _ => Err(metastore_error(
            lakeport_metastore::MetastoreError::UploadNotStarted {
                batch_id: target.batch_id.to_string(),
                path: target.path.clone(),
            },
        )),
    }
}

async fn complete_upload(
    state: &AppState,
    ctx: &RequestContext,
    target: &FileTarget,
) -> Result<Response, ApiError> {
    state
        .metastore()
        .upload_target(&ctx.tenant, &target.batch_id, &target.dataset_id)
        .await
        .map_err(metastore_error)?;
    let (upload_id, chunks) = chunked_file(state, ctx, target).await?;
    let total = ingest::check_tiling(&chunks)
        .map_err(|reason| ApiError::chunks_do_not_tile(format!("{}: {reason}", target.path)))?;
    // Stitch the chunks, in order, into one staged file under a fresh upload id.
    let stitched_id = new_upload_id();
    let key = target.staged_key(ctx, &stitched_id);
    let storage = state.storage().clone();
    let chunk_keys: Vec<Key> = chunks
        .iter()
        .map(|c| {
            keys::chunk(
                ctx.tenant.org(),
                ctx.tenant.sandbox(),
                &target.batch_id,
                &upload_id,
                c.first,
                c.last,
            )
        })
        .collect();
    let body = futures::stream::iter(chunk_keys)
        .then(move |chunk_key| {
            let storage = storage.clone();
            async move { storage.get_stream(&chunk_key, None).await }
        })
        .try_flatten();
    let size = state
        .storage()
        .put_stream(&key, body, u64::MAX)
        .await
        .map_err(|err| ApiError::from_storage(SERVICE, &err))?;
    debug_assert_eq!(size, total, "stitched size equals the tiled total");
    let recorded = state
        .metastore()
        .record_file(
            &ctx.tenant,
            &target.batch_id,
            &target.dataset_id,
            &target.path,
            &stitched_id,
            size,
            limits(state),
        )
        .await;
    match recorded {
        Ok(_) => discard(state, &target.chunks_prefix(ctx, &upload_id)).await,
        Err(err) => {
            discard(state, &target.upload_prefix(ctx, &stitched_id)).await;
            return Err(metastore_error(err));
        }
    }
    tracing::info!(batch.id = %target.batch_id, file.path = %target.path, size_bytes = size, "chunked upload completed");
    Ok(Json(file_json(&target.path, size)).into_response())
}

/// `PATCH …/files/{path}` with `Content-Range` (spec §3.4): 200 with the File JSON.
async fn upload_chunk(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((batch, dataset, path)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let target = file_target(&batch, &dataset, &path)?;
    require_octet_stream(&headers)?;
    let bad_range = |detail: String| ApiError::invalid_content_range(detail);
    let header = headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            bad_range("a chunk needs Content-Range: bytes <first>-<last>[/<total>]".to_owned())
        })?;
    let chunk = ingest::parse_content_range(header).map_err(bad_range)?;
    let max_file = state.ingest_config().max_batch_bytes;
    if chunk.last >= max_file {
        return Err(ApiError::chunk_out_of_range(format!(
            "{header:?} ends at byte {}; a file in a batch holds at most {max_file} bytes",
            chunk.last
        )));
    }
    let limit = state.ingest_config().max_chunk_bytes;
    if chunk.len() > limit {
        return Err(too_large(limit));
    }
    state
        .metastore()
        .upload_target(&ctx.tenant, &target.batch_id, &target.dataset_id)
        .await
        .map_err(metastore_error)?;
    let (upload_id, _) = chunked_file(&state, &ctx, &target).await?;
    let key = keys::chunk(
        ctx.tenant.org(),
        ctx.tenant.sandbox(),
        &target.batch_id,
        &upload_id,
        chunk.first,
        chunk.last,
    );
    let size = match state
        .storage()
        .put_stream_expecting(
            &key,
            body.into_data_stream(),
            chunk.len(),
            Some(chunk.len()),
        )
        .await
    {
        Ok(size) => size,
        Err(StorageError::TooLarge { .. }) => {
            return Err(bad_range(format!(
                "the body is longer than the {} bytes of {header:?}",
                chunk.len()
            )));
        }
        Err(err) => return Err(storage_error(err, limit)),
    };
    if size != chunk.len() {
        discard(&state, &key).await;
        return Err(bad_range(format!(
            "the body has {size} bytes but {header:?} announces {}",
            chunk.len()
        )));
    }
    let file = state
        .metastore()
        .record_chunk(
            &ctx.tenant,
            &target.batch_id,
            &target.dataset_id,
            &target.path,
            &upload_id,
            chunk,
        )
        .await
        .map_err(metastore_error)?;
    let chunks = file.chunks.unwrap_or_default();
    let mut response = Json(file_json(&target.path, file.size)).into_response();
    range_header(&mut response, ingest::contiguous_end(&chunks));
    Ok(response)
}

/// `HEAD …/files/{path}` (spec §3.5): the contiguous prefix received, in `Range`.
async fn upload_progress(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((batch, dataset, path)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let target = file_target(&batch, &dataset, &path)?;
    let file = state
        .metastore()
        .batch_file(&ctx.tenant, &target.batch_id, &target.path)
        .await
        .map_err(metastore_error)?;
    let Some(file) = file else {
        return Err(ApiError::not_found(
            SERVICE,
            format!(
                "nothing was uploaded to {} in batch {}",
                target.path, target.batch_id
            ),
        ));
    };
    let end = match &file.chunks {
        Some(chunks) => ingest::contiguous_end(chunks),
        None => file.size.checked_sub(1),
    };
    let mut response = StatusCode::OK.into_response();
    range_header(&mut response, end);
    Ok(response)
}

/// `GET /batches/{b}/datasets/{d}/preview` (spec §3.6).
async fn preview(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((batch, dataset)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let batch_id = extract::batch_id(SERVICE, &batch)?;
    let dataset_id = extract::dataset_id(SERVICE, &dataset)?;
    let (input_format, rows) = preview_options(query.as_deref())?;
    check_batch_of_dataset(&state, &ctx, &batch_id, &dataset_id).await?;
    let Some(previewer) = state.previewer().cloned() else {
        return Err(ApiError::previewer_missing());
    };
    let table = preview_files(&state, &ctx, previewer, &batch_id, &input_format, rows).await?;
    Ok(Json(render_preview(input_format, &table)).into_response())
}

/// Reads the preview's query: the format options (shaped like a batch's `inputFormat`)
/// and how many rows (`nrow`: 100 by default, at most 1,000).
fn preview_options(query: Option<&str>) -> Result<(Value, usize), ApiError> {
    let params = extract::query_pairs(SERVICE, query)?;
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, v)| v.clone())
    };
    let format = param("format")
        .ok_or_else(|| {
            ApiError::invalid_query(
                SERVICE,
                "the format query parameter is required: json, parquet or csv",
            )
        })?
        .to_ascii_lowercase();
    if !matches!(format.as_str(), "json" | "parquet" | "csv") {
        return Err(ApiError::unsupported_preview_format(format!(
            "format {format:?} cannot be previewed; use json, parquet or csv"
        )));
    }
    let bool_param = |name: &str, default: bool| -> Result<bool, ApiError> {
        match param(name).map(|v| v.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" => Ok(false),
            Some(v) => Err(ApiError::invalid_query(
                SERVICE,
                format!("query parameter {name:?}: {v:?} is not true or false"),
            )),
        }
    };
    let rows = match param("nrow") {
        None => 100,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(0) => 100,
            Ok(n) => n.min(1000),
            Err(_) => {
                return Err(ApiError::invalid_query(
                    SERVICE,
                    format!("query parameter \"nrow\": {v:?} is not a non-negative integer"),
                ));
            }
        },
    };
    let mut input_format = json!({"format": format, "isMultiLineJson": bool_param("isMultiLineJson", false)?,
                                  "header": bool_param("header", true)?});
    for (name, default) in [
        ("delimiter", ","),
        ("quote", "\""),
        ("escape", "\\"),
        ("charset", "UTF-8"),
    ] {
        input_format[name] = json!(param(name).unwrap_or_else(|| default.to_owned()));
    }
    Ok((input_format, rows))
}

/// A 404 unless the batch exists and belongs to the dataset.
async fn check_batch_of_dataset(
    state: &AppState,
    ctx: &RequestContext,
    batch_id: &BatchId,
    dataset_id: &DatasetId,
) -> Result<(), ApiError> {
    let batch_doc = state
        .metastore()
        .get(
            &ctx.tenant,
            lakeport_domain::query::ObjectKind::Batch,
            &[batch_id.to_string()],
        )
        .await
        .map_err(metastore_error)?;
    let Some(batch_doc) = batch_doc.first() else {
        return Err(ApiError::not_found(
            SERVICE,
            format!("batch {batch_id} does not exist in this sandbox"),
        ));
    };
    if catalog::batch_dataset_id(batch_doc) != Some(dataset_id.as_str()) {
        return Err(ApiError::not_found(
            SERVICE,
            format!("batch {batch_id} has no dataset {dataset_id}"),
        ));
    }
    Ok(())
}

/// Previews the batch's uploaded files in order until `rows` rows or
/// [`PREVIEW_MAX_BYTES`] of cell text are reached.
async fn preview_files(
    state: &AppState,
    ctx: &RequestContext,
    previewer: Arc<dyn Previewer>,
    batch_id: &BatchId,
    input_format: &Value,
    rows: usize,
) -> Result<PreviewTable, ApiError> {
    let files = state
        .metastore()
        .batch_files(&ctx.tenant, batch_id)
        .await
        .map_err(metastore_error)?;
    // Parquet needs its footer, at the end: a remote Parquet file is copied, others streamed.
    let is_parquet = input_format["format"]
        .as_str()
        .is_some_and(|format| format.eq_ignore_ascii_case("parquet"));
    let mut table = PreviewTable::default();
    let mut budget = PREVIEW_MAX_BYTES;
    for file in files.iter().filter(|f| f.chunks.is_none()) {
        if table.rows.len() >= rows || budget == 0 {
            break;
        }
        let key = keys::staged_file(
            ctx.tenant.org(),
            ctx.tenant.sandbox(),
            batch_id,
            &file.upload_id,
        );
        let opened = if state.storage().is_local() || is_parquet {
            state
                .storage()
                .readable_file(&key, state.scratch_dir())
                .await
                .map(PreviewInput::File)
        } else {
            state
                .storage()
                .blocking_reader(&key)
                .await
                .map(|(reader, _)| PreviewInput::Stream(reader))
        };
        let input = match opened {
            Ok(input) => input,
            Err(StorageError::NotFound { .. }) => continue,
            Err(err) => return Err(ApiError::from_storage(SERVICE, &err)),
        };
        let request = PreviewRequest {
            input_format: input_format.clone(),
            rows: rows - table.rows.len(),
            max_row_bytes: usize::try_from(state.ingest_config().max_row_bytes)
                .unwrap_or(usize::MAX),
            max_bytes: budget,
        };
        let part = run_preview(previewer.clone(), file.path.clone(), input, request)
            .await
            .map_err(|reason| ApiError::preview_failed(format!("{}: {reason}", file.path)))?;
        let bytes: usize = part.rows.iter().flatten().flatten().map(String::len).sum();
        budget = budget.saturating_sub(bytes);
        merge_preview(&mut table, part);
    }
    Ok(table)
}

/// The preview's answer: the format options, the columns and the rows keyed by column id.
fn render_preview(input_format: Value, table: &PreviewTable) -> Value {
    let columns: Vec<Value> = table
        .columns
        .iter()
        .enumerate()
        .map(|(cid, name)| json!({"cid": cid.to_string(), "name": name}))
        .collect();
    let rendered: Vec<Value> = table
        .rows
        .iter()
        .map(|row| {
            let mut object = serde_json::Map::new();
            for (cid, value) in row.iter().enumerate() {
                object.insert(
                    cid.to_string(),
                    value.clone().map_or(Value::Null, Value::String),
                );
            }
            Value::Object(object)
        })
        .collect();
    json!({"formatParams": input_format, "preview": {"columns": columns, "rows": rendered}})
}

async fn run_preview(
    previewer: Arc<dyn Previewer>,
    name: String,
    input: PreviewInput,
    request: PreviewRequest,
) -> Result<PreviewTable, String> {
    tokio::task::spawn_blocking(move || previewer.preview(&name, input, &request))
        .await
        .map_err(|err| format!("the preview task failed: {err}"))?
}

/// Appends a file's preview, aligning its columns with those seen so far.
fn merge_preview(table: &mut PreviewTable, part: PreviewTable) {
    let positions: Vec<usize> = part
        .columns
        .iter()
        .map(|name| match table.columns.iter().position(|c| c == name) {
            Some(index) => index,
            None => {
                table.columns.push(name.clone());
                table.columns.len() - 1
            }
        })
        .collect();
    for row in part.rows {
        let mut aligned = vec![None; table.columns.len()];
        for (value, position) in row.into_iter().zip(&positions) {
            aligned[*position] = value;
        }
        table.rows.push(aligned);
    }
    for row in &mut table.rows {
        row.resize(table.columns.len(), None);
    }
}
