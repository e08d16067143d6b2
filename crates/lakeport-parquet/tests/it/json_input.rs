use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, TimestampMicrosecondType};
use arrow_schema::{DataType, TimeUnit};
use lakeport_parquet::{FileFormat, FileStats, ProcessOptions};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use serde_json::json;

use crate::support::{Batch, json_lines_format, jsonl, paths};

#[test]
fn nested_json_lines_round_trip_through_parquet() {
    let mut batch = Batch::new("events.schema.json", ProcessOptions::default());
    let rows = [
        json!({"_id": "e1", "timestamp": "2024-03-01T10:00:00+02:00",
            "_acme": {"memberId": "M-000001", "tier": "gold", "points": 250,
                "birthday": "1990-02-28", "attrs": {"channel": "web", "locale": "fr-FR"},
                "scores": [1.5, 2, null], "visits": [{"at": "2024-03-01T08:00:00.5Z", "page": "/home"}, {"page": "/cart"}]},
            "unknownField": "dropped"}),
        // Epoch milliseconds are a date-time too; numbers convert to a string field.
        json!({"_id": 2, "timestamp": 1_700_000_000_000_i64, "_acme": {"memberId": "M-000002"}}),
        json!({"_id": "e3", "timestamp": "2024-12-31T23:59:59.123456789Z",
            "_acme": {"memberId": "M-000003", "attrs": {}, "scores": []}}),
    ];
    let mut bytes = jsonl(&rows);
    bytes.extend_from_slice(b"\n\n   \n"); // blank lines are not rows
    let stats = batch
        .process("events/day=1/a.json", &bytes, &json_lines_format())
        .unwrap();
    assert_eq!(
        stats,
        FileStats {
            input_records: 3,
            failed_records: 0,
            input_bytes: bytes.len() as u64
        }
    );
    let output = batch.finish();
    assert_eq!(paths(&output.parts), ["part-00001.parquet"]);
    assert_eq!(
        (
            output.input_records,
            output.output_records,
            output.failed_records
        ),
        (3, 3, 0)
    );
    assert!(output.failed.is_empty() && output.meta.is_empty());
    assert_eq!(output.parts[0].records, 3);
    assert_eq!(output.output_bytes, output.parts[0].bytes);
    assert_eq!(
        std::fs::metadata(batch.out().join("part-00001.parquet"))
            .unwrap()
            .len(),
        output.output_bytes
    );

    assert_eq!(
        batch.output_rows(&output),
        [
            json!({"_id": "e1", "timestamp": "2024-03-01T08:00:00.000000Z",
                "_acme": {"memberId": "M-000001", "tier": "gold", "points": 250,
                    "birthday": "1990-02-28", "attrs": {"channel": "web", "locale": "fr-FR"},
                    "scores": [1.5, 2.0, null],
                    "visits": [{"at": "2024-03-01T08:00:00.500000Z", "page": "/home"}, {"page": "/cart"}]}}),
            json!({"_id": "2", "timestamp": "2023-11-14T22:13:20.000000Z", "_acme": {"memberId": "M-000002"}}),
            json!({"_id": "e3", "timestamp": "2024-12-31T23:59:59.123456Z",
                "_acme": {"memberId": "M-000003", "attrs": {}, "scores": []}}),
        ]
    );

    // The file itself is typed: UTC microsecond timestamps, Date32, a real map, Snappy.
    let reader = ParquetRecordBatchReaderBuilder::try_new(
        File::open(batch.out().join("part-00001.parquet")).unwrap(),
    )
    .unwrap();
    let column = reader.metadata().row_group(0).column(0);
    assert_eq!(column.compression(), Compression::SNAPPY);
    let schema = reader.schema().clone();
    assert_eq!(
        schema.field_with_name("timestamp").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("UTC")))
    );
    let read = reader.build().unwrap().next().unwrap().unwrap();
    let timestamps = read.column(1).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(timestamps.value(0), 1_709_280_000_000_000);
    let acme = read.column(2).as_struct();
    let birthday = acme.column_by_name("birthday").unwrap();
    assert_eq!(birthday.as_primitive::<Date32Type>().value(0), 7363);
    let attrs = acme.column_by_name("attrs").unwrap();
    assert!(matches!(attrs.data_type(), DataType::Map(_, _)));
    assert_eq!(
        schema
            .field_with_name("_acme")
            .unwrap()
            .metadata()
            .get("xdm:type")
            .map(String::as_str),
        Some("object")
    );
}

#[test]
fn a_json_array_file_is_read_element_by_element() {
    let mut batch = Batch::new("events.schema.json", ProcessOptions::default());
    let bytes = br#"
    [
      {"_id": "a1", "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": "M-000001"}},
      {"_id": "a2", "timestamp": "2024-01-02T00:00:00Z", "_acme": {"memberId": "M-000002", "points": 7}},
      {"_id": "a3", "timestamp": "not a date", "_acme": {"memberId": "M-000003"}},
      {"_id": "a4", "timestamp": "2024-01-04T00:00:00Z"}
    ]
    "#;
    let stats = batch
        .process("array.json", bytes, &FileFormat::Json { multi_line: true })
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (4, 1));
    let output = batch.finish();
    // `a4` has no `_acme`: its required `memberId` is not required then (a null struct).
    assert_eq!(
        batch.output_rows(&output),
        [
            json!({"_id": "a1", "timestamp": "2024-01-01T00:00:00.000000Z", "_acme": {"memberId": "M-000001"}}),
            json!({"_id": "a2", "timestamp": "2024-01-02T00:00:00.000000Z", "_acme": {"memberId": "M-000002", "points": 7}}),
            json!({"_id": "a4", "timestamp": "2024-01-04T00:00:00.000000Z"}),
        ]
    );
    let failed = batch.json_lines("failed/part-00001.json");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["_id"], "a3");
    assert_eq!(failed[0]["_filename"], "array.json");
}

#[test]
fn several_files_add_up_and_no_passing_row_means_no_part() {
    let mut batch = Batch::new("events.schema.json", ProcessOptions::default());
    let bad = jsonl(&[json!({"_id": "x"})]);
    batch.process("a.json", &bad, &json_lines_format()).unwrap();
    batch.process("b.json", &bad, &json_lines_format()).unwrap();
    let output = batch.finish();
    assert!(output.parts.is_empty());
    assert_eq!(
        (
            output.input_records,
            output.failed_records,
            output.output_records
        ),
        (2, 2, 0)
    );
    assert_eq!(output.output_bytes, 0);
    assert!(!batch.out().join("part-00001.parquet").exists());
}
