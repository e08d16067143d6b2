//! The servers the binary tests may share: a fresh PostgreSQL database when
//! `TEST_DATABASE_URL` names a server on which databases may be created, and a bucket prefix
//! of its own when `TEST_S3_ENDPOINT` names an S3-compatible server (`TEST_S3_BUCKET`,
//! default `lakeport-test`, with the `AWS_*` credentials); a temporary directory otherwise.

use std::process::Command;

/// A fresh database on the test server, dropped at the end.
pub(crate) struct Database {
    admin_url: String,
    name: String,
    pub(crate) url: String,
}

impl Database {
    /// Creates a database named after `purpose`, or `None` when `TEST_DATABASE_URL` is
    /// not set.
    pub(crate) fn create(purpose: &str) -> Option<Self> {
        let Ok(admin_url) = std::env::var("TEST_DATABASE_URL") else {
            eprintln!("note: TEST_DATABASE_URL is not set; {purpose} runs without PostgreSQL");
            return None;
        };
        let name = format!(
            "lakeport_{purpose}_{}_{}",
            std::process::id(),
            rand_suffix()
        );
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(base, _)| base);
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.admin_url.as_str(),
                "-qc",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

pub(crate) fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-At", "-c", sql])
        .output()
        .expect("psql runs");
    assert!(
        output.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// The object store the nodes share: a prefix of its own in the test bucket, or a
/// temporary directory.
pub(crate) struct Objects {
    pub(crate) env: Vec<(&'static str, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Objects {
    pub(crate) fn create() -> Self {
        Self::s3().unwrap_or_else(|| {
            let dir = tempfile::tempdir().unwrap();
            Self {
                env: vec![(
                    "LAKEPORT__STORAGE__URL",
                    format!("file://{}", dir.path().display()),
                )],
                _dir: Some(dir),
            }
        })
    }

    /// A prefix of its own in the test bucket, when `TEST_S3_ENDPOINT` names a server.
    pub(crate) fn s3() -> Option<Self> {
        let endpoint = std::env::var("TEST_S3_ENDPOINT").ok()?;
        let bucket = std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "lakeport-test".to_owned());
        Some(Self {
            env: vec![
                (
                    "LAKEPORT__STORAGE__URL",
                    format!(
                        "s3://{bucket}/binary-tests-{}-{}",
                        std::process::id(),
                        rand_suffix()
                    ),
                ),
                ("LAKEPORT__STORAGE__ENDPOINT", endpoint),
            ],
            _dir: None,
        })
    }

    /// Opens the store, to look at what the servers wrote.
    pub(crate) fn storage(&self) -> lakeport_storage::Storage {
        let url = self
            .env
            .iter()
            .find(|(name, _)| *name == "LAKEPORT__STORAGE__URL")
            .map(|(_, url)| url.clone())
            .unwrap();
        let mut config = lakeport_config::Config::default();
        config.storage.url = Some(url);
        config.storage.endpoint = std::env::var("TEST_S3_ENDPOINT").ok();
        config.storage.fill_from_aws_environment(std::env::vars());
        lakeport_api::open_storage(&config).unwrap()
    }
}

impl Drop for Objects {
    fn drop(&mut self) {
        if self._dir.is_some() {
            return;
        }
        let emptied = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(
                self.storage()
                    .delete_prefix(&lakeport_storage::Key::from("")),
            );
        if let Err(err) = emptied {
            eprintln!("note: cannot empty the test prefix: {err}");
        }
    }
}
