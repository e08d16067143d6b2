//! Batch ingestion rules (spec §3, §6, §7.3–§7.4) as pure functions: chunk ranges, batch
//! signals applied to a batch document, the partial-ingestion outcome, and job payloads.

use serde_json::{Value, json};

use crate::Doc;
use crate::catalog::{self, WriteContext, touch};
use crate::status::{BatchAction, BatchStatus, CompletionRequested, InvalidTransition, Transition};
use crate::tenant::Tenant;

/// One received chunk of a chunked upload: inclusive byte offsets and the total length
/// the client announced, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub first: u64,
    pub last: u64,
    pub total: Option<u64>,
}

impl Chunk {
    /// Returns the chunk's length in bytes (saturating: a parsed chunk never reaches
    /// [`MAX_CHUNK_OFFSET`], so the sum cannot overflow).
    pub fn len(&self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }

    /// Chunks are never empty; present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The largest byte offset a `Content-Range` may name: offsets, lengths and totals then
/// fit in a signed 64-bit integer and no sum of them overflows.
pub const MAX_CHUNK_OFFSET: u64 = (i64::MAX as u64) / 2;

/// Parses `Content-Range: bytes <first>-<last>[/<total>|/*]` (spec §3.4).
///
/// # Errors
/// A message that says what is malformed, including offsets past [`MAX_CHUNK_OFFSET`].
pub fn parse_content_range(header: &str) -> Result<Chunk, String> {
    let expected = "expected Content-Range: bytes <first>-<last>[/<total>] with inclusive offsets";
    let spec = header
        .trim()
        .strip_prefix("bytes")
        .map(str::trim_start)
        .map(|s| s.strip_prefix('=').unwrap_or(s).trim())
        .ok_or_else(|| format!("{header:?}: {expected}"))?;
    let (range, total) = match spec.split_once('/') {
        Some((range, "*")) => (range, None),
        Some((range, total)) => (
            range,
            Some(
                total
                    .trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{header:?}: the total is not a number"))?,
            ),
        ),
        None => (spec, None),
    };
    let (first, last) = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?)))
        .ok_or_else(|| format!("{header:?}: {expected}"))?;
    if last < first {
        return Err(format!(
            "{header:?}: the last byte {last} is before the first {first}"
        ));
    }
    if let Some(large) = [Some(last), total]
        .into_iter()
        .flatten()
        .find(|n| *n > MAX_CHUNK_OFFSET)
    {
        return Err(format!(
            "{header:?}: {large} is larger than the largest supported offset {MAX_CHUNK_OFFSET}"
        ));
    }
    if let Some(total) = total
        && last >= total
    {
        return Err(format!(
            "{header:?}: the range ends at {last}, past the total of {total} bytes"
        ));
    }
    Ok(Chunk { first, last, total })
}

/// Adds a chunk to the received set; a chunk re-sent with the same range replaces the old.
pub fn add_chunk(chunks: &mut Vec<Chunk>, chunk: Chunk) {
    chunks.retain(|c| !(c.first == chunk.first && c.last == chunk.last));
    chunks.push(chunk);
    chunks.sort_by_key(|c| (c.first, c.last));
}

/// Returns the last byte of the contiguous prefix received from offset 0 (for the
/// `Range: bytes=0-<end>` header), or `None` when byte 0 is missing.
pub fn contiguous_end(chunks: &[Chunk]) -> Option<u64> {
    let mut end: Option<u64> = None;
    for chunk in chunks {
        let next = end.map_or(0, |e: u64| e.saturating_add(1));
        if chunk.first > next {
            break;
        }
        end = Some(end.map_or(chunk.last, |e| e.max(chunk.last)));
    }
    end
}

/// Returns the number of distinct bytes received.
pub fn received_bytes(chunks: &[Chunk]) -> u64 {
    chunks.iter().map(Chunk::len).fold(0, u64::saturating_add)
}

/// Checks that the chunks tile `[0, N)` with no gap and no overlap and agree on the total;
/// returns N (spec §3.3).
///
/// # Errors
/// A message naming the gap, overlap or disagreement.
pub fn check_tiling(chunks: &[Chunk]) -> Result<u64, String> {
    if chunks.is_empty() {
        return Err("no chunks were uploaded".to_owned());
    }
    let mut next = 0u64;
    for chunk in chunks {
        if chunk.first > next {
            return Err(format!("bytes {next}-{} are missing", chunk.first - 1));
        }
        if chunk.first < next {
            return Err(format!(
                "chunk {}-{} overlaps bytes already covered up to {}",
                chunk.first,
                chunk.last,
                next - 1
            ));
        }
        next = chunk.last.checked_add(1).ok_or_else(|| {
            format!(
                "chunk {}-{} ends past the largest supported offset",
                chunk.first, chunk.last
            )
        })?;
    }
    if let Some(total) = chunks.iter().find_map(|c| c.total.filter(|t| *t != next)) {
        return Err(format!(
            "a chunk announced a total of {total} bytes but the chunks cover {next}"
        ));
    }
    Ok(next)
}

/// What a batch signal does.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalEffect {
    /// Nothing changes (the effect already happened); answer 200.
    NoOp,
    /// The batch document changes; `promote` asks for a promotion job, `cleanup` for the
    /// removal of its staged data.
    Changed {
        batch: Doc,
        promote: bool,
        cleanup: bool,
    },
}

/// Applies a client signal to a batch document (spec §3.7, §6.2).
///
/// # Errors
/// [`InvalidTransition`] when the signal is not allowed in the batch's status.
pub fn apply_signal(
    batch: &Doc,
    action: BatchAction,
    ctx: &WriteContext<'_>,
) -> Result<SignalEffect, InvalidTransition> {
    let status = crate::catalog::batch_status(batch).unwrap_or(BatchStatus::Loading);
    let started = if batch.contains_key("started") {
        CompletionRequested::Yes
    } else {
        CompletionRequested::No
    };
    let next = match status.apply(action, started)? {
        Transition::NoOp => return Ok(SignalEffect::NoOp),
        Transition::To(next) => next,
    };
    let mut doc = batch.clone();
    doc.insert("status".into(), json!(next.as_str()));
    let (mut promote, mut cleanup) = (false, false);
    match action {
        BatchAction::Complete => {
            doc.insert("started".into(), json!(ctx.now));
            promote = true;
        }
        BatchAction::Abort => {
            doc.insert("completed".into(), json!(ctx.now));
            doc.entry("errors").or_insert_with(|| json!([]));
            cleanup = true;
        }
        BatchAction::Fail => {
            doc.insert("completed".into(), json!(ctx.now));
            doc.insert(
                "errors".into(),
                json!([{"code": "INGEST-9005-400", "description": "The producer failed the batch with action=FAIL."}]),
            );
            cleanup = true;
        }
        // A clean-up runs at once (it removes the batch from the dataset's Delta table), and
        // the collector removes the data after a grace period: the metastore enqueues that
        // delayed clean-up in the signal's transaction.
        BatchAction::Revert => cleanup = true,
    }
    touch(&mut doc, ctx);
    Ok(SignalEffect::Changed {
        batch: doc,
        promote,
        cleanup,
    })
}

/// The kinds of background jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Validate a completed batch and promote it into the lake.
    PromoteBatch,
    /// Remove a batch's staged data (after ABORT/FAIL or promotion).
    CleanupBatch,
    /// Turn a sealed stream segment into its Catalog batch (spec §10.3).
    FlushSegment,
    /// Compact a dataset table's small files (spec §12); the job's subject is the dataset.
    OptimizeTable,
    /// Delete the compacted files no version within the retention period reads; the job's
    /// subject is the dataset.
    VacuumTable,
}

impl JobKind {
    /// Returns true for the jobs whose subject is a dataset's table, not a batch.
    pub fn is_table_job(self) -> bool {
        matches!(self, Self::OptimizeTable | Self::VacuumTable)
    }

    /// Returns the name stored in the job table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PromoteBatch => "promote_batch",
            Self::CleanupBatch => "cleanup_batch",
            Self::FlushSegment => "flush_segment",
            Self::OptimizeTable => "optimize_table",
            Self::VacuumTable => "vacuum_table",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "promote_batch" => Some(Self::PromoteBatch),
            "cleanup_batch" => Some(Self::CleanupBatch),
            "flush_segment" => Some(Self::FlushSegment),
            "optimize_table" => Some(Self::OptimizeTable),
            "vacuum_table" => Some(Self::VacuumTable),
            _ => None,
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub kind: JobKind,
    pub tenant: Tenant,
    /// The batch the job is about; for a table job ([`JobKind::is_table_job`]), the
    /// dataset's id (read it with [`Job::dataset_id`]).
    pub batch_id: crate::ids::BatchId,
    /// 1 for the first run, 2 for the first retry, …
    pub attempt: u32,
    /// The worker holding the lease.
    pub worker: String,
}

impl Job {
    /// The dataset a table job is about (None for a batch job).
    pub fn dataset_id(&self) -> Option<crate::ids::DatasetId> {
        self.kind
            .is_table_job()
            .then(|| crate::ids::DatasetId::from(self.batch_id.to_string()))
    }
}

/// A dataset's table job as the API shows it (`lakeport dataset optimize|vacuum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableJob {
    pub id: i64,
    pub kind: JobKind,
    pub dataset_id: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub attempts: u32,
    /// The last failure, if any.
    pub error: Option<String>,
    /// What the job did, as JSON, once `done`.
    pub result: Option<String>,
    pub created: i64,
    pub updated: i64,
}

/// The counts of a processed batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessedCounts {
    pub input_files: u64,
    pub input_bytes: u64,
    pub input_records: u64,
    pub failed_records: u64,
    pub output_records: u64,
    pub output_bytes: u64,
    pub output_files: u64,
    /// Rejected rows per error code, in a stable order.
    pub error_counts: Vec<(String, u64)>,
}

/// A file-level error: the whole batch fails (spec §7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLevelError {
    pub code: String,
    pub description: String,
}

/// The decided outcome of a processed batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: BatchStatus,
    pub errors: Vec<Value>,
    /// True when passing rows are promoted.
    pub promote: bool,
}

/// Returns the partial-ingestion threshold of a batch (spec §7.3): the batch's
/// `partialIngestionPercent`, else the dataset's legacy `partialBatchIngestion` tag, else 0.
pub fn threshold(batch: &Doc, dataset: &Doc) -> f64 {
    if let Some(percent) = batch.get("partialIngestionPercent").and_then(Value::as_f64) {
        return percent;
    }
    if let Some(percent) = catalog::tag_values(batch, "acp_partialIngestionPercent")
        .next()
        .and_then(|s| s.parse::<f64>().ok())
    {
        return percent;
    }
    catalog::tag_values(dataset, "partialBatchIngestion")
        .find_map(|item| item.strip_prefix("errorThresholdPercentage:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Returns whether diagnostics are on: partial ingestion implies them, else the batch's or
/// the dataset's `enableErrorDiagnostics` (spec §7.3).
pub fn diagnostics_enabled(batch: &Doc, dataset: &Doc) -> bool {
    let flag = |doc: &Doc| doc.get("enableErrorDiagnostics").and_then(Value::as_bool) == Some(true);
    let tagged = catalog::tag_values(batch, "acp_enableErrorDiagnostics").next() == Some("true");
    threshold(batch, dataset) > 0.0 || flag(batch) || flag(dataset) || tagged
}

/// Decides a processed batch's outcome and its `errors[]` (spec §7.3–§7.4).
pub fn decide(
    counts: &ProcessedCounts,
    file_errors: &[FileLevelError],
    threshold: f64,
    diagnostics: bool,
) -> Outcome {
    let per_code = || -> Vec<Value> {
        counts
            .error_counts
            .iter()
            .map(|(code, rows)| json!({"code": code, "description": describe(code), "recordCount": rows}))
            .collect()
    };
    if !file_errors.is_empty() {
        return Outcome {
            status: BatchStatus::Failed,
            errors: file_errors
                .iter()
                .map(|e| json!({"code": e.code, "description": e.description, "rows": []}))
                .collect(),
            promote: false,
        };
    }
    if counts.input_records == 0 {
        return Outcome {
            status: BatchStatus::Failed,
            errors: vec![
                json!({"code": "INGEST-9203-400", "description": "The batch has no data: no files or no rows were uploaded.", "rows": []}),
            ],
            promote: false,
        };
    }
    if counts.failed_records == 0 {
        return Outcome {
            status: BatchStatus::Success,
            errors: Vec::new(),
            promote: true,
        };
    }
    let failed_percent = 100.0 * counts.failed_records as f64 / counts.input_records as f64;
    if threshold > 0.0 && failed_percent <= threshold {
        let mut errors = vec![json!({
            "code": "INGEST-1212-400",
            "description": format!(
                "{} rows were rejected, {} rows were ingested; see the diagnostics files.",
                counts.failed_records, counts.output_records
            ),
        })];
        if diagnostics {
            errors.extend(per_code());
        }
        return Outcome {
            status: BatchStatus::Success,
            errors,
            promote: true,
        };
    }
    let errors = if diagnostics {
        per_code()
    } else {
        vec![json!({
            "code": "INGEST-1211-400",
            "description": format!(
                "{} of {} rows were rejected. Resend the batch with enableErrorDiagnostics set to true to get row-level errors.",
                counts.failed_records, counts.input_records
            ),
        })]
    };
    Outcome {
        status: BatchStatus::Failed,
        errors,
        promote: false,
    }
}

fn describe(code: &str) -> &'static str {
    match code {
        "INGEST-1401-400" => "The row could not be parsed.",
        "INGEST-1555-400" => "A required field is absent or null.",
        "INGEST-9101-400" => "A value could not be converted to the field's type.",
        "INGEST-9102-400" => "A value is not one of the field's enum values.",
        "INGEST-9103-400" => "A value does not match the field's pattern or length limits.",
        "INGEST-9104-400" => "A value is outside the field's range.",
        "INGEST-9105-400" => "A value does not have the field's format.",
        _ => "The row failed validation.",
    }
}

/// Returns the batch fields a processed batch gets (spec §7.4).
pub fn processed_fields(
    counts: &ProcessedCounts,
    outcome: &Outcome,
    started: i64,
    completed: i64,
) -> Doc {
    let output_records = if outcome.promote {
        counts.output_records
    } else {
        0
    };
    let output_bytes = if outcome.promote {
        counts.output_bytes
    } else {
        0
    };
    let output_files = if outcome.promote {
        counts.output_files
    } else {
        0
    };
    let fields = json!({
        "status": outcome.status.as_str(),
        "completed": completed,
        "recordCount": output_records,
        "failedRecordCount": counts.failed_records,
        "size": output_bytes,
        "metrics": {
            "inputByteSize": counts.input_bytes,
            "inputFileCount": counts.input_files,
            "inputRecordCount": counts.input_records,
            "outputRecordCount": output_records,
            "outputByteSize": output_bytes,
            "outputFileCount": output_files,
            "failedRecordCount": counts.failed_records,
            "partitionCount": u64::from(output_files > 0),
            "startTime": started,
            "endTime": completed,
            "recordsRead": counts.input_records,
            "recordsWritten": output_records,
        },
        "errors": outcome.errors,
        "availableDates": {},
    });
    match fields {
        Value::Object(map) => map,
        _ => unreachable!("a json! object literal"),
    }
}

#[cfg(test)]
mod tests;
