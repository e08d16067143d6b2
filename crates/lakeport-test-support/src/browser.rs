//! Headless Chromium over WebDriver for the console's browser tests (feature `browser`).
//!
//! Needs `CHROMEDRIVER` (the chromedriver binary; Debian's `chromium-driver`); `CHROMIUM`
//! names the browser (default `/usr/bin/chromium`). Without `CHROMEDRIVER`, [`Browser::start`]
//! says the test is skipped and returns `None`. With `CONSOLE_SCREENSHOTS=<dir>`,
//! [`screenshot`] saves pages as PNG there (docs/console/).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use fantoccini::{Client, Locator};
use serde_json::json;

/// Ends the chromedriver process with the test, also when it panics.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A Chromium session, its chromedriver and its profile directory.
pub struct Browser {
    pub client: Client,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session, or returns `None` (printing why
    /// the test is skipped) when `CHROMEDRIVER` is not set.
    pub async fn start() -> Option<Self> {
        let Ok(path) = std::env::var("CHROMEDRIVER") else {
            println!(
                "skipped: CHROMEDRIVER is not set (apt-get install chromium chromium-driver; CHROMEDRIVER=/usr/bin/chromedriver)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&path)
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
        let profile = tempfile::tempdir().unwrap();
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
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session");
        Some(Self {
            client,
            _driver: driver,
            _profile: profile,
        })
    }

    /// Signs in at `origin`'s console with `token` and chooses `org` (sandbox prod), landing
    /// on the datasets page; `screenshots` saves the sign-in page as `signin`.
    pub async fn sign_in(&self, origin: &str, token: &str, org: &str, screenshots: bool) {
        let client = &self.client;
        client.goto(&format!("{origin}/console/")).await.unwrap();
        let field = client
            .wait()
            .for_element(Locator::Id("token"))
            .await
            .unwrap();
        if screenshots {
            screenshot(client, "signin").await;
        }
        field.send_keys(token).await.unwrap();
        click(client, "button[type=submit]").await;
        // The token may act for any organization, so the organization is typed.
        let field = client.wait().for_element(Locator::Id("org")).await.unwrap();
        field.send_keys(org).await.unwrap();
        click(client, "main button[type=submit]").await;
        wait_for_text(client, "<h1>Datasets</h1>", 10).await;
    }
}

/// Clicks the first element `css` selects.
pub async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("no {css}: {err}"))
        .click()
        .await
        .unwrap();
}

/// Serves `router` on a free loopback port; returns its origin and the server task.
pub async fn serve(router: axum::Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{address}"), server)
}

/// Saves the whole page as `<name>.png` under `CONSOLE_SCREENSHOTS`, when it is set.
pub async fn screenshot(client: &Client, name: &str) {
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
    std::fs::write(PathBuf::from(dir).join(format!("{name}.png")), png).unwrap();
    let _ = client.set_window_size(1280, 1000).await;
}

/// Waits until the page's source holds `text` and returns it.
pub async fn wait_for_text(client: &Client, text: &str, secs: u64) -> String {
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
