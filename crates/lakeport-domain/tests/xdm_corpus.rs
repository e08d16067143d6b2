//! Runs the table-driven XDM validation corpus in `testdata/xdm/<case>/`.
//!
//! Each case holds `schema.json` (a resolved schema), `rows.jsonl` (one row per line),
//! `expected.jsonl` (one verdict per row: `{"ok": <converted row>}` or `{"errors": [...]}`)
//! and optionally `options.json`: `{"source": "json"|"csv"|"parquet", "unknownFields":
//! "drop"|"reject", "maxFieldsPerRow": <n>}`. `UPDATE_EXPECT=1` rewrites `expected.jsonl`
//! from the actual verdicts; read every changed verdict against the spec before keeping it.

use std::fmt::Write as _;
use std::path::Path;

use lakeport_domain::xdm::validate::{Source, UnknownFields, Validator, ValidatorOptions};
use serde_json::{Value, json};

#[test]
fn corpus_verdicts_match_expected() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/xdm");
    let update = std::env::var("UPDATE_EXPECT").is_ok_and(|value| value == "1");
    let mut cases = std::fs::read_dir(&corpus)
        .expect("testdata/xdm is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.is_dir())
        .collect::<Vec<_>>();
    cases.sort();
    assert!(!cases.is_empty(), "no cases under {}", corpus.display());

    let mut failures = String::new();
    let mut row_count = 0;
    for case in &cases {
        row_count += run_case(case, update, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "corpus verdicts differ (UPDATE_EXPECT=1 rewrites them; check each by the spec first):\n{failures}"
    );
    assert!(
        row_count >= 150,
        "the corpus should keep at least 150 rows, has {row_count}"
    );
}

/// Validates every row of one case; returns the number of rows.
fn run_case(case: &Path, update: bool, failures: &mut String) -> usize {
    let name = case
        .file_name()
        .expect("case name")
        .to_string_lossy()
        .into_owned();
    let settings = CaseSettings::read(&case.join("options.json"));
    let schema_path = case.join(&settings.schema);
    let schema: Value = serde_json::from_str(&read(&schema_path))
        .unwrap_or_else(|err| panic!("{}: {err}", schema_path.display()));
    let CaseSettings {
        options, source, ..
    } = settings;
    let validator = Validator::compile_with(&schema, options)
        .unwrap_or_else(|err| panic!("{name}: schema does not compile: {err}"));

    let rows = read(&case.join("rows.jsonl"));
    let actual = rows
        .lines()
        .enumerate()
        .map(|(index, line)| {
            let row: Value = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("{name}/rows.jsonl:{}: {err}", index + 1));
            verdict(&validator, row, source)
        })
        .collect::<Vec<_>>();

    let expected_path = case.join("expected.jsonl");
    if update {
        let mut text = actual.join("\n");
        text.push('\n');
        std::fs::write(&expected_path, text).expect("expected.jsonl is writable");
        return actual.len();
    }
    let expected = if expected_path.exists() {
        read(&expected_path)
    } else {
        String::new()
    };
    let expected = expected.lines().collect::<Vec<_>>();
    if expected.len() != actual.len() {
        let _ = writeln!(
            failures,
            "{name}: {} rows but {} expected verdicts",
            actual.len(),
            expected.len()
        );
    }
    for (index, (row, (actual, expected))) in
        rows.lines().zip(actual.iter().zip(&expected)).enumerate()
    {
        let expected = serde_json::from_str::<Value>(expected)
            .unwrap_or_else(|err| panic!("{name}/expected.jsonl:{}: {err}", index + 1))
            .to_string();
        if *actual != expected {
            let _ = writeln!(
                failures,
                "{name}/rows.jsonl:{}\n  row:      {row}\n  expected: {expected}\n  actual:   {actual}",
                index + 1
            );
        }
    }
    actual.len()
}

fn verdict(validator: &Validator, row: Value, source: Source) -> String {
    let verdict = match validator.validate(row, source) {
        Ok(converted) => json!({ "ok": converted }),
        Err(violations) => json!({ "errors": violations
            .iter()
            .map(|violation| json!({
                "code": violation.code.code(),
                "keyword": violation.keyword,
                "pointer": violation.pointer,
                "message": violation.message,
            }))
            .collect::<Vec<_>>() }),
    };
    verdict.to_string()
}

struct CaseSettings {
    options: ValidatorOptions,
    source: Source,
    /// The schema file, relative to the case directory.
    schema: String,
}

impl CaseSettings {
    fn read(path: &Path) -> Self {
        let mut settings = Self {
            options: ValidatorOptions::default(),
            source: Source::Json,
            schema: "schema.json".to_owned(),
        };
        if !path.exists() {
            return settings;
        }
        let Value::Object(entries) =
            serde_json::from_str(&read(path)).expect("options.json is JSON")
        else {
            panic!("{}: expected an object", path.display());
        };
        for (key, value) in entries {
            match (key.as_str(), value.as_str()) {
                ("source", Some("json")) => settings.source = Source::Json,
                ("source", Some("csv")) => settings.source = Source::Csv,
                ("source", Some("parquet")) => settings.source = Source::Parquet,
                ("unknownFields", Some("drop")) => {
                    settings.options.unknown_fields = UnknownFields::Drop
                }
                ("unknownFields", Some("reject")) => {
                    settings.options.unknown_fields = UnknownFields::Reject
                }
                ("schema", Some(schema)) => settings.schema = schema.to_owned(),
                ("maxFieldsPerRow", _) => {
                    let limit = value.as_u64().expect("maxFieldsPerRow is a number");
                    settings.options.max_fields_per_row =
                        usize::try_from(limit).expect("fits usize");
                }
                _ => panic!("{}: unknown option {key} = {value}", path.display()),
            }
        }
        settings
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}
