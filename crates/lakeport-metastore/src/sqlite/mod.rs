//! The embedded SQLite backend: one file in the data directory, WAL journal, one writer
//! connection and a few readers.
//!
//! Each metastore call runs as one closure on a blocking thread that holds a connection
//! for the whole transaction, so a write costs one thread hand-off instead of one per
//! statement. The shared operations are `async` (PostgreSQL's connection awaits); here no
//! statement ever waits, so the closure polls the operation once and it is done.

mod sql;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use lakeport_domain::now_millis;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, TransactionBehavior, params, params_from_iter};

pub(crate) use self::sql::Sqlite;
use crate::MetastoreError;
use crate::backend::{Backend, BoxFuture, Cell, Conn, Param, ToParam};
use crate::sql::Statement;
use crate::store::SqlStore;

/// How SQLite syncs commits to disk.
pub use lakeport_domain::Durability;

const READERS: usize = 4;

/// The SQLite metastore.
pub type SqliteMetastore = SqlStore<SqliteBackend>;

/// The SQLite connections behind a [`SqliteMetastore`].
#[derive(Clone)]
pub struct SqliteBackend(Arc<Shared>);

struct Shared {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// One permit per connection, taken before a call goes to the blocking pool: a request
    /// that would only wait for a busy connection waits here as a task, not as a blocking
    /// thread. Without it, N concurrent writers held N blocking threads parked on the writer's
    /// mutex, each with its own stack and allocator heap (the soak's RSS growth).
    write_gate: Arc<tokio::sync::Semaphore>,
    read_gate: Arc<tokio::sync::Semaphore>,
}

/// The schema, one migration per entry, applied in order and recorded in
/// `lakeport_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "catalog tables",
        r#"
CREATE TABLE datasets (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    id TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    version_key INTEGER NOT NULL,
    name TEXT,
    doc TEXT NOT NULL,
    UNIQUE (org, sandbox, id)
);
CREATE INDEX datasets_by_created ON datasets (org, sandbox, created, id);
CREATE INDEX datasets_by_name ON datasets (org, sandbox, name);

CREATE TABLE batches (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    id TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    version_key INTEGER NOT NULL,
    status TEXT NOT NULL,
    dataset_id TEXT,
    external_id TEXT NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (org, sandbox, id),
    UNIQUE (org, sandbox, external_id)
);
CREATE INDEX batches_by_created ON batches (org, sandbox, created, id);
CREATE INDEX batches_by_dataset ON batches (org, sandbox, dataset_id, created, id);
CREATE INDEX batches_by_status ON batches (org, sandbox, status, created, id);

CREATE TABLE dataset_files (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    id TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    version_key INTEGER NOT NULL,
    dataset_id TEXT,
    batch_id TEXT,
    doc TEXT NOT NULL,
    UNIQUE (org, sandbox, id)
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
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    alt_id TEXT NOT NULL,
    title TEXT NOT NULL,
    version TEXT NOT NULL,
    created INTEGER NOT NULL,
    doc TEXT NOT NULL,
    UNIQUE (org, sandbox, id),
    UNIQUE (org, sandbox, alt_id),
    UNIQUE (org, sandbox, kind, title)
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
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    job_id INTEGER NOT NULL,
    worker TEXT NOT NULL,
    since INTEGER NOT NULL,
    UNIQUE (org, sandbox, dataset_id)
);
CREATE INDEX table_locks_by_job ON table_locks (job_id);
"#;

/// Group commit (spec §10.3): a `stream_records` row holds a chunk of one or more records
/// (JSON Lines), and each tenant's Flow Service generation lets an append made with a
/// cached inlet see, in its own transaction, whether the routing changed.
const STREAM_CHUNKS_MIGRATION: &str = r#"
ALTER TABLE stream_records ADD COLUMN records INTEGER NOT NULL DEFAULT 1;
CREATE TABLE flow_generations (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    generation INTEGER NOT NULL,
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
ALTER TABLE stream_datasets ADD COLUMN sealed_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stream_datasets ADD COLUMN open_records INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stream_segments ADD COLUMN after_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE stream_segments ADD COLUMN last_id INTEGER NOT NULL DEFAULT 0;
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
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    state TEXT,
    deleted INTEGER NOT NULL,
    hidden INTEGER NOT NULL,
    name TEXT,
    body TEXT NOT NULL,
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
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    created INTEGER NOT NULL,
    inlet_id TEXT,
    body TEXT NOT NULL,
    UNIQUE (org, sandbox, kind, id)
);
CREATE UNIQUE INDEX flow_objects_by_inlet ON flow_objects (inlet_id) WHERE inlet_id IS NOT NULL;
CREATE INDEX flow_objects_by_created ON flow_objects (org, sandbox, kind, created, id);
CREATE TABLE stream_datasets (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    next_segment INTEGER NOT NULL,
    open_since INTEGER,
    open_bytes INTEGER NOT NULL,
    UNIQUE (org, sandbox, dataset_id)
);
CREATE INDEX stream_datasets_open ON stream_datasets (open_since) WHERE open_since IS NOT NULL;
CREATE TABLE stream_records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    segment INTEGER,
    received INTEGER NOT NULL,
    connection_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX stream_records_by_segment ON stream_records (org, sandbox, dataset_id, segment, id);
CREATE TABLE stream_segments (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    segment INTEGER NOT NULL,
    batch_id TEXT NOT NULL,
    records INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    done INTEGER NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (org, sandbox, dataset_id, segment),
    UNIQUE (org, sandbox, batch_id)
);
"#;

const MIGRATION: &str = r#"
CREATE TABLE batch_files (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    upload_id TEXT,
    chunks TEXT,
    updated INTEGER NOT NULL,
    UNIQUE (org, sandbox, batch_id, path)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    kind TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    run_after INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    last_error TEXT,
    created INTEGER NOT NULL,
    updated INTEGER NOT NULL
);
CREATE INDEX jobs_runnable ON jobs (status, run_after, id);
CREATE TABLE batch_outputs (
    org TEXT NOT NULL,
    sandbox TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    diagnostics TEXT,
    UNIQUE (org, sandbox, batch_id)
);
ALTER TABLE dataset_files ADD COLUMN location TEXT;
"#;

/// Records each batch's `completed` time next to its diagnostics location, so the
/// retention sweep finds expired diagnostics through an index instead of reading every
/// batch document.
const RETENTION_MIGRATION: &str = r#"
ALTER TABLE batch_outputs ADD COLUMN completed INTEGER;
UPDATE batch_outputs SET completed = (
    SELECT json_extract(b.doc, '$.completed') FROM batches b
    WHERE b.org = batch_outputs.org AND b.sandbox = batch_outputs.sandbox AND b.id = batch_outputs.batch_id
);
CREATE INDEX batch_outputs_expiring ON batch_outputs (completed) WHERE diagnostics IS NOT NULL;
"#;

/// Records the diagnostics files next to their location (JSON text; NULL for batches
/// promoted before this migration, whose files Data Access finds by listing storage).
const DIAGNOSTICS_FILES_MIGRATION: &str = r#"
ALTER TABLE batch_outputs ADD COLUMN files TEXT;
"#;

fn backend(doing: &'static str) -> impl FnOnce(rusqlite::Error) -> MetastoreError {
    move |source| {
        let busy = matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
        if busy {
            MetastoreError::Unavailable(format!("{doing}: {source}"))
        } else {
            MetastoreError::Backend {
                doing,
                source: Box::new(source),
            }
        }
    }
}

/// Returns the file path of a `sqlite://path` (or `sqlite:path`) URL.
fn path_of(url: &str) -> Result<PathBuf, MetastoreError> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| MetastoreError::Unavailable(format!("{url:?} is not a sqlite:// URL")))?;
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() {
        return Err(MetastoreError::Unavailable(format!(
            "{url:?} names no database file"
        )));
    }
    Ok(PathBuf::from(path))
}

fn configure(conn: &Connection, durability: Durability) -> Result<(), MetastoreError> {
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(backend("setting the busy timeout"))?;
    let synchronous = match durability {
        Durability::Process => "NORMAL",
        Durability::PowerLoss => "FULL",
    };
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON;"
    ))
    .map_err(backend("configuring a connection"))?;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let pattern = ctx.get_or_create_aux(
                0,
                |value| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(regex::Regex::new(value.as_str()?)?)
                },
            )?;
            let text: Option<String> = ctx.get(1)?;
            Ok(text.is_some_and(|text| pattern.is_match(&text)))
        },
    )
    .map_err(backend("registering the regexp function"))?;
    Ok(())
}

fn open_connection(
    path: &Path,
    flags: OpenFlags,
    durability: Durability,
) -> Result<Connection, MetastoreError> {
    let conn =
        Connection::open_with_flags(path, flags).map_err(backend("opening the SQLite database"))?;
    configure(&conn, durability)?;
    Ok(conn)
}

impl SqliteMetastore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/catalog.db`)
    /// and applies pending migrations.
    ///
    /// # Errors
    /// Fails when the file cannot be opened or a migration fails.
    pub async fn open(url: &str, durability: Durability) -> Result<Self, MetastoreError> {
        let path = path_of(url)?;
        tokio::task::spawn_blocking(move || Self::open_blocking(&path, durability))
            .await
            .map_err(|err| MetastoreError::Backend {
                doing: "opening the SQLite database",
                source: Box::new(err),
            })?
    }

    fn open_blocking(path: &Path, durability: Durability) -> Result<Self, MetastoreError> {
        let mut writer = open_connection(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            durability,
        )?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(backend("switching to WAL"))?;
        migrate(&mut writer)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = open_connection(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                durability,
            )?;
            readers.push(Mutex::new(reader));
        }
        Ok(SqlStore {
            bell: Arc::default(),
            backend: SqliteBackend(Arc::new(Shared {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                write_gate: Arc::new(tokio::sync::Semaphore::new(1)),
                read_gate: Arc::new(tokio::sync::Semaphore::new(READERS)),
            })),
        })
    }
}

/// Polls a shared operation on a SQLite connection to its end: none of its statements
/// waits, so one poll finishes it.
fn run_ready<T>(mut work: BoxFuture<'_, Result<T, MetastoreError>>) -> Result<T, MetastoreError> {
    match work.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => result,
        Poll::Pending => Err(MetastoreError::Backend {
            doing: "running a SQLite call",
            source: "an operation waited on a SQLite connection".into(),
        }),
    }
}

/// Runs `work` in one immediate write transaction.
fn transaction<T>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> Result<T, MetastoreError>,
) -> Result<T, MetastoreError> {
    if !conn.is_autocommit() {
        // A call that panicked left its transaction open.
        conn.execute_batch("ROLLBACK")
            .map_err(backend("rolling back an abandoned transaction"))?;
    }
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(backend("starting a write transaction"))?;
    let result = work(conn).and_then(|value| {
        conn.execute_batch("COMMIT")
            .map(|()| value)
            .map_err(backend("committing"))
    });
    if result.is_err() && !conn.is_autocommit() {
        // The error is the caller's answer; a failed rollback shows on the next call.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

impl Backend for SqliteBackend {
    type Conn = Connection;

    /// Runs `work` in one immediate write transaction on a blocking thread.
    fn write<T, F>(
        &self,
        doing: &'static str,
        mut work: F,
    ) -> impl Future<Output = Result<T, MetastoreError>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut Connection) -> BoxFuture<'c, Result<T, MetastoreError>>
            + Send
            + 'static,
    {
        let shared = Arc::clone(&self.0);
        async move {
            let permit = gate(&shared.write_gate).await?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let mut conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
                transaction(&mut conn, |conn| run_ready(work(conn)))
            })
            .await
            .map_err(|err| MetastoreError::Backend {
                doing,
                source: Box::new(err),
            })?
        }
    }

    /// Runs `work` on a reader connection on a blocking thread.
    fn read<T, F>(
        &self,
        doing: &'static str,
        mut work: F,
    ) -> impl Future<Output = Result<T, MetastoreError>> + Send
    where
        T: Send + 'static,
        F: for<'c> FnMut(&'c mut Connection) -> BoxFuture<'c, Result<T, MetastoreError>>
            + Send
            + 'static,
    {
        let shared = Arc::clone(&self.0);
        async move {
            let permit = gate(&shared.read_gate).await?;
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                let start = shared.next_reader.fetch_add(1, Ordering::Relaxed);
                let count = shared.readers.len();
                // Take the first idle reader, else wait for the one in turn.
                let mut guard = (0..count)
                    .find_map(|offset| shared.readers[(start + offset) % count].try_lock().ok())
                    .unwrap_or_else(|| {
                        shared.readers[start % count]
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                    });
                run_ready(work(&mut guard))
            })
            .await
            .map_err(|err| MetastoreError::Backend {
                doing,
                source: Box::new(err),
            })?
        }
    }
}

/// Waits for a permit of `gate` (held until the blocking call ends, even when the caller
/// stops waiting for it).
async fn gate(
    gate: &Arc<tokio::sync::Semaphore>,
) -> Result<tokio::sync::OwnedSemaphorePermit, MetastoreError> {
    Arc::clone(gate)
        .acquire_owned()
        .await
        .map_err(|err| MetastoreError::Backend {
            doing: "waiting for a connection",
            source: Box::new(err),
        })
}

fn migrate(conn: &mut Connection) -> Result<(), MetastoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend("starting the migration"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS lakeport_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)",
    )
    .map_err(backend("creating the migrations table"))?;
    let applied: Option<i64> = tx
        .query_row("SELECT MAX(version) FROM lakeport_migrations", [], |row| {
            row.get(0)
        })
        .map_err(backend("reading the schema version"))?;
    for (version, name, script) in MIGRATIONS {
        if applied.is_some_and(|applied| applied >= *version) {
            continue;
        }
        tracing::info!(
            migration.version = version,
            migration.name = name,
            "applying metastore migration"
        );
        tx.execute_batch(script)
            .map_err(backend("applying a migration"))?;
        tx.execute(
            "INSERT INTO lakeport_migrations (version, name, applied) VALUES (?1, ?2, ?3)",
            params![version, name, now_millis()],
        )
        .map_err(backend("recording a migration"))?;
    }
    tx.commit().map_err(backend("committing the migration"))
}

/// Rewrites the shared SQL's `$n` placeholders as SQLite's `?n`.
fn positional(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(ch);
        }
    }
    out
}

fn bind(param: Param<'_>) -> ToSqlOutput<'_> {
    match param {
        Param::Null => ToSqlOutput::Owned(rusqlite::types::Value::Null),
        Param::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
        Param::Int(int) => ToSqlOutput::Owned(rusqlite::types::Value::Integer(int)),
        Param::Real(real) => ToSqlOutput::Owned(rusqlite::types::Value::Real(real)),
        Param::Path(path) => ToSqlOutput::Owned(rusqlite::types::Value::Text(sql::json_path(path))),
    }
}

fn cell(value: ValueRef<'_>) -> Result<Cell, MetastoreError> {
    Ok(match value {
        ValueRef::Null => Cell::Null,
        ValueRef::Integer(int) => Cell::Int(int),
        ValueRef::Real(real) => Cell::Real(real),
        ValueRef::Text(text) => Cell::Text(String::from_utf8_lossy(text).into_owned()),
        ValueRef::Blob(_) => {
            return Err(MetastoreError::Backend {
                doing: "reading a row",
                source: "a column held a blob".into(),
            });
        }
    })
}

fn query_now(
    conn: &Connection,
    doing: &'static str,
    sql: &str,
    params: &[&dyn ToParam],
) -> Result<Vec<Vec<Cell>>, MetastoreError> {
    let mut statement = conn
        .prepare_cached(&positional(sql))
        .map_err(backend(doing))?;
    let columns = statement.column_count();
    let mut rows = statement
        .query(params_from_iter(
            params.iter().map(|param| bind(param.param())),
        ))
        .map_err(backend(doing))?;
    let mut found = Vec::new();
    while let Some(row) = rows.next().map_err(backend(doing))? {
        let cells = (0..columns)
            .map(|index| cell(row.get_ref(index).map_err(backend(doing))?))
            .collect::<Result<_, _>>()?;
        found.push(cells);
    }
    Ok(found)
}

impl Conn for Connection {
    type Dialect = Sqlite;

    fn query(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> impl Future<Output = Result<Vec<Vec<Cell>>, MetastoreError>> + Send {
        std::future::ready(query_now(self, doing, sql, params))
    }

    fn execute(
        &mut self,
        doing: &'static str,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> impl Future<Output = Result<u64, MetastoreError>> + Send {
        let changed = self
            .prepare_cached(&positional(sql))
            .and_then(|mut statement| {
                statement.execute(params_from_iter(
                    params.iter().map(|param| bind(param.param())),
                ))
            })
            .map_err(backend(doing))
            .map(|changed| changed as u64);
        std::future::ready(changed)
    }

    fn query_built(
        &mut self,
        doing: &'static str,
        statement: &Statement,
    ) -> impl Future<Output = Result<Vec<Vec<Cell>>, MetastoreError>> + Send {
        let params: Vec<&dyn ToParam> = statement
            .binds
            .iter()
            .map(|bind| bind as &dyn ToParam)
            .collect();
        std::future::ready(query_now(self, doing, &statement.sql, &params))
    }

    fn unique_violation(err: &MetastoreError) -> Option<&str> {
        let MetastoreError::Backend { source, .. } = err else {
            return None;
        };
        let code = source
            .downcast_ref::<rusqlite::Error>()?
            .sqlite_error_code()?;
        (code == rusqlite::ErrorCode::ConstraintViolation).then_some("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log written before segments were id ranges: a sealed segment (its records marked
    /// with its number), records of an older done segment already dropped, and an open
    /// segment; another dataset's records interleaved.
    #[test]
    fn the_range_migration_keeps_sealed_and_open_records_apart() {
        let conn = Connection::open_in_memory().unwrap();
        let ranges = MIGRATIONS.iter().position(|(v, ..)| *v == 10).unwrap();
        for (_, _, script) in &MIGRATIONS[..ranges] {
            conn.execute_batch(script).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO stream_datasets (org, sandbox, dataset_id, next_segment, open_since, open_bytes) VALUES ('o', 'prod', 'd1', 4, 500, 20), ('o', 'prod', 'd2', 1, 500, 5), ('o', 'prod', 'd3', 2, NULL, 0);
             INSERT INTO stream_records (id, org, sandbox, dataset_id, segment, received, connection_id, size, records, body) VALUES
               (10, 'o', 'prod', 'd1', 3, 1, 'c', 5, 2, 'a'), (11, 'o', 'prod', 'd2', NULL, 1, 'c', 5, 1, 'x'),
               (12, 'o', 'prod', 'd1', 3, 1, 'c', 5, 1, 'b'), (13, 'o', 'prod', 'd1', NULL, 1, 'c', 10, 3, 'c'),
               (14, 'o', 'prod', 'd1', NULL, 1, 'c', 10, 4, 'd');
             INSERT INTO stream_segments (org, sandbox, dataset_id, segment, batch_id, records, bytes, done, created) VALUES
               ('o', 'prod', 'd1', 3, 'B3', 3, 10, 0, 1);",
        )
        .unwrap();
        conn.execute_batch(MIGRATIONS[ranges].2).unwrap();
        let segment: (i64, i64) = conn
            .query_row(
                "SELECT after_id, last_id FROM stream_segments WHERE batch_id = 'B3'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(segment, (9, 12), "segment 3 is ids 10..=12 of d1");
        let open = |dataset: &str| -> (i64, i64) {
            conn.query_row(
                "SELECT sealed_through, open_records FROM stream_datasets WHERE dataset_id = ?1",
                [dataset],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
        };
        assert_eq!(
            open("d1"),
            (12, 7),
            "d1's open segment is ids 13 and 14, 3 + 4 records"
        );
        assert_eq!(open("d2"), (10, 1));
        assert_eq!(open("d3"), (0, 0), "no records at all");
    }
}
