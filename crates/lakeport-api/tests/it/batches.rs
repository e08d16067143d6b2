//! `/batches` on the Catalog (producer-managed batches) and `/lastBatches`.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn catalog_create_needs_a_status_and_answers_a_reference() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "n"})).await;
    let reply = app
        .post(CATALOG_BATCHES)
        .json(json!({"relatedObjects": [{"type": "dataSet", "id": dataset}]}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9002-400"),
        "field `status` is required when a batch is created through the Catalog"
    );
    let reply = app
        .post(CATALOG_BATCHES)
        .json(json!({"status": "active", "relatedObjects": [{"type": "dataSet", "id": dataset}], "recordCount": 5, "custom": 1}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reference_id(&reply.body);
    assert_eq!(reply.body, json!([format!("@/batches/{id}")]));
    assert!(
        reply
            .header("location")
            .unwrap()
            .ends_with(&format!("/data/foundation/catalog/batches/{id}"))
    );
    let batch = app
        .get(&format!("{CATALOG_BATCHES}/{id}"))
        .send()
        .await
        .body[&id]
        .clone();
    assert_eq!(batch["status"], "success");
    assert_eq!(batch["externalId"], id.as_str());
    assert_eq!(
        (batch["recordCount"].as_i64(), batch["custom"].as_i64()),
        (Some(5), Some(1))
    );
    let reply = app
        .post(CATALOG_BATCHES)
        .json(json!({"status": "done"}))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "CAT-9002-400")
            .starts_with("field `status` status \"done\" is not one of")
    );
}

#[tokio::test]
async fn catalog_create_with_a_chosen_id() {
    let app = TestApp::new().await;
    let path = format!("{CATALOG_BATCHES}/my-batch-1");
    let reply = app
        .post(&path)
        .json(json!({"status": "loading"}))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::CREATED, json!(["@/batches/my-batch-1"]))
    );
    let reply = app
        .post(&path)
        .json(json!({"status": "loading"}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9006-400"),
        "batch my-batch-1 already exists"
    );
    let reply = app
        .post(CATALOG_BATCHES)
        .json(json!({"status": "loading", "externalId": "my-batch-1"}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9006-400"),
        "a batch with externalId \"my-batch-1\" already exists in this sandbox"
    );
}

#[tokio::test]
async fn producers_update_batches_and_last_batches_follow() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "n"})).await;
    let first = app.create_batch(json!({"datasetId": dataset})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = app.create_batch(json!({"datasetId": dataset})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("{CATALOG_BATCHES}/{second}");
    let reply = app
        .patch(&path)
        .json(json!({"status": "failure", "errors": [{"code": "X", "description": "bad"}]}))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([format!("@/batches/{second}")]))
    );
    let batch = app.get(&path).send().await.body[&second].clone();
    assert_eq!(
        (batch["status"].as_str(), batch["version"].as_str()),
        (Some("failed"), Some("1.0.1"))
    );

    let reply = app
        .put(&format!("{CATALOG_BATCHES}/{first}"))
        .json(json!({"status": "success", "recordCount": 10}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let batch = app
        .get(&format!("{CATALOG_BATCHES}/{first}"))
        .send()
        .await
        .body[&first]
        .clone();
    assert_eq!(
        batch["relatedObjects"],
        json!(null),
        "PUT replaces every mutable field"
    );
    assert_eq!(
        batch["externalId"],
        first.as_str(),
        "externalId is read-only after creation"
    );

    let reply = app.get("/data/foundation/catalog/lastBatches").send().await;
    let entry = &reply.body[&dataset];
    assert_eq!(entry["lastBatchId"], second.as_str());
    assert_eq!(entry["lastBatchStatus"], "failed");
    assert_eq!(entry["lastFailedBatchId"], second.as_str());
    assert_eq!(entry["imsOrg"], ORG_A);
    let reply = app
        .get(&format!(
            "/data/foundation/catalog/lastBatches?dataSetId={dataset}&properties=lastBatchStatus"
        ))
        .send()
        .await;
    assert_eq!(
        reply.body,
        json!({dataset.clone(): {"lastBatchStatus": "failed"}})
    );
    let reply = app
        .get("/data/foundation/catalog/lastBatches?lastBatchStatus=success")
        .send()
        .await;
    assert_eq!(reply.body, json!({}));

    let reply = app.patch(&path).json(json!({"status": 3})).send().await;
    assert_eq!(
        reply.problem(400, "CAT-9002-400"),
        "field `status` must be a string"
    );
    let reply = app
        .patch(&path)
        .json(json!({"recordCount": -1}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9002-400"),
        "field `recordCount` must be a non-negative integer"
    );
}

#[tokio::test]
async fn aggregate_folds_related_objects() {
    let app = TestApp::new().await;
    let reply = app
        .post(CATALOG_BATCHES)
        .json(json!({"status": "success", "relatedObjects": [
            {"type": "dataSet", "id": "d1", "metrics": {"recordCount": 2}, "errors": [{"code": "a"}]},
            {"type": "dataSet", "id": "d2", "metrics": {"recordCount": 3}}]}))
        .send()
        .await;
    let id = reference_id(&reply.body);
    let reply = app
        .get(&format!("{CATALOG_BATCHES}/{id}?aggregate=true"))
        .send()
        .await;
    assert_eq!(reply.body[&id]["metrics"], json!({"recordCount": 5}));
    assert_eq!(reply.body[&id]["errors"], json!([{"code": "a"}]));
    let reply = app.get(&format!("{CATALOG_BATCHES}/{id}")).send().await;
    assert!(reply.body[&id].get("metrics").is_none());
}

#[tokio::test]
async fn deleting_a_batch() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "n"})).await;
    let id = app.create_batch(json!({"datasetId": dataset})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app.delete(&format!("{CATALOG_BATCHES}/{id}")).send().await;
    assert_eq!(reply.body, json!([format!("@/batches/{id}")]));
    app.get(&format!("{CATALOG_BATCHES}/{id}"))
        .send()
        .await
        .problem(404, "CAT-9004-404");
}
