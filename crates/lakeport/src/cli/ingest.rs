//! `lakeport ingest`: uploads files and folders into new batches of a dataset (one batch
//! per input format), several files at a time, with progress bars on a terminal; large
//! files go through chunked upload. With `--wait` it follows the batches to the end and
//! prints what was ingested and rejected.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use clap::{Args, ValueEnum};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use lakeport_client::{Batch, BatchAction, BatchStatus, ClientError, FileTarget};
use serde_json::{Value, json};

use super::batch::{print_summary, rejected_rows, summary_json};
use super::output::Output;
use super::transfer::{Bars, FileProgress, run_parallel};
use super::{Context, EXIT_BATCH_FAILED, Exit};

/// Largest chunk the Batch Ingestion API accepts (spec §1.8).
const MAX_CHUNK: u64 = 512_000_000;

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Files and folders to upload (folders are walked recursively; the path below the
    /// folder is kept inside the batch).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Target dataset id.
    #[arg(long)]
    dataset: String,
    /// Input format of every file [default: from the extension: .json (JSON Lines, or one
    /// JSON array), .jsonl, .csv, .parquet].
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Partial ingestion: the batch succeeds when at most PERCENT of its rows are rejected
    /// (implies diagnostics).
    #[arg(long, value_name = "PERCENT", value_parser = parse_percent)]
    partial: Option<f64>,
    /// Keeps error diagnostics: the rejected rows and why.
    #[arg(long)]
    diagnostics: bool,
    /// Waits until the batches are processed, then prints rows read, ingested and
    /// rejected (exit code 3 if a batch did not succeed).
    #[arg(long)]
    wait: bool,
    /// With --wait: gives up after this many seconds.
    #[arg(long, value_name = "SECONDS", requires = "wait")]
    timeout: Option<u64>,
    /// With --wait: how many rejected rows to show per batch.
    #[arg(long, value_name = "N", default_value_t = 5)]
    show_rejected: usize,
    /// Files uploaded at the same time.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel: u16,
    /// Files larger than this are uploaded in chunks (e.g. 256MiB, 10k, 4096).
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = parse_size)]
    put_limit: u64,
    /// Chunk size of chunked uploads (at most 512000000 bytes).
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    chunk_size: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// JSON Lines, or one JSON array when the file starts with `[`.
    Json,
    /// JSON Lines.
    Jsonl,
    Csv,
    Parquet,
}

/// How the files of one batch are read (a batch has one `inputFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum InputFormat {
    JsonLines,
    JsonArray,
    Csv,
    Parquet,
}

impl InputFormat {
    fn label(self) -> &'static str {
        match self {
            Self::JsonLines => "json",
            Self::JsonArray => "json array",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    /// Returns the batch `inputFormat` (spec §3.1).
    fn request(self) -> Value {
        match self {
            Self::JsonLines => json!({"format": "json"}),
            Self::JsonArray => json!({"format": "json", "isMultiLineJson": true}),
            Self::Csv => json!({"format": "csv"}),
            Self::Parquet => json!({"format": "parquet"}),
        }
    }
}

/// A local file and where it goes in its batch.
#[derive(Debug, Clone)]
struct LocalFile {
    local: PathBuf,
    remote: String,
    size: u64,
    format: InputFormat,
}

/// One batch of this run and its files.
struct Planned {
    format: InputFormat,
    files: Vec<LocalFile>,
    batch: Batch,
}

/// How one file went up.
#[derive(Debug, Clone, Copy)]
enum Method {
    Put,
    Chunked { chunks: u64 },
}

pub fn run(ctx: &Context, args: &IngestArgs) -> anyhow::Result<()> {
    if args.chunk_size == 0 || args.chunk_size > MAX_CHUNK {
        return Err(Exit::usage(format!(
            "--chunk-size must be between 1 and {MAX_CHUNK} bytes"
        )));
    }
    let files = collect_files(&args.paths, args.format, &ctx.out)?;
    ctx.client
        .dataset(&args.dataset)
        .with_context(|| format!("reading dataset {}", args.dataset))?;

    let mut groups: BTreeMap<InputFormat, Vec<LocalFile>> = BTreeMap::new();
    for file in files {
        groups.entry(file.format).or_default().push(file);
    }
    let mut planned: Vec<Planned> = Vec::new();
    for (format, files) in groups {
        let mut request = json!({"datasetId": args.dataset, "inputFormat": format.request()});
        if let Some(percent) = args.partial {
            request["partialIngestionPercent"] = json!(percent);
        }
        if args.diagnostics {
            request["enableErrorDiagnostics"] = json!(true);
        }
        match ctx.client.create_batch(&request) {
            Ok(batch) => planned.push(Planned {
                format,
                files,
                batch,
            }),
            Err(err) => {
                abort_all(ctx, &planned);
                return Err(err).with_context(|| {
                    format!(
                        "creating a {} batch in dataset {}",
                        format.label(),
                        args.dataset
                    )
                });
            }
        }
    }
    if !ctx.out.json {
        for plan in &planned {
            let bytes: u64 = plan.files.iter().map(|file| file.size).sum();
            eprintln!(
                "batch {}: {} {} file(s), {}",
                plan.batch.id,
                plan.files.len(),
                plan.format.label(),
                HumanBytes(bytes)
            );
        }
    }

    let methods = match upload_all(ctx, args, &planned) {
        Ok(methods) => methods,
        Err(err) => {
            abort_all(ctx, &planned);
            let ids: Vec<&str> = planned.iter().map(|plan| plan.batch.id.as_str()).collect();
            return Err(err.context(format!("aborted batch {}", ids.join(", "))));
        }
    };
    for plan in &planned {
        ctx.client
            .signal_batch(&plan.batch.id, BatchAction::Complete)
            .with_context(|| format!("completing batch {}", plan.batch.id))?;
    }

    if !args.wait {
        return report_started(ctx, &planned, &methods);
    }
    let mut batches: Vec<Batch> = planned.iter().map(|plan| plan.batch.clone()).collect();
    wait_for(ctx, &mut batches, args.timeout.map(Duration::from_secs))?;
    report_finished(ctx, args, &planned, &methods, &batches)
}

/// Walks the inputs into the files to upload, sorted, each with its path in the batch.
fn collect_files(
    inputs: &[PathBuf],
    format: Option<FormatArg>,
    out: &Output,
) -> anyhow::Result<Vec<LocalFile>> {
    let mut files = Vec::new();
    let mut skipped = 0usize;
    for input in inputs {
        let meta = std::fs::metadata(input)
            .map_err(|err| Exit::usage(format!("{}: {err}", input.display())))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(input, &mut found)
                .with_context(|| format!("reading folder {}", input.display()))?;
            for local in found {
                let remote = local
                    .strip_prefix(input)
                    .unwrap_or(&local)
                    .components()
                    .map(|part| part.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                match file_format(&local, format)? {
                    Some(file_format) => files.push(local_file(local, remote, file_format)?),
                    None => skipped += 1,
                }
            }
        } else {
            let remote = input
                .file_name()
                .map(|name| name.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Some(file_format) = file_format(input, format)? else {
                return Err(Exit::usage(format!(
                    "{}: cannot tell the format from the extension; pass --format",
                    input.display()
                )));
            };
            files.push(local_file(input.clone(), remote, file_format)?);
        }
    }
    if skipped > 0 && !out.json {
        eprintln!("skipped {skipped} file(s) without a .json, .jsonl, .csv or .parquet extension");
    }
    if files.is_empty() {
        return Err(Exit::usage("no files to ingest"));
    }
    let mut seen = HashSet::new();
    for file in &files {
        if !seen.insert((file.format, file.remote.as_str())) {
            return Err(Exit::usage(format!(
                "two inputs would both be uploaded as {:?}; ingest them separately",
                file.remote
            )));
        }
    }
    Ok(files)
}

fn local_file(local: PathBuf, remote: String, format: InputFormat) -> anyhow::Result<LocalFile> {
    let size = std::fs::metadata(&local)
        .with_context(|| format!("reading {}", local.display()))?
        .len();
    Ok(LocalFile {
        local,
        remote,
        size,
        format,
    })
}

/// Collects the regular files below `dir`, sorted, skipping hidden entries.
fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            walk(&path, found)?;
        } else if meta.is_file() {
            found.push(path);
        }
    }
    Ok(())
}

/// Returns the format of a file from `--format` or its extension; `None` when unknown.
fn file_format(path: &Path, format: Option<FormatArg>) -> anyhow::Result<Option<InputFormat>> {
    let extension = path
        .extension()
        .map(|ext| ext.to_string_lossy().to_ascii_lowercase());
    let chosen = match format {
        Some(format) => Some(format),
        None => match extension.as_deref() {
            Some("json") => Some(FormatArg::Json),
            Some("jsonl" | "ndjson") => Some(FormatArg::Jsonl),
            Some("csv") => Some(FormatArg::Csv),
            Some("parquet") => Some(FormatArg::Parquet),
            _ => None,
        },
    };
    Ok(match chosen {
        None => None,
        Some(FormatArg::Jsonl) => Some(InputFormat::JsonLines),
        Some(FormatArg::Csv) => Some(InputFormat::Csv),
        Some(FormatArg::Parquet) => Some(InputFormat::Parquet),
        Some(FormatArg::Json) => Some(if starts_with_array(path)? {
            InputFormat::JsonArray
        } else {
            InputFormat::JsonLines
        }),
    })
}

/// Returns whether the first character after a BOM and whitespace is `[`.
fn starts_with_array(path: &Path) -> anyhow::Result<bool> {
    let mut head = Vec::with_capacity(4096);
    std::fs::File::open(path)
        .and_then(|file| file.take(4096).read_to_end(&mut head))
        .with_context(|| format!("reading {}", path.display()))?;
    let text = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&head);
    Ok(text.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'['))
}

/// Uploads every planned file, `--parallel` at a time, and returns how each went up,
/// grouped like `planned`. Stops starting new files after the first failure.
fn upload_all(
    ctx: &Context,
    args: &IngestArgs,
    planned: &[Planned],
) -> anyhow::Result<Vec<Vec<Method>>> {
    let uploads: Vec<(usize, &LocalFile)> = planned
        .iter()
        .enumerate()
        .flat_map(|(index, plan)| plan.files.iter().map(move |file| (index, file)))
        .collect();
    let total: u64 = uploads.iter().map(|(_, file)| file.size).sum();
    let bars = Bars::new(&ctx.out, total, uploads.len());
    let outcome = run_parallel(&uploads, usize::from(args.parallel), |(index, file)| {
        upload_one(ctx, args, &bars, &planned[*index].batch.id, file)
    });
    bars.finish();
    let mut methods: Vec<Vec<Method>> = planned.iter().map(|_| Vec::new()).collect();
    for ((index, _), method) in uploads.iter().zip(outcome?) {
        methods[*index].push(method);
    }
    Ok(methods)
}

fn upload_one(
    ctx: &Context,
    args: &IngestArgs,
    bars: &Bars,
    batch: &str,
    file: &LocalFile,
) -> anyhow::Result<Method> {
    let progress = bars.file(&file.remote, file.size);
    let target = FileTarget {
        batch,
        dataset: &args.dataset,
        path: &file.remote,
    };
    let chunked = |progress: &FileProgress<'_>| {
        ctx.client
            .upload_file_chunked(&target, &file.local, args.chunk_size, progress)
            .map(|_| Method::Chunked {
                chunks: file.size.div_ceil(args.chunk_size).max(1),
            })
    };
    let result = if file.size > args.put_limit {
        chunked(&progress)
    } else {
        match ctx.client.upload_file(&target, &file.local, &progress) {
            Ok(_) => Ok(Method::Put),
            // The server's single-PUT limit is lower than ours: go through chunks.
            Err(err) if err.status() == Some(413) => {
                progress.restart();
                chunked(&progress)
            }
            Err(err) => Err(err),
        }
    };
    let line = match &result {
        Ok(Method::Put) => format!("uploaded {} ({})", file.remote, HumanBytes(file.size)),
        Ok(Method::Chunked { chunks }) => format!(
            "uploaded {} ({}, {chunks} chunks)",
            file.remote,
            HumanBytes(file.size)
        ),
        Err(_) => format!("failed {}", file.remote),
    };
    bars.finish_file(progress, &line);
    result.map_err(|err: ClientError| {
        anyhow::Error::new(err).context(format!("uploading {}", file.local.display()))
    })
}

/// Best effort: aborts the batches of this run after a failure.
fn abort_all(ctx: &Context, planned: &[Planned]) {
    for plan in planned {
        if let Err(err) = ctx.client.signal_batch(&plan.batch.id, BatchAction::Abort) {
            eprintln!("note: could not abort batch {}: {err}", plan.batch.id);
        }
    }
}

/// Polls the batches until each one is settled (or `timeout` passes).
fn wait_for(ctx: &Context, batches: &mut [Batch], timeout: Option<Duration>) -> anyhow::Result<()> {
    let started = Instant::now();
    let spinner = if ctx.out.bars {
        let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        spinner.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .expect("the template is valid"),
        );
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    } else {
        ProgressBar::hidden()
    };
    let mut delay = Duration::from_millis(200);
    loop {
        for batch in batches.iter_mut() {
            if !batch.status.is_settled() {
                *batch = ctx
                    .client
                    .batch(&batch.id)
                    .with_context(|| format!("reading batch {}", batch.id))?;
            }
        }
        let pending: Vec<&Batch> = batches
            .iter()
            .filter(|batch| !batch.status.is_settled())
            .collect();
        let Some(first) = pending.first() else {
            spinner.finish_and_clear();
            return Ok(());
        };
        spinner.set_message(format!("waiting for batch {}: {}", first.id, first.status));
        if let Some(timeout) = timeout
            && started.elapsed() >= timeout
        {
            spinner.finish_and_clear();
            return Err(anyhow!(
                "batch {} is still {} after {}s",
                first.id,
                first.status,
                timeout.as_secs()
            ));
        }
        std::thread::sleep(delay);
        delay = (delay * 3 / 2).min(Duration::from_secs(2));
    }
}

fn files_json(plan: &Planned, methods: &[Method]) -> Value {
    Value::Array(
        plan.files
            .iter()
            .zip(methods)
            .map(|(file, method)| {
                let chunks = match method {
                    Method::Put => None,
                    Method::Chunked { chunks } => Some(*chunks),
                };
                json!({
                    "path": file.remote,
                    "local": file.local.display().to_string(),
                    "bytes": file.size,
                    "chunked": chunks.is_some(),
                    "chunks": chunks,
                })
            })
            .collect(),
    )
}

fn report_started(
    ctx: &Context,
    planned: &[Planned],
    methods: &[Vec<Method>],
) -> anyhow::Result<()> {
    if ctx.out.json {
        let batches: Vec<Value> = planned
            .iter()
            .zip(methods)
            .map(|(plan, methods)| {
                json!({
                    "id": plan.batch.id,
                    "status": BatchStatus::Staging.as_str(),
                    "dataset": plan.batch.dataset_id(),
                    "format": plan.batch.format(),
                    "files": files_json(plan, methods),
                })
            })
            .collect();
        return ctx.out.print_json(&json!({"batches": batches}));
    }
    for plan in planned {
        let bytes: u64 = plan.files.iter().map(|file| file.size).sum();
        ctx.out.line(format!(
            "{}  {}  {} {} file(s), {}",
            plan.batch.id,
            ctx.out.status(BatchStatus::Staging.as_str()),
            plan.files.len(),
            plan.format.label(),
            HumanBytes(bytes)
        ));
    }
    eprintln!("follow with `lakeport batch show <id>`, or pass --wait");
    Ok(())
}

fn report_finished(
    ctx: &Context,
    args: &IngestArgs,
    planned: &[Planned],
    methods: &[Vec<Method>],
    batches: &[Batch],
) -> anyhow::Result<()> {
    let rejected: Vec<Option<Vec<Value>>> = batches
        .iter()
        .map(|batch| {
            let has_rejects = batch.rows_rejected().unwrap_or(0) > 0;
            if has_rejects || batch.status != BatchStatus::Success {
                rejected_rows(&ctx.client, batch, args.show_rejected)
            } else {
                None
            }
        })
        .collect();
    if ctx.out.json {
        let items: Vec<Value> = batches
            .iter()
            .zip(&rejected)
            .zip(planned.iter().zip(methods))
            .map(|((batch, rejected), (plan, methods))| {
                let mut summary = summary_json(batch, rejected.as_deref());
                summary["files"] = files_json(plan, methods);
                summary
            })
            .collect();
        ctx.out.print_json(&json!({"batches": items}))?;
    } else {
        for (index, (batch, rejected)) in batches.iter().zip(&rejected).enumerate() {
            if index > 0 {
                ctx.out.line("");
            }
            print_summary(&ctx.out, batch, rejected.as_deref());
        }
    }
    let unsuccessful: Vec<&Batch> = batches
        .iter()
        .filter(|batch| batch.status != BatchStatus::Success)
        .collect();
    match unsuccessful.first() {
        None => Ok(()),
        Some(batch) => {
            let reason = batch
                .errors()
                .first()
                .map(|error| format!(": {}", error.description.trim()))
                .unwrap_or_default();
            let others = match unsuccessful.len() {
                1 => String::new(),
                n => format!(" (and {} more batches)", n - 1),
            };
            Err(anyhow::Error::new(Exit {
                code: EXIT_BATCH_FAILED,
                message: format!("batch {} {}{reason}{others}", batch.id, batch.status),
            }))
        }
    }
}

/// Parses a size: bytes, or a number with k/M/G (powers of 1024; `KiB`, `MB`, … also
/// accepted, `MB` meaning 10^6).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 4096, 10k or 256MiB"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use k, M, G, KiB, MB, …"
            ));
        }
    };
    Ok((number * factor).round() as u64)
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=100.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 100".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_binary_and_decimal_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("10k"), Ok(10 * 1024));
        assert_eq!(parse_size("256MiB"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_size("1.5M"), Ok(1_572_864));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn json_files_starting_with_a_bracket_are_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let array = dir.path().join("a.json");
        std::fs::write(&array, "\u{feff}  \n[{\"a\": 1}]").unwrap();
        let lines = dir.path().join("b.json");
        std::fs::write(&lines, "{\"a\": 1}\n").unwrap();
        assert_eq!(
            file_format(&array, None).unwrap(),
            Some(InputFormat::JsonArray)
        );
        assert_eq!(
            file_format(&lines, None).unwrap(),
            Some(InputFormat::JsonLines)
        );
        assert_eq!(
            file_format(&array, Some(FormatArg::Jsonl)).unwrap(),
            Some(InputFormat::JsonLines)
        );
        assert_eq!(file_format(&dir.path().join("c.txt"), None).unwrap(), None);
    }
}
