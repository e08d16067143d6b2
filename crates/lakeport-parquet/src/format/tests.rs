use serde_json::{Value, json};

use super::*;

/// Parses `input` (with an optional dataset `fileDescription`) and checks the outcome.
#[track_caller]
fn check(input: Value, description: Option<Value>, expected: Result<FileFormat, &str>) {
    let actual = FileFormat::from_input_format(&input, description.as_ref());
    assert_eq!(actual, expected.map_err(str::to_owned));
}

fn csv(options: CsvOptions) -> Result<FileFormat, &'static str> {
    Ok(FileFormat::Csv(options))
}

#[test]
fn formats_are_case_insensitive_and_json_reads_the_multi_line_flag() {
    check(
        json!({"format": "JSON"}),
        None,
        Ok(FileFormat::Json { multi_line: false }),
    );
    check(
        json!({"format": "json", "isMultiLineJson": true}),
        None,
        Ok(FileFormat::Json { multi_line: true }),
    );
    check(
        json!({"format": "json", "isMultiLineJson": "true"}),
        None,
        Ok(FileFormat::Json { multi_line: true }),
    );
    check(json!({"format": "Parquet"}), None, Ok(FileFormat::Parquet));
    check(json!({"format": "CSV"}), None, csv(CsvOptions::default()));
}

#[test]
fn a_missing_format_falls_back_to_the_dataset_then_to_parquet() {
    check(json!({}), None, Ok(FileFormat::Parquet));
    check(Value::Null, None, Ok(FileFormat::Parquet));
    check(
        json!({}),
        Some(json!({"format": "json"})),
        Ok(FileFormat::Json { multi_line: false }),
    );
    // A stored form that is not an input format (`sequencefile`) still means parquet.
    check(
        json!({}),
        Some(json!({"format": "sequencefile"})),
        Ok(FileFormat::Parquet),
    );
}

#[test]
fn csv_options_come_from_the_input_format_then_the_file_description() {
    let description = json!({"format": "csv", "delimiters": [";"], "quotes": ["'"],
        "escapes": ["^"], "nullMarkers": ["NULL"], "header": true, "charset": "ISO-8859-1"});
    check(
        json!({"format": "csv"}),
        Some(description.clone()),
        csv(CsvOptions {
            delimiter: b';',
            quote: b'\'',
            escape: Some(b'^'),
            null_marker: Some("NULL".into()),
            header: true,
            charset: Charset::Latin1,
        }),
    );
    check(
        json!({"format": "csv", "delimiter": "|", "quote": "\"", "escape": "", "nullMarker": "-",
            "header": "false", "charset": "us-ascii"}),
        Some(description),
        csv(CsvOptions {
            delimiter: b'|',
            quote: b'"',
            escape: None,
            null_marker: Some("-".into()),
            header: false,
            charset: Charset::UsAscii,
        }),
    );
    check(
        json!({"format": "csv", "delimiter": "\\t"}),
        None,
        csv(CsvOptions {
            delimiter: b'\t',
            ..CsvOptions::default()
        }),
    );
}

#[test]
fn unsupported_options_are_refused_with_the_field_name() {
    check(
        json!({"format": "avro"}),
        None,
        Err("inputFormat.format \"avro\" is not supported (expected json, csv or parquet)"),
    );
    check(
        json!({"format": "csv", "delimiter": ";;"}),
        None,
        Err("delimiter \";;\" is not supported (expected exactly one ASCII character)"),
    );
    check(
        json!({"format": "csv", "charset": "UTF-16"}),
        None,
        Err("charset \"UTF-16\" is not supported (expected UTF-8, US-ASCII or ISO-8859-1)"),
    );
    check(
        json!({"format": "csv", "header": "yes"}),
        None,
        Err("header must be true or false, not \"yes\""),
    );
}
