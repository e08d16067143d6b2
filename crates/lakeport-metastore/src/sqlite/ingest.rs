//! SQL of batch ingestion: staged files, chunked uploads, batch signals, the job queue and
//! the promotion transaction.

use lakeport_domain::Doc;
use lakeport_domain::catalog::{self, Actor, WriteContext};
use lakeport_domain::ingest::{self, Chunk, Job, JobKind, SignalEffect};
use lakeport_domain::query::ObjectKind;
use lakeport_domain::status::{BatchAction, BatchStatus};
use lakeport_domain::tenant::Tenant;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use super::{StoreMode, backend, field_str, load, parse_doc, record_on_dataset, store};
use crate::shared::{self, UploadCheck, check_upload, chunks_from_text, chunks_to_text};
use crate::{
    BatchFile, DiagnosticsFile, ExpiredDiagnostics, MetastoreError, NewDatasetFile, Promotion,
    StoredDatasetFile, UploadLimits,
};

pub(super) const MIGRATION: &str = r#"
CREATE TABLE batch_files (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    upload_id TEXT,
    chunks TEXT,
    updated INTEGER NOT NULL,
    UNIQUE (org, sandbox, batch_id, path)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    kind TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX jobs_runnable ON jobs (status, run_after, id);
CREATE TABLE batch_outputs (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    diagnostics TEXT,
    UNIQUE (org, sandbox, batch_id)
);
ALTER TABLE dataset_files ADD COLUMN location TEXT;
"#;

/// Records each batch's `completed` time next to its diagnostics location, so the
/// retention sweep finds expired diagnostics through an index instead of reading every
/// batch document.
pub(super) const RETENTION_MIGRATION: &str = r#"
ALTER TABLE batch_outputs ADD COLUMN completed INTEGER;
UPDATE batch_outputs SET completed = (
    SELECT json_extract(b.doc, '$.completed') FROM batches b
    WHERE b.org = batch_outputs.org AND b.sandbox = batch_outputs.sandbox AND b.id = batch_outputs.batch_id
);
CREATE INDEX batch_outputs_expiring ON batch_outputs (completed) WHERE diagnostics IS NOT NULL;
"#;

/// Records the diagnostics files next to their location (JSON text; NULL for batches
/// promoted before this migration, whose files Data Access finds by listing storage).
pub(super) const DIAGNOSTICS_FILES_MIGRATION: &str = r#"
ALTER TABLE batch_outputs ADD COLUMN files TEXT;
"#;

/// The actor recorded when the system itself changes a batch.
fn system_actor(batch: &Doc) -> Actor {
    Actor {
        client_id: field_str(batch, "createdClient")
            .unwrap_or("lakeport")
            .to_owned(),
        user: field_str(batch, "createdUser")
            .unwrap_or("lakeport@AdobeID")
            .to_owned(),
    }
}

pub(super) fn upload_target(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
) -> Result<Doc, MetastoreError> {
    let Some(batch) = load(conn, tenant, ObjectKind::Batch, batch_id)? else {
        return Err(MetastoreError::NotFound {
            kind: ObjectKind::Batch,
            id: batch_id.to_owned(),
        });
    };
    if let UploadCheck::OtherDataset { actual } = check_upload(&batch, batch_id, dataset_id)? {
        if load(conn, tenant, ObjectKind::Dataset, dataset_id)?.is_none() {
            return Err(MetastoreError::NotFound {
                kind: ObjectKind::Dataset,
                id: dataset_id.to_owned(),
            });
        }
        return Err(MetastoreError::WrongDataset {
            batch_id: batch_id.to_owned(),
            requested: dataset_id.to_owned(),
            actual,
        });
    }
    Ok(batch)
}

fn row_to_file(
    path: String,
    size: i64,
    upload_id: Option<String>,
    chunks: Option<String>,
) -> BatchFile {
    BatchFile {
        path,
        size: u64::try_from(size).unwrap_or_default(),
        upload_id: upload_id.unwrap_or_default(),
        chunks: chunks.as_deref().map(chunks_from_text),
    }
}

pub(super) fn batch_file(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
    path: &str,
) -> Result<Option<BatchFile>, MetastoreError> {
    conn.prepare_cached(
        "SELECT path, size, upload_id, chunks FROM batch_files WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3 AND path = ?4",
    )
    .and_then(|mut statement| {
        statement
            .query_row(params![tenant.org(), tenant.sandbox(), batch_id, path], |row| {
                Ok(row_to_file(row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })
            .optional()
    })
    .map_err(backend("reading a batch file"))
}

pub(super) fn batch_files(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Vec<BatchFile>, MetastoreError> {
    conn.prepare_cached(
        "SELECT path, size, upload_id, chunks FROM batch_files WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3 ORDER BY path",
    )
    .and_then(|mut statement| {
        statement
            .query_map(params![tenant.org(), tenant.sandbox(), batch_id], |row| {
                Ok(row_to_file(row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?
            .collect()
    })
    .map_err(backend("listing batch files"))
}

#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the trait method it implements"
)]
pub(super) fn record_file(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
    path: &str,
    upload_id: &str,
    size: u64,
    limits: UploadLimits,
    now: i64,
) -> Result<Option<String>, MetastoreError> {
    upload_target(conn, tenant, batch_id, dataset_id)?;
    let previous = batch_file(conn, tenant, batch_id, path)?.map(|file| file.upload_id);
    let (others, other_bytes): (i64, i64) = conn
        .prepare_cached(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM batch_files WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3 AND path <> ?4",
        )
        .and_then(|mut statement| {
            statement.query_row(params![tenant.org(), tenant.sandbox(), batch_id, path], |row| Ok((row.get(0)?, row.get(1)?)))
        })
        .map_err(backend("counting batch files"))?;
    let others = u64::try_from(others).unwrap_or_default();
    let other_bytes = u64::try_from(other_bytes).unwrap_or_default();
    if others + 1 > limits.max_files {
        return Err(MetastoreError::LimitExceeded(format!(
            "batch {batch_id} already holds {others} files; at most {} files are allowed per batch",
            limits.max_files
        )));
    }
    if other_bytes + size > limits.max_batch_bytes {
        return Err(MetastoreError::LimitExceeded(format!(
            "batch {batch_id} would hold {} bytes; at most {} bytes are allowed per batch",
            other_bytes + size,
            limits.max_batch_bytes
        )));
    }
    conn.prepare_cached(
        "INSERT INTO batch_files (org, sandbox, batch_id, path, size, upload_id, chunks, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)
         ON CONFLICT (org, sandbox, batch_id, path) DO UPDATE SET size = excluded.size, upload_id = excluded.upload_id, chunks = NULL, updated = excluded.updated",
    )
    .and_then(|mut statement| {
        statement.execute(params![tenant.org(), tenant.sandbox(), batch_id, path, size as i64, upload_id, now])
    })
    .map_err(backend("recording a batch file"))?;
    Ok(previous.filter(|previous| previous != upload_id))
}

pub(super) fn start_chunked_upload(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
    path: &str,
    upload_id: &str,
    now: i64,
) -> Result<Option<String>, MetastoreError> {
    upload_target(conn, tenant, batch_id, dataset_id)?;
    let previous = batch_file(conn, tenant, batch_id, path)?
        .and_then(|file| file.chunks.map(|_| file.upload_id));
    conn.prepare_cached(
        "INSERT INTO batch_files (org, sandbox, batch_id, path, size, upload_id, chunks, updated) VALUES (?1, ?2, ?3, ?4, 0, ?5, '[]', ?6)
         ON CONFLICT (org, sandbox, batch_id, path) DO UPDATE SET size = 0, upload_id = excluded.upload_id, chunks = '[]', updated = excluded.updated",
    )
    .and_then(|mut statement| statement.execute(params![tenant.org(), tenant.sandbox(), batch_id, path, upload_id, now]))
    .map_err(backend("starting a chunked upload"))?;
    Ok(previous)
}

#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the trait method it implements"
)]
pub(super) fn record_chunk(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
    path: &str,
    upload_id: &str,
    chunk: Chunk,
    now: i64,
) -> Result<BatchFile, MetastoreError> {
    upload_target(conn, tenant, batch_id, dataset_id)?;
    let not_started = || MetastoreError::UploadNotStarted {
        batch_id: batch_id.to_owned(),
        path: path.to_owned(),
    };
    let file = batch_file(conn, tenant, batch_id, path)?.ok_or_else(not_started)?;
    let (Some(mut chunks), true) = (file.chunks, file.upload_id == upload_id) else {
        return Err(not_started());
    };
    ingest::add_chunk(&mut chunks, chunk);
    let size = ingest::received_bytes(&chunks);
    conn.prepare_cached(
        "UPDATE batch_files SET size = ?1, chunks = ?2, updated = ?3 WHERE org = ?4 AND sandbox = ?5 AND batch_id = ?6 AND path = ?7",
    )
    .and_then(|mut statement| {
        statement.execute(params![size as i64, chunks_to_text(&chunks), now, tenant.org(), tenant.sandbox(), batch_id, path])
    })
    .map_err(backend("recording a chunk"))?;
    Ok(BatchFile {
        path: path.to_owned(),
        size,
        upload_id: upload_id.to_owned(),
        chunks: Some(chunks),
    })
}

fn insert_job(
    conn: &Connection,
    tenant: &Tenant,
    kind: JobKind,
    batch_id: &str,
    run_at: i64,
    now: i64,
) -> Result<(), MetastoreError> {
    conn.prepare_cached(
        "INSERT INTO jobs (org, sandbox, kind, batch_id, status, attempts, run_after, created, updated) VALUES (?1, ?2, ?3, ?4, 'queued', 0, ?5, ?6, ?6)",
    )
    .and_then(|mut statement| statement.execute(params![tenant.org(), tenant.sandbox(), kind.as_str(), batch_id, run_at, now]))
    .map_err(backend("enqueueing a job"))?;
    Ok(())
}

pub(super) fn enqueue_job(
    conn: &Connection,
    tenant: &Tenant,
    kind: JobKind,
    batch_id: &str,
    run_at: i64,
    now: i64,
) -> Result<(), MetastoreError> {
    insert_job(conn, tenant, kind, batch_id, run_at, now)
}

/// Marks every dataset file of a batch invalid (REVERT, replay).
fn invalidate_files(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
    ctx: &WriteContext<'_>,
) -> Result<(), MetastoreError> {
    let texts: Vec<String> = conn
        .prepare_cached(
            "SELECT doc FROM dataset_files WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![tenant.org(), tenant.sandbox(), batch_id], |row| {
                    row.get(0)
                })?
                .collect()
        })
        .map_err(backend("reading dataset files"))?;
    for text in texts {
        let mut file = parse_doc(&text)?;
        if file.get("isValid") == Some(&json!(false)) {
            continue;
        }
        file.insert("isValid".into(), json!(false));
        catalog::touch(&mut file, ctx);
        store(
            conn,
            tenant,
            ObjectKind::DatasetFile,
            &file,
            StoreMode::Update,
        )?;
    }
    Ok(())
}

pub(super) fn signal_batch(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
    action: BatchAction,
    actor: &Actor,
    now: i64,
    cleanup_delay_ms: i64,
) -> Result<Doc, MetastoreError> {
    let Some(batch) = load(conn, tenant, ObjectKind::Batch, batch_id)? else {
        return Err(MetastoreError::NotFound {
            kind: ObjectKind::Batch,
            id: batch_id.to_owned(),
        });
    };
    let ctx = WriteContext { tenant, actor, now };
    let effect = ingest::apply_signal(&batch, action, &ctx).map_err(|source| {
        MetastoreError::InvalidSignal {
            batch_id: batch_id.to_owned(),
            source,
        }
    })?;
    let SignalEffect::Changed {
        batch: next,
        promote,
        cleanup,
    } = effect
    else {
        return Ok(batch);
    };
    store(conn, tenant, ObjectKind::Batch, &next, StoreMode::Update)?;
    record_on_dataset(conn, tenant, &next, None, false)?;
    if promote {
        insert_job(conn, tenant, JobKind::PromoteBatch, batch_id, now, now)?;
    }
    if cleanup {
        insert_job(conn, tenant, JobKind::CleanupBatch, batch_id, now, now)?;
    }
    if action == BatchAction::Revert {
        invalidate_files(conn, tenant, batch_id, &ctx)?;
        // The reverted data is collected after the grace period; enqueued here, in the
        // signal's transaction, so that no crash can leave it without a collector.
        let run_at = now.saturating_add(cleanup_delay_ms);
        insert_job(conn, tenant, JobKind::CleanupBatch, batch_id, run_at, now)?;
    }
    Ok(next)
}

pub(super) fn claim_job(
    conn: &Connection,
    worker: &str,
    lease_ms: i64,
    now: i64,
) -> Result<Option<Job>, MetastoreError> {
    let found: Option<(i64, String, String, String, String, i64)> = conn
        .prepare_cached(
            "SELECT id, org, sandbox, kind, batch_id, attempts FROM jobs
             WHERE (status = 'queued' AND run_after <= ?1) OR (status = 'running' AND lease_until < ?1)
             ORDER BY run_after, id LIMIT 1",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![now], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?))
                })
                .optional()
        })
        .map_err(backend("looking for a job"))?;
    let Some((id, org, sandbox, kind, batch_id, attempts)) = found else {
        return Ok(None);
    };
    conn.prepare_cached(
        "UPDATE jobs SET status = 'running', lease_owner = ?1, lease_until = ?2, attempts = attempts + 1, updated = ?3 WHERE id = ?4",
    )
    .and_then(|mut statement| statement.execute(params![worker, now + lease_ms, now, id]))
    .map_err(backend("claiming a job"))?;
    let Some(kind) = JobKind::parse(&kind) else {
        conn.execute(
            "UPDATE jobs SET status = 'failed', last_error = 'unknown job kind' WHERE id = ?1",
            params![id],
        )
        .map_err(backend("failing an unknown job"))?;
        return Ok(None);
    };
    let tenant = Tenant::parse(&org, &sandbox).map_err(|err| MetastoreError::Backend {
        doing: "reading a job's tenant",
        source: Box::new(err),
    })?;
    Ok(Some(Job {
        id,
        kind,
        tenant,
        batch_id,
        attempt: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
        worker: worker.to_owned(),
    }))
}

fn holds_lease(conn: &Connection, job: &Job) -> Result<bool, MetastoreError> {
    let owner: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT status, lease_owner FROM jobs WHERE id = ?1")
        .and_then(|mut statement| {
            statement
                .query_row(params![job.id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(backend("checking a job lease"))?;
    Ok(matches!(owner, Some((status, Some(worker))) if status == "running" && worker == job.worker))
}

fn ensure_lease(conn: &Connection, job: &Job) -> Result<(), MetastoreError> {
    if holds_lease(conn, job)? {
        Ok(())
    } else {
        Err(MetastoreError::LostLease { job_id: job.id })
    }
}

pub(super) fn renew_lease(
    conn: &Connection,
    job: &Job,
    until: i64,
) -> Result<bool, MetastoreError> {
    let changed = conn
        .prepare_cached("UPDATE jobs SET lease_until = ?1 WHERE id = ?2 AND lease_owner = ?3 AND status = 'running'")
        .and_then(|mut statement| statement.execute(params![until, job.id, job.worker]))
        .map_err(backend("renewing a job lease"))?;
    Ok(changed > 0)
}

fn set_job_status(
    conn: &Connection,
    job: &Job,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), MetastoreError> {
    conn.prepare_cached("UPDATE jobs SET status = ?1, last_error = COALESCE(?2, last_error), lease_owner = NULL, lease_until = NULL, updated = ?3 WHERE id = ?4")
        .and_then(|mut statement| statement.execute(params![status, error, now, job.id]))
        .map_err(backend("updating a job"))?;
    Ok(())
}

pub(super) fn finish_job(conn: &Connection, job: &Job, now: i64) -> Result<(), MetastoreError> {
    ensure_lease(conn, job)?;
    set_job_status(conn, job, "done", None, now)
}

fn set_batch_status(
    conn: &Connection,
    tenant: &Tenant,
    batch: &Doc,
    status: BatchStatus,
    now: i64,
) -> Result<Doc, MetastoreError> {
    let actor = system_actor(batch);
    let ctx = WriteContext {
        tenant,
        actor: &actor,
        now,
    };
    let mut next = batch.clone();
    next.insert("status".into(), json!(status.as_str()));
    catalog::touch(&mut next, &ctx);
    store(conn, tenant, ObjectKind::Batch, &next, StoreMode::Update)?;
    record_on_dataset(conn, tenant, &next, None, false)?;
    Ok(next)
}

pub(super) fn begin_processing(
    conn: &Connection,
    job: &Job,
    now: i64,
) -> Result<Option<Doc>, MetastoreError> {
    ensure_lease(conn, job)?;
    let batch = load(conn, &job.tenant, ObjectKind::Batch, &job.batch_id)?;
    let status = batch.as_ref().and_then(catalog::batch_status);
    match (batch, status) {
        (Some(batch), Some(BatchStatus::Processing)) => Ok(Some(batch)),
        (
            Some(batch),
            Some(
                BatchStatus::Staging
                | BatchStatus::Retrying
                | BatchStatus::Loaded
                | BatchStatus::Staged,
            ),
        ) => Ok(Some(set_batch_status(
            conn,
            &job.tenant,
            &batch,
            BatchStatus::Processing,
            now,
        )?)),
        _ => {
            set_job_status(conn, job, "done", Some("nothing to process"), now)?;
            Ok(None)
        }
    }
}

/// Makes replay predecessors `inactive` (and, with `ALL`, theirs), hiding their files.
/// Makes the successful predecessors a replay replaces `inactive` and enqueues the clean-up
/// of each one's data, due `cleanup_delay_ms` after `now`.
fn deactivate_predecessors(
    conn: &Connection,
    tenant: &Tenant,
    batch: &Doc,
    now: i64,
    cleanup_delay_ms: i64,
) -> Result<(), MetastoreError> {
    let Some(replay) = batch.get("replay") else {
        return Ok(());
    };
    let transitive = replay.get("predecessorListingType").and_then(Value::as_str) == Some("ALL");
    let mut pending: Vec<String> = replay
        .get("predecessors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let mut seen = Vec::new();
    while let Some(id) = pending.pop() {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id.clone());
        let Some(predecessor) = load(conn, tenant, ObjectKind::Batch, &id)? else {
            continue;
        };
        if catalog::batch_status(&predecessor) == Some(BatchStatus::Success) {
            set_batch_status(conn, tenant, &predecessor, BatchStatus::Inactive, now)?;
            let actor = system_actor(&predecessor);
            invalidate_files(
                conn,
                tenant,
                &id,
                &WriteContext {
                    tenant,
                    actor: &actor,
                    now,
                },
            )?;
            let run_at = now.saturating_add(cleanup_delay_ms);
            insert_job(conn, tenant, JobKind::CleanupBatch, &id, run_at, now)?;
        }
        if transitive
            && let Some(Value::Array(more)) = predecessor
                .get("replay")
                .and_then(|r| r.get("predecessors"))
        {
            pending.extend(more.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    Ok(())
}

fn insert_dataset_files(
    conn: &Connection,
    tenant: &Tenant,
    batch: &Doc,
    files: &[NewDatasetFile],
    now: i64,
) -> Result<(), MetastoreError> {
    let batch_id = field_str(batch, "id").unwrap_or_default();
    let dataset_id = catalog::batch_dataset_id(batch).unwrap_or_default();
    let view_id = load(conn, tenant, ObjectKind::Dataset, dataset_id)?
        .and_then(|dataset| field_str(&dataset, "viewId").map(str::to_owned))
        .unwrap_or_default();
    let actor = system_actor(batch);
    for (index, file) in files.iter().enumerate() {
        let id = format!("{batch_id}-{}", index + 1);
        let doc = json!({
            "id": id, "batchId": batch_id, "dataSetViewId": view_id, "dataSetId": dataset_id,
            "records": file.records, "size": file.size, "isValid": true, "folderName": file.name,
            "availableDates": {}, "imsOrg": tenant.org(), "sandboxId": tenant.sandbox_id(),
            "version": "1.0.0", "created": now, "updated": now,
            "createdClient": actor.client_id, "createdUser": actor.user, "updatedUser": actor.user,
        });
        let Value::Object(doc) = doc else {
            unreachable!("object literal")
        };
        store(
            conn,
            tenant,
            ObjectKind::DatasetFile,
            &doc,
            StoreMode::Insert,
        )?;
        conn.prepare_cached(
            "UPDATE dataset_files SET location = ?1 WHERE org = ?2 AND sandbox = ?3 AND id = ?4",
        )
        .and_then(|mut statement| {
            statement.execute(params![file.location, tenant.org(), tenant.sandbox(), id])
        })
        .map_err(backend("recording a dataset file location"))?;
    }
    Ok(())
}

pub(super) fn complete_promotion(
    conn: &Connection,
    job: &Job,
    promotion: Promotion,
    now: i64,
) -> Result<Doc, MetastoreError> {
    ensure_lease(conn, job)?;
    let tenant = &job.tenant;
    let Some(batch) = load(conn, tenant, ObjectKind::Batch, &job.batch_id)? else {
        set_job_status(conn, job, "done", Some("batch deleted"), now)?;
        return Err(MetastoreError::NotFound {
            kind: ObjectKind::Batch,
            id: job.batch_id.clone(),
        });
    };
    if catalog::batch_status(&batch) != Some(BatchStatus::Processing) {
        // Aborted or failed by the producer while the worker ran: nothing is promoted.
        set_job_status(
            conn,
            job,
            "done",
            Some("batch left processing before promotion"),
            now,
        )?;
        return Ok(batch);
    }
    let actor = system_actor(&batch);
    let ctx = WriteContext {
        tenant,
        actor: &actor,
        now,
    };
    let mut next = batch.clone();
    for (key, value) in promotion.batch_fields {
        next.insert(key, value);
    }
    catalog::touch(&mut next, &ctx);
    insert_dataset_files(conn, tenant, &next, &promotion.files, now)?;
    store(conn, tenant, ObjectKind::Batch, &next, StoreMode::Update)?;
    record_on_dataset(conn, tenant, &next, None, false)?;
    if catalog::batch_status(&next) == Some(BatchStatus::Success) {
        deactivate_predecessors(conn, tenant, &next, now, promotion.cleanup_delay_ms)?;
    }
    if let Some(location) = &promotion.diagnostics_location {
        let completed = next.get("completed").and_then(Value::as_i64).unwrap_or(now);
        let files = shared::diagnostics_files_to_text(&promotion.diagnostics_files);
        conn.prepare_cached(
            "INSERT INTO batch_outputs (org, sandbox, batch_id, diagnostics, completed, files) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (org, sandbox, batch_id) DO UPDATE SET diagnostics = excluded.diagnostics, completed = excluded.completed, files = excluded.files",
        )
        .and_then(|mut statement| statement.execute(params![tenant.org(), tenant.sandbox(), job.batch_id, location, completed, files]))
        .map_err(backend("recording diagnostics"))?;
    }
    set_job_status(conn, job, "done", None, now)?;
    insert_job(conn, tenant, JobKind::CleanupBatch, &job.batch_id, now, now)?;
    Ok(next)
}

pub(super) fn retry_job(
    conn: &Connection,
    job: &Job,
    error: &str,
    retry_at: i64,
    max_attempts: u32,
    now: i64,
) -> Result<(), MetastoreError> {
    ensure_lease(conn, job)?;
    let batch = load(conn, &job.tenant, ObjectKind::Batch, &job.batch_id)?;
    let in_flight = batch
        .as_ref()
        .and_then(catalog::batch_status)
        .is_some_and(|status| {
            matches!(
                status,
                BatchStatus::Staging | BatchStatus::Processing | BatchStatus::Retrying
            )
        });
    if job.attempt >= max_attempts {
        set_job_status(conn, job, "failed", Some(error), now)?;
        if let (Some(batch), true) = (batch, in_flight && job.kind == JobKind::PromoteBatch) {
            set_batch_status(conn, &job.tenant, &batch, BatchStatus::Stalled, now)?;
        }
        return Ok(());
    }
    conn.prepare_cached(
        "UPDATE jobs SET status = 'queued', run_after = ?1, lease_owner = NULL, lease_until = NULL, last_error = ?2, updated = ?3 WHERE id = ?4",
    )
    .and_then(|mut statement| statement.execute(params![retry_at, error, now, job.id]))
    .map_err(backend("scheduling a retry"))?;
    if let (Some(batch), true) = (batch, in_flight && job.kind == JobKind::PromoteBatch) {
        set_batch_status(conn, &job.tenant, &batch, BatchStatus::Retrying, now)?;
    }
    Ok(())
}

pub(super) fn abandon_stale_batches(
    conn: &Connection,
    created_before: i64,
    now: i64,
) -> Result<Vec<(Tenant, String)>, MetastoreError> {
    let rows: Vec<(String, String, String)> = conn
        .prepare_cached(
            "SELECT org, sandbox, doc FROM batches WHERE status = 'loading' AND created < ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![created_before], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect()
        })
        .map_err(backend("finding stale batches"))?;
    let mut abandoned = Vec::new();
    for (org, sandbox, text) in rows {
        let Ok(tenant) = Tenant::parse(&org, &sandbox) else {
            continue;
        };
        let batch = parse_doc(&text)?;
        let mut next = set_batch_status(conn, &tenant, &batch, BatchStatus::Abandoned, now)?;
        next.insert("completed".into(), json!(now));
        store(conn, &tenant, ObjectKind::Batch, &next, StoreMode::Update)?;
        let id = field_str(&batch, "id").unwrap_or_default().to_owned();
        insert_job(conn, &tenant, JobKind::CleanupBatch, &id, now, now)?;
        abandoned.push((tenant, id));
    }
    Ok(abandoned)
}

fn stored_files(
    conn: &Connection,
    sql: &str,
    tenant: &Tenant,
    key: &str,
) -> Result<Vec<StoredDatasetFile>, MetastoreError> {
    let rows: Vec<(String, Option<String>)> = conn
        .prepare_cached(sql)
        .and_then(|mut statement| {
            statement
                .query_map(params![tenant.org(), tenant.sandbox(), key], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?
                .collect()
        })
        .map_err(backend("reading dataset files"))?;
    rows.into_iter()
        .map(|(text, location)| {
            Ok(StoredDatasetFile {
                doc: parse_doc(&text)?,
                location: location.unwrap_or_default(),
            })
        })
        .collect()
}

pub(super) fn dataset_file(
    conn: &Connection,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<StoredDatasetFile>, MetastoreError> {
    Ok(stored_files(
        conn,
        "SELECT doc, location FROM dataset_files WHERE org = ?1 AND sandbox = ?2 AND id = ?3",
        tenant,
        id,
    )?
    .into_iter()
    .next())
}

pub(super) fn batch_dataset_files(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Vec<StoredDatasetFile>, MetastoreError> {
    stored_files(
        conn,
        "SELECT doc, location FROM dataset_files WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3 ORDER BY created, id",
        tenant,
        batch_id,
    )
}

pub(super) fn diagnostics_location(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Option<String>, MetastoreError> {
    conn.prepare_cached(
        "SELECT diagnostics FROM batch_outputs WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3",
    )
    .and_then(|mut statement| {
        statement
            .query_row(params![tenant.org(), tenant.sandbox(), batch_id], |row| {
                row.get(0)
            })
            .optional()
    })
    .map(Option::flatten)
    .map_err(backend("reading diagnostics"))
}

pub(super) fn diagnostics_files(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Option<Vec<DiagnosticsFile>>, MetastoreError> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT files FROM batch_outputs
             WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3 AND diagnostics IS NOT NULL",
        )
        .and_then(|mut statement| {
            statement
                .query_row(params![tenant.org(), tenant.sandbox(), batch_id], |row| {
                    row.get(0)
                })
                .optional()
        })
        .map(Option::flatten)
        .map_err(backend("reading diagnostics files"))?;
    text.as_deref()
        .map(shared::diagnostics_files_from_text)
        .transpose()
}

pub(super) fn expired_diagnostics(
    conn: &Connection,
    completed_before: i64,
    limit: u32,
) -> Result<Vec<ExpiredDiagnostics>, MetastoreError> {
    let rows: Vec<(String, String, String, String)> = conn
        .prepare_cached(
            "SELECT org, sandbox, batch_id, diagnostics FROM batch_outputs
             WHERE diagnostics IS NOT NULL AND completed < ?1
             ORDER BY completed, org, sandbox, batch_id LIMIT ?2",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![completed_before, limit], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect()
        })
        .map_err(backend("finding expired diagnostics"))?;
    rows.into_iter()
        .map(|(org, sandbox, batch_id, location)| {
            let tenant = Tenant::parse(&org, &sandbox).map_err(|err| MetastoreError::Backend {
                doing: "reading the tenant of expired diagnostics",
                source: Box::new(err),
            })?;
            Ok(ExpiredDiagnostics {
                tenant,
                batch_id,
                location,
            })
        })
        .collect()
}

pub(super) fn clear_diagnostics(
    conn: &Connection,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<bool, MetastoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE batch_outputs SET diagnostics = NULL, files = NULL
             WHERE org = ?1 AND sandbox = ?2 AND batch_id = ?3 AND diagnostics IS NOT NULL",
        )
        .and_then(|mut statement| {
            statement.execute(params![tenant.org(), tenant.sandbox(), batch_id])
        })
        .map_err(backend("clearing diagnostics"))?;
    Ok(changed > 0)
}
