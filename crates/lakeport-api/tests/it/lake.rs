//! The open lake (spec §12): each dataset is a Delta table, read back here with delta-rs.

use axum::http::StatusCode;
use lakeport_lake::{PROMOTE, REVERT, Table};
use serde_json::{Value, json};

use crate::support::*;

fn ns() -> String {
    format!("_{TENANT_A}")
}

fn event(index: usize) -> Value {
    json!({
        "_id": format!("evt-{index}"),
        "timestamp": "2024-03-01T10:00:00Z",
        ns(): {"memberId": format!("M-{:03}", index % 1000), "points": index}
    })
}

fn lines(rows: &[Value]) -> Vec<u8> {
    rows.iter()
        .map(|row| format!("{row}\n"))
        .collect::<String>()
        .into_bytes()
}

async fn ingest(app: &TestApp, dataset: &str, extra: Value, rows: &[Value]) -> (String, Value) {
    let mut body = json!({"datasetId": dataset});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    let batch = app.create_batch(body).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.upload(&batch, dataset, "rows.json", &lines(rows)).await;
    let reply = app.signal(&batch, "COMPLETE").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    app.run_jobs().await;
    let done = app.batch(&batch).await;
    (batch, done)
}

fn table(app: &TestApp, dataset: &str) -> Table {
    let root = lakeport_lake::dataset_root(ORG_A, "prod", dataset);
    Table::open(app.storage(), &root).unwrap()
}

/// Returns the rows of the table's live files at `version`, sorted by `_id`.
async fn table_rows(app: &TestApp, table: &Table, version: Option<u64>) -> Vec<Value> {
    let mut rows = Vec::new();
    for path in table.live_files(version).await.unwrap() {
        let file = app
            .storage()
            .readable_file(&table.key_of(&path), &app.data_dir().join("fetched"))
            .await
            .unwrap();
        rows.extend(read_parquet(file.path()));
    }
    rows.sort_by_key(|row| row["_id"].as_str().unwrap_or_default().to_owned());
    rows
}

async fn batch_rows(app: &TestApp, batches: &[&str]) -> Vec<Value> {
    let mut rows = Vec::new();
    for batch in batches {
        rows.extend(app.promoted_rows(batch).await);
    }
    rows.sort_by_key(|row| row["_id"].as_str().unwrap_or_default().to_owned());
    rows
}

async fn dataset_doc(app: &TestApp, dataset: &str) -> Value {
    let reply = app
        .get(&format!("/data/foundation/catalog/dataSets/{dataset}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    reply.body[dataset].clone()
}

#[tokio::test]
async fn each_successful_batch_is_one_delta_commit_and_revert_and_replay_remove_its_files() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let table = table(&app, &dataset);
    let doc = dataset_doc(&app, &dataset).await;
    assert_eq!(doc["tags"]["adobe/siphon/table/format"], json!(["delta"]));
    assert_eq!(doc["basePath"], json!(table.location()));

    let (first, done) = ingest(&app, &dataset, json!({}), &[event(1), event(2)]).await;
    assert_eq!(done["status"], "success");
    assert_eq!(done["tableVersion"], 1);
    // A partial batch commits only its good rows' file.
    let mut rows = vec![event(3), event(4)];
    rows[1][ns()]["memberId"] = json!("bad");
    let (partial, done) = ingest(
        &app,
        &dataset,
        json!({"partialIngestionPercent": 50}),
        &rows,
    )
    .await;
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_u64()),
        (Some("success"), Some(1))
    );
    assert_eq!(done["tableVersion"], 2);
    // A failed batch never commits.
    let (failed, done) = ingest(&app, &dataset, json!({}), &rows).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done.get("tableVersion"), None);
    assert_eq!(dataset_doc(&app, &dataset).await["tableVersion"], 2);
    assert_eq!(
        table_rows(&app, &table, None).await,
        batch_rows(&app, &[&first, &partial]).await
    );

    // A replay of the first batch adds its rows and removes the first's in one commit.
    let replay_body = json!({"replay": {"predecessors": [first], "reason": "replace"}});
    let (replay, done) = ingest(&app, &dataset, replay_body, &[event(5)]).await;
    assert_eq!(done["status"], "success");
    assert_eq!(done["tableVersion"], 3);
    // REVERT of the partial batch removes its file at once (its data stays for older
    // versions until the grace period ends).
    assert_eq!(app.signal(&partial, "REVERT").await.status, StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(app.batch(&partial).await["status"], "inactive");
    assert_eq!(dataset_doc(&app, &dataset).await["tableVersion"], 4);

    let commits = table.commits().await.unwrap();
    type Summary<'a> = (u64, Option<&'a str>, Option<&'a str>, usize, usize);
    let summary: Vec<Summary> = commits
        .iter()
        .map(|commit| {
            (
                commit.version,
                commit.operation.as_deref(),
                commit.batch_id.as_deref(),
                commit.added.len(),
                commit.removed.len(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, None, None, 0, 0),
            (1, Some(PROMOTE), Some(first.as_str()), 1, 0),
            (2, Some(PROMOTE), Some(partial.as_str()), 1, 0),
            (3, Some(PROMOTE), Some(replay.as_str()), 1, 1),
            (4, Some(REVERT), Some(partial.as_str()), 0, 1),
        ]
    );
    assert!(
        commits
            .iter()
            .all(|commit| commit.batch_id.as_deref() != Some(failed.as_str()))
    );
    assert_eq!(commits[3].removed, commits[1].added);
    assert_eq!(commits[4].removed, commits[2].added);

    // The latest version holds exactly what Data Access serves; older versions still read.
    assert_eq!(
        table_rows(&app, &table, None).await,
        batch_rows(&app, &[&replay]).await
    );
    let ids = |rows: Vec<Value>| -> Vec<String> {
        rows.iter()
            .map(|row| row["_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(table_rows(&app, &table, Some(2)).await),
        ["evt-1", "evt-2", "evt-3"]
    );
    assert_eq!(
        ids(table_rows(&app, &table, Some(3)).await),
        ["evt-3", "evt-5"]
    );
    let access = app
        .get(&format!("/data/foundation/export/batches/{partial}/files"))
        .send()
        .await;
    assert_eq!(access.status, StatusCode::OK, "{}", access.text);
}
