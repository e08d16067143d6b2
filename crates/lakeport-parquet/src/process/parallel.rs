//! Files read in pieces (issue 16): the caller's thread reads the file and cuts it into
//! pieces in file order — chunks of whole JSON lines, Parquet record batches, or CSV records
//! gathered into text columns. Each piece is validated and converted into Arrow columns
//! with the rejected rows set aside, then merged in file order. Without decoding threads
//! (`batch_threads` 1 or 2) a piece is decoded on the caller's thread as it comes; with
//! them, each decoding thread fills columns of its own and the caller merges their
//! results in order. The Parquet parts and the diagnostics are the same either way: accepted
//! rows reach the output in file order (cut into the same record batches), and rejected
//! rows reach the rejects in file order. When the file turns out to be bad part-way, the
//! pieces before the failure are merged first.
//!
//! Memory stays bounded: at most two pieces per thread are in flight (a chunk of lines is at
//! most one output record batch of lines or about [`CHUNK_BYTES`] of text, a longer row
//! being a corrupt row of at most the row limit; a record batch or a CSV chunk is what one
//! thread holds at a time), and their results wait for the merge in order. A chunk of lines
//! comes back emptied and is filled again, so the chunks kept never outnumber those that
//! were in flight at once.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Mutex, PoisonError};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use lakeport_domain::xdm::validate::{Source, Validator, Violation};
use serde_json::Value;

use super::{ColumnOutput, CsvEvent, FileRows, FileStats, Pipeline, Rejects, csv_row};
use crate::arrow_value::{dates_from_timestamps, without_dictionaries};
use crate::direct::{CsvChunk, Offered, RowBuilder, check_batch};
use crate::error::{ProcessError, WriteError};
use crate::read::{self, Flow, RowSink};
use crate::reuse::CopyGroup;

/// Text a chunk holds before it is sent (a chunk ends at the first line past it).
const CHUNK_BYTES: usize = 2 << 20;

/// What the pieces of a file need to be read as one thread reads them.
pub(super) struct Reading<'a> {
    /// The resolved schema (Parquet timestamps that the schema declares as dates).
    pub(super) full_schema: &'a Value,
    pub(super) max_row_bytes: usize,
    /// The field path of each CSV header column (empty for other formats).
    pub(super) csv_paths: &'a [Vec<String>],
}

/// What the decoding threads share.
struct Context<'a> {
    validator: &'a Validator,
    schema: SchemaRef,
    /// The file's name in the batch, for file-level errors.
    name: &'a str,
    reading: Reading<'a>,
}

/// Decodes one file into the column output of `rows`: `feed` reads the file on the
/// caller's thread and hands its pieces to the [`Gather`]. With `helpers` 0 each piece is
/// decoded on the caller's thread as it comes; otherwise on that many decoding threads.
///
/// # Errors
/// The first error in file order: a piece's, or the reader's once the pieces before it are
/// merged; [`WriteError::Thread`] when a decoding thread fails.
pub(super) fn decode_file(
    reading: Reading<'_>,
    rows: &mut FileRows<'_>,
    helpers: usize,
    feed: impl FnOnce(&mut Gather<'_>) -> Result<(), ProcessError>,
) -> Result<(), ProcessError> {
    let name = rows.name;
    let Pipeline {
        validator,
        output: columns,
        rejects,
        output_records,
    } = &mut *rows.pipeline;
    let context = &Context {
        validator,
        schema: columns.schema.clone(),
        name,
        reading,
    };
    let chunk_lines = columns.chunk_rows;
    let merge = Merge {
        columns,
        rejects,
        output_records,
        stats: &mut rows.stats,
        name,
    };
    let builder =
        || RowBuilder::new(context.validator, context.schema.clone()).map_err(WriteError::Thread);
    if helpers == 0 {
        let (_, results) = channel();
        return run(
            Gather::new(
                context,
                chunk_lines,
                None,
                results,
                0,
                Some(builder()?),
                merge,
            ),
            feed,
        );
    }
    let builders = (0..helpers)
        .map(|_| builder())
        .collect::<Result<Vec<_>, _>>()?;
    let (work, pieces) = sync_channel::<(u64, Piece)>(helpers);
    let (done, results) = channel();
    let pieces = Mutex::new(pieces);
    std::thread::scope(|scope| {
        for builder in builders {
            let done = done.clone();
            let pieces = &pieces;
            scope.spawn(move || decode_pieces(context, builder, pieces, &done));
        }
        drop(done);
        // Two pieces per thread in flight; see the module's note on memory.
        let in_flight = 2 * helpers as u64;
        let gather = Gather::new(
            context,
            chunk_lines,
            Some(work),
            results,
            in_flight,
            None,
            merge,
        );
        run(gather, feed)
    })
}

/// Feeds the file and merges what is left, or reports the first error in file order.
fn run<F>(mut gather: Gather<'_>, feed: F) -> Result<(), ProcessError>
where
    F: FnOnce(&mut Gather<'_>) -> Result<(), ProcessError>,
{
    match feed(&mut gather) {
        Ok(()) => gather.finish(),
        // A file-level error of the reader: the pieces before it count, as on one thread.
        Err(err @ ProcessError::File(_)) if !gather.failed => {
            gather.finish()?;
            Err(err)
        }
        // After any other error the threads still end: the pieces stop when `gather` is
        // dropped.
        Err(err) => Err(err),
    }
}

/// One row of a chunk: a line's text (the chunk's text up to `end`, from the previous line's
/// end) or a record the reader already found corrupt.
enum Entry {
    Line { end: usize, number: u64 },
    Corrupt { raw: Vec<u8>, message: String },
}

/// Whole lines of a file, in order.
#[derive(Default)]
pub(super) struct Chunk {
    text: Vec<u8>,
    entries: Vec<Entry>,
}

/// A piece of a file, in file order.
pub(super) enum Piece {
    Lines(Chunk),
    /// A Parquet record batch as read; its first row is row `row_number + 1` of the file.
    Parquet {
        batch: RecordBatch,
        row_number: u64,
    },
    /// CSV records as text columns (`rows` of them), with the corrupt records between them.
    Csv {
        chunk: CsvChunk,
        rows: usize,
        events: Vec<CsvEvent>,
    },
    /// One row that goes the row way (a CSV record too large for text columns).
    Row(Value),
    /// A mark between the Parquet pieces of an input row group whose pages may be copied.
    Mark(Mark),
}

/// The start or the end of the rows of an input row group whose pages may be copied.
pub(super) enum Mark {
    Begin(CopyGroup),
    End,
}

/// A row a decoding thread rejected, for the caller to write.
enum Reject {
    Corrupt {
        raw: Vec<u8>,
        message: String,
    },
    Invalid {
        row: Value,
        violations: Vec<Violation>,
    },
}

/// What a decoding thread made of one piece.
struct Decoded {
    accepted: RecordBatch,
    rejects: Vec<Reject>,
    input_records: u64,
    /// For a mark, the mark, applied once the pieces before it are merged.
    mark: Option<Mark>,
    /// For a Parquet record batch, its rows and the file rows (from 0) of those rejected.
    parquet_rows: Option<(usize, Vec<u64>)>,
    /// For a chunk of lines, the chunk emptied, for the caller to fill again: its buffers
    /// keep their size, so the next chunk's text is not copied into new memory.
    spent: Option<Chunk>,
}

/// The loop of one decoding thread: takes pieces until there are none, answers each.
fn decode_pieces(
    context: &Context<'_>,
    mut builder: RowBuilder,
    pieces: &Mutex<Receiver<(u64, Piece)>>,
    done: &Sender<(u64, Result<Decoded, ProcessError>)>,
) {
    loop {
        let next = pieces.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((sequence, piece)) = next else {
            return;
        };
        let decoded = catch_unwind(AssertUnwindSafe(|| decode(context, &mut builder, piece)))
            .unwrap_or_else(|_| {
                Err(WriteError::Thread("a decoding thread panicked".to_owned()).into())
            });
        let failed = decoded.is_err();
        if done.send((sequence, decoded)).is_err() || failed {
            return;
        }
    }
}

fn decode(
    context: &Context<'_>,
    builder: &mut RowBuilder,
    piece: Piece,
) -> Result<Decoded, ProcessError> {
    let mut sink = ChunkSink {
        validator: context.validator,
        source: Source::Json,
        builder,
        rejects: Vec::new(),
        input_records: 0,
    };
    let mut spent = None;
    match piece {
        Piece::Lines(mut chunk) => {
            let mut start = 0;
            for entry in chunk.entries.drain(..) {
                match entry {
                    Entry::Line { end, number } => {
                        sink.json_line(&chunk.text[start..end], number)?;
                        start = end;
                    }
                    Entry::Corrupt { raw, message } => {
                        sink.input_records += 1;
                        sink.rejects.push(Reject::Corrupt { raw, message });
                    }
                }
            }
            chunk.text.clear();
            spent = Some(chunk);
        }
        Piece::Parquet { batch, row_number } => {
            sink.source = Source::Parquet;
            return parquet_batch(context, sink, batch, row_number);
        }
        Piece::Csv {
            chunk,
            rows,
            events,
        } => {
            sink.source = Source::Csv;
            return csv_chunk(context, sink, &chunk, rows, events);
        }
        Piece::Row(row) => {
            sink.source = Source::Csv;
            let original = row.clone();
            sink.row(row, &|| original.clone())?;
        }
        Piece::Mark(mark) => {
            return Ok(Decoded {
                accepted: RecordBatch::new_empty(context.schema.clone()),
                rejects: Vec::new(),
                input_records: 0,
                mark: Some(mark),
                parquet_rows: None,
                spent: None,
            });
        }
    }
    let accepted = sink.builder.finish().map_err(WriteError::Encode)?;
    Ok(Decoded {
        accepted,
        rejects: sink.rejects,
        input_records: sink.input_records,
        mark: None,
        parquet_rows: None,
        spent,
    })
}

/// A Parquet record batch checked as columns; only its undecided rows become values for the
/// row validator, and the rows it accepts are interleaved back in input order.
fn parquet_batch(
    context: &Context<'_>,
    mut sink: ChunkSink<'_>,
    batch: RecordBatch,
    row_number: u64,
) -> Result<Decoded, ProcessError> {
    let batch = without_dictionaries(batch)
        .and_then(|batch| dates_from_timestamps(batch, context.reading.full_schema))
        .map_err(|err| read::parquet::undecodable_batch(context.name, &err))?;
    let rows = batch.num_rows();
    let checked = check_batch(
        context.validator,
        Source::Parquet,
        context.schema.fields(),
        batch.schema_ref().fields(),
        batch.columns(),
        rows,
        context.reading.max_row_bytes,
    )
    .map_err(WriteError::Encode)?;
    let mut accepted = vec![false; rows];
    for (index, &undecided) in checked.undecided.iter().enumerate() {
        if !undecided {
            sink.input_records += 1;
            continue;
        }
        let before = sink.builder.rows();
        read::parquet::read_row(
            &batch,
            index,
            row_number + index as u64 + 1,
            context.reading.max_row_bytes,
            &mut sink,
        )?;
        accepted[index] = sink.builder.rows() > before;
    }
    let rejected = (0..rows)
        .filter(|&index| checked.undecided[index] && !accepted[index])
        .map(|index| row_number + index as u64)
        .collect();
    let accepted = super::merge_checked(sink.builder, &context.schema, checked, &accepted)
        .map_err(WriteError::Encode)?;
    Ok(Decoded {
        accepted,
        rejects: sink.rejects,
        input_records: sink.input_records,
        mark: None,
        parquet_rows: Some((rows, rejected)),
        spent: None,
    })
}

/// CSV records checked as text columns; only the undecided ones become values for the row
/// validator, and the corrupt records keep their place among the rejected rows.
fn csv_chunk(
    context: &Context<'_>,
    mut sink: ChunkSink<'_>,
    data: &CsvChunk,
    rows: usize,
    events: Vec<CsvEvent>,
) -> Result<Decoded, ProcessError> {
    // The CSV row path applies no JSON size limit: the reader bounds the record.
    let checked = check_batch(
        context.validator,
        Source::Csv,
        context.schema.fields(),
        &data.fields,
        &data.columns,
        rows,
        usize::MAX,
    )
    .map_err(WriteError::Encode)?;
    let paths = context.reading.csv_paths;
    let mut accepted = vec![false; rows];
    let mut index = 0;
    for event in events {
        let row = match event {
            CsvEvent::Corrupt { raw, message } => {
                sink.corrupt(&raw, message)?;
                continue;
            }
            CsvEvent::Row => {
                index += 1;
                index - 1
            }
        };
        if !checked.undecided[row] {
            sink.input_records += 1;
            continue;
        }
        // The row validator decides, as for any row (the original is rebuilt for a reject).
        let before = sink.builder.rows();
        sink.row(csv_row(paths, &mut data.values(row)), &|| {
            csv_row(paths, &mut data.values(row))
        })?;
        accepted[row] = sink.builder.rows() > before;
    }
    let accepted = if rows == 0 {
        RecordBatch::new_empty(context.schema.clone())
    } else {
        super::merge_checked(sink.builder, &context.schema, checked, &accepted)
            .map_err(WriteError::Encode)?
    };
    Ok(Decoded {
        accepted,
        rejects: sink.rejects,
        input_records: sink.input_records,
        mark: None,
        parquet_rows: None,
        spent: None,
    })
}

/// A decoding thread's sink: what [`FileRows`] does with a row, with the rejected rows kept
/// for the merge instead of written.
struct ChunkSink<'a> {
    validator: &'a Validator,
    source: Source,
    builder: &'a mut RowBuilder,
    rejects: Vec<Reject>,
    input_records: u64,
}

impl RowSink for ChunkSink<'_> {
    fn row(&mut self, row: Value, original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        self.input_records += 1;
        match self.validator.validate(row, self.source) {
            Ok(converted) => self
                .builder
                .converted_row(self.validator, &converted)
                .map_err(WriteError::Thread)?,
            Err(violations) => self.rejects.push(Reject::Invalid {
                row: original(),
                violations,
            }),
        }
        Ok(Flow::Continue)
    }

    fn corrupt(&mut self, raw: &[u8], message: String) -> Result<Flow, ProcessError> {
        self.input_records += 1;
        self.rejects.push(Reject::Corrupt {
            raw: raw.to_vec(),
            message,
        });
        Ok(Flow::Continue)
    }

    fn json_line(&mut self, text: &[u8], line_number: u64) -> Result<Flow, ProcessError> {
        match self.builder.json_row(self.validator, text) {
            Ok(Offered::Accepted) => {
                self.input_records += 1;
                Ok(Flow::Continue)
            }
            // As on one thread: the validator decides from a `Value`, and a syntax error's
            // message is serde_json's for a `Value`.
            Ok(Offered::Undecided) | Err(_) => read::json_line_as_value(self, text, line_number),
        }
    }
}

/// Where the caller's thread writes the results, in file order.
struct Merge<'a> {
    columns: &'a mut ColumnOutput,
    rejects: &'a mut Rejects,
    output_records: &'a mut u64,
    stats: &'a mut FileStats,
    name: &'a str,
}

impl Merge<'_> {
    fn apply(&mut self, decoded: Decoded) -> Result<(), ProcessError> {
        self.stats.input_records += decoded.input_records;
        for reject in decoded.rejects {
            self.stats.failed_records += 1;
            match reject {
                Reject::Corrupt { raw, message } => {
                    self.rejects.corrupt(&raw, message, self.name)?;
                }
                Reject::Invalid { row, violations } => {
                    self.rejects.invalid(row, &violations, self.name)?;
                }
            }
        }
        *self.output_records += decoded.accepted.num_rows() as u64;
        self.columns.push_batch(decoded.accepted)?;
        if let Some((rows, rejected)) = &decoded.parquet_rows {
            self.columns.read_rows(*rows, rejected);
        }
        match decoded.mark {
            Some(Mark::Begin(group)) => self.columns.begin_copy(group)?,
            Some(Mark::End) => self.columns.end_copy()?,
            None => {}
        }
        Ok(())
    }
}

/// The caller's side: hands the pieces of the file to the decoding threads (gathering JSON
/// lines into chunks) and merges their results in order.
pub(super) struct Gather<'a> {
    context: &'a Context<'a>,
    /// Without decoding threads, the builder each piece is decoded into on this thread.
    inline: Option<RowBuilder>,
    chunk: Chunk,
    /// Chunks the decoding threads are done with, emptied, to be filled again.
    spare: Vec<Chunk>,
    /// Lines a chunk holds at most: one output record batch's rows.
    chunk_lines: usize,
    work: Option<SyncSender<(u64, Piece)>>,
    results: Receiver<(u64, Result<Decoded, ProcessError>)>,
    /// Pieces sent so far; the next one's sequence number.
    sent: u64,
    /// Pieces merged so far; the sequence number merged next.
    merged: u64,
    /// Pieces that may be sent and not merged yet.
    in_flight: u64,
    /// Results that arrived before an earlier piece's.
    waiting: BTreeMap<u64, Result<Decoded, ProcessError>>,
    /// A result failed or could not be written: nothing after it may be merged.
    failed: bool,
    merge: Merge<'a>,
}

impl<'a> Gather<'a> {
    fn new(
        context: &'a Context<'a>,
        chunk_lines: usize,
        work: Option<SyncSender<(u64, Piece)>>,
        results: Receiver<(u64, Result<Decoded, ProcessError>)>,
        in_flight: u64,
        inline: Option<RowBuilder>,
        merge: Merge<'a>,
    ) -> Self {
        Self {
            context,
            inline,
            chunk: Chunk::default(),
            spare: Vec::new(),
            chunk_lines,
            work,
            results,
            sent: 0,
            merged: 0,
            in_flight,
            waiting: BTreeMap::new(),
            failed: false,
            merge,
        }
    }

    /// Rows the next CSV piece should gather: on this thread, what fills the next output
    /// record batch (so that pieces line up with the batches written); with decoding
    /// threads, one record batch.
    pub(super) fn wanted_rows(&self) -> usize {
        if self.inline.is_some() {
            self.merge.columns.wanted()
        } else {
            self.chunk_lines
        }
    }

    fn send_if_full(&mut self) -> Result<Flow, ProcessError> {
        if self.chunk.entries.len() >= self.chunk_lines || self.chunk.text.len() >= CHUNK_BYTES {
            self.send_chunk()?;
        }
        Ok(Flow::Continue)
    }

    /// Sends the JSON lines gathered so far, if any.
    fn send_chunk(&mut self) -> Result<(), ProcessError> {
        if self.chunk.entries.is_empty() {
            return Ok(());
        }
        let next = self.spare.pop().unwrap_or_default();
        let chunk = std::mem::replace(&mut self.chunk, next);
        self.send(Piece::Lines(chunk))
    }

    /// Hands the next piece of the file to the decoding threads, first merging results
    /// while too many are in flight.
    pub(super) fn send(&mut self, piece: Piece) -> Result<(), ProcessError> {
        if let Some(builder) = &mut self.inline {
            let decoded = decode(self.context, builder, piece);
            return self.apply(decoded);
        }
        while self.sent - self.merged >= self.in_flight {
            self.merge_next()?;
        }
        let sent = self
            .work
            .as_ref()
            .is_some_and(|work| work.send((self.sent, piece)).is_ok());
        if !sent {
            return Err(stopped());
        }
        self.sent += 1;
        // Merge what is ready without waiting, so that output flows to the writing thread.
        while let Ok((sequence, result)) = self.results.try_recv() {
            self.waiting.insert(sequence, result);
        }
        while let Some(result) = self.waiting.remove(&self.merged) {
            self.merged += 1;
            self.apply(result)?;
        }
        Ok(())
    }

    fn apply(&mut self, result: Result<Decoded, ProcessError>) -> Result<(), ProcessError> {
        let applied = match result {
            Ok(mut decoded) => {
                if let Some(chunk) = decoded.spent.take() {
                    self.spare.push(chunk);
                }
                self.merge.apply(decoded)
            }
            Err(err) => Err(err),
        };
        self.failed |= applied.is_err();
        applied
    }

    /// Waits for the next piece's result and merges it.
    fn merge_next(&mut self) -> Result<(), ProcessError> {
        loop {
            if let Some(result) = self.waiting.remove(&self.merged) {
                self.merged += 1;
                return self.apply(result);
            }
            let Ok((sequence, result)) = self.results.recv() else {
                self.failed = true;
                return Err(stopped());
            };
            self.waiting.insert(sequence, result);
        }
    }

    /// Sends the last lines, lets the threads end, and merges every result.
    fn finish(mut self) -> Result<(), ProcessError> {
        self.send_chunk()?;
        self.work = None;
        while self.merged < self.sent {
            self.merge_next()?;
        }
        Ok(())
    }
}

fn stopped() -> ProcessError {
    WriteError::Thread("the decoding threads stopped early".to_owned()).into()
}

impl RowSink for Gather<'_> {
    /// Not called by the JSON Lines reader (it hands over text); a row given as a value is
    /// decoded from its text like any line.
    fn row(&mut self, row: Value, _original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        self.json_line(row.to_string().as_bytes(), 0)
    }

    fn corrupt(&mut self, raw: &[u8], message: String) -> Result<Flow, ProcessError> {
        self.chunk.entries.push(Entry::Corrupt {
            raw: raw.to_vec(),
            message,
        });
        self.send_if_full()
    }

    fn json_line(&mut self, text: &[u8], line_number: u64) -> Result<Flow, ProcessError> {
        self.chunk.text.extend_from_slice(text);
        self.chunk.entries.push(Entry::Line {
            end: self.chunk.text.len(),
            number: line_number,
        });
        self.send_if_full()
    }
}
