//! The synchronous file pipeline of batch ingestion (spec §7.2–§7.5): decode each file,
//! validate each row, write passing rows as Parquet parts and rejected rows (with reasons)
//! as JSON Lines.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow_array::{ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::SchemaRef;
use lakeport_domain::xdm::validate::{
    Source, UnknownFields, Validator, ValidatorOptions, Violation, ViolationCode,
};
use serde_json::{Map, Value, json};

use crate::columns::{check_parquet_columns, map_csv_header};
use crate::direct::{Checked, CsvColumns, Offered, RowBuilder};
use crate::error::{FileError, ProcessError, SetupError, WriteError};
use crate::format::FileFormat;
use crate::output::{BatchStage, JsonLines, OutputFile, ParquetParts, write_marker};
use crate::read::csv::{CsvFile, Next};
use crate::read::{self, Flow, RowSink};
use crate::reuse::{self, CopyGroup};
use crate::schema::arrow_schema;

mod parallel;

/// Rows the Arrow encoder turns into one record batch at most: bounds the JSON tape and the
/// Arrow arrays held before they reach the Parquet writer, whatever the row-group size.
const ENCODE_CHUNK_ROWS: usize = 4096;

/// At most this many error rows go to `meta/row_errors_sample.json` (spec §7.5).
const SAMPLE_ROWS: u64 = 100;

/// The short parsing-error code diagnostics use (spec §7.5).
const PARSE_CODE_SHORT: &str = "1401";

/// How a batch is processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOptions {
    /// The most rows in one Parquet row group.
    pub rows_per_row_group: usize,
    /// The most rows in one Parquet part file; also the most lines in one JSON Lines file of
    /// rejected rows or diagnostics.
    pub rows_per_part: usize,
    /// Whether to write the `meta/` diagnostics (spec §7.3: on with partial ingestion or
    /// `enableErrorDiagnostics`). Rejected rows always go to `failed/`.
    pub diagnostics: bool,
    /// The most fields a row may have before it is a parsing error (spec §7.2 step 3).
    pub max_fields_per_row: usize,
    /// What happens to JSON properties the schema does not declare (spec §8.14).
    pub unknown_fields: UnknownFields,
    /// The largest row a JSON line, JSON array element or CSV record may be, in bytes; a
    /// larger one is a parsing error of that row, never held in memory (AEP: 1 MB).
    pub max_row_bytes: usize,
    /// The threads one batch uses: 1 runs everything on the caller's thread (for fair
    /// single-thread comparisons); 2 (the default) decodes on the caller's thread and
    /// encodes Parquet on a second; with more, files of every format are decoded and
    /// validated on `threads - 1` threads while the caller's thread reads the file and
    /// merges their results in order. Values below 1 count as 1.
    pub threads: usize,
    /// Whether a Parquet input's row group whose rows all pass keeps the input's encoded
    /// pages for the columns the dataset stores as they are (copied, not encoded again;
    /// see `reuse.rs`). Off, every output page is encoded by Lakeport (Snappy).
    pub reuse_parquet_pages: bool,
    /// About the most bytes of rows one record batch holds before it is sent to the writer,
    /// whatever its rows: rows near `max_row_bytes` would otherwise make a batch of 4,096
    /// rows gigabytes.
    pub max_batch_bytes: usize,
}

/// The default row limit: AEP's published maximum size of a single record, 1 MB.
pub const DEFAULT_MAX_ROW_BYTES: usize = 1024 * 1024;

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            rows_per_row_group: 131_072,
            rows_per_part: 4_000_000,
            diagnostics: false,
            max_fields_per_row: 10_000,
            unknown_fields: UnknownFields::Drop,
            max_row_bytes: DEFAULT_MAX_ROW_BYTES,
            threads: 2,
            reuse_parquet_pages: true,
            max_batch_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What one input file contributed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// Rows read (parsing errors included).
    pub input_records: u64,
    /// Rows rejected (parsing, conversion and validation errors).
    pub failed_records: u64,
    /// The size of the input file.
    pub input_bytes: u64,
}

/// Everything a batch wrote, with the counts the batch record reports (spec §7.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutput {
    /// `part-00001.parquet`, … with their row counts and sizes.
    pub parts: Vec<OutputFile>,
    /// `failed/_SUCCESS` (first, when any row was rejected) and `failed/part-00001.json`, …
    pub failed: Vec<OutputFile>,
    /// Everything under `meta/` (diagnostics on only), sorted by path.
    pub meta: Vec<OutputFile>,
    /// Rows read from every file (parsing errors included).
    pub input_records: u64,
    /// Rows rejected (parsing, conversion and validation errors).
    pub failed_records: u64,
    /// Rows written to the parts: `input_records - failed_records`.
    pub output_records: u64,
    /// The total size of the Parquet parts.
    pub output_bytes: u64,
    /// Rejected rows per violation code (`INGEST-1401-400`, …); a row counts once per
    /// distinct code it has.
    pub error_counts: BTreeMap<String, u64>,
}

/// Processes the files of one batch into an output directory: compile once with
/// [`new`](Self::new), feed every file to [`process_file`](Self::process_file), then
/// [`finish`](Self::finish). Synchronous and blocking; run it off the async runtime.
///
/// Memory stays bounded whatever the file sizes: inputs are streamed (one row, or one
/// Parquet record batch of 8192 rows, at a time), at most 8,704 validated rows wait for the
/// encoding thread, at most 4096 rows for Arrow encoding, and the Parquet writer holds at
/// most one row group. Decoding and validation run on the caller's thread, Arrow encoding and
/// Parquet writing on a second one.
pub struct BatchProcessor {
    schema: Value,
    out_dir: PathBuf,
    pipeline: Pipeline,
    input_files: Option<JsonLines>,
    input_records: u64,
    max_row_bytes: usize,
    threads: usize,
}

/// The row path shared by every file of the batch.
struct Pipeline {
    validator: Validator,
    output: Box<ColumnOutput>,
    rejects: Rejects,
    output_records: u64,
}

/// Where validated rows go: columns built on the decoding side, record batches to the
/// writing stage.
struct ColumnOutput {
    builder: RowBuilder,
    /// The dataset's Arrow schema.
    schema: SchemaRef,
    stage: BatchStage,
    /// Rows per record batch at most.
    chunk_rows: usize,
    rows_per_part: u64,
    /// Rows handed to the writing thread so far.
    sent: u64,
    /// Record batches of validated rows waiting to be sent (before the rows in `builder`).
    pending: VecDeque<RecordBatch>,
    pending_rows: usize,
    /// The Arrow memory of `pending`, and the input bytes of the rows in `builder`: past
    /// `max_batch_bytes` together, the waiting rows are sent whatever their number.
    pending_bytes: usize,
    builder_bytes: usize,
    max_batch_bytes: usize,
    /// Whether Parquet input pages may be copied (`ProcessOptions::reuse_parquet_pages`).
    reuse: bool,
    /// The file row of the first row of the input row group being copied, if any, the rows
    /// of it read so far, and the offsets in it of those rejected.
    copying: Option<(u64, usize, Vec<usize>)>,
}

impl ColumnOutput {
    /// The rows of the next record batch to send: a full batch, or the rest of the current
    /// part. Batches are cut at the same rows as the row engine's (every `chunk_rows` rows,
    /// and at part ends), so that the Parquet pages written from them are the same.
    fn target(&self) -> usize {
        let room = self.rows_per_part - self.sent % self.rows_per_part;
        usize::try_from(room).map_or(self.chunk_rows, |room| room.min(self.chunk_rows))
    }

    /// Returns how many more validated rows fill the next record batch.
    fn wanted(&self) -> usize {
        self.target()
            .saturating_sub(self.pending_rows + self.builder.rows())
    }

    /// Whether the waiting rows hold `max_batch_bytes`.
    fn heavy(&self) -> bool {
        self.pending_bytes + self.builder_bytes >= self.max_batch_bytes
    }

    /// Sends the waiting rows once they fill a record batch, by rows or by bytes.
    fn flush_if_full(&mut self) -> Result<(), WriteError> {
        let heavy = self.heavy();
        if !heavy && self.pending_rows + self.builder.rows() < self.target() {
            return Ok(());
        }
        self.stash()?;
        self.send(heavy)
    }

    /// Sends every waiting row.
    fn flush(&mut self) -> Result<(), WriteError> {
        self.stash()?;
        self.send(true)
    }

    /// Sends the waiting rows, then marks the start of an input row group whose pages the
    /// writer may copy (see `reuse.rs`).
    fn begin_copy(&mut self, group: CopyGroup) -> Result<(), WriteError> {
        self.end_copy()?;
        self.flush()?;
        self.copying = Some((group.first_row, 0, Vec::new()));
        self.stage.begin_copy(group)
    }

    /// Notes Parquet rows read: `rows` of them, of which those at file rows `rejected`
    /// were rejected.
    fn read_rows(&mut self, rows: usize, rejected: &[u64]) {
        if let Some((first, covered, offsets)) = &mut self.copying {
            *covered += rows;
            offsets.extend(
                rejected
                    .iter()
                    .map(|row| usize::try_from(row.saturating_sub(*first)).unwrap_or(usize::MAX)),
            );
        }
    }

    /// Sends the rows of the input row group [`begin_copy`](Self::begin_copy) started and
    /// marks its end (nothing when no group is open).
    fn end_copy(&mut self) -> Result<(), WriteError> {
        let Some((_, covered, mut rejected)) = self.copying.take() else {
            return Ok(());
        };
        self.flush()?;
        rejected.sort_unstable();
        self.stage.end_copy(covered, rejected)
    }

    /// Moves the rows built here to the waiting batches.
    fn stash(&mut self) -> Result<(), WriteError> {
        if self.builder.rows() > 0 {
            let batch = self.builder.finish().map_err(WriteError::Encode)?;
            self.pending_rows += batch.num_rows();
            self.pending_bytes += batch.get_array_memory_size();
            self.pending.push_back(batch);
        }
        self.builder_bytes = 0;
        Ok(())
    }

    /// Queues a record batch of validated rows built elsewhere (after the rows built here)
    /// and sends what fills record batches.
    fn push_batch(&mut self, batch: RecordBatch) -> Result<(), WriteError> {
        self.stash()?;
        if batch.num_rows() > 0 {
            self.pending_rows += batch.num_rows();
            self.pending_bytes += batch.get_array_memory_size();
            self.pending.push_back(batch);
        }
        self.send(self.heavy())
    }

    /// Sends full record batches of the waiting rows, and with `all` the rest too.
    fn send(&mut self, all: bool) -> Result<(), WriteError> {
        loop {
            let target = self.target();
            if self.pending_rows == 0 || (!all && self.pending_rows < target) {
                return Ok(());
            }
            let rows = target.min(self.pending_rows);
            let batch = self.take(rows)?;
            // Slices count their whole buffers: an over-estimate, never an under-estimate.
            self.pending_bytes = self
                .pending
                .iter()
                .map(RecordBatch::get_array_memory_size)
                .sum();
            self.sent += rows as u64;
            self.stage.push(batch)?;
        }
    }

    /// Takes the first `rows` waiting rows as one record batch (copied only when they span
    /// batches).
    fn take(&mut self, rows: usize) -> Result<RecordBatch, WriteError> {
        let mut pieces = Vec::new();
        let mut needed = rows;
        while needed > 0 {
            let Some(front) = self.pending.pop_front() else {
                break;
            };
            let available = front.num_rows();
            if available > needed {
                pieces.push(front.slice(0, needed));
                self.pending
                    .push_front(front.slice(needed, available - needed));
                needed = 0;
            } else {
                needed -= available;
                pieces.push(front);
            }
        }
        self.pending_rows -= rows - needed;
        if pieces.len() == 1 {
            return Ok(pieces.pop().expect("one piece"));
        }
        arrow_select::concat::concat_batches(&self.schema, &pieces).map_err(WriteError::Encode)
    }
}

impl Pipeline {
    /// Writes one row the validator accepted and converted.
    fn accept(&mut self, converted: Value) -> Result<(), WriteError> {
        self.output.builder_bytes += read::parquet::value_size(&converted);
        self.output
            .builder
            .converted_row(&self.validator, &converted)
            .map_err(WriteError::Thread)?;
        self.output.flush_if_full()?;
        self.output_records += 1;
        Ok(())
    }
}

impl BatchProcessor {
    /// Compiles the validator and the Arrow schema of a resolved (`xed-full`) schema, and
    /// prepares `out_dir`, which must be empty or not exist yet.
    ///
    /// # Errors
    ///
    /// [`SetupError`] for a schema that cannot be compiled or mapped, zero row limits, or an
    /// output directory that cannot be created or already holds files.
    pub fn new(
        full_schema: &Value,
        out_dir: &Path,
        options: ProcessOptions,
    ) -> Result<Self, SetupError> {
        if options.rows_per_row_group == 0
            || options.rows_per_part == 0
            || options.max_row_bytes == 0
        {
            return Err(SetupError::Options(
                "rows_per_row_group, rows_per_part and max_row_bytes must be at least 1".to_owned(),
            ));
        }
        let validator = Validator::compile_with(
            full_schema,
            ValidatorOptions {
                unknown_fields: options.unknown_fields,
                max_fields_per_row: options.max_fields_per_row,
            },
        )?;
        let arrow = Arc::new(arrow_schema(full_schema)?);
        prepare_out_dir(out_dir)?;
        let chunk_rows = ENCODE_CHUNK_ROWS.min(options.rows_per_row_group);
        // With more than two threads, the Parquet writer encodes on two.
        let parts = ParquetParts::new(
            out_dir,
            arrow.clone(),
            options.rows_per_row_group,
            options.rows_per_part,
            if options.threads > 2 { 2 } else { 1 },
        );
        let builder = RowBuilder::new(&validator, arrow.clone())
            .map_err(|err| SetupError::Options(format!("cannot build the Arrow columns: {err}")))?;
        let output = Box::new(ColumnOutput {
            builder,
            schema: arrow,
            stage: BatchStage::start(parts, options.threads > 1)
                .map_err(|err| SetupError::Options(err.to_string()))?,
            chunk_rows,
            rows_per_part: options.rows_per_part as u64,
            sent: 0,
            pending: VecDeque::new(),
            pending_rows: 0,
            pending_bytes: 0,
            builder_bytes: 0,
            max_batch_bytes: options.max_batch_bytes.max(1),
            reuse: options.reuse_parquet_pages,
            copying: None,
        });
        let max_lines = options.rows_per_part as u64;
        let rejects = Rejects::new(out_dir, max_lines, options.diagnostics);
        let input_files = options
            .diagnostics
            .then(|| JsonLines::new(out_dir, |n| format!("meta/input_files/{n}.json"), max_lines));
        Ok(Self {
            schema: full_schema.clone(),
            out_dir: out_dir.to_owned(),
            pipeline: Pipeline {
                validator,
                output,
                rejects,
                output_records: 0,
            },
            input_files,
            input_records: 0,
            max_row_bytes: options.max_row_bytes,
            threads: options.threads.max(1),
        })
    }

    /// Decodes, validates and writes one file of the batch. `name` is the file's path inside
    /// the batch (used in diagnostics and messages), `file` where it is staged.
    ///
    /// # Errors
    ///
    /// [`ProcessError::File`] for a file-level data error: the batch must fail (spec §7.3).
    /// Rows decoded before the error stay counted and written; the processor remains usable
    /// so that the caller may report every bad file. [`ProcessError::Read`] and
    /// [`ProcessError::Write`] are storage failures worth a retry.
    pub fn process_file(
        &mut self,
        name: &str,
        file: &Path,
        format: &FileFormat,
    ) -> Result<FileStats, ProcessError> {
        self.process(name, Input::File(file), format)
    }

    /// Like [`process_file`](Self::process_file), for a JSON or CSV file read as a stream of
    /// `size` bytes (straight from remote object storage); Parquet needs
    /// [`process_file`](Self::process_file), as its footer is at the end.
    ///
    /// # Errors
    ///
    /// As [`process_file`](Self::process_file); [`ProcessError::Read`] for a Parquet format.
    pub fn process_stream(
        &mut self,
        name: &str,
        stream: Box<dyn std::io::Read + Send>,
        size: u64,
        format: &FileFormat,
    ) -> Result<FileStats, ProcessError> {
        self.process(name, Input::Stream(stream, size), format)
    }

    /// Like [`process_stream`](Self::process_stream), for a stream whose size is known only
    /// at its end (a file read while it is uploaded): the size reported is the bytes read.
    ///
    /// # Errors
    ///
    /// As [`process_stream`](Self::process_stream).
    pub fn process_unsized_stream(
        &mut self,
        name: &str,
        stream: Box<dyn std::io::Read + Send>,
        format: &FileFormat,
    ) -> Result<FileStats, ProcessError> {
        let count = Arc::new(AtomicU64::new(0));
        let counted = Counted {
            inner: stream,
            count: Arc::clone(&count),
        };
        self.process_counted(
            name,
            Input::Stream(Box::new(counted), 0),
            format,
            Some(&count),
        )
    }

    fn process(
        &mut self,
        name: &str,
        input: Input<'_>,
        format: &FileFormat,
    ) -> Result<FileStats, ProcessError> {
        self.process_counted(name, input, format, None)
    }

    /// Processes one input; `counted`, when given, is the bytes read of a stream whose size
    /// was not known before, which the file's statistics then report.
    fn process_counted(
        &mut self,
        name: &str,
        input: Input<'_>,
        format: &FileFormat,
        counted: Option<&AtomicU64>,
    ) -> Result<FileStats, ProcessError> {
        let source = match format {
            FileFormat::Json { .. } => Source::Json,
            FileFormat::Csv(_) => Source::Csv,
            FileFormat::Parquet => Source::Parquet,
        };
        let mut rows = FileRows {
            pipeline: &mut self.pipeline,
            name,
            source,
            stats: FileStats::default(),
        };
        let result = read_input(
            &self.schema,
            input,
            name,
            format,
            self.max_row_bytes,
            self.threads,
            &mut rows,
        );
        if let Some(counted) = counted {
            rows.stats.input_bytes = counted.load(Ordering::Relaxed);
        }
        let stats = rows.stats;
        self.input_records += stats.input_records;
        if let Some(input_files) = &mut self.input_files {
            let mut entry = json!({"path": name, "sizeInBytes": stats.input_bytes});
            if result.is_ok() {
                entry["inputRecordCount"] = json!(stats.input_records);
                entry["failedRecordCount"] = json!(stats.failed_records);
            }
            input_files.append(&entry)?;
        }
        result.map(|()| stats)
    }

    /// Writes the last rows, closes every file, and returns what was written.
    ///
    /// # Errors
    ///
    /// [`WriteError`] when a file cannot be written or closed.
    pub fn finish(self) -> Result<BatchOutput, WriteError> {
        let Pipeline {
            output,
            rejects,
            output_records,
            ..
        } = self.pipeline;
        let mut output = output;
        output.flush()?;
        let parts = output.stage.finish()?;
        let rejected = rejects.finish(&self.out_dir)?;
        let mut meta = rejected.meta;
        if let Some(input_files) = self.input_files {
            meta.extend(input_files.finish()?);
        }
        meta.sort_by(|a, b| a.relative_path.cmp(&b.relative_path));
        let output_bytes = parts.iter().map(|part| part.bytes).sum();
        debug_assert_eq!(
            parts.iter().map(|part| part.records).sum::<u64>(),
            output_records
        );
        Ok(BatchOutput {
            parts,
            failed: rejected.failed,
            meta,
            input_records: self.input_records,
            failed_records: rejected.failed_records,
            output_records,
            output_bytes,
            error_counts: rejected.error_counts,
        })
    }
}

fn prepare_out_dir(out_dir: &Path) -> Result<(), SetupError> {
    let output_error = |source| SetupError::Output {
        path: out_dir.to_owned(),
        source,
    };
    fs::create_dir_all(out_dir).map_err(output_error)?;
    if fs::read_dir(out_dir)
        .map_err(output_error)?
        .next()
        .is_some()
    {
        return Err(SetupError::OutputNotEmpty {
            path: out_dir.to_owned(),
        });
    }
    Ok(())
}

/// Where one input file is read from.
enum Input<'a> {
    File(&'a Path),
    /// A stream of the file's bytes and the file's size.
    Stream(Box<dyn std::io::Read + Send>, u64),
}

/// The decoding threads of a batch's `threads`: none with one or two (the pieces of a file
/// are decoded on the reading thread, the second one writes Parquet), `threads - 1` beyond.
fn helpers(threads: usize) -> usize {
    if threads > 2 { threads - 1 } else { 0 }
}

/// Cuts Parquet record batches at the input's row group boundaries and marks the row groups
/// whose pages the writer may copy (see `reuse.rs`): each such group's rows are sent
/// between a begin and an end mark.
struct CopyGroups<'a> {
    metadata: Arc<parquet::file::metadata::ParquetMetaData>,
    plan: &'a [Option<usize>],
    file: Option<Arc<std::fs::File>>,
    /// The group holding the next row, and the row after its last.
    group: usize,
    end: u64,
    /// Whether a begin mark was sent for `group`.
    open: bool,
}

impl<'a> CopyGroups<'a> {
    fn new(
        metadata: Arc<parquet::file::metadata::ParquetMetaData>,
        plan: &'a [Option<usize>],
        file: Option<Arc<std::fs::File>>,
    ) -> Self {
        let end = metadata
            .row_groups()
            .first()
            .map_or(0, |group| u64::try_from(group.num_rows()).unwrap_or(0));
        Self {
            metadata,
            plan,
            file,
            group: 0,
            end,
            open: false,
        }
    }

    /// Sends `batch`, whose first row is row `row_number` (from 0) of the file.
    fn send(
        &mut self,
        gather: &mut parallel::Gather<'_>,
        batch: RecordBatch,
        row_number: u64,
    ) -> Result<(), ProcessError> {
        let Some(file) = self.file.clone() else {
            return gather.send(parallel::Piece::Parquet { batch, row_number });
        };
        let metadata = Arc::clone(&self.metadata);
        let groups = metadata.row_groups();
        let mut offset = 0;
        while offset < batch.num_rows() {
            let here = row_number + offset as u64;
            while here >= self.end && self.group + 1 < groups.len() {
                self.group += 1;
                self.end += u64::try_from(groups[self.group].num_rows()).unwrap_or(0);
            }
            let start = self.end - u64::try_from(groups[self.group].num_rows()).unwrap_or(0);
            if here == start
                && let Some(leaves) = reuse::group_leaves(&self.metadata, self.group, self.plan)
            {
                let group = CopyGroup {
                    file: file.clone(),
                    metadata: Arc::clone(&self.metadata),
                    group: self.group,
                    leaves,
                    rows: usize::try_from(groups[self.group].num_rows()).unwrap_or(usize::MAX),
                    first_row: start,
                };
                gather.send(parallel::Piece::Mark(parallel::Mark::Begin(group)))?;
                self.open = true;
            }
            let take = (batch.num_rows() - offset)
                .min(usize::try_from(self.end.saturating_sub(here)).unwrap_or(usize::MAX))
                .max(1);
            let piece = batch.slice(offset, take);
            gather.send(parallel::Piece::Parquet {
                batch: piece,
                row_number: here,
            })?;
            offset += take;
            if self.open && here + take as u64 >= self.end {
                gather.send(parallel::Piece::Mark(parallel::Mark::End))?;
                self.open = false;
            }
        }
        Ok(())
    }
}

/// A stream that counts the bytes read from it.
struct Counted {
    inner: Box<dyn std::io::Read + Send>,
    count: Arc<AtomicU64>,
}

impl std::io::Read for Counted {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.count.fetch_add(read as u64, Ordering::Relaxed);
        Ok(read)
    }
}

/// Runs the decoder of `format` over one input into `rows`.
fn read_input(
    schema: &Value,
    input: Input<'_>,
    name: &str,
    format: &FileFormat,
    max_row_bytes: usize,
    threads: usize,
    rows: &mut FileRows<'_>,
) -> Result<(), ProcessError> {
    let (reader, size, path) = match (input, format) {
        (Input::File(file), FileFormat::Parquet) => {
            let (builder, size) = read::parquet::open(file, name)?;
            rows.stats.input_bytes = size;
            check_parquet_columns(schema, builder.schema())
                .map_err(|reason| not_in_schema(name, reason))?;
            let metadata = builder.metadata().clone();
            let output = &rows.pipeline.output;
            let plan = if output.reuse {
                reuse::plan(builder.parquet_schema(), &output.schema)
            } else {
                Vec::new()
            };
            // The input is opened again for the writer to copy pages from; without it,
            // every page is encoded.
            let copy_from = plan
                .iter()
                .any(Option::is_some)
                .then(|| std::fs::File::open(file).ok().map(Arc::new))
                .flatten();
            let reader =
                read::parquet::reader(builder, name, read::parquet::BATCH_ROWS, max_row_bytes)?;
            let reading = parallel::Reading {
                full_schema: schema,
                max_row_bytes,
                csv_paths: &[],
            };
            let decoded = parallel::decode_file(reading, rows, helpers(threads), |gather| {
                let mut groups = CopyGroups::new(metadata, &plan, copy_from);
                let mut row_number = 0;
                for batch in reader {
                    let batch =
                        batch.map_err(|err| read::parquet::undecodable_batch(name, &err))?;
                    let read = batch.num_rows() as u64;
                    groups.send(gather, batch, row_number)?;
                    row_number += read;
                }
                Ok(())
            });
            // A group left open by a failure part-way is encoded as usual.
            let ended = rows.pipeline.output.end_copy();
            return decoded.and(ended.map_err(ProcessError::from));
        }
        (Input::Stream(..), FileFormat::Parquet) => {
            return Err(ProcessError::Read {
                path: PathBuf::from(name),
                source: std::io::Error::other(
                    "a Parquet file is read from a local file, not a stream",
                ),
            });
        }
        // With a second thread, the file is read ahead of the decoder on a third: it costs
        // a few megabytes and takes the copies off the thread that sets the pace.
        (Input::File(file), _) if threads > 1 => {
            let (reader, size) = read::open_ahead(file)?;
            (reader, size, file.to_owned())
        }
        (Input::File(file), _) => {
            let (reader, size) = read::open(file)?;
            (reader, size, file.to_owned())
        }
        (Input::Stream(stream, size), _) if threads > 1 => {
            let path = PathBuf::from(name);
            (read::input_ahead(stream, &path)?, size, path)
        }
        (Input::Stream(stream, size), _) => (read::input(stream), size, PathBuf::from(name)),
    };
    rows.stats.input_bytes = size;
    let file = path.as_path();
    match format {
        FileFormat::Json { multi_line } => {
            if *multi_line {
                read::json::read_array(reader, file, name, max_row_bytes, rows)
            } else if threads > 2 {
                let reading = parallel::Reading {
                    full_schema: schema,
                    max_row_bytes,
                    csv_paths: &[],
                };
                parallel::decode_file(reading, rows, helpers(threads), |gather| {
                    read::json::read_lines(reader, file, name, max_row_bytes, gather)
                })
            } else {
                read::json::read_lines(reader, file, name, max_row_bytes, rows)
            }
        }
        FileFormat::Csv(options) => {
            let mut csv = CsvFile::open(reader, file, name, options, max_row_bytes)?;
            if !options.header {
                return Err(not_in_schema(
                    name,
                    "CSV files need a header row to map columns to fields (header is false)",
                ));
            }
            let paths = map_csv_header(schema, csv.header())
                .map_err(|reason| not_in_schema(name, reason))?;
            let reading = parallel::Reading {
                full_schema: schema,
                max_row_bytes,
                csv_paths: &paths,
            };
            parallel::decode_file(reading, rows, helpers(threads), |gather| {
                csv_pieces(&mut csv, &paths, gather)
            })
        }
        // Handled above, before the input was opened as a byte stream.
        FileFormat::Parquet => Ok(()),
    }
}

fn not_in_schema(name: &str, reason: impl Into<String>) -> ProcessError {
    ProcessError::File(FileError::NotInSchema {
        file: name.to_owned(),
        reason: reason.into(),
    })
}

/// Builds the nested row of one CSV record, taking the values out of `values`; null values
/// are left out.
fn csv_row(paths: &[Vec<String>], values: &mut [Option<String>]) -> Value {
    let mut root = Map::new();
    for (path, value) in paths.iter().zip(values.iter_mut()) {
        let Some(value) = value.take() else {
            continue;
        };
        let (last, parents) = path.split_last().expect("a header path has a segment");
        let mut object = &mut root;
        for segment in parents {
            object = object
                .entry(segment.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("header paths never make a field both a value and an object");
        }
        object.insert(last.clone(), Value::String(value));
    }
    Value::Object(root)
}

/// The sink of one file's rows.
struct FileRows<'p> {
    pipeline: &'p mut Pipeline,
    name: &'p str,
    source: Source,
    stats: FileStats,
}

impl RowSink for FileRows<'_> {
    fn row(&mut self, row: Value, original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        self.stats.input_records += 1;
        let pipeline = &mut *self.pipeline;
        match pipeline.validator.validate(row, self.source) {
            Ok(converted) => pipeline.accept(converted)?,
            Err(violations) => {
                self.stats.failed_records += 1;
                pipeline
                    .rejects
                    .invalid(original(), &violations, self.name)?;
            }
        }
        Ok(Flow::Continue)
    }

    fn corrupt(&mut self, raw: &[u8], message: String) -> Result<Flow, ProcessError> {
        self.stats.input_records += 1;
        self.stats.failed_records += 1;
        self.pipeline.rejects.corrupt(raw, message, self.name)?;
        Ok(Flow::Continue)
    }

    /// Parses the row onto a tape and walks it into the columns;
    /// only a row the walk does not accept becomes a `Value` for the validator.
    fn json_line(&mut self, text: &[u8], line_number: u64) -> Result<Flow, ProcessError> {
        let columns = &mut self.pipeline.output;
        match columns.builder.json_row(&self.pipeline.validator, text) {
            Ok(Offered::Accepted) => {
                self.stats.input_records += 1;
                self.pipeline.output_records += 1;
                columns.builder_bytes += text.len();
                columns.flush_if_full()?;
                Ok(Flow::Continue)
            }
            // The validator decides (and, for a bad row, reports) from a `Value`, and the
            // syntax error message is serde_json's for a `Value`, as before.
            Ok(Offered::Undecided) | Err(_) => read::json_line_as_value(self, text, line_number),
        }
    }
}

/// CSV records gathered for the column engine, with the corrupt ones in between.
struct CsvChunkState {
    columns: CsvColumns,
    events: Vec<CsvEvent>,
    /// The bytes of text and corrupt records held.
    held: usize,
}

/// Reads a CSV file into pieces for the decoding threads: text columns of about one output
/// record batch (at most [`CSV_CHUNK_BYTES`] of text) with the corrupt records between
/// them, and a record too large for text columns on its own, as a value.
fn csv_pieces(
    csv: &mut CsvFile,
    paths: &[Vec<String>],
    gather: &mut parallel::Gather<'_>,
) -> Result<(), ProcessError> {
    let mut chunk = CsvChunkState {
        columns: CsvColumns::new(paths),
        events: Vec::new(),
        held: 0,
    };
    let send = |chunk: &mut CsvChunkState, gather: &mut parallel::Gather<'_>| {
        chunk.held = 0;
        if chunk.events.is_empty() {
            return Ok(());
        }
        let rows = chunk.columns.rows();
        let held_events = chunk.events.len();
        let data = chunk.columns.finish().map_err(WriteError::Encode)?;
        gather.send(parallel::Piece::Csv {
            chunk: data,
            rows,
            events: std::mem::replace(&mut chunk.events, Vec::with_capacity(held_events)),
        })
    };
    loop {
        let wanted = gather.wanted_rows().max(CSV_CHUNK_MIN_ROWS);
        let next = match csv.next_text() {
            Ok(next) => next,
            Err(err) => {
                // Rows read before a file-level error stay counted and written.
                send(&mut chunk, gather)?;
                return Err(err);
            }
        };
        match next {
            Next::End => return send(&mut chunk, gather),
            Next::Values => {
                let text = csv.text();
                if text.bytes() > CSV_CHUNK_BYTES {
                    send(&mut chunk, gather)?;
                    let mut values: Vec<Option<String>> = text
                        .fields()
                        .map(|field| field.map(str::to_owned))
                        .collect();
                    gather.send(parallel::Piece::Row(csv_row(paths, &mut values)))?;
                    continue;
                }
                if chunk.held + text.bytes() > CSV_CHUNK_BYTES {
                    send(&mut chunk, gather)?;
                }
                chunk.held += text.bytes();
                chunk.columns.push(text.fields());
                chunk.events.push(CsvEvent::Row);
            }
            Next::Corrupt { raw, message } | Next::Oversized { raw, message } => {
                chunk.held += raw.len() + message.len();
                chunk.events.push(CsvEvent::Corrupt { raw, message });
                if chunk.held > CSV_CHUNK_BYTES {
                    send(&mut chunk, gather)?;
                }
            }
        }
        if chunk.columns.rows() >= wanted || chunk.events.len() >= CSV_CHUNK_MAX_EVENTS {
            send(&mut chunk, gather)?;
        }
    }
}

/// One record of a CSV chunk, in file order.
enum CsvEvent {
    /// The next row of the chunk's columns.
    Row,
    Corrupt {
        raw: Vec<u8>,
        message: String,
    },
}

/// The most text a CSV chunk holds before it is validated (a larger record goes the row
/// way on its own).
const CSV_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// The fewest records a CSV chunk gathers, however few rows the next record batch needs.
const CSV_CHUNK_MIN_ROWS: usize = 512;

/// The most records (corrupt ones included) a CSV chunk holds.
const CSV_CHUNK_MAX_EVENTS: usize = 2 * ENCODE_CHUNK_ROWS;

/// Returns the rows of a columnar check in input order: the rows it decided, and the
/// undecided rows the row validator `accepted` (built in `columns.builder` meanwhile, in
/// order); the other undecided rows are left out.
fn merge_checked(
    builder: &mut RowBuilder,
    schema: &SchemaRef,
    checked: Checked,
    accepted: &[bool],
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let rows = checked.undecided.len();
    let decided = checked
        .undecided
        .iter()
        .filter(|&&undecided| !undecided)
        .count();
    let arrays: Vec<ArrayRef> = if decided == rows {
        checked.columns
    } else if builder.rows() == 0 {
        let keep = BooleanArray::from(
            checked
                .undecided
                .iter()
                .map(|&undecided| !undecided)
                .collect::<Vec<_>>(),
        );
        checked
            .columns
            .iter()
            .map(|column| arrow_select::filter::filter(column.as_ref(), &keep))
            .collect::<Result<_, _>>()?
    } else {
        // Interleave the rows the row validator accepted, in input order.
        let extra = builder.finish()?;
        let mut next = 0;
        let mut picks = Vec::with_capacity(decided + extra.num_rows());
        for (index, &accepted) in accepted.iter().enumerate() {
            if !checked.undecided[index] {
                picks.push((0, index));
            } else if accepted {
                picks.push((1, next));
                next += 1;
            }
        }
        checked
            .columns
            .iter()
            .zip(extra.columns())
            .map(|(converted, extra)| {
                arrow_select::interleave::interleave(&[converted.as_ref(), extra.as_ref()], &picks)
            })
            .collect::<Result<_, _>>()?
    };
    RecordBatch::try_new(schema.clone(), arrays)
}

/// Which diagnostics file a rejected row belongs to (spec §7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RejectKind {
    Parsing,
    Conversion,
    Validation,
}

/// Rejected rows: always `failed/`, and with diagnostics the `meta/row_errors/` files and
/// the sample.
struct Rejects {
    failed: JsonLines,
    diagnostics: Option<Diagnostics>,
    error_counts: BTreeMap<String, u64>,
    failed_records: u64,
}

struct Diagnostics {
    parsing: JsonLines,
    conversion: JsonLines,
    validation: JsonLines,
    sample: JsonLines,
}

struct Rejected {
    failed: Vec<OutputFile>,
    meta: Vec<OutputFile>,
    error_counts: BTreeMap<String, u64>,
    failed_records: u64,
}

impl Rejects {
    fn new(out_dir: &Path, max_lines: u64, diagnostics: bool) -> Self {
        Self {
            failed: JsonLines::new(out_dir, |n| format!("failed/part-{n:05}.json"), max_lines),
            diagnostics: diagnostics.then(|| Diagnostics {
                parsing: JsonLines::new(
                    out_dir,
                    |n| format!("meta/row_errors/parsing_errors_{n}.json"),
                    max_lines,
                ),
                conversion: JsonLines::new(
                    out_dir,
                    |n| format!("meta/row_errors/conversion_errors_{n}.json"),
                    max_lines,
                ),
                validation: JsonLines::new(
                    out_dir,
                    |n| format!("meta/row_errors/validation_errors_{n}.json"),
                    max_lines,
                ),
                sample: JsonLines::new(
                    out_dir,
                    |_| "meta/row_errors_sample.json".to_owned(),
                    u64::MAX,
                ),
            }),
            error_counts: BTreeMap::new(),
            failed_records: 0,
        }
    }

    /// Records a row the decoder could not read.
    fn corrupt(&mut self, raw: &[u8], message: String, file: &str) -> Result<(), WriteError> {
        self.count([ViolationCode::Parse.code()]);
        let record = json!({
            "_corrupt_record": String::from_utf8_lossy(raw),
            "_errors": [{"code": PARSE_CODE_SHORT, "message": message}],
            "_filename": file,
        });
        self.write(RejectKind::Parsing, &record)
    }

    /// Records a row the validator refused; `row` is the row as read.
    fn invalid(
        &mut self,
        row: Value,
        violations: &[Violation],
        file: &str,
    ) -> Result<(), WriteError> {
        self.count(
            violations
                .iter()
                .map(|violation| violation.code.code())
                .collect::<BTreeSet<_>>(),
        );
        let has = |code| violations.iter().any(|violation| violation.code == code);
        let kind = if has(ViolationCode::Parse) || !row.is_object() {
            RejectKind::Parsing
        } else if has(ViolationCode::Conversion) {
            RejectKind::Conversion
        } else {
            RejectKind::Validation
        };
        let record = match (kind, row) {
            (RejectKind::Conversion, Value::Object(mut object)) => {
                let errors = violations
                    .iter()
                    .map(|violation| {
                        json!({
                            "column": column(&violation.pointer),
                            "code": violation.code.code(),
                            "message": violation.message,
                        })
                    })
                    .collect();
                object.insert("_errors".to_owned(), Value::Array(errors));
                object.insert("_filename".to_owned(), Value::from(file));
                Value::Object(object)
            }
            (RejectKind::Validation, Value::Object(mut object)) => {
                let errors = violations
                    .iter()
                    .map(|violation| {
                        json!({
                            "keyword": violation.keyword,
                            "message": violation.message,
                            "pointerToViolation": format!("#{}", violation.pointer),
                            "schemaLocation": violation.schema_location,
                            "causingExceptions": [],
                        })
                    })
                    .collect();
                object.insert("_validationErrors".to_owned(), Value::Array(errors));
                object.insert("_filename".to_owned(), Value::from(file));
                Value::Object(object)
            }
            (_, row) => {
                let errors: Vec<Value> = violations
                    .iter()
                    .map(
                        |violation| json!({"code": PARSE_CODE_SHORT, "message": violation.message}),
                    )
                    .collect();
                json!({
                    "_corrupt_record": row.to_string(),
                    "_errors": errors,
                    "_filename": file,
                })
            }
        };
        self.write(kind, &record)
    }

    fn count<'c>(&mut self, codes: impl IntoIterator<Item = &'c str>) {
        self.failed_records += 1;
        for code in codes {
            *self.error_counts.entry(code.to_owned()).or_default() += 1;
        }
    }

    fn write(&mut self, kind: RejectKind, record: &Value) -> Result<(), WriteError> {
        self.failed.append(record)?;
        if let Some(diagnostics) = &mut self.diagnostics {
            match kind {
                RejectKind::Parsing => diagnostics.parsing.append(record)?,
                RejectKind::Conversion => diagnostics.conversion.append(record)?,
                RejectKind::Validation => diagnostics.validation.append(record)?,
            }
            if diagnostics.sample.records() < SAMPLE_ROWS {
                diagnostics.sample.append(record)?;
            }
        }
        Ok(())
    }

    fn finish(self, out_dir: &Path) -> Result<Rejected, WriteError> {
        let mut failed = Vec::new();
        if self.failed_records > 0 {
            failed.push(write_marker(out_dir, "failed/_SUCCESS")?);
        }
        failed.extend(self.failed.finish()?);
        let mut meta = Vec::new();
        if let Some(diagnostics) = self.diagnostics {
            meta.extend(diagnostics.parsing.finish()?);
            meta.extend(diagnostics.conversion.finish()?);
            meta.extend(diagnostics.validation.finish()?);
            meta.extend(diagnostics.sample.finish()?);
        }
        Ok(Rejected {
            failed,
            meta,
            error_counts: self.error_counts,
            failed_records: self.failed_records,
        })
    }
}

/// Returns the dotted column path of a row pointer (`/a/b~1c` → `a.b/c`).
fn column(pointer: &str) -> String {
    pointer
        .split('/')
        .skip(1)
        .map(|segment| segment.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}
