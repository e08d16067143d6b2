//! The web console: server-rendered HTML pages over the APIs, mounted by `lakeport serve`
//! at `console.path` (default `/console`).
//!
//! The console is one more client of the services, never a side door: every page calls the
//! real API router in process with the signed-in session's token, API key, organization
//! and sandbox, so the gateway's authentication and the tenant walls apply unchanged. The
//! tenant comes from the session, never from the URL. Pages work without JavaScript;
//! `console.js` only adds drag and drop with upload progress, live batch status and the
//! copy button. No asset comes from outside the binary.

#![expect(
    clippy::result_large_err,
    reason = "handlers answer with a page (a Response) on both paths"
)]

mod api;
mod chart;
mod forms;
mod html;
mod inlets;
mod pages;
mod session;
mod sql;
mod upload;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use lakeport_api::App;
use lakeport_api::context::Auth;
use lakeport_config::ConsoleConfig;

use crate::api::Api;
use crate::session::{Session, Sessions};

/// The largest urlencoded form the console reads (sign-in, tenant, actions).
pub const MAX_FORM_BYTES: usize = 16 * 1024;

pub use upload::MAX_FILES as MAX_UPLOAD_FILES;

/// What the console's handlers share.
pub struct Console {
    api: Api,
    auth: Auth,
    sessions: Sessions,
    base: String,
    /// Whether cookies carry `Secure` (the server is reached over https).
    secure_cookies: bool,
    /// The engine the SQL page runs SELECTs on; `None`: the page says there is none.
    sql: Option<SqlEngine>,
}

/// The SQL engine of the node (the one behind the Query Service) and how long a SELECT
/// from the SQL page may run (`query.select_timeout_secs`).
#[derive(Clone)]
pub struct SqlEngine {
    pub engine: Arc<dyn lakeport_api::query::QueryEngine>,
    pub timeout: Duration,
}

type Shared = Arc<Console>;

impl Console {
    /// Builds the console over the API router `api` and the credentials it accepts.
    pub fn new(api: App, auth: Auth, config: &ConsoleConfig) -> Self {
        Self {
            api: Api::new(api),
            auth,
            sessions: Sessions::new(
                Duration::from_secs(config.session_idle_secs),
                config.max_sessions,
            ),
            base: config.path.clone(),
            secure_cookies: false,
            sql: None,
        }
    }

    /// Returns the session of a signed-in user who chose a tenant, or where to send them.
    fn signed_in(&self, headers: &HeaderMap) -> Result<Session, Response> {
        match self.sessions.find(headers) {
            Some(session) if session.tenant.is_some() => Ok(session),
            Some(_) => Err(Redirect::to(&format!("{}/tenant", self.base)).into_response()),
            None => Err(Redirect::to(&format!("{}/signin", self.base)).into_response()),
        }
    }

    /// Reads the urlencoded form a signed-in session posted: at most [`MAX_FORM_BYTES`],
    /// carrying the session's form token. A form that is too large or unreadable gets an
    /// error page titled `refused` saying `detail`; one without the token is refused.
    async fn session_form(
        &self,
        session: &Session,
        body: Body,
        refused: &str,
        detail: &str,
    ) -> Result<HashMap<String, String>, Response> {
        let form = read_form(body).await.map_err(|status| {
            html::error_page(&self.base, Some(session), status, refused, detail)
        })?;
        if form
            .get("csrf")
            .is_some_and(|token| session::same_secret(token, &session.csrf))
        {
            Ok(form)
        } else {
            Err(self.form_expired(Some(session)))
        }
    }

    /// The page for a form that did not come from the current session.
    fn form_expired(&self, session: Option<&Session>) -> Response {
        html::error_page(
            &self.base,
            session,
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form did not come from your current session. Reload the page and try again.",
        )
    }

    fn not_found(&self, session: Option<&Session>, what: &str) -> Response {
        html::not_found(&self.base, session, what)
    }

    /// Renders a failed API call as a page: 404 for unknown (or foreign) ids, the API's
    /// status and words for other refusals, 502 for a broken answer.
    fn failure(&self, session: &Session, what: &str, failure: api::ApiFailure) -> Response {
        match failure {
            api::ApiFailure::NotFound => self.not_found(Some(session), what),
            api::ApiFailure::Refused {
                status,
                title,
                detail,
            } => html::error_page(&self.base, Some(session), status, &title, &detail),
            api::ApiFailure::Broken(detail) => {
                tracing::warn!(detail = %detail, "console: the API failed");
                html::error_page(
                    &self.base,
                    Some(session),
                    StatusCode::BAD_GATEWAY,
                    "The service failed",
                    "The service could not answer this page. Try again; the server log says more.",
                )
            }
        }
    }
}

/// Returns the console's routes, to be nested at `config.path`.
pub fn router(console: Console) -> Router {
    let shared: Shared = Arc::new(console);
    Router::new()
        .route("/", get(forms::home))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
        .route("/signin", get(forms::signin_form).post(forms::signin))
        .route(
            "/tenant",
            get(forms::tenant_form).post(forms::choose_tenant),
        )
        .route("/signout", axum::routing::post(forms::signout))
        .route("/datasets", get(pages::datasets))
        .route("/datasets/{id}", get(pages::dataset))
        .route("/datasets/{id}/preview", get(pages::preview))
        .route(
            "/datasets/{id}/upload",
            get(upload::form)
                .post(upload::upload)
                // Each file's size is the API's to check (ingest limits); the form fields
                // before the files are read with their own small bound.
                .layer(DefaultBodyLimit::disable()),
        )
        .route("/batches/{id}", get(pages::batch))
        .route("/batches/{id}/status", get(pages::batch_status))
        .route(
            "/batches/{id}/{action}",
            get(forms::action_form).post(forms::action),
        )
        .route("/batches/{id}/download/{kind}", get(pages::download))
        .route("/files/{id}", get(pages::dataset_file))
        .route("/inlets", get(inlets::list))
        .route("/inlets/{id}", get(inlets::show).post(inlets::send))
        .route("/schemas", get(pages::schemas))
        .route("/schema", get(pages::schema))
        .route("/sql", get(sql::form).post(sql::run))
        .fallback(unknown_page)
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(shared)
}

/// The API with the console mounted at `config.path` next to it (the console's own paths
/// first, everything else to the API). `secure_cookies`: the browser reaches the server over
/// https (`server.public_origin`), so cookies are marked `Secure`. `sql`: the engine the SQL
/// page runs on, when the node has one.
pub fn mount(
    api: App,
    auth: Auth,
    config: &ConsoleConfig,
    secure_cookies: bool,
    sql: Option<SqlEngine>,
) -> Router {
    let mut console = Console::new(api.clone(), auth, config);
    console.secure_cookies = secure_cookies;
    console.sql = sql;
    let path = config.path.clone();
    let slash = format!("{path}/");
    Router::new()
        .route(
            &path,
            get(move || std::future::ready(Redirect::to(&slash).into_response())),
        )
        .nest(&format!("{path}/"), router(console))
        .fallback_service(api)
}

async fn unknown_page(
    axum::extract::State(console): axum::extract::State<Shared>,
    headers: HeaderMap,
) -> Response {
    let session = console.sessions.find(&headers);
    console.not_found(session.as_ref(), "page")
}

const CSS: &str = include_str!("../assets/console.css");
const JS: &str = include_str!("../assets/console.js");

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            ("content-type", content_type),
            ("cache-control", "public, max-age=3600"),
            ("x-content-type-options", "nosniff"),
        ],
        text,
    )
        .into_response()
}

/// A path id; a path that does not decode (invalid UTF-8) is a 404 page, as an unknown id.
pub(crate) struct Id(pub String);

/// Two path segments (an id and an action or kind).
pub(crate) struct Ids(pub String, pub String);

fn undecodable(console: &Shared, parts: &axum::http::request::Parts) -> Response {
    let session = console.sessions.find(&parts.headers);
    console.not_found(session.as_ref(), "page")
}

impl axum::extract::FromRequestParts<Shared> for Id {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        console: &Shared,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<String>::from_request_parts(parts, console).await {
            Ok(axum::extract::Path(id)) => Ok(Self(id)),
            Err(_) => Err(undecodable(console, parts)),
        }
    }
}

impl axum::extract::FromRequestParts<Shared> for Ids {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        console: &Shared,
    ) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<(String, String)>::from_request_parts(parts, console).await {
            Ok(axum::extract::Path((a, b))) => Ok(Self(a, b)),
            Err(_) => Err(undecodable(console, parts)),
        }
    }
}

/// Reads an urlencoded form of at most [`MAX_FORM_BYTES`].
async fn read_form(body: Body) -> Result<HashMap<String, String>, StatusCode> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| StatusCode::PAYLOAD_TOO_LARGE)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(pairs.into_iter().collect())
}

/// Parses a query string into pairs; a malformed one is empty.
fn query_pairs(raw: Option<&str>) -> HashMap<String, String> {
    raw.and_then(|raw| serde_urlencoded::from_str::<Vec<(String, String)>>(raw).ok())
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}
