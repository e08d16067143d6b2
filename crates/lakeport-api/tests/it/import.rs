//! `POST /data/foundation/import/batches`: Adobe's "Create a batch" call (spec §3.1).

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

/// The seed call exactly as Adobe documents it, answered with every field in its type.
#[tokio::test]
async fn create_a_batch_like_adobes_page() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "Loyalty members"})).await;
    let reply = app
        .post(IMPORT_BATCHES)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .raw(&format!("{{\"datasetId\": \"{dataset}\"}}"))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let batch = reply.body.as_object().unwrap();
    let id = batch["id"].as_str().unwrap();
    assert_eq!(id.len(), 26);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    );
    assert_eq!(batch["imsOrg"], ORG_A);
    assert_eq!(batch["status"], "loading");
    assert!(batch["created"].is_i64() && batch["updated"].is_i64());
    assert!(batch["created"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(
        batch["relatedObjects"],
        json!([{"type": "dataSet", "id": dataset}])
    );
    assert_eq!(batch["version"], "1.0.0");
    assert_eq!(
        batch["tags"],
        json!({"acp_producer": [API_KEY], "acp_stagePath": [format!("{API_KEY}/stage/{id}")],
               "use_plan_b_batch_status": ["false"]})
    );
    assert_eq!(batch["createdUser"], format!("{API_KEY}@AdobeID"));
    assert_eq!(batch["updatedUser"], format!("{API_KEY}@AdobeID"));
    assert_eq!(batch["externalId"], id);
    assert_eq!(batch["createdClient"], API_KEY);
    assert_eq!(batch["inputFormat"], json!({"format": "parquet"}));
    assert_eq!(batch["sandboxId"].as_str().unwrap().len(), 36);
    assert!(
        reply
            .header("location")
            .unwrap()
            .ends_with(&format!("/data/foundation/catalog/batches/{id}"))
    );

    let stored = app.get(&format!("{CATALOG_BATCHES}/{id}")).send().await;
    assert_eq!(stored.body[id], reply.body);
    let listed = app
        .get(&format!("{CATALOG_BATCHES}?dataSet={dataset}"))
        .send()
        .await;
    assert_eq!(listed.keys(), [id.to_owned()]);
    let dataset_doc = app
        .get(&format!("{CATALOG_DATASETS}/{dataset}"))
        .send()
        .await
        .body[&dataset]
        .clone();
    assert_eq!(
        (
            dataset_doc["lastBatchId"].as_str(),
            dataset_doc["lastBatchStatus"].as_str()
        ),
        (Some(id), Some("loading"))
    );
}

#[tokio::test]
async fn input_format_defaults_to_the_dataset_format_and_is_lower_cased() {
    let app = TestApp::new().await;
    let json_dataset = app
        .create_dataset(json!({"name": "j", "fileDescription": {"format": "json"}}))
        .await;
    let batch = app.create_batch(json!({"datasetId": json_dataset})).await;
    assert_eq!(batch["inputFormat"], json!({"format": "json"}));
    let batch = app
        .create_batch(json!({"datasetId": json_dataset, "inputFormat": {"format": "CSV", "header": true, "delimiter": ";", "charset": "ISO-8859-1"}}))
        .await;
    assert_eq!(
        batch["inputFormat"],
        json!({"format": "csv", "header": "true", "delimiter": ";", "charset": "ISO-8859-1"})
    );
    let batch = app.create_batch(json!({"datasetId": json_dataset, "inputFormat": {"format": "JSON", "isMultiLineJson": true}})).await;
    assert_eq!(
        batch["inputFormat"],
        json!({"format": "json", "isMultiLineJson": true})
    );
}

#[tokio::test]
async fn options_become_tags() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "n"})).await;
    let batch = app
        .create_batch(json!({"datasetId": dataset, "enableErrorDiagnostics": true, "partialIngestionPercentage": 5,
                             "tags": {"team": "data", "n": 3}}))
        .await;
    assert_eq!(batch["tags"]["acp_enableErrorDiagnostics"], json!(["true"]));
    assert_eq!(batch["tags"]["acp_partialIngestionPercent"], json!(["5"]));
    assert_eq!(batch["tags"]["team"], json!(["data"]));
    assert_eq!(batch["tags"]["n"], json!(["3"]));
    let batch = app
        .create_batch(json!({"datasetId": dataset, "partialIngestionPercent": 2.5}))
        .await;
    assert_eq!(batch["tags"]["acp_partialIngestionPercent"], json!(["2.5"]));
}

#[tokio::test]
async fn external_ids_are_unique_per_sandbox() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "n"})).await;
    let batch = app
        .create_batch(json!({"datasetId": dataset, "externalId": "load-2025-03-01"}))
        .await;
    assert_eq!(batch["externalId"], "load-2025-03-01");
    let reply = app
        .post(IMPORT_BATCHES)
        .json(json!({"datasetId": dataset, "externalId": "load-2025-03-01"}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "INGEST-9011-400"),
        "a batch with externalId \"load-2025-03-01\" already exists in this sandbox"
    );
    let dev_dataset = app
        .create_dataset_in(ORG_A, "dev", json!({"name": "n"}))
        .await;
    let reply = app
        .post(IMPORT_BATCHES)
        .tenant(ORG_A, "dev")
        .json(json!({"datasetId": dev_dataset, "externalId": "load-2025-03-01"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
}

#[tokio::test]
async fn replay_blocks_are_validated_and_stored() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "n"})).await;
    let other = app.create_dataset(json!({"name": "o"})).await;
    let loading = app.create_batch(json!({"datasetId": dataset})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app.post(IMPORT_BATCHES).json(json!({"datasetId": dataset, "replay": {"predecessors": [loading], "reason": "replace"}})).send().await;
    assert_eq!(
        reply.problem(400, "INGEST-9012-400"),
        format!("replay predecessor {loading} is loading; only a successful batch can be replayed")
    );
    let done = reference_id(
        &app.post(CATALOG_BATCHES)
            .json(json!({"status": "success", "externalId": "day-1", "relatedObjects": [{"type": "dataSet", "id": dataset}]}))
            .send()
            .await
            .body,
    );
    let reply = app
        .post(IMPORT_BATCHES)
        .json(json!({"datasetId": other, "replay": {"predecessors": [done]}}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "INGEST-9012-400"),
        format!("replay predecessor {done} belongs to dataset {dataset}, not {other}")
    );
    let reply = app
        .post(IMPORT_BATCHES)
        .json(json!({"datasetId": dataset, "replay": {"predecessors": ["NOPE"]}}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "INGEST-9012-400"),
        "replay predecessor NOPE does not exist"
    );
    let batch = app
        .create_batch(json!({"datasetId": dataset, "replay": {"predecessors": [format!("${done}")], "predecessorsByExternalId": ["day-1"], "reason": "replace", "predecessorListingType": "ALL"}}))
        .await;
    assert_eq!(
        batch["replay"],
        json!({"predecessors": [done], "predecessorListingType": "ALL", "predecessorsByExternalId": ["day-1"], "reason": "replace"})
    );
}

#[tokio::test]
async fn bad_requests_say_what_to_fix() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "n"})).await;
    let reply = app
        .post(IMPORT_BATCHES)
        .json(json!({"datasetId": "000000000000000000000000"}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "INGEST-9014-400"),
        "dataset 000000000000000000000000 does not exist in this sandbox"
    );
    let cases = [
        (
            json!({}),
            "field `datasetId` is required: the id of the dataset to ingest into",
        ),
        (
            json!({"datasetId": 1}),
            "field `datasetId` must be a string",
        ),
        (
            json!({"datasetId": dataset, "inputFormat": {"format": "xml"}}),
            "field `inputFormat.format` is \"xml\"; expected json, parquet or csv",
        ),
        (
            json!({"datasetId": dataset, "inputFormat": "json"}),
            "field `inputFormat` must be an object such as {\"format\": \"json\"}",
        ),
        (
            json!({"datasetId": dataset, "partialIngestionPercent": "five"}),
            "field `partialIngestionPercent` is \"five\"; expected a number from 0 to 100",
        ),
        (
            json!({"datasetId": dataset, "enableErrorDiagnostics": "yes"}),
            "field `enableErrorDiagnostics` must be true or false",
        ),
        (
            json!({"datasetId": dataset, "externalId": 5}),
            "field `externalId` must be a string of 1 to 256 characters",
        ),
        (
            json!({"datasetId": dataset, "replay": []}),
            "field `replay` must be an object {\"predecessors\": [...], \"reason\": ...}",
        ),
        (
            json!({"datasetId": dataset, "tags": "x"}),
            "field `tags` must be an object mapping tag names to arrays of strings",
        ),
    ];
    for (body, expected) in cases {
        let reply = app.post(IMPORT_BATCHES).json(body.clone()).send().await;
        assert_eq!(reply.problem(400, "INGEST-9013-400"), expected, "{body}");
    }
    let reply = app
        .post(IMPORT_BATCHES)
        .header("content-type", "application/json")
        .raw("{datasetId}")
        .send()
        .await;
    assert!(
        reply
            .problem(400, "INGEST-9013-400")
            .starts_with("the request body is not valid JSON")
    );
    let reply = app
        .post(IMPORT_BATCHES)
        .raw(&json!({"datasetId": dataset}).to_string())
        .send()
        .await;
    assert!(
        reply
            .problem(400, "INGEST-9013-400")
            .starts_with("A valid content type must be given")
    );
    let reply = app
        .post(IMPORT_BATCHES)
        .header("content-type", "application/json")
        .raw(&"x".repeat(5 * 1024 * 1024))
        .send()
        .await;
    reply.problem(413, "INGEST-9016-413");
    assert_eq!(app.get(CATALOG_BATCHES).send().await.body, json!({}));
}
