//! Several `lakeport serve` processes sharing one PostgreSQL database and one object store
//! behave as one service. Runs when `TEST_DATABASE_URL` names a PostgreSQL server on which
//! the test may create databases (CI sets it); skipped otherwise. The object store is an S3
//! bucket when `TEST_S3_ENDPOINT` names a server (`TEST_S3_BUCKET`, default
//! `lakeport-test`, with the `AWS_*` credentials), a shared directory otherwise.

use std::time::Duration;

use crate::Server;
use crate::backends::{Database, Objects, psql};
use crate::crash::{TOKEN, dataset_files, event_dataset, new_batch, rows, upload, wait_for};

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
/// claimed. Four workers (two per node) commit to the dataset's one Delta table at once, and
/// the metastore's table lock makes its log a gap-free sequence of one commit per batch
/// (spec §12), each the version the batch's Catalog entry records.
#[test]
fn two_nodes_on_one_database_promote_every_batch_exactly_once() {
    let Some(database) = Database::create("multinode") else {
        return;
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let objects = Objects::create();
    let nodes = [
        node(dirs[0].path(), &database, &objects, 2),
        node(dirs[1].path(), &database, &objects, 2),
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
    let mut versions = Vec::new();
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
        versions.push((done["tableVersion"].as_u64().unwrap(), batch.clone()));
    }
    // The _delta_log, read back: version 0 creates the table, then one commit per batch,
    // no version missing, none twice, each the one the Catalog recorded.
    let storage = objects.storage();
    let table = lakeport_lake::Table::open(
        &storage,
        &lakeport_lake::dataset_root(crate::ORG, "prod", &dataset),
    )
    .unwrap();
    let commits = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(table.commits())
        .unwrap();
    assert_eq!(
        commits.iter().map(|c| c.version).collect::<Vec<_>>(),
        (0..=50).collect::<Vec<u64>>(),
        "a gap-free version sequence"
    );
    let mut logged: Vec<(u64, String)> = commits[1..]
        .iter()
        .map(|commit| {
            assert_eq!(commit.operation.as_deref(), Some(lakeport_lake::PROMOTE));
            assert_eq!(commit.added.len(), 1, "{commit:?}");
            (commit.version, commit.batch_id.clone().unwrap())
        })
        .collect();
    logged.sort();
    versions.sort();
    assert_eq!(
        logged, versions,
        "one commit per batch, at the version the Catalog records"
    );
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
    let Some(database) = Database::create("multinode") else {
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

/// Four senders stream to two nodes (two send single messages, two batches of five) while
/// both nodes' workers seal and flush: every acknowledged record lands exactly once (ids
/// read back through Data Access). Then the flow is deleted through node 0, and node 1,
/// whose cache still holds the inlet's routing, routes no further record.
#[test]
fn two_nodes_accept_streamed_records_and_each_lands_exactly_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use crate::stream::{landed_ids, message, stream_batches, streaming_inlet};

    let Some(database) = Database::create("multistream") else {
        return;
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let objects = Objects::create();
    let start = |dir: &std::path::Path| {
        let mut env = vec![
            ("LAKEPORT__METASTORE__URL", database.url.clone()),
            ("LAKEPORT__INGEST__WORKERS", "1".to_owned()),
            ("LAKEPORT__STREAM__FLUSH_INTERVAL", "300ms".to_owned()),
        ];
        env.extend(objects.env.iter().cloned());
        Server::start_with_env(dir, &["--token", TOKEN], &env)
    };
    let nodes = [start(dirs[0].path()), start(dirs[1].path())];
    let mut conns = [nodes[0].conn(), nodes[1].conn()];
    let dataset = event_dataset(&mut conns[0]);
    let inlet = streaming_inlet(&mut conns[0], TOKEN, &dataset);
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for sender in 0..4 {
            let address = nodes[sender % 2].address.clone();
            let (inlet, acked, next) = (inlet.clone(), Arc::clone(&acked), Arc::clone(&next));
            scope.spawn(move || {
                let mut conn = crate::http::Conn::connect(&address).unwrap();
                let per_request = if sender < 2 { 1 } else { 5 };
                for _ in 0..100 {
                    let first = next.fetch_add(per_request, Ordering::Relaxed);
                    let numbers: Vec<usize> = (first..first + per_request).collect();
                    let (path, body) = if per_request == 1 {
                        (format!("/collection/{inlet}"), message(first))
                    } else {
                        let messages: Vec<String> = numbers.iter().map(|n| message(*n)).collect();
                        (
                            format!("/collection/batch/{inlet}"),
                            format!("{{\"messages\": [{}]}}", messages.join(",")),
                        )
                    };
                    let reply = conn
                        .request(
                            "POST",
                            &path,
                            &[("content-type", "application/json")],
                            Some(&body),
                        )
                        .unwrap();
                    assert!(
                        reply.status == 200 || reply.status == 207,
                        "{}: {}",
                        reply.status,
                        reply.body
                    );
                    if reply.status == 207 {
                        let answers = reply.json()["responses"].as_array().unwrap().clone();
                        assert!(
                            answers.iter().all(|a| a.get("xactionId").is_some()),
                            "{}",
                            reply.body
                        );
                    }
                    acked.lock().unwrap().extend(numbers);
                }
            });
        }
    });
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 2 * 100 + 2 * 500);
    let landed = |conn: &mut crate::http::Conn| {
        let batches = stream_batches(conn, &dataset);
        let settled = batches
            .iter()
            .all(|(_, status, _)| status == "success" || status == "failed");
        let records: u64 = batches
            .iter()
            .filter(|(_, s, _)| s == "success")
            .map(|(_, _, n)| n)
            .sum();
        settled && records >= acked.len() as u64
    };
    crate::crash::wait_until(Duration::from_secs(180), || landed(&mut conns[1]));
    let batches = stream_batches(&mut conns[1], &dataset);
    assert!(
        batches.iter().all(|(_, status, _)| status == "success"),
        "{batches:?}"
    );
    let mut ids: Vec<String> = Vec::new();
    for (batch, _, _) in &batches {
        ids.extend(landed_ids(&mut conns[(ids.len()) % 2], batch));
    }
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a record landed twice");
    assert_eq!(ids.len(), acked.len(), "{batches:?}");
    for n in &acked {
        assert!(
            sorted.binary_search(&format!("s{n}")).is_ok(),
            "s{n} is missing"
        );
    }

    // Node 1 routes a message (its cache now holds the inlet, for a second), then the flow
    // is deleted through node 0.
    let warm = conns[1]
        .request(
            "POST",
            &format!("/collection/{inlet}"),
            &[("content-type", "application/json")],
            Some(&message(999_999)),
        )
        .unwrap();
    assert_eq!(warm.status, 200, "{}", warm.body);
    let flows = crate::send(
        &mut conns[0],
        TOKEN,
        "GET",
        "/data/foundation/flowservice/flows",
        None,
    )
    .json();
    let flow = flows["items"][0]["id"].as_str().unwrap().to_owned();
    let deleted = crate::send(
        &mut conns[0],
        TOKEN,
        "DELETE",
        &format!("/data/foundation/flowservice/flows/{flow}"),
        None,
    );
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let reply = conns[1]
        .request(
            "POST",
            &format!("/collection/{inlet}"),
            &[("content-type", "application/json")],
            Some(&message(1_000_000)),
        )
        .unwrap();
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("has no flow yet"), "{}", reply.body);
}
