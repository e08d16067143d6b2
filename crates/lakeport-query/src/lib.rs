//! The Query Service's PostgreSQL wire endpoint (spec §11.1): each session logs in with an
//! organization id and an API token, names a sandbox as its database, and runs SQL through
//! its own DataFusion context holding exactly the Delta tables of that org and sandbox.
//!
//! The protocol is pgwire's, the SQL planning, `pg_catalog` and session statements are
//! datafusion-postgres's; this crate decides who logs in and which tables a session sees.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::TableReference;
use datafusion::error::DataFusionError;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_postgres::DfSessionService;
use datafusion_postgres::auth::AuthManager;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::{
    PgCatalogSchemaProvider, PgCatalogStaticTables,
};
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use futures::{Sink, SinkExt as _, StreamExt as _};
use lakeport_api::context::{Auth, InletAuthError};
use lakeport_api::query::SqlError;
use lakeport_config::QueryConfig;
use lakeport_domain::Doc;
use lakeport_domain::catalog;
use lakeport_domain::query::{ListQuery, ObjectKind};
use lakeport_domain::tenant::Tenant;
use lakeport_metastore::Metastore;
use lakeport_storage::Storage;
use pgwire::api::Type;
use pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::FieldInfo;
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::startup::{Authentication, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

mod idents;
mod rest;
mod snapshot;
mod stubs;
mod table;
mod views;

pub use rest::{parse_statement, sqlstate};

/// The catalog a session's tables live in (`datafusion.public.<table>`).
const CATALOG: &str = "datafusion";

/// Datasets read per metastore page while a session's tables are registered.
const DATASET_PAGE: u32 = 100;

/// What the wire endpoint needs from the server: the token rules, the Catalog and the lake.
pub struct QueryService {
    auth: Auth,
    metastore: Arc<dyn Metastore>,
    storage: Storage,
    /// The node's one memory pool and spill directory, shared by every session and REST
    /// query (`query.max_memory_bytes`, `query.max_spill_bytes`).
    runtime: Arc<RuntimeEnv>,
    limits: Limits,
    /// The handler of sessions that have not logged in yet: no tables at all.
    anonymous: Arc<DfSessionService>,
    /// The read-only `qsaccel` tables aepp's InteractiveQuery classes read (spec §11.2).
    stubs: Arc<DfSessionService>,
    /// The tables' latest log states: a login or statement reads only the commits made
    /// since a table was last read, not its whole log.
    logs: lakeport_lake::TableCache,
    /// What every session starts from (pg_catalog's tables and functions), built once.
    template: SessionTemplate,
    /// One permit per logged-in session (`query.max_sessions`).
    sessions: Arc<Semaphore>,
    keys: RandomPidSecretKeyGenerator,
    /// The logged-in sessions by backend pid: the secret key a CancelRequest must bring, and
    /// the signal that ends the session's running statement.
    cancels: Cancels,
}

/// The bounds a wire statement runs under, named as the settings that set them.
#[derive(Debug, Clone, Copy)]
struct Limits {
    statement_timeout: Duration,
    /// `query.tls_required`: sessions without TLS are refused.
    tls_required: bool,
}

impl QueryService {
    /// Builds the service over the server's token rules, metastore and storage, with the
    /// bounds of `config`: logged-in sessions, query memory, spill disk, statement time.
    ///
    /// # Errors
    /// When DataFusion's runtime (memory pool, spill directory) cannot be set up.
    pub fn new(
        auth: Auth,
        metastore: Arc<dyn Metastore>,
        storage: Storage,
        config: &QueryConfig,
    ) -> Result<Self, String> {
        let memory = usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX);
        // The five largest consumers are named when the pool is exhausted.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(memory),
            NonZeroUsize::MIN.saturating_add(4),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_max_temp_directory_size(config.max_spill_bytes)
            .build_arc()
            .map_err(|err| format!("setting up the query runtime: {err}"))?;
        Ok(Self {
            sessions: Arc::new(Semaphore::new(config.max_sessions)),
            auth,
            metastore,
            storage,
            anonymous: Arc::new(DfSessionService::new(Arc::new(
                SessionContext::new_with_config_rt(SessionConfig::new(), Arc::clone(&runtime)),
            ))),
            stubs: Arc::new(DfSessionService::new(Arc::new(stubs::context(&runtime)))),
            template: SessionTemplate::new(&runtime)?,
            logs: lakeport_lake::TableCache::new(),
            keys: RandomPidSecretKeyGenerator::default(),
            cancels: Arc::default(),
            limits: Limits {
                statement_timeout: Duration::from_secs(config.select_timeout_secs),
                tls_required: config.tls_required,
            },
            runtime,
        })
    }

    /// Builds the session of `tenant`: pg_catalog and information_schema over a context that
    /// holds only the tenant's dataset tables (those with a Delta commit).
    async fn session(&self, tenant: &Tenant) -> Result<Session, String> {
        let context = self.template.context()?;
        self.tables()
            .register_tables(&context, tenant, None)
            .await?;
        let names = Arc::new(idents::FieldNames::of(&context).await);
        let context = Arc::new(context);
        Ok(Session {
            handler: Arc::new(DfSessionService::new(Arc::clone(&context))),
            context,
            tenant: tenant.clone(),
            names,
        })
    }

    /// Returns where the tenants' tables come from.
    fn tables(&self) -> Tables {
        Tables {
            metastore: Arc::clone(&self.metastore),
            storage: self.storage.clone(),
            runtime: Arc::clone(&self.runtime),
            logs: self.logs.clone(),
        }
    }
}

/// What a wire session's context starts from, built once per node: decoding pg_catalog's
/// static tables (the Arrow IPC files datafusion-pg-catalog embeds) and registering its
/// functions took most of a login's time when done per session.
struct SessionTemplate {
    /// A state with pg_catalog's functions, table functions and type planner.
    state: datafusion::execution::SessionState,
    static_tables: Arc<PgCatalogStaticTables>,
    auth: Arc<AuthManager>,
}

impl SessionTemplate {
    fn new(runtime: &Arc<RuntimeEnv>) -> Result<Self, String> {
        let context = new_context(runtime);
        let auth = Arc::new(AuthManager::new());
        setup_pg_catalog(&context, CATALOG, Arc::clone(&auth))
            .map_err(|err| format!("setting up pg_catalog: {err}"))?;
        let static_tables = Arc::new(
            PgCatalogStaticTables::try_new()
                .map_err(|err| format!("reading pg_catalog's tables: {err}"))?,
        );
        Ok(Self {
            state: context.state(),
            static_tables,
            auth,
        })
    }

    /// A new context with the template's functions and settings, and catalogs of its own:
    /// an empty `public` schema for the tenant's tables and a `pg_catalog` that lists what
    /// this context holds.
    fn context(&self) -> Result<SessionContext, String> {
        use datafusion::catalog::{
            CatalogProvider as _, CatalogProviderList, MemoryCatalogProvider,
            MemoryCatalogProviderList, MemorySchemaProvider,
        };
        use datafusion::execution::SessionStateBuilder;
        let catalogs: Arc<dyn CatalogProviderList> = Arc::new(MemoryCatalogProviderList::new());
        let catalog = Arc::new(MemoryCatalogProvider::new());
        let pg_catalog = PgCatalogSchemaProvider::try_new(
            Arc::clone(&catalogs),
            Arc::clone(&self.static_tables),
            Arc::clone(&self.auth),
        )
        .map_err(|err| format!("setting up pg_catalog: {err}"))?;
        // Registering a schema in a memory catalog does not fail.
        let _ = catalog.register_schema("public", Arc::new(MemorySchemaProvider::new()));
        let _ = catalog.register_schema("pg_catalog", Arc::new(pg_catalog));
        catalogs.register_catalog(CATALOG.to_owned(), catalog);
        let state = SessionStateBuilder::new_from_existing(self.state.clone())
            .with_catalog_list(catalogs)
            .build();
        Ok(SessionContext::new_with_state(state))
    }
}

/// The table names `sql` reads, without CTE names, as the planner resolves them (unquoted
/// names folded to lower case); `public.<table>` counts as `<table>`.
fn referenced_tables(sql: &str) -> Result<Vec<String>, SqlError> {
    use datafusion::sql::parser::DFParser;
    use datafusion::sql::resolve::resolve_table_references;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
        .map_err(|err| SqlError::new("42601", format!("syntax error: {err}")))?;
    let mut names = Vec::new();
    for statement in &statements {
        let (tables, _ctes) =
            resolve_table_references(statement, true).map_err(|err| rest::df_error(&err))?;
        for table in tables {
            let name = match &table {
                TableReference::Bare { table } => table.to_string(),
                TableReference::Partial { schema, table } if schema.as_ref() == "public" => {
                    table.to_string()
                }
                _ => continue,
            };
            let base = snapshot::base_table(&name).to_owned();
            if !names.contains(&base) {
                names.push(base);
            }
        }
    }
    Ok(names)
}

/// A context with `information_schema`, running in the node's shared query runtime.
fn new_context(runtime: &Arc<RuntimeEnv>) -> SessionContext {
    SessionContext::new_with_config_rt(
        SessionConfig::new().with_information_schema(true),
        Arc::clone(runtime),
    )
}

/// Where the tenants' tables come from: the Catalog's datasets and their Delta tables.
#[derive(Clone)]
struct Tables {
    metastore: Arc<dyn Metastore>,
    storage: Storage,
    runtime: Arc<RuntimeEnv>,
    logs: lakeport_lake::TableCache,
}

impl Tables {
    /// Builds a DataFusion context for one REST statement: the tenant's dataset tables that
    /// `sql` names, and `also` (an INSERT's target); only those tables' Delta logs are read.
    async fn context(
        &self,
        tenant: &Tenant,
        sql: &str,
        also: Option<&str>,
    ) -> Result<SessionContext, SqlError> {
        let mut names = referenced_tables(sql)?;
        names.extend(also.map(str::to_owned));
        let context = new_context(&self.runtime);
        self.register_tables(&context, tenant, Some(&names))
            .await
            .map_err(|reason| SqlError::new("58000", reason))?;
        Ok(context)
    }

    /// Registers the tenant's dataset tables (those with a Delta commit), each under its
    /// `adobe/pqs/table` name; with `only`, just the tables of those names.
    async fn register_tables(
        &self,
        context: &SessionContext,
        tenant: &Tenant,
        only: Option<&[String]>,
    ) -> Result<(), String> {
        if only.is_some_and(<[String]>::is_empty) {
            return Ok(());
        }
        let mut start = 0u64;
        loop {
            let query = ListQuery {
                limit: DATASET_PAGE,
                start,
                order: Vec::new(),
                properties: None,
                filters: Vec::new(),
            };
            let page = self
                .metastore
                .list(tenant, ObjectKind::Dataset, &query)
                .await
                .map_err(|err| format!("listing the datasets: {err}"))?;
            for dataset in &page {
                let wanted = only.is_none_or(|names| {
                    catalog::dataset_table_name(dataset)
                        .is_some_and(|name| names.iter().any(|wanted| wanted == name))
                });
                if wanted {
                    self.register(context, tenant, dataset).await?;
                }
            }
            if page.len() < DATASET_PAGE as usize {
                break;
            }
            start += u64::from(DATASET_PAGE);
        }
        Ok(())
    }

    /// Registers the versioned tables `sql` reads (`<table>@v<N>`, `<table>@b<batch>`, made
    /// by [`snapshot::rewrite`]), each the tenant's dataset table at that version; returns
    /// the names registered.
    ///
    /// # Errors
    /// 42601 when `sql` does not parse; 42P01 for a table that is not the tenant's; 22023
    /// for a batch that is not the table's or was never committed, or a version the table
    /// does not have.
    async fn register_snapshots(
        &self,
        context: &SessionContext,
        tenant: &Tenant,
        sql: &str,
    ) -> Result<Vec<String>, SqlError> {
        use datafusion::sql::parser::DFParser;
        use datafusion::sql::resolve::resolve_table_references;
        use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
        let statements = DFParser::parse_sql_with_dialect(sql, &PostgreSqlDialect {})
            .map_err(|err| SqlError::new("42601", format!("syntax error: {err}")))?;
        let mut registered = Vec::new();
        for statement in &statements {
            let (tables, _) = resolve_table_references(statement, true)
                .map_err(|err| SqlError::new(rest::sqlstate(&err), err.to_string()))?;
            for reference in tables {
                let name = reference.table();
                let Some((table, point)) = snapshot::versioned(name) else {
                    continue;
                };
                if registered.iter().any(|done| done == name)
                    || context
                        .table_exist(TableReference::bare(name))
                        .unwrap_or(false)
                {
                    continue;
                }
                let provider = self.snapshot(tenant, table, &point, context).await?;
                context
                    .register_table(TableReference::bare(name), provider)
                    .map_err(|err| SqlError::new("58000", format!("registering {name}: {err}")))?;
                registered.push(name.to_owned());
            }
        }
        Ok(registered)
    }

    /// Returns the tenant's table `table` at `point` as a DataFusion table.
    async fn snapshot(
        &self,
        tenant: &Tenant,
        table: &str,
        point: &snapshot::Point,
        context: &SessionContext,
    ) -> Result<Arc<dyn datafusion::catalog::TableProvider>, SqlError> {
        let system = |doing: &str, err: &dyn std::fmt::Display| {
            SqlError::new("58000", format!("{doing}: {err}"))
        };
        let params = vec![
            (
                "tags".to_owned(),
                format!("{}:{table}", catalog::TABLE_NAME_TAG),
            ),
            ("limit".to_owned(), "1".to_owned()),
        ];
        let missing = || SqlError::new("42P01", format!("relation \"{table}\" does not exist"));
        let query = ListQuery::parse(ObjectKind::Dataset, &params, Default::default())
            .map_err(|_| missing())?;
        let found = self
            .metastore
            .list(tenant, ObjectKind::Dataset, &query)
            .await
            .map_err(|err| system("looking up the table", &err))?;
        let dataset_id = found
            .first()
            .and_then(catalog::object_id)
            .map(str::to_owned)
            .ok_or_else(missing)?;
        let version = match point {
            snapshot::Point::Version(version) => *version,
            snapshot::Point::Batch(batch_id) => {
                let batch = self
                    .metastore
                    .get(tenant, ObjectKind::Batch, std::slice::from_ref(batch_id))
                    .await
                    .map_err(|err| system("reading the batch", &err))?
                    .into_iter()
                    .next()
                    .filter(|batch| catalog::batch_dataset_id(batch) == Some(dataset_id.as_str()))
                    .ok_or_else(|| {
                        SqlError::new(
                            "22023",
                            format!(
                                "snapshot {batch_id}: no batch of table \"{table}\" has that id"
                            ),
                        )
                    })?;
                batch
                    .get("tableVersion")
                    .and_then(serde_json::Value::as_u64)
                    .ok_or_else(|| {
                        SqlError::new(
                            "22023",
                            format!("snapshot {batch_id}: the batch was never committed to table \"{table}\" (only successful batches are)"),
                        )
                    })?
            }
        };
        let root = lakeport_lake::dataset_root(tenant.org(), tenant.sandbox(), &dataset_id);
        let lake = lakeport_lake::Table::open(&self.storage, &root)
            .map_err(|err| system("opening the table", &err))?;
        let delta = lake
            .delta_table_at(version)
            .await
            .map_err(|err| {
                SqlError::new(
                    "22023",
                    format!("snapshot {version} of table \"{table}\" cannot be read: {err}"),
                )
            })?
            .ok_or_else(|| {
                SqlError::new(
                    "22023",
                    format!("table \"{table}\" has no version {version}"),
                )
            })?;
        table::provider(&delta, &context.state())
            .await
            .map_err(|err| system("reading the table", &err))
    }

    /// Registers one dataset's Delta table under its `adobe/pqs/table` name; a dataset without
    /// a name or without a commit yet is left out.
    async fn register(
        &self,
        context: &SessionContext,
        tenant: &Tenant,
        dataset: &Doc,
    ) -> Result<(), String> {
        let Some(id) = catalog::object_id(dataset) else {
            return Ok(());
        };
        let Some(name) = catalog::dataset_table_name(dataset) else {
            return Ok(());
        };
        let root = lakeport_lake::dataset_root(tenant.org(), tenant.sandbox(), id);
        let table = lakeport_lake::Table::open(&self.storage, &root)
            .map_err(|err| format!("opening dataset {id}: {err}"))?
            .with_cache(&self.logs);
        let Some(delta) = table
            .delta_table()
            .await
            .map_err(|err| format!("reading dataset {id}: {err}"))?
        else {
            return Ok(());
        };
        let provider = table::provider(&delta, &context.state())
            .await
            .map_err(|err| format!("reading dataset {id}: {err}"))?;
        context
            .register_table(name, provider)
            .map_err(|err| format!("registering table {name}: {err}"))?;
        Ok(())
    }
}

/// What the wire endpoint negotiates TLS with.
pub type TlsAcceptor = pgwire::tokio::TlsAcceptor;

/// Builds the wire endpoint's TLS from `query.tls_cert` (a PEM certificate chain) and
/// `query.tls_key` (its PEM private key), with rustls's safe defaults (TLS 1.2 and 1.3) and
/// PostgreSQL's ALPN name for clients that open with TLS directly.
///
/// # Errors
/// A file cannot be read, holds no PEM certificate or key, or the key is not the
/// certificate's.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &std::path::Path, setting: &str| {
        std::fs::read(path).map_err(|err| format!("{setting} {}: {err}", path.display()))
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(&read(cert, "query.tls_cert")?)
            .collect::<Result<_, _>>()
            .map_err(|err| {
                format!(
                    "query.tls_cert {}: not a PEM certificate chain: {err}",
                    cert.display()
                )
            })?;
    if chain.is_empty() {
        return Err(format!(
            "query.tls_cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            cert.display()
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&read(key, "query.tls_key")?).map_err(|err| {
        format!(
            "query.tls_key {}: not a PEM private key: {err}",
            key.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|err| format!("setting up TLS: {err}"))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|err| {
        format!("query.tls_cert and query.tls_key do not make a usable certificate: {err}")
    })?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Binds the wire endpoint's listener.
///
/// # Errors
/// The address cannot be bound.
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Accepts wire sessions until `stop` completes, offering TLS when `tls` is set; each
/// session is served on its own task with its own handlers, dropped (with its tables) when
/// the connection ends.
pub async fn serve(
    listener: TcpListener,
    service: Arc<QueryService>,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = ()> + Send,
) {
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((socket, peer)) => {
                let handlers = Arc::new(Connection::new(Arc::clone(&service)));
                let tls = tls.clone();
                tokio::spawn(async move {
                    if let Err(err) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                        tracing::debug!(%peer, error = %err, "wire session ended with an error");
                    }
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "accepting a wire session failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// A logged-in session: its statements' handler over its own context, and its tenant.
struct Session {
    handler: Arc<DfSessionService>,
    context: Arc<SessionContext>,
    tenant: Tenant,
    /// The session's tables' field names, for statements that name them in another case.
    names: Arc<idents::FieldNames>,
}

/// The logged-in sessions by backend pid: secret key and cancel signal.
type Cancels = Arc<Mutex<HashMap<i32, (SecretKey, watch::Sender<u64>)>>>;

/// A logged-in session's place in [`QueryService::cancels`], left when the connection ends.
struct Cancellable {
    pid: i32,
    cancels: Cancels,
    signal: watch::Receiver<u64>,
}

impl Cancellable {
    fn register(service: &QueryService, pid: i32, secret: SecretKey) -> Self {
        let (sender, signal) = watch::channel(0);
        let mut cancels = service
            .cancels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        cancels.insert(pid, (secret, sender));
        Self {
            pid,
            cancels: Arc::clone(&service.cancels),
            signal,
        }
    }
}

impl Drop for Cancellable {
    fn drop(&mut self) {
        let mut cancels = self
            .cancels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        cancels.remove(&self.pid);
    }
}

/// Answers CancelRequest (psql's Ctrl-C, `cancel_query` of drivers): the session with that
/// pid and secret key ends its running statement with 57014; anything else is ignored, as
/// PostgreSQL does.
struct Canceller {
    service: Arc<QueryService>,
}

#[async_trait]
impl CancelHandler for Canceller {
    async fn on_cancel_request(&self, request: CancelRequest) {
        let cancels = self
            .service
            .cancels
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        match cancels.get(&request.pid) {
            // By value: the cancel's own connection may decode a 4-byte key as bytes.
            Some((secret, signal)) if secret.eq_value(&request.secret_key) => {
                signal.send_modify(|count| *count += 1);
                tracing::info!(
                    pid = request.pid,
                    "a wire statement was cancelled by its client"
                );
            }
            _ => tracing::debug!(pid = request.pid, "a CancelRequest matched no session"),
        }
    }
}

/// One connection's handlers: its login and, once logged in, its session.
struct Connection {
    startup: Arc<Login>,
    queries: Arc<Queries>,
    canceller: Arc<Canceller>,
}

impl Connection {
    fn new(service: Arc<QueryService>) -> Self {
        let session = Arc::new(OnceLock::new());
        let cancellable = Arc::new(OnceLock::new());
        Self {
            startup: Arc::new(Login {
                service: Arc::clone(&service),
                session: Arc::clone(&session),
                cancellable: Arc::clone(&cancellable),
                permit: OnceLock::new(),
            }),
            canceller: Arc::new(Canceller {
                service: Arc::clone(&service),
            }),
            queries: Arc::new(Queries {
                service,
                session,
                cancellable,
            }),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.canceller)
    }
}

fn refusal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// Cleartext-password login: user = org id, password = an API token for that org, database
/// = `<sandbox>:all` or `<sandbox>` (spec §11.1).
struct Login {
    service: Arc<QueryService>,
    session: Arc<OnceLock<Session>>,
    cancellable: Arc<OnceLock<Cancellable>>,
    /// The session's place under `query.max_sessions`, freed with the connection.
    permit: OnceLock<OwnedSemaphorePermit>,
}

impl Login {
    async fn log_in(
        &self,
        user: Option<&str>,
        database: Option<&str>,
        password: &str,
    ) -> PgWireResult<Session> {
        let org = user.unwrap_or_default();
        match self.service.auth.check_token(password, org) {
            Ok(()) => {}
            Err(InletAuthError::Invalid) => {
                return Err(refusal(
                    "28P01",
                    format!(
                        "password authentication failed for user \"{org}\": the password must be an API token accepted by this server"
                    ),
                ));
            }
            Err(InletAuthError::NotEntitled) => {
                return Err(refusal(
                    "28000",
                    format!("the token is not entitled to organization \"{org}\""),
                ));
            }
        }
        let permit = Arc::clone(&self.service.sessions)
            .try_acquire_owned()
            .map_err(|_| {
                refusal(
                    "53300",
                    "Session Limit Reached: the server holds query.max_sessions sessions; close one or retry later".to_owned(),
                )
            })?;
        let _ = self.permit.set(permit);
        let database = database.unwrap_or_default();
        let sandbox = database.strip_suffix(":all").unwrap_or(database);
        let tenant = Tenant::parse(org, sandbox).map_err(|err| {
            refusal(
                "3D000",
                format!("database \"{database}\" does not exist: name a sandbox as <sandbox>:all, e.g. prod:all ({err})"),
            )
        })?;
        self.service.session(&tenant).await.map_err(|reason| {
            tracing::error!(org = %tenant.org(), sandbox = %tenant.sandbox(), %reason, "a wire session could not be set up");
            refusal(
                "58000",
                format!("the session's tables could not be read: {reason}"),
            )
        })
    }
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.service.limits.tls_required && !client.is_secure() {
                    return Err(refusal(
                        "28000",
                        "SSL is required: connect with sslmode=require (this server sets query.tls_required)".to_owned(),
                    ));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let login = LoginInfo::from_client_info(client);
                let (user, database) = (
                    login.user().map(str::to_owned),
                    login.database().map(str::to_owned),
                );
                let session = self
                    .log_in(user.as_deref(), database.as_deref(), &password.password)
                    .await?;
                let _ = self.session.set(session);
                let (pid, secret) = self.service.keys.generate(client);
                let _ =
                    self.cancellable
                        .set(Cancellable::register(&self.service, pid, secret.clone()));
                client.set_pid_and_secret_key(pid, secret);
                let mut parameters = DefaultServerParameterProvider::default();
                parameters.server_version = "14.0".to_owned();
                finish_authentication(client, &parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// Runs a logged-in session's statements through its own DataFusion context.
struct Queries {
    service: Arc<QueryService>,
    session: Arc<OnceLock<Session>>,
    cancellable: Arc<OnceLock<Cancellable>>,
}

impl Queries {
    /// The session's cancel signal, as of now: only a cancel sent from here on counts.
    fn cancel_signal(&self) -> Option<watch::Receiver<u64>> {
        self.cancellable.get().map(|cancellable| {
            let mut signal = cancellable.signal.clone();
            signal.mark_unchanged();
            signal
        })
    }

    fn current(&self) -> &Arc<DfSessionService> {
        self.session
            .get()
            .map_or(&self.service.anonymous, |session| &session.handler)
    }
}

impl Limits {
    /// Runs one statement of a session: its planning and every row it streams must be done
    /// by `query.select_timeout_secs` (57014 after), and DataFusion's errors get their
    /// SQLSTATE (pgwire would answer XX000 for all of them).
    async fn run<T>(
        self,
        cancel: Option<watch::Receiver<u64>>,
        statement: impl Future<Output = PgWireResult<T>>,
        responses: impl FnOnce(T, &dyn Fn(Response) -> Response) -> T,
    ) -> PgWireResult<T> {
        let deadline = tokio::time::Instant::now() + self.statement_timeout;
        let mut signal = cancel.clone();
        let planned = tokio::select! {
            planned = tokio::time::timeout_at(deadline, statement) => planned
                .map_err(|_| self.timed_out())?
                .map_err(wire_error)?,
            () = cancelled(&mut signal) => return Err(cancelled_by_client()),
        };
        Ok(responses(planned, &|response| match response {
            Response::Query(rows) => {
                Response::Query(self.bound_rows(rows, deadline, cancel.clone()))
            }
            other => other,
        }))
    }

    /// The rows of `response`, each due by `deadline` and before a cancel; the first error
    /// ends them.
    fn bound_rows(
        self,
        mut response: QueryResponse,
        deadline: tokio::time::Instant,
        cancel: Option<watch::Receiver<u64>>,
    ) -> QueryResponse {
        let rows = std::mem::replace(&mut response.data_rows, Box::pin(futures::stream::empty()));
        response.data_rows = Box::pin(futures::stream::unfold(
            Some((rows, cancel)),
            move |state| async move {
                let (mut rows, mut cancel) = state?;
                let next = tokio::select! {
                    next = tokio::time::timeout_at(deadline, rows.next()) => next,
                    // Dropping the rows stops DataFusion's execution.
                    () = cancelled(&mut cancel) => return Some((Err(cancelled_by_client()), None)),
                };
                match next {
                    Ok(Some(Ok(row))) => Some((Ok(row), Some((rows, cancel)))),
                    Ok(Some(Err(err))) => Some((Err(wire_error(err)), None)),
                    Ok(None) => None,
                    Err(_) => Some((Err(self.timed_out()), None)),
                }
            },
        ));
        response
    }

    fn timed_out(self) -> PgWireError {
        PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".to_owned(),
            "57014".to_owned(),
            format!(
                "canceling statement due to statement timeout: it ran longer than query.select_timeout_secs ({} s)",
                self.statement_timeout.as_secs()
            ),
        )))
    }
}

/// Resolves once the session is sent a cancel; never without a signal.
async fn cancelled(signal: &mut Option<watch::Receiver<u64>>) {
    if let Some(receiver) = signal
        && receiver.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

fn cancelled_by_client() -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        "57014".to_owned(),
        "canceling statement due to user request".to_owned(),
    )))
}

/// A DataFusion error with the SQLSTATE and message the REST API gives it.
fn wire_error(err: PgWireError) -> PgWireError {
    if let PgWireError::ApiError(inner) = &err
        && let Some(failure) = inner.downcast_ref::<DataFusionError>()
    {
        return statement_error(&rest::df_error(failure));
    }
    err
}

fn statement_error(err: &SqlError) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        err.code.clone(),
        err.message.clone(),
    )))
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let limits = self.service.limits;
        limits
            .run(
                self.cancel_signal(),
                self.simple(client, query),
                |responses, bound| responses.into_iter().map(bound).collect(),
            )
            .await
    }
}

impl Queries {
    async fn simple<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Three-part names reach only the stubs (spec §11.3), in a context of their own that
        // keeps identifiers as written (aepp filters on `MERGE_POLICY_ID` unquoted).
        if self.session.get().is_some() && stubs::mentions(query) {
            return SimpleQueryHandler::do_query(self.service.stubs.as_ref(), client, query).await;
        }
        // Field names in another case take the fields' spelling.
        let folded;
        let query = match self.session.get() {
            Some(session) => {
                folded = session.names.fold(query);
                folded.as_str()
            }
            None => query,
        };
        // SNAPSHOT clauses read versioned tables registered for this statement only.
        if let Some(session) = self.session.get()
            && snapshot::mentions(query)
        {
            let rewritten = snapshot::rewrite(query).map_err(|err| statement_error(&err))?;
            let registered = self
                .service
                .tables()
                .register_snapshots(&session.context, &session.tenant, &rewritten)
                .await
                .map_err(|err| statement_error(&err))?;
            let result =
                SimpleQueryHandler::do_query(session.handler.as_ref(), client, &rewritten).await;
            for name in registered {
                if let Err(err) = session
                    .context
                    .deregister_table(TableReference::bare(name.as_str()))
                {
                    tracing::warn!(table = %name, error = %err, "could not drop a snapshot table");
                }
            }
            return result;
        }
        SimpleQueryHandler::do_query(self.current().as_ref(), client, query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;
    type QueryParser = FoldingParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(FoldingParser {
            inner: self.current().query_parser(),
            names: self
                .session
                .get()
                .map(|session| Arc::clone(&session.names))
                .unwrap_or_default(),
        })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let limits = self.service.limits;
        limits
            .run(
                self.cancel_signal(),
                ExtendedQueryHandler::do_query(self.current().as_ref(), client, portal, max_rows),
                |response, bound| bound(response),
            )
            .await
    }
}

/// The extended protocol's parser (JDBC, psycopg 3, DBeaver), which first gives field
/// names written in another case the fields' spelling, as the simple protocol does.
struct FoldingParser {
    inner: Arc<<DfSessionService as ExtendedQueryHandler>::QueryParser>,
    names: Arc<idents::FieldNames>,
}

#[async_trait]
impl QueryParser for FoldingParser {
    type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        self.inner
            .parse_sql(client, &self.names.fold(sql), types)
            .await
    }

    fn get_parameter_types(&self, statement: &Self::Statement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(statement)
    }

    fn get_result_schema(
        &self,
        statement: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        self.inner.get_result_schema(statement, column_format)
    }
}
