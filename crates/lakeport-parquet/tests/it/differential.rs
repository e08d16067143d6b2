//! The column engine over generated files — clean rows, rows with bad values of every kind
//! the validator knows, and the edge cases of JSON itself — on one thread, with decoding and
//! writing overlapped, and with JSON Lines decoded on three threads: every output file
//! (Parquet parts, `failed/`, `meta/`) must be byte-identical between them, with the same
//! counts, and match the fingerprint recorded when the previous row engine gave the same
//! output (tests/it/golden.rs).

use std::fs;
use std::path::Path;

use lakeport_domain::xdm::validate::UnknownFields;
use lakeport_parquet::{
    BatchOutput, BatchProcessor, CsvOptions, FileFormat, FileStats, ProcessOptions,
};

use crate::golden;
use crate::support::schema;

/// SplitMix64: a small deterministic generator, so that a failure can be replayed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    pub(crate) fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub(crate) fn pick<'a>(&mut self, values: &[&'a str]) -> &'a str {
        values[self.below(values.len())]
    }
}

/// Values for one field: mostly good ones first, then bad ones and oddities. `good` is how
/// many of the first values are good.
struct Pool {
    name: &'static str,
    good: &'static [&'static str],
    bad: &'static [&'static str],
}

const POOLS: &[Pool] = &[
    Pool {
        name: "_id",
        good: &[
            "\"a1\"",
            "\"b-2\"",
            "\"\\u00e9t\\u00e9\"",
            "\"x\\ny\"",
            "7",
            "2.5",
        ],
        bad: &["\"\"", "null", "true", "[]", "{}"],
    },
    Pool {
        name: "timestamp",
        good: &[
            "\"2024-05-01T10:20:30Z\"",
            "\"2024-05-01T10:20:30.123456789+02:00\"",
            "\"2024-05-01t10:20:30.5z\"",
            "1714558830123",
            "-1000",
            "\"0000-01-01T00:00:00Z\"",
            "\"9999-12-31T23:59:59.999999Z\"",
        ],
        bad: &[
            "\"2024-05-01\"",
            "\"2024-02-30T00:00:00Z\"",
            "\"2024-05-01T10:20:60Z\"",
            "1714558830.5",
            "999999999999999999",
            "\"0000-01-01T00:00:00+01:00\"",
            "null",
            "false",
        ],
    },
    Pool {
        name: "level",
        good: &["0", "3", "\"12\"", "12.0", "32767", "\"+5\"", "null"],
        bad: &["-1", "\" 12\"", "12.5", "32768", "\"1e2\"", "true", "\"\""],
    },
    Pool {
        name: "eventType",
        good: &["\"view\"", "\"click\"", "\"buy\"", "null"],
        bad: &["\"View\"", "5", "\"\""],
    },
    Pool {
        name: "email",
        good: &["\"a@b.co\"", "\"first.last@example.com\""],
        bad: &["\"a@\"", "\"@b\"", "\"no at\""],
    },
    Pool {
        name: "site",
        good: &["\"https://example.com/x?y=1\"", "\"mailto:a@b.c\""],
        bad: &["\"/relative\"", "\"not a uri\""],
    },
    Pool {
        name: "uuid",
        good: &["\"123e4567-e89b-12d3-a456-426614174000\""],
        bad: &["\"123e4567e89b12d3a456426614174000\"", "\"xyz\""],
    },
    Pool {
        name: "day",
        good: &["\"2024-02-29\""],
        bad: &["\"2023-02-29\"", "\"2024-1-1\""],
    },
    Pool {
        name: "code",
        good: &["\"ABC\"", "\"XYZ\""],
        bad: &["\"AB\"", "\"abcd\"", "\"ABCD\""],
    },
    Pool {
        name: "note",
        good: &[
            "\"hi\"",
            "\"ten chars!\"",
            "\"\\u00e9\\u00e9\\u00e9\"",
            "1234",
        ],
        bad: &["\"x\"", "\"eleven chars\"", "1"],
    },
    Pool {
        name: "b",
        good: &["-128", "127", "\"-7\"", "0", "-0", "1e2"],
        bad: &["128", "-129", "\"0x1\"", "1.5", "18446744073709551615"],
    },
    Pool {
        name: "sh",
        good: &["-4", "100", "\"007\""],
        bad: &["-5", "-6", "40000"],
    },
    Pool {
        name: "i",
        good: &["1", "2", "3", "2147483647", "2.0", "\"3\""],
        bad: &["4", "0", "2147483648"],
    },
    Pool {
        name: "l",
        good: &["9007199254740991", "-9007199254740991", "\"123\"", "0"],
        bad: &[
            "9007199254740992",
            "9223372036854775807",
            "18446744073709551616",
            "1e300",
            "\"12a\"",
        ],
    },
    Pool {
        name: "n",
        good: &[
            "1000.4", "-1000000", "0.1", "-0.0", "\"12.5\"", "\"+1e3\"", "1e-300", "5",
        ],
        bad: &[
            "1000.5",
            "-1000001",
            "\"1e400\"",
            "\".5\"",
            "\"NaN\"",
            "true",
        ],
    },
    Pool {
        name: "ratio",
        good: &["0.5", "1", "1.0", "2.5", "\"2.5\""],
        bad: &["2", "0.25"],
    },
    Pool {
        name: "flag",
        good: &["true", "false", "null"],
        bad: &["\"true\"", "1", "\"yes\""],
    },
    Pool {
        name: "yes",
        good: &["true"],
        bad: &["false"],
    },
    Pool {
        name: "d",
        good: &[
            "\"2024-01-31\"",
            "\"0000-01-01\"",
            "\"9999-12-31\"",
            "86400000",
            "-1",
        ],
        bad: &[
            "\"2024-01-32\"",
            "\"2024-01-01T00:00:00Z\"",
            "1.0",
            "400000000000000",
        ],
    },
    Pool {
        name: "dEnum",
        good: &["\"2024-01-01\"", "1709164800000", "1704067200000"],
        bad: &["\"2024-01-02\"", "0"],
    },
    Pool {
        name: "dt",
        good: &["\"2024-05-01T10:20:30-05:30\"", "0", "253402300799999"],
        bad: &["\"yesterday\"", "253402300800000"],
    },
    Pool {
        name: "dtPattern",
        good: &[
            "\"2024-05-01T10:20:30Z\"",
            "1714558830000",
            "\"1999-12-31T23:00:00-02:00\"",
        ],
        bad: &["\"1999-12-31T10:00:00Z\"", "0"],
    },
    Pool {
        name: "empty",
        good: &["{}", "{\"x\":1}"],
        bad: &["[]", "\"x\""],
    },
    Pool {
        name: "person",
        good: &[
            "{\"name\":\"Ann\",\"age\":30,\"birth\":\"1990-01-01\"}",
            "{\"name\":\"Bo\",\"tier\":\"gold\",\"address\":{\"city\":\"Paris\",\"country\":\"FR\"}}",
            "{\"name\":\"Cy\",\"tier\":null,\"address\":{\"city\":\"Rome\"}}",
            "{\"address\":{\"geo\":{}},\"name\":\"Di\",\"extra\":[1,{\"deep\":[2,3]}]}",
            "{\"name\":\"Ed\",\"address\":{\"country\":null,\"geo\":{\"lat\":1}}}",
            "{\"name\":\"Fay\",\"age\":\"42\"}",
        ],
        bad: &[
            "{\"age\":3}",
            "{\"name\":null}",
            "{\"name\":\"G\",\"age\":-1}",
            "{\"name\":\"H\",\"tier\":\"platinum\"}",
            "{\"name\":\"I\",\"address\":{\"country\":\"usa\"}}",
            "{\"name\":\"J\",\"address\":[]}",
            "{\"name\":\"K\",\"name\":\"L\"}",
            "{\"name\":\"M\",\"age\":1,\"age\":\"x\"}",
            "{\"name\":\"N\",\"tier\":\"x\",\"tier\":\"gold\"}",
            "[1]",
        ],
    },
    Pool {
        name: "tags",
        good: &[
            "[]",
            "[\"a\",\"b\"]",
            "[\"a\",null,\"a\"]",
            "[1,2.5,\"x\",null]",
        ],
        bad: &[
            "[\"a\",\"b\",\"c\",\"d\",\"e\"]",
            "[true]",
            "\"a\"",
            "[[\"a\"]]",
        ],
    },
    Pool {
        name: "unique",
        good: &["[1,2,3]", "[]", "[1,null,null]"],
        bad: &["[1,2,1]", "[1,\"1\"]", "[1,1.0]"],
    },
    Pool {
        name: "scores",
        good: &["[0]", "[1.5,2,\"3\"]", "[null]"],
        bad: &["[]", "[-1]", "[\"x\"]"],
    },
    Pool {
        name: "matrix",
        good: &["[[1,2],[],[3]]", "[null,[null,4]]", "[]"],
        bad: &["[[1.5]]", "[1]", "[[2147483648]]"],
    },
    Pool {
        name: "dates",
        good: &["[\"2024-05-01T00:00:00+14:00\",0,null]", "[]"],
        bad: &["[\"2024-05-01\"]", "[0.5]"],
    },
    Pool {
        name: "lines",
        good: &[
            "[{\"sku\":\"S1\",\"qty\":2,\"price\":9.99},{\"sku\":\"S22\"}]",
            "[{\"sku\":\"S3\",\"qty\":null},null]",
            "[]",
        ],
        bad: &[
            "[{\"qty\":1}]",
            "[{\"sku\":\"X1\"}]",
            "[{\"sku\":\"S1\",\"qty\":0}]",
            "[{\"sku\":\"S1\",\"sku\":\"S2\"}]",
        ],
    },
    Pool {
        name: "voids",
        good: &["[{},{\"x\":1},null]", "[]"],
        bad: &["[1]", "[[]]"],
    },
    Pool {
        name: "attributes",
        good: &[
            "{}",
            "{\"a\":\"x\",\"b\":null,\"c\":\"12345678\"}",
            "{\"n\":5,\"\\u00e9\":\"\\u00e9\"}",
        ],
        bad: &[
            "{\"a\":\"123456789\"}",
            "{\"a\":true}",
            "{\"a\":\"x\",\"a\":\"y\"}",
            "{\"a\":\"x\",\"a\":null}",
            "{\"a\":null,\"a\":\"y\"}",
            "[]",
        ],
    },
    Pool {
        name: "counters",
        good: &["{\"x\":1,\"y\":\"2\",\"z\":3.0}", "{}"],
        bad: &["{\"x\":1.5}", "{\"x\":2147483648}"],
    },
    Pool {
        name: "nested",
        good: &[
            "{\"k\":{\"at\":\"2024-01-01\",\"x\":1},\"m\":{},\"n\":null}",
            "{\"k\":{\"at\":0}}",
        ],
        bad: &["{\"k\":{\"at\":\"nope\"}}", "{\"k\":5}"],
    },
    Pool {
        name: "chosen",
        good: &["{\"a\":1}"],
        bad: &["{\"a\":2}"],
    },
];

/// Lines that are not rows of the schema at all.
const ODD_LINES: &[&[u8]] = &[
    b"",
    b"   \t",
    b"[1,2]",
    b"\"text\"",
    b"42",
    b"null",
    b"{",
    b"{\"_id\":",
    b"{} {}",
    b"{\"_id\":\"x\",}",
    b"{\"_id\":\"\\ud800\",\"timestamp\":0}",
    b"{\"_id\":\"\xff\xfe\",\"timestamp\":0}",
    b"{\"_id\":\"ok\",\"timestamp\":1e400}",
    b"{\"_id\":\"ok\",\"timestamp\":0,\"level\":1}\r",
    b"  {\"_id\":\"padded\",\"timestamp\":0}  ",
    b"{\"_id\":\"deep\",\"timestamp\":0,\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
];

/// Generates one row: required fields usually present, each other field with some
/// probability; a bad row (`bad_percent` of them) has one to three bad values. Fields come
/// in schema order or shuffled, sometimes with an unknown field or a repeated key.
fn row(rng: &mut Rng, bad_percent: usize) -> Vec<u8> {
    if rng.chance(3) {
        return rng.pick_bytes(ODD_LINES).to_vec();
    }
    let bad_fields: Vec<usize> = if rng.chance(bad_percent) {
        (0..1 + rng.below(3))
            .map(|_| rng.below(POOLS.len()))
            .collect()
    } else {
        Vec::new()
    };
    let mut entries: Vec<String> = Vec::new();
    for (index, pool) in POOLS.iter().enumerate() {
        let bad = bad_fields.contains(&index);
        let required = matches!(pool.name, "_id" | "timestamp");
        if !bad && !required && !rng.chance(45) {
            continue;
        }
        let value = if bad {
            rng.pick(pool.bad)
        } else {
            rng.pick(pool.good)
        };
        entries.push(format!("\"{}\":{}", pool.name, value));
        if rng.chance(1) {
            // A repeated key: the last value wins.
            let again = rng.pick(pool.good);
            entries.push(format!("\"{}\":{}", pool.name, again));
        }
    }
    if rng.chance(1) {
        // A required field left out.
        entries.remove(0);
    }
    if rng.chance(5) {
        entries.push("\"unknownField\":{\"a\":[1,2,{\"b\":null}]}".to_owned());
    }
    if rng.chance(20) {
        for index in (1..entries.len()).rev() {
            entries.swap(index, rng.below(index + 1));
        }
    }
    format!("{{{}}}", entries.join(",")).into_bytes()
}

impl Rng {
    fn pick_bytes<'a>(&mut self, values: &[&'a [u8]]) -> &'a [u8] {
        values[self.below(values.len())]
    }
}

/// A JSON Lines file of `rows` generated rows; `bom` starts it with a byte-order mark.
pub(crate) fn json_lines(seed: u64, rows: usize, bad_percent: usize, bom: bool) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut file = Vec::new();
    if bom {
        file.extend_from_slice(b"\xEF\xBB\xBF");
    }
    for _ in 0..rows {
        file.extend_from_slice(&row(&mut rng, bad_percent));
        file.extend_from_slice(if rng.chance(5) { b"\r\n" } else { b"\n" });
    }
    file
}

/// The same kind of rows as one JSON array (only rows that are valid JSON).
fn json_array(seed: u64, rows: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let mut elements = Vec::new();
    while elements.len() < rows {
        let row = row(&mut rng, 20);
        if serde_json::from_slice::<serde_json::Value>(&row).is_ok() {
            elements.push(String::from_utf8(row).unwrap());
        }
    }
    format!("[{}]", elements.join(",\n")).into_bytes()
}

/// A CSV file of the scalar fields, with good and bad texts.
fn csv(seed: u64, rows: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let columns: [(&str, &[&str]); 8] = [
        ("_id", &["a", "b", "", "c d"]),
        (
            "timestamp",
            &["2024-05-01T10:20:30Z", "1714558830123", "x", ""],
        ),
        ("level", &["1", "", " 2", "3.0"]),
        ("flag", &["true", "false", "TRUE", ""]),
        ("n", &["1.5", "-0", "1e400", "abc"]),
        ("person.name", &["Ann", "", "Bo"]),
        ("person.age", &["30", "-1", "", "x"]),
        ("person.address.country", &["FR", "", "usa"]),
    ];
    let mut text = columns.map(|(name, _)| name).join(",");
    text.push('\n');
    for _ in 0..rows {
        let line: Vec<&str> = columns.iter().map(|(_, values)| rng.pick(values)).collect();
        text.push_str(&line.join(","));
        text.push('\n');
    }
    text.into_bytes()
}

/// One input file of a batch.
struct Input {
    name: &'static str,
    bytes: Vec<u8>,
    format: FileFormat,
}

/// What a batch produced: its output, each file's stats or error, and every output file.
#[derive(Debug, PartialEq)]
struct Outcome {
    output: BatchOutput,
    files: Vec<Result<FileStats, String>>,
    contents: Vec<(String, Vec<u8>)>,
    fingerprint: String,
}

fn run(options: &ProcessOptions, inputs: &[Input], dir: &Path) -> Outcome {
    let out = dir.join("out");
    let staged = dir.join("in");
    fs::create_dir_all(&staged).unwrap();
    let mut processor =
        BatchProcessor::new(&schema("differential.schema.json"), &out, options.clone()).unwrap();
    let mut files = Vec::new();
    for input in inputs {
        let path = staged.join(input.name);
        fs::write(&path, &input.bytes).unwrap();
        files.push(
            processor
                .process_file(input.name, &path, &input.format)
                .map_err(|err| err.to_string()),
        );
    }
    let output = processor.finish().unwrap();
    let mut contents: Vec<(String, Vec<u8>)> = output
        .parts
        .iter()
        .chain(&output.failed)
        .chain(&output.meta)
        .map(|file| {
            let bytes = fs::read(out.join(&file.relative_path)).unwrap();
            (file.relative_path.clone(), bytes)
        })
        .collect();
    contents.sort();
    let fingerprint = golden::fingerprint(&out, &output, &files);
    Outcome {
        output,
        files,
        contents,
        fingerprint,
    }
}

/// Runs the batch on one thread in all, with decoding and writing overlapped (the default),
/// and with JSON Lines decoded on three threads whose results are merged in order; requires
/// identical outcomes with the recorded fingerprint, and returns the last.
#[track_caller]
fn same_outcome(golden: &str, options: &ProcessOptions, inputs: &[Input]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let mut runs: Vec<Outcome> = Vec::new();
    for threads in [1, 2, 4] {
        let options = ProcessOptions {
            threads,
            ..options.clone()
        };
        let outcome = run(&options, inputs, &dir.path().join(threads.to_string()));
        golden::check(&outcome.fingerprint, golden);
        if let Some(previous) = runs.last() {
            same(previous, &outcome, threads);
        }
        runs.push(outcome);
    }
    runs.pop().expect("three runs")
}

#[track_caller]
fn same(rows: &Outcome, columns: &Outcome, threads: usize) {
    assert_eq!(
        rows.output, columns.output,
        "batch outputs differ ({threads} threads)"
    );
    assert_eq!(
        rows.files, columns.files,
        "file results differ ({threads} threads)"
    );
    for ((path, expected), (other_path, actual)) in rows.contents.iter().zip(&columns.contents) {
        assert_eq!(path, other_path);
        if expected != actual {
            panic!(
                "{path} differs on {threads} threads:\nbefore: {}\n{threads} threads: {}",
                String::from_utf8_lossy(&expected[..expected.len().min(2000)]),
                String::from_utf8_lossy(&actual[..actual.len().min(2000)])
            );
        }
    }
    assert_eq!(rows.contents.len(), columns.contents.len());
}

fn json_lines_input(name: &'static str, bytes: Vec<u8>) -> Input {
    Input {
        name,
        bytes,
        format: FileFormat::Json { multi_line: false },
    }
}

#[test]
fn clean_json_lines_give_identical_parquet() {
    let inputs = [json_lines_input(
        "clean.json",
        json_lines(1, 3000, 0, false),
    )];
    let outcome = same_outcome("c4a4bbfddb92a75f", &ProcessOptions::default(), &inputs);
    assert!(outcome.output.output_records > 2000, "{:?}", outcome.output);
}

#[test]
fn bad_rows_of_every_kind_give_identical_output_and_diagnostics() {
    let options = ProcessOptions {
        diagnostics: true,
        ..ProcessOptions::default()
    };
    let inputs = [
        json_lines_input("bad.json", json_lines(2, 4000, 15, true)),
        json_lines_input("worse.json", json_lines(3, 1500, 60, false)),
    ];
    let outcome = same_outcome("fbbae14d8668cd82", &options, &inputs);
    let counts = &outcome.output.error_counts;
    for code in [
        "INGEST-1401-400",
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
    assert!(outcome.output.output_records > 1000, "{:?}", outcome.output);
}

#[test]
fn unknown_fields_rejected_and_small_parts_give_identical_output() {
    let options = ProcessOptions {
        diagnostics: true,
        unknown_fields: UnknownFields::Reject,
        rows_per_row_group: 5,
        rows_per_part: 37,
        max_fields_per_row: 60,
        ..ProcessOptions::default()
    };
    let inputs = [json_lines_input(
        "rows.json",
        json_lines(4, 2000, 10, false),
    )];
    let outcome = same_outcome("ce432a2b73f2d99a", &options, &inputs);
    assert!(outcome.output.parts.len() > 10, "{:?}", outcome.output);
}

#[test]
fn every_format_in_one_batch_gives_identical_output() {
    let options = ProcessOptions {
        diagnostics: true,
        rows_per_part: 1000,
        ..ProcessOptions::default()
    };
    // A Parquet input of the schema's own columns: the clean rows written by a first batch.
    let first = same_outcome(
        "fff106d64cd9bffb",
        &ProcessOptions::default(),
        &[json_lines_input("seed.json", json_lines(5, 1500, 0, false))],
    );
    let parquet = first
        .contents
        .iter()
        .find(|(path, _)| path.ends_with(".parquet"))
        .map(|(_, bytes)| bytes.clone())
        .unwrap();
    let inputs = [
        json_lines_input("a.json", json_lines(6, 700, 20, false)),
        Input {
            name: "b.csv",
            bytes: csv(7, 600),
            format: FileFormat::Csv(CsvOptions::default()),
        },
        Input {
            name: "c.json",
            bytes: json_array(8, 500),
            format: FileFormat::Json { multi_line: true },
        },
        Input {
            name: "d.parquet",
            bytes: parquet,
            format: FileFormat::Parquet,
        },
        json_lines_input("e.json", json_lines(9, 900, 5, true)),
    ];
    // (The Parquet input's size is part of the fingerprint: it changed when Lakeport's
    // files lost their page index.)
    let outcome = same_outcome("540b1921f6ded2fe", &options, &inputs);
    assert!(
        outcome.files.iter().all(Result::is_ok),
        "{:?}",
        outcome.files
    );
}
