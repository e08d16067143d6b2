//! Measures the whole file pipeline of one batch, as a worker runs it: read the file, decode,
//! validate, convert, build Arrow, encode and write the Parquet parts and the rejected rows
//! (no HTTP, no catalog). Reports wall time and the process's CPU time, so that the figure
//! per core stays meaningful on a loaded machine and the overlap of the threads shows.
//!
//! `cargo bench -p lakeport-parquet --bench pipeline [-- PATH ...] [--threads N]`
//!
//! Each PATH is a `.jsonl`, `.csv` (dotted headers, as `bench/ingest.py` writes them) or
//! `.parquet` file of `../shared/bench/gen_events.py` rows. Without one, 200,000 rows are
//! generated as JSON Lines. `--threads` is the batch's decoding threads (default: what the
//! processor chooses).

use std::path::Path;
use std::time::{Duration, Instant};

use lakeport_parquet::{BatchProcessor, CsvOptions, FileFormat, ProcessOptions};
use serde_json::Value;

const PASSES: usize = 3;

/// The server's allocator, so that the figures include what allocation costs there
/// (glibc's allocator, the bench's before, took less CPU; docs/BENCHMARKS.md): mimalloc with
/// freed blocks kept for reuse (32 MiB unless `LAKEPORT__INGEST__BLOCK_CACHE_MB` says
/// otherwise). The server also has mimalloc return freed pages at once; `main` runs the
/// bench again with the same setting when the environment has none.
#[global_allocator]
static ALLOCATOR: lakeport_alloc::Allocator = lakeport_alloc::Allocator;

mod support;

use support::{Arguments, bench_schema, generate};

fn main() {
    // mimalloc reads its options from the environment when the process starts.
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        let status = std::env::current_exe()
            .and_then(|bench| {
                std::process::Command::new(bench)
                    .args(std::env::args_os().skip(1))
                    .env("MIMALLOC_PURGE_DELAY", "0")
                    .status()
            })
            .expect("the bench runs again with the server's purge delay");
        std::process::exit(status.code().unwrap_or(1));
    }
    // The server's `ingest.block_cache_mb`, under the server's variable.
    if let Some(megabytes) = std::env::var("LAKEPORT__INGEST__BLOCK_CACHE_MB")
        .ok()
        .and_then(|value| value.parse::<usize>().ok())
    {
        lakeport_alloc::set_budget(megabytes << 20);
    }
    let arguments = Arguments::parse(&["--threads"]);
    let threads = arguments.number("--threads");
    let schema = bench_schema();
    let mut paths = arguments.paths;
    if paths.is_empty() {
        paths.push(generate(0));
    }
    for path in paths {
        measure(&schema, &path, threads);
    }
}

fn format_of(path: &Path) -> FileFormat {
    match path.extension().and_then(|extension| extension.to_str()) {
        Some("csv") => FileFormat::Csv(CsvOptions::default()),
        Some("parquet") => FileFormat::Parquet,
        _ => FileFormat::Json { multi_line: false },
    }
}

fn measure(schema: &Value, input: &Path, threads: Option<usize>) {
    let bytes = std::fs::metadata(input)
        .unwrap_or_else(|err| panic!("{}: {err}", input.display()))
        .len();
    let format = format_of(input);
    let mut runs = Vec::with_capacity(PASSES);
    let mut rows = 0;
    let mut written = 0;
    for pass in 0..PASSES {
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pipeline-out-{pass}"));
        let _ = std::fs::remove_dir_all(&out_dir);
        let mut options = ProcessOptions::default();
        if let Some(threads) = threads {
            options.threads = threads;
        }
        let cpu_started = process_cpu_time();
        let started = Instant::now();
        let mut processor =
            BatchProcessor::new(schema, &out_dir, options).expect("schema compiles");
        processor
            .process_file("input", input, &format)
            .expect("the file is processed");
        let output = processor.finish().expect("the batch is written");
        // As a worker does when it runs out of jobs: each pass starts cold.
        lakeport_alloc::release();
        runs.push((
            started.elapsed(),
            process_cpu_time().saturating_sub(cpu_started),
        ));
        rows = output.input_records;
        written = output.output_bytes;
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    runs.sort();
    let (wall, cpu) = runs[runs.len() / 2];
    let megabytes = bytes as f64 / 1e6;
    println!(
        "{}: {rows} rows, {megabytes:.1} MB to {:.1} MB of Parquet, threads {}: median of {PASSES} {:.2} s wall \
         ({:.1} MB/s, {:.0} rows/s), {:.2} s CPU ({:.1} MB/s per CPU-second, {:.2} cores busy), \
         peak RSS so far {} MB",
        input.display(),
        written as f64 / 1e6,
        threads.map_or_else(|| "default".to_owned(), |threads| threads.to_string()),
        wall.as_secs_f64(),
        megabytes / wall.as_secs_f64(),
        rows as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64(),
        megabytes / cpu.as_secs_f64(),
        cpu.as_secs_f64() / wall.as_secs_f64(),
        peak_rss_mb(),
    );
}

/// Returns the CPU time (user and system) of every thread of this process so far.
fn process_cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // After the command name in parentheses: fields 14 and 15 are utime and stime in ticks.
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|times| {
            times
                .iter()
                .filter_map(|time| time.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // The kernel's USER_HZ is 100 on every Linux Lakeport runs on.
    Duration::from_millis(ticks * 10)
}

/// Returns the process's peak resident set size so far, in MB (0 where the kernel does not say).
fn peak_rss_mb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kilobytes| kilobytes / 1024)
}
