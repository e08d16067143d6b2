//! `/dataSets`: create, lookups, PUT, PATCH (merge, JSON Patch, v2 deep merge), DELETE,
//! If-Match, validate-only and bad inputs.

use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn schema_ref(id: &str) -> Value {
    json!({"id": id, "contentType": "application/vnd.adobe.xed+json;version=1"})
}

#[tokio::test]
async fn create_answers_201_with_a_reference_and_location() {
    let app = TestApp::new().await;
    let schema = app.create_profile_schema("Loyalty members").await;
    let reply = app
        .post(CATALOG_DATASETS)
        .header("host", "lakeport.test:8080")
        .json(json!({"name": "Loyalty members", "schemaRef": schema_ref(&schema),
                     "fileDescription": {"persisted": true, "containerFormat": "parquet", "format": "parquet"},
                     "custom": {"kept": true}}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let id = reference_id(&reply.body);
    assert_eq!(reply.body, json!([format!("@/dataSets/{id}")]));
    assert_eq!(id.len(), 24);
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        reply.header("location"),
        Some(format!("http://lakeport.test:8080/data/foundation/catalog/dataSets/{id}").as_str())
    );

    let reply = app.get(&format!("{CATALOG_DATASETS}/{id}")).send().await;
    assert_eq!(reply.status, StatusCode::OK);
    let dataset = &reply.body[&id];
    assert_eq!(dataset["name"], "Loyalty members");
    assert_eq!(dataset["imsOrg"], ORG_A);
    assert_eq!(dataset["version"], "1.0.0");
    assert_eq!(dataset["schemaRef"], schema_ref(&schema));
    assert_eq!(
        dataset["classification"],
        json!({"dataBehavior": "record", "managedBy": "CUSTOMER"})
    );
    assert_eq!(dataset["custom"], json!({"kept": true}));
    assert_eq!(dataset["files"], format!("@/dataSetFiles?dataSetId={id}"));
    assert_eq!(
        dataset["tags"]["adobe/pqs/table"],
        json!(["loyalty_members"])
    );
    assert_eq!(dataset["createdClient"], API_KEY);
    assert_eq!(dataset["createdUser"], format!("{API_KEY}@AdobeID"));
    assert!(dataset["created"].is_i64() && dataset["created"] == dataset["updated"]);
    assert_eq!(dataset["sandboxId"].as_str().unwrap().len(), 36);
    assert_eq!(dataset["viewId"].as_str().unwrap().len(), 24);
    let lake = app.storage().url_of(&lakeport_storage::Key::from("lake"));
    assert!(
        dataset["basePath"].as_str().unwrap().starts_with(&lake),
        "{} is not under {lake}",
        dataset["basePath"]
    );
    assert_eq!(reply.header("etag"), Some("\"1.0.0\""));
    assert_eq!(reply.header("e-tag"), Some("\"1.0.0\""));
}

#[tokio::test]
async fn public_origin_is_used_for_location() {
    let app =
        TestApp::with_config(|c| c.server.public_origin = Some("https://aep.example.com".into()))
            .await;
    let reply = app
        .post(CATALOG_DATASETS)
        .json(json!({"name": "x"}))
        .send()
        .await;
    let id = reference_id(&reply.body);
    assert_eq!(
        reply.header("location"),
        Some(format!("https://aep.example.com/data/foundation/catalog/dataSets/{id}").as_str())
    );
}

#[tokio::test]
async fn multi_get_returns_existing_ids_in_requested_order() {
    let app = TestApp::new().await;
    let first = app.create_dataset(json!({"name": "first"})).await;
    let second = app.create_dataset(json!({"name": "second"})).await;
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}/{second},000000000000000000000000,{first}"
        ))
        .send()
        .await;
    assert_eq!(reply.keys(), [second.clone(), first.clone()]);
    assert!(reply.header("etag").is_none());
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}/{first}?properties=name,nothing"
        ))
        .send()
        .await;
    assert_eq!(reply.body, json!({first.clone(): {"name": "first"}}));
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}/000000000000000000000000,111111111111111111111111"
        ))
        .send()
        .await;
    assert!(
        reply
            .problem(404, "CAT-9004-404")
            .contains("does not exist")
    );
}

#[tokio::test]
async fn put_replaces_mutable_fields_and_keeps_system_fields() {
    let app = TestApp::new().await;
    let id = app
        .create_dataset(json!({"name": "before", "description": "gone after PUT"}))
        .await;
    let path = format!("{CATALOG_DATASETS}/{id}");
    let before = app.get(&path).send().await.body[&id].clone();
    let reply = app
        .put(&path)
        .json(json!({"name": "after", "id": "ignored", "created": 1}))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([format!("@/dataSets/{id}")]))
    );
    assert_eq!(reply.header("etag"), Some("\"1.0.1\""));
    let after = app.get(&path).send().await.body[&id].clone();
    assert_eq!(after["name"], "after");
    assert!(after.get("description").is_none());
    for field in [
        "id",
        "created",
        "imsOrg",
        "sandboxId",
        "viewId",
        "files",
        "createdUser",
    ] {
        assert_eq!(after[field], before[field], "{field}");
    }
    assert_eq!(after["version"], "1.0.1");
    assert_eq!(after["tags"]["adobe/pqs/table"], json!(["before"]));
}

#[tokio::test]
async fn patch_merges_top_level_keys() {
    let app = TestApp::new().await;
    let id = app
        .create_dataset(json!({"name": "n", "description": "d", "tags": {"team": ["a"]}}))
        .await;
    let path = format!("{CATALOG_DATASETS}/{id}");
    let reply = app
        .patch(&path)
        .json(json!({"description": "new", "tags": {"team": "b"}}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let dataset = app.get(&path).send().await.body[&id].clone();
    assert_eq!(
        (dataset["name"].as_str(), dataset["description"].as_str()),
        (Some("n"), Some("new"))
    );
    assert_eq!(dataset["tags"]["team"], json!(["b"]));
    assert_eq!(dataset["tags"]["adobe/pqs/table"], json!(["n"]));
    assert_eq!(dataset["version"], "1.0.1");
}

#[tokio::test]
async fn patch_accepts_json_patch_in_both_spellings() {
    let app = TestApp::new().await;
    let id = app.create_dataset(json!({"name": "n", "tags": {}})).await;
    let path = format!("{CATALOG_DATASETS}/{id}");
    for (content_type, value) in [
        ("application/json-patch+json", "one"),
        ("application/json+patch", "two"),
    ] {
        let ops = json!([{"op": "replace", "path": "/name", "value": value}, {"op": "add", "path": "/tags/env", "value": ["prod"]}]);
        let reply = app
            .patch(&path)
            .header("content-type", content_type)
            .raw(&ops.to_string())
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        let dataset = app.get(&path).send().await.body[&id].clone();
        assert_eq!(dataset["name"], value);
        assert_eq!(dataset["tags"]["env"], json!(["prod"]));
    }
    let ops = json!([{"op": "replace", "path": "/imsOrg", "value": ORG_B}]);
    let reply = app
        .patch(&path)
        .header("content-type", "application/json-patch+json")
        .raw(&ops.to_string())
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9002-400"),
        "field `imsOrg` is read-only and cannot be changed"
    );
    let ops = json!([{"op": "remove", "path": "/nothing"}]);
    let reply = app
        .patch(&path)
        .header("content-type", "application/json-patch+json")
        .raw(&ops.to_string())
        .send()
        .await;
    assert!(
        reply
            .problem(400, "CAT-9002-400")
            .starts_with("the JSON Patch cannot be applied")
    );
    let reply = app
        .patch(&path)
        .header("content-type", "application/json-patch+json")
        .raw("{\"op\": 1}")
        .send()
        .await;
    assert!(reply.problem(400, "CAT-9002-400").contains("RFC 6902"));
    assert_eq!(app.get(&path).send().await.body[&id]["version"], "1.0.2");
}

#[tokio::test]
async fn v2_patch_deep_merges() {
    let app = TestApp::new().await;
    let id = app
        .create_dataset(json!({"name": "n", "classification": {"managedBy": "CUSTOMER"}}))
        .await;
    let reply = app
        .patch(&format!("/data/foundation/catalog/v2/dataSets/{id}"))
        .json(
            json!({"extensions": {"adobe_lakeHouse": {"rowExpiration": {"ttlValue": "P30D"}}},
                     "classification": {"dataBehavior": "time-series"}}),
        )
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([format!("@/dataSets/{id}")]))
    );
    let dataset = app
        .get(&format!("{CATALOG_DATASETS}/{id}"))
        .send()
        .await
        .body[&id]
        .clone();
    assert_eq!(
        dataset["extensions"]["adobe_lakeHouse"]["rowExpiration"]["ttlValue"],
        "P30D"
    );
    assert_eq!(
        dataset["classification"],
        json!({"managedBy": "CUSTOMER", "dataBehavior": "time-series"})
    );
}

#[tokio::test]
async fn if_match_guards_updates() {
    let app = TestApp::new().await;
    let id = app.create_dataset(json!({"name": "n"})).await;
    let path = format!("{CATALOG_DATASETS}/{id}");
    let reply = app
        .patch(&path)
        .header("if-match", "1.0.5")
        .json(json!({"name": "x"}))
        .send()
        .await;
    assert_eq!(
        reply.problem(412, "CAT-9005-412"),
        "If-Match \"1.0.5\" does not match the current version \"1.0.0\""
    );
    let reply = app
        .put(&path)
        .header("if-match", "\"1.0.0\"")
        .json(json!({"name": "x"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = app
        .put(&path)
        .header("if-match", "\"1.0.0\"")
        .json(json!({"name": "y"}))
        .send()
        .await;
    reply.problem(412, "CAT-9005-412");
    assert_eq!(app.get(&path).send().await.body[&id]["name"], "x");
}

#[tokio::test]
async fn delete_removes_and_unknown_ids_answer_an_empty_array() {
    let app = TestApp::new().await;
    let id = app.create_dataset(json!({"name": "n"})).await;
    let batch = app.create_batch(json!({"datasetId": id})).await;
    let path = format!("{CATALOG_DATASETS}/{id}");
    let reply = app.delete(&path).send().await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([format!("@/dataSets/{id}")]))
    );
    app.get(&path).send().await.problem(404, "CAT-9004-404");
    let reply = app.delete(&path).send().await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([]))
    );
    let batch_id = batch["id"].as_str().unwrap();
    let reply = app
        .get(&format!("{CATALOG_BATCHES}/{batch_id}"))
        .send()
        .await;
    assert_eq!(reply.body[batch_id]["status"], "deleted");
}

#[tokio::test]
async fn validate_only_stores_nothing() {
    let app = TestApp::new().await;
    let reply = app
        .post(CATALOG_DATASETS)
        .header("pragma", "validate-only")
        .json(json!({"name": "dry"}))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([]))
    );
    assert_eq!(app.get(CATALOG_DATASETS).send().await.body, json!({}));
    let reply = app
        .post(CATALOG_DATASETS)
        .header("pragma", "validate-only")
        .json(json!({"name": 1}))
        .send()
        .await;
    reply.problem(400, "CAT-9002-400");
    let id = app.create_dataset(json!({"name": "real"})).await;
    let path = format!("{CATALOG_DATASETS}/{id}");
    let reply = app
        .put(&path)
        .header("pragma", "validate-only")
        .json(json!({"name": "changed"}))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!([]))
    );
    assert_eq!(app.get(&path).send().await.body[&id]["name"], "real");
}

#[tokio::test]
async fn request_data_source_invents_an_id() {
    let app = TestApp::new().await;
    let reply = app
        .post(&format!("{CATALOG_DATASETS}?requestDataSource=true"))
        .json(json!({"name": "n"}))
        .send()
        .await;
    let id = reference_id(&reply.body);
    assert!(
        app.get(&format!("{CATALOG_DATASETS}/{id}"))
            .send()
            .await
            .body[&id]["dataSourceId"]
            .is_i64()
    );
    let reply = app
        .post(&format!("{CATALOG_DATASETS}?requestDataSource=False"))
        .json(json!({"name": "n"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = app
        .post(&format!("{CATALOG_DATASETS}?requestDataSource=maybe"))
        .json(json!({"name": "n"}))
        .send()
        .await;
    reply.problem(400, "CAT-9001-400");
}

#[tokio::test]
async fn bad_bodies_get_clear_errors() {
    let app = TestApp::new().await;
    let reply = app
        .post(CATALOG_DATASETS)
        .header("content-type", "application/json")
        .raw("{\"name\": ")
        .send()
        .await;
    assert!(
        reply
            .problem(400, "CAT-9002-400")
            .starts_with("the request body is not valid JSON")
    );
    let reply = app
        .post(CATALOG_DATASETS)
        .raw("{\"name\": \"x\"}")
        .send()
        .await;
    assert_eq!(reply.body["title"], "BadRequestError");
    assert!(
        reply
            .problem(400, "CAT-9002-400")
            .starts_with("A valid content type must be given")
    );
    let reply = app
        .post(CATALOG_DATASETS)
        .header("content-type", "text/plain")
        .raw("{}")
        .send()
        .await;
    assert!(reply.problem(400, "CAT-9002-400").contains("text/plain"));
    let reply = app
        .post(CATALOG_DATASETS)
        .header("content-type", "application/json")
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9002-400"),
        "the request body is empty; a JSON document is required"
    );
    let cases = [
        (json!([]), "the body must be a JSON object"),
        (json!({"name": 7}), "field `name` must be a string"),
        (
            json!({"schemaRef": {"id": 5}}),
            "field `schemaRef.id` must be a string",
        ),
        (
            json!({"schemaRef": {"id": "x", "contentType": "text/plain"}}),
            "field `schemaRef.contentType` is \"text/plain\"; expected an XDM media type such as application/vnd.adobe.xed+json;version=1",
        ),
        (
            json!({"fileDescription": {"format": "xml"}}),
            "field `fileDescription.format` is \"xml\"; expected one of csv, text, parquet, json, sequencefile, avro",
        ),
        (
            json!({"tags": []}),
            "field `tags` must be an object mapping tag names to arrays of strings",
        ),
        (
            json!({"state": "LIVE"}),
            "field `state` is \"LIVE\"; expected DRAFT, ACTIVE or DEPRECATED",
        ),
        (
            json!({"sandboxId": "other"}),
            "field `sandboxId` is \"other\" but the request is for sandbox prod",
        ),
    ];
    for (body, expected) in cases {
        let reply = app.post(CATALOG_DATASETS).json(body.clone()).send().await;
        let detail = reply.problem(400, "CAT-9002-400");
        assert!(detail.starts_with(expected), "{body}: {detail}");
    }
    let id = app.create_dataset(json!({"name": "n"})).await;
    let reply = app
        .patch(&format!("{CATALOG_DATASETS}/{id}"))
        .json(json!({"enableErrorDiagnostics": "yes"}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9002-400"),
        "field `enableErrorDiagnostics` must be true or false"
    );
    let reply = app
        .patch(&format!("{CATALOG_DATASETS}/{id}"))
        .json(json!("text"))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "CAT-9002-400"),
        "the body must be a JSON object"
    );
    assert_eq!(app.get(CATALOG_DATASETS).send().await.keys(), [id]);
}

#[tokio::test]
async fn bad_ids_in_paths_are_400() {
    let app = TestApp::new().await;
    let reply = app.get(&format!("{CATALOG_DATASETS}/a%20b")).send().await;
    assert!(
        reply
            .problem(400, "CAT-9001-400")
            .starts_with("invalid id in path")
    );
    let reply = app.get(&format!("{CATALOG_DATASETS}/a,,b")).send().await;
    assert!(
        reply
            .problem(400, "CAT-9001-400")
            .contains("must not be empty")
    );
    let reply = app
        .put(&format!("{CATALOG_DATASETS}/{}", "x".repeat(300)))
        .json(json!({}))
        .send()
        .await;
    assert!(reply.problem(400, "CAT-9001-400").contains("at most 256"));
    let reply = app
        .put(&format!("{CATALOG_DATASETS}/000000000000000000000000"))
        .json(json!({"name": "x"}))
        .send()
        .await;
    reply.problem(404, "CAT-9004-404");
    let reply = app
        .patch(&format!("{CATALOG_DATASETS}/000000000000000000000000"))
        .json(json!({"name": "x"}))
        .send()
        .await;
    reply.problem(404, "CAT-9004-404");
}

#[tokio::test]
async fn legacy_view_files_path_resolves() {
    let app = TestApp::new().await;
    let id = app.create_dataset(json!({"name": "n"})).await;
    let view = app
        .get(&format!("{CATALOG_DATASETS}/{id}"))
        .send()
        .await
        .body[&id]["viewId"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app
        .get(&format!("{CATALOG_DATASETS}/{id}/views/{view}/files"))
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!({}))
    );
    let reply = app
        .get(&format!(
            "{CATALOG_DATASETS}/{id}/views/000000000000000000000000/files"
        ))
        .send()
        .await;
    reply.problem(404, "CAT-9004-404");
    let reply = app
        .get("/data/foundation/catalog/dataSetFiles")
        .send()
        .await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!({}))
    );
    let reply = app
        .get("/data/foundation/catalog/dataSetFiles/01HV6Z3K8Q2M4N5P6R7S8T9VWX-1")
        .send()
        .await;
    reply.problem(404, "CAT-9004-404");
    let reply = app
        .get(&format!(
            "/data/foundation/catalog/dataSetFiles?dataSetId={id}&limit=0"
        ))
        .send()
        .await;
    reply.problem(400, "CAT-9001-400");
}
