//! CSV input: records as byte fields, decoded with the declared charset; the header row
//! names the columns.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;

use super::{
    Input, LeadingWhitespace, OVERSIZED_PREFIX_BYTES, empty, oversized, skip_bom,
    skip_leading_whitespace, undecodable,
};
use crate::error::{FileError, ProcessError};
use crate::format::{Charset, CsvOptions};

#[cfg(test)]
mod tests;

const FORMAT: &str = "CSV";

/// An open CSV file positioned after its header row.
pub(crate) struct CsvFile {
    input: Input,
    core: csv_core::Reader,
    path: std::path::PathBuf,
    name: String,
    delimiter: u8,
    quote: u8,
    escape: Option<u8>,
    charset: Charset,
    null_marker: Option<String>,
    max_row_bytes: usize,
    header: Vec<String>,
    record: Record,
    /// The first input bytes of the record being read, for an oversized record's
    /// `_corrupt_record`.
    prefix: Vec<u8>,
    /// Where an oversized record's fields go while it is read to its end and dropped.
    scratch: Record,
    /// Records read so far (the header row included).
    records: u64,
    /// Without a header row, the first record is data that was read to count the columns.
    first_record: Option<Record>,
    /// Whether record 0 is data (no header row), for 1-based record numbers in messages.
    first_record_is_data: bool,
    /// The decoded text of the record last read by [`CsvFile::next_text`], and where each
    /// field ends in it.
    text: String,
    text_ends: Vec<usize>,
    /// When the record last read by [`CsvFile::next_text`] is a plain line still in the
    /// input's buffer (see [`CsvFile::plain_text_line`]): its length. The line and its
    /// newline are consumed when the next record is read.
    line: Option<usize>,
}

/// The decoded fields of one record, borrowed from the reader.
pub(crate) struct RecordText<'a> {
    text: &'a str,
    /// Where each field ends in `text`; or, when `separated`, where each delimiter is
    /// (`text` is then a plain line, its last field running to its end).
    ends: &'a [usize],
    separated: bool,
    null_marker: Option<&'a str>,
}

impl<'a> RecordText<'a> {
    /// Returns the bytes of text the record holds.
    pub(crate) fn bytes(&self) -> usize {
        self.text.len()
    }

    /// Returns each field, `None` for an empty field or the null marker (as
    /// [`CsvFile::next`] reads them).
    pub(crate) fn fields(&self) -> RecordFields<'a> {
        RecordFields {
            text: self.text,
            ends: self.ends.iter(),
            start: 0,
            separated: self.separated,
            finished: false,
            null_marker: self.null_marker,
        }
    }
}

/// The fields of a [`RecordText`].
pub(crate) struct RecordFields<'a> {
    text: &'a str,
    ends: std::slice::Iter<'a, usize>,
    start: usize,
    separated: bool,
    finished: bool,
    null_marker: Option<&'a str>,
}

impl<'a> Iterator for RecordFields<'a> {
    type Item = Option<&'a str>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let end = match self.ends.next() {
            Some(&end) => end,
            None if self.separated && !self.finished => {
                self.finished = true;
                self.text.len()
            }
            None => return None,
        };
        let field = &self.text[self.start..end];
        // A plain line's delimiter is ASCII, so the next field starts on a character.
        self.start = end + usize::from(self.separated);
        let is_null = field.is_empty() || self.null_marker == Some(field);
        Some((!is_null).then_some(field))
    }
}

/// The fields of one record: their bytes back to back and where each ends.
#[derive(Debug, Clone, Default)]
struct Record {
    fields: Vec<u8>,
    ends: Vec<usize>,
    len: usize,
}

impl Record {
    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends[..self.len].iter().map(move |&end| {
            let field = &self.fields[start..end];
            start = end;
            field
        })
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// One step of [`CsvFile::read`].
enum Read {
    End,
    Record,
    /// The record was larger than the row limit and was read to its end without keeping it.
    Oversized {
        bytes: u64,
        to_end: bool,
    },
}

/// One step of [`CsvFile::next`].
pub(crate) enum Next {
    /// No more records.
    End,
    /// The record's values are in the caller's buffer (`None` for null).
    Values,
    /// The record does not have one field per column: a corrupt row.
    Corrupt { raw: Vec<u8>, message: String },
    /// The record is larger than the row limit: a corrupt row, of which `raw` holds the
    /// first bytes.
    Oversized { raw: Vec<u8>, message: String },
}

impl CsvFile {
    /// Opens a CSV file and reads its header row (or, with `header: false`, names the columns
    /// `_c0`, `_c1`, … after the first record). A record larger than `max_row_bytes` (its
    /// field bytes plus one per field) is never held: it is read to its end and reported as
    /// a corrupt row.
    ///
    /// # Errors
    ///
    /// `106` for a blank file, `118` when the first line or every header name is empty,
    /// `INGEST-9201-400` when the header is not in the declared charset or is larger than
    /// the row limit.
    pub(crate) fn open(
        mut reader: Input,
        path: &Path,
        name: &str,
        options: &CsvOptions,
        max_row_bytes: usize,
    ) -> Result<Self, ProcessError> {
        skip_bom(&mut reader, path)?;
        check_first_line(&mut reader, path, name)?;
        let core = csv_core::ReaderBuilder::new()
            .delimiter(options.delimiter)
            .quote(options.quote)
            .escape(options.escape)
            .double_quote(true)
            .build();
        let mut file = Self {
            input: reader,
            core,
            path: path.to_owned(),
            name: name.to_owned(),
            delimiter: options.delimiter,
            quote: options.quote,
            escape: options.escape,
            charset: options.charset,
            null_marker: options.null_marker.clone(),
            max_row_bytes: max_row_bytes.max(1),
            header: Vec::new(),
            record: Record::default(),
            prefix: Vec::new(),
            scratch: Record {
                fields: vec![0; SCRATCH_FIELD_BYTES],
                ends: vec![0; SCRATCH_ENDS],
                len: 0,
            },
            records: 0,
            first_record: None,
            first_record_is_data: !options.header,
            text: String::new(),
            text_ends: Vec::new(),
            line: None,
        };
        let mut first = Record::default();
        match file.read(&mut first)? {
            Read::End => return Err(empty_header(name)),
            Read::Oversized { bytes, .. } => {
                let what = if options.header {
                    "the header row"
                } else {
                    "the first record"
                };
                return Err(undecodable(
                    name,
                    FORMAT,
                    oversized(what, bytes, file.max_row_bytes, false)
                        .replace("; the row is skipped", ""),
                ));
            }
            Read::Record => {}
        }
        if options.header {
            let mut header = Vec::with_capacity(first.len());
            for (column, field) in first.iter().enumerate() {
                let name_text = decode(field, file.charset).ok_or_else(|| {
                    undecodable(
                        name,
                        FORMAT,
                        format!(
                            "header column {} is not {} text",
                            column + 1,
                            file.charset.as_str()
                        ),
                    )
                })?;
                header.push(name_text.into_owned());
            }
            if header.iter().all(String::is_empty) {
                return Err(empty_header(name));
            }
            file.header = header;
        } else {
            file.header = (0..first.len())
                .map(|column| format!("_c{column}"))
                .collect();
            file.first_record = Some(first);
        }
        Ok(file)
    }

    /// Returns the column names.
    pub(crate) fn header(&self) -> &[String] {
        &self.header
    }

    /// Reads the next record into `values`, one entry per column: `None` for an empty field
    /// or the null marker.
    ///
    /// # Errors
    ///
    /// `INGEST-9201-400` when a field is not in the declared charset (the file is not what
    /// it says it is), or a read error.
    pub(crate) fn next(&mut self, values: &mut Vec<Option<String>>) -> Result<Next, ProcessError> {
        values.clear();
        let mut record = std::mem::take(&mut self.record);
        let result = self.next_into(&mut record, values);
        self.record = record;
        result
    }

    fn next_into(
        &mut self,
        record: &mut Record,
        values: &mut Vec<Option<String>>,
    ) -> Result<Next, ProcessError> {
        if let Some(done) = self.fetch(record)? {
            return Ok(done);
        }
        let position = self.position();
        for (column, field) in record.iter().enumerate() {
            let text = decode(field, self.charset)
                .ok_or_else(|| self.undecodable_field(position, column))?;
            let is_null = text.is_empty() || self.null_marker.as_deref() == Some(text.as_ref());
            values.push((!is_null).then(|| text.into_owned()));
        }
        Ok(self.check_width(record, position))
    }

    /// Reads the next record like [`next`](Self::next), without a `String` per field: after
    /// [`Next::Values`], [`text`](Self::text) holds the record's fields, all in the declared
    /// charset and one per column. The checks, their order and the messages are `next`'s.
    ///
    /// # Errors
    ///
    /// As [`next`](Self::next).
    pub(crate) fn next_text(&mut self) -> Result<Next, ProcessError> {
        let mut record = std::mem::take(&mut self.record);
        let result = self.next_text_into(&mut record);
        self.record = record;
        result
    }

    fn next_text_into(&mut self, record: &mut Record) -> Result<Next, ProcessError> {
        if self.first_record.is_none() && self.plain_text_line() {
            return Ok(Next::Values);
        }
        if let Some(done) = self.fetch(record)? {
            return Ok(done);
        }
        let position = self.position();
        let end = record.ends[..record.len].last().copied().unwrap_or(0);
        let bytes = &record.fields[..end];
        let ends = &record.ends[..record.len];
        self.text.clear();
        self.text_ends.clear();
        let whole = match self.charset {
            Charset::Utf8 => simdutf8::basic::from_utf8(bytes)
                .ok()
                .filter(|text| ends.iter().all(|&end| text.is_char_boundary(end))),
            Charset::UsAscii => bytes
                .is_ascii()
                .then(|| std::str::from_utf8(bytes).expect("ASCII is UTF-8")),
            Charset::Latin1 => {
                if bytes.is_ascii() {
                    Some(std::str::from_utf8(bytes).expect("ASCII is UTF-8"))
                } else {
                    let mut start = 0;
                    for &end in ends {
                        self.text
                            .extend(bytes[start..end].iter().map(|&byte| char::from(byte)));
                        self.text_ends.push(self.text.len());
                        start = end;
                    }
                    None
                }
            }
        };
        match whole {
            Some(text) => {
                self.text.push_str(text);
                self.text_ends.extend_from_slice(ends);
            }
            None if self.text_ends.len() == ends.len() => {}
            None => {
                // Some field is not in the charset: the first one is the error, as in `next`.
                let column = record
                    .iter()
                    .position(|field| decode(field, self.charset).is_none())
                    .unwrap_or(0);
                return Err(self.undecodable_field(position, column));
            }
        }
        Ok(self.check_width(record, position))
    }

    /// Returns the fields of the record last read by [`next_text`](Self::next_text).
    pub(crate) fn text(&self) -> RecordText<'_> {
        let text = match self.line {
            Some(len) => simdutf8::basic::from_utf8(&self.input.buffer()[..len])
                .expect("a plain line was checked to be text when it was read"),
            None => self.text.as_str(),
        };
        RecordText {
            text,
            ends: &self.text_ends,
            separated: self.line.is_some(),
            null_marker: self.null_marker.as_deref(),
        }
    }

    /// Consumes the plain line last read by [`next_text`](Self::next_text), if any.
    fn consume_line(&mut self) {
        if let Some(len) = self.line.take() {
            self.input.consume(len + 1);
        }
    }

    /// Takes the next record as a plain line left in the input's buffer, without copying it:
    /// a line [`read_plain_line`](Self::read_plain_line) would split, in the declared
    /// charset as it is (UTF-8, or ASCII), with one field per column and an ASCII
    /// delimiter. `false` leaves the record to [`read`](Self::read).
    fn plain_text_line(&mut self) -> bool {
        self.consume_line();
        if !self.delimiter.is_ascii() {
            return false;
        }
        let Ok(input) = self.input.fill_buf() else {
            return false;
        };
        let Some(line) = plain_line(input, self.quote, self.escape, self.max_row_bytes) else {
            return false;
        };
        self.text_ends.clear();
        let ascii = delimiters(line, self.delimiter, &mut self.text_ends);
        if self.text_ends.len() + 1 != self.header.len() {
            return false;
        }
        // ASCII is text in every charset; `text` checks UTF-8 as it borrows the line.
        let is_text =
            ascii || (self.charset == Charset::Utf8 && simdutf8::basic::from_utf8(line).is_ok());
        if !is_text {
            return false;
        }
        self.line = Some(line.len());
        self.records += 1;
        true
    }

    /// Reads the next record into `record`; `Some` when there is none, or it is oversized.
    fn fetch(&mut self, record: &mut Record) -> Result<Option<Next>, ProcessError> {
        match self.first_record.take() {
            Some(first) => *record = first,
            None => match self.read(record)? {
                Read::End => return Ok(Some(Next::End)),
                Read::Record => {}
                Read::Oversized { bytes, to_end } => {
                    let position = self.position();
                    let mut message = oversized(
                        &format!("record {position}"),
                        bytes,
                        self.max_row_bytes,
                        to_end,
                    );
                    if to_end {
                        message.push_str(" (is a quoted field left open?)");
                    }
                    let raw = self.prefix.trim_ascii_start().to_vec();
                    return Ok(Some(Next::Oversized { raw, message }));
                }
            },
        }
        Ok(None)
    }

    fn undecodable_field(&self, position: u64, column: usize) -> ProcessError {
        undecodable(
            &self.name,
            FORMAT,
            format!(
                "record {position}, column {} is not {} text",
                column + 1,
                self.charset.as_str()
            ),
        )
    }

    /// `Values` for a record of one field per column, else the corrupt row.
    fn check_width(&self, record: &Record, position: u64) -> Next {
        if record.len() != self.header.len() {
            return Next::Corrupt {
                raw: self.raw(record),
                message: format!(
                    "record {position} has {} fields, the header has {}",
                    record.len(),
                    self.header.len()
                ),
            };
        }
        Next::Values
    }

    /// Returns the 1-based number of the record last read: records, not lines, as quoted
    /// fields span lines; with a header, record 1 is the first data row.
    fn position(&self) -> u64 {
        self.records.saturating_sub(1) + u64::from(self.first_record_is_data)
    }

    /// Reads one record into `record`, holding at most the row limit: buffers grow by
    /// doubling up to it, and a larger record is read on into a fixed scratch buffer and
    /// dropped. Linear in the input whatever its shape.
    fn read(&mut self, record: &mut Record) -> Result<Read, ProcessError> {
        use csv_core::ReadRecordResult as Result_;

        self.consume_line();
        record.len = 0;
        self.prefix.clear();
        if self.read_plain_line(record) {
            return Ok(Read::Record);
        }
        let limit = self.max_row_bytes;
        let (mut out, mut ends) = (0, 0);
        let mut bytes: u64 = 0;
        let mut oversized = false;
        loop {
            let input = match self.input.fill_buf() {
                Ok(input) => input,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ProcessError::Read {
                        path: self.path.clone(),
                        source,
                    });
                }
            };
            let at_end = input.is_empty();
            let (result, read, written, ended) = if oversized {
                let scratch = &mut self.scratch;
                self.core
                    .read_record(input, &mut scratch.fields, &mut scratch.ends)
            } else {
                self.core
                    .read_record(input, &mut record.fields[out..], &mut record.ends[ends..])
            };
            let keep = OVERSIZED_PREFIX_BYTES.min(limit);
            if self.prefix.len() < keep {
                let room = (keep - self.prefix.len()).min(read);
                self.prefix.extend_from_slice(&input[..room]);
            }
            self.input.consume(read);
            bytes += read as u64;
            if !oversized {
                out += written;
                ends += ended;
                if out + ends > limit {
                    oversized = true;
                }
            }
            match result {
                Result_::InputEmpty => {}
                Result_::OutputFull | Result_::OutputEndsFull if oversized => {}
                Result_::OutputFull | Result_::OutputEndsFull if out + ends >= limit => {
                    oversized = true;
                }
                Result_::OutputFull => grow(&mut record.fields, limit),
                Result_::OutputEndsFull => grow(&mut record.ends, limit),
                Result_::Record => {
                    self.records += 1;
                    if oversized {
                        // Don't keep a buffer the size of the limit for the rows to come.
                        record.fields = Vec::new();
                        record.ends = Vec::new();
                        return Ok(Read::Oversized {
                            bytes,
                            to_end: at_end,
                        });
                    }
                    record.len = ends;
                    return Ok(Read::Record);
                }
                Result_::End => return Ok(Read::End),
            }
        }
    }

    /// Reads the next record without csv_core when it is a plain line already buffered: not
    /// empty, no quote, escape or carriage return, within the row limit. Its fields are then
    /// the line split at the delimiter, as csv_core would give them; `false` leaves the
    /// record to csv_core (the input is untouched).
    fn read_plain_line(&mut self, record: &mut Record) -> bool {
        let Ok(input) = self.input.fill_buf() else {
            return false;
        };
        let Some(line) = plain_line(input, self.quote, self.escape, self.max_row_bytes) else {
            return false;
        };
        let newline = line.len();
        if record.fields.len() < line.len() {
            record.fields.resize(line.len(), 0);
        }
        let mut out = 0;
        let mut start = 0;
        let mut fields = 0;
        let ends = memchr::memchr_iter(self.delimiter, line).chain(std::iter::once(line.len()));
        for end in ends {
            let field = &line[start..end];
            record.fields[out..out + field.len()].copy_from_slice(field);
            out += field.len();
            if record.ends.len() == fields {
                record.ends.push(out);
            } else {
                record.ends[fields] = out;
            }
            fields += 1;
            start = end + 1;
        }
        record.len = fields;
        self.input.consume(newline + 1);
        self.records += 1;
        true
    }

    /// Returns the record written back as one CSV line, for `_corrupt_record`.
    fn raw(&self, record: &Record) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        if writer.write_record(record.iter()).is_err() {
            return Vec::new();
        }
        let mut raw = writer.into_inner().unwrap_or_default();
        if raw.last() == Some(&b'\n') {
            raw.pop();
        }
        raw
    }
}

/// The scratch buffers an oversized record is read through.
const SCRATCH_FIELD_BYTES: usize = 64 * 1024;
const SCRATCH_ENDS: usize = 1024;

/// Doubles a record buffer, to at most one more than `limit` entries.
/// Returns the first line of `input` (without its newline) when it is a plain record: not
/// empty, no quote, escape or carriage return, and its field bytes plus one per field
/// (at most its length plus one) under `limit`, as [`CsvFile::read`] counts them.
fn plain_line(input: &[u8], quote: u8, escape: Option<u8>, limit: usize) -> Option<&[u8]> {
    let newline = memchr::memchr(b'\n', input)?;
    let line = &input[..newline];
    let special = match escape {
        Some(escape) => memchr::memchr3(quote, b'\r', escape, line),
        None => memchr::memchr2(quote, b'\r', line),
    };
    (!line.is_empty() && special.is_none() && line.len() + 1 < limit).then_some(line)
}

/// Appends the position of each `delimiter` in `line`, eight bytes at a time; returns
/// whether the line is ASCII.
fn delimiters(line: &[u8], delimiter: u8, positions: &mut Vec<usize>) -> bool {
    const LOW: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = 0x0101_0101_0101_0101 * u64::from(delimiter);
    let mut words = line.chunks_exact(8);
    let mut at = 0;
    let mut high = 0;
    for word in words.by_ref() {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        let word = u64::from_le_bytes(bytes);
        high |= word;
        let x = word ^ pattern;
        // The high bit of each byte of `x` that is zero (exact for every byte).
        let mut found = !(((x & LOW) + LOW) | x | LOW);
        while found != 0 {
            positions.push(at + (found.trailing_zeros() / 8) as usize);
            found &= found - 1;
        }
        at += 8;
    }
    let mut ascii = high & !LOW == 0;
    for (offset, &byte) in words.remainder().iter().enumerate() {
        if byte == delimiter {
            positions.push(at + offset);
        }
        ascii &= byte.is_ascii();
    }
    ascii
}

fn grow<T: Default + Clone>(buffer: &mut Vec<T>, limit: usize) {
    let size = buffer
        .len()
        .saturating_mul(2)
        .max(64)
        .min(limit.saturating_add(1));
    buffer.resize(size.max(buffer.len() + 1), T::default());
}
/// Fails a file whose first line is blank: `106` when nothing else follows, else `118`.
fn check_first_line(reader: &mut Input, path: &Path, name: &str) -> Result<(), ProcessError> {
    let buffer = reader.fill_buf().map_err(|source| ProcessError::Read {
        path: path.to_owned(),
        source,
    })?;
    if buffer.is_empty() {
        return Err(empty(name));
    }
    let first_line = buffer
        .iter()
        .position(|&byte| byte == b'\n')
        .map_or(buffer, |end| &buffer[..end]);
    if !first_line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    match skip_leading_whitespace(reader, path)? {
        LeadingWhitespace::OnlyWhitespace => Err(empty(name)),
        _ => Err(empty_header(name)),
    }
}

fn empty_header(name: &str) -> ProcessError {
    ProcessError::File(FileError::EmptyHeader {
        file: name.to_owned(),
    })
}

/// Decodes one field; `None` when the bytes are not in the charset.
fn decode(bytes: &[u8], charset: Charset) -> Option<Cow<'_, str>> {
    match charset {
        Charset::Utf8 => simdutf8::basic::from_utf8(bytes).ok().map(Cow::Borrowed),
        Charset::UsAscii => bytes
            .is_ascii()
            .then(|| Cow::Borrowed(std::str::from_utf8(bytes).expect("ASCII is UTF-8"))),
        Charset::Latin1 => Some(if bytes.is_ascii() {
            Cow::Borrowed(std::str::from_utf8(bytes).expect("ASCII is UTF-8"))
        } else {
            Cow::Owned(bytes.iter().map(|&byte| char::from(byte)).collect())
        }),
    }
}
