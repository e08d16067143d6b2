//! Background jobs: the worker loop that claims jobs from the metastore queue, the batch
//! promotion job (validate → Parquet → one catalog transaction), clean-up, and the periodic
//! sweeps (stale `loading` batches, diagnostics past their retention period).
//!
//! Only this crate writes dataset files, and the catalog update is each job's last step;
//! every job is safe to run twice (outputs go under attempt-scoped keys that only the
//! committing transaction makes visible). It sits on top of `domain`, `metastore`,
//! `storage` and `parquet`; nothing but the binary depends on it.

mod early;
mod maintain;
mod promote;
mod stream;
pub mod tables;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lakeport_config::IngestConfig;
use lakeport_domain::ingest::{Job, JobKind};
use lakeport_domain::now_millis;
use lakeport_domain::query::ObjectKind;
use lakeport_domain::status::BatchStatus;
use lakeport_metastore::Metastore;
use lakeport_storage::{Storage, keys};

pub use early::EarlyProcessing;
pub use lakeport_lake::TableCache;

/// The threads a batch uses: `ingest.batch_threads`, but no more than the CPUs the process
/// may run on (`cpus`: its affinity mask and cgroup quota, as
/// [`std::thread::available_parallelism`] counts them). On one CPU a second thread only
/// takes turns with the first, handing it each record batch: JSON Lines took 1.5-7% more
/// wall time with 2 than with 1 in two of three alternated comparisons (and 3% less in
/// the third; `docs/BENCHMARKS.md`).
#[must_use]
pub fn batch_threads(configured: u32, cpus: Option<usize>) -> u32 {
    let cpus = cpus.map_or(u32::MAX, |cpus| u32::try_from(cpus).unwrap_or(u32::MAX));
    configured.min(cpus).max(1)
}

/// What a worker needs.
#[derive(Clone)]
pub struct JobContext {
    pub metastore: Arc<dyn Metastore>,
    pub storage: Storage,
    pub work_dir: PathBuf,
    pub config: IngestConfig,
    /// When the streaming append log becomes batches.
    pub stream: lakeport_config::StreamConfig,
    /// Identifies this worker in job leases.
    pub worker_id: String,
    /// The node's loaded Delta tables, shared by its workers.
    pub tables: TableCache,
    /// The node's early runs of uploads (`lakeport serve` only), whose results the job of
    /// a batch of one file may use.
    pub early: Option<EarlyProcessing>,
}

/// Why a job failed; every failure here is treated as transient and retried.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    Metastore(#[from] lakeport_metastore::MetastoreError),
    #[error(transparent)]
    Storage(#[from] lakeport_storage::StorageError),
    #[error(transparent)]
    Lake(#[from] lakeport_lake::LakeError),
    #[error("{0}")]
    Io(String),
}

/// The batch and dataset field holding the Delta table version a batch's promotion (or
/// the latest change to the dataset's table) produced.
pub const TABLE_VERSION_FIELD: &str = "tableVersion";

/// Records on the dataset the latest version of its table (never moving it back); a
/// failure is logged: the batch's own document already holds its version.
async fn record_table_version(
    ctx: &JobContext,
    tenant: &lakeport_domain::tenant::Tenant,
    dataset_id: &str,
    version: u64,
) {
    let change: lakeport_metastore::DocChange = Box::new(move |doc: &lakeport_domain::Doc| {
        let mut next = doc.clone();
        let current = doc
            .get(TABLE_VERSION_FIELD)
            .and_then(serde_json::Value::as_u64);
        if current.is_none_or(|current| current < version) {
            next.insert(TABLE_VERSION_FIELD.into(), version.into());
        }
        Ok(next)
    });
    if let Err(err) = ctx
        .metastore
        .update(
            tenant,
            ObjectKind::Dataset,
            dataset_id,
            Default::default(),
            change,
        )
        .await
    {
        tracing::warn!(dataset.id = %dataset_id, table.version = version, error = %err, "could not record the table version on the dataset");
    }
}

/// How long a job waits for a dataset's table lock before it gives up (and is retried).
const TABLE_LOCK_WAIT: Duration = Duration::from_secs(120);

/// Takes the dataset's table lock for the job (spec §12: one commit at a time per table, by
/// a lease holder), waiting while another job holds it. Fails when the job's lease is lost
/// meanwhile, or after [`TABLE_LOCK_WAIT`].
async fn lock_table(
    ctx: &JobContext,
    job: &Job,
    dataset_id: &lakeport_domain::ids::DatasetId,
    lease_lost: &AtomicBool,
) -> Result<(), JobError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if lease_lost.load(Ordering::SeqCst) {
            return Err(JobError::Io(
                "the job's lease was lost before the table commit".to_owned(),
            ));
        }
        if ctx
            .metastore
            .lock_table(job, dataset_id, now_millis())
            .await?
        {
            let waited = started.elapsed();
            if waited > Duration::from_millis(500) {
                tracing::info!(job.id = job.id, dataset.id = %dataset_id, waited_ms = waited.as_millis() as u64, "table lock taken after a wait");
            }
            return Ok(());
        }
        if started.elapsed() > TABLE_LOCK_WAIT {
            return Err(JobError::Io(format!(
                "the table of dataset {dataset_id} stayed locked by another job for {} s",
                TABLE_LOCK_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Releases the job's table lock; a failure is logged (the lock ends with the job's lease).
async fn unlock_table(ctx: &JobContext, job: &Job, dataset_id: &lakeport_domain::ids::DatasetId) {
    if let Err(err) = ctx.metastore.unlock_table(job, dataset_id).await {
        tracing::warn!(job.id = job.id, dataset.id = %dataset_id, error = %err, "could not release a table lock; it ends with the job's lease");
    }
}

/// Claims and runs jobs.
#[derive(Clone)]
pub struct Runner {
    ctx: JobContext,
}

/// How often an idle worker looks for work.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// How long a worker out of jobs keeps the blocks its batches freed (the allocator's block
/// cache, `ingest.block_cache_mb`) before it empties the cache. Touching fresh memory is
/// costly, on virtual machines most of all (docs/BENCHMARKS.md): a batch that starts with
/// the previous one's blocks takes fewer page faults.
const KEEP_BLOCKS_IDLE: Duration = Duration::from_secs(10);
/// How often due stream segments are sealed.
const SEAL_EVERY: Duration = Duration::from_millis(200);
/// How often stale `loading` batches are abandoned.
const ABANDON_EVERY: Duration = Duration::from_secs(60);
/// How often diagnostics past their retention period are deleted.
const EXPIRE_DIAGNOSTICS_EVERY: Duration = Duration::from_secs(600);
/// How many batches one metastore query of the diagnostics sweep returns.
const EXPIRE_DIAGNOSTICS_PAGE: u32 = 100;

/// When a worker empties the allocator's block cache: once it has been out of jobs for
/// [`KEEP_BLOCKS_IDLE`] after running one, so that the next batch of a client sending one
/// after another (the worker idles while it uploads) reuses the blocks the last one freed,
/// while an idle server keeps none. Once per idle spell, not at every idle poll, which with
/// several workers would empty the cache under another worker's batch.
#[derive(Debug, Default)]
struct KeptBlocks {
    /// Whether jobs ran since the cache was last emptied, and since when none has.
    kept: bool,
    idle_since: Option<std::time::Instant>,
}

impl KeptBlocks {
    fn worked(&mut self) {
        self.kept = true;
        self.idle_since = None;
    }

    /// Records an idle poll at `now`; true when the cache is to be emptied now.
    fn idle(&mut self, now: std::time::Instant) -> bool {
        if !self.kept {
            return false;
        }
        let since = *self.idle_since.get_or_insert(now);
        if now.duration_since(since) < KEEP_BLOCKS_IDLE {
            return false;
        }
        *self = Self::default();
        true
    }
}

/// Returns true when `every` has passed since `last` (or nothing ran yet), and records now.
fn due(last: &mut Option<std::time::Instant>, every: Duration) -> bool {
    if last.is_some_and(|at| at.elapsed() < every) {
        return false;
    }
    *last = Some(std::time::Instant::now());
    true
}

impl Runner {
    /// Returns a runner.
    pub fn new(ctx: JobContext) -> Self {
        Self { ctx }
    }

    /// Runs jobs until `shutdown` resolves; an idle worker polls every 200 ms, and wakes at
    /// once when this node queues a job ([`Metastore::job_bell`]). A job running
    /// when `shutdown` resolves gets up to `grace` to finish; past that it is dropped and left
    /// to its lease (promotions are idempotent, so the next claim redoes it from the start).
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>, grace: Duration) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_abandon = None;
        let mut last_expiry = None;
        let mut last_seal = None;
        let mut last_requeue = None;
        let mut blocks = KeptBlocks::default();
        // A job queued on this node rings the bell, so an idle worker starts it at once.
        let bell = self.ctx.metastore.job_bell();
        tracing::info!(worker.id = %self.ctx.worker_id, "worker started");
        loop {
            if due(&mut last_abandon, ABANDON_EVERY) {
                self.abandon_stale().await;
            }
            if due(&mut last_expiry, EXPIRE_DIAGNOSTICS_EVERY)
                && let Err(err) = self.expire_diagnostics().await
            {
                tracing::warn!(error = %err, "could not look for expired diagnostics");
            }
            if due(&mut last_seal, SEAL_EVERY)
                && let Err(err) = stream::seal_due(&self.ctx, now_millis()).await
            {
                tracing::warn!(error = %err, "could not seal stream segments");
            }
            if due(&mut last_requeue, ABANDON_EVERY)
                && let Err(err) = stream::requeue_stalled(&self.ctx, now_millis()).await
            {
                tracing::warn!(error = %err, "could not look for stalled stream segments");
            }
            let mut job = std::pin::pin!(self.run_one());
            let outcome = tokio::select! {
                outcome = &mut job => outcome,
                () = &mut shutdown => {
                    // Stopping with a backlog: finish the job in hand, take no other.
                    if tokio::time::timeout(grace, &mut job).await.is_err() {
                        tracing::warn!(
                            worker.id = %self.ctx.worker_id,
                            grace_secs = grace.as_secs(),
                            "stopping with a job unfinished; its lease hands it to the next worker"
                        );
                    }
                    break;
                }
            };
            let worked = match outcome {
                Ok(worked) => worked,
                Err(err) => {
                    tracing::warn!(worker.id = %self.ctx.worker_id, error = %err, "worker could not claim a job");
                    false
                }
            };
            if worked {
                blocks.worked();
                continue;
            }
            if blocks.idle(std::time::Instant::now()) {
                lakeport_alloc::release();
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = bell.notified() => {}
                () = tokio::time::sleep(IDLE_POLL) => {}
            }
        }
        tracing::info!(worker.id = %self.ctx.worker_id, "worker stopped");
    }

    /// Runs jobs until none is runnable; returns how many ran (tests drain the queue
    /// deterministically with it).
    ///
    /// # Errors
    /// A metastore failure while claiming.
    pub async fn run_until_idle(&self) -> Result<usize, JobError> {
        let mut ran = 0;
        while self.run_one().await? {
            ran += 1;
        }
        Ok(ran)
    }

    /// Seals every open stream segment, whatever its age and size, then runs jobs until
    /// none is runnable (tests see streamed records land without waiting for the interval).
    ///
    /// # Errors
    /// A metastore failure while sealing or claiming.
    pub async fn flush_streams(&self) -> Result<usize, JobError> {
        self.ctx
            .metastore
            .seal_stream_segments(i64::MAX, 1, now_millis())
            .await?;
        self.run_until_idle().await
    }

    async fn abandon_stale(&self) {
        let after_ms = i64::try_from(self.ctx.config.abandon_after_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX);
        let now = now_millis();
        match self
            .ctx
            .metastore
            .abandon_stale_batches(now.saturating_sub(after_ms), now)
            .await
        {
            Ok(abandoned) => {
                for (tenant, batch) in abandoned {
                    tracing::info!(batch.id = %batch, tenant.org = tenant.org(), "batch abandoned: never completed");
                }
            }
            Err(err) => tracing::warn!(error = %err, "could not abandon stale batches"),
        }
    }

    /// Deletes the `failed/` and `meta/` files of batches completed longer than
    /// `ingest.diagnostics_retention_secs` ago (spec §7.5) and forgets their location; the
    /// Parquet data of the attempt stays. Returns how many batches were swept.
    ///
    /// # Errors
    /// A metastore failure while looking for expired diagnostics; a batch whose files
    /// cannot be deleted is logged and retried by the next sweep.
    pub async fn expire_diagnostics(&self) -> Result<usize, JobError> {
        let retention_ms = i64::try_from(
            self.ctx
                .config
                .diagnostics_retention_secs
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX);
        let completed_before = now_millis().saturating_sub(retention_ms);
        let mut swept = 0;
        loop {
            let expired = self
                .ctx
                .metastore
                .expired_diagnostics(completed_before, EXPIRE_DIAGNOSTICS_PAGE)
                .await?;
            let page = expired.len();
            let mut cleared = 0;
            for entry in expired {
                match self.delete_diagnostics(&entry).await {
                    Ok(objects) => {
                        cleared += 1;
                        tracing::info!(
                            batch.id = %entry.batch_id,
                            tenant.org = entry.tenant.org(),
                            diagnostics_objects = objects,
                            "batch diagnostics expired"
                        );
                    }
                    Err(err) => tracing::warn!(
                        batch.id = %entry.batch_id,
                        tenant.org = entry.tenant.org(),
                        error = %err,
                        "could not delete expired diagnostics; the next sweep retries"
                    ),
                }
            }
            swept += cleared;
            // Stop at the last page, or when nothing on a page could be cleared (it would
            // come back unchanged).
            if page < EXPIRE_DIAGNOSTICS_PAGE as usize || cleared == 0 {
                return Ok(swept);
            }
        }
    }

    /// Deletes one batch's `failed/` and `meta/` objects, then forgets the location.
    async fn delete_diagnostics(
        &self,
        entry: &lakeport_metastore::ExpiredDiagnostics,
    ) -> Result<u64, JobError> {
        let root = lakeport_storage::Key::parse(entry.location.as_str()).map_err(|err| {
            JobError::Io(format!(
                "diagnostics location {:?} is not a storage key: {err}",
                entry.location
            ))
        })?;
        let mut objects = 0;
        for folder in ["failed", "meta"] {
            objects += self
                .ctx
                .storage
                .delete_prefix(&keys::attempt_file(&root, folder))
                .await?;
        }
        self.ctx
            .metastore
            .clear_diagnostics(&entry.tenant, &entry.batch_id)
            .await?;
        Ok(objects)
    }

    /// Claims and runs one job; false when there was none.
    async fn run_one(&self) -> Result<bool, JobError> {
        let lease_ms = i64::try_from(self.ctx.config.lease_secs * 1000).unwrap_or(60_000);
        let Some(job) = self
            .ctx
            .metastore
            .claim_job(&self.ctx.worker_id, lease_ms, now_millis())
            .await?
        else {
            return Ok(false);
        };
        let started = std::time::Instant::now();
        tracing::info!(job.id = job.id, job.kind = job.kind.as_str(), job.attempt = job.attempt, batch.id = %job.batch_id, "job claimed");
        let lease_lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.spawn_heartbeat(&job, lease_ms, Arc::clone(&lease_lost));
        let result = match job.kind {
            JobKind::PromoteBatch => promote::run(&self.ctx, &job, &lease_lost).await,
            JobKind::CleanupBatch => self.cleanup(&job, &lease_lost).await,
            JobKind::FlushSegment => stream::flush(&self.ctx, &job).await,
            JobKind::OptimizeTable | JobKind::VacuumTable => {
                maintain::run(&self.ctx, &job, &lease_lost).await
            }
        };
        heartbeat.abort();
        match result {
            Ok(()) => tracing::info!(
                job.id = job.id,
                job.kind = job.kind.as_str(),
                batch.id = %job.batch_id,
                duration_ms = started.elapsed().as_millis() as u64,
                "job finished"
            ),
            Err(err) => self.retry(&job, &err).await,
        }
        Ok(true)
    }

    /// Renews the job's lease every lease/3; sets `lost` when another worker holds it.
    fn spawn_heartbeat(
        &self,
        job: &Job,
        lease_ms: i64,
        lost: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        let metastore = Arc::clone(&self.ctx.metastore);
        let job = job.clone();
        tokio::spawn(async move {
            let every =
                Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(20_000).max(100));
            loop {
                tokio::time::sleep(every).await;
                match metastore.renew_lease(&job, now_millis() + lease_ms).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        tracing::warn!(job.id = job.id, "job lease lost");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(job.id = job.id, error = %err, "could not renew a job lease")
                    }
                }
            }
        })
    }

    async fn retry(&self, job: &Job, err: &JobError) {
        let backoff_ms = 1000 * 2i64.pow(job.attempt.min(10));
        tracing::warn!(
            job.id = job.id,
            job.kind = job.kind.as_str(),
            job.attempt = job.attempt,
            batch.id = %job.batch_id,
            error = %err,
            "job failed; it will be retried or stalled"
        );
        let now = now_millis();
        if let Err(retry_err) = self
            .ctx
            .metastore
            .retry_job(
                job,
                &err.to_string(),
                now + backoff_ms,
                self.ctx.config.max_attempts,
                now,
            )
            .await
        {
            tracing::error!(job.id = job.id, error = %retry_err, "could not record a job failure; the lease will expire and the job rerun");
        }
    }

    /// Removes what a batch no longer needs: its staged uploads, the outputs of attempts
    /// that were never committed, and — once it is `inactive` (reverted or replaced) — all
    /// of its data, after which it becomes `deleted`.
    async fn cleanup(&self, job: &Job, lease_lost: &AtomicBool) -> Result<(), JobError> {
        // An aborted or failed batch's early runs go with its staged files.
        if let Some(early) = &self.ctx.early {
            early.drop_batch(&job.tenant, &job.batch_id);
        }
        let (org, sandbox) = (job.tenant.org(), job.tenant.sandbox());
        let staged = self
            .ctx
            .storage
            .delete_prefix(&keys::staged_batch(org, sandbox, &job.batch_id))
            .await?;
        let batch = self
            .ctx
            .metastore
            .get(&job.tenant, ObjectKind::Batch, &[job.batch_id.to_string()])
            .await?
            .into_iter()
            .next();
        let mut removed_outputs = 0;
        if let Some(batch) = &batch
            && let Some(dataset_id) = lakeport_domain::catalog::batch_dataset_id(batch)
        {
            let status = lakeport_domain::catalog::batch_status(batch);
            let inactive = status == Some(BatchStatus::Inactive);
            if inactive {
                // The table stops showing a reverted batch at once (a no-op when a replay's
                // commit removed its files already, or on the collection run); the files stay
                // for older versions until they are collected.
                let table = lakeport_lake::Table::open(
                    &self.ctx.storage,
                    &lakeport_lake::dataset_root(org, sandbox, dataset_id),
                )?
                .with_cache(&self.ctx.tables);
                let locked = lakeport_domain::ids::DatasetId::from(dataset_id.to_owned());
                lock_table(&self.ctx, job, &locked, lease_lost).await?;
                let removed = table.remove_batch(&job.batch_id).await;
                if let Ok(Some(version)) = &removed {
                    tracing::info!(batch.id = %job.batch_id, dataset.id = %dataset_id, table.version = version, "batch removed from the dataset's table");
                    record_table_version(&self.ctx, &job.tenant, dataset_id, *version).await;
                }
                unlock_table(&self.ctx, job, &locked).await;
                removed?;
            }
            // A batch made inactive is collected after the grace period (half of it, against
            // clocks that disagree); REVERT also runs this job at once, for the table.
            let grace_ms =
                i64::try_from(self.ctx.config.deleted_data_grace_secs.saturating_mul(1000))
                    .unwrap_or(i64::MAX);
            let inactive_since = batch
                .get("updated")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            let collect = inactive && now_millis().saturating_sub(inactive_since) >= grace_ms / 2;
            let mut keep: Vec<String> = Vec::new();
            if !inactive {
                for file in self
                    .ctx
                    .metastore
                    .batch_dataset_files(&job.tenant, &job.batch_id)
                    .await?
                {
                    keep.extend(attempt_root(&file.location));
                }
                if let Some(location) = self
                    .ctx
                    .metastore
                    .diagnostics_location(&job.tenant, &job.batch_id)
                    .await?
                {
                    keep.push(format!("{location}/"));
                }
            }
            let outputs = keys::batch_outputs(org, sandbox, dataset_id, &job.batch_id);
            // Within the grace period an inactive batch keeps every output.
            let listed = if inactive && !collect {
                Vec::new()
            } else {
                self.ctx.storage.list_keys(&outputs).await?
            };
            for key in listed {
                let text = key.to_string();
                if !keep.iter().any(|root| text.starts_with(root.as_str())) {
                    self.ctx.storage.delete(&key).await?;
                    removed_outputs += 1;
                }
            }
            if collect {
                let actor = lakeport_domain::catalog::Actor {
                    client_id: "lakeport".to_owned(),
                    user: "lakeport-collector@AdobeID".to_owned(),
                };
                let tenant = job.tenant.clone();
                let change: lakeport_metastore::DocChange =
                    Box::new(move |doc: &lakeport_domain::Doc| {
                        let mut next = doc.clone();
                        next.insert(
                            "status".into(),
                            serde_json::json!(BatchStatus::Deleted.as_str()),
                        );
                        let ctx = lakeport_domain::catalog::WriteContext {
                            tenant: &tenant,
                            actor: &actor,
                            now: now_millis(),
                        };
                        lakeport_domain::catalog::touch(&mut next, &ctx);
                        Ok(next)
                    });
                self.ctx
                    .metastore
                    .update(
                        &job.tenant,
                        ObjectKind::Batch,
                        &job.batch_id,
                        Default::default(),
                        change,
                    )
                    .await?;
            }
        }
        tracing::info!(batch.id = %job.batch_id, staged_objects = staged, output_objects = removed_outputs, "batch cleaned up");
        self.ctx.metastore.finish_job(job, now_millis()).await?;
        Ok(())
    }
}

/// Returns the attempt prefix (`…/attempt-N/`) of a stored output key.
fn attempt_root(location: &str) -> Option<String> {
    let index = location.find("/attempt-")?;
    let rest = &location[index + 1..];
    let end = rest
        .find('/')
        .map_or(location.len(), |slash| index + 1 + slash + 1);
    Some(location[..end].to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_batch_uses_no_more_threads_than_the_process_has_cpus() {
        use super::batch_threads;
        assert_eq!(batch_threads(2, Some(1)), 1);
        assert_eq!(batch_threads(2, Some(2)), 2);
        assert_eq!(batch_threads(3, Some(2)), 2);
        assert_eq!(batch_threads(1, Some(8)), 1);
        assert_eq!(batch_threads(4, Some(8)), 4);
        // Not known: as configured.
        assert_eq!(batch_threads(3, None), 3);
        assert_eq!(batch_threads(64, Some(usize::MAX)), 64);
    }

    #[test]
    fn attempt_roots() {
        assert_eq!(
            super::attempt_root("lake/o/s/datasets/d/batches/b/attempt-2/data/part-00001.parquet")
                .as_deref(),
            Some("lake/o/s/datasets/d/batches/b/attempt-2/")
        );
        assert_eq!(super::attempt_root("lake/x"), None);
    }

    #[test]
    fn kept_blocks_are_released_once_after_an_idle_spell() {
        use super::{KEEP_BLOCKS_IDLE, KeptBlocks};
        use std::time::{Duration, Instant};
        let start = Instant::now();
        let at = |offset: Duration| start + offset;
        let mut blocks = KeptBlocks::default();
        // No job ran: nothing to release, however long the worker idles.
        assert!(!blocks.idle(at(Duration::ZERO)));
        assert!(!blocks.idle(at(KEEP_BLOCKS_IDLE * 2)));
        // After a job, idle polls keep the blocks until the idle spell is long enough.
        blocks.worked();
        assert!(!blocks.idle(at(KEEP_BLOCKS_IDLE * 3)));
        assert!(!blocks.idle(at(KEEP_BLOCKS_IDLE * 3 + KEEP_BLOCKS_IDLE / 2)));
        assert!(blocks.idle(at(KEEP_BLOCKS_IDLE * 4)));
        // Released once: later polls of the same spell release nothing.
        assert!(!blocks.idle(at(KEEP_BLOCKS_IDLE * 5)));
        // A job between idle polls starts the spell again.
        blocks.worked();
        assert!(!blocks.idle(at(KEEP_BLOCKS_IDLE * 6)));
        blocks.worked();
        assert!(!blocks.idle(at(KEEP_BLOCKS_IDLE * 6 + KEEP_BLOCKS_IDLE / 2)));
        assert!(!blocks.idle(at(KEEP_BLOCKS_IDLE * 7)));
        assert!(blocks.idle(at(KEEP_BLOCKS_IDLE * 7 + KEEP_BLOCKS_IDLE / 2)));
    }
}
