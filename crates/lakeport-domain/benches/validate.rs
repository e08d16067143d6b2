//! Measures the compiled XDM row validator on one thread over the shared benchmark events.
//!
//! `cargo bench -p lakeport-domain --bench validate [-- PATH | --bad-every N]`
//!
//! With a PATH (or `LAKEPORT_BENCH_EVENTS`), validates that JSON Lines file. Without one, it
//! generates 200,000 rows with `../shared/bench/gen_events.py` (relative to the workspace
//! root), once clean and once with `--bad-every 10`, and measures both. Rows are parsed into
//! `serde_json::Value`s before timing; each timed chunk validates rows cloned beforehand, so
//! the clock sees validation (and collecting its results) only.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lakeport_domain::xdm::validate::{Source, Validator};
use serde_json::Value;

const GENERATED_ROWS: usize = 200_000;
const CHUNK_ROWS: usize = 256;
const PASSES: usize = 5;

fn main() {
    let arguments = Arguments::parse();
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema_path = manifest_dir.join("testdata/xdm/bench-schema.json");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(&schema_path).expect("bench schema is readable"),
    )
    .expect("bench schema is JSON");
    let validator = Validator::compile(&schema).expect("bench schema compiles");

    let inputs = match arguments
        .path
        .or_else(|| std::env::var_os("LAKEPORT_BENCH_EVENTS").map(PathBuf::from))
    {
        Some(path) => vec![path],
        None => {
            let variants = match arguments.bad_every {
                Some(bad_every) => vec![bad_every],
                None => vec![0, 10],
            };
            variants
                .into_iter()
                .map(|bad_every| generate(manifest_dir, bad_every))
                .collect()
        }
    };
    for input in inputs {
        measure(&validator, &input);
    }
}

struct Arguments {
    path: Option<PathBuf>,
    bad_every: Option<usize>,
}

impl Arguments {
    fn parse() -> Self {
        let mut parsed = Self {
            path: None,
            bad_every: None,
        };
        let mut arguments = std::env::args().skip(1);
        while let Some(argument) = arguments.next() {
            match argument.as_str() {
                "--bad-every" => {
                    let value = arguments.next().expect("--bad-every needs a number");
                    parsed.bad_every = Some(value.parse().expect("--bad-every needs a number"));
                }
                // `cargo bench` passes `--bench`; ignore it and other harness flags.
                flag if flag.starts_with("--") => {}
                path => parsed.path = Some(PathBuf::from(path)),
            }
        }
        parsed
    }
}

/// Generates (or reuses) the events file for one `--bad-every` setting.
fn generate(manifest_dir: &Path, bad_every: usize) -> PathBuf {
    let generator = manifest_dir.join("../../../shared/bench/gen_events.py");
    let output = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("events-{GENERATED_ROWS}-bad{bad_every}.jsonl"));
    if output.exists() {
        return output;
    }
    assert!(
        generator.exists(),
        "no events file given and the generator {} does not exist; pass a JSON Lines path or set LAKEPORT_BENCH_EVENTS",
        generator.display()
    );
    eprintln!(
        "generating {} with {}",
        output.display(),
        generator.display()
    );
    let status = Command::new("python3")
        .arg(&generator)
        .arg(GENERATED_ROWS.to_string())
        .arg(&output)
        .args(["--bad-every", &bad_every.to_string()])
        .status()
        .unwrap_or_else(|err| panic!("cannot run python3 {}: {err}", generator.display()));
    assert!(
        status.success(),
        "{} failed with {status}",
        generator.display()
    );
    output
}

fn measure(validator: &Validator, input: &Path) {
    let text =
        std::fs::read_to_string(input).unwrap_or_else(|err| panic!("{}: {err}", input.display()));
    let input_bytes = text.len();
    let rows = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str::<Value>(line).expect("each line is JSON"))
        .collect::<Vec<_>>();
    drop(text);
    println!(
        "{}: {} rows, {:.1} MB",
        input.display(),
        rows.len(),
        megabytes(input_bytes)
    );

    // Warm up caches, the allocator and the regex pools; also counts the verdicts.
    let (mut failed_rows, mut violations) = (0, 0);
    for row in &rows {
        if let Err(found) = validator.validate(row.clone(), Source::Json) {
            failed_rows += 1;
            violations += found.len();
        }
    }
    println!(
        "  verdicts: {} passed, {failed_rows} failed, {violations} violations",
        rows.len() - failed_rows
    );

    let mut pass_times = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let mut elapsed = Duration::ZERO;
        for chunk in rows.chunks(CHUNK_ROWS) {
            let batch = chunk.to_vec();
            let mut verdicts = Vec::with_capacity(batch.len());
            let started = Instant::now();
            for row in batch {
                verdicts.push(validator.validate(black_box(row), Source::Json));
            }
            elapsed += started.elapsed();
            black_box(&verdicts);
        }
        pass_times.push(elapsed);
    }
    pass_times.sort();
    for (label, time) in [("best", pass_times[0]), ("median", pass_times[PASSES / 2])] {
        let seconds = time.as_secs_f64();
        println!(
            "  {label:>6} of {PASSES}: {:>10.0} rows/s {:>8.1} MB/s ({:.1} ms, {:.0} ns/row)",
            rows.len() as f64 / seconds,
            megabytes(input_bytes) / seconds,
            seconds * 1e3,
            seconds * 1e9 / rows.len() as f64,
        );
    }
}

fn megabytes(bytes: usize) -> f64 {
    bytes as f64 / 1_000_000.0
}
