//! The Schema Registry subset over HTTP: the flow of a real client, Accept rules, errors,
//! datasets checking their schema, evolution and tenant walls.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

fn encode(id: &str) -> String {
    id.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test]
async fn stats_report_the_tenant_id() {
    let app = TestApp::new().await;
    let reply = app
        .get(&format!("{REGISTRY}/stats/"))
        .without("accept")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["tenantId"], TENANT_A);
    assert_eq!(reply.body["imsOrg"], ORG_A);
    assert_eq!(
        reply.body["counts"],
        json!({"schemas": 0, "mixins": 0, "datatypes": 0, "classes": 0, "unions": 0})
    );
    let custom = TestApp::with_config(|c| {
        c.registry
            .tenant_ids
            .insert(ORG_A.into(), "acmecorp".into());
    })
    .await;
    assert_eq!(
        custom.get(&format!("{REGISTRY}/stats")).send().await.body["tenantId"],
        "acmecorp"
    );
}

/// The flow of a real client: field group → schema on the profile class → lookups by
/// `$id` and `meta:altId` → full form → list.
#[tokio::test]
async fn field_group_schema_lookup_full_form_and_list() {
    let app = TestApp::new().await;
    let namespace = format!("_{TENANT_A}");
    let group = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups/"))
        .json(json!({
            "title": "Loyalty details", "description": "Loyalty program fields", "type": "object",
            "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
            "definitions": {"loyalty": {"properties": {namespace.clone(): {"type": "object", "properties": {
                "memberId": {"type": "string", "pattern": "^M-[0-9]{6}$"},
                "tier": {"type": "string", "enum": ["silver", "gold"]},
                "joined": {"type": "string", "format": "date"}}}}}},
            "allOf": [{"$ref": "#/definitions/loyalty"}]
        }))
        .send()
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    let group_id = group.body["$id"].as_str().unwrap().to_owned();
    assert!(group_id.starts_with(&format!("https://ns.adobe.com/{TENANT_A}/mixins/")));
    assert_eq!(group.body["meta:resourceType"], "mixins");
    assert_eq!(group.body["version"], "1.0");
    assert_eq!(group.body["meta:containerId"], "tenant");
    assert_eq!(group.body["meta:tenantNamespace"], namespace);
    assert_eq!(group.body["imsOrg"], ORG_A);
    assert_eq!(
        group.body["meta:registryMetadata"]["xdm:createdClientId"],
        API_KEY
    );

    let schema = app
        .post(&format!("{REGISTRY}/tenant/schemas"))
        .json(
            json!({"title": "Loyalty members", "type": "object", "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/context/profile"},
            {"$ref": group_id, "type": "object", "meta:xdmType": "object"}]}),
        )
        .send()
        .await;
    assert_eq!(schema.status, StatusCode::CREATED, "{}", schema.text);
    let schema_id = schema.body["$id"].as_str().unwrap().to_owned();
    let alt_id = schema.body["meta:altId"].as_str().unwrap().to_owned();
    assert_eq!(
        alt_id,
        format!(
            "_{TENANT_A}.schemas.{}",
            schema_id.rsplit('/').next().unwrap()
        )
    );
    assert_eq!(
        schema.body["meta:class"],
        "https://ns.adobe.com/xdm/context/profile"
    );
    assert!(
        schema.body["meta:extends"]
            .as_array()
            .unwrap()
            .contains(&json!(group_id))
    );

    let by_id = app
        .get(&format!("{REGISTRY}/tenant/schemas/{}", encode(&schema_id)))
        .header("accept", XED)
        .send()
        .await;
    assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
    assert_eq!(by_id.body, schema.body);
    let by_alt = app
        .get(&format!("{REGISTRY}/tenant/schemas/{alt_id}"))
        .header("accept", XED)
        .send()
        .await;
    assert_eq!(by_alt.body, schema.body);

    // The most used Python client spells it `xdm-full` and omits the space.
    let full = app
        .get(&format!("{REGISTRY}/tenant/schemas/{alt_id}"))
        .header("accept", "application/vnd.adobe.xdm-full+json;version=1")
        .send()
        .await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.text);
    let fields = &full.body["properties"][&namespace]["properties"];
    assert_eq!(fields["memberId"]["pattern"], "^M-[0-9]{6}$");
    assert_eq!(fields["joined"]["meta:xdmType"], "date");
    assert_eq!(
        full.body["properties"]["identityMap"]["meta:xdmType"],
        "map"
    );
    assert!(full.body.get("allOf").is_none());
    let notext = app
        .get(&format!("{REGISTRY}/tenant/schemas/{alt_id}"))
        .header(
            "accept",
            "application/vnd.adobe.xed-full-notext+json; version=1",
        )
        .send()
        .await;
    assert!(notext.body.get("title").is_none());
    assert!(notext.body["properties"]["_repo"].get("title").is_none());

    let list = app
        .get(&format!("{REGISTRY}/tenant/schemas/"))
        .header("accept", XED_ID)
        .send()
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(
        list.body["results"],
        json!([{"$id": schema_id, "meta:altId": alt_id, "version": "1.0", "title": "Loyalty members"}])
    );
    assert_eq!(list.body["_page"]["count"], 1);
    let full_list = app
        .get(&format!("{REGISTRY}/tenant/schemas"))
        .header("accept", "application/vnd.adobe.xed+json")
        .send()
        .await;
    assert_eq!(full_list.body["results"][0], schema.body);
    let mixins = app
        .get(&format!("{REGISTRY}/tenant/mixins"))
        .header("accept", XED_ID)
        .send()
        .await;
    assert_eq!(mixins.body["results"][0]["$id"], group_id);
    let filtered = app
        .get(&format!("{REGISTRY}/tenant/fieldgroups?property=meta:intendedToExtend==https://ns.adobe.com/xdm/context/profile"))
        .header("accept", XED_ID)
        .send()
        .await;
    assert_eq!(filtered.body["results"].as_array().unwrap().len(), 1);
    let stats = app.get(&format!("{REGISTRY}/stats")).send().await;
    assert_eq!(stats.body["counts"]["schemas"], 1);
    assert_eq!(stats.body["counts"]["mixins"], 1);
}

#[tokio::test]
async fn global_container_serves_read_only_built_ins() {
    let app = TestApp::new().await;
    let classes = app
        .get(&format!("{REGISTRY}/global/classes"))
        .header("accept", XED_ID)
        .send()
        .await;
    let ids: Vec<&str> = classes.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["$id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"https://ns.adobe.com/xdm/context/profile"));
    assert!(ids.contains(&"https://ns.adobe.com/xdm/context/experienceevent"));
    let behaviors = app
        .get(&format!("{REGISTRY}/global/behaviors"))
        .header("accept", XED_ID)
        .send()
        .await;
    assert_eq!(behaviors.body["results"].as_array().unwrap().len(), 3);
    let event = app
        .get(&format!(
            "{REGISTRY}/global/classes/{}",
            encode("https://ns.adobe.com/xdm/context/experienceevent")
        ))
        .header("accept", XED_FULL)
        .send()
        .await;
    assert_eq!(event.body["required"], json!(["_id", "timestamp"]));
    let reply = app
        .post(&format!("{REGISTRY}/global/classes"))
        .json(json!({"title": "x"}))
        .send()
        .await;
    reply.problem(403, "XDM-9008-403");
    let reply = app
        .delete(&format!("{REGISTRY}/global/classes/_xdm.context.profile"))
        .send()
        .await;
    reply.problem(403, "XDM-9008-403");
}

#[tokio::test]
async fn accept_headers_follow_adobes_rules() {
    let app = TestApp::new().await;
    let reply = app.get(&format!("{REGISTRY}/tenant/schemas")).send().await;
    assert!(reply.problem(400, "XDM-1006-400").contains("xed-id+json"));
    assert_eq!(
        reply.body["report"]["detailed-message"],
        reply.body["detail"]
    );
    assert!(reply.body["report"]["registryRequestId"].is_string());
    let reply = app
        .get(&format!("{REGISTRY}/global/classes/_xdm.context.profile"))
        .header("accept", "application/vnd.adobe.xed-full+json")
        .send()
        .await;
    reply.problem(400, "XDM-1007-400");
    let reply = app
        .get(&format!("{REGISTRY}/global/classes/_xdm.context.profile"))
        .header("accept", "application/vnd.adobe.xed-full+json; version=2")
        .send()
        .await;
    reply.problem(406, "XDM-9009-406");
    let reply = app
        .get(&format!(
            "{REGISTRY}/tenant/schemas/_{TENANT_A}.schemas.nope"
        ))
        .header("accept", XED)
        .send()
        .await;
    reply.problem(404, "XDM-1012-404");
    let reply = app
        .get(&format!("{REGISTRY}/tenant/unions"))
        .header("accept", XED_ID)
        .send()
        .await;
    reply.problem(404, "XDM-1012-404");
    let reply = app
        .get(&format!("{REGISTRY}/global/schemas/_xdm.context.profile"))
        .header("accept", XED)
        .send()
        .await;
    reply.problem(404, "XDM-1012-404");
}

#[tokio::test]
async fn bad_resources_and_duplicate_titles_are_400() {
    let app = TestApp::new().await;
    let reply = app.post(&format!("{REGISTRY}/tenant/schemas")).json(json!({"title": "x", "type": "object", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/nope"}]})).send().await;
    assert!(
        reply
            .problem(400, "XDM-9001-400")
            .contains("does not name a class or field group")
    );
    let reply = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups"))
        .json(json!({"title": "x", "type": "object", "properties": {"loose": {"type": "string"}}}))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "XDM-9001-400")
            .contains("tenant namespace")
    );
    let reply = app
        .post(&format!("{REGISTRY}/tenant/schemas"))
        .header("content-type", "application/json")
        .raw("{")
        .send()
        .await;
    reply.problem(400, "XDM-9001-400");
    app.create_profile_schema("Members").await;
    let reply = app.post(&format!("{REGISTRY}/tenant/schemas")).json(json!({"title": "Members", "type": "object", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"}]})).send().await;
    assert_eq!(
        reply.problem(400, "XDM-3005-400"),
        "a schema titled \"Members\" already exists in this sandbox; titles are unique per resource kind"
    );
}

#[tokio::test]
async fn adhoc_classes_get_a_dataset_namespace() {
    let app = TestApp::new().await;
    let class = app
        .post(&format!("{REGISTRY}/tenant/classes"))
        .json(json!({"title": "CSV upload", "type": "object", "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/data/adhoc"},
            {"properties": {"_adhoc": {"type": "object", "properties": {"loyaltyId": {"type": "string"}}}}}]}))
        .send()
        .await;
    assert_eq!(class.status, StatusCode::CREATED, "{}", class.text);
    let namespace = class.body["meta:datasetNamespace"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(namespace.len(), 33);
    let schema = app
        .post(&format!("{REGISTRY}/tenant/schemas"))
        .json(json!({"title": "CSV schema", "type": "object", "allOf": [{"$ref": class.body["$id"]}]}))
        .send()
        .await;
    assert_eq!(schema.body["meta:datasetNamespace"], namespace.as_str());
    let full = app
        .get(&format!(
            "{REGISTRY}/tenant/schemas/{}",
            encode(schema.body["$id"].as_str().unwrap())
        ))
        .header("accept", XED_FULL)
        .send()
        .await;
    assert_eq!(
        full.body["properties"][&namespace]["properties"]["loyaltyId"]["meta:xdmType"],
        "string"
    );
}

#[tokio::test]
async fn datasets_must_name_an_existing_schema() {
    let app = TestApp::new().await;
    let schema = app.create_profile_schema("Members").await;
    let content_type = "application/vnd.adobe.xed+json;version=1";
    let reply = app
        .post(CATALOG_DATASETS)
        .json(json!({"name": "ok", "schemaRef": {"id": schema, "contentType": content_type}}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let dataset = reference_id(&reply.body);
    let reply = app
        .post(CATALOG_DATASETS)
        .json(json!({"name": "bad", "schemaRef": {"id": "https://ns.adobe.com/acme/schemas/nope", "contentType": content_type}}))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "CAT-9003-400")
            .contains("does not name a schema")
    );
    // A schema of org A does not exist for org B.
    let reply = app
        .post(CATALOG_DATASETS)
        .tenant(ORG_B, "prod")
        .json(json!({"name": "theirs", "schemaRef": {"id": schema, "contentType": content_type}}))
        .send()
        .await;
    reply.problem(400, "CAT-9003-400");
    let reply = app
        .patch(&format!("{CATALOG_DATASETS}/{dataset}"))
        .json(json!({"schemaRef": {"id": "https://ns.adobe.com/acme/schemas/nope"}}))
        .send()
        .await;
    reply.problem(400, "CAT-9003-400");
    let reply = app
        .patch(&format!("{CATALOG_DATASETS}/{dataset}"))
        .json(json!({"description": "fine"}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // A schema in use cannot be deleted.
    let reply = app
        .delete(&format!("{REGISTRY}/tenant/schemas/{}", encode(&schema)))
        .send()
        .await;
    assert!(reply.problem(400, "XDM-9004-400").contains(&dataset));
}

#[tokio::test]
async fn put_patch_delete_and_evolution() {
    let app = TestApp::new().await;
    let schema = app.create_profile_schema("Members").await;
    let path = format!("{REGISTRY}/tenant/schemas/{}", encode(&schema));
    let reply = app
        .patch(&path)
        .json(json!([{"op": "add", "path": "/description", "value": "Loyalty members"}]))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        (
            reply.body["description"].as_str(),
            reply.body["version"].as_str()
        ),
        (Some("Loyalty members"), Some("1.1"))
    );

    let group_id = reply.body["allOf"][1]["$ref"].as_str().unwrap().to_owned();
    let group_path = format!("{REGISTRY}/tenant/fieldgroups/{}", encode(&group_id));
    // Group in use by a schema: deleting it is refused.
    let reply = app.delete(&group_path).send().await;
    assert!(reply.problem(400, "XDM-9004-400").contains(&schema));

    // A dataset using the schema holds data (its last batch succeeded): only additive changes.
    let dataset = app
        .create_dataset(json!({"name": "members", "schemaRef": {"id": schema, "contentType": "application/vnd.adobe.xed+json;version=1"}}))
        .await;
    let batch = app.create_batch(json!({"datasetId": dataset})).await;
    app.patch(&format!(
        "{CATALOG_BATCHES}/{}",
        batch["id"].as_str().unwrap()
    ))
    .json(json!({"status": "success"}))
    .send()
    .await;
    let namespace = format!("_{TENANT_A}");
    let fields_path = format!("/definitions/loyalty/properties/{namespace}/properties");
    let reply = app
        .patch(&group_path)
        .json(json!([{"op": "add", "path": format!("{fields_path}/nickname"), "value": {"type": "string"}}]))
        .send()
        .await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "adding a field is fine: {}",
        reply.text
    );
    let reply = app
        .patch(&group_path)
        .json(json!([{"op": "remove", "path": format!("{fields_path}/points")}]))
        .send()
        .await;
    let detail = reply.problem(400, "XDM-9003-400");
    assert!(
        detail.contains(&format!("/{namespace}/points is removed")),
        "{detail}"
    );
    let reply = app
        .patch(&group_path)
        .json(json!([{"op": "replace", "path": format!("{fields_path}/points/minimum"), "value": 10}]))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "XDM-9003-400")
            .contains("tightens minimum")
    );
    let mut replaced = app.get(&group_path).header("accept", XED).send().await.body;
    replaced["title"] = json!("Renamed fields");
    let reply = app.put(&group_path).json(replaced).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["version"], "1.2");

    // Unused resources delete with 204.
    let other = app.create_profile_schema("Unused").await;
    let reply = app
        .delete(&format!("{REGISTRY}/tenant/schemas/{}", encode(&other)))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    app.get(&format!("{REGISTRY}/tenant/schemas/{}", encode(&other)))
        .header("accept", XED)
        .send()
        .await
        .problem(404, "XDM-1012-404");
}

#[tokio::test]
async fn other_tenants_see_none_of_the_registry() {
    let app = TestApp::new().await;
    let schema = app.create_profile_schema("Members").await;
    for (org, sandbox) in [(ORG_B, "prod"), (ORG_A, "dev")] {
        let list = app
            .get(&format!("{REGISTRY}/tenant/schemas"))
            .tenant(org, sandbox)
            .header("accept", XED_ID)
            .send()
            .await;
        assert_eq!(list.body["results"], json!([]), "{org}/{sandbox}");
        let path = format!("{REGISTRY}/tenant/schemas/{}", encode(&schema));
        app.get(&path)
            .tenant(org, sandbox)
            .header("accept", XED)
            .send()
            .await
            .problem(404, "XDM-1012-404");
        app.patch(&path)
            .tenant(org, sandbox)
            .json(json!([]))
            .send()
            .await
            .problem(404, "XDM-1012-404");
        app.delete(&path)
            .tenant(org, sandbox)
            .send()
            .await
            .problem(404, "XDM-1012-404");
        let stats = app
            .get(&format!("{REGISTRY}/stats"))
            .tenant(org, sandbox)
            .send()
            .await;
        assert_eq!(stats.body["counts"]["schemas"], 0);
    }
    assert_eq!(
        app.get(&format!("{REGISTRY}/stats")).send().await.body["counts"]["schemas"],
        1
    );
}

const DATATYPES: &str = "/data/foundation/schemaregistry/tenant/datatypes";

/// The server still answers a registry call after a hostile one.
async fn still_answers(app: &TestApp) {
    let reply = app.get(&format!("{REGISTRY}/stats")).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

async fn create_data_type(app: &TestApp, body: serde_json::Value) -> Reply {
    app.post(DATATYPES).json(body).send().await
}

/// Issue 11, defect 3: a `#/definitions` entry that includes itself overflowed the stack.
#[tokio::test]
async fn self_referencing_definitions_are_a_400_naming_the_cycle() {
    let app = TestApp::new().await;
    let reply = app
        .post(DATATYPES)
        .header("content-type", "application/json")
        .raw(r##"{"title":"loop","type":"object","definitions":{"a":{"allOf":[{"$ref":"#/definitions/a"}]}},"allOf":[{"$ref":"#/definitions/a"}]}"##)
        .send()
        .await;
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(detail.starts_with("$ref cycle: "), "{detail}");
    assert!(detail.ends_with("#/definitions/a"), "{detail}");
    assert_eq!(detail.matches("#/definitions/a").count(), 2, "{detail}");
    still_answers(&app).await;

    // A field of a definition that is the definition itself.
    let reply = create_data_type(
        &app,
        json!({"title": "field loop", "type": "object",
            "definitions": {"a": {"properties": {"x": {"$ref": "#/definitions/a"}}}},
            "allOf": [{"$ref": "#/definitions/a"}]}),
    )
    .await;
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(detail.starts_with("$ref cycle: "), "{detail}");
    // Two definitions that include each other, in a field group.
    let namespace = format!("_{TENANT_A}");
    let reply = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups"))
        .json(json!({"title": "mutual", "type": "object",
            "definitions": {
                "a": {"properties": {namespace.clone(): {"type": "object", "properties": {"b": {"$ref": "#/definitions/b"}}}}},
                "b": {"properties": {namespace.clone(): {"type": "object", "properties": {"c": {"$ref": "#/definitions/a"}}}}}},
            "allOf": [{"$ref": "#/definitions/a"}]}))
        .send()
        .await;
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(
        detail.contains("#/definitions/a -> ") && detail.contains("#/definitions/b -> "),
        "{detail}"
    );
    still_answers(&app).await;
    assert_eq!(
        app.get(&format!("{REGISTRY}/stats")).send().await.body["counts"]["datatypes"],
        0
    );
}

/// Issue 11, defect 3: a field referring to its own resource, and a→b→a made by PUT or
/// PATCH, on data types and field groups.
#[tokio::test]
async fn self_and_mutual_references_made_by_put_or_patch_are_400() {
    let app = TestApp::new().await;
    let a = create_data_type(
        &app,
        json!({"title": "A", "type": "object", "properties": {"v": {"type": "string"}}}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let a_id = a.body["$id"].as_str().unwrap().to_owned();
    let a_alt = a.body["meta:altId"].as_str().unwrap().to_owned();
    let a_path = format!("{DATATYPES}/{}", encode(&a_id));
    for reference in [&a_id, &a_alt] {
        let reply = app
            .put(&a_path)
            .json(
                json!({"title": "A", "type": "object", "properties": {"me": {"$ref": reference}}}),
            )
            .send()
            .await;
        let detail = reply.problem(400, "XDM-9001-400");
        assert_eq!(detail, format!("$ref cycle: {a_id} -> {a_id}"));
        let reply = app
            .patch(&a_path)
            .json(json!([{"op": "add", "path": "/properties/me", "value": {"$ref": reference}}]))
            .send()
            .await;
        assert_eq!(
            reply.problem(400, "XDM-9001-400"),
            format!("$ref cycle: {a_id} -> {a_id}")
        );
    }
    let b = create_data_type(
        &app,
        json!({"title": "B", "type": "object", "properties": {"a": {"$ref": a_id}}}),
    )
    .await;
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.text);
    let b_id = b.body["$id"].as_str().unwrap().to_owned();
    let reply = app
        .put(&a_path)
        .json(json!({"title": "A", "type": "object", "properties": {"b": {"$ref": b_id}}}))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "XDM-9001-400"),
        format!("$ref cycle: {a_id} -> {b_id} -> {a_id}")
    );
    still_answers(&app).await;

    // Field groups: one includes the other, then the other is patched to include the first.
    let namespace = format!("_{TENANT_A}");
    let group = |title: &str, extra: serde_json::Value| {
        let mut body = json!({"title": title, "type": "object",
            "properties": {namespace.clone(): {"type": "object", "properties": {title: {"type": "string"}}}}});
        if !extra.is_null() {
            body["allOf"] = extra;
        }
        body
    };
    let first = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups"))
        .json(group("first", serde_json::Value::Null))
        .send()
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let first_id = first.body["$id"].as_str().unwrap().to_owned();
    let second = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups"))
        .json(group("second", json!([{"$ref": first_id}])))
        .send()
        .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.text);
    let second_id = second.body["$id"].as_str().unwrap().to_owned();
    let reply = app
        .patch(&format!(
            "{REGISTRY}/tenant/fieldgroups/{}",
            encode(&first_id)
        ))
        .json(json!([{"op": "add", "path": "/allOf", "value": [{"$ref": second_id}]}]))
        .send()
        .await;
    assert_eq!(
        reply.problem(400, "XDM-9001-400"),
        format!("$ref cycle: {first_id} -> {second_id} -> {first_id}")
    );
    still_answers(&app).await;
    // Nothing was stored by the refused changes.
    let stored = app.get(&a_path).header("accept", XED).send().await;
    assert_eq!(stored.body["version"], "1.0");
    assert_eq!(
        stored.body["properties"],
        json!({"v": {"type": "string", "meta:xdmType": "string"}})
    );
}

/// Issue 11, defect 4: a chain of data types each referring to the previous one overflowed
/// the stack at ~1,415 links. Fields nest at most 32 levels once resolved.
#[tokio::test]
async fn reference_chains_stop_at_the_nesting_limit() {
    let app = TestApp::new().await;
    let mut previous: Option<String> = None;
    let mut first_id = None;
    let mut refused = None;
    for index in 0..40 {
        let properties = match &previous {
            None => json!({"leaf": {"type": "string"}}),
            Some(id) => json!({"next": {"$ref": id}}),
        };
        let reply = create_data_type(
            &app,
            json!({"title": format!("link {index}"), "type": "object", "properties": properties}),
        )
        .await;
        if reply.status != StatusCode::CREATED {
            refused = Some((index, reply));
            break;
        }
        previous = Some(reply.body["$id"].as_str().unwrap().to_owned());
        first_id = first_id.or_else(|| previous.clone());
    }
    let (index, reply) = refused.expect("the chain is refused before 40 links");
    // Links 0..=31 nest 1..=32 levels; link 32 would nest 33.
    assert_eq!(index, 32);
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(
        detail.contains("fields nest deeper than 32 levels once references are resolved"),
        "{detail}"
    );
    // The 33-link chain is named by its ends, not spelled out whole.
    assert!(detail.contains(" -> … 28 more … -> "), "{detail}");
    still_answers(&app).await;
    let deepest = previous.unwrap();
    let full = app
        .get(&format!("{DATATYPES}/{}", encode(&deepest)))
        .header("accept", XED_FULL)
        .send()
        .await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.text);

    // Lengthening the chain from below (PUT on its first link) would push the last link past
    // the limit: refused, naming the dependent that would break.
    let first_id = first_id.unwrap();
    let extra = create_data_type(
        &app,
        json!({"title": "extra", "type": "object", "properties": {"leaf": {"type": "string"}}}),
    )
    .await;
    let extra_id = extra.body["$id"].as_str().unwrap().to_owned();
    let reply = app
        .put(&format!("{DATATYPES}/{}", encode(&first_id)))
        .json(json!({"title": "link 0", "type": "object", "properties": {"leaf": {"type": "string"}, "deeper": {"$ref": extra_id}}}))
        .send()
        .await;
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(
        detail.contains(&format!("uses {first_id} and would no longer resolve"))
            && detail.contains("nest deeper than 32 levels"),
        "{detail}"
    );
    still_answers(&app).await;
}

/// Issue 11, defect 5: data type i with two fields referring to i−1 doubled the resolved
/// form at each level (depth 18: 3.9 s, 872 MB). Each resource now resolves once per
/// resolution and the resolved form holds at most 10,000 fields.
#[tokio::test]
async fn fan_out_is_bounded_by_the_resolved_field_limit() {
    let app = TestApp::new().await;
    let mut previous: Option<String> = None;
    let mut refused = None;
    for index in 0..20 {
        let properties = match &previous {
            None => json!({"leaf": {"type": "string"}}),
            Some(id) => json!({"left": {"$ref": id}, "right": {"$ref": id}}),
        };
        let reply = create_data_type(
            &app,
            json!({"title": format!("fan {index}"), "type": "object", "properties": properties}),
        )
        .await;
        if reply.status != StatusCode::CREATED {
            refused = Some((index, reply));
            break;
        }
        previous = Some(reply.body["$id"].as_str().unwrap().to_owned());
    }
    // Type i resolves to 3·2^i − 2 fields: 6,142 at i = 11, 12,286 at i = 12.
    let (index, reply) = refused.expect("the fan-out is refused");
    assert_eq!(index, 12);
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(
        detail.starts_with("the resolved form has more than 10000 fields"),
        "{detail}"
    );
    still_answers(&app).await;
    let widest = previous.unwrap();
    let full = app
        .get(&format!("{DATATYPES}/{}", encode(&widest)))
        .header("accept", XED_FULL)
        .send()
        .await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.text);
    let mut node = &full.body;
    for _ in 0..11 {
        assert_eq!(node["properties"]["left"], node["properties"]["right"]);
        node = &node["properties"]["left"];
    }
    assert_eq!(node["properties"]["leaf"]["type"], "string");
}

/// A write reads only the resources it refers to and those that refer to it, loaded by id,
/// and at most 2,000 of them: a data type referring to 2,001 others is refused with a 400
/// that says so, one referring to 2,000 is stored, and a lookup resolves it.
#[tokio::test]
async fn a_write_that_reads_more_than_2000_resources_is_refused() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for index in 0..2_001 {
        let reply = create_data_type(
            &app,
            json!({"title": format!("leaf {index}"), "type": "object",
                   "properties": {"v": {"type": "string"}}}),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        ids.push(reply.body["meta:altId"].as_str().unwrap().to_owned());
    }
    let wide = |count: usize| {
        let properties: serde_json::Map<String, serde_json::Value> = ids[..count]
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("p{i}"), json!({"$ref": id})))
            .collect();
        json!({"title": format!("wide {count}"), "type": "object", "properties": properties})
    };
    let reply = create_data_type(&app, wide(2_001)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(
        detail.contains("reads more than 2000 registry resources"),
        "{detail}"
    );
    let reply = create_data_type(&app, wide(2_000)).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let full = app
        .get(&format!(
            "{DATATYPES}/{}",
            encode(reply.body["$id"].as_str().unwrap())
        ))
        .header("accept", XED_FULL)
        .send()
        .await;
    assert_eq!(full.status, StatusCode::OK);
    assert_eq!(
        full.body["properties"]["p1999"]["properties"]["v"]["type"],
        "string"
    );
    still_answers(&app).await;
}

/// Issue 11, defect 16: a pattern the validator cannot compile was accepted and then failed
/// every row at ingestion; it is refused when the resource is written.
#[tokio::test]
async fn invalid_patterns_are_refused_at_creation() {
    let app = TestApp::new().await;
    for (pattern, reason) in [
        ("^(?=x)y$", "look-around"),
        ("[a-", "unclosed character class"),
        ("(a)\\1", "backreferences"),
        // Regex-crate syntax that is not ECMA-262.
        ("(?i)^abc$", "not ECMA-262 group syntax"),
        ("\\Aabc\\z", "\\A is not an ECMA-262 escape"),
    ] {
        let reply = create_data_type(
            &app,
            json!({"title": "codes", "type": "object",
                "properties": {"code": {"type": "string", "pattern": pattern}}}),
        )
        .await;
        let detail = reply.problem(400, "XDM-9001-400");
        assert!(
            detail.starts_with(&format!(
                "#/properties/code: pattern {pattern:?} is not a supported ECMA-262 regular expression: "
            )) && detail.contains(reason),
            "{detail}"
        );
    }
    let namespace = format!("_{TENANT_A}");
    let reply = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups"))
        .json(json!({"title": "nested", "type": "object",
            "definitions": {"d": {"properties": {namespace.clone(): {"type": "object", "properties": {
                "tags": {"type": "array", "items": {"type": "string", "pattern": "(?<!a)b"}}}}}}},
            "allOf": [{"$ref": "#/definitions/d"}]}))
        .send()
        .await;
    let detail = reply.problem(400, "XDM-9001-400");
    assert!(
        detail.starts_with(&format!(
            "#/definitions/d/properties/{namespace}/properties/tags/items: pattern \"(?<!a)b\""
        )),
        "{detail}"
    );
    // ECMA-262 spellings the validator translates are accepted; a PATCH is checked too.
    let reply = create_data_type(
        &app,
        json!({"title": "ok", "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^\\d{3}-[\\w&]+$"}}}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let path = format!(
        "{DATATYPES}/{}",
        encode(reply.body["$id"].as_str().unwrap())
    );
    let reply = app
        .patch(&path)
        .json(json!([{"op": "replace", "path": "/properties/code/pattern", "value": "("}]))
        .send()
        .await;
    assert!(
        reply
            .problem(400, "XDM-9001-400")
            .starts_with("#/properties/code: pattern \"(\" is not a supported"),
        "{}",
        reply.text
    );
    still_answers(&app).await;
}

/// Issue 11, defect 1: the bodies aepp 0.6.0's schema module and its managers build
/// (`schema.py`, `fieldgroupmanager.py`, `datatypemanager.py`, `classmanager.py`,
/// `schemamanager.py`), sent as aepp sends them. Schemas come without a top-level `type`.
#[tokio::test]
async fn bodies_built_by_aepp_are_accepted() {
    let app = TestApp::new().await;
    let tenant = format!("_{TENANT_A}");
    let created = |reply: &Reply| {
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body["$id"].as_str().unwrap().to_owned()
    };

    // DataTypeManager(title=…) + addField(…) + createDataType().
    let data_type = app
        .post(DATATYPES)
        .json(json!({
            "title": "Postal address", "description": "powered by aepp", "type": "object",
            "definitions": {"customFields": {"type": "object", "properties": {
                "street": {"type": "string", "title": "street", "description": ""},
                "zip": {"type": "string", "title": "zip", "description": "", "pattern": "^[0-9]{5}$"}}}},
            "allOf": [{"$ref": "#/definitions/customFields", "type": "object", "meta:xdmType": "object"}],
            "meta:extensible": true, "meta:tenantNamespace": tenant
        }))
        .send()
        .await;
    let data_type_id = created(&data_type);
    let data_type_alt = data_type.body["meta:altId"].as_str().unwrap().to_owned();

    // FieldGroupManager(title=…, fg_class=["profile"]) + addField for every type it offers
    // + createFieldGroup().
    let group = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups/"))
        .json(json!({
            "title": "Loyalty (aepp)", "meta:resourceType": "mixins",
            "description": "powered by aepp", "type": "object",
            "definitions": {"customFields": {"type": "object", "properties": {
                tenant.clone(): {"type": "object", "title": tenant, "description": "", "properties": {
                    "tier": {"type": "string", "title": "tier", "description": "",
                        "meta:enum": {"gold": "Gold", "silver": "Silver"}, "enum": ["gold", "silver"]},
                    "points": {"type": "integer", "maximum": 9007199254740991_i64,
                        "minimum": -9007199254740991_i64, "title": "points", "description": ""},
                    "visits": {"type": "integer", "maximum": 32768, "minimum": -32768,
                        "title": "visits", "description": ""},
                    "joined": {"type": "string", "format": "date", "title": "joined", "description": ""},
                    "tags": {"type": "array", "title": "tags", "description": "", "items": {"type": "string"}},
                    "counters": {"additionalProperties": {"type": "integer", "meta:xdmType": "int",
                            "maximum": 2147483647, "minimum": -2147483648_i64},
                        "required": [], "note": "", "mapFieldType": "integer", "type": "object",
                        "description": "", "title": "counters", "meta:xdmType": "map"},
                    "home": {"$ref": data_type_id, "required": [], "description": "",
                        "type": "object", "title": "home"},
                    "previous": {"type": "array", "title": "previous", "description": "",
                        "items": {"type": "object", "$ref": data_type_id, "title": "previous"}},
                    "extra": {"type": "object", "title": "extra", "description": "", "properties": {}}
                }}}}},
            "allOf": [{"$ref": "#/definitions/customFields", "type": "object"}],
            "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
            "meta:containerId": "tenant", "meta:extensible": true, "meta:tenantNamespace": tenant
        }))
        .send()
        .await;
    let group_id = created(&group);

    // ClassManager(title=…, behavior=record) + createClass().
    let class = app
        .post(&format!("{REGISTRY}/tenant/classes/"))
        .json(json!({
            "title": "Store (aepp)", "description": "powered by aepp", "type": "object",
            "allOf": [{"$ref": "https://ns.adobe.com/xdm/data/record", "type": "object", "meta:xdmType": "object"}],
            "meta:extensible": true, "meta:extends": ["https://ns.adobe.com/xdm/data/record"],
            "meta:tenantNamespace": tenant
        }))
        .send()
        .await;
    created(&class);

    // Schema.createProfileSchema(name=…, fieldGroupIds=[…]): no top-level type.
    let profile = app
        .post(&format!("{REGISTRY}/tenant/schemas/"))
        .json(json!({
            "title": "Loyalty members (aepp)", "description": "",
            "allOf": [
                {"$ref": "https://ns.adobe.com/xdm/context/profile", "type": "object", "meta:xdmType": "object"},
                {"$ref": group_id, "type": "object", "meta:xdmType": "object"}]
        }))
        .send()
        .await;
    let profile_id = created(&profile);
    assert_eq!(profile.body["type"], "object");
    assert_eq!(
        profile.body["meta:class"],
        "https://ns.adobe.com/xdm/context/profile"
    );

    // Schema.createExperienceEventSchema(name=…, fieldGroupIds={…: "object"}).
    let events = app
        .post(&format!("{REGISTRY}/tenant/schemas/"))
        .json(json!({
            "title": "Web events (aepp)", "description": "",
            "allOf": [
                {"$ref": "https://ns.adobe.com/xdm/context/experienceevent", "type": "object", "meta:xdmType": "object"},
                {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-commerce", "type": "object", "meta:xdmType": "object"}]
        }))
        .send()
        .await;
    created(&events);

    // SchemaManager(schemaClass=profile, title=…) + addFieldGroup(…) + createSchema().
    let managed = app
        .post(&format!("{REGISTRY}/tenant/schemas/"))
        .json(json!({
            "title": "Managed (aepp)", "description": "powered by aepp",
            "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                      {"$ref": group_id, "type": "object"}]
        }))
        .send()
        .await;
    let managed_id = created(&managed);

    // Schema.addFieldGroupToSchema: GET (xed) the stored schema, append, PUT it back whole.
    let path = format!("{REGISTRY}/tenant/schemas/{}", encode(&managed_id));
    let mut stored = app.get(&path).header("accept", XED).send().await.body;
    stored["allOf"].as_array_mut().unwrap().push(json!({
        "$ref": "https://ns.adobe.com/xdm/context/profile-person-details",
        "type": "object", "meta:xdmType": "object"}));
    let reply = app.put(&path).json(stored).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.body["allOf"].as_array().unwrap().len(), 3);

    // Schema.patchSchema with the JSON Patch aepp documents (appending to allOf).
    let path = format!("{REGISTRY}/tenant/schemas/{}", encode(&profile_id));
    let reply = app
        .patch(&path)
        .json(json!([{"op": "add", "path": "/allOf/-", "value": {
            "$ref": "https://ns.adobe.com/xdm/context/profile-personal-details",
            "type": "object", "meta:xdmType": "object"}}]))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // FieldGroupManager.updateFieldGroup: PUT of the stored definition with a new field.
    let path = format!("{REGISTRY}/tenant/fieldgroups/{}", encode(&group_id));
    let mut stored = app.get(&path).header("accept", XED).send().await.body;
    stored["definitions"]["customFields"]["properties"][&tenant]["properties"]["nickname"] =
        json!({"type": "string", "title": "nickname", "description": ""});
    let reply = app.put(&path).json(stored).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // Schema.patchFieldGroup / DataTypeManager.updateDataType (PUT by meta:altId).
    let reply = app
        .patch(&path)
        .json(json!([{"op": "add",
            "path": format!("/definitions/customFields/properties/{tenant}/properties/level"),
            "value": {"type": "string", "title": "level", "description": ""}}]))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let mut stored = data_type.body.clone();
    stored["definitions"]["customFields"]["properties"]["city"] =
        json!({"type": "string", "title": "city", "description": ""});
    let reply = app
        .put(&format!("{DATATYPES}/{data_type_alt}"))
        .json(stored)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    // The resolved profile schema carries the manager-built fields.
    let full = app
        .get(&format!(
            "{REGISTRY}/tenant/schemas/{}",
            encode(&profile_id)
        ))
        .header("accept", XED_FULL)
        .send()
        .await;
    assert_eq!(full.status, StatusCode::OK, "{}", full.text);
    let fields = &full.body["properties"][&tenant]["properties"];
    assert_eq!(fields["counters"]["meta:xdmType"], "map");
    assert_eq!(fields["home"]["properties"]["city"]["type"], "string");
    assert_eq!(
        fields["previous"]["items"]["properties"]["zip"]["pattern"],
        "^[0-9]{5}$"
    );
    assert_eq!(fields["level"]["type"], "string");
    assert!(
        full.body["properties"]["personalEmail"].is_object(),
        "{}",
        full.text
    );
}

/// aepp's FieldGroupManager and DataTypeManager reload a resource and refuse to edit it
/// unless it is `meta:extensible`; its ClassManager (used by SchemaManager) reads the class's
/// behavior from `meta:extends`; its getBehavior asks for `version=1.0`.
#[tokio::test]
async fn resources_carry_what_aepp_managers_read_back() {
    let app = TestApp::new().await;
    let tenant = format!("_{TENANT_A}");
    let data_type = app
        .post(DATATYPES)
        .json(json!({
            "title": "Address", "type": "object",
            "definitions": {"a": {"properties": {"street": {"type": "string"}}}},
            "allOf": [{"$ref": "#/definitions/a"}]
        }))
        .send()
        .await;
    assert_eq!(data_type.status, StatusCode::CREATED, "{}", data_type.text);
    let group = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups/"))
        .json(json!({
            "title": "Loyalty", "type": "object",
            "definitions": {"l": {"properties": {tenant.clone(): {"type": "object", "properties": {
                "tier": {"type": "string"}}}}}},
            "allOf": [{"$ref": "#/definitions/l"}]
        }))
        .send()
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    for (kind, created) in [("datatypes", &data_type), ("fieldgroups", &group)] {
        let alt = created.body["meta:altId"].as_str().unwrap();
        let stored = app
            .get(&format!("{REGISTRY}/tenant/{kind}/{alt}"))
            .header("accept", "application/vnd.adobe.xed+json; version=1")
            .send()
            .await;
        assert_eq!(
            stored.body["meta:extensible"], true,
            "{kind}: {}",
            stored.text
        );
        assert_eq!(
            stored.body["meta:abstract"], true,
            "{kind}: {}",
            stored.text
        );
        // Still so after a PATCH, which rebuilds the resource.
        let patched = app
            .patch(&format!("{REGISTRY}/tenant/{kind}/{alt}"))
            .json(json!([{"op": "add", "path": "/description", "value": "edited"}]))
            .send()
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        assert_eq!(
            patched.body["meta:extensible"], true,
            "{kind}: {}",
            patched.text
        );
    }
    for (class, behavior) in [
        (
            "_xdm.context.profile",
            "https://ns.adobe.com/xdm/data/record",
        ),
        (
            "_xdm.context.experienceevent",
            "https://ns.adobe.com/xdm/data/time-series",
        ),
    ] {
        let reply = app
            .get(&format!("{REGISTRY}/global/classes/{class}"))
            .header("accept", "application/vnd.adobe.xed+json; version=1")
            .send()
            .await;
        assert_eq!(
            reply.body["meta:extends"],
            json!([behavior]),
            "{}",
            reply.text
        );
    }
    let behavior = app
        .get(&format!("{REGISTRY}/global/behaviors/_xdm.data.record"))
        .header("accept", "application/vnd.adobe.xdm-full+json; version=1.0")
        .send()
        .await;
    assert_eq!(behavior.status, StatusCode::OK, "{}", behavior.text);
    assert_eq!(behavior.body["$id"], "https://ns.adobe.com/xdm/data/record");
    for version in ["2.0", "1.", "1.x", "10"] {
        let reply = app
            .get(&format!("{REGISTRY}/global/behaviors/_xdm.data.record"))
            .header(
                "accept",
                &format!("application/vnd.adobe.xed+json; version={version}"),
            )
            .send()
            .await;
        reply.problem(406, "XDM-9009-406");
    }
}

/// aepp's SchemaManager loads a schema's class and global field groups through the tenant
/// container; those lookups find the built-ins, and writes to them there stay refused.
#[tokio::test]
async fn tenant_lookups_find_global_built_ins() {
    let app = TestApp::new().await;
    let profile = encode("https://ns.adobe.com/xdm/context/profile");
    let reply = app
        .get(&format!("{REGISTRY}/tenant/classes/{profile}"))
        .header("accept", XED_FULL)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.body["$id"],
        "https://ns.adobe.com/xdm/context/profile"
    );
    assert!(
        reply.body["properties"]["_id"].is_object(),
        "{}",
        reply.text
    );
    let group = app
        .get(&format!(
            "{REGISTRY}/tenant/fieldgroups/_xdm.context.profile-person-details"
        ))
        .header("accept", XED)
        .send()
        .await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.text);
    // The kind still has to match, and the tenant's own list does not grow.
    app.get(&format!("{REGISTRY}/tenant/datatypes/{profile}"))
        .header("accept", XED)
        .send()
        .await
        .problem(404, "XDM-1012-404");
    let listed = app
        .get(&format!("{REGISTRY}/tenant/classes"))
        .header("accept", XED_ID)
        .send()
        .await;
    assert_eq!(listed.body["results"], json!([]), "{}", listed.text);
    let put = app
        .put(&format!("{REGISTRY}/tenant/classes/{profile}"))
        .json(json!({"title": "mine", "type": "object", "allOf": [{"$ref": "https://ns.adobe.com/xdm/data/record"}]}))
        .send()
        .await;
    put.problem(404, "XDM-1012-404");
    app.delete(&format!("{REGISTRY}/tenant/classes/{profile}"))
        .send()
        .await
        .problem(404, "XDM-1012-404");
}

/// Issue 11 (found with aepp's FieldGroupManager, whose `addField(…, "object")` creates an
/// object without properties): such a schema was accepted, then every batch failed and
/// retried because Parquet cannot store an empty struct. The object now has no column.
#[tokio::test]
async fn objects_without_properties_do_not_break_ingestion() {
    let app = TestApp::new().await;
    let namespace = format!("_{TENANT_A}");
    let group = app
        .post(&format!("{REGISTRY}/tenant/fieldgroups"))
        .json(json!({"title": "g", "type": "object",
            "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
            "definitions": {"d": {"properties": {namespace.clone(): {"type": "object", "properties": {
                "name": {"type": "string"},
                "extra": {"type": "object", "title": "extra", "description": "", "properties": {}}}}}}},
            "allOf": [{"$ref": "#/definitions/d"}]}))
        .send()
        .await;
    assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
    let schema = app
        .post(&format!("{REGISTRY}/tenant/schemas"))
        .json(json!({"title": "s", "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/context/profile"}, {"$ref": group.body["$id"]}]}))
        .send()
        .await;
    assert_eq!(schema.status, StatusCode::CREATED, "{}", schema.text);
    let dataset = app
        .create_dataset(json!({"name": "d", "fileDescription": {"format": "json"},
            "schemaRef": {"id": schema.body["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}}))
        .await;
    let batch = app
        .create_batch(json!({"datasetId": dataset, "inputFormat": {"format": "json"}}))
        .await;
    let batch = batch["id"].as_str().unwrap().to_owned();
    let row = json!({"_id": "1", namespace.clone(): {"name": "x", "extra": {}}});
    app.upload(&batch, &dataset, "a.json", format!("{row}\n").as_bytes())
        .await;
    assert_eq!(app.signal(&batch, "COMPLETE").await.status, StatusCode::OK);
    app.run_jobs().await;
    let promoted = app.batch(&batch).await;
    assert_eq!(promoted["status"], "success", "{promoted}");
    assert_eq!(promoted["recordCount"], 1, "{promoted}");
}
