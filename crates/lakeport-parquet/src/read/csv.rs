//! CSV input: records as byte fields, decoded with the declared charset; the header row
//! names the columns.

use std::borrow::Cow;
use std::io::BufRead;
use std::path::Path;

use csv::ByteRecord;

use super::{
    Input, LeadingWhitespace, READ_BUFFER, empty, skip_bom, skip_leading_whitespace, undecodable,
};
use crate::error::{FileError, ProcessError};
use crate::format::{Charset, CsvOptions};

const FORMAT: &str = "CSV";

/// An open CSV file positioned after its header row.
pub(crate) struct CsvFile {
    reader: csv::Reader<Input>,
    path: std::path::PathBuf,
    name: String,
    delimiter: u8,
    quote: u8,
    charset: Charset,
    null_marker: Option<String>,
    header: Vec<String>,
    record: ByteRecord,
    /// Without a header row, the first record is data that was read to count the columns.
    first_record: Option<ByteRecord>,
    /// Whether record 0 is data (no header row), for 1-based record numbers in messages.
    first_record_is_data: bool,
}

/// One step of [`CsvFile::next`].
pub(crate) enum Next {
    /// No more records.
    End,
    /// The record's values are in the caller's buffer (`None` for null).
    Values,
    /// The record does not have one field per column: a corrupt row.
    Corrupt { raw: Vec<u8>, message: String },
}

impl CsvFile {
    /// Opens a CSV file and reads its header row (or, with `header: false`, names the columns
    /// `_c0`, `_c1`, … after the first record).
    ///
    /// # Errors
    ///
    /// `106` for a blank file, `118` when the first line or every header name is empty,
    /// `INGEST-9201-400` when the header is not in the declared charset.
    pub(crate) fn open(
        mut reader: Input,
        path: &Path,
        name: &str,
        options: &CsvOptions,
    ) -> Result<Self, ProcessError> {
        skip_bom(&mut reader, path)?;
        check_first_line(&mut reader, path, name)?;
        let mut builder = csv::ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter)
            .quote(options.quote)
            .escape(options.escape)
            .double_quote(true)
            .buffer_capacity(READ_BUFFER);
        let mut file = Self {
            reader: builder.from_reader(reader),
            path: path.to_owned(),
            name: name.to_owned(),
            delimiter: options.delimiter,
            quote: options.quote,
            charset: options.charset,
            null_marker: options.null_marker.clone(),
            header: Vec::new(),
            record: ByteRecord::new(),
            first_record: None,
            first_record_is_data: !options.header,
        };
        let mut first = ByteRecord::new();
        if !file.read(&mut first)? {
            return Err(empty_header(name));
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
        record: &mut ByteRecord,
        values: &mut Vec<Option<String>>,
    ) -> Result<Next, ProcessError> {
        match self.first_record.take() {
            Some(first) => *record = first,
            None => {
                if !self.read(record)? {
                    return Ok(Next::End);
                }
            }
        }
        // Records, not lines: quoted fields span lines, and csv's line count is off by one
        // per CRLF. With a header, record 1 is the first data row.
        let position = record.position().map_or(0, csv::Position::record)
            + u64::from(self.first_record_is_data);
        for (column, field) in record.iter().enumerate() {
            let text = decode(field, self.charset).ok_or_else(|| {
                undecodable(
                    &self.name,
                    FORMAT,
                    format!(
                        "record {position}, column {} is not {} text",
                        column + 1,
                        self.charset.as_str()
                    ),
                )
            })?;
            let is_null = text.is_empty() || self.null_marker.as_deref() == Some(text.as_ref());
            values.push((!is_null).then(|| text.into_owned()));
        }
        if record.len() != self.header.len() {
            return Ok(Next::Corrupt {
                raw: self.raw(record),
                message: format!(
                    "record {position} has {} fields, the header has {}",
                    record.len(),
                    self.header.len()
                ),
            });
        }
        Ok(Next::Values)
    }

    /// Returns the values of the record last read by [`next`](Self::next) again, for a
    /// rejected row's diagnostics.
    pub(crate) fn current_values(&self) -> Vec<Option<String>> {
        self.record
            .iter()
            .map(|field| {
                let text =
                    decode(field, self.charset).unwrap_or_else(|| String::from_utf8_lossy(field));
                let is_null = text.is_empty() || self.null_marker.as_deref() == Some(text.as_ref());
                (!is_null).then(|| text.into_owned())
            })
            .collect()
    }

    /// Reads one record; `false` at the end of the file.
    fn read(&mut self, record: &mut ByteRecord) -> Result<bool, ProcessError> {
        self.reader.read_byte_record(record).map_err(|err| {
            if err.is_io_error() {
                let csv::ErrorKind::Io(source) = err.into_kind() else {
                    unreachable!("is_io_error() holds")
                };
                ProcessError::Read {
                    path: self.path.clone(),
                    source,
                }
            } else {
                undecodable(&self.name, FORMAT, err.to_string())
            }
        })
    }

    /// Returns the record written back as one CSV line, for `_corrupt_record`.
    fn raw(&self, record: &ByteRecord) -> Vec<u8> {
        let mut writer = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .quote(self.quote)
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(Vec::new());
        if writer.write_byte_record(record).is_err() {
            return Vec::new();
        }
        let mut raw = writer.into_inner().unwrap_or_default();
        if raw.last() == Some(&b'\n') {
            raw.pop();
        }
        raw
    }
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
        Charset::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
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
