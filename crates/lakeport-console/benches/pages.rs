//! Server-side latency of the console's pages for a dataset with many batches, on the
//! embedded default (SQLite in a temporary data directory, a local object directory).
//!
//! The API router and the console are built as `lakeport serve` builds them and called in
//! process (no sockets): the times are what the server spends on a page, the API calls
//! the page makes included. The dataset gets an XDM schema (so its page renders the tree)
//! and `--batches` batches (default 100,000) created through `POST /import/batches`; every
//! tenth is aborted so that statuses vary.
//!
//! Run with `cargo bench -p lakeport-console --bench pages` (options: `--batches N`,
//! `--samples N`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use lakeport_config::{Config, ConsoleConfig, TokenConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const TOKEN: &str = "bench-token";
const ORG: &str = "BENCH0123456789ABCDEF0123@AdobeOrg";

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    cookies: Vec<String>,
    text: String,
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = router
        .clone()
        .oneshot(builder.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        location,
        cookies,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

const API: [(&str, &str); 5] = [
    ("authorization", "Bearer bench-token"),
    ("x-api-key", "bench"),
    ("x-gw-ims-org-id", ORG),
    ("x-sandbox-name", "prod"),
    ("content-type", "application/json"),
];

async fn api_post(router: &Router, path: &str, body: &Value) -> Value {
    let answer = call(
        router,
        Method::POST,
        path,
        &API,
        body.to_string().into_bytes(),
    )
    .await;
    assert!(answer.status.is_success(), "{path}: {}", answer.text);
    serde_json::from_str(&answer.text).unwrap_or(Value::Null)
}

fn input(text: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = text.find(&marker).unwrap() + marker.len();
    let end = text[start..].find('"').unwrap() + start;
    text[start..end].to_owned()
}

/// Signs in through the console's forms and returns the cookie header.
async fn sign_in(router: &Router) -> String {
    let form = call(router, Method::GET, "/console/signin", &[], Vec::new()).await;
    let nonce = input(&form.text, "nonce");
    let mut cookies: HashMap<String, String> = HashMap::new();
    let mut keep = |list: &[String]| {
        for pair in list {
            let (k, v) = pair.split_once('=').unwrap();
            cookies.insert(k.to_owned(), v.to_owned());
        }
        cookies
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let cookie = keep(&form.cookies);
    let form_type = ("content-type", "application/x-www-form-urlencoded");
    let body = serde_urlencoded::to_string([("nonce", nonce.as_str()), ("token", TOKEN)]).unwrap();
    let signed = call(
        router,
        Method::POST,
        "/console/signin",
        &[("cookie", &cookie), form_type],
        body.into_bytes(),
    )
    .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    let cookie = keep(&signed.cookies);
    let tenant = call(
        router,
        Method::GET,
        "/console/tenant",
        &[("cookie", &cookie)],
        Vec::new(),
    )
    .await;
    let csrf = input(&tenant.text, "csrf");
    let body =
        serde_urlencoded::to_string([("csrf", csrf.as_str()), ("org", ORG), ("sandbox", "prod")])
            .unwrap();
    let chosen = call(
        router,
        Method::POST,
        "/console/tenant",
        &[("cookie", &cookie), form_type],
        body.into_bytes(),
    )
    .await;
    assert_eq!(chosen.location.as_deref(), Some("/console/datasets"));
    cookie
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

async fn measure(
    router: &Router,
    cookie: &str,
    label: &str,
    path: &str,
    samples: usize,
    expect: &str,
) {
    // Warm-up: the first calls fill SQLite's page cache and the statement caches.
    for _ in 0..5 {
        call(router, Method::GET, path, &[("cookie", cookie)], Vec::new()).await;
    }
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let begin = Instant::now();
        let page = call(router, Method::GET, path, &[("cookie", cookie)], Vec::new()).await;
        times.push(begin.elapsed());
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        assert!(page.text.contains(expect), "{path} lacks {expect:?}");
    }
    times.sort();
    println!(
        "{label:<58} p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms",
        percentile(&times, 0.5),
        percentile(&times, 0.9),
        percentile(&times, 0.99),
        times.last().unwrap().as_secs_f64() * 1000.0
    );
}

fn main() {
    let batches = arg("--batches", 100_000);
    let samples = arg("--samples", 200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_owned();
        config.auth.tokens.push(TokenConfig::any_org(TOKEN));
        let metastore = lakeport_metastore::open(&config.metastore_url(), Default::default())
            .await
            .unwrap();
        let storage = lakeport_api::open_storage(&config).unwrap();
        let state = lakeport_api::AppState::new(&config, metastore, storage, None);
        let auth = state.auth().clone();
        let router = lakeport_console::mount(lakeport_api::app(state), auth, &ConsoleConfig::default(), false, None);

        let group = api_post(&router, "/data/foundation/schemaregistry/tenant/fieldgroups", &json!({
            "title": "bench fields", "type": "object",
            "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent"],
            "definitions": {"d": {"properties": {"_bench0123456789abcdef0123": {"type": "object", "properties": {
                "memberId": {"type": "string"}, "points": {"type": "integer"},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}}}}}}},
            "allOf": [{"$ref": "#/definitions/d"}]
        })).await;
        let schema = api_post(&router, "/data/foundation/schemaregistry/tenant/schemas", &json!({
            "title": "bench schema", "type": "object",
            "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}, {"$ref": group["$id"]}]
        })).await;
        let reference = api_post(&router, "/data/foundation/catalog/dataSets", &json!({
            "name": "bench", "schemaRef": {"id": schema["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}
        })).await;
        let dataset = reference[0].as_str().unwrap().rsplit('/').next().unwrap().to_owned();

        let started = Instant::now();
        let router = Arc::new(router);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let router = Arc::clone(&router);
                let next = Arc::clone(&next);
                let body = json!({"datasetId": dataset});
                tokio::spawn(async move {
                    let mut last = None;
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= batches {
                            break;
                        }
                        let batch = api_post(&router, "/data/foundation/import/batches", &body).await;
                        let id = batch["id"].as_str().unwrap().to_owned();
                        if n.is_multiple_of(10) {
                            api_post(&router, &format!("/data/foundation/import/batches/{id}?action=ABORT"), &Value::Null).await;
                        }
                        last = Some(id);
                    }
                    last
                })
            })
            .collect();
        let mut a_batch = None;
        for task in tasks {
            a_batch = task.await.unwrap().or(a_batch);
        }
        let a_batch = a_batch.unwrap();
        println!("filled {batches} batches in {:.1} s", started.elapsed().as_secs_f64());

        let router = Arc::try_unwrap(router).unwrap_or_else(|shared| (*shared).clone());
        // The `created` at a depth, to start a page there as the "Older" links do.
        let created_at = |offset: usize| {
            let router = router.clone();
            let dataset = dataset.clone();
            async move {
                let path = format!("/data/foundation/catalog/batches?dataSet={dataset}&orderBy=desc:created&start={offset}&limit=1&properties=created");
                let answer = call(&router, Method::GET, &path, &API, Vec::new()).await;
                let list: Value = serde_json::from_str(&answer.text).unwrap();
                list.as_object().unwrap().values().next().unwrap()["created"].as_i64().unwrap()
            }
        };
        let middle = created_at(batches / 2).await;
        let last = created_at(batches.saturating_sub(50)).await;
        let cookie = sign_in(&router).await;
        println!("{samples} samples per page, one at a time, in process (server-side time):");
        measure(&router, &cookie, "dataset page (20 batches, chart of 100, schema)", &format!("/console/datasets/{dataset}"), samples, "<svg class=\"chart\"").await;
        measure(&router, &cookie, "dataset page, 50 batches half-way down (\"Older\" link)", &format!("/console/datasets/{dataset}?before={middle}&limit=50"), samples, "rel=\"next\"").await;
        measure(&router, &cookie, "dataset page, the oldest 50 batches", &format!("/console/datasets/{dataset}?before={}&limit=50", last + 1), samples, "Batches").await;
        measure(&router, &cookie, "datasets page", "/console/datasets", samples, ">bench<").await;
        measure(&router, &cookie, "batch page", &format!("/console/batches/{a_batch}"), samples, "Timeline").await;
        measure(&router, &cookie, "batch status fragment", &format!("/console/batches/{a_batch}/status"), samples, "batch-status").await;
    });
}
