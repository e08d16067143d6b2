use lakeport_parquet::{OutputFile, ProcessOptions};
use serde_json::json;

use crate::support::{Batch, json_lines_format, paths};

fn diagnostics_on() -> ProcessOptions {
    ProcessOptions {
        diagnostics: true,
        ..ProcessOptions::default()
    }
}

const ROWS: &str = r#"{"_id": "ok", "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": "M-000001"}}
{"_id": "broken", "timestamp":
[1, 2]
{"_id": "conv", "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": "M-000002", "points": "many"}}
{"_id": "req", "_acme": {"memberId": "bad-id", "tier": "platinum"}}
{"_id": "fmt", "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": "M-000003", "email": "nope", "points": -5}}
"#;

#[test]
fn rejected_rows_are_written_with_their_reasons() {
    let mut batch = Batch::new("events.schema.json", diagnostics_on());
    let stats = batch
        .process("dir/rows.json", ROWS.as_bytes(), &json_lines_format())
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (6, 5));
    let output = batch.finish();
    assert_eq!(
        (
            output.input_records,
            output.output_records,
            output.failed_records
        ),
        (6, 1, 5)
    );
    assert_eq!(
        paths(&output.failed),
        ["failed/_SUCCESS", "failed/part-00001.json"]
    );
    assert_eq!(
        output.failed[0],
        OutputFile {
            relative_path: "failed/_SUCCESS".into(),
            records: 0,
            bytes: 0
        }
    );
    assert_eq!(output.failed[1].records, 5);
    assert_eq!(
        paths(&output.meta),
        [
            "meta/input_files/1.json",
            "meta/row_errors/conversion_errors_1.json",
            "meta/row_errors/parsing_errors_1.json",
            "meta/row_errors/validation_errors_1.json",
            "meta/row_errors_sample.json",
        ]
    );
    for file in output.failed.iter().chain(&output.meta) {
        let size = std::fs::metadata(batch.out().join(&file.relative_path))
            .unwrap()
            .len();
        assert_eq!(size, file.bytes, "{}", file.relative_path);
    }
    // A row counts once per distinct code: `req` has a required, a pattern and an enum
    // violation; `fmt` a format and a range violation.
    assert_eq!(
        output.error_counts,
        [
            ("INGEST-1401-400".to_owned(), 2),
            ("INGEST-1555-400".to_owned(), 1),
            ("INGEST-9101-400".to_owned(), 1),
            ("INGEST-9102-400".to_owned(), 1),
            ("INGEST-9103-400".to_owned(), 1),
            ("INGEST-9104-400".to_owned(), 1),
            ("INGEST-9105-400".to_owned(), 1),
        ]
        .into()
    );

    let parsing = batch.json_lines("meta/row_errors/parsing_errors_1.json");
    assert_eq!(parsing.len(), 2);
    assert_eq!(
        parsing[0]["_corrupt_record"],
        r#"{"_id": "broken", "timestamp":"#
    );
    assert_eq!(parsing[0]["_errors"][0]["code"], "1401");
    assert!(
        parsing[0]["_errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("line 2 is not valid JSON: "),
        "{}",
        parsing[0]
    );
    assert_eq!(parsing[0]["_filename"], "dir/rows.json");
    assert_eq!(parsing[1]["_corrupt_record"], "[1,2]");

    let conversion = batch.json_lines("meta/row_errors/conversion_errors_1.json");
    assert_eq!(conversion.len(), 1);
    assert_eq!(conversion[0]["_id"], "conv");
    assert_eq!(conversion[0]["_acme"]["points"], "many");
    assert_eq!(
        conversion[0]["_errors"],
        json!([{"column": "_acme.points", "code": "INGEST-9101-400",
            "message": conversion[0]["_errors"][0]["message"]}])
    );

    let validation = batch.json_lines("meta/row_errors/validation_errors_1.json");
    assert_eq!(validation.len(), 2);
    assert_eq!(validation[0]["_id"], "req");
    let errors = validation[0]["_validationErrors"].as_array().unwrap();
    let pointers: Vec<&str> = errors
        .iter()
        .map(|error| error["pointerToViolation"].as_str().unwrap())
        .collect();
    assert_eq!(
        pointers,
        ["#/_acme/memberId", "#/_acme/tier", "#/timestamp"]
    );
    assert_eq!(errors[0]["keyword"], "pattern");
    assert_eq!(
        errors[0]["schemaLocation"],
        "#/properties/_acme/properties/memberId"
    );
    assert_eq!(errors[0]["causingExceptions"], json!([]));
    assert_eq!(validation[0]["_filename"], "dir/rows.json");

    // `failed/` holds every rejected row, in input order, in the same per-row formats.
    let failed = batch.json_lines("failed/part-00001.json");
    let failed_ids: Vec<String> = failed
        .iter()
        .map(|row| {
            row.get("_id")
                .map_or_else(|| row["_corrupt_record"].to_string(), ToString::to_string)
        })
        .collect();
    assert_eq!(
        failed_ids,
        [
            r#""{\"_id\": \"broken\", \"timestamp\":""#,
            r#""[1,2]""#,
            r#""conv""#,
            r#""req""#,
            r#""fmt""#
        ]
    );
    assert_eq!(batch.json_lines("meta/row_errors_sample.json"), failed);
    assert_eq!(
        batch.json_lines("meta/input_files/1.json"),
        [json!({"path": "dir/rows.json", "sizeInBytes": ROWS.len(),
            "inputRecordCount": 6, "failedRecordCount": 5})]
    );
}

#[test]
fn without_diagnostics_only_failed_rows_are_written() {
    let mut batch = Batch::new("events.schema.json", ProcessOptions::default());
    batch
        .process("rows.json", ROWS.as_bytes(), &json_lines_format())
        .unwrap();
    let output = batch.finish();
    assert_eq!(
        paths(&output.failed),
        ["failed/_SUCCESS", "failed/part-00001.json"]
    );
    assert!(output.meta.is_empty());
    assert!(!batch.out().join("meta").exists());
}

#[test]
fn the_error_sample_stops_at_one_hundred_rows() {
    let mut batch = Batch::new("events.schema.json", diagnostics_on());
    let rows = "{}\n".repeat(150);
    batch
        .process("empty-objects.json", rows.as_bytes(), &json_lines_format())
        .unwrap();
    let output = batch.finish();
    let sample = output
        .meta
        .iter()
        .find(|file| file.relative_path == "meta/row_errors_sample.json")
        .unwrap();
    assert_eq!(sample.records, 100);
    assert_eq!(
        output.error_counts,
        [("INGEST-1555-400".to_owned(), 150)].into()
    );
}

#[test]
fn too_many_fields_is_a_parsing_error() {
    let mut batch = Batch::new(
        "events.schema.json",
        ProcessOptions {
            max_fields_per_row: 3,
            diagnostics: true,
            ..ProcessOptions::default()
        },
    );
    let row = r#"{"_id": "x", "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": "M-000001", "points": 1}}"#;
    batch
        .process("wide.json", row.as_bytes(), &json_lines_format())
        .unwrap();
    let output = batch.finish();
    assert_eq!(
        output.error_counts,
        [("INGEST-1401-400".to_owned(), 1)].into()
    );
    let parsing = batch.json_lines("meta/row_errors/parsing_errors_1.json");
    assert_eq!(parsing[0]["_errors"][0]["code"], "1401");
}
