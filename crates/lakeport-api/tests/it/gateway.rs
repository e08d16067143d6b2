//! Gateway checks (spec §1.2), tenant walls and routing conventions.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::*;

#[track_caller]
fn gateway(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status.as_u16(), status, "{}", reply.text);
    assert_eq!(reply.body["error_code"], code, "{}", reply.text);
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
}

#[tokio::test]
async fn missing_token_is_403_and_wrong_token_is_401() {
    let app = TestApp::new().await;
    gateway(
        &app.get(CATALOG_DATASETS)
            .without("authorization")
            .send()
            .await,
        403,
        "403010",
    );
    gateway(
        &app.get(CATALOG_DATASETS)
            .header("authorization", "Bearer nope")
            .send()
            .await,
        401,
        "401013",
    );
    gateway(
        &app.get(CATALOG_DATASETS)
            .header("authorization", "Basic dXNlcjpwdw==")
            .send()
            .await,
        401,
        "401013",
    );
    gateway(
        &app.post(IMPORT_BATCHES)
            .without("authorization")
            .json(json!({"datasetId": "x"}))
            .send()
            .await,
        403,
        "403010",
    );
}

#[tokio::test]
async fn api_key_and_org_headers_are_required() {
    let app = TestApp::new().await;
    gateway(
        &app.get(CATALOG_DATASETS).without("x-api-key").send().await,
        403,
        "403000",
    );
    gateway(
        &app.get(CATALOG_DATASETS)
            .without("x-gw-ims-org-id")
            .send()
            .await,
        400,
        "400003",
    );
    gateway(
        &app.get(CATALOG_DATASETS)
            .header("x-gw-ims-org-id", "not-an-org")
            .send()
            .await,
        403,
        "403027",
    );
    gateway(
        &app.get(CATALOG_DATASETS)
            .header("x-sandbox-name", "Bad Sandbox")
            .send()
            .await,
        400,
        "400003",
    );
}

#[tokio::test]
async fn api_keys_can_be_restricted() {
    let app = TestApp::with_config(|config| config.auth.api_keys = vec!["allowed".into()]).await;
    gateway(&app.get(CATALOG_DATASETS).send().await, 403, "403003");
    let reply = app
        .get(CATALOG_DATASETS)
        .header("x-api-key", "allowed")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_bound_to_orgs_are_refused_elsewhere() {
    let app = TestApp::new().await;
    let bound = format!("Bearer {TOKEN_B_ONLY}");
    gateway(
        &app.get(CATALOG_DATASETS)
            .header("authorization", &bound)
            .send()
            .await,
        403,
        "403025",
    );
    let reply = app
        .get(CATALOG_DATASETS)
        .header("authorization", &bound)
        .tenant(ORG_B, "prod")
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn missing_sandbox_means_prod_unless_required() {
    let app = TestApp::new().await;
    let id = app.create_dataset(json!({"name": "in prod"})).await;
    let reply = app
        .get(&format!("{CATALOG_DATASETS}/{id}"))
        .without("x-sandbox-name")
        .send()
        .await;
    assert_eq!(reply.keys(), std::slice::from_ref(&id));

    let strict = TestApp::with_config(|config| config.auth.require_sandbox_header = true).await;
    gateway(
        &strict
            .get(CATALOG_DATASETS)
            .without("x-sandbox-name")
            .send()
            .await,
        400,
        "400003",
    );
}

#[tokio::test]
async fn a_duplicated_org_header_is_accepted_when_both_values_agree() {
    let app = TestApp::new().await;
    let reply = app
        .get(CATALOG_DATASETS)
        .add_header("x-gw-ims-org-id", ORG_A)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = app
        .get(CATALOG_DATASETS)
        .add_header("x-gw-ims-org-id", ORG_B)
        .send()
        .await;
    gateway(&reply, 400, "400003");
}

#[tokio::test]
async fn health_needs_no_auth() {
    let app = TestApp::new().await;
    let reply = app.get("/health").without("authorization").send().await;
    assert_eq!(
        (reply.status, reply.body.clone()),
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::new().await;
    let reply = app.get("/data/foundation/catalog/nothing").send().await;
    assert!(
        reply
            .problem(404, "LAKEPORT-9404-404")
            .contains("/data/foundation/catalog/nothing")
    );
    let reply = app
        .call(axum::http::Method::DELETE, CATALOG_DATASETS)
        .send()
        .await;
    reply.problem(405, "LAKEPORT-9405-405");
}

#[tokio::test]
async fn trailing_slashes_are_ignored() {
    let app = TestApp::new().await;
    let id = app.create_dataset(json!({"name": "slash"})).await;
    let reply = app.get(&format!("{CATALOG_DATASETS}/")).send().await;
    assert_eq!(reply.keys(), std::slice::from_ref(&id));
    let reply = app
        .post(&format!("{IMPORT_BATCHES}/"))
        .json(json!({"datasetId": id}))
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    let reply = app.get("/data/foundation/catalog/").send().await;
    assert_eq!(reply.body["dataSets"], "@/dataSets");
}

#[tokio::test]
async fn urls_over_2000_characters_are_414() {
    let app = TestApp::new().await;
    let reply = app
        .get(&format!("{CATALOG_DATASETS}?name={}", "x".repeat(2000)))
        .send()
        .await;
    assert!(
        reply
            .problem(414, "LAKEPORT-9414-414")
            .contains("at most 2000")
    );
}

#[tokio::test]
async fn problem_reports_name_the_tenant() {
    let app = TestApp::new().await;
    let reply = app
        .get(&format!("{CATALOG_DATASETS}/000000000000000000000000"))
        .send()
        .await;
    reply.problem(404, "CAT-9004-404");
    assert_eq!(
        reply.body["report"]["tenantInfo"],
        json!({"imsOrgId": ORG_A, "sandboxName": "prod"})
    );
    assert_eq!(reply.header("x-request-id"), reply.body["errorId"].as_str());
    assert!(
        reply.body["report"]["timestamp"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
}

/// Org B and sandbox `dev` of org A see nothing of org A's prod objects and cannot change
/// them.
#[tokio::test]
async fn tenants_are_walls() {
    let app = TestApp::new().await;
    let dataset = app.create_dataset(json!({"name": "secret"})).await;
    let batch = app.create_batch(json!({"datasetId": dataset})).await;
    let batch = batch["id"].as_str().unwrap().to_owned();
    let dataset_path = format!("{CATALOG_DATASETS}/{dataset}");
    let batch_path = format!("{CATALOG_BATCHES}/{batch}");

    for (org, sandbox) in [(ORG_B, "prod"), (ORG_A, "dev")] {
        for path in [
            CATALOG_DATASETS,
            CATALOG_BATCHES,
            "/data/foundation/catalog/lastBatches",
        ] {
            let reply = app.get(path).tenant(org, sandbox).send().await;
            assert_eq!(
                (reply.status, reply.body.clone()),
                (StatusCode::OK, json!({})),
                "{path} from {org}/{sandbox}"
            );
        }
        for path in [&dataset_path, &batch_path] {
            app.get(path)
                .tenant(org, sandbox)
                .send()
                .await
                .problem(404, "CAT-9004-404");
            app.patch(path)
                .tenant(org, sandbox)
                .json(json!({"name": "stolen"}))
                .send()
                .await
                .problem(404, "CAT-9004-404");
            app.put(path)
                .tenant(org, sandbox)
                .json(json!({"name": "stolen", "status": "failed"}))
                .send()
                .await
                .problem(404, "CAT-9004-404");
            let reply = app.delete(path).tenant(org, sandbox).send().await;
            assert_eq!(
                (reply.status, reply.body.clone()),
                (StatusCode::OK, json!([]))
            );
        }
        let reply = app
            .get(&format!("{CATALOG_BATCHES}?dataSet={dataset}"))
            .tenant(org, sandbox)
            .send()
            .await;
        assert_eq!(reply.body, json!({}));
        let reply = app
            .post(IMPORT_BATCHES)
            .tenant(org, sandbox)
            .json(json!({"datasetId": dataset}))
            .send()
            .await;
        reply.problem(400, "INGEST-9014-400");
    }
    let reply = app.get(&dataset_path).send().await;
    assert_eq!(reply.body[&dataset]["name"], "secret");
    assert_eq!(reply.body[&dataset]["version"], "1.0.0");
    let reply = app.get(&batch_path).send().await;
    assert_eq!(reply.body[&batch]["status"], "loading");
}

/// Every error is the problem JSON of spec §1.6, including axum's extractor rejections,
/// which used to answer `text/plain` (invalid UTF-8 in a path segment).
#[tokio::test]
async fn extractor_rejections_are_problem_json() {
    let app = TestApp::new().await;
    for (path, code) in [
        (format!("{CATALOG_DATASETS}/%ff"), "CAT-9001-400"),
        (format!("{CATALOG_BATCHES}/%c3%28"), "CAT-9001-400"),
        (
            format!("{IMPORT_BATCHES}/%ff/datasets/x/files/a.json"),
            "INGEST-9015-400",
        ),
        (
            "/data/foundation/export/files/%ff".to_owned(),
            "DAS-9004-400",
        ),
        (format!("{REGISTRY}/tenant/schemas/%fe"), "XDM-9002-400"),
    ] {
        let method = if path.contains("/files/a.json") {
            axum::http::Method::PUT
        } else {
            axum::http::Method::GET
        };
        let reply = app.call(method, &path).send().await;
        let detail = reply.problem(400, code);
        assert!(detail.contains("path"), "{path}: {detail}");
    }
    // Methods a route does not have, inside each service.
    for path in [CATALOG_BATCHES.to_owned(), format!("{IMPORT_BATCHES}/b1")] {
        let reply = app.call(axum::http::Method::TRACE, &path).send().await;
        reply.problem(405, "LAKEPORT-9405-405");
    }
    // The server still answers.
    assert_eq!(
        app.get(CATALOG_DATASETS).send().await.status,
        StatusCode::OK
    );
}
