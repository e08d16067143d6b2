//! Streaming with the real binary: senders stream while the server is killed with
//! SIGKILL and restarted; every acknowledged record lands in the dataset exactly once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::crash::{Backends, TENANT, TOKEN, event_dataset, wait_until};
use crate::http::Conn;
use crate::send;

const FLOW: &str = "/data/foundation/flowservice";

fn created(reply: &crate::http::Reply) -> String {
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_str().unwrap().to_owned()
}

/// Creates the streaming chain for a dataset; returns the inlet id.
pub(crate) fn streaming_inlet(conn: &mut Conn, token: &str, dataset: &str) -> String {
    let base = created(&send(
        conn,
        token,
        "POST",
        &format!("{FLOW}/connections"),
        Some(json!({
        "name": "crash inlet", "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
        "auth": {"specName": "Streaming Connection", "params": {"name": "crash"}}})),
    ));
    let inlet = send(
        conn,
        token,
        "GET",
        &format!("{FLOW}/connections/{base}"),
        None,
    )
    .json()["items"][0]["auth"]["params"]["inletId"]
        .as_str()
        .unwrap()
        .to_owned();
    let source = created(&send(
        conn,
        token,
        "POST",
        &format!("{FLOW}/sourceConnections"),
        Some(json!({
        "name": "s", "baseConnectionId": base, "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}})),
    ));
    let target = created(&send(
        conn,
        token,
        "POST",
        &format!("{FLOW}/targetConnections"),
        Some(json!({
        "name": "t", "params": {"dataSetId": dataset}, "connectionSpec": {"id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c", "version": "1.0"}})),
    ));
    created(&send(
        conn,
        token,
        "POST",
        &format!("{FLOW}/flows"),
        Some(json!({
        "name": "f", "flowSpec": {"id": "d8a6f005-7eaf-4153-983e-e8574508b877", "version": "1.0"},
        "sourceConnectionIds": [source], "targetConnectionIds": [target]})),
    ));
    inlet
}

pub(crate) fn message(n: usize) -> String {
    json!({"header": {"source": {"name": "crash"}}, "body": {"xdmEntity": {
        "_id": format!("s{n}"), "timestamp": "2024-05-01T12:00:00Z",
        format!("_{TENANT}"): {"n": n, "text": "streamed"}}}})
    .to_string()
}

/// The streaming batches of the dataset: (id, status, recordCount).
pub(crate) fn stream_batches(conn: &mut Conn, dataset: &str) -> Vec<(String, String, u64)> {
    let reply = send(
        conn,
        TOKEN,
        "GET",
        &format!("/data/foundation/catalog/batches?dataSet={dataset}&limit=100"),
        None,
    );
    reply
        .json()
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, batch)| {
            (
                id.clone(),
                batch["status"].as_str().unwrap_or_default().to_owned(),
                batch["recordCount"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// Reads the `_id`s of a batch's rows back through Data Access (Parquet downloads).
pub(crate) fn landed_ids(conn: &mut Conn, batch: &str) -> Vec<String> {
    let owned = crate::headers(TOKEN);
    let list: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let files = send(
        conn,
        TOKEN,
        "GET",
        &format!("/data/foundation/export/batches/{batch}/files"),
        None,
    )
    .json();
    let mut ids = Vec::new();
    for file in files["data"].as_array().unwrap() {
        let id = file["dataSetFileId"].as_str().unwrap();
        let listing = send(
            conn,
            TOKEN,
            "GET",
            &format!("/data/foundation/export/files/{id}"),
            None,
        )
        .json();
        let name = listing["data"][0]["name"].as_str().unwrap();
        let bytes = conn
            .request(
                "GET",
                &format!("/data/foundation/export/files/{id}?path={name}"),
                &list,
                None,
            )
            .unwrap()
            .raw;
        let path = std::env::temp_dir().join(format!("lakeport-stream-{id}.parquet"));
        std::fs::write(&path, &bytes).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let column = batch.column_by_name("_id").unwrap();
            let strings = arrow_array::cast::AsArray::as_string_opt::<i32>(column.as_ref())
                .map(|array| {
                    array
                        .iter()
                        .map(|v| v.unwrap().to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_else(|| {
                    arrow_array::cast::AsArray::as_string::<i64>(column.as_ref())
                        .iter()
                        .map(|v| v.unwrap().to_owned())
                        .collect()
                });
            ids.extend(strings);
        }
    }
    ids
}

#[test]
fn every_acknowledged_streamed_record_lands_exactly_once_across_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let backends = Backends::from_env();
    let env = || vec![("LAKEPORT__STREAM__FLUSH_INTERVAL_MS", "300".to_owned())];
    let mut server = backends.start_with(dir.path(), env());
    let mut conn = server.conn();
    let dataset = event_dataset(&mut conn);
    let inlet = streaming_inlet(&mut conn, TOKEN, &dataset);
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    for _round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let senders: Vec<_> = (0..3)
            .map(|_| {
                let (address, inlet) = (server.address.clone(), inlet.clone());
                let (acked, next, stop) =
                    (Arc::clone(&acked), Arc::clone(&next), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let Ok(mut conn) = Conn::connect(&address) else {
                        return;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let reply = conn.request(
                            "POST",
                            &format!("/collection/{inlet}"),
                            &[("content-type", "application/json")],
                            Some(&message(n)),
                        );
                        match reply {
                            Ok(reply) if reply.status == 200 => acked.lock().unwrap().push(n),
                            Ok(reply) => {
                                panic!("message {n} answered {}: {}", reply.status, reply.body)
                            }
                            // The server was killed: this message is unacknowledged.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        let target = acked.lock().unwrap().len() + 300;
        wait_until(Duration::from_secs(60), || {
            acked.lock().unwrap().len() >= target
        });
        server.kill_9();
        stop.store(true, Ordering::Relaxed);
        for sender in senders {
            sender.join().unwrap();
        }
        server = backends.start_with(dir.path(), env());
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 900, "{} acknowledged", acked.len());
    let mut conn = server.conn();
    // Every segment becomes a terminal batch holding at least every acknowledged record.
    let landed = |conn: &mut Conn| {
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
    wait_until(Duration::from_secs(180), || landed(&mut conn));
    let batches = stream_batches(&mut conn, &dataset);
    assert!(
        batches.iter().all(|(_, status, _)| status == "success"),
        "{batches:?}"
    );
    let mut ids: Vec<String> = Vec::new();
    for (batch, _, _) in &batches {
        ids.extend(landed_ids(&mut conn, batch));
    }
    eprintln!(
        "{} acknowledged, {} landed in {} batches",
        acked.len(),
        ids.len(),
        batches.len()
    );
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a record landed twice");
    for n in &acked {
        assert!(
            sorted.binary_search(&format!("s{n}")).is_ok(),
            "acknowledged record s{n} is missing"
        );
    }
    server.kill_9();
}
