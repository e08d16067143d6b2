//! Sign-in, the choice of organization and sandbox, sign-out, and the batch actions
//! (REVERT, ABORT) with their confirmation pages. Every POST carries a form token: the
//! session's own, or for the sign-in form one tied to a short-lived cookie.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use lakeport_api::context::Entitlement;
use maud::html;

use crate::api::{ApiFailure, enc, read_json};
use crate::html::{self, Frame};
use crate::session::{self, COOKIE, SIGNIN_COOKIE, Session};
use crate::{Ids, Shared, read_form};

/// Default `x-api-key` the console sends when the form leaves it empty.
const DEFAULT_API_KEY: &str = "lakeport-console";

pub async fn home(State(console): State<Shared>, headers: HeaderMap) -> Response {
    match console.signed_in(&headers) {
        Ok(_) => Redirect::to(&format!("{}/datasets", console.base)).into_response(),
        Err(redirect) => redirect,
    }
}

fn cookie_header(console: &Shared, name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age.map_or(String::new(), |secs| format!("; Max-Age={secs}"));
    let secure = if console.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{name}={value}; Path={}/; HttpOnly; SameSite=Strict{secure}{age}",
        console.base
    )
}

fn form_error(status: StatusCode) -> Option<&'static str> {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Some("The form is too large."),
        StatusCode::BAD_REQUEST => Some("The form could not be read."),
        _ => None,
    }
}

pub async fn signin_form(State(console): State<Shared>) -> Response {
    signin_page(&console, None, StatusCode::OK)
}

fn signin_page(console: &Shared, error: Option<&str>, status: StatusCode) -> Response {
    let nonce = session::random_token();
    let base = &console.base;
    let body = html! {
        section.narrow {
            h1 { "Sign in" }
            p { "Use an API token of this Lakeport server (" code { "auth.tokens" } " in its configuration; the first start prints one)." }
            @if let Some(error) = error { p.alert role="alert" { (error) } }
            form method="post" action={ (base) "/signin" } {
                input type="hidden" name="nonce" value=(nonce);
                label for="token" { "API token" }
                input #token type="password" name="token" required autocomplete="current-password" autofocus;
                label for="api_key" { "API key (x-api-key)" }
                input #api_key type="text" name="api_key" value=(DEFAULT_API_KEY) autocomplete="off";
                button type="submit" { "Sign in" }
            }
        }
    };
    let mut response = html::respond(
        status,
        &Frame {
            base,
            session: None,
            title: "Sign in",
            refresh_secs: None,
        },
        &body,
    );
    if let Ok(value) = cookie_header(console, SIGNIN_COOKIE, &nonce, Some(600)).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

pub async fn signin(State(console): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(status) => {
            return signin_page(&console, form_error(status), status);
        }
    };
    let nonce_ok = match (session::cookie(&headers, SIGNIN_COOKIE), form.get("nonce")) {
        (Some(cookie), Some(field)) => session::same_secret(&cookie, field),
        _ => false,
    };
    if !nonce_ok {
        return signin_page(
            &console,
            Some("The sign-in form expired; please sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let token = form.get("token").map(|t| t.trim()).unwrap_or_default();
    let Some(entitlement) = console.auth.entitlement(token) else {
        return signin_page(
            &console,
            Some("This token is not accepted by this server."),
            StatusCode::UNAUTHORIZED,
        );
    };
    let api_key = form
        .get("api_key")
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .unwrap_or(DEFAULT_API_KEY);
    if api_key.len() > 200 || !api_key.bytes().all(|b| b.is_ascii_graphic()) {
        return signin_page(
            &console,
            Some("The API key must be visible ASCII of at most 200 characters."),
            StatusCode::BAD_REQUEST,
        );
    }
    let session = console
        .sessions
        .create(token.to_owned(), api_key.to_owned(), entitlement);
    let mut response = Redirect::to(&format!("{}/tenant", console.base)).into_response();
    for cookie in [
        cookie_header(&console, COOKIE, &session.id, None),
        cookie_header(&console, SIGNIN_COOKIE, "", Some(0)),
    ] {
        if let Ok(value) = cookie.parse() {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

pub async fn tenant_form(State(console): State<Shared>, headers: HeaderMap) -> Response {
    let Some(session) = console.sessions.find(&headers) else {
        return Redirect::to(&format!("{}/signin", console.base)).into_response();
    };
    tenant_page(&console, &session, None, StatusCode::OK)
}

fn tenant_page(
    console: &Shared,
    session: &Session,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let base = &console.base;
    let (org, sandbox) = session
        .tenant
        .clone()
        .unwrap_or_else(|| (String::new(), "prod".to_owned()));
    let body = html! {
        section.narrow {
            h1 { "Organization and sandbox" }
            @if let Some(error) = error { p.alert role="alert" { (error) } }
            form method="post" action={ (base) "/tenant" } {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="org" { "Organization" }
                @match &session.entitlement {
                    Entitlement::Orgs(orgs) => {
                        select #org name="org" required {
                            @for choice in orgs {
                                option value=(choice) selected[*choice == org] { (choice) }
                            }
                        }
                    }
                    Entitlement::AnyOrg => {
                        input #org type="text" name="org" value=(org) required
                            placeholder="A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg";
                        p.hint { "This token may act for any organization." }
                    }
                }
                label for="sandbox" { "Sandbox" }
                input #sandbox type="text" name="sandbox" value=(sandbox) required;
                button type="submit" { "Continue" }
            }
        }
    };
    html::respond(
        status,
        &Frame {
            base,
            session: Some(session),
            title: "Organization and sandbox",
            refresh_secs: None,
        },
        &body,
    )
}

/// Checks a session's form token.
fn csrf_ok(session: &Session, form: &HashMap<String, String>) -> bool {
    form.get("csrf")
        .is_some_and(|token| session::same_secret(token, &session.csrf))
}

fn csrf_refused(console: &Shared, session: Option<&Session>) -> Response {
    console.form_expired(session)
}

pub async fn choose_tenant(
    State(console): State<Shared>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(session) = console.sessions.find(&headers) else {
        return Redirect::to(&format!("{}/signin", console.base)).into_response();
    };
    let form = match read_form(body).await {
        Ok(form) => form,
        Err(status) => {
            return tenant_page(&console, &session, form_error(status), status);
        }
    };
    if !csrf_ok(&session, &form) {
        return csrf_refused(&console, Some(&session));
    }
    let org = form.get("org").map(|s| s.trim()).unwrap_or_default();
    let sandbox = form.get("sandbox").map(|s| s.trim()).unwrap_or_default();
    // The API decides: the same gateway check every request of this session will pass.
    let response = console
        .api
        .send(
            &session,
            Some((org, sandbox)),
            Method::GET,
            "/data/foundation/catalog/dataSets?limit=1&properties=name",
            &[("accept", "application/json")],
            Body::empty(),
        )
        .await;
    if let Err(failure) = read_json(response).await {
        let message = match failure {
            ApiFailure::Refused { detail, .. } => detail,
            ApiFailure::NotFound => "not found".to_owned(),
            ApiFailure::Broken(detail) => detail,
        };
        return tenant_page(
            &console,
            &session,
            Some(&format!("This choice is refused: {message}")),
            StatusCode::FORBIDDEN,
        );
    }
    console
        .sessions
        .set_tenant(&session.id, org.to_owned(), sandbox.to_owned());
    Redirect::to(&format!("{}/datasets", console.base)).into_response()
}

pub async fn signout(State(console): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let Some(session) = console.sessions.find(&headers) else {
        return Redirect::to(&format!("{}/signin", console.base)).into_response();
    };
    let Ok(form) = read_form(body).await else {
        return csrf_refused(&console, Some(&session));
    };
    if !csrf_ok(&session, &form) {
        return csrf_refused(&console, Some(&session));
    }
    console.sessions.remove(&session.id);
    let mut response = Redirect::to(&format!("{}/signin", console.base)).into_response();
    if let Ok(value) = cookie_header(&console, COOKIE, "", Some(0)).parse() {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// The batch signals the console offers.
#[derive(Clone, Copy)]
enum Action {
    Revert,
    Abort,
}

impl Action {
    fn parse(segment: &str) -> Option<Self> {
        match segment {
            "revert" => Some(Self::Revert),
            "abort" => Some(Self::Abort),
            _ => None,
        }
    }

    fn signal(self) -> &'static str {
        match self {
            Self::Revert => "REVERT",
            Self::Abort => "ABORT",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Self::Revert => "Revert",
            Self::Abort => "Abort",
        }
    }

    fn explanation(self) -> &'static str {
        match self {
            Self::Revert => {
                "Reverting removes this batch's rows from the dataset and its table. The batch becomes inactive and its data is deleted after the grace period. This cannot be undone."
            }
            Self::Abort => {
                "Aborting stops this batch: its uploaded files are discarded and it will not be ingested. This cannot be undone."
            }
        }
    }
}

pub async fn action_form(
    State(console): State<Shared>,
    headers: HeaderMap,
    Ids(id, action): Ids,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Some(action) = Action::parse(&action) else {
        return console.not_found(Some(&session), "page");
    };
    // The batch must be visible to this session before anything is offered.
    let batch = match console
        .api
        .get_json(
            &session,
            &format!(
                "/data/foundation/catalog/batches/{}?properties=status",
                enc(&id)
            ),
        )
        .await
    {
        Ok(batch) => batch,
        Err(ApiFailure::Refused { status, .. }) if status == StatusCode::BAD_REQUEST => {
            return console.not_found(Some(&session), "batch");
        }
        Err(failure) => return console.failure(&session, "batch", failure),
    };
    let status = batch
        .as_object()
        .and_then(|map| map.values().next())
        .and_then(|doc| doc["status"].as_str())
        .unwrap_or_default()
        .to_owned();
    let base = &console.base;
    let body = html! {
        section.narrow.confirm {
            h1 { (action.verb()) " batch?" }
            p { "Batch " code { (id) } " is " (html::status(&status)) "." }
            p { (action.explanation()) }
            form method="post" action={ (base) "/batches/" (enc(&id)) "/" (action.verb().to_lowercase()) } {
                input type="hidden" name="csrf" value=(session.csrf);
                button.danger type="submit" { (action.verb()) " batch" }
                " "
                a.button href={ (base) "/batches/" (enc(&id)) } { "Cancel" }
            }
        }
    };
    html::respond(
        StatusCode::OK,
        &Frame {
            base,
            session: Some(&session),
            title: &format!("{} batch", action.verb()),
            refresh_secs: None,
        },
        &body,
    )
}

pub async fn action(
    State(console): State<Shared>,
    headers: HeaderMap,
    Ids(id, action): Ids,
    body: Body,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let Some(action) = Action::parse(&action) else {
        return console.not_found(Some(&session), "page");
    };
    if let Err(page) = console
        .session_form(
            &session,
            body,
            "Form refused",
            "The form is too large or could not be read.",
        )
        .await
    {
        return page;
    }
    let uri = format!(
        "/data/foundation/import/batches/{}?action={}",
        enc(&id),
        action.signal()
    );
    match console
        .api
        .post_json(&session, &uri, &serde_json::Value::Null)
        .await
    {
        Ok(_) => {
            tracing::info!(batch = %id, action = action.signal(), "console: batch signalled");
            Redirect::to(&format!("{}/batches/{}", console.base, enc(&id))).into_response()
        }
        Err(ApiFailure::Refused { status, .. })
            if status == StatusCode::BAD_REQUEST && !looks_like_id(&id) =>
        {
            console.not_found(Some(&session), "batch")
        }
        Err(failure) => console.failure(&session, "batch", failure),
    }
}

/// Whether text could be a batch id (a ULID-like token), to tell a malformed id from a
/// refused signal.
pub fn looks_like_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
