//! The console in headless Chromium, driven through WebDriver (chromedriver): sign in,
//! choose the organization, upload a file with rejected rows on the upload page, watch the
//! batch page update itself, read the rejected rows and their violations, revert.
//!
//! Needs `CHROMEDRIVER` (the chromedriver binary; Debian's `chromium-driver`); `CHROMIUM`
//! names the browser (default `/usr/bin/chromium`). Skipped, saying so, without them.
//! With `CONSOLE_SCREENSHOTS=<dir>` it saves the pages as PNG there (docs/console/).

use std::time::{Duration, Instant};

use lakeport_test_support::browser::{Browser, Locator, click, screenshot, serve, wait_for_text};
use lakeport_test_support::{ORG_A, TOKEN, TestApp};
use serde_json::json;

use crate::{mounted, rows_with_rejects};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_uploads_a_file_sees_its_rejected_rows_and_reverts_it_in_chromium() {
    let Some(browser) = Browser::start().await else {
        return;
    };
    let app = TestApp::new().await;
    for name in ["customers", "web sessions"] {
        app.create_dataset(json!({"name": name, "description": "Created for the screenshots"}))
            .await;
    }
    let dataset = app.create_event_dataset("orders").await;
    // An earlier batch, so the dataset page has a history to chart.
    let earlier = app.create_batch(json!({"datasetId": dataset})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let line = format!("{}\n", crate::event(42));
    app.upload(&earlier, &dataset, "first.json", line.as_bytes())
        .await;
    app.signal(&earlier, "COMPLETE").await;
    app.run_jobs().await;

    let (origin, server) = serve(mounted(&app)).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("orders.json");
    std::fs::write(&file, rows_with_rejects()).unwrap();
    browser.sign_in(&origin, TOKEN, ORG_A, true).await;
    let client = &browser.client;
    screenshot(client, "datasets").await;

    // The dataset, then its upload page.
    client
        .find(Locator::LinkText("orders"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(client, "Batches over time", 10).await;
    client
        .find(Locator::LinkText("Upload files"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let input = client
        .wait()
        .for_element(Locator::Id("files"))
        .await
        .unwrap();
    input.send_keys(&file.display().to_string()).await.unwrap();
    let threshold = client.find(Locator::Id("threshold")).await.unwrap();
    threshold.clear().await.unwrap();
    threshold.send_keys("50").await.unwrap();
    screenshot(client, "upload").await;
    click(client, "form#upload button[type=submit]").await;

    // The upload lands on the batch page, which polls while the batch waits for a worker.
    let deadline = Instant::now() + Duration::from_secs(20);
    let batch = loop {
        let url = client.current_url().await.unwrap();
        if let Some(id) = url.path().strip_prefix("/console/batches/") {
            break id.to_owned();
        }
        assert!(Instant::now() < deadline, "no batch page: {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    wait_for_text(client, "data-running=\"true\"", 10).await;
    app.run_jobs().await;
    // console.js sees the batch finish and reloads the page with its rejected rows.
    let source = wait_for_text(client, "Rejected rows</h2>", 20).await;
    assert!(source.contains("platinum"), "{source}");
    assert!(
        source.contains("is not one of"),
        "the enum violation next to its row"
    );
    assert!(
        source.contains("less than the minimum"),
        "the range violation"
    );
    assert!(source.contains("{not json at all"), "the unparsable line");
    let rows = client
        .find_all(Locator::Css("table.rejected tbody tr"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    for row in rows {
        let text = row.text().await.unwrap();
        let violations = row
            .find(Locator::Css("ul.violations li"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !violations.is_empty(),
            "every row has its violation: {text}"
        );
    }
    screenshot(client, "batch").await;

    // The dataset page with both batches in its chart.
    client
        .goto(&format!("{origin}/console/datasets/{dataset}"))
        .await
        .unwrap();
    let bars = client
        .find_all(Locator::Css("svg.chart rect"))
        .await
        .unwrap();
    assert!(bars.len() >= 2, "one bar per batch");
    screenshot(client, "dataset").await;

    // REVERT through its confirmation page.
    client
        .goto(&format!("{origin}/console/batches/{batch}"))
        .await
        .unwrap();
    client
        .find(Locator::LinkText("Revert…"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .for_element(Locator::Css("button.danger"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(client, "badge off\">inactive", 10).await;
    assert_eq!(app.batch(&batch).await["status"], "inactive");

    browser.client.clone().close().await.unwrap();
    server.abort();
}
