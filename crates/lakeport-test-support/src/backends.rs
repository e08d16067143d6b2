//! The servers a `TestApp` may run on instead of the embedded default, named by the
//! environment: a fresh PostgreSQL database and a fresh S3 prefix per app, removed when the
//! app is dropped.

use std::sync::atomic::{AtomicU32, Ordering};

use lakeport_config::Config;

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique(kind: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!(
        "lakeport_{kind}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The remote backends of one app; empty on the embedded default.
pub(crate) struct Remote {
    database: Option<Database>,
    prefix: Option<S3Prefix>,
}

struct Database {
    server_url: String,
    name: String,
}

struct S3Prefix {
    endpoint: String,
    url: String,
}

impl Remote {
    pub(crate) async fn from_env() -> Self {
        let database = match std::env::var("TEST_DATABASE_URL") {
            Ok(server_url) => {
                let name = unique("http");
                admin_client(&server_url)
                    .await
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|err| panic!("cannot create test database {name}: {err}"));
                Some(Database { server_url, name })
            }
            Err(_) => None,
        };
        let prefix = std::env::var("TEST_S3_ENDPOINT").ok().map(|endpoint| {
            let bucket =
                std::env::var("TEST_S3_BUCKET").unwrap_or_else(|_| "lakeport-test".to_owned());
            S3Prefix {
                endpoint,
                url: format!("s3://{bucket}/{}", unique("http")),
            }
        });
        Self { database, prefix }
    }

    pub(crate) fn has_database(&self) -> bool {
        self.database.is_some()
    }

    /// Points the configuration at this app's database and prefix.
    pub(crate) fn configure(&self, config: &mut Config) {
        if let Some(database) = &self.database {
            config.metastore.url = Some(with_database(&database.server_url, &database.name));
        }
        if let Some(prefix) = &self.prefix {
            configure_s3(config, &prefix.endpoint, &prefix.url);
        }
    }
}

/// Points `config` at an S3 URL on `endpoint`, with the credentials of the AWS environment
/// variables.
pub fn configure_s3(config: &mut Config, endpoint: &str, url: &str) {
    config.storage.url = Some(url.to_owned());
    config.storage.endpoint = Some(endpoint.to_owned());
    config.storage.fill_from_aws_environment(std::env::vars());
}

impl Drop for Remote {
    fn drop(&mut self) {
        let database = self.database.take();
        let prefix = self.prefix.take();
        if database.is_none() && prefix.is_none() {
            return;
        }
        // Drop runs inside the test's runtime; the clean-up gets a runtime of its own.
        let cleaned = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    if let Some(prefix) = prefix {
                        let mut config = Config::default();
                        configure_s3(&mut config, &prefix.endpoint, &prefix.url);
                        let storage = lakeport_api::open_storage(&config)
                            .map_err(|err| format!("opening {}: {err}", prefix.url))?;
                        storage
                            .delete_prefix(&lakeport_storage::Key::from(""))
                            .await
                            .map_err(|err| format!("emptying {}: {err}", prefix.url))?;
                    }
                    if let Some(database) = database {
                        admin_client(&database.server_url)
                            .await
                            .batch_execute(&format!(
                                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                                database.name
                            ))
                            .await
                            .map_err(|err| format!("dropping {}: {err}", database.name))?;
                    }
                    Ok::<(), String>(())
                })
        })
        .join();
        if let Ok(Err(reason)) = cleaned {
            eprintln!("note: test clean-up failed: {reason}");
        }
    }
}

async fn admin_client(server_url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to TEST_DATABASE_URL: {err}"));
    tokio::spawn(connection);
    client
}

/// Returns the server URL with its database name replaced.
fn with_database(server_url: &str, database: &str) -> String {
    let (base, query) = server_url
        .split_once('?')
        .map_or((server_url, None), |(base, query)| (base, Some(query)));
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |index| authority_start + index);
    let mut url = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}
