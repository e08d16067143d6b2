//! Batch ingestion end to end: uploads, signals, the promotion job, Parquet read back.

use axum::http::StatusCode;
use lakeport_domain::ids::BatchId;
use serde_json::{Value, json};

use crate::support::*;

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
            "tier": if index.is_multiple_of(2) { "gold" } else { "silver" },
            "points": index * 10,
            "joined": "2020-02-29",
            "score": 0.5,
            "optIn": true,
            "tags": ["a", "b"],
            "attributes": {"campaign": "c1"},
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

async fn new_batch(app: &TestApp, dataset: &str, extra: Value) -> String {
    let mut body = json!({"datasetId": dataset});
    if let (Value::Object(body), Value::Object(extra)) = (&mut body, extra) {
        body.extend(extra);
    }
    app.create_batch(body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn complete_and_run(app: &TestApp, batch: &str) -> Value {
    let reply = app.signal(batch, "COMPLETE").await;
    assert_eq!((reply.status, reply.text.as_str()), (StatusCode::OK, ""));
    app.run_jobs().await;
    app.batch(batch).await
}

#[tokio::test]
async fn json_lines_are_validated_and_promoted_into_parquet() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(&app, &dataset, json!({})).await;
    let first: Vec<Value> = (0..3).map(event).collect();
    let second: Vec<Value> = (3..5).map(event).collect();
    app.upload(
        &batch,
        &dataset,
        "day=2024-03-01/part-1.json",
        &lines(&first),
    )
    .await;
    app.upload(
        &batch,
        &dataset,
        "day=2024-03-02/part-2.json",
        &lines(&second),
    )
    .await;
    assert_eq!(app.batch(&batch).await["status"], "loading");

    let done = complete_and_run(&app, &batch).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["recordCount"], 5);
    assert_eq!(done["failedRecordCount"], 0);
    assert_eq!(done["errors"], json!([]));
    assert_eq!(done["metrics"]["inputFileCount"], 2);
    assert_eq!(done["metrics"]["inputRecordCount"], 5);
    assert_eq!(done["metrics"]["outputRecordCount"], 5);
    assert!(done["size"].as_u64().unwrap() > 0);
    assert!(done["started"].as_i64().unwrap() <= done["completed"].as_i64().unwrap());

    let files = app
        .get(&format!(
            "/data/foundation/catalog/dataSetFiles?batchId={batch}"
        ))
        .send()
        .await;
    let file = &files.body[format!("{batch}-1")];
    assert_eq!(
        (file["records"].as_u64(), file["isValid"].as_bool()),
        (Some(5), Some(true))
    );
    assert_eq!(file["dataSetId"], dataset.as_str());

    let rows = app.promoted_rows(&batch).await;
    assert_eq!(rows.len(), 5);
    let row = rows.iter().find(|r| r["_id"] == "evt-1").unwrap();
    let tenant = &row[ns()];
    assert_eq!(tenant["memberId"], "M-001");
    assert_eq!(tenant["points"], 10);
    assert_eq!(tenant["joined"], "2020-02-29");
    assert_eq!(tenant["tags"], json!(["a", "b"]));
    assert_eq!(tenant["address"]["city"], "Basel");
    assert!(
        row["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2024-03-01T10:00:00")
    );

    let dataset_doc = app
        .get(&format!("{CATALOG_DATASETS}/{dataset}"))
        .send()
        .await
        .body[&dataset]
        .clone();
    assert_eq!(dataset_doc["lastBatchStatus"], "success");
    assert_eq!(dataset_doc["lastSuccessfulBatch"], batch.as_str());
    // COMPLETE stays safe to repeat after success.
    assert_eq!(app.signal(&batch, "complete").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_multi_line_json_array_is_read_element_by_element() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(
        &app,
        &dataset,
        json!({"inputFormat": {"format": "json", "isMultiLineJson": true}}),
    )
    .await;
    let rows: Vec<Value> = (0..4).map(event).collect();
    app.upload(
        &batch,
        &dataset,
        "all.json",
        serde_json::to_string_pretty(&rows).unwrap().as_bytes(),
    )
    .await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_u64()),
        (Some("success"), Some(4)),
        "{done}"
    );
    assert_eq!(app.promoted_rows(&batch).await.len(), 4);
}

#[tokio::test]
async fn csv_with_non_default_options_onto_an_adhoc_schema() {
    let app = TestApp::new().await;
    let class = app
        .post(&format!("{REGISTRY}/tenant/classes"))
        .json(json!({"title": "CSV rows", "type": "object", "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/data/adhoc"},
            {"properties": {"_adhoc": {"type": "object", "properties": {
                "loyaltyId": {"type": "string"}, "points": {"type": "integer", "meta:xdmType": "int"},
                "city": {"type": "string"}, "member": {"type": "boolean"}}}}}]}))
        .send()
        .await;
    let namespace = class.body["meta:datasetNamespace"]
        .as_str()
        .unwrap()
        .to_owned();
    let schema = app
        .post(&format!("{REGISTRY}/tenant/schemas"))
        .json(json!({"title": "CSV schema", "type": "object", "allOf": [{"$ref": class.body["$id"]}]}))
        .send()
        .await;
    let dataset = app
        .create_dataset(json!({"name": "csv", "schemaRef": {"id": schema.body["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}}))
        .await;
    let batch = new_batch(
        &app,
        &dataset,
        json!({"inputFormat": {"format": "csv", "delimiter": ";", "quote": "'", "nullMarker": "NULL", "charset": "ISO-8859-1", "header": true}}),
    )
    .await;
    // Latin-1 bytes: "Zürich" is 0x5A 0xFC 0x72 0x69 0x63 0x68.
    let mut csv = b"loyaltyId;points;city;member\nL-1;250;'Z".to_vec();
    csv.push(0xFC);
    csv.extend_from_slice(b"rich; a';true\nL-2;NULL;Basel;false\n");
    app.upload(&batch, &dataset, "members.csv", &csv).await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(done["status"], "success", "{done}");
    let rows = app.promoted_rows(&batch).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0][&namespace],
        json!({"loyaltyId": "L-1", "points": 250, "city": "Zürich; a", "member": true})
    );
    assert_eq!(rows[1][&namespace]["city"], "Basel");
    assert!(rows[1][&namespace].get("points").is_none_or(Value::is_null));
}

#[tokio::test]
async fn parquet_written_by_arrow_is_ingested() {
    use std::sync::Arc;

    use lakeport_test_support::arrow_array::{
        ArrayRef, Int32Array, RecordBatch, StringArray, StructArray,
    };
    use lakeport_test_support::arrow_schema::{DataType, Field, Fields, Schema};

    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(
        &app,
        &dataset,
        json!({"inputFormat": {"format": "parquet"}}),
    )
    .await;
    let tenant_fields = Fields::from(vec![
        Field::new("memberId", DataType::Utf8, false),
        Field::new("points", DataType::Int32, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("_id", DataType::Utf8, false),
        Field::new("timestamp", DataType::Utf8, false),
        Field::new(ns(), DataType::Struct(tenant_fields.clone()), true),
    ]));
    let tenant = StructArray::new(
        tenant_fields,
        vec![
            Arc::new(StringArray::from(vec!["M-001", "M-002", "bad"])) as ArrayRef,
            Arc::new(Int32Array::from(vec![Some(5), None, Some(1)])) as ArrayRef,
        ],
        None,
    );
    let record_batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["e1", "e2", "e3"])),
            Arc::new(StringArray::from(vec![
                "2024-01-01T00:00:00Z",
                "2024-01-02T00:00:00+02:00",
                "2024-01-03T00:00:00Z",
            ])),
            Arc::new(tenant),
        ],
    )
    .unwrap();
    let mut bytes = Vec::new();
    {
        let mut writer =
            lakeport_test_support::parquet::arrow::ArrowWriter::try_new(&mut bytes, schema, None)
                .unwrap();
        writer.write(&record_batch).unwrap();
        writer.close().unwrap();
    }
    app.upload(&batch, &dataset, "events.parquet", &bytes).await;
    let done = complete_and_run(&app, &batch).await;
    // One row breaks the memberId pattern; strict threshold → the batch fails…
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failedRecordCount"], 1);
    assert_eq!(done["errors"][0]["code"], "INGEST-1211-400");

    // …and with partial ingestion the two good rows are promoted.
    let batch = new_batch(
        &app,
        &dataset,
        json!({"inputFormat": {"format": "parquet"}, "partialIngestionPercent": 50}),
    )
    .await;
    app.upload(&batch, &dataset, "events.parquet", &bytes).await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_u64()),
        (Some("success"), Some(2)),
        "{done}"
    );
    let rows = app.promoted_rows(&batch).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][ns()]["points"], 5);
    assert!(
        rows[1]["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2024-01-01T22:00:00")
    );
}

/// A file as pandas and pyarrow write it: zstd pages, `timestamp[ns]` for a date field
/// (dates parsed from text), `int64` for an XDM int, `large_string` and a dictionary-encoded
/// string. Every value converts as the same JSON value would; a timestamp with a time of day
/// is not a date and only its row is rejected.
#[tokio::test]
async fn parquet_as_pandas_writes_it_is_ingested() {
    use std::sync::Arc;

    use lakeport_test_support::arrow_array::builder::StringDictionaryBuilder;
    use lakeport_test_support::arrow_array::types::Int32Type;
    use lakeport_test_support::arrow_array::{
        ArrayRef, Int64Array, LargeStringArray, RecordBatch, StringArray, StructArray,
        TimestampNanosecondArray,
    };
    use lakeport_test_support::arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
    use lakeport_test_support::parquet::basic::{Compression, ZstdLevel};
    use lakeport_test_support::parquet::file::properties::WriterProperties;

    const DAY_NS: i64 = 86_400_000_000_000;
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let mut tier = StringDictionaryBuilder::<Int32Type>::new();
    for value in ["gold", "silver", "gold"] {
        tier.append_value(value);
    }
    let tier = tier.finish();
    let tenant_fields = Fields::from(vec![
        Field::new("memberId", DataType::LargeUtf8, true),
        Field::new("points", DataType::Int64, true),
        Field::new(
            "joined",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new(
            "tier",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
    ]);
    let tenant = StructArray::new(
        tenant_fields.clone(),
        vec![
            Arc::new(LargeStringArray::from(vec!["M-001", "M-002", "M-003"])) as ArrayRef,
            Arc::new(Int64Array::from(vec![250, 75, 1])),
            // 2020-02-29 and 1999-12-31 at midnight; the third has a time of day.
            Arc::new(TimestampNanosecondArray::from(vec![
                18_321 * DAY_NS,
                10_956 * DAY_NS,
                18_321 * DAY_NS + 3_600_000_000_000,
            ])),
            Arc::new(tier),
        ],
        None,
    );
    let schema = Arc::new(Schema::new(vec![
        Field::new("_id", DataType::Utf8, true),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            true,
        ),
        Field::new(ns(), DataType::Struct(tenant_fields), true),
    ]));
    let record_batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["e1", "e2", "e3"])),
            Arc::new(TimestampNanosecondArray::from(vec![
                1_709_287_200_000_000_000,
                1_709_287_200_000_000_000,
                1_709_287_200_000_000_000,
            ])),
            Arc::new(tenant),
        ],
    )
    .unwrap();
    let properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let mut bytes = Vec::new();
    {
        let mut writer = lakeport_test_support::parquet::arrow::ArrowWriter::try_new(
            &mut bytes,
            schema,
            Some(properties),
        )
        .unwrap();
        writer.write(&record_batch).unwrap();
        writer.close().unwrap();
    }
    let batch = new_batch(
        &app,
        &dataset,
        json!({"inputFormat": {"format": "parquet"}, "partialIngestionPercent": 50}),
    )
    .await;
    app.upload(&batch, &dataset, "pandas.parquet", &bytes).await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(
        (
            done["status"].as_str(),
            done["recordCount"].as_u64(),
            done["failedRecordCount"].as_u64()
        ),
        (Some("success"), Some(2), Some(1)),
        "{done}"
    );
    let rows = app.promoted_rows(&batch).await;
    let tenant: Vec<&Value> = rows.iter().map(|row| &row[ns()]).collect();
    assert_eq!(
        tenant,
        [
            &json!({"memberId": "M-001", "points": 250, "joined": "2020-02-29", "tier": "gold"}),
            &json!({"memberId": "M-002", "points": 75, "joined": "1999-12-31", "tier": "silver"}),
        ]
    );
    assert!(
        rows[0]["timestamp"]
            .as_str()
            .unwrap()
            .starts_with("2024-03-01T10:00:00")
    );
}

#[tokio::test]
async fn partial_ingestion_inside_and_above_the_threshold() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let mut rows: Vec<Value> = (0..20).map(event).collect();
    rows[3][ns()]["tier"] = json!("platinum");
    rows[7].as_object_mut().unwrap().remove("timestamp");
    rows[11][ns()]["points"] = json!(-1);
    let mut body = lines(&rows);
    body.extend_from_slice(b"{not json\n");

    let batch = new_batch(&app, &dataset, json!({"partialIngestionPercent": 25})).await;
    app.upload(&batch, &dataset, "rows.json", &body).await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(
        (
            done["recordCount"].as_u64(),
            done["failedRecordCount"].as_u64()
        ),
        (Some(17), Some(4))
    );
    assert_eq!(done["errors"][0]["code"], "INGEST-1212-400");
    assert_eq!(
        done["errors"][0]["description"],
        "4 rows were rejected, 17 rows were ingested; see the diagnostics files."
    );
    let codes: Vec<&str> = done["errors"].as_array().unwrap()[1..]
        .iter()
        .map(|e| e["code"].as_str().unwrap())
        .collect();
    for code in [
        "INGEST-9102-400",
        "INGEST-1555-400",
        "INGEST-9104-400",
        "INGEST-1401-400",
    ] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    assert_eq!(app.promoted_rows(&batch).await.len(), 17);

    let batch = new_batch(
        &app,
        &dataset,
        json!({"partialIngestionPercent": 10, "enableErrorDiagnostics": true}),
    )
    .await;
    app.upload(&batch, &dataset, "rows.json", &body).await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["recordCount"], 0);
    assert_ne!(done["errors"][0]["code"], "INGEST-1212-400");
    assert!(
        done["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["recordCount"].as_u64().is_some())
    );
    assert!(app.promoted_rows(&batch).await.is_empty());
    let files = app
        .get(&format!(
            "/data/foundation/catalog/dataSetFiles?batchId={batch}"
        ))
        .send()
        .await;
    assert_eq!(files.body, json!({}));
}

#[tokio::test]
async fn each_file_level_error_fails_the_batch() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let cases: Vec<(Value, &str, Vec<u8>, &str)> = vec![
        (json!({}), "empty.json", Vec::new(), "106"),
        (
            json!({"inputFormat": {"format": "csv"}}),
            "no-header.csv",
            b"\n1,2\n".to_vec(),
            "118",
        ),
        (
            json!({"inputFormat": {"format": "parquet"}}),
            "bad.parquet",
            b"not parquet at all".to_vec(),
            "INGEST-9201-400",
        ),
        (
            json!({"inputFormat": {"format": "csv"}}),
            "extra.csv",
            b"_id,timestamp,nope\n1,2024-01-01T00:00:00Z,x\n".to_vec(),
            "INGEST-9202-400",
        ),
    ];
    for (extra, name, bytes, code) in cases {
        let batch = new_batch(&app, &dataset, extra).await;
        app.upload(&batch, &dataset, name, &bytes).await;
        let done = complete_and_run(&app, &batch).await;
        assert_eq!(done["status"], "failed", "{name}: {done}");
        assert_eq!(done["errors"][0]["code"], code, "{name}: {done}");
        assert_eq!(done["errors"][0]["rows"], json!([]));
    }
    let batch = new_batch(&app, &dataset, json!({})).await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(
        (done["status"].as_str(), done["errors"][0]["code"].as_str()),
        (Some("failed"), Some("INGEST-9203-400"))
    );
}

#[tokio::test]
async fn signals_follow_the_state_machine() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    // ABORT from loading, then again (no-op), then COMPLETE refused.
    let batch = new_batch(&app, &dataset, json!({})).await;
    assert_eq!(app.signal(&batch, "ABORT").await.status, StatusCode::OK);
    assert_eq!(app.batch(&batch).await["status"], "aborted");
    assert_eq!(app.signal(&batch, "abort").await.status, StatusCode::OK);
    let reply = app.signal(&batch, "COMPLETE").await;
    assert!(reply.problem(400, "INGEST-9010-400").contains("'aborted'"));
    // ABORT from staging: the promotion finds nothing to do.
    let batch = new_batch(&app, &dataset, json!({})).await;
    app.upload(&batch, &dataset, "a.json", &lines(&[event(1)]))
        .await;
    app.signal(&batch, "COMPLETE").await;
    assert_eq!(app.batch(&batch).await["status"], "staging");
    assert_eq!(
        app.signal(&batch, "COMPLETE").await.status,
        StatusCode::OK,
        "COMPLETE is safe to repeat"
    );
    assert_eq!(app.signal(&batch, "ABORT").await.status, StatusCode::OK);
    app.run_jobs().await;
    let aborted = app.batch(&batch).await;
    assert_eq!(aborted["status"], "aborted");
    assert!(app.promoted_rows(&batch).await.is_empty());
    // FAIL records the producer's failure.
    let batch = new_batch(&app, &dataset, json!({})).await;
    assert_eq!(app.signal(&batch, "FAIL").await.status, StatusCode::OK);
    let failed = app.batch(&batch).await;
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["errors"][0]["code"].as_str()
        ),
        (Some("failed"), Some("INGEST-9005-400"))
    );
    // ABORT of a finished batch, REVERT of a loading one, unknown actions.
    app.signal(&batch, "ABORT")
        .await
        .problem(400, "INGEST-9010-400");
    let loading = new_batch(&app, &dataset, json!({})).await;
    app.signal(&loading, "REVERT")
        .await
        .problem(400, "INGEST-9010-400");
    assert!(
        app.signal(&loading, "REPLAY")
            .await
            .problem(400, "INGEST-9010-400")
            .contains("REPLAY")
    );
    assert!(
        app.post(&format!("{IMPORT_BATCHES}/{loading}"))
            .send()
            .await
            .problem(400, "INGEST-9010-400")
            .contains("required")
    );
    app.signal("01AAAAAAAAAAAAAAAAAAAAAAAA", "ABORT")
        .await
        .problem(404, "INGEST-9003-404");
}

#[tokio::test]
async fn uploads_are_checked() {
    let app = TestApp::with_config(|c| c.ingest.max_put_bytes = 1000).await;
    let dataset = app.create_event_dataset("events").await;
    let other = app.create_event_dataset("other").await;
    let batch = new_batch(&app, &dataset, json!({})).await;
    let path = |name: &str| format!("{IMPORT_BATCHES}/{batch}/datasets/{dataset}/files/{name}");
    let reply = app
        .put(&path("a.json"))
        .header("content-type", "application/json")
        .raw("{}")
        .send()
        .await;
    reply.problem(415, "INGEST-9004-415");
    app.upload_raw(&batch, &other, "a.json", b"{}")
        .await
        .problem(400, "INGEST-9002-400");
    app.upload_raw("01AAAAAAAAAAAAAAAAAAAAAAAA", &dataset, "a.json", b"{}")
        .await
        .problem(404, "INGEST-9003-404");
    app.upload_raw(&batch, &dataset, "big.json", &vec![b' '; 2000])
        .await
        .problem(413, "INGEST-9008-413");
    for bad in ["..%2Fescape.json", "a/%2E%2E/b.json", "a//b.json"] {
        let reply = app.upload_raw(&batch, &dataset, bad, b"{}").await;
        assert!(
            reply
                .problem(400, "INGEST-9017-400")
                .contains("is not allowed"),
            "{bad}"
        );
    }
    app.upload(&batch, &dataset, "ok/nested/a.json", &lines(&[event(1)]))
        .await;
    // Replacing a file keeps one file of that path.
    app.upload(
        &batch,
        &dataset,
        "ok/nested/a.json",
        &lines(&[event(1), event(2)]),
    )
    .await;
    app.signal(&batch, "COMPLETE").await;
    app.upload_raw(&batch, &dataset, "late.json", b"{}")
        .await
        .problem(400, "INGEST-9001-400");
    app.run_jobs().await;
    assert_eq!(app.batch(&batch).await["recordCount"], 2);
}

/// `Content-Range: bytes 0-18446744073709551615` with an empty body used to be accepted:
/// the length `last - first + 1` wrapped to 0. Client numbers use checked arithmetic.
#[tokio::test]
async fn chunk_offsets_that_overflow_are_refused() {
    let app = TestApp::with_config(|config| config.ingest.max_batch_bytes = 1_000_000).await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(&app, &dataset, json!({})).await;
    let file = format!("{IMPORT_BATCHES}/{batch}/datasets/{dataset}/files/f.json");
    let reply = app.post(&format!("{file}?action=INITIALIZE")).send().await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let patch = |range: &str, body: &[u8]| {
        let mut call = app
            .patch(&file)
            .header("content-type", "application/octet-stream")
            .header("content-range", range);
        call.body_bytes = Some(body.to_vec());
        call
    };
    for range in [
        "bytes 0-18446744073709551615",
        "bytes 18446744073709551615-18446744073709551615",
        "bytes 0-18446744073709551616",
        "bytes 0-0/18446744073709551615",
    ] {
        let reply = patch(range, b"").send().await;
        reply.problem(400, "INGEST-9006-400");
    }
    // Past what a file of this batch may hold: 416 naming the limit.
    let reply = patch("bytes 999999-1000000", b"xx").send().await;
    assert!(
        reply
            .problem(416, "INGEST-9020-416")
            .contains("1000000 bytes")
    );
    // Nothing was recorded, and the upload still works.
    let head = app.call(axum::http::Method::HEAD, &file).send().await;
    assert_eq!((head.status, head.header("range")), (StatusCode::OK, None));
    let row = lines(&[event(1)]);
    let last = row.len() - 1;
    let reply = patch(&format!("bytes 0-{last}"), &row).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app.post(&format!("{file}?action=COMPLETE")).send().await;
    assert_eq!(reply.body["sizeInBytes"], row.len(), "{}", reply.text);
    // Catalog ranges and limits beyond 64 bits are clamped, never wrapped.
    let reply = app
        .get(CATALOG_BATCHES)
        .header("range", "objects=0-18446744073709551615")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.header("content-range"), Some("objects 0-0/1"));
    let reply = app
        .get(&format!(
            "{CATALOG_BATCHES}?limit=99999999999999999999999&start=18446744073709551615"
        ))
        .send()
        .await;
    assert_eq!((reply.status, reply.keys().len()), (StatusCode::OK, 0));
    let reply = app
        .get(&format!("{CATALOG_BATCHES}?limit=-99999999999999999999999"))
        .send()
        .await;
    assert!(reply.problem(400, "CAT-9001-400").contains("too small"));
}

#[tokio::test]
async fn chunked_uploads_arrive_in_any_order_and_are_checked_at_complete() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(&app, &dataset, json!({})).await;
    let rows: Vec<Value> = (0..30).map(event).collect();
    let bytes = lines(&rows);
    let total = bytes.len();
    let file = format!("{IMPORT_BATCHES}/{batch}/datasets/{dataset}/files/big/events.json");
    let chunk = |first: usize, last: usize| {
        let mut call = app
            .patch(&file)
            .header("content-type", "application/octet-stream")
            .header("content-range", &format!("bytes {first}-{last}/{total}"));
        call.body_bytes = Some(bytes[first..=last].to_vec());
        call
    };
    let reply = app.post(&format!("{file}?action=initialize")).send().await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (
            StatusCode::CREATED,
            json!({"name": "big/events.json", "sizeInBytes": 0})
        )
    );
    let third = total / 3;
    let reply = chunk(2 * third, total - 1).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["sizeInBytes"], total - 2 * third);
    assert!(reply.header("range").is_none());
    let reply = chunk(0, third - 1).send().await;
    assert_eq!(
        reply.header("range"),
        Some(format!("bytes=0-{}", third - 1).as_str())
    );
    // The same chunk re-sent replaces itself.
    let reply = chunk(0, third - 1).send().await;
    assert_eq!(reply.body["sizeInBytes"], third + total - 2 * third);
    let head = app.call(axum::http::Method::HEAD, &file).send().await;
    assert_eq!(
        (head.status, head.header("range")),
        (
            StatusCode::OK,
            Some(format!("bytes=0-{}", third - 1).as_str())
        )
    );
    // The middle chunk is missing: COMPLETE says which bytes.
    let reply = app.post(&format!("{file}?action=COMPLETE")).send().await;
    assert!(
        reply
            .problem(400, "INGEST-9007-400")
            .contains(&format!("bytes {third}-{} are missing", 2 * third - 1))
    );
    // A body that does not match its Content-Range is refused.
    let mut short = chunk(third, 2 * third - 1);
    short.body_bytes = Some(vec![b'x'; 3]);
    short.send().await.problem(400, "INGEST-9006-400");
    app.patch(&file)
        .header("content-type", "application/octet-stream")
        .header("content-range", "bytes x-y")
        .send()
        .await
        .problem(400, "INGEST-9006-400");
    chunk(third, 2 * third - 1).send().await;
    let reply = app.post(&format!("{file}?action=COMPLETE")).send().await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (
            StatusCode::OK,
            json!({"name": "big/events.json", "sizeInBytes": total})
        )
    );
    let head = app.call(axum::http::Method::HEAD, &file).send().await;
    assert_eq!(
        head.header("range"),
        Some(format!("bytes=0-{}", total - 1).as_str())
    );
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_u64()),
        (Some("success"), Some(30)),
        "{done}"
    );

    let other = new_batch(&app, &dataset, json!({})).await;
    let missing = format!("{IMPORT_BATCHES}/{other}/datasets/{dataset}/files/none.json");
    app.post(&format!("{missing}?action=COMPLETE"))
        .send()
        .await
        .problem(404, "INGEST-9003-404");
    app.call(axum::http::Method::HEAD, &missing).send().await;
    app.post(&format!("{missing}?action=SHIP"))
        .send()
        .await
        .problem(400, "INGEST-9010-400");
}

#[tokio::test]
async fn replay_and_revert() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let first = new_batch(&app, &dataset, json!({})).await;
    app.upload(&first, &dataset, "a.json", &lines(&[event(1)]))
        .await;
    assert_eq!(complete_and_run(&app, &first).await["status"], "success");
    // A replay that fails leaves the predecessor alone.
    let failing = new_batch(
        &app,
        &dataset,
        json!({"replay": {"predecessors": [first], "reason": "replace"}}),
    )
    .await;
    complete_and_run(&app, &failing).await;
    assert_eq!(app.batch(&first).await["status"], "success");
    // A replay that succeeds makes it inactive and hides its files.
    let replay = new_batch(
        &app,
        &dataset,
        json!({"replay": {"predecessors": [first], "reason": "replace"}}),
    )
    .await;
    app.upload(&replay, &dataset, "b.json", &lines(&[event(2)]))
        .await;
    assert_eq!(complete_and_run(&app, &replay).await["status"], "success");
    assert_eq!(app.batch(&first).await["status"], "inactive");
    let files = app
        .get(&format!(
            "/data/foundation/catalog/dataSetFiles?batchId={first}"
        ))
        .send()
        .await;
    assert_eq!(files.body[format!("{first}-1")]["isValid"], false);
    // REVERT the replay.
    assert_eq!(app.signal(&replay, "REVERT").await.status, StatusCode::OK);
    assert_eq!(app.batch(&replay).await["status"], "inactive");
    assert_eq!(app.signal(&replay, "REVERT").await.status, StatusCode::OK);
    let files = app
        .get(&format!(
            "/data/foundation/catalog/dataSetFiles?batchId={replay}&isValid=true"
        ))
        .send()
        .await;
    assert_eq!(files.body, json!({}));
}

#[tokio::test]
async fn preview_shows_uploaded_rows() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(&app, &dataset, json!({"inputFormat": {"format": "csv"}})).await;
    app.upload(
        &batch,
        &dataset,
        "a.csv",
        b"loyaltyId,points\nL-1001,250\nL-1002,75\n",
    )
    .await;
    let reply = app
        .get(&format!(
            "{IMPORT_BATCHES}/{batch}/datasets/{dataset}/preview?format=csv&nrow=1"
        ))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body["preview"]["columns"],
        json!([{"cid": "0", "name": "loyaltyId"}, {"cid": "1", "name": "points"}])
    );
    assert_eq!(
        reply.body["preview"]["rows"],
        json!([{"0": "L-1001", "1": "250"}])
    );
    assert_eq!(reply.body["formatParams"]["delimiter"], ",");
    app.get(&format!(
        "{IMPORT_BATCHES}/{batch}/datasets/{dataset}/preview"
    ))
    .send()
    .await
    .problem(400, "INGEST-9015-400");
    app.get(&format!(
        "{IMPORT_BATCHES}/{batch}/datasets/{dataset}/preview?format=avro"
    ))
    .send()
    .await
    .problem(415, "INGEST-9004-415");
}

/// ABORT is allowed from every non-terminal state (spec §3.7), FAIL likewise; producers can
/// put a batch into any state through the Catalog.
#[tokio::test]
async fn abort_and_fail_from_every_non_terminal_state() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    for status in [
        "loading",
        "loaded",
        "staging",
        "processing",
        "retrying",
        "stalled",
    ] {
        for (action, expected) in [("ABORT", "aborted"), ("FAIL", "failed")] {
            let batch = new_batch(&app, &dataset, json!({})).await;
            if status != "loading" {
                let reply = app
                    .patch(&format!("{CATALOG_BATCHES}/{batch}"))
                    .json(json!({"status": status}))
                    .send()
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            }
            let reply = app.signal(&batch, action).await;
            assert_eq!(
                reply.status,
                StatusCode::OK,
                "{action} from {status}: {}",
                reply.text
            );
            assert_eq!(
                app.batch(&batch).await["status"],
                expected,
                "{action} from {status}"
            );
        }
    }
    for terminal in ["success", "abandoned", "inactive", "deleted"] {
        let batch = new_batch(&app, &dataset, json!({})).await;
        app.patch(&format!("{CATALOG_BATCHES}/{batch}"))
            .json(json!({"status": terminal}))
            .send()
            .await;
        let reply = app.signal(&batch, "ABORT").await;
        assert!(
            reply
                .problem(400, "INGEST-9010-400")
                .contains(&format!("'{terminal}'")),
            "{terminal}"
        );
    }
    app.run_jobs().await;
}

/// An object store that cannot be reached answers 503 with a problem body the client may
/// retry on, never a 500, and the failed upload is not recorded.
#[tokio::test]
async fn an_unreachable_object_store_is_a_503() {
    let app = TestApp::with_config(|config| {
        // Nothing listens on port 9 of loopback; the credentials are never checked.
        config.storage.url = Some("s3://unreachable/lakeport".to_owned());
        config.storage.endpoint = Some("http://127.0.0.1:9".to_owned());
        config.storage.region = Some("us-east-1".to_owned());
        config.storage.access_key_id = Some("AKIDEXAMPLE".to_owned());
        config.storage.secret_access_key =
            Some(lakeport_config::SecretString::new("unused-secret"));
    })
    .await;
    let dataset = app.create_event_dataset("unreachable").await;
    let batch = new_batch(&app, &dataset, json!({})).await;
    let reply = app
        .upload_raw(&batch, &dataset, "rows.json", &lines(&[event(1)]))
        .await;
    let detail = reply.problem(503, "INGEST-9997-503");
    assert!(detail.contains("retry"), "{detail}");
    let tenant = lakeport_domain::tenant::Tenant::parse(ORG_A, "prod").unwrap();
    let files = app
        .metastore()
        .batch_files(&tenant, &BatchId::from(&batch))
        .await
        .unwrap();
    assert!(files.is_empty(), "{files:?}");
    let batch_doc = app.batch(&batch).await;
    assert_eq!(batch_doc["status"], "loading");
}

/// A row larger than `ingest.max_row_bytes` (a JSON line, an element of a JSON array, a CSV
/// record) is a parsing error of that row: counted, written to the failed rows with its
/// first bytes, and the rest of the file is ingested. The upload preview refuses it.
#[tokio::test]
async fn rows_over_the_row_limit_are_rejected_one_by_one() {
    let app = TestApp::with_config(|c| c.ingest.max_row_bytes = 2048).await;
    let dataset = app.create_event_dataset("events").await;
    let mut big = event(1);
    big[ns()]["tags"] = json!(["x".repeat(5000)]);
    let rows = [event(0), big, event(2), event(3)];
    let partial = json!({"partialIngestionPercent": 50, "enableErrorDiagnostics": true});
    let array = serde_json::to_vec(&rows).unwrap();
    for (format, bytes, what) in [
        (json!({"format": "json"}), lines(&rows), "line 2"),
        (
            json!({"format": "json", "isMultiLineJson": true}),
            array,
            "element 2",
        ),
    ] {
        let mut body = partial.clone();
        body["inputFormat"] = format;
        let batch = new_batch(&app, &dataset, body).await;
        app.upload(&batch, &dataset, "rows.json", &bytes).await;

        // The preview shows the rows before it, and refuses the oversized one.
        let preview = |nrow: usize| {
            let multi = what.starts_with("element");
            app.get(&format!(
                "{IMPORT_BATCHES}/{batch}/datasets/{dataset}/preview?format=json&nrow={nrow}&isMultiLineJson={multi}"
            ))
            .send()
        };
        let shown = preview(1).await;
        assert_eq!(shown.status, StatusCode::OK, "{}", shown.text);
        assert_eq!(shown.body["preview"]["rows"].as_array().unwrap().len(), 1);
        let refused = preview(4).await;
        let detail = refused.problem(400, "INGEST-9019-400");
        assert!(
            detail.contains(&format!(
                "{what} is larger than the maximum row size of 2048 bytes"
            )),
            "{detail}"
        );

        let done = complete_and_run(&app, &batch).await;
        assert_eq!(done["status"], "success", "{done}");
        assert_eq!(
            (
                done["recordCount"].as_u64(),
                done["failedRecordCount"].as_u64()
            ),
            (Some(3), Some(1))
        );
        let codes: Vec<&str> = done["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["code"].as_str().unwrap())
            .collect();
        assert!(codes.contains(&"INGEST-1401-400"), "{codes:?}");
        let ids: Vec<Value> = app
            .promoted_rows(&batch)
            .await
            .iter()
            .map(|row| row["_id"].clone())
            .collect();
        assert_eq!(ids.len(), 3);
        assert!(!ids.contains(&json!("evt-1")));

        let failed = app
            .get(&format!(
                "/data/foundation/export/batches/{batch}/failed?path=part-00001.json"
            ))
            .send()
            .await;
        assert_eq!(failed.status, StatusCode::OK, "{}", failed.text);
        let rejected: Vec<Value> = failed
            .text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(rejected.len(), 1);
        let message = rejected[0]["_errors"][0]["message"].as_str().unwrap();
        assert!(
            message.starts_with(&format!(
                "{what} is larger than the maximum row size of 2048 bytes ("
            )),
            "{message}"
        );
        let corrupt = rejected[0]["_corrupt_record"].as_str().unwrap();
        assert!(
            corrupt.len() <= 1024 && corrupt.contains("evt-1"),
            "{corrupt}"
        );
    }

    // A CSV record: an unterminated quote runs to the end of the file.
    let batch = new_batch(
        &app,
        &dataset,
        json!({"inputFormat": {"format": "csv"}, "partialIngestionPercent": 50}),
    )
    .await;
    let mut csv = b"_id,timestamp\nevt-0,2024-03-01T10:00:00Z\nevt-1,\"".to_vec();
    csv.extend(std::iter::repeat_n(b'q', 100_000));
    app.upload(&batch, &dataset, "rows.csv", &csv).await;
    let done = complete_and_run(&app, &batch).await;
    assert_eq!(
        (
            done["recordCount"].as_u64(),
            done["failedRecordCount"].as_u64()
        ),
        (Some(1), Some(1)),
        "{done}"
    );
}

/// A preview holds at most 16 MiB of cell text over all its files (the row that reaches it
/// is the last), however many rows were asked for: 1,000 rows at the row limit would
/// otherwise be a gigabyte.
#[tokio::test]
async fn the_upload_preview_stops_at_its_text_budget() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let batch = new_batch(&app, &dataset, json!({})).await;
    let cell = "x".repeat(1_000_000);
    let file: Vec<u8> = format!("{{\"_id\": \"{cell}\"}}\n").repeat(10).into_bytes();
    for name in ["a.json", "b.json"] {
        app.upload(&batch, &dataset, name, &file).await;
    }
    let reply = app
        .get(&format!(
            "{IMPORT_BATCHES}/{batch}/datasets/{dataset}/preview?format=json&nrow=1000"
        ))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", &reply.text[..200]);
    // 16 MiB is 16,777,216 bytes: the 17th row of 1,000,000 reaches it.
    assert_eq!(reply.body["preview"]["rows"].as_array().unwrap().len(), 17);
}

/// Downloads the Parquet files of `batch` from the dataset's table (Data Access) into the
/// data directory, and returns their paths.
async fn table_files_of(app: &TestApp, dataset: &str, batch: &str) -> Vec<std::path::PathBuf> {
    let listing = app
        .get(&format!(
            "/data/foundation/export/datasets/{dataset}/table?asOfBatch={batch}"
        ))
        .send()
        .await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.text);
    let mut paths = Vec::new();
    for file in listing.body["data"].as_array().unwrap() {
        if !file["name"].as_str().unwrap().contains(batch) {
            continue;
        }
        let reply = app
            .get(file["_links"]["self"]["href"].as_str().unwrap())
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let path = app
            .data_dir()
            .join(format!("{batch}-{}.parquet", paths.len()));
        std::fs::write(&path, &reply.bytes).unwrap();
        paths.push(path);
    }
    paths
}

/// A dataset's own Parquet uploaded again keeps its encoded pages (every column has the
/// dataset's types and levels, and every row passes): the copied column chunks carry no
/// statistics, and the rows read back are the same.
#[tokio::test]
async fn a_dataset_s_own_parquet_uploaded_again_keeps_its_pages() {
    use lakeport_test_support::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let first = new_batch(&app, &dataset, json!({})).await;
    let rows: Vec<Value> = (0..500).map(event).collect();
    app.upload(&first, &dataset, "rows.json", &lines(&rows))
        .await;
    assert_eq!(complete_and_run(&app, &first).await["status"], "success");
    let files = table_files_of(&app, &dataset, &first).await;
    assert_eq!(files.len(), 1);
    let chunks_with_statistics = |path: &std::path::Path| {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
        let metadata = builder.metadata();
        let chunks: Vec<bool> = metadata
            .row_groups()
            .iter()
            .flat_map(|group| {
                group
                    .columns()
                    .iter()
                    .map(|chunk| chunk.statistics().is_some())
            })
            .collect();
        (chunks.iter().filter(|&&stats| stats).count(), chunks.len())
    };
    let (with_statistics, chunks) = chunks_with_statistics(&files[0]);
    assert_eq!(
        with_statistics, chunks,
        "Lakeport's own chunks have statistics"
    );

    let again = new_batch(
        &app,
        &dataset,
        json!({"inputFormat": {"format": "parquet"}}),
    )
    .await;
    app.upload(
        &again,
        &dataset,
        "again.parquet",
        &std::fs::read(&files[0]).unwrap(),
    )
    .await;
    let done = complete_and_run(&app, &again).await;
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_u64()),
        (Some("success"), Some(500)),
        "{done}"
    );
    let copied = table_files_of(&app, &dataset, &again).await;
    assert_eq!(copied.len(), 1);
    let (with_statistics, chunks) = chunks_with_statistics(&copied[0]);
    assert!(chunks > 0);
    assert_eq!(
        with_statistics, 0,
        "every chunk was copied, without statistics"
    );
    assert_eq!(
        app.promoted_rows(&again).await,
        app.promoted_rows(&first).await
    );
}
