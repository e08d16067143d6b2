use std::sync::Arc;

use arrow_array::builder::{
    Float64Builder, ListBuilder, MapBuilder, StringBuilder, StringDictionaryBuilder,
};
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow_schema::{Field, Schema};
use lakeport_parquet::{FileFormat, ProcessOptions};
use parquet::arrow::ArrowWriter;
use parquet::basic::{BrotliLevel, Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::json;

use crate::support::Batch;

/// Returns `batch` written as a Parquet file.
pub fn parquet_bytes(batch: &RecordBatch) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    bytes
}

fn column(name: &str, array: ArrayRef) -> (Arc<Field>, ArrayRef) {
    (
        Arc::new(Field::new(name, array.data_type().clone(), true)),
        array,
    )
}

/// Three loyalty events as Arrow writes them, the third with negative points.
pub fn events() -> RecordBatch {
    let mut attrs = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    attrs.keys().append_value("channel");
    attrs.values().append_value("app");
    attrs.append(true).unwrap();
    attrs.append(false).unwrap();
    attrs.append(false).unwrap();
    let mut scores = ListBuilder::new(Float64Builder::new());
    scores.append_value([Some(0.5), None]);
    scores.append_null();
    scores.append_value([]);
    let mut tier = StringDictionaryBuilder::<Int32Type>::new();
    tier.append_value("gold");
    tier.append_value("silver");
    tier.append_null();
    let acme = StructArray::from(vec![
        column(
            "memberId",
            Arc::new(StringArray::from(vec!["M-000001", "M-000002", "M-000003"])),
        ),
        column(
            "points",
            Arc::new(Int64Array::from(vec![Some(10), None, Some(-1)])),
        ),
        column(
            "birthday",
            Arc::new(Date32Array::from(vec![Some(7363), None, None])),
        ),
        column("attrs", Arc::new(attrs.finish())),
        column("scores", Arc::new(scores.finish())),
        column("tier", Arc::new(tier.finish())),
    ]);
    RecordBatch::try_from_iter([
        (
            "_id",
            Arc::new(StringArray::from(vec!["p1", "p2", "p3"])) as ArrayRef,
        ),
        (
            "timestamp",
            Arc::new(TimestampMillisecondArray::from(vec![
                1_700_000_000_123,
                0,
                1,
            ])) as ArrayRef,
        ),
        ("_acme", Arc::new(acme) as ArrayRef),
    ])
    .unwrap()
}

#[test]
fn parquet_input_is_converted_validated_and_rewritten() {
    let mut batch = Batch::new("events.schema.json", ProcessOptions::default());
    let stats = batch
        .process(
            "in.parquet",
            &parquet_bytes(&events()),
            &FileFormat::Parquet,
        )
        .unwrap();
    assert_eq!((stats.input_records, stats.failed_records), (3, 1));
    let output = batch.finish();
    assert_eq!(
        batch.output_rows(&output),
        [
            json!({"_id": "p1", "timestamp": "2023-11-14T22:13:20.123000Z",
                "_acme": {"memberId": "M-000001", "points": 10, "birthday": "1990-02-28",
                    "attrs": {"channel": "app"}, "scores": [0.5, null], "tier": "gold"}}),
            json!({"_id": "p2", "timestamp": "1970-01-01T00:00:00.000000Z",
                "_acme": {"memberId": "M-000002", "tier": "silver"}}),
        ]
    );
    assert_eq!(
        output.error_counts,
        [("INGEST-9104-400".to_owned(), 1)].into()
    );
    let failed = batch.json_lines("failed/part-00001.json");
    assert_eq!(failed[0]["_acme"]["points"], -1);
    assert_eq!(failed[0]["timestamp"], "1970-01-01T00:00:00.001Z");
}

#[test]
fn parquet_columns_must_be_a_subset_of_the_schema() {
    let mut batch = Batch::new("events.schema.json", ProcessOptions::default());
    let extra = RecordBatch::try_from_iter([
        ("_id", Arc::new(StringArray::from(vec!["p1"])) as ArrayRef),
        (
            "nickname",
            Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
        ),
    ])
    .unwrap();
    let err = batch
        .process(
            "extra.parquet",
            &parquet_bytes(&extra),
            &FileFormat::Parquet,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "file extra.parquet does not fit the dataset schema: columns not in the schema: \"nickname\""
    );
    let schema_only = Schema::new(vec![Field::new("_id", arrow_schema::DataType::Utf8, true)]);
    let empty = RecordBatch::new_empty(Arc::new(schema_only));
    let stats = batch
        .process(
            "empty.parquet",
            &parquet_bytes(&empty),
            &FileFormat::Parquet,
        )
        .unwrap();
    assert_eq!(stats.input_records, 0);
}

/// Returns `batch` written as a Parquet file with `compression`.
pub fn parquet_bytes_with(batch: &RecordBatch, compression: Compression) -> Vec<u8> {
    let properties = WriterProperties::builder()
        .set_compression(compression)
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    bytes
}

/// pyarrow writes Snappy by default, Spark Snappy or zstd, and every other codec is one
/// option away: each is read, and the same rows come out.
#[test]
fn parquet_input_in_every_codec_producers_write_is_read() {
    let codecs = [
        Compression::UNCOMPRESSED,
        Compression::SNAPPY,
        Compression::GZIP(GzipLevel::default()),
        Compression::ZSTD(ZstdLevel::try_new(3).unwrap()),
        Compression::LZ4,
        Compression::LZ4_RAW,
        Compression::BROTLI(BrotliLevel::default()),
    ];
    let mut expected = None;
    for codec in codecs {
        let mut batch = Batch::new("events.schema.json", ProcessOptions::default());
        let bytes = parquet_bytes_with(&events(), codec);
        let stats = batch
            .process("in.parquet", &bytes, &FileFormat::Parquet)
            .unwrap_or_else(|err| panic!("{codec:?}: {err}"));
        assert_eq!(
            (stats.input_records, stats.failed_records),
            (3, 1),
            "{codec:?}"
        );
        let output = batch.finish();
        let rows = batch.output_rows(&output);
        assert_eq!(rows.len(), 2, "{codec:?}");
        assert_eq!(
            expected.get_or_insert_with(|| rows.clone()),
            &rows,
            "{codec:?}"
        );
    }
}
