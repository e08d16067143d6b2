//! The columnar CSV path (issue 16) over generated CSV files — every scalar
//! type and constraint of the differential schema as text, dotted headers into nested
//! objects (required fields, defaults) and maps, headers naming arrays and objects, quoted
//! fields with delimiters, quotes and line breaks, records of the wrong width, oversized
//! records, a byte-order mark, CRLF, a null marker, Latin-1, a field that is not in the
//! charset (a file-level error after some rows) — on one thread and with decoding and
//! writing overlapped. Every output file (Parquet parts, `failed/`, `meta/`) must be
//! byte-identical between the two, with the same counts and per-file results, and match the
//! fingerprint recorded when the previous row path gave the same output (tests/it/golden.rs).

use std::fs;
use std::path::Path;

use lakeport_parquet::{
    BatchOutput, BatchProcessor, Charset, CsvOptions, FileFormat, FileStats, ProcessOptions,
};

use crate::differential::{Rng, json_lines};
use crate::golden;
use crate::support::schema;

/// One CSV column: its header name, texts that pass and texts that break a rule.
struct Column {
    header: &'static str,
    good: &'static [&'static str],
    bad: &'static [&'static str],
}

const fn column(
    header: &'static str,
    good: &'static [&'static str],
    bad: &'static [&'static str],
) -> Column {
    Column { header, good, bad }
}

/// The columns of the differential schema that CSV can fill, with good and bad texts of
/// every rule (an empty text is null).
const COLUMNS: &[Column] = &[
    column(
        "_id",
        &[
            "a1",
            "b-2",
            "\u{e9}t\u{e9}",
            "x y",
            "say \"hi\"",
            "two\nlines",
            "a,b",
        ],
        &[""],
    ),
    column(
        "timestamp",
        &[
            "2024-05-01T10:20:30Z",
            "2024-05-01T10:20:30.123456789+02:00",
            "2024-05-01t10:20:30.5z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
        ],
        &[
            "2024-05-01",
            "1714558830123",
            "x",
            "",
            "0000-01-01T00:00:00+01:00",
        ],
    ),
    column(
        "level",
        &["0", "3", "+5", "007", "32767", ""],
        &["-1", " 12", "12.0", "32768", "1e2", "x"],
    ),
    column("eventType", &["view", "click", "buy", ""], &["View", "5"]),
    column(
        "email",
        &["a@b.co", "first.last@example.com"],
        &["a@", "no at"],
    ),
    column(
        "site",
        &["https://example.com/x?y=1", "mailto:a@b.c"],
        &["/relative", "not a uri"],
    ),
    column(
        "uuid",
        &["123e4567-e89b-12d3-a456-426614174000"],
        &["xyz", "123e4567e89b12d3a456426614174000"],
    ),
    column("day", &["2024-02-29"], &["2023-02-29", "2024-1-1"]),
    column("code", &["ABC", "XYZ"], &["AB", "abc", "ABCD"]),
    column(
        "note",
        &["hi", "ten chars!", "\u{e9}\u{e9}\u{e9}", "1234"],
        &["x", "eleven chars"],
    ),
    column(
        "b",
        &["-128", "127", "-7", "0", "-0"],
        &["128", "-129", "0x1", "1.5"],
    ),
    column("sh", &["-4", "100", "007"], &["-5", "40000", "x"]),
    column(
        "i",
        &["1", "2", "3", "2147483647"],
        &["4", "2.0", "2147483648"],
    ),
    column(
        "l",
        &["9007199254740991", "-9007199254740991", "+123", "0"],
        &[
            "9007199254740992",
            "-9223372036854775808",
            "9223372036854775808",
            "1e300",
            "12a",
        ],
    ),
    column(
        "n",
        &[
            "1000.4", "-1000000", "0.1", "-0.0", "12.5", "+1e3", "1e-300", "5", "007.50",
        ],
        &["1000.5", "-1000001", "1e400", ".5", "NaN", "inf", "1."],
    ),
    column("ratio", &["0.5", "1", "2.5", "1.0"], &["2", "0.25"]),
    column(
        "flag",
        &["true", "false", ""],
        &["TRUE", "1", "yes", " true"],
    ),
    column("yes", &["true"], &["false"]),
    column(
        "d",
        &["2024-01-31", "0000-01-01", "9999-12-31"],
        &["2024-01-32", "2024-01-01T00:00:00Z", "86400000"],
    ),
    column("dEnum", &["2024-01-01", "2024-02-29"], &["2024-01-02"]),
    column(
        "dt",
        &["2024-05-01T10:20:30-05:30", "2024-05-01T10:20:30.5Z"],
        &["yesterday", "2024-02-30T00:00:00Z"],
    ),
    column(
        "dtPattern",
        &["2024-05-01T10:20:30Z", "1999-12-31T23:00:00-02:00"],
        &["1999-12-31T10:00:00Z"],
    ),
    column("person.name", &["Ann", "Bo"], &[""]),
    column("person.age", &["30", "0", ""], &["-1", "x", "300"]),
    column("person.birth", &["1990-01-01", ""], &["1990-13-01"]),
    column("person.tier", &["gold", "silver", ""], &["platinum"]),
    column("person.address.city", &["Paris", "Rome", ""], &[]),
    column("person.address.country", &["FR", ""], &["usa"]),
    column("attributes.a", &["x", "12345678", ""], &["123456789"]),
    column("attributes.b", &["\u{e9}", ""], &["much too long"]),
    column(
        "counters.x",
        &["1", "-2", "007", ""],
        &["1.5", "2147483648"],
    ),
    column("counters.y", &["3", ""], &["y"]),
    column("chosen.a", &["1", ""], &["2"]),
];

/// Columns that only the row validator decides (text for an array, a map of objects, an
/// object without properties): in a file of their own, as they make every row undecided.
const ODD_COLUMNS: &[Column] = &[
    column("_id", &["odd"], &[""]),
    column("timestamp", &["2024-05-01T10:20:30Z"], &[]),
    column("tags", &[""], &["a"]),
    column("nested.k", &[""], &["v"]),
    column("empty", &[""], &["x"]),
    column("person.address.geo", &[""], &["g"]),
    column("person.name", &["Cy"], &[""]),
    column("flag", &["false"], &["no"]),
];

/// Writes one field, quoted when it must be (or now and then when it need not be).
fn field(rng: &mut Rng, text: &str, out: &mut String) {
    let needs = text.contains([',', '"', '\n', '\r']) || text.starts_with(' ');
    if needs || (!text.is_empty() && rng.chance(3)) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// A CSV file of `rows` records of `columns` (in a shuffled order when `shuffle`), a bad
/// text in `bad_percent` of them; 2% of the records have the wrong width, 1% start with 900
/// bytes more (over the row limit of the small-limit test), 10% end with CRLF.
fn csv_file(
    seed: u64,
    columns: &[Column],
    rows: usize,
    bad_percent: usize,
    shuffle: bool,
) -> String {
    let mut rng = Rng(seed);
    let mut order: Vec<usize> = (0..columns.len()).collect();
    if shuffle {
        for index in (1..order.len()).rev() {
            order.swap(index, rng.below(index + 1));
        }
    }
    let mut text = order
        .iter()
        .map(|&index| columns[index].header)
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for _ in 0..rows {
        let bad: Vec<usize> = if rng.chance(bad_percent) {
            (0..1 + rng.below(2))
                .map(|_| rng.below(columns.len()))
                .collect()
        } else {
            Vec::new()
        };
        let mut values: Vec<&str> = order
            .iter()
            .map(|&index| {
                let column = &columns[index];
                if bad.contains(&index) && !column.bad.is_empty() {
                    rng.pick(column.bad)
                } else if matches!(column.header, "_id" | "timestamp" | "person.name")
                    || rng.chance(60)
                {
                    rng.pick(column.good)
                } else {
                    ""
                }
            })
            .collect();
        if rng.chance(2) {
            if rng.chance(50) {
                values.push("extra");
            } else {
                values.pop();
            }
        }
        let mut line = String::new();
        for (position, value) in values.iter().enumerate() {
            if position > 0 {
                line.push(',');
            }
            field(&mut rng, value, &mut line);
        }
        if rng.chance(1) {
            // A record far over the row limit of the small-limit test.
            line.insert_str(0, &"z".repeat(900));
        }
        text.push_str(&line);
        text.push_str(if rng.chance(10) { "\r\n" } else { "\n" });
    }
    text
}

fn csv_input(name: &'static str, text: String) -> Input {
    Input {
        name,
        bytes: text.into_bytes(),
        format: FileFormat::Csv(CsvOptions::default()),
    }
}

/// One input file of a batch.
struct Input {
    name: &'static str,
    bytes: Vec<u8>,
    format: FileFormat,
}

/// What a batch produced: its output, each file's stats or error, and every output file.
struct Outcome {
    output: BatchOutput,
    files: Vec<Result<FileStats, String>>,
    contents: Vec<(String, Vec<u8>)>,
    fingerprint: String,
}

fn run(
    threads: usize,
    schema_name: &str,
    options: &ProcessOptions,
    inputs: &[Input],
    dir: &Path,
) -> Outcome {
    let out = dir.join(format!("out-{threads}"));
    let staged = dir.join("in");
    fs::create_dir_all(&staged).unwrap();
    let options = ProcessOptions {
        threads,
        ..options.clone()
    };
    let mut processor = BatchProcessor::new(&schema(schema_name), &out, options).unwrap();
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

/// Runs the batch on one thread, on two (decoding and writing overlapped) and on four
/// (records checked on three threads, merged in order), requires byte-identical outcomes
/// with the recorded fingerprint, and returns the last.
#[track_caller]
fn same_outcome(
    golden: &str,
    schema_name: &str,
    options: &ProcessOptions,
    inputs: &[Input],
) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let rows = run(1, schema_name, options, inputs, dir.path());
    let mut last = None;
    for threads in [2, 4] {
        let columns = run(threads, schema_name, options, inputs, dir.path());
        assert_eq!(
            rows.files, columns.files,
            "file results differ ({threads} threads)"
        );
        assert_eq!(
            rows.output, columns.output,
            "batch outputs differ ({threads} threads)"
        );
        assert_eq!(rows.contents.len(), columns.contents.len());
        for ((path, expected), (other_path, actual)) in rows.contents.iter().zip(&columns.contents)
        {
            assert_eq!(path, other_path);
            if expected != actual {
                let first = expected
                    .iter()
                    .zip(actual)
                    .position(|(a, b)| a != b)
                    .unwrap_or(expected.len().min(actual.len()));
                let from = first.saturating_sub(200);
                panic!(
                    "{path} differs between one thread and {threads} from byte {first}:\none:  {}\n{threads}:  {}",
                    String::from_utf8_lossy(&expected[from..expected.len().min(first + 800)]),
                    String::from_utf8_lossy(&actual[from..actual.len().min(first + 800)])
                );
            }
        }
        golden::check(&columns.fingerprint, golden);
        last = Some(columns);
    }
    last.expect("two runs")
}

fn diagnostics() -> ProcessOptions {
    ProcessOptions {
        diagnostics: true,
        ..ProcessOptions::default()
    }
}

#[test]
fn clean_csv_gives_identical_parquet() {
    let inputs = [csv_input(
        "clean.csv",
        csv_file(21, COLUMNS, 9000, 0, false),
    )];
    let outcome = same_outcome(
        "c820f22e0d012d9e",
        "differential.schema.json",
        &diagnostics(),
        &inputs,
    );
    assert!(outcome.output.output_records > 5000, "{:?}", outcome.output);
}

#[test]
fn bad_csv_rows_of_every_kind_give_identical_output_and_diagnostics() {
    let inputs = [
        csv_input("bad.csv", csv_file(22, COLUMNS, 9000, 20, false)),
        csv_input("shuffled.csv", csv_file(23, COLUMNS, 3000, 60, true)),
        csv_input("odd.csv", csv_file(24, ODD_COLUMNS, 600, 30, true)),
    ];
    let outcome = same_outcome(
        "ac0181a80ffe0b1d",
        "differential.schema.json",
        &diagnostics(),
        &inputs,
    );
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
    assert!(outcome.output.output_records > 3000, "{:?}", outcome.output);
    assert!(outcome.output.failed_records > 2000, "{:?}", outcome.output);
    assert!(
        outcome.files.iter().all(Result::is_ok),
        "{:?}",
        outcome.files
    );
}

#[test]
fn csv_near_the_limits_with_small_parts_gives_identical_output() {
    let options = ProcessOptions {
        diagnostics: true,
        rows_per_row_group: 7,
        rows_per_part: 333,
        max_fields_per_row: 20,
        max_row_bytes: 600,
        ..ProcessOptions::default()
    };
    let inputs = [
        csv_input("limits.csv", csv_file(25, COLUMNS, 4000, 10, false)),
        csv_input("more.csv", csv_file(26, COLUMNS, 1500, 30, true)),
    ];
    let outcome = same_outcome(
        "f03709238830b3f4",
        "differential.schema.json",
        &options,
        &inputs,
    );
    assert!(outcome.output.parts.len() > 5, "{:?}", outcome.output);
    let parsing = outcome
        .output
        .error_counts
        .get("INGEST-1401-400")
        .copied()
        .unwrap_or(0);
    assert!(parsing > 0, "no record over a limit: {:?}", outcome.output);
    assert!(outcome.output.output_records > 500, "{:?}", outcome.output);
}

#[test]
fn csv_options_charsets_and_a_file_error_give_identical_output() {
    let mut bom = b"\xEF\xBB\xBF".to_vec();
    bom.extend(csv_file(27, COLUMNS, 1200, 15, false).into_bytes());
    // Latin-1: the same kind of text, é as one byte.
    let latin1: Vec<u8> = csv_file(28, COLUMNS, 800, 15, true)
        .chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect();
    // A null marker, and `;` as the delimiter.
    let marked = csv_file(29, COLUMNS, 900, 15, false)
        .replace(',', ";")
        .replace(";;", ";NULL;");
    // A field that is not UTF-8 after 5000 good records fails the file; the rows before
    // it stay.
    let mut broken = csv_file(30, COLUMNS, 5000, 10, false).into_bytes();
    broken.extend_from_slice(b"\xff\xfe,2024-05-01T10:20:30Z\n");
    broken.extend(csv_file(31, COLUMNS, 100, 10, false).into_bytes());
    let inputs = [
        Input {
            name: "bom.csv",
            bytes: bom,
            format: FileFormat::Csv(CsvOptions::default()),
        },
        Input {
            name: "latin1.csv",
            bytes: latin1,
            format: FileFormat::Csv(CsvOptions {
                charset: Charset::Latin1,
                ..CsvOptions::default()
            }),
        },
        Input {
            name: "marked.csv",
            bytes: marked.into_bytes(),
            format: FileFormat::Csv(CsvOptions {
                delimiter: b';',
                null_marker: Some("NULL".to_owned()),
                ..CsvOptions::default()
            }),
        },
        Input {
            name: "broken.csv",
            bytes: broken,
            format: FileFormat::Csv(CsvOptions::default()),
        },
        Input {
            name: "ascii.csv",
            bytes: csv_file(32, COLUMNS, 300, 10, false).into_bytes(),
            format: FileFormat::Csv(CsvOptions {
                charset: Charset::UsAscii,
                ..CsvOptions::default()
            }),
        },
    ];
    let outcome = same_outcome(
        "eb3709860f25dd4c",
        "differential.schema.json",
        &diagnostics(),
        &inputs,
    );
    let [bom, latin1, marked, broken, ascii] = &outcome.files[..] else {
        panic!("{:?}", outcome.files);
    };
    assert!(
        bom.is_ok() && latin1.is_ok() && marked.is_ok(),
        "{:?}",
        outcome.files
    );
    let broken = broken.as_ref().unwrap_err();
    assert!(broken.contains("is not UTF-8 text"), "{broken}");
    assert!(ascii.is_err(), "{ascii:?}");
    assert!(outcome.output.input_records > 7000, "{:?}", outcome.output);
}

#[test]
fn csv_between_json_files_and_a_namespace_schema_give_identical_output() {
    let options = ProcessOptions {
        diagnostics: true,
        rows_per_part: 2500,
        ..ProcessOptions::default()
    };
    let inputs = [
        Input {
            name: "a.json",
            bytes: json_lines(41, 1700, 10, false),
            format: FileFormat::Json { multi_line: false },
        },
        csv_input("b.csv", csv_file(42, COLUMNS, 2300, 10, true)),
        Input {
            name: "c.json",
            bytes: json_lines(43, 900, 10, false),
            format: FileFormat::Json { multi_line: false },
        },
        csv_input("d.csv", csv_file(44, COLUMNS, 3100, 0, false)),
    ];
    let outcome = same_outcome(
        "895bcd40a1c8ed9e",
        "differential.schema.json",
        &options,
        &inputs,
    );
    assert!(outcome.output.parts.len() > 2, "{:?}", outcome.output);

    // An ad-hoc schema: names resolve inside the dataset namespace.
    let mut text = String::from("name,visits,joined,active,address.city,note\n");
    let mut rng = Rng(45);
    for row in 0..3000 {
        let visits = rng.pick(&["1", "", "x", "2147483648", "-3"]);
        let joined = rng.pick(&["2024-01-01", "", "2024-13-01"]);
        let active = rng.pick(&["true", "false", "", "True"]);
        let city = rng.pick(&["Oslo", "", "S\u{e3}o Paulo"]);
        let name = if rng.chance(5) {
            String::new()
        } else {
            format!("m{row}")
        };
        text.push_str(&format!(
            "{name},{visits},{joined},{active},{city},\"n,{row}\"\n"
        ));
    }
    let outcome = same_outcome(
        "4ba6865eef0d308b",
        "adhoc.schema.json",
        &diagnostics(),
        &[csv_input("members.csv", text)],
    );
    assert!(outcome.output.output_records > 500, "{:?}", outcome.output);
    assert!(outcome.output.failed_records > 100, "{:?}", outcome.output);
}

#[test]
fn csv_records_of_megabytes_give_identical_output() {
    // Records of 3 MB fill a chunk's 8 MiB of text after two; a 9 MB record is more than a
    // chunk holds and goes the row way on its own; the rest are ordinary.
    let options = ProcessOptions {
        diagnostics: true,
        max_row_bytes: 12 * 1024 * 1024,
        ..ProcessOptions::default()
    };
    let mut text = String::from("_id,timestamp,note,attributes.a\n");
    for row in 0..40 {
        let size = match row % 10 {
            3..=5 => 3_000_000,
            7 if row == 17 => 9_000_000,
            _ => 10,
        };
        let note = if row % 4 == 0 { "hi" } else { "x" };
        text.push_str(&format!(
            "{},2024-05-01T10:20:30Z,{note},{}\n",
            "i".repeat(size),
            if row % 3 == 0 { "toolongvalue" } else { "ok" }
        ));
    }
    let outcome = same_outcome(
        "c74c40a221b296e0",
        "differential.schema.json",
        &options,
        &[csv_input("large.csv", text)],
    );
    assert!(outcome.output.output_records > 5, "{:?}", outcome.output);
    assert!(outcome.output.failed_records > 5, "{:?}", outcome.output);
}
