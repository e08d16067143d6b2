//! JSON input: JSON Lines (one object per line, the default) and multi-line JSON (one
//! top-level array, decoded element by element).

use std::fmt;
use std::io::BufRead;
use std::path::Path;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use super::{
    Flow, Input, LeadingWhitespace, RowSink, empty, skip_bom, skip_leading_whitespace, undecodable,
};
use crate::error::ProcessError;

const FORMAT: &str = "JSON";

/// Reads JSON Lines: every non-blank line is one row; a line that is not valid JSON is a
/// corrupt row (the validator refuses valid JSON that is not an object).
///
/// # Errors
///
/// [`FileError::Empty`](crate::FileError::Empty) when the file has no non-blank line, a read
/// error, or whatever the sink returns.
pub(crate) fn read_lines(
    mut reader: Input,
    path: &Path,
    name: &str,
    sink: &mut impl RowSink,
) -> Result<(), ProcessError> {
    skip_bom(&mut reader, path)?;
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    let mut rows: u64 = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| ProcessError::Read {
                path: path.to_owned(),
                source,
            })?;
        if read == 0 {
            break;
        }
        line_number += 1;
        let text = line.trim_ascii();
        if text.is_empty() {
            continue;
        }
        rows += 1;
        let flow = match serde_json::from_slice::<Value>(text) {
            Ok(row) => sink.row(row, &|| {
                serde_json::from_slice(text).expect("the line parsed a moment ago")
            })?,
            Err(err) => {
                sink.corrupt(text, format!("line {line_number} is not valid JSON: {err}"))?
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
/// decoded; the array itself is never built.
///
/// # Errors
///
/// [`FileError::Empty`](crate::FileError::Empty) for a blank file;
/// [`FileError::Undecodable`](crate::FileError::Undecodable) when the file is not one JSON
/// array (another value, invalid or truncated JSON, trailing data). Elements decoded before
/// such an error have already reached the sink.
pub(crate) fn read_array(
    mut reader: Input,
    path: &Path,
    name: &str,
    sink: &mut impl RowSink,
) -> Result<(), ProcessError> {
    if skip_leading_whitespace(&mut reader, path)? == LeadingWhitespace::OnlyWhitespace {
        return Err(empty(name));
    }
    let mut state = ArrayState::default();
    let mut deserializer = serde_json::Deserializer::from_reader(reader);
    let result = ArraySeed {
        sink,
        state: &mut state,
    }
    .deserialize(&mut deserializer)
    .and_then(|()| deserializer.end());
    if let Some(failure) = state.failure {
        return Err(failure);
    }
    match result {
        Ok(()) => Ok(()),
        Err(_) if state.stopped => Ok(()),
        Err(err) if err.is_io() => Err(ProcessError::Read {
            path: path.to_owned(),
            source: err.into(),
        }),
        Err(err) => Err(undecodable(
            name,
            FORMAT,
            format!(
                "the file must be one JSON array of rows (after {} elements): {err}",
                state.elements
            ),
        )),
    }
}

#[derive(Default)]
struct ArrayState {
    elements: u64,
    /// The sink asked to stop (a preview has its rows).
    stopped: bool,
    /// The sink failed; this error wins over the decoding error used to unwind serde.
    failure: Option<ProcessError>,
}

struct ArraySeed<'a, S> {
    sink: &'a mut S,
    state: &'a mut ArrayState,
}

impl<'de, S: RowSink> DeserializeSeed<'de> for ArraySeed<'_, S> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, S: RowSink> Visitor<'de> for ArraySeed<'_, S> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(element) = seq.next_element::<Value>()? {
            self.state.elements += 1;
            // The validator consumes the row; only a rejected row needs the copy back.
            let original = element.clone();
            match self.sink.row(element, &|| original.clone()) {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => {
                    self.state.stopped = true;
                    return Err(de::Error::custom("stopped early"));
                }
                Err(failure) => {
                    self.state.failure = Some(failure);
                    return Err(de::Error::custom("the row sink failed"));
                }
            }
        }
        Ok(())
    }
}
