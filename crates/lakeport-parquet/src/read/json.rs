//! JSON input: JSON Lines (one object per line, the default) and multi-line JSON (one
//! top-level array, split element by element). Neither ever holds more than one row of at
//! most the row limit: a longer row is read to its end, dropped as it goes, and reported as
//! a corrupt row.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use super::{
    Flow, Input, LeadingWhitespace, Line, OVERSIZED_PREFIX_BYTES, RowSink, empty, oversized,
    read_line, skip_bom, skip_leading_whitespace, undecodable,
};
use crate::error::ProcessError;

#[cfg(test)]
mod tests;

const FORMAT: &str = "JSON";

/// Reads JSON Lines: every non-blank line is one row; a line that is not valid JSON, or is
/// longer than `max_row_bytes`, is a corrupt row (the validator refuses valid JSON that is
/// not an object).
///
/// # Errors
///
/// [`FileError::Empty`](crate::FileError::Empty) when the file has no non-blank line, a read
/// error, or whatever the sink returns.
pub(crate) fn read_lines(
    mut reader: Input,
    path: &Path,
    name: &str,
    max_row_bytes: usize,
    sink: &mut impl RowSink,
) -> Result<(), ProcessError> {
    skip_bom(&mut reader, path)?;
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    let mut rows: u64 = 0;
    loop {
        // A whole line already in the buffer is handed over in place, without a copy.
        if let Ok(buffer) = reader.fill_buf()
            && let Some(newline) = memchr::memchr(b'\n', buffer)
            && newline <= max_row_bytes
        {
            line_number += 1;
            let text = buffer[..newline].trim_ascii();
            let flow = if text.is_empty() {
                Flow::Continue
            } else {
                rows += 1;
                sink.json_line(text, line_number)?
            };
            reader.consume(newline + 1);
            if flow == Flow::Stop {
                return Ok(());
            }
            continue;
        }
        let read = read_line(&mut reader, &mut line, max_row_bytes).map_err(|source| {
            ProcessError::Read {
                path: path.to_owned(),
                source,
            }
        })?;
        let flow = match read {
            Line::End => break,
            Line::Oversized { bytes, to_end } => {
                line_number += 1;
                rows += 1;
                let what = format!("line {line_number}");
                let message = oversized(&what, bytes, max_row_bytes, to_end);
                sink.corrupt(&line, message)?
            }
            Line::Complete => {
                line_number += 1;
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                rows += 1;
                sink.json_line(text, line_number)?
            }
        };
        if flow == Flow::Stop {
            return Ok(());
        }
    }
    if rows == 0 {
        return Err(empty(name));
    }
    Ok(())
}

/// Reads one top-level JSON array, handing each element to the sink as soon as it is
/// complete; the array itself is never built. An element longer than `max_row_bytes` is a
/// corrupt row; the array goes on after it.
///
/// # Errors
///
/// [`FileError::Empty`](crate::FileError::Empty) for a blank file;
/// [`FileError::Undecodable`](crate::FileError::Undecodable) when the file is not one JSON
/// array (another value, an element that is not valid JSON, a truncated array, trailing
/// data). Elements decoded before such an error have already reached the sink.
pub(crate) fn read_array(
    mut reader: Input,
    path: &Path,
    name: &str,
    max_row_bytes: usize,
    sink: &mut impl RowSink,
) -> Result<(), ProcessError> {
    if skip_leading_whitespace(&mut reader, path)? == LeadingWhitespace::OnlyWhitespace {
        return Err(empty(name));
    }
    let mut elements = Elements::new(reader, max_row_bytes);
    let mut element = Vec::new();
    loop {
        let next = elements.next(&mut element).map_err(|err| match err {
            ArrayError::Io(source) => ProcessError::Read {
                path: path.to_owned(),
                source,
            },
            ArrayError::Syntax(reason) => undecodable(
                name,
                FORMAT,
                format!(
                    "the file must be one JSON array of rows (after {} elements): {reason}",
                    elements.count
                ),
            ),
        })?;
        let number = elements.count;
        let flow = match next {
            Element::End => return Ok(()),
            Element::Oversized { bytes } => {
                let message = oversized(&format!("element {number}"), bytes, max_row_bytes, false);
                sink.corrupt(&element, message)?
            }
            Element::Value => match serde_json::from_slice::<Value>(&element) {
                // The validator consumes the row; only a rejected row needs the copy back.
                Ok(row) => sink.row(row, &|| {
                    serde_json::from_slice(&element).expect("the element parsed a moment ago")
                })?,
                Err(err) => {
                    return Err(undecodable(
                        name,
                        FORMAT,
                        format!(
                            "the file must be one JSON array of rows: element {number} is not \
                             valid JSON: {err}"
                        ),
                    ));
                }
            },
        };
        if flow == Flow::Stop {
            return Ok(());
        }
    }
}

/// One step of [`Elements::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    /// The array is closed and nothing but whitespace follows.
    End,
    /// The bytes of one element are in the buffer (not yet checked to be valid JSON).
    Value,
    /// The element was longer than the limit: the buffer holds its first bytes, `bytes` is
    /// its length.
    Oversized { bytes: u64 },
}

#[derive(Debug)]
enum ArrayError {
    Io(std::io::Error),
    /// The file is not one array: what was found instead.
    Syntax(String),
}

impl From<std::io::Error> for ArrayError {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err)
    }
}

/// Where the splitter is in the array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Before the opening `[`.
    Start,
    /// After `[`: an element or `]`.
    First,
    /// After `,`: an element.
    Next,
    /// After an element: `,` or `]`.
    After,
    /// After `]`.
    Done,
}

/// Splits a top-level JSON array into the bytes of its elements, in one pass and without
/// recursion: it follows strings and bracket depth only, and leaves each element's syntax
/// to serde_json. Memory is bounded by the row limit whatever the input.
struct Elements<R> {
    reader: R,
    limit: usize,
    position: Position,
    /// Elements returned so far.
    count: u64,
    /// Bytes consumed so far, for messages.
    offset: u64,
}

impl<R: BufRead> Elements<R> {
    fn new(reader: R, limit: usize) -> Self {
        Self {
            reader,
            limit,
            position: Position::Start,
            count: 0,
            offset: 0,
        }
    }

    /// Returns the next byte that is not whitespace without consuming it, `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, ArrayError> {
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            };
            let Some(&first) = buffer.first() else {
                return Ok(None);
            };
            // JSON's whitespace only: a form feed is not, as serde_json says too.
            let blank = buffer
                .iter()
                .take_while(|byte| matches!(byte, b' ' | b'\t' | b'\n' | b'\r'))
                .count();
            if blank == 0 {
                return Ok(Some(first));
            }
            self.consume(blank);
        }
    }

    fn consume(&mut self, bytes: usize) {
        self.reader.consume(bytes);
        self.offset += bytes as u64;
    }

    fn unexpected(&self, found: Option<u8>, expected: &str) -> ArrayError {
        let found = match found {
            None => "the end of the file".to_owned(),
            Some(byte) if byte.is_ascii_graphic() => format!("{:?}", char::from(byte)),
            Some(byte) => format!("byte 0x{byte:02X}"),
        };
        ArrayError::Syntax(format!(
            "expected {expected} at byte {}, found {found}",
            self.offset
        ))
    }

    /// Reads the next element into `element` (cleared first).
    fn next(&mut self, element: &mut Vec<u8>) -> Result<Element, ArrayError> {
        element.clear();
        loop {
            let byte = self.peek()?;
            match (self.position, byte) {
                (Position::Start, Some(b'[')) => {
                    self.consume(1);
                    self.position = Position::First;
                }
                (Position::Start, found) => return Err(self.unexpected(found, "'['")),
                (Position::First | Position::After, Some(b']')) => {
                    self.consume(1);
                    self.position = Position::Done;
                }
                (Position::After, Some(b',')) => {
                    self.consume(1);
                    self.position = Position::Next;
                }
                (Position::After, found) => {
                    return Err(self.unexpected(found, "',' or ']' after an element"));
                }
                (Position::First | Position::Next, Some(b',' | b']' | b'}' | b':') | None) => {
                    return Err(self.unexpected(byte, "an element"));
                }
                (Position::First | Position::Next, Some(_)) => {
                    let element = self.element(element)?;
                    self.count += 1;
                    self.position = Position::After;
                    return Ok(element);
                }
                (Position::Done, None) => return Ok(Element::End),
                (Position::Done, found) => {
                    return Err(self.unexpected(found, "nothing after the array"));
                }
            }
        }
    }

    /// Reads one element that starts at the next byte, up to its last byte.
    fn element(&mut self, element: &mut Vec<u8>) -> Result<Element, ArrayError> {
        let mut depth: u64 = 0;
        let mut in_string = false;
        let mut escaped = false;
        let mut length: u64 = 0;
        let mut oversized = false;
        loop {
            let buffer = match self.reader.fill_buf() {
                Ok(buffer) => buffer,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            };
            if buffer.is_empty() {
                if depth > 0 || in_string {
                    return Err(self.unexpected(None, "the rest of the element"));
                }
                break;
            }
            // Where the element ends in this buffer: `Some(n)` when its last byte is
            // `buffer[n - 1]`.
            let mut end = None;
            for (index, &byte) in buffer.iter().enumerate() {
                if in_string {
                    if escaped {
                        escaped = false;
                    } else if byte == b'\\' {
                        escaped = true;
                    } else if byte == b'"' {
                        in_string = false;
                        if depth == 0 {
                            end = Some(index + 1);
                            break;
                        }
                    }
                    continue;
                }
                match byte {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth > 0 => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(index + 1);
                            break;
                        }
                    }
                    // A scalar ends before the next separator or whitespace.
                    b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r' if depth == 0 => {
                        end = Some(index);
                        break;
                    }
                    _ => {}
                }
            }
            let used = end.unwrap_or(buffer.len());
            length += used as u64;
            if !oversized {
                if length > self.limit as u64 {
                    oversized = true;
                    let keep = OVERSIZED_PREFIX_BYTES.min(self.limit);
                    let room = keep.saturating_sub(element.len()).min(used);
                    element.extend_from_slice(&buffer[..room]);
                    element.truncate(keep);
                } else {
                    element.extend_from_slice(&buffer[..used]);
                }
            }
            self.consume(used);
            if end.is_some() {
                break;
            }
        }
        Ok(if oversized {
            Element::Oversized { bytes: length }
        } else {
            Element::Value
        })
    }
}
