//! The console over HTTP: sign-in, pages, upload, revert with its form token, tenant
//! walls, and bounds.

use axum::http::{Method, StatusCode};
use lakeport_test_support::{ORG_A, ORG_B, TOKEN, TOKEN_B_ONLY, TestApp};
use serde_json::json;

use crate::{BASE, Client, batch_of, mounted, rows_with_rejects};

/// Uploads `rows_with_rejects` through the console with half the rows allowed to fail
/// and returns the batch id.
async fn upload(client: &mut Client, csrf: &str, dataset: &str) -> String {
    let uploaded = client
        .post_multipart(
            &format!("{BASE}/datasets/{dataset}/upload"),
            &[
                ("csrf", csrf),
                ("format", "auto"),
                ("diagnostics", "true"),
                ("partial", "true"),
                ("threshold", "50"),
            ],
            &[("orders.json", &rows_with_rejects())],
        )
        .await;
    assert_eq!(uploaded.status, StatusCode::SEE_OTHER, "{}", uploaded.text);
    batch_of(uploaded.location.as_deref().unwrap())
}

#[tokio::test]
async fn upload_shows_rejected_rows_with_their_violations_and_revert_needs_the_form_token() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("orders").await;
    let mut client = Client::new(mounted(&app));
    let csrf = client.sign_in(TOKEN, ORG_A).await;

    let list = client.get(&format!("{BASE}/datasets")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.content_type.starts_with("text/html"));
    assert!(
        list.text.contains(&format!("/console/datasets/{dataset}")),
        "{}",
        list.text
    );
    assert!(list.text.contains(">orders<"));

    let form = client
        .get(&format!("{BASE}/datasets/{dataset}/upload"))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    assert!(form.text.contains("type=\"file\""));
    let batch = upload(&mut client, &csrf, &dataset).await;

    // Before the worker ran: the page polls for its status.
    let running = client.get(&format!("{BASE}/batches/{batch}")).await;
    assert_eq!(running.status, StatusCode::OK, "{}", running.text);
    assert!(running.text.contains("data-poll="), "{}", running.text);
    assert!(running.text.contains("data-running=\"true\""));
    let fragment = client.get(&format!("{BASE}/batches/{batch}/status")).await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(
        fragment.text.starts_with("<section id=\"batch-status\""),
        "{}",
        fragment.text
    );

    app.run_jobs().await;
    let stored = app.batch(&batch).await;
    assert_eq!(stored["status"], "success", "{stored}");
    assert_eq!(stored["failedRecordCount"], 3, "{stored}");
    assert_eq!(stored["recordCount"], 7, "{stored}");

    let page = client.get(&format!("{BASE}/batches/{batch}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("data-running=\"false\""));
    assert!(page.text.contains("Rejected rows"), "{}", page.text);
    // Each rejected row is shown next to its violation.
    let rows: Vec<&str> = page
        .text
        .split("<tr>")
        .filter(|r| r.contains("class=\"violations\""))
        .collect();
    assert_eq!(rows.len(), 3, "{}", page.text);
    let platinum = rows
        .iter()
        .find(|r| r.contains("platinum"))
        .expect("the enum row");
    assert!(
        platinum.contains("enum") || platinum.contains("INGEST-9102"),
        "{platinum}"
    );
    let negative = rows
        .iter()
        .find(|r| r.contains("-7"))
        .expect("the range row");
    assert!(
        negative.contains("minimum") || negative.contains("INGEST-9104"),
        "{negative}"
    );
    let corrupt = rows
        .iter()
        .find(|r| r.contains("{not json at all"))
        .expect("the corrupt row");
    assert!(corrupt.contains("1401"), "{corrupt}");
    assert!(page.text.contains("orders.json"));
    // Metrics, errors and downloads.
    assert!(page.text.contains("INGEST-1212-400"), "{}", page.text);
    assert!(page.text.contains("inputRecordCount"));
    assert!(
        page.text.contains(&format!("/console/files/{batch}-1")),
        "{}",
        page.text
    );
    let failed_link = format!("{BASE}/batches/{batch}/download/failed?path=");
    let start = page
        .text
        .find(&failed_link)
        .expect("a rejected-rows download");
    let href: String = page.text[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let download = client.get(&href.replace("&amp;", "&")).await;
    assert_eq!(download.status, StatusCode::OK, "{href}: {}", download.text);
    assert_eq!(
        download.text.lines().filter(|l| !l.is_empty()).count(),
        3,
        "{}",
        download.text
    );
    let data = client.get(&format!("{BASE}/files/{batch}-1")).await;
    assert_eq!(data.status, StatusCode::OK, "{}", data.text);
    assert!(data.text.contains(".parquet"), "{}", data.text);

    // The dataset page: the batch, its counts, the chart, the table's query, the schema.
    let dataset_page = client.get(&format!("{BASE}/datasets/{dataset}")).await;
    assert_eq!(dataset_page.status, StatusCode::OK, "{}", dataset_page.text);
    assert!(dataset_page.text.contains(&batch));
    assert!(dataset_page.text.contains("<svg class=\"chart\""));
    assert!(
        dataset_page.text.contains("<dt>Rows</dt><dd>7</dd>"),
        "{}",
        dataset_page.text
    );
    assert!(
        dataset_page.text.contains("SELECT * FROM orders LIMIT 10"),
        "{}",
        dataset_page.text
    );
    assert!(
        dataset_page.text.contains(">memberId<"),
        "schema tree: {}",
        dataset_page.text
    );
    let preview = client
        .get(&format!("{BASE}/datasets/{dataset}/preview"))
        .await;
    assert_eq!(preview.status, StatusCode::OK, "{}", preview.text);
    assert!(preview.text.contains("evt-0"), "{}", preview.text);

    // REVERT: refused without the form token, or with another one; done with it.
    let confirm = client.get(&format!("{BASE}/batches/{batch}/revert")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.text.contains("Revert batch"));
    for pairs in [vec![], vec![("csrf", "0".repeat(64))]] {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = client
            .post_form(&format!("{BASE}/batches/{batch}/revert"), &pairs)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    }
    assert_eq!(app.batch(&batch).await["status"], "success");
    let reverted = client
        .post_form(
            &format!("{BASE}/batches/{batch}/revert"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(reverted.status, StatusCode::SEE_OTHER, "{}", reverted.text);
    assert_eq!(reverted.location, Some(format!("/console/batches/{batch}")));
    assert_eq!(app.batch(&batch).await["status"], "inactive");
    app.run_jobs().await;
    let after = client.get(&format!("{BASE}/batches/{batch}")).await;
    assert!(!after.text.contains("Revert…"), "no second revert offered");

    // Sign-out ends the session: pages redirect to the sign-in again.
    let out = client
        .post_form(&format!("{BASE}/signout"), &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    let again = client.get(&format!("{BASE}/datasets")).await;
    assert_eq!(again.status, StatusCode::SEE_OTHER);
    assert_eq!(again.location.as_deref(), Some("/console/signin"));
}

#[tokio::test]
async fn another_organization_gets_404_for_every_url_of_org_a() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("orders").await;
    let mut a = Client::new(mounted(&app));
    let a_csrf = a.sign_in(TOKEN, ORG_A).await;
    let batch = upload(&mut a, &a_csrf, &dataset).await;
    app.run_jobs().await;
    assert_eq!(app.batch(&batch).await["status"], "success");

    let mut b = Client::new(mounted(&app));
    // The token entitled to org B only is offered org B only, and refused org A.
    b.sign_in(TOKEN_B_ONLY, ORG_B).await;
    let tenant = b.get(&format!("{BASE}/tenant")).await;
    assert!(
        tenant.text.contains(ORG_B) && !tenant.text.contains(ORG_A),
        "{}",
        tenant.text
    );
    let b_csrf = tenant.input("csrf");
    let refused = b
        .post_form(
            &format!("{BASE}/tenant"),
            &[("csrf", &b_csrf), ("org", ORG_A), ("sandbox", "prod")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.text.contains("not entitled"), "{}", refused.text);

    let list = b.get(&format!("{BASE}/datasets")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        !list.text.contains(&dataset),
        "org B lists no dataset of org A"
    );
    for path in [
        format!("{BASE}/datasets/{dataset}"),
        format!("{BASE}/datasets/{dataset}/preview"),
        format!("{BASE}/datasets/{dataset}/upload"),
        format!("{BASE}/batches/{batch}"),
        format!("{BASE}/batches/{batch}/revert"),
        format!("{BASE}/batches/{batch}/download/failed?path=part-0.json"),
        format!("{BASE}/files/{batch}-1"),
        format!("{BASE}/files/{batch}-1?path=part-0.parquet"),
    ] {
        let page = b.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.text);
        assert!(page.text.contains("Not found"), "{path}");
        assert!(!page.text.contains("orders"), "{path} leaks nothing");
    }
    let status = b.get(&format!("{BASE}/batches/{batch}/status")).await;
    assert_eq!(status.status, StatusCode::NOT_FOUND);
    // Its form token does not revert org A's batch either.
    let revert = b
        .post_form(
            &format!("{BASE}/batches/{batch}/revert"),
            &[("csrf", &b_csrf)],
        )
        .await;
    assert_eq!(revert.status, StatusCode::NOT_FOUND, "{}", revert.text);
    let upload = b
        .post_multipart(
            &format!("{BASE}/datasets/{dataset}/upload"),
            &[("csrf", &b_csrf)],
            &[("x.json", b"{}\n")],
        )
        .await;
    assert_eq!(upload.status, StatusCode::NOT_FOUND, "{}", upload.text);
    assert_eq!(app.batch(&batch).await["status"], "success");

    // Malformed ids are 404 pages too, never 500.
    for path in [
        format!("{BASE}/datasets/not%20an%20id"),
        format!("{BASE}/batches/%00%ff"),
        format!("{BASE}/batches/{}", "x".repeat(500)),
        format!("{BASE}/files/nope"),
        format!("{BASE}/schema?id=https%3A%2F%2Fexample.test%2Fnothing"),
        format!("{BASE}/nowhere"),
    ] {
        let page = a.get(&path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.text);
    }
}

#[tokio::test]
async fn without_a_session_pages_redirect_and_actions_do_nothing() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("orders").await;
    let batch = app.create_batch(json!({"datasetId": dataset})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut anonymous = Client::new(mounted(&app));
    for path in [
        format!("{BASE}/datasets"),
        format!("{BASE}/datasets/{dataset}"),
        format!("{BASE}/batches/{batch}"),
        format!("{BASE}/schemas"),
    ] {
        let page = anonymous.get(&path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location.as_deref(), Some("/console/signin"), "{path}");
    }
    let abort = anonymous
        .post_form(&format!("{BASE}/batches/{batch}/abort"), &[("csrf", "x")])
        .await;
    assert_eq!(abort.status, StatusCode::SEE_OTHER);
    assert_eq!(app.batch(&batch).await["status"], "loading");
    // The mount point redirects into the console; the API is still served beside it.
    let root = anonymous.get(BASE).await;
    assert_eq!(root.status, StatusCode::SEE_OTHER);
    let health = anonymous.get("/health").await;
    assert_eq!(health.status, StatusCode::OK);
    let api = anonymous.get("/data/foundation/catalog/dataSets").await;
    assert!(
        api.status.is_client_error(),
        "the API still wants its headers: {}",
        api.status
    );

    // A wrong token, and a sign-in form posted without the cookie of its page.
    let form = anonymous.get(&format!("{BASE}/signin")).await;
    let nonce = form.input("nonce");
    let wrong = anonymous
        .post_form(
            &format!("{BASE}/signin"),
            &[("nonce", &nonce), ("token", "nope")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let mut other = Client::new(mounted(&app));
    let forged = other
        .post_form(
            &format!("{BASE}/signin"),
            &[("nonce", &nonce), ("token", TOKEN)],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text);

    // ABORT through the console, with its confirmation page and the form token.
    let mut client = Client::new(mounted(&app));
    let csrf = client.sign_in(TOKEN, ORG_A).await;
    let confirm = client.get(&format!("{BASE}/batches/{batch}/abort")).await;
    assert!(confirm.text.contains("Abort batch"), "{}", confirm.text);
    let aborted = client
        .post_form(&format!("{BASE}/batches/{batch}/abort"), &[("csrf", &csrf)])
        .await;
    assert_eq!(aborted.status, StatusCode::SEE_OTHER, "{}", aborted.text);
    assert_eq!(app.batch(&batch).await["status"], "aborted");
}

#[tokio::test]
async fn page_sizes_forms_and_uploads_are_bounded() {
    let app = TestApp::new().await;
    for name in ["alpha", "beta", "gamma"] {
        app.create_dataset(json!({"name": name})).await;
        // Distinct `created` milliseconds: "newest first" is then defined.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let mut client = Client::new(mounted(&app));
    let csrf = client.sign_in(TOKEN, ORG_A).await;
    let one = client.get(&format!("{BASE}/datasets?limit=1")).await;
    assert_eq!(
        one.text.matches("<td><a href=\"/console/datasets/").count(),
        1,
        "{}",
        one.text
    );
    assert!(one.text.contains("rel=\"next\""));
    assert!(one.text.contains(">gamma<"), "newest first");
    let huge = client
        .get(&format!(
            "{BASE}/datasets?limit=100000&start=99999999999999"
        ))
        .await;
    assert_eq!(huge.status, StatusCode::OK, "{}", huge.text);
    assert!(huge.text.contains("50 per page"), "{}", huge.text);
    let garbage = client
        .get(&format!("{BASE}/datasets?limit=-1&start=x&q=%FF"))
        .await;
    assert_eq!(garbage.status, StatusCode::OK, "{}", garbage.text);
    let search = client.get(&format!("{BASE}/datasets?q=et")).await;
    assert!(
        search.text.contains(">beta<") && !search.text.contains(">alpha<"),
        "{}",
        search.text
    );
    let any_of = client.get(&format!("{BASE}/datasets?q=alpha,gamma")).await;
    assert!(
        !any_of.text.contains(">alpha<"),
        "a comma is no any-of: {}",
        any_of.text
    );

    // A dataset's batches page newest first by keyset: every batch once, ties included.
    let paged = app.create_dataset(json!({"name": "paged"})).await;
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(
            app.create_batch(json!({"datasetId": paged})).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut path = format!("{BASE}/datasets/{paged}?limit=2");
    for _ in 0..10 {
        let page = client.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for id in &created {
            if page
                .text
                .contains(&format!("<td><a href=\"/console/batches/{id}\">"))
            {
                seen.push(id.clone());
            }
        }
        let marker = "rel=\"next\" href=\"";
        let Some(start) = page.text.find(marker) else {
            break;
        };
        let href: String = page.text[start + marker.len()..]
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        path = href.replace("&amp;", "&");
    }
    // Each exactly once (within one millisecond the Catalog orders by id).
    assert_eq!(seen.len(), created.len(), "{seen:?}");
    seen.sort();
    created.sort();
    assert_eq!(seen, created);

    // A form over the bound is refused before it is read.
    let big = "x".repeat(lakeport_console::MAX_FORM_BYTES + 1);
    let refused = client
        .post_form(&format!("{BASE}/tenant"), &[("csrf", &csrf), ("org", &big)])
        .await;
    assert_eq!(
        refused.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        refused.text
    );
    // An upload of more files than one upload holds: refused, and its batch aborted.
    let dataset = app.create_event_dataset("orders").await;
    let line = crate::event(1).to_string();
    let files: Vec<(String, Vec<u8>)> = (0..=lakeport_console::MAX_UPLOAD_FILES)
        .map(|i| (format!("f{i}.json"), line.clone().into_bytes()))
        .collect();
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let too_many = client
        .post_multipart(
            &format!("{BASE}/datasets/{dataset}/upload"),
            &[("csrf", &csrf)],
            &files,
        )
        .await;
    assert_eq!(
        too_many.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        too_many.text
    );
    let batches = app
        .get(&format!(
            "/data/foundation/catalog/batches?dataSet={dataset}"
        ))
        .send()
        .await;
    let statuses: Vec<&str> = batches
        .body
        .as_object()
        .unwrap()
        .values()
        .map(|b| b["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["aborted"], "{}", batches.text);
    // A form field over its bound, and an upload that is no multipart form.
    let long = "9".repeat(2000);
    let field = client
        .post_multipart(
            &format!("{BASE}/datasets/{dataset}/upload"),
            &[("csrf", &csrf), ("threshold", &long)],
            &[],
        )
        .await;
    assert_eq!(field.status, StatusCode::BAD_REQUEST, "{}", field.text);
    let plain = client
        .send(
            Method::POST,
            &format!("{BASE}/datasets/{dataset}/upload"),
            Some("text/plain"),
            b"hi".to_vec(),
        )
        .await;
    assert_eq!(plain.status, StatusCode::BAD_REQUEST, "{}", plain.text);
}

#[tokio::test]
async fn schemas_and_field_groups_are_listed_and_shown_as_trees() {
    let app = TestApp::new().await;
    app.create_event_dataset("orders").await;
    let mut client = Client::new(mounted(&app));
    client.sign_in(TOKEN, ORG_A).await;
    let list = client.get(&format!("{BASE}/schemas")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains("orders schema"), "{}", list.text);
    let groups = client
        .get(&format!("{BASE}/schemas?kind=fieldgroups"))
        .await;
    assert!(groups.text.contains("orders fields"), "{}", groups.text);
    let start = list.text.find("/console/schema?id=").unwrap();
    let href: String = list.text[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let tree = client.get(&href.replace("&amp;", "&")).await;
    assert_eq!(tree.status, StatusCode::OK, "{}", tree.text);
    assert!(
        tree.text.contains(">memberId<") && tree.text.contains("required"),
        "{}",
        tree.text
    );
}

#[tokio::test]
async fn a_test_message_to_an_inlet_shows_its_violations_or_passes() {
    let app = TestApp::new().await;
    let dataset = app.create_event_dataset("orders").await;
    let (inlet, _flow) = app
        .create_streaming_flow(
            &dataset,
            json!({"name": "inlet", "authenticationRequired": false}),
        )
        .await;
    let mut client = Client::new(mounted(&app));
    let csrf = client.sign_in(TOKEN, ORG_A).await;
    let list = client.get(&format!("{BASE}/inlets")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert!(list.text.contains(&inlet), "{}", list.text);
    let start = list.text.find("/console/inlets/").unwrap();
    let href: String = list.text[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let page = client.get(&href).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("<textarea"), "{}", page.text);

    let mut bad = crate::event(1);
    bad[crate::ns()]["points"] = json!(-5);
    let message = json!({"header": {"imsOrgId": ORG_A}, "body": {"xdmEntity": bad}}).to_string();
    let rejected = client
        .post_form(&href, &[("csrf", &csrf), ("message", &message)])
        .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text);
    assert!(rejected.text.contains("rejected"), "{}", rejected.text);
    assert!(
        rejected.text.contains("minimum") && rejected.text.contains("points"),
        "{}",
        rejected.text
    );
    let good =
        json!({"header": {"imsOrgId": ORG_A}, "body": {"xdmEntity": crate::event(2)}}).to_string();
    let accepted = client
        .post_form(&href, &[("csrf", &csrf), ("message", &good)])
        .await;
    assert!(accepted.text.contains("accepted"), "{}", accepted.text);
    let refused = client.post_form(&href, &[("message", &good)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    app.flush_streams().await;
    let batches = app
        .get(&format!(
            "/data/foundation/catalog/batches?dataSet={dataset}"
        ))
        .send()
        .await;
    let counts: Vec<u64> = batches
        .body
        .as_object()
        .unwrap()
        .values()
        .filter_map(|b| b["recordCount"].as_u64())
        .collect();
    assert_eq!(
        counts,
        [1],
        "only the passing message was ingested: {}",
        batches.text
    );

    // Another organization's session does not reach this connection.
    let mut b = Client::new(mounted(&app));
    let b_csrf = b.sign_in(TOKEN_B_ONLY, ORG_B).await;
    assert_eq!(b.get(&href).await.status, StatusCode::NOT_FOUND);
    let sent = b
        .post_form(&href, &[("csrf", &b_csrf), ("message", &good)])
        .await;
    assert_eq!(sent.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cookies_are_http_only_strict_and_secure_behind_https() {
    use tower::ServiceExt;
    let app = TestApp::new().await;
    for secure in [false, true] {
        let router = lakeport_console::mount(
            app.api(),
            app.state().auth().clone(),
            &lakeport_config::ConsoleConfig::default(),
            secure,
            None,
        );
        let request = axum::http::Request::get(format!("{BASE}/signin"))
            .body(axum::body::Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let cookie = response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
        assert_eq!(cookie.contains("; Secure"), secure, "{cookie}");
        assert!(cookie.contains("Path=/console/"), "{cookie}");
    }
}
