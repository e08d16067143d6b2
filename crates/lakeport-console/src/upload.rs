//! The upload page: files chosen (or dropped) onto a dataset become one batch — created,
//! each file streamed through the Batch Ingestion API's upload, then COMPLETE — and the
//! browser lands on the batch page. A plain multipart form works without JavaScript;
//! console.js sends the same form with a progress bar.

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use maud::html;
use serde_json::json;

use crate::api::{ApiFailure, enc, read_json};
use crate::html::{self, Frame};
use crate::session::{self, Session};
use crate::{Id, Shared};

/// Files one upload may hold (the API's `ingest.max_files_per_batch` may be lower).
pub const MAX_FILES: usize = 100;
/// Longest value of a form field other than a file.
const MAX_FIELD_BYTES: usize = 1024;

const FORMATS: [(&str, &str); 4] = [
    ("auto", "From the file name (.json/.jsonl, .csv, .parquet)"),
    ("json", "JSON (JSON Lines or an array)"),
    ("csv", "CSV with a header row"),
    ("parquet", "Parquet"),
];

async fn dataset_name(console: &Shared, session: &Session, id: &str) -> Result<String, Response> {
    let uri = format!(
        "/data/foundation/catalog/dataSets/{}?properties=name",
        enc(id)
    );
    match console.api.get_json(session, &uri).await {
        Ok(map) => Ok(map
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(|d| d["name"].as_str())
            .unwrap_or(id)
            .to_owned()),
        Err(ApiFailure::Refused { status, .. }) if status == StatusCode::BAD_REQUEST => {
            Err(console.not_found(Some(session), "dataset"))
        }
        Err(failure) => Err(console.failure(session, "dataset", failure)),
    }
}

pub async fn form(State(console): State<Shared>, headers: HeaderMap, Id(id): Id) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let name = match dataset_name(&console, &session, &id).await {
        Ok(name) => name,
        Err(page) => return page,
    };
    let base = &console.base;
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href={ (base) "/datasets" } { "Datasets" } " / " a href={ (base) "/datasets/" (enc(&id)) } { (name) } " / " span { "Upload" } }
        h1 { "Upload files to " (name) }
        p { "The files become one batch. When they are uploaded the batch is completed and you are taken to it, where its status updates as it is processed." }
        form #upload.upload method="post" enctype="multipart/form-data" action={ (base) "/datasets/" (enc(&id)) "/upload" } {
            input type="hidden" name="csrf" value=(session.csrf);
            fieldset {
                legend { "Options" }
                label for="format" { "File format" }
                select #format name="format" {
                    @for (value, label) in FORMATS { option value=(value) { (label) } }
                }
                div.check {
                    input #diagnostics type="checkbox" name="diagnostics" value="true" checked;
                    label for="diagnostics" { "Error diagnostics (keep each rejected row with its violations)" }
                }
                div.check {
                    input #partial type="checkbox" name="partial" value="true" checked;
                    label for="partial" { "Partial ingestion: ingest the valid rows when some are rejected" }
                }
                label for="threshold" { "Rejected rows allowed before the whole batch fails (%)" }
                input #threshold type="number" name="threshold" min="0" max="100" value="5";
            }
            div.drop #drop {
                label for="files" { "Files" }
                input #files type="file" name="files" multiple required;
                p.hint.js-only hidden { "…or drop files here." }
            }
            progress #progress max="100" value="0" hidden aria-label="Upload progress" {}
            p #progress-text.hint aria-live="polite" {}
            button.primary type="submit" { "Upload and ingest" }
        }
    };
    html::respond(
        StatusCode::OK,
        &Frame {
            base,
            session: Some(&session),
            title: "Upload",
            refresh_secs: None,
        },
        &body,
    )
}

/// The options read before the files.
struct Options {
    format: String,
    diagnostics: bool,
    partial: bool,
    threshold: u8,
}

fn format_of(file_name: &str) -> Option<&'static str> {
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".json") || lower.ends_with(".jsonl") || lower.ends_with(".ndjson") {
        Some("json")
    } else if lower.ends_with(".csv") {
        Some("csv")
    } else if lower.ends_with(".parquet") {
        Some("parquet")
    } else {
        None
    }
}

/// A file name the API path can hold: the base name, with anything but letters, digits,
/// `.`, `-` and `_` replaced.
fn safe_name(raw: &str, index: usize) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        format!("upload-{index}")
    } else {
        cleaned
    }
}

async fn small_field(field: &mut axum::extract::multipart::Field<'_>) -> Result<String, String> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| e.to_string())? {
        if out.len() + chunk.len() > MAX_FIELD_BYTES {
            return Err("a form field is too long".to_owned());
        }
        out.extend_from_slice(&chunk);
    }
    String::from_utf8(out).map_err(|_| "a form field is not UTF-8".to_owned())
}

pub async fn upload(
    State(console): State<Shared>,
    headers: HeaderMap,
    Id(id): Id,
    request: Request,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    if let Err(page) = dataset_name(&console, &session, &id).await {
        return page;
    }
    let refuse = |status: StatusCode, detail: &str| {
        html::error_page(
            &console.base,
            Some(&session),
            status,
            "Upload refused",
            detail,
        )
    };
    let mut multipart = match Multipart::from_request(request, &()).await {
        Ok(multipart) => multipart,
        Err(_) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "The upload must be a multipart form.",
            );
        }
    };
    let mut csrf_ok = false;
    let mut options = Options {
        format: "auto".to_owned(),
        diagnostics: false,
        partial: false,
        threshold: 5,
    };
    let mut batch: Option<(String, &'static str)> = None;
    let mut files = 0usize;
    let outcome: Result<(), (StatusCode, String)> = async {
        loop {
            let mut field = match multipart.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => break,
                Err(err) => return Err((StatusCode::BAD_REQUEST, format!("The upload could not be read: {err}"))),
            };
            let name = field.name().unwrap_or_default().to_owned();
            if name != "files" {
                let value = small_field(&mut field).await.map_err(|e| (StatusCode::BAD_REQUEST, e))?;
                match name.as_str() {
                    "csrf" => csrf_ok = session::same_secret(&value, &session.csrf),
                    "format" => options.format = value,
                    "diagnostics" => options.diagnostics = value == "true",
                    "partial" => options.partial = value == "true",
                    "threshold" => {
                        options.threshold = value.trim().parse::<u8>().ok().filter(|t| *t <= 100).ok_or((
                            StatusCode::BAD_REQUEST,
                            "The threshold must be a whole number from 0 to 100.".to_owned(),
                        ))?;
                    }
                    _ => {}
                }
                continue;
            }
            if !csrf_ok {
                return Err((StatusCode::FORBIDDEN, "This form did not come from your current session. Reload the page and try again.".to_owned()));
            }
            let raw_name = field.file_name().unwrap_or_default().to_owned();
            if raw_name.is_empty() {
                // A file input left empty still sends an empty part.
                continue;
            }
            files += 1;
            if files > MAX_FILES {
                return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("One upload holds at most {MAX_FILES} files.")));
            }
            let wanted = match options.format.as_str() {
                "json" => "json",
                "csv" => "csv",
                "parquet" => "parquet",
                "auto" => format_of(&raw_name).ok_or((
                    StatusCode::BAD_REQUEST,
                    format!("The format of {raw_name} is not known from its name: choose the file format."),
                ))?,
                other => return Err((StatusCode::BAD_REQUEST, format!("Unknown format {other:?}."))),
            };
            let batch_id = match &batch {
                Some((batch_id, format)) => {
                    if *format != wanted {
                        return Err((StatusCode::BAD_REQUEST, format!("{raw_name} is {wanted} but the batch's files are {format}: one batch holds one format.")));
                    }
                    batch_id.clone()
                }
                None => {
                    let mut body = json!({"datasetId": id, "inputFormat": {"format": wanted}});
                    if options.diagnostics {
                        body["enableErrorDiagnostics"] = json!(true);
                    }
                    if options.partial {
                        body["partialIngestionPercent"] = json!(options.threshold);
                    }
                    let created = console
                        .api
                        .post_json(&session, "/data/foundation/import/batches", &body)
                        .await
                        .map_err(failure_text)?;
                    let batch_id = created["id"].as_str().unwrap_or_default().to_owned();
                    tracing::info!(batch = %batch_id, dataset = %id, "console: upload batch created");
                    batch = Some((batch_id.clone(), wanted));
                    batch_id
                }
            };
            let file_name = safe_name(&raw_name, files);
            let uri = format!(
                "/data/foundation/import/batches/{}/datasets/{}/files/{}",
                enc(&batch_id),
                enc(&id),
                enc(&file_name)
            );
            // The part is piped through a small channel into the API's streamed upload:
            // nothing holds more than a few chunks of it.
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
            let stream = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            let send = console.api.send(
                &session,
                None,
                Method::PUT,
                &uri,
                &[("content-type", "application/octet-stream")],
                Body::from_stream(stream),
            );
            let pump = async move {
                loop {
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            if tx.send(Ok(chunk)).await.is_err() {
                                return Ok(());
                            }
                        }
                        Ok(None) => return Ok(()),
                        Err(err) => {
                            let message = err.to_string();
                            let _ = tx.send(Err(std::io::Error::other(message.clone()))).await;
                            return Err(message);
                        }
                    }
                }
            };
            let (response, pumped) = tokio::join!(send, pump);
            if let Err(message) = pumped {
                return Err((StatusCode::BAD_REQUEST, format!("The upload of {raw_name} broke off: {message}")));
            }
            read_json(response).await.map_err(|f| {
                let (status, text) = failure_text(f);
                (status, format!("{raw_name}: {text}"))
            })?;
        }
        Ok(())
    }
    .await;
    let batch_id = batch.map(|(id, _)| id);
    if let Err((status, detail)) = outcome {
        if let Some(batch_id) = &batch_id {
            // Leave no half-uploaded batch loading.
            let _ = console
                .api
                .post_json(
                    &session,
                    &format!(
                        "/data/foundation/import/batches/{}?action=ABORT",
                        enc(batch_id)
                    ),
                    &serde_json::Value::Null,
                )
                .await;
        }
        return refuse(status, &detail);
    }
    let Some(batch_id) = batch_id else {
        return refuse(StatusCode::BAD_REQUEST, "Choose at least one file.");
    };
    if let Err(failure) = console
        .api
        .post_json(
            &session,
            &format!(
                "/data/foundation/import/batches/{}?action=COMPLETE",
                enc(&batch_id)
            ),
            &serde_json::Value::Null,
        )
        .await
    {
        let (status, detail) = failure_text(failure);
        return refuse(
            status,
            &format!("Completing batch {batch_id} failed: {detail}"),
        );
    }
    tracing::info!(batch = %batch_id, files, "console: upload completed");
    Redirect::to(&format!("{}/batches/{}", console.base, enc(&batch_id))).into_response()
}

fn failure_text(failure: ApiFailure) -> (StatusCode, String) {
    match failure {
        ApiFailure::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
        ApiFailure::Refused {
            status,
            title,
            detail,
        } => (status, if detail.is_empty() { title } else { detail }),
        ApiFailure::Broken(detail) => (StatusCode::BAD_GATEWAY, detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_made_safe() {
        assert_eq!(safe_name("C:\\dir\\a b.json", 1), "a_b.json");
        assert_eq!(safe_name("../../etc/passwd", 1), "passwd");
        assert_eq!(safe_name("..", 3), "upload-3");
        assert_eq!(format_of("X.JSONL"), Some("json"));
        assert_eq!(format_of("x.txt"), None);
    }
}
