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
//! The operations themselves are shared with SQLite (`catalog`, `registry`, `ingest`); this
//! module gives them a pooled connection per call and runs the statements.
//!
//! **Documents** are stored twice per row: `doc` (JSONB) is what filters and sorts read, and
//! `body` (TEXT) is the document as written, returned verbatim so key order survives like
//! on SQLite (JSONB reorders keys).

mod sql;
mod tls;

use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use lakeport_domain::now_millis;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};

pub(crate) use self::sql::Postgres;
use crate::MetastoreError;
use crate::backend::{Backend, BoxFuture, Cell, Conn, Param, ToParam};
use crate::sql::Statement;
use crate::store::SqlStore;

/// A pooled connection; `prepare_cached` keeps each fixed statement prepared per connection.
type Client = deadpool_postgres::ClientWrapper;

/// How many times a transaction runs before a transient failure reaches the caller.
pub const ATTEMPTS: u32 = 6;

/// How long a call waits for a free pooled connection.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Serializes concurrent migrations of processes starting together ("lakeport" in ASCII).
const MIGRATION_LOCK: i64 = 0x6C61_6B65_706F_7274;

/// The PostgreSQL metastore.
pub type PostgresMetastore = SqlStore<PostgresBackend>;

/// The connection pool behind a [`PostgresMetastore`].
#[derive(Clone)]
pub struct PostgresBackend {
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
    (3, "batch files, jobs and outputs", MIGRATION),
    (4, "diagnostics retention", RETENTION_MIGRATION),
    (5, "diagnostics files", DIAGNOSTICS_FILES_MIGRATION),
    (6, "streaming", STREAMING_MIGRATION),
    (7, "table commit locks", TABLE_LOCKS_MIGRATION),
    (
        8,
        "stream chunks and flow generations",
        STREAM_CHUNKS_MIGRATION,
    ),
    (9, "query service", QUERY_SERVICE_MIGRATION),
    (10, "stream segments as id ranges", STREAM_RANGES_MIGRATION),
    (11, "table job results", TABLE_JOBS_MIGRATION),
];

/// Table jobs (`lakeport dataset optimize|vacuum`, spec §12) record what they did; their
/// `batch_id` is the dataset's id.
const TABLE_JOBS_MIGRATION: &str = r#"
ALTER TABLE jobs ADD COLUMN result TEXT;
"#;

/// The metastore coordinates the commits to each dataset's Delta table (spec §12): a
/// dataset's row names the job (and its worker) that may commit now; the lock is held only
/// while that job is running under that worker's unexpired lease.
const TABLE_LOCKS_MIGRATION: &str = r#"
CREATE TABLE table_locks (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    dataset_id TEXT COLLATE "C" NOT NULL,
    job_id BIGINT NOT NULL,
    worker TEXT NOT NULL,
    since BIGINT NOT NULL,
    UNIQUE (org, sandbox, dataset_id)
);
CREATE INDEX table_locks_by_job ON table_locks (job_id);
"#;

/// Group commit (spec §10.3): a `stream_records` row holds a chunk of one or more records
/// (JSON Lines), and each tenant's Flow Service generation lets an append made with a
/// cached inlet see, in its own transaction, whether the routing changed.
const STREAM_CHUNKS_MIGRATION: &str = r#"
ALTER TABLE stream_records ADD COLUMN records BIGINT NOT NULL DEFAULT 1;
CREATE TABLE flow_generations (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    generation BIGINT NOT NULL,
    UNIQUE (org, sandbox)
);
INSERT INTO flow_generations (org, sandbox, generation) SELECT DISTINCT org, sandbox, 1 FROM flow_objects;
CREATE INDEX stream_segments_pending ON stream_segments (created) WHERE done = 0;
CREATE INDEX jobs_by_batch ON jobs (org, sandbox, batch_id);
"#;

/// Sealed segments as id ranges (spec §10.3): sealing a segment records the last record id it
/// takes instead of rewriting every record it holds (which, in SQLite, rewrote the whole
/// segment's bytes inside the writer's transaction, and appends waited behind it). A
/// dataset's open segment is its records after `sealed_through`; `open_records` counts them.
/// Segments sealed before keep their records: their ranges are read from them.
const STREAM_RANGES_MIGRATION: &str = r#"
ALTER TABLE stream_datasets ADD COLUMN sealed_through BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stream_datasets ADD COLUMN open_records BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stream_segments ADD COLUMN after_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE stream_segments ADD COLUMN last_id BIGINT NOT NULL DEFAULT 0;
UPDATE stream_segments SET
    after_id = COALESCE((SELECT MIN(r.id) - 1 FROM stream_records r WHERE r.org = stream_segments.org AND r.sandbox = stream_segments.sandbox AND r.dataset_id = stream_segments.dataset_id AND r.segment = stream_segments.segment), 0),
    last_id = COALESCE((SELECT MAX(r.id) FROM stream_records r WHERE r.org = stream_segments.org AND r.sandbox = stream_segments.sandbox AND r.dataset_id = stream_segments.dataset_id AND r.segment = stream_segments.segment), 0);
UPDATE stream_datasets SET
    sealed_through = COALESCE(
        (SELECT MIN(r.id) - 1 FROM stream_records r WHERE r.org = stream_datasets.org AND r.sandbox = stream_datasets.sandbox AND r.dataset_id = stream_datasets.dataset_id AND r.segment IS NULL),
        (SELECT MAX(r.id) FROM stream_records r WHERE r.org = stream_datasets.org AND r.sandbox = stream_datasets.sandbox AND r.dataset_id = stream_datasets.dataset_id),
        0),
    open_records = COALESCE((SELECT SUM(r.records) FROM stream_records r WHERE r.org = stream_datasets.org AND r.sandbox = stream_datasets.sandbox AND r.dataset_id = stream_datasets.dataset_id AND r.segment IS NULL), 0);
DROP INDEX stream_records_by_segment;
CREATE INDEX stream_records_by_dataset ON stream_records (org, sandbox, dataset_id, id);
"#;

/// The Query Service (spec §11.4): queries and query templates with the columns their
/// listings filter and sort on.
const QUERY_SERVICE_MIGRATION: &str = r#"
CREATE TABLE qs_objects (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL,
    state TEXT COLLATE "C",
    deleted BIGINT NOT NULL,
    hidden BIGINT NOT NULL,
    name TEXT COLLATE "C",
    body TEXT COLLATE "C" NOT NULL,
    UNIQUE (org, sandbox, kind, id)
);
CREATE INDEX qs_objects_by_created ON qs_objects (org, sandbox, kind, created, id);
CREATE INDEX qs_objects_by_updated ON qs_objects (org, sandbox, kind, updated, id);
CREATE INDEX qs_objects_running ON qs_objects (org, kind, state);
"#;

/// Streaming (spec §10): Flow Service objects (a base connection's inlet id is unique
/// across tenants), each dataset's open segment, the append log and the sealed segments.
const STREAMING_MIGRATION: &str = r#"
CREATE TABLE flow_objects (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    kind TEXT COLLATE "C" NOT NULL,
    id TEXT COLLATE "C" NOT NULL,
    created BIGINT NOT NULL,
    inlet_id TEXT COLLATE "C",
    body TEXT COLLATE "C" NOT NULL,
    UNIQUE (org, sandbox, kind, id)
);
CREATE UNIQUE INDEX flow_objects_by_inlet ON flow_objects (inlet_id) WHERE inlet_id IS NOT NULL;
CREATE INDEX flow_objects_by_created ON flow_objects (org, sandbox, kind, created, id);
CREATE TABLE stream_datasets (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    dataset_id TEXT COLLATE "C" NOT NULL,
    next_segment BIGINT NOT NULL,
    open_since BIGINT,
    open_bytes BIGINT NOT NULL,
    UNIQUE (org, sandbox, dataset_id)
);
CREATE INDEX stream_datasets_open ON stream_datasets (open_since) WHERE open_since IS NOT NULL;
CREATE TABLE stream_records (
    id BIGSERIAL PRIMARY KEY,
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    dataset_id TEXT COLLATE "C" NOT NULL,
    segment BIGINT,
    received BIGINT NOT NULL,
    connection_id TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    body TEXT COLLATE "C" NOT NULL
);
CREATE INDEX stream_records_by_segment ON stream_records (org, sandbox, dataset_id, segment, id);
CREATE TABLE stream_segments (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    dataset_id TEXT COLLATE "C" NOT NULL,
    segment BIGINT NOT NULL,
    batch_id TEXT COLLATE "C" NOT NULL,
    records BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    done BIGINT NOT NULL,
    created BIGINT NOT NULL,
    UNIQUE (org, sandbox, dataset_id, segment),
    UNIQUE (org, sandbox, batch_id)
);
"#;

const MIGRATION: &str = r#"
CREATE TABLE batch_files (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    batch_id TEXT COLLATE "C" NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    size BIGINT NOT NULL,
    upload_id TEXT,
    chunks TEXT,
    updated BIGINT NOT NULL,
    CONSTRAINT batch_files_pkey PRIMARY KEY (org, sandbox, batch_id, path)
);
CREATE TABLE jobs (
    id BIGSERIAL PRIMARY KEY,
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    kind TEXT NOT NULL,
    batch_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    run_after BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error TEXT,
    created BIGINT NOT NULL,
    updated BIGINT NOT NULL
);
CREATE INDEX jobs_runnable ON jobs (status, run_after, id);
CREATE TABLE batch_outputs (
    org TEXT COLLATE "C" NOT NULL,
    sandbox TEXT COLLATE "C" NOT NULL,
    batch_id TEXT COLLATE "C" NOT NULL,
    diagnostics TEXT,
    CONSTRAINT batch_outputs_pkey PRIMARY KEY (org, sandbox, batch_id)
);
ALTER TABLE dataset_files ADD COLUMN location TEXT;
"#;

/// Records the diagnostics files next to their location (JSON text; NULL for batches
/// promoted before this migration, whose files Data Access finds by listing storage).
const DIAGNOSTICS_FILES_MIGRATION: &str = r#"
ALTER TABLE batch_outputs ADD COLUMN files TEXT;
"#;

/// Records each batch's `completed` time next to its diagnostics location, so the
/// retention sweep finds expired diagnostics through an index.
const RETENTION_MIGRATION: &str = r#"
ALTER TABLE batch_outputs ADD COLUMN completed BIGINT;
UPDATE batch_outputs SET completed = (
    SELECT CASE WHEN jsonb_typeof(b.doc -> 'completed') = 'number' THEN (b.doc ->> 'completed')::numeric::bigint END
    FROM batches b
    WHERE b.org = batch_outputs.org AND b.sandbox = batch_outputs.sandbox AND b.id = batch_outputs.batch_id
);
CREATE INDEX batch_outputs_expiring ON batch_outputs (completed) WHERE diagnostics IS NOT NULL;
"#;

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
    fn conn(&mut self) -> &mut Client {
        self.conn.as_mut().expect("present until dropped")
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
        let store = SqlStore {
            bell: std::sync::Arc::default(),
            backend: PostgresBackend { pool },
        };
        store.backend.migrate().await?;
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
        let conn = self.backend.pool.get().await.map_err(pool_error(doing))?;
        let row = conn
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(backend(doing))?;
        Ok(row.get(0))
    }
}

impl PostgresBackend {
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
                        "recording a migration",
                        "INSERT INTO lakeport_migrations (version, name, applied) VALUES ($1, $2, $3)",
                        &[version, name, &now_millis()],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn write_once<T, F>(&self, doing: &'static str, work: &mut F) -> Result<T, MetastoreError>
    where
        F: for<'c> FnMut(&'c mut Client) -> BoxFuture<'c, Result<T, MetastoreError>> + Send,
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
}

impl Backend for PostgresBackend {
    type Conn = Client;

    /// Runs `work` in one `READ COMMITTED` transaction, again on a transient failure.
    async fn write<T, F>(&self, doing: &'static str, mut work: F) -> Result<T, MetastoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut Client) -> BoxFuture<'c, Result<T, MetastoreError>>
            + Send
            + 'static,
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

    /// Runs `work` outside a transaction (each statement sees the latest commits), again
    /// on a transient failure.
    async fn read<T, F>(&self, doing: &'static str, mut work: F) -> Result<T, MetastoreError>
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut Client) -> BoxFuture<'c, Result<T, MetastoreError>>
            + Send
            + 'static,
    {
        let mut attempt = 1;
        loop {
            let result = match self.pool.get().await.map_err(pool_error(doing)) {
                Ok(mut conn) => work(&mut conn).await,
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

/// The driver value of a bound parameter (a NULL is a NULL text).
fn driver_param<'a>(param: &'a Param<'a>) -> &'a (dyn ToSql + Sync) {
    match param {
        Param::Null => &None::<&str>,
        Param::Text(text) => text,
        Param::Int(int) => int,
        Param::Real(real) => real,
        Param::Path(path) => path,
    }
}

/// Reads a row's values by their column types.
fn cells(doing: &'static str, row: &tokio_postgres::Row) -> Result<Vec<Cell>, MetastoreError> {
    (0..row.len())
        .map(|index| {
            let cell = match *row.columns()[index].type_() {
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(index)
                    .map(|v| v.map(Cell::Int)),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(index)
                    .map(|v| v.map(|int| Cell::Int(i64::from(int)))),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(index)
                    .map(|v| v.map(Cell::Bool)),
                Type::FLOAT8 => row
                    .try_get::<_, Option<f64>>(index)
                    .map(|v| v.map(Cell::Real)),
                _ => row
                    .try_get::<_, Option<String>>(index)
                    .map(|v| v.map(Cell::Text)),
            };
            Ok(cell.map_err(backend(doing))?.unwrap_or(Cell::Null))
        })
        .collect()
}

impl Conn for Client {
    type Dialect = Postgres;

    async fn query(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> Result<Vec<Vec<Cell>>, MetastoreError> {
        let statement = self.prepare_cached(sql).await.map_err(backend(doing))?;
        let values: Vec<Param<'_>> = params.iter().map(|param| param.param()).collect();
        let values: Vec<_> = values.iter().map(driver_param).collect();
        let rows = tokio_postgres::Client::query(self, &statement, &values)
            .await
            .map_err(backend(doing))?;
        rows.iter().map(|row| cells(doing, row)).collect()
    }

    async fn execute(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> Result<u64, MetastoreError> {
        let statement = self.prepare_cached(sql).await.map_err(backend(doing))?;
        let values: Vec<Param<'_>> = params.iter().map(|param| param.param()).collect();
        let values: Vec<_> = values.iter().map(driver_param).collect();
        tokio_postgres::Client::execute(self, &statement, &values)
            .await
            .map_err(backend(doing))
    }

    /// Runs the statement with typed parameters: one round trip, and no server-side
    /// statement left behind for SQL that varies per request.
    async fn query_built(
        &mut self,
        doing: &'static str,
        statement: &Statement,
    ) -> Result<Vec<Vec<Cell>>, MetastoreError> {
        let params: Vec<_> = statement.binds.iter().map(sql::typed).collect();
        let rows = self
            .query_typed(&statement.sql, &params)
            .await
            .map_err(backend(doing))?;
        rows.iter().map(|row| cells(doing, row)).collect()
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
}
