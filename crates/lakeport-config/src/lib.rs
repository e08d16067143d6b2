//! Lakeport's configuration: one [`Config`] tree loaded from an optional TOML file, then
//! overridden by `LAKEPORT__SECTION__KEY` environment variables, validated at start-up and
//! printable with secrets redacted.
//!
//! Only the binary reads files and the environment; everything else receives a `Config`
//! (tests build one in code). This crate depends on nothing of Lakeport's.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub metastore: MetastoreConfig,
    pub auth: AuthConfig,
    pub catalog: CatalogConfig,
    pub registry: RegistryConfig,
    pub storage: StorageConfig,
    pub ingest: IngestConfig,
    pub stream: StreamConfig,
    pub log: LogConfig,
    pub query: QueryConfig,
    pub console: ConsoleConfig,
}

/// The web console `lakeport serve` mounts next to the APIs.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Whether `lakeport serve` serves the console.
    pub enabled: bool,
    /// Where: an absolute path of one or more segments of `a-z`, `0-9`, `-` and `_`, not
    /// under `/data` (the APIs), e.g. `/console`.
    pub path: String,
    /// How long a signed-in session lasts without being used.
    pub session_idle_secs: u64,
    /// Signed-in sessions at most, all users together; the least recently used one is
    /// signed out to make room for a new one.
    pub max_sessions: usize,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/console".to_owned(),
            session_idle_secs: 8 * 3600,
            max_sessions: 10_000,
        }
    }
}

impl ConsoleConfig {
    /// Checks the mount path and the session limits.
    ///
    /// # Errors
    /// Names the invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let path = self.path.as_str();
        let segments_ok = path.len() <= 64
            && path.starts_with('/')
            && path[1..].split('/').all(|segment| {
                !segment.is_empty()
                    && segment.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                    })
            });
        let first = path
            .get(1..)
            .unwrap_or_default()
            .split('/')
            .next()
            .unwrap_or_default();
        if !segments_ok || matches!(first, "data" | "health" | "openapi.json" | "collection") {
            return Err(ConfigError::Invalid {
                key: "console.path",
                reason: format!(
                    "{path:?} must be an absolute path of at most 64 characters made of segments of a-z, 0-9, - and _, without a trailing slash, and not under /data, /collection or /health, e.g. /console"
                ),
            });
        }
        if self.session_idle_secs == 0 || self.max_sessions == 0 {
            return Err(ConfigError::Invalid {
                key: "console",
                reason: "console.session_idle_secs and console.max_sessions must be at least 1"
                    .to_owned(),
            });
        }
        Ok(())
    }
}

/// Streaming ingestion (spec §10): inlet limits and how often the append log becomes
/// Catalog batches.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// The origin of the `inletUrl`s handed out (`https://dcs.example.com`); by default the
    /// public origin. Inlets are always served on the main listener too.
    pub origin: Option<String>,
    /// Largest request body of `/collection/{inletId}` and `/collection/batch/{inletId}`
    /// (AEP: 1 MB, taken as 1,048,576 bytes); larger is a 413.
    pub max_body_bytes: usize,
    /// A dataset's open segment becomes a batch once its oldest record is this old: the
    /// spec's name (§10.3), a duration such as `"5s"`, `"250ms"` or `"2m"`, or a number of
    /// seconds. When set it wins over `flush_interval_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flush_interval: Option<DurationValue>,
    /// The same in milliseconds, the older name (used when `flush_interval` is unset).
    pub flush_interval_ms: u64,
    /// … or once it holds this many bytes.
    pub flush_bytes: u64,
    /// How long an inlet's resolution (connection, flows, target datasets, compiled
    /// validators) is reused before it is read again; 0 reads it on every request. Writes
    /// through this node's Catalog, Schema Registry and Flow Service routes drop it at
    /// once, and a changed flow never routes a record (each append checks the tenant's
    /// Flow Service generation), so the TTL bounds only how long another node's dataset or
    /// schema change takes to show here.
    pub cache_ttl_ms: u64,
    /// The most inlet requests of this node waiting for (or in) a group commit; one more
    /// is answered 503 with `Retry-After: 1` and nothing is acknowledged.
    pub max_queued_requests: usize,
    /// The most record bytes of this node waiting for (or in) a group commit; a request
    /// that would go over is answered 503 (a request larger than the whole budget counts
    /// as the whole budget: it is taken only while nothing else is queued).
    pub max_queued_bytes: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            origin: None,
            max_body_bytes: 1024 * 1024,
            flush_interval: None,
            flush_interval_ms: 5000,
            flush_bytes: 64 * 1024 * 1024,
            cache_ttl_ms: 1000,
            max_queued_requests: 10_000,
            max_queued_bytes: 64 * 1024 * 1024,
        }
    }
}

impl StreamConfig {
    /// Returns the flush interval in milliseconds (`flush_interval`, else
    /// `flush_interval_ms`); an unreadable `flush_interval` is refused by validation.
    pub fn flush_interval_ms(&self) -> u64 {
        self.flush_interval
            .as_ref()
            .and_then(|value| value.millis().ok())
            .unwrap_or(self.flush_interval_ms)
    }
}

/// A duration setting: a number of seconds, or text with a unit (`ms`, `s`, `m`, `h`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u64),
    Text(String),
}

impl DurationValue {
    /// Returns the duration in milliseconds, or why the text is not one.
    ///
    /// # Errors
    /// Text without a number followed by one of the units `ms`, `s`, `m`, `h`.
    pub fn millis(&self) -> Result<u64, String> {
        let text = match self {
            Self::Seconds(seconds) => return Ok(seconds.saturating_mul(1000)),
            Self::Text(text) => text.trim(),
        };
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} does not start with a whole number"))?;
        let scale = match unit.trim() {
            "" | "s" => 1000,
            "ms" => 1,
            "m" => 60_000,
            "h" => 3_600_000,
            other => {
                return Err(format!(
                    "{text:?} has the unit {other:?}; use ms, s, m or h (\"5s\", \"250ms\")"
                ));
            }
        };
        Ok(number.saturating_mul(scale))
    }
}

/// Where staged uploads, the lake and diagnostics live.
///
/// For `s3://` URLs, every setting left unset falls back to the usual AWS environment
/// variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`), read by
/// [`Config::load`] ([`StorageConfig::fill_from_aws_environment`]); the storage crate reads
/// no environment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `file:///absolute/dir` or `s3://bucket[/prefix]`; by default
    /// `file://<data_dir>/objects`.
    pub url: Option<String>,
    /// S3 endpoint of a self-hosted, S3-compatible server (`http://127.0.0.1:3900`);
    /// unset means AWS itself.
    pub endpoint: Option<String>,
    /// S3 region (`us-east-1` when neither this nor the environment names one).
    pub region: Option<String>,
    /// S3 access key id.
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    pub secret_access_key: Option<SecretString>,
    /// S3 session token of temporary credentials.
    pub session_token: Option<SecretString>,
    /// Address buckets as `bucket.host` instead of the default path style (`host/bucket`),
    /// which self-hosted servers expect.
    pub virtual_hosted_style: bool,
    /// Allow a plain `http://` endpoint (by default: allowed exactly when `endpoint` says
    /// `http://`).
    pub allow_http: Option<bool>,
}

impl StorageConfig {
    /// Fills every S3 setting still unset from the AWS variables of `environment`
    /// (`AWS_ENDPOINT_URL` before `AWS_ENDPOINT`, `AWS_REGION` before `AWS_DEFAULT_REGION`).
    pub fn fill_from_aws_environment(
        &mut self,
        environment: impl IntoIterator<Item = (String, String)>,
    ) {
        let aws: std::collections::HashMap<String, String> = environment
            .into_iter()
            .filter(|(name, value)| name.starts_with("AWS_") && !value.is_empty())
            .collect();
        let first = |names: &[&str]| names.iter().find_map(|name| aws.get(*name).cloned());
        let secret = |name: &str| aws.get(name).map(|value| SecretString::new(value));
        self.endpoint = self
            .endpoint
            .take()
            .or_else(|| first(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT"]));
        self.region = self
            .region
            .take()
            .or_else(|| first(&["AWS_REGION", "AWS_DEFAULT_REGION"]));
        self.access_key_id = self
            .access_key_id
            .take()
            .or_else(|| first(&["AWS_ACCESS_KEY_ID"]));
        self.secret_access_key = self
            .secret_access_key
            .take()
            .or_else(|| secret("AWS_SECRET_ACCESS_KEY"));
        self.session_token = self
            .session_token
            .take()
            .or_else(|| secret("AWS_SESSION_TOKEN"));
    }
}

/// Batch ingestion limits and workers (spec §1.8, §6).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest single `PUT` upload; larger files must use chunked upload.
    pub max_put_bytes: u64,
    /// Largest chunk of a chunked upload.
    pub max_chunk_bytes: u64,
    pub max_files_per_batch: u64,
    pub max_batch_bytes: u64,
    /// The largest row of an uploaded file: a JSON line, an element of a multi-line JSON
    /// array, or a CSV record (field bytes plus one per field). A larger row is rejected as
    /// a parsing error of that row (the batch goes on) and is never held in memory; an
    /// upload preview fails on it. AEP's published limit for a single record is 1 MB.
    pub max_row_bytes: u64,
    /// Batches still `loading` this many seconds after creation become `abandoned`.
    pub abandon_after_secs: u64,
    /// Promotion workers run inside `lakeport serve` (0: run `lakeport worker` instead).
    pub workers: u32,
    /// The threads one worker uses for one batch: 1 runs reading, validation and Parquet
    /// writing on one thread (for fair single-thread comparisons); 2 overlaps decoding and
    /// Parquet writing; with more, files of every format are decoded and validated on
    /// `batch_threads - 1` threads while a reader feeds them and the Parquet writer
    /// encodes on two (1 to 64). On two cores, 3 ingests JSON Lines about 15% faster than
    /// the default 2, at about 35 MB more peak memory per batch. A batch never uses more
    /// threads than the process has CPUs (its affinity and cgroup quota).
    pub batch_threads: u32,
    /// Whether a clean row group of a Parquet upload keeps its encoded pages for the
    /// columns the dataset stores as they are (copied into the table's file instead of
    /// decoded and encoded again; every value is still validated). Off, every page of the
    /// lake is encoded by Lakeport, with Snappy.
    pub reuse_parquet_pages: bool,
    /// Whether `lakeport serve` starts validating a JSON or CSV file uploaded with one
    /// `PUT` to a local data directory while it is still arriving, so that the batch's
    /// `COMPLETE` finds it (mostly) processed. The result is used only when the batch's
    /// only file is that upload and its schema and options did not change in between;
    /// otherwise the file is processed again after `COMPLETE`, as it is without this.
    pub early_processing: bool,
    /// Uploads that declare fewer bytes than this (`Content-Length`) are not processed
    /// early: a small file takes longer to prepare for than to process after `COMPLETE`.
    pub early_processing_min_bytes: u64,
    /// Freed memory blocks of 16 KiB to 8 MiB (page buffers, record batches) the process
    /// keeps for reuse, in MiB, instead of returning them to the system at once; emptied
    /// once a worker has been out of jobs for 10 s. Each reused block spares a page fault per 4 KiB:
    /// ingestion takes 10-20% less CPU for at most this much more memory (0 to 1024; 0
    /// keeps nothing).
    pub block_cache_mb: u32,
    /// Attempts before a batch whose processing keeps failing becomes `stalled`.
    pub max_attempts: u32,
    /// How long a claimed job stays leased without a heartbeat.
    pub lease_secs: u64,
    /// Directory for processing scratch files; by default `<data_dir>/work`.
    pub work_dir: Option<std::path::PathBuf>,
    /// How long the data of a reverted or replaced batch is kept before the collector
    /// deletes it and marks the batch `deleted`.
    pub deleted_data_grace_secs: u64,
    /// How long a batch's diagnostics (`failed/` rejected rows and `meta/` files) are kept
    /// after its `completed` time; afterwards Data Access answers 404 and the worker
    /// deletes them (spec §1.8, §7.5: 30 days).
    pub diagnostics_retention_secs: u64,
    /// `lakeport dataset optimize` rewrites a table's batch files smaller than half of
    /// this into files of about this size (spec §12).
    pub optimize_target_bytes: u64,
    /// `lakeport dataset vacuum` deletes the compacted files that no table version of
    /// this period reads (Delta's default: 7 days); older versions then fail to read.
    pub vacuum_retention_secs: u64,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_put_bytes: 256 * 1024 * 1024,
            max_chunk_bytes: 512_000_000,
            max_files_per_batch: 1500,
            max_batch_bytes: 100 * 1024 * 1024 * 1024,
            max_row_bytes: 1024 * 1024,
            abandon_after_secs: 24 * 3600,
            workers: 1,
            batch_threads: 2,
            reuse_parquet_pages: true,
            early_processing: true,
            early_processing_min_bytes: 1024 * 1024,
            block_cache_mb: 32,
            max_attempts: 3,
            lease_secs: 60,
            work_dir: None,
            deleted_data_grace_secs: 3600,
            diagnostics_retention_secs: 30 * 24 * 3600,
            optimize_target_bytes: 128 * 1024 * 1024,
            vacuum_retention_secs: 7 * 24 * 3600,
        }
    }
}

/// Schema Registry settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// Tenant id per organization (`"ACME…@AdobeOrg" = "acmecorp"`): custom XDM fields
    /// live under `_<tenant id>`. Organizations not listed get their org id's prefix in
    /// lower case.
    pub tenant_ids: std::collections::BTreeMap<String, String>,
}

/// The HTTP listener and the data directory.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Directory holding the embedded metastore, objects and the generated token.
    pub data_dir: PathBuf,
    /// Origin used in absolute links and `Location` headers (e.g. `https://aep.example.com`);
    /// by default the request's own scheme and host.
    pub public_origin: Option<String>,
    /// Seconds a client has to send a request's headers, counted from when the connection
    /// is ready for a request: a new connection that sends nothing, a slow header and an
    /// idle keep-alive connection are all closed after this long.
    pub header_timeout_secs: u64,
    /// Seconds a connection may make no progress while a request body is read (between
    /// two pieces of the body) or while a response is written; then it is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; a connection over the limit is answered 503 and closed.
    /// Keep it below the process's file descriptor limit (`ulimit -n`).
    pub max_connections: u32,
    /// Threads of the blocking pool at most (SQLite calls, file IO, Parquet encoding and
    /// decoding); more blocking work queues. Each such thread keeps its own stack and
    /// allocator heap, so this bounds the memory they hold under load.
    pub max_blocking_threads: u32,
    /// Seconds a graceful stop (SIGTERM or Ctrl-C) waits for requests in flight and for the
    /// job each worker is running. Then open connections are closed, and an unfinished job is
    /// left to its lease: the next start, or another node, runs it again from the start.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./lakeport-data"),
            public_origin: None,
            header_timeout_secs: 30,
            idle_timeout_secs: 60,
            max_connections: 1000,
            max_blocking_threads: 32,
            shutdown_timeout_secs: 30,
        }
    }
}

/// Where Catalog metadata lives.
#[derive(Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetastoreConfig {
    /// `sqlite://path` (by default `sqlite://<data_dir>/catalog.db`) or
    /// `postgres://user:password@host:5432/database`; the password is a secret.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: Option<String>,
    /// `process` (survives a crash or kill, the default) or `power-loss` (fsync every
    /// commit). SQLite only: PostgreSQL follows its server's settings.
    pub durability: Durability,
    /// Connections each process keeps to PostgreSQL (ignored by SQLite).
    pub max_connections: u32,
}

impl Default for MetastoreConfig {
    fn default() -> Self {
        Self {
            url: None,
            durability: Durability::default(),
            max_connections: 10,
        }
    }
}

impl fmt::Debug for MetastoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetastoreConfig")
            .field("url", &self.url.as_deref().map(redact_url_password))
            .field("durability", &self.durability)
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

fn serialize_redacted_url<S: Serializer>(
    url: &Option<String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => serializer.serialize_some(&redact_url_password(url)),
        None => serializer.serialize_none(),
    }
}

/// Returns a server URL with its password (in the user info or a `password=` query
/// parameter) replaced by `<redacted>`, for logs and `config show`.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // A SQLite or file URL holds a path, whatever characters it contains.
    if matches!(scheme, "sqlite" | "file") {
        return url.to_owned();
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:<redacted>@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let parameters: Vec<String> = query
                .split('&')
                .map(|parameter| match parameter.split_once('=') {
                    Some(("password", _)) => "password=<redacted>".to_owned(),
                    _ => parameter.to_owned(),
                })
                .collect();
            format!("{path}?{}", parameters.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// How hard the embedded metastore syncs commits.
pub use lakeport_domain::Durability;

/// Who may call the API.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted bearer tokens. When empty, `lakeport serve` generates one on first start
    /// and keeps it in the data directory.
    pub tokens: Vec<TokenConfig>,
    /// Accepted `x-api-key` values; empty accepts any non-empty key.
    pub api_keys: Vec<String>,
    /// When true, a request without `x-sandbox-name` is refused instead of meaning `prod`.
    pub require_sandbox_header: bool,
}

/// One accepted bearer token.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub token: SecretString,
    /// Organizations the token may act for; `["*"]` (the default) means any.
    #[serde(default = "any_org")]
    pub orgs: Vec<String>,
    /// The user recorded as `createdUser`/`updatedUser`; by default `<x-api-key>@AdobeID`.
    #[serde(default)]
    pub user: Option<String>,
}

fn any_org() -> Vec<String> {
    vec!["*".to_owned()]
}

impl TokenConfig {
    /// Returns a token valid for any organization.
    pub fn any_org(token: &str) -> Self {
        Self {
            token: SecretString::new(token),
            orgs: any_org(),
            user: None,
        }
    }
}

/// Catalog list behaviour (spec §1.8, §8 item 22).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogConfig {
    pub default_limit: u32,
    pub max_limit: u32,
    /// When true a `limit` above `max_limit` is a 400 instead of being clamped.
    pub reject_limit_over_max: bool,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            default_limit: 20,
            max_limit: 100,
            reject_limit_over_max: false,
        }
    }
}

/// The Query Service's PostgreSQL wire endpoint (spec §11.1).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Whether `lakeport serve` opens the wire endpoint.
    pub enabled: bool,
    /// The wire endpoint's address. 5433, not PostgreSQL's 5432: a local PostgreSQL (often
    /// the metastore itself) usually holds that one.
    pub listen: String,
    /// Logged-in wire sessions at most, all organizations together; one more is refused
    /// with 53300 `Session Limit Reached`.
    pub max_sessions: usize,
    /// The host `GET /connection_parameters` names for the wire endpoint; unset: the
    /// listen address's host, or the HTTP request's host when it listens on all addresses.
    pub public_host: Option<String>,
    /// The port `GET /connection_parameters` names; unset: the port the endpoint listens on.
    pub public_port: Option<u16>,
    /// REST queries of one organization submitted or in progress at once; one more is
    /// refused with 429.
    pub max_running_per_org: u64,
    /// How long a `SELECT` may run: a REST query then ends in `TIMEOUT`, a wire statement
    /// in SQLSTATE 57014 (Adobe: 10 minutes).
    pub select_timeout_secs: u64,
    /// How long a CTAS or INSERT INTO may run, its batch's promotion included (Adobe: 24 h).
    pub write_timeout_secs: u64,
    /// The largest result a CTAS or INSERT INTO may write (JSON Lines bytes in the scratch
    /// directory before they become a batch); a larger one ends the query FAILED (54000).
    pub max_result_bytes: u64,
    /// Memory all running queries of this node may hold at once (wire sessions and REST
    /// queries share one pool). Sorts, joins and grouping spill to disk beyond their share;
    /// a query that still needs more fails with SQLSTATE 53200.
    pub max_memory_bytes: u64,
    /// Disk the queries' spill files may take at once, in the system's temporary directory;
    /// a query that would spill more fails with SQLSTATE 53200.
    pub max_spill_bytes: u64,
    /// PEM certificate chain the wire endpoint offers TLS with (clients' `sslmode=require`
    /// and stricter); set together with `query.tls_key`. Unset: no TLS.
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `query.tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
    /// Refuses sessions that did not negotiate TLS (28000), as Adobe's Query Service does;
    /// needs `query.tls_cert` and `query.tls_key`.
    pub tls_required: bool,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: "127.0.0.1:5433".to_owned(),
            max_sessions: 100,
            public_host: None,
            public_port: None,
            max_running_per_org: 32,
            select_timeout_secs: 600,
            write_timeout_secs: 86_400,
            max_result_bytes: 50 * 1024 * 1024 * 1024,
            max_memory_bytes: 2 * 1024 * 1024 * 1024,
            max_spill_bytes: 20 * 1024 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
            tls_required: false,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `lakeport=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// A secret that never appears in `Debug` output or serialized configuration.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(secret: &str) -> Self {
        Self(secret.to_owned())
    }

    /// Returns the secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {name} does not name a config key: {reason}")]
    Environment { name: String, reason: String },
    #[error("invalid configuration: {0}")]
    Shape(String),
    #[error("invalid configuration key {key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

const ENV_PREFIX: &str = "LAKEPORT__";

/// The most `ingest.max_row_bytes` may be: a row is held in memory whole, several at once.
const MAX_ROW_BYTES_CEILING: u64 = 1 << 30;

impl Config {
    /// Loads the configuration: defaults, then the TOML file (if any), then every
    /// `LAKEPORT__SECTION__KEY` variable of `environment`, then the `AWS_*` variables of
    /// `environment` for the S3 settings still unset, then validation.
    ///
    /// # Errors
    /// Says which file, variable or key is wrong and what values are allowed.
    pub fn load(
        file: Option<&Path>,
        environment: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match file {
            None => toml::Table::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                text.parse::<toml::Table>()
                    .map_err(|err| ConfigError::Parse {
                        path: path.to_owned(),
                        message: err.to_string(),
                    })?
            }
        };
        let mut aws = Vec::new();
        for (name, value) in environment {
            if name.starts_with("AWS_") {
                aws.push((name, value));
                continue;
            }
            let Some(key) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            apply_env(&mut table, &name, key, &value)?;
        }
        // Deserialize from text so that errors quote the offending key and value.
        let merged = toml::to_string(&table).map_err(|err| ConfigError::Shape(err.to_string()))?;
        let mut config: Config = toml::from_str(&merged).map_err(|err: toml::de::Error| {
            ConfigError::Shape(err.to_string().trim_end().to_owned())
        })?;
        config.storage.fill_from_aws_environment(aws);
        config.validate()?;
        Ok(config)
    }

    /// Checks values that the types alone cannot.
    ///
    /// # Errors
    /// Names the first invalid key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Invalid {
                key: "server.listen",
                reason: format!(
                    "{:?} is not an address such as 127.0.0.1:8080",
                    self.server.listen
                ),
            })?;
        if self.query.enabled {
            if self.query.max_sessions == 0 {
                return Err(ConfigError::Invalid {
                    key: "query.max_sessions",
                    reason: "must be at least 1 (query.enabled = false turns the endpoint off)"
                        .to_owned(),
                });
            }
            self.query
                .listen
                .parse::<SocketAddr>()
                .map_err(|_| ConfigError::Invalid {
                    key: "query.listen",
                    reason: format!(
                        "{:?} is not an address such as 127.0.0.1:5433",
                        self.query.listen
                    ),
                })?;
            if self.query.tls_cert.is_some() != self.query.tls_key.is_some() {
                return Err(ConfigError::Invalid {
                    key: "query.tls_cert",
                    reason: "query.tls_cert and query.tls_key are set together (a PEM certificate chain and its private key)".to_owned(),
                });
            }
            if self.query.tls_required && self.query.tls_cert.is_none() {
                return Err(ConfigError::Invalid {
                    key: "query.tls_required",
                    reason: "needs query.tls_cert and query.tls_key".to_owned(),
                });
            }
        }
        for (key, value) in [
            ("query.max_running_per_org", self.query.max_running_per_org),
            ("query.select_timeout_secs", self.query.select_timeout_secs),
            ("query.write_timeout_secs", self.query.write_timeout_secs),
            ("query.max_result_bytes", self.query.max_result_bytes),
            ("query.max_memory_bytes", self.query.max_memory_bytes),
            ("query.max_spill_bytes", self.query.max_spill_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    reason: "must be at least 1".to_owned(),
                });
            }
        }
        if self.console.enabled {
            self.console.validate()?;
        }
        if self.server.header_timeout_secs == 0
            || self.server.idle_timeout_secs == 0
            || self.server.max_connections == 0
        {
            return Err(ConfigError::Invalid {
                key: "server",
                reason: "server.header_timeout_secs, server.idle_timeout_secs and server.max_connections must be at least 1".to_owned(),
            });
        }
        // Each promotion holds a blocking thread and may wait on a file fetch that needs
        // another; below this floor queued work could wait on itself.
        let floor = self.ingest.workers.saturating_mul(2).saturating_add(8);
        if self.server.max_blocking_threads < floor {
            return Err(ConfigError::Invalid {
                key: "server.max_blocking_threads",
                reason: format!(
                    "{} is too small: at least {floor} (8 plus 2 per ingest worker)",
                    self.server.max_blocking_threads
                ),
            });
        }
        if let Some(origin) = &self.stream.origin
            && !(origin.starts_with("http://") || origin.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "stream.origin",
                reason: format!("{origin:?} must start with http:// or https://"),
            });
        }
        if let Some(interval) = &self.stream.flush_interval {
            interval.millis().map_err(|reason| ConfigError::Invalid {
                key: "stream.flush_interval",
                reason,
            })?;
        }
        if self.stream.max_body_bytes == 0
            || self.stream.flush_bytes == 0
            || self.stream.max_queued_requests == 0
            || self.stream.max_queued_bytes == 0
        {
            return Err(ConfigError::Invalid {
                key: "stream",
                reason: "stream.max_body_bytes, stream.flush_bytes, stream.max_queued_requests and stream.max_queued_bytes must be at least 1"
                    .to_owned(),
            });
        }
        if let Some(origin) = &self.server.public_origin
            && !(origin.starts_with("http://") || origin.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "server.public_origin",
                reason: format!("{origin:?} must start with http:// or https://"),
            });
        }
        if let Some(url) = &self.metastore.url
            && !["sqlite:", "postgres://", "postgresql://"]
                .iter()
                .any(|scheme| url.starts_with(scheme))
        {
            return Err(ConfigError::Invalid {
                key: "metastore.url",
                reason: format!(
                    "{:?} is not supported; use sqlite://<path> or postgres://<user>:<password>@<host>:<port>/<database>",
                    redact_url_password(url)
                ),
            });
        }
        if self.metastore.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "metastore.max_connections",
                reason: "must be at least 1".to_owned(),
            });
        }
        for token in &self.auth.tokens {
            if token.token.expose().trim().is_empty() {
                return Err(ConfigError::Invalid {
                    key: "auth.tokens",
                    reason: "a token must not be empty".to_owned(),
                });
            }
            if token.orgs.is_empty() {
                return Err(ConfigError::Invalid {
                    key: "auth.tokens",
                    reason: "orgs must list organizations or be [\"*\"] for any".to_owned(),
                });
            }
        }
        for (org, tenant_id) in &self.registry.tenant_ids {
            let valid = tenant_id.starts_with(|c: char| c.is_ascii_lowercase())
                && tenant_id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
            if !valid {
                return Err(ConfigError::Invalid {
                    key: "registry.tenant_ids",
                    reason: format!(
                        "{tenant_id:?} (for {org}) must be lower-case letters and digits, starting with a letter"
                    ),
                });
            }
        }
        if let Some(url) = &self.storage.url {
            let bucket = url.strip_prefix("s3://").map(|rest| rest.split('/').next());
            match bucket {
                None if url.starts_with("file:///") => {}
                Some(Some(bucket)) if !bucket.is_empty() => {}
                _ => {
                    return Err(ConfigError::Invalid {
                        key: "storage.url",
                        reason: format!(
                            "{url:?} is not supported; use file:///<absolute dir> or s3://<bucket>[/<prefix>]"
                        ),
                    });
                }
            }
        }
        if let Some(endpoint) = &self.storage.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                key: "storage.endpoint",
                reason: format!(
                    "{endpoint:?} must start with http:// or https:// (it falls back to AWS_ENDPOINT_URL)"
                ),
            });
        }
        if !(1..=MAX_ROW_BYTES_CEILING).contains(&self.ingest.max_row_bytes) {
            return Err(ConfigError::Invalid {
                key: "ingest.max_row_bytes",
                reason: format!(
                    "{} must be from 1 to {MAX_ROW_BYTES_CEILING} (1 GiB)",
                    self.ingest.max_row_bytes
                ),
            });
        }
        if !(1..=64).contains(&self.ingest.batch_threads) {
            return Err(ConfigError::Invalid {
                key: "ingest.batch_threads",
                reason: format!("{} must be from 1 to 64", self.ingest.batch_threads),
            });
        }
        if self.ingest.block_cache_mb > 1024 {
            return Err(ConfigError::Invalid {
                key: "ingest.block_cache_mb",
                reason: format!("{} must be from 0 to 1024", self.ingest.block_cache_mb),
            });
        }
        if self.ingest.max_attempts == 0 || self.ingest.lease_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "ingest.max_attempts",
                reason: "ingest.max_attempts and ingest.lease_secs must be at least 1".to_owned(),
            });
        }
        let catalog = &self.catalog;
        if !(1..=1000).contains(&catalog.max_limit) {
            return Err(ConfigError::Invalid {
                key: "catalog.max_limit",
                reason: format!("{} must be from 1 to 1000", catalog.max_limit),
            });
        }
        if !(1..=catalog.max_limit).contains(&catalog.default_limit) {
            return Err(ConfigError::Invalid {
                key: "catalog.default_limit",
                reason: format!(
                    "{} must be from 1 to max_limit ({})",
                    catalog.default_limit, catalog.max_limit
                ),
            });
        }
        Ok(())
    }

    /// Returns the object storage URL, defaulting to a directory in the data directory.
    pub fn storage_url(&self) -> String {
        self.storage.url.clone().unwrap_or_else(|| {
            let dir = std::path::absolute(&self.server.data_dir)
                .unwrap_or_else(|_| self.server.data_dir.clone());
            format!("file://{}", dir.join("objects").display())
        })
    }

    /// Returns the directory for processing scratch files.
    pub fn work_dir(&self) -> std::path::PathBuf {
        self.ingest
            .work_dir
            .clone()
            .unwrap_or_else(|| self.server.data_dir.join("work"))
    }

    /// Returns the metastore URL, defaulting to a database file in the data directory.
    pub fn metastore_url(&self) -> String {
        self.metastore.url.clone().unwrap_or_else(|| {
            format!(
                "sqlite://{}",
                self.server.data_dir.join("catalog.db").display()
            )
        })
    }

    /// Renders the effective configuration as TOML with every secret redacted.
    pub fn redacted_toml(&self) -> String {
        toml::to_string(self).expect("the config tree always serializes")
    }
}

fn apply_env(
    table: &mut toml::Table,
    name: &str,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let path: Vec<String> = key.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(ConfigError::Environment {
            name: name.to_owned(),
            reason: "expected LAKEPORT__<SECTION>__<KEY>".to_owned(),
        });
    }
    // Numbers, booleans, arrays and inline tables are written as TOML; anything else is a
    // plain string.
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    let (last, parents) = path.split_last().expect("split yields at least one part");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| ConfigError::Environment {
                name: name.to_owned(),
                reason: format!("{part} is not a section"),
            })?;
    }
    current.insert(last.clone(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:8080");
        assert_eq!(
            config.metastore_url(),
            "sqlite://./lakeport-data/catalog.db"
        );
        assert_eq!(config.ingest.diagnostics_retention_secs, 2_592_000);
        assert_eq!(config.ingest.max_row_bytes, 1_048_576);
    }

    #[test]
    fn the_console_path_is_checked() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs));
        let config = load(&[]).unwrap();
        assert!(config.console.enabled);
        assert_eq!(config.console.path, "/console");
        assert_eq!(
            load(&[("LAKEPORT__CONSOLE__PATH", "/ui/lake-port")])
                .unwrap()
                .console
                .path,
            "/ui/lake-port"
        );
        for bad in [
            "console",
            "/",
            "/console/",
            "/data/console",
            "/Console",
            "/a b",
            "/a//b",
        ] {
            let err = load(&[("LAKEPORT__CONSOLE__PATH", bad)]).unwrap_err();
            assert!(err.to_string().contains("console.path"), "{bad}: {err}");
        }
        // Off, the path is not looked at.
        load(&[
            ("LAKEPORT__CONSOLE__ENABLED", "false"),
            ("LAKEPORT__CONSOLE__PATH", "/data"),
        ])
        .unwrap();
        assert!(load(&[("LAKEPORT__CONSOLE__MAX_SESSIONS", "0")]).is_err());
    }

    #[test]
    fn the_flush_interval_takes_the_spec_name_with_a_unit_and_the_old_name_in_ms() {
        let interval = |pairs: &[(&str, &str)]| {
            Config::load(None, env(pairs)).map(|config| config.stream.flush_interval_ms())
        };
        assert_eq!(interval(&[]).unwrap(), 5000);
        assert_eq!(
            interval(&[("LAKEPORT__STREAM__FLUSH_INTERVAL_MS", "300")]).unwrap(),
            300
        );
        for (value, millis) in [("2s", 2000), ("250ms", 250), ("1m", 60_000), ("3", 3000)] {
            assert_eq!(
                interval(&[
                    ("LAKEPORT__STREAM__FLUSH_INTERVAL", value),
                    ("LAKEPORT__STREAM__FLUSH_INTERVAL_MS", "300"),
                ])
                .unwrap(),
                millis,
                "{value}"
            );
        }
        for bad in ["soon", "5 weeks", "-1s"] {
            let err = interval(&[("LAKEPORT__STREAM__FLUSH_INTERVAL", bad)]).unwrap_err();
            assert!(
                err.to_string().contains("stream.flush_interval"),
                "{bad}: {err}"
            );
        }
        let path = std::env::temp_dir().join(format!("lakeport-flush-{}.toml", std::process::id()));
        std::fs::write(&path, "[stream]\nflush_interval = \"750ms\"\n").unwrap();
        let loaded = Config::load(Some(&path), env(&[]));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.unwrap().stream.flush_interval_ms(), 750);
    }

    #[test]
    fn batch_threads_are_set_by_environment_and_bounded() {
        assert_eq!(
            Config::load(None, env(&[])).unwrap().ingest.batch_threads,
            2
        );
        let config = Config::load(None, env(&[("LAKEPORT__INGEST__BATCH_THREADS", "1")])).unwrap();
        assert_eq!(config.ingest.batch_threads, 1);
        for bad in ["0", "65"] {
            let err =
                Config::load(None, env(&[("LAKEPORT__INGEST__BATCH_THREADS", bad)])).unwrap_err();
            assert!(err.to_string().contains("ingest.batch_threads"), "{err}");
        }
    }

    #[test]
    fn the_block_cache_is_set_by_environment_and_bounded() {
        assert_eq!(
            Config::load(None, env(&[])).unwrap().ingest.block_cache_mb,
            32
        );
        let config = Config::load(None, env(&[("LAKEPORT__INGEST__BLOCK_CACHE_MB", "0")])).unwrap();
        assert_eq!(config.ingest.block_cache_mb, 0);
        for bad in ["1025", "-1", "lots"] {
            let err =
                Config::load(None, env(&[("LAKEPORT__INGEST__BLOCK_CACHE_MB", bad)])).unwrap_err();
            assert!(err.to_string().contains("block_cache_mb"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_row_limit_is_set_by_environment_and_bounded() {
        let config =
            Config::load(None, env(&[("LAKEPORT__INGEST__MAX_ROW_BYTES", "4096")])).unwrap();
        assert_eq!(config.ingest.max_row_bytes, 4096);
        for bad in ["0", "1073741825"] {
            let err =
                Config::load(None, env(&[("LAKEPORT__INGEST__MAX_ROW_BYTES", bad)])).unwrap_err();
            assert!(err.to_string().contains("ingest.max_row_bytes"), "{err}");
        }
    }

    #[test]
    fn blocking_pool_bound_is_set_by_environment_and_checked() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(config.server.max_blocking_threads, 32);
        let config = Config::load(
            None,
            env(&[("LAKEPORT__SERVER__MAX_BLOCKING_THREADS", "12")]),
        )
        .unwrap();
        assert_eq!(config.server.max_blocking_threads, 12);
        for bad in ["0", "9"] {
            let err = Config::load(
                None,
                env(&[("LAKEPORT__SERVER__MAX_BLOCKING_THREADS", bad)]),
            )
            .unwrap_err();
            assert!(
                err.to_string().contains("server.max_blocking_threads")
                    && err.to_string().contains("at least 10"),
                "{err}"
            );
        }
        let err = Config::load(
            None,
            env(&[
                ("LAKEPORT__SERVER__MAX_BLOCKING_THREADS", "12"),
                ("LAKEPORT__INGEST__WORKERS", "4"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 16"), "{err}");
    }

    #[test]
    fn connection_limits_are_set_by_environment_and_checked() {
        let config = Config::load(None, env(&[])).unwrap();
        assert_eq!(
            (
                config.server.header_timeout_secs,
                config.server.idle_timeout_secs,
                config.server.max_connections
            ),
            (30, 60, 1000)
        );
        let config = Config::load(
            None,
            env(&[
                ("LAKEPORT__SERVER__HEADER_TIMEOUT_SECS", "2"),
                ("LAKEPORT__SERVER__IDLE_TIMEOUT_SECS", "3"),
                ("LAKEPORT__SERVER__MAX_CONNECTIONS", "8"),
            ]),
        )
        .unwrap();
        assert_eq!(
            (
                config.server.header_timeout_secs,
                config.server.idle_timeout_secs,
                config.server.max_connections
            ),
            (2, 3, 8)
        );
        for key in [
            "LAKEPORT__SERVER__HEADER_TIMEOUT_SECS",
            "LAKEPORT__SERVER__IDLE_TIMEOUT_SECS",
            "LAKEPORT__SERVER__MAX_CONNECTIONS",
        ] {
            let err = Config::load(None, env(&[(key, "0")])).unwrap_err();
            assert!(err.to_string().contains("at least 1"), "{err}");
        }
    }

    #[test]
    fn file_then_environment() {
        let dir = std::env::temp_dir().join(format!("lakeport-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lakeport.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"0.0.0.0:9000\"\n[[auth.tokens]]\ntoken = \"s3cret\"\norgs = [\"ACME@AdobeOrg\"]\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&path),
            env(&[
                ("LAKEPORT__SERVER__LISTEN", "127.0.0.1:9999"),
                ("LAKEPORT__CATALOG__MAX_LIMIT", "50"),
                ("LAKEPORT__AUTH__API_KEYS", "[\"k1\"]"),
                ("OTHER", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.listen, "127.0.0.1:9999");
        assert_eq!(config.catalog.max_limit, 50);
        assert_eq!(config.auth.api_keys, ["k1"]);
        assert_eq!(config.auth.tokens[0].token.expose(), "s3cret");
        let shown = config.redacted_toml();
        assert!(
            shown.contains("<redacted>") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn wire_tls_needs_a_certificate_and_its_key_together() {
        let load = |pairs: &[(&str, &str)]| Config::load(None, env(pairs));
        let both = load(&[
            ("LAKEPORT__QUERY__TLS_CERT", "/etc/lakeport/wire.pem"),
            ("LAKEPORT__QUERY__TLS_KEY", "/etc/lakeport/wire.key"),
            ("LAKEPORT__QUERY__TLS_REQUIRED", "true"),
        ])
        .unwrap();
        assert!(both.query.tls_required);
        let alone = load(&[("LAKEPORT__QUERY__TLS_CERT", "/etc/lakeport/wire.pem")]).unwrap_err();
        assert!(alone.to_string().contains("query.tls_cert"), "{alone}");
        let required = load(&[("LAKEPORT__QUERY__TLS_REQUIRED", "true")]).unwrap_err();
        assert!(
            required.to_string().contains("query.tls_required"),
            "{required}"
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = Config::load(None, env(&[("LAKEPORT__SERVER__LISTEN", "nowhere")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid configuration key server.listen: \"nowhere\" is not an address such as 127.0.0.1:8080"
        );
        let err = Config::load(None, env(&[("LAKEPORT__SERVER__PORT", "1")])).unwrap_err();
        assert!(err.to_string().contains("unknown field `port`"), "{err}");
        let err = Config::load(
            None,
            env(&[("LAKEPORT__METASTORE__DURABILITY", "sometimes")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `sometimes`"),
            "{err}"
        );
        let err =
            Config::load(None, env(&[("LAKEPORT__CATALOG__DEFAULT_LIMIT", "500")])).unwrap_err();
        assert!(err.to_string().contains("catalog.default_limit"), "{err}");
    }

    /// The example configuration of the README's "Running at scale" section is valid.
    #[test]
    fn the_readme_example_at_scale_loads() {
        let readme = include_str!("../../../README.md");
        let section = &readme[readme.find("## Running at scale").unwrap()..];
        let block = section
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lakeport.toml");
        std::fs::write(&path, block).unwrap();
        let config = Config::load(Some(&path), env(&[])).unwrap();
        assert!(config.metastore_url().starts_with("postgres://"));
        assert_eq!(config.storage_url(), "s3://lakeport/prod");
        assert_eq!(
            config.storage.endpoint.as_deref(),
            Some("http://garage:3900")
        );
        assert_eq!(config.ingest.workers, 0);
    }

    #[test]
    fn s3_storage_is_configured_and_its_secret_redacted() {
        let config = Config::load(
            None,
            env(&[
                ("LAKEPORT__STORAGE__URL", "s3://lake/prod"),
                ("LAKEPORT__STORAGE__ENDPOINT", "http://127.0.0.1:3900"),
                ("LAKEPORT__STORAGE__REGION", "garage"),
                ("LAKEPORT__STORAGE__ACCESS_KEY_ID", "GK0123"),
                ("LAKEPORT__STORAGE__SECRET_ACCESS_KEY", "s3cret"),
            ]),
        )
        .unwrap();
        assert_eq!(config.storage_url(), "s3://lake/prod");
        assert_eq!(config.storage.region.as_deref(), Some("garage"));
        let shown = config.redacted_toml();
        assert!(
            shown.contains("secret_access_key = \"<redacted>\"") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
        for (name, value, key) in [
            ("LAKEPORT__STORAGE__URL", "s3://", "storage.url"),
            ("LAKEPORT__STORAGE__URL", "gs://bucket", "storage.url"),
            ("LAKEPORT__STORAGE__URL", "file://relative", "storage.url"),
            (
                "LAKEPORT__STORAGE__ENDPOINT",
                "127.0.0.1:3900",
                "storage.endpoint",
            ),
        ] {
            let err = Config::load(None, env(&[(name, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{value}: {err}");
        }
    }

    #[test]
    fn aws_variables_fill_the_s3_settings_left_unset() {
        let config = Config::load(
            None,
            env(&[
                ("LAKEPORT__STORAGE__URL", "s3://lake/prod"),
                ("LAKEPORT__STORAGE__REGION", "garage"),
                ("AWS_REGION", "us-west-2"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
                ("AWS_ENDPOINT", "http://127.0.0.1:3901"),
                ("AWS_ENDPOINT_URL", "http://127.0.0.1:3900"),
                ("AWS_ACCESS_KEY_ID", "GK0123"),
                ("AWS_SECRET_ACCESS_KEY", "s3cret"),
                ("AWS_SESSION_TOKEN", "t0ken"),
            ]),
        )
        .unwrap();
        let storage = &config.storage;
        assert_eq!(storage.region.as_deref(), Some("garage"));
        assert_eq!(storage.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(storage.access_key_id.as_deref(), Some("GK0123"));
        assert_eq!(
            storage.secret_access_key.as_ref().map(SecretString::expose),
            Some("s3cret")
        );
        assert_eq!(
            storage.session_token.as_ref().map(SecretString::expose),
            Some("t0ken")
        );
        let shown = config.redacted_toml();
        assert!(
            !shown.contains("s3cret") && !shown.contains("t0ken"),
            "{shown}"
        );

        let config = Config::load(None, env(&[("AWS_DEFAULT_REGION", "eu-west-1")])).unwrap();
        assert_eq!(config.storage.region.as_deref(), Some("eu-west-1"));
        let err = Config::load(None, env(&[("AWS_ENDPOINT_URL", "127.0.0.1:3900")])).unwrap_err();
        assert!(err.to_string().contains("storage.endpoint"), "{err}");
    }

    #[test]
    fn postgres_urls_are_accepted_and_their_password_redacted() {
        let url = "postgres://lakeport:s3cret@db:5432/lakeport";
        let config = Config::load(None, env(&[("LAKEPORT__METASTORE__URL", url)])).unwrap();
        assert_eq!(config.metastore_url(), url);
        let shown = config.redacted_toml();
        assert!(
            shown.contains("url = \"postgres://lakeport:<redacted>@db:5432/lakeport\"")
                && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
        assert_eq!(
            redact_url_password("postgresql://u:p@h/db?sslmode=disable&password=p2"),
            "postgresql://u:<redacted>@h/db?sslmode=disable&password=<redacted>"
        );
        assert_eq!(
            redact_url_password("postgres://u@h:5432/db"),
            "postgres://u@h:5432/db"
        );
        assert_eq!(
            redact_url_password("sqlite://./a:b@c/catalog.db"),
            "sqlite://./a:b@c/catalog.db"
        );
        let err = Config::load(
            None,
            env(&[("LAKEPORT__METASTORE__URL", "mysql://u:s3cret@h/db")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("metastore.url") && !err.to_string().contains("s3cret"),
            "{err}"
        );
    }
}
