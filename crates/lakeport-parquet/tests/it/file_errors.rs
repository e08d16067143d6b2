use lakeport_parquet::{
    BatchProcessor, Charset, CsvOptions, FileFormat, ProcessError, ProcessOptions, SetupError,
};
use serde_json::json;

use crate::parquet_input::{events, parquet_bytes};
use crate::support::{Batch, json_lines_format, schema};

/// Processes `bytes` as `name` and checks the file-level error's code and message.
#[track_caller]
fn check(schema_name: &str, name: &str, bytes: &[u8], format: &FileFormat, expected: (&str, &str)) {
    // On one thread, with decoding and writing overlapped, and with JSON Lines decoded on
    // three threads: the same error.
    for threads in [1, 2, 4] {
        check_with(schema_name, name, bytes, format, expected, threads);
    }
}

#[track_caller]
fn check_with(
    schema_name: &str,
    name: &str,
    bytes: &[u8],
    format: &FileFormat,
    expected: (&str, &str),
    threads: usize,
) {
    let options = ProcessOptions {
        threads,
        ..ProcessOptions::default()
    };
    let mut batch = Batch::new(schema_name, options);
    let actual = match batch.process(name, bytes, format) {
        Ok(stats) => panic!("{name} was accepted: {stats:?}"),
        Err(ProcessError::File(err)) => {
            assert_eq!(err.file(), name);
            (err.code(), err.to_string())
        }
        Err(other) => panic!("{name}: not a file-level error: {other}"),
    };
    assert_eq!((actual.0, actual.1.as_str()), expected);
}

fn csv() -> FileFormat {
    FileFormat::Csv(CsvOptions::default())
}

const ADHOC: &str = "adhoc.schema.json";
const EVENTS: &str = "events.schema.json";

#[test]
fn empty_files_are_code_106() {
    let empty = ("106", "file f is empty");
    check(EVENTS, "f", b"", &json_lines_format(), empty);
    check(EVENTS, "f", b"\n  \r\n\n", &json_lines_format(), empty);
    check(
        EVENTS,
        "f",
        b" \n",
        &FileFormat::Json { multi_line: true },
        empty,
    );
    check(ADHOC, "f", b"", &csv(), empty);
    check(ADHOC, "f", b"\xEF\xBB\xBF\n\n", &csv(), empty);
    check(EVENTS, "f", b"", &FileFormat::Parquet, empty);
}

#[test]
fn an_empty_csv_header_row_is_code_118() {
    let empty_header = ("118", "file h.csv: the CSV header row is empty");
    check(ADHOC, "h.csv", b"\nname\nAnn\n", &csv(), empty_header);
    check(ADHOC, "h.csv", b",,\nAnn,1,2\n", &csv(), empty_header);
}

#[test]
fn undecodable_files_are_code_9201() {
    check(
        EVENTS,
        "obj.json",
        br#"{"_id": "not in an array"}"#,
        &FileFormat::Json { multi_line: true },
        (
            "INGEST-9201-400",
            "file obj.json cannot be decoded as JSON: the file must be one JSON array of rows (after 0 elements): expected '[' at byte 0, found '{'",
        ),
    );
    check(
        EVENTS,
        "cut.json",
        br#"[{"_id": "a", "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": "M-000001"}}, {"_id""#,
        &FileFormat::Json { multi_line: true },
        (
            "INGEST-9201-400",
            "file cut.json cannot be decoded as JSON: the file must be one JSON array of rows (after 1 elements): expected the rest of the element at byte 93, found the end of the file",
        ),
    );
    check(
        EVENTS,
        "trailing.json",
        b"[] []",
        &FileFormat::Json { multi_line: true },
        (
            "INGEST-9201-400",
            "file trailing.json cannot be decoded as JSON: the file must be one JSON array of rows (after 0 elements): expected nothing after the array at byte 3, found '['",
        ),
    );
    check(
        EVENTS,
        "junk.parquet",
        b"PAR1 this is not parquet",
        &FileFormat::Parquet,
        (
            "INGEST-9201-400",
            "file junk.parquet cannot be decoded as Parquet: Parquet error: Invalid Parquet file. Corrupt footer",
        ),
    );
    check(
        ADHOC,
        "bad.csv",
        b"name,n\xE9\nAnn,x\n",
        &csv(),
        (
            "INGEST-9201-400",
            "file bad.csv cannot be decoded as CSV: header column 2 is not UTF-8 text",
        ),
    );
    let ascii = FileFormat::Csv(CsvOptions {
        charset: Charset::UsAscii,
        ..CsvOptions::default()
    });
    check(
        ADHOC,
        "ascii.csv",
        b"name\nAnn\nZo\xEB\n",
        &ascii,
        (
            "INGEST-9201-400",
            "file ascii.csv cannot be decoded as CSV: record 2, column 1 is not US-ASCII text",
        ),
    );
}

#[test]
fn columns_outside_the_schema_are_code_9202() {
    check(
        ADHOC,
        "x.csv",
        b"name,nickname,shoe size\nAnn,A,38\n",
        &csv(),
        (
            "INGEST-9202-400",
            "file x.csv does not fit the dataset schema: CSV header names may not contain spaces: \"shoe size\"",
        ),
    );
    check(
        ADHOC,
        "x.csv",
        b"name,nickname\nAnn,A\n",
        &csv(),
        (
            "INGEST-9202-400",
            "file x.csv does not fit the dataset schema: CSV header names not in the schema: \"nickname\"",
        ),
    );
    check(
        ADHOC,
        "x.csv",
        b"Ann,1\n",
        &FileFormat::Csv(CsvOptions {
            header: false,
            ..CsvOptions::default()
        }),
        (
            "INGEST-9202-400",
            "file x.csv does not fit the dataset schema: CSV files need a header row to map columns to fields (header is false)",
        ),
    );
}

#[test]
fn the_processor_goes_on_after_a_file_level_error() {
    let mut batch = Batch::new(EVENTS, ProcessOptions::default());
    assert!(batch.process("a.json", b"", &json_lines_format()).is_err());
    let good =
        json!({"_id": "a", "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": "M-000001"}});
    batch
        .process("b.json", good.to_string().as_bytes(), &json_lines_format())
        .unwrap();
    batch
        .process("c.parquet", &parquet_bytes(&events()), &FileFormat::Parquet)
        .unwrap();
    let output = batch.finish();
    assert_eq!((output.input_records, output.output_records), (4, 3));
}

#[test]
fn setup_refuses_a_used_output_directory_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leftover"), b"x").unwrap();
    let err = BatchProcessor::new(&schema(EVENTS), dir.path(), ProcessOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, SetupError::OutputNotEmpty { .. }), "{err}");
    let err = BatchProcessor::new(
        &schema(EVENTS),
        &dir.path().join("new"),
        ProcessOptions {
            rows_per_part: 0,
            ..ProcessOptions::default()
        },
    )
    .err()
    .unwrap();
    assert!(matches!(err, SetupError::Options(_)), "{err}");
    let err = BatchProcessor::new(
        &json!({"type": "object", "properties": {"a": {"$ref": "#/x"}}}),
        &dir.path().join("new"),
        ProcessOptions::default(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, SetupError::Schema(_)), "{err}");
}
