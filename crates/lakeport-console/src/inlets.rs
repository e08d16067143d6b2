//! Streaming inlets: the organization's streaming connections, and a page that sends one
//! test message to an inlet with synchronous validation and shows the report. A message
//! that passes is ingested like any other (as in AEP).

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::{Value, json};

use crate::api::{ApiFailure, enc};
use crate::html::{self, Frame};
use crate::session::Session;
use crate::{Id, Shared, query_pairs};

const FLOW: &str = "/data/foundation/flowservice";

pub async fn list(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = query_pairs(raw.as_deref());
    let start: u64 = params
        .get("start")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0u64)
        .min(crate::pages::MAX_START);
    let uri = format!("{FLOW}/connections?limit=50&start={start}");
    let list = match console.api.get_json(&session, &uri).await {
        Ok(list) => list,
        Err(failure) => return console.failure(&session, "connection", failure),
    };
    let items: Vec<Value> = list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|c| c["auth"]["params"]["inletId"].is_string())
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let more = list["items"].as_array().is_some_and(|i| i.len() == 50);
    let base = &console.base;
    let body = html! {
        h1 { "Streaming inlets" }
        p.hint { "The streaming connections of this sandbox (Flow Service). Open one to send a test message." }
        @if items.is_empty() { p.empty { "No streaming connection on this page." } }
        @else {
            table.list {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Inlet id" } th scope="col" { "Authenticated" } } }
                tbody {
                    @for c in &items {
                        tr {
                            td { a href={ (base) "/inlets/" (enc(c["id"].as_str().unwrap_or_default())) } { (c["name"].as_str().unwrap_or("(unnamed)")) } }
                            td { code { (c["auth"]["params"]["inletId"].as_str().unwrap_or_default()) } }
                            td { @if c["auth"]["params"]["authenticationRequired"].as_bool() == Some(true) { "yes" } @else { "no" } }
                        }
                    }
                }
            }
        }
        (html::pager(
            (start > 0).then(|| format!("{base}/inlets")),
            more.then(|| format!("{base}/inlets?start={}", start + 50)),
            "Connection pages",
        ))
    };
    html::respond(
        StatusCode::OK,
        &Frame {
            base,
            session: Some(&session),
            title: "Streaming inlets",
            refresh_secs: None,
        },
        &body,
    )
}

/// The connection (tenant-walled by the Flow Service) and its inlet id.
async fn connection(
    console: &Shared,
    session: &Session,
    id: &str,
) -> Result<(Value, String), Response> {
    let uri = format!("{FLOW}/connections/{}", enc(id));
    match console.api.get_json(session, &uri).await {
        Ok(answer) => {
            let item = answer["items"][0].clone();
            match item["auth"]["params"]["inletId"].as_str() {
                Some(inlet) => {
                    let inlet = inlet.to_owned();
                    Ok((item, inlet))
                }
                None => Err(console.not_found(Some(session), "streaming connection")),
            }
        }
        Err(ApiFailure::Refused { status, .. }) if status == StatusCode::BAD_REQUEST => {
            Err(console.not_found(Some(session), "streaming connection"))
        }
        Err(failure) => Err(console.failure(session, "streaming connection", failure)),
    }
}

fn template(session: &Session) -> String {
    let org = session
        .tenant
        .as_ref()
        .map(|(o, _)| o.as_str())
        .unwrap_or_default();
    serde_json::to_string_pretty(&json!({
        "header": {"imsOrgId": org},
        "body": {"xdmEntity": {"_id": "console-test-1", "timestamp": "2026-01-01T00:00:00Z"}}
    }))
    .unwrap_or_default()
}

fn page(
    console: &Shared,
    session: &Session,
    id: &str,
    item: &Value,
    inlet: &str,
    message: &str,
    report: Option<Markup>,
) -> Response {
    let base = &console.base;
    let name = item["name"].as_str().unwrap_or("(unnamed)").to_owned();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href={ (base) "/inlets" } { "Streaming inlets" } " / " span { (name) } }
        h1 { (name) }
        dl.facts { dt { "Inlet id" } dd { code { (inlet) } } dt { "Endpoint" } dd { code { "POST /collection/" (inlet) } } }
        @if let Some(report) = report { section #report aria-live="polite" { h2 { "Report" } (report) } }
        h2 { "Send a test message" }
        p.hint { "Sent with synchronous validation against the target dataset's schema. A message that passes is ingested like any other." }
        form method="post" action={ (base) "/inlets/" (enc(id)) } {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="message" { "Message (JSON: header and body.xdmEntity)" }
            textarea #message name="message" rows="14" spellcheck="false" required { (message) }
            button.primary type="submit" { "Send with validation" }
        }
    };
    html::respond(
        StatusCode::OK,
        &Frame {
            base,
            session: Some(session),
            title: &name,
            refresh_secs: None,
        },
        &body,
    )
}

pub async fn show(State(console): State<Shared>, headers: HeaderMap, Id(id): Id) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let (item, inlet) = match connection(&console, &session, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    page(
        &console,
        &session,
        &id,
        &item,
        &inlet,
        &template(&session),
        None,
    )
}

pub async fn send(
    State(console): State<Shared>,
    headers: HeaderMap,
    Id(id): Id,
    body: Body,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let (item, inlet) = match connection(&console, &session, &id).await {
        Ok(found) => found,
        Err(page) => return page,
    };
    let form = match console
        .session_form(
            &session,
            body,
            "Message refused",
            &format!(
                "A test message holds at most {} bytes here.",
                crate::MAX_FORM_BYTES
            ),
        )
        .await
    {
        Ok(form) => form,
        Err(page) => return page,
    };
    let message = form.get("message").cloned().unwrap_or_default();
    let response = console
        .api
        .send(
            &session,
            None,
            Method::POST,
            &format!("/collection/{}?syncValidation=true", enc(&inlet)),
            &[("content-type", "application/json")],
            Body::from(message.clone()),
        )
        .await;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 256 * 1024)
        .await
        .unwrap_or_default();
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let mut violations = Vec::new();
    collect(
        &answer["report"]["cause"]["_streamingValidation"],
        &mut violations,
    );
    let report = html! {
        p {
            @if status.is_success() { span.badge.ok { "accepted" } " The message passed validation and was ingested." }
            @else { span.badge.bad { "rejected" } " HTTP " (status.as_u16()) ": " (answer["title"].as_str().or(answer["message"].as_str()).unwrap_or_default()) }
        }
        @if let Some(detail) = answer["report"]["message"].as_str() { p { (detail) } }
        @if !violations.is_empty() {
            ul.violations { @for (at, keyword, text) in &violations { li { code { (keyword) } " at " code { (at) } " " (text) } } }
        }
        details { summary { "The inlet's answer" } pre.row { (serde_json::to_string_pretty(&answer).unwrap_or_default()) } }
    };
    page(
        &console,
        &session,
        &id,
        &item,
        &inlet,
        &message,
        Some(report),
    )
}

/// Flattens the violation tree of a sync-validation report (spec §10.2).
fn collect(node: &Value, out: &mut Vec<(String, String, String)>) {
    let nodes: Vec<&Value> = match node {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![node],
        _ => return,
    };
    for n in nodes {
        let children = n["causingExceptions"].as_array().filter(|c| !c.is_empty());
        match children {
            Some(_) => collect(&n["causingExceptions"], out),
            None if out.len() < 100 => out.push((
                n["pointerToViolation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                n["keyword"].as_str().unwrap_or_default().to_owned(),
                n["message"].as_str().unwrap_or_default().to_owned(),
            )),
            None => {}
        }
    }
}
