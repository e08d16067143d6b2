//! Measures the decoding stage of JSON Lines ingestion on one thread: parse, validate,
//! convert and build Arrow record batches (no Parquet encoding, no IO), as batches do it.
//!
//! `cargo bench -p lakeport-parquet --bench decode [-- PATH | --bad-every N]`
//!
//! With a PATH (or `LAKEPORT_BENCH_EVENTS`), decodes that JSON Lines file. Without one, it
//! generates 200,000 rows with `../shared/bench/gen_events.py` (relative to the workspace
//! root), once clean and once with `--bad-every 10`. The lines are read into memory first;
//! the clock sees decoding and building only. Besides wall time it reports the thread's time
//! on a CPU (`/proc/thread-self/schedstat`), which stays meaningful on a loaded machine.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lakeport_parquet::stage::DecodeStage;
use serde_json::Value;

const GENERATED_ROWS: usize = 200_000;
const CHUNK_ROWS: usize = 4096;
const PASSES: usize = 3;

fn main() {
    let mut path = std::env::var_os("LAKEPORT_BENCH_EVENTS").map(PathBuf::from);
    let mut bad_every = None;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        match argument.as_str() {
            "--bad-every" => {
                let value = arguments.next().expect("--bad-every needs a number");
                bad_every = Some(value.parse::<usize>().expect("--bad-every needs a number"));
            }
            flag if flag.starts_with("--") => {}
            other => path = Some(PathBuf::from(other)),
        }
    }
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let schema_path = manifest_dir.join("../lakeport-domain/testdata/xdm/bench-schema.json");
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(&schema_path).expect("bench schema is readable"),
    )
    .expect("bench schema is JSON");
    let inputs = match path {
        Some(path) => vec![path],
        None => match bad_every {
            Some(bad_every) => vec![generate(manifest_dir, bad_every)],
            None => vec![generate(manifest_dir, 0), generate(manifest_dir, 10)],
        },
    };
    for input in inputs {
        measure(&schema, &input);
    }
}

fn generate(manifest_dir: &Path, bad_every: usize) -> PathBuf {
    let generator = manifest_dir.join("../../../shared/bench/gen_events.py");
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

fn measure(schema: &Value, input: &Path) {
    let text = std::fs::read(input).unwrap_or_else(|err| panic!("{}: {err}", input.display()));
    let lines: Vec<&[u8]> = text
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.trim_ascii().is_empty())
        .collect();
    println!(
        "{}: {} rows, {:.1} MB",
        input.display(),
        lines.len(),
        text.len() as f64 / 1e6
    );
    {
        let mut times = Vec::with_capacity(PASSES);
        let mut cpu_times = Vec::with_capacity(PASSES);
        let mut rejected = 0;
        for _ in 0..PASSES {
            let mut stage = DecodeStage::new(schema).expect("schema compiles");
            let started = Instant::now();
            let cpu_started = cpu_time();
            for chunk in lines.chunks(CHUNK_ROWS) {
                for line in chunk {
                    stage.push_line(black_box(line));
                }
                black_box(stage.flush());
            }
            times.push(started.elapsed());
            cpu_times.push(cpu_time().saturating_sub(cpu_started));
            rejected = stage.rejected();
        }
        times.sort();
        cpu_times.sort();
        report("wall", &times, lines.len(), text.len(), rejected);
        report("on-CPU", &cpu_times, lines.len(), text.len(), rejected);
    }
}

/// Returns how long this thread has run on a CPU (zero where the kernel does not say).
fn cpu_time() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

fn report(clock: &str, times: &[Duration], rows: usize, bytes: usize, rejected: u64) {
    for (label, time) in [("best", times[0]), ("median", times[times.len() / 2])] {
        let seconds = time.as_secs_f64();
        println!(
            "  {clock:>6} {label:>6} of {PASSES}: {:>9.0} rows/s {:>7.1} MB/s ({:.0} ns/row, {rejected} rejected)",
            rows as f64 / seconds,
            bytes as f64 / 1e6 / seconds,
            seconds * 1e9 / rows as f64,
        );
    }
}
