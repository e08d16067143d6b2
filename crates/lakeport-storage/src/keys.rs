//! Where things live in object storage. Every key starts with the tenant, so one
//! organization's data never shares a prefix with another's.

use object_store::path::{Path, PathPart};

/// Why a client-supplied file path inside a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("file path {path:?} is not allowed: {reason}")]
pub struct BadFilePath {
    pub path: String,
    pub reason: &'static str,
}

/// Checks a batch file path (`day=2025-03-01/events.parquet`): relative, `/`-separated,
/// no empty, `.` or `..` segments, no backslashes or control characters.
///
/// # Errors
/// [`BadFilePath`] with the reason.
pub fn check_file_path(path: &str) -> Result<Vec<&str>, BadFilePath> {
    let bad = |reason| BadFilePath {
        path: path.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if path.len() > 1024 {
        return Err(bad("it is longer than 1024 characters"));
    }
    if path.starts_with('/') {
        return Err(bad("it must be relative to the batch"));
    }
    if path.chars().any(|c| c.is_control() || c == '\\') {
        return Err(bad("it contains a backslash or a control character"));
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err(bad("it contains an empty segment"));
    }
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(bad("it contains a '.' or '..' segment"));
    }
    Ok(segments)
}

fn join(parts: &[&str]) -> Path {
    Path::from_iter(parts.iter().map(|part| PathPart::from(*part)))
}

fn tenant_parts<'a>(org: &'a str, sandbox: &'a str) -> [&'a str; 2] {
    [org, sandbox]
}

/// The staged copy of an uploaded file, under the id of its upload. The client's path is
/// kept in the metastore, never in the key: a key does not depend on the length of the
/// client's segments (a filesystem refuses names of 255 bytes and more).
pub fn staged_file(org: &str, sandbox: &str, batch: &str, upload: &str) -> Path {
    staged_upload(org, sandbox, batch, upload).join("file")
}

/// Everything staged by one upload (the file of [`staged_file`]).
pub fn staged_upload(org: &str, sandbox: &str, batch: &str, upload: &str) -> Path {
    let mut parts: Vec<&str> = vec!["staging"];
    parts.extend(tenant_parts(org, sandbox));
    parts.extend([batch, "files", upload]);
    join(&parts)
}

/// Everything staged for a batch.
pub fn staged_batch(org: &str, sandbox: &str, batch: &str) -> Path {
    let mut parts: Vec<&str> = vec!["staging"];
    parts.extend(tenant_parts(org, sandbox));
    parts.push(batch);
    join(&parts)
}

/// One chunk of a chunked upload; `upload` is the id of the INITIALIZE it belongs to.
pub fn chunk(org: &str, sandbox: &str, batch: &str, upload: &str, first: u64, last: u64) -> Path {
    let range = format!("{first:020}-{last:020}");
    let mut parts: Vec<&str> = vec!["staging"];
    parts.extend(tenant_parts(org, sandbox));
    parts.extend([batch, "chunks", upload, range.as_str()]);
    join(&parts)
}

/// The chunks of one chunked upload.
pub fn chunks(org: &str, sandbox: &str, batch: &str, upload: &str) -> Path {
    let mut parts: Vec<&str> = vec!["staging"];
    parts.extend(tenant_parts(org, sandbox));
    parts.extend([batch, "chunks", upload]);
    join(&parts)
}

/// A dataset's root in the lake: its Delta table (`_delta_log/`) and its batches' outputs.
pub fn dataset(org: &str, sandbox: &str, dataset: &str) -> Path {
    let mut parts: Vec<&str> = vec!["lake"];
    parts.extend(tenant_parts(org, sandbox));
    parts.extend(["datasets", dataset]);
    join(&parts)
}

/// Every output of a batch, all attempts.
pub fn batch_outputs(org: &str, sandbox: &str, dataset: &str, batch: &str) -> Path {
    let mut parts: Vec<&str> = vec!["lake"];
    parts.extend(tenant_parts(org, sandbox));
    parts.extend(["datasets", dataset, "batches", batch]);
    join(&parts)
}

/// The output of one processing attempt of a batch: Parquet parts under `data/`, rejected
/// rows under `failed/`, diagnostics under `meta/`.
pub fn attempt(org: &str, sandbox: &str, dataset: &str, batch: &str, attempt: u32) -> Path {
    let attempt = format!("attempt-{attempt}");
    let mut parts: Vec<&str> = vec!["lake"];
    parts.extend(tenant_parts(org, sandbox));
    parts.extend(["datasets", dataset, "batches", batch, attempt.as_str()]);
    join(&parts)
}

/// A file of an attempt, by its path relative to the attempt (`part-00001.parquet`,
/// `failed/part-00001.json`, `meta/row_errors/...`).
pub fn attempt_file(attempt_root: &Path, relative: &str) -> Path {
    let mut path = attempt_root.clone();
    for segment in relative.split('/').filter(|s| !s.is_empty()) {
        path = path.join(segment);
    }
    path
}
