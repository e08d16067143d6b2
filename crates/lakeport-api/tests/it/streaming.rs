//! Streaming inlets (spec §10.2–10.4) and the path of streamed records into Catalog
//! batches (§10.3): every status code, sync validation, tenancy walls, the body limit, and
//! records read back through Data Access.

use serde_json::{Value, json};

use crate::support::{CATALOG_BATCHES, FLOW, ORG_A, ORG_B, TENANT_A, TOKEN, TOKEN_B_ONLY, TestApp};

const EXPORT: &str = "/data/foundation/export";

fn entity(index: usize) -> Value {
    json!({
        "_id": format!("evt-{index}"),
        "timestamp": "2024-03-01T10:00:00Z",
        "eventType": "commerce.purchases",
        format!("_{TENANT_A}"): {"memberId": format!("M-{:03}", index % 1000), "points": index * 10, "tier": "gold"}
    })
}

async fn schema_of(app: &TestApp, dataset: &str) -> String {
    let reply = app
        .get(&format!("/data/foundation/catalog/dataSets/{dataset}"))
        .send()
        .await;
    reply.body[dataset]["schemaRef"]["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn envelope(schema: &str, dataset: Option<&str>, entity: Value) -> Value {
    let mut header = json!({
        "schemaRef": {"id": schema, "contentType": "application/vnd.adobe.xed-full+json;version=1"},
        "imsOrgId": ORG_A,
        "source": {"name": "tests"}
    });
    if let Some(dataset) = dataset {
        header["datasetId"] = json!(dataset);
    }
    json!({"header": header, "body": {"xdmMeta": {"schemaRef": {"id": schema}}, "xdmEntity": entity}})
}

/// Streams to an unauthenticated inlet: no gateway headers at all.
fn collect<'a>(app: &'a TestApp, path: &str) -> crate::support::Call<'a> {
    app.post(path)
        .without("authorization")
        .without("x-api-key")
        .without("x-gw-ims-org-id")
        .without("x-sandbox-name")
}

/// Returns the dataset's batches as (id, doc), oldest first.
async fn dataset_batches(app: &TestApp, dataset: &str) -> Vec<(String, Value)> {
    let reply = app
        .get(&format!(
            "{CATALOG_BATCHES}?dataSet={dataset}&orderBy=asc:created"
        ))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
        .body
        .as_object()
        .unwrap()
        .iter()
        .map(|(id, doc)| (id.clone(), doc.clone()))
        .collect()
}

#[tokio::test]
async fn streamed_records_land_once_in_a_successful_batch_read_back_through_data_access() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, _flow) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;

    let one = collect(&app, &format!("/collection/{inlet}?syncValidation=True"))
        .json(envelope(&schema, None, entity(1)))
        .send()
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["inletId"], inlet.as_str());
    assert_eq!(one.body["syncValidation"], json!({"status": "pass"}));
    let xaction = one.body["xactionId"].as_str().unwrap();
    assert!(
        xaction.starts_with(&format!("{}:", one.body["receivedTimeMs"])),
        "{xaction}"
    );

    let skipped = collect(&app, &format!("/collection/{inlet}"))
        .header("content-type", "application/json")
        .raw(&envelope(&schema, Some(&dataset), entity(2)).to_string())
        .without("content-type")
        .send()
        .await;
    assert_eq!(
        skipped.body["syncValidation"],
        json!({"skipped": true}),
        "{}",
        skipped.text
    );

    let mut wrong_org = envelope(&schema, None, entity(99));
    wrong_org["header"]["imsOrgId"] = json!(ORG_B);
    let batch = collect(&app, &format!("/collection/batch/{inlet}?syncValidation=Banana"))
        .json(json!({"messages": [envelope(&schema, None, entity(3)), wrong_org, {"header": {}}, envelope(&schema, None, entity(4))]}))
        .send()
        .await;
    assert_eq!(batch.status, 207, "{}", batch.text);
    let request = batch.body["batchId"].as_str().unwrap();
    let responses = batch.body["responses"].as_array().unwrap();
    assert_eq!(responses[0], json!({"xactionId": format!("{request}:0")}));
    assert_eq!(responses[1]["statusCode"], 400);
    assert_eq!(
        responses[1]["message"],
        format!(
            "inletId: [{inlet}] imsOrgId: [{ORG_A}] Message has an absent or wrong ims org in the header"
        )
    );
    assert!(
        responses[2]["message"]
            .as_str()
            .unwrap()
            .ends_with("Message has unknown xdm format")
    );
    assert_eq!(responses[3], json!({"xactionId": format!("{request}:3")}));

    // Nothing is a batch until the segment is sealed; then exactly one batch holds it.
    assert!(dataset_batches(&app, &dataset).await.is_empty());
    app.flush_streams().await;
    let batches = dataset_batches(&app, &dataset).await;
    assert_eq!(batches.len(), 1, "{batches:?}");
    let (batch_id, batch) = &batches[0];
    assert_eq!(batch["status"], "success", "{batch}");
    assert_eq!(batch["externalId"], format!("stream:{dataset}:1"));
    assert_eq!(batch["tags"]["lakeport/source"], json!(["streaming"]));
    assert_eq!(batch["tags"]["lakeport/segment"], json!(["1"]));
    assert_eq!(batch["recordCount"], 4);
    let connection = app
        .get(&format!("{}/connections", crate::support::FLOW))
        .send()
        .await
        .body["items"][0]["id"]
        .clone();
    assert_eq!(
        batch["relatedObjects"],
        json!([{"type": "dataSet", "id": dataset}, {"type": "connection", "id": connection}])
    );
    // Flushing again submits nothing twice.
    app.flush_streams().await;
    assert_eq!(dataset_batches(&app, &dataset).await.len(), 1);

    let preview = app
        .get(&format!("{EXPORT}/datasets/{dataset}/preview"))
        .send()
        .await;
    assert_eq!(preview.status, 200, "{}", preview.text);
    let mut ids: Vec<&str> = preview.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["evt-1", "evt-2", "evt-3", "evt-4"]);
    let rows = app.promoted_rows(batch_id).await;
    let row = rows.iter().find(|row| row["_id"] == "evt-3").unwrap();
    assert_eq!(row[format!("_{TENANT_A}")]["points"], 30);

    // A second segment is numbered 2.
    collect(&app, &format!("/collection/{inlet}"))
        .json(envelope(&schema, None, entity(5)))
        .send()
        .await;
    app.flush_streams().await;
    let batches = dataset_batches(&app, &dataset).await;
    assert_eq!(batches.len(), 2);
    assert!(
        batches
            .iter()
            .any(|(_, b)| b["externalId"] == format!("stream:{dataset}:2"))
    );
}

#[tokio::test]
async fn sync_validation_reports_at_most_five_violations_and_unknown_properties() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, _) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;

    let mut bad = entity(1);
    bad[format!("_{TENANT_A}")]["points"] = json!(-5);
    bad["nickname"] = json!("x");
    let reply = collect(&app, &format!("/collection/{inlet}?syncValidation=true"))
        .json(envelope(&schema, None, bad))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert_eq!(
        reply.body["type"],
        "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
    );
    assert_eq!(reply.body["title"], "Invalid XDM Message Format");
    assert_eq!(
        reply.body["report"]["message"],
        format!("inletId: [{inlet}] imsOrgId: [{ORG_A}] Message is invalid")
    );
    let report = &reply.body["report"]["cause"]["_streamingValidation"][0];
    assert_eq!(report["message"], "2 schema violations found", "{report}");
    let keywords: Vec<&str> = report["causingExceptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|cause| cause["keyword"].as_str().unwrap())
        .collect();
    assert!(
        keywords.contains(&"minimum") && keywords.contains(&"additionalProperties"),
        "{keywords:?}"
    );

    // One violation stands alone.
    let mut single = entity(2);
    single[format!("_{TENANT_A}")]["tier"] = json!("bronze");
    let reply = collect(&app, &format!("/collection/{inlet}?syncValidation=TRUE"))
        .json(envelope(&schema, None, single))
        .send()
        .await;
    let report = &reply.body["report"]["cause"]["_streamingValidation"];
    assert_eq!(report.as_array().unwrap().len(), 1);
    assert_eq!(report[0]["keyword"], "enum", "{report}");
    assert_eq!(
        report[0]["pointerToViolation"],
        format!("#/_{TENANT_A}/tier")
    );

    // Seven unknown properties: five are listed.
    let mut many = entity(3);
    for n in 0..7 {
        many[format!("extra{n}")] = json!(n);
    }
    let reply = collect(
        &app,
        &format!("/collection/{inlet}?synchronousValidation=true"),
    )
    .json(envelope(&schema, None, many))
    .send()
    .await;
    let report = &reply.body["report"]["cause"]["_streamingValidation"][0];
    assert_eq!(
        report["causingExceptions"].as_array().unwrap().len(),
        5,
        "{report}"
    );

    // A bad value of the parameter is a 400; failing messages are never stored.
    let reply = collect(&app, &format!("/collection/{inlet}?syncValidation=maybe"))
        .json(envelope(&schema, None, entity(4)))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    // So is a query holding a NUL, on both endpoints: it used to be ignored whole, and
    // validation silently skipped.
    for path in [
        format!("/collection/{inlet}?syncValidation=true&a=%00"),
        format!("/collection/{inlet}?syncValidation=%00"),
        format!("/collection/batch/{inlet}?x-adobe-flow-id=%00"),
    ] {
        let reply = collect(&app, &path)
            .json(envelope(&schema, None, entity(4)))
            .send()
            .await;
        assert_eq!(reply.status, 400, "{path}: {}", reply.text);
        let message = reply.body["report"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("inletId: [{inlet}]")),
            "{path}: {message}"
        );
    }
    app.flush_streams().await;
    assert!(dataset_batches(&app, &dataset).await.is_empty());

    // Without sync validation an unknown property is accepted, then rejected as a row of
    // its batch; the valid row is promoted.
    let mut unknown = entity(5);
    unknown["nickname"] = json!("x");
    for message in [
        envelope(&schema, None, unknown),
        envelope(&schema, None, entity(6)),
    ] {
        let reply = collect(&app, &format!("/collection/{inlet}"))
            .json(message)
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    app.flush_streams().await;
    let batches = dataset_batches(&app, &dataset).await;
    let batch = &batches[0].1;
    assert_eq!(
        (batch["status"].as_str(), batch["recordCount"].as_u64()),
        (Some("success"), Some(1)),
        "{batch}"
    );
    assert_eq!(batch["failedRecordCount"], 1, "{batch}");
}

#[tokio::test]
async fn inlets_answer_every_status_of_the_contract() {
    let app = TestApp::with_config(|config| config.stream.max_body_bytes = 1024 * 1024).await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, flow) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;

    // 404: an unknown inlet.
    let unknown = collect(&app, &format!("/collection/{}", "0".repeat(64)))
        .json(envelope(&schema, None, entity(1)))
        .send()
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(unknown.body["status"], 404);
    // An id that cannot be an inlet (a NUL, not hex) is unknown without a lookup.
    for bad in ["%00", "not-an-inlet", &"A".repeat(64)] {
        let reply = collect(&app, &format!("/collection/{bad}"))
            .json(json!({}))
            .send()
            .await;
        assert_eq!(reply.status, 404, "{bad}: {}", reply.text);
    }
    // A NUL character anywhere in the body is a 400, never a database failure.
    let mut nul = envelope(&schema, None, entity(1));
    nul["header"]["datasetId"] = json!("d\u{0}");
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .json(nul)
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.body["report"]["message"]
            .as_str()
            .unwrap()
            .contains("NUL character"),
        "{}",
        reply.text
    );
    // 400: not JSON; no messages array; a schema that is not the dataset's.
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .raw("{nope")
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let reply = collect(&app, &format!("/collection/batch/{inlet}"))
        .json(json!({"m": []}))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .json(envelope(
            "https://ns.adobe.com/x/schemas/other",
            None,
            entity(1),
        ))
        .send()
        .await;
    assert!(
        reply.body["report"]["message"]
            .as_str()
            .unwrap()
            .contains("is not the schema of dataset"),
        "{}",
        reply.text
    );
    // An unknown flow id in the header, and the right one.
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .header("x-adobe-flow-id", "not-a-flow")
        .json(envelope(&schema, None, entity(1)))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .header("x-adobe-flow-id", &flow)
        .json(envelope(&schema, None, entity(1)))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    // 415: Smile or any other non-JSON type.
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .header("content-type", "application/x-jackson-smile")
        .raw("{}")
        .send()
        .await;
    assert_eq!(reply.status, 415, "{}", reply.text);
    // 413: one byte over the limit, on both endpoints; exactly the limit is read.
    for path in [
        format!("/collection/{inlet}"),
        format!("/collection/batch/{inlet}"),
    ] {
        let big = "x".repeat(1024 * 1024 + 1);
        let reply = collect(&app, &path)
            .header("content-type", "application/json")
            .raw(&big)
            .send()
            .await;
        assert_eq!(reply.status, 413, "{}", reply.text);
    }
    let mut padded = envelope(&schema, None, entity(7));
    padded["header"]["source"]["name"] = json!("");
    let base = padded.to_string().len();
    padded["header"]["source"]["name"] = json!("p".repeat(1024 * 1024 - base));
    let exact = &padded.to_string();
    assert_eq!(exact.len(), 1024 * 1024);
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .raw(exact)
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn an_inlet_writes_only_into_its_own_sandbox() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, _) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;
    // A dataset of org B, named in the header of a message to org A's inlet.
    let foreign = app
        .create_dataset_in(ORG_B, "prod", json!({"name": "b"}))
        .await;
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .json(envelope(&schema, Some(&foreign), entity(1)))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.body["report"]["message"]
            .as_str()
            .unwrap()
            .contains("does not exist in the inlet's organization and sandbox")
    );
    // Gateway headers naming org B change nothing: the inlet's org is used.
    let reply = app
        .post(&format!("/collection/{inlet}"))
        .tenant(ORG_B, "prod")
        .json(envelope(&schema, None, entity(2)))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.flush_streams().await;
    assert_eq!(dataset_batches(&app, &dataset).await.len(), 1);
    let other = app
        .get(&format!("{CATALOG_BATCHES}?dataSet={foreign}"))
        .tenant(ORG_B, "prod")
        .send()
        .await;
    assert_eq!(other.body, json!({}));
}

#[tokio::test]
async fn authenticated_inlets_need_a_token_of_their_org() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, _) = app
        .create_streaming_flow(
            &dataset,
            json!({"name": "secure", "authenticationRequired": true}),
        )
        .await;
    let path = format!("/collection/{inlet}");
    for token in [None, Some("wrong")] {
        let mut call = collect(&app, &path).json(envelope(&schema, None, entity(1)));
        if let Some(token) = token {
            call = call.header("authorization", &format!("Bearer {token}"));
        }
        let reply = call.send().await;
        assert_eq!(reply.status, 401, "{}", reply.text);
        assert_eq!(
            reply.body["type"],
            "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"
        );
        assert_eq!(
            (reply.body["title"].as_str(), reply.body["status"].as_u64()),
            (Some("Authorization"), Some(401))
        );
    }
    let reply = collect(&app, &path)
        .header("authorization", &format!("Bearer {TOKEN_B_ONLY}"))
        .json(envelope(&schema, None, entity(1)))
        .send()
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text);
    let reply = collect(&app, &path)
        .header("authorization", &format!("Bearer {TOKEN}"))
        .json(envelope(&schema, None, entity(1)))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
}

#[tokio::test]
async fn raw_inlets_take_plain_objects_and_mapping_flows_are_refused_clearly() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let (inlet, flow) = app
        .create_streaming_flow(&dataset, json!({"name": "raw", "dataType": "raw"}))
        .await;
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .header("x-adobe-flow-id", &flow)
        .json(entity(1))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.flush_streams().await;
    let batches = dataset_batches(&app, &dataset).await;
    assert_eq!(batches[0].1["status"], "success", "{:?}", batches);

    // A flow with a Mapping transformation is created, but its messages are refused.
    let flows = app
        .get(&format!("{}/flows/{flow}", crate::support::FLOW))
        .send()
        .await;
    let mut body = flows.body["items"][0].clone();
    body["flowSpec"] = json!({"id": "c1a19761-d2c7-4702-b9fa-fe91f0613e81", "version": "1.0"});
    body["transformations"] =
        json!([{"name": "Mapping", "params": {"mappingId": "m1", "mappingVersion": 0}}]);
    let mapped = app
        .post(&format!("{}/flows", crate::support::FLOW))
        .json(body)
        .send()
        .await;
    assert_eq!(mapped.status, 201, "{}", mapped.text);
    let mapped_id = mapped.body["id"].as_str().unwrap();
    let reply = collect(&app, &format!("/collection/{inlet}"))
        .header("x-adobe-flow-id", mapped_id)
        .json(entity(2))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.body["report"]["message"]
            .as_str()
            .unwrap()
            .contains("does not support yet")
    );
}

/// Returns the streaming chain's (source connection, base connection) ids.
async fn chain_ids(app: &TestApp) -> (String, String) {
    let sources = app.get(&format!("{FLOW}/sourceConnections")).send().await;
    let source = &sources.body["items"][0];
    (
        source["id"].as_str().unwrap().to_owned(),
        source["baseConnectionId"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn deleting_a_flow_or_its_connection_stops_a_warm_inlet_at_once() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, flow) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;
    let path = format!("/collection/{inlet}");
    // The inlet's routing is cached by the first message.
    for index in 0..3 {
        let reply = collect(&app, &path)
            .json(envelope(&schema, None, entity(index)))
            .send()
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let deleted = app.delete(&format!("{FLOW}/flows/{flow}")).send().await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let reply = collect(&app, &path)
        .json(envelope(&schema, None, entity(3)))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("has no flow yet"), "{}", reply.text);
    let (source, base) = chain_ids(&app).await;
    for deleted in [
        format!("{FLOW}/sourceConnections/{source}"),
        format!("{FLOW}/connections/{base}"),
    ] {
        let reply = app.delete(&deleted).send().await;
        assert_eq!(reply.status, 204, "{deleted}: {}", reply.text);
    }
    for path in [path.clone(), format!("/collection/batch/{inlet}")] {
        let reply = collect(&app, &path)
            .json(json!({"messages": [envelope(&schema, None, entity(4))]}))
            .send()
            .await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
    }
    app.flush_streams().await;
    let batches = dataset_batches(&app, &dataset).await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].1["recordCount"], 3, "{}", batches[0].1);
}

/// Another node deletes the flow (here: straight through the metastore, so this node's
/// routes never see the write and its cached routing is stale): the append transaction
/// finds the tenant's Flow Service generation moved on, the message is routed again and
/// refused, and nothing lands.
#[tokio::test]
async fn a_flow_deleted_by_another_node_routes_no_record_through_a_cached_inlet() {
    use lakeport_domain::flow::FlowKind;
    use lakeport_domain::tenant::Tenant;
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, flow) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;
    let single = format!("/collection/{inlet}");
    let batch = format!("/collection/batch/{inlet}");
    let reply = collect(&app, &single)
        .json(envelope(&schema, None, entity(1)))
        .send()
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let tenant = Tenant::parse(ORG_A, "prod").unwrap();
    assert!(
        app.metastore()
            .delete_flow_object(&tenant, FlowKind::Flow, &flow)
            .await
            .unwrap()
    );
    let reply = collect(&app, &single)
        .json(envelope(&schema, None, entity(2)))
        .send()
        .await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(reply.text.contains("has no flow yet"), "{}", reply.text);
    let reply = collect(&app, &batch)
        .json(json!({"messages": [envelope(&schema, None, entity(3))]}))
        .send()
        .await;
    assert_eq!(reply.status, 207, "{}", reply.text);
    assert_eq!(
        reply.body["responses"][0]["statusCode"], 400,
        "{}",
        reply.text
    );
    app.flush_streams().await;
    let batches = dataset_batches(&app, &dataset).await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].1["recordCount"], 1, "{}", batches[0].1);
}

/// Concurrent senders share group commits; each acknowledged record lands once.
#[tokio::test]
async fn concurrent_senders_are_each_acknowledged_and_land_exactly_once() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, _) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;
    let single = format!("/collection/{inlet}");
    let batch = format!("/collection/batch/{inlet}");
    let singles = (0..64).map(|index| {
        collect(&app, &single)
            .json(envelope(&schema, None, entity(index)))
            .send()
    });
    let batches = (0..8).map(|request| {
        let messages: Vec<Value> = (0..10)
            .map(|index| envelope(&schema, None, entity(1000 + request * 10 + index)))
            .collect();
        collect(&app, &batch)
            .json(json!({"messages": messages}))
            .send()
    });
    let (singles, batches) = futures::join!(
        futures::future::join_all(singles),
        futures::future::join_all(batches)
    );
    let mut xactions = std::collections::BTreeSet::new();
    for reply in &singles {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(xactions.insert(reply.body["xactionId"].as_str().unwrap().to_owned()));
    }
    for reply in &batches {
        assert_eq!(reply.status, 207, "{}", reply.text);
        let responses = reply.body["responses"].as_array().unwrap();
        assert!(
            responses.iter().all(|r| r.get("xactionId").is_some()),
            "{}",
            reply.text
        );
    }
    app.flush_streams().await;
    let landed = dataset_batches(&app, &dataset).await;
    let records: u64 = landed
        .iter()
        .map(|(_, batch)| batch["recordCount"].as_u64().unwrap_or_default())
        .sum();
    assert_eq!(records, 64 + 80, "{landed:?}");
}

/// The group-commit queue is bounded (`stream.max_queued_requests`,
/// `stream.max_queued_bytes`): a burst over either bound is answered 503 at once in the
/// Data Collection shape with `Retry-After`, only the acknowledged records land, and the
/// queue takes requests again once it drained.
#[tokio::test]
async fn a_full_append_queue_answers_503_and_lands_only_what_it_acknowledged() {
    let app = TestApp::with_config(|config| {
        config.stream.max_queued_requests = 4;
        config.stream.max_queued_bytes = 64 * 1024;
        // The routing stays cached: the burst's requests reach the queue without a read.
        config.stream.cache_ttl_ms = 600_000;
    })
    .await;
    let dataset = app.create_event_dataset("events").await;
    let schema = schema_of(&app, &dataset).await;
    let (inlet, _) = app
        .create_streaming_flow(&dataset, json!({"name": "web"}))
        .await;
    let single = format!("/collection/{inlet}");
    let batch = format!("/collection/batch/{inlet}");
    let warm = collect(&app, &single)
        .json(envelope(&schema, None, entity(0)))
        .send()
        .await;
    assert_eq!(warm.status, 200, "{}", warm.text);
    let mut acknowledged = 1u64;

    let check_refusal = |reply: &crate::support::Reply, setting: &str| {
        assert_eq!(reply.status, 503, "{}", reply.text);
        assert_eq!(
            reply.body["type"],
            "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
        );
        assert_eq!(reply.body["status"], 503, "{}", reply.text);
        assert_eq!(reply.body["title"], "Service Unavailable", "{}", reply.text);
        let message = reply.body["report"]["message"].as_str().unwrap();
        assert!(message.contains(setting), "{message}");
        assert!(message.contains("nothing was acknowledged"), "{message}");
        assert_eq!(reply.header("retry-after"), Some("1"));
    };

    // 100 single messages at once against a queue of 4 requests.
    let replies = futures::future::join_all((1..=100).map(|index| {
        collect(&app, &single)
            .json(envelope(&schema, None, entity(index)))
            .send()
    }))
    .await;
    let accepted = replies.iter().filter(|reply| reply.status == 200).count();
    let refused: Vec<_> = replies.iter().filter(|reply| reply.status != 200).collect();
    assert!(accepted >= 1 && !refused.is_empty(), "{accepted} accepted");
    for reply in &refused {
        check_refusal(reply, "stream.max_queued_requests");
    }
    acknowledged += accepted as u64;

    // Batches of about 30 KB each against 64 KB of queued bytes.
    let messages: Vec<Value> = (0..150)
        .map(|index| envelope(&schema, None, entity(1000 + index)))
        .collect();
    let replies = futures::future::join_all((0..8).map(|_| {
        collect(&app, &batch)
            .json(json!({"messages": messages}))
            .send()
    }))
    .await;
    let accepted = replies.iter().filter(|reply| reply.status == 207).count();
    let refused: Vec<_> = replies.iter().filter(|reply| reply.status != 207).collect();
    assert!(accepted >= 1 && !refused.is_empty(), "{accepted} accepted");
    for reply in &refused {
        check_refusal(reply, "stream.max_queued_bytes");
    }
    acknowledged += 150 * accepted as u64;

    // Drained: the queue takes a request again.
    let after = collect(&app, &single)
        .json(envelope(&schema, None, entity(5000)))
        .send()
        .await;
    assert_eq!(after.status, 200, "{}", after.text);
    acknowledged += 1;

    app.flush_streams().await;
    let landed = dataset_batches(&app, &dataset).await;
    let records: u64 = landed
        .iter()
        .map(|(_, batch)| batch["recordCount"].as_u64().unwrap_or_default())
        .sum();
    assert_eq!(records, acknowledged, "{landed:?}");
}
