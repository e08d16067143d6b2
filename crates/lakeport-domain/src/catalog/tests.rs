use serde_json::json;

use super::import::{NewImportBatch, build_import_batch, check_predecessor, strip_decoration};
use super::*;

fn tenant() -> Tenant {
    Tenant::parse("ACME@AdobeOrg", "prod").unwrap()
}

fn actor() -> Actor {
    Actor {
        client_id: "acme_client".into(),
        user: "acme_client@AdobeID".into(),
    }
}

fn with_ctx<T>(now: i64, f: impl FnOnce(&WriteContext<'_>) -> T) -> T {
    let tenant = tenant();
    let actor = actor();
    f(&WriteContext {
        tenant: &tenant,
        actor: &actor,
        now,
    })
}

fn dataset(body: serde_json::Value) -> Result<Doc, String> {
    with_ctx(1000, |ctx| {
        new_dataset(
            body,
            "65f0a1b2c3d4e5f6a7b8c9d0",
            "65f0a1b2c3d4e5f6a7b8c9d1",
            "file:///x",
            ctx,
        )
        .map_err(|e| e.to_string())
    })
}

#[test]
fn new_dataset_gets_system_fields_and_keeps_unknown_ones() {
    let doc =
        dataset(json!({"name": "Loyalty members", "custom": {"a": 1}, "id": "ignored"})).unwrap();
    assert_eq!(doc["id"], "65f0a1b2c3d4e5f6a7b8c9d0");
    assert_eq!(doc["version"], "1.0.0");
    assert_eq!(doc["created"], 1000);
    assert_eq!(
        doc["files"],
        "@/dataSetFiles?dataSetId=65f0a1b2c3d4e5f6a7b8c9d0"
    );
    assert_eq!(doc["custom"], json!({"a": 1}));
    assert_eq!(doc["tags"][TABLE_NAME_TAG], json!(["loyalty_members"]));
    assert_eq!(doc["createdUser"], "acme_client@AdobeID");
}

#[test]
fn dataset_fields_are_type_checked() {
    let cases = [
        (json!({"name": 5}), "field `name` must be a string"),
        (
            json!({"schemaRef": {}}),
            "field `schemaRef.id` is required: the $id of the dataset's XDM schema",
        ),
        (
            json!({"schemaRef": "x"}),
            "field `schemaRef` must be an object {\"id\": ..., \"contentType\": ...}",
        ),
        (
            json!({"tags": {"a": {"b": 1}}}),
            "field `tags.a` must be a string or an array of strings",
        ),
        (
            json!({"enableErrorDiagnostics": "yes"}),
            "field `enableErrorDiagnostics` must be true or false",
        ),
        (
            json!({"imsOrg": "OTHER@AdobeOrg"}),
            "field `imsOrg` is \"OTHER@AdobeOrg\" but the request is for organization ACME@AdobeOrg",
        ),
        (json!([1]), "the body must be a JSON object"),
    ];
    for (body, expected) in cases {
        assert_eq!(dataset(body.clone()).unwrap_err(), expected, "{body}");
    }
}

#[test]
fn tag_scalars_become_string_arrays() {
    let doc = dataset(json!({"tags": {"a": true, "b": 5, "c": ["x"]}})).unwrap();
    assert_eq!(doc["tags"]["a"], json!(["true"]));
    assert_eq!(doc["tags"]["b"], json!(["5"]));
    assert_eq!(doc["tags"]["c"], json!(["x"]));
}

#[test]
fn mutations_keep_system_fields_and_bump_version() {
    let current = dataset(json!({"name": "A", "description": "d"})).unwrap();
    let replaced = with_ctx(2000, |ctx| {
        apply_mutation(
            ObjectKind::Dataset,
            &current,
            Mutation::Replace(as_object(json!({"name": "B", "id": "x"})).unwrap()),
            ctx,
        )
    })
    .unwrap();
    assert_eq!(replaced["id"], current["id"]);
    assert_eq!(replaced["name"], "B");
    assert!(replaced.get("description").is_none());
    assert_eq!(replaced["version"], "1.0.1");
    assert_eq!(replaced["updated"], 2000);
    assert_eq!(replaced["created"], 1000);

    let merged = with_ctx(3000, |ctx| {
        apply_mutation(
            ObjectKind::Dataset,
            &replaced,
            Mutation::MergeTopLevel(as_object(json!({"description": "new"})).unwrap()),
            ctx,
        )
    })
    .unwrap();
    assert_eq!(
        (merged["name"].as_str(), merged["description"].as_str()),
        (Some("B"), Some("new"))
    );
    assert_eq!(merged["version"], "1.0.2");
}

#[test]
fn json_patch_cannot_touch_read_only_fields() {
    let current = dataset(json!({"name": "A"})).unwrap();
    let ok = with_ctx(2000, |ctx| {
        apply_mutation(
            ObjectKind::Dataset,
            &current,
            Mutation::JsonPatch(json!([{"op": "replace", "path": "/name", "value": "Z"}])),
            ctx,
        )
    })
    .unwrap();
    assert_eq!(ok["name"], "Z");
    let err = with_ctx(2000, |ctx| {
        apply_mutation(
            ObjectKind::Dataset,
            &current,
            Mutation::JsonPatch(json!([{"op": "replace", "path": "/id", "value": "Z"}])),
            ctx,
        )
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `id` is read-only and cannot be changed"
    );
    let err = with_ctx(2000, |ctx| {
        apply_mutation(
            ObjectKind::Dataset,
            &current,
            Mutation::JsonPatch(json!({"op": "replace"})),
            ctx,
        )
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the JSON Patch cannot be applied"),
        "{err}"
    );
    let err = with_ctx(2000, |ctx| {
        apply_mutation(
            ObjectKind::Dataset,
            &current,
            Mutation::JsonPatch(json!([{"op": "test", "path": "/name", "value": "nope"}])),
            ctx,
        )
    })
    .unwrap_err();
    assert!(matches!(err, DocumentError::Patch(_)));
}

#[test]
fn deep_merge_creates_intermediate_objects() {
    let current =
        dataset(json!({"name": "A", "classification": {"managedBy": "CUSTOMER"}})).unwrap();
    let body = as_object(json!({
        "extensions": {"adobe_lakeHouse": {"rowExpiration": {"ttlValue": "P30D"}}},
        "classification": {"dataBehavior": "time-series"}
    }))
    .unwrap();
    let next = with_ctx(2000, |ctx| {
        apply_mutation(
            ObjectKind::Dataset,
            &current,
            Mutation::DeepMerge(body),
            ctx,
        )
    })
    .unwrap();
    assert_eq!(
        next["extensions"]["adobe_lakeHouse"]["rowExpiration"]["ttlValue"],
        "P30D"
    );
    assert_eq!(
        next["classification"],
        json!({"managedBy": "CUSTOMER", "dataBehavior": "time-series"})
    );
}

#[test]
fn catalog_batches_need_a_valid_status_which_is_normalised() {
    let err = with_ctx(1, |ctx| new_catalog_batch(json!({}), "B1", ctx)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "field `status` is required when a batch is created through the Catalog"
    );
    let doc = with_ctx(1, |ctx| {
        new_catalog_batch(json!({"status": "active", "externalId": "ext"}), "B1", ctx)
    })
    .unwrap();
    assert_eq!(doc["status"], "success");
    assert_eq!(doc["externalId"], "ext");
    let err = with_ctx(1, |ctx| {
        new_catalog_batch(
            json!({"status": "success", "relatedObjects": [{"type": "thing", "id": "x"}]}),
            "B1",
            ctx,
        )
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("field `relatedObjects[0].type` must be one of"),
        "{err}"
    );
}

#[test]
fn versions_and_if_match() {
    assert_eq!(bump_version("1.0.9"), "1.0.10");
    assert!(if_match_accepts("\"1.0.2\"", "1.0.2"));
    assert!(if_match_accepts("1.0.2", "1.0.2"));
    assert!(if_match_accepts("W/\"1.0.2\"", "1.0.2"));
    assert!(if_match_accepts("*", "1.0.2"));
    assert!(!if_match_accepts("1.0.1", "1.0.2"));
}

#[test]
fn projection_keeps_only_requested_fields() {
    let doc = as_object(json!({"name": "a", "id": "x", "tags": {}})).unwrap();
    assert_eq!(
        Value::Object(project(&doc, &["name".into(), "nope".into()])),
        json!({"name": "a"})
    );
    assert_eq!(Value::Object(project(&doc, &["nope".into()])), json!({}));
}

#[test]
fn import_batch_matches_the_seed_shape() {
    let request = NewImportBatch::parse(json!({"datasetId": "DS1"})).unwrap();
    let dataset = as_object(json!({"id": "DS1", "fileDescription": {"format": "json"}})).unwrap();
    let doc = with_ctx(5, |ctx| {
        build_import_batch(&request, &dataset, "01B", &[], ctx)
    });
    assert_eq!(
        Value::Object(doc),
        json!({
            "id": "01B", "imsOrg": "ACME@AdobeOrg", "sandboxId": tenant().sandbox_id(),
            "updated": 5, "status": "loading", "created": 5,
            "relatedObjects": [{"type": "dataSet", "id": "DS1"}], "version": "1.0.0",
            "tags": {"acp_producer": ["acme_client"], "acp_stagePath": ["acme_client/stage/01B"],
                     "use_plan_b_batch_status": ["false"]},
            "createdUser": "acme_client@AdobeID", "updatedUser": "acme_client@AdobeID",
            "externalId": "01B", "createdClient": "acme_client", "inputFormat": {"format": "json"}
        })
    );
}

#[test]
fn import_batch_options() {
    let request = NewImportBatch::parse(json!({
        "datasetId": "DS1", "inputFormat": {"format": "CSV", "header": false, "delimiter": ";"},
        "externalId": "ext-1", "enableErrorDiagnostics": true, "partialIngestionPercentage": 5,
        "tags": {"team": "data"}
    }))
    .unwrap();
    let dataset = as_object(json!({"id": "DS1"})).unwrap();
    let doc = with_ctx(5, |ctx| {
        build_import_batch(&request, &dataset, "01B", &[], ctx)
    });
    assert_eq!(
        doc["inputFormat"],
        json!({"format": "csv", "header": "false", "delimiter": ";"})
    );
    assert_eq!(doc["externalId"], "ext-1");
    assert_eq!(doc["tags"]["acp_enableErrorDiagnostics"], json!(["true"]));
    assert_eq!(doc["tags"]["acp_partialIngestionPercent"], json!(["5"]));
    assert_eq!(doc["tags"]["team"], json!(["data"]));
}

#[test]
fn import_batch_bad_bodies() {
    let cases = [
        (
            json!({}),
            "field `datasetId` is required: the id of the dataset to ingest into",
        ),
        (
            json!({"datasetId": 5}),
            "field `datasetId` must be a string",
        ),
        (
            json!({"datasetId": "d", "inputFormat": {"format": "xml"}}),
            "field `inputFormat.format` is \"xml\"; expected json, parquet or csv",
        ),
        (
            json!({"datasetId": "d", "partialIngestionPercent": 101}),
            "field `partialIngestionPercent` is 101; expected a number from 0 to 100",
        ),
        (
            json!({"datasetId": "d", "replay": {"reason": "x"}}),
            "field `replay.predecessors` must name at least one batch (or use replay.predecessorsByExternalId)",
        ),
        (
            json!({"datasetId": "d", "replay": {"predecessors": ["a"], "predecessorListingType": "SOME"}}),
            "field `replay.predecessorListingType` is \"SOME\"; expected IMMEDIATE or ALL",
        ),
        (
            json!({"datasetId": "d", "inputFormat": {"delimiter": ";;"}}),
            "field `inputFormat.delimiter` is \";;\"; it must be exactly one character",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(
            NewImportBatch::parse(body.clone()).unwrap_err().to_string(),
            expected,
            "{body}"
        );
    }
}

#[test]
fn replay_predecessors() {
    assert_eq!(strip_decoration("$01AB"), "01AB");
    assert_eq!(strip_decoration("${01AB}"), "01AB");
    assert_eq!(strip_decoration("01AB"), "01AB");
    let ok = as_object(
        json!({"id": "P", "status": "success", "relatedObjects": [{"type": "dataSet", "id": "D"}]}),
    )
    .unwrap();
    assert_eq!(check_predecessor("P", Some(&ok), "D").unwrap(), "P");
    assert_eq!(
        check_predecessor("P", Some(&ok), "E")
            .unwrap_err()
            .to_string(),
        "replay predecessor P belongs to dataset D, not E"
    );
    let loading = as_object(
        json!({"id": "P", "status": "loading", "relatedObjects": [{"type": "dataSet", "id": "D"}]}),
    )
    .unwrap();
    assert_eq!(
        check_predecessor("P", Some(&loading), "D")
            .unwrap_err()
            .to_string(),
        "replay predecessor P is loading; only a successful batch can be replayed"
    );
    assert!(check_predecessor("Q", None, "D").is_err());
}

#[test]
fn last_batch_bookkeeping() {
    let mut dataset = Doc::new();
    record_batch_on_dataset(&mut dataset, "B1", BatchStatus::Loading, true);
    record_batch_on_dataset(&mut dataset, "B1", BatchStatus::Success, false);
    assert_eq!(
        Value::Object(dataset.clone()),
        json!({"lastBatchId": "B1", "lastBatchStatus": "success", "lastSuccessfulBatch": "B1"})
    );
    record_batch_on_dataset(&mut dataset, "B2", BatchStatus::Loading, true);
    record_batch_on_dataset(&mut dataset, "B1", BatchStatus::Failed, false);
    assert_eq!(dataset["lastBatchId"], "B2");
    assert_eq!(dataset["lastBatchStatus"], "loading");
    assert_eq!(dataset["lastFailedBatch"], "B1");
}

#[test]
fn table_names() {
    assert_eq!(
        table_name(Some("Loyalty Members (2025)"), "x"),
        "loyalty_members_2025"
    );
    assert_eq!(table_name(None, "abc"), "dataset_abc");
}

#[test]
fn batch_accessors_read_ids_replay_predecessors_and_creator() {
    let batch: Doc = serde_json::from_value(json!({
        "id": "B3",
        "replay": {"predecessors": ["B1", 7, "B2"], "predecessorListingType": "ALL"},
        "createdClient": "acme_client",
    }))
    .unwrap();
    assert_eq!(object_id(&batch), Some("B3"));
    assert_eq!(
        batch_external_id(&batch),
        Some("B3"),
        "no externalId: the id"
    );
    assert_eq!(
        super::replay_predecessors(&batch),
        (vec!["B1".to_owned(), "B2".to_owned()], true)
    );
    assert_eq!(
        creator(&batch),
        Actor {
            client_id: "acme_client".into(),
            user: "lakeport@AdobeID".into(),
        }
    );
    let plain: Doc = serde_json::from_value(json!({"id": "B4", "externalId": "ext-4"})).unwrap();
    assert_eq!(batch_external_id(&plain), Some("ext-4"));
    assert_eq!(super::replay_predecessors(&plain), (Vec::new(), false));
}
