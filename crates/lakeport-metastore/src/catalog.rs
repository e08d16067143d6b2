//! The Catalog's document operations, once for both backends: load and store a document
//! with its indexed columns, inserts with their uniqueness checks, versioned updates,
//! deletes, and the creation of import batches.
//!
//! **Locks** (PostgreSQL; SQLite's single writer needs none) are taken in one order — job,
//! batch(es), dataset, dataset files — so that concurrent transactions queue instead of
//! deadlocking; a deadlock that still happens is retried by the backend.

use std::sync::{Arc, Mutex, PoisonError};

use lakeport_domain::catalog::import::{NewImportBatch, build_import_batch, check_predecessor};
use lakeport_domain::catalog::{self, Actor, WriteContext};
use lakeport_domain::query::{ListQuery, ObjectKind, version_key};
use lakeport_domain::status::BatchStatus;
use lakeport_domain::tenant::Tenant;
use lakeport_domain::{Doc, now_millis};
use serde_json::Value;

use crate::backend::{
    Conn, FixedSql, Lock, ToParam, encode_doc, fetch, fetch_built, fetch_one, fetch_opt, parse_doc,
};
use crate::sql::{self, Bind, Dialect, Statement, table};
use crate::{DocChange, MetastoreError, UpdateOptions};

pub(crate) fn field_str<'a>(doc: &'a Doc, field: &str) -> Option<&'a str> {
    doc.get(field).and_then(Value::as_str)
}

fn field_int(doc: &Doc, field: &str) -> i64 {
    doc.get(field).and_then(Value::as_i64).unwrap_or_default()
}

/// Reads one object, with a row lock.
pub(crate) async fn load<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    lock: Lock,
) -> Result<Option<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT {} FROM {} WHERE org = $1 AND sandbox = $2 AND id = $3{}",
        C::Dialect::BODY,
        table(kind).name,
        C::Dialect::lock(lock)
    );
    let params: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &id];
    let text: Option<String> = fetch_opt(conn, "reading an object", &sql, &params).await?;
    text.as_deref().map(parse_doc).transpose()
}

async fn load_batch_by_external_id<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    external_id: &str,
    lock: Lock,
) -> Result<Option<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT {} FROM batches WHERE org = $1 AND sandbox = $2 AND external_id = $3{}",
        C::Dialect::BODY,
        C::Dialect::lock(lock)
    );
    let params: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &external_id];
    let text: Option<String> =
        fetch_opt(conn, "looking up a batch by externalId", &sql, &params).await?;
    text.as_deref().map(parse_doc).transpose()
}

/// Returns whether the id and (for batches) the externalId are taken in the tenant.
async fn taken<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    external_id: Option<&str>,
) -> Result<(bool, bool), MetastoreError> {
    let exists = |column: &str, placeholder: &str, table: &str| {
        format!(
            "EXISTS (SELECT 1 FROM {table} WHERE org = $1 AND sandbox = $2 AND {column} = {placeholder})"
        )
    };
    let id_taken = exists("id", "$3", table(kind).name);
    match external_id {
        Some(external_id) => {
            let sql = format!(
                "SELECT {id_taken}, {}",
                exists("external_id", "$4", "batches")
            );
            let params: [&dyn ToParam; 4] = [&tenant.org(), &tenant.sandbox(), &id, &external_id];
            fetch_one(conn, "checking ids", &sql, &params).await
        }
        None => {
            let params: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &id];
            let taken: bool =
                fetch_one(conn, "checking ids", &format!("SELECT {id_taken}"), &params).await?;
            Ok((taken, false))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreMode {
    Insert,
    Update,
}

/// Writes a document into its table, inserting or replacing the row of its id, and keeps
/// the indexed columns in step with the document.
pub(crate) async fn store<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    doc: &Doc,
    mode: StoreMode,
) -> Result<(), MetastoreError> {
    let text = encode_doc(doc)?;
    let id = catalog::object_id(doc).unwrap_or_default();
    let created = field_int(doc, "created");
    let updated = field_int(doc, "updated");
    let version = catalog::object_version(doc)
        .and_then(version_key)
        .unwrap_or_default();
    let (columns, extra): (&[&str], Vec<Option<&str>>) = match kind {
        ObjectKind::Dataset => (&["name"], vec![field_str(doc, "name")]),
        ObjectKind::Batch => (
            &["status", "dataset_id", "external_id"],
            vec![
                Some(catalog::batch_status(doc).map_or("loading", BatchStatus::as_str)),
                catalog::batch_dataset_id(doc),
                Some(catalog::batch_external_id(doc).unwrap_or(id)),
            ],
        ),
        ObjectKind::DatasetFile => (
            &["dataset_id", "batch_id"],
            vec![field_str(doc, "dataSetId"), field_str(doc, "batchId")],
        ),
    };
    // $1-$3 key the row, $4-$6 are the common columns, then the extra columns, then the
    // document text.
    let body = format!("${}", 7 + columns.len());
    let table = table(kind).name;
    let sql = match mode {
        StoreMode::Insert => {
            let placeholders: Vec<String> =
                (0..columns.len()).map(|i| format!("${}", 7 + i)).collect();
            format!(
                "INSERT INTO {table} (org, sandbox, id, created, updated, version_key, {}, {}) VALUES ($1, $2, $3, $4, $5, $6, {}, {})",
                columns.join(", "),
                C::Dialect::doc_columns(),
                placeholders.join(", "),
                C::Dialect::doc_values(&body),
            )
        }
        StoreMode::Update => {
            let assignments: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, column)| format!("{column} = ${}", 7 + i))
                .collect();
            format!(
                "UPDATE {table} SET created = $4, updated = $5, version_key = $6, {}, {} WHERE org = $1 AND sandbox = $2 AND id = $3",
                assignments.join(", "),
                C::Dialect::set_doc(&body),
            )
        }
    };
    let (org, sandbox) = (tenant.org(), tenant.sandbox());
    let mut params: Vec<&dyn ToParam> = vec![&org, &sandbox, &id, &created, &updated, &version];
    for value in &extra {
        params.push(value);
    }
    params.push(&text);
    conn.execute("writing an object", &sql, &params).await?;
    Ok(())
}

/// Records a batch's creation or status change on its dataset (if the dataset exists),
/// locking the dataset row first.
pub(crate) async fn record_on_dataset<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch: &Doc,
    dataset: Option<Doc>,
    created: bool,
) -> Result<(), MetastoreError> {
    let (Some(dataset_id), Some(status), Some(batch_id)) = (
        catalog::batch_dataset_id(batch),
        catalog::batch_status(batch),
        catalog::object_id(batch),
    ) else {
        return Ok(());
    };
    let dataset = match dataset {
        Some(dataset) => Some(dataset),
        None => load(conn, tenant, ObjectKind::Dataset, dataset_id, Lock::Update).await?,
    };
    let Some(mut dataset) = dataset else {
        return Ok(());
    };
    catalog::record_batch_on_dataset(&mut dataset, batch_id, status, created);
    store(
        conn,
        tenant,
        ObjectKind::Dataset,
        &dataset,
        StoreMode::Update,
    )
    .await
}

/// Inserts an object. The explicit check answers the id before the externalId; on
/// PostgreSQL the unique constraints give the same answers to a concurrent insert that
/// passed the check at the same time.
async fn insert_in<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    doc: &Doc,
    dataset: Option<Doc>,
) -> Result<(), MetastoreError> {
    let id = catalog::object_id(doc).unwrap_or_default();
    let external_id =
        (kind == ObjectKind::Batch).then(|| catalog::batch_external_id(doc).unwrap_or(id));
    let already_exists = || MetastoreError::AlreadyExists {
        kind,
        id: id.to_owned(),
    };
    let duplicate_external_id = || MetastoreError::DuplicateExternalId {
        external_id: external_id.unwrap_or_default().to_owned(),
    };
    let (id_taken, external_id_taken) = taken(conn, tenant, kind, id, external_id).await?;
    if id_taken {
        return Err(already_exists());
    }
    if external_id_taken {
        return Err(duplicate_external_id());
    }
    if let Err(err) = store(conn, tenant, kind, doc, StoreMode::Insert).await {
        return Err(match C::unique_violation(&err) {
            Some("batches_external_id_key") => duplicate_external_id(),
            Some(_) => already_exists(),
            None => err,
        });
    }
    if kind == ObjectKind::Batch {
        record_on_dataset(conn, tenant, doc, dataset, true).await?;
    }
    Ok(())
}

pub(crate) async fn insert<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    doc: Doc,
) -> Result<Doc, MetastoreError> {
    insert_in(conn, tenant, kind, &doc, None).await?;
    Ok(doc)
}

/// Returns the objects with these ids, in the order asked, each once.
pub(crate) async fn get<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    ids: &[String],
) -> Result<Vec<Doc>, MetastoreError> {
    let mut unique: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(id) {
            unique.push(id.clone());
        }
    }
    let mut statement = Statement {
        binds: vec![
            Bind::Text(tenant.org().to_owned()),
            Bind::Text(tenant.sandbox().to_owned()),
        ],
        ..Statement::default()
    };
    let list = statement.list(&unique);
    statement.sql = format!(
        "SELECT id, {} FROM {} WHERE org = $1 AND sandbox = $2 AND id IN ({list})",
        C::Dialect::BODY,
        table(kind).name
    );
    let found: Vec<(String, String)> = fetch_built(conn, "reading objects", &statement).await?;
    let mut docs = Vec::with_capacity(found.len());
    for id in &unique {
        if let Some((_, text)) = found.iter().find(|(found_id, _)| found_id == id) {
            docs.push(parse_doc(text)?);
        }
    }
    Ok(docs)
}

pub(crate) async fn list<C: Conn>(
    conn: &mut C,
    statement: &Statement,
) -> Result<Vec<Doc>, MetastoreError> {
    let texts: Vec<String> = fetch_built(conn, "listing objects", statement).await?;
    texts.iter().map(|text| parse_doc(text)).collect()
}

pub(crate) async fn count<C: Conn>(
    conn: &mut C,
    statement: &Statement,
) -> Result<u64, MetastoreError> {
    let counts: Vec<i64> = fetch_built(conn, "counting objects", statement).await?;
    Ok(u64::try_from(counts.first().copied().unwrap_or_default()).unwrap_or_default())
}

/// Builds the statements of [`list`] and [`count`] outside the transaction.
pub(crate) fn list_statement<D: Dialect>(
    tenant: &Tenant,
    kind: ObjectKind,
    query: &ListQuery,
    page: bool,
) -> Statement {
    if page {
        sql::select_page::<D>(kind, tenant.org(), tenant.sandbox(), query)
    } else {
        sql::select_count::<D>(kind, tenant.org(), tenant.sandbox(), query)
    }
}

/// What [`update`] carries between attempts of its transaction: the change runs once, so a
/// retry reuses its result if the object is still as the change saw it.
pub(crate) struct PendingChange {
    change: Option<DocChange>,
    applied: Option<(Doc, Doc)>,
}

impl PendingChange {
    pub(crate) fn new(change: DocChange) -> Arc<Mutex<Self>> {
        Arc::new(Mutex::new(Self {
            change: Some(change),
            applied: None,
        }))
    }
}

pub(crate) async fn update<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    options: &UpdateOptions,
    pending: &Mutex<PendingChange>,
) -> Result<Doc, MetastoreError> {
    let Some(current) = load(conn, tenant, kind, id, Lock::Update).await? else {
        return Err(MetastoreError::NotFound {
            kind,
            id: id.to_owned(),
        });
    };
    let version = catalog::object_version(&current).unwrap_or_default();
    if let Some(expected) = &options.if_match
        && !catalog::if_match_accepts(expected, version)
    {
        return Err(MetastoreError::VersionMismatch {
            expected: expected.clone(),
            actual: version.to_owned(),
        });
    }
    // Take every lock before the change runs, so that a deadlock can only happen (and be
    // retried) before the change is spent.
    if kind == ObjectKind::Batch
        && let Some(dataset_id) = catalog::batch_dataset_id(&current)
    {
        load(conn, tenant, ObjectKind::Dataset, dataset_id, Lock::Update).await?;
    }
    let next = {
        let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
        match pending.change.take() {
            Some(change) => {
                let next = change(&current)?;
                pending.applied = Some((current.clone(), next.clone()));
                next
            }
            None => match &pending.applied {
                Some((seen, next)) if *seen == current => next.clone(),
                _ => return Err(MetastoreError::ConcurrentChange { id: id.to_owned() }),
            },
        }
    };
    debug_assert_eq!(
        catalog::object_id(&next),
        Some(id),
        "a change never alters the id"
    );
    store(conn, tenant, kind, &next, StoreMode::Update).await?;
    if kind == ObjectKind::Batch && catalog::batch_status(&current) != catalog::batch_status(&next)
    {
        record_on_dataset(conn, tenant, &next, None, false).await?;
    }
    Ok(next)
}

pub(crate) async fn delete<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    actor: &Actor,
) -> Result<bool, MetastoreError> {
    let key: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &id];
    if kind == ObjectKind::Dataset && C::Dialect::LOCKS {
        // Batches before their dataset, the order every other write locks in.
        let sql = format!(
            "SELECT 1 FROM batches WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 ORDER BY id{}",
            C::Dialect::lock(Lock::Update)
        );
        conn.query("locking the batches of a dataset", &sql, &key)
            .await?;
    }
    let sql = format!(
        "DELETE FROM {} WHERE org = $1 AND sandbox = $2 AND id = $3",
        table(kind).name
    );
    let deleted = conn.execute("deleting an object", &sql, &key).await? > 0;
    if !deleted {
        return Ok(false);
    }
    let owned_files = match kind {
        ObjectKind::Dataset => Some("dataset_id"),
        ObjectKind::Batch => Some("batch_id"),
        ObjectKind::DatasetFile => None,
    };
    if let Some(column) = owned_files {
        let sql =
            format!("DELETE FROM dataset_files WHERE org = $1 AND sandbox = $2 AND {column} = $3");
        conn.execute("deleting dataset files", &sql, &key).await?;
    }
    if kind == ObjectKind::Dataset {
        mark_batches_deleted(conn, tenant, id, actor).await?;
    }
    if kind == ObjectKind::Batch {
        // A streamed segment whose batch is deleted is done: no later flush recreates it.
        crate::stream::mark_done(conn, tenant, id).await?;
    }
    Ok(true)
}

async fn mark_batches_deleted<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    dataset_id: &str,
    actor: &Actor,
) -> Result<(), MetastoreError> {
    let sql = format!(
        "SELECT {} FROM batches WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND status <> 'deleted' ORDER BY id{}",
        C::Dialect::BODY,
        C::Dialect::lock(Lock::Update)
    );
    let params: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &dataset_id];
    let texts: Vec<String> = fetch(
        conn,
        "reading the batches of a deleted dataset",
        &sql,
        &params,
    )
    .await?;
    let ctx = WriteContext {
        tenant,
        actor,
        now: now_millis(),
    };
    for text in texts {
        let mut batch = parse_doc(&text)?;
        batch.insert("status".into(), Value::from(BatchStatus::Deleted.as_str()));
        catalog::touch(&mut batch, &ctx);
        store(conn, tenant, ObjectKind::Batch, &batch, StoreMode::Update).await?;
    }
    Ok(())
}

pub(crate) async fn create_import_batch<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    request: &NewImportBatch,
    batch_id: &str,
    actor: &Actor,
    now: i64,
) -> Result<Doc, MetastoreError> {
    let unknown_dataset = || MetastoreError::UnknownDataset {
        id: request.dataset_id.clone(),
    };
    // Batches are locked before their dataset (the order every write keeps), so with
    // predecessors the dataset is only checked here and locked below.
    let first_lock = if request.replay.is_some() {
        Lock::None
    } else {
        Lock::Update
    };
    let dataset_id = request.dataset_id.as_str();
    let dataset = load(conn, tenant, ObjectKind::Dataset, dataset_id, first_lock)
        .await?
        .ok_or_else(unknown_dataset)?;
    let mut replay_ids = Vec::new();
    if let Some(replay) = &request.replay {
        for reference in &replay.predecessors {
            let predecessor = load(conn, tenant, ObjectKind::Batch, reference, Lock::Share).await?;
            replay_ids.push(check_predecessor(
                reference,
                predecessor.as_ref(),
                dataset_id,
            )?);
        }
        for reference in &replay.predecessors_by_external_id {
            let predecessor =
                load_batch_by_external_id(conn, tenant, reference, Lock::Share).await?;
            let id = check_predecessor(reference, predecessor.as_ref(), dataset_id)?;
            if !replay_ids.contains(&id) {
                replay_ids.push(id);
            }
        }
    }
    let dataset = if first_lock == Lock::Update || !C::Dialect::LOCKS {
        dataset
    } else {
        load(conn, tenant, ObjectKind::Dataset, dataset_id, Lock::Update)
            .await?
            .ok_or_else(unknown_dataset)?
    };
    let ctx = WriteContext { tenant, actor, now };
    let doc = build_import_batch(request, &dataset, batch_id, &replay_ids, &ctx);
    insert_in(conn, tenant, ObjectKind::Batch, &doc, Some(dataset)).await?;
    Ok(doc)
}

/// Returns up to `limit` datasets of every tenant after `after` (org, sandbox, id), in that
/// order: a start-up conversion walks every dataset once, a page at a time.
pub(crate) async fn all_datasets<C: Conn>(
    conn: &mut C,
    after: &(String, String, String),
    limit: u32,
) -> Result<Vec<(Tenant, Doc)>, MetastoreError> {
    let sql = format!(
        "SELECT org, sandbox, {} FROM datasets
         WHERE org > $1 OR (org = $1 AND sandbox > $2) OR (org = $1 AND sandbox = $2 AND id > $3)
         ORDER BY org, sandbox, id LIMIT $4",
        C::Dialect::BODY
    );
    let limit = i64::from(limit);
    let rows: Vec<(String, String, String)> = fetch(
        conn,
        "reading every tenant's datasets",
        &sql,
        &[&after.0, &after.1, &after.2, &limit],
    )
    .await?;
    rows.into_iter()
        .map(|(org, sandbox, text)| {
            let tenant = Tenant::parse(&org, &sandbox).map_err(|err| MetastoreError::Backend {
                doing: "reading a dataset's tenant",
                source: Box::new(err),
            })?;
            Ok((tenant, parse_doc(&text)?))
        })
        .collect()
}
