//! Streaming, once for both backends (spec §10): the Flow Service objects that yield
//! inlets, and the durable append log of each dataset — records appended by the inlets,
//! sealed into numbered segments, each submitted as one Catalog batch and marked done by
//! the transaction that makes that batch terminal.
//!
//! **Locks** (PostgreSQL): an append and a seal both take the dataset's `stream_datasets`
//! row first, so a seal sees every record appended before it and none half-appended.

use lakeport_domain::flow::{self, FlowKind, Reference};
use lakeport_domain::ingest::JobKind;
use lakeport_domain::query::ObjectKind;
use lakeport_domain::status::BatchAction;
use lakeport_domain::tenant::Tenant;
use lakeport_domain::{Doc, ids};
use serde_json::Value;

use crate::backend::{Conn, FixedSql, Lock, encode_doc, fetch, fetch_one, fetch_opt, parse_doc};
use crate::catalog::{self, load};
use crate::ingest::{enqueue_job, to_i64};
use crate::{Inlet, MetastoreError, NewStreamRecord, SealedSegment, StreamSegment};

fn tenant_of(org: &str, sandbox: &str) -> Result<Tenant, MetastoreError> {
    Tenant::parse(org, sandbox).map_err(|err| MetastoreError::Backend {
        doing: "reading a stored tenant",
        source: Box::new(err),
    })
}

/// Returns one Flow Service object of the tenant.
pub(crate) async fn get_object<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: FlowKind,
    id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let text: Option<String> = fetch_opt(
        conn,
        "reading a flow object",
        "SELECT body FROM flow_objects WHERE org = $1 AND sandbox = $2 AND kind = $3 AND id = $4",
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &id],
    )
    .await?;
    text.as_deref().map(parse_doc).transpose()
}

/// Returns every object of a kind in the tenant, oldest first (at most
/// [`flow::MAX_OBJECTS_PER_KIND`]).
pub(crate) async fn list_objects<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: FlowKind,
) -> Result<Vec<Doc>, MetastoreError> {
    let texts: Vec<String> = fetch(
        conn,
        "listing flow objects",
        "SELECT body FROM flow_objects WHERE org = $1 AND sandbox = $2 AND kind = $3 ORDER BY created, id",
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str()],
    )
    .await?;
    texts.iter().map(|text| parse_doc(text)).collect()
}

fn bad_reference(message: String) -> MetastoreError {
    MetastoreError::InvalidReference(message)
}

/// Checks what a new object references, in the tenant.
async fn check_reference<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    reference: &Reference,
) -> Result<(), MetastoreError> {
    match reference {
        Reference::None => Ok(()),
        Reference::BaseConnection(id) => {
            if get_object(conn, tenant, FlowKind::Connection, id)
                .await?
                .is_none()
            {
                return Err(bad_reference(format!(
                    "baseConnectionId {id} names no base connection in this sandbox"
                )));
            }
            Ok(())
        }
        Reference::Dataset {
            dataset_id,
            schema_id,
        } => {
            let Some(dataset) =
                load(conn, tenant, ObjectKind::Dataset, dataset_id, Lock::Share).await?
            else {
                return Err(bad_reference(format!(
                    "params.dataSetId {dataset_id} names no dataset in this sandbox"
                )));
            };
            let dataset_schema = lakeport_domain::catalog::dataset_schema_id(&dataset);
            match (schema_id, dataset_schema) {
                (Some(asked), Some(actual)) if asked != actual => Err(bad_reference(format!(
                    "data.schema.id {asked} is not the schema of dataset {dataset_id} ({actual})"
                ))),
                (Some(asked), None) => Err(bad_reference(format!(
                    "data.schema.id {asked} is given but dataset {dataset_id} has no schemaRef"
                ))),
                _ => Ok(()),
            }
        }
        Reference::Connections { source, target } => {
            if get_object(conn, tenant, FlowKind::SourceConnection, source)
                .await?
                .is_none()
            {
                return Err(bad_reference(format!(
                    "sourceConnectionIds: {source} names no source connection in this sandbox"
                )));
            }
            if get_object(conn, tenant, FlowKind::TargetConnection, target)
                .await?
                .is_none()
            {
                return Err(bad_reference(format!(
                    "targetConnectionIds: {target} names no target connection in this sandbox"
                )));
            }
            Ok(())
        }
    }
}

/// Stores a new Flow Service object after checking its references and the per-kind limit.
pub(crate) async fn insert_object<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: FlowKind,
    doc: Doc,
    reference: &Reference,
) -> Result<Doc, MetastoreError> {
    check_reference(conn, tenant, reference).await?;
    let count: i64 = fetch_one(
        conn,
        "counting flow objects",
        "SELECT COUNT(*) FROM flow_objects WHERE org = $1 AND sandbox = $2 AND kind = $3",
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str()],
    )
    .await?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= flow::MAX_OBJECTS_PER_KIND {
        return Err(MetastoreError::LimitExceeded(format!(
            "this sandbox already holds {count} {}s; at most {} are allowed",
            kind.noun(),
            flow::MAX_OBJECTS_PER_KIND
        )));
    }
    let id = lakeport_domain::catalog::object_id(&doc)
        .unwrap_or_default()
        .to_owned();
    let created = flow::created_at(&doc);
    let inlet = flow::inlet_id_of(&doc).map(str::to_owned);
    let text = encode_doc(&doc)?;
    conn.execute(
        "storing a flow object",
        "INSERT INTO flow_objects (org, sandbox, kind, id, created, inlet_id, body) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &id, &created, &inlet, &text],
    )
    .await?;
    Ok(doc)
}

/// Deletes an object unless another one still uses it; returns false when it did not exist.
pub(crate) async fn delete_object<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: FlowKind,
    id: &str,
) -> Result<bool, MetastoreError> {
    let user = match kind {
        FlowKind::Connection => Some(FlowKind::SourceConnection),
        FlowKind::SourceConnection | FlowKind::TargetConnection => Some(FlowKind::Flow),
        FlowKind::Flow => None,
    };
    if let Some(user) = user
        && get_object(conn, tenant, kind, id).await?.is_some()
    {
        let sql = format!(
            "SELECT id FROM flow_objects WHERE org = $1 AND sandbox = $2 AND kind = $3 AND {}",
            C::Dialect::contains("body", "$4")
        );
        let candidates: Vec<String> = fetch(
            conn,
            "finding users of a flow object",
            &sql,
            &[&tenant.org(), &tenant.sandbox(), &user.as_str(), &id],
        )
        .await?;
        for candidate in candidates {
            let Some(doc) = get_object(conn, tenant, user, &candidate).await? else {
                continue;
            };
            let uses = match kind {
                FlowKind::Connection => flow::base_connection_id(&doc) == Some(id),
                FlowKind::SourceConnection => {
                    flow::ids_of(&doc, "sourceConnectionIds").contains(&id)
                }
                _ => flow::ids_of(&doc, "targetConnectionIds").contains(&id),
            };
            if uses {
                return Err(MetastoreError::InUse(format!(
                    "{} {id} is still used by {} {candidate}; delete that first",
                    kind.noun(),
                    user.noun()
                )));
            }
        }
    }
    let deleted = conn
        .execute(
            "deleting a flow object",
            "DELETE FROM flow_objects WHERE org = $1 AND sandbox = $2 AND kind = $3 AND id = $4",
            &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &id],
        )
        .await?;
    Ok(deleted > 0)
}

/// Returns the inlet with this id, in whatever tenant owns it, with the flows it feeds.
pub(crate) async fn inlet<C: Conn>(
    conn: &mut C,
    inlet_id: &str,
) -> Result<Option<Inlet>, MetastoreError> {
    let row: Option<(String, String, String)> = fetch_opt(
        conn,
        "finding an inlet",
        "SELECT org, sandbox, body FROM flow_objects WHERE inlet_id = $1",
        &[&inlet_id],
    )
    .await?;
    let Some((org, sandbox, text)) = row else {
        return Ok(None);
    };
    let tenant = tenant_of(&org, &sandbox)?;
    let connection = parse_doc(&text)?;
    let connection_id = lakeport_domain::catalog::object_id(&connection)
        .unwrap_or_default()
        .to_owned();
    let sources = list_objects(conn, &tenant, FlowKind::SourceConnection).await?;
    let targets = list_objects(conn, &tenant, FlowKind::TargetConnection).await?;
    let flows = list_objects(conn, &tenant, FlowKind::Flow).await?;
    let flows = flow::inlet_flows(&connection_id, &sources, &targets, &flows);
    Ok(Some(Inlet {
        tenant,
        connection,
        flows,
    }))
}

/// Appends records to their datasets' open segments; returns their sequence numbers.
pub(crate) async fn append<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    records: &[NewStreamRecord],
    now: i64,
) -> Result<Vec<i64>, MetastoreError> {
    let mut datasets: Vec<(&str, i64)> = Vec::new();
    for record in records {
        let size = to_i64(record.body.len() as u64);
        match datasets.iter_mut().find(|(id, _)| *id == record.dataset_id) {
            Some((_, bytes)) => *bytes += size,
            None => datasets.push((&record.dataset_id, size)),
        }
    }
    // The dataset rows first, in one order, so that concurrent appends do not deadlock.
    datasets.sort_unstable();
    for (dataset_id, bytes) in &datasets {
        conn.execute(
            "opening a stream segment",
            "INSERT INTO stream_datasets (org, sandbox, dataset_id, next_segment, open_since, open_bytes) VALUES ($1, $2, $3, 1, $4, $5)
             ON CONFLICT (org, sandbox, dataset_id) DO UPDATE SET open_since = COALESCE(stream_datasets.open_since, excluded.open_since), open_bytes = stream_datasets.open_bytes + excluded.open_bytes",
            &[&tenant.org(), &tenant.sandbox(), dataset_id, &now, bytes],
        )
        .await?;
    }
    let mut sequence = Vec::with_capacity(records.len());
    for record in records {
        let size = to_i64(record.body.len() as u64);
        let id: i64 = fetch_one(
            conn,
            "appending a stream record",
            "INSERT INTO stream_records (org, sandbox, dataset_id, segment, received, connection_id, size, body) VALUES ($1, $2, $3, NULL, $4, $5, $6, $7) RETURNING id",
            &[&tenant.org(), &tenant.sandbox(), &record.dataset_id, &record.received, &record.connection_id, &size, &record.body],
        )
        .await?;
        sequence.push(id);
    }
    Ok(sequence)
}

/// Seals every open segment whose oldest record arrived at or before `opened_before` or
/// that holds `max_bytes` or more (at most `limit` per call), each with the next segment
/// number of its dataset and a batch id, and enqueues its flush in the same transaction.
pub(crate) async fn seal_due<C: Conn>(
    conn: &mut C,
    opened_before: i64,
    max_bytes: i64,
    limit: i64,
    now: i64,
) -> Result<Vec<SealedSegment>, MetastoreError> {
    let due: Vec<(String, String, String)> = fetch(
        conn,
        "finding stream segments to seal",
        "SELECT org, sandbox, dataset_id FROM stream_datasets WHERE open_since IS NOT NULL AND (open_since <= $1 OR open_bytes >= $2) ORDER BY open_since LIMIT $3",
        &[&opened_before, &max_bytes, &limit],
    )
    .await?;
    let mut sealed = Vec::with_capacity(due.len());
    for (org, sandbox, dataset_id) in due {
        let tenant = tenant_of(&org, &sandbox)?;
        let sql = format!(
            "SELECT next_segment, open_since, open_bytes FROM stream_datasets WHERE org = $1 AND sandbox = $2 AND dataset_id = $3{}",
            C::Dialect::lock(Lock::Update)
        );
        let row: Option<(i64, Option<i64>, i64)> = fetch_opt(
            conn,
            "locking a stream dataset",
            &sql,
            &[&org, &sandbox, &dataset_id],
        )
        .await?;
        // Another node sealed it since the scan.
        let Some((segment, Some(open_since), open_bytes)) = row else {
            continue;
        };
        if open_since > opened_before && open_bytes < max_bytes {
            continue;
        }
        let moved = conn
            .execute(
                "sealing a stream segment",
                "UPDATE stream_records SET segment = $4 WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND segment IS NULL",
                &[&org, &sandbox, &dataset_id, &segment],
            )
            .await?;
        conn.execute(
            "advancing a dataset's segment number",
            "UPDATE stream_datasets SET next_segment = $4, open_since = NULL, open_bytes = 0 WHERE org = $1 AND sandbox = $2 AND dataset_id = $3",
            &[&org, &sandbox, &dataset_id, &(segment + 1)],
        )
        .await?;
        if moved == 0 {
            continue;
        }
        let (records, bytes): (i64, i64) = fetch_one(
            conn,
            "measuring a sealed segment",
            "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND segment = $4",
            &[&org, &sandbox, &dataset_id, &segment],
        )
        .await?;
        let batch_id = ids::new_ulid();
        conn.execute(
            "recording a sealed segment",
            "INSERT INTO stream_segments (org, sandbox, dataset_id, segment, batch_id, records, bytes, done, created) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
            &[&org, &sandbox, &dataset_id, &segment, &batch_id, &records, &bytes, &now],
        )
        .await?;
        enqueue_job(conn, &tenant, JobKind::FlushSegment, &batch_id, now, now).await?;
        sealed.push(SealedSegment {
            tenant,
            dataset_id,
            segment,
            batch_id,
            records: u64::try_from(records).unwrap_or_default(),
            bytes: u64::try_from(bytes).unwrap_or_default(),
        });
    }
    Ok(sealed)
}

type SegmentRow = (String, i64, i64);

async fn segment_row<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    lock: Lock,
) -> Result<Option<SegmentRow>, MetastoreError> {
    let sql = format!(
        "SELECT dataset_id, segment, done FROM stream_segments WHERE org = $1 AND sandbox = $2 AND batch_id = $3{}",
        C::Dialect::lock(lock)
    );
    fetch_opt(
        conn,
        "reading a stream segment",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await
}

/// Returns the segment that becomes batch `batch_id`, with its records in order.
pub(crate) async fn segment<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Option<StreamSegment>, MetastoreError> {
    let Some((dataset_id, segment, done)) = segment_row(conn, tenant, batch_id, Lock::None).await?
    else {
        return Ok(None);
    };
    let rows: Vec<(String, String)> = fetch(
        conn,
        "reading a segment's records",
        "SELECT connection_id, body FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND segment = $4 ORDER BY id",
        &[&tenant.org(), &tenant.sandbox(), &dataset_id, &segment],
    )
    .await?;
    let mut connections: Vec<String> = Vec::new();
    let mut records = Vec::with_capacity(rows.len());
    for (connection, body) in rows {
        if !connections.contains(&connection) {
            connections.push(connection);
        }
        records.push(body);
    }
    Ok(Some(StreamSegment {
        dataset_id,
        segment,
        batch_id: batch_id.to_owned(),
        done: done != 0,
        connections,
        records,
    }))
}

/// Marks a segment done and drops its records (it is in a terminal batch, or its dataset
/// is gone).
pub(crate) async fn mark_done<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<(), MetastoreError> {
    let Some((dataset_id, segment, _)) = segment_row(conn, tenant, batch_id, Lock::Update).await?
    else {
        return Ok(());
    };
    conn.execute(
        "marking a stream segment done",
        "UPDATE stream_segments SET done = 1 WHERE org = $1 AND sandbox = $2 AND batch_id = $3",
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await?;
    conn.execute(
        "dropping a done segment's records",
        "DELETE FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND segment = $4",
        &[&tenant.org(), &tenant.sandbox(), &dataset_id, &segment],
    )
    .await?;
    Ok(())
}

/// Turns a sealed segment into its Catalog batch in one transaction: the batch (id and
/// `externalId` fixed by the segment), its one staged file, COMPLETE and the promotion
/// job. Returns false when there was nothing to do (the batch exists, the segment is done,
/// or its dataset is gone, in which case the segment is dropped).
pub(crate) async fn submit<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    upload_id: &str,
    size: u64,
    now: i64,
) -> Result<bool, MetastoreError> {
    let Some((dataset_id, segment, done)) =
        segment_row(conn, tenant, batch_id, Lock::Update).await?
    else {
        return Ok(false);
    };
    if done != 0
        || load(conn, tenant, ObjectKind::Batch, batch_id, Lock::None)
            .await?
            .is_some()
    {
        return Ok(false);
    }
    let actor = flow::stream_actor();
    let request = flow::segment_batch_request(&dataset_id, segment);
    let mut batch =
        match catalog::create_import_batch(conn, tenant, &request, batch_id, &actor, now).await {
            Ok(batch) => batch,
            Err(MetastoreError::UnknownDataset { .. }) => {
                mark_done(conn, tenant, batch_id).await?;
                return Ok(false);
            }
            Err(err) => return Err(err),
        };
    // `relatedObjects`: the dataset, then each base connection whose records it holds.
    let connections: Vec<String> = fetch(
        conn,
        "listing a segment's connections",
        "SELECT DISTINCT connection_id FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND segment = $4 ORDER BY connection_id",
        &[&tenant.org(), &tenant.sandbox(), &dataset_id, &segment],
    )
    .await?;
    if let Some(Value::Array(related)) = batch.get_mut("relatedObjects") {
        related.extend(
            connections
                .into_iter()
                .map(|id| serde_json::json!({"type": "connection", "id": id})),
        );
    }
    catalog::store(
        conn,
        tenant,
        ObjectKind::Batch,
        &batch,
        catalog::StoreMode::Update,
    )
    .await?;
    conn.execute(
        "recording a segment's file",
        "INSERT INTO batch_files (org, sandbox, batch_id, path, size, upload_id, chunks, updated) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)",
        &[&tenant.org(), &tenant.sandbox(), &batch_id, &flow::SEGMENT_FILE, &to_i64(size), &upload_id, &now],
    )
    .await?;
    crate::ingest::signal_batch(
        conn,
        tenant,
        batch_id,
        BatchAction::Complete,
        &actor,
        now,
        0,
    )
    .await?;
    Ok(true)
}
