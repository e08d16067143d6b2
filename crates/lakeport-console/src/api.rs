//! The console's only way to the data: requests to the real API router, in process, with
//! the signed-in session's token, API key, organization and sandbox in the gateway headers.
//! The router authenticates and walls tenants exactly as for any other client.

use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode};
use lakeport_api::App;
use serde_json::Value;
use tower::ServiceExt;

use crate::session::Session;

/// The largest JSON answer the console reads from the API.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

/// Why a page could not be made from the API's answers.
#[derive(Debug)]
pub enum ApiFailure {
    /// 404 from the API: unknown id, or another tenant's.
    NotFound,
    /// Another 4xx: the API's status, title and detail.
    Refused {
        status: StatusCode,
        title: String,
        detail: String,
    },
    /// 5xx, or an answer the console could not read.
    Broken(String),
}

impl ApiFailure {
    /// Reads a problem body (spec §1.6) into a failure.
    pub async fn from_response(response: Response<Body>) -> Self {
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Self::NotFound;
        }
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let problem: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        // Problem bodies (spec §1.6) and the gateway's `{error_code, message}`.
        let text = |keys: [&str; 2]| {
            keys.iter()
                .find_map(|key| problem[*key].as_str())
                .unwrap_or_default()
                .to_owned()
        };
        if status.is_client_error() {
            Self::Refused {
                status,
                title: text(["title", "error_code"]),
                detail: text(["detail", "message"]),
            }
        } else {
            Self::Broken(format!(
                "the API answered {status}: {}",
                text(["detail", "message"])
            ))
        }
    }
}

/// The API router and the way to call it.
#[derive(Clone)]
pub struct Api {
    app: App,
}

impl Api {
    pub fn new(app: App) -> Self {
        Self { app }
    }

    /// Sends one request as the session's user and tenant. `tenant` overrides the
    /// session's choice (the sign-in uses it to check a choice before keeping it).
    pub async fn send(
        &self,
        session: &Session,
        tenant: Option<(&str, &str)>,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Response<Body> {
        let (org, sandbox) = match (tenant, &session.tenant) {
            (Some((org, sandbox)), _) => (org, sandbox),
            (None, Some((org, sandbox))) => (org.as_str(), sandbox.as_str()),
            (None, None) => ("", "prod"),
        };
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {}", session.token))
            .header("x-api-key", &session.api_key)
            .header("x-gw-ims-org-id", org)
            .header("x-sandbox-name", sandbox);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = match builder.body(body) {
            Ok(request) => request,
            Err(err) => {
                let mut response = Response::new(Body::from(format!(
                    "{{\"title\":\"Bad request\",\"detail\":\"{err}\"}}"
                )));
                *response.status_mut() = StatusCode::BAD_REQUEST;
                return response;
            }
        };
        match self.app.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }

    /// GETs a JSON document.
    pub async fn get_json(&self, session: &Session, uri: &str) -> Result<Value, ApiFailure> {
        self.get_json_as(session, uri, "application/json").await
    }

    /// GETs a JSON document with another `Accept` (the registry's xed variants).
    pub async fn get_json_as(
        &self,
        session: &Session,
        uri: &str,
        accept: &str,
    ) -> Result<Value, ApiFailure> {
        let response = self
            .send(
                session,
                None,
                Method::GET,
                uri,
                &[("accept", accept)],
                Body::empty(),
            )
            .await;
        read_json(response).await
    }

    /// POSTs a JSON body and returns the JSON answer (`Null` for an empty one).
    pub async fn post_json(
        &self,
        session: &Session,
        uri: &str,
        body: &Value,
    ) -> Result<Value, ApiFailure> {
        let response = self
            .send(
                session,
                None,
                Method::POST,
                uri,
                &[
                    ("content-type", "application/json"),
                    ("accept", "application/json"),
                ],
                if body.is_null() {
                    Body::empty()
                } else {
                    Body::from(body.to_string())
                },
            )
            .await;
        read_json(response).await
    }
}

/// Reads a successful answer as JSON, or the failure it is.
pub async fn read_json(response: Response<Body>) -> Result<Value, ApiFailure> {
    if !response.status().is_success() {
        return Err(ApiFailure::from_response(response).await);
    }
    let bytes = axum::body::to_bytes(response.into_body(), MAX_JSON_BYTES)
        .await
        .map_err(|err| ApiFailure::Broken(format!("reading the API's answer: {err}")))?;
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes)
        .map_err(|err| ApiFailure::Broken(format!("the API's answer is not JSON: {err}")))
}

/// Everything but letters, digits and `-._~` is escaped.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment or query value.
pub fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, SEGMENT).to_string()
}
