//! The input format of a batch's files: Catalog `inputFormat` with the dataset's
//! `fileDescription` as CSV fallback (spec §3.1, §3.8).

use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// How every file of a batch is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileFormat {
    /// JSON Lines (one object per line) or, with `multi_line`, one top-level JSON array.
    Json { multi_line: bool },
    /// Delimited text with a header row.
    Csv(CsvOptions),
    /// Apache Parquet.
    Parquet,
}

/// How a CSV file is split into records and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field separator (`,`).
    pub delimiter: u8,
    /// The quote character (`"`); doubled quotes inside a quoted field stand for one quote.
    pub quote: u8,
    /// The escape character inside quoted fields (`\`), or none.
    pub escape: Option<u8>,
    /// A field equal to this text is null; empty fields are always null.
    pub null_marker: Option<String>,
    /// Whether the first record names the columns. Ingestion requires it (spec §7.2).
    pub header: bool,
    /// How bytes become text.
    pub charset: Charset,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            delimiter: b',',
            quote: b'"',
            escape: Some(b'\\'),
            null_marker: None,
            header: true,
            charset: Charset::Utf8,
        }
    }
}

/// The character sets a CSV file may declare (Catalog `inputFormat.charset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Charset {
    /// `UTF-8` (the default).
    #[default]
    Utf8,
    /// `US-ASCII`: any byte above 0x7F makes the file undecodable.
    UsAscii,
    /// `ISO-8859-1`: every byte is the code point of the same value.
    Latin1,
}

impl Charset {
    /// Parses a charset name as Catalog stores it (case-insensitive, common aliases too).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().replace('_', "-").as_str() {
            "UTF-8" | "UTF8" => Some(Self::Utf8),
            "US-ASCII" | "ASCII" => Some(Self::UsAscii),
            "ISO-8859-1" | "ISO8859-1" | "LATIN1" | "LATIN-1" => Some(Self::Latin1),
            _ => None,
        }
    }

    /// Returns the canonical name (`UTF-8`, `US-ASCII`, `ISO-8859-1`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "UTF-8",
            Self::UsAscii => "US-ASCII",
            Self::Latin1 => "ISO-8859-1",
        }
    }
}

impl FileFormat {
    /// Returns the format described by a batch's `inputFormat`; CSV options missing there fall
    /// back to the dataset's `fileDescription` (`delimiters[0]`, `quotes[0]`, `escapes[0]`,
    /// `nullMarkers[0]`, `header`, `charset`), then to `,` `"` `\` UTF-8 with a header. A
    /// missing `format` falls back to the `fileDescription` format when it is json, csv or
    /// parquet, else parquet (spec §8.1).
    ///
    /// # Errors
    ///
    /// A message naming the field when a format, charset or character option is not
    /// supported (an unknown format, a delimiter of more than one ASCII character, …).
    pub fn from_input_format(
        input_format: &Value,
        dataset_file_description: Option<&Value>,
    ) -> Result<Self, String> {
        let empty = Map::new();
        let input = input_format.as_object().unwrap_or(&empty);
        let description = dataset_file_description
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let format = match input.get("format") {
            Some(Value::String(name)) if !name.is_empty() => name.to_ascii_lowercase(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                match description.get("format").and_then(Value::as_str) {
                    Some(name)
                        if ["json", "csv", "parquet"]
                            .contains(&name.to_ascii_lowercase().as_str()) =>
                    {
                        name.to_ascii_lowercase()
                    }
                    _ => "parquet".to_owned(),
                }
            }
            Some(other) => return Err(format!("inputFormat.format must be a string, not {other}")),
        };
        match format.as_str() {
            "json" => Ok(Self::Json {
                multi_line: flag(input, "isMultiLineJson")?.unwrap_or(false),
            }),
            "parquet" => Ok(Self::Parquet),
            "csv" => csv_options(input, description).map(Self::Csv),
            other => Err(format!(
                "inputFormat.format {other:?} is not supported (expected json, csv or parquet)"
            )),
        }
    }

    /// Returns the lower-case format name (`json`, `csv`, `parquet`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Json { .. } => "json",
            Self::Csv(_) => "csv",
            Self::Parquet => "parquet",
        }
    }
}

fn csv_options(
    input: &Map<String, Value>,
    description: &Map<String, Value>,
) -> Result<CsvOptions, String> {
    let defaults = CsvOptions::default();
    let delimiter = match text_option(input, "delimiter", description, "delimiters")? {
        Some(text) => single_byte("delimiter", &text)?,
        None => defaults.delimiter,
    };
    let quote = match text_option(input, "quote", description, "quotes")? {
        Some(text) => single_byte("quote", &text)?,
        None => defaults.quote,
    };
    let escape = match text_option(input, "escape", description, "escapes")? {
        // An empty escape turns escaping off (Spark's convention).
        Some(text) if text.is_empty() => None,
        Some(text) => Some(single_byte("escape", &text)?),
        None => defaults.escape,
    };
    let null_marker = text_option(input, "nullMarker", description, "nullMarkers")?;
    let header = match flag(input, "header")? {
        Some(header) => header,
        None => flag(description, "header")?.unwrap_or(defaults.header),
    };
    let charset = match text_option(input, "charset", description, "charset")? {
        Some(name) => Charset::parse(&name).ok_or_else(|| {
            format!("charset {name:?} is not supported (expected UTF-8, US-ASCII or ISO-8859-1)")
        })?,
        None => defaults.charset,
    };
    Ok(CsvOptions {
        delimiter,
        quote,
        escape,
        null_marker,
        header,
        charset,
    })
}

/// Returns the `inputFormat` text option `key`, else the `fileDescription` option
/// `description_key` (an array whose first element is used, or a plain string).
fn text_option(
    input: &Map<String, Value>,
    key: &str,
    description: &Map<String, Value>,
    description_key: &str,
) -> Result<Option<String>, String> {
    match input.get(key) {
        Some(Value::String(text)) => return Ok(Some(text.clone())),
        Some(Value::Null) | None => {}
        Some(other) => return Err(format!("inputFormat.{key} must be a string, not {other}")),
    }
    match description.get(description_key) {
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Array(values)) => match values.first() {
            Some(Value::String(text)) => Ok(Some(text.clone())),
            None | Some(Value::Null) => Ok(None),
            Some(other) => Err(format!(
                "fileDescription.{description_key} must hold strings, not {other}"
            )),
        },
        Some(Value::Null) | None => Ok(None),
        Some(other) => Err(format!(
            "fileDescription.{description_key} must be an array of strings, not {other}"
        )),
    }
}

/// Returns a boolean option given as a JSON boolean or as `"true"`/`"false"` (Catalog stores
/// `header` as a string, the import API takes a boolean).
fn flag(object: &Map<String, Value>, key: &str) -> Result<Option<bool>, String> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(value)) => Ok(Some(*value)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
        Some(other) => Err(format!("{key} must be true or false, not {other}")),
    }
}

/// Returns the one ASCII character of a CSV option; `\t` written as two characters is a tab.
fn single_byte(option: &str, text: &str) -> Result<u8, String> {
    match text.as_bytes() {
        [byte] if byte.is_ascii() => Ok(*byte),
        b"\\t" => Ok(b'\t'),
        _ => Err(format!(
            "{option} {text:?} is not supported (expected exactly one ASCII character)"
        )),
    }
}
