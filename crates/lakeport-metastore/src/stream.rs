//! Streaming, once for both backends (spec §10): the Flow Service objects that yield
//! inlets, and the durable append log of each dataset — records appended by the inlets,
//! sealed into numbered segments, each submitted as one Catalog batch and marked done by
//! the transaction that makes that batch terminal.
//!
//! **Segments are id ranges.** A segment is its dataset's records with `after_id < id <=
//! last_id`; a dataset's open segment is its records after `sealed_through`. Sealing writes
//! two small rows and never touches the records, so it costs the same for 1 KB or 64 MB.
//!
//! **Locks** (PostgreSQL): an append and a seal both take the dataset's `stream_datasets`
//! row first, so a seal sees every record appended before it and none half-appended.

use std::collections::HashMap;

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
use crate::{
    AppendOutcome, AppendedRecord, Inlet, MetastoreError, SealedSegment, StreamAppend,
    StreamSegment,
};

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
    advance_generation(conn, tenant).await?;
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
    if deleted > 0 {
        advance_generation(conn, tenant).await?;
    }
    Ok(deleted > 0)
}

/// Returns the inlet with this id, in whatever tenant owns it, with the flows it feeds.
pub(crate) async fn inlet<C: Conn>(
    conn: &mut C,
    inlet_id: &str,
) -> Result<Option<Inlet>, MetastoreError> {
    let owner: Option<(String, String)> = fetch_opt(
        conn,
        "finding an inlet",
        "SELECT org, sandbox FROM flow_objects WHERE inlet_id = $1",
        &[&inlet_id],
    )
    .await?;
    let Some((org, sandbox)) = owner else {
        return Ok(None);
    };
    let tenant = tenant_of(&org, &sandbox)?;
    // The generation before every object is read (on PostgreSQL each statement sees the
    // commits made before it): a change committed after this reading makes the inlet stale,
    // one committed before it is in what is read next.
    let generation = generation(conn, &tenant, Lock::None).await?;
    let text: Option<String> = fetch_opt(
        conn,
        "reading an inlet's connection",
        "SELECT body FROM flow_objects WHERE inlet_id = $1 AND org = $2 AND sandbox = $3",
        &[&inlet_id, &tenant.org(), &tenant.sandbox()],
    )
    .await?;
    let Some(text) = text else {
        // Deleted between the two reads.
        return Ok(None);
    };
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
        generation,
    }))
}

/// Returns the tenant's Flow Service generation (0 before its first object).
async fn generation<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    lock: Lock,
) -> Result<i64, MetastoreError> {
    let sql = format!(
        "SELECT generation FROM flow_generations WHERE org = $1 AND sandbox = $2{}",
        C::Dialect::lock(lock)
    );
    let found: Option<i64> = fetch_opt(
        conn,
        "reading a Flow Service generation",
        &sql,
        &[&tenant.org(), &tenant.sandbox()],
    )
    .await?;
    Ok(found.unwrap_or(0))
}

/// Advances the tenant's Flow Service generation (in the transaction that changes one of
/// its objects), so appends routed with an older reading are refused as stale.
async fn advance_generation<C: Conn>(conn: &mut C, tenant: &Tenant) -> Result<(), MetastoreError> {
    conn.execute(
        "advancing a Flow Service generation",
        "INSERT INTO flow_generations (org, sandbox, generation) VALUES ($1, $2, 1)
         ON CONFLICT (org, sandbox) DO UPDATE SET generation = flow_generations.generation + 1",
        &[&tenant.org(), &tenant.sandbox()],
    )
    .await?;
    Ok(())
}

/// Appends several requests' records in one transaction. Each tenant's generation is read
/// first (PostgreSQL: `FOR SHARE`, so a concurrent Flow Service change waits for this
/// commit or this append sees it); a request routed with an older generation is `Stale`
/// and appends nothing. The records of one tenant, dataset and connection become one chunk
/// row (JSON Lines), whatever request they came from, in request order.
pub(crate) async fn append<C: Conn>(
    conn: &mut C,
    groups: &[StreamAppend],
    now: i64,
) -> Result<Vec<AppendOutcome>, MetastoreError> {
    // Generations, tenants in one order (no deadlock between concurrent appends).
    let mut tenants: Vec<&Tenant> = groups
        .iter()
        .filter(|group| group.generation.is_some())
        .map(|group| &group.tenant)
        .collect();
    tenants.sort_unstable_by(|a, b| (a.org(), a.sandbox()).cmp(&(b.org(), b.sandbox())));
    tenants.dedup();
    let mut current: Vec<(&Tenant, i64)> = Vec::with_capacity(tenants.len());
    for tenant in tenants {
        current.push((tenant, generation(conn, tenant, Lock::Share).await?));
    }
    let fresh: Vec<bool> = groups
        .iter()
        .map(|group| {
            group.generation.is_none_or(|expected| {
                current
                    .iter()
                    .any(|(tenant, now)| *tenant == &group.tenant && *now == expected)
            })
        })
        .collect();
    // Chunks keyed by (tenant, dataset, connection), in first-seen order; each holds the
    // (group, record) positions it carries.
    struct Chunk<'a> {
        tenant: &'a Tenant,
        dataset_id: &'a str,
        connection_id: &'a str,
        received: i64,
        body: String,
        lines: u32,
        members: Vec<(usize, usize)>,
    }
    let mut chunks: Vec<Chunk<'_>> = Vec::new();
    let mut chunk_of: HashMap<(&Tenant, &str, &str), usize> = HashMap::new();
    for (index, group) in groups.iter().enumerate() {
        if !fresh[index] {
            continue;
        }
        for (position, record) in group.records.iter().enumerate() {
            let key = (
                &group.tenant,
                record.dataset_id.as_str(),
                record.connection_id.as_str(),
            );
            let at = *chunk_of.entry(key).or_insert_with(|| {
                chunks.push(Chunk {
                    tenant: &group.tenant,
                    dataset_id: &record.dataset_id,
                    connection_id: &record.connection_id,
                    received: record.received,
                    body: String::new(),
                    lines: 0,
                    members: Vec::new(),
                });
                chunks.len() - 1
            });
            let chunk = &mut chunks[at];
            if chunk.lines > 0 {
                chunk.body.push('\n');
            }
            chunk.body.push_str(&record.body);
            chunk.received = chunk.received.min(record.received);
            chunk.members.push((index, position));
            chunk.lines += 1;
        }
    }
    // The dataset rows first, in one order, so that concurrent appends do not deadlock.
    let mut datasets: Vec<(&str, &str, &str, i64, i64)> = Vec::new();
    for chunk in &chunks {
        let size = to_i64(chunk.body.len() as u64);
        let lines = i64::from(chunk.lines);
        let key = (chunk.tenant.org(), chunk.tenant.sandbox(), chunk.dataset_id);
        match datasets
            .iter_mut()
            .find(|(org, sandbox, id, ..)| (*org, *sandbox, *id) == key)
        {
            Some((.., bytes, records)) => {
                *bytes += size;
                *records += lines;
            }
            None => datasets.push((key.0, key.1, key.2, size, lines)),
        }
    }
    datasets.sort_unstable();
    for (org, sandbox, dataset_id, bytes, records) in &datasets {
        conn.execute(
            "opening a stream segment",
            "INSERT INTO stream_datasets (org, sandbox, dataset_id, next_segment, open_since, open_bytes, open_records, sealed_through) VALUES ($1, $2, $3, 1, $4, $5, $6, 0)
             ON CONFLICT (org, sandbox, dataset_id) DO UPDATE SET open_since = COALESCE(stream_datasets.open_since, excluded.open_since), open_bytes = stream_datasets.open_bytes + excluded.open_bytes, open_records = stream_datasets.open_records + excluded.open_records",
            &[org, sandbox, dataset_id, &now, bytes, records],
        )
        .await?;
    }
    let mut positions: Vec<Vec<AppendedRecord>> = groups
        .iter()
        .map(|group| vec![AppendedRecord { chunk: 0, line: 0 }; group.records.len()])
        .collect();
    for chunk in &chunks {
        let size = to_i64(chunk.body.len() as u64);
        let lines = i64::from(chunk.lines);
        let id: i64 = fetch_one(
            conn,
            "appending stream records",
            "INSERT INTO stream_records (org, sandbox, dataset_id, segment, received, connection_id, size, records, body) VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8) RETURNING id",
            &[&chunk.tenant.org(), &chunk.tenant.sandbox(), &chunk.dataset_id, &chunk.received, &chunk.connection_id, &size, &lines, &chunk.body],
        )
        .await?;
        for (line, (group, record)) in chunk.members.iter().enumerate() {
            positions[*group][*record] = AppendedRecord {
                chunk: id,
                line: u32::try_from(line).unwrap_or(u32::MAX),
            };
        }
    }
    Ok(positions
        .into_iter()
        .zip(fresh)
        .map(|(positions, fresh)| {
            if fresh {
                AppendOutcome::Appended(positions)
            } else {
                AppendOutcome::Stale
            }
        })
        .collect())
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
            "SELECT next_segment, open_since, open_bytes, open_records, sealed_through FROM stream_datasets WHERE org = $1 AND sandbox = $2 AND dataset_id = $3{}",
            C::Dialect::lock(Lock::Update)
        );
        let row: Option<(i64, Option<i64>, i64, i64, i64)> = fetch_opt(
            conn,
            "locking a stream dataset",
            &sql,
            &[&org, &sandbox, &dataset_id],
        )
        .await?;
        // Another node sealed it since the scan.
        let Some((segment, Some(open_since), bytes, records, after_id)) = row else {
            continue;
        };
        if open_since > opened_before && bytes < max_bytes {
            continue;
        }
        // Appends to this dataset wait for its row (locked above), so every record up to
        // the last one is committed and none will come with a smaller id.
        let last_id: Option<i64> = fetch_opt(
            conn,
            "finding a segment's last record",
            "SELECT id FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND id > $4 ORDER BY id DESC LIMIT 1",
            &[&org, &sandbox, &dataset_id, &after_id],
        )
        .await?;
        conn.execute(
            "advancing a dataset's segment number",
            "UPDATE stream_datasets SET next_segment = $4, open_since = NULL, open_bytes = 0, open_records = 0, sealed_through = $5 WHERE org = $1 AND sandbox = $2 AND dataset_id = $3",
            &[&org, &sandbox, &dataset_id, &(segment + 1), &last_id.unwrap_or(after_id)],
        )
        .await?;
        let Some(last_id) = last_id else {
            continue;
        };
        let batch_id = ids::new_ulid();
        conn.execute(
            "recording a sealed segment",
            "INSERT INTO stream_segments (org, sandbox, dataset_id, segment, batch_id, records, bytes, done, created, after_id, last_id) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10)",
            &[&org, &sandbox, &dataset_id, &segment, &batch_id, &records, &bytes, &now, &after_id, &last_id],
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

/// Enqueues a flush job again for sealed segments left without one (see
/// `Metastore::requeue_stalled_segments`).
pub(crate) async fn requeue_stalled<C: Conn>(
    conn: &mut C,
    sealed_before: i64,
    limit: i64,
    now: i64,
) -> Result<Vec<SealedSegment>, MetastoreError> {
    let stalled: Vec<(String, String, String, i64, String, i64, i64)> = fetch(
        conn,
        "finding stalled stream segments",
        "SELECT s.org, s.sandbox, s.dataset_id, s.segment, s.batch_id, s.records, s.bytes FROM stream_segments s
         WHERE s.done = 0 AND s.created <= $1
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.org = s.org AND j.sandbox = s.sandbox AND j.batch_id = s.batch_id AND j.kind = $2 AND j.status IN ('queued', 'running'))
           AND NOT EXISTS (SELECT 1 FROM batches b WHERE b.org = s.org AND b.sandbox = s.sandbox AND b.id = s.batch_id)
         ORDER BY s.created, s.segment LIMIT $3",
        &[&sealed_before, &JobKind::FlushSegment.as_str(), &limit],
    )
    .await?;
    let mut requeued = Vec::with_capacity(stalled.len());
    for (org, sandbox, dataset_id, segment, batch_id, records, bytes) in stalled {
        let tenant = tenant_of(&org, &sandbox)?;
        enqueue_job(conn, &tenant, JobKind::FlushSegment, &batch_id, now, now).await?;
        requeued.push(SealedSegment {
            tenant,
            dataset_id,
            segment,
            batch_id,
            records: u64::try_from(records).unwrap_or_default(),
            bytes: u64::try_from(bytes).unwrap_or_default(),
        });
    }
    Ok(requeued)
}

/// A sealed segment's row: its dataset, number, whether it is done, and its records' ids
/// (after, through).
type SegmentRow = (String, i64, i64, i64, i64);

async fn segment_row<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    lock: Lock,
) -> Result<Option<SegmentRow>, MetastoreError> {
    let sql = format!(
        "SELECT dataset_id, segment, done, after_id, last_id FROM stream_segments WHERE org = $1 AND sandbox = $2 AND batch_id = $3{}",
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

/// The most chunks (append-log rows) one page of a segment holds; it also stops at its
/// byte budget.
const PAGE_CHUNKS: i64 = 256;

/// Returns the segment that becomes batch `batch_id` with one page of its records in order:
/// those after `after`, up to `max_bytes` (at least one chunk).
pub(crate) async fn segment<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    after: Option<i64>,
    max_bytes: u64,
) -> Result<Option<StreamSegment>, MetastoreError> {
    let sql = "SELECT dataset_id, segment, done, after_id, last_id, records FROM stream_segments WHERE org = $1 AND sandbox = $2 AND batch_id = $3";
    let row: Option<(String, i64, i64, i64, i64, i64)> = fetch_opt(
        conn,
        "reading a stream segment",
        sql,
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await?;
    let Some((dataset_id, segment, done, after_id, last_id, record_count)) = row else {
        return Ok(None);
    };
    let from = after.unwrap_or(after_id).max(after_id);
    // Sizes first (no bodies), to choose where the page ends; then only those bodies.
    let sizes: Vec<(i64, i64)> = fetch(
        conn,
        "measuring a segment's records",
        "SELECT id, size FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND id > $4 AND id <= $5 ORDER BY id LIMIT $6",
        &[&tenant.org(), &tenant.sandbox(), &dataset_id, &from, &last_id, &PAGE_CHUNKS],
    )
    .await?;
    let mut bytes = 0u64;
    let mut taken = 0usize;
    let mut through = from;
    for (id, size) in &sizes {
        bytes += u64::try_from(*size).unwrap_or_default();
        taken += 1;
        through = *id;
        if bytes >= max_bytes {
            break;
        }
    }
    let records: Vec<String> = if taken == 0 {
        Vec::new()
    } else {
        fetch(
            conn,
            "reading a segment's records",
            "SELECT body FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND id > $4 AND id <= $5 ORDER BY id",
            &[&tenant.org(), &tenant.sandbox(), &dataset_id, &from, &through],
        )
        .await?
    };
    // More follow unless this page reached `last_id` or took every row there was.
    let reached_end = through == last_id
        || (taken == sizes.len() && i64::try_from(sizes.len()).unwrap_or(i64::MAX) < PAGE_CHUNKS);
    let next_after = (!reached_end).then_some(through);
    Ok(Some(StreamSegment {
        dataset_id,
        segment,
        batch_id: batch_id.to_owned(),
        done: done != 0,
        records,
        next_after,
        record_count: u64::try_from(record_count).unwrap_or_default(),
    }))
}

/// Marks a segment done and drops its records (it is in a terminal batch, or its dataset
/// is gone).
pub(crate) async fn mark_done<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<(), MetastoreError> {
    let Some((dataset_id, _, _, after_id, last_id)) =
        segment_row(conn, tenant, batch_id, Lock::Update).await?
    else {
        return Ok(());
    };
    // A done segment is forgotten, row and records, so the log does not grow with the
    // segments it ever had: its batch exists or was deleted, a late flush job finds no
    // segment and stops, and segment numbers come from `stream_datasets`, never reused.
    conn.execute(
        "forgetting a done stream segment",
        "DELETE FROM stream_segments WHERE org = $1 AND sandbox = $2 AND batch_id = $3",
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await?;
    conn.execute(
        "dropping a done segment's records",
        "DELETE FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND id > $4 AND id <= $5",
        &[&tenant.org(), &tenant.sandbox(), &dataset_id, &after_id, &last_id],
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
    let Some((dataset_id, segment, done, after_id, last_id)) =
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
        "SELECT DISTINCT connection_id FROM stream_records WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND id > $4 AND id <= $5 ORDER BY connection_id",
        &[&tenant.org(), &tenant.sandbox(), &dataset_id, &after_id, &last_id],
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
