//! Data Access (spec §4): listings and paging, link following, full and ranged downloads,
//! diagnostics of partially ingested batches, dataset preview, retention, reverted batches
//! and tenant walls.

use axum::http::{Method, StatusCode};
use lakeport_domain::ids::BatchId;
use serde_json::{Value, json};

use crate::support::*;

const EXPORT: &str = "/data/foundation/export";
const HOST: &str = "aep.example.test";

fn ns() -> String {
    format!("_{TENANT_A}")
}

fn event(index: usize) -> Value {
    json!({
        "_id": format!("evt-{index}"),
        "timestamp": "2024-03-01T10:00:00Z",
        "eventType": "commerce.purchases",
        ns(): {
            "memberId": format!("M-{:03}", index % 1000),
            "tier": "gold",
            "points": index,
            "address": {"city": "Basel", "zip": "4051"}
        }
    })
}

fn lines(rows: &[Value]) -> Vec<u8> {
    let mut out = String::new();
    for row in rows {
        out.push_str(&row.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// Creates a batch, uploads `body` as one file, completes it and runs the worker.
async fn ingest(app: &TestApp, dataset: &str, extra: Value, body: &[u8]) -> String {
    let mut request = json!({"datasetId": dataset});
    if let (Value::Object(request), Value::Object(extra)) = (&mut request, extra) {
        request.extend(extra);
    }
    let batch = app.create_batch(request).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.upload(&batch, dataset, "rows.json", body).await;
    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    batch
}

/// 21 rows, 5 rejected (parsing, conversion, enum, required, range), with 25 % allowed.
fn partial_rows() -> Vec<u8> {
    let mut rows: Vec<Value> = (0..20).map(event).collect();
    rows[3][ns()]["tier"] = json!("platinum");
    rows[7].as_object_mut().unwrap().remove("timestamp");
    rows[11][ns()]["points"] = json!(-1);
    rows[15][ns()]["points"] = json!("lots");
    let mut body = lines(&rows);
    body.extend_from_slice(b"{not json\n");
    body
}

async fn partial_batch(app: &TestApp, dataset: &str) -> String {
    let batch = ingest(
        app,
        dataset,
        json!({"partialIngestionPercent": 25}),
        &partial_rows(),
    )
    .await;
    let done = app.batch(&batch).await;
    assert_eq!(
        (done["status"].as_str(), done["failedRecordCount"].as_u64()),
        (Some("success"), Some(5)),
        "{done}"
    );
    batch
}

/// Follows an absolute link from a response: checks the origin and requests the path.
async fn follow(app: &TestApp, href: &Value) -> Reply {
    let href = href.as_str().unwrap_or_else(|| panic!("no link: {href}"));
    let path = href
        .strip_prefix(&format!("http://{HOST}"))
        .unwrap_or_else(|| panic!("{href} does not start with the request's origin"));
    app.get(path).header("host", HOST).send().await
}

fn names(reply: &Reply) -> Vec<&str> {
    reply.body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data: {}", reply.text))
        .iter()
        .map(|item| item["name"].as_str().unwrap())
        .collect()
}

/// The bytes of a stored object, read from the store directly.
async fn stored_bytes(app: &TestApp, key: &lakeport_storage::Key) -> Vec<u8> {
    app.object_bytes(key).await
}

async fn diagnostics_root(app: &TestApp, batch: &str) -> Option<lakeport_storage::Key> {
    let tenant = lakeport_domain::tenant::Tenant::parse(ORG_A, "prod").unwrap();
    app.metastore()
        .diagnostics_location(&tenant, &BatchId::from(batch))
        .await
        .unwrap()
        .map(|location| lakeport_storage::Key::parse(location).unwrap())
}

#[tokio::test]
async fn dataset_files_are_listed_and_downloaded_by_following_links() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = ingest(&app, &dataset, json!({}), &lines(&[event(1), event(2)])).await;

    let listing = app
        .get(&format!("{EXPORT}/batches/{batch}/files"))
        .header("host", HOST)
        .send()
        .await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.text);
    assert_eq!(listing.body["_page"], json!({"limit": 100, "count": 1}));
    assert!(listing.body.get("_links").is_none(), "{}", listing.text);
    let item = &listing.body["data"][0];
    let file_id = format!("{batch}-1");
    assert_eq!(item["dataSetFileId"], file_id.as_str());
    assert_eq!(item["isValid"], true);
    assert_eq!(item["version"], "1.0.0");
    assert_eq!(item["records"], "2");
    for field in ["created", "updated", "size"] {
        let text = item[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}: {item}"));
        assert!(text.parse::<u64>().is_ok(), "{field}: {text}");
    }
    assert!(item["dataSetViewId"].is_string());
    assert_eq!(
        item["_links"]["self"]["href"],
        format!("http://{HOST}{EXPORT}/files/{file_id}")
    );

    // The file listing names the physical Parquet file.
    let file = follow(&app, &item["_links"]["self"]["href"]).await;
    assert_eq!(file.status, StatusCode::OK, "{}", file.text);
    assert_eq!(names(&file), ["part-00001.parquet"]);
    let entry = &file.body["data"][0];
    assert_eq!(entry["length"], item["size"]);
    assert_eq!(
        entry["_links"]["self"]["href"],
        format!("http://{HOST}{EXPORT}/files/{file_id}?path=part-00001.parquet")
    );

    // The download is the stored object, byte for byte, and is never gzipped.
    let tenant = lakeport_domain::tenant::Tenant::parse(ORG_A, "prod").unwrap();
    let stored = app
        .metastore()
        .dataset_file(&tenant, &file_id)
        .await
        .unwrap()
        .unwrap();
    let expected = stored_bytes(
        &app,
        &lakeport_storage::Key::parse(stored.location).unwrap(),
    )
    .await;
    let href = entry["_links"]["self"]["href"].as_str().unwrap();
    let path = href.strip_prefix(&format!("http://{HOST}")).unwrap();
    let download = app.get(path).header("accept-encoding", "gzip").send().await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.bytes, expected);
    assert_eq!(download.header("content-type"), Some("application/parquet"));
    assert_eq!(
        download.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    assert_eq!(download.header("accept-ranges"), Some("bytes"));
    assert_eq!(download.header("content-encoding"), None);
    assert_eq!(entry["length"], expected.len().to_string());
    assert_eq!(&expected[..4], b"PAR1");

    // HEAD answers the same headers without a body, and needs the path.
    let head = app.call(Method::HEAD, path).send().await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.bytes.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(expected.len().to_string().as_str())
    );
    assert_eq!(head.header("content-type"), Some("application/parquet"));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    let head = app
        .call(Method::HEAD, &format!("{EXPORT}/files/{file_id}"))
        .send()
        .await;
    assert_eq!(head.status, StatusCode::BAD_REQUEST);
    let head = app
        .call(
            Method::HEAD,
            &format!("{EXPORT}/files/{file_id}?path=other.parquet"),
        )
        .send()
        .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);

    // Unknown ids and names are 404.
    app.get(&format!("{EXPORT}/files/{batch}-9"))
        .send()
        .await
        .problem(404, "DAS-9001-404");
    app.get(&format!("{EXPORT}/files/{file_id}?path=part-00002.parquet"))
        .send()
        .await
        .problem(404, "DAS-9001-404");
    app.get(&format!(
        "{EXPORT}/batches/01HV6Z3K8Q2M4N5P6R7S8T9VWX/files"
    ))
    .send()
    .await
    .problem(404, "DAS-9001-404");
    app.get(&format!("{EXPORT}/batches/{batch}/files?limit=0"))
        .send()
        .await
        .problem(400, "DAS-9004-400");
}

#[tokio::test]
async fn ranges_are_partial_clamped_or_unsatisfiable() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let rows: Vec<Value> = (0..50).map(event).collect();
    let batch = ingest(&app, &dataset, json!({}), &lines(&rows)).await;
    let tenant = lakeport_domain::tenant::Tenant::parse(ORG_A, "prod").unwrap();
    let stored = app
        .metastore()
        .dataset_file(&tenant, &format!("{batch}-1"))
        .await
        .unwrap()
        .unwrap();
    let expected = stored_bytes(
        &app,
        &lakeport_storage::Key::parse(stored.location).unwrap(),
    )
    .await;
    let total = expected.len();
    let path = format!("{EXPORT}/files/{batch}-1?path=part-00001.parquet");
    let ranged = |range: String| {
        let app = &app;
        let path = path.clone();
        async move { app.get(&path).header("range", &range).send().await }
    };

    let part = ranged("bytes=4-11".to_owned()).await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes, &expected[4..12]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 4-11/{total}").as_str())
    );
    assert_eq!(part.header("content-length"), Some("8"));
    assert_eq!(part.header("accept-ranges"), Some("bytes"));

    let suffix = ranged("bytes=-4".to_owned()).await;
    assert_eq!(suffix.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(suffix.bytes, b"PAR1");
    assert_eq!(
        suffix.header("content-range"),
        Some(format!("bytes {}-{}/{total}", total - 4, total - 1).as_str())
    );

    let open = ranged("bytes=10-".to_owned()).await;
    assert_eq!(open.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(open.bytes, &expected[10..]);

    // An end past the file is clamped (spec §9).
    let clamped = ranged(format!("bytes={}-{}", total - 3, total + 1000)).await;
    assert_eq!(clamped.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(clamped.bytes, &expected[total - 3..]);
    assert_eq!(
        clamped.header("content-range"),
        Some(format!("bytes {}-{}/{total}", total - 3, total - 1).as_str())
    );

    // Only a start past the end is unsatisfiable.
    let refused = ranged(format!("bytes={total}-")).await;
    refused.problem(416, "DAS-9003-416");
    assert_eq!(
        refused.header("content-range"),
        Some(format!("bytes */{total}").as_str())
    );

    // A Range we cannot use is ignored: the whole file.
    let ignored = ranged("bytes=9-3".to_owned()).await;
    assert_eq!(ignored.status, StatusCode::OK);
    assert_eq!(ignored.bytes, expected);
}

#[tokio::test]
async fn diagnostics_of_a_partially_ingested_batch_are_listed_and_downloaded() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = partial_batch(&app, &dataset).await;
    let root = diagnostics_root(&app, &batch).await.unwrap();

    // Rejected rows: the _SUCCESS marker first, then the JSON Lines parts.
    let failed = app
        .get(&format!("{EXPORT}/batches/{batch}/failed"))
        .header("host", HOST)
        .send()
        .await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.text);
    assert_eq!(names(&failed), ["_SUCCESS", "part-00001.json"]);
    assert_eq!(failed.body["data"][0]["length"], "0");
    assert_eq!(failed.body["_page"], json!({"limit": 100, "count": 2}));
    let part = &failed.body["data"][1];
    assert_eq!(
        part["_links"]["self"]["href"],
        format!("http://{HOST}{EXPORT}/batches/{batch}/failed?path=part-00001.json")
    );
    let rejected = follow(&app, &part["_links"]["self"]["href"]).await;
    assert_eq!(rejected.status, StatusCode::OK);
    assert_eq!(rejected.header("content-type"), Some("application/json"));
    let expected = stored_bytes(&app, &root.clone().join("failed").join("part-00001.json")).await;
    assert_eq!(rejected.bytes, expected);
    assert_eq!(part["length"], expected.len().to_string());
    let rejected_rows: Vec<Value> = rejected
        .text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rejected_rows.len(), 5);
    assert!(
        rejected_rows
            .iter()
            .all(|row| row["_filename"] == "rows.json")
    );
    let marker = follow(&app, &failed.body["data"][0]["_links"]["self"]["href"]).await;
    assert_eq!(
        (
            marker.status,
            marker.header("content-type"),
            marker.bytes.len()
        ),
        (StatusCode::OK, Some("application/octet-stream"), 0)
    );

    // The diagnostics tree: top-level entries, then a directory, then its files.
    let meta = app
        .get(&format!("{EXPORT}/batches/{batch}/meta"))
        .header("host", HOST)
        .send()
        .await;
    assert_eq!(meta.status, StatusCode::OK, "{}", meta.text);
    assert_eq!(
        names(&meta),
        ["row_errors", "input_files", "row_errors_sample.json"]
    );
    assert_eq!(
        meta.body["data"][0]["_links"]["self"]["href"],
        format!("http://{HOST}{EXPORT}/batches/{batch}/meta?path=row_errors")
    );
    let row_errors = follow(&app, &meta.body["data"][0]["_links"]["self"]["href"]).await;
    assert_eq!(row_errors.status, StatusCode::OK, "{}", row_errors.text);
    assert_eq!(
        names(&row_errors),
        [
            "conversion_errors_1.json",
            "parsing_errors_1.json",
            "validation_errors_1.json"
        ]
    );
    assert_eq!(
        row_errors.body["data"][1]["_links"]["self"]["href"],
        format!(
            "http://{HOST}{EXPORT}/batches/{batch}/meta?path=row_errors%2Fparsing_errors_1.json"
        )
    );
    let mut contents = Vec::new();
    for item in row_errors.body["data"].as_array().unwrap() {
        let file = follow(&app, &item["_links"]["self"]["href"]).await;
        assert_eq!(file.status, StatusCode::OK, "{}", file.text);
        assert_eq!(file.header("content-type"), Some("application/json"));
        assert_eq!(item["length"], file.bytes.len().to_string());
        contents.push(file.text);
    }
    let [conversion, parsing, validation] = &contents[..] else {
        panic!("three row error files");
    };
    let parsing: Value = serde_json::from_str(parsing.lines().next().unwrap()).unwrap();
    assert_eq!(parsing["_corrupt_record"], "{not json");
    assert_eq!(parsing["_errors"][0]["code"], "1401");
    assert!(conversion.contains("INGEST-9101-400"), "{conversion}");
    assert_eq!(validation.lines().count(), 3, "{validation}");
    assert!(validation.contains("_validationErrors"), "{validation}");

    let input_files = app
        .get(&format!("{EXPORT}/batches/{batch}/meta?path=input_files"))
        .send()
        .await;
    assert_eq!(names(&input_files), ["1.json"]);
    let input = app
        .get(&format!(
            "{EXPORT}/batches/{batch}/meta?path=input_files/1.json"
        ))
        .send()
        .await;
    assert_eq!(input.status, StatusCode::OK, "{}", input.text);
    let input: Value = serde_json::from_str(input.text.lines().next().unwrap()).unwrap();
    assert_eq!(input["path"], "rows.json");
    let sample = app
        .get(&format!(
            "{EXPORT}/batches/{batch}/meta?path=row_errors_sample.json"
        ))
        .send()
        .await;
    assert_eq!(sample.status, StatusCode::OK);
    assert_eq!(sample.text.lines().count(), 5);

    for unknown in [
        "nope",
        "row_errors/nope.json",
        "../failed/_SUCCESS",
        "row_errors//x",
    ] {
        app.get(&format!("{EXPORT}/batches/{batch}/meta?path={unknown}"))
            .send()
            .await
            .problem(404, "DAS-9001-404");
    }
    app.get(&format!(
        "{EXPORT}/batches/{batch}/failed?path=part-00002.json"
    ))
    .send()
    .await
    .problem(404, "DAS-9001-404");

    // A clean batch has no diagnostics to list; an unknown batch is 404.
    let clean = ingest(&app, &dataset, json!({}), &lines(&[event(1)])).await;
    for folder in ["failed", "meta"] {
        let reply = app
            .get(&format!("{EXPORT}/batches/{clean}/{folder}"))
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.body["data"], json!([]));
        app.get(&format!(
            "{EXPORT}/batches/01HV6Z3K8Q2M4N5P6R7S8T9VWX/{folder}"
        ))
        .send()
        .await
        .problem(404, "DAS-9001-404");
    }
}

#[tokio::test]
async fn listings_page_with_start_and_limit() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = partial_batch(&app, &dataset).await;

    let mut seen = Vec::new();
    let mut page = app
        .get(&format!("{EXPORT}/batches/{batch}/meta?limit=1"))
        .header("host", HOST)
        .send()
        .await;
    loop {
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert_eq!(page.body["_page"]["count"], 3);
        assert_eq!(page.body["_page"]["limit"], 1);
        assert_eq!(page.body["_links"]["page"]["templated"], true);
        seen.extend(names(&page).into_iter().map(str::to_owned));
        let next = page.body["_links"]["next"]["href"].clone();
        if next.is_null() {
            break;
        }
        page = follow(&app, &next).await;
    }
    assert_eq!(
        seen,
        ["row_errors", "input_files", "row_errors_sample.json"]
    );

    // Paging a directory keeps its path in the links.
    let first = app
        .get(&format!(
            "{EXPORT}/batches/{batch}/meta?path=row_errors&limit=2"
        ))
        .header("host", HOST)
        .send()
        .await;
    assert_eq!(first.body["_page"], json!({"limit": 2, "count": 3}));
    assert_eq!(
        first.body["_links"]["next"]["href"],
        format!("http://{HOST}{EXPORT}/batches/{batch}/meta?path=row_errors&start=2&limit=2")
    );
    let second = follow(&app, &first.body["_links"]["next"]["href"]).await;
    assert_eq!(names(&second), ["validation_errors_1.json"]);
    assert!(second.body["_links"].get("next").is_none());

    let failed = app
        .get(&format!("{EXPORT}/batches/{batch}/failed?start=1&limit=1"))
        .send()
        .await;
    assert_eq!(names(&failed), ["part-00001.json"]);
    let past = app
        .get(&format!("{EXPORT}/batches/{batch}/failed?start=10"))
        .send()
        .await;
    assert_eq!(past.body["data"], json!([]));
    assert_eq!(past.body["_page"], json!({"limit": 100, "count": 2}));
    let clamped = app
        .get(&format!("{EXPORT}/batches/{batch}/failed?limit=1000"))
        .send()
        .await;
    assert_eq!(clamped.body["_page"]["limit"], 100);
    for bad in ["limit=0", "limit=ten", "start=-1"] {
        app.get(&format!("{EXPORT}/batches/{batch}/failed?{bad}"))
            .send()
            .await
            .problem(400, "DAS-9004-400");
    }
}

#[tokio::test]
async fn preview_shows_up_to_100_rows_newest_batch_first() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let empty = app
        .get(&format!("{EXPORT}/datasets/{dataset}/preview"))
        .send()
        .await;
    assert_eq!(empty.status, StatusCode::OK, "{}", empty.text);
    assert_eq!(empty.body, json!({"data": []}));

    let older: Vec<Value> = (0..150).map(event).collect();
    ingest(&app, &dataset, json!({}), &lines(&older)).await;
    let newer: Vec<Value> = (1000..1003).map(event).collect();
    ingest(&app, &dataset, json!({}), &lines(&newer)).await;

    let preview = app
        .get(&format!("{EXPORT}/datasets/{dataset}/preview"))
        .send()
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    let rows = preview.body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 100);
    let ids: Vec<&str> = rows
        .iter()
        .map(|row| row["_id"].as_str().unwrap())
        .collect();
    assert_eq!(&ids[..4], ["evt-1000", "evt-1001", "evt-1002", "evt-0"]);
    // Nested XDM objects come back as nested JSON.
    assert_eq!(rows[0][ns()]["address"]["city"], "Basel");
    assert_eq!(rows[0][ns()]["points"], 1000);

    app.get(&format!(
        "{EXPORT}/datasets/65f0a1b2c3d4e5f6a7b8c9d0/preview"
    ))
    .send()
    .await
    .problem(404, "DAS-9001-404");
}

#[tokio::test]
async fn diagnostics_expire_after_the_retention_period() {
    let app = TestApp::with_config(|config| config.ingest.diagnostics_retention_secs = 0).await;
    let dataset = app.create_event_dataset("events").await;
    let batch = partial_batch(&app, &dataset).await;
    let root = diagnostics_root(&app, &batch).await.unwrap();

    // Expiry is computed from `completed`: 404 before the sweep deleted anything.
    assert!(
        !app.storage()
            .list_keys(&root.clone().join("failed"))
            .await
            .unwrap()
            .is_empty()
    );
    for path in [
        "failed",
        "failed?path=part-00001.json",
        "meta",
        "meta?path=row_errors",
        "meta?path=row_errors_sample.json",
    ] {
        let detail = app
            .get(&format!("{EXPORT}/batches/{batch}/{path}"))
            .send()
            .await
            .problem(404, "DAS-9001-404")
            .to_owned();
        assert!(detail.contains("expired"), "{detail}");
    }
    // The promoted data is not diagnostics: it stays.
    let data = app
        .get(&format!("{EXPORT}/files/{batch}-1?path=part-00001.parquet"))
        .send()
        .await;
    assert_eq!(data.status, StatusCode::OK);

    // The sweep deletes failed/ and meta/, keeps data/, and forgets the location.
    assert_eq!(app.expire_diagnostics().await, 1);
    for folder in ["failed", "meta"] {
        let left = app
            .storage()
            .list_keys(&root.clone().join(folder))
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
    }
    assert!(
        !app.storage()
            .list_keys(&root.clone().join("data"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(diagnostics_root(&app, &batch).await, None);
    assert_eq!(app.expire_diagnostics().await, 0);
    app.get(&format!("{EXPORT}/batches/{batch}/failed"))
        .send()
        .await
        .problem(404, "DAS-9001-404");
    let data = app
        .get(&format!("{EXPORT}/files/{batch}-1?path=part-00001.parquet"))
        .send()
        .await;
    assert_eq!(data.status, StatusCode::OK);
}

#[tokio::test]
async fn diagnostics_within_the_retention_period_are_kept_by_the_sweep() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = partial_batch(&app, &dataset).await;
    assert_eq!(app.expire_diagnostics().await, 0);
    let failed = app
        .get(&format!("{EXPORT}/batches/{batch}/failed"))
        .send()
        .await;
    assert_eq!(names(&failed), ["_SUCCESS", "part-00001.json"]);
}

#[tokio::test]
async fn files_of_a_reverted_batch_are_gone() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = ingest(&app, &dataset, json!({}), &lines(&[event(1)])).await;
    let file = format!("{EXPORT}/files/{batch}-1");
    assert_eq!(app.get(&file).send().await.status, StatusCode::OK);

    assert_eq!(app.signal(&batch, "REVERT").await.status, StatusCode::OK);
    let listing = app
        .get(&format!("{EXPORT}/batches/{batch}/files"))
        .send()
        .await;
    assert_eq!(listing.status, StatusCode::OK);
    assert_eq!(listing.body["data"], json!([]));
    assert_eq!(listing.body["_page"]["count"], 0);
    app.get(&file).send().await.problem(404, "DAS-9001-404");
    app.get(&format!("{file}?path=part-00001.parquet"))
        .send()
        .await
        .problem(404, "DAS-9001-404");
    let head = app
        .call(Method::HEAD, &format!("{file}?path=part-00001.parquet"))
        .send()
        .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    let preview = app
        .get(&format!("{EXPORT}/datasets/{dataset}/preview"))
        .send()
        .await;
    assert_eq!(preview.body, json!({"data": []}));
}

#[tokio::test]
async fn another_tenant_cannot_list_or_download_with_known_ids() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = partial_batch(&app, &dataset).await;
    let paths = [
        format!("{EXPORT}/batches/{batch}/files"),
        format!("{EXPORT}/files/{batch}-1"),
        format!("{EXPORT}/files/{batch}-1?path=part-00001.parquet"),
        format!("{EXPORT}/batches/{batch}/failed"),
        format!("{EXPORT}/batches/{batch}/failed?path=part-00001.json"),
        format!("{EXPORT}/batches/{batch}/meta"),
        format!("{EXPORT}/batches/{batch}/meta?path=row_errors_sample.json"),
        format!("{EXPORT}/datasets/{dataset}/preview"),
    ];
    for path in &paths {
        assert_eq!(app.get(path).send().await.status, StatusCode::OK, "{path}");
        for (org, sandbox) in [(ORG_B, "prod"), (ORG_A, "dev")] {
            app.get(path)
                .tenant(org, sandbox)
                .send()
                .await
                .problem(404, "DAS-9001-404");
        }
    }
    let head = app
        .call(
            Method::HEAD,
            &format!("{EXPORT}/files/{batch}-1?path=part-00001.parquet"),
        )
        .tenant(ORG_B, "prod")
        .send()
        .await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    // Without credentials nothing is answered at all.
    let anonymous = app
        .get(&format!("{EXPORT}/files/{batch}-1"))
        .without("authorization")
        .send()
        .await;
    assert_eq!(anonymous.status, StatusCode::FORBIDDEN);
}

/// Listings show the diagnostics files the promotion recorded in the metastore: an object
/// that appears in the folder later (written by anything else) is not listed.
#[tokio::test]
async fn listings_show_the_recorded_diagnostics_files() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = partial_batch(&app, &dataset).await;
    let root = diagnostics_root(&app, &batch).await.unwrap();
    for stray in ["failed/stray.json", "meta/row_errors/stray.json"] {
        app.storage()
            .put_stream(
                &lakeport_storage::keys::attempt_file(&root, stray),
                futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                    b"{}\n",
                ))]),
                u64::MAX,
            )
            .await
            .unwrap();
    }
    let failed = app
        .get(&format!("{EXPORT}/batches/{batch}/failed"))
        .send()
        .await;
    assert_eq!(names(&failed), ["_SUCCESS", "part-00001.json"]);
    let row_errors = app
        .get(&format!("{EXPORT}/batches/{batch}/meta?path=row_errors"))
        .send()
        .await;
    assert_eq!(row_errors.status, StatusCode::OK, "{}", row_errors.text);
    assert!(
        !names(&row_errors).contains(&"stray.json"),
        "{}",
        row_errors.text
    );
    let stray = app
        .get(&format!(
            "{EXPORT}/batches/{batch}/meta?path=row_errors/stray.json"
        ))
        .send()
        .await;
    stray.problem(404, "DAS-9001-404");
}

/// A batch promoted before diagnostics files were recorded (its record is NULL) is listed
/// from object storage under its diagnostics root. Embedded SQLite only: the test edits
/// the record in the database file.
#[tokio::test]
async fn diagnostics_without_recorded_files_are_listed_from_storage() {
    if std::env::var("TEST_DATABASE_URL").is_ok() {
        return;
    }
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = partial_batch(&app, &dataset).await;
    let root = diagnostics_root(&app, &batch).await.unwrap();
    app.storage()
        .put_stream(
            &lakeport_storage::keys::attempt_file(&root, "failed/part-00002.json"),
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{}\n"))]),
            u64::MAX,
        )
        .await
        .unwrap();
    let database = rusqlite::Connection::open(app.data_dir().join("catalog.db")).unwrap();
    let changed = database
        .execute(
            "UPDATE batch_outputs SET files = NULL WHERE batch_id = ?1",
            [&batch],
        )
        .unwrap();
    assert_eq!(changed, 1);
    let failed = app
        .get(&format!("{EXPORT}/batches/{batch}/failed"))
        .send()
        .await;
    assert_eq!(
        names(&failed),
        ["_SUCCESS", "part-00001.json", "part-00002.json"]
    );
}

/// File names whose last segment is 254 bytes or more used to get `503 … retry` (the
/// filesystem refuses the name) and a chunked upload of such a name failed only at
/// COMPLETE. Staged objects are keyed by upload id; the client's path stays in the
/// metastore and is what diagnostics show.
#[tokio::test]
async fn long_file_names_are_stored_under_the_upload_id() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = app
        .create_batch(json!({"datasetId": dataset, "partialIngestionPercent": 50}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let whole = format!("day=1/{}.json", "w".repeat(300));
    let mut body = lines(&[event(1), event(2)]);
    body.extend_from_slice(b"{not json\n");
    let reply = app.upload_raw(&batch, &dataset, &whole, &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    let chunked = format!("{}.json", "c".repeat(600));
    let file = format!("{IMPORT_BATCHES}/{batch}/datasets/{dataset}/files/{chunked}");
    let reply = app.post(&format!("{file}?action=INITIALIZE")).send().await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let rows = lines(&[event(3)]);
    let mut call = app
        .patch(&file)
        .header("content-type", "application/octet-stream")
        .header("content-range", &format!("bytes 0-{}", rows.len() - 1));
    call.body_bytes = Some(rows.clone());
    let reply = call.send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app.post(&format!("{file}?action=COMPLETE")).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["name"], chunked.as_str());

    // Past 1024 characters the path itself is refused at the first request, with the limit.
    let too_long = "x".repeat(1025);
    let reply = app.upload_raw(&batch, &dataset, &too_long, b"{}\n").await;
    assert!(reply.problem(400, "INGEST-9017-400").contains("1024"));

    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    let done = app.batch(&batch).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["recordCount"].as_u64(),
            done["failedRecordCount"].as_u64()
        ),
        (Some("success"), Some(3), Some(1)),
        "{done}"
    );
    // The rejected row names the client's file.
    let rejected = app
        .get(&format!(
            "{EXPORT}/batches/{batch}/failed?path=part-00001.json"
        ))
        .send()
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text);
    let row: Value = serde_json::from_str(rejected.text.lines().next().unwrap()).unwrap();
    assert_eq!(row["_filename"], whole.as_str());
    // The server still answers.
    assert_eq!(app.get(CATALOG_BATCHES).send().await.status, StatusCode::OK);
}
