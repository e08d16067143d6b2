use std::fs::File;

use lakeport_parquet::ProcessOptions;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::support::{Batch, json_lines_format, jsonl, paths};

fn event(n: usize) -> Value {
    json!({"_id": format!("e{n}"), "timestamp": "2024-01-01T00:00:00Z",
        "_acme": {"memberId": format!("M-{n:06}")}})
}

/// Returns the row counts of each row group of an output part.
fn row_groups(batch: &Batch, relative_path: &str) -> Vec<i64> {
    let file = File::open(batch.out().join(relative_path)).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    reader
        .metadata()
        .row_groups()
        .iter()
        .map(|group| group.num_rows())
        .collect()
}

#[test]
fn parts_and_row_groups_roll_over_at_their_limits() {
    let mut batch = Batch::new(
        "events.schema.json",
        ProcessOptions {
            rows_per_row_group: 2,
            rows_per_part: 5,
            diagnostics: true,
            ..ProcessOptions::default()
        },
    );
    // Two files: parts continue across files; rejected rows roll like parts.
    let first: Vec<Value> = (1..=7).map(event).collect();
    let second: Vec<Value> = (8..=12).map(event).collect();
    batch
        .process("a.json", &jsonl(&first), &json_lines_format())
        .unwrap();
    batch
        .process("b.json", &jsonl(&second), &json_lines_format())
        .unwrap();
    let bad: Vec<Value> = (0..6).map(|n| json!({"_id": n})).collect();
    batch
        .process("bad.json", &jsonl(&bad), &json_lines_format())
        .unwrap();
    let output = batch.finish();

    assert_eq!(
        paths(&output.parts),
        [
            "part-00001.parquet",
            "part-00002.parquet",
            "part-00003.parquet"
        ]
    );
    let records: Vec<u64> = output.parts.iter().map(|part| part.records).collect();
    assert_eq!(records, [5, 5, 2]);
    assert_eq!(row_groups(&batch, "part-00001.parquet"), [2, 2, 1]);
    assert_eq!(row_groups(&batch, "part-00002.parquet"), [2, 2, 1]);
    assert_eq!(row_groups(&batch, "part-00003.parquet"), [2]);
    let ids: Vec<Value> = batch
        .output_rows(&output)
        .iter()
        .map(|row| row["_id"].clone())
        .collect();
    let expected: Vec<Value> = (1..=12).map(|n| json!(format!("e{n}"))).collect();
    assert_eq!(ids, expected);

    assert_eq!(
        paths(&output.failed),
        [
            "failed/_SUCCESS",
            "failed/part-00001.json",
            "failed/part-00002.json"
        ]
    );
    assert_eq!((output.failed[1].records, output.failed[2].records), (5, 1));
    assert!(paths(&output.meta).contains(&"meta/row_errors/validation_errors_2.json"));
    assert_eq!(
        batch.json_lines("meta/input_files/1.json").len(),
        3,
        "one line per input file"
    );
}

#[test]
fn large_files_flush_in_chunks_and_keep_row_order() {
    let mut batch = Batch::new(
        "events.schema.json",
        ProcessOptions {
            rows_per_row_group: 10_000,
            rows_per_part: 25_000,
            ..ProcessOptions::default()
        },
    );
    let rows: Vec<Value> = (0..30_000).map(event).collect();
    batch
        .process("big.json", &jsonl(&rows), &json_lines_format())
        .unwrap();
    let output = batch.finish();
    let records: Vec<u64> = output.parts.iter().map(|part| part.records).collect();
    assert_eq!(records, [25_000, 5_000]);
    assert_eq!(
        row_groups(&batch, "part-00001.parquet"),
        [10_000, 10_000, 5_000]
    );
    let read = batch.output_rows(&output);
    assert_eq!(read.len(), 30_000);
    assert_eq!(read[29_999]["_id"], "e29999");
    assert_eq!(read[12_345]["_acme"]["memberId"], "M-012345");
}

/// A Parquet part that cannot be created (here the output directory became a file)
/// surfaces as a write error, never as lost rows: written on the reading thread (one
/// thread) or on a writing thread of its own (two or three).
#[test]
fn a_failure_of_the_parquet_writer_is_reported() {
    for threads in [1, 2, 3] {
        let mut batch = Batch::new(
            "events.schema.json",
            ProcessOptions {
                rows_per_row_group: 10,
                threads,
                ..ProcessOptions::default()
            },
        );
        std::fs::remove_dir_all(batch.out()).unwrap();
        std::fs::write(batch.out(), b"not a directory").unwrap();
        let rows: Vec<Value> = (1..=5_000).map(event).collect();
        let processed = batch.process("a.json", &jsonl(&rows), &json_lines_format());
        let finished = batch.processor.take().unwrap().finish();
        let err = match (processed, finished) {
            (Err(err), _) => err.to_string(),
            (Ok(_), Err(err)) => err.to_string(),
            (Ok(_), Ok(output)) => panic!("rows were lost silently ({threads}): {output:?}"),
        };
        assert!(err.starts_with("cannot write"), "{threads} threads: {err}");
    }
}
