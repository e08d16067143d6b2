//! A typed, blocking HTTP client for Lakeport and any other endpoint that speaks the
//! Adobe Experience Platform ingestion APIs: the Schema Registry subset, Catalog, Batch
//! Ingestion (single `PUT` and chunked uploads, streamed from disk) and Data Access.
//!
//! Calls block (ureq), so callers run them on plain threads; a [`Client`] is cheap to clone
//! and safe to share between threads. Transient failures (connection errors, 429, 5xx) are
//! retried with exponential back-off; uploads re-read their bytes from disk for every
//! attempt, and calls that create something are retried only when the request cannot have
//! been processed (connection refused, 429, 503).
//!
//! The `lakeport` client commands and end-to-end tests use this crate. It speaks only the
//! wire format: it must never depend on `domain`, `metastore`, `api` or an async runtime.

mod error;
mod model;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};
use ureq::http::Response;

use error::request_line;
pub use error::{ClientError, Problem};
pub use model::{
    Batch, BatchAction, BatchError, BatchStatus, Container, Dataset, ExportFile, FileEntry,
    SchemaSummary,
};

const CATALOG: &str = "/data/foundation/catalog";
const IMPORT: &str = "/data/foundation/import";
const EXPORT: &str = "/data/foundation/export";
const REGISTRY: &str = "/data/foundation/schemaregistry";

/// Largest JSON answer read into memory.
const MAX_JSON_BYTES: u64 = 256 * 1024 * 1024;

/// Where to connect and who to be: the base URL and Adobe's request headers (spec §1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Origin, optionally with a path prefix, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// Bearer token.
    pub token: String,
    /// `x-api-key`.
    pub api_key: String,
    /// `x-gw-ims-org-id`.
    pub org: String,
    /// `x-sandbox-name`.
    pub sandbox: String,
}

/// How often and how patiently transient failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries per call, the first one included (1 = no retry).
    pub attempts: u32,
    /// Wait before the second try; doubles for every further try.
    pub first_delay: Duration,
    /// Longest wait between two tries (also caps `Retry-After`).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
        }
    }
}

/// Receives byte counts while a file is uploaded or downloaded.
pub trait Progress: Sync {
    /// Reports `bytes` more bytes sent or received.
    fn advance(&self, bytes: u64);
    /// Reports that a retry will transfer again `bytes` already reported.
    fn rewind(&self, bytes: u64) {
        let _ = bytes;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _bytes: u64) {}
}

/// Where an uploaded file goes: `…/batches/{batch}/datasets/{dataset}/files/{path}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileTarget<'a> {
    pub batch: &'a str,
    pub dataset: &'a str,
    /// Path inside the batch; may contain `/` (partition folders).
    pub path: &'a str,
}

/// Which calls may be repeated after a transient failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Idempotent calls (reads, uploads, signals: spec §6.2 says signals can be retried
    /// blindly).
    Always,
    /// Calls that create something: only when the server cannot have processed them.
    IfNotProcessed,
}

/// A request body.
enum Payload<'a> {
    Empty,
    Json(Vec<u8>),
    /// `len` bytes of a local file from `offset`, reported to `progress` as they are sent.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        progress: &'a dyn Progress,
    },
}

/// The outcome of one try.
enum Attempt {
    Answer(Response<ureq::Body>),
    Transport(ureq::Error),
}

/// A client for one endpoint and identity.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    base: String,
    headers: Vec<(&'static str, String)>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Returns a client for `connection` with the default retry policy.
    ///
    /// # Errors
    /// `InvalidSetting` when the URL is not `http(s)://…` or a header value contains
    /// control characters.
    pub fn new(connection: &Connection) -> Result<Self, ClientError> {
        let url = connection.url.trim().trim_end_matches('/');
        let Some(rest) = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
        else {
            return Err(ClientError::InvalidSetting {
                name: "url",
                reason: format!("{url:?} must start with http:// or https://"),
            });
        };
        if rest.is_empty() || rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
            return Err(ClientError::InvalidSetting {
                name: "url",
                reason: format!("{url:?} is not an origin such as http://127.0.0.1:8080"),
            });
        }
        let mut headers = Vec::new();
        for (name, header, value) in [
            (
                "token",
                "authorization",
                format!("Bearer {}", connection.token),
            ),
            ("api key", "x-api-key", connection.api_key.clone()),
            ("organization", "x-gw-ims-org-id", connection.org.clone()),
            ("sandbox", "x-sandbox-name", connection.sandbox.clone()),
        ] {
            if value.chars().any(char::is_control) {
                return Err(ClientError::InvalidSetting {
                    name,
                    reason: "contains control characters".to_owned(),
                });
            }
            headers.push((header, value));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(Duration::from_secs(600)))
            .user_agent(concat!("lakeport-client/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent: config.new_agent(),
            base: url.to_owned(),
            headers,
            retry: RetryPolicy::default(),
        })
    }

    /// Returns the client with another retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Returns the base URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    // ---------------------------------------------------------------- Schema Registry

    /// Returns `GET /stats` (carries the organization's `tenantId`).
    pub fn registry_stats(&self) -> Result<Value, ClientError> {
        self.get_json(&format!("{REGISTRY}/stats"), None)
    }

    /// Returns the organization's Schema Registry tenant id (custom fields live under
    /// `_<tenant id>`).
    pub fn tenant_id(&self) -> Result<String, ClientError> {
        let path = format!("{REGISTRY}/stats");
        let stats = self.get_json(&path, None)?;
        stats
            .get("tenantId")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Decode {
                request: request_line("GET", &path),
                reason: "no tenantId in the answer".to_owned(),
            })
    }

    /// Creates a tenant field group and returns it.
    pub fn create_field_group(&self, document: &Value) -> Result<Value, ClientError> {
        self.post_json(
            &format!("{REGISTRY}/tenant/fieldgroups"),
            document,
            Retry::IfNotProcessed,
        )
    }

    /// Creates a tenant schema and returns it.
    pub fn create_schema(&self, document: &Value) -> Result<Value, ClientError> {
        self.post_json(
            &format!("{REGISTRY}/tenant/schemas"),
            document,
            Retry::IfNotProcessed,
        )
    }

    /// Lists the schemas of a container (summaries, at most 300 per answer).
    pub fn list_schemas(&self, container: Container) -> Result<Vec<SchemaSummary>, ClientError> {
        let path = format!("{REGISTRY}/{}/schemas", container.as_str());
        let answer = self.get_json(&path, Some("application/vnd.adobe.xed-id+json"))?;
        Ok(answer
            .get("results")
            .and_then(Value::as_array)
            .map(|results| {
                results
                    .iter()
                    .filter_map(SchemaSummary::from_value)
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Returns a schema with every reference resolved (`xed-full`), looked up by `$id` or
    /// `meta:altId` in the tenant container, then in the global one.
    pub fn schema_full(&self, id: &str) -> Result<Value, ClientError> {
        self.resource(
            "schemas",
            id,
            "application/vnd.adobe.xed-full+json; version=1",
        )
    }

    /// Returns a schema as stored (`xed`, `allOf`/`$ref` kept).
    pub fn schema(&self, id: &str) -> Result<Value, ClientError> {
        self.resource("schemas", id, "application/vnd.adobe.xed+json; version=1")
    }

    /// Returns a field group as stored.
    pub fn field_group(&self, id: &str) -> Result<Value, ClientError> {
        self.resource(
            "fieldgroups",
            id,
            "application/vnd.adobe.xed+json; version=1",
        )
    }

    fn resource(&self, kind: &str, id: &str, accept: &str) -> Result<Value, ClientError> {
        let encoded = encode_component(id);
        match self.get_json(&format!("{REGISTRY}/tenant/{kind}/{encoded}"), Some(accept)) {
            // Not the organization's: maybe one of Adobe's built-ins. If it is not there
            // either, the tenant's answer says more.
            Err(err) if err.is_not_found() => self
                .get_json(&format!("{REGISTRY}/global/{kind}/{encoded}"), Some(accept))
                .map_err(|global| if global.is_not_found() { err } else { global }),
            other => other,
        }
    }

    // ---------------------------------------------------------------- Catalog

    /// Creates a dataset and returns its id.
    pub fn create_dataset(&self, document: &Value) -> Result<String, ClientError> {
        let path = format!("{CATALOG}/dataSets");
        let answer = self.post_json(&path, document, Retry::IfNotProcessed)?;
        // Adobe answers with 201 and a one-element array ["@/dataSets/{id}"].
        answer
            .as_array()
            .and_then(|refs| refs.first())
            .and_then(Value::as_str)
            .and_then(|reference| reference.rsplit('/').next())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Decode {
                request: request_line("POST", &path),
                reason: format!("expected [\"@/dataSets/<id>\"], got {answer}"),
            })
    }

    /// Lists datasets; `query` holds Catalog parameters (`limit`, `orderBy`, filters).
    pub fn list_datasets(&self, query: &[(&str, &str)]) -> Result<Vec<Dataset>, ClientError> {
        let path = format!("{CATALOG}/dataSets{}", query_string(query));
        Ok(catalog_map(self.get_json(&path, None)?)
            .into_iter()
            .map(|(id, doc)| Dataset { id, doc })
            .collect())
    }

    /// Returns one dataset.
    pub fn dataset(&self, id: &str) -> Result<Dataset, ClientError> {
        let path = format!("{CATALOG}/dataSets/{}", encode_component(id));
        let (id, doc) = self.catalog_object(&path, id)?;
        Ok(Dataset { id, doc })
    }

    /// Returns up to 100 rows of a dataset (Data Access preview); `query` may hold
    /// `asOfBatch` or `version` to read the dataset's table as it was then.
    pub fn preview_dataset(&self, id: &str, query: &[(&str, &str)]) -> Result<Value, ClientError> {
        let path = format!(
            "{EXPORT}/datasets/{}/preview{}",
            encode_component(id),
            query_string(query)
        );
        self.get_json(&path, None)
    }

    /// Queues a maintenance job on a dataset's table (`optimize` or `vacuum`, a Lakeport
    /// extension) and returns the job (`id`, `status`, …); a job of that kind already
    /// pending is returned instead of a new one.
    pub fn queue_table_job(&self, id: &str, operation: &str) -> Result<Value, ClientError> {
        let path = format!(
            "{CATALOG}/dataSets/{}/{}",
            encode_component(id),
            encode_component(operation)
        );
        // Queuing twice returns the pending job, so a retry is safe.
        self.post_json(&path, &Value::Object(Default::default()), Retry::Always)
    }

    /// Returns a dataset table job: its `status` and, once `done`, its `result`.
    pub fn table_job(&self, id: &str, job_id: &str) -> Result<Value, ClientError> {
        let path = format!(
            "{CATALOG}/dataSets/{}/jobs/{}",
            encode_component(id),
            encode_component(job_id)
        );
        self.get_json(&path, None)
    }

    /// Lists batches; `query` holds Catalog parameters (`dataSet`, `status`, `limit`, …).
    pub fn list_batches(&self, query: &[(&str, &str)]) -> Result<Vec<Batch>, ClientError> {
        let path = format!("{CATALOG}/batches{}", query_string(query));
        Ok(catalog_map(self.get_json(&path, None)?)
            .into_iter()
            .map(|(id, doc)| Batch::from_doc(id, doc))
            .collect())
    }

    /// Returns one batch as the Catalog shows it.
    pub fn batch(&self, id: &str) -> Result<Batch, ClientError> {
        let path = format!("{CATALOG}/batches/{}", encode_component(id));
        let (id, doc) = self.catalog_object(&path, id)?;
        Ok(Batch::from_doc(id, doc))
    }

    fn catalog_object(
        &self,
        path: &str,
        id: &str,
    ) -> Result<(String, Map<String, Value>), ClientError> {
        let mut objects = catalog_map(self.get_json(path, None)?);
        let index = objects
            .iter()
            .position(|(key, _)| key == id)
            .or(if objects.len() == 1 { Some(0) } else { None });
        match index {
            Some(index) => Ok(objects.swap_remove(index)),
            // An empty map is how some Catalog versions say "not found".
            None => Err(ClientError::Api {
                request: request_line("GET", path),
                status: 404,
                problem: Box::new(Problem {
                    error_type: None,
                    title: "Not Found".to_owned(),
                    detail: format!("{id} does not exist"),
                }),
            }),
        }
    }

    // ---------------------------------------------------------------- Batch Ingestion

    /// Creates a batch (`POST /import/batches`, spec §3.1) and returns it.
    pub fn create_batch(&self, request: &Value) -> Result<Batch, ClientError> {
        let path = format!("{IMPORT}/batches");
        let answer = self.post_json(&path, request, Retry::IfNotProcessed)?;
        match answer {
            Value::Object(doc) => match doc.get("id").and_then(Value::as_str) {
                Some(id) => Ok(Batch::from_doc(id.to_owned(), doc.clone())),
                None => Err(ClientError::Decode {
                    request: request_line("POST", &path),
                    reason: "the batch has no id".to_owned(),
                }),
            },
            other => Err(ClientError::Decode {
                request: request_line("POST", &path),
                reason: format!("expected the batch object, got {other}"),
            }),
        }
    }

    /// Sends a batch signal (`POST /import/batches/{id}?action=…`, spec §3.7).
    pub fn signal_batch(&self, batch: &str, action: BatchAction) -> Result<(), ClientError> {
        let path = format!(
            "{IMPORT}/batches/{}?action={}",
            encode_component(batch),
            action.as_str()
        );
        let mut answer = self.call("POST", &path, &[], &Payload::Empty, Retry::Always)?;
        drain(&mut answer);
        Ok(())
    }

    /// Uploads a local file with one streamed `PUT` (spec §3.2) and returns its size.
    pub fn upload_file(
        &self,
        target: &FileTarget<'_>,
        file: &Path,
        progress: &dyn Progress,
    ) -> Result<u64, ClientError> {
        let len = file_len(file)?;
        let path = file_url(target);
        let payload = Payload::File {
            path: file,
            offset: 0,
            len,
            progress,
        };
        let mut answer = self.call("PUT", &path, &[], &payload, Retry::Always)?;
        drain(&mut answer);
        Ok(len)
    }

    /// Uploads a local file in chunks of `chunk_size` bytes: `action=INITIALIZE`, one
    /// `PATCH` with `Content-Range` per chunk, `action=COMPLETE` (spec §3.3–3.4). Returns
    /// the file size.
    pub fn upload_file_chunked(
        &self,
        target: &FileTarget<'_>,
        file: &Path,
        chunk_size: u64,
        progress: &dyn Progress,
    ) -> Result<u64, ClientError> {
        let chunk_size = chunk_size.max(1);
        let len = file_len(file)?;
        let path = file_url(target);
        let mut answer = self.call(
            "POST",
            &format!("{path}?action=INITIALIZE"),
            &[],
            &Payload::Empty,
            Retry::Always,
        )?;
        drain(&mut answer);
        let mut offset = 0;
        while offset < len {
            let chunk = chunk_size.min(len - offset);
            let range = format!("bytes {offset}-{}/{len}", offset + chunk - 1);
            let payload = Payload::File {
                path: file,
                offset,
                len: chunk,
                progress,
            };
            let mut answer = self.call(
                "PATCH",
                &path,
                &[("content-range", range)],
                &payload,
                Retry::Always,
            )?;
            drain(&mut answer);
            offset += chunk;
        }
        let mut answer = self.call(
            "POST",
            &format!("{path}?action=COMPLETE"),
            &[],
            &Payload::Empty,
            Retry::Always,
        )?;
        drain(&mut answer);
        Ok(len)
    }

    // ---------------------------------------------------------------- Data Access

    /// Lists the dataset files of a batch (`GET /export/batches/{id}/files`), every page.
    pub fn batch_files(&self, batch: &str) -> Result<Vec<ExportFile>, ClientError> {
        let path = format!("{EXPORT}/batches/{}/files", encode_component(batch));
        Ok(self
            .export_listing(&path)?
            .iter()
            .filter_map(ExportFile::from_value)
            .collect())
    }

    /// Lists the physical files behind a dataset file (`GET /export/files/{id}`).
    pub fn file_entries(&self, file_id: &str) -> Result<Vec<FileEntry>, ClientError> {
        let path = format!("{EXPORT}/files/{}", encode_component(file_id));
        Ok(self
            .export_listing(&path)?
            .iter()
            .filter_map(FileEntry::from_value)
            .collect())
    }

    /// Downloads one physical file (`GET /export/files/{id}?path=<name>`) into `dest`,
    /// replacing it, and returns the bytes written. The bytes go to a temporary file next
    /// to `dest` that is renamed once complete.
    pub fn download_file(
        &self,
        file_id: &str,
        name: &str,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<u64, ClientError> {
        let path = format!(
            "{EXPORT}/files/{}?path={}",
            encode_component(file_id),
            encode_component(name)
        );
        self.download_path(&path, dest, progress)
    }

    /// Lists the Parquet files of a dataset's Delta table (`GET /export/datasets/{id}/table`,
    /// a Lakeport extension): `version` and a page of `data[{name, length, _links.self.href}]`,
    /// with `_links.next` while more follow ([`follow`](Self::follow) it); `query` may hold
    /// `asOfBatch` or `version`, `start` and `limit`.
    pub fn table_files(&self, id: &str, query: &[(&str, &str)]) -> Result<Value, ClientError> {
        let path = format!(
            "{EXPORT}/datasets/{}/table{}",
            encode_component(id),
            query_string(query)
        );
        self.get_json(&path, None)
    }

    /// Reads the JSON a link of the server names (a listing's `_links.next.href`).
    pub fn follow(&self, href: &str) -> Result<Value, ClientError> {
        self.get_json(href, None)
    }

    /// Downloads what a link of the server names (a path from its root, as listings give
    /// them) into `dest`, as [`download_file`](Self::download_file) does.
    pub fn download_href(
        &self,
        href: &str,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<u64, ClientError> {
        self.download_path(href, dest, progress)
    }

    fn download_path(
        &self,
        path: &str,
        dest: &Path,
        progress: &dyn Progress,
    ) -> Result<u64, ClientError> {
        let partial = dest.with_file_name(format!(
            ".{}.part",
            dest.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let mut attempt = 1;
        loop {
            let mut answer = self.call("GET", path, &[], &Payload::Empty, Retry::Always)?;
            let expected = answer.body().content_length();
            let mut out = File::create(&partial)
                .map_err(|err| ClientError::io(format!("creating {}", partial.display()), err))?;
            let mut reader = answer.body_mut().as_reader();
            let mut written = 0u64;
            let mut buffer = vec![0u8; 64 * 1024];
            let outcome = loop {
                match reader.read(&mut buffer) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        out.write_all(&buffer[..n]).map_err(|err| {
                            ClientError::io(format!("writing {}", partial.display()), err)
                        })?;
                        written += n as u64;
                        progress.advance(n as u64);
                    }
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => break Err(err),
                }
            };
            let failure = match outcome {
                Ok(()) if expected.is_none_or(|expected| expected == written) => {
                    out.sync_all().map_err(|err| {
                        ClientError::io(format!("writing {}", partial.display()), err)
                    })?;
                    drop(out);
                    std::fs::rename(&partial, dest).map_err(|err| {
                        ClientError::io(format!("renaming to {}", dest.display()), err)
                    })?;
                    return Ok(written);
                }
                Ok(()) => format!(
                    "the body ended after {written} of {} bytes",
                    expected.unwrap_or_default()
                ),
                Err(err) => err.to_string(),
            };
            if attempt >= self.retry.attempts {
                let _ = std::fs::remove_file(&partial);
                return Err(ClientError::Unreachable {
                    url: format!("{}{}", self.base, path),
                    reason: failure,
                });
            }
            // The connection broke mid-body: start the file over.
            progress.rewind(written);
            std::thread::sleep(self.backoff(attempt));
            attempt += 1;
        }
    }

    /// Lists the files holding a batch's rejected rows (`GET /export/batches/{id}/failed`),
    /// without the `_SUCCESS` marker.
    pub fn failed_files(&self, batch: &str) -> Result<Vec<FileEntry>, ClientError> {
        let path = format!("{EXPORT}/batches/{}/failed", encode_component(batch));
        Ok(self
            .export_listing(&path)?
            .iter()
            .filter_map(FileEntry::from_value)
            .filter(|entry| !matches!(entry, FileEntry::File { name, .. } if name.ends_with("_SUCCESS")))
            .collect())
    }

    /// Returns up to `limit` rejected rows of one failed file (JSON Lines), read lazily.
    pub fn failed_rows(
        &self,
        batch: &str,
        name: &str,
        limit: usize,
    ) -> Result<Vec<Value>, ClientError> {
        let path = format!(
            "{EXPORT}/batches/{}/failed?path={}",
            encode_component(batch),
            encode_component(name)
        );
        let mut answer = self.call("GET", &path, &[], &Payload::Empty, Retry::Always)?;
        let reader = BufReader::new(answer.body_mut().as_reader());
        let mut rows = Vec::new();
        for line in reader.lines() {
            if rows.len() >= limit {
                break;
            }
            let line = line.map_err(|err| ClientError::Decode {
                request: request_line("GET", &path),
                reason: err.to_string(),
            })?;
            if line.trim().is_empty() {
                continue;
            }
            rows.push(
                serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({"_corrupt_record": line})),
            );
        }
        Ok(rows)
    }

    /// Reads every page of a Data Access listing (spec §4: `data`, `_page.count`).
    fn export_listing(&self, path: &str) -> Result<Vec<Value>, ClientError> {
        const PAGE: usize = 100;
        let mut items = Vec::new();
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let page_path = format!("{path}{separator}start={}&limit={PAGE}", items.len());
            let answer = self.get_json(&page_path, None)?;
            let page: Vec<Value> = answer
                .get("data")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = answer
                .pointer("/_page/count")
                .and_then(Value::as_u64)
                .map(|n| n as usize);
            let received = page.len();
            items.extend(page);
            let more = answer.pointer("/_links/next").is_some()
                || total.is_some_and(|total| items.len() < total);
            if received == 0 || !more {
                return Ok(items);
            }
        }
    }

    // ---------------------------------------------------------------- streaming

    /// Sends messages to a streaming inlet (`POST /collection/batch/{inletId}`, spec §10.2)
    /// and returns the 207 answer, one response per message. A 503 (nothing stored) is
    /// retried; an answer lost in transit is not, as the records may have been stored.
    pub fn stream_messages(
        &self,
        inlet_id: &str,
        messages: &[Value],
    ) -> Result<Value, ClientError> {
        self.post_json(
            &format!("/collection/batch/{}", encode_component(inlet_id)),
            &serde_json::json!({ "messages": messages }),
            Retry::IfNotProcessed,
        )
    }

    /// Creates a Flow Service object (`connections`, `sourceConnections`,
    /// `targetConnections`, `flows`) and returns its id.
    pub fn create_flow_object(&self, kind: &str, body: &Value) -> Result<String, ClientError> {
        let path = format!("/data/foundation/flowservice/{kind}");
        let answer = self.post_json(&path, body, Retry::IfNotProcessed)?;
        answer
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Decode {
                request: request_line("POST", &path),
                reason: "no id in the answer".to_owned(),
            })
    }

    /// Returns one Flow Service object.
    pub fn flow_object(&self, kind: &str, id: &str) -> Result<Value, ClientError> {
        let answer = self.get_json(
            &format!(
                "/data/foundation/flowservice/{kind}/{}",
                encode_component(id)
            ),
            None,
        )?;
        Ok(answer["items"][0].clone())
    }

    // ---------------------------------------------------------------- transport

    fn get_json(&self, path: &str, accept: Option<&str>) -> Result<Value, ClientError> {
        let headers: Vec<(&str, String)> = accept
            .map(|accept| vec![("accept", accept.to_owned())])
            .unwrap_or_default();
        let answer = self.call("GET", path, &headers, &Payload::Empty, Retry::Always)?;
        read_json("GET", path, answer)
    }

    fn post_json(&self, path: &str, body: &Value, retry: Retry) -> Result<Value, ClientError> {
        let payload = Payload::Json(body.to_string().into_bytes());
        let answer = self.call(
            "POST",
            path,
            &[("accept", "application/json".to_owned())],
            &payload,
            retry,
        )?;
        read_json("POST", path, answer)
    }

    /// Sends a request, retrying transient failures, and returns a 2xx answer.
    fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        payload: &Payload<'_>,
        retry: Retry,
    ) -> Result<Response<ureq::Body>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 1;
        loop {
            let (outcome, sent) = self.send_once(method, &url, headers, payload)?;
            let last = attempt >= self.retry.attempts;
            let delay = match outcome {
                Attempt::Answer(answer) if answer.status().is_success() => return Ok(answer),
                Attempt::Answer(mut answer) => {
                    let status = answer.status().as_u16();
                    if last || !transient_status(status, retry) {
                        let body = answer
                            .body_mut()
                            .with_config()
                            .limit(1024 * 1024)
                            .read_to_vec()
                            .unwrap_or_default();
                        return Err(ClientError::from_answer(method, path, status, &body));
                    }
                    retry_after(&answer)
                        .map(|delay| delay.min(self.retry.max_delay))
                        .unwrap_or_else(|| self.backoff(attempt))
                }
                Attempt::Transport(err) => {
                    if last || !transient_transport(&err, retry) {
                        return Err(self.transport_error(method, path, err));
                    }
                    self.backoff(attempt)
                }
            };
            if let Payload::File { progress, .. } = payload {
                progress.rewind(sent);
            }
            std::thread::sleep(delay);
            attempt += 1;
        }
    }

    /// Sends one try; returns its outcome and the body bytes sent.
    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        payload: &Payload<'_>,
    ) -> Result<(Attempt, u64), ClientError> {
        let mut builder = ureq::http::Request::builder().method(method).uri(url);
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let request_error = |err: ureq::http::Error| ClientError::InvalidSetting {
            name: "request",
            reason: format!("{method} {url}: {err}"),
        };
        let (result, sent) = match payload {
            Payload::Empty => (self.agent.run(builder.body(()).map_err(request_error)?), 0),
            Payload::Json(bytes) => {
                let request = builder
                    .header("content-type", "application/json")
                    .body(bytes.as_slice())
                    .map_err(request_error)?;
                (self.agent.run(request), bytes.len() as u64)
            }
            Payload::File {
                path,
                offset,
                len,
                progress,
            } => {
                let mut file = File::open(path)
                    .map_err(|err| ClientError::io(format!("opening {}", path.display()), err))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(|err| ClientError::io(format!("reading {}", path.display()), err))?;
                let mut reader = CountingReader {
                    inner: file.take(*len),
                    progress: *progress,
                    count: 0,
                };
                let request = builder
                    .header("content-type", "application/octet-stream")
                    .header("content-length", len.to_string())
                    .body(ureq::SendBody::from_reader(&mut reader))
                    .map_err(request_error)?;
                let result = self.agent.run(request);
                (result, reader.count)
            }
        };
        let attempt = match result {
            Ok(answer) => Attempt::Answer(answer),
            Err(err) => Attempt::Transport(err),
        };
        Ok((attempt, sent))
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.retry
            .first_delay
            .saturating_mul(factor)
            .min(self.retry.max_delay)
    }

    fn transport_error(&self, method: &str, path: &str, err: ureq::Error) -> ClientError {
        let path_only = path.split('?').next().unwrap_or(path);
        match err {
            ureq::Error::Io(source) if !is_network(&source) => {
                ClientError::io(format!("{method} {path_only}"), source)
            }
            err => ClientError::Unreachable {
                url: self.base.clone(),
                reason: describe_transport(&err),
            },
        }
    }
}

/// Counts (and reports) the bytes a request body reads from disk.
struct CountingReader<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
    count: u64,
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

fn transient_status(status: u16, retry: Retry) -> bool {
    match retry {
        Retry::Always => {
            status == 408 || status == 429 || (500..600).contains(&status) && status != 501
        }
        Retry::IfNotProcessed => status == 429 || status == 503,
    }
}

fn transient_transport(err: &ureq::Error, retry: Retry) -> bool {
    use std::io::ErrorKind;
    let not_sent = match err {
        ureq::Error::ConnectionFailed => true,
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    };
    match retry {
        Retry::IfNotProcessed => not_sent,
        Retry::Always => {
            not_sent
                || matches!(err, ureq::Error::Timeout(_) | ureq::Error::Protocol(_))
                || matches!(err, ureq::Error::Io(io) if is_network(io))
        }
    }
}

/// Returns whether an I/O error came from the network rather than from a local file.
fn is_network(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::NotConnected
            | ErrorKind::AddrNotAvailable
            | ErrorKind::BrokenPipe
            | ErrorKind::UnexpectedEof
            | ErrorKind::TimedOut
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
            | ErrorKind::NetworkDown
    )
}

fn describe_transport(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::Timeout(timeout) => format!("timed out ({timeout})"),
        other => other.to_string(),
    }
}

/// Reads `Retry-After` given in seconds.
fn retry_after(answer: &Response<ureq::Body>) -> Option<Duration> {
    let seconds: u64 = answer
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

fn read_json(
    method: &str,
    path: &str,
    mut answer: Response<ureq::Body>,
) -> Result<Value, ClientError> {
    let decode = |reason: String| ClientError::Decode {
        request: request_line(method, path),
        reason,
    };
    let bytes = answer
        .body_mut()
        .with_config()
        .limit(MAX_JSON_BYTES)
        .read_to_vec()
        .map_err(|err| decode(err.to_string()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|err| decode(format!("not JSON: {err}")))
}

/// Reads and drops the rest of an answer so the connection can be reused.
fn drain(answer: &mut Response<ureq::Body>) {
    let _ = std::io::copy(&mut answer.body_mut().as_reader(), &mut std::io::sink());
}

/// Returns a Catalog answer (a map keyed by id, spec §1.5) as ordered pairs.
fn catalog_map(answer: Value) -> Vec<(String, Map<String, Value>)> {
    match answer {
        Value::Object(map) => map
            .into_iter()
            .filter_map(|(id, doc)| match doc {
                Value::Object(doc) => Some((id, doc)),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn file_len(file: &Path) -> Result<u64, ClientError> {
    std::fs::metadata(file)
        .map(|meta| meta.len())
        .map_err(|err| ClientError::io(format!("reading {}", file.display()), err))
}

fn file_url(target: &FileTarget<'_>) -> String {
    let path: Vec<String> = target
        .path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(encode_component)
        .collect();
    format!(
        "{IMPORT}/batches/{}/datasets/{}/files/{}",
        encode_component(target.batch),
        encode_component(target.dataset),
        path.join("/")
    )
}

/// Builds `?a=b&c=d` (empty when there are no pairs).
fn query_string(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let joined: Vec<String> = pairs
        .iter()
        .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
        .collect();
    format!("?{}", joined.join("&"))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
