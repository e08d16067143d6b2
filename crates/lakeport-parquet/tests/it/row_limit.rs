//! The row limit (`max_row_bytes`): a JSON line, JSON array element or CSV record larger
//! than it is a parsing error of that row, the rest of the file is ingested, and the preview
//! refuses it. The readers' unit tests show the row is never held in memory.

use lakeport_parquet::{
    CsvOptions, FileFormat, PreviewLimits, ProcessError, ProcessOptions, preview,
};
use serde_json::{Value, json};

use crate::support::{Batch, json_lines_format, jsonl, paths};

const LIMIT: usize = 300;

fn limited() -> ProcessOptions {
    ProcessOptions {
        diagnostics: true,
        max_row_bytes: LIMIT,
        ..ProcessOptions::default()
    }
}

fn event(id: &str, member: &str) -> Value {
    json!({"_id": id, "timestamp": "2024-01-01T00:00:00Z", "_acme": {"memberId": member}})
}

/// Checks the one rejected row of a batch: a parsing error with `message`, its first bytes
/// kept as `_corrupt_record`.
fn assert_one_oversized_row(batch: &Batch, output: &lakeport_parquet::BatchOutput, message: &str) {
    assert_eq!(output.failed_records, 1);
    assert_eq!(output.error_counts.get("INGEST-1401-400"), Some(&1));
    assert!(paths(&output.meta).contains(&"meta/row_errors/parsing_errors_1.json"));
    let failed = batch.json_lines("failed/part-00001.json");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["_errors"][0]["code"], "1401");
    assert_eq!(failed[0]["_errors"][0]["message"], message);
    let corrupt = failed[0]["_corrupt_record"].as_str().unwrap();
    assert!(corrupt.len() <= LIMIT && corrupt.len() >= 200, "{corrupt}");
    assert_eq!(
        failed,
        batch.json_lines("meta/row_errors/parsing_errors_1.json")
    );
}

#[test]
fn a_json_line_over_the_limit_is_a_parsing_error_and_the_file_goes_on() {
    let mut batch = Batch::new("events.schema.json", limited());
    let big = event("big", &"M".repeat(1000));
    let bytes = jsonl(&[event("a", "M-000001"), big, event("c", "M-000003")]);
    let stats = batch
        .process("rows.json", &bytes, &json_lines_format())
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (3, 1));
    let output = batch.finish();
    assert_eq!(output.output_records, 2);
    let ids: Vec<Value> = batch
        .output_rows(&output)
        .iter()
        .map(|row| row["_id"].clone())
        .collect();
    assert_eq!(ids, ["a", "c"]);
    assert_one_oversized_row(
        &batch,
        &output,
        "line 2 is larger than the maximum row size of 300 bytes (1072 bytes); the row is skipped",
    );
}

#[test]
fn a_json_array_element_over_the_limit_is_a_parsing_error_and_the_array_goes_on() {
    let mut batch = Batch::new("events.schema.json", limited());
    let rows = [
        event("a", "M-000001"),
        event("big", &"M".repeat(1000)),
        event("c", "M-000003"),
    ];
    let bytes = serde_json::to_vec_pretty(&rows).unwrap();
    let stats = batch
        .process("rows.json", &bytes, &FileFormat::Json { multi_line: true })
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (3, 1));
    let output = batch.finish();
    assert_eq!(output.output_records, 2);
    let message = output_message(&batch);
    assert!(
        message.starts_with("element 2 is larger than the maximum row size of 300 bytes ("),
        "{message}"
    );
    assert_one_oversized_row(&batch, &output, &message);
}

fn output_message(batch: &Batch) -> String {
    batch.json_lines("failed/part-00001.json")[0]["_errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_csv_record_over_the_limit_is_a_parsing_error_and_the_file_goes_on() {
    let mut batch = Batch::new("adhoc.schema.json", limited());
    let text = format!(
        "name,note\nAnn,short\nBob,\"{}\nstill the note\"\nCid,x\n",
        "n".repeat(1000)
    );
    let format = FileFormat::Csv(CsvOptions::default());
    let stats = batch.process("m.csv", text.as_bytes(), &format).unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (3, 1));
    let output = batch.finish();
    assert_eq!(output.output_records, 2);
    assert_one_oversized_row(
        &batch,
        &output,
        "record 2 is larger than the maximum row size of 300 bytes (1022 bytes); the row is skipped",
    );
    let corrupt = batch.json_lines("failed/part-00001.json")[0]["_corrupt_record"].clone();
    assert!(
        corrupt.as_str().unwrap().starts_with("Bob,\"nnn"),
        "{corrupt}"
    );
}

#[test]
fn an_unterminated_csv_quote_is_one_oversized_row_up_to_the_end() {
    let mut batch = Batch::new("adhoc.schema.json", limited());
    let text = format!("name\nAnn\n\"Bob{}", "\nmore".repeat(500));
    let format = FileFormat::Csv(CsvOptions::default());
    let stats = batch.process("m.csv", text.as_bytes(), &format).unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (2, 1));
    let output = batch.finish();
    assert_one_oversized_row(
        &batch,
        &output,
        "record 2 is larger than the maximum row size of 300 bytes (2504 bytes and runs to the \
         end of the file); the row is skipped (is a quoted field left open?)",
    );
}

fn limits(rows: usize) -> PreviewLimits {
    PreviewLimits {
        rows,
        max_row_bytes: LIMIT,
        max_bytes: usize::MAX,
    }
}

#[test]
fn the_preview_refuses_a_row_over_the_limit() {
    let batch = Batch::new("events.schema.json", ProcessOptions::default());
    let cases: [(&str, Vec<u8>, FileFormat, &str); 3] = [
        (
            "l.json",
            format!("{{\"a\": 1}}\n{{\"b\": \"{}\"}}\n", "x".repeat(500)).into_bytes(),
            json_lines_format(),
            "file l.json cannot be decoded as JSON: line 2 is larger than the maximum row size of \
             300 bytes (509 bytes); the row is skipped",
        ),
        (
            "a.json",
            format!("[{{\"a\": 1}}, \"{}\"]", "x".repeat(500)).into_bytes(),
            FileFormat::Json { multi_line: true },
            "file a.json cannot be decoded as JSON: element 2 is larger than the maximum row size \
             of 300 bytes (502 bytes); the row is skipped",
        ),
        (
            "c.csv",
            format!("h\n1\n{}\n", "x".repeat(500)).into_bytes(),
            FileFormat::Csv(CsvOptions::default()),
            "file c.csv cannot be decoded as CSV: record 2 is larger than the maximum row size of \
             300 bytes (501 bytes); the row is skipped",
        ),
    ];
    for (name, bytes, format, message) in cases {
        let path = batch.stage(name, &bytes);
        let err = preview(name, &path, &format, limits(10)).unwrap_err();
        assert!(matches!(err, ProcessError::File(ref file) if file.code() == "INGEST-9201-400"));
        assert_eq!(err.to_string(), message);
        // The rows before it are shown when the preview stops short of it.
        assert_eq!(
            preview(name, &path, &format, limits(1)).unwrap().rows.len(),
            1
        );
    }
}

/// 1,000 rows at the row limit would be a gigabyte of preview: it stops after the row that
/// reaches its text budget, in every format.
#[test]
fn the_preview_stops_at_its_text_budget() {
    let batch = Batch::new("events.schema.json", ProcessOptions::default());
    let cell = "x".repeat(100);
    let json: String = (0..50)
        .map(|_| format!("{{\"a\": \"{cell}\"}}\n"))
        .collect();
    let array = format!(
        "[{}]",
        (0..50)
            .map(|_| format!("{{\"a\": \"{cell}\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let csv: String = std::iter::once("a\n".to_owned())
        .chain((0..50).map(|_| format!("{cell}\n")))
        .collect();
    for (name, bytes, format) in [
        ("l.json", json, json_lines_format()),
        ("a.json", array, FileFormat::Json { multi_line: true }),
        ("c.csv", csv, FileFormat::Csv(CsvOptions::default())),
    ] {
        let path = batch.stage(name, bytes.as_bytes());
        let budget = PreviewLimits {
            rows: 50,
            max_row_bytes: LIMIT,
            max_bytes: 250,
        };
        let shown = preview(name, &path, &format, budget).unwrap();
        assert_eq!(shown.rows.len(), 3, "{name}");
        let all = PreviewLimits {
            max_bytes: usize::MAX,
            ..budget
        };
        assert_eq!(preview(name, &path, &format, all).unwrap().rows.len(), 50);
    }
}

/// Parquet compresses a gigabyte of repeated text into kilobytes: a row group whose rows
/// average more than the row limit is refused from the footer, before any page is
/// decompressed; a single decoded row over the limit is a parsing error of that row.
#[test]
fn parquet_rows_are_held_to_the_row_limit() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, LargeStringArray, RecordBatch};
    use parquet::basic::{Compression, ZstdLevel};

    let zstd = Compression::ZSTD(ZstdLevel::default());
    let big = "a".repeat(20 * LIMIT);
    let bomb = RecordBatch::try_from_iter([(
        "s",
        Arc::new(LargeStringArray::from(vec![big.as_str(); 100])) as ArrayRef,
    )])
    .unwrap();
    // As pyarrow writes it with use_dictionary=False: plain pages, zstd.
    let plain = parquet::file::properties::WriterProperties::builder()
        .set_compression(zstd)
        .set_dictionary_enabled(false)
        .build();
    let mut bytes = Vec::new();
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(&mut bytes, bomb.schema(), Some(plain)).unwrap();
    writer.write(&bomb).unwrap();
    writer.close().unwrap();
    assert!(bytes.len() < 100 * LIMIT, "{} bytes", bytes.len());
    let mut batch = Batch::new("types.schema.json", limited());
    let err = batch
        .process("bomb.parquet", &bytes, &FileFormat::Parquet)
        .unwrap_err();
    let ProcessError::File(file) = &err else {
        panic!("{err}");
    };
    assert_eq!(file.code(), "INGEST-9201-400");
    assert!(
        err.to_string().contains(
            "row group 1 holds 600" // 600,000 bytes of text and some framing
        ) && err
            .to_string()
            .ends_with("for 100 rows, more than the maximum row size of 300 bytes per row"),
        "{err}"
    );
    let path = batch.stage("bomb.parquet", &bytes);
    let err = preview("bomb.parquet", &path, &FileFormat::Parquet, limits(10)).unwrap_err();
    assert!(err.to_string().contains("row group 1 holds"), "{err}");

    // Dictionary-encoded, the footer counts the value once: each row is decoded and
    // rejected on its own.
    let bytes = crate::parquet_input::parquet_bytes_with(&bomb, zstd);
    let mut batch = Batch::new("types.schema.json", limited());
    let stats = batch
        .process("dictionary.parquet", &bytes, &FileFormat::Parquet)
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (100, 100));

    // One large row among small ones: only that row is rejected.
    let mut values = vec!["small"; 99];
    values.insert(1, big.as_str());
    let mixed =
        RecordBatch::try_from_iter([("s", Arc::new(LargeStringArray::from(values)) as ArrayRef)])
            .unwrap();
    let bytes = crate::parquet_input::parquet_bytes_with(&mixed, zstd);
    let mut batch = Batch::new("types.schema.json", limited());
    let stats = batch
        .process("mixed.parquet", &bytes, &FileFormat::Parquet)
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (100, 1));
    let output = batch.finish();
    assert_eq!(output.output_records, 99);
    let failed = batch.json_lines("failed/part-00001.json");
    assert_eq!(
        failed[0]["_errors"][0]["message"],
        "row 2 is larger than the maximum row size of 300 bytes (6003 bytes); the row is skipped"
    );
    assert_eq!(failed[0]["_corrupt_record"], "row 2");
}

/// Wide rows are handed to the writer in record batches bounded by bytes (at 1 byte, every
/// row alone): each row is written once, in order, on any number of threads. Every third
/// row holds an escaped character, which sends it through the validator's own path.
#[test]
fn rows_in_record_batches_bounded_by_bytes_are_all_written_in_order() {
    let rows: Vec<Value> = (0..300)
        .map(|i| {
            let pad = if i % 3 == 0 { "x\ty" } else { "xy" };
            event(&format!("{i:04}-{}", pad.repeat(2000)), "M-000001")
        })
        .collect();
    let bytes = jsonl(&rows);
    let expected: Vec<String> = (0..300).map(|i| format!("{i:04}")).collect();
    for threads in [1, 2, 4] {
        for max_batch_bytes in [1, 64 * 1024, ProcessOptions::default().max_batch_bytes] {
            let options = ProcessOptions {
                threads,
                max_batch_bytes,
                ..ProcessOptions::default()
            };
            let mut batch = Batch::new("events.schema.json", options);
            batch
                .process("rows.json", &bytes, &json_lines_format())
                .unwrap();
            let output = batch.finish();
            assert_eq!(output.output_records, 300);
            let ids: Vec<String> = batch
                .output_rows(&output)
                .iter()
                .map(|row| row["_id"].as_str().unwrap()[..4].to_owned())
                .collect();
            assert_eq!(ids, expected, "{threads} threads, {max_batch_bytes} bytes");
        }
    }
}
