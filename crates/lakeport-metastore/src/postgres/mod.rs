//! The PostgreSQL backend, for several `lakeport serve` and `lakeport worker` processes
//! sharing one catalog: a pool of connections, the same tables as SQLite with JSONB
//! documents, and the same behaviour (the conformance suite runs on both).
//!
//! **Isolation.** SQLite has one writer, so every write transaction sees the latest state
//! and nothing changes under it. Here writes run at `READ COMMITTED` and lock what they
//! read-modify-write: each object row is read `FOR UPDATE` before it is rewritten (a batch,
//! then its dataset; a job row before its batch), uploads lock their batch, and uniqueness
//! (ids, externalIds, resource titles) is enforced by unique constraints whose violations
//! map to the same errors SQLite's checks give. Each statement sees the latest committed
//! rows, and a locked row cannot change until the transaction ends, so every
//! read-modify-write behaves as under SQLite's single writer. Job claims use
//! `FOR UPDATE SKIP LOCKED`, so workers never wait on each other.
//!
//! **Retries.** A transaction that fails with a serialization failure (40001), a deadlock
//! (40P01) or a lost connection is rolled back and run again, up to [`ATTEMPTS`] times with
//! jittered backoff; only then does the caller see [`MetastoreError::Unavailable`]. When a
//! connection breaks while `COMMIT` is in flight, the transaction's id (read with `BEGIN`)
//! is looked up with `txid_status`: a committed transaction counts as done, an aborted one
//! is retried, and only if the server cannot tell is the caller told that the change may or
//! may not have been applied.
//!
//! **Documents** are stored twice per row: `doc` (JSONB) is what filters and sorts read, and
//! `body` (TEXT) is the document as written, returned verbatim so key order survives like
//! on SQLite (JSONB reorders keys).

mod ingest;
mod sql;
mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use lakeport_domain::catalog::import::{NewImportBatch, build_import_batch, check_predecessor};
use lakeport_domain::catalog::{self, Actor, WriteContext};
use lakeport_domain::ingest::{Chunk, Job, JobKind};
use lakeport_domain::query::{ListQuery, ObjectKind, version_key};
use lakeport_domain::status::{BatchAction, BatchStatus};
use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::{ResourceKind, kind_of};
use lakeport_domain::{Doc, now_millis};
use serde_json::Value;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::sql::{Statement, table};
use crate::{
    BatchFile, DocChange, ExpiredDiagnostics, Metastore, MetastoreError, Promotion,
    StoredDatasetFile, UpdateOptions, UploadLimits,
};

/// A pooled connection; `prepare_cached` keeps each fixed statement prepared per connection.
type Conn = deadpool_postgres::ClientWrapper;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How many times a transaction runs before a transient failure reaches the caller.
pub const ATTEMPTS: u32 = 6;

/// How long a call waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Serializes concurrent migrations of processes starting together ("lakeport" in ASCII).
const MIGRATION_LOCK: i64 = 0x6C61_6B65_706F_7274;

/// The PostgreSQL metastore.
#[derive(Clone)]
pub struct PostgresMetastore {
    pool: Pool,
}

/// The schema, one migration per entry (numbered like SQLite's), applied in order and
/// recorded in `lakeport_migrations`. Text columns use the `C` collation so that comparisons
/// and sorting are byte-wise, as in SQLite.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "catalog tables",
        r#"
CREATE TABLE datasets (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    version_key BIGINT NOT NULL,
    name TEXT COLLATE "C",
    doc JSONB NOT NULL,
    body TEXT NOT NULL,
    CONSTRAINT datasets_pkey PRIMARY KEY (org, sandbox, id)
);
CREATE INDEX datasets_by_created ON datasets (org, sandbox, created, id);
CREATE INDEX datasets_by_name ON datasets (org, sandbox, name);

CREATE TABLE batches (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    version_key BIGINT NOT NULL,
    status TEXT COLLATE "C" NOT NULL,
    dataset_id TEXT COLLATE "C",
    external_id TEXT COLLATE "C" NOT NULL,
    doc JSONB NOT NULL,
    body TEXT NOT NULL,
    CONSTRAINT batches_pkey PRIMARY KEY (org, sandbox, id),
    CONSTRAINT batches_external_id_key UNIQUE (org, sandbox, external_id)
);
CREATE INDEX batches_by_created ON batches (org, sandbox, created, id);
CREATE INDEX batches_by_dataset ON batches (org, sandbox, dataset_id, created, id);
CREATE INDEX batches_by_status ON batches (org, sandbox, status, created, id);

CREATE TABLE dataset_files (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    version_key BIGINT NOT NULL,
    dataset_id TEXT COLLATE "C",
    batch_id TEXT COLLATE "C",
    doc JSONB NOT NULL,
    body TEXT NOT NULL,
    CONSTRAINT dataset_files_pkey PRIMARY KEY (org, sandbox, id)
);
CREATE INDEX dataset_files_by_created ON dataset_files (org, sandbox, created, id);
CREATE INDEX dataset_files_by_dataset ON dataset_files (org, sandbox, dataset_id, created, id);
CREATE INDEX dataset_files_by_batch ON dataset_files (org, sandbox, batch_id, created, id);
"#,
    ),
    (
        2,
        "schema registry resources",
        r#"
CREATE TABLE xdm_resources (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    alt_id TEXT COLLATE "C" NOT NULL,
    title TEXT COLLATE "C" NOT NULL,
    version TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    doc JSONB NOT NULL,
    body TEXT NOT NULL,
    CONSTRAINT xdm_resources_pkey PRIMARY KEY (org, sandbox, id),
    CONSTRAINT xdm_resources_alt_id_key UNIQUE (org, sandbox, alt_id),
    CONSTRAINT xdm_resources_title_key UNIQUE (org, sandbox, kind, title)
);
CREATE INDEX xdm_resources_by_kind ON xdm_resources (org, sandbox, kind, created);
"#,
    ),
    (3, "batch files, jobs and outputs", ingest::MIGRATION),
    (4, "diagnostics retention", ingest::RETENTION_MIGRATION),
    (5, "diagnostics files", ingest::DIAGNOSTICS_FILES_MIGRATION),
];

/// Wraps a driver error; [`is_transient`] later decides whether a retry may help.
fn backend(doing: &'static str) -> impl FnOnce(tokio_postgres::Error) -> MetastoreError {
    move |source| {
        // A `property=f~regex` filter the regex crate accepted but PostgreSQL's dialect
        // refuses is the client's input, not a server fault.
        if let Some(db_error) = source.as_db_error()
            && db_error.code() == &SqlState::INVALID_REGULAR_EXPRESSION
        {
            return MetastoreError::InvalidQuery(format!(
                "the regular expression is not supported by this metastore: {}",
                db_error.message()
            ));
        }
        MetastoreError::Backend {
            doing,
            source: Box::new(source),
        }
    }
}

fn pool_error(doing: &'static str) -> impl FnOnce(PoolError) -> MetastoreError {
    move |source| match source {
        // Every connection stayed busy: answer at once instead of queueing retries.
        PoolError::Timeout(TimeoutType::Wait) => MetastoreError::Unavailable(format!(
            "{doing}: no database connection was free within {} s",
            POOL_WAIT.as_secs()
        )),
        source => MetastoreError::Backend {
            doing,
            source: Box::new(source),
        },
    }
}

fn corrupt(doing: &'static str, err: serde_json::Error) -> MetastoreError {
    MetastoreError::Backend {
        doing,
        source: Box::new(err),
    }
}

/// Returns whether running the same transaction again may succeed: serialization
/// failures, deadlocks, and connections that were lost or could not be made.
fn transient_driver_error(err: &tokio_postgres::Error) -> bool {
    if let Some(code) = err.code() {
        return [
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
            || code.code().starts_with("08");
    }
    err.is_closed()
        || std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>())
}

fn is_transient(err: &MetastoreError) -> bool {
    let MetastoreError::Backend { source, .. } = err else {
        return false;
    };
    if let Some(err) = source.downcast_ref::<tokio_postgres::Error>() {
        return transient_driver_error(err);
    }
    match source.downcast_ref::<PoolError>() {
        Some(PoolError::Timeout(_)) => true,
        Some(PoolError::Backend(err)) => transient_driver_error(err),
        _ => false,
    }
}

/// Returns the name of the unique constraint a failed statement violated.
fn unique_violation(err: &MetastoreError) -> Option<&str> {
    let MetastoreError::Backend { source, .. } = err else {
        return None;
    };
    let db_error = source
        .downcast_ref::<tokio_postgres::Error>()?
        .as_db_error()?;
    (db_error.code() == &SqlState::UNIQUE_VIOLATION)
        .then(|| db_error.constraint())
        .flatten()
}

/// Turns the last transient failure into the error callers see once retries ran out, with
/// the driver's whole cause chain (its own message is just "db error").
fn exhausted(doing: &'static str, err: &MetastoreError) -> MetastoreError {
    let mut cause = String::new();
    let mut next: Option<&dyn std::error::Error> = match err {
        MetastoreError::Backend { source, .. } => Some(source.as_ref()),
        other => Some(other),
    };
    while let Some(current) = next {
        if !cause.is_empty() {
            cause.push_str(": ");
        }
        cause.push_str(&current.to_string());
        next = current.source();
    }
    MetastoreError::Unavailable(format!("{doing}: {cause} (after {ATTEMPTS} attempts)"))
}

/// Sleeps before attempt `attempt + 1`: 10 ms, 30 ms, 90 ms, … up to 1 s, each jittered
/// down by up to half so that colliding transactions do not collide again.
async fn backoff(attempt: u32) {
    let ceiling: u64 = 3u64
        .saturating_pow(attempt.saturating_sub(1))
        .saturating_mul(10)
        .min(1000);
    let millis = rand::random_range(ceiling / 2..=ceiling);
    tokio::time::sleep(Duration::from_millis(millis)).await;
}

/// A pooled connection that is closed instead of returned to the pool unless the
/// transaction on it ended cleanly, e.g. when a request is cancelled mid-transaction.
struct Checkout {
    conn: Option<deadpool_postgres::Object>,
    clean: bool,
}

impl Checkout {
    fn conn(&self) -> &Conn {
        self.conn.as_ref().expect("present until dropped")
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        if !self.clean
            && let Some(conn) = self.conn.take()
        {
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

/// Returns the PostgreSQL connection settings of a `postgres://` URL, and its TLS settings
/// (libpq's `sslmode` and `sslrootcert`).
fn connection_config(
    url: &str,
) -> Result<(tokio_postgres::Config, tls::TlsSettings), MetastoreError> {
    let (url, tls) = tls::split_url(url)?;
    let mut config: tokio_postgres::Config =
        url.parse().map_err(|err: tokio_postgres::Error| {
            // The driver's message never quotes the URL, so no password leaks here.
            MetastoreError::Unavailable(format!("the PostgreSQL URL is not valid: {err}"))
        })?;
    if config.get_application_name().is_none() {
        config.application_name("lakeport");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    Ok((config, tls))
}

impl PostgresMetastore {
    /// Connects to the database at `url` (`postgres://user:password@host:5432/db`) with a
    /// pool of up to `max_connections` connections and applies pending migrations.
    ///
    /// # Errors
    /// Fails when the URL is invalid, the server cannot be reached (after retries) or a
    /// migration fails.
    pub async fn open(url: &str, max_connections: usize) -> Result<Self, MetastoreError> {
        let (config, tls) = connection_config(url)?;
        let manager = Manager::from_config(
            config,
            tls::connector(&tls)?,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(Duration::from_secs(10)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|err| MetastoreError::Backend {
                doing: "building the connection pool",
                source: Box::new(err),
            })?;
        let store = Self { pool };
        store.migrate().await?;
        let encrypted = store.connection_encrypted().await?;
        tracing::info!(tls = encrypted, "connected to PostgreSQL");
        Ok(store)
    }

    /// Whether this process's connections to PostgreSQL are encrypted (the server's
    /// `pg_stat_ssl` view, for one pooled connection).
    ///
    /// # Errors
    /// The server cannot be reached.
    pub async fn connection_encrypted(&self) -> Result<bool, MetastoreError> {
        let doing = "reading the connection's TLS state";
        let conn = self.pool.get().await.map_err(pool_error(doing))?;
        let row = conn
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(backend(doing))?;
        Ok(row.get(0))
    }

    async fn migrate(&self) -> Result<(), MetastoreError> {
        self.write("applying migrations", |conn| {
            Box::pin(async move {
                conn.batch_execute(&format!(
                    "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
                     CREATE TABLE IF NOT EXISTS lakeport_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied BIGINT NOT NULL)"
                ))
                .await
                .map_err(backend("creating the migrations table"))?;
                let applied: Option<i64> = conn
                    .query_one("SELECT MAX(version) FROM lakeport_migrations", &[])
                    .await
                    .map_err(backend("reading the schema version"))?
                    .get(0);
                for (version, name, script) in MIGRATIONS {
                    if applied.is_some_and(|applied| applied >= *version) {
                        continue;
                    }
                    tracing::info!(
                        migration.version = version,
                        migration.name = name,
                        "applying metastore migration"
                    );
                    conn.batch_execute(script)
                        .await
                        .map_err(backend("applying a migration"))?;
                    conn.execute(
                        "INSERT INTO lakeport_migrations (version, name, applied) VALUES ($1, $2, $3)",
                        &[version, name, &now_millis()],
                    )
                    .await
                    .map_err(backend("recording a migration"))?;
                }
                Ok(())
            })
        })
        .await
    }

    /// Runs `work` in one `READ COMMITTED` transaction, again on a transient failure.
    async fn write<T, F>(&self, doing: &'static str, mut work: F) -> Result<T, MetastoreError>
    where
        T: Send,
        F: for<'c> FnMut(&'c Conn) -> BoxFuture<'c, Result<T, MetastoreError>> + Send,
    {
        let mut attempt = 1;
        loop {
            match self.write_once(doing, &mut work).await {
                Err(err) if is_transient(&err) => {
                    if attempt >= ATTEMPTS {
                        return Err(exhausted(doing, &err));
                    }
                    tracing::debug!(doing, attempt, error = %err, "retrying a metastore transaction");
                    backoff(attempt).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn write_once<T, F>(&self, doing: &'static str, work: &mut F) -> Result<T, MetastoreError>
    where
        F: for<'c> FnMut(&'c Conn) -> BoxFuture<'c, Result<T, MetastoreError>> + Send,
    {
        let mut checkout = Checkout {
            conn: Some(self.pool.get().await.map_err(pool_error(doing))?),
            clean: false,
        };
        let conn = checkout.conn();
        // The transaction id (one round trip with BEGIN) lets a commit whose answer was
        // lost be looked up afterwards.
        let begun = conn
            .simple_query("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT txid_current()")
            .await
            .map_err(backend("starting a transaction"))?;
        let xid = begun.iter().find_map(|message| match message {
            SimpleQueryMessage::Row(row) => row.get(0)?.parse::<i64>().ok(),
            _ => None,
        });
        match work(conn).await {
            Ok(value) => match conn.batch_execute("COMMIT").await {
                Ok(()) => {
                    checkout.clean = true;
                    Ok(value)
                }
                // The server answered: the transaction was rolled back.
                Err(err) if err.code().is_some() => Err(backend("committing")(err)),
                // The connection broke with COMMIT in flight: ask the server what happened.
                Err(err) => match self.commit_outcome(xid).await {
                    Some(true) => {
                        tracing::debug!(doing, error = %err, "commit confirmed after its connection was lost");
                        Ok(value)
                    }
                    Some(false) => Err(backend("committing")(err)),
                    None => Err(MetastoreError::Unavailable(format!(
                        "{doing}: the connection was lost while committing, so the change may or may not have been applied: {err}"
                    ))),
                },
            },
            Err(err) => {
                checkout.clean = conn.batch_execute("ROLLBACK").await.is_ok();
                Err(err)
            }
        }
    }

    /// Returns whether the transaction `xid` committed (`Some(false)`: it was rolled back),
    /// or `None` when the server cannot tell in time. A transaction whose connection just
    /// broke stays "in progress" until its server process notices, so this polls.
    async fn commit_outcome(&self, xid: Option<i64>) -> Option<bool> {
        let xid = xid?;
        for attempt in 1..=ATTEMPTS {
            backoff(attempt).await;
            let Ok(conn) = self.pool.get().await else {
                continue;
            };
            let status = conn
                .query_one("SELECT txid_status($1)", &[&xid])
                .await
                .map(|row| row.get::<_, Option<String>>(0));
            match status.as_ref().map(Option::as_deref) {
                Ok(Some("committed")) => return Some(true),
                Ok(Some("aborted")) => return Some(false),
                // Too old to know (never the case right after the commit).
                Ok(None) => return None,
                Ok(Some(_)) | Err(_) => {}
            }
        }
        None
    }

    /// Runs `work` outside a transaction (each statement sees the latest commits), again
    /// on a transient failure.
    async fn read<T, F>(&self, doing: &'static str, mut work: F) -> Result<T, MetastoreError>
    where
        T: Send,
        F: for<'c> FnMut(&'c Conn) -> BoxFuture<'c, Result<T, MetastoreError>> + Send,
    {
        let mut attempt = 1;
        loop {
            let result = match self.pool.get().await.map_err(pool_error(doing)) {
                Ok(conn) => work(&conn).await,
                Err(err) => Err(err),
            };
            match result {
                Err(err) if is_transient(&err) => {
                    if attempt >= ATTEMPTS {
                        return Err(exhausted(doing, &err));
                    }
                    tracing::debug!(doing, attempt, error = %err, "retrying a metastore read");
                    backoff(attempt).await;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }
}

/// Which row lock a read takes inside a write transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lock {
    None,
    /// `FOR SHARE`: the row may not change until the transaction ends.
    Share,
    /// `FOR UPDATE`: the row is about to be rewritten.
    Update,
}

impl Lock {
    fn clause(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::Share => " FOR SHARE",
            Lock::Update => " FOR UPDATE",
        }
    }
}

fn parse_doc(text: &str) -> Result<Doc, MetastoreError> {
    serde_json::from_str(text).map_err(|err| corrupt("decoding a stored document", err))
}

fn field_str<'a>(doc: &'a Doc, field: &str) -> Option<&'a str> {
    doc.get(field).and_then(Value::as_str)
}

fn field_int(doc: &Doc, field: &str) -> i64 {
    doc.get(field).and_then(Value::as_i64).unwrap_or_default()
}

/// Runs a fixed statement (prepared once per connection) and returns its rows.
async fn query(
    conn: &Conn,
    doing: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, MetastoreError> {
    let statement = conn.prepare_cached(sql).await.map_err(backend(doing))?;
    conn.query(&statement, params).await.map_err(backend(doing))
}

async fn query_opt(
    conn: &Conn,
    doing: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<tokio_postgres::Row>, MetastoreError> {
    let statement = conn.prepare_cached(sql).await.map_err(backend(doing))?;
    conn.query_opt(&statement, params)
        .await
        .map_err(backend(doing))
}

async fn execute(
    conn: &Conn,
    doing: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, MetastoreError> {
    let statement = conn.prepare_cached(sql).await.map_err(backend(doing))?;
    conn.execute(&statement, params)
        .await
        .map_err(backend(doing))
}

/// Runs a statement built from a [`ListQuery`] with typed parameters: one round trip, and
/// no server-side statement left behind for SQL that varies per request.
async fn query_built(
    conn: &Conn,
    doing: &'static str,
    statement: &Statement,
) -> Result<Vec<tokio_postgres::Row>, MetastoreError> {
    let params: Vec<_> = statement.binds.iter().map(sql::typed).collect();
    conn.query_typed(&statement.sql, &params)
        .await
        .map_err(backend(doing))
}

async fn load(
    conn: &Conn,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    lock: Lock,
) -> Result<Option<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT body FROM {} WHERE org = $1 AND sandbox = $2 AND id = $3{}",
        table(kind).name,
        lock.clause()
    );
    let row = query_opt(
        conn,
        "reading an object",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &id],
    )
    .await?;
    row.map(|row| parse_doc(row.get(0))).transpose()
}

async fn load_batch_by_external_id(
    conn: &Conn,
    tenant: &Tenant,
    external_id: &str,
    lock: Lock,
) -> Result<Option<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT body FROM batches WHERE org = $1 AND sandbox = $2 AND external_id = $3{}",
        lock.clause()
    );
    let row = query_opt(
        conn,
        "looking up a batch by externalId",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &external_id],
    )
    .await?;
    row.map(|row| parse_doc(row.get(0))).transpose()
}

/// Returns whether the id and (for batches) the externalId are taken in the tenant.
async fn taken(
    conn: &Conn,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    external_id: Option<&str>,
) -> Result<(bool, bool), MetastoreError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE org = $1 AND sandbox = $2 AND id = $3), {external}",
        table = table(kind).name,
        external = if kind == ObjectKind::Batch {
            "EXISTS (SELECT 1 FROM batches WHERE org = $1 AND sandbox = $2 AND external_id = $4)"
        } else {
            "$4::text IS NULL AND FALSE"
        },
    );
    let rows = query(
        conn,
        "checking ids",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &id, &external_id],
    )
    .await?;
    let row = rows.first().expect("SELECT EXISTS returns one row");
    Ok((row.get(0), row.get(1)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreMode {
    Insert,
    Update,
}

/// Writes a document into its table, inserting or replacing the row of its id, and keeps
/// the indexed columns in step with the document.
async fn store(
    conn: &Conn,
    tenant: &Tenant,
    kind: ObjectKind,
    doc: &Doc,
    mode: StoreMode,
) -> Result<(), MetastoreError> {
    let text = serde_json::to_string(doc).map_err(|err| corrupt("encoding a document", err))?;
    let id = field_str(doc, "id").unwrap_or_default();
    let created = field_int(doc, "created");
    let updated = field_int(doc, "updated");
    let version = field_str(doc, "version")
        .and_then(version_key)
        .unwrap_or_default();
    let (columns, extra): (&[&str], Vec<Option<&str>>) = match kind {
        ObjectKind::Dataset => (&["name"], vec![field_str(doc, "name")]),
        ObjectKind::Batch => (
            &["status", "dataset_id", "external_id"],
            vec![
                Some(field_str(doc, "status").unwrap_or("loading")),
                catalog::batch_dataset_id(doc),
                Some(field_str(doc, "externalId").unwrap_or(id)),
            ],
        ),
        ObjectKind::DatasetFile => (
            &["dataset_id", "batch_id"],
            vec![field_str(doc, "dataSetId"), field_str(doc, "batchId")],
        ),
    };
    // $1-$3 key the row, $4-$6 are the common columns, then the extra columns, then the
    // document text (stored as JSONB and verbatim).
    let body = format!("${}", 7 + columns.len());
    let sql = match mode {
        StoreMode::Insert => {
            let placeholders: Vec<String> =
                (0..columns.len()).map(|i| format!("${}", 7 + i)).collect();
            format!(
                "INSERT INTO {} (org, sandbox, id, created, updated, version_key, {}, doc, body) VALUES ($1, $2, $3, $4, $5, $6, {}, {body}::text::jsonb, {body}::text)",
                table(kind).name,
                columns.join(", "),
                placeholders.join(", ")
            )
        }
        StoreMode::Update => {
            let assignments: Vec<String> = columns
                .iter()
                .enumerate()
                .map(|(i, column)| format!("{column} = ${}", 7 + i))
                .collect();
            format!(
                "UPDATE {} SET created = $4, updated = $5, version_key = $6, {}, doc = {body}::text::jsonb, body = {body}::text WHERE org = $1 AND sandbox = $2 AND id = $3",
                table(kind).name,
                assignments.join(", ")
            )
        }
    };
    let (org, sandbox) = (tenant.org(), tenant.sandbox());
    let mut params: Vec<&(dyn ToSql + Sync)> =
        vec![&org, &sandbox, &id, &created, &updated, &version];
    for value in &extra {
        params.push(value);
    }
    params.push(&text);
    execute(conn, "writing an object", &sql, &params).await?;
    Ok(())
}

/// Records a batch's creation or status change on its dataset (if the dataset exists),
/// locking the dataset row first.
async fn record_on_dataset(
    conn: &Conn,
    tenant: &Tenant,
    batch: &Doc,
    dataset: Option<Doc>,
    created: bool,
) -> Result<(), MetastoreError> {
    let (Some(dataset_id), Some(status), Some(batch_id)) = (
        catalog::batch_dataset_id(batch),
        catalog::batch_status(batch),
        field_str(batch, "id"),
    ) else {
        return Ok(());
    };
    let dataset = match dataset {
        Some(dataset) => Some(dataset),
        None => load(conn, tenant, ObjectKind::Dataset, dataset_id, Lock::Update).await?,
    };
    let Some(mut dataset) = dataset else {
        return Ok(());
    };
    catalog::record_batch_on_dataset(&mut dataset, batch_id, status, created);
    store(
        conn,
        tenant,
        ObjectKind::Dataset,
        &dataset,
        StoreMode::Update,
    )
    .await
}

/// Inserts an object. The explicit check gives SQLite's answers (the id before the
/// externalId); the unique constraints give the same answers to a concurrent insert that
/// passed the check at the same time.
async fn insert_in(
    conn: &Conn,
    tenant: &Tenant,
    kind: ObjectKind,
    doc: &Doc,
    dataset: Option<Doc>,
) -> Result<(), MetastoreError> {
    let id = field_str(doc, "id").unwrap_or_default();
    let external_id =
        (kind == ObjectKind::Batch).then(|| field_str(doc, "externalId").unwrap_or(id));
    let already_exists = || MetastoreError::AlreadyExists {
        kind,
        id: id.to_owned(),
    };
    let duplicate_external_id = || MetastoreError::DuplicateExternalId {
        external_id: external_id.unwrap_or_default().to_owned(),
    };
    let (id_taken, external_id_taken) = taken(conn, tenant, kind, id, external_id).await?;
    if id_taken {
        return Err(already_exists());
    }
    if external_id_taken {
        return Err(duplicate_external_id());
    }
    if let Err(err) = store(conn, tenant, kind, doc, StoreMode::Insert).await {
        return Err(match unique_violation(&err) {
            Some("batches_external_id_key") => duplicate_external_id(),
            Some(_) => already_exists(),
            None => err,
        });
    }
    if kind == ObjectKind::Batch {
        record_on_dataset(conn, tenant, doc, dataset, true).await?;
    }
    Ok(())
}

async fn mark_batches_deleted(
    conn: &Conn,
    tenant: &Tenant,
    dataset_id: &str,
    actor: &Actor,
) -> Result<(), MetastoreError> {
    let rows = query(
        conn,
        "reading the batches of a deleted dataset",
        "SELECT body FROM batches WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 AND status <> 'deleted' ORDER BY id FOR UPDATE",
        &[&tenant.org(), &tenant.sandbox(), &dataset_id],
    )
    .await?;
    let ctx = WriteContext {
        tenant,
        actor,
        now: now_millis(),
    };
    for row in rows {
        let mut batch = parse_doc(row.get(0))?;
        batch.insert("status".into(), Value::from(BatchStatus::Deleted.as_str()));
        catalog::touch(&mut batch, &ctx);
        store(conn, tenant, ObjectKind::Batch, &batch, StoreMode::Update).await?;
    }
    Ok(())
}

/// Returns `$id`, `meta:altId`, `title` and `version` of a resource document.
fn resource_keys(doc: &Doc) -> (String, String, String, String) {
    let text = |key: &str| field_str(doc, key).unwrap_or_default().to_owned();
    (
        text("$id"),
        text("meta:altId"),
        text("title"),
        text("version"),
    )
}

async fn load_resource(
    conn: &Conn,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let row = query_opt(
        conn,
        "reading a resource",
        "SELECT body FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND (id = $3 OR alt_id = $3)",
        &[&tenant.org(), &tenant.sandbox(), &id],
    )
    .await?;
    row.map(|row| parse_doc(row.get(0))).transpose()
}

async fn check_title(
    conn: &Conn,
    tenant: &Tenant,
    kind: ResourceKind,
    title: &str,
    id: &str,
) -> Result<(), MetastoreError> {
    let rows = query(
        conn,
        "checking a title",
        "SELECT EXISTS (SELECT 1 FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND kind = $3 AND title = $4 AND id <> $5)",
        &[&tenant.org(), &tenant.sandbox(), &kind.resource_type(), &title, &id],
    )
    .await?;
    if rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
        return Err(MetastoreError::DuplicateTitle {
            kind,
            title: title.to_owned(),
        });
    }
    Ok(())
}

/// Maps a resource write that a concurrent write beat to a unique constraint.
fn resource_conflict(
    err: MetastoreError,
    kind: ResourceKind,
    title: &str,
    id: &str,
) -> MetastoreError {
    match unique_violation(&err) {
        Some("xdm_resources_title_key") => MetastoreError::DuplicateTitle {
            kind,
            title: title.to_owned(),
        },
        Some(_) => MetastoreError::ResourceExists { id: id.to_owned() },
        None => err,
    }
}

/// What [`Metastore::update`] carries between attempts of its transaction: the change runs
/// once, so a retry reuses its result if the object is still as the change saw it.
struct PendingChange {
    change: Option<DocChange>,
    applied: Option<(Doc, Doc)>,
}

#[async_trait]
impl Metastore for PostgresMetastore {
    async fn insert(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        self.write("inserting an object", move |conn| {
            let (tenant, doc) = (tenant.clone(), doc.clone());
            Box::pin(async move {
                insert_in(conn, &tenant, kind, &doc, None).await?;
                Ok(doc)
            })
        })
        .await
    }

    async fn get(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<Doc>, MetastoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        let sql = format!(
            "SELECT id, body FROM {} WHERE org = $1 AND sandbox = $2 AND id = ANY($3)",
            table(kind).name
        );
        self.read("reading objects", move |conn| {
            let (tenant, sql, ids) = (tenant.clone(), sql.clone(), unique.clone());
            Box::pin(async move {
                let rows = query(
                    conn,
                    "reading objects",
                    &sql,
                    &[&tenant.org(), &tenant.sandbox(), &ids],
                )
                .await?;
                let mut docs = Vec::with_capacity(rows.len());
                for id in &ids {
                    if let Some(row) = rows.iter().find(|row| row.get::<_, &str>(0) == id) {
                        docs.push(parse_doc(row.get(1))?);
                    }
                }
                Ok(docs)
            })
        })
        .await
    }

    async fn list(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<Vec<Doc>, MetastoreError> {
        let statement =
            crate::sql::select_page::<sql::Postgres>(kind, tenant.org(), tenant.sandbox(), query);
        self.read("listing objects", move |conn| {
            let statement = statement.clone();
            Box::pin(async move {
                let rows = query_built(conn, "listing objects", &statement).await?;
                rows.iter().map(|row| parse_doc(row.get(0))).collect()
            })
        })
        .await
    }

    async fn count(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<u64, MetastoreError> {
        let statement =
            crate::sql::select_count::<sql::Postgres>(kind, tenant.org(), tenant.sandbox(), query);
        self.read("counting objects", move |conn| {
            let statement = statement.clone();
            Box::pin(async move {
                let rows = query_built(conn, "counting objects", &statement).await?;
                let count: i64 = rows.first().map(|row| row.get(0)).unwrap_or_default();
                Ok(u64::try_from(count).unwrap_or_default())
            })
        })
        .await
    }

    async fn update(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        options: UpdateOptions,
        change: DocChange,
    ) -> Result<Doc, MetastoreError> {
        let pending = Arc::new(Mutex::new(PendingChange {
            change: Some(change),
            applied: None,
        }));
        self.write("updating an object", move |conn| {
            let (tenant, id, options, pending) = (
                tenant.clone(),
                id.to_owned(),
                options.clone(),
                Arc::clone(&pending),
            );
            Box::pin(async move {
                let Some(current) = load(conn, &tenant, kind, &id, Lock::Update).await? else {
                    return Err(MetastoreError::NotFound { kind, id });
                };
                let version = field_str(&current, "version").unwrap_or_default();
                if let Some(expected) = &options.if_match
                    && !catalog::if_match_accepts(expected, version)
                {
                    return Err(MetastoreError::VersionMismatch {
                        expected: expected.clone(),
                        actual: version.to_owned(),
                    });
                }
                // Take every lock before the change runs, so that a deadlock can only
                // happen (and be retried) before the change is spent.
                if kind == ObjectKind::Batch
                    && let Some(dataset_id) = catalog::batch_dataset_id(&current)
                {
                    load(conn, &tenant, ObjectKind::Dataset, dataset_id, Lock::Update).await?;
                }
                let next = {
                    let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
                    match pending.change.take() {
                        Some(change) => {
                            let next = change(&current)?;
                            pending.applied = Some((current.clone(), next.clone()));
                            next
                        }
                        None => match &pending.applied {
                            Some((seen, next)) if *seen == current => next.clone(),
                            _ => return Err(MetastoreError::ConcurrentChange { id }),
                        },
                    }
                };
                debug_assert_eq!(
                    field_str(&next, "id"),
                    Some(id.as_str()),
                    "a change never alters the id"
                );
                store(conn, &tenant, kind, &next, StoreMode::Update).await?;
                if kind == ObjectKind::Batch
                    && catalog::batch_status(&current) != catalog::batch_status(&next)
                {
                    record_on_dataset(conn, &tenant, &next, None, false).await?;
                }
                Ok(next)
            })
        })
        .await
    }

    async fn delete(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        actor: &Actor,
    ) -> Result<bool, MetastoreError> {
        self.write("deleting an object", move |conn| {
            let (tenant, id, actor) = (tenant.clone(), id.to_owned(), actor.clone());
            Box::pin(async move {
                if kind == ObjectKind::Dataset {
                    // Batches before their dataset, the order every other write locks in.
                    query(
                        conn,
                        "locking the batches of a dataset",
                        "SELECT 1 FROM batches WHERE org = $1 AND sandbox = $2 AND dataset_id = $3 ORDER BY id FOR UPDATE",
                        &[&tenant.org(), &tenant.sandbox(), &id],
                    )
                    .await?;
                }
                let sql = format!(
                    "DELETE FROM {} WHERE org = $1 AND sandbox = $2 AND id = $3",
                    table(kind).name
                );
                let deleted = execute(
                    conn,
                    "deleting an object",
                    &sql,
                    &[&tenant.org(), &tenant.sandbox(), &id],
                )
                .await?
                    > 0;
                if deleted {
                    let owned_files = match kind {
                        ObjectKind::Dataset => Some("dataset_id"),
                        ObjectKind::Batch => Some("batch_id"),
                        ObjectKind::DatasetFile => None,
                    };
                    if let Some(column) = owned_files {
                        let sql = format!(
                            "DELETE FROM dataset_files WHERE org = $1 AND sandbox = $2 AND {column} = $3"
                        );
                        execute(
                            conn,
                            "deleting dataset files",
                            &sql,
                            &[&tenant.org(), &tenant.sandbox(), &id],
                        )
                        .await?;
                    }
                    if kind == ObjectKind::Dataset {
                        mark_batches_deleted(conn, &tenant, &id, &actor).await?;
                    }
                }
                Ok(deleted)
            })
        })
        .await
    }

    async fn create_import_batch(
        &self,
        tenant: &Tenant,
        request: &NewImportBatch,
        batch_id: &str,
        actor: &Actor,
        now: i64,
    ) -> Result<Doc, MetastoreError> {
        self.write("creating a batch", move |conn| {
            let (tenant, request, batch_id, actor) = (
                tenant.clone(),
                request.clone(),
                batch_id.to_owned(),
                actor.clone(),
            );
            Box::pin(async move {
                let unknown_dataset = || MetastoreError::UnknownDataset {
                    id: request.dataset_id.clone(),
                };
                // Batches are locked before their dataset (the order every write keeps), so
                // with predecessors the dataset is only checked here and locked below.
                let first_lock = if request.replay.is_some() {
                    Lock::None
                } else {
                    Lock::Update
                };
                let dataset = load(
                    conn,
                    &tenant,
                    ObjectKind::Dataset,
                    &request.dataset_id,
                    first_lock,
                )
                .await?
                .ok_or_else(unknown_dataset)?;
                let mut replay_ids = Vec::new();
                if let Some(replay) = &request.replay {
                    for reference in &replay.predecessors {
                        let predecessor =
                            load(conn, &tenant, ObjectKind::Batch, reference, Lock::Share).await?;
                        replay_ids.push(check_predecessor(
                            reference,
                            predecessor.as_ref(),
                            &request.dataset_id,
                        )?);
                    }
                    for reference in &replay.predecessors_by_external_id {
                        let predecessor =
                            load_batch_by_external_id(conn, &tenant, reference, Lock::Share)
                                .await?;
                        let id = check_predecessor(
                            reference,
                            predecessor.as_ref(),
                            &request.dataset_id,
                        )?;
                        if !replay_ids.contains(&id) {
                            replay_ids.push(id);
                        }
                    }
                }
                let dataset = if first_lock == Lock::Update {
                    dataset
                } else {
                    load(
                        conn,
                        &tenant,
                        ObjectKind::Dataset,
                        &request.dataset_id,
                        Lock::Update,
                    )
                    .await?
                    .ok_or_else(unknown_dataset)?
                };
                let ctx = WriteContext {
                    tenant: &tenant,
                    actor: &actor,
                    now,
                };
                let doc = build_import_batch(&request, &dataset, &batch_id, &replay_ids, &ctx);
                insert_in(conn, &tenant, ObjectKind::Batch, &doc, Some(dataset)).await?;
                Ok(doc)
            })
        })
        .await
    }

    async fn insert_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        self.write("storing a resource", move |conn| {
            let (tenant, doc) = (tenant.clone(), doc.clone());
            Box::pin(async move {
                let (id, alt_id, title, version) = resource_keys(&doc);
                check_title(conn, &tenant, kind, &title, &id).await?;
                let text = serde_json::to_string(&doc)
                    .map_err(|err| corrupt("encoding a resource", err))?;
                execute(
                    conn,
                    "storing a resource",
                    "INSERT INTO xdm_resources (org, sandbox, kind, id, alt_id, title, version, created, doc, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::text::jsonb, $9::text)",
                    &[
                        &tenant.org(),
                        &tenant.sandbox(),
                        &kind.resource_type(),
                        &id,
                        &alt_id,
                        &title,
                        &version,
                        &now_millis(),
                        &text,
                    ],
                )
                .await
                .map_err(|err| resource_conflict(err, kind, &title, &id))?;
                Ok(doc)
            })
        })
        .await
    }

    async fn get_resource(&self, tenant: &Tenant, id: &str) -> Result<Option<Doc>, MetastoreError> {
        self.read("reading a resource", move |conn| {
            let (tenant, id) = (tenant.clone(), id.to_owned());
            Box::pin(async move { load_resource(conn, &tenant, &id).await })
        })
        .await
    }

    async fn list_resources(
        &self,
        tenant: &Tenant,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<Doc>, MetastoreError> {
        self.read("listing resources", move |conn| {
            let tenant = tenant.clone();
            Box::pin(async move {
                let kind = kind.map(ResourceKind::resource_type);
                let rows = query(
                    conn,
                    "listing resources",
                    "SELECT body FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND ($3::text IS NULL OR kind = $3) ORDER BY created, id",
                    &[&tenant.org(), &tenant.sandbox(), &kind],
                )
                .await?;
                rows.iter().map(|row| parse_doc(row.get(0))).collect()
            })
        })
        .await
    }

    async fn resources_containing(
        &self,
        tenant: &Tenant,
        needle: &str,
    ) -> Result<Vec<Doc>, MetastoreError> {
        let needle = needle.to_owned();
        self.read("finding referring resources", move |conn| {
            let (tenant, needle) = (tenant.clone(), needle.clone());
            Box::pin(async move {
                let rows = query(
                    conn,
                    "finding referring resources",
                    "SELECT body FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND strpos(body, $3) > 0 ORDER BY created, id",
                    &[&tenant.org(), &tenant.sandbox(), &needle],
                )
                .await?;
                rows.iter().map(|row| parse_doc(row.get(0))).collect()
            })
        })
        .await
    }

    async fn replace_resource(
        &self,
        tenant: &Tenant,
        id: &str,
        expected_version: &str,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        self.write("replacing a resource", move |conn| {
            let (tenant, id, expected_version, doc) = (
                tenant.clone(),
                id.to_owned(),
                expected_version.to_owned(),
                doc.clone(),
            );
            Box::pin(async move {
                let kind = kind_of(&doc).ok_or_else(|| MetastoreError::Backend {
                    doing: "replacing a resource",
                    source: "the resource has no meta:resourceType".into(),
                })?;
                let (_, _, title, version) = resource_keys(&doc);
                check_title(conn, &tenant, kind, &title, &id).await?;
                let text = serde_json::to_string(&doc)
                    .map_err(|err| corrupt("encoding a resource", err))?;
                let changed = execute(
                    conn,
                    "replacing a resource",
                    "UPDATE xdm_resources SET title = $1, version = $2, doc = $3::text::jsonb, body = $3::text WHERE org = $4 AND sandbox = $5 AND id = $6 AND version = $7",
                    &[&title, &version, &text, &tenant.org(), &tenant.sandbox(), &id, &expected_version],
                )
                .await
                .map_err(|err| resource_conflict(err, kind, &title, &id))?;
                if changed == 0 {
                    return Err(if load_resource(conn, &tenant, &id).await?.is_some() {
                        MetastoreError::ConcurrentChange { id }
                    } else {
                        MetastoreError::ResourceNotFound { id }
                    });
                }
                Ok(doc)
            })
        })
        .await
    }

    async fn delete_resource(&self, tenant: &Tenant, id: &str) -> Result<bool, MetastoreError> {
        self.write("deleting a resource", move |conn| {
            let (tenant, id) = (tenant.clone(), id.to_owned());
            Box::pin(async move {
                let deleted = execute(
                    conn,
                    "deleting a resource",
                    "DELETE FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND (id = $3 OR alt_id = $3)",
                    &[&tenant.org(), &tenant.sandbox(), &id],
                )
                .await?;
                Ok(deleted > 0)
            })
        })
        .await
    }

    async fn upload_target(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        dataset_id: &str,
    ) -> Result<Doc, MetastoreError> {
        self.read("checking an upload target", move |conn| {
            let (tenant, batch_id, dataset_id) =
                (tenant.clone(), batch_id.to_owned(), dataset_id.to_owned());
            Box::pin(async move {
                ingest::upload_target(conn, &tenant, &batch_id, &dataset_id, Lock::None).await
            })
        })
        .await
    }

    async fn record_file(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        dataset_id: &str,
        path: &str,
        upload_id: &str,
        size: u64,
        limits: UploadLimits,
    ) -> Result<Option<String>, MetastoreError> {
        self.write("recording a batch file", move |conn| {
            let (tenant, batch_id, dataset_id, path, upload_id) = (
                tenant.clone(),
                batch_id.to_owned(),
                dataset_id.to_owned(),
                path.to_owned(),
                upload_id.to_owned(),
            );
            Box::pin(async move {
                ingest::record_file(
                    conn,
                    &tenant,
                    &batch_id,
                    &dataset_id,
                    &path,
                    &upload_id,
                    size,
                    limits,
                    now_millis(),
                )
                .await
            })
        })
        .await
    }

    async fn start_chunked_upload(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        dataset_id: &str,
        path: &str,
        upload_id: &str,
    ) -> Result<Option<String>, MetastoreError> {
        self.write("starting a chunked upload", move |conn| {
            let (tenant, batch_id, dataset_id, path, upload_id) = (
                tenant.clone(),
                batch_id.to_owned(),
                dataset_id.to_owned(),
                path.to_owned(),
                upload_id.to_owned(),
            );
            Box::pin(async move {
                ingest::start_chunked_upload(
                    conn,
                    &tenant,
                    &batch_id,
                    &dataset_id,
                    &path,
                    &upload_id,
                    now_millis(),
                )
                .await
            })
        })
        .await
    }

    async fn record_chunk(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        dataset_id: &str,
        path: &str,
        upload_id: &str,
        chunk: Chunk,
    ) -> Result<BatchFile, MetastoreError> {
        self.write("recording a chunk", move |conn| {
            let (tenant, batch_id, dataset_id, path, upload_id, chunk) = (
                tenant.clone(),
                batch_id.to_owned(),
                dataset_id.to_owned(),
                path.to_owned(),
                upload_id.to_owned(),
                chunk,
            );
            Box::pin(async move {
                ingest::record_chunk(
                    conn,
                    &tenant,
                    &batch_id,
                    &dataset_id,
                    &path,
                    &upload_id,
                    chunk,
                    now_millis(),
                )
                .await
            })
        })
        .await
    }

    async fn batch_file(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        path: &str,
    ) -> Result<Option<BatchFile>, MetastoreError> {
        self.read("reading a batch file", move |conn| {
            let (tenant, batch_id, path) = (tenant.clone(), batch_id.to_owned(), path.to_owned());
            Box::pin(async move { ingest::batch_file(conn, &tenant, &batch_id, &path).await })
        })
        .await
    }

    async fn batch_files(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Vec<BatchFile>, MetastoreError> {
        self.read("listing batch files", move |conn| {
            let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
            Box::pin(async move { ingest::batch_files(conn, &tenant, &batch_id).await })
        })
        .await
    }

    async fn signal_batch(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        action: BatchAction,
        actor: &Actor,
        now: i64,
        cleanup_delay_ms: i64,
    ) -> Result<Doc, MetastoreError> {
        self.write("signalling a batch", move |conn| {
            let (tenant, batch_id, actor) = (tenant.clone(), batch_id.to_owned(), actor.clone());
            Box::pin(async move {
                ingest::signal_batch(
                    conn,
                    &tenant,
                    &batch_id,
                    action,
                    &actor,
                    now,
                    cleanup_delay_ms,
                )
                .await
            })
        })
        .await
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Job>, MetastoreError> {
        self.write("claiming a job", move |conn| {
            let worker = worker.to_owned();
            Box::pin(async move { ingest::claim_job(conn, &worker, lease_ms, now).await })
        })
        .await
    }

    async fn renew_lease(&self, job: &Job, until: i64) -> Result<bool, MetastoreError> {
        self.write("renewing a job lease", move |conn| {
            let job = job.clone();
            Box::pin(async move { ingest::renew_lease(conn, &job, until).await })
        })
        .await
    }

    async fn begin_processing(&self, job: &Job, now: i64) -> Result<Option<Doc>, MetastoreError> {
        self.write("beginning to process a batch", move |conn| {
            let job = job.clone();
            Box::pin(async move { ingest::begin_processing(conn, &job, now).await })
        })
        .await
    }

    async fn complete_promotion(
        &self,
        job: &Job,
        promotion: Promotion,
        now: i64,
    ) -> Result<Doc, MetastoreError> {
        self.write("completing a promotion", move |conn| {
            let (job, promotion) = (job.clone(), promotion.clone());
            Box::pin(async move { ingest::complete_promotion(conn, &job, promotion, now).await })
        })
        .await
    }

    async fn retry_job(
        &self,
        job: &Job,
        error: &str,
        retry_at: i64,
        max_attempts: u32,
        now: i64,
    ) -> Result<(), MetastoreError> {
        self.write("scheduling a job retry", move |conn| {
            let (job, error) = (job.clone(), error.to_owned());
            Box::pin(async move {
                ingest::retry_job(conn, &job, &error, retry_at, max_attempts, now).await
            })
        })
        .await
    }

    async fn finish_job(&self, job: &Job, now: i64) -> Result<(), MetastoreError> {
        self.write("finishing a job", move |conn| {
            let job = job.clone();
            Box::pin(async move { ingest::finish_job(conn, &job, now).await })
        })
        .await
    }

    async fn enqueue_job(
        &self,
        tenant: &Tenant,
        kind: JobKind,
        batch_id: &str,
        run_at: i64,
    ) -> Result<(), MetastoreError> {
        self.write("enqueueing a job", move |conn| {
            let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
            Box::pin(async move {
                ingest::enqueue_job(conn, &tenant, kind, &batch_id, run_at, now_millis()).await
            })
        })
        .await
    }

    async fn abandon_stale_batches(
        &self,
        created_before: i64,
        now: i64,
    ) -> Result<Vec<(Tenant, String)>, MetastoreError> {
        self.write("abandoning stale batches", move |conn| {
            Box::pin(async move { ingest::abandon_stale_batches(conn, created_before, now).await })
        })
        .await
    }

    async fn dataset_file(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<StoredDatasetFile>, MetastoreError> {
        self.read("reading a dataset file", move |conn| {
            let (tenant, id) = (tenant.clone(), id.to_owned());
            Box::pin(async move { ingest::dataset_file(conn, &tenant, &id).await })
        })
        .await
    }

    async fn batch_dataset_files(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Vec<StoredDatasetFile>, MetastoreError> {
        self.read("reading dataset files", move |conn| {
            let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
            Box::pin(async move { ingest::batch_dataset_files(conn, &tenant, &batch_id).await })
        })
        .await
    }

    async fn diagnostics_location(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Option<String>, MetastoreError> {
        self.read("reading diagnostics", move |conn| {
            let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
            Box::pin(async move { ingest::diagnostics_location(conn, &tenant, &batch_id).await })
        })
        .await
    }

    async fn diagnostics_files(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Option<Vec<crate::DiagnosticsFile>>, MetastoreError> {
        self.read("reading diagnostics files", move |conn| {
            let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
            Box::pin(async move { ingest::diagnostics_files(conn, &tenant, &batch_id).await })
        })
        .await
    }

    async fn expired_diagnostics(
        &self,
        completed_before: i64,
        limit: u32,
    ) -> Result<Vec<ExpiredDiagnostics>, MetastoreError> {
        self.read("finding expired diagnostics", move |conn| {
            Box::pin(
                async move { ingest::expired_diagnostics(conn, completed_before, limit).await },
            )
        })
        .await
    }

    async fn clear_diagnostics(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<bool, MetastoreError> {
        self.write("clearing diagnostics", move |conn| {
            let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
            Box::pin(async move { ingest::clear_diagnostics(conn, &tenant, &batch_id).await })
        })
        .await
    }

    async fn ping(&self) -> Result<(), MetastoreError> {
        self.read("pinging the database", |conn| {
            Box::pin(async move {
                conn.simple_query("SELECT 1")
                    .await
                    .map_err(backend("pinging the database"))?;
                Ok(())
            })
        })
        .await
    }
}
