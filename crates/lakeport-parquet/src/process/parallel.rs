//! JSON Lines decoded on several threads (issue 16): the caller's thread reads the file and
//! cuts it into chunks of whole lines; each decoding thread walks the chunks it takes into
//! Arrow columns of its own and sets the rejected rows aside; the caller merges the results
//! in file order. The Parquet parts and the diagnostics are those of one thread: accepted
//! rows reach the output in file order (cut into the same record batches), and rejected rows
//! reach the rejects in file order.
//!
//! Memory stays bounded: at most two chunks per thread are in flight (each at most
//! one output record batch of lines or about [`CHUNK_BYTES`] of text, a longer row being a corrupt row
//! of at most the row limit), and their results wait for the merge in order.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Mutex, PoisonError};

use arrow_array::RecordBatch;
use lakeport_domain::xdm::validate::{Source, Validator, Violation};
use serde_json::Value;

use super::{ColumnOutput, FileRows, FileStats, Pipeline, Rejects};
use crate::direct::{Offered, RowBuilder};
use crate::error::{ProcessError, WriteError};
use crate::read::{self, Flow, Input, RowSink};

/// Text a chunk holds before it is sent (a chunk ends at the first line past it).
const CHUNK_BYTES: usize = 2 << 20;

/// Reads JSON Lines from `reader` with `threads` decoding threads into the column output of
/// `rows`, as [`read::json::read_lines`] does on one thread.
///
/// # Errors
/// As [`read::json::read_lines`], and [`WriteError::Thread`] when a decoding thread fails.
pub(super) fn read_lines(
    reader: Input,
    path: &Path,
    max_row_bytes: usize,
    rows: &mut FileRows<'_>,
    threads: usize,
) -> Result<(), ProcessError> {
    let name = rows.name;
    let Pipeline {
        validator,
        output: columns,
        rejects,
        output_records,
    } = &mut *rows.pipeline;
    let validator: &Validator = validator;
    let builders = (0..threads)
        .map(|_| RowBuilder::new(validator, columns.schema.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(WriteError::Thread)?;
    let (work, chunks) = sync_channel::<(u64, Chunk)>(threads);
    let (done, results) = channel();
    let chunk_lines = columns.chunk_rows;
    let chunks = Mutex::new(chunks);
    std::thread::scope(|scope| {
        for builder in builders {
            let done = done.clone();
            let chunks = &chunks;
            scope.spawn(move || decode_chunks(validator, builder, chunks, &done));
        }
        drop(done);
        let mut gather = Gather {
            chunk: Chunk::default(),
            chunk_lines,
            work: Some(work),
            results,
            sent: 0,
            merged: 0,
            in_flight: 2 * threads as u64,
            waiting: BTreeMap::new(),
            merge: Merge {
                columns,
                rejects,
                output_records,
                stats: &mut rows.stats,
                name,
            },
        };
        let read = read::json::read_lines(reader, path, name, max_row_bytes, &mut gather);
        // After an error the threads still end: the chunks stop when `gather` is dropped.
        read?;
        gather.finish()
    })
}

/// One row of a chunk: a line's text (the chunk's text up to `end`, from the previous line's
/// end) or a record the reader already found corrupt.
enum Entry {
    Line { end: usize, number: u64 },
    Corrupt { raw: Vec<u8>, message: String },
}

/// Whole lines of a file, in order.
#[derive(Default)]
struct Chunk {
    text: Vec<u8>,
    entries: Vec<Entry>,
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

/// What a decoding thread made of one chunk.
struct Decoded {
    accepted: RecordBatch,
    rejects: Vec<Reject>,
    input_records: u64,
}

/// The loop of one decoding thread: takes chunks until there are none, answers each.
fn decode_chunks(
    validator: &Validator,
    mut builder: RowBuilder,
    chunks: &Mutex<Receiver<(u64, Chunk)>>,
    done: &Sender<(u64, Result<Decoded, ProcessError>)>,
) {
    loop {
        let next = chunks.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((sequence, chunk)) = next else {
            return;
        };
        let decoded = catch_unwind(AssertUnwindSafe(|| decode(validator, &mut builder, chunk)))
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
    validator: &Validator,
    builder: &mut RowBuilder,
    chunk: Chunk,
) -> Result<Decoded, ProcessError> {
    let mut sink = ChunkSink {
        validator,
        builder,
        rejects: Vec::new(),
        input_records: 0,
    };
    let mut start = 0;
    for entry in chunk.entries {
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
    let accepted = sink.builder.finish().map_err(WriteError::Encode)?;
    Ok(Decoded {
        accepted,
        rejects: sink.rejects,
        input_records: sink.input_records,
    })
}

/// A decoding thread's sink: what [`FileRows`] does with a row, with the rejected rows kept
/// for the merge instead of written.
struct ChunkSink<'a> {
    validator: &'a Validator,
    builder: &'a mut RowBuilder,
    rejects: Vec<Reject>,
    input_records: u64,
}

impl RowSink for ChunkSink<'_> {
    fn row(&mut self, row: Value, original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        self.input_records += 1;
        match self.validator.validate(row, Source::Json) {
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
        Ok(())
    }
}

/// The caller's sink: gathers the lines the reader finds into chunks, sends each full chunk
/// to the decoding threads, and merges their results in order.
struct Gather<'a> {
    chunk: Chunk,
    /// Lines a chunk holds at most: one output record batch's rows.
    chunk_lines: usize,
    work: Option<SyncSender<(u64, Chunk)>>,
    results: Receiver<(u64, Result<Decoded, ProcessError>)>,
    /// Chunks sent so far; the next one's sequence number.
    sent: u64,
    /// Chunks merged so far; the sequence number merged next.
    merged: u64,
    /// Chunks that may be sent and not merged yet.
    in_flight: u64,
    /// Results that arrived before an earlier chunk's.
    waiting: BTreeMap<u64, Result<Decoded, ProcessError>>,
    merge: Merge<'a>,
}

impl Gather<'_> {
    fn send_if_full(&mut self) -> Result<Flow, ProcessError> {
        if self.chunk.entries.len() >= self.chunk_lines || self.chunk.text.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(Flow::Continue)
    }

    fn send(&mut self) -> Result<(), ProcessError> {
        while self.sent - self.merged >= self.in_flight {
            self.merge_next()?;
        }
        let chunk = std::mem::take(&mut self.chunk);
        let sent = self
            .work
            .as_ref()
            .is_some_and(|work| work.send((self.sent, chunk)).is_ok());
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
            self.merge.apply(result?)?;
        }
        Ok(())
    }

    /// Waits for the next chunk's result and merges it.
    fn merge_next(&mut self) -> Result<(), ProcessError> {
        loop {
            if let Some(result) = self.waiting.remove(&self.merged) {
                self.merged += 1;
                return self.merge.apply(result?);
            }
            let (sequence, result) = self.results.recv().map_err(|_| stopped())?;
            self.waiting.insert(sequence, result);
        }
    }

    /// Sends the last chunk, lets the threads end, and merges every result.
    fn finish(mut self) -> Result<(), ProcessError> {
        if !self.chunk.entries.is_empty() {
            self.send()?;
        }
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
