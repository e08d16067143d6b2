//! The promotion job (spec §6–§7): read every staged file of a completed batch, validate
//! each row against the dataset's schema, write passing rows as Parquet under an
//! attempt-scoped prefix, then commit dataset files, counts, errors and the final status in
//! one metastore transaction.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use lakeport_domain::catalog;
use lakeport_domain::ingest::{self, FileLevelError, Job, ProcessedCounts};
use lakeport_domain::query::ObjectKind;
use lakeport_domain::status::BatchStatus;
use lakeport_domain::xdm::resolve::resolve;
use lakeport_domain::{Doc, HasKind, now_millis};
use lakeport_metastore::references::{self, NeighbourhoodError};
use lakeport_metastore::{DiagnosticsFile, NewDatasetFile, Promotion};
use lakeport_parquet::{BatchOutput, BatchProcessor, FileFormat, ProcessError, ProcessOptions};
use lakeport_storage::keys;
use serde_json::Value;

use crate::{JobContext, JobError, TABLE_VERSION_FIELD};

/// How many replayed batches one replay may make inactive (with `ALL`, transitively).
const MAX_REPLACED_BATCHES: usize = 10_000;

/// Commits the promoted batch's files to the dataset's Delta table, with the removal of
/// the files of the batches it replays, or finds the commit a crashed attempt made.
async fn commit_to_table(
    ctx: &JobContext,
    job: &Job,
    batch: &Doc,
    dataset_id: &str,
    full_schema: &Value,
    files: &[NewDatasetFile],
    lease_lost: &AtomicBool,
) -> Result<lakeport_lake::Committed, JobError> {
    let schema = lakeport_parquet::arrow_schema(full_schema)
        .map_err(|err| JobError::Io(format!("mapping the dataset's schema: {err}")))?;
    let data_files = files
        .iter()
        .map(|file| {
            let key = lakeport_storage::Key::parse(file.location.as_str()).map_err(|err| {
                JobError::Io(format!("{} is not a storage key: {err}", file.location))
            })?;
            Ok(lakeport_lake::DataFile {
                key,
                size: file.size,
                records: file.records,
            })
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    let replaces = replaced_batches(ctx, job, batch).await?;
    // Only the lease holder commits, under the dataset's table lock (taken by the caller):
    // a worker whose heartbeat found the lease taken stops here, and the one that took the
    // job over commits (or finds this commit) instead.
    if lease_lost.load(Ordering::SeqCst) {
        return Err(JobError::Io(
            "the job's lease was lost before the table commit".to_owned(),
        ));
    }
    let table = lakeport_lake::Table::open(
        &ctx.storage,
        &lakeport_lake::dataset_root(job.tenant.org(), job.tenant.sandbox(), dataset_id),
    )?
    .with_cache(&ctx.tables);
    let created_ms = batch.get("created").and_then(Value::as_i64).unwrap_or(0);
    let started = std::time::Instant::now();
    let committed = table
        .commit_batch(&lakeport_lake::BatchCommit {
            batch_id: &job.batch_id,
            schema: &schema,
            files: &data_files,
            replaces: &replaces,
            created_ms,
            // A batch is completed once, so only an earlier attempt of this job can have
            // committed it.
            retry: job.attempt > 1,
        })
        .await?;
    tracing::info!(
        batch.id = %job.batch_id,
        dataset.id = %dataset_id,
        table.version = committed.version,
        table.found = committed.found,
        duration_ms = started.elapsed().as_millis() as u64,
        "batch committed to the dataset's table"
    );
    Ok(committed)
}

/// Commits the removal of this batch's files from the dataset's table.
async fn remove_from_table(
    ctx: &JobContext,
    job: &Job,
    dataset_id: &str,
) -> Result<Option<u64>, JobError> {
    let table = lakeport_lake::Table::open(
        &ctx.storage,
        &lakeport_lake::dataset_root(job.tenant.org(), job.tenant.sandbox(), dataset_id),
    )?
    .with_cache(&ctx.tables);
    Ok(table.remove_batch(&job.batch_id).await?)
}

/// The dataset files of a commit found in the table (a retry after a crash that followed
/// the Delta commit): the files of the attempt that committed.
fn committed_files(committed: &lakeport_lake::Committed) -> Result<Vec<NewDatasetFile>, JobError> {
    committed
        .files
        .iter()
        .map(|file| {
            let location = file.key.to_string();
            let name = location
                .split_once("/data/")
                .map(|(_, name)| name.to_owned())
                .ok_or_else(|| {
                    JobError::Io(format!("the table's file {location} is not a batch output"))
                })?;
            Ok(NewDatasetFile {
                name,
                location,
                records: file.records,
                size: file.size,
            })
        })
        .collect()
}

/// Returns the batches a replay makes inactive: its predecessors and, with
/// `predecessorListingType: ALL`, theirs (the metastore deactivates the same set).
async fn replaced_batches(
    ctx: &JobContext,
    job: &Job,
    batch: &Doc,
) -> Result<Vec<String>, JobError> {
    let (mut pending, transitive) = catalog::replay_predecessors(batch);
    let mut seen: Vec<String> = Vec::new();
    while !pending.is_empty() && seen.len() < MAX_REPLACED_BATCHES {
        let ids: Vec<String> = pending.drain(..).filter(|id| !seen.contains(id)).collect();
        seen.extend(ids.iter().cloned());
        if transitive && !ids.is_empty() {
            for predecessor in ctx
                .metastore
                .get(&job.tenant, ObjectKind::Batch, &ids)
                .await?
            {
                pending.extend(catalog::replay_predecessors(&predecessor).0);
            }
        }
    }
    Ok(seen)
}

/// What processing produced, before the catalog commit.
enum Processed {
    /// A file-level problem: the batch fails, nothing is promoted.
    FileErrors(Vec<FileLevelError>, ProcessedCounts),
    /// Every file was read; rows may have been rejected. The resolved schema comes along
    /// for the Delta table.
    Output(BatchOutput, ProcessedCounts, Value),
}

/// Promotes one batch: process its files, upload what came out, commit the promoted files
/// to the dataset's Delta table, then record the outcome in the Catalog.
pub(crate) async fn run(
    ctx: &JobContext,
    job: &Job,
    lease_lost: &AtomicBool,
) -> Result<(), JobError> {
    let Some(batch) = ctx.metastore.begin_processing(job, now_millis()).await? else {
        ctx.storage_note(job, "nothing to process");
        return Ok(());
    };
    let started = batch
        .get("started")
        .and_then(Value::as_i64)
        .unwrap_or_else(now_millis);
    let dataset_id = catalog::batch_dataset_id(&batch)
        .unwrap_or_default()
        .to_owned();
    let dataset = load_dataset(ctx, job, &dataset_id).await?;
    let work = ctx
        .work_dir
        .join(format!("job-{}-attempt-{}", job.id, job.attempt));
    remove_earlier_attempts(&ctx.work_dir, job);
    let processing = std::time::Instant::now();
    let processed = match &dataset {
        None => Processed::FileErrors(
            vec![FileLevelError {
                code: "INGEST-9204-400".into(),
                description: format!("Dataset {dataset_id} no longer exists."),
            }],
            ProcessedCounts::default(),
        ),
        Some(dataset) => process(ctx, job, &batch, dataset, &work).await?,
    };
    let dataset = dataset.unwrap_or_default();
    let process_ms = processing.elapsed().as_millis() as u64;
    let publishing = std::time::Instant::now();
    let published = publish(ctx, job, &batch, &dataset, &dataset_id, processed, &work).await?;
    let publish_ms = publishing.elapsed().as_millis() as u64;
    let committing = std::time::Instant::now();
    // The dataset's table lock is held from before the Delta commit until the Catalog commit
    // and the dataset's version are written, so versions are recorded in the order made.
    let locked = match (&published.full_schema, published.outcome.promote) {
        (Some(_), true) => {
            let locked = lakeport_domain::ids::DatasetId::from(dataset_id.clone());
            crate::lock_table(ctx, job, &locked, lease_lost).await?;
            Some(locked)
        }
        _ => None,
    };
    let finished = commit(
        ctx,
        job,
        &batch,
        &dataset_id,
        published,
        started,
        lease_lost,
    )
    .await;
    if let Some(locked) = &locked {
        crate::unlock_table(ctx, job, locked).await;
    }
    let (counts, status) = finished?;
    tracing::info!(
        batch.id = %job.batch_id,
        dataset.id = %dataset_id,
        batch.status = status.map(BatchStatus::as_str).unwrap_or_default(),
        records.input = counts.input_records,
        records.failed = counts.failed_records,
        size_bytes = counts.input_bytes,
        process_ms,
        publish_ms,
        commit_ms = committing.elapsed().as_millis() as u64,
        "batch processed"
    );
    remove_dir(&work);
    Ok(())
}

/// Commits a published batch: the Delta commit (when promoted), made before the Catalog's
/// (which records its version) while this worker holds the lease, then the Catalog's.
async fn commit(
    ctx: &JobContext,
    job: &Job,
    batch: &Doc,
    dataset_id: &str,
    mut published: Published,
    started: i64,
    lease_lost: &AtomicBool,
) -> Result<(ProcessedCounts, Option<BatchStatus>), JobError> {
    let table_commit = match (&published.full_schema, published.outcome.promote) {
        (Some(full_schema), true) => {
            let committed = commit_to_table(
                ctx,
                job,
                batch,
                dataset_id,
                full_schema,
                &published.files,
                lease_lost,
            )
            .await?;
            if committed.found {
                // A crashed attempt committed the batch: the Catalog names its files.
                published.files = committed_files(&committed)?;
            }
            Some(committed.version)
        }
        _ => None,
    };
    let counts = published.counts.clone();
    let committed = record_promotion(ctx, job, published, started, table_commit).await?;
    let status = catalog::batch_status(&committed);
    if let Some(version) = table_commit {
        settle_table(ctx, job, dataset_id, version, status).await?;
    }
    Ok((counts, status))
}

/// The batch's dataset, if it still exists.
async fn load_dataset(
    ctx: &JobContext,
    job: &Job,
    dataset_id: &str,
) -> Result<Option<Doc>, JobError> {
    Ok(ctx
        .metastore
        .get(&job.tenant, ObjectKind::Dataset, &[dataset_id.to_owned()])
        .await?
        .into_iter()
        .next())
}

/// The outcome of processing, with its outputs uploaded under the attempt's prefix.
struct Published {
    outcome: ingest::Outcome,
    counts: ProcessedCounts,
    /// The Parquet parts to promote (none unless `outcome.promote`).
    files: Vec<NewDatasetFile>,
    diagnostics_location: Option<String>,
    diagnostics_files: Vec<DiagnosticsFile>,
    /// The resolved schema, when every file could be read.
    full_schema: Option<Value>,
}

/// Decides the batch's outcome (spec §7.3–§7.4) and uploads its outputs: the Parquet parts
/// when it is promoted, the rejected rows and diagnostics in any case.
async fn publish(
    ctx: &JobContext,
    job: &Job,
    batch: &Doc,
    dataset: &Doc,
    dataset_id: &str,
    processed: Processed,
    work: &Path,
) -> Result<Published, JobError> {
    let threshold = ingest::threshold(batch, dataset);
    let diagnostics = ingest::diagnostics_enabled(batch, dataset);
    let (output, counts, full_schema) = match processed {
        Processed::FileErrors(errors, counts) => {
            return Ok(Published {
                outcome: ingest::decide(&counts, &errors, threshold, diagnostics),
                counts,
                files: Vec::new(),
                diagnostics_location: None,
                diagnostics_files: Vec::new(),
                full_schema: None,
            });
        }
        Processed::Output(output, counts, full_schema) => (output, counts, full_schema),
    };
    let outcome = ingest::decide(&counts, &[], threshold, diagnostics);
    let attempt_root = keys::attempt(
        job.tenant.org(),
        job.tenant.sandbox(),
        dataset_id,
        &job.batch_id,
        job.attempt,
    );
    let out_dir = work.join("out");
    let mut files = Vec::new();
    if outcome.promote {
        for part in &output.parts {
            let key = keys::attempt_file(&attempt_root, &format!("data/{}", part.relative_path));
            ctx.storage
                .move_file(&key, &out_dir.join(&part.relative_path))
                .await?;
            files.push(NewDatasetFile {
                name: part.relative_path.clone(),
                location: key.to_string(),
                records: part.records,
                size: part.bytes,
            });
        }
    }
    let mut diagnostics_location = None;
    let mut diagnostics_files = Vec::new();
    if !output.failed.is_empty() || !output.meta.is_empty() {
        for file in output.failed.iter().chain(&output.meta) {
            let key = keys::attempt_file(&attempt_root, &file.relative_path);
            ctx.storage
                .move_file(&key, &out_dir.join(&file.relative_path))
                .await?;
            diagnostics_files.push(DiagnosticsFile {
                path: file.relative_path.clone(),
                size: file.bytes,
            });
        }
        diagnostics_location = Some(attempt_root.to_string());
    }
    Ok(Published {
        outcome,
        counts,
        files,
        diagnostics_location,
        diagnostics_files,
        full_schema: Some(full_schema),
    })
}

/// Records the outcome in the Catalog in one transaction (the batch's fields, its dataset
/// files and diagnostics, the replaced predecessors); returns the batch as committed.
async fn record_promotion(
    ctx: &JobContext,
    job: &Job,
    published: Published,
    started: i64,
    table_commit: Option<u64>,
) -> Result<Doc, JobError> {
    let completed = now_millis();
    let mut batch_fields =
        ingest::processed_fields(&published.counts, &published.outcome, started, completed);
    if let Some(version) = table_commit {
        batch_fields.insert(TABLE_VERSION_FIELD.into(), version.into());
    }
    let promotion = Promotion {
        batch_fields,
        files: published.files,
        diagnostics_location: published.diagnostics_location,
        diagnostics_files: published.diagnostics_files,
        // Replaced predecessors become inactive in the promotion's transaction, which also
        // enqueues the collection of their data after the grace period.
        cleanup_delay_ms: i64::try_from(ctx.config.deleted_data_grace_secs.saturating_mul(1000))
            .unwrap_or(i64::MAX),
    };
    Ok(ctx
        .metastore
        .complete_promotion(job, promotion, completed)
        .await?)
}

/// Records the table's version on the dataset once the Catalog committed; a batch the
/// producer aborted between the two commits is taken back out of the table first.
async fn settle_table(
    ctx: &JobContext,
    job: &Job,
    dataset_id: &str,
    version: u64,
    status: Option<BatchStatus>,
) -> Result<(), JobError> {
    let mut latest = version;
    if status != Some(BatchStatus::Success) {
        latest = remove_from_table(ctx, job, dataset_id)
            .await?
            .unwrap_or(version);
    }
    crate::record_table_version(ctx, &job.tenant, dataset_id, latest).await;
    Ok(())
}

impl JobContext {
    fn storage_note(&self, job: &Job, note: &str) {
        tracing::info!(job.id = job.id, batch.id = %job.batch_id, note, "promotion skipped");
    }
}

/// Removes the scratch directories that earlier, crashed attempts of this job left behind
/// (a reclaimed job always runs again, so this is where they are collected).
fn remove_earlier_attempts(work_dir: &Path, job: &Job) {
    let prefix = format!("job-{}-attempt-", job.id);
    let current = format!("{prefix}{}", job.attempt);
    let Ok(entries) = std::fs::read_dir(work_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name != current {
            remove_dir(&entry.path());
        }
    }
}

fn remove_dir(dir: &Path) {
    if let Err(err) = std::fs::remove_dir_all(dir)
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %dir.display(), error = %err, "could not remove a work directory");
    }
}

/// Resolves the dataset's schema (tenant resources plus built-ins).
pub(crate) async fn full_schema(
    metastore: &dyn lakeport_metastore::Metastore,
    tenant: &lakeport_domain::tenant::Tenant,
    dataset: &Doc,
) -> Result<Result<Value, FileLevelError>, JobError> {
    let Some(schema_id) = catalog::dataset_schema_id(dataset) else {
        return Ok(Err(FileLevelError {
            code: "INGEST-9204-400".into(),
            description:
                "The dataset has no schemaRef, so rows cannot be validated; give it an XDM schema."
                    .into(),
        }));
    };
    // Only the schema and what it refers to are read, not the tenant's whole registry.
    let resources =
        match references::referenced(metastore, tenant, vec![schema_id.to_owned()]).await {
            Ok(resources) => resources,
            Err(NeighbourhoodError::Metastore(err)) => return Err(err.into()),
            Err(too_large @ NeighbourhoodError::TooLarge) => {
                return Ok(Err(FileLevelError {
                    code: "INGEST-9204-400".into(),
                    description: format!("The dataset's schema cannot be resolved: {too_large}"),
                }));
            }
        };
    let find = |id: &str| resources.find(id);
    let Some(schema) = find(schema_id) else {
        return Ok(Err(FileLevelError {
            code: "INGEST-9204-400".into(),
            description: format!("The dataset's schema {schema_id} no longer exists."),
        }));
    };
    Ok(resolve(&schema, &find)
        .map(|resolved| resolved.full)
        .map_err(|err| FileLevelError {
            code: "INGEST-9204-400".into(),
            description: format!("The dataset's schema cannot be resolved: {err}"),
        }))
}

/// Validates and converts the batch's files into Parquet parts and rejected rows under
/// `work/out`.
async fn process(
    ctx: &JobContext,
    job: &Job,
    batch: &Doc,
    dataset: &Doc,
    work: &Path,
) -> Result<Processed, JobError> {
    let inputs = match prepare(ctx, job, batch, dataset).await? {
        Ok(inputs) => inputs,
        Err(error) => {
            return Ok(Processed::FileErrors(
                vec![error],
                ProcessedCounts::default(),
            ));
        }
    };
    let out_dir = work.join("out");
    if let Some(early) = &ctx.early {
        if let [(_, _, upload_id)] = inputs.files.as_slice() {
            std::fs::create_dir_all(work)
                .map_err(|err| JobError::Io(format!("creating {}: {err}", work.display())))?;
            let wanted = (&inputs.schema, &inputs.format, &inputs.options);
            let taken = early
                .take(&job.tenant, &job.batch_id, upload_id, wanted, &out_dir)
                .await;
            if let Some(output) = taken {
                let counts = processed_counts(inputs.files.len(), inputs.bytes, &output);
                return Ok(Processed::Output(output, counts, inputs.schema));
            }
        } else {
            early.drop_batch(&job.tenant, &job.batch_id);
        }
    }
    std::fs::create_dir_all(&out_dir)
        .map_err(|err| JobError::Io(format!("creating {}: {err}", out_dir.display())))?;
    let runtime = tokio::runtime::Handle::current();
    let storage = ctx.storage.clone();
    let fetch_dir = work.join("in");
    tokio::task::spawn_blocking(move || {
        process_files(inputs, &storage, &runtime, &out_dir, &fetch_dir)
    })
    .await
    .map_err(|err| JobError::Io(format!("the processing task failed: {err}")))?
}

/// What processing reads: the resolved schema, the format and the staged files.
struct Inputs {
    schema: Value,
    format: FileFormat,
    /// Each file's path in the batch, its staged key and its upload id, in upload order.
    files: Vec<(String, lakeport_storage::Key, String)>,
    bytes: u64,
    options: ProcessOptions,
}

/// Resolves the schema and the format and lists the staged files; a batch that cannot be
/// processed gets its file-level error instead.
async fn prepare(
    ctx: &JobContext,
    job: &Job,
    batch: &Doc,
    dataset: &Doc,
) -> Result<Result<Inputs, FileLevelError>, JobError> {
    let fail = |code: &str, description: String| {
        Ok(Err(FileLevelError {
            code: code.to_owned(),
            description,
        }))
    };
    let schema = match full_schema(ctx.metastore.as_ref(), &job.tenant, dataset).await? {
        Ok(schema) => schema,
        Err(error) => return Ok(Err(error)),
    };
    let format = match batch_format(batch, dataset) {
        Ok(format) => format,
        Err(reason) => {
            return fail(
                "INGEST-9201-400",
                format!("The batch's inputFormat cannot be used: {reason}"),
            );
        }
    };
    let files = ctx
        .metastore
        .batch_files(&job.tenant, &job.batch_id)
        .await?;
    if let Some(unfinished) = files.iter().find(|file| file.chunks.is_some()) {
        return fail(
            "INGEST-9201-400",
            format!(
                "The chunked upload of {} was never completed (action=COMPLETE on the file).",
                unfinished.path
            ),
        );
    }
    if files.is_empty() {
        return fail(
            "INGEST-9203-400",
            "The batch has no data: no files were uploaded.".to_owned(),
        );
    }
    let options = process_options(&ctx.config, batch, dataset);
    Ok(Ok(Inputs {
        schema,
        format,
        bytes: files.iter().map(|f| f.size).sum(),
        files: files
            .iter()
            .map(|file| {
                let key = keys::staged_file(
                    job.tenant.org(),
                    job.tenant.sandbox(),
                    &job.batch_id,
                    &file.upload_id,
                );
                (file.path.clone(), key, file.upload_id.clone())
            })
            .collect(),
        options,
    }))
}

/// The format of a batch's files: its `inputFormat` with the dataset's file description.
pub(crate) fn batch_format(batch: &Doc, dataset: &Doc) -> Result<FileFormat, String> {
    let input_format = batch.get("inputFormat").cloned().unwrap_or(Value::Null);
    FileFormat::from_input_format(&input_format, dataset.get("fileDescription"))
        .map_err(|reason| reason.to_string())
}

/// How a batch's files are processed.
pub(crate) fn process_options(
    config: &lakeport_config::IngestConfig,
    batch: &Doc,
    dataset: &Doc,
) -> ProcessOptions {
    ProcessOptions {
        diagnostics: ingest::diagnostics_enabled(batch, dataset),
        max_row_bytes: usize::try_from(config.max_row_bytes).unwrap_or(usize::MAX),
        threads: usize::try_from(config.batch_threads).unwrap_or(2),
        reuse_parquet_pages: config.reuse_parquet_pages,
        // Streamed records get the streaming validator's rule: a property the schema lacks
        // is a violation, not dropped (spec §10.3).
        unknown_fields: if lakeport_domain::flow::is_stream_batch(batch) {
            lakeport_domain::xdm::validate::UnknownFields::Reject
        } else {
            lakeport_domain::xdm::validate::UnknownFields::Drop
        },
        ..ProcessOptions::default()
    }
}

/// Runs the batch processor over every input (blocking: call it off the runtime).
fn process_files(
    inputs: Inputs,
    storage: &lakeport_storage::Storage,
    runtime: &tokio::runtime::Handle,
    out_dir: &Path,
    fetch_dir: &Path,
) -> Result<Processed, JobError> {
    let Inputs {
        schema,
        format,
        files,
        bytes,
        options,
    } = inputs;
    let mut processor = match BatchProcessor::new(&schema, out_dir, options) {
        Ok(processor) => processor,
        // Scratch-directory trouble is the server's, not the data's: retry.
        Err(err) if err.kind() == lakeport_domain::ErrorKind::Internal => {
            return Err(JobError::Io(format!(
                "preparing the batch processor: {err}"
            )));
        }
        Err(err) => {
            return Ok(Processed::FileErrors(
                vec![FileLevelError {
                    code: "INGEST-9204-400".into(),
                    description: format!(
                        "The dataset's schema cannot be used for ingestion: {err}"
                    ),
                }],
                ProcessedCounts::default(),
            ));
        }
    };
    let mut file_errors = Vec::new();
    // Read in place on a local directory. From a remote store, JSON and CSV files are
    // streamed into the decoder; Parquet files (whose footer comes last) are copied into
    // the scratch directory and deleted once processed, the next one fetched while the
    // current one is processed, so at most two copies exist at a time.
    let streamed = !storage.is_local() && !matches!(format, FileFormat::Parquet);
    let fetch = |key: &lakeport_storage::Key| {
        let (storage, key, dir) = (storage.clone(), key.clone(), fetch_dir.to_owned());
        AbortOnDrop(runtime.spawn(async move { storage.readable_file(&key, &dir).await }))
    };
    let mut next = files
        .first()
        .filter(|_| !streamed)
        .map(|(_, key, _)| fetch(key));
    for (index, (name, key, _)) in files.iter().enumerate() {
        let read_error =
            |err: &dyn std::fmt::Display| JobError::Io(format!("reading staged file {key}: {err}"));
        let processed = if streamed {
            let (reader, size) = runtime
                .block_on(storage.blocking_reader(key))
                .map_err(|err| read_error(&err))?;
            processor.process_stream(name, Box::new(reader), size, &format)
        } else {
            let Some(mut fetched) = next.take() else {
                return Err(read_error(&"no fetch was started"));
            };
            let file = runtime
                .block_on(&mut fetched.0)
                .map_err(|err| read_error(&err))?
                .map_err(|err| read_error(&err))?;
            next = files.get(index + 1).map(|(_, key, _)| fetch(key));
            processor.process_file(name, file.path(), &format)
        };
        match processed {
            Ok(_) => {}
            Err(ProcessError::File(err)) => file_errors.push(FileLevelError {
                code: err.code().to_owned(),
                description: err.to_string(),
            }),
            Err(err) => return Err(JobError::Io(err.to_string())),
        }
    }
    let output = processor
        .finish()
        .map_err(|err| JobError::Io(format!("writing outputs: {err}")))?;
    let counts = processed_counts(files.len(), bytes, &output);
    if file_errors.is_empty() {
        Ok(Processed::Output(output, counts, schema))
    } else {
        Ok(Processed::FileErrors(file_errors, counts))
    }
}

/// The counts a batch of `files` files of `bytes` bytes in all reports for `output`.
fn processed_counts(files: usize, bytes: u64, output: &BatchOutput) -> ProcessedCounts {
    ProcessedCounts {
        input_files: files as u64,
        input_bytes: bytes,
        input_records: output.input_records,
        failed_records: output.failed_records,
        output_records: output.output_records,
        output_bytes: output.output_bytes,
        output_files: output.parts.len() as u64,
        error_counts: output
            .error_counts
            .iter()
            .map(|(code, rows)| (code.clone(), *rows))
            .collect(),
    }
}

/// A spawned task that is cancelled when its handle goes away (a prefetch whose batch
/// stopped early), so that it writes nothing more into the scratch directory.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
