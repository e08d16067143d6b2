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

macro_rules! conformance_for_sqlite {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            /// The tests this backend runs, compared with the other backends' lists.
            #[cfg_attr(
                not(feature = "postgres"),
                expect(dead_code, reason = "only PostgreSQL builds compare the lists")
            )]
            pub const TESTS: &[&str] = &[$(stringify!($name)),*];
            $(
                #[tokio::test]
                async fn $name() {
                    let backend = super::sqlite().await;
                    super::conformance::$name(&backend.store as &dyn super::Metastore).await;
                }
            )*
        }
    };
}

conformance_for_sqlite!(
    datasets_round_trip_per_tenant,
    duplicate_ids_and_external_ids_are_refused,
    get_returns_existing_ids_in_requested_order,
    list_filters_sort_and_page,
    list_filters_by_tags_properties_and_relations,
    updates_check_versions_and_record_batch_status_on_dataset,
    deleting_a_dataset_removes_files_and_marks_batches_deleted,
    import_batches_check_dataset_external_id_and_replay,
    registry_resources_round_trip_with_unique_titles,
    expired_diagnostics_are_found_by_completed_time_and_cleared,
    uploads_are_checked_against_the_batch_and_its_limits,
    jobs_are_leased_retried_and_promoted_once,
    stale_loading_batches_are_abandoned,
    concurrent_writes_behave_as_if_serialized,
);

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

macro_rules! conformance_for_postgres {
    ($($name:ident),* $(,)?) => {
        #[cfg(feature = "postgres")]
        mod postgres_backend {
            pub const TESTS: &[&str] = &[$(stringify!($name)),*];
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

conformance_for_postgres!(
    datasets_round_trip_per_tenant,
    duplicate_ids_and_external_ids_are_refused,
    get_returns_existing_ids_in_requested_order,
    list_filters_sort_and_page,
    list_filters_by_tags_properties_and_relations,
    updates_check_versions_and_record_batch_status_on_dataset,
    deleting_a_dataset_removes_files_and_marks_batches_deleted,
    import_batches_check_dataset_external_id_and_replay,
    registry_resources_round_trip_with_unique_titles,
    expired_diagnostics_are_found_by_completed_time_and_cleared,
    uploads_are_checked_against_the_batch_and_its_limits,
    jobs_are_leased_retried_and_promoted_once,
    stale_loading_batches_are_abandoned,
    concurrent_writes_behave_as_if_serialized,
);

#[cfg(feature = "postgres")]
#[test]
fn every_backend_runs_the_whole_suite() {
    assert_eq!(postgres_backend::TESTS, sqlite_backend::TESTS);
}

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
