//! Reading requests: query pairs, JSON bodies with their content type, and id lists.

use axum::body::Body;
use axum::http::HeaderMap;
use lakeport_domain::ids::{BatchId, DatasetId, ResourceId, check_client_id};
use serde_json::Value;

use crate::error::{ApiError, Service};

/// Largest JSON body accepted by Catalog and Import calls.
pub const MAX_JSON_BODY: usize = 4 * 1024 * 1024;

/// Parses the raw query string into ordered pairs.
///
/// # Errors
/// A 400 when the query string is not valid `application/x-www-form-urlencoded`.
pub fn query_pairs(service: Service, raw: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(raw).map_err(|err| {
        ApiError::invalid_query(
            service,
            format!("the query string cannot be decoded: {err}"),
        )
    })?;
    // PostgreSQL text cannot hold U+0000, so no stored value can match one: refuse it on
    // every backend alike rather than let the query fail in the database.
    if let Some((name, _)) = pairs
        .iter()
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
    {
        return Err(ApiError::invalid_query(
            service,
            format!(
                "query parameter {name:?} holds a NUL character (%00), which no Lakeport value can contain"
            ),
        ));
    }
    Ok(pairs)
}

/// The media type of a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    Json,
    JsonPatch,
}

fn body_type(headers: &HeaderMap) -> Option<BodyType> {
    let content_type = headers.get("content-type")?.to_str().ok()?;
    let media_type = content_type.split(';').next()?.trim().to_ascii_lowercase();
    match media_type.as_str() {
        // Adobe's docs also spell it `application/json+patch` (spec §2.3 item 5).
        "application/json-patch+json" | "application/json+patch" => Some(BodyType::JsonPatch),
        "application/json" | "text/json" => Some(BodyType::Json),
        other if other.starts_with("application/") && other.ends_with("+json") => {
            Some(BodyType::Json)
        }
        _ => None,
    }
}

/// Reads a JSON body: checks the `Content-Type`, the size, and that it parses.
///
/// # Errors
/// A 400 naming what is wrong (missing or unusable content type, invalid JSON), or a 413
/// when the body is larger than [`MAX_JSON_BODY`].
pub async fn json_body(
    service: Service,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Value, BodyType), ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|err| {
            if is_length_limit(&err) {
                ApiError::payload_too_large(
                    service,
                    format!("the JSON body exceeds {MAX_JSON_BODY} bytes"),
                )
            } else {
                // The client stopped sending (idle timeout) or the connection broke.
                ApiError::invalid_body(
                    service,
                    format!("the request body could not be read to the end: {err}"),
                )
            }
        })?;
    let Some(kind) = body_type(headers) else {
        let sent = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map_or_else(
                || "no Content-Type".to_owned(),
                |v| format!("Content-Type {v:?}"),
            );
        return Err(ApiError::content_type(
            service,
            format!(
                "A valid content type must be given: the request sent {sent}; send Content-Type: application/json"
            ),
        ));
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_body(
            service,
            "the request body is empty; a JSON document is required",
        ));
    }
    let value = serde_json::from_slice(&bytes).map_err(|err| {
        ApiError::invalid_body(
            service,
            format!("the request body is not valid JSON: {err}"),
        )
    })?;
    // JSON can only carry U+0000 escaped, so a body without the escape has none.
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Some(at) = nul_position(&value)
    {
        return Err(ApiError::invalid_body(
            service,
            format!(
                "{at}: the body holds a NUL character (\\u0000), which Lakeport does not store; remove it"
            ),
        ));
    }
    Ok((value, kind))
}

/// Returns the JSON pointer of the first key or string holding U+0000 (`#` for the root).
/// Iterative: `serde_json` already bounds the nesting at 128 levels.
pub(crate) fn nul_position(value: &Value) -> Option<String> {
    fn escape(key: &str) -> String {
        key.replace('~', "~0")
            .replace('/', "~1")
            .replace('\0', "\\u0000")
    }
    let mut pending: Vec<(String, &Value)> = vec![("#".to_owned(), value)];
    while let Some((at, value)) = pending.pop() {
        match value {
            Value::String(text) if text.contains('\0') => return Some(at),
            Value::Array(items) => {
                pending.extend(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (format!("{at}/{i}"), v)),
                );
            }
            Value::Object(map) => {
                for (key, v) in map {
                    let here = format!("{at}/{}", escape(key));
                    if key.contains('\0') {
                        return Some(here);
                    }
                    pending.push((here, v));
                }
            }
            _ => {}
        }
    }
    None
}

/// True when reading a body failed because it was longer than the limit.
pub(crate) fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// Splits a path segment of comma-separated ids (`id1,id2`) and checks each.
///
/// # Errors
/// A 400 naming the malformed id.
pub fn ids(service: Service, segment: &str) -> Result<Vec<String>, ApiError> {
    let mut ids = Vec::new();
    for id in segment.split(',').map(str::trim) {
        check_client_id(id).map_err(|reason| {
            ApiError::invalid_query(service, format!("invalid id in path: {reason}"))
        })?;
        if !ids.iter().any(|seen| seen == id) {
            ids.push(id.to_owned());
        }
    }
    if ids.len() > 100 {
        return Err(ApiError::invalid_query(
            service,
            format!(
                "{} ids were requested at once; at most 100 are allowed",
                ids.len()
            ),
        ));
    }
    Ok(ids)
}

/// Checks a single id from the path.
///
/// # Errors
/// A 400 naming what is wrong with the id.
pub fn id(service: Service, segment: &str) -> Result<String, ApiError> {
    check_client_id(segment).map_err(|reason| {
        ApiError::invalid_query(service, format!("invalid id in path: {reason}"))
    })?;
    Ok(segment.to_owned())
}

/// Parses a batch id path segment.
///
/// # Errors
/// The segment is not a valid id (400).
pub fn batch_id(service: Service, segment: &str) -> Result<BatchId, ApiError> {
    id(service, segment).map(BatchId::from)
}

/// Parses a dataset id path segment.
///
/// # Errors
/// The segment is not a valid id (400).
pub fn dataset_id(service: Service, segment: &str) -> Result<DatasetId, ApiError> {
    id(service, segment).map(DatasetId::from)
}

/// Parses a Schema Registry id path segment (a `$id` URI, decoded, or a `meta:altId`).
///
/// # Errors
/// The segment is not a valid resource id (400).
pub fn resource_id(service: Service, segment: &str) -> Result<ResourceId, ApiError> {
    ResourceId::parse(segment)
        .map_err(|reason| ApiError::invalid_query(service, format!("invalid id in path: {reason}")))
}

/// Returns true when the request carries `Pragma: validate-only`.
pub fn validate_only(headers: &HeaderMap) -> bool {
    headers
        .get_all("pragma")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("validate-only"))
        })
}
