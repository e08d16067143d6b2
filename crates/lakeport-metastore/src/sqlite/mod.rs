//! The embedded SQLite backend: one file in the data directory, WAL journal, one writer
//! connection and a few readers.
//!
//! Each metastore call runs as one closure on a blocking thread that holds a connection
//! for the whole transaction, so a write costs one thread hand-off instead of one per
//! statement.

mod ingest;
mod sql;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use lakeport_domain::catalog::import::{NewImportBatch, build_import_batch, check_predecessor};
use lakeport_domain::catalog::{self, Actor, WriteContext};
use lakeport_domain::query::{ListQuery, ObjectKind, version_key};
use lakeport_domain::status::BatchStatus;
use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::{ResourceKind, kind_of};
use lakeport_domain::{Doc, now_millis};
use rusqlite::functions::FunctionFlags;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter,
};
use serde_json::Value;

use crate::sql::{Bind, Statement, table};
use crate::{
    BatchFile, DocChange, ExpiredDiagnostics, Metastore, MetastoreError, Promotion,
    StoredDatasetFile, UpdateOptions, UploadLimits,
};
use lakeport_domain::ingest::{Chunk, Job, JobKind};
use lakeport_domain::status::BatchAction;

/// How SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a commit survives a crash or kill of the process;
    /// the last commits may be lost on power failure.
    Process,
    /// `synchronous=FULL`: every commit is fsynced and survives power failure.
    PowerLoss,
}

const READERS: usize = 4;

/// The SQLite metastore.
#[derive(Clone)]
pub struct SqliteMetastore {
    shared: Arc<Shared>,
}

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
    (3, "batch files, jobs and outputs", ingest::MIGRATION),
    (4, "diagnostics retention", ingest::RETENTION_MIGRATION),
    (5, "diagnostics files", ingest::DIAGNOSTICS_FILES_MIGRATION),
];

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

fn corrupt(doing: &'static str, err: serde_json::Error) -> MetastoreError {
    MetastoreError::Backend {
        doing,
        source: Box::new(err),
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
        Ok(Self {
            shared: Arc::new(Shared {
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
                write_gate: Arc::new(tokio::sync::Semaphore::new(1)),
                read_gate: Arc::new(tokio::sync::Semaphore::new(READERS)),
            }),
        })
    }

    /// Runs `work` in one immediate write transaction on a blocking thread.
    async fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, MetastoreError> + Send + 'static,
    ) -> Result<T, MetastoreError> {
        let shared = Arc::clone(&self.shared);
        let permit = gate(&shared.write_gate).await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut conn = shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(backend("starting a write transaction"))?;
            let value = work(&tx)?;
            tx.commit().map_err(backend("committing"))?;
            Ok(value)
        })
        .await
        .map_err(|err| MetastoreError::Backend {
            doing: "running a write",
            source: Box::new(err),
        })?
    }

    /// Runs `work` on a reader connection on a blocking thread.
    async fn read<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, MetastoreError> + Send + 'static,
    ) -> Result<T, MetastoreError> {
        let shared = Arc::clone(&self.shared);
        let permit = gate(&shared.read_gate).await?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let start = shared.next_reader.fetch_add(1, Ordering::Relaxed);
            let count = shared.readers.len();
            // Take the first idle reader, else wait for the one in turn.
            let guard = (0..count)
                .find_map(|offset| shared.readers[(start + offset) % count].try_lock().ok())
                .unwrap_or_else(|| {
                    shared.readers[start % count]
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                });
            work(&guard)
        })
        .await
        .map_err(|err| MetastoreError::Backend {
            doing: "running a read",
            source: Box::new(err),
        })?
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

fn to_sql_values(binds: Vec<Bind>) -> Vec<rusqlite::types::Value> {
    binds
        .into_iter()
        .map(|bind| match bind {
            Bind::Text(text) => rusqlite::types::Value::Text(text),
            Bind::Int(int) => rusqlite::types::Value::Integer(int),
            Bind::Real(real) => rusqlite::types::Value::Real(real),
            Bind::Path(path) => rusqlite::types::Value::Text(sql::json_path(&path)),
        })
        .collect()
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

fn parse_doc(text: &str) -> Result<Doc, MetastoreError> {
    serde_json::from_str(text).map_err(|err| corrupt("decoding a stored document", err))
}

fn field_str<'a>(doc: &'a Doc, field: &str) -> Option<&'a str> {
    doc.get(field).and_then(Value::as_str)
}

fn field_int(doc: &Doc, field: &str) -> i64 {
    doc.get(field).and_then(Value::as_i64).unwrap_or_default()
}

fn load(
    conn: &Connection,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT doc FROM {} WHERE org = ?1 AND sandbox = ?2 AND id = ?3",
        table(kind).name
    );
    let text: Option<String> = conn
        .prepare_cached(&sql)
        .and_then(|mut statement| {
            statement
                .query_row(params![tenant.org(), tenant.sandbox(), id], |row| {
                    row.get(0)
                })
                .optional()
        })
        .map_err(backend("reading an object"))?;
    text.as_deref().map(parse_doc).transpose()
}

fn load_batch_by_external_id(
    conn: &Connection,
    tenant: &Tenant,
    external_id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let text: Option<String> = conn
        .prepare_cached(
            "SELECT doc FROM batches WHERE org = ?1 AND sandbox = ?2 AND external_id = ?3",
        )
        .and_then(|mut statement| {
            statement
                .query_row(
                    params![tenant.org(), tenant.sandbox(), external_id],
                    |row| row.get(0),
                )
                .optional()
        })
        .map_err(backend("looking up a batch by externalId"))?;
    text.as_deref().map(parse_doc).transpose()
}

/// Returns whether the id and (for batches) the externalId are taken in the tenant.
fn taken(
    conn: &Connection,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    external_id: Option<&str>,
) -> Result<(bool, bool), MetastoreError> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {table} WHERE org = ?1 AND sandbox = ?2 AND id = ?3), {external}",
        table = table(kind).name,
        external = if kind == ObjectKind::Batch {
            "EXISTS (SELECT 1 FROM batches WHERE org = ?1 AND sandbox = ?2 AND external_id = ?4)"
        } else {
            "?4 IS NULL AND 0"
        },
    );
    conn.prepare_cached(&sql)
        .and_then(|mut statement| {
            statement.query_row(
                params![tenant.org(), tenant.sandbox(), id, external_id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
        })
        .map_err(backend("checking ids"))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreMode {
    Insert,
    Update,
}

/// Writes a document into its table, inserting or replacing the row of its id, and keeps
/// the indexed columns in step with the document.
fn store(
    conn: &Connection,
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
    let (columns, extra): (&str, Vec<Option<String>>) = match kind {
        ObjectKind::Dataset => ("name", vec![field_str(doc, "name").map(str::to_owned)]),
        ObjectKind::Batch => (
            "status, dataset_id, external_id",
            vec![
                Some(field_str(doc, "status").unwrap_or("loading").to_owned()),
                catalog::batch_dataset_id(doc).map(str::to_owned),
                Some(field_str(doc, "externalId").unwrap_or(id).to_owned()),
            ],
        ),
        ObjectKind::DatasetFile => (
            "dataset_id, batch_id",
            vec![
                field_str(doc, "dataSetId").map(str::to_owned),
                field_str(doc, "batchId").map(str::to_owned),
            ],
        ),
    };
    let mut values: Vec<rusqlite::types::Value> = Vec::with_capacity(12);
    let text_value = |s: &str| rusqlite::types::Value::Text(s.to_owned());
    let sql = match mode {
        StoreMode::Insert => {
            values.extend([
                text_value(tenant.org()),
                text_value(tenant.sandbox()),
                text_value(id),
            ]);
            let placeholders = vec!["?"; extra.len()].join(", ");
            format!(
                "INSERT INTO {} (org, sandbox, id, created, updated, version_key, {columns}, doc) VALUES (?, ?, ?, ?, ?, ?, {placeholders}, ?)",
                table(kind).name
            )
        }
        StoreMode::Update => {
            let assignments: Vec<String> =
                columns.split(", ").map(|c| format!("{c} = ?")).collect();
            format!(
                "UPDATE {} SET created = ?, updated = ?, version_key = ?, {}, doc = ? WHERE org = ? AND sandbox = ? AND id = ?",
                table(kind).name,
                assignments.join(", ")
            )
        }
    };
    values.extend([
        rusqlite::types::Value::Integer(created),
        rusqlite::types::Value::Integer(updated),
        rusqlite::types::Value::Integer(version),
    ]);
    values.extend(
        extra
            .into_iter()
            .map(|v| v.map_or(rusqlite::types::Value::Null, rusqlite::types::Value::Text)),
    );
    values.push(rusqlite::types::Value::Text(text));
    if mode == StoreMode::Update {
        values.extend([
            text_value(tenant.org()),
            text_value(tenant.sandbox()),
            text_value(id),
        ]);
    }
    conn.prepare_cached(&sql)
        .and_then(|mut statement| statement.execute(params_from_iter(values)))
        .map_err(backend("writing an object"))?;
    Ok(())
}

/// Records a batch's creation or status change on its dataset (if the dataset exists).
fn record_on_dataset(
    conn: &Connection,
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
        None => load(conn, tenant, ObjectKind::Dataset, dataset_id)?,
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
}

fn insert_in(
    conn: &Connection,
    tenant: &Tenant,
    kind: ObjectKind,
    doc: &Doc,
    dataset: Option<Doc>,
) -> Result<(), MetastoreError> {
    let id = field_str(doc, "id").unwrap_or_default();
    let external_id =
        (kind == ObjectKind::Batch).then(|| field_str(doc, "externalId").unwrap_or(id));
    let (id_taken, external_id_taken) = taken(conn, tenant, kind, id, external_id)?;
    if id_taken {
        return Err(MetastoreError::AlreadyExists {
            kind,
            id: id.to_owned(),
        });
    }
    if external_id_taken {
        return Err(MetastoreError::DuplicateExternalId {
            external_id: external_id.unwrap_or_default().to_owned(),
        });
    }
    store(conn, tenant, kind, doc, StoreMode::Insert)?;
    if kind == ObjectKind::Batch {
        record_on_dataset(conn, tenant, doc, dataset, true)?;
    }
    Ok(())
}

fn mark_batches_deleted(
    conn: &Connection,
    tenant: &Tenant,
    dataset_id: &str,
    actor: &Actor,
) -> Result<(), MetastoreError> {
    let texts: Vec<String> = conn
        .prepare_cached(
            "SELECT doc FROM batches WHERE org = ?1 AND sandbox = ?2 AND dataset_id = ?3 AND status <> 'deleted'",
        )
        .and_then(|mut statement| {
            statement
                .query_map(params![tenant.org(), tenant.sandbox(), dataset_id], |row| row.get(0))?
                .collect()
        })
        .map_err(backend("reading the batches of a deleted dataset"))?;
    let ctx = WriteContext {
        tenant,
        actor,
        now: now_millis(),
    };
    for text in texts {
        let mut batch = parse_doc(&text)?;
        batch.insert("status".into(), Value::from(BatchStatus::Deleted.as_str()));
        catalog::touch(&mut batch, &ctx);
        store(conn, tenant, ObjectKind::Batch, &batch, StoreMode::Update)?;
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

fn load_resource(
    conn: &Connection,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT doc FROM xdm_resources WHERE org = ?1 AND sandbox = ?2 AND (id = ?3 OR alt_id = ?3)")
        .and_then(|mut statement| {
            statement
                .query_row(params![tenant.org(), tenant.sandbox(), id], |row| row.get(0))
                .optional()
        })
        .map_err(backend("reading a resource"))?;
    text.as_deref().map(parse_doc).transpose()
}

fn check_title(
    conn: &Connection,
    tenant: &Tenant,
    kind: ResourceKind,
    title: &str,
    id: &str,
) -> Result<(), MetastoreError> {
    let taken: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM xdm_resources WHERE org = ?1 AND sandbox = ?2 AND kind = ?3 AND title = ?4 AND id <> ?5)",
        )
        .and_then(|mut statement| {
            statement.query_row(
                params![tenant.org(), tenant.sandbox(), kind.resource_type(), title, id],
                |row| row.get(0),
            )
        })
        .map_err(backend("checking a title"))?;
    if taken {
        return Err(MetastoreError::DuplicateTitle {
            kind,
            title: title.to_owned(),
        });
    }
    Ok(())
}

#[async_trait]
impl Metastore for SqliteMetastore {
    async fn insert(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            insert_in(tx, &tenant, kind, &doc, None)?;
            Ok(doc)
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
        let tenant = tenant.clone();
        let mut unique: Vec<String> = Vec::with_capacity(ids.len());
        for id in ids {
            if !unique.contains(id) {
                unique.push(id.clone());
            }
        }
        let ids = unique;
        self.read(move |conn| {
            let placeholders = vec!["?"; ids.len()].join(", ");
            let sql = format!(
                "SELECT id, doc FROM {} WHERE org = ? AND sandbox = ? AND id IN ({placeholders})",
                table(kind).name
            );
            let mut values = vec![tenant.org().to_owned(), tenant.sandbox().to_owned()];
            values.extend(ids.iter().cloned());
            let found: Vec<(String, String)> = conn
                .prepare_cached(&sql)
                .and_then(|mut statement| {
                    statement
                        .query_map(params_from_iter(values), |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })?
                        .collect()
                })
                .map_err(backend("reading objects"))?;
            let mut docs = Vec::with_capacity(found.len());
            for id in &ids {
                if let Some((_, text)) = found.iter().find(|(found_id, _)| found_id == id) {
                    docs.push(parse_doc(text)?);
                }
            }
            Ok(docs)
        })
        .await
    }

    async fn list(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<Vec<Doc>, MetastoreError> {
        let Statement { sql, binds } =
            crate::sql::select_page::<sql::Sqlite>(kind, tenant.org(), tenant.sandbox(), query);
        self.read(move |conn| {
            let texts: Vec<String> = conn
                .prepare_cached(&positional(&sql))
                .and_then(|mut statement| {
                    statement
                        .query_map(params_from_iter(to_sql_values(binds)), |row| row.get(0))?
                        .collect()
                })
                .map_err(backend("listing objects"))?;
            texts.iter().map(|text| parse_doc(text)).collect()
        })
        .await
    }

    async fn count(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<u64, MetastoreError> {
        let Statement { sql, binds } =
            crate::sql::select_count::<sql::Sqlite>(kind, tenant.org(), tenant.sandbox(), query);
        self.read(move |conn| {
            let count: i64 = conn
                .prepare_cached(&positional(&sql))
                .and_then(|mut statement| {
                    statement.query_row(params_from_iter(to_sql_values(binds)), |row| row.get(0))
                })
                .map_err(backend("counting objects"))?;
            Ok(u64::try_from(count).unwrap_or_default())
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
        let tenant = tenant.clone();
        let id = id.to_owned();
        self.write(move |tx| {
            let Some(current) = load(tx, &tenant, kind, &id)? else {
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
            let next = change(&current)?;
            debug_assert_eq!(
                field_str(&next, "id"),
                Some(id.as_str()),
                "a change never alters the id"
            );
            store(tx, &tenant, kind, &next, StoreMode::Update)?;
            if kind == ObjectKind::Batch
                && catalog::batch_status(&current) != catalog::batch_status(&next)
            {
                record_on_dataset(tx, &tenant, &next, None, false)?;
            }
            Ok(next)
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
        let tenant = tenant.clone();
        let id = id.to_owned();
        let actor = actor.clone();
        self.write(move |tx| {
            let sql = format!(
                "DELETE FROM {} WHERE org = ?1 AND sandbox = ?2 AND id = ?3",
                table(kind).name
            );
            let deleted = tx
                .execute(&sql, params![tenant.org(), tenant.sandbox(), id])
                .map_err(backend("deleting an object"))?
                > 0;
            if deleted {
                let owned_files = match kind {
                    ObjectKind::Dataset => Some("dataset_id"),
                    ObjectKind::Batch => Some("batch_id"),
                    ObjectKind::DatasetFile => None,
                };
                if let Some(column) = owned_files {
                    let sql = format!("DELETE FROM dataset_files WHERE org = ?1 AND sandbox = ?2 AND {column} = ?3");
                    tx.execute(&sql, params![tenant.org(), tenant.sandbox(), id])
                        .map_err(backend("deleting dataset files"))?;
                }
                if kind == ObjectKind::Dataset {
                    mark_batches_deleted(tx, &tenant, &id, &actor)?;
                }
            }
            Ok(deleted)
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
        let tenant = tenant.clone();
        let request = request.clone();
        let batch_id = batch_id.to_owned();
        let actor = actor.clone();
        self.write(move |tx| {
            let Some(dataset) = load(tx, &tenant, ObjectKind::Dataset, &request.dataset_id)? else {
                return Err(MetastoreError::UnknownDataset {
                    id: request.dataset_id.clone(),
                });
            };
            let mut replay_ids = Vec::new();
            if let Some(replay) = &request.replay {
                for reference in &replay.predecessors {
                    let predecessor = load(tx, &tenant, ObjectKind::Batch, reference)?;
                    replay_ids.push(check_predecessor(
                        reference,
                        predecessor.as_ref(),
                        &request.dataset_id,
                    )?);
                }
                for reference in &replay.predecessors_by_external_id {
                    let predecessor = load_batch_by_external_id(tx, &tenant, reference)?;
                    let id =
                        check_predecessor(reference, predecessor.as_ref(), &request.dataset_id)?;
                    if !replay_ids.contains(&id) {
                        replay_ids.push(id);
                    }
                }
            }
            let ctx = WriteContext {
                tenant: &tenant,
                actor: &actor,
                now,
            };
            let doc = build_import_batch(&request, &dataset, &batch_id, &replay_ids, &ctx);
            insert_in(tx, &tenant, ObjectKind::Batch, &doc, Some(dataset))?;
            Ok(doc)
        })
        .await
    }

    async fn insert_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let (id, alt_id, title, version) = resource_keys(&doc);
            check_title(tx, &tenant, kind, &title, &id)?;
            let text = serde_json::to_string(&doc).map_err(|err| corrupt("encoding a resource", err))?;
            tx.prepare_cached(
                "INSERT INTO xdm_resources (org, sandbox, kind, id, alt_id, title, version, created, doc) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    tenant.org(),
                    tenant.sandbox(),
                    kind.resource_type(),
                    id,
                    alt_id,
                    title,
                    version,
                    now_millis(),
                    text
                ])
            })
            .map_err(|err| match err.sqlite_error_code() {
                Some(rusqlite::ErrorCode::ConstraintViolation) => MetastoreError::ResourceExists { id: id.clone() },
                _ => backend("storing a resource")(err),
            })?;
            Ok(doc)
        })
        .await
    }

    async fn get_resource(&self, tenant: &Tenant, id: &str) -> Result<Option<Doc>, MetastoreError> {
        let tenant = tenant.clone();
        let id = id.to_owned();
        self.read(move |conn| load_resource(conn, &tenant, &id))
            .await
    }

    async fn list_resources(
        &self,
        tenant: &Tenant,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<Doc>, MetastoreError> {
        let tenant = tenant.clone();
        self.read(move |conn| {
            let kind = kind.map(ResourceKind::resource_type);
            let texts: Vec<String> = conn
                .prepare_cached(
                    "SELECT doc FROM xdm_resources WHERE org = ?1 AND sandbox = ?2 AND (?3 IS NULL OR kind = ?3) ORDER BY created, id",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![tenant.org(), tenant.sandbox(), kind], |row| row.get(0))?
                        .collect()
                })
                .map_err(backend("listing resources"))?;
            texts.iter().map(|text| parse_doc(text)).collect()
        })
        .await
    }

    async fn resources_containing(
        &self,
        tenant: &Tenant,
        needle: &str,
    ) -> Result<Vec<Doc>, MetastoreError> {
        let tenant = tenant.clone();
        let needle = needle.to_owned();
        self.read(move |conn| {
            let texts: Vec<String> = conn
                .prepare_cached(
                    "SELECT doc FROM xdm_resources WHERE org = ?1 AND sandbox = ?2 AND instr(doc, ?3) > 0 ORDER BY created, id",
                )
                .and_then(|mut statement| {
                    statement
                        .query_map(params![tenant.org(), tenant.sandbox(), needle], |row| {
                            row.get(0)
                        })?
                        .collect()
                })
                .map_err(backend("finding referring resources"))?;
            texts.iter().map(|text| parse_doc(text)).collect()
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
        let tenant = tenant.clone();
        let id = id.to_owned();
        let expected_version = expected_version.to_owned();
        self.write(move |tx| {
            let kind = kind_of(&doc).ok_or_else(|| MetastoreError::Backend {
                doing: "replacing a resource",
                source: "the resource has no meta:resourceType".into(),
            })?;
            let (_, _, title, version) = resource_keys(&doc);
            check_title(tx, &tenant, kind, &title, &id)?;
            let text = serde_json::to_string(&doc).map_err(|err| corrupt("encoding a resource", err))?;
            let changed = tx
                .prepare_cached(
                    "UPDATE xdm_resources SET title = ?1, version = ?2, doc = ?3 WHERE org = ?4 AND sandbox = ?5 AND id = ?6 AND version = ?7",
                )
                .and_then(|mut statement| {
                    statement.execute(params![title, version, text, tenant.org(), tenant.sandbox(), id, expected_version])
                })
                .map_err(backend("replacing a resource"))?;
            if changed == 0 {
                return Err(if load_resource(tx, &tenant, &id)?.is_some() {
                    MetastoreError::ConcurrentChange { id }
                } else {
                    MetastoreError::ResourceNotFound { id }
                });
            }
            Ok(doc)
        })
        .await
    }

    async fn delete_resource(&self, tenant: &Tenant, id: &str) -> Result<bool, MetastoreError> {
        let tenant = tenant.clone();
        let id = id.to_owned();
        self.write(move |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM xdm_resources WHERE org = ?1 AND sandbox = ?2 AND (id = ?3 OR alt_id = ?3)",
                    params![tenant.org(), tenant.sandbox(), id],
                )
                .map_err(backend("deleting a resource"))?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn upload_target(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        dataset_id: &str,
    ) -> Result<Doc, MetastoreError> {
        let (tenant, batch_id, dataset_id) =
            (tenant.clone(), batch_id.to_owned(), dataset_id.to_owned());
        self.read(move |conn| ingest::upload_target(conn, &tenant, &batch_id, &dataset_id))
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
        let (tenant, batch_id, dataset_id, path, upload_id) = (
            tenant.clone(),
            batch_id.to_owned(),
            dataset_id.to_owned(),
            path.to_owned(),
            upload_id.to_owned(),
        );
        self.write(move |tx| {
            ingest::record_file(
                tx,
                &tenant,
                &batch_id,
                &dataset_id,
                &path,
                &upload_id,
                size,
                limits,
                now_millis(),
            )
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
        let (tenant, batch_id, dataset_id, path, upload_id) = (
            tenant.clone(),
            batch_id.to_owned(),
            dataset_id.to_owned(),
            path.to_owned(),
            upload_id.to_owned(),
        );
        self.write(move |tx| {
            ingest::start_chunked_upload(
                tx,
                &tenant,
                &batch_id,
                &dataset_id,
                &path,
                &upload_id,
                now_millis(),
            )
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
        let (tenant, batch_id, dataset_id, path, upload_id) = (
            tenant.clone(),
            batch_id.to_owned(),
            dataset_id.to_owned(),
            path.to_owned(),
            upload_id.to_owned(),
        );
        self.write(move |tx| {
            ingest::record_chunk(
                tx,
                &tenant,
                &batch_id,
                &dataset_id,
                &path,
                &upload_id,
                chunk,
                now_millis(),
            )
        })
        .await
    }

    async fn batch_file(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        path: &str,
    ) -> Result<Option<BatchFile>, MetastoreError> {
        let (tenant, batch_id, path) = (tenant.clone(), batch_id.to_owned(), path.to_owned());
        self.read(move |conn| ingest::batch_file(conn, &tenant, &batch_id, &path))
            .await
    }

    async fn batch_files(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Vec<BatchFile>, MetastoreError> {
        let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
        self.read(move |conn| ingest::batch_files(conn, &tenant, &batch_id))
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
        let (tenant, batch_id, actor) = (tenant.clone(), batch_id.to_owned(), actor.clone());
        self.write(move |tx| {
            ingest::signal_batch(
                tx,
                &tenant,
                &batch_id,
                action,
                &actor,
                now,
                cleanup_delay_ms,
            )
        })
        .await
    }

    async fn claim_job(
        &self,
        worker: &str,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Job>, MetastoreError> {
        let worker = worker.to_owned();
        self.write(move |tx| ingest::claim_job(tx, &worker, lease_ms, now))
            .await
    }

    async fn renew_lease(&self, job: &Job, until: i64) -> Result<bool, MetastoreError> {
        let job = job.clone();
        self.write(move |tx| ingest::renew_lease(tx, &job, until))
            .await
    }

    async fn begin_processing(&self, job: &Job, now: i64) -> Result<Option<Doc>, MetastoreError> {
        let job = job.clone();
        self.write(move |tx| ingest::begin_processing(tx, &job, now))
            .await
    }

    async fn complete_promotion(
        &self,
        job: &Job,
        promotion: Promotion,
        now: i64,
    ) -> Result<Doc, MetastoreError> {
        let job = job.clone();
        self.write(move |tx| ingest::complete_promotion(tx, &job, promotion, now))
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
        let (job, error) = (job.clone(), error.to_owned());
        self.write(move |tx| ingest::retry_job(tx, &job, &error, retry_at, max_attempts, now))
            .await
    }

    async fn finish_job(&self, job: &Job, now: i64) -> Result<(), MetastoreError> {
        let job = job.clone();
        self.write(move |tx| ingest::finish_job(tx, &job, now))
            .await
    }

    async fn enqueue_job(
        &self,
        tenant: &Tenant,
        kind: JobKind,
        batch_id: &str,
        run_at: i64,
    ) -> Result<(), MetastoreError> {
        let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
        self.write(move |tx| {
            ingest::enqueue_job(tx, &tenant, kind, &batch_id, run_at, now_millis())
        })
        .await
    }

    async fn abandon_stale_batches(
        &self,
        created_before: i64,
        now: i64,
    ) -> Result<Vec<(Tenant, String)>, MetastoreError> {
        self.write(move |tx| ingest::abandon_stale_batches(tx, created_before, now))
            .await
    }

    async fn dataset_file(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<StoredDatasetFile>, MetastoreError> {
        let (tenant, id) = (tenant.clone(), id.to_owned());
        self.read(move |conn| ingest::dataset_file(conn, &tenant, &id))
            .await
    }

    async fn batch_dataset_files(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Vec<StoredDatasetFile>, MetastoreError> {
        let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
        self.read(move |conn| ingest::batch_dataset_files(conn, &tenant, &batch_id))
            .await
    }

    async fn diagnostics_location(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Option<String>, MetastoreError> {
        let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
        self.read(move |conn| ingest::diagnostics_location(conn, &tenant, &batch_id))
            .await
    }

    async fn diagnostics_files(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<Option<Vec<crate::DiagnosticsFile>>, MetastoreError> {
        let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
        self.read(move |conn| ingest::diagnostics_files(conn, &tenant, &batch_id))
            .await
    }

    async fn expired_diagnostics(
        &self,
        completed_before: i64,
        limit: u32,
    ) -> Result<Vec<ExpiredDiagnostics>, MetastoreError> {
        self.read(move |conn| ingest::expired_diagnostics(conn, completed_before, limit))
            .await
    }

    async fn clear_diagnostics(
        &self,
        tenant: &Tenant,
        batch_id: &str,
    ) -> Result<bool, MetastoreError> {
        let (tenant, batch_id) = (tenant.clone(), batch_id.to_owned());
        self.write(move |tx| ingest::clear_diagnostics(tx, &tenant, &batch_id))
            .await
    }

    async fn ping(&self) -> Result<(), MetastoreError> {
        self.read(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(backend("pinging the database"))
        })
        .await
    }
}
