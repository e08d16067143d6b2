//! A dataset table's maintenance jobs (spec §12): compaction of its small batch files
//! (`lakeport dataset optimize`) and the deletion of the compacted files that no version
//! within the retention period reads (`lakeport dataset vacuum`). Both hold the table lock
//! while they change the table, so they run while ingestion continues: a promotion that
//! needs the lock waits for it, and the other way round.

use std::sync::atomic::{AtomicBool, Ordering};

use lakeport_domain::ids::new_ulid;
use lakeport_domain::ingest::{Job, JobKind};
use lakeport_domain::now_millis;
use lakeport_domain::query::ObjectKind;
use lakeport_lake::{Compaction, DataFile, Table};
use lakeport_storage::ReadableFile;
use serde_json::{Value, json};

use crate::{JobContext, JobError, lock_table, record_table_version, unlock_table};

/// The most batch files one compaction job takes (the rest wait for the next run).
const MAX_INPUT_FILES: usize = 10_000;

/// Runs a table job and records what it did.
pub(crate) async fn run(
    ctx: &JobContext,
    job: &Job,
    lease_lost: &AtomicBool,
) -> Result<(), JobError> {
    let Some(dataset_id) = job.dataset_id() else {
        return Err(JobError::Io(format!("job {} is not a table job", job.id)));
    };
    let exists = !ctx
        .metastore
        .get(&job.tenant, ObjectKind::Dataset, &[dataset_id.to_string()])
        .await?
        .is_empty();
    let result = if exists {
        let table = Table::open(
            &ctx.storage,
            &lakeport_lake::dataset_root(
                job.tenant.org(),
                job.tenant.sandbox(),
                dataset_id.as_str(),
            ),
        )?
        .with_cache(&ctx.tables);
        let outcome = match job.kind {
            JobKind::OptimizeTable => optimize(ctx, job, &dataset_id, &table, lease_lost).await?,
            _ => {
                // Under the lock, so that no compaction commits a file while it is deleted.
                lock_table(ctx, job, &dataset_id, lease_lost).await?;
                let vacuumed = vacuum(ctx, &table).await;
                unlock_table(ctx, job, &dataset_id).await;
                vacuumed?
            }
        };
        if let Some(version) = outcome.1 {
            record_table_version(ctx, &job.tenant, dataset_id.as_str(), version).await;
        }
        outcome.0
    } else {
        json!({"skipped": format!("dataset {dataset_id} no longer exists")})
    };
    tracing::info!(job.id = job.id, job.kind = job.kind.as_str(), dataset.id = %dataset_id, result = %result, "table job done");
    ctx.metastore
        .finish_table_job(job, &result.to_string(), now_millis())
        .await?;
    Ok(())
}

/// Compacts the table's batch files smaller than half the target into files of about the
/// target size: consecutive files (in batch order) of one schema, two or more to a file.
/// The files are read and written without the table lock, which is held only for the
/// commit, so promotions wait for one commit, not for the rewrite; a compaction whose parts
/// a REVERT or replay removed meanwhile is left out (its file left for vacuum).
/// Returns what it did and the version it committed (None when nothing was committed).
async fn optimize(
    ctx: &JobContext,
    job: &Job,
    dataset_id: &lakeport_domain::ids::DatasetId,
    table: &Table,
    lease_lost: &AtomicBool,
) -> Result<(Value, Option<u64>), JobError> {
    let target = ctx.config.optimize_target_bytes.max(1);
    let Some((_, files)) = table.live_data_files().await? else {
        return Ok((json!({"filesRemoved": 0, "filesAdded": 0}), None));
    };
    let small: Vec<DataFile> = files
        .into_iter()
        .filter(|file| table.is_batch_file(&file.key) && file.size < target / 2)
        .take(MAX_INPUT_FILES)
        .collect();
    let scratch = ctx.work_dir.join(format!("compact-{}", new_ulid()));
    tokio::fs::create_dir_all(&scratch)
        .await
        .map_err(|err| JobError::Io(format!("cannot create {}: {err}", scratch.display())))?;
    let compacted = compact_files(ctx, table, small, target, &scratch, lease_lost).await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let compactions = compacted?;
    if compactions.is_empty() {
        return Ok((json!({"filesRemoved": 0, "filesAdded": 0}), None));
    }
    if lease_lost.load(Ordering::SeqCst) {
        return Err(JobError::Io(
            "the job's lease was lost before the table commit".to_owned(),
        ));
    }
    lock_table(ctx, job, dataset_id, lease_lost).await?;
    let committed = table.commit_compaction(&compactions, target).await;
    unlock_table(ctx, job, dataset_id).await;
    let committed = committed?;
    let parts: Vec<&DataFile> = committed.committed.iter().flat_map(|c| &c.parts).collect();
    let result = json!({
        "version": committed.version,
        "filesRemoved": parts.len(),
        "bytesRemoved": parts.iter().map(|part| part.size).sum::<u64>(),
        "filesAdded": committed.committed.len(),
        "bytesAdded": committed.committed.iter().map(|c| c.file.size).sum::<u64>(),
        "records": committed.committed.iter().map(|c| c.file.records).sum::<u64>(),
        "leftOut": committed.skipped,
    });
    Ok((result, committed.version))
}

/// Groups the files and writes each group of two or more as one compacted file; at most
/// one group's files are fetched (from S3) at a time.
async fn compact_files(
    ctx: &JobContext,
    table: &Table,
    files: Vec<DataFile>,
    target: u64,
    scratch: &std::path::Path,
    lease_lost: &AtomicBool,
) -> Result<Vec<Compaction>, JobError> {
    let mut compactions = Vec::new();
    let mut group: Vec<(DataFile, ReadableFile)> = Vec::new();
    let mut group_schema = None;
    let mut group_bytes = 0;
    for file in files {
        if lease_lost.load(Ordering::SeqCst) {
            return Err(JobError::Io(
                "the job's lease was lost while compacting".to_owned(),
            ));
        }
        let local = ctx.storage.readable_file(&file.key, scratch).await?;
        let path = local.path().to_owned();
        let schema = blocking(move || lakeport_parquet::file_schema(&path)).await?;
        let fits = group_schema.as_ref() == Some(&schema) && group_bytes + file.size <= target;
        if !fits && !group.is_empty() {
            compactions.extend(write_group(ctx, table, std::mem::take(&mut group), scratch).await?);
            group_bytes = 0;
        }
        group_schema = Some(schema);
        group_bytes += file.size;
        group.push((file, local));
    }
    compactions.extend(write_group(ctx, table, group, scratch).await?);
    Ok(compactions)
}

/// Writes a group of two or more files as one compacted file in the table's
/// `compacted/` folder (not yet committed); None for a group of one.
async fn write_group(
    ctx: &JobContext,
    table: &Table,
    group: Vec<(DataFile, ReadableFile)>,
    scratch: &std::path::Path,
) -> Result<Option<Compaction>, JobError> {
    if group.len() < 2 {
        return Ok(None);
    }
    let name = format!("{}.parquet", new_ulid());
    let output = scratch.join(&name);
    let inputs: Vec<std::path::PathBuf> = group
        .iter()
        .map(|(_, local)| local.path().to_owned())
        .collect();
    let written = {
        let output = output.clone();
        blocking(move || {
            let inputs: Vec<&std::path::Path> = inputs.iter().map(|path| path.as_path()).collect();
            lakeport_parquet::compact(&inputs, &output)
        })
        .await?
    };
    let key = table.compacted_key(&name);
    ctx.storage.put_file(&key, &output).await?;
    let _ = tokio::fs::remove_file(&output).await;
    let parts: Vec<DataFile> = group.into_iter().map(|(file, _)| file).collect();
    let expected: u64 = parts.iter().map(|part| part.records).sum();
    if expected != 0 && expected != written.records {
        return Err(JobError::Io(format!(
            "compacting {} files wrote {} rows where their commits record {expected}",
            parts.len(),
            written.records
        )));
    }
    Ok(Some(Compaction {
        file: DataFile {
            key,
            size: written.bytes,
            records: written.records,
        },
        parts,
    }))
}

/// Runs Parquet work on a blocking thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, lakeport_parquet::WriteError> + Send + 'static,
) -> Result<T, JobError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| JobError::Io(format!("the compaction thread failed: {err}")))?
        .map_err(|err| JobError::Io(err.to_string()))
}

/// Deletes the compacted files no version of the retention period reads.
async fn vacuum(ctx: &JobContext, table: &Table) -> Result<(Value, Option<u64>), JobError> {
    let retention_ms =
        i64::try_from(ctx.config.vacuum_retention_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let vacuumed = table
        .vacuum(now_millis().saturating_sub(retention_ms))
        .await?;
    Ok((
        json!({
            "filesDeleted": vacuumed.files,
            "bytesDeleted": vacuumed.bytes,
            "filesRetained": vacuumed.retained,
            "retentionSecs": ctx.config.vacuum_retention_secs,
        }),
        None,
    ))
}
