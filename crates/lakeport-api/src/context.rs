//! Request context: the request id, authentication of the gateway headers (spec §1.2), the
//! tenant and actor of each call, and the middleware that renders problem bodies.

use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use lakeport_config::AuthConfig;
use lakeport_domain::catalog::Actor;
use lakeport_domain::tenant::{Tenant, TenantError};
use rand::RngCore;
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, GatewayError, Service};

/// Longest accepted request target (spec §1.1).
const MAX_URL_LENGTH: usize = 2000;

/// The id of one request, echoed in `x-request-id`, problem reports and logs.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Who is calling and for which tenant; present on every `/data/foundation` request.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub tenant: Tenant,
    pub actor: Actor,
    pub request_id: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| {
                ApiError::internal(
                    Service::Gateway,
                    &std::io::Error::other("route is missing the authentication middleware"),
                )
            })
    }
}

/// Accepted tokens and API keys.
#[derive(Debug, Clone)]
pub struct Auth {
    tokens: Vec<TokenRule>,
    api_keys: Vec<String>,
    require_sandbox_header: bool,
}

#[derive(Debug, Clone)]
struct TokenRule {
    token: String,
    /// `None` when the token may act for any organization.
    orgs: Option<Vec<String>>,
    user: Option<String>,
}

impl Auth {
    /// Builds the rules from configuration.
    pub fn from_config(config: &AuthConfig) -> Self {
        Self {
            tokens: config
                .tokens
                .iter()
                .map(|token| TokenRule {
                    token: token.token.expose().to_owned(),
                    orgs: (!token.orgs.iter().any(|org| org == "*")).then(|| token.orgs.clone()),
                    user: token.user.clone(),
                })
                .collect(),
            api_keys: config.api_keys.clone(),
            require_sandbox_header: config.require_sandbox_header,
        }
    }

    /// Checks the gateway headers and returns the caller's tenant and identity.
    ///
    /// # Errors
    /// Returns the gateway error of spec §1.2 for the first header that fails.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<(Tenant, Actor), GatewayError> {
        let Some(authorization) = single_header(headers, "authorization")? else {
            return Err(GatewayError::token_missing());
        };
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        let Some(rule) = self
            .tokens
            .iter()
            .find(|rule| constant_time_eq(rule.token.as_bytes(), token.as_bytes()))
        else {
            return Err(GatewayError::token_invalid());
        };
        let api_key = match single_header(headers, "x-api-key")? {
            Some(key) if !key.is_empty() => key,
            _ => {
                return Err(GatewayError::api_key_required());
            }
        };
        if !self.api_keys.is_empty() && !self.api_keys.iter().any(|allowed| allowed == &api_key) {
            return Err(GatewayError::api_key_invalid());
        }
        let Some(org) = single_header(headers, "x-gw-ims-org-id")? else {
            return Err(GatewayError::invalid_header(
                "Missing header: x-gw-ims-org-id must name the IMS organization, e.g. A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg",
            ));
        };
        let sandbox = match single_header(headers, "x-sandbox-name")? {
            Some(sandbox) => sandbox,
            None if self.require_sandbox_header => {
                return Err(GatewayError::invalid_header(
                    "Missing header: x-sandbox-name must name the sandbox, e.g. prod",
                ));
            }
            None => Tenant::DEFAULT_SANDBOX.to_owned(),
        };
        let tenant = Tenant::parse(&org, &sandbox).map_err(|err| match err {
            TenantError::MalformedOrg(_) => {
                GatewayError::user_region_missing(format!("User region is missing: {err}"))
            }
            TenantError::MalformedSandbox(_) => {
                GatewayError::invalid_header(format!("Invalid header: {err}"))
            }
        })?;
        if let Some(orgs) = &rule.orgs
            && !orgs.iter().any(|allowed| allowed == tenant.org())
        {
            return Err(GatewayError::profile_not_valid(format!(
                "Profile is not valid: the token is not entitled to organization {}",
                tenant.org()
            )));
        }
        let user = rule
            .user
            .clone()
            .unwrap_or_else(|| format!("{api_key}@AdobeID"));
        Ok((
            tenant,
            Actor {
                client_id: api_key,
                user,
            },
        ))
    }
}

/// Why an authenticated inlet refused a call (spec §10.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InletAuthError {
    /// `Authorization` missing, not a bearer token, or an unknown token: 401.
    Invalid,
    /// A valid token not entitled to the inlet's organization: 403.
    NotEntitled,
}

impl Auth {
    /// Checks the bearer token of a call to an authenticated inlet of `org`; the gateway's
    /// other headers are not needed there.
    ///
    /// # Errors
    /// [`InletAuthError`] says which answer to give.
    pub fn check_inlet_token(&self, headers: &HeaderMap, org: &str) -> Result<(), InletAuthError> {
        let token = headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(InletAuthError::Invalid)?;
        self.check_token(token, org)
    }

    /// Checks a bearer token (without its `Bearer ` prefix) for acting in `org`, as the
    /// gateway does; inlets and the Query Service's wire login (the token is the password,
    /// spec §11.1) use it.
    ///
    /// # Errors
    /// The token matches no configured one ([`InletAuthError::Invalid`]), or is not
    /// entitled to `org` ([`InletAuthError::NotEntitled`]).
    pub fn check_token(&self, token: &str, org: &str) -> Result<(), InletAuthError> {
        let rule = self
            .tokens
            .iter()
            .find(|rule| constant_time_eq(rule.token.as_bytes(), token.trim().as_bytes()))
            .ok_or(InletAuthError::Invalid)?;
        match &rule.orgs {
            Some(orgs) if !orgs.iter().any(|allowed| allowed == org) => {
                Err(InletAuthError::NotEntitled)
            }
            _ => Ok(()),
        }
    }
}

/// The organizations a token may act for, as the console's sign-in offers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entitlement {
    /// Any organization (`orgs = ["*"]`).
    AnyOrg,
    /// Only these.
    Orgs(Vec<String>),
}

impl Auth {
    /// Returns what `token` (without its `Bearer ` prefix) is entitled to, or None when it
    /// matches no configured token. Requests made with it still pass [`Auth::authenticate`].
    pub fn entitlement(&self, token: &str) -> Option<Entitlement> {
        let rule = self
            .tokens
            .iter()
            .find(|rule| constant_time_eq(rule.token.as_bytes(), token.trim().as_bytes()))?;
        Some(match &rule.orgs {
            Some(orgs) => Entitlement::Orgs(orgs.clone()),
            None => Entitlement::AnyOrg,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Returns a header's value; repeated headers (or comma-joined repeats) must agree, as
/// when a client sends `x-gw-ims-org-id` twice with the same value.
fn single_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, GatewayError> {
    let mut value: Option<String> = None;
    for raw in headers.get_all(name) {
        let text = raw.to_str().map_err(|_| {
            GatewayError::invalid_header(format!("Invalid header: {name} is not visible ASCII"))
        })?;
        let parts: Vec<&str> = if name == "authorization" {
            vec![text.trim()]
        } else {
            text.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect()
        };
        for part in parts {
            match &value {
                Some(seen) if seen != part => {
                    return Err(GatewayError::invalid_header(format!(
                        "Invalid header: {name} was sent more than once with different values"
                    )));
                }
                _ => value = Some(part.to_owned()),
            }
        }
    }
    Ok(value)
}

/// Middleware on `/data/foundation/...` routes: authenticates and attaches the
/// [`RequestContext`].
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let (tenant, actor) = match state.auth().authenticate(request.headers()) {
        Ok(found) => found,
        Err(err) => {
            tracing::info!(
                error.code = err.error_code,
                status = err.status.as_u16(),
                "request refused by the gateway checks"
            );
            return err.into_response();
        }
    };
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .map(|id| id.0.clone())
        .unwrap_or_default();
    request.extensions_mut().insert(RequestContext {
        tenant,
        actor,
        request_id,
    });
    next.run(request).await
}

/// Outermost middleware: assigns the request id, refuses over-long URLs, renders
/// [`ApiError`]s as problem bodies, logs internal errors once and logs every request.
pub async fn render_problems(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = new_request_id();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let org = header_text(request.headers(), "x-gw-ims-org-id");
    let sandbox = header_text(request.headers(), "x-sandbox-name")
        .unwrap_or_else(|| Tenant::DEFAULT_SANDBOX.to_owned());
    request
        .extensions_mut()
        .insert(RequestId(request_id.clone()));

    let target_length = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    let mut response = if target_length > MAX_URL_LENGTH {
        ApiError::uri_too_long(target_length, MAX_URL_LENGTH).into_response()
    } else {
        next.run(request).await
    };

    if response.extensions().get::<ApiError>().is_none() && is_bare_error(&response) {
        // An extractor rejection (path, query, body, headers) or another layer's error:
        // every error is a problem body (spec §1.6), never axum's text/plain.
        response = bare_error_to_problem(&path, response).await;
    }
    if let Some(problem) = response.extensions_mut().remove::<ApiError>() {
        if let Some(cause) = &problem.cause {
            tracing::error!(error.id = %request_id, error.code = %problem.code, error.cause = %cause, "request failed inside the server");
        }
        let mut body = json!({
            "type": format!("http://ns.adobe.com/aep/errors/{}", problem.code),
            "status": problem.status.as_u16(),
            "title": problem.title,
            "detail": problem.detail,
            "report": {
                "tenantInfo": {"imsOrgId": org, "sandboxName": sandbox},
                "requestId": request_id,
                "timestamp": rfc3339(lakeport_domain::now_millis()),
            },
            "errorId": request_id,
        });
        if problem.code.starts_with("XDM-") {
            // Registry errors carry Adobe's registry report members (spec §1.6).
            body["report"]["registryRequestId"] = json!(request_id);
            body["report"]["detailed-message"] = json!(problem.detail);
            body["report"]["sub-errors"] = json!([]);
        }
        let headers = std::mem::take(response.headers_mut());
        response = (problem.status, Json(body)).into_response();
        for (name, value) in &headers {
            if name != "content-type" && name != "content-length" {
                response.headers_mut().insert(name, value.clone());
            }
        }
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    tracing::info!(
        http.method = %method,
        http.path = %path,
        http.status = response.status().as_u16(),
        request.id = %request_id,
        tenant.org = org.as_deref().unwrap_or(""),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request handled"
    );
    response
}

/// True for a 4xx/5xx response that no handler rendered: its body is not JSON.
fn is_bare_error(response: &Response) -> bool {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return false;
    }
    let json = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            let media = media.trim();
            media.eq_ignore_ascii_case("application/json") || media.ends_with("+json")
        });
    !json
}

/// The service whose error prefix an error on `path` carries.
fn service_of(path: &str) -> Service {
    const ROOTS: [(&str, Service); 5] = [
        ("/data/foundation/flowservice", Service::Flow),
        ("/data/foundation/catalog", Service::Catalog),
        ("/data/foundation/import", Service::Ingest),
        ("/data/foundation/export", Service::Access),
        ("/data/foundation/schemaregistry", Service::Registry),
    ];
    ROOTS
        .iter()
        .find(|(root, _)| path.starts_with(root))
        .map_or(Service::Gateway, |(_, service)| *service)
}

/// Largest bare error body kept as the problem's detail.
const MAX_BARE_DETAIL: usize = 4096;

/// Turns a response such as axum's `400 text/plain` "Invalid URL: …" into an [`ApiError`]
/// with the same status (a 422 of a body extractor becomes a 400) and its text as detail.
async fn bare_error_to_problem(path: &str, response: Response) -> Response {
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_BARE_DETAIL).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let service = service_of(path);
    let detail = if text.is_empty() {
        parts
            .status
            .canonical_reason()
            .unwrap_or("the request failed")
            .to_owned()
    } else {
        text
    };
    let problem = ApiError::from_bare_status(service, parts.status, detail);
    let mut rendered = problem.into_response();
    for (name, value) in &parts.headers {
        if name != "content-type" && name != "content-length" {
            rendered.headers_mut().insert(name, value.clone());
        }
    }
    rendered
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or(v).trim().to_owned())
}

fn new_request_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Formats epoch milliseconds as an RFC 3339 UTC timestamp (`2025-03-01T10:00:00.000Z`).
pub fn rfc3339(millis: i64) -> String {
    let seconds = millis.div_euclid(1000);
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        (in_day % 3600) / 60,
        in_day % 60,
        millis.rem_euclid(1000)
    )
}

/// Returns the origin for absolute links: the configured public origin, else the
/// request's scheme (`x-forwarded-proto`) and `Host`.
pub fn origin(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(origin) = state.public_origin() {
        return origin.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get("host"))
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '-' | '[' | ']'))
        })
        .unwrap_or("localhost");
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_740_823_200_123), "2025-03-01T10:00:00.123Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
