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
use std::time::{Duration, Instant};

use lakeport_parquet::stage::DecodeStage;
use serde_json::Value;

const CHUNK_ROWS: usize = 4096;
const PASSES: usize = 3;

mod support;

use support::{Arguments, bench_schema, generate};

fn main() {
    let arguments = Arguments::parse(&["--bad-every"]);
    let mut path = std::env::var_os("LAKEPORT_BENCH_EVENTS").map(PathBuf::from);
    path = arguments.paths.last().cloned().or(path);
    let schema = bench_schema();
    let inputs = match path {
        Some(path) => vec![path],
        None => match arguments.number("--bad-every") {
            Some(bad_every) => vec![generate(bad_every)],
            None => vec![generate(0), generate(10)],
        },
    };
    for input in inputs {
        measure(&schema, &input);
    }
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
