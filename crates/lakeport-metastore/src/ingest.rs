//! Batch ingestion, once for both backends: staged files, chunked uploads, batch signals,
//! the job queue, the promotion transaction and diagnostics.
//!
//! Locks (PostgreSQL) are taken in one order — job, batch(es), dataset, dataset files — so
//! that concurrent transactions queue instead of deadlocking (and a deadlock that still
//! happens is retried by the backend).

use lakeport_domain::Doc;
use lakeport_domain::catalog::{self, Actor, WriteContext};
use lakeport_domain::ids::BatchId;
use lakeport_domain::ingest::{self, Chunk, Job, JobKind, SignalEffect, TableJob};
use lakeport_domain::query::ObjectKind;
use lakeport_domain::status::{BatchAction, BatchStatus};
use lakeport_domain::tenant::Tenant;
use serde_json::{Value, json};

use crate::backend::{Conn, FixedSql, Lock, fetch, fetch_one, fetch_opt, parse_doc};
use crate::catalog::{StoreMode, load, record_on_dataset, store};
use crate::sql::Dialect;
use crate::{
    BatchFile, DiagnosticsFile, ExpiredDiagnostics, MetastoreError, NewDatasetFile, Promotion,
    StoredDatasetFile, UploadLimits,
};

/// Encodes received chunks as the text stored in `batch_files.chunks`.
fn chunks_to_text(chunks: &[Chunk]) -> String {
    let list: Vec<Value> = chunks
        .iter()
        .map(|c| json!([c.first, c.last, c.total]))
        .collect();
    Value::Array(list).to_string()
}

/// Decodes `batch_files.chunks`.
fn chunks_from_text(text: &str) -> Vec<Chunk> {
    serde_json::from_str::<Vec<(u64, u64, Option<u64>)>>(text)
        .unwrap_or_default()
        .into_iter()
        .map(|(first, last, total)| Chunk { first, last, total })
        .collect()
}

pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Checks that a batch exists, belongs to `dataset_id` and is `loading`; with a lock, the
/// batch stays so until the transaction ends.
pub(crate) async fn upload_target<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
    lock: Lock,
) -> Result<Doc, MetastoreError> {
    let Some(batch) = load(conn, tenant, ObjectKind::Batch, batch_id, lock).await? else {
        return Err(MetastoreError::NotFound {
            kind: ObjectKind::Batch,
            id: batch_id.to_owned(),
        });
    };
    let actual = catalog::batch_dataset_id(&batch).unwrap_or_default();
    if actual != dataset_id {
        // Another dataset's batch: 404 when the dataset does not exist, else 400.
        if load(conn, tenant, ObjectKind::Dataset, dataset_id, Lock::None)
            .await?
            .is_none()
        {
            return Err(MetastoreError::NotFound {
                kind: ObjectKind::Dataset,
                id: dataset_id.to_owned(),
            });
        }
        return Err(MetastoreError::WrongDataset {
            batch_id: batch_id.to_owned(),
            requested: dataset_id.to_owned(),
            actual: actual.to_owned(),
        });
    }
    let status = catalog::batch_status(&batch).unwrap_or(BatchStatus::Loading);
    if status != BatchStatus::Loading {
        return Err(MetastoreError::BatchNotLoading {
            batch_id: batch_id.to_owned(),
            status: status.as_str().to_owned(),
        });
    }
    Ok(batch)
}

type FileRow = (String, i64, Option<String>, Option<String>);

fn row_to_file((path, size, upload_id, chunks): FileRow) -> BatchFile {
    BatchFile {
        path,
        size: u64::try_from(size).unwrap_or_default(),
        upload_id: upload_id.unwrap_or_default(),
        chunks: chunks.as_deref().map(chunks_from_text),
    }
}

pub(crate) async fn batch_file<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    path: &str,
) -> Result<Option<BatchFile>, MetastoreError> {
    let row: Option<FileRow> = fetch_opt(
        conn,
        "reading a batch file",
        "SELECT path, size, upload_id, chunks FROM batch_files WHERE org = $1 AND sandbox = $2 AND batch_id = $3 AND path = $4",
        &[&tenant.org(), &tenant.sandbox(), &batch_id, &path],
    )
    .await?;
    Ok(row.map(row_to_file))
}

pub(crate) async fn batch_files<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Vec<BatchFile>, MetastoreError> {
    let rows: Vec<FileRow> = fetch(
        conn,
        "listing batch files",
        "SELECT path, size, upload_id, chunks FROM batch_files WHERE org = $1 AND sandbox = $2 AND batch_id = $3 ORDER BY path",
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await?;
    Ok(rows.into_iter().map(row_to_file).collect())
}

#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the trait method it implements"
)]
pub(crate) async fn record_file<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
    path: &str,
    upload_id: &str,
    size: u64,
    limits: UploadLimits,
    now: i64,
) -> Result<Option<String>, MetastoreError> {
    // The batch lock keeps it `loading` and serializes the batch's limit checks.
    upload_target(conn, tenant, batch_id, dataset_id, Lock::Update).await?;
    let previous = batch_file(conn, tenant, batch_id, path)
        .await?
        .map(|file| file.upload_id);
    let (others, other_bytes): (i64, i64) = fetch_one(
        conn,
        "counting batch files",
        "SELECT COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM batch_files WHERE org = $1 AND sandbox = $2 AND batch_id = $3 AND path <> $4",
        &[&tenant.org(), &tenant.sandbox(), &batch_id, &path],
    )
    .await?;
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
    conn.execute(
        "recording a batch file",
        "INSERT INTO batch_files (org, sandbox, batch_id, path, size, upload_id, chunks, updated) VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)
         ON CONFLICT (org, sandbox, batch_id, path) DO UPDATE SET size = excluded.size, upload_id = excluded.upload_id, chunks = NULL, updated = excluded.updated",
        &[&tenant.org(), &tenant.sandbox(), &batch_id, &path, &to_i64(size), &upload_id, &now],
    )
    .await?;
    Ok(previous.filter(|previous| previous != upload_id))
}

pub(crate) async fn start_chunked_upload<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
    path: &str,
    upload_id: &str,
    now: i64,
) -> Result<Option<String>, MetastoreError> {
    upload_target(conn, tenant, batch_id, dataset_id, Lock::Update).await?;
    let previous = batch_file(conn, tenant, batch_id, path)
        .await?
        .and_then(|file| file.chunks.map(|_| file.upload_id));
    conn.execute(
        "starting a chunked upload",
        "INSERT INTO batch_files (org, sandbox, batch_id, path, size, upload_id, chunks, updated) VALUES ($1, $2, $3, $4, 0, $5, '[]', $6)
         ON CONFLICT (org, sandbox, batch_id, path) DO UPDATE SET size = 0, upload_id = excluded.upload_id, chunks = '[]', updated = excluded.updated",
        &[&tenant.org(), &tenant.sandbox(), &batch_id, &path, &upload_id, &now],
    )
    .await?;
    Ok(previous)
}

#[expect(
    clippy::too_many_arguments,
    reason = "mirrors the trait method it implements"
)]
pub(crate) async fn record_chunk<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    dataset_id: &str,
    path: &str,
    upload_id: &str,
    chunk: Chunk,
    now: i64,
) -> Result<BatchFile, MetastoreError> {
    upload_target(conn, tenant, batch_id, dataset_id, Lock::Update).await?;
    let not_started = || MetastoreError::UploadNotStarted {
        batch_id: batch_id.to_owned(),
        path: path.to_owned(),
    };
    let file = batch_file(conn, tenant, batch_id, path)
        .await?
        .ok_or_else(not_started)?;
    let (Some(mut chunks), true) = (file.chunks, file.upload_id == upload_id) else {
        return Err(not_started());
    };
    ingest::add_chunk(&mut chunks, chunk);
    let size = ingest::received_bytes(&chunks);
    conn.execute(
        "recording a chunk",
        "UPDATE batch_files SET size = $1, chunks = $2, updated = $3 WHERE org = $4 AND sandbox = $5 AND batch_id = $6 AND path = $7",
        &[&to_i64(size), &chunks_to_text(&chunks), &now, &tenant.org(), &tenant.sandbox(), &batch_id, &path],
    )
    .await?;
    Ok(BatchFile {
        path: path.to_owned(),
        size,
        upload_id: upload_id.to_owned(),
        chunks: Some(chunks),
    })
}

pub(crate) async fn enqueue_job<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: JobKind,
    batch_id: &str,
    run_at: i64,
    now: i64,
) -> Result<(), MetastoreError> {
    conn.execute(
        "enqueueing a job",
        "INSERT INTO jobs (org, sandbox, kind, batch_id, status, attempts, run_after, created, updated) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $6, $6)",
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &batch_id, &run_at, &now],
    )
    .await?;
    Ok(())
}

/// Enqueues a table job (`optimize_table`, `vacuum_table`) for a dataset unless one of that
/// kind is queued or running for it already; returns the job's id.
pub(crate) async fn enqueue_table_job<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: JobKind,
    dataset_id: &str,
    now: i64,
) -> Result<i64, MetastoreError> {
    let pending: Option<i64> = fetch_opt(
        conn,
        "looking for a pending table job",
        "SELECT id FROM jobs WHERE org = $1 AND sandbox = $2 AND kind = $3 AND batch_id = $4 AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &dataset_id],
    )
    .await?;
    if let Some(id) = pending {
        return Ok(id);
    }
    fetch_one(
        conn,
        "enqueueing a table job",
        "INSERT INTO jobs (org, sandbox, kind, batch_id, status, attempts, run_after, created, updated) VALUES ($1, $2, $3, $4, 'queued', 0, $5, $5, $5) RETURNING id",
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &dataset_id, &now],
    )
    .await
}

/// Returns a dataset's table job, or None when the tenant has no such job for it.
pub(crate) async fn table_job<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    dataset_id: &str,
    id: i64,
) -> Result<Option<TableJob>, MetastoreError> {
    type Row = (
        i64,
        String,
        String,
        String,
        i64,
        Option<String>,
        Option<String>,
        i64,
        i64,
    );
    let row: Option<Row> = fetch_opt(
        conn,
        "reading a table job",
        "SELECT id, kind, batch_id, status, attempts, last_error, result, created, updated FROM jobs
         WHERE id = $1 AND org = $2 AND sandbox = $3 AND batch_id = $4 AND kind IN ('optimize_table', 'vacuum_table')",
        &[&id, &tenant.org(), &tenant.sandbox(), &dataset_id],
    )
    .await?;
    Ok(row.and_then(
        |(id, kind, dataset_id, status, attempts, error, result, created, updated)| {
            Some(TableJob {
                id,
                kind: JobKind::parse(&kind)?,
                dataset_id,
                status,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                error,
                result,
                created,
                updated,
            })
        },
    ))
}

/// Marks a table job done with what it did (JSON).
pub(crate) async fn finish_table_job<C: Conn>(
    conn: &mut C,
    job: &Job,
    result: &str,
    now: i64,
) -> Result<(), MetastoreError> {
    ensure_lease(conn, job).await?;
    conn.execute(
        "finishing a table job",
        "UPDATE jobs SET status = 'done', result = $1, lease_owner = NULL, lease_until = NULL, updated = $2 WHERE id = $3",
        &[&result, &now, &job.id],
    )
    .await?;
    Ok(())
}

/// Marks every dataset file of a batch invalid (REVERT, replay).
async fn invalidate_files<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    ctx: &WriteContext<'_>,
) -> Result<(), MetastoreError> {
    let sql = format!(
        "SELECT {} FROM dataset_files WHERE org = $1 AND sandbox = $2 AND batch_id = $3 ORDER BY id{}",
        C::Dialect::BODY,
        C::Dialect::lock(Lock::Update)
    );
    let texts: Vec<String> = fetch(
        conn,
        "reading dataset files",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await?;
    for text in texts {
        let mut file = parse_doc(&text)?;
        if !catalog::file_is_valid(&file) {
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
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn signal_batch<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
    action: BatchAction,
    actor: &Actor,
    now: i64,
    cleanup_delay_ms: i64,
) -> Result<Doc, MetastoreError> {
    let Some(batch) = load(conn, tenant, ObjectKind::Batch, batch_id, Lock::Update).await? else {
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
    store(conn, tenant, ObjectKind::Batch, &next, StoreMode::Update).await?;
    record_on_dataset(conn, tenant, &next, None, false).await?;
    if promote {
        enqueue_job(conn, tenant, JobKind::PromoteBatch, batch_id, now, now).await?;
    }
    if cleanup {
        enqueue_job(conn, tenant, JobKind::CleanupBatch, batch_id, now, now).await?;
    }
    if action == BatchAction::Revert {
        invalidate_files(conn, tenant, batch_id, &ctx).await?;
        // The reverted data is collected after the grace period; enqueued here, in the
        // signal's transaction, so that no crash can leave it without a collector.
        let run_at = now.saturating_add(cleanup_delay_ms);
        enqueue_job(conn, tenant, JobKind::CleanupBatch, batch_id, run_at, now).await?;
    }
    Ok(next)
}

/// Claims the next runnable job; a job another worker is claiming or finishing right now is
/// skipped, not waited for.
pub(crate) async fn claim_job<C: Conn>(
    conn: &mut C,
    worker: &str,
    lease_ms: i64,
    now: i64,
) -> Result<Option<Job>, MetastoreError> {
    let sql = format!(
        "SELECT id, org, sandbox, kind, batch_id, attempts FROM jobs
         WHERE (status = 'queued' AND run_after <= $1) OR (status = 'running' AND lease_until < $1)
         ORDER BY run_after, id LIMIT 1{}",
        C::Dialect::SKIP_LOCKED
    );
    let found: Option<(i64, String, String, String, String, i64)> =
        fetch_opt(conn, "looking for a job", &sql, &[&now]).await?;
    let Some((id, org, sandbox, kind, batch_id, attempts)) = found else {
        return Ok(None);
    };
    conn.execute(
        "claiming a job",
        "UPDATE jobs SET status = 'running', lease_owner = $1, lease_until = $2, attempts = attempts + 1, updated = $3 WHERE id = $4",
        &[&worker, &(now + lease_ms), &now, &id],
    )
    .await?;
    let Some(kind) = JobKind::parse(&kind) else {
        conn.execute(
            "failing an unknown job",
            "UPDATE jobs SET status = 'failed', last_error = 'unknown job kind' WHERE id = $1",
            &[&id],
        )
        .await?;
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
        batch_id: BatchId::from(batch_id),
        attempt: u32::try_from(attempts + 1).unwrap_or(u32::MAX),
        worker: worker.to_owned(),
    }))
}

/// Checks that the worker still holds the job's lease, and locks the job row so that no
/// other worker can claim it before this transaction ends.
async fn ensure_lease<C: Conn>(conn: &mut C, job: &Job) -> Result<(), MetastoreError> {
    let sql = format!(
        "SELECT status, lease_owner FROM jobs WHERE id = $1{}",
        C::Dialect::lock(Lock::Update)
    );
    let row: Option<(String, Option<String>)> =
        fetch_opt(conn, "checking a job lease", &sql, &[&job.id]).await?;
    let holds = row.is_some_and(|(status, owner)| {
        status == "running" && owner.as_deref() == Some(job.worker.as_str())
    });
    if holds {
        Ok(())
    } else {
        Err(MetastoreError::LostLease { job_id: job.id })
    }
}

pub(crate) async fn renew_lease<C: Conn>(
    conn: &mut C,
    job: &Job,
    until: i64,
) -> Result<bool, MetastoreError> {
    let changed = conn.execute(
        "renewing a job lease",
        "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
        &[&until, &job.id, &job.worker],
    )
    .await?;
    Ok(changed > 0)
}

async fn set_job_status<C: Conn>(
    conn: &mut C,
    job: &Job,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> Result<(), MetastoreError> {
    conn.execute(
        "updating a job",
        "UPDATE jobs SET status = $1, last_error = COALESCE($2, last_error), lease_owner = NULL, lease_until = NULL, updated = $3 WHERE id = $4",
        &[&status, &error, &now, &job.id],
    )
    .await?;
    Ok(())
}

pub(crate) async fn finish_job<C: Conn>(
    conn: &mut C,
    job: &Job,
    now: i64,
) -> Result<(), MetastoreError> {
    ensure_lease(conn, job).await?;
    set_job_status(conn, job, "done", None, now).await
}

/// Sets a batch's status; the caller holds the batch row's lock.
async fn set_batch_status<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch: &Doc,
    status: BatchStatus,
    now: i64,
) -> Result<Doc, MetastoreError> {
    let actor = catalog::creator(batch);
    let ctx = WriteContext {
        tenant,
        actor: &actor,
        now,
    };
    let mut next = batch.clone();
    next.insert("status".into(), json!(status.as_str()));
    catalog::touch(&mut next, &ctx);
    store(conn, tenant, ObjectKind::Batch, &next, StoreMode::Update).await?;
    record_on_dataset(conn, tenant, &next, None, false).await?;
    Ok(next)
}

pub(crate) async fn begin_processing<C: Conn>(
    conn: &mut C,
    job: &Job,
    now: i64,
) -> Result<Option<Doc>, MetastoreError> {
    ensure_lease(conn, job).await?;
    let batch = load(
        conn,
        &job.tenant,
        ObjectKind::Batch,
        &job.batch_id,
        Lock::Update,
    )
    .await?;
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
        ) => Ok(Some(
            set_batch_status(conn, &job.tenant, &batch, BatchStatus::Processing, now).await?,
        )),
        _ => {
            set_job_status(conn, job, "done", Some("nothing to process"), now).await?;
            Ok(None)
        }
    }
}

/// Returns the ids of a batch's replay predecessors (and, with `ALL`, theirs), locking
/// each before its dataset is locked.
async fn lock_predecessors<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch: &Doc,
) -> Result<Vec<(String, Doc)>, MetastoreError> {
    let (mut pending, transitive) = catalog::replay_predecessors(batch);
    let mut seen: Vec<String> = Vec::new();
    let mut found = Vec::new();
    while let Some(id) = pending.pop() {
        if seen.contains(&id) {
            continue;
        }
        seen.push(id.clone());
        let Some(predecessor) = load(conn, tenant, ObjectKind::Batch, &id, Lock::Update).await?
        else {
            continue;
        };
        if transitive {
            pending.extend(catalog::replay_predecessors(&predecessor).0);
        }
        found.push((id, predecessor));
    }
    Ok(found)
}

/// Makes replay predecessors `inactive`, hiding their files.
/// Makes the successful predecessors a replay replaces `inactive` and enqueues the clean-up
/// of each one's data, due `cleanup_delay_ms` after `now`.
async fn deactivate_predecessors<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    predecessors: Vec<(String, Doc)>,
    now: i64,
    cleanup_delay_ms: i64,
) -> Result<(), MetastoreError> {
    for (id, predecessor) in predecessors {
        if catalog::batch_status(&predecessor) == Some(BatchStatus::Success) {
            set_batch_status(conn, tenant, &predecessor, BatchStatus::Inactive, now).await?;
            let actor = catalog::creator(&predecessor);
            invalidate_files(
                conn,
                tenant,
                &id,
                &WriteContext {
                    tenant,
                    actor: &actor,
                    now,
                },
            )
            .await?;
            let run_at = now.saturating_add(cleanup_delay_ms);
            enqueue_job(conn, tenant, JobKind::CleanupBatch, &id, run_at, now).await?;
        }
    }
    Ok(())
}

async fn insert_dataset_files<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch: &Doc,
    files: &[NewDatasetFile],
    now: i64,
) -> Result<(), MetastoreError> {
    let batch_id = catalog::object_id(batch).unwrap_or_default();
    let dataset_id = catalog::batch_dataset_id(batch).unwrap_or_default();
    let view_id = load(conn, tenant, ObjectKind::Dataset, dataset_id, Lock::None)
        .await?
        .and_then(|dataset| catalog::dataset_view_id(&dataset).map(str::to_owned))
        .unwrap_or_default();
    let actor = catalog::creator(batch);
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
        )
        .await?;
        conn.execute(
            "recording a dataset file location",
            "UPDATE dataset_files SET location = $1 WHERE org = $2 AND sandbox = $3 AND id = $4",
            &[&file.location, &tenant.org(), &tenant.sandbox(), &id],
        )
        .await?;
    }
    Ok(())
}

pub(crate) async fn complete_promotion<C: Conn>(
    conn: &mut C,
    job: &Job,
    promotion: Promotion,
    now: i64,
) -> Result<Doc, MetastoreError> {
    ensure_lease(conn, job).await?;
    let tenant = &job.tenant;
    let Some(batch) = load(conn, tenant, ObjectKind::Batch, &job.batch_id, Lock::Update).await?
    else {
        set_job_status(conn, job, "done", Some("batch deleted"), now).await?;
        return Err(MetastoreError::NotFound {
            kind: ObjectKind::Batch,
            id: job.batch_id.to_string(),
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
        )
        .await?;
        crate::stream::mark_done(conn, tenant, &job.batch_id).await?;
        return Ok(batch);
    }
    let actor = catalog::creator(&batch);
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
    let predecessors = if catalog::batch_status(&next) == Some(BatchStatus::Success) {
        lock_predecessors(conn, tenant, &next).await?
    } else {
        Vec::new()
    };
    insert_dataset_files(conn, tenant, &next, &promotion.files, now).await?;
    store(conn, tenant, ObjectKind::Batch, &next, StoreMode::Update).await?;
    record_on_dataset(conn, tenant, &next, None, false).await?;
    deactivate_predecessors(conn, tenant, predecessors, now, promotion.cleanup_delay_ms).await?;
    if let Some(location) = &promotion.diagnostics_location {
        let completed = next.get("completed").and_then(Value::as_i64).unwrap_or(now);
        let files =
            serde_json::to_string(&promotion.diagnostics_files).unwrap_or_else(|_| "[]".to_owned());
        conn.execute(
            "recording diagnostics",
            "INSERT INTO batch_outputs (org, sandbox, batch_id, diagnostics, completed, files) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (org, sandbox, batch_id) DO UPDATE SET diagnostics = excluded.diagnostics, completed = excluded.completed, files = excluded.files",
            &[&tenant.org(), &tenant.sandbox(), &job.batch_id, location, &completed, &files],
        )
        .await?;
    }
    // A streamed segment is done in the transaction that makes its batch terminal, so it
    // is never submitted again (spec §10.3 step 4).
    crate::stream::mark_done(conn, tenant, &job.batch_id).await?;
    set_job_status(conn, job, "done", None, now).await?;
    enqueue_job(conn, tenant, JobKind::CleanupBatch, &job.batch_id, now, now).await?;
    Ok(next)
}

pub(crate) async fn retry_job<C: Conn>(
    conn: &mut C,
    job: &Job,
    error: &str,
    retry_at: i64,
    max_attempts: u32,
    now: i64,
) -> Result<(), MetastoreError> {
    ensure_lease(conn, job).await?;
    let batch = load(
        conn,
        &job.tenant,
        ObjectKind::Batch,
        &job.batch_id,
        Lock::Update,
    )
    .await?;
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
        set_job_status(conn, job, "failed", Some(error), now).await?;
        if let (Some(batch), true) = (batch, in_flight && job.kind == JobKind::PromoteBatch) {
            set_batch_status(conn, &job.tenant, &batch, BatchStatus::Stalled, now).await?;
        }
        return Ok(());
    }
    conn.execute(
        "scheduling a retry",
        "UPDATE jobs SET status = 'queued', run_after = $1, lease_owner = NULL, lease_until = NULL, last_error = $2, updated = $3 WHERE id = $4",
        &[&retry_at, &error, &now, &job.id],
    )
    .await?;
    if let (Some(batch), true) = (batch, in_flight && job.kind == JobKind::PromoteBatch) {
        set_batch_status(conn, &job.tenant, &batch, BatchStatus::Retrying, now).await?;
    }
    Ok(())
}

pub(crate) async fn abandon_stale_batches<C: Conn>(
    conn: &mut C,
    created_before: i64,
    now: i64,
) -> Result<Vec<(Tenant, BatchId)>, MetastoreError> {
    // Locked in one order so that two sweeps queue instead of deadlocking; a batch that
    // left `loading` while this waited is re-checked and skipped.
    let sql = format!(
        "SELECT org, sandbox, {} FROM batches WHERE status = 'loading' AND created < $1 ORDER BY org, sandbox, id{}",
        C::Dialect::BODY,
        C::Dialect::lock(Lock::Update)
    );
    let rows: Vec<(String, String, String)> =
        fetch(conn, "finding stale batches", &sql, &[&created_before]).await?;
    let mut abandoned = Vec::new();
    for (org, sandbox, text) in rows {
        let Ok(tenant) = Tenant::parse(&org, &sandbox) else {
            continue;
        };
        let batch = parse_doc(&text)?;
        let mut next = set_batch_status(conn, &tenant, &batch, BatchStatus::Abandoned, now).await?;
        next.insert("completed".into(), json!(now));
        store(conn, &tenant, ObjectKind::Batch, &next, StoreMode::Update).await?;
        let id = catalog::object_id(&batch).unwrap_or_default().to_owned();
        enqueue_job(conn, &tenant, JobKind::CleanupBatch, &id, now, now).await?;
        abandoned.push((tenant, BatchId::from(id)));
    }
    Ok(abandoned)
}

/// Reads dataset files with their locations: `column` = `key`, oldest first.
async fn stored_files<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    column: &str,
    key: &str,
) -> Result<Vec<StoredDatasetFile>, MetastoreError> {
    let sql = format!(
        "SELECT {}, location FROM dataset_files WHERE org = $1 AND sandbox = $2 AND {column} = $3 ORDER BY created, id",
        C::Dialect::BODY
    );
    let rows: Vec<(String, Option<String>)> = fetch(
        conn,
        "reading dataset files",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &key],
    )
    .await?;
    rows.into_iter()
        .map(|(text, location)| {
            Ok(StoredDatasetFile {
                doc: parse_doc(&text)?,
                location: location.unwrap_or_default(),
            })
        })
        .collect()
}

pub(crate) async fn dataset_file<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<StoredDatasetFile>, MetastoreError> {
    let files = stored_files(conn, tenant, "id", id).await?;
    Ok(files.into_iter().next())
}

pub(crate) async fn batch_dataset_files<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Vec<StoredDatasetFile>, MetastoreError> {
    stored_files(conn, tenant, "batch_id", batch_id).await
}

pub(crate) async fn diagnostics_location<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Option<String>, MetastoreError> {
    let row: Option<Option<String>> = fetch_opt(
        conn,
        "reading diagnostics",
        "SELECT diagnostics FROM batch_outputs WHERE org = $1 AND sandbox = $2 AND batch_id = $3",
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await?;
    Ok(row.flatten())
}

pub(crate) async fn diagnostics_files<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<Option<Vec<DiagnosticsFile>>, MetastoreError> {
    let text: Option<Option<String>> = fetch_opt(
        conn,
        "reading diagnostics files",
        "SELECT files FROM batch_outputs
         WHERE org = $1 AND sandbox = $2 AND batch_id = $3 AND diagnostics IS NOT NULL",
        &[&tenant.org(), &tenant.sandbox(), &batch_id],
    )
    .await?;
    text.flatten()
        .map(|text| {
            serde_json::from_str(&text).map_err(|err| MetastoreError::Backend {
                doing: "reading the recorded diagnostics files",
                source: Box::new(err),
            })
        })
        .transpose()
}

pub(crate) async fn expired_diagnostics<C: Conn>(
    conn: &mut C,
    completed_before: i64,
    limit: u32,
) -> Result<Vec<ExpiredDiagnostics>, MetastoreError> {
    let rows: Vec<(String, String, String, String)> = fetch(
        conn,
        "finding expired diagnostics",
        "SELECT org, sandbox, batch_id, diagnostics FROM batch_outputs
         WHERE diagnostics IS NOT NULL AND completed < $1
         ORDER BY completed, org, sandbox, batch_id LIMIT $2",
        &[&completed_before, &i64::from(limit)],
    )
    .await?;
    rows.into_iter()
        .map(|(org, sandbox, batch_id, location)| {
            let tenant = Tenant::parse(&org, &sandbox).map_err(|err| MetastoreError::Backend {
                doing: "reading the tenant of expired diagnostics",
                source: Box::new(err),
            })?;
            Ok(ExpiredDiagnostics {
                tenant,
                batch_id: BatchId::from(batch_id),
                location,
            })
        })
        .collect()
}

pub(crate) async fn clear_diagnostics<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    batch_id: &str,
) -> Result<bool, MetastoreError> {
    let changed = conn
        .execute(
            "clearing diagnostics",
            "UPDATE batch_outputs SET diagnostics = NULL, files = NULL
         WHERE org = $1 AND sandbox = $2 AND batch_id = $3 AND diagnostics IS NOT NULL",
            &[&tenant.org(), &tenant.sandbox(), &batch_id],
        )
        .await?;
    Ok(changed > 0)
}

/// Takes the lock on a dataset's Delta table for a job whose lease its worker holds (spec
/// §12: the metastore is each table's commit coordinator). The lock is free when no job
/// holds it, or when the job that took it is no longer running under that worker's
/// unexpired lease (it finished, was retried, or its worker died), so a crashed holder
/// never blocks the table for longer than its lease. Returns false while another job holds
/// it.
pub(crate) async fn lock_table<C: Conn>(
    conn: &mut C,
    job: &Job,
    dataset_id: &str,
    now: i64,
) -> Result<bool, MetastoreError> {
    ensure_lease(conn, job).await?;
    let tenant = &job.tenant;
    let sql = format!(
        "SELECT job_id, worker FROM table_locks WHERE org = $1 AND sandbox = $2 AND dataset_id = $3{}",
        C::Dialect::lock(Lock::Update)
    );
    let holder: Option<(i64, String)> = fetch_opt(
        conn,
        "reading a table lock",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &dataset_id],
    )
    .await?;
    let Some((holder_job, holder_worker)) = holder else {
        let inserted = conn
            .execute(
                "taking a table lock",
                "INSERT INTO table_locks (org, sandbox, dataset_id, job_id, worker, since) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (org, sandbox, dataset_id) DO NOTHING",
                &[&tenant.org(), &tenant.sandbox(), &dataset_id, &job.id, &job.worker, &now],
            )
            .await?;
        // Zero rows: another transaction took it first.
        return Ok(inserted > 0);
    };
    if holder_job == job.id && holder_worker == job.worker {
        return Ok(true);
    }
    let lease: Option<(String, Option<String>, Option<i64>)> = fetch_opt(
        conn,
        "checking a table lock's holder",
        "SELECT status, lease_owner, lease_until FROM jobs WHERE id = $1",
        &[&holder_job],
    )
    .await?;
    let held = lease.is_some_and(|(status, owner, until)| {
        status == "running"
            && owner.as_deref() == Some(holder_worker.as_str())
            && until.is_some_and(|until| until >= now)
    });
    if held {
        return Ok(false);
    }
    conn.execute(
        "taking over a table lock",
        "UPDATE table_locks SET job_id = $1, worker = $2, since = $3 WHERE org = $4 AND sandbox = $5 AND dataset_id = $6",
        &[&job.id, &job.worker, &now, &tenant.org(), &tenant.sandbox(), &dataset_id],
    )
    .await?;
    Ok(true)
}

/// Releases a job's lock on a dataset's table (a no-op when it no longer holds it).
pub(crate) async fn unlock_table<C: Conn>(
    conn: &mut C,
    job: &Job,
    dataset_id: &str,
) -> Result<(), MetastoreError> {
    conn.execute(
        "releasing a table lock",
        "DELETE FROM table_locks WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND job_id = $4 AND worker = $5",
        &[&job.tenant.org(), &job.tenant.sandbox(), &dataset_id, &job.id, &job.worker],
    )
    .await?;
    Ok(())
}
