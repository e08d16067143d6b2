//! The console in headless Chromium, driven through WebDriver (chromedriver): sign in,
//! choose the organization, upload a file with rejected rows on the upload page, watch the
//! batch page update itself, read the rejected rows and their violations, revert.
//!
//! Needs `CHROMEDRIVER` (the chromedriver binary; Debian's `chromium-driver`); `CHROMIUM`
//! names the browser (default `/usr/bin/chromium`). Skipped, saying so, without them.
//! With `CONSOLE_SCREENSHOTS=<dir>` it saves the pages as PNG there (docs/console/).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use lakeport_test_support::{ORG_A, TOKEN, TestApp};
use serde_json::json;

use crate::{mounted, rows_with_rejects};

/// Ends the chromedriver process with the test, also when it panics.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver(path: &str) -> (Driver, String) {
    let port = free_port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|err| panic!("starting {path}: {err}"));
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (driver, format!("http://127.0.0.1:{port}"))
}

async fn browser(webdriver: &str, profile: &std::path::Path) -> Client {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(webdriver)
        .await
        .expect("a Chromium session")
}

async fn screenshot(client: &Client, name: &str) {
    let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") else {
        return;
    };
    // The whole page: the window grows to the document's height first.
    let height: f64 = client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(1000.0);
    let _ = client
        .set_window_size(1280, (height as u32 + 40).clamp(700, 2400))
        .await;
    let png = client.screenshot().await.unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let path = PathBuf::from(dir).join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap();
    let _ = client.set_window_size(1280, 1000).await;
}

async fn wait_for_text(client: &Client, text: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let source = client.source().await.unwrap();
        if source.contains(text) {
            return source;
        }
        assert!(
            Instant::now() < deadline,
            "{text:?} did not appear; the page is:\n{source}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_uploads_a_file_sees_its_rejected_rows_and_reverts_it_in_chromium() {
    let Ok(chromedriver) = std::env::var("CHROMEDRIVER") else {
        println!(
            "skipped: CHROMEDRIVER is not set (apt-get install chromium chromium-driver; CHROMEDRIVER=/usr/bin/chromedriver)"
        );
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

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let router = mounted(&app);
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let origin = format!("http://{address}");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("orders.json");
    std::fs::write(&file, rows_with_rejects()).unwrap();
    let profile = work.path().join("profile");
    let (_driver, webdriver) = start_driver(&chromedriver).await;
    let client = browser(&webdriver, &profile).await;

    // Sign in; the token may act for any organization, so the organization is typed.
    client.goto(&format!("{origin}/console/")).await.unwrap();
    let token = client
        .wait()
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    screenshot(&client, "signin").await;
    token.send_keys(TOKEN).await.unwrap();
    client
        .find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let org = client.wait().for_element(Locator::Id("org")).await.unwrap();
    org.send_keys(ORG_A).await.unwrap();
    client
        .find(Locator::Css("main button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "<h1>Datasets</h1>", 10).await;
    screenshot(&client, "datasets").await;

    // The dataset, then its upload page.
    client
        .find(Locator::LinkText("orders"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&client, "Batches over time", 10).await;
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
    screenshot(&client, "upload").await;
    client
        .find(Locator::Css("form#upload button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

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
    wait_for_text(&client, "data-running=\"true\"", 10).await;
    app.run_jobs().await;
    // console.js sees the batch finish and reloads the page with its rejected rows.
    let source = wait_for_text(&client, "Rejected rows</h2>", 20).await;
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
    screenshot(&client, "batch").await;

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
    screenshot(&client, "dataset").await;

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
    wait_for_text(&client, "badge off\">inactive", 10).await;
    assert_eq!(app.batch(&batch).await["status"], "inactive");

    client.close().await.unwrap();
    server.abort();
}
