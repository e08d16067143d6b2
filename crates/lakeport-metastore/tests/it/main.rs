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
