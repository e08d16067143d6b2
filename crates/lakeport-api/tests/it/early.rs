//! Uploads processed while they arrive (`ingest.early_processing`): the batch comes out the
//! same as when its file is processed after `COMPLETE`, and whatever changed in between
//! (the schema, a second file, a replaced file) makes the job process the files again.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const EXPORT: &str = "/data/foundation/export";

fn ns() -> String {
    format!("_{TENANT_A}")
}

/// Rows of the event dataset, every fifth one refused for a different rule, and one line
/// that is not JSON.
fn json_rows() -> Vec<u8> {
    let mut out = String::new();
    for index in 0..400 {
        let mut row = json!({
            "_id": format!("evt-{index}"),
            "timestamp": "2024-03-01T10:00:00Z",
            ns(): {"memberId": format!("M-{:03}", index % 1000), "tier": "gold", "points": index,
                   "tags": ["a"], "address": {"city": "Basel"}, "nickname": "n"}
        });
        match index % 25 {
            5 => row[ns()]["tier"] = json!("platinum"),
            10 => row[ns()]["points"] = json!(-1),
            15 => row[ns()]["memberId"] = json!("X-1"),
            20 => {
                row.as_object_mut().unwrap().remove("timestamp");
            }
            _ => {}
        }
        out.push_str(&row.to_string());
        out.push('\n');
        if index == 200 {
            out.push_str("{not json\n");
        }
    }
    out.into_bytes()
}

fn csv_rows() -> Vec<u8> {
    let mut out = format!("_id,timestamp,{0}.memberId,{0}.points\n", ns());
    for index in 0..300 {
        let points = if index % 30 == 7 {
            "-5".to_owned()
        } else {
            index.to_string()
        };
        out.push_str(&format!(
            "c-{index},2024-03-01T10:00:00Z,M-{:03},{points}\n",
            index % 1000
        ));
    }
    out.into_bytes()
}

/// What a finished batch shows: its Catalog record without ids and times, its rows and its
/// rejected rows.
async fn outcome(app: &TestApp, batch: &str) -> Value {
    let mut record = app.batch(batch).await;
    for time in ["startTime", "endTime"] {
        record["metrics"].as_object_mut().unwrap().remove(time);
    }
    let mut rows = app.promoted_rows(batch).await;
    rows.sort_by_key(|row| row["_id"].as_str().unwrap_or_default().to_owned());
    let failed = app
        .get(&format!(
            "{EXPORT}/batches/{batch}/failed?path=part-00001.json"
        ))
        .send()
        .await;
    json!({
        "status": record["status"], "recordCount": record["recordCount"],
        "failedRecordCount": record["failedRecordCount"], "errors": record["errors"],
        "metrics": record["metrics"], "size": record["size"], "rows": rows,
        "failed": (failed.status == StatusCode::OK).then_some(failed.text),
    })
}

async fn ingest(app: &TestApp, dataset: &str, format: &str, path: &str, body: &[u8]) -> Value {
    let request = json!({"datasetId": dataset, "inputFormat": {"format": format},
        "partialIngestionPercent": 50, "enableErrorDiagnostics": true});
    let batch = new_batch(app, request).await;
    app.upload(&batch, dataset, path, body).await;
    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    outcome(app, &batch).await
}

async fn new_batch(app: &TestApp, body: Value) -> String {
    app.create_batch(body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn app_with(early: bool) -> TestApp {
    TestApp::with_config(|config| config.ingest.early_processing = early).await
}

#[tokio::test]
async fn a_file_processed_while_it_uploads_makes_the_same_batch() {
    let mut outcomes = Vec::new();
    for early in [true, false] {
        let app = app_with(early).await;
        let dataset = app.create_event_dataset("events").await;
        let json = ingest(&app, &dataset, "json", "day=1/rows.json", &json_rows()).await;
        let csv = ingest(&app, &dataset, "csv", "rows.csv", &csv_rows()).await;
        let local = app.storage_is_local();
        assert_eq!(app.early_runs_taken(), if early && local { 2 } else { 0 });
        outcomes.push((json, csv));
    }
    let (json, csv) = &outcomes[0];
    assert_eq!(json["status"], "success", "{json}");
    assert_eq!(json["failedRecordCount"], 65, "{json}");
    assert_eq!(json["rows"].as_array().unwrap().len(), 336);
    assert!(
        json["failed"].as_str().unwrap().contains("not json"),
        "{json}"
    );
    assert_eq!(csv["failedRecordCount"], 10, "{csv}");
    assert_eq!(outcomes[0], outcomes[1]);
}

/// The dataset's field group gains a field after the upload: the job sees the new schema,
/// so the early run (which dropped the field as unknown) is not used.
#[tokio::test]
async fn a_schema_changed_after_the_upload_is_the_one_used() {
    let app = app_with(true).await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(
        &app,
        json!({"datasetId": dataset, "partialIngestionPercent": 50}),
    )
    .await;
    app.upload(&batch, &dataset, "rows.json", &json_rows())
        .await;

    app.add_event_field(&dataset, "nickname", json!({"type": "string"}))
        .await;

    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(app.early_runs_taken(), 0);
    let rows = app.promoted_rows(&batch).await;
    assert!(!rows.is_empty());
    assert!(
        rows.iter().all(|row| row[ns()]["nickname"] == "n"),
        "{:?}",
        rows[0]
    );
}

/// A batch of two files, and a file uploaded twice: the job processes what the batch holds
/// at `COMPLETE`, not what was processed early.
#[tokio::test]
async fn a_second_or_replaced_file_is_processed_after_complete() {
    let app = app_with(true).await;
    let dataset = app.create_event_dataset("events").await;
    let rows = json_rows();
    let (first, second) = rows.split_at(rows.iter().position(|&b| b == b'\n').unwrap() + 1);

    let batch = new_batch(&app, json!({"datasetId": dataset})).await;
    app.upload(&batch, &dataset, "a.json", first).await;
    app.wait_for_early_runs().await;
    // The second file drops the first one's run and starts none.
    app.upload(&batch, &dataset, "b.json", second).await;
    let local = u64::from(app.storage_is_local());
    assert_eq!(app.early_runs_started(), local);
    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    let both = app.batch(&batch).await;
    assert_eq!(both["metrics"]["inputRecordCount"], 401, "{both}");
    assert_eq!(app.early_runs_taken(), 0);

    let batch = new_batch(&app, json!({"datasetId": dataset})).await;
    app.upload(&batch, &dataset, "a.json", &rows).await;
    // One run at a time per worker: the next upload is run early once this one is over.
    app.wait_for_early_runs().await;
    app.upload(&batch, &dataset, "a.json", first).await;
    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    let replaced = app.batch(&batch).await;
    assert_eq!(replaced["metrics"]["inputRecordCount"], 1, "{replaced}");
    assert_eq!(app.promoted_rows(&batch).await[0]["_id"], "evt-0");
    // The replaced file's run was dropped; the replacing one's was used.
    assert_eq!(app.early_runs_started(), 3 * local);
    assert_eq!(app.early_runs_taken(), local);
}

/// An aborted batch's early run goes with its staged files: nothing is left in the work
/// directory once its clean-up has run.
#[tokio::test]
async fn an_aborted_batch_leaves_no_early_run_behind() {
    let app = app_with(true).await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(&app, json!({"datasetId": dataset})).await;
    app.upload(&batch, &dataset, "rows.json", &json_rows())
        .await;
    app.wait_for_early_runs().await;
    let early_dirs = || {
        std::fs::read_dir(app.config().work_dir())
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.file_name().to_string_lossy().starts_with("early-"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!(early_dirs(), usize::from(app.storage_is_local()));
    assert_eq!(app.signal(&batch, "ABORT").await.status, StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(early_dirs(), 0);
    assert_eq!(app.early_runs_taken(), 0);
}

/// A file that declares fewer bytes than `ingest.early_processing_min_bytes` is processed
/// after `COMPLETE` only: preparing a run would cost more than it saves.
#[tokio::test]
async fn a_small_upload_is_not_run_early() {
    let app = TestApp::with_config(|config| {
        config.ingest.early_processing_min_bytes = 1024 * 1024;
    })
    .await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(
        &app,
        json!({"datasetId": dataset, "partialIngestionPercent": 50}),
    )
    .await;
    // As curl and the Python clients send it: with its length declared.
    let rows = json_rows();
    let mut put = app
        .put(&format!(
            "/data/foundation/import/batches/{batch}/datasets/{dataset}/files/rows.json"
        ))
        .header("content-type", "application/octet-stream")
        .header("content-length", &rows.len().to_string());
    put.body_bytes = Some(rows);
    assert_eq!(put.send().await.status, StatusCode::OK);
    assert_eq!(app.early_runs_started(), 0);
    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(app.batch(&batch).await["recordCount"], 336);
}
