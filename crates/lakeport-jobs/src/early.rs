//! Processing a file while it is uploaded: `lakeport serve` starts validating and
//! converting a JSON or CSV file uploaded with one `PUT` to a local data directory as its
//! bytes arrive (read back from the staged file as it is written, see
//! [`UploadWatch`]), so that the promotion job after the batch's `COMPLETE` finds the work
//! done or under way.
//!
//! Nothing of it is visible before the job takes it: the output stays in a scratch
//! directory of this node, and the job uses it only when the batch's only file is that
//! upload and the schema, format and options it resolves are the ones the early run used.
//! In every other case (a second file, a replaced file, a changed schema, another node's
//! worker, a restart) the result is dropped and the job processes the staged file as
//! always, so the batch's outcome is the same either way.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use lakeport_config::IngestConfig;
use lakeport_domain::Doc;
use lakeport_domain::ids::BatchId;
use lakeport_domain::query::ObjectKind;
use lakeport_domain::tenant::Tenant;
use lakeport_metastore::Metastore;
use lakeport_parquet::{BatchOutput, BatchProcessor, FileFormat, ProcessOptions};
use lakeport_storage::{StartingUpload, Storage, UploadWatch};
use serde_json::Value;

use crate::promote::{batch_format, full_schema, process_options};

/// Results kept for jobs that have not come yet; beyond, the oldest finished one is dropped.
const MAX_KEPT: usize = 8;

/// The name prefix of early runs' scratch directories under the work directory.
const DIR_PREFIX: &str = "early-";

/// Starts early runs for uploads and hands their results to the jobs (see the module's
/// documentation). One per process, shared by the API and the workers (a clone shares it).
#[derive(Clone)]
pub struct EarlyProcessing(Arc<Shared>);

struct Shared {
    metastore: Arc<dyn Metastore>,
    storage: Storage,
    work_dir: PathBuf,
    config: IngestConfig,
    /// Runs in progress, at most one per worker: an upload beyond them is processed after
    /// `COMPLETE` as usual.
    running: Arc<AtomicUsize>,
    max_running: usize,
    runs: Mutex<VecDeque<Arc<Run>>>,
    started: AtomicU64,
    taken: AtomicU64,
}

/// One upload's early run.
struct Run {
    tenant: Tenant,
    batch_id: String,
    path: String,
    upload_id: String,
    /// What the run was started with; the job's must be the same.
    schema: Value,
    format: FileFormat,
    options: ProcessOptions,
    dir: PathBuf,
    watch: Arc<UploadWatch>,
    state: Mutex<RunState>,
    finished: tokio::sync::Notify,
}

#[derive(Default)]
struct RunState {
    /// The outcome, once the run is over: the output under `dir/out`, or why it failed.
    result: Option<Result<BatchOutput, String>>,
    /// No job will take it: its directory goes once the run is over.
    dropped: bool,
}

impl Run {
    fn state(&self) -> MutexGuard<'_, RunState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops the run: it stops at its next read, and its directory is removed now or when
    /// it is over.
    fn drop_result(&self) {
        self.watch.fail("the early run was dropped");
        let mut state = self.state();
        state.dropped = true;
        if state.result.is_some() {
            remove_dir(&self.dir);
        }
    }

    fn out_dir(&self) -> PathBuf {
        self.dir.join("out")
    }
}

impl lakeport_storage::UploadWatcher for EarlyProcessing {
    fn watch(
        &self,
        upload: StartingUpload,
    ) -> futures::future::BoxFuture<'static, Option<Arc<UploadWatch>>> {
        let early = self.clone();
        Box::pin(async move {
            let tenant = Tenant::parse(&upload.org, &upload.sandbox).ok()?;
            if upload
                .declared_bytes
                .is_some_and(|bytes| bytes < early.0.config.early_processing_min_bytes)
            {
                return None;
            }
            early
                .start(
                    &tenant,
                    &upload.batch_id,
                    &upload.dataset_id,
                    &upload.path,
                    &upload.upload_id,
                )
                .await
        })
    }
}

impl EarlyProcessing {
    /// Early runs into `config`'s work directory, one at a time per worker; what earlier
    /// processes left there is removed.
    #[must_use]
    pub fn new(
        metastore: Arc<dyn Metastore>,
        storage: Storage,
        work_dir: PathBuf,
        config: IngestConfig,
    ) -> Self {
        if let Ok(entries) = std::fs::read_dir(&work_dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
                    remove_dir(&entry.path());
                }
            }
        }
        let max_running = usize::try_from(config.workers.max(1)).unwrap_or(1);
        Self(Arc::new(Shared {
            metastore,
            storage,
            work_dir,
            config,
            running: Arc::new(AtomicUsize::new(0)),
            max_running,
            runs: Mutex::new(VecDeque::new()),
            started: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }))
    }

    /// How many early runs are in progress.
    #[must_use]
    pub fn running(&self) -> usize {
        self.0.running.load(Ordering::Acquire)
    }

    /// How many early runs were started.
    #[must_use]
    pub fn started(&self) -> u64 {
        self.0.started.load(Ordering::Relaxed)
    }

    /// How many early results jobs have used.
    #[must_use]
    pub fn taken(&self) -> u64 {
        self.0.taken.load(Ordering::Relaxed)
    }

    /// Starts processing the upload `upload_id` of `path` into `batch_id` (of `dataset_id`)
    /// as it arrives, and returns the watch to upload it with; `None` when it will not be
    /// processed early (remote storage, Parquet, a batch's second file, every run slot
    /// busy, a schema that does not resolve: the job then does it all).
    pub async fn start(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        dataset_id: &str,
        path: &str,
        upload_id: &str,
    ) -> Option<Arc<UploadWatch>> {
        if !self.0.config.early_processing || !self.0.storage.is_local() {
            return None;
        }
        // Only a batch's first file is run early: a batch of several files is processed
        // after `COMPLETE` (its files go into shared parts), so a second file drops the
        // first one's run and starts none. A replaced file's run is useless too.
        let files = self
            .0
            .metastore
            .batch_files(tenant, &BatchId::from(batch_id))
            .await;
        let second = match &files {
            Ok(files) => files.iter().any(|file| file.path != path),
            Err(_) => true,
        };
        self.runs().retain(|run| {
            let useless =
                run.tenant == *tenant && run.batch_id == batch_id && (second || run.path == path);
            if useless {
                run.drop_result();
            }
            !useless
        });
        if second {
            return None;
        }
        let slot = Slot::take(&self.0)?;
        let (schema, format, options) = self.inputs(tenant, batch_id, dataset_id).await?;
        let run = Arc::new(Run {
            tenant: tenant.clone(),
            batch_id: batch_id.to_owned(),
            path: path.to_owned(),
            upload_id: upload_id.to_owned(),
            schema,
            format,
            options,
            dir: self.0.work_dir.join(format!("{DIR_PREFIX}{upload_id}")),
            watch: UploadWatch::new(),
            state: Mutex::new(RunState::default()),
            finished: tokio::sync::Notify::new(),
        });
        let (thread_run, name) = (Arc::clone(&run), path.to_owned());
        let spawned = std::thread::Builder::new()
            .name("early-run".to_owned())
            .spawn(move || {
                // A panic must not leave the job waiting for a result that never comes.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    process(&thread_run, &name)
                }))
                .unwrap_or_else(|_| Err("the early run panicked".to_owned()));
                drop(slot);
                let mut state = thread_run.state();
                if let Err(reason) = &result {
                    tracing::debug!(upload.id = %thread_run.upload_id, reason, "early run stopped");
                }
                state.result = Some(result);
                if state.dropped {
                    remove_dir(&thread_run.dir);
                }
                drop(state);
                thread_run.finished.notify_waiters();
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "could not start an early run");
            return None;
        }
        self.0.started.fetch_add(1, Ordering::Relaxed);
        let mut runs = self.runs();
        runs.push_back(Arc::clone(&run));
        // The oldest runs that are over go first; runs in progress are bounded by the slots.
        while runs.len() > MAX_KEPT {
            let Some(over) = runs.iter().position(|run| run.state().result.is_some()) else {
                break;
            };
            if let Some(old) = runs.remove(over) {
                old.drop_result();
            }
        }
        Some(Arc::clone(&run.watch))
    }

    /// The schema, format and options the job would use for a batch, as it is now.
    async fn inputs(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        dataset_id: &str,
    ) -> Option<(Value, FileFormat, ProcessOptions)> {
        let batch = self.document(tenant, ObjectKind::Batch, batch_id).await?;
        let dataset = self
            .document(tenant, ObjectKind::Dataset, dataset_id)
            .await?;
        let format = batch_format(&batch, &dataset).ok()?;
        if matches!(format, FileFormat::Parquet) {
            // Its footer comes last: nothing can be read before the upload is whole.
            return None;
        }
        let schema = match full_schema(self.0.metastore.as_ref(), tenant, &dataset).await {
            Ok(Ok(schema)) => schema,
            _ => return None,
        };
        let options = process_options(&self.0.config, &batch, &dataset);
        Some((schema, format, options))
    }

    async fn document(&self, tenant: &Tenant, kind: ObjectKind, id: &str) -> Option<Doc> {
        match self.0.metastore.get(tenant, kind, &[id.to_owned()]).await {
            Ok(found) => found.into_iter().next(),
            Err(err) => {
                tracing::debug!(error = %err, "no early run: the metastore failed");
                None
            }
        }
    }

    /// The output of the early run of the batch's only file, `upload_id`, when it was
    /// started with `schema`, `format` and `options` and succeeded: moved to `out_dir`
    /// (which must not exist). Every other run of the batch is dropped.
    pub(crate) async fn take(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        upload_id: &str,
        wanted: (&Value, &FileFormat, &ProcessOptions),
        out_dir: &Path,
    ) -> Option<BatchOutput> {
        let run = {
            let mut runs = self.runs();
            let found = runs.iter().position(|run| {
                run.tenant == *tenant && run.batch_id == batch_id && run.upload_id == upload_id
            });
            found.and_then(|index| runs.remove(index))
        };
        self.drop_batch(tenant, batch_id);
        let run = run?;
        if (&run.schema, &run.format, &run.options) != wanted {
            tracing::info!(batch.id = %batch_id, "the early run used another schema or options: processing again");
            run.drop_result();
            return None;
        }
        let result = loop {
            let finished = run.finished.notified();
            if let Some(result) = run.state().result.take() {
                break result;
            }
            finished.await;
        };
        let moved = result.and_then(|output| {
            std::fs::rename(run.out_dir(), out_dir)
                .map(|()| output)
                .map_err(|err| format!("moving its output: {err}"))
        });
        remove_dir(&run.dir);
        match moved {
            Ok(output) => {
                self.0.taken.fetch_add(1, Ordering::Relaxed);
                Some(output)
            }
            Err(reason) => {
                tracing::info!(batch.id = %batch_id, reason, "the early run is not used: processing again");
                None
            }
        }
    }

    /// Drops every early run of a batch.
    pub(crate) fn drop_batch(&self, tenant: &Tenant, batch_id: &str) {
        let mut runs = self.runs();
        runs.retain(|run| {
            let other = run.tenant != *tenant || run.batch_id != batch_id;
            if !other {
                run.drop_result();
            }
            other
        });
    }

    fn runs(&self) -> MutexGuard<'_, VecDeque<Arc<Run>>> {
        self.0
            .runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A run slot, given back when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(early: &Shared) -> Option<Self> {
        early
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < early.max_running).then_some(running + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(&early.running)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Processes the upload as the job would process a batch of that one file.
fn process(run: &Run, name: &str) -> Result<BatchOutput, String> {
    let mut processor = BatchProcessor::new(&run.schema, &run.out_dir(), run.options.clone())
        .map_err(|err| format!("preparing: {err}"))?;
    let stats = processor
        .process_unsized_stream(name, Box::new(run.watch.reader()), &run.format)
        .map_err(|err| err.to_string())?;
    // The job reports the stored size; a run that stopped short of it is not the same.
    if run.watch.stored_size() != Some(stats.input_bytes) {
        return Err("the run did not read the whole upload".to_owned());
    }
    processor.finish().map_err(|err| err.to_string())
}

fn remove_dir(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %err, "could not remove an early run's directory");
    }
}
