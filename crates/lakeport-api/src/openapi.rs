//! The OpenAPI 3 document of every route (`GET /openapi.json`), and the per-service parts
//! Adobe publishes one by one, served at each API root (`/data/foundation/catalog/openapi.json`,
//! …) with paths relative to that root.
//!
//! The document is the checked-in `openapi.json` of this crate. It cannot drift from the
//! router: the HTTP suite lists the router's paths and asserts that they are exactly the
//! documented paths and that every documented method, and no other, is served.

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// The document of every route, as checked in.
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The API roots that serve their part of the document at `{root}/openapi.json`.
pub const API_ROOTS: [&str; 4] = [
    "/data/foundation/catalog",
    "/data/foundation/import",
    crate::access::BASE_PATH,
    "/data/foundation/schemaregistry",
];

/// Returns the part of the document under `root`: its paths relative to `root`, with
/// `root` as the server URL, as Adobe's per-service documents have them.
///
/// # Panics
/// When the checked-in document is not a JSON object with `paths` (the HTTP suite parses it).
pub fn service_document(root: &str) -> Value {
    let mut document: Value =
        serde_json::from_str(DOCUMENT).expect("the checked-in openapi.json is valid JSON");
    let paths = document["paths"]
        .as_object()
        .expect("the checked-in openapi.json has paths");
    let relative: Map<String, Value> = paths
        .iter()
        .filter_map(|(path, item)| {
            let rest = path.strip_prefix(root)?;
            match rest {
                "" => Some(("/".to_owned(), item.clone())),
                rest if rest.starts_with('/') => Some((rest.to_owned(), item.clone())),
                _ => None,
            }
        })
        .collect();
    document["paths"] = Value::Object(relative);
    document["servers"] = serde_json::json!([{"url": root}]);
    document
}

/// Renders a serialized document as an `application/json` response.
pub fn respond(body: Bytes) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
