//! Behaviour every metastore backend must show. Each function gets a fresh, empty store.

use lakeport_domain::catalog::import::NewImportBatch;
use lakeport_domain::catalog::{Actor, Mutation, WriteContext, apply_mutation, as_object};
use lakeport_domain::ids::{BatchId, DatasetId, QsObjectId, ResourceId};
use lakeport_domain::query::{ListQuery, ObjectKind, PageLimits};
use lakeport_domain::queryservice::{QsKind, QsListing};
use lakeport_domain::status::BatchAction;
use lakeport_domain::tenant::Tenant;
use lakeport_domain::{Doc, ErrorKind, HasKind};
use lakeport_metastore::queries::{QsCap, QsChange};
use lakeport_metastore::{Metastore, MetastoreError, Promotion, UpdateOptions};
use serde_json::json;
use std::sync::Arc;

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
    // A regex one backend's dialect refuses is the client's input, never a server fault.
    let unicode = query(kind, &[("property", "name~\\p{L}")]);
    if let Err(err) = store.list(&acme, kind, &unicode).await {
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}

/// `property=` with dotted paths into nested objects (issue 11: aepp's
/// `SchemaManager.getDatasets` filters `schemaRef.id==…`); every backend also agrees with
/// the in-memory evaluation of the same filters.
pub async fn list_filters_by_nested_property_paths(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    let kind = ObjectKind::Dataset;
    let s1 = "https://ns.adobe.com/acme/schemas/s1";
    let nested = [
        json!({"schemaRef": {"id": s1, "contentType": "application/vnd.adobe.xed+json;version=1"},
               "stats": {"rows": 5, "label": "b", "flag": true, "version": "1.0.10"}}),
        json!({"schemaRef": {"id": "https://ns.adobe.com/acme/schemas/s2"},
               "stats": {"rows": 50, "label": "a", "flag": false}}),
        json!({"stats": "scalar", "list": ["x"]}),
        json!({"schemaRef": {"id": 7}, "list": {"0": "x"},
               "a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": "deep"}}}}}}}}),
        json!({"schemaRef": {"id": null}, "stats": {"rows": "5", "label": "c%_*"}}),
    ];
    let mut docs = Vec::new();
    for (index, extra) in nested.iter().enumerate() {
        let mut doc = dataset_doc(
            &format!("D{index}"),
            &format!("n{index}"),
            10 + index as i64,
        );
        doc.extend(extra.as_object().unwrap().clone());
        store.insert(&acme, kind, doc.clone()).await.unwrap();
        docs.push(doc);
    }
    let cases: &[(&str, &[&str])] = &[
        // aepp: cat.getDataSets(property=f"schemaRef.id=={schema $id}")
        (&format!("schemaRef.id=={s1}"), &["D0"]),
        (
            "schemaRef.id!=https://ns.adobe.com/acme/schemas/s1",
            &["D1", "D2", "D3", "D4"],
        ),
        ("schemaRef.id==7", &["D3"]),
        ("schemaRef.id~/schemas/s[0-9]$", &["D0", "D1"]),
        // A JSON null is present (and equals nothing).
        ("schemaRef.id", &["D0", "D1", "D3", "D4"]),
        ("!schemaRef.id", &["D2"]),
        ("!schemaRef.contentType", &["D1", "D2", "D3", "D4"]),
        ("stats.rows>5", &["D1"]),
        // A string compares as text with the literal: "5" is >= "5" and < "50".
        ("stats.rows>=5", &["D0", "D1", "D4"]),
        ("stats.rows<50", &["D0", "D4"]),
        ("stats.rows<=50", &["D0", "D1", "D4"]),
        ("stats.rows==5", &["D0", "D4"]),
        ("stats.label<b", &["D1"]),
        ("stats.label==c%_*", &["D4"]),
        ("stats.flag==true", &["D0"]),
        ("stats.flag==false", &["D1"]),
        // No descent through scalars or into arrays; object keys that look like indexes.
        ("stats.rows.more", &[]),
        ("list.0==x", &["D3"]),
        ("list.0", &["D3"]),
        ("a.b.c.d.e.f.g.h==deep", &["D3"]),
        ("a.b.c.d.e.f.g", &["D3"]),
        ("missing.path", &[]),
        ("missing!=x", &["D0", "D1", "D2", "D3", "D4"]),
        ("missing.path!=x", &["D0", "D1", "D2", "D3", "D4"]),
        ("!missing.path", &["D0", "D1", "D2", "D3", "D4"]),
    ];
    for (expression, expected) in cases {
        let found = ids(store, &acme, kind, &[("property", expression)]).await;
        assert_eq!(found, *expected, "property={expression}");
        let filters = query(kind, &[("property", expression)]).filters;
        let in_memory: Vec<String> = docs
            .iter()
            .filter(|doc| filters.iter().all(|filter| filter.matches(doc)))
            .map(|doc| doc["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(in_memory, found, "in memory, property={expression}");
    }
    // Nested filters combine with the others and count like them.
    let combined = query(
        kind,
        &[
            ("property", "schemaRef.id"),
            ("property", "stats.rows>=5"),
            ("name", "n1"),
        ],
    );
    assert_eq!(store.count(&acme, kind, &combined).await.unwrap(), 1);
    // Another tenant's datasets with the same schema are not found.
    let other = tenant("OTHER", "prod");
    assert!(
        ids(
            store,
            &other,
            kind,
            &[("property", &format!("schemaRef.id=={s1}"))]
        )
        .await
        .is_empty()
    );
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
            // A related batch is not the batch itself: `batch=B0` must not find B3.
            doc["relatedObjects"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "batch", "id": "B0"}));
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
    // `batch=` matches the batch's own id (spec §2.2.3), as Adobe's tutorial polls it.
    assert_eq!(ids(store, &acme, kind, &[("batch", "B0")]).await, ["B0"]);
    assert_eq!(
        ids(store, &acme, kind, &[("batch", "B2,B0,nope")]).await,
        ["B0", "B2"]
    );
    assert_eq!(
        ids(store, &acme, kind, &[("batch", "!B0,B1")]).await,
        ["B2", "B3"]
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
            &BatchId::from("B1"),
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
            &BatchId::from("B1"),
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
            &BatchId::from("B2"),
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
            &BatchId::from("B2"),
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
            &BatchId::from("B3"),
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
            &BatchId::from("B3"),
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
            &BatchId::from("B3"),
            &actor(),
            7,
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let created = store
        .create_import_batch(&acme, &replay(json!({"predecessors": ["${OK}"], "predecessorsByExternalId": ["OK"], "reason": "replace"})), &BatchId::from("B3"), &actor(), 7)
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
        .get_resource(
            &acme,
            &ResourceId::from("https://ns.adobe.com/acme/schemas/a1"),
        )
        .await
        .unwrap()
        .unwrap();
    let by_alt = store
        .get_resource(&acme, &ResourceId::from("_acme.schemas.a1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id, by_alt);
    assert!(
        store
            .get_resource(
                &tenant("ACME", "dev"),
                &ResourceId::from("_acme.schemas.a1")
            )
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

    let id = &ResourceId::from("https://ns.adobe.com/acme/schemas/a1");
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
            &ResourceId::from("https://ns.adobe.com/acme/schemas/zz"),
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
            .delete_resource(
                &other,
                &ResourceId::from("https://ns.adobe.com/acme/mixins/b2")
            )
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_resource(&acme, &ResourceId::from("_acme.mixins.b2"))
            .await
            .unwrap()
    );
    assert!(
        store
            .get_resource(&acme, &ResourceId::from("_acme.mixins.b2"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.get_resource(&other, id).await.unwrap().unwrap()["title"],
        "Members"
    );
}

/// A chain `schema s1 -> field group f1 -> data type d1` next to 50 unrelated field groups:
/// the text search finds exactly the tenant's referrers, and the neighbourhood loaders read
/// the chain (by `$id` or `meta:altId`) and never the unrelated resources.
pub async fn registry_neighbourhoods_read_only_what_they_touch(store: &dyn Metastore) {
    use lakeport_domain::xdm::registry::ResourceKind;
    use lakeport_metastore::references::{around, referenced};
    let acme = tenant("ACME", "prod");
    let other = tenant("OTHER", "prod");
    let with_ref = |kind: &str, hex: &str, target: &str| {
        let mut doc = resource(kind, hex, &format!("{kind} {hex}"), "1.0");
        doc.insert(
            "properties".into(),
            json!({"_acme": {"type": "object", "properties": {"x": {"$ref": target}}}}),
        );
        doc
    };
    let d1 = resource("datatypes", "d1", "d1", "1.0");
    let f1 = with_ref("mixins", "f1", "_acme.datatypes.d1");
    let s1 = with_ref("schemas", "s1", "https://ns.adobe.com/acme/mixins/f1");
    for (kind, doc) in [
        (ResourceKind::DataType, d1.clone()),
        (ResourceKind::FieldGroup, f1),
        (ResourceKind::Schema, s1),
    ] {
        store
            .insert_resource(&acme, kind, doc.clone())
            .await
            .unwrap();
        // The same ids in another tenant are never found.
        store.insert_resource(&other, kind, doc).await.unwrap();
    }
    for n in 0..50 {
        store
            .insert_resource(
                &acme,
                ResourceKind::FieldGroup,
                resource("mixins", &format!("u{n}"), &format!("unrelated {n}"), "1.0"),
            )
            .await
            .unwrap();
    }
    let found = store
        .resources_containing(&acme, "_acme.datatypes.d1")
        .await
        .unwrap();
    let ids: Vec<&str> = found.iter().map(|d| d["$id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "https://ns.adobe.com/acme/datatypes/d1",
            "https://ns.adobe.com/acme/mixins/f1"
        ]
    );

    let chain = referenced(
        store,
        &acme,
        vec!["https://ns.adobe.com/acme/schemas/s1".into()],
    )
    .await
    .unwrap();
    assert_eq!(chain.docs().len(), 3);
    assert_eq!(
        chain
            .find("https://ns.adobe.com/acme/datatypes/d1")
            .unwrap(),
        d1
    );
    assert!(chain.find("_acme.mixins.f1").is_some());
    assert!(chain.find("https://ns.adobe.com/acme/mixins/u1").is_none());

    // What reads d1 (f1, and s1 through f1), and what those read.
    let neighbourhood = around(store, &acme, &d1, Vec::new()).await.unwrap();
    let mut ids: Vec<&str> = neighbourhood
        .docs()
        .iter()
        .map(|d| d["$id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "https://ns.adobe.com/acme/datatypes/d1",
            "https://ns.adobe.com/acme/mixins/f1",
            "https://ns.adobe.com/acme/schemas/s1"
        ]
    );
}

/// Creates, completes and processes a batch of dataset `D1`, committing `completed` and
/// (optionally) a diagnostics location.
async fn process_batch(
    store: &dyn Metastore,
    tenant: &Tenant,
    batch_id: &str,
    completed: i64,
    diagnostics: Option<&str>,
) {
    let request = NewImportBatch::parse(json!({"datasetId": "D1"})).unwrap();
    store
        .create_import_batch(tenant, &request, &BatchId::from(batch_id), &actor(), 1)
        .await
        .unwrap();
    store
        .signal_batch(
            tenant,
            &BatchId::from(batch_id),
            BatchAction::Complete,
            &actor(),
            2,
            0,
        )
        .await
        .unwrap();
    let job = store.claim_job("worker", 60_000, 3).await.unwrap().unwrap();
    assert_eq!(job.batch_id, batch_id);
    store.begin_processing(&job, 3).await.unwrap().unwrap();
    let promotion = Promotion {
        batch_fields: as_object(json!({"status": "failed", "completed": completed})).unwrap(),
        files: Vec::new(),
        diagnostics_location: diagnostics.map(str::to_owned),
        diagnostics_files: diagnostics
            .map(|_| {
                vec![lakeport_metastore::DiagnosticsFile {
                    path: "failed/part-00001.json".to_owned(),
                    size: 42,
                }]
            })
            .unwrap_or_default(),
        cleanup_delay_ms: 0,
    };
    store
        .complete_promotion(&job, promotion, completed)
        .await
        .unwrap();
}

pub async fn expired_diagnostics_are_found_by_completed_time_and_cleared(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    let other = tenant("OTHER", "dev");
    for owner in [&acme, &other] {
        store
            .insert(owner, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
            .await
            .unwrap();
    }
    process_batch(store, &acme, "B1", 1000, Some("lake/acme/B1/attempt-1")).await;
    process_batch(store, &other, "B2", 5000, Some("lake/other/B2/attempt-1")).await;
    process_batch(store, &acme, "B3", 500, None).await;

    let found = |before: i64, limit: u32| async move {
        store
            .expired_diagnostics(before, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|e| {
                format!(
                    "{}/{}/{}@{}",
                    e.tenant.org(),
                    e.tenant.sandbox(),
                    e.batch_id,
                    e.location
                )
            })
            .collect::<Vec<_>>()
    };
    assert!(found(1000, 10).await.is_empty());
    assert_eq!(
        found(1001, 10).await,
        ["ACME@AdobeOrg/prod/B1@lake/acme/B1/attempt-1"]
    );
    assert_eq!(
        found(i64::MAX, 10).await,
        [
            "ACME@AdobeOrg/prod/B1@lake/acme/B1/attempt-1",
            "OTHER@AdobeOrg/dev/B2@lake/other/B2/attempt-1"
        ]
    );
    assert_eq!(found(i64::MAX, 1).await.len(), 1);

    // The files are recorded with the location, per tenant; a batch without diagnostics
    // has none.
    let recorded = store
        .diagnostics_files(&acme, &BatchId::from("B1"))
        .await
        .unwrap();
    assert_eq!(
        recorded,
        Some(vec![lakeport_metastore::DiagnosticsFile {
            path: "failed/part-00001.json".to_owned(),
            size: 42
        }])
    );
    assert_eq!(
        store
            .diagnostics_files(&other, &BatchId::from("B1"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .diagnostics_files(&acme, &BatchId::from("B3"))
            .await
            .unwrap(),
        None
    );

    // Another tenant cannot clear it; the owner can, once.
    assert!(
        !store
            .clear_diagnostics(&other, &BatchId::from("B1"))
            .await
            .unwrap()
    );
    assert!(
        store
            .clear_diagnostics(&acme, &BatchId::from("B1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .clear_diagnostics(&acme, &BatchId::from("B1"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .diagnostics_location(&acme, &BatchId::from("B1"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .diagnostics_files(&acme, &BatchId::from("B1"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .diagnostics_location(&other, &BatchId::from("B2"))
            .await
            .unwrap(),
        Some("lake/other/B2/attempt-1".to_owned())
    );
    assert_eq!(
        found(i64::MAX, 10).await,
        ["OTHER@AdobeOrg/dev/B2@lake/other/B2/attempt-1"]
    );
}

pub async fn uploads_are_checked_against_the_batch_and_its_limits(store: &dyn Metastore) {
    use lakeport_domain::ingest::Chunk;
    use lakeport_metastore::UploadLimits;
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let request = NewImportBatch::parse(json!({"datasetId": "D1"})).unwrap();
    store
        .create_import_batch(&acme, &request, &BatchId::from("B1"), &actor(), 1)
        .await
        .unwrap();
    let limits = UploadLimits {
        max_files: 2,
        max_batch_bytes: 100,
    };
    let err = store
        .upload_target(&acme, &BatchId::from("B1"), &DatasetId::from("D9"))
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::NotFound { .. }), "{err}");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D2", "two", 1))
        .await
        .unwrap();
    let err = store
        .upload_target(&acme, &BatchId::from("B1"), &DatasetId::from("D2"))
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::WrongDataset { .. }), "{err}");
    let err = store
        .upload_target(
            &tenant("ACME", "dev"),
            &BatchId::from("B1"),
            &DatasetId::from("D1"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::NotFound { .. }), "{err}");

    let record = |path: &'static str, upload: &'static str, size: u64| async move {
        store
            .record_file(
                &acme_tenant(),
                &BatchId::from("B1"),
                &DatasetId::from("D1"),
                path,
                upload,
                size,
                limits,
            )
            .await
    };
    assert_eq!(record("a.json", "u1", 10).await.unwrap(), None);
    // Replacing a file hands back the upload whose bytes may now be deleted.
    assert_eq!(
        record("a.json", "u2", 10).await.unwrap(),
        Some("u1".to_owned())
    );
    assert_eq!(record("b.json", "u3", 50).await.unwrap(), None);
    let err = record("c.json", "u4", 1).await.unwrap_err();
    assert!(matches!(err, MetastoreError::LimitExceeded(_)), "{err}");
    let err = record("b.json", "u5", 91).await.unwrap_err();
    assert!(matches!(err, MetastoreError::LimitExceeded(_)), "{err}");
    assert_eq!(record("b.json", "u5", 90).await.unwrap(), Some("u3".into()));

    let chunk = |first, last| Chunk {
        first,
        last,
        total: Some(10),
    };
    let err = store
        .record_chunk(
            &acme,
            &BatchId::from("B1"),
            &DatasetId::from("D1"),
            "a.json",
            "u9",
            chunk(0, 4),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetastoreError::UploadNotStarted { .. }),
        "{err}"
    );
    assert_eq!(
        store
            .start_chunked_upload(
                &acme,
                &BatchId::from("B1"),
                &DatasetId::from("D1"),
                "a.json",
                "u9"
            )
            .await
            .unwrap(),
        None
    );
    let file = store
        .record_chunk(
            &acme,
            &BatchId::from("B1"),
            &DatasetId::from("D1"),
            "a.json",
            "u9",
            chunk(0, 4),
        )
        .await
        .unwrap();
    assert_eq!((file.size, file.upload_id.as_str()), (5, "u9"));
    let err = store
        .record_chunk(
            &acme,
            &BatchId::from("B1"),
            &DatasetId::from("D1"),
            "a.json",
            "u8",
            chunk(5, 9),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetastoreError::UploadNotStarted { .. }),
        "{err}"
    );
    // Restarting a chunked upload hands back the abandoned one.
    assert_eq!(
        store
            .start_chunked_upload(
                &acme,
                &BatchId::from("B1"),
                &DatasetId::from("D1"),
                "a.json",
                "u10"
            )
            .await
            .unwrap(),
        Some("u9".to_owned())
    );
    store
        .record_chunk(
            &acme,
            &BatchId::from("B1"),
            &DatasetId::from("D1"),
            "a.json",
            "u10",
            chunk(5, 9),
        )
        .await
        .unwrap();
    let file = store
        .batch_file(&acme, &BatchId::from("B1"), "a.json")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(file.size, 5);
    assert_eq!(file.chunks.map(|chunks| chunks.len()), Some(1));
    let files = store
        .batch_files(&acme, &BatchId::from("B1"))
        .await
        .unwrap();
    let paths: Vec<_> = files.iter().map(|f| (f.path.as_str(), f.size)).collect();
    assert_eq!(paths, [("a.json", 5), ("b.json", 90)]);
    assert!(
        store
            .batch_files(&other_tenant(), &BatchId::from("B1"))
            .await
            .unwrap()
            .is_empty()
    );

    store
        .signal_batch(
            &acme,
            &BatchId::from("B1"),
            BatchAction::Complete,
            &actor(),
            2,
            0,
        )
        .await
        .unwrap();
    let err = record("d.json", "u11", 1).await.unwrap_err();
    assert!(
        matches!(err, MetastoreError::BatchNotLoading { .. }),
        "{err}"
    );
}

fn acme_tenant() -> Tenant {
    tenant("ACME", "prod")
}

fn other_tenant() -> Tenant {
    tenant("OTHER", "prod")
}

pub async fn jobs_are_leased_retried_and_promoted_once(store: &dyn Metastore) {
    use lakeport_domain::ingest::JobKind;
    use lakeport_metastore::NewDatasetFile;
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let request = |body: serde_json::Value| NewImportBatch::parse(body).unwrap();
    for id in ["B1", "B2"] {
        store
            .create_import_batch(
                &acme,
                &request(json!({"datasetId": "D1"})),
                &BatchId::from(id),
                &actor(),
                1,
            )
            .await
            .unwrap();
    }
    assert!(store.claim_job("w1", 1000, 10).await.unwrap().is_none());
    // The node's idle workers wait on the bell: COMPLETE rings it, so a worker starts the
    // promotion without waiting for its next poll.
    let bell = store.job_bell();
    assert!(
        futures::FutureExt::now_or_never(bell.notified()).is_none(),
        "the bell rang before any job was queued"
    );
    let staging = store
        .signal_batch(
            &acme,
            &BatchId::from("B1"),
            BatchAction::Complete,
            &actor(),
            10,
            0,
        )
        .await
        .unwrap();
    assert_eq!(staging["status"], "staging");
    assert!(
        futures::FutureExt::now_or_never(bell.notified()).is_some(),
        "COMPLETE queued a promotion without ringing the bell"
    );
    // A repeated COMPLETE changes nothing and enqueues nothing.
    store
        .signal_batch(
            &acme,
            &BatchId::from("B1"),
            BatchAction::Complete,
            &actor(),
            11,
            0,
        )
        .await
        .unwrap();
    let job = store.claim_job("w1", 1000, 12).await.unwrap().unwrap();
    assert_eq!(
        (job.kind, job.batch_id.as_str(), job.attempt),
        (JobKind::PromoteBatch, "B1", 1)
    );
    assert!(store.claim_job("w2", 1000, 12).await.unwrap().is_none());
    assert!(store.renew_lease(&job, 2000).await.unwrap());
    // The lease runs out at 2000: another worker takes the job over.
    assert!(store.claim_job("w2", 1000, 1999).await.unwrap().is_none());
    let taken_over = store.claim_job("w2", 1000, 2001).await.unwrap().unwrap();
    assert_eq!((taken_over.id, taken_over.attempt), (job.id, 2));
    assert!(!store.renew_lease(&job, 5000).await.unwrap());
    let err = store.begin_processing(&job, 2002).await.unwrap_err();
    assert!(matches!(err, MetastoreError::LostLease { .. }), "{err}");
    let job = taken_over;

    let processing = store.begin_processing(&job, 2002).await.unwrap().unwrap();
    assert_eq!(processing["status"], "processing");
    store
        .retry_job(&job, "disk full", 3000, 3, 2003)
        .await
        .unwrap();
    let batch = &store
        .get(&acme, ObjectKind::Batch, &["B1".into()])
        .await
        .unwrap()[0];
    assert_eq!(batch["status"], "retrying");
    assert!(store.claim_job("w1", 1000, 2999).await.unwrap().is_none());
    let job = store.claim_job("w1", 1000, 3000).await.unwrap().unwrap();
    assert_eq!(job.attempt, 3);
    store.begin_processing(&job, 3001).await.unwrap().unwrap();
    let promotion = Promotion {
        batch_fields: as_object(json!({"status": "success", "completed": 3002, "recordCount": 7}))
            .unwrap(),
        files: vec![
            NewDatasetFile {
                name: "part-00001.parquet".into(),
                location: "lake/D1/B1/attempt-3/part-00001.parquet".into(),
                records: 5,
                size: 500,
            },
            NewDatasetFile {
                name: "part-00002.parquet".into(),
                location: "lake/D1/B1/attempt-3/part-00002.parquet".into(),
                records: 2,
                size: 200,
            },
        ],
        diagnostics_location: Some("lake/D1/B1/attempt-3".into()),
        diagnostics_files: Vec::new(),
        cleanup_delay_ms: 0,
    };
    let done = store
        .complete_promotion(&job, promotion.clone(), 3002)
        .await
        .unwrap();
    assert_eq!(
        (done["status"].as_str(), done["recordCount"].as_i64()),
        (Some("success"), Some(7))
    );
    // The job is done: completing it again is refused.
    let err = store
        .complete_promotion(&job, promotion, 3003)
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::LostLease { .. }), "{err}");
    let files = store
        .batch_dataset_files(&acme, &BatchId::from("B1"))
        .await
        .unwrap();
    let stored: Vec<_> = files
        .iter()
        .map(|f| {
            (
                f.doc["id"].as_str().unwrap(),
                f.doc["records"].as_i64().unwrap(),
                f.location.as_str(),
            )
        })
        .collect();
    assert_eq!(
        stored,
        [
            ("B1-1", 5, "lake/D1/B1/attempt-3/part-00001.parquet"),
            ("B1-2", 2, "lake/D1/B1/attempt-3/part-00002.parquet")
        ]
    );
    assert_eq!(
        store
            .dataset_file(&acme, "B1-2")
            .await
            .unwrap()
            .unwrap()
            .doc["dataSetId"],
        "D1"
    );
    assert!(
        store
            .dataset_file(&other_tenant(), "B1-2")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        ids(store, &acme, ObjectKind::DatasetFile, &[("batchId", "B1")]).await,
        ["B1-1", "B1-2"]
    );
    assert_eq!(
        store
            .diagnostics_location(&acme, &BatchId::from("B1"))
            .await
            .unwrap()
            .as_deref(),
        Some("lake/D1/B1/attempt-3")
    );
    let dataset = &store
        .get(&acme, ObjectKind::Dataset, &["D1".into()])
        .await
        .unwrap()[0];
    assert_eq!(dataset["lastSuccessfulBatch"], "B1");
    // Promotion enqueued the clean-up of the staged data.
    let cleanup = store.claim_job("w1", 1000, 3004).await.unwrap().unwrap();
    assert_eq!(
        (cleanup.kind, cleanup.batch_id.as_str()),
        (JobKind::CleanupBatch, "B1")
    );
    store.finish_job(&cleanup, 3005).await.unwrap();
    let err = store.finish_job(&cleanup, 3006).await.unwrap_err();
    assert!(matches!(err, MetastoreError::LostLease { .. }), "{err}");

    // REVERT hides the batch's files.
    let reverted = store
        .signal_batch(
            &acme,
            &BatchId::from("B1"),
            BatchAction::Revert,
            &actor(),
            4000,
            10_000,
        )
        .await
        .unwrap();
    assert_eq!(reverted["status"], "inactive");
    let file = store.dataset_file(&acme, "B1-1").await.unwrap().unwrap();
    assert_eq!(file.doc["isValid"], false);
    // …and runs a clean-up at once (the batch leaves the dataset's Delta table).
    let cleanup = store.claim_job("w1", 1000, 4000).await.unwrap().unwrap();
    assert_eq!(
        (cleanup.kind.as_str(), cleanup.batch_id.as_str()),
        ("cleanup_batch", "B1")
    );
    store.finish_job(&cleanup, 4001).await.unwrap();

    // The last attempt stalls the batch.
    store
        .signal_batch(
            &acme,
            &BatchId::from("B2"),
            BatchAction::Complete,
            &actor(),
            5000,
            0,
        )
        .await
        .unwrap();
    let job = store.claim_job("w1", 1000, 5001).await.unwrap().unwrap();
    store.begin_processing(&job, 5001).await.unwrap().unwrap();
    store
        .retry_job(&job, "broken", 6000, 1, 5002)
        .await
        .unwrap();
    let batch = &store
        .get(&acme, ObjectKind::Batch, &["B2".into()])
        .await
        .unwrap()[0];
    assert_eq!(batch["status"], "stalled");
    assert!(store.claim_job("w1", 1000, 7000).await.unwrap().is_none());

    // An aborted batch has nothing to process; a queued job for it just ends.
    store
        .create_import_batch(
            &acme,
            &request(json!({"datasetId": "D1"})),
            &BatchId::from("B3"),
            &actor(),
            8000,
        )
        .await
        .unwrap();
    store
        .signal_batch(
            &acme,
            &BatchId::from("B3"),
            BatchAction::Complete,
            &actor(),
            8001,
            0,
        )
        .await
        .unwrap();
    store
        .signal_batch(
            &acme,
            &BatchId::from("B3"),
            BatchAction::Abort,
            &actor(),
            8002,
            0,
        )
        .await
        .unwrap();
    let promote = store.claim_job("w1", 1000, 8003).await.unwrap().unwrap();
    assert_eq!(promote.kind, JobKind::PromoteBatch);
    assert!(
        store
            .begin_processing(&promote, 8003)
            .await
            .unwrap()
            .is_none()
    );
    let cleanup = store.claim_job("w1", 1000, 8004).await.unwrap().unwrap();
    assert_eq!(cleanup.kind, JobKind::CleanupBatch);
    store.finish_job(&cleanup, 8005).await.unwrap();
    store
        .enqueue_job(&acme, JobKind::CleanupBatch, &BatchId::from("B3"), 9000)
        .await
        .unwrap();
    assert!(store.claim_job("w1", 1000, 8999).await.unwrap().is_none());
    let cleanup = store.claim_job("w1", 1000, 9000).await.unwrap().unwrap();
    store.finish_job(&cleanup, 9001).await.unwrap();
    // REVERT enqueued the collection of B1's data, due after its grace period.
    assert!(store.claim_job("w1", 1000, 13_999).await.unwrap().is_none());
    let collect = store.claim_job("w1", 1000, 14_000).await.unwrap().unwrap();
    assert_eq!(
        (collect.kind, collect.batch_id.as_str()),
        (JobKind::CleanupBatch, "B1")
    );
}

/// Claims the next job due at `now` and returns its kind and batch, finishing it.
async fn take_job(store: &dyn Metastore, now: i64) -> Option<(String, String)> {
    let job = store.claim_job("w1", 1000, now).await.unwrap()?;
    store.finish_job(&job, now).await.unwrap();
    Some((job.kind.as_str().to_owned(), job.batch_id.to_string()))
}

/// Promotes the batch `id` with a success, making the predecessors it replays inactive.
async fn promote_successfully(store: &dyn Metastore, id: &str, now: i64, cleanup_delay_ms: i64) {
    let job = store.claim_job("w1", 1000, now).await.unwrap().unwrap();
    assert_eq!(job.batch_id, id);
    store.begin_processing(&job, now).await.unwrap().unwrap();
    let promotion = Promotion {
        batch_fields: as_object(json!({"status": "success", "completed": now})).unwrap(),
        files: Vec::new(),
        diagnostics_location: None,
        diagnostics_files: Vec::new(),
        cleanup_delay_ms,
    };
    let done = store
        .complete_promotion(&job, promotion, now)
        .await
        .unwrap();
    assert_eq!(done["status"], "success");
}

/// The clean-up that follows a change is enqueued by the call that makes the change, in its
/// transaction: no crash between the two can leave data without a collector.
pub async fn follow_up_cleanups_are_enqueued_with_the_change(store: &dyn Metastore) {
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let plain = NewImportBatch::parse(json!({"datasetId": "D1"})).unwrap();
    for id in ["OLD", "OLDER"] {
        store
            .create_import_batch(&acme, &plain, &BatchId::from(id), &actor(), 10)
            .await
            .unwrap();
        store
            .signal_batch(
                &acme,
                &BatchId::from(id),
                BatchAction::Complete,
                &actor(),
                11,
                0,
            )
            .await
            .unwrap();
        promote_successfully(store, id, 12, 0).await;
        let staged = take_job(store, 12).await.unwrap();
        assert_eq!(staged, ("cleanup_batch".to_owned(), id.to_owned()));
    }

    // A successful replay makes its predecessors inactive and enqueues their collection,
    // due after the grace period.
    let replay = NewImportBatch::parse(json!({
        "datasetId": "D1",
        "replay": {"predecessors": ["OLD", "OLDER"], "reason": "replace"}
    }))
    .unwrap();
    store
        .create_import_batch(&acme, &replay, &BatchId::from("NEW"), &actor(), 100)
        .await
        .unwrap();
    store
        .signal_batch(
            &acme,
            &BatchId::from("NEW"),
            BatchAction::Complete,
            &actor(),
            101,
            0,
        )
        .await
        .unwrap();
    promote_successfully(store, "NEW", 102, 10_000).await;
    let statuses: Vec<_> = store
        .get(&acme, ObjectKind::Batch, &["OLD".into(), "OLDER".into()])
        .await
        .unwrap()
        .iter()
        .map(|batch| batch["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("inactive"), json!("inactive")]);
    assert_eq!(
        take_job(store, 102).await,
        Some(("cleanup_batch".to_owned(), "NEW".to_owned()))
    );
    assert_eq!(take_job(store, 10_101).await, None);
    let mut collected = vec![
        take_job(store, 10_102).await.unwrap(),
        take_job(store, 10_102).await.unwrap(),
    ];
    collected.sort();
    assert_eq!(
        collected,
        [
            ("cleanup_batch".to_owned(), "OLD".to_owned()),
            ("cleanup_batch".to_owned(), "OLDER".to_owned())
        ]
    );
    assert_eq!(take_job(store, 10_102).await, None);

    // REVERT enqueues a clean-up at once (the batch leaves the dataset's Delta table) and
    // the collection of the reverted data, due after the grace period.
    let reverted = store
        .signal_batch(
            &acme,
            &BatchId::from("NEW"),
            BatchAction::Revert,
            &actor(),
            20_000,
            5_000,
        )
        .await
        .unwrap();
    assert_eq!(reverted["status"], "inactive");
    assert_eq!(
        take_job(store, 20_000).await,
        Some(("cleanup_batch".to_owned(), "NEW".to_owned()))
    );
    assert_eq!(take_job(store, 24_999).await, None);
    assert_eq!(
        take_job(store, 25_000).await,
        Some(("cleanup_batch".to_owned(), "NEW".to_owned()))
    );
    // Reverting again changes nothing and enqueues nothing.
    store
        .signal_batch(
            &acme,
            &BatchId::from("NEW"),
            BatchAction::Revert,
            &actor(),
            30_000,
            0,
        )
        .await
        .unwrap();
    assert_eq!(take_job(store, 40_000).await, None);
}

pub async fn stale_loading_batches_are_abandoned(store: &dyn Metastore) {
    use lakeport_domain::ingest::JobKind;
    let acme = tenant("ACME", "prod");
    let other = tenant("OTHER", "dev");
    for owner in [&acme, &other] {
        store
            .insert(owner, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
            .await
            .unwrap();
    }
    let request = NewImportBatch::parse(json!({"datasetId": "D1"})).unwrap();
    for (owner, id, now) in [
        (&acme, "OLD", 10),
        (&other, "OLD2", 20),
        (&acme, "NEW", 100),
    ] {
        store
            .create_import_batch(owner, &request, &BatchId::from(id), &actor(), now)
            .await
            .unwrap();
    }
    store
        .create_import_batch(&acme, &request, &BatchId::from("DONE"), &actor(), 5)
        .await
        .unwrap();
    store
        .signal_batch(
            &acme,
            &BatchId::from("DONE"),
            BatchAction::Complete,
            &actor(),
            6,
            0,
        )
        .await
        .unwrap();
    let mut abandoned: Vec<String> = store
        .abandon_stale_batches(50, 200)
        .await
        .unwrap()
        .into_iter()
        .map(|(owner, id)| format!("{}/{id}", owner.org()))
        .collect();
    abandoned.sort();
    assert_eq!(abandoned, ["ACME@AdobeOrg/OLD", "OTHER@AdobeOrg/OLD2"]);
    let batch = &store
        .get(&acme, ObjectKind::Batch, &["OLD".into()])
        .await
        .unwrap()[0];
    assert_eq!(
        (batch["status"].as_str(), batch["completed"].as_i64()),
        (Some("abandoned"), Some(200))
    );
    let dataset = &store
        .get(&other, ObjectKind::Dataset, &["D1".into()])
        .await
        .unwrap()[0];
    assert_eq!(dataset["lastBatchStatus"], "abandoned");
    assert!(
        store
            .abandon_stale_batches(50, 300)
            .await
            .unwrap()
            .is_empty()
    );
    // DONE's promotion, then the clean-ups of both abandoned batches.
    let mut kinds = Vec::new();
    while let Some(job) = store.claim_job("w1", 1000, 400).await.unwrap() {
        kinds.push(format!("{}:{}", job.kind.as_str(), job.batch_id));
    }
    kinds.sort();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds.iter().any(|k| k.ends_with(":DONE")));
    assert!(kinds.contains(&format!("{}:OLD", JobKind::CleanupBatch.as_str())));
}

/// Concurrent writers of the same rows behave as if they ran one after the other, as under
/// SQLite's single writer.
pub async fn concurrent_writes_behave_as_if_serialized(store: &dyn Metastore) {
    use futures::future::join_all;
    use lakeport_domain::xdm::registry::ResourceKind;
    let acme = tenant("ACME", "prod");
    let mut doc = dataset_doc("D1", "one", 1);
    doc.insert("count".into(), json!(0));
    store.insert(&acme, ObjectKind::Dataset, doc).await.unwrap();

    // Read-modify-write of one document: no update is lost.
    let increments = (0..16).map(|_| {
        store.update(
            &acme,
            ObjectKind::Dataset,
            "D1",
            UpdateOptions::default(),
            Box::new(|doc: &Doc| {
                let mut next = doc.clone();
                let count = next["count"].as_i64().unwrap();
                next.insert("count".into(), json!(count + 1));
                Ok(next)
            }),
        )
    });
    for result in join_all(increments).await {
        result.unwrap();
    }
    let dataset = &store
        .get(&acme, ObjectKind::Dataset, &["D1".into()])
        .await
        .unwrap()[0];
    assert_eq!(dataset["count"], 16);

    // The same id (and the same externalId) inserted at once: exactly one wins.
    let inserts = (0..8).map(|index| {
        let mut batch = batch_doc(&format!("B{index}"), "D1", "loading", 10);
        batch.insert("externalId".into(), json!("same"));
        store.insert(&acme, ObjectKind::Batch, batch)
    });
    let results = join_all(inserts).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for err in results.into_iter().filter_map(Result::err) {
        assert!(
            matches!(err, MetastoreError::DuplicateExternalId { .. }),
            "{err}"
        );
    }
    let titles = (0..8).map(|index| {
        store.insert_resource(
            &acme,
            ResourceKind::Schema,
            resource("schemas", &format!("c{index}"), "Same", "1.0"),
        )
    });
    let results = join_all(titles).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    for err in results.into_iter().filter_map(Result::err) {
        assert!(
            matches!(err, MetastoreError::DuplicateTitle { .. }),
            "{err}"
        );
    }

    // Batches of one dataset created at once are all recorded on it.
    let request = NewImportBatch::parse(json!({"datasetId": "D1"})).unwrap();
    let creations = (0..12).map(|index| {
        let request = request.clone();
        async move {
            store
                .create_import_batch(
                    &acme_tenant(),
                    &request,
                    &BatchId::from(&format!("C{index:02}")),
                    &actor(),
                    20,
                )
                .await
        }
    });
    for result in join_all(creations).await {
        result.unwrap();
    }
    let completions = (0..12).map(|index| async move {
        store
            .signal_batch(
                &acme_tenant(),
                &BatchId::from(&format!("C{index:02}")),
                BatchAction::Complete,
                &actor(),
                30,
                0,
            )
            .await
    });
    for result in join_all(completions).await {
        result.unwrap();
    }

    // Workers claiming at once never get the same job.
    let claims = (0..16).map(|worker| async move {
        let mut claimed = Vec::new();
        while let Some(job) = store
            .claim_job(&format!("w{worker}"), 60_000, 40)
            .await
            .unwrap()
        {
            claimed.push(job.batch_id.to_string());
        }
        claimed
    });
    let mut claimed: Vec<String> = join_all(claims).await.into_iter().flatten().collect();
    claimed.sort();
    let expected: Vec<String> = (0..12).map(|index| format!("C{index:02}")).collect();
    assert_eq!(claimed, expected);
    let dataset = &store
        .get(&acme, ObjectKind::Dataset, &["D1".into()])
        .await
        .unwrap()[0];
    assert_eq!(dataset["lastBatchStatus"], "staging");
    assert_eq!(dataset["count"], 16);
}

fn flow_doc(id: &str, created: i64, extra: serde_json::Value) -> Doc {
    let mut doc = as_object(json!({"id": id, "name": id, "createdAt": created})).unwrap();
    doc.extend(as_object(extra).unwrap());
    doc
}

pub async fn flow_objects_check_references_tenancy_and_use(store: &dyn Metastore) {
    use lakeport_domain::flow::{FlowKind, Reference};
    let acme = tenant("ACME", "prod");
    let acme_dev = tenant("ACME", "dev");
    let mut dataset = dataset_doc("D1", "one", 1);
    dataset.insert(
        "schemaRef".into(),
        json!({"id": "https://ns.adobe.com/acme/schemas/s1"}),
    );
    store
        .insert(&acme, ObjectKind::Dataset, dataset)
        .await
        .unwrap();
    let connection = flow_doc("C1", 1, json!({"auth": {"params": {"inletId": "ab12"}}}));
    store
        .insert_flow_object(
            &acme,
            FlowKind::Connection,
            connection.clone(),
            &Reference::None,
        )
        .await
        .unwrap();
    // The inlet id is unique across tenants.
    let err = store
        .insert_flow_object(
            &acme_dev,
            FlowKind::Connection,
            flow_doc("C9", 1, json!({"auth": {"params": {"inletId": "ab12"}}})),
            &Reference::None,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MetastoreError::Backend { .. } | MetastoreError::AlreadyExists { .. }
        ),
        "{err}"
    );
    // References resolve only in the tenant.
    let base = Reference::BaseConnection("C1".into());
    let err = store
        .insert_flow_object(
            &acme_dev,
            FlowKind::SourceConnection,
            flow_doc("S1", 2, json!({})),
            &base,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::InvalidReference(_)), "{err}");
    store
        .insert_flow_object(
            &acme,
            FlowKind::SourceConnection,
            flow_doc("S1", 2, json!({"baseConnectionId": "C1"})),
            &base,
        )
        .await
        .unwrap();
    let wrong_schema = Reference::Dataset {
        dataset_id: "D1".into(),
        schema_id: Some("https://ns.adobe.com/acme/schemas/other".into()),
    };
    let err = store
        .insert_flow_object(
            &acme,
            FlowKind::TargetConnection,
            flow_doc("T1", 3, json!({})),
            &wrong_schema,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is not the schema of dataset D1"),
        "{err}"
    );
    let target = Reference::Dataset {
        dataset_id: "D1".into(),
        schema_id: Some("https://ns.adobe.com/acme/schemas/s1".into()),
    };
    store
        .insert_flow_object(
            &acme,
            FlowKind::TargetConnection,
            flow_doc("T1", 3, json!({"params": {"dataSetId": "D1"}})),
            &target,
        )
        .await
        .unwrap();
    let chain = Reference::Connections {
        source: "S1".into(),
        target: "T1".into(),
    };
    store
        .insert_flow_object(
            &acme,
            FlowKind::Flow,
            flow_doc(
                "F1",
                4,
                json!({"sourceConnectionIds": ["S1"], "targetConnectionIds": ["T1"]}),
            ),
            &chain,
        )
        .await
        .unwrap();

    assert_eq!(
        store
            .get_flow_object(&acme, FlowKind::Connection, "C1")
            .await
            .unwrap(),
        Some(connection)
    );
    assert_eq!(
        store
            .get_flow_object(&acme_dev, FlowKind::Connection, "C1")
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .list_flow_objects(&acme_dev, FlowKind::Flow)
            .await
            .unwrap()
            .is_empty()
    );
    let inlet = store.inlet("ab12").await.unwrap().unwrap();
    assert_eq!(inlet.tenant, acme);
    assert_eq!(inlet.flows.len(), 1);
    assert_eq!(
        (
            inlet.flows[0].flow_id.as_str(),
            inlet.flows[0].dataset_id.as_deref()
        ),
        ("F1", Some("D1"))
    );
    assert!(store.inlet("ffff").await.unwrap().is_none());

    // Objects still used by others cannot go; the flow first, then the chain.
    let err = store
        .delete_flow_object(&acme, FlowKind::Connection, "C1")
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::InUse(_)), "{err}");
    let err = store
        .delete_flow_object(&acme, FlowKind::TargetConnection, "T1")
        .await
        .unwrap_err();
    assert!(matches!(err, MetastoreError::InUse(_)), "{err}");
    assert!(
        !store
            .delete_flow_object(&acme_dev, FlowKind::Flow, "F1")
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_flow_object(&acme, FlowKind::Flow, "F1")
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_flow_object(&acme, FlowKind::SourceConnection, "S1")
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_flow_object(&acme, FlowKind::Connection, "C1")
            .await
            .unwrap()
    );
    assert!(store.inlet("ab12").await.unwrap().is_none());
}

pub async fn stream_segments_are_read_in_pages_of_their_own_records(store: &dyn Metastore) {
    use lakeport_metastore::NewStreamRecord;
    let acme = tenant("ACME", "prod");
    for id in ["D1", "D2"] {
        store
            .insert(&acme, ObjectKind::Dataset, dataset_doc(id, id, 1))
            .await
            .unwrap();
    }
    let record = |dataset: &str, n: usize| NewStreamRecord {
        dataset_id: dataset.into(),
        connection_id: "C1".into(),
        received: 100,
        body: format!("{{\"n\":{n:03}}}"),
    };
    // 300 appends of one record each to D1 (300 chunk rows, 9 bytes each), with D2's
    // records between them: more rows than one page takes, and ids that are not D1's.
    for n in 0..300 {
        store
            .append_stream_records(&acme, vec![record("D1", n), record("D2", n)], 100)
            .await
            .unwrap();
    }
    let sealed = store.seal_stream_segments(i64::MAX, 1, 101).await.unwrap();
    let d1 = sealed.iter().find(|s| s.dataset_id == "D1").unwrap();
    assert_eq!((d1.records, d1.bytes), (300, 2700));
    // Records appended after the seal belong to the next segment, not to this one.
    store
        .append_stream_records(&acme, vec![record("D1", 999)], 102)
        .await
        .unwrap();
    for budget in [1u64, 100, 1 << 20] {
        let mut read = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let page = store
                .stream_segment(&acme, &d1.batch_id, after, budget)
                .await
                .unwrap()
                .unwrap();
            assert!(!page.records.is_empty(), "a page holds at least one chunk");
            assert_eq!(page.record_count, 300);
            read.extend(page.records);
            pages += 1;
            match page.next_after {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let expected: Vec<String> = (0..300).map(|n| format!("{{\"n\":{n:03}}}")).collect();
        assert_eq!(
            read, expected,
            "budget {budget}: every record once, in order"
        );
        let fewest = match budget {
            1 => 300,
            100 => 25,
            _ => 2,
        };
        assert!(pages >= fewest, "budget {budget}: {pages} pages");
    }
    let next = store.seal_stream_segments(i64::MAX, 1, 103).await.unwrap();
    let page = store
        .stream_segment(&acme, &next[0].batch_id, None, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (page.records, page.next_after),
        (vec!["{\"n\":999}".to_owned()], None)
    );
}

pub async fn stream_segments_are_sealed_submitted_and_done_once(store: &dyn Metastore) {
    use lakeport_domain::ingest::JobKind;
    use lakeport_metastore::NewStreamRecord;
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let record = |body: &str, received: i64| NewStreamRecord {
        dataset_id: "D1".into(),
        connection_id: "C1".into(),
        received,
        body: body.into(),
    };
    let first = store
        .append_stream_records(
            &acme,
            vec![record("{\"n\":1}", 100), record("{\"n\":2}", 100)],
            100,
        )
        .await
        .unwrap();
    // One request's records for one dataset share a chunk row, one line each.
    assert_eq!(first.len(), 2);
    assert_eq!((first[0].chunk, first[0].line), (first[1].chunk, 0));
    assert_eq!(first[1].line, 1);
    // Not due yet: neither old enough nor big enough.
    assert!(
        store
            .seal_stream_segments(99, 1 << 20, 101)
            .await
            .unwrap()
            .is_empty()
    );
    let sealed = store.seal_stream_segments(100, 1 << 20, 102).await.unwrap();
    assert_eq!(sealed.len(), 1);
    let segment_one = sealed[0].clone();
    assert_eq!(
        (segment_one.segment, segment_one.records, segment_one.bytes),
        (1, 2, 15)
    );
    // Records appended after the seal open segment 2, sealed by size.
    store
        .append_stream_records(&acme, vec![record("{\"n\":3}", 200)], 200)
        .await
        .unwrap();
    let sealed = store.seal_stream_segments(0, 7, 201).await.unwrap();
    assert_eq!((sealed[0].segment, sealed[0].records), (2, 1));
    assert!(
        store
            .seal_stream_segments(i64::MAX, 1, 202)
            .await
            .unwrap()
            .is_empty()
    );

    let segment = store
        .stream_segment(&acme, &segment_one.batch_id, None, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(segment.records, vec!["{\"n\":1}\n{\"n\":2}"]);
    assert_eq!(
        (segment.segment, segment.done, segment.record_count),
        (1, false, 2)
    );
    assert_eq!(segment.next_after, None, "one page holds it all");
    assert!(
        store
            .stream_segment(&tenant("ACME", "dev"), &segment_one.batch_id, None, 1 << 20)
            .await
            .unwrap()
            .is_none()
    );

    // The flush job of segment 1 submits its batch once.
    let job = store.claim_job("w1", 1000, 300).await.unwrap().unwrap();
    assert_eq!(
        (job.kind, job.batch_id.as_str()),
        (JobKind::FlushSegment, segment_one.batch_id.as_str())
    );
    assert!(
        store
            .submit_stream_segment(&acme, &job.batch_id, "u1", 14, 301)
            .await
            .unwrap()
    );
    assert!(
        !store
            .submit_stream_segment(&acme, &job.batch_id, "u1", 14, 302)
            .await
            .unwrap()
    );
    store.finish_job(&job, 303).await.unwrap();
    let batch = &store
        .get(&acme, ObjectKind::Batch, &[job.batch_id.to_string()])
        .await
        .unwrap()[0];
    assert_eq!(batch["status"], "staging");
    assert_eq!(batch["externalId"], "stream:D1:1");
    assert_eq!(batch["tags"]["lakeport/segment"], json!(["1"]));
    let files = store.batch_files(&acme, &job.batch_id).await.unwrap();
    assert_eq!(
        (files.len(), files[0].upload_id.as_str(), files[0].size),
        (1, "u1", 14)
    );

    // Skip segment 2's flush job; promote segment 1: done in the same transaction.
    let flush_two = store.claim_job("w1", 1000, 304).await.unwrap().unwrap();
    assert_eq!(flush_two.kind, JobKind::FlushSegment);
    let promote = store.claim_job("w1", 1000, 305).await.unwrap().unwrap();
    assert_eq!(
        (promote.kind, promote.batch_id.as_str()),
        (JobKind::PromoteBatch, job.batch_id.as_str())
    );
    store
        .begin_processing(&promote, 306)
        .await
        .unwrap()
        .unwrap();
    store
        .complete_promotion(
            &promote,
            Promotion {
                batch_fields: as_object(json!({"status": "success", "completed": 307})).unwrap(),
                files: Vec::new(),
                diagnostics_location: None,
                diagnostics_files: Vec::new(),
                cleanup_delay_ms: 0,
            },
            307,
        )
        .await
        .unwrap();
    // Done: the segment's row and records are gone (the log keeps no done segments), and
    // nothing submits its batch again.
    assert_eq!(
        store
            .stream_segment(&acme, &segment_one.batch_id, None, 1 << 20)
            .await
            .unwrap(),
        None
    );
    assert!(
        !store
            .submit_stream_segment(&acme, &segment_one.batch_id, "u1", 14, 308)
            .await
            .unwrap()
    );
    // Segment 2 still has its record.
    let segment = store
        .stream_segment(&acme, &flush_two.batch_id, None, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((segment.records.len(), segment.done), (1, false));
}

/// A dataset's table lock (spec §12) is held by one job at a time, only by a worker holding
/// the job's lease, and ends when it is released, the job finishes, or its lease expires.
pub async fn table_locks_are_held_by_one_lease_holder_per_dataset(store: &dyn Metastore) {
    use lakeport_domain::ids::DatasetId;
    let acme = tenant("ACME", "prod");
    for (id, name) in [("D1", "one"), ("D2", "two")] {
        store
            .insert(&acme, ObjectKind::Dataset, dataset_doc(id, name, 1))
            .await
            .unwrap();
    }
    let request = NewImportBatch::parse(json!({"datasetId": "D1"})).unwrap();
    for id in ["B1", "B2", "B3"] {
        store
            .create_import_batch(&acme, &request, &BatchId::from(id), &actor(), 1)
            .await
            .unwrap();
        store
            .signal_batch(
                &acme,
                &BatchId::from(id),
                BatchAction::Complete,
                &actor(),
                2,
                0,
            )
            .await
            .unwrap();
    }
    let (d1, d2) = (DatasetId::from("D1"), DatasetId::from("D2"));
    let first = store.claim_job("w1", 1000, 10).await.unwrap().unwrap();
    let second = store.claim_job("w2", 1000, 10).await.unwrap().unwrap();
    assert!(store.lock_table(&first, &d1, 11).await.unwrap());
    // Taking it again is a no-op; another job waits; other datasets are independent.
    assert!(store.lock_table(&first, &d1, 12).await.unwrap());
    assert!(!store.lock_table(&second, &d1, 12).await.unwrap());
    assert!(store.lock_table(&second, &d2, 12).await.unwrap());
    store.unlock_table(&second, &d2).await.unwrap();
    store.unlock_table(&first, &d1).await.unwrap();
    assert!(store.lock_table(&second, &d1, 13).await.unwrap());
    assert!(!store.lock_table(&first, &d1, 14).await.unwrap());
    // Releasing a lock one does not hold changes nothing.
    store.unlock_table(&first, &d1).await.unwrap();
    assert!(!store.lock_table(&first, &d1, 15).await.unwrap());
    // The holder's lease expires (its worker died): another job takes the table over, and
    // the old holder, its lease gone, can no longer take any lock.
    let third = store.claim_job("w3", 1000, 10).await.unwrap().unwrap();
    assert!(!store.lock_table(&third, &d1, 1010).await.unwrap());
    assert!(store.renew_lease(&third, 5000).await.unwrap());
    assert!(store.lock_table(&third, &d1, 1011).await.unwrap());
    let reclaimed = store.claim_job("w4", 1000, 1012).await.unwrap().unwrap();
    assert!(matches!(
        store.lock_table(&first, &d2, 1012).await,
        Err(MetastoreError::LostLease { .. })
    ));
    assert!(!store.lock_table(&reclaimed, &d1, 1013).await.unwrap());
    // A finished holder holds nothing.
    store.finish_job(&third, 1014).await.unwrap();
    assert!(store.lock_table(&reclaimed, &d1, 1015).await.unwrap());
}

/// A dataset's table job (optimize, vacuum) is queued once while pending, claimed like any
/// job with the dataset as its subject, read back only by its own tenant and dataset, and
/// records its result when done; a finished job lets a new one be queued.
pub async fn table_jobs_are_queued_once_and_record_their_result(store: &dyn Metastore) {
    use lakeport_domain::ingest::JobKind;
    let (acme, other) = (tenant("ACME", "prod"), tenant("OTHER", "prod"));
    let (d1, d2) = (DatasetId::from("D1"), DatasetId::from("D2"));
    let optimize = store
        .enqueue_table_job(&acme, JobKind::OptimizeTable, &d1)
        .await
        .unwrap();
    assert_eq!(
        store
            .enqueue_table_job(&acme, JobKind::OptimizeTable, &d1)
            .await
            .unwrap(),
        optimize,
        "a pending job of the kind is returned, not queued again"
    );
    let vacuum = store
        .enqueue_table_job(&acme, JobKind::VacuumTable, &d1)
        .await
        .unwrap();
    assert_ne!(vacuum, optimize);
    let queued = store
        .table_job(&acme, &d1, optimize)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            queued.kind,
            queued.status.as_str(),
            queued.attempts,
            queued.dataset_id.as_str()
        ),
        (JobKind::OptimizeTable, "queued", 0, "D1")
    );
    // Another tenant, another dataset: no such job.
    assert_eq!(store.table_job(&other, &d1, optimize).await.unwrap(), None);
    assert_eq!(store.table_job(&acme, &d2, optimize).await.unwrap(), None);

    let claimed = store
        .claim_job("w1", 1000, lakeport_domain::now_millis() + 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, optimize);
    assert_eq!(claimed.dataset_id(), Some(d1.clone()));
    assert_eq!(
        store
            .table_job(&acme, &d1, optimize)
            .await
            .unwrap()
            .unwrap()
            .status,
        "running"
    );
    store
        .finish_table_job(
            &claimed,
            r#"{"filesRemoved":4}"#,
            lakeport_domain::now_millis() + 2,
        )
        .await
        .unwrap();
    let done = store
        .table_job(&acme, &d1, optimize)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.status.as_str(), done.result.as_deref()),
        ("done", Some(r#"{"filesRemoved":4}"#))
    );
    // Finishing again, without the lease, is refused.
    assert!(matches!(
        store
            .finish_table_job(&claimed, "{}", lakeport_domain::now_millis() + 3)
            .await,
        Err(MetastoreError::LostLease { .. })
    ));
    let next = store
        .enqueue_table_job(&acme, JobKind::OptimizeTable, &d1)
        .await
        .unwrap();
    assert!(next != optimize && next != vacuum);
}

/// A sealed segment whose flush job failed for good gets a new job; one with a live job,
/// a batch or done status does not.
pub async fn stalled_stream_segments_get_a_new_flush_job(store: &dyn Metastore) {
    use lakeport_domain::ingest::JobKind;
    use lakeport_metastore::NewStreamRecord;
    let acme = tenant("ACME", "prod");
    store
        .insert(&acme, ObjectKind::Dataset, dataset_doc("D1", "one", 1))
        .await
        .unwrap();
    let record = NewStreamRecord {
        dataset_id: "D1".into(),
        connection_id: "C1".into(),
        received: 100,
        body: "{\"n\":1}".into(),
    };
    store
        .append_stream_records(&acme, vec![record], 100)
        .await
        .unwrap();
    let sealed = store.seal_stream_segments(100, 1 << 20, 101).await.unwrap();
    let batch_id = sealed[0].batch_id.clone();
    // Its job is queued: nothing to requeue.
    assert!(
        store
            .requeue_stalled_segments(1000, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    let job = store.claim_job("w1", 1000, 200).await.unwrap().unwrap();
    assert_eq!(job.kind, JobKind::FlushSegment);
    // Running: still nothing. Failed for good: a new job, once; only when old enough.
    assert!(
        store
            .requeue_stalled_segments(1000, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    store
        .retry_job(&job, "storage down", 300, 1, 300)
        .await
        .unwrap();
    assert!(
        store
            .requeue_stalled_segments(100, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    let requeued = store.requeue_stalled_segments(1000, 1000).await.unwrap();
    assert_eq!(
        requeued
            .iter()
            .map(|s| (s.batch_id.as_str(), s.records))
            .collect::<Vec<_>>(),
        vec![(batch_id.as_str(), 1)]
    );
    assert!(
        store
            .requeue_stalled_segments(1000, 1001)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store.claim_job("w1", 1000, 1002).await.unwrap().unwrap();
    assert_eq!(
        (again.kind, again.batch_id.as_str()),
        (JobKind::FlushSegment, batch_id.as_str())
    );
    // Once its batch exists (submitted), it is not stalled whatever its job does.
    assert!(
        store
            .submit_stream_segment(&acme, &again.batch_id, "u1", 7, 1003)
            .await
            .unwrap()
    );
    store
        .retry_job(&again, "gone", 1004, 1, 1004)
        .await
        .unwrap();
    assert!(
        store
            .requeue_stalled_segments(i64::MAX, 1005)
            .await
            .unwrap()
            .is_empty()
    );
    // Its batch deleted (by a user, before promotion): the segment is done, its row and
    // records dropped, so no later flush recreates the batch.
    assert!(
        store
            .delete(&acme, ObjectKind::Batch, &again.batch_id, &actor())
            .await
            .unwrap()
    );
    let segment = store
        .stream_segment(&acme, &again.batch_id, None, 1 << 20)
        .await
        .unwrap();
    assert_eq!(segment, None);
    assert!(
        store
            .requeue_stalled_segments(i64::MAX, 1006)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Group commit: several requests, of several tenants, in one transaction; a request
/// routed with an old Flow Service generation appends nothing, the others land.
pub async fn stream_group_appends_refuse_stale_routing(store: &dyn Metastore) {
    use lakeport_domain::flow::{FlowKind, Reference};
    use lakeport_metastore::{AppendOutcome, NewStreamRecord, StreamAppend};
    let acme = tenant("ACME", "prod");
    let globex = tenant("GLOBEX", "prod");
    for (owner, dataset) in [(&acme, "D1"), (&globex, "D2")] {
        store
            .insert(owner, ObjectKind::Dataset, dataset_doc(dataset, dataset, 1))
            .await
            .unwrap();
    }
    store
        .insert_flow_object(
            &acme,
            FlowKind::Connection,
            json!({"id": "C1", "createdAt": 1, "auth": {"params": {"inletId": "cd34"}}})
                .as_object()
                .unwrap()
                .clone(),
            &Reference::None,
        )
        .await
        .unwrap();
    let inlet = store.inlet("cd34").await.unwrap().unwrap();
    let record = |dataset: &str, body: &str| NewStreamRecord {
        dataset_id: dataset.into(),
        connection_id: "C1".into(),
        received: 10,
        body: body.into(),
    };
    let group = |owner: &Tenant, generation: Option<i64>, records| StreamAppend {
        tenant: owner.clone(),
        generation,
        records,
    };
    let outcomes = store
        .append_stream_groups(
            vec![
                group(
                    &acme,
                    Some(inlet.generation),
                    vec![record("D1", "{\"a\":1}")],
                ),
                group(&globex, None, vec![record("D2", "{\"g\":1}")]),
                group(
                    &acme,
                    Some(inlet.generation),
                    vec![record("D1", "{\"a\":2}")],
                ),
            ],
            10,
        )
        .await
        .unwrap();
    let AppendOutcome::Appended(one) = &outcomes[0] else {
        panic!("{outcomes:?}")
    };
    let AppendOutcome::Appended(three) = &outcomes[2] else {
        panic!("{outcomes:?}")
    };
    // Two requests of one tenant, dataset and connection: one chunk, in request order.
    assert_eq!((one[0].chunk, one[0].line), (three[0].chunk, 0));
    assert_eq!(three[0].line, 1);
    assert!(matches!(outcomes[1], AppendOutcome::Appended(_)));

    // A new object moves the generation on: the old reading is stale, nothing lands.
    store
        .insert_flow_object(
            &acme,
            FlowKind::Connection,
            json!({"id": "C2", "createdAt": 2})
                .as_object()
                .unwrap()
                .clone(),
            &Reference::None,
        )
        .await
        .unwrap();
    let outcomes = store
        .append_stream_groups(
            vec![
                group(
                    &acme,
                    Some(inlet.generation),
                    vec![record("D1", "{\"a\":3}")],
                ),
                group(&globex, None, vec![record("D2", "{\"g\":2}")]),
            ],
            11,
        )
        .await
        .unwrap();
    assert_eq!(outcomes[0], AppendOutcome::Stale);
    assert!(matches!(outcomes[1], AppendOutcome::Appended(_)));
    let fresh = store.inlet("cd34").await.unwrap().unwrap();
    assert!(fresh.generation > inlet.generation);
    // A deletion moves it on too.
    store
        .delete_flow_object(&acme, FlowKind::Connection, "C2")
        .await
        .unwrap();
    let outcomes = store
        .append_stream_groups(
            vec![group(
                &acme,
                Some(fresh.generation),
                vec![record("D1", "{\"a\":4}")],
            )],
            12,
        )
        .await
        .unwrap();
    assert_eq!(outcomes, vec![AppendOutcome::Stale]);

    let sealed = store.seal_stream_segments(i64::MAX, 1, 13).await.unwrap();
    let d1 = sealed.iter().find(|s| s.dataset_id == "D1").unwrap();
    let segment = store
        .stream_segment(&acme, &d1.batch_id, None, 1 << 20)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(segment.records, vec!["{\"a\":1}\n{\"a\":2}"]);
    assert_eq!(segment.record_count, 2);
    let d2 = sealed.iter().find(|s| s.dataset_id == "D2").unwrap();
    assert_eq!((d2.records, d2.tenant.org()), (2, globex.org()));
}

fn qs_doc(id: &str, state: &str, created_ms: i64, name: &str) -> Doc {
    let at = |ms: i64| format!("2024-01-01T00:00:{:02}.{:03}Z", ms / 1000, ms % 1000);
    as_object(json!({"id": id, "name": name, "state": state, "created": at(created_ms), "updated": at(created_ms)}))
        .unwrap()
}

fn qs_listing(kind: QsKind, pairs: &[(&str, &str)]) -> QsListing {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    QsListing::parse(kind, &pairs).unwrap()
}

async fn qs_ids(
    store: &dyn Metastore,
    tenant: &Tenant,
    kind: QsKind,
    pairs: &[(&str, &str)],
) -> Vec<String> {
    store
        .list_qs_objects(tenant, kind, &qs_listing(kind, pairs))
        .await
        .unwrap()
        .iter()
        .map(|doc| doc["id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn query_service_objects_list_update_cap_and_stay_in_their_tenant(store: &dyn Metastore) {
    let a = tenant("QSA", "prod");
    let b = tenant("QSB", "prod");
    let running = QsCap::RunningPerOrg {
        max: 3,
        stale_before: 0,
    };
    for (index, state) in ["SUCCESS", "IN_PROGRESS", "FAILED", "SUBMITTED"]
        .iter()
        .enumerate()
    {
        let id = format!("q{index}");
        let ms = 1000 * (index as i64 + 1);
        store
            .insert_qs_object(&a, QsKind::Query, qs_doc(&id, state, ms, &id), running)
            .await
            .unwrap();
    }
    // Two are running; a third fits, a fourth does not; other orgs are not counted.
    store
        .insert_qs_object(
            &a,
            QsKind::Query,
            qs_doc("q4", "SUBMITTED", 5000, "q4"),
            running,
        )
        .await
        .unwrap();
    let refused = store
        .insert_qs_object(
            &a,
            QsKind::Query,
            qs_doc("q5", "SUBMITTED", 6000, "q5"),
            running,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, MetastoreError::TooManyRequests(_)),
        "{refused}"
    );
    store
        .insert_qs_object(
            &b,
            QsKind::Query,
            qs_doc("q5", "SUBMITTED", 6000, "q5"),
            running,
        )
        .await
        .unwrap();
    // Queries whose heartbeat is older than stale_before do not count.
    store
        .insert_qs_object(
            &a,
            QsKind::Query,
            qs_doc("q6", "SUBMITTED", 6000, "q6"),
            QsCap::RunningPerOrg {
                max: 3,
                // 2024-01-01T00:00:02.500Z: q1's heartbeat is older.
                stale_before: 1_704_067_202_500,
            },
        )
        .await
        .unwrap();

    assert_eq!(
        qs_ids(store, &a, QsKind::Query, &[]).await,
        ["q6", "q4", "q3", "q2", "q1", "q0"]
    );
    assert_eq!(
        qs_ids(
            store,
            &a,
            QsKind::Query,
            &[("orderby", "+created"), ("limit", "2")]
        )
        .await,
        ["q0", "q1", "q2"],
        "a page holds one more object when a next page exists"
    );
    assert_eq!(
        qs_ids(
            store,
            &a,
            QsKind::Query,
            &[
                ("orderby", "+created"),
                ("limit", "2"),
                ("start", "2024-01-01T00:00:02.000Z")
            ]
        )
        .await,
        ["q2", "q3", "q4"]
    );
    assert_eq!(
        qs_ids(
            store,
            &a,
            QsKind::Query,
            &[("start", "2024-01-01T00:00:06.000Z"), ("startId", "q6")]
        )
        .await,
        ["q4", "q3", "q2", "q1", "q0"]
    );
    assert_eq!(
        qs_ids(
            store,
            &a,
            QsKind::Query,
            &[("property", "state!=SUBMITTED,created>=2024-01-01T00:00:02Z")]
        )
        .await,
        ["q2", "q1"]
    );
    assert_eq!(
        qs_ids(store, &a, QsKind::Query, &[("property", "id~6")]).await,
        ["q6"]
    );
    assert_eq!(
        qs_ids(store, &a, QsKind::Query, &[("start", "4")]).await,
        ["q1", "q0"]
    );
    assert_eq!(qs_ids(store, &b, QsKind::Query, &[]).await, ["q5"]);

    // Updates rewrite the listing columns; a change may decline; others' ids do not exist.
    let change: QsChange = Arc::new(|doc: &Doc| {
        let mut next = doc.clone();
        next.insert("state".into(), json!("KILLED"));
        next.insert("softDeleted".into(), json!(true));
        next.insert("updated".into(), json!("2024-01-01T00:00:09.000Z"));
        Ok(Some(next))
    });
    let killed = store
        .update_qs_object(
            &a,
            QsKind::Query,
            &QsObjectId::from("q4"),
            Arc::clone(&change),
        )
        .await
        .unwrap();
    assert_eq!(killed["state"], "KILLED");
    assert_eq!(
        qs_ids(store, &a, QsKind::Query, &[("property", "state==KILLED")]).await,
        Vec::<String>::new(),
        "soft-deleted queries are left out by default"
    );
    assert_eq!(
        qs_ids(
            store,
            &a,
            QsKind::Query,
            &[
                ("property", "state==KILLED"),
                ("excludeSoftDeleted", "false")
            ]
        )
        .await,
        ["q4"]
    );
    assert_eq!(
        qs_ids(
            store,
            &a,
            QsKind::Query,
            &[
                ("orderby", "-updated"),
                ("excludeSoftDeleted", "false"),
                ("limit", "1")
            ]
        )
        .await,
        ["q4", "q6"]
    );
    let unchanged = store
        .update_qs_object(
            &a,
            QsKind::Query,
            &QsObjectId::from("q0"),
            Arc::new(|_: &Doc| Ok(None)),
        )
        .await
        .unwrap();
    assert_eq!(unchanged["state"], "SUCCESS");
    let missing = store
        .update_qs_object(&b, QsKind::Query, &QsObjectId::from("q4"), change)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(
        store
            .get_qs_object(&b, QsKind::Query, &QsObjectId::from("q4"))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .get_qs_object(&a, QsKind::Query, &QsObjectId::from("q4"))
            .await
            .unwrap()
            .unwrap()["state"],
        "KILLED"
    );

    // Templates: their own kind, a per-sandbox cap, name filters, deletion.
    let cap = QsCap::PerSandbox(2);
    let mut template = qs_doc("t1", "", 1000, "daily loyalty");
    template.remove("state");
    store
        .insert_qs_object(&a, QsKind::Template, template.clone(), cap)
        .await
        .unwrap();
    template.insert("id".into(), json!("t2"));
    template.insert("name".into(), json!("weekly"));
    store
        .insert_qs_object(&a, QsKind::Template, template.clone(), cap)
        .await
        .unwrap();
    template.insert("id".into(), json!("t3"));
    let full = store
        .insert_qs_object(&a, QsKind::Template, template, cap)
        .await
        .unwrap_err();
    assert!(matches!(full, MetastoreError::LimitExceeded(_)), "{full}");
    assert_eq!(
        qs_ids(store, &a, QsKind::Template, &[("property", "name~loyal")]).await,
        ["t1"]
    );
    assert!(
        store
            .get_qs_object(&a, QsKind::Query, &QsObjectId::from("t1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !store
            .delete_qs_object(&b, QsKind::Template, &QsObjectId::from("t1"))
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_qs_object(&a, QsKind::Template, &QsObjectId::from("t1"))
            .await
            .unwrap()
    );
    assert!(
        store
            .get_qs_object(&a, QsKind::Template, &QsObjectId::from("t1"))
            .await
            .unwrap()
            .is_none()
    );
}
