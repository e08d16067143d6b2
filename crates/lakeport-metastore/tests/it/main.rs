//! The metastore conformance suite, written once and run against every backend.

mod conformance;

use lakeport_metastore::Metastore;
use lakeport_metastore::sqlite::{Durability, SqliteMetastore};

/// A fresh SQLite metastore in its own temporary directory.
pub struct Sqlite {
    pub store: SqliteMetastore,
    pub dir: tempfile::TempDir,
}

pub async fn sqlite() -> Sqlite {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("catalog.db").display());
    let store = SqliteMetastore::open(&url, Durability::Process)
        .await
        .unwrap();
    Sqlite { store, dir }
}

/// A fresh PostgreSQL metastore in a database of its own, created on the server named by
/// `TEST_DATABASE_URL` and dropped afterwards (even when the test fails).
#[cfg(feature = "postgres")]
pub struct Postgres {
    pub store: lakeport_metastore::postgres::PostgresMetastore,
    server_url: String,
    database: String,
}

/// Returns a fresh PostgreSQL metastore, or `None` (after saying so once) when
/// `TEST_DATABASE_URL` is not set.
#[cfg(feature = "postgres")]
pub async fn postgres() -> Option<Postgres> {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    static SKIP_NOTE: std::sync::Once = std::sync::Once::new();
    let Ok(server_url) = std::env::var("TEST_DATABASE_URL") else {
        SKIP_NOTE.call_once(|| {
            use std::io::Write;
            // Written past the test harness's capture so that the skip is visible.
            let _ = writeln!(
                std::io::stderr(),
                "note: skipping the PostgreSQL conformance tests; set TEST_DATABASE_URL \
                 (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run them"
            );
        });
        return None;
    };
    let database = format!(
        "lakeport_test_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let admin = admin_client(&server_url).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {database}"))
        .await
        .unwrap();
    let guard = Postgres {
        store: lakeport_metastore::postgres::PostgresMetastore::open(
            &with_database(&server_url, &database),
            4,
        )
        .await
        .unwrap(),
        server_url,
        database,
    };
    Some(guard)
}

#[cfg(feature = "postgres")]
async fn admin_client(server_url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to TEST_DATABASE_URL: {err}"));
    tokio::spawn(connection);
    client
}

/// Returns the server URL with its database name replaced.
#[cfg(feature = "postgres")]
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

#[cfg(feature = "postgres")]
impl Drop for Postgres {
    fn drop(&mut self) {
        let (server_url, database) = (self.server_url.clone(), self.database.clone());
        // Drop runs inside the test's runtime; the clean-up gets a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    admin_client(&server_url)
                        .await
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .await
                })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) && !std::thread::panicking() {
            panic!("cannot drop test database {}: {dropped:?}", self.database);
        }
    }
}

/// Runs each conformance test on every backend: `sqlite_backend::<test>` and (with the
/// `postgres` feature) `postgres_backend::<test>`, from this one list.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::sqlite().await;
                    super::conformance::$name(&backend.store as &dyn super::Metastore).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(backend) = super::postgres().await else {
                        return;
                    };
                    super::conformance::$name(&backend.store as &dyn super::Metastore).await;
                }
            )*
        }
    };
}

conformance!(
    datasets_round_trip_per_tenant,
    duplicate_ids_and_external_ids_are_refused,
    get_returns_existing_ids_in_requested_order,
    list_filters_sort_and_page,
    list_filters_by_tags_properties_and_relations,
    list_filters_by_nested_property_paths,
    updates_check_versions_and_record_batch_status_on_dataset,
    deleting_a_dataset_removes_files_and_marks_batches_deleted,
    import_batches_check_dataset_external_id_and_replay,
    registry_resources_round_trip_with_unique_titles,
    registry_neighbourhoods_read_only_what_they_touch,
    expired_diagnostics_are_found_by_completed_time_and_cleared,
    uploads_are_checked_against_the_batch_and_its_limits,
    jobs_are_leased_retried_and_promoted_once,
    follow_up_cleanups_are_enqueued_with_the_change,
    stale_loading_batches_are_abandoned,
    concurrent_writes_behave_as_if_serialized,
    flow_objects_check_references_tenancy_and_use,
    stream_segments_are_sealed_submitted_and_done_once,
    stream_segments_are_read_in_pages_of_their_own_records,
    table_locks_are_held_by_one_lease_holder_per_dataset,
    table_jobs_are_queued_once_and_record_their_result,
    stream_group_appends_refuse_stale_routing,
    stalled_stream_segments_get_a_new_flush_job,
    query_service_objects_list_update_cap_and_stay_in_their_tenant,
);

#[tokio::test]
async fn sqlite_data_survives_reopening() {
    let backend = sqlite().await;
    let tenant = conformance::tenant("ACME", "prod");
    backend
        .store
        .insert(
            &tenant,
            lakeport_domain::query::ObjectKind::Dataset,
            conformance::dataset_doc("D1", "one", 1),
        )
        .await
        .unwrap();
    let url = format!(
        "sqlite://{}",
        backend.dir.path().join("catalog.db").display()
    );
    drop(backend.store);
    let reopened = SqliteMetastore::open(&url, Durability::Process)
        .await
        .unwrap();
    let docs = reopened
        .get(
            &tenant,
            lakeport_domain::query::ObjectKind::Dataset,
            &["D1".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["name"], "one");
}

/// Lost connections are retried inside the backend: callers never see them.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_reconnects_when_its_connections_are_killed() {
    let Some(backend) = postgres().await else {
        return;
    };
    let tenant = conformance::tenant("ACME", "prod");
    let store = &backend.store as &dyn Metastore;
    let kind = lakeport_domain::query::ObjectKind::Dataset;
    store
        .insert(&tenant, kind, conformance::dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let admin = admin_client(&backend.server_url).await;
    for round in 0..3 {
        let killed = admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&backend.database],
            )
            .await
            .unwrap();
        assert!(killed > 0, "round {round}: no connection to kill");
        let id = format!("D{}", round + 2);
        store
            .insert(&tenant, kind, conformance::dataset_doc(&id, "more", 2))
            .await
            .unwrap();
        assert_eq!(store.get(&tenant, kind, &[id]).await.unwrap().len(), 1);
    }
    store.ping().await.unwrap();
}

/// Connections follow libpq's `sslmode`: plain with `disable`, encrypted with `require`,
/// checked against `sslrootcert` with `verify-ca` (any host name) and `verify-full` (the
/// host name too). Runs when `TEST_POSTGRES_CA` names the PEM file of the CA that signed
/// the test server's certificate, issued for `localhost` only (CI sets it).
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_connections_follow_sslmode() {
    let Some(backend) = postgres().await else {
        return;
    };
    let Ok(ca) = std::env::var("TEST_POSTGRES_CA") else {
        eprintln!("note: TEST_POSTGRES_CA is not set; the PostgreSQL TLS test is skipped");
        return;
    };
    let Some((_, port, user)) = server_address(&backend.server_url) else {
        return;
    };
    let url = |host: &str, query: &str| {
        format!(
            "postgres://{user}@{host}:{port}/{}?{query}",
            backend.database
        )
    };
    let open = |url: String| async move {
        lakeport_metastore::postgres::PostgresMetastore::open(&url, 1).await
    };
    let encrypted = |store: lakeport_metastore::postgres::PostgresMetastore| async move {
        store.connection_encrypted().await.unwrap()
    };
    let plain = open(url("127.0.0.1", "sslmode=disable")).await.unwrap();
    assert!(!encrypted(plain).await);
    let required = open(url("127.0.0.1", "sslmode=require")).await.unwrap();
    assert!(encrypted(required).await);
    let verified = open(url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await
    .unwrap();
    assert!(encrypted(verified).await);
    // The certificate names localhost, not 127.0.0.1: verify-ca accepts, verify-full refuses.
    let chain_only = open(url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    ))
    .await
    .unwrap();
    assert!(encrypted(chain_only).await);
    let wrong_host = open(url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await;
    let Err(err) = wrong_host else {
        panic!("verify-full accepted a certificate for another host");
    };
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // Mozilla's roots do not include the test CA.
    let Err(err) = open(url("localhost", "sslmode=verify-full")).await else {
        panic!("verify-full accepted a certificate of an unknown CA");
    };
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

/// The server address and user of `TEST_DATABASE_URL`, when it names a TCP host.
#[cfg(feature = "postgres")]
fn server_address(server_url: &str) -> Option<(String, u16, String)> {
    let config: tokio_postgres::Config = server_url.parse().ok()?;
    let host = match config.get_hosts().first()? {
        tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[cfg(unix)]
        tokio_postgres::config::Host::Unix(_) => return None,
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    Some((host, port, config.get_user()?.to_owned()))
}

/// A TCP proxy to the PostgreSQL server that, once armed, forwards the next `COMMIT`, waits
/// for the server's answer, and cuts the connection instead of passing that answer on.
#[cfg(feature = "postgres")]
struct CommitCutter {
    port: u16,
    armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cuts: std::sync::Arc<std::sync::atomic::AtomicU32>,
}

#[cfg(feature = "postgres")]
async fn commit_cutter(host: String, port: u16) -> CommitCutter {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cutter = CommitCutter {
        port: listener.local_addr().unwrap().port(),
        armed: Arc::new(AtomicBool::new(false)),
        cuts: Arc::new(AtomicU32::new(0)),
    };
    let (armed, cuts) = (Arc::clone(&cutter.armed), Arc::clone(&cutter.cuts));
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect((host.as_str(), port))
                .await
                .unwrap();
            let (armed, cuts) = (Arc::clone(&armed), Arc::clone(&cuts));
            tokio::spawn(async move {
                let cut = Arc::new(AtomicBool::new(false));
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = async {
                    let mut buffer = vec![0; 1 << 16];
                    loop {
                        let read = client_read.read(&mut buffer).await.unwrap_or(0);
                        if read == 0 {
                            return;
                        }
                        // The simple-query message `COMMIT` (not "READ COMMITTED").
                        const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";
                        let commit = buffer[..read].windows(COMMIT.len()).any(|w| w == COMMIT)
                            && armed.swap(false, Ordering::SeqCst);
                        if commit {
                            cut.store(true, Ordering::SeqCst);
                        }
                        if server_write.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                        if commit {
                            cuts.fetch_add(1, Ordering::SeqCst);
                            // The connection is cut once the server has answered.
                            std::future::pending::<()>().await;
                        }
                    }
                };
                let downstream = async {
                    let mut buffer = vec![0; 1 << 16];
                    loop {
                        let read = server_read.read(&mut buffer).await.unwrap_or(0);
                        // After the COMMIT went out, what the server sends is its answer:
                        // the transaction committed, and the client never learns it.
                        if read == 0 || cut.load(Ordering::SeqCst) {
                            return;
                        }
                        if client_write.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                };
                tokio::select! {
                    () = upstream => {}
                    () = downstream => {}
                }
            });
        }
    });
    cutter
}

/// A connection lost while COMMIT was in flight: the backend asks the server whether the
/// transaction committed instead of failing or applying the change twice.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_confirms_a_commit_whose_answer_was_lost() {
    use std::sync::atomic::Ordering;
    let Some(backend) = postgres().await else {
        return;
    };
    let Some((host, port, user)) = server_address(&backend.server_url) else {
        return;
    };
    let cutter = commit_cutter(host, port).await;
    // The proxy reads the protocol, so this connection stays in plain text.
    let proxied = format!(
        "postgres://{user}@127.0.0.1:{}/{}?sslmode=disable",
        cutter.port, backend.database
    );
    let store = lakeport_metastore::postgres::PostgresMetastore::open(&proxied, 2)
        .await
        .unwrap();
    let store = &store as &dyn Metastore;
    let tenant = conformance::tenant("ACME", "prod");
    let kind = lakeport_domain::query::ObjectKind::Dataset;
    store
        .insert(&tenant, kind, conformance::dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    cutter.armed.store(true, Ordering::SeqCst);
    store
        .insert(&tenant, kind, conformance::dataset_doc("D2", "two", 2))
        .await
        .unwrap();
    assert_eq!(cutter.cuts.load(Ordering::SeqCst), 1);
    let err = store
        .insert(&tenant, kind, conformance::dataset_doc("D2", "two", 2))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            lakeport_metastore::MetastoreError::AlreadyExists { .. }
        ),
        "{err}"
    );
}

/// A transaction PostgreSQL picks as a deadlock victim runs again; an update takes its
/// locks before its change runs, so the change still applies exactly once.
#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_retries_a_deadlock_victim() {
    let Some(backend) = postgres().await else {
        return;
    };
    let tenant = conformance::tenant("ACME", "prod");
    // PostgreSQL checks a waiting session for deadlocks once, `deadlock_timeout` after it
    // began to wait, and aborts the session that checks. The update's sessions check after
    // 5 s and the other session never does, so the update is the victim however slowly a
    // loaded machine runs the steps in between (needs a superuser, as CI's URL is).
    let database_url = with_database(&backend.server_url, &backend.database);
    admin_client(&backend.server_url)
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET deadlock_timeout = '5s'",
            backend.database
        ))
        .await
        .unwrap();
    let store = lakeport_metastore::postgres::PostgresMetastore::open(&database_url, 2)
        .await
        .unwrap();
    let (dataset, batch) = (
        lakeport_domain::query::ObjectKind::Dataset,
        lakeport_domain::query::ObjectKind::Batch,
    );
    store
        .insert(&tenant, dataset, conformance::dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let mut doc = conformance::dataset_doc("B1", "batch", 2);
    doc.insert(
        "relatedObjects".into(),
        serde_json::json!([{"type": "dataSet", "id": "D1"}]),
    );
    doc.insert("count".into(), serde_json::json!(0));
    store.insert(&tenant, batch, doc).await.unwrap();

    // Another session holds the dataset; the update locks the batch, then waits for it.
    let mut other = admin_client(&database_url).await;
    let other = other.transaction().await.unwrap();
    other
        .execute("SET LOCAL deadlock_timeout = '10min'", &[])
        .await
        .unwrap();
    other
        .execute("SELECT 1 FROM datasets WHERE id = 'D1' FOR UPDATE", &[])
        .await
        .unwrap();
    let updating = tokio::spawn({
        let tenant = tenant.clone();
        async move {
            store
                .update(
                    &tenant,
                    batch,
                    "B1",
                    lakeport_metastore::UpdateOptions::default(),
                    Box::new(|doc| {
                        let mut next = doc.clone();
                        let count = next["count"].as_i64().unwrap();
                        next.insert("count".into(), serde_json::json!(count + 1));
                        Ok(next)
                    }),
                )
                .await
        }
    });
    // Wait (no fixed sleep) until the update's session is blocked on a lock.
    let observer = admin_client(&database_url).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = observer
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the update never waited for the dataset's lock"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Now the other session wants the batch: a deadlock, which PostgreSQL breaks by failing
    // the update's transaction (it has waited longest).
    other
        .execute("SELECT 1 FROM batches WHERE id = 'B1' FOR UPDATE", &[])
        .await
        .unwrap();
    other.commit().await.unwrap();
    let updated = updating.await.unwrap().unwrap();
    assert_eq!(updated["count"], 1);
    let stored = &backend
        .store
        .get(&tenant, batch, &["B1".to_owned()])
        .await
        .unwrap()[0];
    assert_eq!(stored["count"], 1);
}
