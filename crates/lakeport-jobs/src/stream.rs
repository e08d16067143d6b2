//! Streaming (spec §10.3): sealing due segments of the append log and the flush job that
//! turns a sealed segment into its Catalog batch. The batch then follows the ordinary
//! promotion path, whose commit marks the segment done.

use lakeport_domain::ingest::Job;
use lakeport_domain::now_millis;
use lakeport_domain::query::ObjectKind;
use lakeport_storage::keys;

use crate::{JobContext, JobError};

/// Bytes of records one read of a segment takes: a flush holds about this much of it in
/// memory at a time, whatever the segment's size (`stream.flush_bytes`).
const PAGE_BYTES: u64 = 4 * 1024 * 1024;

/// Writes the segment's records as one JSON Lines file under the batch's staging prefix
/// and submits the batch (created, file recorded, completed: one transaction). Safe to run
/// twice: a submitted or done segment is left alone, and the staged key is fixed by the
/// segment, so a rerun before submission rewrites the same unreferenced object.
pub(crate) async fn flush(ctx: &JobContext, job: &Job) -> Result<(), JobError> {
    let tenant = &job.tenant;
    let now = now_millis();
    let segment = ctx
        .metastore
        .stream_segment(tenant, &job.batch_id, None, PAGE_BYTES)
        .await?;
    let submitted = !ctx
        .metastore
        .get(tenant, ObjectKind::Batch, &[job.batch_id.to_string()])
        .await?
        .is_empty();
    let Some(segment) = segment.filter(|segment| !segment.done && !submitted) else {
        ctx.metastore.finish_job(job, now).await?;
        return Ok(());
    };
    let upload_id = format!("segment-{}", segment.segment);
    let key = keys::staged_file(tenant.org(), tenant.sandbox(), &job.batch_id, &upload_id);
    // Page by page: each page is read when the upload wants it and becomes one buffer
    // (every chunk with its final newline).
    let metastore = std::sync::Arc::clone(&ctx.metastore);
    let batch_id = job.batch_id.to_string();
    let first = Some((segment.records, segment.next_after));
    let body = futures::stream::try_unfold(first, move |page| {
        let (metastore, tenant, batch_id) = (metastore.clone(), tenant.clone(), batch_id.clone());
        async move {
            let Some((chunks, next_after)) = page else {
                return Ok(None);
            };
            let mut buffer = Vec::with_capacity(chunks.iter().map(|chunk| chunk.len() + 1).sum());
            for chunk in chunks {
                buffer.extend_from_slice(chunk.as_bytes());
                buffer.push(b'\n');
            }
            let following = match next_after {
                None => None,
                Some(after) => {
                    let next = metastore
                        .stream_segment(&tenant, &batch_id, Some(after), PAGE_BYTES)
                        .await?
                        .ok_or(lakeport_metastore::MetastoreError::StateConflict(
                            "the stream segment was dropped while it was read".to_owned(),
                        ))?;
                    Some((next.records, next.next_after))
                }
            };
            Ok::<_, lakeport_metastore::MetastoreError>(Some((
                bytes::Bytes::from(buffer),
                following,
            )))
        }
    });
    let size = ctx.storage.put_stream(&key, body, u64::MAX).await?;
    let created = ctx
        .metastore
        .submit_stream_segment(tenant, &job.batch_id, &upload_id, size, now_millis())
        .await?;
    tracing::info!(
        batch.id = %job.batch_id,
        dataset.id = %segment.dataset_id,
        stream.segment = segment.segment,
        records = segment.record_count,
        size_bytes = size,
        submitted = created,
        "stream segment flushed into a batch"
    );
    ctx.metastore.finish_job(job, now_millis()).await?;
    Ok(())
}

/// Seals the open segments due at `now` (oldest record at least `flush_interval_ms` old, or
/// `flush_bytes` reached); returns how many were sealed.
pub(crate) async fn seal_due(ctx: &JobContext, now: i64) -> Result<usize, JobError> {
    let interval = i64::try_from(ctx.stream.flush_interval_ms()).unwrap_or(i64::MAX);
    let sealed = ctx
        .metastore
        .seal_stream_segments(now.saturating_sub(interval), ctx.stream.flush_bytes, now)
        .await?;
    for segment in &sealed {
        tracing::info!(
            batch.id = %segment.batch_id,
            dataset.id = %segment.dataset_id,
            tenant.org = segment.tenant.org(),
            stream.segment = segment.segment,
            records = segment.records,
            size_bytes = segment.bytes,
            "stream segment sealed"
        );
    }
    Ok(sealed.len())
}

/// How long a sealed segment may sit without a flush job before it is given a new one.
const STALLED_AFTER_MS: i64 = 60_000;

/// Gives a new flush job to each sealed segment whose job failed for good (it has no
/// batch and no live job), so that its acknowledged records still land; returns how many.
pub(crate) async fn requeue_stalled(ctx: &JobContext, now: i64) -> Result<usize, JobError> {
    let requeued = ctx
        .metastore
        .requeue_stalled_segments(now.saturating_sub(STALLED_AFTER_MS), now)
        .await?;
    for segment in &requeued {
        tracing::warn!(
            batch.id = %segment.batch_id,
            dataset.id = %segment.dataset_id,
            tenant.org = segment.tenant.org(),
            stream.segment = segment.segment,
            records = segment.records,
            "stream segment had no flush job left; flushing it again"
        );
    }
    Ok(requeued.len())
}
