//! Tests of the real `lakeport` binary: first start, restarts, `kill -9`, graceful
//! shutdown and `config show`.

mod backends;
mod cli;
mod connections;
mod crash;
mod http;
mod multinode;
mod query;
mod stream;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::json;

pub(crate) const ORG: &str = "ACME0123456789ABCDEF0123@AdobeOrg";

/// A running `lakeport serve` and the lines it printed on stdout.
pub(crate) struct Server {
    child: Child,
    pub(crate) address: String,
    banner: Vec<String>,
}

impl Server {
    pub(crate) fn start(data_dir: &std::path::Path, extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Starts a server with extra `LAKEPORT__…` variables (shared metastore and storage).
    pub(crate) fn start_with_env(
        data_dir: &std::path::Path,
        extra: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lakeport"));
        // Tests run servers side by side: each wire endpoint on a port of its own.
        command.env("LAKEPORT__QUERY__LISTEN", "127.0.0.1:0");
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "warn")
            .env("LAKEPORT__INGEST__LEASE_SECS", "2")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("lakeport starts");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let address = loop {
            let line = receiver
                .recv_timeout(Duration::from_secs(30))
                .expect("lakeport prints its address");
            banner.push(line.clone());
            if let Some(rest) = line.split("listening on http://").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Collect the rest of the banner (token and curl lines) printed right after.
        while let Ok(line) = receiver.recv_timeout(Duration::from_millis(300)) {
            banner.push(line);
        }
        Self {
            child,
            address,
            banner,
        }
    }

    /// The address of the Query Service's wire endpoint, as the server printed it.
    pub(crate) fn query_address(&self) -> Option<String> {
        self.banner.iter().find_map(|line| {
            let rest = line.split("(PostgreSQL wire) is listening on ").nth(1)?;
            Some(rest.split(':').take(2).collect::<Vec<_>>().join(":"))
        })
    }

    pub(crate) fn conn(&self) -> http::Conn {
        http::Conn::connect(&self.address).unwrap()
    }

    pub(crate) fn kill_9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A failing test must not leave its server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {token}")),
        ("x-api-key", "my-client".into()),
        ("x-gw-ims-org-id", ORG.into()),
        ("x-sandbox-name", "prod".into()),
        ("content-type", "application/json".into()),
    ]
}

fn send(
    conn: &mut http::Conn,
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> http::Reply {
    let owned = headers(token);
    let list: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let body = body.map(|b| b.to_string());
    conn.request(method, path, &list, body.as_deref()).unwrap()
}

#[test]
fn first_start_generates_a_token_and_prints_a_working_curl() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let token = std::fs::read_to_string(dir.path().join("auth-token")).unwrap();
    assert_eq!(token.len(), 48);
    assert!(
        server.banner.iter().any(|line| line.trim() == token),
        "{:#?}",
        server.banner
    );
    let script: Vec<&String> = server
        .banner
        .iter()
        .filter(|line| line.starts_with("DATASET=") || line.starts_with("curl "))
        .collect();
    assert_eq!(script.len(), 2, "{:#?}", server.banner);
    let output = Command::new("bash")
        .arg("-c")
        .arg(
            script
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let batch: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(batch["status"], "loading");
    assert_eq!(batch["version"], "1.0.0");
    assert_eq!(batch["relatedObjects"][0]["type"], "dataSet");
    assert_eq!(batch["tags"]["acp_producer"], json!(["my-client"]));

    // A second start reuses the saved token.
    server.terminate();
    let again = Server::start(dir.path(), &[]);
    assert!(again.banner.iter().any(|line| line.trim() == token));
    let mut conn = again.conn();
    assert_eq!(
        send(
            &mut conn,
            &token,
            "GET",
            "/data/foundation/catalog/batches",
            None
        )
        .json()
        .as_object()
        .unwrap()
        .len(),
        1
    );
    again.kill_9();
}

#[test]
fn serve_mounts_the_web_console_where_configured_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    assert!(
        server
            .banner
            .iter()
            .any(|line| line.contains(&format!("http://{}/console/", server.address))),
        "{:#?}",
        server.banner
    );
    let mut conn = server.conn();
    let signin = conn.request("GET", "/console/signin", &[], None).unwrap();
    assert_eq!(signin.status, 200, "{}", signin.body);
    assert!(
        signin
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(signin.body.contains("name=\"token\""));
    let css = conn
        .request("GET", "/console/assets/console.css", &[], None)
        .unwrap();
    assert_eq!(css.status, 200);
    let datasets = conn.request("GET", "/console/datasets", &[], None).unwrap();
    assert_eq!(
        (datasets.status, datasets.header("location")),
        (303, Some("/console/signin"))
    );
    server.terminate();

    let moved = Server::start_with_env(
        dir.path(),
        &[],
        &[("LAKEPORT__CONSOLE__PATH", "/ui".to_owned())],
    );
    let mut conn = moved.conn();
    assert_eq!(
        conn.request("GET", "/ui/signin", &[], None).unwrap().status,
        200
    );
    assert_eq!(
        conn.request("GET", "/console/signin", &[], None)
            .unwrap()
            .status,
        404
    );
    moved.terminate();

    let off = Server::start_with_env(
        dir.path(),
        &[],
        &[("LAKEPORT__CONSOLE__ENABLED", "false".to_owned())],
    );
    let mut conn = off.conn();
    let gone = conn.request("GET", "/console/signin", &[], None).unwrap();
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert!(
        gone.body.contains("\"status\":404"),
        "the API's problem: {}",
        gone.body
    );
    off.kill_9();
}

#[test]
fn objects_survive_kill_9_right_after_the_answer_and_graceful_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let token = "durability-token";
    let server = Server::start(dir.path(), &["--token", token]);
    let mut conn = server.conn();
    let reply = send(
        &mut conn,
        token,
        "POST",
        "/data/foundation/catalog/dataSets",
        Some(json!({"name": "durable"})),
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    let dataset = reply.json()[0]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let mut batches = Vec::new();
    for _ in 0..20 {
        let reply = send(
            &mut conn,
            token,
            "POST",
            "/data/foundation/import/batches",
            Some(json!({"datasetId": dataset})),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        batches.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    let reply = send(
        &mut conn,
        token,
        "PATCH",
        &format!("/data/foundation/catalog/dataSets/{dataset}"),
        Some(json!({"description": "patched"})),
    );
    assert_eq!(reply.status, 200);
    // SIGKILL immediately after the last 2xx.
    server.kill_9();

    let server = Server::start(dir.path(), &["--token", token]);
    let mut conn = server.conn();
    let reply = send(
        &mut conn,
        token,
        "GET",
        &format!("/data/foundation/catalog/dataSets/{dataset}"),
        None,
    );
    assert_eq!(reply.json()[&dataset]["description"], "patched");
    let reply = send(
        &mut conn,
        token,
        "GET",
        &format!("/data/foundation/catalog/batches?dataSet={dataset}&limit=100"),
        None,
    );
    let listed: Vec<String> = reply.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(listed, batches);
    let status = server.terminate();
    assert!(
        status.success(),
        "SIGTERM shuts down gracefully: {status:?}"
    );

    let server = Server::start(dir.path(), &["--token", token]);
    let mut conn = server.conn();
    let reply = send(
        &mut conn,
        token,
        "GET",
        &format!("/data/foundation/catalog/batches?dataSet={dataset}&limit=100"),
        None,
    );
    assert_eq!(reply.json().as_object().unwrap().len(), 20);
    let reply = send(
        &mut conn,
        "wrong",
        "GET",
        "/data/foundation/catalog/batches",
        None,
    );
    assert_eq!(reply.status, 401);
    server.kill_9();
}

#[test]
fn config_show_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lakeport.toml");
    std::fs::write(&file, "[catalog]\nmax_limit = 50\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lakeport"))
        .args(["config", "show", "--token", "very-secret-token", "--config"])
        .arg(&file)
        .env("LAKEPORT__SERVER__LISTEN", "0.0.0.0:9999")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("listen = \"0.0.0.0:9999\""), "{text}");
    assert!(text.contains("max_limit = 50"), "{text}");
    assert!(
        text.contains("<redacted>") && !text.contains("very-secret-token"),
        "{text}"
    );

    let output = Command::new(env!("CARGO_BIN_EXE_lakeport"))
        .args(["config", "show"])
        .env("LAKEPORT__CATALOG__MAX_LIMIT", "lots")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8(output.stderr).unwrap();
    assert!(error.contains("max_limit"), "{error}");
}
