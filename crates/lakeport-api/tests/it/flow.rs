//! The Flow Service subset (spec §10.1): the streaming connection chain, lookups, listings
//! with `_links`, reference checks and tenancy walls.

use serde_json::json;

use crate::support::{FLOW, ORG_A, ORG_B, TestApp};

const STREAMING: &str = "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb";
const DATALAKE: &str = "c604ff05-7f1a-43c0-8e18-33bf874cb11c";

#[tokio::test]
async fn connection_specs_are_found_by_id_and_by_name() {
    let app = TestApp::new().await;
    let all = app.get(&format!("{FLOW}/connectionSpecs")).send().await;
    assert_eq!(all.status, 200, "{}", all.text);
    let names: Vec<&str> = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|spec| spec["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Streaming Connection", "datalake"]);
    let one = app
        .get(&format!("{FLOW}/connectionSpecs/{DATALAKE}"))
        .send()
        .await;
    assert_eq!(one.body["items"][0]["name"], "datalake");
    let by_name = app
        .get(&format!(
            "{FLOW}/connectionSpecs?property=name==Streaming%20Connection"
        ))
        .send()
        .await;
    assert_eq!(by_name.body["items"][0]["id"], STREAMING);
    app.get(&format!("{FLOW}/connectionSpecs/0000"))
        .send()
        .await
        .problem(404, "FLOW-9005-404");
}

#[tokio::test]
async fn the_streaming_chain_is_created_read_listed_and_walled_per_sandbox() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let (inlet, flow) = app
        .create_streaming_flow(&dataset, json!({"name": "web", "dataType": "xdm"}))
        .await;
    assert_eq!(inlet.len(), 64);
    assert!(
        inlet
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    let flow_doc = app.get(&format!("{FLOW}/flows/{flow}")).send().await;
    assert_eq!(flow_doc.status, 200, "{}", flow_doc.text);
    let flow_doc = &flow_doc.body["items"][0];
    assert_eq!(flow_doc["state"], "enabled");
    assert_eq!(
        flow_doc["inheritedAttributes"]["properties"]["isSourceFlow"],
        true
    );
    assert_eq!(flow_doc["scheduleParams"], json!({}));
    assert_eq!(flow_doc["imsOrgId"], ORG_A);
    assert!(flow_doc["etag"].as_str().unwrap().starts_with('"'));

    let connections = app.get(&format!("{FLOW}/connections")).send().await;
    let params = &connections.body["items"][0]["auth"]["params"];
    assert_eq!(params["inletId"], inlet.as_str());
    assert_eq!(
        params["inletUrl"],
        format!("http://localhost/collection/{inlet}")
    );
    assert_eq!(
        (
            params["sourceId"].as_str(),
            params["authenticationRequired"].as_bool()
        ),
        (Some("web"), Some(false))
    );
    assert_eq!(connections.body["_links"], json!({}));

    // Another organization or sandbox sees none of it.
    for (org, sandbox) in [(ORG_B, "prod"), (ORG_A, "dev")] {
        app.get(&format!("{FLOW}/flows/{flow}"))
            .tenant(org, sandbox)
            .send()
            .await
            .problem(404, "FLOW-9005-404");
        let listed = app
            .get(&format!("{FLOW}/flows"))
            .tenant(org, sandbox)
            .send()
            .await;
        assert_eq!(listed.body["items"], json!([]));
    }
    // A target connection cannot name a dataset of another sandbox.
    let foreign = app
        .post(&format!("{FLOW}/targetConnections"))
        .tenant(ORG_A, "dev")
        .json(json!({"name": "t", "params": {"dataSetId": dataset}, "connectionSpec": {"id": DATALAKE, "version": "1.0"}}))
        .send()
        .await;
    assert!(
        foreign
            .problem(400, "FLOW-9003-400")
            .contains("names no dataset in this sandbox")
    );

    // The chain goes only from the flow down.
    let source_id = flow_doc["sourceConnectionIds"][0].as_str().unwrap();
    let in_use = app
        .delete(&format!("{FLOW}/sourceConnections/{source_id}"))
        .send()
        .await;
    assert!(in_use.problem(400, "FLOW-9004-400").contains(&flow));
    let deleted = app.delete(&format!("{FLOW}/flows/{flow}")).send().await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    app.get(&format!("{FLOW}/flows/{flow}"))
        .send()
        .await
        .problem(404, "FLOW-9005-404");
    let deleted = app
        .delete(&format!("{FLOW}/sourceConnections/{source_id}"))
        .send()
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
}

#[tokio::test]
async fn bad_bodies_and_references_are_flow_problems() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("events").await;
    let post = |kind: &str, body: serde_json::Value| app.post(&format!("{FLOW}/{kind}")).json(body);
    let reply = post(
        "connections",
        json!({"name": "c", "connectionSpec": {"id": DATALAKE}}),
    )
    .send()
    .await;
    assert!(
        reply
            .problem(400, "FLOW-9001-400")
            .contains("not supported for a base connection")
    );
    let reply = post("connections", json!({"connectionSpec": {"id": STREAMING}}))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "FLOW-9002-400")
            .contains("name is required")
    );
    let reply = post(
        "sourceConnections",
        json!({"name": "s", "baseConnectionId": "nope", "connectionSpec": {"id": STREAMING}}),
    )
    .send()
    .await;
    assert!(
        reply
            .problem(400, "FLOW-9003-400")
            .contains("baseConnectionId nope")
    );
    let reply = post("targetConnections", json!({"name": "t", "params": {"dataSetId": dataset},
        "data": {"schema": {"id": "https://ns.adobe.com/other/schemas/x"}}, "connectionSpec": {"id": DATALAKE}})).send().await;
    assert!(
        reply
            .problem(400, "FLOW-9003-400")
            .contains("is not the schema of dataset")
    );
    let reply = post(
        "flows",
        json!({"name": "f", "flowSpec": {"id": "00000000-0000-0000-0000-000000000000"},
        "sourceConnectionIds": ["a"], "targetConnectionIds": ["b"]}),
    )
    .send()
    .await;
    reply.problem(400, "FLOW-9001-400");
    app.get(&format!("{FLOW}/runs"))
        .send()
        .await
        .problem(404, "FLOW-9005-404");
}

#[tokio::test]
async fn listings_page_with_continuation_tokens_aepp_can_follow() {
    let app = TestApp::new().await;
    for n in 0..5 {
        let reply = app
            .post(&format!("{FLOW}/connections"))
            .json(json!({"name": format!("c{n}"), "connectionSpec": {"id": STREAMING, "version": "1.0"}}))
            .send()
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let mut names = Vec::new();
    let mut path = format!("{FLOW}/connections?limit=2&count=true");
    loop {
        let page = app.get(&path).send().await;
        assert_eq!(page.status, 200, "{}", page.text);
        names.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned()),
        );
        let Some(next) = page.body["_links"]["next"]["href"].as_str() else {
            break;
        };
        // aepp cuts the href at its first `=`: the token must be all that follows.
        let token = next.split('=').nth(1).unwrap();
        assert!(!token.contains('&'));
        path = format!("{FLOW}/connections?limit=2&continuationToken={token}");
    }
    assert_eq!(names, ["c0", "c1", "c2", "c3", "c4"]);
    let descending = app
        .get(&format!(
            "{FLOW}/connections?orderby=-name&limit=1&count=true"
        ))
        .send()
        .await;
    assert_eq!(
        (
            descending.body["items"][0]["name"].as_str(),
            descending.body["count"].as_u64()
        ),
        (Some("c4"), Some(5))
    );
}
