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

/// The metastore is each table's commit coordinator (spec §12): four workers promoting the
/// batches of one dataset at once (on PostgreSQL + S3 in CI) make a gap-free version
/// sequence with exactly one commit per batch, and each batch's Catalog `tableVersion` is
/// the version of its commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_workers_commit_each_batch_once_in_a_gap_free_version_sequence() {
    const BATCHES: usize = 16;
    const WORKERS: usize = 4;
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("concurrent").await;
    let mut batches = Vec::new();
    for index in 0..BATCHES {
        let batch = app.create_batch(json!({"datasetId": dataset})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let rows: Vec<Value> = (0..3).map(|row| event(index * 3 + row)).collect();
        app.upload(&batch, &dataset, "rows.json", &lines(&rows))
            .await;
        let reply = app.signal(&batch, "COMPLETE").await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        batches.push(batch);
    }
    let workers: Vec<_> = (0..WORKERS)
        .map(|index| {
            let worker = app.worker(&format!("worker-{index}"));
            tokio::spawn(async move { worker.run_until_idle().await.unwrap() })
        })
        .collect();
    let mut ran = Vec::new();
    for worker in workers {
        ran.push(worker.await.unwrap());
    }
    assert!(
        ran.iter().filter(|&&jobs| jobs > 0).count() > 1,
        "the batches were not promoted by several workers: {ran:?}"
    );
    // Whatever a worker that stopped early left (clean-ups) runs now.
    app.run_jobs().await;

    let table = table(&app, &dataset);
    let commits = table.commits().await.unwrap();
    let versions: Vec<u64> = commits.iter().map(|commit| commit.version).collect();
    assert_eq!(versions, (0..=BATCHES as u64).collect::<Vec<_>>());
    assert_eq!(commits[0].batch_id, None, "version 0 creates the table");
    let mut committed: Vec<&str> = Vec::new();
    for commit in &commits[1..] {
        assert_eq!(commit.operation.as_deref(), Some(PROMOTE), "{commit:?}");
        assert_eq!((commit.added.len(), commit.removed.len()), (1, 0));
        let batch = commit.batch_id.as_deref().unwrap();
        committed.push(batch);
        assert_eq!(
            app.batch(batch).await["tableVersion"],
            commit.version,
            "the Catalog records the version of {batch}'s commit"
        );
    }
    committed.sort_unstable();
    let mut expected: Vec<&str> = batches.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(committed, expected, "one commit per batch");
    assert_eq!(
        dataset_doc(&app, &dataset).await["tableVersion"],
        BATCHES as u64
    );
    let all: Vec<&str> = batches.iter().map(String::as_str).collect();
    assert_eq!(
        table_rows(&app, &table, None).await,
        batch_rows(&app, &all).await
    );
    assert_eq!(table_rows(&app, &table, None).await.len(), BATCHES * 3);
}

/// Spec §12: a dataset's empty table exists as soon as the dataset does (version 0, the
/// dataset's columns, recorded as `tableVersion` 0), and deleting the dataset deletes it.
#[tokio::test]
async fn a_dataset_s_table_is_created_with_it_and_deleted_with_it() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("lifecycle").await;
    let table = table(&app, &dataset);
    assert_eq!(table.version().await.unwrap(), Some(0));
    assert_eq!(dataset_doc(&app, &dataset).await["tableVersion"], 0);
    let delta = table.delta_table().await.unwrap().unwrap();
    let columns: Vec<String> = delta
        .snapshot()
        .unwrap()
        .schema()
        .fields()
        .map(|field| field.name().clone())
        .collect();
    assert!(
        columns.contains(&"_id".to_owned()) && columns.contains(&ns()),
        "{columns:?}"
    );
    let (_, done) = ingest(&app, &dataset, json!({}), &[event(1)]).await;
    assert_eq!(done["tableVersion"], 1);

    let reply = app
        .delete(&format!("/data/foundation/catalog/dataSets/{dataset}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(table.version().await.unwrap(), None);
    let root = lakeport_lake::dataset_root(ORG_A, "prod", &dataset);
    assert_eq!(
        app.storage().list_keys(&root).await.unwrap(),
        Vec::<lakeport_storage::Key>::new(),
        "nothing is left under the table's root"
    );
    // A dataset that never existed: nothing to delete, nothing deleted elsewhere.
    let other = app.create_event_dataset("kept").await;
    let reply = app
        .delete("/data/foundation/catalog/dataSets/5f0000000000000000000000")
        .send()
        .await;
    assert!(
        reply.status.is_success() || reply.status == StatusCode::NOT_FOUND,
        "{}",
        reply.text
    );
    assert_eq!(table_of(&app, &other).version().await.unwrap(), Some(0));
}

fn table_of(app: &TestApp, dataset: &str) -> Table {
    table(app, dataset)
}

/// Time travel (spec §12): the dataset preview reads the table as of a batch's commit or a
/// version, and refuses what it cannot read with a 4xx.
#[tokio::test]
async fn the_dataset_preview_reads_the_table_as_of_a_batch_or_a_version() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("travel").await;
    let (first, _) = ingest(&app, &dataset, json!({}), &[event(1), event(2)]).await;
    let (second, done) = ingest(&app, &dataset, json!({}), &[event(3)]).await;
    assert_eq!(done["tableVersion"], 2);
    let mut bad = event(4);
    bad[ns()]["memberId"] = json!("bad");
    let (failed, done) = ingest(&app, &dataset, json!({}), &[bad]).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(app.signal(&first, "REVERT").await.status, StatusCode::OK);
    app.run_jobs().await;
    assert_eq!(dataset_doc(&app, &dataset).await["tableVersion"], 3);

    let preview = |query: String| {
        let app = &app;
        let dataset = dataset.clone();
        async move {
            app.get(&format!(
                "/data/foundation/export/datasets/{dataset}/preview{query}"
            ))
            .send()
            .await
        }
    };
    let ids = |reply: &Reply| -> Vec<String> {
        let mut ids: Vec<String> = reply.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let cases = [
        (format!("?asOfBatch={first}"), 1, vec!["evt-1", "evt-2"]),
        (
            format!("?asOfBatch={second}"),
            2,
            vec!["evt-1", "evt-2", "evt-3"],
        ),
        ("?version=0".to_owned(), 0, vec![]),
        ("?version=1".to_owned(), 1, vec!["evt-1", "evt-2"]),
        ("?version=3".to_owned(), 3, vec!["evt-3"]),
    ];
    for (query, version, expected) in cases {
        let reply = preview(query.clone()).await;
        assert_eq!(reply.status, StatusCode::OK, "{query}: {}", reply.text);
        assert_eq!(reply.body["version"], version, "{query}");
        assert_eq!(ids(&reply), expected, "{query}");
    }
    // The rows are the rows Data Access serves for those batches.
    let reply = preview(format!("?asOfBatch={second}")).await;
    let mut rows = reply.body["data"].as_array().unwrap().clone();
    rows.sort_by_key(|row| row["_id"].as_str().unwrap().to_owned());
    // (The preview renders timestamps as RFC 3339 with microseconds; the rest is equal.)
    let without_time = |rows: Vec<Value>| -> Vec<Value> {
        rows.into_iter()
            .map(|mut row| {
                assert!(row["timestamp"].is_string(), "{row}");
                row.as_object_mut().unwrap().remove("timestamp");
                row
            })
            .collect()
    };
    assert_eq!(
        without_time(rows),
        without_time(batch_rows(&app, &[&first, &second]).await)
    );
    // Without an as-of: the latest, as before.
    let reply = preview(String::new()).await;
    assert_eq!(ids(&reply), ["evt-3"]);

    for (query, status) in [
        ("?version=4".to_owned(), StatusCode::NOT_FOUND),
        ("?version=-1".to_owned(), StatusCode::BAD_REQUEST),
        ("?version=one".to_owned(), StatusCode::BAD_REQUEST),
        (format!("?asOfBatch={failed}"), StatusCode::BAD_REQUEST),
        (
            format!("?asOfBatch={first}&version=1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "?asOfBatch=01AAAAAAAAAAAAAAAAAAAAAAAA".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        ("?asOfBatch=a%00b".to_owned(), StatusCode::BAD_REQUEST),
    ] {
        let reply = preview(query.clone()).await;
        assert_eq!(reply.status, status, "{query}: {}", reply.text);
        assert!(reply.body["title"].is_string(), "{query}: {}", reply.text);
    }
    // Another dataset's batch is refused, and another tenant sees no such dataset.
    let other = app.create_event_dataset("elsewhere").await;
    let reply = app
        .get(&format!(
            "/data/foundation/export/datasets/{other}/preview?asOfBatch={second}"
        ))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    let reply = app
        .get(&format!(
            "/data/foundation/export/datasets/{dataset}/preview?version=1"
        ))
        .tenant(ORG_B, "prod")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
}

/// An upgrade loses nothing: datasets promoted before they were Delta tables (simulated by
/// removing the log and the recorded versions) are converted on start, their history
/// written as commits — one per promoted batch, in order, a replay removing what it
/// replaced, reverted batches removed — and the table holds what Data Access serves.
#[tokio::test]
async fn datasets_promoted_before_delta_are_converted_with_their_history() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("upgrade").await;
    let (first, _) = ingest(&app, &dataset, json!({}), &[event(1), event(2)]).await;
    let (second, _) = ingest(&app, &dataset, json!({}), &[event(3)]).await;
    let replay_body = json!({"replay": {"predecessors": [first], "reason": "replace"}});
    let (replay, _) = ingest(&app, &dataset, replay_body, &[event(4)]).await;
    let (reverted, _) = ingest(&app, &dataset, json!({}), &[event(5)]).await;
    assert_eq!(app.signal(&reverted, "REVERT").await.status, StatusCode::OK);
    app.run_jobs().await;
    let empty = app.create_event_dataset("empty").await;

    // The pre-Delta state: no log, no recorded versions, no format tag.
    let tenant = lakeport_domain::tenant::Tenant::parse(ORG_A, "prod").unwrap();
    for id in [&dataset, &empty] {
        let root = lakeport_lake::dataset_root(ORG_A, "prod", id);
        app.storage()
            .delete_prefix(&root.clone().join("_delta_log"))
            .await
            .unwrap();
        strip(
            &app,
            &tenant,
            lakeport_domain::query::ObjectKind::Dataset,
            id,
        )
        .await;
    }
    for batch in [&first, &second, &replay, &reverted] {
        strip(
            &app,
            &tenant,
            lakeport_domain::query::ObjectKind::Batch,
            batch,
        )
        .await;
    }
    assert_eq!(table(&app, &dataset).version().await.unwrap(), None);

    let converted =
        lakeport_jobs::tables::convert_datasets(app.metastore().as_ref(), app.storage())
            .await
            .unwrap();
    assert_eq!(converted.datasets, 2);
    // first, second, replay and reverted promoted; the reverted one removed.
    assert_eq!(converted.commits, 5);
    let table = table(&app, &dataset);
    type Owned = (u64, Option<String>, Option<String>, usize, usize);
    let summary: Vec<Owned> = table
        .commits()
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            (
                c.version,
                c.operation,
                c.batch_id,
                c.added.len(),
                c.removed.len(),
            )
        })
        .collect();
    let promote = Some(PROMOTE.to_owned());
    assert_eq!(
        summary,
        [
            (0, None, None, 0, 0),
            (1, promote.clone(), Some(first.clone()), 1, 0),
            (2, promote.clone(), Some(second.clone()), 1, 0),
            (3, promote.clone(), Some(replay.clone()), 1, 1),
            (4, promote, Some(reverted.clone()), 1, 0),
            (5, Some(REVERT.to_owned()), Some(reverted.clone()), 0, 1),
        ]
    );
    assert_eq!(
        table_rows(&app, &table, None).await,
        batch_rows(&app, &[&second, &replay]).await
    );
    for (batch, version) in [(&first, 1), (&second, 2), (&replay, 3), (&reverted, 4)] {
        assert_eq!(app.batch(batch).await["tableVersion"], version, "{batch}");
    }
    let doc = dataset_doc(&app, &dataset).await;
    assert_eq!(doc["tableVersion"], 5);
    assert_eq!(doc["tags"]["adobe/siphon/table/format"], json!(["delta"]));
    assert_eq!(dataset_doc(&app, &empty).await["tableVersion"], 0);
    assert_eq!(table_of(&app, &empty).version().await.unwrap(), Some(0));

    // Converted once: a second start changes nothing; new batches continue the log.
    let again = lakeport_jobs::tables::convert_datasets(app.metastore().as_ref(), app.storage())
        .await
        .unwrap();
    assert_eq!(again, lakeport_jobs::tables::Converted::default());
    let (next, done) = ingest(&app, &dataset, json!({}), &[event(6)]).await;
    assert_eq!(done["tableVersion"], 6, "{next}");
}

/// Removes what a Delta-era Lakeport records on a Catalog object.
async fn strip(
    app: &TestApp,
    tenant: &lakeport_domain::tenant::Tenant,
    kind: lakeport_domain::query::ObjectKind,
    id: &str,
) {
    let change: lakeport_metastore::DocChange = Box::new(|doc: &lakeport_domain::Doc| {
        let mut next = doc.clone();
        next.remove("tableVersion");
        if let Some(Value::Object(tags)) = next.get_mut("tags") {
            tags.remove("adobe/siphon/table/format");
        }
        Ok(next)
    });
    app.metastore()
        .update(tenant, kind, id, Default::default(), change)
        .await
        .unwrap();
}

fn job_path(dataset: &str, job: &Value) -> String {
    format!(
        "/data/foundation/catalog/dataSets/{dataset}/jobs/{}",
        job["id"].as_str().unwrap()
    )
}

/// Queues a table job over HTTP, runs the workers and returns the finished job.
async fn table_job(app: &TestApp, dataset: &str, operation: &str) -> Value {
    let queued = app
        .post(&format!(
            "/data/foundation/catalog/dataSets/{dataset}/{operation}"
        ))
        .send()
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    assert_eq!(queued.body["operation"], operation);
    assert_eq!(queued.body["dataSetId"], dataset);
    app.run_jobs().await;
    let job = app.get(&job_path(dataset, &queued.body)).send().await;
    assert_eq!(job.status, StatusCode::OK, "{}", job.text);
    assert_eq!(job.body["status"], "done", "{}", job.text);
    job.body
}

/// Spec §12 maintenance: optimize rewrites a table's small batch files as one compacted file
/// (same rows, read by Data Access, the table and older versions alike); a REVERT of one of
/// its batches puts the other batches' files back; vacuum then deletes the compacted file no
/// version within the retention period reads. Batch files stay downloadable throughout, and
/// another org cannot queue or read the jobs.
#[tokio::test]
async fn optimize_compacts_small_batch_files_and_vacuum_deletes_what_no_version_reads() {
    let app = TestApp::with_config(|config| config.ingest.vacuum_retention_secs = 0).await;
    let dataset = app.create_event_dataset("compacted").await;
    let table = table(&app, &dataset);
    let mut batches = Vec::new();
    for index in 0..4 {
        let rows: Vec<Value> = (0..3).map(|row| event(index * 10 + row)).collect();
        let (batch, done) = ingest(&app, &dataset, json!({}), &rows).await;
        assert_eq!(done["status"], "success");
        batches.push(batch);
    }
    let before = table_rows(&app, &table, None).await;
    assert_eq!(before.len(), 12);
    assert_eq!(table.live_files(None).await.unwrap().len(), 4);

    // Queuing twice while the job is pending returns the same job.
    let path = format!("/data/foundation/catalog/dataSets/{dataset}/optimize");
    let first = app.post(&path).send().await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.text);
    assert_eq!(first.body["status"], "queued");
    let second = app.post(&path).send().await;
    assert_eq!(second.body["id"], first.body["id"]);
    // Another org sees neither the dataset nor the job.
    let foreign = app.post(&path).tenant(ORG_B, "prod").send().await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    let foreign = app
        .get(&job_path(&dataset, &first.body))
        .tenant(ORG_B, "prod")
        .send()
        .await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    app.run_jobs().await;
    let job = app.get(&job_path(&dataset, &first.body)).send().await;
    assert_eq!(job.body["status"], "done", "{}", job.text);
    let result = &job.body["result"];
    assert_eq!(
        (
            &result["filesRemoved"],
            &result["filesAdded"],
            &result["records"]
        ),
        (&json!(4), &json!(1), &json!(12)),
        "{result}"
    );
    let compacted_version = result["version"].as_u64().unwrap();
    assert_eq!(compacted_version, 5);
    assert_eq!(
        dataset_doc(&app, &dataset).await["tableVersion"],
        compacted_version
    );
    let live = table.live_files(None).await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(live[0].starts_with("compacted/"), "{live:?}");
    assert_eq!(table_rows(&app, &table, None).await, before);
    let preview = app
        .get(&format!(
            "/data/foundation/export/datasets/{dataset}/preview"
        ))
        .send()
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    assert_eq!(preview.body["data"].as_array().unwrap().len(), 12);
    let commits = table.commits().await.unwrap();
    assert_eq!(
        commits[5].operation.as_deref(),
        Some(lakeport_lake::OPTIMIZE)
    );
    assert_eq!((commits[5].added.len(), commits[5].removed.len()), (1, 4));

    // Nothing is small and alone any more: a second run commits nothing.
    let again = table_job(&app, &dataset, "optimize").await;
    assert_eq!(again["result"]["filesRemoved"], 0, "{again}");
    assert_eq!(table.version().await.unwrap(), Some(compacted_version));

    // REVERT of the second batch: the compacted file leaves, the other batches' return.
    assert_eq!(
        app.signal(&batches[1], "REVERT").await.status,
        StatusCode::OK
    );
    app.run_jobs().await;
    let kept = [&batches[0], &batches[2], &batches[3]].map(String::as_str);
    assert_eq!(
        table_rows(&app, &table, None).await,
        batch_rows(&app, &kept).await
    );
    let live = table.live_files(None).await.unwrap();
    assert_eq!(live.len(), 3);
    assert!(
        live.iter().all(|path| path.starts_with("batches/")),
        "{live:?}"
    );
    // The version of the compaction still reads (the file is there until vacuumed).
    assert_eq!(
        table_rows(&app, &table, Some(compacted_version)).await,
        before
    );

    // Vacuum with no retention deletes the compacted file; batch files stay.
    let vacuumed = table_job(&app, &dataset, "vacuum").await;
    assert_eq!(vacuumed["result"]["filesDeleted"], 1, "{vacuumed}");
    let compacted = app
        .storage()
        .list_keys(&table.key_of("compacted"))
        .await
        .unwrap();
    assert_eq!(compacted, Vec::<lakeport_storage::Key>::new());
    assert_eq!(
        table_rows(&app, &table, None).await,
        batch_rows(&app, &kept).await
    );
    for batch in &batches {
        let files = app
            .get(&format!("/data/foundation/export/batches/{batch}/files"))
            .send()
            .await;
        assert_eq!(files.status, StatusCode::OK, "{}", files.text);
    }

    // Unknown datasets and jobs are 404s that say so.
    let unknown = app
        .post("/data/foundation/catalog/dataSets/5f0000000000000000000000/optimize")
        .send()
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    for job in ["0", "abc", "99999999"] {
        let missing = app
            .get(&format!(
                "/data/foundation/catalog/dataSets/{dataset}/jobs/{job}"
            ))
            .send()
            .await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
        assert!(missing.text.contains("has no job"), "{}", missing.text);
    }
}

/// Compaction while batches are promoted by several workers (on PostgreSQL + S3 in CI):
/// every batch lands, the versions stay gap-free with one commit per batch plus the
/// compaction's, and the table holds exactly the batches' rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn optimize_runs_while_batches_are_promoted() {
    const EARLY: usize = 4;
    const LATE: usize = 6;
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("busy").await;
    let mut batches = Vec::new();
    for index in 0..EARLY {
        let rows: Vec<Value> = (0..2).map(|row| event(index * 10 + row)).collect();
        batches.push(ingest(&app, &dataset, json!({}), &rows).await.0);
    }
    for index in EARLY..EARLY + LATE {
        let batch = app.create_batch(json!({"datasetId": dataset})).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let rows: Vec<Value> = (0..2).map(|row| event(index * 10 + row)).collect();
        app.upload(&batch, &dataset, "rows.json", &lines(&rows))
            .await;
        assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
        batches.push(batch);
    }
    let queued = app
        .post(&format!(
            "/data/foundation/catalog/dataSets/{dataset}/optimize"
        ))
        .send()
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text);
    let workers: Vec<_> = (0..3)
        .map(|index| {
            let worker = app.worker(&format!("worker-{index}"));
            tokio::spawn(async move { worker.run_until_idle().await.unwrap() })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    app.run_jobs().await;
    let job = app.get(&job_path(&dataset, &queued.body)).send().await;
    assert_eq!(job.body["status"], "done", "{}", job.text);
    assert!(
        job.body["result"]["filesRemoved"].as_u64().unwrap() >= 2,
        "{}",
        job.text
    );

    let table = table(&app, &dataset);
    let commits = table.commits().await.unwrap();
    let versions: Vec<u64> = commits.iter().map(|commit| commit.version).collect();
    let total = (EARLY + LATE + 1) as u64;
    assert_eq!(versions, (0..=total).collect::<Vec<_>>());
    let optimizes = commits
        .iter()
        .filter(|commit| commit.operation.as_deref() == Some(lakeport_lake::OPTIMIZE))
        .count();
    assert_eq!(optimizes, 1);
    for batch in &batches {
        let done = app.batch(batch).await;
        assert_eq!(done["status"], "success", "{done}");
        let version = done["tableVersion"].as_u64().unwrap();
        assert_eq!(
            commits[version as usize].batch_id.as_deref(),
            Some(batch.as_str())
        );
    }
    let all: Vec<&str> = batches.iter().map(String::as_str).collect();
    assert_eq!(
        table_rows(&app, &table, None).await,
        batch_rows(&app, &all).await
    );
}

/// Spec §12 schema evolution: a field added to the dataset's field group (an additive
/// change) is a `metaData` action in the next batch's commit, so the table gains the column
/// and earlier rows read it as null; compaction then rewrites files of each schema apart.
#[tokio::test]
async fn a_field_group_that_gains_a_field_widens_the_table_and_compaction_keeps_schemas_apart() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("evolving").await;
    let table = table(&app, &dataset);
    let mut batches = Vec::new();
    for index in 0..2 {
        let (batch, done) = ingest(&app, &dataset, json!({}), &[event(index)]).await;
        assert_eq!(done["status"], "success");
        batches.push(batch);
    }
    app.add_event_field(&dataset, "nickname", json!({"type": "string"}))
        .await;
    for index in 2..4 {
        let mut row = event(index);
        row[ns()]["nickname"] = json!(format!("nick-{index}"));
        let (batch, done) = ingest(&app, &dataset, json!({}), &[row]).await;
        assert_eq!(done["status"], "success", "{done}");
        batches.push(batch);
    }

    // The first commit after the change carries the wider schema; the others do not.
    let mut log = Vec::new();
    for version in 0..=4u64 {
        let key = table.key_of(&format!("_delta_log/{version:020}.json"));
        log.push(String::from_utf8(app.object_bytes(&key).await).unwrap());
    }
    assert!(!log[2].contains("\"metaData\""));
    assert!(log[3].contains("\"metaData\"") && log[3].contains("nickname"));
    assert!(!log[4].contains("\"metaData\""));
    let delta = table.delta_table().await.unwrap().unwrap();
    let schema = delta.snapshot().unwrap().schema();
    let namespace = schema.field(ns()).unwrap();
    assert!(
        format!("{:?}", namespace.data_type()).contains("nickname"),
        "{namespace:?}"
    );
    let all: Vec<&str> = batches.iter().map(String::as_str).collect();
    let rows = table_rows(&app, &table, None).await;
    assert_eq!(rows, batch_rows(&app, &all).await);
    let nicknames: Vec<&Value> = rows.iter().map(|row| &row[ns()]["nickname"]).collect();
    assert_eq!(
        nicknames
            .iter()
            .filter(|nickname| nickname.is_string())
            .count(),
        2,
        "{rows:?}"
    );

    // Two schemas, two compacted files.
    let job = table_job(&app, &dataset, "optimize").await;
    assert_eq!(
        (&job["result"]["filesRemoved"], &job["result"]["filesAdded"]),
        (&json!(4), &json!(2)),
        "{job}"
    );
    let live = table.live_files(None).await.unwrap();
    assert!(
        live.iter().all(|path| path.starts_with("compacted/")),
        "{live:?}"
    );
    let mut compacted = table_rows(&app, &table, None).await;
    compacted.sort_by_key(|row| row["_id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(compacted, rows);
}

/// Downloads every file of a table listing and returns their rows, sorted by `_id`.
async fn listed_rows(app: &TestApp, listing: &Value) -> Vec<Value> {
    let mut rows = Vec::new();
    for file in listing["data"].as_array().unwrap() {
        let href = file["_links"]["self"]["href"].as_str().unwrap();
        let reply = app.get(href).send().await;
        assert_eq!(reply.status, StatusCode::OK, "{href}");
        assert_eq!(reply.header("content-type"), Some("application/parquet"));
        assert_eq!(reply.bytes.len() as u64, file["length"].as_u64().unwrap());
        let path = app.data_dir().join("downloaded.parquet");
        std::fs::write(&path, &reply.bytes).unwrap();
        rows.extend(read_parquet(&path));
    }
    rows.sort_by_key(|row| row["_id"].as_str().unwrap_or_default().to_owned());
    rows
}

/// `GET /export/datasets/{id}/table` lists the Parquet files live at the latest version (or
/// as of a batch or version), each with a link that downloads it; the files hold exactly
/// the rows of the table. Only data files of that dataset's table are served, and another
/// org sees nothing.
#[tokio::test]
async fn the_table_s_files_are_listed_as_of_a_version_and_downloaded() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("exported").await;
    let (first, _) = ingest(&app, &dataset, json!({}), &[event(1), event(2)]).await;
    let (second, _) = ingest(&app, &dataset, json!({}), &[event(3)]).await;
    assert_eq!(app.signal(&first, "REVERT").await.status, StatusCode::OK);
    app.run_jobs().await;

    let base = format!("/data/foundation/export/datasets/{dataset}/table");
    let now = app.get(&base).send().await;
    assert_eq!(now.status, StatusCode::OK, "{}", now.text);
    assert_eq!(now.body["version"], 3);
    assert_eq!(
        listed_rows(&app, &now.body).await,
        batch_rows(&app, &[&second]).await
    );
    let then = app.get(&format!("{base}?asOfBatch={first}")).send().await;
    assert_eq!(then.body["version"], 1, "{}", then.text);
    assert_eq!(
        listed_rows(&app, &then.body).await,
        batch_rows(&app, &[&first]).await
    );
    let by_version = app.get(&format!("{base}?version=2")).send().await;
    assert_eq!(listed_rows(&app, &by_version.body).await.len(), 3);
    // Pages of one file, the next link pinned to the version the first page read.
    let first_page = app
        .get(&format!("{base}?asOfBatch={second}&limit=1"))
        .send()
        .await;
    assert_eq!(first_page.body["_page"]["count"], 2, "{}", first_page.text);
    assert_eq!(first_page.body["data"].as_array().unwrap().len(), 1);
    let next = first_page.body["_links"]["next"]["href"].as_str().unwrap();
    assert!(next.contains("version=2"), "{next}");
    let second_page = app.get(next).send().await;
    assert_eq!(second_page.body["data"].as_array().unwrap().len(), 1);
    assert!(second_page.body["_links"].get("next").is_none());
    let mut paged = listed_rows(&app, &first_page.body).await;
    paged.extend(listed_rows(&app, &second_page.body).await);
    paged.sort_by_key(|row| row["_id"].as_str().unwrap_or_default().to_owned());
    assert_eq!(paged, batch_rows(&app, &[&first, &second]).await);

    // A byte range of a file.
    let href = now.body["data"][0]["_links"]["self"]["href"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = app.get(&href).header("range", "bytes=0-3").send().await;
    assert_eq!(head.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&head.bytes[..], b"PAR1");

    // Versions past the latest, both parameters, other tenants, other files: refused.
    let missing = app.get(&format!("{base}?version=9")).send().await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text);
    let both = app
        .get(&format!("{base}?version=1&asOfBatch={first}"))
        .send()
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST, "{}", both.text);
    let foreign = app.get(&base).tenant(ORG_B, "prod").send().await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    let foreign = app.get(&href).tenant(ORG_B, "prod").send().await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{}", foreign.text);
    for path in [
        "_delta_log/00000000000000000000.json",
        "batches/x/attempt-1/failed/part-00001.json",
        "batches/../../other/datasets/x/compacted/a.parquet",
        "compacted/%2e%2e/a.parquet",
        "compacted//a.parquet",
    ] {
        let refused = app.get(&format!("{base}/{path}")).send().await;
        assert_eq!(
            refused.status,
            StatusCode::NOT_FOUND,
            "{path}: {}",
            refused.text
        );
    }
}
