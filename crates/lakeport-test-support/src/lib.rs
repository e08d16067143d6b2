//! Dev-only test support: `TestApp` builds the real router over a real metastore and real
//! object storage, with a job runner that tests drain deterministically, and sends
//! requests with `tower::ServiceExt::oneshot`.
//!
//! The backends are SQLite and a local directory in a temporary directory, unless the
//! environment names servers: with `TEST_DATABASE_URL` (a PostgreSQL server on which
//! databases may be created) every app gets a database of its own; with `TEST_S3_ENDPOINT`
//! (plus `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, if needed, `AWS_REGION`) every
//! app gets a prefix of its own in the bucket `TEST_S3_BUCKET` (default `lakeport-test`).
//! Both are dropped with the app.

#![expect(clippy::missing_panics_doc, reason = "test helpers panic on purpose")]

mod backends;
#[cfg(feature = "browser")]
pub mod browser;

pub use backends::configure_s3;

use lakeport_domain::ids::BatchId;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt;
use lakeport_api::{App, AppState, app};
use lakeport_config::{Config, TokenConfig};
use lakeport_metastore::sqlite::{Durability, SqliteMetastore};
use serde_json::Value;
use tower::ServiceExt;

pub const TOKEN: &str = "token-any-org";
/// A token entitled only to `ORG_B`.
pub const TOKEN_B_ONLY: &str = "token-org-b";
pub const ORG_A: &str = "A1B2C3D4E5F6A7B8C9D0E1F2@AdobeOrg";
pub const ORG_B: &str = "B0B0B0B0B0B0B0B0B0B0B0B0@AdobeOrg";
pub const API_KEY: &str = "acme_ingest_client";

/// Makes the SQL engine of a [`TestApp`] and names the port of its wire endpoint.
pub type QueryEngineFactory = Box<
    dyn FnOnce(
        &Config,
        Arc<dyn lakeport_metastore::Metastore>,
        lakeport_storage::Storage,
    ) -> (Arc<dyn lakeport_api::query::QueryEngine>, Option<u16>),
>;

pub struct TestApp {
    app: App,
    state: AppState,
    config: Config,
    runner: lakeport_jobs::Runner,
    jobs: lakeport_jobs::JobContext,
    storage: lakeport_storage::Storage,
    metastore: Arc<dyn lakeport_metastore::Metastore>,
    /// Dropped before `dir`: the PostgreSQL database and the S3 prefix of this app.
    _remote: backends::Remote,
    dir: tempfile::TempDir,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
    /// The raw body, for binary downloads.
    pub bytes: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem body (spec §1.6) and returns its detail.
    #[track_caller]
    pub fn problem(&self, status: u16, code: &str) -> &str {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.body["type"],
            format!("http://ns.adobe.com/aep/errors/{code}"),
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status);
        assert!(self.body["title"].is_string());
        assert!(self.body["report"]["requestId"].is_string());
        assert_eq!(self.body["errorId"], self.body["report"]["requestId"]);
        assert_eq!(self.header("content-type"), Some("application/json"));
        self.body["detail"].as_str().unwrap()
    }

    /// Returns the ids of a Catalog map in order.
    pub fn keys(&self) -> Vec<String> {
        self.body
            .as_object()
            .unwrap_or_else(|| panic!("not a map: {}", self.text))
            .keys()
            .cloned()
            .collect()
    }
}

/// A request under construction.
pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    /// Raw bytes, used instead of `body` when set.
    pub body_bytes: Option<Vec<u8>>,
}

impl Call<'_> {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn add_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.headers.retain(|(n, _)| n != name);
        self
    }

    pub fn tenant(self, org: &str, sandbox: &str) -> Self {
        self.header("x-gw-ims-org-id", org)
            .header("x-sandbox-name", sandbox)
    }

    pub fn json(self, body: Value) -> Self {
        self.header("content-type", "application/json")
            .raw(&body.to_string())
    }

    pub fn raw(mut self, body: &str) -> Self {
        self.body = Some(body.to_owned());
        self
    }

    pub async fn send(self) -> Reply {
        let mut builder = Request::builder()
            .method(self.method)
            .uri(escape(&self.path));
        for (name, value) in &self.headers {
            builder = builder.header(name, value);
        }
        let body = match (self.body_bytes, self.body) {
            (Some(bytes), _) => Body::from(bytes),
            (None, Some(text)) => Body::from(text),
            (None, None) => Body::empty(),
        };
        let request = builder.body(body).unwrap();
        let response = self.app.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Reply {
            status,
            headers,
            body,
            text,
            bytes: bytes.to_vec(),
        }
    }
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    pub async fn with_config(adjust: impl FnOnce(&mut Config)) -> Self {
        Self::with_engine(adjust, None).await
    }

    /// Builds the app with the SQL engine `engine` makes from the configuration, metastore
    /// and storage behind the Query Service's REST API, its wire endpoint said to listen on
    /// `port` (the `lakeport-query` tests wire in DataFusion this way).
    pub async fn with_query_engine(
        adjust: impl FnOnce(&mut Config),
        engine: QueryEngineFactory,
    ) -> Self {
        Self::with_engine(adjust, Some(engine)).await
    }

    async fn with_engine(
        adjust: impl FnOnce(&mut Config),
        engine: Option<QueryEngineFactory>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.server.data_dir = dir.path().to_owned();
        config.auth.tokens.push(TokenConfig::any_org(TOKEN));
        let mut bound = TokenConfig::any_org(TOKEN_B_ONLY);
        bound.orgs = vec![ORG_B.to_owned()];
        config.auth.tokens.push(bound);
        // The tests' files are small: early runs for all of them, so that every ingestion
        // test goes through them (a test may set the floor back).
        config.ingest.early_processing_min_bytes = 0;
        let remote = backends::Remote::from_env().await;
        remote.configure(&mut config);
        adjust(&mut config);
        let metastore: Arc<dyn lakeport_metastore::Metastore> = if remote.has_database() {
            lakeport_metastore::open(
                &config.metastore_url(),
                lakeport_metastore::OpenOptions {
                    max_connections: 4,
                    ..lakeport_metastore::OpenOptions::default()
                },
            )
            .await
            .unwrap()
        } else {
            Arc::new(
                SqliteMetastore::open(&config.metastore_url(), Durability::Process)
                    .await
                    .unwrap(),
            )
        };
        let storage = lakeport_api::open_storage(&config).unwrap();
        let state = AppState::new(
            &config,
            Arc::clone(&metastore),
            storage.clone(),
            Some(Arc::new(ParquetPreviewer)),
        )
        .with_row_reader(Arc::new(ParquetPreviewer))
        .with_tables(Arc::new(DeltaTables {
            metastore: Arc::clone(&metastore),
            storage: storage.clone(),
        }));
        let state = match engine {
            Some(make) => {
                let (engine, port) = make(&config, Arc::clone(&metastore), storage.clone());
                state.with_query_engine(engine, port)
            }
            None => state,
        };
        // Uploads are processed as they arrive, as `lakeport serve` does on a local disk.
        let early = (config.ingest.early_processing && storage.is_local()).then(|| {
            lakeport_jobs::EarlyProcessing::new(
                Arc::clone(&metastore),
                storage.clone(),
                config.work_dir(),
                config.ingest.clone(),
            )
        });
        let state = match &early {
            Some(early) => state.with_upload_watcher(Arc::new(early.clone())),
            None => state,
        };
        let jobs = lakeport_jobs::JobContext {
            metastore: Arc::clone(&metastore),
            storage: storage.clone(),
            work_dir: config.work_dir(),
            config: config.ingest.clone(),
            stream: config.stream.clone(),
            worker_id: "test-worker".to_owned(),
            tables: lakeport_jobs::TableCache::new(),
            early,
        };
        let runner = lakeport_jobs::Runner::new(jobs.clone());
        Self {
            app: app(state.clone()),
            state,
            config,
            runner,
            jobs,
            storage,
            metastore,
            _remote: remote,
            dir,
        }
    }

    /// Returns a stored object's bytes.
    pub async fn object_bytes(&self, key: &lakeport_storage::Key) -> Vec<u8> {
        use futures::TryStreamExt;
        let stream = self.storage.get_stream(key, None).await.unwrap();
        let chunks: Vec<_> = stream.try_collect().await.unwrap();
        chunks.concat()
    }

    /// Whether the app's object storage is a local directory (not an S3 server).
    pub fn storage_is_local(&self) -> bool {
        self.storage.is_local()
    }

    /// How many early runs of uploads were started.
    pub fn early_runs_started(&self) -> u64 {
        self.jobs
            .early
            .as_ref()
            .map_or(0, lakeport_jobs::EarlyProcessing::started)
    }

    /// Waits (at most 10 s) until no early run of an upload is in progress.
    pub async fn wait_for_early_runs(&self) {
        let Some(early) = &self.jobs.early else {
            return;
        };
        for _ in 0..1000 {
            if early.running() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("an early run is still in progress after 10 s");
    }

    /// How many batches used the output of their upload's early run.
    pub fn early_runs_taken(&self) -> u64 {
        self.jobs
            .early
            .as_ref()
            .map_or(0, lakeport_jobs::EarlyProcessing::taken)
    }

    /// Runs queued jobs until none is runnable; returns how many ran.
    pub async fn run_jobs(&self) -> usize {
        self.runner.run_until_idle().await.unwrap()
    }

    /// Returns another worker on the same metastore and storage, named `worker_id` in job
    /// leases (tests run several at once). It has its own table cache, as a worker of
    /// another node would.
    pub fn worker(&self, worker_id: &str) -> lakeport_jobs::Runner {
        lakeport_jobs::Runner::new(lakeport_jobs::JobContext {
            worker_id: worker_id.to_owned(),
            tables: lakeport_jobs::TableCache::new(),
            ..self.jobs.clone()
        })
    }

    /// Seals every open stream segment and runs jobs until none is runnable.
    pub async fn flush_streams(&self) -> usize {
        self.runner.flush_streams().await.unwrap()
    }

    /// Runs the worker's diagnostics retention sweep once; returns how many batches it swept.
    pub async fn expire_diagnostics(&self) -> usize {
        self.runner.expire_diagnostics().await.unwrap()
    }

    /// Returns the API router (a clone; it shares the app's state), for services that call
    /// it in-process, as the console does.
    pub fn api(&self) -> App {
        self.app.clone()
    }

    /// Returns the state the handlers share.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Returns the configuration the app was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the object storage.
    pub fn storage(&self) -> &lakeport_storage::Storage {
        &self.storage
    }

    /// Returns the metastore.
    pub fn metastore(&self) -> &Arc<dyn lakeport_metastore::Metastore> {
        &self.metastore
    }

    /// Returns the data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Returns the router's `Debug` rendering, which names every route path (the
    /// OpenAPI test reads the served paths from it).
    pub fn router_debug(&self) -> String {
        format!("{:?}", self.app)
    }

    /// A request with the full set of AEP headers for org A, sandbox prod.
    pub fn call(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            app: self,
            method,
            path: path.to_owned(),
            headers: vec![
                ("authorization".into(), format!("Bearer {TOKEN}")),
                ("x-api-key".into(), API_KEY.into()),
                ("x-gw-ims-org-id".into(), ORG_A.into()),
                ("x-sandbox-name".into(), "prod".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: None,
            body_bytes: None,
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.call(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.call(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Call<'_> {
        self.call(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> Call<'_> {
        self.call(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.call(Method::DELETE, path)
    }

    /// Creates a dataset in org A / prod and returns its id.
    pub async fn create_dataset(&self, body: Value) -> String {
        self.create_dataset_in(ORG_A, "prod", body).await
    }

    pub async fn create_dataset_in(&self, org: &str, sandbox: &str, body: Value) -> String {
        let reply = self
            .post(CATALOG_DATASETS)
            .tenant(org, sandbox)
            .json(body)
            .send()
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reference_id(&reply.body)
    }

    /// Creates a batch through the import API and returns the batch object.
    pub async fn create_batch(&self, body: Value) -> Value {
        let reply = self.post(IMPORT_BATCHES).json(body).send().await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.body
    }
}

pub const CATALOG_DATASETS: &str = "/data/foundation/catalog/dataSets";
pub const CATALOG_BATCHES: &str = "/data/foundation/catalog/batches";
pub const IMPORT_BATCHES: &str = "/data/foundation/import/batches";
pub const FLOW: &str = "/data/foundation/flowservice";

/// Returns the id of a reference array `["@/dataSets/<id>"]`.
pub fn reference_id(body: &Value) -> String {
    let reference = body[0]
        .as_str()
        .unwrap_or_else(|| panic!("not a reference array: {body}"));
    reference.rsplit('/').next().unwrap().to_owned()
}

/// Percent-encodes the characters a URI may not hold (`>`, `<`, `^`, …) so tests can write
/// query expressions as a client types them.
fn escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for ch in path.chars() {
        match ch {
            ' ' | '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}' => {
                out.push_str(&format!("%{:02X}", ch as u32));
            }
            _ => out.push(ch),
        }
    }
    out
}

pub const REGISTRY: &str = "/data/foundation/schemaregistry";
pub const XED: &str = "application/vnd.adobe.xed+json; version=1";
pub const XED_FULL: &str = "application/vnd.adobe.xed-full+json; version=1";
pub const XED_ID: &str = "application/vnd.adobe.xed-id+json";

/// The tenant id the registry derives for `ORG_A`.
pub const TENANT_A: &str = "a1b2c3d4e5f6a7b8c9d0e1f2";

impl TestApp {
    /// Creates a field group with loyalty fields under `_<tenant>` and a profile schema
    /// using it, in org A / prod; returns the schema `$id`.
    pub async fn create_profile_schema(&self, title: &str) -> String {
        let group = self
            .post(&format!("{REGISTRY}/tenant/fieldgroups"))
            .json(serde_json::json!({
                "title": format!("{title} fields"), "type": "object",
                "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
                "definitions": {"loyalty": {"properties": {format!("_{TENANT_A}"): {"type": "object", "properties": {
                    "memberId": {"type": "string", "pattern": "^M-[0-9]{6}$"},
                    "points": {"type": "integer", "minimum": 0, "meta:xdmType": "int"}}}}}},
                "allOf": [{"$ref": "#/definitions/loyalty"}]
            }))
            .send()
            .await;
        assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
        let schema = self
            .post(&format!("{REGISTRY}/tenant/schemas"))
            .json(serde_json::json!({
                "title": title, "type": "object",
                "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"},
                          {"$ref": group.body["$id"], "type": "object", "meta:xdmType": "object"}]
            }))
            .send()
            .await;
        assert_eq!(schema.status, StatusCode::CREATED, "{}", schema.text);
        schema.body["$id"].as_str().unwrap().to_owned()
    }
}

/// The Arrow-based previewer, as the binary wires it.
struct ParquetPreviewer;

impl lakeport_api::ingest::Previewer for ParquetPreviewer {
    fn preview(
        &self,
        name: &str,
        input: lakeport_api::ingest::PreviewInput,
        request: &lakeport_api::ingest::PreviewRequest,
    ) -> Result<lakeport_api::ingest::PreviewTable, String> {
        use lakeport_api::ingest::PreviewInput;
        let format = lakeport_parquet::FileFormat::from_input_format(&request.input_format, None)?;
        let limits = lakeport_parquet::PreviewLimits {
            rows: request.rows,
            max_row_bytes: request.max_row_bytes,
            max_bytes: request.max_bytes,
        };
        let preview = match input {
            PreviewInput::File(file) => {
                lakeport_parquet::preview(name, file.path(), &format, limits)
            }
            PreviewInput::Stream(reader) => {
                lakeport_parquet::preview_stream(name, Box::new(reader), &format, limits)
            }
        }
        .map_err(|err| err.to_string())?;
        Ok(lakeport_api::ingest::PreviewTable {
            columns: preview.columns,
            rows: preview.rows,
        })
    }
}

impl lakeport_api::access::RowReader for ParquetPreviewer {
    fn rows(&self, name: &str, file: &std::path::Path, limit: usize) -> Result<Vec<Value>, String> {
        lakeport_parquet::parquet_rows(name, file, limit).map_err(|err| err.to_string())
    }
}

pub use arrow_array;
pub use arrow_schema;
pub use parquet;

/// Reads a Parquet file back as JSON rows (dates as `YYYY-MM-DD`, timestamps as RFC 3339).
pub fn read_parquet(path: &std::path::Path) -> Vec<Value> {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let mut buffer = Vec::new();
    {
        let mut writer = arrow_json::ArrayWriter::new(&mut buffer);
        for batch in reader {
            writer.write(&without_time_zones(&batch.unwrap())).unwrap();
        }
        writer.finish().unwrap();
    }
    if buffer.is_empty() {
        return Vec::new();
    }
    serde_json::from_slice(&buffer).unwrap()
}

/// Drops the time-zone tag of every timestamp column, nested ones included, so arrow-json
/// renders them without a time-zone database (arrow is built without `chrono-tz`, so a cast
/// from a named zone such as "UTC" fails). Timestamps are stored as UTC instants whatever
/// the tag, so the values are unchanged.
fn without_time_zones(batch: &arrow_array::RecordBatch) -> arrow_array::RecordBatch {
    use arrow_schema::{Field, Schema};
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let data = zone_less_data(column.to_data());
        fields.push(Field::new(
            field.name(),
            data.data_type().clone(),
            field.is_nullable(),
        ));
        columns.push(arrow_array::make_array(data));
    }
    arrow_array::RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns).unwrap()
}

fn zone_less_data(data: arrow_data::ArrayData) -> arrow_data::ArrayData {
    let data_type = zone_less_type(data.data_type());
    let children = data
        .child_data()
        .iter()
        .cloned()
        .map(zone_less_data)
        .collect();
    data.into_builder()
        .data_type(data_type)
        .child_data(children)
        .build()
        .unwrap()
}

fn zone_less_type(data_type: &arrow_schema::DataType) -> arrow_schema::DataType {
    use arrow_schema::{DataType, Field};
    let field = |field: &Field| {
        std::sync::Arc::new(Field::new(
            field.name(),
            zone_less_type(field.data_type()),
            field.is_nullable(),
        ))
    };
    match data_type {
        DataType::Timestamp(unit, Some(_)) => DataType::Timestamp(*unit, None),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(|f| field(f)).collect()),
        DataType::List(item) => DataType::List(field(item)),
        DataType::LargeList(item) => DataType::LargeList(field(item)),
        DataType::Map(entries, sorted) => DataType::Map(field(entries), *sorted),
        other => other.clone(),
    }
}

/// Returns the Arrow schema of a Parquet file.
pub fn parquet_schema(path: &std::path::Path) -> arrow_schema::SchemaRef {
    let file = std::fs::File::open(path).unwrap();
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .schema()
        .clone()
}

impl TestApp {
    /// Creates an experience-event schema with a tenant object of typical fields and a
    /// JSON dataset on it; returns the dataset id.
    /// Adds the property `name` (of JSON Schema `definition`) to the tenant object of the
    /// field group behind an event dataset made by
    /// [`create_event_dataset`](Self::create_event_dataset) (an additive change), asserting
    /// that the registry accepts it.
    pub async fn add_event_field(&self, dataset: &str, name: &str, definition: serde_json::Value) {
        let encode = |id: &str| id.replace(':', "%3A").replace('/', "%2F");
        let doc = self
            .get(&format!("{CATALOG_DATASETS}/{dataset}"))
            .send()
            .await;
        assert_eq!(doc.status, StatusCode::OK, "{}", doc.text);
        let schema_id = doc.body[dataset]["schemaRef"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let schema = self
            .get(&format!("{REGISTRY}/tenant/schemas/{}", encode(&schema_id)))
            .header("accept", XED)
            .send()
            .await;
        assert_eq!(schema.status, StatusCode::OK, "{}", schema.text);
        let group_id = schema.body["allOf"][1]["$ref"].as_str().unwrap().to_owned();
        let path = format!("/definitions/d/properties/_{TENANT_A}/properties/{name}");
        let added = self
            .patch(&format!(
                "{REGISTRY}/tenant/fieldgroups/{}",
                encode(&group_id)
            ))
            .json(serde_json::json!([{"op": "add", "path": path, "value": definition}]))
            .send()
            .await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.text);
    }

    pub async fn create_event_dataset(&self, name: &str) -> String {
        let namespace = format!("_{TENANT_A}");
        let group = self
            .post(&format!("{REGISTRY}/tenant/fieldgroups"))
            .json(serde_json::json!({
                "title": format!("{name} fields"), "type": "object",
                "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/experienceevent"],
                "definitions": {"d": {"properties": {namespace: {"type": "object", "required": ["memberId"], "properties": {
                    "memberId": {"type": "string", "pattern": "^M-[0-9]{3}$"},
                    "tier": {"type": "string", "enum": ["silver", "gold"]},
                    "points": {"type": "integer", "minimum": 0, "meta:xdmType": "int"},
                    "joined": {"type": "string", "format": "date"},
                    "score": {"type": "number"},
                    "optIn": {"type": "boolean"},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "attributes": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "string"}},
                    "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}}}}}}},
                "allOf": [{"$ref": "#/definitions/d"}]
            }))
            .send()
            .await;
        assert_eq!(group.status, StatusCode::CREATED, "{}", group.text);
        let schema = self
            .post(&format!("{REGISTRY}/tenant/schemas"))
            .json(serde_json::json!({"title": format!("{name} schema"), "type": "object", "allOf": [
                {"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}, {"$ref": group.body["$id"]}]}))
            .send()
            .await;
        assert_eq!(schema.status, StatusCode::CREATED, "{}", schema.text);
        self.create_dataset(serde_json::json!({"name": name, "fileDescription": {"format": "json"},
            "schemaRef": {"id": schema.body["$id"], "contentType": "application/vnd.adobe.xed+json;version=1"}}))
            .await
    }

    /// Creates the streaming chain of Adobe's HTTP API tutorial for a dataset in org A /
    /// prod — base connection, source connection, target connection, flow — and returns
    /// (inlet id, flow id).
    pub async fn create_streaming_flow(
        &self,
        dataset: &str,
        base_params: Value,
    ) -> (String, String) {
        let created = |reply: &Reply| -> String {
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
            reply.body["id"].as_str().unwrap().to_owned()
        };
        let base = created(
            &self
                .post(&format!("{FLOW}/connections"))
                .json(serde_json::json!({
            "name": "inlet", "providerId": "521eee4d-8cbe-4906-bb48-fb6bd4450033",
            "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
            "auth": {"specName": "Streaming Connection", "params": base_params}}))
                .send()
                .await,
        );
        let connection = self.get(&format!("{FLOW}/connections/{base}")).send().await;
        let inlet = connection.body["items"][0]["auth"]["params"]["inletId"]
            .as_str()
            .unwrap()
            .to_owned();
        let source = created(
            &self
                .post(&format!("{FLOW}/sourceConnections"))
                .json(serde_json::json!({
            "name": "source", "baseConnectionId": base, "data": {"format": "json"},
            "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}}))
                .send()
                .await,
        );
        let dataset_doc = self
            .get(&format!("{CATALOG_DATASETS}/{dataset}"))
            .send()
            .await;
        let schema = dataset_doc.body[dataset]["schemaRef"]["id"].clone();
        let target = created(&self.post(&format!("{FLOW}/targetConnections")).json(serde_json::json!({
            "name": "target", "data": {"format": "json", "schema": {"id": schema, "version": "application/vnd.adobe.xed-full+json;version=1.0"}},
            "params": {"dataSetId": dataset},
            "connectionSpec": {"id": "c604ff05-7f1a-43c0-8e18-33bf874cb11c", "version": "1.0"}})).send().await);
        let flow = created(&self.post(&format!("{FLOW}/flows")).json(serde_json::json!({
            "name": "flow", "flowSpec": {"id": "d8a6f005-7eaf-4153-983e-e8574508b877", "version": "1.0"},
            "sourceConnectionIds": [source], "targetConnectionIds": [target],
            "transformations": [], "scheduleParams": {}})).send().await);
        (inlet, flow)
    }

    /// Uploads bytes with a single PUT and asserts 200.
    pub async fn upload(&self, batch: &str, dataset: &str, path: &str, bytes: &[u8]) {
        let reply = self.upload_raw(batch, dataset, path, bytes).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    }

    /// Uploads bytes with a single PUT and returns the answer.
    pub async fn upload_raw(&self, batch: &str, dataset: &str, path: &str, bytes: &[u8]) -> Reply {
        let mut call = self
            .put(&format!(
                "{IMPORT_BATCHES}/{batch}/datasets/{dataset}/files/{path}"
            ))
            .header("content-type", "application/octet-stream");
        call.body_bytes = Some(bytes.to_vec());
        call.send().await
    }

    /// Sends a batch signal and returns the answer.
    pub async fn signal(&self, batch: &str, action: &str) -> Reply {
        self.post(&format!("{IMPORT_BATCHES}/{batch}?action={action}"))
            .send()
            .await
    }

    /// Returns a batch as the Catalog shows it.
    pub async fn batch(&self, batch: &str) -> Value {
        let reply = self.get(&format!("{CATALOG_BATCHES}/{batch}")).send().await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        reply.body[batch].clone()
    }

    /// Reads every promoted row of a batch back from its Parquet files, in file order.
    pub async fn promoted_rows(&self, batch: &str) -> Vec<Value> {
        let tenant = lakeport_domain::tenant::Tenant::parse(ORG_A, "prod").unwrap();
        let files = self
            .metastore
            .batch_dataset_files(&tenant, &BatchId::from(batch))
            .await
            .unwrap();
        let mut rows = Vec::new();
        for file in files {
            let key = lakeport_storage::Key::from(file.location.as_str());
            let file = self
                .storage
                .readable_file(&key, &self.dir.path().join("fetched"))
                .await
                .unwrap();
            rows.extend(read_parquet(file.path()));
        }
        rows
    }
}

/// The datasets' Delta tables behind the test router, as the binary wires them.
struct DeltaTables {
    metastore: Arc<dyn lakeport_metastore::Metastore>,
    storage: lakeport_storage::Storage,
}

#[async_trait::async_trait]
impl lakeport_api::Tables for DeltaTables {
    async fn create(
        &self,
        tenant: &lakeport_domain::tenant::Tenant,
        dataset_id: &str,
        dataset: &lakeport_domain::Doc,
    ) -> Result<Option<u64>, String> {
        lakeport_jobs::tables::create_table(
            self.metastore.as_ref(),
            &self.storage,
            tenant,
            dataset_id,
            dataset,
        )
        .await
        .map_err(|err| err.to_string())
    }

    async fn delete(
        &self,
        tenant: &lakeport_domain::tenant::Tenant,
        dataset_id: &str,
    ) -> Result<u64, String> {
        lakeport_jobs::tables::delete_table(&self.storage, tenant, dataset_id)
            .await
            .map_err(|err| err.to_string())
    }

    async fn files(
        &self,
        tenant: &lakeport_domain::tenant::Tenant,
        dataset_id: &str,
        version: Option<u64>,
    ) -> Result<Option<(u64, Vec<lakeport_storage::Key>)>, String> {
        lakeport_jobs::tables::table_files(&self.storage, tenant, dataset_id, version)
            .await
            .map_err(|err| err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        Array, ArrayRef, RecordBatch, StructArray, TimestampMicrosecondArray,
        TimestampMillisecondArray,
    };
    use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};

    /// pyarrow and Spark tag timestamp columns "UTC" (a named zone, not an offset). The
    /// helper only untagged top-level columns, so a "UTC" timestamp inside a struct failed
    /// with "only offset based timezones supported".
    #[test]
    fn read_parquet_renders_utc_tagged_timestamps_top_level_and_nested() {
        let instant_us = 1_704_164_645_000_000_i64; // 2024-01-02T03:04:05Z
        let top: ArrayRef =
            Arc::new(TimestampMicrosecondArray::from(vec![instant_us]).with_timezone("UTC"));
        let inner: ArrayRef =
            Arc::new(TimestampMillisecondArray::from(vec![instant_us / 1000]).with_timezone("UTC"));
        let inner_field = Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            true,
        );
        let nested: ArrayRef = Arc::new(StructArray::new(
            Fields::from(vec![inner_field.clone()]),
            vec![inner],
            None,
        ));
        let schema = Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("s", DataType::Struct(Fields::from(vec![inner_field])), true),
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![top, nested]).unwrap();
        assert_eq!(batch.column(1).len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("utc.parquet");
        let mut writer = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let rows = super::read_parquet(&path);
        assert_eq!(rows.len(), 1);
        assert!(
            rows[0]["ts"]
                .as_str()
                .unwrap()
                .starts_with("2024-01-02T03:04:05"),
            "{rows:?}"
        );
        assert!(
            rows[0]["s"]["at"]
                .as_str()
                .unwrap()
                .starts_with("2024-01-02T03:04:05"),
            "{rows:?}"
        );
    }
}
