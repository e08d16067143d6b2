//! What the ingestion benches share: the bench schema, the command line, and the generated
//! rows of `../shared/bench/gen_events.py`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Rows generated when no file is given.
pub const GENERATED_ROWS: usize = 200_000;

/// The command line of a bench: input files, and the value of each `--flag N`.
pub struct Arguments {
    pub paths: Vec<PathBuf>,
    pub numbers: Vec<(String, usize)>,
}

impl Arguments {
    /// Reads the command line; `--flag N` pairs for the flags in `numeric`, other flags
    /// (cargo's `--bench`) ignored.
    pub fn parse(numeric: &[&str]) -> Self {
        let mut parsed = Self {
            paths: Vec::new(),
            numbers: Vec::new(),
        };
        let mut arguments = std::env::args().skip(1);
        while let Some(argument) = arguments.next() {
            match argument.as_str() {
                flag if numeric.contains(&flag) => {
                    let value = arguments
                        .next()
                        .and_then(|value| value.parse::<usize>().ok())
                        .unwrap_or_else(|| panic!("{flag} needs a number"));
                    parsed.numbers.push((flag.to_owned(), value));
                }
                flag if flag.starts_with("--") => {}
                other => parsed.paths.push(PathBuf::from(other)),
            }
        }
        parsed
    }

    /// The number given with `flag`, if any.
    pub fn number(&self, flag: &str) -> Option<usize> {
        self.numbers
            .iter()
            .find(|(name, _)| name == flag)
            .map(|&(_, value)| value)
    }
}

/// The schema of the generated rows (the shared bench field group), or the resolved schema
/// in the file `LAKEPORT_BENCH_SCHEMA` names (say, a server's dataset schema fetched with
/// `Accept: application/vnd.adobe.xed-full+json`, to run its rows as the server does).
pub fn bench_schema() -> Value {
    let path = std::env::var_os("LAKEPORT_BENCH_SCHEMA").map_or_else(
        || manifest_dir().join("../lakeport-domain/testdata/xdm/bench-schema.json"),
        PathBuf::from,
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect("bench schema is readable"))
        .expect("bench schema is JSON")
}

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Generates [`GENERATED_ROWS`] JSON Lines rows, one in `bad_every` bad (0: none), once.
pub fn generate(bad_every: usize) -> PathBuf {
    let generator = manifest_dir().join("../../../shared/bench/gen_events.py");
    let output = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("events-{GENERATED_ROWS}-bad{bad_every}.jsonl"));
    if output.exists() {
        return output;
    }
    let status = Command::new("python3")
        .arg(&generator)
        .arg(GENERATED_ROWS.to_string())
        .arg(&output)
        .args(["--bad-every", &bad_every.to_string()])
        .status()
        .unwrap_or_else(|err| panic!("cannot run python3 {}: {err}", generator.display()));
    assert!(status.success(), "{} failed", generator.display());
    output
}
