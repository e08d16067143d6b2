use lakeport_parquet::{CsvOptions, FileFormat, Preview, PreviewLimits, ProcessError, preview};
use serde_json::json;

use crate::parquet_input::{events, parquet_bytes};
use crate::support::{Batch, json_lines_format};

fn preview_of(bytes: &[u8], format: &FileFormat, rows: usize) -> Result<Preview, ProcessError> {
    let batch = Batch::new("events.schema.json", Default::default());
    let path = batch.stage("upload", bytes);
    preview("upload", &path, format, PreviewLimits::rows(rows))
}

fn cells(values: &[Option<&str>]) -> Vec<Option<String>> {
    values
        .iter()
        .map(|value| value.map(str::to_owned))
        .collect()
}

#[test]
fn json_lines_preview_collects_top_level_keys() {
    let bytes = br#"{"a": 1, "b": {"c": [1, "x"]}}
{"c": "three", "a": null}

{"b": true}
"#;
    let preview = preview_of(bytes, &json_lines_format(), 2).unwrap();
    assert_eq!(preview.columns, ["a", "b", "c"]);
    assert_eq!(
        preview.rows,
        [
            cells(&[Some("1"), Some(r#"{"c":[1,"x"]}"#)]),
            cells(&[None, None, Some("three")]),
        ]
    );
    assert_eq!(
        preview.to_json(),
        json!({"columns": [{"cid": "0", "name": "a"}, {"cid": "1", "name": "b"}, {"cid": "2", "name": "c"}],
            "rows": [{"0": "1", "1": "{\"c\":[1,\"x\"]}", "2": null}, {"0": null, "1": null, "2": "three"}]})
    );
    // nrow 0 means the default of 100: all three rows here.
    assert_eq!(
        preview_of(bytes, &json_lines_format(), 0)
            .unwrap()
            .rows
            .len(),
        3
    );
}

#[test]
fn json_array_preview_stops_after_the_rows_asked_for() {
    // The array is cut after the second element: the preview never reads that far.
    let bytes = br#"[{"id": 1}, {"id": 2}, {"id": "#;
    let preview = preview_of(bytes, &FileFormat::Json { multi_line: true }, 2).unwrap();
    assert_eq!(preview.columns, ["id"]);
    assert_eq!(preview.rows, [cells(&[Some("1")]), cells(&[Some("2")])]);
    let err = preview_of(bytes, &FileFormat::Json { multi_line: true }, 5).unwrap_err();
    assert!(
        matches!(err, ProcessError::File(ref file) if file.code() == "INGEST-9201-400"),
        "{err}"
    );
}

#[test]
fn unparsable_json_lines_fail_the_preview() {
    let err = preview_of(b"{\"a\": 1}\nnot json\n", &json_lines_format(), 10).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("file upload cannot be decoded as JSON: line 2 is not valid JSON"),
        "{err}"
    );
}

#[test]
fn csv_preview_shows_the_header_and_raw_values() {
    let bytes = b"loyaltyId,points\nL-1001,250\nL-1002,\n";
    let preview = preview_of(bytes, &FileFormat::Csv(CsvOptions::default()), 10).unwrap();
    assert_eq!(
        preview.to_json(),
        json!({"columns": [{"cid": "0", "name": "loyaltyId"}, {"cid": "1", "name": "points"}],
            "rows": [{"0": "L-1001", "1": "250"}, {"0": "L-1002", "1": null}]})
    );
    let without_header = FileFormat::Csv(CsvOptions {
        header: false,
        ..CsvOptions::default()
    });
    let preview = preview_of(b"L-1001,250\n", &without_header, 10).unwrap();
    assert_eq!(preview.columns, ["_c0", "_c1"]);
    assert_eq!(preview.rows, [cells(&[Some("L-1001"), Some("250")])]);
}

#[test]
fn parquet_preview_renders_values_as_text() {
    let preview = preview_of(&parquet_bytes(&events()), &FileFormat::Parquet, 1).unwrap();
    assert_eq!(preview.columns, ["_id", "timestamp", "_acme"]);
    assert_eq!(
        preview.rows,
        [cells(&[
            Some("p1"),
            Some("2023-11-14T22:13:20.123Z"),
            Some(
                r#"{"memberId":"M-000001","points":10,"birthday":"1990-02-28","attrs":{"channel":"app"},"scores":[0.5,null],"tier":"gold"}"#
            ),
        ])]
    );
}

/// A streamed preview reads no further than its rows: a stream that fails after the first
/// lines still previews them. Parquet needs a file.
#[test]
fn a_streamed_preview_reads_only_its_rows() {
    struct FailsAfter(std::io::Cursor<Vec<u8>>);
    impl std::io::Read for FailsAfter {
        fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buffer)? {
                0 => Err(std::io::Error::other(
                    "the rest of the object is unreachable",
                )),
                read => Ok(read),
            }
        }
    }
    let head = b"{\"a\": 1}\n{\"a\": 2}\n{\"a\": 3}\n".to_vec();
    let stream = Box::new(FailsAfter(std::io::Cursor::new(head.clone())));
    let preview = lakeport_parquet::preview_stream(
        "x.json",
        stream,
        &json_lines_format(),
        PreviewLimits::rows(2),
    )
    .unwrap();
    assert_eq!(preview.rows, [cells(&[Some("1")]), cells(&[Some("2")])]);

    let stream = Box::new(FailsAfter(std::io::Cursor::new(head.clone())));
    let err = lakeport_parquet::preview_stream(
        "x.json",
        stream,
        &json_lines_format(),
        PreviewLimits::rows(5),
    )
    .unwrap_err();
    assert!(matches!(err, ProcessError::Read { .. }), "{err}");

    let stream = Box::new(std::io::Cursor::new(head));
    let err = lakeport_parquet::preview_stream(
        "x.parquet",
        stream,
        &FileFormat::Parquet,
        PreviewLimits::rows(5),
    )
    .unwrap_err();
    assert!(err.to_string().contains("local file"), "{err}");
}
