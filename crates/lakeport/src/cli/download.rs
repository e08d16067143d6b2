//! `lakeport download <batch> --to <dir>`: the Data Access API (spec §4): the batch's
//! dataset files, the physical files behind each, then their bytes.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context as _, anyhow};
use clap::Args;
use indicatif::HumanBytes;
use lakeport_client::FileEntry;
use serde_json::{Value, json};

use super::transfer::{Bars, run_parallel};
use super::{Context, Exit};

/// How deep directory-backed dataset files may nest.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Batch id.
    batch: String,
    /// Folder to write into (created if missing); each file goes to
    /// <DIR>/<dataset file id>/<name>.
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
    /// Files downloaded at the same time.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    parallel: u16,
}

/// One physical file to fetch.
struct Download {
    file_id: String,
    name: String,
    length: Option<u64>,
    dest: PathBuf,
}

pub fn run(ctx: &Context, args: &DownloadArgs) -> anyhow::Result<()> {
    let files = ctx
        .client
        .batch_files(&args.batch)
        .with_context(|| format!("listing the files of batch {}", args.batch))?;
    if files.is_empty() {
        let status = ctx
            .client
            .batch(&args.batch)
            .map(|batch| batch.status.to_string())
            .unwrap_or_else(|_| "unknown".to_owned());
        return Err(anyhow!(
            "batch {} has no data files to download (status {status})",
            args.batch
        ));
    }
    let mut downloads = Vec::new();
    for file in &files {
        collect(ctx, &file.id, &file.id, &args.to, 0, &mut downloads)?;
    }
    let total: u64 = downloads.iter().filter_map(|d| d.length).sum();
    let bars = Bars::new(&ctx.out, total, downloads.len());
    let written = run_parallel(&downloads, usize::from(args.parallel), |download| {
        if let Some(parent) = download.dest.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let progress = bars.file(&download.name, download.length.unwrap_or(0));
        let result =
            ctx.client
                .download_file(&download.file_id, &download.name, &download.dest, &progress);
        let line = match &result {
            Ok(bytes) => format!(
                "downloaded {} ({})",
                download.dest.display(),
                HumanBytes(*bytes)
            ),
            Err(_) => format!("failed {}", download.name),
        };
        bars.finish_file(progress, &line);
        result.with_context(|| format!("downloading {} of {}", download.name, download.file_id))
    });
    bars.finish();
    let written = written?;
    if ctx.out.json {
        let items: Vec<Value> = downloads
            .iter()
            .zip(&written)
            .map(|(download, bytes)| {
                json!({
                    "dataSetFileId": download.file_id,
                    "name": download.name,
                    "path": download.dest.display().to_string(),
                    "bytes": bytes,
                })
            })
            .collect();
        return ctx
            .out
            .print_json(&json!({"batch": args.batch, "files": items}));
    }
    for download in &downloads {
        ctx.out.line(download.dest.display());
    }
    let bytes: u64 = written.iter().sum();
    eprintln!(
        "downloaded {} file(s), {}, into {}",
        downloads.len(),
        HumanBytes(bytes),
        args.to.display()
    );
    Ok(())
}

/// Lists the physical files behind a dataset file, following directory-backed ids.
fn collect(
    ctx: &Context,
    top_id: &str,
    file_id: &str,
    to: &Path,
    depth: usize,
    downloads: &mut Vec<Download>,
) -> anyhow::Result<()> {
    if depth > MAX_DEPTH {
        return Err(anyhow!(
            "dataset file {top_id} nests deeper than {MAX_DEPTH} levels"
        ));
    }
    let entries = ctx
        .client
        .file_entries(file_id)
        .with_context(|| format!("listing dataset file {file_id}"))?;
    for entry in entries {
        match entry {
            FileEntry::File { name, length } => {
                let relative = safe_relative(&name).ok_or_else(|| {
                    Exit::usage(format!("refusing to write the server's file name {name:?}"))
                })?;
                downloads.push(Download {
                    file_id: file_id.to_owned(),
                    dest: to.join(safe_segment(top_id)).join(relative),
                    name,
                    length,
                });
            }
            FileEntry::Nested { id } if id != file_id => {
                collect(ctx, top_id, &id, to, depth + 1, downloads)?;
            }
            FileEntry::Nested { .. } => {}
        }
    }
    Ok(())
}

/// Returns `name` as a relative path without `..`, or `None` if it would escape.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn safe_segment(id: &str) -> String {
    if id.chars().all(|c| c == '.') {
        return "_".repeat(id.len().max(1));
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_file_names_cannot_escape_the_target_folder() {
        assert_eq!(
            safe_relative("part-1.parquet"),
            Some(PathBuf::from("part-1.parquet"))
        );
        assert_eq!(
            safe_relative("a/./b.parquet"),
            Some(PathBuf::from("a/b.parquet"))
        );
        assert_eq!(safe_relative("../x"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_segment("01HV-1/../x"), "01HV-1_.._x");
    }
}
