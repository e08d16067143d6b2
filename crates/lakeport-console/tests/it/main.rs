//! The console over the real API router, SQLite and a local directory: HTTP-level tests
//! (a cookie-keeping client that follows no redirects) and the headless-Chromium test.

mod browser;
mod http;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use lakeport_config::ConsoleConfig;
use lakeport_test_support::TestApp;
use serde_json::{Value, json};
use tower::ServiceExt;

pub const BASE: &str = "/console";

/// The API with the console mounted, as `lakeport serve` builds it.
pub fn mounted(app: &TestApp) -> Router {
    lakeport_console::mount(
        app.api(),
        app.state().auth().clone(),
        &ConsoleConfig::default(),
        false,
        None,
    )
}

/// One answer.
pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub content_type: String,
    pub text: String,
}

impl Page {
    /// The `value` of the first input named `name`.
    pub fn input(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no input {name} in {}", self.text))
            + marker.len();
        let end = self.text[start..].find('"').unwrap() + start;
        self.text[start..end].to_owned()
    }
}

/// A browser without JavaScript: keeps cookies, follows no redirects.
pub struct Client {
    router: Router,
    cookies: HashMap<String, String>,
}

impl Client {
    pub fn new(router: Router) -> Self {
        Self {
            router,
            cookies: HashMap::new(),
        }
    }

    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Page {
        let mut builder = Request::builder().method(method).uri(path);
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            builder = builder.header("cookie", cookie);
        }
        if let Some(content_type) = content_type {
            builder = builder.header("content-type", content_type);
        }
        let response = self
            .router
            .clone()
            .oneshot(builder.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            location,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        self.send(Method::GET, path, None, Vec::new()).await
    }

    pub async fn post_form(&mut self, path: &str, pairs: &[(&str, &str)]) -> Page {
        let body = serde_urlencoded::to_string(pairs).unwrap();
        self.send(
            Method::POST,
            path,
            Some("application/x-www-form-urlencoded"),
            body.into_bytes(),
        )
        .await
    }

    /// Posts a multipart form: text fields, then files (name, bytes).
    pub async fn post_multipart(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &[u8])],
    ) -> Page {
        let boundary = "----lakeport-console-test-boundary";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
            );
        }
        for (file_name, bytes) in files {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        self.send(
            Method::POST,
            path,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            body,
        )
        .await
    }

    /// Signs in with `token`, chooses `org` / prod, and returns the session's form token.
    pub async fn sign_in(&mut self, token: &str, org: &str) -> String {
        let form = self.get(&format!("{BASE}/signin")).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.text);
        let nonce = form.input("nonce");
        let signed = self
            .post_form(
                &format!("{BASE}/signin"),
                &[
                    ("nonce", &nonce),
                    ("token", token),
                    ("api_key", "console-test"),
                ],
            )
            .await;
        assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
        assert_eq!(signed.location.as_deref(), Some("/console/tenant"));
        let tenant = self.get(&format!("{BASE}/tenant")).await;
        let csrf = tenant.input("csrf");
        let chosen = self
            .post_form(
                &format!("{BASE}/tenant"),
                &[("csrf", &csrf), ("org", org), ("sandbox", "prod")],
            )
            .await;
        assert_eq!(chosen.status, StatusCode::SEE_OTHER, "{}", chosen.text);
        assert_eq!(chosen.location.as_deref(), Some("/console/datasets"));
        csrf
    }
}

/// The tenant namespace of org A's event schema.
pub fn ns() -> String {
    format!("_{}", lakeport_test_support::TENANT_A)
}

pub fn event(index: usize) -> Value {
    json!({
        "_id": format!("evt-{index}"),
        "timestamp": "2024-03-01T10:00:00Z",
        "eventType": "commerce.purchases",
        ns(): {"memberId": format!("M-{:03}", index % 1000), "tier": "gold", "points": index}
    })
}

/// Ten JSON lines, three rejected: an unknown tier, a negative points value and a line
/// that is not JSON.
pub fn rows_with_rejects() -> Vec<u8> {
    let mut rows: Vec<Value> = (0..9).map(event).collect();
    rows[2][ns()]["tier"] = json!("platinum");
    rows[5][ns()]["points"] = json!(-7);
    let mut out = String::new();
    for row in rows {
        out.push_str(&row.to_string());
        out.push('\n');
    }
    out.push_str("{not json at all\n");
    out.into_bytes()
}

/// The id at the end of a `/console/batches/<id>` location.
pub fn batch_of(location: &str) -> String {
    location
        .strip_prefix("/console/batches/")
        .unwrap_or_else(|| panic!("not a batch page: {location}"))
        .to_owned()
}
