//! The columnar Parquet path (issue 16) over generated Parquet files —
//! columns of the dataset's own types and of types the validator converts (text for
//! numbers and dates, integers for dates and date-times, doubles for integers, structs for
//! maps, …), nulls, nested structs and lists, and bad values of every rule — on one thread
//! and with decoding and writing overlapped. The Parquet parts must hold the same rows
//! (compared as Arrow), `failed/` and `meta/` must be byte-identical, with the same counts,
//! and all must match the fingerprint recorded when the previous row path gave the same
//! output (tests/it/golden.rs).

use std::fs;
use std::path::Path;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use lakeport_parquet::{BatchOutput, BatchProcessor, FileFormat, FileStats, ProcessOptions};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::differential::Rng;
use crate::golden;
use crate::support::schema;

/// One column of a generated file: its Arrow type in the file, and JSON texts of its values
/// (as arrow-json reads them into that type), good ones and bad ones.
struct Column {
    name: &'static str,
    data_type: DataType,
    good: &'static [&'static str],
    bad: &'static [&'static str],
}

fn column(
    name: &'static str,
    data_type: DataType,
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> Column {
    Column {
        name,
        data_type,
        good,
        bad,
    }
}

fn utf8() -> DataType {
    DataType::Utf8
}

fn list(item: DataType) -> DataType {
    DataType::List(Arc::new(Field::new("element", item, true)))
}

fn structure(fields: Vec<(&str, DataType)>) -> DataType {
    DataType::Struct(Fields::from(
        fields
            .into_iter()
            .map(|(name, data_type)| Field::new(name, data_type, true))
            .collect::<Vec<_>>(),
    ))
}

fn string_map(value: DataType) -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", value, true),
            ])),
            false,
        )),
        false,
    )
}

fn person() -> DataType {
    structure(vec![
        ("name", utf8()),
        ("age", DataType::Int64),
        ("birth", DataType::Date32),
        ("tier", utf8()),
        (
            "address",
            structure(vec![("city", utf8()), ("country", utf8())]),
        ),
    ])
}

/// Columns of (mostly) the dataset's own Arrow types.
fn native_columns() -> Vec<Column> {
    vec![
        column(
            "_id",
            utf8(),
            &["\"a1\"", "\"b-2\"", "\"\u{e9}t\u{e9}\"", "\"x\\ny\""],
            &["\"\"", "null"],
        ),
        column(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            &[
                "\"2024-05-01T10:20:30Z\"",
                "\"2024-05-01T10:20:30.123456Z\"",
                "\"1969-12-31T23:59:59.999999Z\"",
                "\"0001-01-01T00:00:00Z\"",
                "\"9999-12-31T23:59:59.999999Z\"",
            ],
            &["null"],
        ),
        column(
            "level",
            DataType::Int32,
            &["0", "3", "32767", "null"],
            &["-1", "32768"],
        ),
        column(
            "eventType",
            utf8(),
            &["\"view\"", "\"click\"", "\"buy\"", "null"],
            &["\"View\"", "\"\""],
        ),
        column(
            "email",
            utf8(),
            &["\"a@b.co\"", "\"first.last@example.com\""],
            &["\"a@\"", "\"no at\""],
        ),
        column(
            "site",
            utf8(),
            &["\"https://example.com/x?y=1\""],
            &["\"/relative\""],
        ),
        column(
            "uuid",
            utf8(),
            &["\"123e4567-e89b-12d3-a456-426614174000\""],
            &["\"xyz\""],
        ),
        column(
            "day",
            DataType::Date32,
            &["\"2024-02-29\"", "\"1999-01-01\""],
            &[],
        ),
        column(
            "code",
            utf8(),
            &["\"ABC\"", "\"XYZ\""],
            &["\"AB\"", "\"ABCD\""],
        ),
        column(
            "note",
            utf8(),
            &["\"hi\"", "\"ten chars!\"", "\"\u{e9}\u{e9}\u{e9}\""],
            &["\"x\"", "\"eleven chars\""],
        ),
        column(
            "b",
            DataType::Int64,
            &["-128", "127", "0"],
            &["128", "-129"],
        ),
        column("sh", DataType::Int16, &["-4", "100"], &["-5", "-6"]),
        column(
            "i",
            DataType::Int64,
            &["1", "2", "3", "2147483647"],
            &["4", "0", "2147483648"],
        ),
        column(
            "l",
            DataType::Int64,
            &["9007199254740991", "-9007199254740991", "0"],
            &["9007199254740992", "9223372036854775807"],
        ),
        column(
            "n",
            DataType::Float64,
            &["1000.4", "-1000000", "0.1", "-0.0", "1e-300", "5"],
            &["1000.5", "-1000001"],
        ),
        column(
            "ratio",
            DataType::Float32,
            &["0.5", "1", "2.5"],
            &["2", "0.25"],
        ),
        column("flag", DataType::Boolean, &["true", "false", "null"], &[]),
        column("yes", DataType::Boolean, &["true"], &["false"]),
        column(
            "d",
            DataType::Date32,
            &[
                "\"2024-01-31\"",
                "\"1000-01-01\"",
                "\"9999-12-31\"",
                "\"1970-01-01\"",
            ],
            &[],
        ),
        column(
            "dEnum",
            DataType::Date32,
            &["\"2024-01-01\"", "\"2024-02-29\""],
            &["\"2024-01-02\""],
        ),
        column(
            "dt",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            &["\"2024-05-01T10:20:30.123Z\"", "\"1970-01-01T00:00:00Z\""],
            &[],
        ),
        column(
            "dtPattern",
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            &[
                "\"2024-05-01T10:20:30.123456789Z\"",
                "\"2001-01-01T00:00:00Z\"",
            ],
            &["\"1999-12-31T10:00:00Z\""],
        ),
        column(
            "person",
            person(),
            &[
                "{\"name\":\"Ann\",\"age\":30,\"birth\":\"1990-01-01\"}",
                "{\"name\":\"Bo\",\"tier\":\"gold\",\"address\":{\"city\":\"Paris\",\"country\":\"FR\"}}",
                "{\"name\":\"Cy\",\"tier\":null,\"address\":{\"city\":\"Rome\"}}",
                "{\"name\":\"Ed\",\"address\":{\"country\":null}}",
                "null",
            ],
            &[
                "{\"age\":3}",
                "{\"name\":null}",
                "{\"name\":\"G\",\"age\":-1}",
                "{\"name\":\"H\",\"tier\":\"platinum\"}",
                "{\"name\":\"I\",\"address\":{\"country\":\"usa\"}}",
                "{\"name\":\"J\",\"age\":300}",
            ],
        ),
        column(
            "tags",
            list(utf8()),
            &["[]", "[\"a\",\"b\"]", "[\"a\",null,\"a\"]", "null"],
            &["[\"a\",\"b\",\"c\",\"d\",\"e\"]"],
        ),
        column(
            "unique",
            list(DataType::Int64),
            &["[1,2,3]", "[]", "[1,null,null]"],
            &["[1,2,1]"],
        ),
        column(
            "scores",
            list(DataType::Float64),
            &["[0]", "[1.5,2]", "[null]"],
            &["[]", "[-1]"],
        ),
        column(
            "matrix",
            list(list(DataType::Int64)),
            &["[[1,2],[],[3]]", "[null,[null,4]]", "[]"],
            &["[[2147483648]]"],
        ),
        column(
            "dates",
            list(DataType::Timestamp(TimeUnit::Second, None)),
            &["[\"2024-05-01T00:00:00Z\",null]", "[]"],
            &[],
        ),
        column(
            "lines",
            list(structure(vec![
                ("sku", utf8()),
                ("qty", DataType::Int32),
                ("price", DataType::Float64),
            ])),
            &[
                "[{\"sku\":\"S1\",\"qty\":2,\"price\":9.99},{\"sku\":\"S22\"}]",
                "[{\"sku\":\"S3\",\"qty\":null},null]",
                "[]",
            ],
            &[
                "[{\"qty\":1}]",
                "[{\"sku\":\"X1\"}]",
                "[{\"sku\":\"S1\",\"qty\":0}]",
            ],
        ),
        column(
            "attributes",
            structure(vec![("a", utf8()), ("b", utf8()), ("c", DataType::Int64)]),
            &[
                "{}",
                "{\"a\":\"x\",\"b\":null,\"c\":12345678}",
                "{\"b\":\"\u{e9}\"}",
            ],
            &["{\"a\":\"123456789\"}", "{\"c\":123456789}"],
        ),
        column(
            "counters",
            string_map(DataType::Int64),
            &["{\"x\":1,\"y\":2}", "{}"],
            &["{\"x\":2147483648}"],
        ),
        column(
            "nested",
            structure(vec![
                (
                    "k",
                    structure(vec![("at", utf8()), ("x", DataType::Float64)]),
                ),
                ("m", structure(vec![("at", DataType::Int64), ("x", utf8())])),
            ]),
            &[
                "{\"k\":{\"at\":\"2024-01-01\",\"x\":1},\"m\":{\"x\":\"1.5\"}}",
                "{\"k\":{\"at\":null},\"m\":{\"at\":0}}",
            ],
            &["{\"k\":{\"at\":\"nope\"}}", "{\"m\":{\"x\":\"abc\"}}"],
        ),
        column(
            "chosen",
            structure(vec![("a", DataType::Int64)]),
            &["{\"a\":1}"],
            &["{\"a\":2}"],
        ),
    ]
}

/// Columns of other types, which the validator converts (or refuses).
fn converted_columns() -> Vec<Column> {
    vec![
        column("_id", DataType::Int64, &["7", "-3"], &[]),
        column(
            "timestamp",
            DataType::Int64,
            &["1714558830123", "-1000", "0"],
            &["999999999999999999", "253402300800000"],
        ),
        column(
            "level",
            utf8(),
            &["\"12\"", "\"+5\"", "\"007\"", "null"],
            &["\" 12\"", "\"1e2\"", "\"\"", "\"-1\""],
        ),
        column("eventType", DataType::Int64, &["null"], &["5"]),
        column(
            "day",
            utf8(),
            &["\"2024-02-29\""],
            &["\"2023-02-29\"", "\"2024-1-1\""],
        ),
        column("code", DataType::Float64, &["null"], &["1.5"]),
        column(
            "note",
            DataType::Int64,
            &["1234", "-12345"],
            &["1", "12345678901"],
        ),
        column(
            "b",
            DataType::Float64,
            &["100", "-0.0", "12.0"],
            &["1.5", "128.0"],
        ),
        column(
            "sh",
            utf8(),
            &["\"007\"", "\"-4\""],
            &["\"-6\"", "\"40000\"", "\"x\""],
        ),
        column("i", DataType::Float32, &["1.0", "2.0", "3"], &["2.5", "4"]),
        column(
            "l",
            DataType::UInt64,
            &["0", "9007199254740991"],
            &["18446744073709551615", "9007199254740992"],
        ),
        column(
            "n",
            utf8(),
            &["\"12.5\"", "\"+1e3\"", "\"-0\""],
            &["\"1e400\"", "\".5\"", "\"NaN\"", "\"1000.5\""],
        ),
        column("ratio", DataType::Int64, &["1"], &["2"]),
        column("flag", utf8(), &["null"], &["\"true\"", "\"yes\""]),
        column("yes", DataType::Int64, &["null"], &["1"]),
        column(
            "d",
            DataType::Int64,
            &["86400000", "-1", "0"],
            &["400000000000000"],
        ),
        column(
            "dEnum",
            utf8(),
            &["\"2024-01-01\""],
            &["\"2024-01-02\"", "\"2024-01-01T00:00:00Z\""],
        ),
        column(
            "dt",
            utf8(),
            &[
                "\"2024-05-01T10:20:30-05:30\"",
                "\"2024-05-01t10:20:30.5z\"",
                "\"0000-01-01T00:00:00Z\"",
            ],
            &[
                "\"yesterday\"",
                "\"2024-02-30T00:00:00Z\"",
                "\"0000-01-01T00:00:00+01:00\"",
            ],
        ),
        column("dtPattern", DataType::Int64, &["1714558830000"], &["0"]),
        column(
            "person",
            structure(vec![
                ("name", DataType::Int64),
                ("age", utf8()),
                ("birth", DataType::Int64),
                ("tier", utf8()),
            ]),
            &[
                "{\"name\":5,\"age\":\"42\",\"birth\":86400000}",
                "{\"name\":6,\"tier\":\"silver\"}",
            ],
            &["{\"name\":7,\"age\":\"x\"}", "{\"age\":\"1\"}"],
        ),
        column(
            "tags",
            list(DataType::Int64),
            &["[1,2]", "[null]"],
            &["[1,2,3,4,5]"],
        ),
        column(
            "scores",
            list(utf8()),
            &["[\"3\",\"0.5\"]"],
            &["[\"x\"]", "[\"-1\"]"],
        ),
        column(
            "dates",
            list(utf8()),
            &["[\"2024-05-01T00:00:00+14:00\",null]"],
            &["[\"2024-05-01\"]"],
        ),
        column(
            "attributes",
            structure(vec![("n", DataType::Float64), ("t", DataType::Boolean)]),
            &["{\"n\":5}", "{\"n\":2.5}"],
            &["{\"t\":true}", "{\"n\":123456789.5}"],
        ),
    ]
}

/// One generated row as JSON: every column with some probability (required ones mostly),
/// a bad value in `bad_percent` of the rows.
fn row(rng: &mut Rng, columns: &[Column], bad_percent: usize) -> String {
    let bad: Vec<usize> = if rng.chance(bad_percent) {
        (0..1 + rng.below(2))
            .map(|_| rng.below(columns.len()))
            .collect()
    } else {
        Vec::new()
    };
    let mut entries = Vec::new();
    for (index, column) in columns.iter().enumerate() {
        let is_bad = bad.contains(&index) && !column.bad.is_empty();
        let required = matches!(column.name, "_id" | "timestamp");
        // Columns only the row validator decides (`uniqueItems`, an `enum` on an object,
        // an Arrow map) are rare, so that most rows are decided by the columns.
        let percent = if matches!(column.name, "unique" | "chosen" | "counters") {
            6
        } else {
            55
        };
        let present = is_bad || (required && rng.chance(98)) || rng.chance(percent);
        if !present {
            continue;
        }
        let value = if is_bad {
            rng.pick(column.bad)
        } else {
            rng.pick(column.good)
        };
        entries.push(format!("\"{}\":{}", column.name, value));
    }
    format!("{{{}}}", entries.join(","))
}

/// A Parquet file of `rows` generated rows in row groups of `group_rows`.
fn parquet_file(
    seed: u64,
    columns: &[Column],
    rows: usize,
    bad_percent: usize,
    group_rows: usize,
) -> Vec<u8> {
    let mut rng = Rng(seed);
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|column| Field::new(column.name, column.data_type.clone(), true))
            .collect::<Vec<_>>(),
    ));
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone())
        .with_batch_size(1000)
        .build_decoder()
        .unwrap();
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .build();
    let mut bytes = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut bytes, schema, Some(properties)).unwrap();
    for chunk in 0..rows.div_ceil(1000) {
        let mut text = String::new();
        for _ in 0..(rows - chunk * 1000).min(1000) {
            text.push_str(&row(&mut rng, columns, bad_percent));
            text.push('\n');
        }
        let read = decoder.decode(text.as_bytes()).unwrap();
        assert_eq!(read, text.len());
        let batch = decoder.flush().unwrap().unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
    bytes
}

/// What a batch produced, with the Parquet parts read back as Arrow.
struct Outcome {
    output: BatchOutput,
    files: Vec<Result<FileStats, String>>,
    rows: Vec<RecordBatch>,
    /// `failed/` and `meta/` files with their bytes.
    rejects: Vec<(String, Vec<u8>)>,
    fingerprint: String,
}

fn run(
    threads: usize,
    options: &ProcessOptions,
    inputs: &[(&str, Vec<u8>)],
    dir: &Path,
) -> Outcome {
    let out = dir.join(format!("out-{threads}"));
    let staged = dir.join("in");
    fs::create_dir_all(&staged).unwrap();
    let options = ProcessOptions {
        threads,
        ..options.clone()
    };
    let mut processor =
        BatchProcessor::new(&schema("differential.schema.json"), &out, options).unwrap();
    let mut files = Vec::new();
    for (name, bytes) in inputs {
        let path = staged.join(name);
        fs::write(&path, bytes).unwrap();
        files.push(
            processor
                .process_file(name, &path, &FileFormat::Parquet)
                .map_err(|err| err.to_string()),
        );
    }
    let output = processor.finish().unwrap();
    let mut rows = Vec::new();
    for part in &output.parts {
        let file = fs::File::open(out.join(&part.relative_path)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
        let schema = batches[0].schema();
        rows.push(arrow_select::concat::concat_batches(&schema, &batches).unwrap());
    }
    let rejects = output
        .failed
        .iter()
        .chain(&output.meta)
        .map(|file| {
            let bytes = fs::read(out.join(&file.relative_path)).unwrap();
            (file.relative_path.clone(), bytes)
        })
        .collect();
    let fingerprint = golden::fingerprint(&out, &output, &files);
    Outcome {
        output,
        files,
        rows,
        rejects,
        fingerprint,
    }
}

/// Runs the batch on one thread, on four (record batches checked on three threads, merged in
/// order) and on two (decoding and writing overlapped); requires the same outcome with the
/// recorded fingerprint each time and returns the last.
#[track_caller]
fn same_outcome(golden: &str, options: &ProcessOptions, inputs: &[(&str, Vec<u8>)]) -> Outcome {
    same_outcome_on(4, golden, options, inputs);
    same_outcome_on(2, golden, options, inputs)
}

/// Runs the batch on one thread and on `threads`, requires the same outcome with the
/// recorded fingerprint, and returns the second.
#[track_caller]
fn same_outcome_on(
    threads: usize,
    golden: &str,
    options: &ProcessOptions,
    inputs: &[(&str, Vec<u8>)],
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let rows = run(1, options, inputs, dir.path());
    let columns = run(threads, options, inputs, dir.path());
    assert_eq!(rows.files, columns.files, "file results differ");
    let counts = |output: &BatchOutput| {
        (
            output.input_records,
            output.failed_records,
            output.output_records,
            output.error_counts.clone(),
            output
                .parts
                .iter()
                .map(|part| (part.relative_path.clone(), part.records))
                .collect::<Vec<_>>(),
            output.failed.clone(),
            output.meta.clone(),
        )
    };
    assert_eq!(
        counts(&rows.output),
        counts(&columns.output),
        "batch outputs differ ({threads} threads)"
    );
    for ((path, expected), (_, actual)) in rows.rejects.iter().zip(&columns.rejects) {
        if expected != actual {
            panic!(
                "{path} differs between one thread and {threads}:\none:  {}\nother:  {}",
                String::from_utf8_lossy(&expected[..expected.len().min(3000)]),
                String::from_utf8_lossy(&actual[..actual.len().min(3000)])
            );
        }
    }
    assert_eq!(rows.rows.len(), columns.rows.len());
    for (index, (expected, actual)) in rows.rows.iter().zip(&columns.rows).enumerate() {
        assert_eq!(expected.schema(), actual.schema());
        for (column, field) in expected.schema().fields().iter().enumerate() {
            assert_eq!(
                expected.column(column),
                actual.column(column),
                "part {index}, column {} differs ({threads} threads)",
                field.name()
            );
        }
    }
    golden::check(&columns.fingerprint, golden);
    columns
}

#[test]
fn clean_parquet_gives_the_same_rows_through_the_columns() {
    let inputs = [(
        "native.parquet",
        parquet_file(11, &native_columns(), 3000, 0, 700),
    )];
    let outcome = same_outcome("d30f091152739371", &ProcessOptions::default(), &inputs);
    assert!(outcome.output.output_records > 2000, "{:?}", outcome.output);
}

#[test]
fn bad_parquet_rows_of_every_kind_give_identical_rows_and_diagnostics() {
    let options = ProcessOptions {
        diagnostics: true,
        ..ProcessOptions::default()
    };
    let inputs = [
        (
            "native.parquet",
            parquet_file(12, &native_columns(), 9000, 25, 2500),
        ),
        (
            "converted.parquet",
            parquet_file(13, &converted_columns(), 3000, 30, 1000),
        ),
    ];
    let outcome = same_outcome("215a47aca0d01630", &options, &inputs);
    let counts = &outcome.output.error_counts;
    for code in [
        "INGEST-1555-400",
        "INGEST-9101-400",
        "INGEST-9102-400",
        "INGEST-9103-400",
        "INGEST-9104-400",
        "INGEST-9105-400",
    ] {
        assert!(
            counts.get(code).copied().unwrap_or(0) > 0,
            "no {code}: {counts:?}"
        );
    }
    assert!(outcome.output.output_records > 3000, "{:?}", outcome.output);
    assert!(outcome.output.failed_records > 1000, "{:?}", outcome.output);
}

#[test]
fn parquet_rows_near_the_limits_and_small_parts_give_identical_output() {
    let options = ProcessOptions {
        diagnostics: true,
        rows_per_row_group: 7,
        rows_per_part: 333,
        max_fields_per_row: 30,
        max_row_bytes: 700,
        ..ProcessOptions::default()
    };
    let inputs = [
        (
            "native.parquet",
            parquet_file(14, &native_columns(), 2000, 10, 500),
        ),
        (
            "converted.parquet",
            parquet_file(15, &converted_columns(), 1000, 10, 300),
        ),
    ];
    let outcome = same_outcome("f944274dd0e8f68a", &options, &inputs);
    assert!(outcome.output.parts.len() > 3, "{:?}", outcome.output);
    let parsing = outcome
        .output
        .error_counts
        .get("INGEST-1401-400")
        .copied()
        .unwrap_or(0);
    assert!(parsing > 0, "no row over a limit: {:?}", outcome.output);
    assert!(outcome.output.output_records > 500, "{:?}", outcome.output);
}

/// Runs the batch with the input's pages reused and without, on `threads`, and requires
/// the same rows, parts, counts and rejected-row files.
#[track_caller]
fn same_with_reused_pages(threads: usize, options: &ProcessOptions, inputs: &[(&str, Vec<u8>)]) {
    let dir = tempfile::tempdir().unwrap();
    let encoded = run(
        threads,
        &ProcessOptions {
            reuse_parquet_pages: false,
            ..options.clone()
        },
        inputs,
        &dir.path().join("encoded"),
    );
    let reused = run(
        threads,
        &ProcessOptions {
            reuse_parquet_pages: true,
            ..options.clone()
        },
        inputs,
        &dir.path().join("reused"),
    );
    assert_eq!(encoded.files, reused.files);
    assert_eq!(encoded.rejects, reused.rejects);
    assert_eq!(encoded.rows.len(), reused.rows.len());
    for (index, (expected, actual)) in encoded.rows.iter().zip(&reused.rows).enumerate() {
        for (column, field) in expected.schema().fields().iter().enumerate() {
            assert_eq!(
                expected.column(column),
                actual.column(column),
                "part {index}, column {} differs with reused pages ({threads} threads)",
                field.name()
            );
        }
    }
    assert_eq!(encoded.fingerprint, reused.fingerprint);
    // The generated inputs are uncompressed; Lakeport encodes with Snappy. So the chunks
    // left uncompressed are the copied ones, and they carry no statistics.
    let copied = |dir: &Path, outcome: &Outcome| {
        let mut copied = 0;
        for part in &outcome.output.parts {
            let file = fs::File::open(dir.join(format!("out-{threads}")).join(&part.relative_path))
                .unwrap();
            let metadata = ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .metadata()
                .clone();
            for group in metadata.row_groups() {
                for chunk in group.columns() {
                    if chunk.compression() == Compression::UNCOMPRESSED {
                        assert!(
                            chunk.statistics().is_none(),
                            "a copied chunk kept statistics"
                        );
                        copied += 1;
                    }
                }
            }
        }
        copied
    };
    assert_eq!(copied(&dir.path().join("encoded"), &encoded), 0);
    assert!(
        copied(&dir.path().join("reused"), &reused) > 0,
        "no page was reused ({threads} threads)"
    );
}

#[test]
fn reused_parquet_pages_hold_the_same_rows() {
    let options = ProcessOptions {
        diagnostics: true,
        ..ProcessOptions::default()
    };
    let inputs = [
        // Groups of 40 rows: about one in five has no rejected row (a required field is
        // missing from 2% of the rows) and is copied; the others are encoded.
        (
            "clean.parquet",
            parquet_file(21, &native_columns(), 3000, 0, 40),
        ),
        (
            "native.parquet",
            parquet_file(12, &native_columns(), 9000, 25, 2500),
        ),
        (
            "converted.parquet",
            parquet_file(13, &converted_columns(), 3000, 30, 1000),
        ),
    ];
    for threads in [1, 2, 4] {
        same_with_reused_pages(threads, &options, &inputs);
    }
}

#[test]
fn a_parquet_file_failing_part_way_gives_the_same_outcome_with_reused_pages() {
    // A page header of a later row group overwritten: the file fails there (a file-level
    // error), after rows of earlier groups, some of them copied, others read again.
    // 500 groups of 40 rows, read 8192 rows at a time: the third read meets group 400's
    // broken page, so the file fails after 8192 rows, in the middle of group 204.
    let mut bytes = parquet_file(22, &native_columns(), 20_000, 0, 40);
    let scratch = tempfile::tempdir().unwrap();
    fs::write(scratch.path().join("f.parquet"), &bytes).unwrap();
    let metadata = ParquetRecordBatchReaderBuilder::try_new(
        fs::File::open(scratch.path().join("f.parquet")).unwrap(),
    )
    .unwrap()
    .metadata()
    .clone();
    let schema = metadata.file_metadata().schema_descr();
    let leaf = (0..schema.num_columns())
        .find(|&leaf| schema.column(leaf).path().string() == "eventType")
        .unwrap();
    let offset = usize::try_from(metadata.row_group(400).column(leaf).data_page_offset()).unwrap();
    bytes[offset..offset + 12].fill(0xff);
    let options = ProcessOptions {
        diagnostics: true,
        ..ProcessOptions::default()
    };
    let inputs = [
        ("broken.parquet", bytes),
        (
            "native.parquet",
            parquet_file(12, &native_columns(), 2000, 25, 500),
        ),
    ];
    for threads in [1, 2, 4] {
        let dir = tempfile::tempdir().unwrap();
        let run_with = |reuse: bool, name: &str| {
            let options = ProcessOptions {
                reuse_parquet_pages: reuse,
                ..options.clone()
            };
            run(threads, &options, &inputs, &dir.path().join(name))
        };
        let (encoded, reused) = (run_with(false, "encoded"), run_with(true, "reused"));
        assert!(
            matches!(&encoded.files[0], Err(message) if message.contains("cannot be decoded as Parquet")),
            "{:?}",
            encoded.files
        );
        assert!(encoded.files[1].is_ok(), "{:?}", encoded.files);
        assert_eq!(encoded.files, reused.files);
        assert_eq!(encoded.rejects, reused.rejects);
        assert_eq!(encoded.fingerprint, reused.fingerprint);
        // The rows of the broken file before the failure count.
        assert_eq!(
            encoded.output.input_records,
            2000 + 8192,
            "{:?}",
            encoded.output
        );
    }
}
