use lakeport_parquet::{Charset, CsvOptions, FileFormat, ProcessOptions};
use serde_json::json;

use crate::support::Batch;

const NS: &str = "_3f2a9c7e1b4d4e8f9a0b1c2d3e4f5a6b";

/// Encodes text as ISO-8859-1 (every char is below U+0100 here).
fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("a Latin-1 character"))
        .collect()
}

fn semicolon_options() -> CsvOptions {
    CsvOptions {
        delimiter: b';',
        quote: b'\'',
        escape: Some(b'\\'),
        null_marker: Some("NULL".to_owned()),
        header: true,
        charset: Charset::Latin1,
    }
}

#[test]
fn csv_with_custom_options_maps_headers_into_the_dataset_namespace() {
    let mut batch = Batch::new(
        "adhoc.schema.json",
        ProcessOptions {
            diagnostics: true,
            ..ProcessOptions::default()
        },
    );
    let text = "name;visits;joined;active;address.city;note\r\n\
        'Zoë; the first';3;2024-02-29;true;Sète;NULL\r\n\
        Müller;;2023-01-01;false;'';'it''s'\r\n\
        'O\\'Brien';2;;;;\r\n\
        NULL;1;;;;\r\n\
        Ann;x;;;;\r\n\
        Bob;1;;;\r\n";
    let format = FileFormat::Csv(semicolon_options());
    let stats = batch
        .process("members.csv", &latin1(text), &format)
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (6, 3));
    let output = batch.finish();
    assert_eq!(
        batch.output_rows(&output),
        [
            json!({NS: {"name": "Zoë; the first", "visits": 3, "joined": "2024-02-29", "active": true,
                "address": {"city": "Sète"}}}),
            json!({NS: {"name": "Müller", "joined": "2023-01-01", "active": false, "note": "it's"}}),
            json!({NS: {"name": "O'Brien", "visits": 2}}),
        ]
    );
    assert_eq!(
        output.error_counts,
        [
            ("INGEST-1401-400".to_owned(), 1),
            ("INGEST-1555-400".to_owned(), 1),
            ("INGEST-9101-400".to_owned(), 1)
        ]
        .into()
    );
    let conversion = batch.json_lines("meta/row_errors/conversion_errors_1.json");
    assert_eq!(
        conversion,
        [json!({NS: {"name": "Ann", "visits": "x"},
            "_errors": [{"column": format!("{NS}.visits"), "code": "INGEST-9101-400",
                "message": conversion[0]["_errors"][0]["message"]}],
            "_filename": "members.csv"})]
    );
    let parsing = batch.json_lines("meta/row_errors/parsing_errors_1.json");
    assert_eq!(
        parsing,
        [json!({"_corrupt_record": "Bob;1;;;",
            "_errors": [{"code": "1401", "message": "record 6 has 5 fields, the header has 6"}],
            "_filename": "members.csv"})]
    );
    let validation = batch.json_lines("meta/row_errors/validation_errors_1.json");
    assert_eq!(validation[0][NS], json!({"visits": "1"}));
    assert_eq!(
        validation[0]["_validationErrors"][0]["pointerToViolation"],
        format!("#/{NS}/name")
    );
}

#[test]
fn default_csv_options_read_utf8_with_a_byte_order_mark() {
    let mut batch = Batch::new("adhoc.schema.json", ProcessOptions::default());
    let format = FileFormat::Csv(CsvOptions::default());
    let bytes = "\u{feff}name,note,visits\n\"Chloé, \\\"CJ\\\"\",\"two\nlines\",\"\"\n".as_bytes();
    batch.process("utf8.csv", bytes, &format).unwrap();
    let output = batch.finish();
    assert_eq!(
        batch.output_rows(&output),
        [json!({NS: {"name": "Chloé, \"CJ\"", "note": "two\nlines"}})]
    );
}

#[test]
fn the_header_row_alone_is_a_file_without_rows() {
    let mut batch = Batch::new("adhoc.schema.json", ProcessOptions::default());
    let stats = batch
        .process(
            "empty.csv",
            b"name,visits\n",
            &FileFormat::Csv(CsvOptions::default()),
        )
        .unwrap();
    assert_eq!(stats.input_records, 0);
}
