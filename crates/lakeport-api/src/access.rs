//! The Data Access API (`/data/foundation/export`, spec §4): list and download the
//! dataset files of promoted batches, the rejected rows (`failed/`) and diagnostics
//! (`meta/`) of processed batches, and preview a dataset's rows.
//!
//! What exists comes from the metastore: dataset files with their storage locations, and
//! each batch's diagnostics root. Bytes are streamed from object storage, never buffered;
//! `failed/` and `meta/` are listed under the recorded root only. Diagnostics expire
//! `ingest.diagnostics_retention_secs` after the batch's `completed` time: from then on they
//! answer 404 here, whether or not the worker's sweep has deleted them yet.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakeport_domain::catalog;
use lakeport_domain::ids::{BatchId, DatasetId};
use lakeport_domain::query::{ListQuery, ObjectKind, PageLimits};
use lakeport_domain::{Doc, now_millis};
use lakeport_metastore::StoredDatasetFile;
use lakeport_storage::{Key, ObjectInfo, StorageError, keys};
use serde_json::{Value, json};

use crate::AppState;
use crate::context::{RequestContext, origin, rfc3339};
use crate::error::{ApiError, Service};
use crate::extract;

const SERVICE: Service = Service::Access;

/// Where these routes are mounted; absolute links start with the origin and this.
pub const BASE_PATH: &str = "/data/foundation/export";

/// Largest (and default) page of a listing (spec §1.8).
const MAX_PAGE: u64 = 100;

/// Rows returned by a dataset preview (spec §4 item 6).
const PREVIEW_ROWS: usize = 100;

/// Reads rows of the lake's Parquet files for `GET /datasets/{id}/preview`; the binary
/// wires in the Arrow-based implementation so this crate never compiles Arrow.
pub trait RowReader: Send + Sync {
    /// Returns up to `limit` rows of a local Parquet file as JSON objects, nested XDM
    /// objects as nested JSON; `name` is the file name used in error messages.
    ///
    /// # Errors
    /// A message saying why the file cannot be read.
    fn rows(&self, name: &str, file: &std::path::Path, limit: usize) -> Result<Vec<Value>, String>;
}

/// Marks a file download so the gzip layer leaves it alone: the body must keep its
/// `Content-Length` and `Accept-Ranges`, and ranges address the stored bytes.
#[derive(Debug, Clone, Copy)]
pub struct Uncompressed;

/// Returns the Data Access routes, relative to `/data/foundation/export`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/batches/{batch}/files", get(list_batch_files))
        .route("/batches/{batch}/failed", get(get_failed))
        .route("/batches/{batch}/meta", get(get_meta))
        .route("/files/{file}", get(get_file).head(head_file))
        .route("/datasets/{dataset}/preview", get(preview_dataset))
        .route("/datasets/{dataset}/table", get(list_table_files))
        .route("/datasets/{dataset}/table/{*path}", get(get_table_file))
}

fn metastore_error(err: lakeport_metastore::MetastoreError) -> ApiError {
    ApiError::from_metastore(SERVICE, err)
}

fn not_found(detail: impl Into<String>) -> ApiError {
    ApiError::not_found(SERVICE, detail)
}

fn storage_error(err: StorageError, what: &str) -> ApiError {
    match err {
        StorageError::NotFound { .. } => not_found(format!("{what} does not exist")),
        err => ApiError::from_storage(SERVICE, &err),
    }
}

/// The controls of a Data Access call: paging and the optional `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AccessQuery {
    start: u64,
    limit: u64,
    /// `None` when absent or empty.
    path: Option<String>,
}

/// Parses `start` (alias `offset`), `limit` (1–100, default 100; larger values are
/// clamped like Catalog's, spec §8 item 22) and `path`; other parameters are ignored.
fn access_query(raw: Option<&str>) -> Result<AccessQuery, ApiError> {
    let mut query = AccessQuery {
        start: 0,
        limit: MAX_PAGE,
        path: None,
    };
    for (name, value) in extract::query_pairs(SERVICE, raw)? {
        match name.as_str() {
            "start" | "offset" => {
                query.start = digits(value.trim()).ok_or_else(|| {
                    ApiError::invalid_query(
                        SERVICE,
                        format!("query parameter {name:?}: {value:?} is not a non-negative integer offset"),
                    )
                })?;
            }
            "limit" => {
                let limit = digits(value.trim()).filter(|limit| *limit >= 1).ok_or_else(|| {
                    ApiError::invalid_query(
                        SERVICE,
                        format!("query parameter \"limit\": {value:?} is not an integer from 1 to {MAX_PAGE}"),
                    )
                })?;
                query.limit = limit.min(MAX_PAGE);
            }
            "path" => query.path = Some(value).filter(|path| !path.is_empty()),
            _ => {}
        }
    }
    Ok(query)
}

/// Parses a non-empty run of ASCII digits (no sign, no spaces).
fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Percent-encodes one path segment of a link (ids are opaque client strings).
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Returns `base?name=value&…` with the values form-encoded (`/` becomes `%2F`).
fn with_query(base: &str, pairs: &[(&str, String)]) -> String {
    let encoded = serde_urlencoded::to_string(pairs).expect("string pairs always encode");
    format!("{base}?{encoded}")
}

/// Wraps a complete listing in the envelope of spec §4: the requested page of `data`,
/// `_page.count` = every entry, and `_links` (`page`, and `next` while more entries
/// exist) whenever the listing does not fit one page. `fixed` are query parameters the
/// paging links keep (`path` of a `meta` folder).
fn envelope(items: Vec<Value>, query: &AccessQuery, base: &str, fixed: &[(&str, String)]) -> Value {
    let count = items.len() as u64;
    let page: Vec<Value> = items
        .into_iter()
        .skip(usize::try_from(query.start).unwrap_or(usize::MAX))
        .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
        .collect();
    let mut body = json!({"data": page, "_page": {"limit": query.limit, "count": count}});
    let more = query.start.saturating_add(query.limit) < count;
    if more || query.start > 0 {
        let href = |start: u64| {
            let mut pairs = fixed.to_vec();
            pairs.push(("start", start.to_string()));
            pairs.push(("limit", query.limit.to_string()));
            with_query(base, &pairs)
        };
        let mut links = json!({"page": {"href": href(query.start), "templated": true}});
        if more {
            links["next"] = json!({"href": href(query.start + query.limit)});
        }
        body["_links"] = links;
    }
    body
}

/// A piece of a name for natural ordering (`part-2` before `part-10`).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum NamePiece<'a> {
    Text(&'a str),
    /// Digits without leading zeros, compared by length first.
    Number(usize, &'a str),
}

fn name_pieces(name: &str) -> Vec<NamePiece<'_>> {
    let mut pieces = Vec::new();
    let mut rest = name;
    while let Some(first) = rest.chars().next() {
        let numeric = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != numeric)
            .unwrap_or(rest.len());
        let (piece, tail) = rest.split_at(end);
        pieces.push(if numeric {
            let trimmed = piece.trim_start_matches('0');
            NamePiece::Number(trimmed.len(), trimmed)
        } else {
            NamePiece::Text(piece)
        });
        rest = tail;
    }
    pieces
}

/// Orders names naturally: digit runs compare as numbers.
fn natural_order(a: &str, b: &str) -> Ordering {
    name_pieces(a).cmp(&name_pieces(b)).then_with(|| a.cmp(b))
}

/// Renders a number (or numeric string) as the string Data Access uses (spec §1.4).
fn as_text(value: Option<&Value>) -> Value {
    match value {
        Some(Value::Number(number)) => Value::String(number.to_string()),
        Some(Value::String(text)) => Value::String(text.clone()),
        _ => Value::Null,
    }
}

async fn load_batch(
    state: &AppState,
    ctx: &RequestContext,
    batch_id: &str,
) -> Result<Doc, ApiError> {
    state
        .metastore()
        .get(&ctx.tenant, ObjectKind::Batch, &[batch_id.to_owned()])
        .await
        .map_err(metastore_error)?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(format!("batch {batch_id} does not exist in this sandbox")))
}

fn parse_key(location: &str) -> Result<Key, ApiError> {
    Key::parse(location).map_err(|err| ApiError::internal(SERVICE, &err))
}

/// `GET /batches/{batchId}/files` (spec §4 item 1): the valid dataset files of a batch.
async fn list_batch_files(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(batch): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let batch_id = extract::batch_id(SERVICE, &batch)?;
    let query = access_query(raw.as_deref())?;
    load_batch(&state, &ctx, &batch_id).await?;
    let mut files: Vec<StoredDatasetFile> = state
        .metastore()
        .batch_dataset_files(&ctx.tenant, &batch_id)
        .await
        .map_err(metastore_error)?
        .into_iter()
        .filter(is_downloadable)
        .collect();
    files.sort_by(|a, b| natural_order(file_id(a), file_id(b)));
    let origin = origin(&state, &headers);
    let items = files
        .iter()
        .map(|file| {
            let doc = &file.doc;
            json!({
                "dataSetFileId": file_id(file),
                "dataSetViewId": doc.get("dataSetViewId").cloned().unwrap_or(Value::Null),
                "version": doc.get("version").cloned().unwrap_or(Value::Null),
                "created": as_text(doc.get("created")),
                "updated": as_text(doc.get("updated")),
                "records": as_text(doc.get("records")),
                "size": as_text(doc.get("size")),
                "isValid": true,
                "_links": {"self": {"href": format!("{origin}{BASE_PATH}/files/{}", segment(file_id(file)))}},
            })
        })
        .collect();
    let base = format!("{origin}{BASE_PATH}/batches/{}/files", segment(&batch_id));
    Ok(Json(envelope(items, &query, &base, &[])).into_response())
}

fn file_id(file: &StoredDatasetFile) -> &str {
    file.doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A dataset file is served while it is valid (its batch was not reverted or replaced)
/// and was written by promotion (client-registered Catalog files have no bytes here).
fn is_downloadable(file: &StoredDatasetFile) -> bool {
    catalog::file_is_valid(&file.doc) && !file.location.is_empty()
}

/// A dataset file that can be downloaded: its storage key and physical file name.
struct PhysicalFile {
    key: Key,
    name: String,
}

async fn physical_file(
    state: &AppState,
    ctx: &RequestContext,
    file_id: &str,
) -> Result<PhysicalFile, ApiError> {
    let stored = state
        .metastore()
        .dataset_file(&ctx.tenant, file_id)
        .await
        .map_err(metastore_error)?
        .filter(is_downloadable)
        .ok_or_else(|| {
            not_found(format!(
                "dataset file {file_id} does not exist in this sandbox or is no longer valid"
            ))
        })?;
    let key = parse_key(&stored.location)?;
    let name = key.filename().unwrap_or_default().to_owned();
    Ok(PhysicalFile { key, name })
}

/// `GET /files/{dataSetFileId}` (spec §4 item 2): without `path`, the listing of the
/// physical file; with `path=<name>`, its bytes.
async fn get_file(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file_id = extract::id(SERVICE, &file)?;
    let query = access_query(raw.as_deref())?;
    let physical = physical_file(&state, &ctx, &file_id).await?;
    match &query.path {
        None => {
            let what = format!("the data of dataset file {file_id}");
            let length = state
                .storage()
                .size(&physical.key)
                .await
                .map_err(|err| storage_error(err, &what))?;
            let base = format!(
                "{}{BASE_PATH}/files/{}",
                origin(&state, &headers),
                segment(&file_id)
            );
            let item = json!({
                "name": physical.name,
                "length": length.to_string(),
                "_links": {"self": {"href": with_query(&base, &[("path", physical.name.clone())])}},
            });
            Ok(Json(envelope(vec![item], &query, &base, &[])).into_response())
        }
        Some(path) if *path == physical.name => {
            download(
                &state,
                &physical.key,
                &physical.name,
                &headers,
                Request::Get,
            )
            .await
        }
        Some(path) => Err(not_found(format!(
            "dataset file {file_id} has no file {path:?}; it holds {:?}",
            physical.name
        ))),
    }
}

/// `HEAD /files/{dataSetFileId}?path=<name>` (spec §4 item 3): the download's headers.
async fn head_file(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(file): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let file_id = extract::id(SERVICE, &file)?;
    let query = access_query(raw.as_deref())?;
    let Some(path) = &query.path else {
        return Err(ApiError::path_missing(format!(
            "HEAD needs the file name: /files/{file_id}?path=<name>; GET /files/{file_id} lists it"
        )));
    };
    let physical = physical_file(&state, &ctx, &file_id).await?;
    if *path != physical.name {
        return Err(not_found(format!(
            "dataset file {file_id} has no file {path:?}; it holds {:?}",
            physical.name
        )));
    }
    download(
        &state,
        &physical.key,
        &physical.name,
        &headers,
        Request::Head,
    )
    .await
}

/// Whether a download sends the bytes or only the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Get,
    Head,
}

/// The part of a file a `Range` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteRange {
    /// No usable `Range`: the whole file, 200.
    Full,
    /// Bytes `first..=last`, 206.
    Part { first: u64, last: u64 },
    /// The range starts at or past the end, 416.
    Unsatisfiable,
}

/// Interprets a `Range` header against a file of `total` bytes (RFC 9110 §14): `a-b`,
/// `a-` and `-n`; an end past the file is clamped. Headers we cannot use (other units,
/// several ranges, `b < a`, malformed numbers) are ignored, which RFC 9110 allows.
fn byte_range(header: Option<&str>, total: u64) -> ByteRange {
    let Some(header) = header.map(str::trim) else {
        return ByteRange::Full;
    };
    let Some((unit, spec)) = header.split_once('=') else {
        return ByteRange::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return ByteRange::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last n bytes.
        let Some(length) = digits(last) else {
            return ByteRange::Full;
        };
        if length == 0 || total == 0 {
            return ByteRange::Unsatisfiable;
        }
        return ByteRange::Part {
            first: total.saturating_sub(length),
            last: total - 1,
        };
    }
    let Some(first) = digits(first) else {
        return ByteRange::Full;
    };
    let last = if last.is_empty() {
        None
    } else {
        match digits(last) {
            Some(last) if last >= first => Some(last),
            _ => return ByteRange::Full,
        }
    };
    if first >= total {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part {
        first,
        last: last.map_or(total - 1, |last| last.min(total - 1)),
    }
}

/// Returns the media type of a download by its extension (spec §4 item 2).
fn content_type(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    match extension.as_deref() {
        Some("parquet") => "application/parquet",
        Some("json") => "application/json",
        Some("csv") => "text/csv",
        _ => "application/octet-stream",
    }
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("generated header values are visible ASCII")
}

/// Streams an object (or the part a `Range` asks for) with `Content-Type`,
/// `Content-Length` and `Accept-Ranges`; a `HEAD` answers the same headers without a body.
async fn download(
    state: &AppState,
    key: &Key,
    name: &str,
    headers: &HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let what = format!("file {name:?}");
    let total = state
        .storage()
        .size(key)
        .await
        .map_err(|err| storage_error(err, &what))?;
    let range = match request {
        Request::Get => byte_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            total,
        ),
        Request::Head => ByteRange::Full,
    };
    let (status, read, length) = match range {
        ByteRange::Full => (StatusCode::OK, None, total),
        ByteRange::Part { first, last } => (
            StatusCode::PARTIAL_CONTENT,
            Some(first..last + 1),
            last - first + 1,
        ),
        ByteRange::Unsatisfiable => {
            let mut response = ApiError::range_not_satisfiable(format!(
                "{what} has {total} bytes; the requested range starts at or past its end"
            ))
            .into_response();
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes */{total}")),
            );
            return Ok(response);
        }
    };
    let body = match request {
        Request::Get => Body::from_stream(
            state
                .storage()
                .get_stream(key, read.clone())
                .await
                .map_err(|err| storage_error(err, &what))?,
        ),
        Request::Head => Body::empty(),
    };
    let mut response = (status, body).into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    response_headers.insert(header::CONTENT_LENGTH, header_value(&length.to_string()));
    response_headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(read) = read {
        response_headers.insert(
            header::CONTENT_RANGE,
            header_value(&format!("bytes {}-{}/{total}", read.start, read.end - 1)),
        );
    }
    response.extensions_mut().insert(Uncompressed);
    Ok(response)
}

/// The folders of a batch's diagnostics under its attempt root (spec §7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Diagnostics {
    Failed,
    Meta,
}

impl Diagnostics {
    fn folder(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Meta => "meta",
        }
    }
}

/// A batch's diagnostics folder and, when the metastore recorded them at promotion, every
/// diagnostics file of the batch (else listings ask object storage).
struct Folder {
    key: Key,
    recorded: Option<Vec<ObjectInfo>>,
}

/// Returns the folder of a batch's diagnostics, `None` when the batch has none (not
/// processed yet, or nothing was written).
///
/// # Errors
/// 404 for an unknown batch and once the retention period after `completed` has passed.
async fn diagnostics_folder(
    state: &AppState,
    ctx: &RequestContext,
    batch_id: &BatchId,
    diagnostics: Diagnostics,
) -> Result<Option<Folder>, ApiError> {
    let batch = load_batch(state, ctx, batch_id).await?;
    let retention_ms = i64::try_from(
        state
            .ingest_config()
            .diagnostics_retention_secs
            .saturating_mul(1000),
    )
    .unwrap_or(i64::MAX);
    if let Some(completed) = batch.get("completed").and_then(Value::as_i64) {
        let expires = completed.saturating_add(retention_ms);
        if now_millis() >= expires {
            return Err(not_found(format!(
                "the diagnostics of batch {batch_id} expired at {}; they are kept {} seconds after a batch completes",
                rfc3339(expires),
                state.ingest_config().diagnostics_retention_secs
            )));
        }
    }
    let location = state
        .metastore()
        .diagnostics_location(&ctx.tenant, batch_id)
        .await
        .map_err(metastore_error)?;
    let Some(location) = location else {
        return Ok(None);
    };
    let root = parse_key(&location)?;
    let recorded = state
        .metastore()
        .diagnostics_files(&ctx.tenant, batch_id)
        .await
        .map_err(metastore_error)?
        .map(|files| {
            files
                .into_iter()
                .map(|file| ObjectInfo {
                    key: keys::attempt_file(&root, &file.path),
                    size: file.size,
                })
                .collect()
        });
    Ok(Some(Folder {
        key: keys::attempt_file(&root, diagnostics.folder()),
        recorded,
    }))
}

/// One entry of a folder listing: a file, or a directory holding more entries.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    name: String,
    /// `None` for a directory.
    size: Option<u64>,
}

/// Lists the immediate children of `folder`: files with their sizes, and directories. From
/// the files the metastore recorded when there are, else from object storage.
async fn folder_entries(
    state: &AppState,
    folder: &Key,
    recorded: Option<&[ObjectInfo]>,
) -> Result<Vec<Entry>, ApiError> {
    let objects = match recorded {
        Some(recorded) => recorded.to_vec(),
        None => state
            .storage()
            .list_objects(folder)
            .await
            .map_err(|err| ApiError::from_storage(SERVICE, &err))?,
    };
    let mut entries: Vec<Entry> = Vec::new();
    for object in objects {
        let Some(parts) = object.key.prefix_match(folder) else {
            continue;
        };
        let parts: Vec<String> = parts.map(|part| part.as_ref().to_owned()).collect();
        let Some(first) = parts.first() else {
            continue;
        };
        let entry = if parts.len() == 1 {
            Entry {
                name: first.clone(),
                size: Some(object.size),
            }
        } else {
            Entry {
                name: first.clone(),
                size: None,
            }
        };
        if !entries.contains(&entry) {
            entries.push(entry);
        }
    }
    entries.sort_by(|a, b| {
        entry_rank(a)
            .cmp(&entry_rank(b))
            .then_with(|| natural_order(&a.name, &b.name))
    });
    Ok(entries)
}

/// Listing order: the `_SUCCESS` marker first (spec §4 item 4), then the directories of
/// spec §4 item 5 in its order, other directories, then files.
fn entry_rank(entry: &Entry) -> u8 {
    match (entry.name.as_str(), entry.size) {
        ("_SUCCESS", Some(_)) => 0,
        ("row_errors", None) => 1,
        ("input_files", None) => 2,
        (_, None) => 3,
        (_, Some(_)) => 4,
    }
}

/// Renders a folder listing; each entry links to `base?path=<prefix><name>`.
fn folder_listing(
    entries: Vec<Entry>,
    query: &AccessQuery,
    base: &str,
    prefix: &str,
    fixed: &[(&str, String)],
) -> Value {
    let items = entries
        .into_iter()
        .map(|entry| {
            let href = with_query(base, &[("path", format!("{prefix}{}", entry.name))]);
            json!({
                "name": entry.name,
                "length": entry.size.unwrap_or(0).to_string(),
                "_links": {"self": {"href": href}},
            })
        })
        .collect();
    envelope(items, query, base, fixed)
}

/// Returns the key of `path` inside `folder`, refusing paths that could leave it.
fn key_in(folder: &Key, path: &str, what: &str) -> Result<Key, ApiError> {
    keys::check_file_path(path)
        .map_err(|err| not_found(format!("no entry {path:?} in {what}: {err}")))?;
    Ok(keys::attempt_file(folder, path))
}

/// `GET /batches/{batchId}/failed` (spec §4 item 4): the rejected rows of a batch.
async fn get_failed(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(batch): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let batch_id = extract::batch_id(SERVICE, &batch)?;
    let query = access_query(raw.as_deref())?;
    let folder = diagnostics_folder(&state, &ctx, &batch_id, Diagnostics::Failed).await?;
    let what = format!("the failed rows of batch {batch_id}");
    match (&query.path, folder) {
        (None, folder) => {
            let entries = match &folder {
                Some(folder) => folder_entries(&state, &folder.key, folder.recorded.as_deref())
                    .await?
                    .into_iter()
                    .filter(|entry| entry.size.is_some())
                    .collect(),
                None => Vec::new(),
            };
            let base = format!(
                "{}{BASE_PATH}/batches/{}/failed",
                origin(&state, &headers),
                segment(&batch_id)
            );
            Ok(Json(folder_listing(entries, &query, &base, "", &[])).into_response())
        }
        (Some(path), None) => Err(not_found(format!("no entry {path:?} in {what}"))),
        (Some(path), Some(folder)) => {
            let key = key_in(&folder.key, path, &what)?;
            download(&state, &key, path, &headers, Request::Get).await
        }
    }
}

/// `GET /batches/{batchId}/meta` (spec §4 item 5): the diagnostics tree of a batch.
async fn get_meta(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(batch): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let batch_id = extract::batch_id(SERVICE, &batch)?;
    let query = access_query(raw.as_deref())?;
    let folder = diagnostics_folder(&state, &ctx, &batch_id, Diagnostics::Meta).await?;
    let what = format!("the diagnostics of batch {batch_id}");
    let base = format!(
        "{}{BASE_PATH}/batches/{}/meta",
        origin(&state, &headers),
        segment(&batch_id)
    );
    let Some(path) = &query.path else {
        let entries = match &folder {
            Some(folder) => folder_entries(&state, &folder.key, folder.recorded.as_deref()).await?,
            None => Vec::new(),
        };
        return Ok(Json(folder_listing(entries, &query, &base, "", &[])).into_response());
    };
    let Some(folder) = folder else {
        return Err(not_found(format!("no entry {path:?} in {what}")));
    };
    let path = path.trim_end_matches('/');
    let key = key_in(&folder.key, path, &what)?;
    let is_file = match &folder.recorded {
        Some(recorded) => recorded.iter().any(|object| object.key == key),
        None => match state.storage().size(&key).await {
            Ok(_) => true,
            Err(StorageError::NotFound { .. }) => false,
            Err(err) => return Err(ApiError::from_storage(SERVICE, &err)),
        },
    };
    if is_file {
        return download(&state, &key, path, &headers, Request::Get).await;
    }
    let entries = folder_entries(&state, &key, folder.recorded.as_deref()).await?;
    if entries.is_empty() {
        return Err(not_found(format!("no entry {path:?} in {what}")));
    }
    let fixed = [("path", path.to_owned())];
    Ok(Json(folder_listing(
        entries,
        &query,
        &base,
        &format!("{path}/"),
        &fixed,
    ))
    .into_response())
}

/// `GET /datasets/{datasetId}/preview` (spec §4 item 6): up to 100 rows of the dataset's
/// valid files, newest first.
/// The table version a dataset preview reads (spec §12, time travel).
enum AsOf {
    /// `asOfBatch=<batchId>`: the version the batch's commit produced.
    Batch(String),
    /// `version=<n>`.
    Version(u64),
}

impl AsOf {
    fn parse(params: &[(String, String)]) -> Result<Option<Self>, ApiError> {
        let find = |name: &str| {
            params
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        };
        match (find("asOfBatch"), find("version")) {
            (Some(_), Some(_)) => Err(ApiError::invalid_query(
                SERVICE,
                "give either asOfBatch or version, not both",
            )),
            (Some(batch), None) => Ok(Some(Self::Batch(extract::id(SERVICE, batch)?))),
            (None, Some(version)) => version.trim().parse::<u64>().map(|v| Some(Self::Version(v))).map_err(|_| {
                ApiError::invalid_query(
                    SERVICE,
                    format!("query parameter \"version\": {version:?} is not a table version (a non-negative integer)"),
                )
            }),
            (None, None) => Ok(None),
        }
    }
}

async fn preview_dataset(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(dataset): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let dataset_id = extract::dataset_id(SERVICE, &dataset)?;
    let params = extract::query_pairs(SERVICE, query.as_deref())?;
    let as_of = AsOf::parse(&params)?;
    existing_dataset(&state, &ctx, dataset_id.as_str()).await?;
    let Some(reader) = state.row_reader().cloned() else {
        return Err(ApiError::row_reader_missing());
    };
    if let Some(as_of) = as_of {
        return preview_as_of(&state, &ctx, dataset_id.as_str(), as_of, reader).await;
    }
    let mut rows: Vec<Value> = Vec::new();
    let mut start = 0u64;
    loop {
        let page = valid_files_newest_first(&state, &ctx, &dataset_id, start).await?;
        let more = page.len() as u64 == MAX_PAGE;
        for doc in page {
            if rows.len() >= PREVIEW_ROWS {
                break;
            }
            let wanted = PREVIEW_ROWS - rows.len();
            rows.extend(file_rows(&state, &ctx, &reader, &doc, wanted).await?);
        }
        if rows.len() >= PREVIEW_ROWS || !more {
            break;
        }
        start += MAX_PAGE;
    }
    Ok(Json(json!({"data": rows})).into_response())
}

/// One page (from `start`, [`MAX_PAGE`] long) of a dataset's valid files: the newest
/// batch's first, a batch's parts in their order.
async fn valid_files_newest_first(
    state: &AppState,
    ctx: &RequestContext,
    dataset_id: &DatasetId,
    start: u64,
) -> Result<Vec<Doc>, ApiError> {
    let limits = PageLimits {
        default_limit: MAX_PAGE as u32,
        max_limit: MAX_PAGE as u32,
        reject_over_max: false,
    };
    let params: Vec<(String, String)> = [
        ("dataSetId", dataset_id.to_string()),
        ("isValid", "true".to_owned()),
        ("orderBy", "desc:created".to_owned()),
        ("start", start.to_string()),
        ("limit", MAX_PAGE.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect();
    let list_query = ListQuery::parse(ObjectKind::DatasetFile, &params, limits)
        .map_err(|err| ApiError::internal(SERVICE, &err))?;
    let mut docs = state
        .metastore()
        .list(&ctx.tenant, ObjectKind::DatasetFile, &list_query)
        .await
        .map_err(metastore_error)?;
    let created = |doc: &Doc| doc.get("created").and_then(Value::as_i64).unwrap_or(0);
    let id = |doc: &Doc| catalog::object_id(doc).unwrap_or_default().to_owned();
    docs.sort_by(|a, b| {
        created(b)
            .cmp(&created(a))
            .then_with(|| natural_order(&id(a), &id(b)))
    });
    Ok(docs)
}

/// Up to `limit` rows of one dataset file (none when it is not downloadable).
async fn file_rows(
    state: &AppState,
    ctx: &RequestContext,
    reader: &Arc<dyn RowReader>,
    doc: &Doc,
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    let Some(id) = catalog::object_id(doc) else {
        return Ok(Vec::new());
    };
    let Some(stored) = state
        .metastore()
        .dataset_file(&ctx.tenant, id)
        .await
        .map_err(metastore_error)?
        .filter(is_downloadable)
    else {
        return Ok(Vec::new());
    };
    let key = parse_key(&stored.location)?;
    key_rows(state, reader, &key, limit).await
}

/// Up to `limit` rows of the Parquet file at `key`.
async fn key_rows(
    state: &AppState,
    reader: &Arc<dyn RowReader>,
    key: &Key,
    limit: usize,
) -> Result<Vec<Value>, ApiError> {
    let local = state
        .storage()
        .readable_file(key, state.scratch_dir())
        .await
        .map_err(|err| ApiError::from_storage(SERVICE, &err))?;
    let name = key.filename().unwrap_or_default().to_owned();
    read_rows(Arc::clone(reader), name, local, limit)
        .await
        .map_err(|reason| ApiError::internal(SERVICE, &std::io::Error::other(reason)))
}

/// The dataset preview as of a table version: rows of the files live at that version,
/// newest batch first, with the version read.
async fn preview_as_of(
    state: &AppState,
    ctx: &RequestContext,
    dataset_id: &str,
    as_of: AsOf,
    reader: Arc<dyn RowReader>,
) -> Result<Response, ApiError> {
    let (version, mut keys) = table_keys(state, ctx, dataset_id, Some(as_of)).await?;
    // Newest batch first (batch ids grow with time), a batch's parts in their order.
    let batch_of = |key: &Key| -> String {
        let text = key.to_string();
        text.split_once("/batches/")
            .and_then(|(_, rest)| rest.split('/').next())
            .unwrap_or_default()
            .to_owned()
    };
    keys.sort_by(|a, b| {
        batch_of(b)
            .cmp(&batch_of(a))
            .then_with(|| natural_order(a.as_ref(), b.as_ref()))
    });
    let mut rows: Vec<Value> = Vec::new();
    for key in keys {
        if rows.len() >= PREVIEW_ROWS {
            break;
        }
        let part = key_rows(state, &reader, &key, PREVIEW_ROWS - rows.len()).await?;
        rows.extend(part);
    }
    Ok(Json(json!({"data": rows, "version": version})).into_response())
}

/// The version a read of the dataset's table names (the latest when `as_of` is None) and
/// the keys of the files live at it.
async fn table_keys(
    state: &AppState,
    ctx: &RequestContext,
    dataset_id: &str,
    as_of: Option<AsOf>,
) -> Result<(u64, Vec<Key>), ApiError> {
    let Some(tables) = state.tables().cloned() else {
        return Err(ApiError::tables_missing());
    };
    let version = match as_of {
        None => None,
        Some(AsOf::Version(version)) => Some(version),
        Some(AsOf::Batch(batch_id)) => Some({
            let batch = state
                .metastore()
                .get(
                    &ctx.tenant,
                    ObjectKind::Batch,
                    std::slice::from_ref(&batch_id),
                )
                .await
                .map_err(metastore_error)?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    not_found(format!("batch {batch_id} does not exist in this sandbox"))
                })?;
            if lakeport_domain::catalog::batch_dataset_id(&batch) != Some(dataset_id) {
                return Err(ApiError::invalid_query(
                    SERVICE,
                    format!(
                        "query parameter \"asOfBatch\": batch {batch_id} is not a batch of dataset {dataset_id}"
                    ),
                ));
            }
            batch
                .get("tableVersion")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    let status = batch.get("status").and_then(Value::as_str).unwrap_or("unknown");
                    ApiError::invalid_query(
                        SERVICE,
                        format!("query parameter \"asOfBatch\": batch {batch_id} ({status}) was never committed to the dataset's table; only successful batches were"),
                    )
                })?
        }),
    };
    tables
        .files(&ctx.tenant, dataset_id, version)
        .await
        .map_err(|reason| ApiError::internal(SERVICE, &std::io::Error::other(reason)))?
        .ok_or_else(|| match version {
            Some(version) => not_found(format!(
                "dataset {dataset_id}'s table has no version {version}"
            )),
            None => not_found(format!("dataset {dataset_id} has no table yet")),
        })
}

/// Checks that the dataset exists in the caller's sandbox.
async fn existing_dataset(
    state: &AppState,
    ctx: &RequestContext,
    dataset: &str,
) -> Result<DatasetId, ApiError> {
    let dataset_id = extract::dataset_id(SERVICE, dataset)?;
    let found = state
        .metastore()
        .get(&ctx.tenant, ObjectKind::Dataset, &[dataset_id.to_string()])
        .await
        .map_err(metastore_error)?;
    if found.is_empty() {
        return Err(not_found(format!(
            "dataset {dataset_id} does not exist in this sandbox"
        )));
    }
    Ok(dataset_id)
}

/// `GET /datasets/{datasetId}/table` (a Lakeport extension, spec §12): the Parquet files of
/// the dataset's Delta table live at the latest version, or at `version=<n>` or
/// `asOfBatch=<batchId>`, each with its size and download link: the whole table as of then
/// (`lakeport dataset read --output`).
async fn list_table_files(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(dataset): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let dataset_id = existing_dataset(&state, &ctx, &dataset).await?;
    let params = extract::query_pairs(SERVICE, query.as_deref())?;
    let as_of = AsOf::parse(&params)?;
    let paging = access_query(query.as_deref())?;
    let (version, keys) = table_keys(&state, &ctx, dataset_id.as_str(), as_of).await?;
    let root = lakeport_storage::keys::dataset(
        ctx.tenant.org(),
        ctx.tenant.sandbox(),
        dataset_id.as_str(),
    );
    let base = format!(
        "{BASE_PATH}/datasets/{}/table",
        segment(dataset_id.as_str())
    );
    let mut listed: Vec<(Key, Value)> = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(parts) = key.prefix_match(&root) else {
            continue;
        };
        let relative: Vec<String> = parts.map(|part| part.as_ref().to_owned()).collect();
        let href = format!(
            "{base}/{}",
            relative
                .iter()
                .map(|part| segment(part))
                .collect::<Vec<_>>()
                .join("/")
        );
        let item = json!({"name": relative.join("/"), "_links": {"self": {"href": href}}});
        listed.push((key, item));
    }
    // The page's keys, in the order the envelope pages the items.
    let page_keys: Vec<Key> = listed
        .iter()
        .skip(usize::try_from(paging.start).unwrap_or(usize::MAX))
        .take(usize::try_from(paging.limit).unwrap_or(usize::MAX))
        .map(|(key, _)| key.clone())
        .collect();
    let items = listed.into_iter().map(|(_, item)| item).collect();
    // Every page reads the version the first one did, however the table moves on.
    let mut body = envelope(items, &paging, &base, &[("version", version.to_string())]);
    body["version"] = json!(version);
    // Sizes only for the page's files: listing a large table costs a page of reads.
    let page = body["data"].as_array_mut().into_iter().flatten();
    for (file, key) in page.zip(&page_keys) {
        let length = state
            .storage()
            .size(key)
            .await
            .map_err(|err| storage_error(err, &format!("table file {}", file["name"])))?;
        file["length"] = json!(length);
    }
    Ok(Json(body).into_response())
}

/// `GET /datasets/{datasetId}/table/{path}`: one Parquet file of the dataset's table (a
/// batch's part or a compacted file), streamed, with byte ranges as `/files/{id}`.
async fn get_table_file(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((dataset, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let dataset_id = existing_dataset(&state, &ctx, &dataset).await?;
    let parts: Vec<&str> = path.split('/').collect();
    let shaped = parts
        .iter()
        .all(|part| !part.is_empty() && *part != "." && *part != ".." && !part.contains('\\'))
        && path.ends_with(".parquet")
        && (parts.first() == Some(&"compacted")
            || (parts.first() == Some(&"batches") && parts.iter().rev().nth(1) == Some(&"data")));
    if !shaped {
        return Err(not_found(format!(
            "{path:?} is not a data file of dataset {dataset_id}'s table (batches/<id>/attempt-<n>/data/<part>.parquet or compacted/<name>.parquet)"
        )));
    }
    let mut key = lakeport_storage::keys::dataset(
        ctx.tenant.org(),
        ctx.tenant.sandbox(),
        dataset_id.as_str(),
    );
    for part in &parts {
        key = key.join(*part);
    }
    let name = parts.last().copied().unwrap_or_default();
    download(&state, &key, name, &headers, Request::Get).await
}

async fn read_rows(
    reader: Arc<dyn RowReader>,
    name: String,
    file: lakeport_storage::ReadableFile,
    limit: usize,
) -> Result<Vec<Value>, String> {
    tokio::task::spawn_blocking(move || reader.rows(&name, file.path(), limit))
        .await
        .map_err(|err| format!("the preview task failed: {err}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(header: &str, total: u64, expected: &str) {
        let actual = match byte_range(Some(header), total) {
            ByteRange::Full => "full".to_owned(),
            ByteRange::Part { first, last } => format!("{first}-{last}"),
            ByteRange::Unsatisfiable => "416".to_owned(),
        };
        assert_eq!(actual, expected, "{header} of {total}");
    }

    #[test]
    fn byte_ranges() {
        check("bytes=0-9", 100, "0-9");
        check("bytes=10-", 100, "10-99");
        check("bytes=-10", 100, "90-99");
        check("bytes=-500", 100, "0-99");
        check("bytes=90-500", 100, "90-99");
        check("BYTES = 5-5", 100, "5-5");
        check("bytes=100-", 100, "416");
        check("bytes=100-200", 100, "416");
        check("bytes=-0", 100, "416");
        check("bytes=0-", 0, "416");
        check("bytes=-5", 0, "416");
        check("bytes=9-3", 100, "full");
        check("bytes=0-1,5-6", 100, "full");
        check("bytes=+1-2", 100, "full");
        check("bytes=a-b", 100, "full");
        check("objects=0-1", 100, "full");
        check("bytes", 100, "full");
        assert_eq!(byte_range(None, 100), ByteRange::Full);
    }

    #[test]
    fn names_sort_naturally() {
        let mut names = vec!["B-10", "B-2", "B-1", "part-00002", "part-00010"];
        names.sort_by(|a, b| natural_order(a, b));
        assert_eq!(names, ["B-1", "B-2", "B-10", "part-00002", "part-00010"]);
    }

    #[test]
    fn media_types_follow_the_extension() {
        assert_eq!(content_type("part-00001.parquet"), "application/parquet");
        assert_eq!(
            content_type("row_errors/parsing_errors_1.json"),
            "application/json"
        );
        assert_eq!(content_type("x.CSV"), "text/csv");
        assert_eq!(content_type("_SUCCESS"), "application/octet-stream");
    }

    #[test]
    fn links_encode_paths_and_ids() {
        assert_eq!(
            with_query(
                "https://h/meta",
                &[("path", "row_errors/a b.json".to_owned())]
            ),
            "https://h/meta?path=row_errors%2Fa+b.json"
        );
        assert_eq!(segment("01HV-1"), "01HV-1");
        assert_eq!(segment("a<b"), "a%3Cb");
    }

    #[test]
    fn envelopes_page_and_link() {
        let query = |start, limit| AccessQuery {
            start,
            limit,
            path: None,
        };
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let all = envelope(items.clone(), &query(0, 100), "https://h/x", &[]);
        assert_eq!(
            all,
            json!({"data": [0, 1, 2, 3, 4], "_page": {"limit": 100, "count": 5}})
        );
        let first = envelope(
            items.clone(),
            &query(0, 2),
            "https://h/x",
            &[("path", "d".to_owned())],
        );
        assert_eq!(first["data"], json!([0, 1]));
        assert_eq!(first["_page"], json!({"limit": 2, "count": 5}));
        assert_eq!(
            first["_links"],
            json!({"page": {"href": "https://h/x?path=d&start=0&limit=2", "templated": true},
                   "next": {"href": "https://h/x?path=d&start=2&limit=2"}})
        );
        let last = envelope(items, &query(4, 2), "https://h/x", &[]);
        assert_eq!(last["data"], json!([4]));
        assert!(last["_links"].get("next").is_none());
    }

    #[test]
    fn query_controls_are_checked() {
        let parsed = access_query(Some("start=5&limit=500&path=row_errors")).unwrap();
        assert_eq!(
            parsed,
            AccessQuery {
                start: 5,
                limit: 100,
                path: Some("row_errors".to_owned())
            }
        );
        assert_eq!(access_query(Some("path=")).unwrap().path, None);
        for bad in ["limit=0", "limit=-1", "limit=x", "start=-1", "start=1.5"] {
            let err = access_query(Some(bad)).unwrap_err();
            assert_eq!(err.code, "DAS-9004-400", "{bad}");
        }
    }
}
