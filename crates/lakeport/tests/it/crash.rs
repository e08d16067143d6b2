//! Crash safety with the real binary: SIGKILL while a batch is processing, and while an
//! upload is in flight. On the embedded default, or on PostgreSQL and S3 when the
//! environment names them (`backends.rs`).

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::backends::{Database, Objects};
use crate::{Server, headers, send};

pub(crate) const TOKEN: &str = "crash-token";

/// Where a crash test's servers keep their data: the embedded default in the data
/// directory, or a database and a bucket prefix of their own.
pub(crate) struct Backends {
    database: Option<Database>,
    objects: Option<Objects>,
}

impl Backends {
    pub(crate) fn from_env() -> Self {
        Self {
            database: Database::create("crash"),
            objects: Objects::s3(),
        }
    }

    fn start(&self, data_dir: &std::path::Path) -> Server {
        self.start_with(data_dir, Vec::new())
    }

    pub(crate) fn start_with(
        &self,
        data_dir: &std::path::Path,
        mut env: Vec<(&str, String)>,
    ) -> Server {
        if let Some(database) = &self.database {
            env.push(("LAKEPORT__METASTORE__URL", database.url.clone()));
        }
        if let Some(objects) = &self.objects {
            env.extend(objects.env.iter().cloned());
        }
        Server::start_with_env(data_dir, &["--token", TOKEN], &env)
    }

    /// The store the servers write to.
    fn storage(&self, data_dir: &std::path::Path) -> lakeport_storage::Storage {
        match &self.objects {
            Some(objects) => objects.storage(),
            None => lakeport_storage::Storage::open(&format!(
                "file://{}",
                data_dir.join("objects").display()
            ))
            .unwrap(),
        }
    }
}
pub(crate) const TENANT: &str = "acme0123456789abcdef0123";

/// Creates an experience-event schema, a dataset on it and returns the dataset id.
pub(crate) fn event_dataset(conn: &mut crate::http::Conn) -> String {
    let namespace = format!("_{TENANT}");
    let group = send(
        conn,
        TOKEN,
        "POST",
        "/data/foundation/schemaregistry/tenant/fieldgroups",
        Some(json!({
        "title": "crash fields", "type": "object",
        "definitions": {"d": {"properties": {namespace: {"type": "object", "properties": {
            "n": {"type": "integer"}, "text": {"type": "string"}}}}}},
        "allOf": [{"$ref": "#/definitions/d"}]})),
    );
    assert_eq!(group.status, 201, "{}", group.body);
    let schema = send(
        conn,
        TOKEN,
        "POST",
        "/data/foundation/schemaregistry/tenant/schemas",
        Some(json!({
        "title": "crash schema", "type": "object",
        "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}, {"$ref": group.json()["$id"]}]})),
    );
    assert_eq!(schema.status, 201, "{}", schema.body);
    let dataset = send(
        conn,
        TOKEN,
        "POST",
        "/data/foundation/catalog/dataSets",
        Some(json!({
        "name": "crash", "fileDescription": {"format": "json"}, "schemaRef": {"id": schema.json()["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}})),
    );
    assert_eq!(dataset.status, 201, "{}", dataset.body);
    dataset.json()[0]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned()
}

pub(crate) fn rows(count: usize, offset: usize) -> Vec<u8> {
    let namespace = format!("_{TENANT}");
    let mut out = Vec::new();
    for i in offset..offset + count {
        let row = json!({"_id": format!("e{i}"), "timestamp": "2024-05-01T12:00:00Z",
                         namespace.clone(): {"n": i, "text": "some text to make the row a little longer"}});
        writeln!(out, "{row}").unwrap();
    }
    out
}

pub(crate) fn new_batch(conn: &mut crate::http::Conn, dataset: &str) -> String {
    let reply = send(
        conn,
        TOKEN,
        "POST",
        "/data/foundation/import/batches",
        Some(json!({"datasetId": dataset})),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

pub(crate) fn upload(
    conn: &mut crate::http::Conn,
    batch: &str,
    dataset: &str,
    name: &str,
    bytes: &[u8],
) {
    let owned = headers(TOKEN);
    let mut list: Vec<(&str, &str)> = owned
        .iter()
        .filter(|(n, _)| *n != "content-type")
        .map(|(n, v)| (*n, v.as_str()))
        .collect();
    list.push(("content-type", "application/octet-stream"));
    let body = String::from_utf8(bytes.to_vec()).unwrap();
    let path = format!("/data/foundation/import/batches/{batch}/datasets/{dataset}/files/{name}");
    let reply = conn.request("PUT", &path, &list, Some(&body)).unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
}

pub(crate) fn batch(conn: &mut crate::http::Conn, id: &str) -> Value {
    send(
        conn,
        TOKEN,
        "GET",
        &format!("/data/foundation/catalog/batches/{id}"),
        None,
    )
    .json()[id]
        .clone()
}

pub(crate) fn wait_for(
    conn: &mut crate::http::Conn,
    id: &str,
    until: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Value {
    let started = Instant::now();
    loop {
        let current = batch(conn, id);
        if until(current["status"].as_str().unwrap_or_default()) {
            return current;
        }
        assert!(started.elapsed() < timeout, "batch {id} stuck: {current}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `done` every 20 ms until it holds or `timeout` passes (the caller's assertions
/// then say what was not reached).
pub(crate) fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() && started.elapsed() < timeout {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The bytes of every file under `root` (0 when it does not exist).
fn tree_size(root: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(root) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => tree_size(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

pub(crate) fn dataset_files(conn: &mut crate::http::Conn, batch: &str) -> Vec<Value> {
    let reply = send(
        conn,
        TOKEN,
        "GET",
        &format!("/data/foundation/catalog/dataSetFiles?batchId={batch}&limit=100"),
        None,
    );
    reply
        .json()
        .as_object()
        .unwrap()
        .values()
        .cloned()
        .collect()
}

/// Kills the server while a batch is `processing`; after a restart the job is reclaimed
/// and the batch is promoted exactly once.
#[test]
fn a_batch_killed_while_processing_is_promoted_exactly_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::from_env();
    let server = backends.start(dir.path());
    let mut conn = server.conn();
    let dataset = event_dataset(&mut conn);
    let id = new_batch(&mut conn, &dataset);
    let total = 150_000;
    for part in 0..3 {
        upload(
            &mut conn,
            &id,
            &dataset,
            &format!("part-{part}.json"),
            &rows(total / 3, part * total / 3),
        );
    }
    let reply = send(
        &mut conn,
        TOKEN,
        "POST",
        &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
        None,
    );
    assert_eq!(reply.status, 200);
    wait_for(
        &mut conn,
        &id,
        |status| status == "processing",
        Duration::from_secs(30),
    );
    server.kill_9();

    let server = backends.start(dir.path());
    let mut conn = server.conn();
    let done = wait_for(
        &mut conn,
        &id,
        |status| status == "success" || status == "failed",
        Duration::from_secs(120),
    );
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["recordCount"], total);
    let files = dataset_files(&mut conn, &id);
    let records: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!(
        records, total as u64,
        "no duplicate dataset files: {files:?}"
    );
    // Only the committed attempt's Parquet remains in the lake once clean-up ran (it runs
    // after the commit: waited for, up to a deadline).
    let batch_prefix = lakeport_storage::Key::from(format!(
        "lake/{}/prod/datasets/{dataset}/batches/{id}",
        crate::ORG
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let storage = backends.storage(dir.path());
    let attempts = || {
        let keys = runtime.block_on(storage.list_keys(&batch_prefix)).unwrap();
        keys.iter()
            .filter_map(|key| key.parts().nth(batch_prefix.parts().count()))
            .map(|part| part.as_ref().to_owned())
            .collect::<std::collections::BTreeSet<String>>()
    };
    // The killed attempt's scratch directory was collected when the job was reclaimed.
    let scratch = || -> Vec<String> {
        std::fs::read_dir(dir.path().join("work"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    wait_until(Duration::from_secs(60), || {
        attempts().len() == 1 && scratch().is_empty()
    });
    let attempts = attempts();
    assert_eq!(attempts.len(), 1, "orphaned attempts left: {attempts:?}");
    let scratch = scratch();
    assert!(scratch.is_empty(), "scratch directories left: {scratch:?}");
    server.kill_9();
}

/// Kills the server in the middle of an upload: every acknowledged upload is intact, the
/// interrupted one left nothing behind.
#[test]
fn acknowledged_uploads_survive_a_kill_during_another_upload() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::from_env();
    let server = backends.start(dir.path());
    let mut conn = server.conn();
    let dataset = event_dataset(&mut conn);
    let id = new_batch(&mut conn, &dataset);
    upload(&mut conn, &id, &dataset, "acked-1.json", &rows(1000, 0));
    upload(&mut conn, &id, &dataset, "acked-2.json", &rows(500, 1000));

    // Start a 20 MB upload, send half of it, and kill the server mid-body.
    let mut raw = TcpStream::connect(&server.address).unwrap();
    let big = rows(60_000, 10_000);
    let mut request = format!(
        "PUT /data/foundation/import/batches/{id}/datasets/{dataset}/files/interrupted.json HTTP/1.1\r\nhost: x\r\n"
    );
    for (name, value) in headers(TOKEN) {
        if name != "content-type" {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str(&format!(
        "content-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        big.len()
    ));
    let staged_bytes = || tree_size(&dir.path().join("objects").join("staging"));
    let before = staged_bytes();
    raw.write_all(request.as_bytes()).unwrap();
    raw.write_all(&big[..big.len() / 2]).unwrap();
    // Kill once the server is writing the upload (observed in the local store; an S3
    // multipart upload is not visible before it completes, so the kill comes right away).
    if backends.objects.is_none() {
        wait_until(Duration::from_secs(30), || staged_bytes() > before);
    }
    server.kill_9();
    drop(raw);

    let server = backends.start(dir.path());
    let mut conn = server.conn();
    let owned = headers(TOKEN);
    let list: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for (name, size) in [
        ("acked-1.json", rows(1000, 0).len()),
        ("acked-2.json", rows(500, 1000).len()),
    ] {
        let path = format!("/data/foundation/import/batches/{id}/datasets/{dataset}/files/{name}");
        let head = conn.request("HEAD", &path, &list, None).unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("range"),
            Some(format!("bytes=0-{}", size - 1).as_str())
        );
    }
    let path =
        format!("/data/foundation/import/batches/{id}/datasets/{dataset}/files/interrupted.json");
    assert_eq!(
        conn.request("HEAD", &path, &list, None).unwrap().status,
        404
    );
    let reply = send(
        &mut conn,
        TOKEN,
        "POST",
        &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
        None,
    );
    assert_eq!(reply.status, 200);
    let done = wait_for(
        &mut conn,
        &id,
        |status| status == "success" || status == "failed",
        Duration::from_secs(60),
    );
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_u64()),
        (Some("success"), Some(1500)),
        "{done}"
    );
    server.kill_9();
}

/// REVERT's delayed clean-up is committed with the REVERT itself: a server killed right after
/// answering still collects the reverted batch's data once restarted.
#[test]
fn a_revert_killed_right_after_its_answer_is_still_collected() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::from_env();
    let grace = || vec![("LAKEPORT__INGEST__DELETED_DATA_GRACE_SECS", "1".to_owned())];
    let server = backends.start_with(dir.path(), grace());
    let mut conn = server.conn();
    let dataset = event_dataset(&mut conn);
    let id = new_batch(&mut conn, &dataset);
    upload(&mut conn, &id, &dataset, "rows.json", &rows(100, 0));
    let reply = send(
        &mut conn,
        TOKEN,
        "POST",
        &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
        None,
    );
    assert_eq!(reply.status, 200);
    let done = wait_for(
        &mut conn,
        &id,
        |status| status == "success" || status == "failed",
        Duration::from_secs(60),
    );
    assert_eq!(done["status"], "success", "{done}");
    let batch_prefix = lakeport_storage::Key::from(format!(
        "lake/{}/prod/datasets/{dataset}/batches/{id}",
        crate::ORG
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let storage = backends.storage(dir.path());
    let lake_keys = || runtime.block_on(storage.list_keys(&batch_prefix)).unwrap();
    assert!(!lake_keys().is_empty(), "the promoted batch has no Parquet");

    let reply = send(
        &mut conn,
        TOKEN,
        "POST",
        &format!("/data/foundation/import/batches/{id}?action=REVERT"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    server.kill_9();

    let server = backends.start_with(dir.path(), grace());
    let mut conn = server.conn();
    let collected = wait_for(
        &mut conn,
        &id,
        |status| status == "deleted",
        Duration::from_secs(60),
    );
    assert_eq!(collected["status"], "deleted", "{collected}");
    let left = lake_keys();
    assert!(left.is_empty(), "reverted data left in the lake: {left:?}");
    server.kill_9();
}

/// SIGTERM with a backlog of completed batches: the server stops within
/// `server.shutdown_timeout_secs` instead of draining the queue first (it took no new job
/// after the signal), exits 0, and after a restart every batch is promoted once with all
/// its rows.
#[test]
fn sigterm_with_a_backlog_stops_in_time_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::from_env();
    let timeout = vec![("LAKEPORT__SERVER__SHUTDOWN_TIMEOUT_SECS", "3".to_owned())];
    let server = backends.start_with(dir.path(), timeout.clone());
    let mut conn = server.conn();
    let dataset = event_dataset(&mut conn);
    let per_batch = 2_000;
    let mut batches = Vec::new();
    for index in 0..40 {
        let id = new_batch(&mut conn, &dataset);
        upload(
            &mut conn,
            &id,
            &dataset,
            "part.json",
            &rows(per_batch, index * per_batch),
        );
        batches.push(id);
    }
    for id in &batches {
        let reply = send(
            &mut conn,
            TOKEN,
            "POST",
            &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
            None,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // Stop while the worker is busy: the first batch is done, the next one is in hand.
    wait_for(
        &mut conn,
        &batches[0],
        |status| status == "success",
        Duration::from_secs(60),
    );
    let started = Instant::now();
    let status = server.terminate();
    let took = started.elapsed();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    // The bound is 3 s for requests plus 3 s for the job in hand; the rest is slack for a
    // busy machine. Draining 40 batches first took far longer.
    assert!(took < Duration::from_secs(20), "stopped after {took:?}");

    // Without workers: the backlog is still there (the stop did not drain it).
    let mut idle = timeout.clone();
    idle.push(("LAKEPORT__INGEST__WORKERS", "0".to_owned()));
    let server = backends.start_with(dir.path(), idle);
    let mut conn = server.conn();
    let waiting = batches
        .iter()
        .filter(|id| batch(&mut conn, id)["status"] != "success")
        .count();
    assert!(
        waiting >= 30,
        "the stop drained the queue first: {waiting} of 40 batches left"
    );
    server.terminate();

    let server = backends.start_with(dir.path(), timeout);
    let mut conn = server.conn();
    for id in &batches {
        let done = wait_for(
            &mut conn,
            id,
            |status| status == "success" || status == "failed",
            Duration::from_secs(180),
        );
        assert_eq!(done["status"], "success", "{done}");
        assert_eq!(done["recordCount"], per_batch, "{done}");
    }
    server.kill_9();
}

/// Kills the server between a batch's Delta commit and its Catalog commit (the test holds
/// the embedded SQLite database's write lock from the moment the worker holds the dataset's
/// table lock, so the worker commits to the table and then waits right there): after a
/// restart the retry finds the table's commit for the batch, writes no second `add`, and the
/// Catalog names the files the table holds.
#[test]
fn a_batch_killed_between_its_table_commit_and_its_catalog_commit_is_committed_once() {
    let backends = Backends::from_env();
    if backends.database.is_some() {
        // Nothing to hold on PostgreSQL: the lock is the SQLite file's.
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let short_lease = || vec![("LAKEPORT__INGEST__LEASE_SECS", "2".to_owned())];
    let server = backends.start_with(dir.path(), short_lease());
    let mut conn = server.conn();
    let total = 60_000;
    // The write lock is taken between two of the worker's transactions (the table lock,
    // then the Catalog commit); a run in which the test came too late is tried again with a
    // new dataset.
    let mut staged = None;
    for _ in 0..5 {
        let dataset = event_dataset(&mut conn);
        let id = new_batch(&mut conn, &dataset);
        upload(&mut conn, &id, &dataset, "rows.json", &rows(total, 0));
        let reply = send(
            &mut conn,
            TOKEN,
            "POST",
            &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
            None,
        );
        assert_eq!(reply.status, 200);
        if let Some(catalog) = hold_catalog_after_table_lock(&dir.path().join("catalog.db"), &id) {
            staged = Some((dataset, id, catalog));
            break;
        }
    }
    let (dataset, id, catalog) =
        staged.expect("the worker was never caught holding the table lock");
    let root = lakeport_lake::dataset_root(crate::ORG, "prod", &dataset);
    let storage = backends.storage(dir.path());
    let table = lakeport_lake::Table::open(&storage, &root).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let batch_commits = || {
        let commits = runtime.block_on(table.commits()).unwrap();
        commits
            .into_iter()
            .filter(|commit| commit.batch_id.as_deref() == Some(id.as_str()))
            .collect::<Vec<_>>()
    };
    wait_until(Duration::from_secs(60), || !batch_commits().is_empty());
    assert_eq!(
        batch_commits().len(),
        1,
        "the batch was never committed to the table"
    );
    // Readers still answer: the table holds the batch, the Catalog does not yet.
    assert_eq!(batch(&mut conn, &id)["status"], "processing");
    server.kill_9();
    drop(catalog);

    let server = backends.start_with(dir.path(), short_lease());
    let mut conn = server.conn();
    let done = wait_for(
        &mut conn,
        &id,
        |status| status == "success" || status == "failed",
        Duration::from_secs(120),
    );
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["recordCount"], total);
    assert_eq!(done["tableVersion"], 1, "{done}");
    let commits = runtime.block_on(table.commits()).unwrap();
    assert_eq!(
        commits.len(),
        2,
        "the table's creation and one commit: {commits:?}"
    );
    let added = &batch_commits()[0].added;
    let live = runtime.block_on(table.live_files(None)).unwrap();
    assert_eq!(&live, added);
    assert!(
        live.iter().all(|path| path.contains("/attempt-1/")),
        "{live:?}"
    );
    let files = dataset_files(&mut conn, &id);
    let records: u64 = files.iter().map(|f| f["records"].as_u64().unwrap()).sum();
    assert_eq!((files.len(), records), (live.len(), total as u64));
    // The clean-up keeps the attempts the Catalog names and deletes the others: only the
    // first attempt, the one the table holds, is left.
    let batch_prefix = root.clone().join("batches").join(id.as_str());
    let attempts = || {
        let keys = runtime.block_on(storage.list_keys(&batch_prefix)).unwrap();
        keys.iter()
            .filter_map(|key| key.parts().nth(batch_prefix.parts().count()))
            .map(|part| part.as_ref().to_owned())
            .collect::<std::collections::BTreeSet<String>>()
    };
    wait_until(Duration::from_secs(60), || attempts().len() == 1);
    assert_eq!(
        attempts().into_iter().collect::<Vec<_>>(),
        ["attempt-1"],
        "the table's files were kept"
    );
    server.kill_9();
}

/// Waits until the worker promoting `batch` holds its dataset's table lock, then takes the
/// SQLite database's write lock and returns the connection holding it; None when the batch
/// was committed to the Catalog before the test got there.
fn hold_catalog_after_table_lock(
    path: &std::path::Path,
    batch: &str,
) -> Option<rusqlite::Connection> {
    let catalog = rusqlite::Connection::open(path).unwrap();
    catalog.busy_timeout(Duration::from_secs(10)).unwrap();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(120) {
        let locked: i64 = catalog
            .query_row(
                "SELECT count(*) FROM table_locks l JOIN jobs j ON j.id = l.job_id
                 WHERE j.batch_id = ?1 AND j.status = 'running'",
                [batch],
                |row| row.get(0),
            )
            .unwrap();
        if locked > 0 {
            catalog.execute_batch("BEGIN IMMEDIATE").unwrap();
            let status: String = catalog
                .query_row(
                    "SELECT json_extract(doc, '$.status') FROM batches WHERE id = ?1",
                    [batch],
                    |row| row.get(0),
                )
                .unwrap();
            if status == "processing" {
                return Some(catalog);
            }
            catalog.execute_batch("ROLLBACK").unwrap();
            return None;
        }
        let status: Option<String> = catalog
            .query_row(
                "SELECT json_extract(doc, '$.status') FROM batches WHERE id = ?1",
                [batch],
                |row| row.get(0),
            )
            .ok();
        if status.as_deref() == Some("success") {
            return None;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("the batch {batch} never reached the table commit");
}
