//! The files a batch writes: Parquet parts of validated rows, and JSON Lines files of
//! rejected rows and diagnostics, each rolling over after a number of records.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnWriter, ArrowLeafColumn, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::{SerializedFileWriter, SerializedRowGroupWriter};
use parquet::schema::types::SchemaDescriptor;
use serde_json::Value;

use crate::error::WriteError;
use crate::reuse::CopyGroup;

mod own;

use own::{OwnLeaf, OwnPath, own_path};

/// One file written under the output directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// The path relative to the output directory, `/`-separated (`part-00001.parquet`,
    /// `failed/part-00001.json`, `meta/row_errors/validation_errors_1.json`).
    pub relative_path: String,
    /// Rows (Parquet) or JSON lines in the file; 0 for markers.
    pub records: u64,
    /// The file size.
    pub bytes: u64,
}

const WRITE_BUFFER: usize = 256 * 1024;

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Creates `relative_path` under `root` (and its directory) for buffered writing.
fn create(root: &Path, relative_path: &str) -> Result<(PathBuf, BufWriter<File>), WriteError> {
    let path = root.join(relative_path);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_error(parent))?;
    }
    let file = File::create(&path).map_err(io_error(&path))?;
    Ok((path, BufWriter::with_capacity(WRITE_BUFFER, file)))
}

/// Creates an empty marker file (`failed/_SUCCESS`).
pub(crate) fn write_marker(root: &Path, relative_path: &str) -> Result<OutputFile, WriteError> {
    let (path, mut writer) = create(root, relative_path)?;
    writer.flush().map_err(io_error(&path))?;
    Ok(OutputFile {
        relative_path: relative_path.to_owned(),
        records: 0,
        bytes: 0,
    })
}

/// JSON Lines files `name(1)`, `name(2)`, … that roll over after `max_records` lines; the
/// first is created with the first line.
pub(crate) struct JsonLines {
    root: PathBuf,
    name: fn(u64) -> String,
    max_records: u64,
    current: Option<OpenJsonLines>,
    done: Vec<OutputFile>,
    records: u64,
    line: Vec<u8>,
}

struct OpenJsonLines {
    path: PathBuf,
    writer: BufWriter<File>,
    file: OutputFile,
}

impl JsonLines {
    pub(crate) fn new(root: &Path, name: fn(u64) -> String, max_records: u64) -> Self {
        Self {
            root: root.to_owned(),
            name,
            max_records: max_records.max(1),
            current: None,
            done: Vec::new(),
            records: 0,
            line: Vec::new(),
        }
    }

    /// Returns how many lines were appended in all.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Appends one compact JSON line.
    pub(crate) fn append(&mut self, value: &Value) -> Result<(), WriteError> {
        if self
            .current
            .as_ref()
            .is_some_and(|open| open.file.records >= self.max_records)
        {
            self.close_current()?;
        }
        let open = match &mut self.current {
            Some(open) => open,
            None => {
                let relative_path = (self.name)(self.done.len() as u64 + 1);
                let (path, writer) = create(&self.root, &relative_path)?;
                self.current.insert(OpenJsonLines {
                    path,
                    writer,
                    file: OutputFile {
                        relative_path,
                        records: 0,
                        bytes: 0,
                    },
                })
            }
        };
        self.line.clear();
        serde_json::to_writer(&mut self.line, value).expect("a JSON value serialises");
        self.line.push(b'\n');
        open.writer
            .write_all(&self.line)
            .map_err(io_error(&open.path))?;
        open.file.records += 1;
        open.file.bytes += self.line.len() as u64;
        self.records += 1;
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), WriteError> {
        if let Some(mut open) = self.current.take() {
            open.writer.flush().map_err(io_error(&open.path))?;
            self.done.push(open.file);
        }
        Ok(())
    }

    /// Flushes and returns the files written, in order.
    pub(crate) fn finish(mut self) -> Result<Vec<OutputFile>, WriteError> {
        self.close_current()?;
        Ok(self.done)
    }
}

/// The largest dictionary a column chunk builds before it writes its values plain. Parquet's
/// default (1 MiB) lets a column of unique values (ids, e-mails) hash and intern nearly a
/// whole row group before it gives up; at 64 KiB such a column gives up early, while columns
/// of few distinct values (types, codes, tiers) stay dictionary-encoded.
pub(crate) const DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

/// The size at which a column's data page is closed. Parquet's default (1 MiB) makes each
/// page's buffers, and the buffer its compressed bytes go to, large allocations that the
/// allocator hands back to the system once freed (the server purges at once, to keep its
/// peak memory low), so every page touched fresh memory: at 128 KiB they are reused, the
/// server takes about a third fewer page faults per batch (63,000 → 41,000 for the 228 MB
/// JSON Lines file), and the files are the same size to 0.1%.
pub(crate) const DATA_PAGE_BYTES: usize = 128 * 1024;

/// The encoded bytes a row group holds before it is cut, whatever its rows: the column
/// writers keep a row group's pages in memory until it is written, so wide rows (up to the
/// 1 MB row limit) would otherwise make a row group of 131,072 rows gigabytes.
const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// Parquet part files `part-00001.parquet`, … of at most `rows_per_part` rows each, written
/// as Snappy-compressed row groups of at most `rows_per_row_group` rows. With
/// `encode_threads` 2, the columns of each record batch are encoded on two threads (the
/// caller's and a helper), split by what each column cost to encode so far; the bytes
/// written are those of one thread (each column chunk is encoded by one writer, in order).
pub(crate) struct ParquetParts {
    root: PathBuf,
    schema: SchemaRef,
    properties: WriterProperties,
    rows_per_row_group: usize,
    rows_per_part: usize,
    encode_threads: usize,
    /// Nanoseconds each leaf column took to encode so far, to balance the threads.
    costs: Vec<u64>,
    /// The bytes at which a row group is cut ([`ROW_GROUP_BYTES`]).
    row_group_bytes: usize,
    /// With `encode_threads` 2, the second encoding thread, started at the first batch.
    helper: Option<Helper>,
    current: Option<OpenPart>,
    /// The input row group being copied, if any.
    copying: Option<Copying>,
    done: Vec<OutputFile>,
}

/// A row group whose planned leaves are copied from an input row group.
struct Copying {
    group: CopyGroup,
    /// Rows written into the group.
    received: usize,
}

struct OpenPart {
    path: PathBuf,
    relative_path: String,
    writer: SerializedFileWriter<BufWriter<File>>,
    factory: ArrowRowGroupWriterFactory,
    /// Which leaves Lakeport encodes itself (see [`own`]).
    plan: LeafPlan,
    /// The column writers of the row group being written, and its rows so far.
    group: Option<(Vec<LeafWriter>, usize)>,
    row_groups: usize,
    rows: usize,
}

impl ParquetParts {
    pub(crate) fn new(
        root: &Path,
        schema: SchemaRef,
        rows_per_row_group: usize,
        rows_per_part: usize,
        encode_threads: usize,
    ) -> Self {
        let properties = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(rows_per_row_group))
            .set_created_by(format!("lakeport {}", env!("CARGO_PKG_VERSION")))
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .set_data_page_size_limit(DATA_PAGE_BYTES)
            // Statistics per column chunk, and no page index: a row group may hold chunks
            // copied from an input (see `reuse.rs`), whose pages Lakeport has no index of.
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true)
            .build();
        Self {
            root: root.to_owned(),
            schema,
            properties,
            rows_per_row_group: rows_per_row_group.max(1),
            row_group_bytes: ROW_GROUP_BYTES,
            rows_per_part,
            encode_threads,
            costs: Vec::new(),
            helper: None,
            current: None,
            copying: None,
            done: Vec::new(),
        }
    }

    /// Returns how many more rows the current part takes (a whole part when none is open).
    pub(crate) fn room(&self) -> usize {
        self.rows_per_part - self.current.as_ref().map_or(0, |open| open.rows)
    }

    /// Opens the next part when none is open.
    fn open_part(&mut self) -> Result<&mut OpenPart, WriteError> {
        if self.current.is_none() {
            let relative_path = format!("part-{:05}.parquet", self.done.len() + 1);
            let (path, writer) = create(&self.root, &relative_path)?;
            // The writer ArrowWriter would use (the Arrow schema in the footer), driven
            // column by column.
            let (writer, factory) =
                ArrowWriter::try_new(writer, self.schema.clone(), Some(self.properties.clone()))
                    .and_then(ArrowWriter::into_serialized_writer)
                    .map_err(|source| WriteError::Parquet {
                        path: path.clone(),
                        source,
                    })?;
            let plan = LeafPlan::new(&self.schema, writer.schema_descr());
            self.current = Some(OpenPart {
                path,
                relative_path,
                writer,
                factory,
                plan,
                group: None,
                row_groups: 0,
                rows: 0,
            });
        }
        Ok(self.current.as_mut().expect("a part is open"))
    }

    /// Writes a batch of at most [`room`](Self::room) rows, closing the part when it is full.
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        debug_assert!(batch.num_rows() <= self.room(), "batch overflows the part");
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.copying.is_some() {
            return self.write_copying(batch);
        }
        let (rows_per_row_group, row_group_bytes) = (self.rows_per_row_group, self.row_group_bytes);
        let (threads, schema) = (self.encode_threads, self.schema.clone());
        let mut costs = std::mem::take(&mut self.costs);
        let mut helper = self.helper.take();
        let open = self.open_part()?;
        // Row groups are cut at `rows_per_row_group` rows, as ArrowWriter cuts them, or
        // after the record batch that brings their encoded bytes to `row_group_bytes`.
        let mut offset = 0;
        let written = (|| {
            while offset < batch.num_rows() {
                let (writers, rows, plan) = open.group_writers(None)?;
                let take = (rows_per_row_group - *rows).min(batch.num_rows() - offset);
                let sharing = Sharing {
                    threads,
                    costs: &mut costs,
                    helper: &mut helper,
                };
                encode(
                    writers,
                    plan,
                    &schema,
                    &batch.slice(offset, take),
                    sharing,
                    None,
                )?;
                *rows += take;
                offset += take;
                let full = *rows >= rows_per_row_group
                    || writers.iter().map(LeafWriter::memory_size).sum::<usize>()
                        >= row_group_bytes;
                if full {
                    open.flush_group()?;
                }
            }
            Ok(())
        })();
        let path = open.path.clone();
        open.rows += batch.num_rows();
        let full = open.rows >= self.rows_per_part;
        self.costs = costs;
        self.helper = helper;
        written.map_err(|source| WriteError::Parquet { path, source })?;
        if full {
            self.close_current()?;
        }
        Ok(())
    }

    /// Starts a row group that copies the input chunks of `group` where its rows all pass
    /// (see [`crate::reuse`]). The open row group is closed first; a group larger than the
    /// room left in the part is encoded as usual, so that parts end where they would.
    pub(crate) fn begin_copy(&mut self, group: CopyGroup) -> Result<(), WriteError> {
        self.end_copy(0, &[])?;
        if group.rows == 0 || group.rows > self.room() {
            return Ok(());
        }
        if let Some(open) = &mut self.current {
            open.flush_group().map_err(|source| WriteError::Parquet {
                path: open.path.clone(),
                source,
            })?;
        }
        self.copying = Some(Copying { group, received: 0 });
        Ok(())
    }

    /// Rows of a group being copied: only the leaves not copied are encoded now.
    fn write_copying(&mut self, batch: &RecordBatch) -> Result<(), WriteError> {
        let (threads, schema) = (self.encode_threads, self.schema.clone());
        let mut costs = std::mem::take(&mut self.costs);
        let mut helper = self.helper.take();
        let encoded: Vec<bool> = self
            .copying
            .as_ref()
            .map(|copying| copying.group.leaves.iter().map(Option::is_none).collect())
            .unwrap_or_default();
        let result = (|| {
            let open = self.open_part()?;
            let path = open.path.clone();
            let rows = open
                .group_writers(Some(&encoded))
                .and_then(|(writers, rows, plan)| {
                    let sharing = Sharing {
                        threads,
                        costs: &mut costs,
                        helper: &mut helper,
                    };
                    encode(writers, plan, &schema, batch, sharing, Some(&encoded))?;
                    Ok(rows)
                })
                .map_err(|source| WriteError::Parquet { path, source })?;
            *rows += batch.num_rows();
            open.rows += batch.num_rows();
            Ok(())
        })();
        self.costs = costs;
        self.helper = helper;
        if let Some(copying) = &mut self.copying {
            copying.received += batch.num_rows();
        }
        result
    }

    /// Ends the group [`begin_copy`](Self::begin_copy) started, of which the first `covered`
    /// rows were read, `rejected` (offsets in the group, ascending) rejected. When every row
    /// of the input group arrived, the row group copies the input's chunks for the planned
    /// leaves; otherwise those leaves of the rows that arrived are read again from the input
    /// and encoded.
    pub(crate) fn end_copy(
        &mut self,
        covered: usize,
        rejected: &[usize],
    ) -> Result<(), WriteError> {
        let Some(copying) = self.copying.take() else {
            return Ok(());
        };
        let rows_per_part = self.rows_per_part;
        let Some(open) = &mut self.current else {
            return Ok(());
        };
        let path = open.path.clone();
        let ended = (|| {
            let Some((mut writers, rows)) = open.group.take() else {
                return Ok(());
            };
            if copying.received == copying.group.rows {
                return open.copy_group(writers, &copying.group);
            }
            if covered.saturating_sub(rejected.len()) != copying.received {
                return Err(parquet::errors::ParquetError::General(format!(
                    "{} rows of an input row group arrived, but {covered} were read and {} \
                     rejected",
                    copying.received,
                    rejected.len()
                )));
            }
            copying
                .group
                .encode_from_input(&mut writers, covered, rejected)?;
            open.group = Some((writers, rows));
            open.flush_group()
        })();
        ended.map_err(|source| WriteError::Parquet { path, source })?;
        if open.rows >= rows_per_part {
            self.close_current()?;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<(), WriteError> {
        let Some(mut open) = self.current.take() else {
            return Ok(());
        };
        let path = open.path.clone();
        let parquet_error = |source| WriteError::Parquet {
            path: path.clone(),
            source,
        };
        open.flush_group().map_err(parquet_error)?;
        let buffered = open.writer.into_inner().map_err(parquet_error)?;
        let file = buffered
            .into_inner()
            .map_err(|err| io_error(&open.path)(err.into_error()))?;
        let bytes = file.metadata().map_err(io_error(&open.path))?.len();
        self.done.push(OutputFile {
            relative_path: open.relative_path,
            records: open.rows as u64,
            bytes,
        });
        Ok(())
    }

    /// Closes the open part and returns the parts written, in order.
    pub(crate) fn finish(mut self) -> Result<Vec<OutputFile>, WriteError> {
        self.end_copy(0, &[])?;
        self.close_current()?;
        Ok(self.done)
    }
}

impl OpenPart {
    /// The column writers of the open row group (opened when there is none), its rows, and
    /// the plan of its leaves. When a group is opened to copy input chunks, the leaves
    /// `encoded` does not mark are the copied ones: they keep the crate's writer, which the
    /// input is encoded into again when not every row of the group arrives.
    fn group_writers(
        &mut self,
        encoded: Option<&[bool]>,
    ) -> Result<(&mut Vec<LeafWriter>, &mut usize, &LeafPlan), parquet::errors::ParquetError> {
        if self.group.is_none() {
            let schema = self.writer.schema_descr();
            let writers = self
                .factory
                .create_column_writers(self.row_groups)?
                .into_iter()
                .enumerate()
                .map(|(leaf, writer)| {
                    let copied =
                        encoded.is_some_and(|encoded| !encoded.get(leaf).copied().unwrap_or(true));
                    match self.plan.own.get(leaf).cloned().flatten() {
                        Some(path) if !copied => {
                            LeafWriter::Own(Box::new(OwnLeaf::new(schema.column(leaf), path)))
                        }
                        _ => LeafWriter::Arrow(Box::new(writer)),
                    }
                })
                .collect();
            self.group = Some((writers, 0));
        }
        let (writers, rows) = self.group.as_mut().expect("a row group is open");
        Ok((writers, rows, &self.plan))
    }

    /// Appends a row group whose leaves are copied from `group` where it plans so, and
    /// closed from `writers` elsewhere.
    fn copy_group(
        &mut self,
        writers: Vec<LeafWriter>,
        group: &CopyGroup,
    ) -> Result<(), parquet::errors::ParquetError> {
        let schema = self.writer.schema_descr().clone();
        let mut row_group = self.writer.next_row_group()?;
        for (leaf, writer) in writers.into_iter().enumerate() {
            match group.leaves.get(leaf).copied().flatten() {
                Some(input) => {
                    let close = group.close_result(input, schema.column(leaf))?;
                    row_group.append_column(&*group.file, close)?;
                }
                None => writer.append_to(&mut row_group)?,
            }
        }
        row_group.close()?;
        self.row_groups += 1;
        Ok(())
    }

    /// Closes the row group being written and appends it to the file.
    fn flush_group(&mut self) -> Result<(), parquet::errors::ParquetError> {
        let Some((writers, _)) = self.group.take() else {
            return Ok(());
        };
        let mut row_group = self.writer.next_row_group()?;
        for writer in writers {
            writer.append_to(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        Ok(())
    }
}

/// How a record batch's leaves are shared between the encoding threads.
struct Sharing<'a> {
    threads: usize,
    /// Nanoseconds each leaf took to encode so far (updated).
    costs: &'a mut Vec<u64>,
    /// The second thread, started on first use.
    helper: &'a mut Option<Helper>,
}

/// A leaf's column writer with its values, on its way to the helper, by leaf index.
type Task = (usize, LeafWriter, LeafValues);

/// The writers the helper was given, each with the nanoseconds it took, and its first error.
type Done = (
    Vec<(usize, LeafWriter, u64)>,
    Option<parquet::errors::ParquetError>,
);

/// The second encoding thread, kept for the whole batch: each record batch hands it the
/// column writers of its share of the leaves, and it hands every one of them back (after a
/// failure too, so that the row group keeps all its writers). Starting a thread per record
/// batch instead had cost a fresh allocator heap, and its page faults, each time.
struct Helper {
    work: Option<std::sync::mpsc::SyncSender<Vec<Task>>>,
    done: std::sync::mpsc::Receiver<Done>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Helper {
    /// Starts the thread; `None` when the system refuses one.
    fn start() -> Option<Self> {
        let (work, tasks) = std::sync::mpsc::sync_channel::<Vec<Task>>(1);
        let (finished, done) = std::sync::mpsc::sync_channel::<Done>(1);
        let thread = std::thread::Builder::new()
            .name("lakeport-encode".to_owned())
            .spawn(move || {
                for tasks in tasks {
                    if finished.send(encode_tasks(tasks)).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Self {
            work: Some(work),
            done,
            thread: Some(thread),
        })
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.work = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Encodes each task's leaf into its writer, in order, until one fails; returns them all.
fn encode_tasks(tasks: Vec<Task>) -> Done {
    let mut error = None;
    let mut encoded = Vec::with_capacity(tasks.len());
    for (index, mut writer, leaf) in tasks {
        let mut nanos = 0;
        if error.is_none() {
            let started = std::time::Instant::now();
            let written =
                catch_unwind(AssertUnwindSafe(|| writer.write(&leaf))).unwrap_or_else(|_| {
                    Err(parquet::errors::ParquetError::General(
                        "a Parquet encoding thread panicked".to_owned(),
                    ))
                });
            nanos = started.elapsed().as_nanos() as u64;
            error = written.err();
        }
        encoded.push((index, writer, nanos));
    }
    (encoded, error)
}

/// Encodes one record batch into the column writers of a row group (one per leaf column,
/// in order), on the caller's thread or, with two threads, split between it and the helper
/// by the leaves' encoding cost so far.
fn encode(
    writers: &mut Vec<LeafWriter>,
    plan: &LeafPlan,
    schema: &SchemaRef,
    batch: &RecordBatch,
    sharing: Sharing<'_>,
    only: Option<&[bool]>,
) -> Result<(), parquet::errors::ParquetError> {
    // The crate's leaves of the columns with a leaf its writer encodes; the batch itself for
    // the leaves Lakeport encodes.
    let mut leaves = Vec::with_capacity(writers.len());
    let mut first = 0;
    for ((field, column), &count) in schema
        .fields()
        .iter()
        .zip(batch.columns())
        .zip(&plan.field_leaves)
    {
        let own = (first..first + count)
            .all(|leaf| matches!(writers.get(leaf), Some(LeafWriter::Own(_))));
        if own {
            leaves.extend((0..count).map(|_| LeafValues::Batch(batch.clone())));
        } else {
            for (leaf, values) in (first..).zip(compute_leaves(field, column)?) {
                leaves.push(match writers.get(leaf) {
                    Some(LeafWriter::Own(_)) => LeafValues::Batch(batch.clone()),
                    _ => LeafValues::Arrow(values),
                });
            }
        }
        first += count;
    }
    let wanted = |index: usize| only.is_none_or(|only| only.get(index).copied().unwrap_or(true));
    if sharing.threads >= 2 && writers.len() >= 2 && sharing.helper.is_none() {
        *sharing.helper = Helper::start();
    }
    let (Some(helper), true) = (sharing.helper.as_mut(), writers.len() >= 2) else {
        // One thread, or none to spare: the caller encodes it all.
        for (index, (writer, leaf)) in writers.iter_mut().zip(&leaves).enumerate() {
            if wanted(index) {
                writer.write(leaf)?;
            }
        }
        return Ok(());
    };
    let costs = sharing.costs;
    costs.resize(writers.len(), 0);
    // The costliest leaves first, each to the thread with less work so far.
    let mut order: Vec<usize> = (0..writers.len()).collect();
    order.sort_by_key(|&index| std::cmp::Reverse(costs[index]));
    let mut mine = vec![false; writers.len()];
    let (mut here, mut there) = (0u64, 0u64);
    for (rank, &index) in order.iter().filter(|&&index| wanted(index)).enumerate() {
        // Before any cost is known, alternate.
        if here < there || (here == there && rank % 2 == 0) {
            mine[index] = true;
            here += costs[index];
        } else {
            there += costs[index];
        }
    }
    let mut slots: Vec<Option<LeafWriter>> = writers.drain(..).map(Some).collect();
    let mut local = Vec::new();
    let mut theirs = Vec::new();
    for (index, leaf) in leaves.into_iter().enumerate() {
        if !wanted(index) {
            continue;
        }
        if mine[index] {
            local.push((index, leaf));
        } else if let Some(writer) = slots[index].take() {
            theirs.push((index, writer, leaf));
        }
    }
    // A helper that stopped gives its share back: the caller encodes it.
    let sent = match helper.work.as_ref().map(|work| work.send(theirs)) {
        Some(Ok(())) => true,
        Some(Err(std::sync::mpsc::SendError(returned))) => {
            local.extend(returned.into_iter().map(|(index, writer, leaf)| {
                slots[index] = Some(writer);
                (index, leaf)
            }));
            false
        }
        None => false,
    };
    let mut result = Ok(());
    let mut spent = Vec::with_capacity(slots.len());
    for (index, leaf) in &local {
        let Some(writer) = slots[*index].as_mut() else {
            continue;
        };
        let started = std::time::Instant::now();
        result = writer.write(leaf);
        if result.is_err() {
            break;
        }
        spent.push((*index, started.elapsed().as_nanos() as u64));
    }
    if sent {
        match helper.done.recv() {
            Ok((encoded, error)) => {
                for (index, writer, nanos) in encoded {
                    slots[index] = Some(writer);
                    spent.push((index, nanos));
                }
                if let Some(error) = error {
                    result = result.and(Err(error));
                }
            }
            Err(_) => {
                result = result.and(Err(parquet::errors::ParquetError::General(
                    "the Parquet encoding thread stopped".to_owned(),
                )));
            }
        }
    }
    // Every writer is back unless the helper was lost, and then the batch has failed.
    if slots.iter().all(Option::is_some) {
        writers.extend(slots.into_iter().flatten());
    }
    for (index, nanos) in spent {
        costs[index] = costs[index] / 2 + nanos;
    }
    result
}

/// Record batches that may wait for the writing thread before the decoding side blocks: two
/// batches of up to 4096 rows, so that decoding goes on while one is encoded.
const BATCH_QUEUE: usize = 2;

/// Parquet encoding and writing on a thread of their own, fed with record batches built by
/// the decoding side (the column engine): the caller decodes, validates and builds columns
/// while this stage encodes earlier batches. Batches keep their order; memory stays bounded
/// by a queue of two batches.
pub(crate) struct BatchStage {
    /// With one thread in all, the parts written on the caller's thread instead.
    inline: Option<ParquetParts>,
    sender: Option<std::sync::mpsc::SyncSender<Message>>,
    thread: Option<std::thread::JoinHandle<Result<Vec<OutputFile>, WriteError>>>,
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What the writing stage is handed, in order.
enum Message {
    Batch(RecordBatch),
    /// The rows up to [`Message::EndCopy`] are those of an input row group that may be
    /// copied (see [`crate::reuse`]).
    BeginCopy(CopyGroup),
    /// The rows of the group read, and the offsets in it of those rejected.
    EndCopy {
        covered: usize,
        rejected: Vec<usize>,
    },
}

/// Applies one message to the parts.
fn apply(parts: &mut ParquetParts, message: Message) -> Result<(), WriteError> {
    match message {
        Message::Batch(batch) => write_batch(parts, &batch),
        Message::BeginCopy(group) => parts.begin_copy(group),
        Message::EndCopy { covered, rejected } => parts.end_copy(covered, &rejected),
    }
}

/// Writes one record batch into the parts, split where a part ends.
fn write_batch(parts: &mut ParquetParts, batch: &RecordBatch) -> Result<(), WriteError> {
    // The sender sizes batches to the room in the part; split defensively.
    let mut offset = 0;
    while offset < batch.num_rows() {
        let rows = (batch.num_rows() - offset).min(parts.room());
        parts.write(&batch.slice(offset, rows))?;
        offset += rows;
    }
    Ok(())
}

impl BatchStage {
    /// Starts the writing thread, or with `threaded` false writes on the caller's thread.
    pub(crate) fn start(mut parts: ParquetParts, threaded: bool) -> Result<Self, WriteError> {
        let abandoned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !threaded {
            return Ok(Self {
                inline: Some(parts),
                sender: None,
                thread: None,
                abandoned,
            });
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel::<Message>(BATCH_QUEUE);
        let stop = std::sync::Arc::clone(&abandoned);
        let thread = std::thread::Builder::new()
            .name("lakeport-parquet".to_owned())
            .spawn(move || {
                let stopped = || stop.load(std::sync::atomic::Ordering::Relaxed);
                for message in receiver {
                    if stopped() {
                        return Ok(Vec::new());
                    }
                    apply(&mut parts, message)?;
                }
                if stopped() {
                    return Ok(Vec::new());
                }
                parts.finish()
            })
            .map_err(|err| WriteError::Thread(format!("cannot start: {err}")))?;
        Ok(Self {
            inline: None,
            sender: Some(sender),
            thread: Some(thread),
            abandoned,
        })
    }

    /// Queues one record batch (or writes it, on one thread).
    ///
    /// # Errors
    /// The writing thread's failure, reported at the first batch after it stopped.
    pub(crate) fn push(&mut self, batch: RecordBatch) -> Result<(), WriteError> {
        self.send(Message::Batch(batch))
    }

    /// Marks the start of the rows of an input row group whose pages may be copied.
    pub(crate) fn begin_copy(&mut self, group: CopyGroup) -> Result<(), WriteError> {
        self.send(Message::BeginCopy(group))
    }

    /// Marks the end of the rows [`begin_copy`](Self::begin_copy) started: `covered` rows
    /// of the group were read, those at offsets `rejected` rejected.
    pub(crate) fn end_copy(
        &mut self,
        covered: usize,
        rejected: Vec<usize>,
    ) -> Result<(), WriteError> {
        self.send(Message::EndCopy { covered, rejected })
    }

    fn send(&mut self, message: Message) -> Result<(), WriteError> {
        if let Some(parts) = &mut self.inline {
            let applied = apply(parts, message);
            if applied.is_err() {
                // The parts are incomplete: nothing more is written, and `finish` fails.
                self.inline = None;
            }
            return applied;
        }
        let sent = self
            .sender
            .as_ref()
            .is_some_and(|sender| sender.send(message).is_ok());
        if sent {
            return Ok(());
        }
        self.sender = None;
        match self.join() {
            Err(err) => Err(err),
            Ok(_) => Err(WriteError::Thread(
                "stopped before the last batch".to_owned(),
            )),
        }
    }

    fn join(&mut self) -> Result<Vec<OutputFile>, WriteError> {
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(WriteError::Thread("panicked".to_owned()))),
            None => Err(WriteError::Thread("already stopped".to_owned())),
        }
    }

    /// Closes the parts and returns them, in order.
    ///
    /// # Errors
    /// The writing thread's failure.
    pub(crate) fn finish(mut self) -> Result<Vec<OutputFile>, WriteError> {
        if let Some(parts) = self.inline.take() {
            return parts.finish();
        }
        self.sender = None;
        self.join()
    }
}

impl Drop for BatchStage {
    /// An unfinished stage stops its thread and waits for it, so that nothing writes into
    /// the output directory once the caller has moved on.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.abandoned
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.sender = None;
            let _ = self.join();
        }
    }
}

/// Which leaves of a part Lakeport encodes itself, and how many leaves each column has.
pub(crate) struct LeafPlan {
    /// By leaf: the path of a leaf Lakeport encodes ([`own`]), `None` for the crate's.
    own: Vec<Option<OwnPath>>,
    /// By column of the batch: its leaves, in order.
    field_leaves: Vec<usize>,
}

impl LeafPlan {
    fn new(schema: &arrow_schema::Schema, descriptor: &SchemaDescriptor) -> Self {
        let own = (0..descriptor.num_columns())
            .map(|leaf| own_path(schema, descriptor.column(leaf).as_ref()))
            .collect();
        let field_leaves = schema
            .fields()
            .iter()
            .map(|field| {
                (0..descriptor.num_columns())
                    .filter(|&leaf| {
                        descriptor.column(leaf).path().parts().first() == Some(field.name())
                    })
                    .count()
            })
            .collect();
        Self { own, field_leaves }
    }
}

/// A leaf's column writer for one row group: the crate's, or Lakeport's for the leaves of
/// texts, integers, dates, timestamps and doubles under structs, or the elements of a list
/// or a map of them (see [`own`]).
pub(crate) enum LeafWriter {
    Arrow(Box<ArrowColumnWriter>),
    Own(Box<OwnLeaf>),
}

/// What a leaf's writer is given of a record batch: the crate's leaf, or the batch itself.
pub(crate) enum LeafValues {
    Arrow(ArrowLeafColumn),
    Batch(RecordBatch),
}

impl LeafWriter {
    pub(crate) fn write(&mut self, values: &LeafValues) -> Result<(), ParquetError> {
        match (self, values) {
            (Self::Arrow(writer), LeafValues::Arrow(leaf)) => writer.write(leaf),
            (Self::Own(writer), LeafValues::Batch(batch)) => writer.write(batch),
            _ => Err(ParquetError::General(
                "a leaf's values do not match its writer".to_owned(),
            )),
        }
    }

    /// Writes the crate's leaf: only the crate's writers take one.
    pub(crate) fn write_leaf(&mut self, leaf: &ArrowLeafColumn) -> Result<(), ParquetError> {
        match self {
            Self::Arrow(writer) => writer.write(leaf),
            Self::Own(_) => Err(ParquetError::General(
                "a copied leaf has no writer of the crate".to_owned(),
            )),
        }
    }

    fn memory_size(&self) -> usize {
        match self {
            Self::Arrow(writer) => writer.memory_size(),
            Self::Own(writer) => writer.memory_size(),
        }
    }

    /// Closes the chunk and appends it to `row_group`.
    fn append_to<W: Write + Send>(
        self,
        row_group: &mut SerializedRowGroupWriter<'_, W>,
    ) -> Result<(), ParquetError> {
        match self {
            Self::Arrow(writer) => writer.close()?.append_to_row_group(row_group),
            Self::Own(writer) => {
                let (bytes, close) = writer.close()?;
                row_group.append_column(&bytes, close)
            }
        }
    }
}

#[cfg(test)]
mod tests;
