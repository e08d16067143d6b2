//! Behaviour every metastore backend must show. Each function gets a fresh, empty store.

use lakeport_domain::catalog::import::NewImportBatch;
use lakeport_domain::catalog::{Actor, Mutation, WriteContext, apply_mutation, as_object};
use lakeport_domain::query::{ListQuery, ObjectKind, PageLimits};
use lakeport_domain::tenant::Tenant;
use lakeport_domain::{Doc, ErrorKind, HasKind};
use lakeport_metastore::{Metastore, MetastoreError, UpdateOptions};
use serde_json::json;

pub fn tenant(org: &str, sandbox: &str) -> Tenant {
    Tenant::parse(&format!("{org}@AdobeOrg"), sandbox).unwrap()
}

fn actor() -> Actor {
    Actor {
        client_id: "client".into(),
        user: "client@AdobeID".into(),
    }
}

pub fn dataset_doc(id: &str, name: &str, created: i64) -> Doc {
    as_object(json!({"id": id, "name": name, "created": created, "updated": created, "version": "1.0.0", "tags": {}}))
        .unwrap()
}

fn batch_doc(id: &str, dataset: &str, status: &str, created: i64) -> Doc {
    as_object(json!({
        "id": id, "status": status, "created": created, "updated": created, "version": "1.0.0",
        "externalId": id, "relatedObjects": [{"type": "dataSet", "id": dataset}], "tags": {}
    }))
    .unwrap()
}

fn query(kind: ObjectKind, pairs: &[(&str, &str)]) -> ListQuery {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    ListQuery::parse(kind, &pairs, PageLimits::default()).unwrap()
}

async fn ids(
    store: &dyn Metastore,
    tenant: &Tenant,
    kind: ObjectKind,
    pairs: &[(&str, &str)],
) -> Vec<String> {
    store
        .list(tenant, kind, &query(kind, pairs))
        .await
        .unwrap()
        .iter()
        .map(|doc| doc["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn datasets_round_trip_per_tenant(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    let acme_dev = tenant("ACME", "dev");
    let other = tenant("OTHER", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let found = store
        .get(&acme, ObjectKind::Dataset, &["D1".into()])
        .await
        .unwrap();
    assert_eq!(found, vec![dataset_doc("D1", "one", 1)]);
    for stranger in [&acme_dev, &other] {
        assert!(
            store
                .get(stranger, ObjectKind::Dataset, &["D1".into()])
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            ids(store, stranger, ObjectKind::Dataset, &[])
                .await
                .is_empty()
        );
        let err = store
            .update(
                stranger,
                ObjectKind::Dataset,
                "D1",
                UpdateOptions::default(),
                Box::new(|d| Ok(d.clone())),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            !store
                .delete(stranger, ObjectKind::Dataset, "D1", &actor())
                .await
                .unwrap()
        );
    }
    // The same id may exist in another tenant.
    store
        .insert(&other, ObjectKind::Dataset, dataset_doc("D1", "theirs", 1))
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&acme, ObjectKind::Dataset, &["D1".into()])
            .await
            .unwrap()[0]["name"],
        "one"
    );
}

pub async fn duplicate_ids_and_external_ids_are_refused(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let err = store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "again", 2))
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::AlreadyExists { .. }), "{err}");
    store
        .insert(
            &acme,
            ObjectKind::Batch,
            batch_doc("B1", "D1", "loading", 1),
        )
        .await
        .unwrap();
    let mut clash = batch_doc("B2", "D1", "loading", 2);
    clash.insert("externalId".into(), json!("B1"));
    let err = store
        .insert(&acme, ObjectKind::Batch, clash)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetastoreError::DuplicateExternalId { .. }),
        "{err}"
    );
}

pub async fn get_returns_existing_ids_in_requested_order(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    for (id, created) in [("A", 1), ("B", 2), ("C", 3)] {
        store
            .insert(&acme, ObjectKind::Dataset, dataset_doc(id, id, created))
            .await
            .unwrap();
    }
    let docs = store
        .get(
            &acme,
            ObjectKind::Dataset,
            &["C".into(), "X".into(), "A".into(), "C".into()],
        )
        .await
        .unwrap();
    let found: Vec<_> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(found, ["C", "A"]);
}

pub async fn list_filters_sort_and_page(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    let names = ["alpha", "beta", "Alpine", "gamma", "al*star"];
    for (index, name) in names.iter().enumerate() {
        let mut doc = dataset_doc(&format!("D{index}"), name, 10 + index as i64);
        doc.insert("rank".into(), json!(5 - index as i64));
        doc.insert("enableErrorDiagnostics".into(), json!(index % 2 == 0));
        store.insert(&acme, ObjectKind::Dataset, doc).await.unwrap();
    }
    let kind = ObjectKind::Dataset;
    assert_eq!(
        ids(store, &acme, kind, &[]).await,
        ["D0", "D1", "D2", "D3", "D4"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("limit", "2"), ("start", "2")]).await,
        ["D2", "D3"]
    );
    assert_eq!(
        ids(
            store,
            &acme,
            kind,
            &[("orderBy", "desc:created"), ("limit", "2")]
        )
        .await,
        ["D4", "D3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("orderBy", "rank")]).await,
        ["D4", "D3", "D2", "D1", "D0"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("name", "beta,gamma")]).await,
        ["D1", "D3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("name", "!beta,gamma")]).await,
        ["D0", "D2", "D4"]
    );
    // `*` is a case-sensitive wildcard on names and `**` a literal asterisk.
    assert_eq!(
        ids(store, &acme, kind, &[("name", "al*")]).await,
        ["D0", "D4"]
    );
    assert_eq!(ids(store, &acme, kind, &[("name", "al***")]).await, ["D4"]);
    assert_eq!(ids(store, &acme, kind, &[("rank", "3")]).await, ["D2"]);
    assert_eq!(
        ids(store, &acme, kind, &[("enableErrorDiagnostics", "true")]).await,
        ["D0", "D2", "D4"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("property", "rank>=4")]).await,
        ["D0", "D1"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("property", "rank<2")]).await,
        ["D4"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("property", "name~^[ab]")]).await,
        ["D0", "D1", "D4"]
    );
    assert_eq!(
        ids(
            store,
            &acme,
            kind,
            &[("property", "name!=beta"), ("property", "rank>2")]
        )
        .await,
        ["D0", "D2"]
    );
    assert_eq!(
        ids(
            store,
            &acme,
            kind,
            &[("createdAfter", "11"), ("createdBefore", "14")]
        )
        .await,
        ["D2", "D3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("property", "missing")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(
            store,
            &acme,
            kind,
            &[("property", "!missing"), ("limit", "1")]
        )
        .await,
        ["D0"]
    );
    let count = store
        .count(
            &acme,
            kind,
            &query(kind, &[("name", "al*"), ("limit", "1")]),
        )
        .await
        .unwrap();
    assert_eq!(count, 2);
}

pub async fn list_filters_by_tags_properties_and_relations(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    let kind = ObjectKind::Batch;
    let statuses = ["loading", "success", "failed", "success"];
    for (index, status) in statuses.iter().enumerate() {
        let dataset = if index < 2 { "DA" } else { "DB" };
        let mut doc = batch_doc(&format!("B{index}"), dataset, status, 100 + index as i64);
        doc.insert(
            "tags".into(),
            json!({"team": [format!("team-{index}")], "env": ["prod"]}),
        );
        doc.insert(
            "availableDates".into(),
            json!({"startDate": 1000 + index as i64}),
        );
        if index == 3 {
            doc.insert("version".into(), json!("1.0.10"));
            doc["relatedObjects"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "connection", "id": "C9"}));
        }
        store.insert(&acme, kind, doc).await.unwrap();
    }
    assert_eq!(
        ids(store, &acme, kind, &[("dataSet", "DB")]).await,
        ["B2", "B3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("dataSet", "!DB")]).await,
        ["B0", "B1"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("connection", "C9")]).await,
        ["B3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("status", "active")]).await,
        ["B1", "B3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("status", "failure,loading")]).await,
        ["B0", "B2"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("tags", "team:team-2")]).await,
        ["B2"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("tags", "team:team-*,env:prod")]).await,
        ["B0", "B1", "B2", "B3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("tags", "team:*,env:dev")]).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids(store, &acme, kind, &[("startAfter", "1001")]).await,
        ["B2", "B3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("property", "version>1.0.9")]).await,
        ["B3"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("externalId", "B1")]).await,
        ["B1"]
    );
    assert_eq!(
        ids(
            store,
            &acme,
            kind,
            &[("orderBy", "desc:status"), ("limit", "2")]
        )
        .await,
        ["B1", "B3"]
    );
}

pub async fn updates_check_versions_and_record_batch_status_on_dataset(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    store
        .insert(
            &acme,
            ObjectKind::Batch,
            batch_doc("B1", "D1", "loading", 2),
        )
        .await
        .unwrap();
    let dataset = &store
        .get(&acme, ObjectKind::Dataset, &["D1".into()])
        .await
        .unwrap()[0];
    assert_eq!(
        (
            dataset["lastBatchId"].as_str(),
            dataset["lastBatchStatus"].as_str()
        ),
        (Some("B1"), Some("loading"))
    );

    let stale = UpdateOptions {
        if_match: Some("1.0.7".into()),
    };
    let err = store
        .update(
            &acme,
            ObjectKind::Batch,
            "B1",
            stale,
            Box::new(|d| Ok(d.clone())),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PreconditionFailed);

    let current = UpdateOptions {
        if_match: Some("\"1.0.0\"".into()),
    };
    let change = Box::new(|doc: &Doc| {
        let tenant = tenant("ACME", "prod");
        let actor = actor();
        let ctx = WriteContext {
            tenant: &tenant,
            actor: &actor,
            now: 50,
        };
        apply_mutation(
            ObjectKind::Batch,
            doc,
            Mutation::MergeTopLevel(
                as_object(json!({"status": "active", "recordCount": 7})).unwrap(),
            ),
            &ctx,
        )
    });
    let updated = store
        .update(&acme, ObjectKind::Batch, "B1", current, change)
        .await
        .unwrap();
    assert_eq!(
        (updated["status"].as_str(), updated["version"].as_str()),
        (Some("success"), Some("1.0.1"))
    );
    let stored = &store
        .get(&acme, ObjectKind::Batch, &["B1".into()])
        .await
        .unwrap()[0];
    assert_eq!(stored, &updated);
    assert_eq!(
        ids(store, &acme, ObjectKind::Batch, &[("status", "success")]).await,
        ["B1"]
    );
    let dataset = &store
        .get(&acme, ObjectKind::Dataset, &["D1".into()])
        .await
        .unwrap()[0];
    assert_eq!(dataset["lastBatchStatus"], "success");
    assert_eq!(dataset["lastSuccessfulBatch"], "B1");

    let err = store
        .update(
            &acme,
            ObjectKind::Batch,
            "B1",
            UpdateOptions::default(),
            Box::new(|doc| {
                let tenant = tenant("ACME", "prod");
                let actor = actor();
                let ctx = WriteContext {
                    tenant: &tenant,
                    actor: &actor,
                    now: 60,
                };
                apply_mutation(
                    ObjectKind::Batch,
                    doc,
                    Mutation::MergeTopLevel(as_object(json!({"status": "bogus"})).unwrap()),
                    &ctx,
                )
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        store
            .get(&acme, ObjectKind::Batch, &["B1".into()])
            .await
            .unwrap()[0]["status"],
        "success"
    );
}

pub async fn deleting_a_dataset_removes_files_and_marks_batches_deleted(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    store
        .insert(
            &acme,
            ObjectKind::Batch,
            batch_doc("B1", "D1", "success", 2),
        )
        .await
        .unwrap();
    let file = as_object(json!({"id": "B1-1", "batchId": "B1", "dataSetId": "D1", "created": 3, "updated": 3, "version": "1.0.0"})).unwrap();
    store
        .insert(&acme, ObjectKind::DatasetFile, file)
        .await
        .unwrap();
    assert_eq!(
        ids(
            store,
            &acme,
            ObjectKind::DatasetFile,
            &[("dataSetId", "D1")]
        )
        .await,
        ["B1-1"]
    );
    assert!(
        store
            .delete(&acme, ObjectKind::Dataset, "D1", &actor())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete(&acme, ObjectKind::Dataset, "D1", &actor())
            .await
            .unwrap()
    );
    assert!(
        store
            .get(&acme, ObjectKind::Dataset, &["D1".into()])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        ids(store, &acme, ObjectKind::DatasetFile, &[])
            .await
            .is_empty()
    );
    let batch = &store
        .get(&acme, ObjectKind::Batch, &["B1".into()])
        .await
        .unwrap()[0];
    assert_eq!(
        (batch["status"].as_str(), batch["version"].as_str()),
        (Some("deleted"), Some("1.0.1"))
    );
}

pub async fn import_batches_check_dataset_external_id_and_replay(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    let request = |body: serde_json::Value| NewImportBatch::parse(body).unwrap();
    let err = store
        .create_import_batch(
            &acme,
            &request(json!({"datasetId": "D1"})),
            "B1",
            &actor(),
            5,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetastoreError::UnknownDataset { .. }),
        "{err}"
    );
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D2", "two", 1))
        .await
        .unwrap();
    let created = store
        .create_import_batch(
            &acme,
            &request(json!({"datasetId": "D1", "externalId": "ext-1"})),
            "B1",
            &actor(),
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        (created["status"].as_str(), created["externalId"].as_str()),
        (Some("loading"), Some("ext-1"))
    );
    assert_eq!(
        store
            .get(&acme, ObjectKind::Batch, &["B1".into()])
            .await
            .unwrap()[0],
        created
    );
    let err = store
        .create_import_batch(
            &acme,
            &request(json!({"datasetId": "D1", "externalId": "ext-1"})),
            "B2",
            &actor(),
            6,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetastoreError::DuplicateExternalId { .. }),
        "{err}"
    );
    // Another sandbox may reuse the externalId.
    store
        .insert(
            &tenant("ACME", "dev"),
            ObjectKind::Dataset,
            dataset_doc("D1", "one", 1),
        )
        .await
        .unwrap();
    store
        .create_import_batch(
            &tenant("ACME", "dev"),
            &request(json!({"datasetId": "D1", "externalId": "ext-1"})),
            "B2",
            &actor(),
            6,
        )
        .await
        .unwrap();

    let replay = |refs: serde_json::Value| request(json!({"datasetId": "D1", "replay": refs}));
    let err = store
        .create_import_batch(
            &acme,
            &replay(json!({"predecessors": ["B1"]})),
            "B3",
            &actor(),
            7,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "replay predecessor B1 is loading; only a successful batch can be replayed"
    );
    store
        .insert(
            &acme,
            ObjectKind::Batch,
            batch_doc("OK", "D1", "success", 3),
        )
        .await
        .unwrap();
    store
        .insert(
            &acme,
            ObjectKind::Batch,
            batch_doc("OTHER", "D2", "success", 3),
        )
        .await
        .unwrap();
    let err = store
        .create_import_batch(
            &acme,
            &replay(json!({"predecessors": ["$OTHER"]})),
            "B3",
            &actor(),
            7,
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "replay predecessor OTHER belongs to dataset D2, not D1"
    );
    let err = store
        .create_import_batch(
            &acme,
            &replay(json!({"predecessors": ["NOPE"]})),
            "B3",
            &actor(),
            7,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let created = store
        .create_import_batch(&acme, &replay(json!({"predecessors": ["${OK}"], "predecessorsByExternalId": ["OK"], "reason": "replace"})), "B3", &actor(), 7)
        .await
        .unwrap();
    assert_eq!(
        created["replay"],
        json!({"predecessors": ["OK"], "predecessorListingType": "IMMEDIATE", "predecessorsByExternalId": ["OK"], "reason": "replace"})
    );
    // Nothing happens to predecessors until the replay batch succeeds.
    assert_eq!(
        store
            .get(&acme, ObjectKind::Batch, &["OK".into()])
            .await
            .unwrap()[0]["status"],
        "success"
    );
}

fn resource(kind: &str, hex: &str, title: &str, version: &str) -> Doc {
    as_object(json!({
        "$id": format!("https://ns.adobe.com/acme/{kind}/{hex}"), "meta:altId": format!("_acme.{kind}.{hex}"),
        "meta:resourceType": kind, "title": title, "version": version, "type": "object"
    }))
    .unwrap()
}

pub async fn registry_resources_round_trip_with_unique_titles(store: &dyn Metastore) {
    use lakeport_domain::xdm::registry::ResourceKind;
    let acme = tenant("ACME", "prod");
    let other = tenant("OTHER", "prod");
    store
        .insert_resource(
            &acme,
            ResourceKind::Schema,
            resource("schemas", "a1", "Members", "1.0"),
        )
        .await
        .unwrap();
    store
        .insert_resource(
            &acme,
            ResourceKind::FieldGroup,
            resource("mixins", "b2", "Members", "1.0"),
        )
        .await
        .unwrap();
    let err = store
        .insert_resource(
            &acme,
            ResourceKind::Schema,
            resource("schemas", "c3", "Members", "1.0"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetastoreError::DuplicateTitle { .. }),
        "{err}"
    );
    // Titles and ids are per tenant.
    store
        .insert_resource(
            &other,
            ResourceKind::Schema,
            resource("schemas", "a1", "Members", "1.0"),
        )
        .await
        .unwrap();

    let by_id = store
        .get_resource(&acme, "https://ns.adobe.com/acme/schemas/a1")
        .await
        .unwrap()
        .unwrap();
    let by_alt = store
        .get_resource(&acme, "_acme.schemas.a1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id, by_alt);
    assert!(
        store
            .get_resource(&tenant("ACME", "dev"), "_acme.schemas.a1")
            .await
            .unwrap()
            .is_none()
    );
    let schemas = store
        .list_resources(&acme, Some(ResourceKind::Schema))
        .await
        .unwrap();
    assert_eq!(schemas.len(), 1);
    assert_eq!(store.list_resources(&acme, None).await.unwrap().len(), 2);

    let id = "https://ns.adobe.com/acme/schemas/a1";
    let replaced = store
        .replace_resource(
            &acme,
            id,
            "1.0",
            resource("schemas", "a1", "Members v2", "1.1"),
        )
        .await
        .unwrap();
    assert_eq!(replaced["title"], "Members v2");
    let err = store
        .replace_resource(&acme, id, "1.0", resource("schemas", "a1", "Stale", "1.1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetastoreError::ConcurrentChange { .. }),
        "{err}"
    );
    let err = store
        .replace_resource(
            &acme,
            "https://ns.adobe.com/acme/schemas/zz",
            "1.0",
            resource("schemas", "zz", "x", "1.1"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        store.get_resource(&acme, id).await.unwrap().unwrap()["title"],
        "Members v2"
    );

    assert!(
        !store
            .delete_resource(&other, "https://ns.adobe.com/acme/mixins/b2")
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_resource(&acme, "_acme.mixins.b2")
            .await
            .unwrap()
    );
    assert!(
        store
            .get_resource(&acme, "_acme.mixins.b2")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.get_resource(&other, id).await.unwrap().unwrap()["title"],
        "Members"
    );
}
