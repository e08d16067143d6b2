//! The HTTP API: axum routers for the AEP services Lakeport speaks, shaped exactly like
//! Adobe's (`/data/foundation/catalog`, `/data/foundation/import`,
//! `/data/foundation/export`, `/data/foundation/schemaregistry`).
//!
//! Handlers are thin: they read the request, call one `domain` function or one
//! `Metastore` method, and render. This crate may depend on `domain`, `metastore` and
//! `config`; it must never depend on Arrow/Parquet or the job runner.

pub mod access;
pub mod catalog;
pub mod collection;
pub mod context;
pub mod error;
pub mod extract;
pub mod flow;
pub mod ingest;
mod inlets;
pub mod openapi;
pub mod query;
pub mod registry;

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakeport_config::Config;
use lakeport_domain::query::PageLimits;
use lakeport_metastore::Metastore;
use serde_json::json;
use tower::Layer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate};
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

use crate::context::{Auth, authenticate, render_problems};
use crate::error::ApiError;

/// Everything handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    metastore: Arc<dyn Metastore>,
    auth: Auth,
    public_origin: Option<String>,
    limits: PageLimits,
    lake_root: String,
    /// Where previews copy objects of remote storage to read them.
    scratch_dir: std::path::PathBuf,
    tenant_ids: std::collections::BTreeMap<String, String>,
    storage: lakeport_storage::Storage,
    ingest: lakeport_config::IngestConfig,
    stream: lakeport_config::StreamConfig,
    previewer: Option<Arc<dyn ingest::Previewer>>,
    /// Reads single-`PUT` uploads while they are stored (the workers' early runs).
    upload_watcher: Option<Arc<dyn lakeport_storage::UploadWatcher>>,
    row_reader: Option<Arc<dyn access::RowReader>>,
    tables: Option<Arc<dyn Tables>>,
    inlet_cache: Arc<inlets::InletCache>,
    appender: Arc<inlets::Appender>,
    query_config: lakeport_config::QueryConfig,
    query: Option<query::QueryWiring>,
}

/// The datasets' Delta tables (spec §12), which the binary wires in so that this crate
/// never compiles delta-rs or Arrow.
#[async_trait::async_trait]
pub trait Tables: Send + Sync {
    /// Creates the empty table of a new dataset (version 0) and returns its version; None
    /// when the dataset has no usable schema yet (its first promotion creates the table).
    async fn create(
        &self,
        tenant: &lakeport_domain::tenant::Tenant,
        dataset_id: &str,
        dataset: &lakeport_domain::Doc,
    ) -> Result<Option<u64>, String>;

    /// Deletes a dataset's table, its log and files; returns how many objects went.
    async fn delete(
        &self,
        tenant: &lakeport_domain::tenant::Tenant,
        dataset_id: &str,
    ) -> Result<u64, String>;

    /// Returns the version read and the keys of the files live at `version` (the latest
    /// when None), or None when the table or that version does not exist.
    async fn files(
        &self,
        tenant: &lakeport_domain::tenant::Tenant,
        dataset_id: &str,
        version: Option<u64>,
    ) -> Result<Option<(u64, Vec<lakeport_storage::Key>)>, String>;
}

impl AppState {
    /// Builds the state from the configuration, an opened metastore and object storage.
    pub fn new(
        config: &Config,
        metastore: Arc<dyn Metastore>,
        storage: lakeport_storage::Storage,
        previewer: Option<Arc<dyn ingest::Previewer>>,
    ) -> Self {
        let lake_root = storage.url_of(&lakeport_storage::Key::from("lake"));
        let scratch_dir = config.work_dir().join("api");
        let inlet_cache = Arc::new(inlets::InletCache::new(std::time::Duration::from_millis(
            config.stream.cache_ttl_ms,
        )));
        let appender = Arc::new(inlets::Appender::new(
            Arc::clone(&metastore),
            config.stream.max_queued_requests,
            config.stream.max_queued_bytes,
        ));
        Self(Arc::new(Inner {
            metastore,
            auth: Auth::from_config(&config.auth),
            public_origin: config.server.public_origin.clone(),
            limits: PageLimits {
                default_limit: config.catalog.default_limit,
                max_limit: config.catalog.max_limit,
                reject_over_max: config.catalog.reject_limit_over_max,
            },
            lake_root,
            scratch_dir,
            tenant_ids: config.registry.tenant_ids.clone(),
            storage,
            ingest: config.ingest.clone(),
            stream: config.stream.clone(),
            previewer,
            upload_watcher: None,
            row_reader: None,
            tables: None,
            inlet_cache,
            appender,
            query_config: config.query.clone(),
            query: None,
        }))
    }

    /// Returns the state with the SQL engine behind the Query Service's REST API, and the
    /// port its wire endpoint listens on (`None` when it is off).
    #[must_use]
    pub fn with_query_engine(
        self,
        engine: Arc<dyn query::QueryEngine>,
        wire_port: Option<u16>,
    ) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.query = Some(query::QueryWiring { engine, wire_port });
        Self(Arc::new(inner))
    }

    /// Returns the SQL engine, when the binary wired one in.
    pub fn query(&self) -> Option<&query::QueryWiring> {
        self.0.query.as_ref()
    }

    /// Returns the Query Service settings.
    pub fn query_config(&self) -> &lakeport_config::QueryConfig {
        &self.0.query_config
    }

    /// Returns the state with the Parquet reader behind the Data Access dataset preview.
    #[must_use]
    pub fn with_row_reader(self, reader: Arc<dyn access::RowReader>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.row_reader = Some(reader);
        Self(Arc::new(inner))
    }

    /// Returns the state with something that reads single-`PUT` uploads while they are
    /// stored (the workers' early runs, `ingest.early_processing`).
    #[must_use]
    pub fn with_upload_watcher(self, watcher: Arc<dyn lakeport_storage::UploadWatcher>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.upload_watcher = Some(watcher);
        Self(Arc::new(inner))
    }

    /// Returns what reads uploads while they are stored, when the binary wired it in.
    pub fn upload_watcher(&self) -> Option<&Arc<dyn lakeport_storage::UploadWatcher>> {
        self.0.upload_watcher.as_ref()
    }

    /// Returns the state with the datasets' Delta tables.
    #[must_use]
    pub fn with_tables(self, tables: Arc<dyn Tables>) -> Self {
        let mut inner = Arc::unwrap_or_clone(self.0);
        inner.tables = Some(tables);
        Self(Arc::new(inner))
    }

    /// Returns the datasets' Delta tables, when the binary wired them in.
    pub fn tables(&self) -> Option<&Arc<dyn Tables>> {
        self.0.tables.as_ref()
    }

    /// Returns the Parquet reader of the dataset preview, when the binary wired one in.
    pub fn row_reader(&self) -> Option<&Arc<dyn access::RowReader>> {
        self.0.row_reader.as_ref()
    }

    /// Returns object storage.
    pub fn storage(&self) -> &lakeport_storage::Storage {
        &self.0.storage
    }

    /// Returns the ingestion limits.
    pub fn ingest_config(&self) -> &lakeport_config::IngestConfig {
        &self.0.ingest
    }

    /// Returns the streaming settings.
    pub fn stream_config(&self) -> &lakeport_config::StreamConfig {
        &self.0.stream
    }

    /// Returns the cache of resolved streaming inlets.
    pub(crate) fn inlet_cache(&self) -> &inlets::InletCache {
        &self.0.inlet_cache
    }

    /// Returns the group committer of the streaming inlets.
    pub(crate) fn appender(&self) -> &inlets::Appender {
        &self.0.appender
    }

    /// Returns the upload previewer, when the binary wired one in.
    pub fn previewer(&self) -> Option<&Arc<dyn ingest::Previewer>> {
        self.0.previewer.as_ref()
    }

    /// Returns the metastore.
    pub fn metastore(&self) -> &dyn Metastore {
        self.0.metastore.as_ref()
    }

    /// Returns the accepted credentials.
    pub fn auth(&self) -> &Auth {
        &self.0.auth
    }

    /// Returns the configured public origin, if any.
    pub fn public_origin(&self) -> Option<&str> {
        self.0.public_origin.as_deref()
    }

    /// Returns the Catalog page limits.
    pub fn limits(&self) -> PageLimits {
        self.0.limits
    }

    /// Returns the Schema Registry tenant id of the caller's organization.
    pub fn tenant_id(&self, tenant: &lakeport_domain::tenant::Tenant) -> String {
        self.0
            .tenant_ids
            .get(tenant.org())
            .cloned()
            .unwrap_or_else(|| tenant.default_tenant_id())
    }

    /// Returns the URI under which dataset `basePath`s live.
    pub fn lake_root(&self) -> &str {
        &self.0.lake_root
    }

    /// Returns the directory previews copy remote objects into.
    pub fn scratch_dir(&self) -> &std::path::Path {
        &self.0.scratch_dir
    }
}

/// Opens the object storage the configuration names (`storage.*`).
///
/// # Errors
/// An unsupported URL, a directory that cannot be created or unusable S3 settings.
pub fn open_storage(
    config: &Config,
) -> Result<lakeport_storage::Storage, lakeport_storage::StorageError> {
    let settings = &config.storage;
    lakeport_storage::Storage::open_with(
        &config.storage_url(),
        &lakeport_storage::S3Settings {
            endpoint: settings.endpoint.clone(),
            region: settings.region.clone(),
            access_key_id: settings.access_key_id.clone(),
            secret_access_key: settings
                .secret_access_key
                .as_ref()
                .map(|secret| secret.expose().to_owned()),
            session_token: settings
                .session_token
                .as_ref()
                .map(|token| token.expose().to_owned()),
            virtual_hosted_style: settings.virtual_hosted_style,
            allow_http: settings.allow_http,
        },
    )
}

/// The complete HTTP service: the router with trailing slashes trimmed before routing
/// (real clients send `/import/batches/`, spec §9).
pub type App = NormalizePath<Router>;

/// Builds the complete HTTP service.
pub fn app(state: AppState) -> App {
    let authenticated = from_fn_with_state(state.clone(), authenticate);
    let noting_writes = from_fn_with_state(state.clone(), note_writes);
    // The documents need no credentials, like /health; each is serialized once.
    let full_document = axum::body::Bytes::from_static(openapi::DOCUMENT.as_bytes());
    let mut router = Router::new().route("/health", get(health)).route(
        "/openapi.json",
        get(move || std::future::ready(openapi::respond(full_document.clone()))),
    );
    for root in openapi::API_ROOTS {
        let document = axum::body::Bytes::from(openapi::service_document(root).to_string());
        router = router.route(
            &format!("{root}/openapi.json"),
            get(move || std::future::ready(openapi::respond(document.clone()))),
        );
    }
    let router = router
        .nest(
            "/data/foundation/catalog",
            catalog::routes()
                .route_layer(authenticated.clone())
                .route_layer(noting_writes.clone()),
        )
        .nest(
            "/data/foundation/import",
            ingest::routes().route_layer(authenticated.clone()),
        )
        .nest(
            access::BASE_PATH,
            access::routes().route_layer(authenticated.clone()),
        )
        .nest(
            flow::BASE_PATH,
            flow::routes()
                .route_layer(authenticated.clone())
                .route_layer(noting_writes.clone()),
        )
        .nest(
            query::BASE_PATH,
            query::routes().route_layer(authenticated.clone()),
        )
        .nest(
            "/data/foundation/schemaregistry",
            registry::routes()
                .route_layer(authenticated)
                .route_layer(noting_writes),
        )
        // Inlets check their own credentials (spec §10.4), not the gateway's headers.
        .merge(collection::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(from_fn(render_problems))
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .compress_when(DefaultPredicate::new().and(not_a_download)),
        )
        .with_state(state);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// Empties the inlet cache after a successful write through the Catalog, Schema Registry
/// or Flow Service routes, so that this node's inlets see a deleted dataset, a changed
/// schema or a deleted flow at once (other nodes within `stream.cache_ttl_ms`).
async fn note_writes(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let reads = matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let response = next.run(request).await;
    if !reads && response.status().is_success() {
        state.inlet_cache().invalidate_all();
    }
    response
}

/// Keeps Data Access downloads out of gzip: their `Content-Length` and byte ranges
/// address the stored bytes (spec §4).
fn not_a_download(
    _: StatusCode,
    _: axum::http::Version,
    _: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
) -> bool {
    extensions.get::<access::Uncompressed>().is_none()
}

/// `GET /health`: 200 when the metastore answers, 503 otherwise. Needs no token.
async fn health(State(state): State<AppState>) -> Response {
    match state.metastore().ping().await {
        Ok(()) => Json(json!({"status": "ok"})).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::no_route(uri.path())
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::method_not_allowed(&method, uri.path())
}
