//! Catalog benchmark over real HTTP on the embedded default (SQLite in a temporary data
//! directory, WAL, `synchronous=NORMAL`):
//!
//! 1. batch creations per second through `POST /data/foundation/import/batches`, with
//!    several keep-alive client connections;
//! 2. p50/p90/p99 latency of `GET /data/foundation/catalog/batches?dataSet=<id>&limit=100`
//!    once 100,000 batches are stored.
//!
//! Run with `cargo bench -p lakeport --bench catalog` (options: `--metastore-url <url>`, `--batches N`,
//! `--clients N`, `--samples N`). The server runs in this process on its own runtime; the
//! clients are blocking threads, so both share the machine's cores as a separate load
//! generator would.

#[path = "../tests/it/http.rs"]
mod http;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lakeport_config::{Config, TokenConfig};
use serde_json::json;

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

fn headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("authorization", "Bearer bench-token"),
        ("x-api-key", "bench"),
        ("x-gw-ims-org-id", ORG),
        ("x-sandbox-name", "prod"),
        ("content-type", "application/json"),
    ]
}

fn start_server(dir: &std::path::Path, metastore_url: Option<String>) -> String {
    let mut config = Config::default();
    config.server.data_dir = dir.to_owned();
    config.metastore.url = metastore_url;
    config.auth.tokens.push(TokenConfig::any_org(TOKEN));
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let metastore = lakeport_metastore::open(&config.metastore_url(), Default::default())
                .await
                .unwrap();
            let storage = lakeport_storage::Storage::open(&config.storage_url()).unwrap();
            let state = lakeport_api::AppState::new(&config, metastore, storage, None);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            sender
                .send(listener.local_addr().unwrap().to_string())
                .unwrap();
            axum::serve(
                listener,
                axum::ServiceExt::<axum::extract::Request>::into_make_service(lakeport_api::app(
                    state,
                )),
            )
            .await
            .unwrap();
        });
    });
    receiver.recv().unwrap()
}

/// Creates `total` batches in `dataset` with `clients` connections; returns the elapsed time.
fn create_batches(address: &str, dataset: &str, total: usize, clients: usize) -> Duration {
    let remaining = Arc::new(AtomicUsize::new(total));
    let body = json!({"datasetId": dataset}).to_string();
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let remaining = Arc::clone(&remaining);
            let address = address.to_owned();
            let body = body.clone();
            std::thread::spawn(move || {
                let mut conn = http::Conn::connect(&address).unwrap();
                while remaining
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let reply = conn
                        .request(
                            "POST",
                            "/data/foundation/import/batches",
                            &headers(),
                            Some(&body),
                        )
                        .unwrap();
                    assert_eq!(reply.status, 201, "{}", reply.body);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1000.0
}

fn measure_list(address: &str, path: &str, samples: usize, clients: usize) -> (Vec<Duration>, f64) {
    let per_client = samples / clients;
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let address = address.to_owned();
            let path = path.to_owned();
            std::thread::spawn(move || {
                let mut conn = http::Conn::connect(&address).unwrap();
                let mut times = Vec::with_capacity(per_client);
                for _ in 0..per_client {
                    let begin = Instant::now();
                    let reply = conn.request("GET", &path, &headers(), None).unwrap();
                    times.push(begin.elapsed());
                    assert_eq!(reply.status, 200);
                    assert_eq!(reply.json().as_object().unwrap().len(), 100);
                }
                times
            })
        })
        .collect();
    let mut times: Vec<Duration> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    let rate = times.len() as f64 / started.elapsed().as_secs_f64();
    times.sort();
    (times, rate)
}

fn main() {
    let total = arg("--batches", 100_000);
    let clients = arg("--clients", 8);
    let samples = arg("--samples", 2_000);
    let dir = tempfile::tempdir().unwrap();
    // `--metastore-url postgres://…` runs the same benchmark on PostgreSQL.
    let args: Vec<String> = std::env::args().collect();
    let metastore_url = args
        .iter()
        .position(|a| a == "--metastore-url")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let backend = metastore_url
        .as_deref()
        .map_or("embedded SQLite", |_| "PostgreSQL");
    let address = start_server(dir.path(), metastore_url.clone());
    let mut conn = http::Conn::connect(&address).unwrap();
    let mut create_dataset = |name: &str| {
        let reply = conn
            .request(
                "POST",
                "/data/foundation/catalog/dataSets",
                &headers(),
                Some(&json!({"name": name}).to_string()),
            )
            .unwrap();
        assert_eq!(reply.status, 201);
        reply.json()[0]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let target = create_dataset("bench target");
    let other = create_dataset("bench other");

    println!(
        "lakeport catalog benchmark: {total} batches, {clients} client connections, {backend}"
    );
    let warmup = create_batches(&address, &other, 2_000, clients);
    println!("warm-up: 2000 creations in {:.2}s", warmup.as_secs_f64());
    let measured = total.min(20_000);
    let elapsed = create_batches(&address, &target, measured, clients);
    let rate = measured as f64 / elapsed.as_secs_f64();
    println!(
        "| batch creations (POST /import/batches), {clients} connections | {rate:.0} /s ({measured} in {:.2}s) |",
        elapsed.as_secs_f64()
    );
    let single = create_batches(&address, &other, 2_000, 1);
    println!(
        "| batch creations, 1 connection | {:.0} /s |",
        2_000.0 / single.as_secs_f64()
    );

    if total > measured {
        let fill = create_batches(&address, &target, total - measured, clients);
        println!(
            "filled to {total} batches in the target dataset in {:.1}s",
            fill.as_secs_f64()
        );
    }
    for (label, path, connections) in [
        (
            "GET /batches?dataSet=<id>&limit=100, 1 connection",
            format!("/data/foundation/catalog/batches?dataSet={target}&limit=100"),
            1,
        ),
        (
            "GET /batches?dataSet=<id>&limit=100, 4 connections",
            format!("/data/foundation/catalog/batches?dataSet={target}&limit=100"),
            4,
        ),
        (
            "GET /batches?dataSet=<id>&orderBy=desc:created&limit=100, 1 connection",
            format!(
                "/data/foundation/catalog/batches?dataSet={target}&orderBy=desc:created&limit=100"
            ),
            1,
        ),
    ] {
        let (times, rate) = measure_list(&address, &path, samples, connections);
        println!(
            "| {label} | p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {rate:.0} req/s |",
            percentile(&times, 0.50),
            percentile(&times, 0.90),
            percentile(&times, 0.99),
            times.last().unwrap().as_secs_f64() * 1000.0
        );
    }
}
