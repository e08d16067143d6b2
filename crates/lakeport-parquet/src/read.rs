//! Streaming decoders for the three input formats (spec §7.2 step 1). Each pushes rows into
//! a [`RowSink`] as it decodes them, so memory stays bounded by one row (JSON, CSV) or one
//! record batch (Parquet), never by the file.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

use crate::error::{FileError, ProcessError};

pub(crate) mod csv;
pub(crate) mod json;
pub(crate) mod parquet;
#[cfg(test)]
mod tests;

/// Whether a reader should go on after a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Where decoded rows go: the batch pipeline, or a preview.
pub(crate) trait RowSink {
    /// Takes one decoded row. `original` rebuilds the row as read, for diagnostics, when the
    /// sink consumed `row` and needs it back (only rejected rows pay for it).
    fn row(&mut self, row: Value, original: &dyn Fn() -> Value) -> Result<Flow, ProcessError>;

    /// Takes a record that could not be decoded (`raw` as read) and why.
    fn corrupt(&mut self, raw: &[u8], message: String) -> Result<Flow, ProcessError>;

    /// Takes the text of one JSON Lines row (`line_number` counts from 1, blank lines
    /// included). By default the row is parsed into a `Value` for [`row`](Self::row); a
    /// sink that decodes straight into columns parses it itself.
    fn json_line(&mut self, text: &[u8], line_number: u64) -> Result<Flow, ProcessError> {
        json_line_as_value(self, text, line_number)
    }
}

/// Parses a JSON Lines row into a `Value` for [`RowSink::row`], or reports it corrupt.
pub(crate) fn json_line_as_value<S: RowSink + ?Sized>(
    sink: &mut S,
    text: &[u8],
    line_number: u64,
) -> Result<Flow, ProcessError> {
    match serde_json::from_slice::<Value>(text) {
        Ok(row) => sink.row(row, &|| {
            serde_json::from_slice(text).expect("the line parsed a moment ago")
        }),
        Err(err) => sink.corrupt(text, format!("line {line_number} is not valid JSON: {err}")),
    }
}

/// The buffer size for input files; large enough that syscalls don't dominate.
const READ_BUFFER: usize = 256 * 1024;

/// A buffered input of a row decoder: a staged file, or a stream of one (JSON and CSV need
/// no random access). It is read on the decoder's thread, or ahead of it on a thread of its
/// own ([`Input::read_ahead`]).
pub(crate) struct Input(Source);

enum Source {
    Buffered(BufReader<Box<dyn Read + Send>>),
    Ahead(ReadAhead),
}

/// Buffers a stream for a row decoder.
pub(crate) fn input(stream: Box<dyn Read + Send>) -> Input {
    Input(Source::Buffered(BufReader::with_capacity(
        READ_BUFFER,
        stream,
    )))
}

impl Input {
    /// Reads `stream` on a thread of its own, up to [`AHEAD_BLOCKS`] blocks of
    /// [`AHEAD_BLOCK`] bytes ahead of the decoder: the copies out of the page cache (or the
    /// waits on object storage) leave the decoding thread, which sets the pace of a batch
    /// on two cores.
    ///
    /// # Errors
    ///
    /// The thread cannot be started.
    pub(crate) fn read_ahead(stream: Box<dyn Read + Send>) -> std::io::Result<Self> {
        ReadAhead::start(stream).map(|ahead| Self(Source::Ahead(ahead)))
    }

    /// What was read and not consumed yet (as [`BufReader::buffer`]).
    pub(crate) fn buffer(&self) -> &[u8] {
        match &self.0 {
            Source::Buffered(reader) => reader.buffer(),
            Source::Ahead(ahead) => &ahead.block[ahead.position..],
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Source::Buffered(reader) = &mut self.0 {
            return reader.read(buf);
        }
        let available = self.fill_buf()?;
        let length = available.len().min(buf.len());
        buf[..length].copy_from_slice(&available[..length]);
        self.consume(length);
        Ok(length)
    }
}

impl BufRead for Input {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match &mut self.0 {
            Source::Buffered(reader) => reader.fill_buf(),
            Source::Ahead(ahead) => ahead.fill_buf(),
        }
    }

    fn consume(&mut self, amount: usize) {
        match &mut self.0 {
            Source::Buffered(reader) => reader.consume(amount),
            Source::Ahead(ahead) => {
                ahead.position = (ahead.position + amount).min(ahead.block.len());
            }
        }
    }
}

/// The blocks a read-ahead thread holds at most, the decoder's included: 4 MiB.
const AHEAD_BLOCKS: usize = 4;

/// The bytes of one block read ahead.
pub(crate) const AHEAD_BLOCK: usize = 1024 * 1024;

/// The decoder's side of a read-ahead thread: full blocks come over one channel, and go
/// back over the other once consumed. A block shorter than [`AHEAD_BLOCK`] is the last one
/// with data; an empty one is the end.
struct ReadAhead {
    full: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    spare: std::sync::mpsc::Sender<Vec<u8>>,
    block: Vec<u8>,
    position: usize,
    /// The stream ended (or failed): nothing more comes.
    ended: bool,
}

impl ReadAhead {
    fn start(mut stream: Box<dyn Read + Send>) -> std::io::Result<Self> {
        let (full_sender, full) = std::sync::mpsc::sync_channel(AHEAD_BLOCKS);
        let (spare, spare_receiver) = std::sync::mpsc::channel::<Vec<u8>>();
        // The thread stops at the end of the stream, at an error, or when the decoder drops
        // its side (its next send or wait for a spare block fails); it is not joined, so
        // that a decoder that stops early never waits on a slow stream.
        std::thread::Builder::new()
            .name("lakeport-read-ahead".into())
            .spawn(move || {
                let mut made = 0;
                loop {
                    let mut block = match spare_receiver.try_recv() {
                        Ok(block) => block,
                        Err(_) if made < AHEAD_BLOCKS => {
                            made += 1;
                            Vec::with_capacity(AHEAD_BLOCK)
                        }
                        Err(_) => match spare_receiver.recv() {
                            Ok(block) => block,
                            Err(_) => return,
                        },
                    };
                    block.clear();
                    // `read_to_end` through `take` fills the block's capacity without
                    // zeroing it first, and stops at the block's size.
                    let read = (&mut stream)
                        .take(AHEAD_BLOCK as u64)
                        .read_to_end(&mut block);
                    let last = !matches!(read, Ok(length) if length == AHEAD_BLOCK);
                    if full_sender.send(read.map(|_| block)).is_err() || last {
                        return;
                    }
                }
            })?;
        Ok(Self {
            full,
            spare,
            block: Vec::new(),
            position: 0,
            ended: false,
        })
    }

    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.position == self.block.len() && !self.ended {
            let next = match self.full.recv() {
                Ok(Ok(block)) => block,
                Ok(Err(err)) => {
                    self.ended = true;
                    return Err(err);
                }
                // The thread ended without saying why: it panicked.
                Err(_) => {
                    self.ended = true;
                    return Err(std::io::Error::other("the thread reading the file stopped"));
                }
            };
            self.ended = next.len() < AHEAD_BLOCK;
            let used = std::mem::replace(&mut self.block, next);
            self.position = 0;
            if used.capacity() > 0 {
                // The thread may be gone (the stream ended): the block is then dropped.
                let _ = self.spare.send(used);
            }
        }
        Ok(&self.block[self.position..])
    }
}

/// Opens a staged file for buffered reading and returns it with its size.
pub(crate) fn open(path: &Path) -> Result<(Input, u64), ProcessError> {
    let (file, size) = open_file(path)?;
    Ok((input(file), size))
}

/// Opens a staged file as [`open`] does, read ahead on a thread of its own
/// ([`Input::read_ahead`]).
pub(crate) fn open_ahead(path: &Path) -> Result<(Input, u64), ProcessError> {
    let (file, size) = open_file(path)?;
    Ok((input_ahead(file, path)?, size))
}

/// Reads `stream` (the file at `path`, for errors) ahead of its decoder
/// ([`Input::read_ahead`]).
pub(crate) fn input_ahead(
    stream: Box<dyn Read + Send>,
    path: &Path,
) -> Result<Input, ProcessError> {
    Input::read_ahead(stream).map_err(|source| ProcessError::Read {
        path: path.to_owned(),
        source,
    })
}

fn open_file(path: &Path) -> Result<(Box<dyn Read + Send>, u64), ProcessError> {
    let read_error = |source| ProcessError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    let size = file.metadata().map_err(read_error)?.len();
    Ok((Box::new(file), size))
}

/// Skips a UTF-8 byte-order mark and whitespace at the start of `reader`.
///
/// Returns `true` when nothing but whitespace was there (the file is empty), and whether a
/// line break was skipped before the first other byte.
pub(crate) fn skip_leading_whitespace(
    reader: &mut impl BufRead,
    path: &Path,
) -> Result<LeadingWhitespace, ProcessError> {
    skip_bom(reader, path)?;
    let mut line_break = false;
    loop {
        let buffer = reader.fill_buf().map_err(|source| ProcessError::Read {
            path: path.to_owned(),
            source,
        })?;
        if buffer.is_empty() {
            return Ok(LeadingWhitespace::OnlyWhitespace);
        }
        let skipped = buffer
            .iter()
            .take_while(|byte| byte.is_ascii_whitespace())
            .count();
        line_break |= buffer[..skipped]
            .iter()
            .any(|&byte| byte == b'\n' || byte == b'\r');
        let more = skipped < buffer.len();
        reader.consume(skipped);
        if more {
            return Ok(if line_break {
                LeadingWhitespace::BlankLines
            } else if skipped > 0 {
                LeadingWhitespace::Spaces
            } else {
                LeadingWhitespace::None
            });
        }
    }
}

/// What [`skip_leading_whitespace`] found before the first other byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LeadingWhitespace {
    None,
    Spaces,
    BlankLines,
    OnlyWhitespace,
}

/// Consumes a UTF-8 byte-order mark if the reader starts with one.
pub(crate) fn skip_bom(reader: &mut impl BufRead, path: &Path) -> Result<(), ProcessError> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let buffer = reader.fill_buf().map_err(|source| ProcessError::Read {
        path: path.to_owned(),
        source,
    })?;
    if buffer.starts_with(BOM) {
        reader.consume(BOM.len());
    }
    Ok(())
}

/// How much of a row larger than the row limit is kept for `_corrupt_record`: enough to
/// find the row, not enough to matter.
pub(crate) const OVERSIZED_PREFIX_BYTES: usize = 1024;

/// Returns the message of a row larger than the row limit. `bytes` is the size read before
/// the row ended (or the file did, with `to_end`).
pub(crate) fn oversized(what: &str, bytes: u64, limit: usize, to_end: bool) -> String {
    let end = if to_end {
        " and runs to the end of the file"
    } else {
        ""
    };
    format!(
        "{what} is larger than the maximum row size of {limit} bytes ({bytes} bytes{end}); \
         the row is skipped"
    )
}

/// One line of [`read_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line {
    /// The end of the input: nothing was read.
    End,
    /// A line (without its `\n`) is in the buffer.
    Complete,
    /// The line was longer than the limit: the buffer holds its first
    /// [`OVERSIZED_PREFIX_BYTES`], the rest was read and dropped. `bytes` is its full length
    /// without the `\n`; `to_end` when the file ended before a `\n`.
    Oversized { bytes: u64, to_end: bool },
}

/// Reads one line into `line` (cleared first), holding at most `limit` bytes of it: a longer
/// line is read to its end and dropped as it goes, so memory stays bounded by the limit
/// whatever the input. A trailing `\r` counts towards the limit; the `\n` does not.
pub(crate) fn read_line(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
) -> std::io::Result<Line> {
    line.clear();
    let mut length: u64 = 0;
    let mut oversized = false;
    let mut any = false;
    loop {
        let buffer = match reader.fill_buf() {
            Ok(buffer) => buffer,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buffer.is_empty() {
            return Ok(match (any, oversized) {
                (false, _) => Line::End,
                (true, false) => Line::Complete,
                (true, true) => Line::Oversized {
                    bytes: length,
                    to_end: true,
                },
            });
        }
        any = true;
        let newline = memchr::memchr(b'\n', buffer);
        let content = &buffer[..newline.unwrap_or(buffer.len())];
        length += content.len() as u64;
        if !oversized {
            if length > limit as u64 {
                oversized = true;
                let keep = OVERSIZED_PREFIX_BYTES.min(limit);
                let room = keep.saturating_sub(line.len()).min(content.len());
                line.extend_from_slice(&content[..room]);
                line.truncate(keep);
            } else {
                line.extend_from_slice(content);
            }
        }
        let used = newline.map_or(buffer.len(), |end| end + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(if oversized {
                Line::Oversized {
                    bytes: length,
                    to_end: false,
                }
            } else {
                Line::Complete
            });
        }
    }
}

/// Returns the file-level error for a file that has no content.
pub(crate) fn empty(name: &str) -> ProcessError {
    ProcessError::File(FileError::Empty {
        file: name.to_owned(),
    })
}

/// Returns the file-level error for content that cannot be decoded.
pub(crate) fn undecodable(
    name: &str,
    format: &'static str,
    reason: impl Into<String>,
) -> ProcessError {
    ProcessError::File(FileError::Undecodable {
        file: name.to_owned(),
        format,
        reason: reason.into(),
    })
}
