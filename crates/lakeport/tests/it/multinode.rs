//! Several `lakeport serve` processes sharing one PostgreSQL database and one object store
//! behave as one service. Runs when `TEST_DATABASE_URL` names a PostgreSQL server on which
//! the test may create databases (CI sets it); skipped otherwise. The object store is an S3
//! bucket when `TEST_S3_ENDPOINT` names a server (`TEST_S3_BUCKET`, default
//! `lakeport-test`, with the `AWS_*` credentials), a shared directory otherwise.

use std::process::Command;
use std::time::Duration;

use crate::Server;
use crate::crash::{TOKEN, dataset_files, event_dataset, new_batch, rows, upload, wait_for};

/// A fresh database on the test server, dropped at the end.
struct Database {
    admin_url: String,
    name: String,
    url: String,
}

impl Database {
    fn create() -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("note: TEST_DATABASE_URL is not set; the multi-node tests are skipped");
            return None;
        };
        let name = format!(
            "lakeport_multinode_{}_{}",
            std::process::id(),
            rand_suffix()
        );
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-At", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The object store the nodes share: a prefix of its own in the test bucket, or a
/// temporary directory.
struct Objects {
    env: Vec<(&'static str, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Objects {
    fn create() -> Self {
        if let Ok(endpoint) = std::env::var("TEST_S3_ENDPOINT") {
            let bucket =
                std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "lakeport-test".to_owned());
            return Self {
                env: vec![
                    (
                        "LAKEPORT__STORAGE__URL",
                        format!(
                            "s3://{bucket}/multinode-{}-{}",
                            std::process::id(),
                            rand_suffix()
                        ),
                    ),
                    ("LAKEPORT__STORAGE__ENDPOINT", endpoint),
                ],
                _dir: None,
            };
        }
        let dir = tempfile::tempdir().unwrap();
        Self {
            env: vec![(
                "LAKEPORT__STORAGE__URL",
                format!("file://{}", dir.path().display()),
            )],
            _dir: Some(dir),
        }
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        let Some((_, url)) = self
            .env
            .iter()
            .find(|(name, value)| *name == "LAKEPORT__STORAGE__URL" && value.starts_with("s3://"))
        else {
            return;
        };
        let endpoint = std::env::var("TEST_S3_ENDPOINT").ok();
        let storage = lakeport_storage::Storage::open_with(
            url,
            &lakeport_storage::S3Settings {
                endpoint,
                ..lakeport_storage::S3Settings::default()
            },
        );
        if let Ok(storage) = storage {
            let emptied = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(storage.delete_prefix(&lakeport_storage::Key::from("")));
            if let Err(err) = emptied {
                eprintln!("note: cannot empty {url}: {err}");
            }
        }
    }
}

fn node(data: &std::path::Path, database: &Database, objects: &Objects, workers: u32) -> Server {
    let mut env = vec![
        ("LAKEPORT__METASTORE__URL", database.url.clone()),
        ("LAKEPORT__INGEST__WORKERS", workers.to_string()),
    ];
    env.extend(objects.env.iter().cloned());
    Server::start_with_env(data, &["--token", TOKEN], &env)
}

/// 50 batches created and uploaded through alternating nodes and completed concurrently:
/// every batch ends `success` exactly once, with no duplicate dataset files and no job left
/// claimed.
#[test]
fn two_nodes_on_one_database_promote_every_batch_exactly_once() {
    let Some(database) = Database::create() else {
        return;
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let objects = Objects::create();
    let nodes = [
        node(dirs[0].path(), &database, &objects, 1),
        node(dirs[1].path(), &database, &objects, 1),
    ];
    let mut conns = [nodes[0].conn(), nodes[1].conn()];
    let dataset = event_dataset(&mut conns[0]);
    let mut batches = Vec::new();
    for index in 0..50 {
        let creator = index % 2;
        let batch = new_batch(&mut conns[creator], &dataset);
        upload(
            &mut conns[1 - creator],
            &batch,
            &dataset,
            "rows.json",
            &rows(20, index * 20),
        );
        batches.push(batch);
    }
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    std::thread::scope(|scope| {
        for (index, batch) in batches.iter().enumerate() {
            let address = addresses[index % 2].clone();
            scope.spawn(move || {
                let mut conn = crate::http::Conn::connect(&address).unwrap();
                let reply = crate::send(
                    &mut conn,
                    TOKEN,
                    "POST",
                    &format!("/data/foundation/import/batches/{batch}?action=COMPLETE"),
                    None,
                );
                assert_eq!(reply.status, 200, "{}", reply.body);
            });
        }
    });
    for (index, batch) in batches.iter().enumerate() {
        let done = wait_for(
            &mut conns[index % 2],
            batch,
            |s| s == "success" || s == "failed",
            Duration::from_secs(120),
        );
        assert_eq!(
            (done["status"].as_str(), done["recordCount"].as_u64()),
            (Some("success"), Some(20)),
            "{done}"
        );
        let files = dataset_files(&mut conns[1 - index % 2], batch);
        assert_eq!(
            files.len(),
            1,
            "exactly one dataset file for {batch}: {files:?}"
        );
    }
    assert_eq!(
        psql(
            &database.url,
            "SELECT count(*) FROM jobs WHERE status IN ('running', 'queued') AND kind = 'promote_batch'"
        ),
        "0"
    );
    assert_eq!(
        psql(
            &database.url,
            "SELECT count(*) FROM jobs WHERE kind = 'promote_batch' AND status = 'done'"
        ),
        "50"
    );
}

/// A worker killed mid-job: another node's worker reclaims the job and finishes the batch.
#[test]
fn another_node_finishes_a_batch_whose_worker_was_killed() {
    let Some(database) = Database::create() else {
        return;
    };
    let dirs = [
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    ];
    let objects = Objects::create();
    // Node A only answers HTTP; node B is the only worker until it is killed.
    let api = node(dirs[0].path(), &database, &objects, 0);
    let worker = node(dirs[1].path(), &database, &objects, 1);
    let mut conn = api.conn();
    let dataset = event_dataset(&mut conn);
    let batch = new_batch(&mut conn, &dataset);
    for part in 0..3 {
        upload(
            &mut conn,
            &batch,
            &dataset,
            &format!("part-{part}.json"),
            &rows(50_000, part * 50_000),
        );
    }
    let reply = crate::send(
        &mut conn,
        TOKEN,
        "POST",
        &format!("/data/foundation/import/batches/{batch}?action=COMPLETE"),
        None,
    );
    assert_eq!(reply.status, 200);
    wait_for(
        &mut conn,
        &batch,
        |s| s == "processing",
        Duration::from_secs(60),
    );
    worker.kill_9();
    let rescuer = node(dirs[2].path(), &database, &objects, 1);
    let done = wait_for(
        &mut conn,
        &batch,
        |s| s == "success" || s == "failed",
        Duration::from_secs(180),
    );
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_u64()),
        (Some("success"), Some(150_000)),
        "{done}"
    );
    let files = dataset_files(&mut conn, &batch);
    let records: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!(records, 150_000, "no duplicate dataset files: {files:?}");
    let attempts = psql(
        &database.url,
        "SELECT attempts FROM jobs WHERE kind = 'promote_batch'",
    );
    assert_eq!(attempts, "2", "the killed attempt and the rescuing one");
    drop(rescuer);
}
