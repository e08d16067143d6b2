//! The embedded SQLite backend: one file in the data directory, WAL journal, one writer
//! connection and a small pool of readers.

mod sql;

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use lakeport_domain::catalog::import::{NewImportBatch, build_import_batch, check_predecessor};
use lakeport_domain::catalog::{self, Actor, WriteContext};
use lakeport_domain::query::{ListQuery, ObjectKind, version_key};
use lakeport_domain::status::BatchStatus;
use lakeport_domain::tenant::Tenant;
use lakeport_domain::{Doc, now_millis};
use serde_json::Value;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row, SqliteConnection};

use self::sql::{Bind, Statement, table};
use crate::{DocChange, Metastore, MetastoreError, UpdateOptions};

/// How SQLite syncs commits to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=NORMAL` in WAL mode: a commit survives a crash or kill of the process;
    /// the last commits may be lost on power failure.
    Process,
    /// `synchronous=FULL`: every commit is fsynced and survives power failure.
    PowerLoss,
}

/// The SQLite metastore.
#[derive(Debug, Clone)]
pub struct SqliteMetastore {
    writer: SqlitePool,
    reader: SqlitePool,
}

/// The schema, one migration per entry, applied in order and recorded in
/// `lakeport_migrations`.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
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
)];

fn backend(doing: &'static str) -> impl FnOnce(sqlx::Error) -> MetastoreError {
    move |source| match source {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
            MetastoreError::Unavailable(format!("{doing}: {source}"))
        }
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

impl SqliteMetastore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path/to/catalog.db`)
    /// and applies pending migrations.
    ///
    /// # Errors
    /// Fails when the file cannot be opened or a migration fails.
    pub async fn open(url: &str, durability: Durability) -> Result<Self, MetastoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(backend("parsing the SQLite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match durability {
                Durability::Process => SqliteSynchronous::Normal,
                Durability::PowerLoss => SqliteSynchronous::Full,
            })
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("case_sensitive_like", "ON")
            .with_regexp();
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.clone())
            .await
            .map_err(backend("opening the SQLite database"))?;
        let store = Self {
            reader: SqlitePoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options.read_only(true))
                .await
                .map_err(backend("opening the SQLite database for reading"))?,
            writer,
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), MetastoreError> {
        let mut tx = self
            .writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend("starting the migration"))?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS lakeport_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied INTEGER NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(backend("creating the migrations table"))?;
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM lakeport_migrations")
                .fetch_one(&mut *tx)
                .await
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
            sqlx::raw_sql(AssertSqlSafe(*script))
                .execute(&mut *tx)
                .await
                .map_err(backend("applying a migration"))?;
            sqlx::query(
                "INSERT INTO lakeport_migrations (version, name, applied) VALUES (?, ?, ?)",
            )
            .bind(version)
            .bind(name)
            .bind(now_millis())
            .execute(&mut *tx)
            .await
            .map_err(backend("recording a migration"))?;
        }
        tx.commit()
            .await
            .map_err(backend("committing the migration"))
    }

    async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, MetastoreError> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend("starting a write transaction"))
    }
}

fn bind_all<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    binds: Vec<Bind>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Int(int) => query.bind(int),
            Bind::Real(real) => query.bind(real),
        };
    }
    query
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

async fn load(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT doc FROM {} WHERE org = ? AND sandbox = ? AND id = ?",
        table(kind).name
    );
    let row: Option<String> = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(tenant.org())
        .bind(tenant.sandbox())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend("reading an object"))?;
    row.as_deref().map(parse_doc).transpose()
}

async fn load_batch_by_external_id(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    external_id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let row: Option<String> = sqlx::query_scalar(
        "SELECT doc FROM batches WHERE org = ? AND sandbox = ? AND external_id = ?",
    )
    .bind(tenant.org())
    .bind(tenant.sandbox())
    .bind(external_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend("looking up a batch by externalId"))?;
    row.as_deref().map(parse_doc).transpose()
}

async fn exists(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
) -> Result<bool, MetastoreError> {
    let sql = format!(
        "SELECT 1 FROM {} WHERE org = ? AND sandbox = ? AND id = ?",
        table(kind).name
    );
    let row: Option<i64> = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(tenant.org())
        .bind(tenant.sandbox())
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend("checking an id"))?;
    Ok(row.is_some())
}

/// Writes a document into its table, inserting or replacing the row of its id, and keeps
/// the indexed columns in step with the document.
async fn store(
    conn: &mut SqliteConnection,
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
    let placeholders = vec!["?"; extra.len()].join(", ");
    let sql = match mode {
        StoreMode::Insert => format!(
            "INSERT INTO {} (org, sandbox, id, created, updated, version_key, {columns}, doc) VALUES (?, ?, ?, ?, ?, ?, {placeholders}, ?)",
            table(kind).name
        ),
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
    let mut query = sqlx::query(AssertSqlSafe(sql));
    if mode == StoreMode::Insert {
        query = query.bind(tenant.org()).bind(tenant.sandbox()).bind(id);
    }
    query = query.bind(created).bind(updated).bind(version);
    for value in extra {
        query = query.bind(value);
    }
    query = query.bind(text);
    if mode == StoreMode::Update {
        query = query.bind(tenant.org()).bind(tenant.sandbox()).bind(id);
    }
    query
        .execute(&mut *conn)
        .await
        .map_err(backend("writing an object"))?;
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreMode {
    Insert,
    Update,
}

/// Records a batch's creation or status change on its dataset (if the dataset exists).
async fn record_on_dataset(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    batch: &Doc,
    created: bool,
) -> Result<(), MetastoreError> {
    let (Some(dataset_id), Some(status), Some(batch_id)) = (
        catalog::batch_dataset_id(batch),
        catalog::batch_status(batch),
        field_str(batch, "id"),
    ) else {
        return Ok(());
    };
    let Some(mut dataset) = load(conn, tenant, ObjectKind::Dataset, dataset_id).await? else {
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

async fn insert_in(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    kind: ObjectKind,
    doc: &Doc,
) -> Result<(), MetastoreError> {
    let id = field_str(doc, "id").unwrap_or_default();
    if exists(conn, tenant, kind, id).await? {
        return Err(MetastoreError::AlreadyExists {
            kind,
            id: id.to_owned(),
        });
    }
    if kind == ObjectKind::Batch {
        let external_id = field_str(doc, "externalId").unwrap_or(id);
        if load_batch_by_external_id(conn, tenant, external_id)
            .await?
            .is_some()
        {
            return Err(MetastoreError::DuplicateExternalId {
                external_id: external_id.to_owned(),
            });
        }
    }
    store(conn, tenant, kind, doc, StoreMode::Insert).await?;
    if kind == ObjectKind::Batch {
        record_on_dataset(conn, tenant, doc, true).await?;
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
        let mut tx = self.begin_write().await?;
        insert_in(&mut tx, tenant, kind, &doc).await?;
        tx.commit().await.map_err(backend("committing an insert"))?;
        Ok(doc)
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
        let placeholders = vec!["?"; ids.len()].join(", ");
        let sql = format!(
            "SELECT id, doc FROM {} WHERE org = ? AND sandbox = ? AND id IN ({placeholders})",
            table(kind).name
        );
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.org())
            .bind(tenant.sandbox());
        for id in ids {
            query = query.bind(id);
        }
        let rows = query
            .fetch_all(&self.reader)
            .await
            .map_err(backend("reading objects"))?;
        let mut found = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id").map_err(backend("reading an id"))?;
            let doc: String = row.try_get("doc").map_err(backend("reading a document"))?;
            found.push((id, doc));
        }
        let mut docs = Vec::with_capacity(found.len());
        for id in ids {
            if let Some((_, text)) = found.iter().find(|(found_id, _)| found_id == id)
                && !docs
                    .iter()
                    .any(|doc: &Doc| field_str(doc, "id") == Some(id))
            {
                docs.push(parse_doc(text)?);
            }
        }
        Ok(docs)
    }

    async fn list(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<Vec<Doc>, MetastoreError> {
        let Statement { sql, binds } =
            sql::select_page(kind, tenant.org(), tenant.sandbox(), query);
        let rows: Vec<String> = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_all(&self.reader)
            .await
            .map_err(backend("listing objects"))?
            .into_iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(backend("reading a listed document"))?;
        rows.iter().map(|text| parse_doc(text)).collect()
    }

    async fn count(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<u64, MetastoreError> {
        let Statement { sql, binds } =
            sql::select_count(kind, tenant.org(), tenant.sandbox(), query);
        let row = bind_all(sqlx::query(AssertSqlSafe(sql)), binds)
            .fetch_one(&self.reader)
            .await
            .map_err(backend("counting objects"))?;
        let count: i64 = row.try_get(0).map_err(backend("reading a count"))?;
        Ok(u64::try_from(count).unwrap_or_default())
    }

    async fn update(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        options: UpdateOptions,
        change: DocChange,
    ) -> Result<Doc, MetastoreError> {
        let mut tx = self.begin_write().await?;
        let Some(current) = load(&mut tx, tenant, kind, id).await? else {
            return Err(MetastoreError::NotFound {
                kind,
                id: id.to_owned(),
            });
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
            Some(id),
            "a change never alters the id"
        );
        store(&mut tx, tenant, kind, &next, StoreMode::Update).await?;
        if kind == ObjectKind::Batch
            && catalog::batch_status(&current) != catalog::batch_status(&next)
        {
            record_on_dataset(&mut tx, tenant, &next, false).await?;
        }
        tx.commit().await.map_err(backend("committing an update"))?;
        Ok(next)
    }

    async fn delete(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        actor: &Actor,
    ) -> Result<bool, MetastoreError> {
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "DELETE FROM {} WHERE org = ? AND sandbox = ? AND id = ?",
            table(kind).name
        );
        let deleted = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.org())
            .bind(tenant.sandbox())
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend("deleting an object"))?
            .rows_affected()
            > 0;
        if deleted {
            let owned_files = match kind {
                ObjectKind::Dataset => Some("dataset_id"),
                ObjectKind::Batch => Some("batch_id"),
                ObjectKind::DatasetFile => None,
            };
            if let Some(column) = owned_files {
                let sql = format!(
                    "DELETE FROM dataset_files WHERE org = ? AND sandbox = ? AND {column} = ?"
                );
                sqlx::query(AssertSqlSafe(sql))
                    .bind(tenant.org())
                    .bind(tenant.sandbox())
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend("deleting dataset files"))?;
            }
            if kind == ObjectKind::Dataset {
                mark_batches_deleted(&mut tx, tenant, id, actor).await?;
            }
        }
        tx.commit().await.map_err(backend("committing a delete"))?;
        Ok(deleted)
    }

    async fn create_import_batch(
        &self,
        tenant: &Tenant,
        request: &NewImportBatch,
        batch_id: &str,
        actor: &Actor,
        now: i64,
    ) -> Result<Doc, MetastoreError> {
        let mut tx = self.begin_write().await?;
        let Some(dataset) = load(&mut tx, tenant, ObjectKind::Dataset, &request.dataset_id).await?
        else {
            return Err(MetastoreError::UnknownDataset {
                id: request.dataset_id.clone(),
            });
        };
        let mut replay_ids = Vec::new();
        if let Some(replay) = &request.replay {
            for reference in &replay.predecessors {
                let predecessor = load(&mut tx, tenant, ObjectKind::Batch, reference).await?;
                replay_ids.push(check_predecessor(
                    reference,
                    predecessor.as_ref(),
                    &request.dataset_id,
                )?);
            }
            for reference in &replay.predecessors_by_external_id {
                let predecessor = load_batch_by_external_id(&mut tx, tenant, reference).await?;
                let id = check_predecessor(reference, predecessor.as_ref(), &request.dataset_id)?;
                if !replay_ids.contains(&id) {
                    replay_ids.push(id);
                }
            }
        }
        let ctx = WriteContext { tenant, actor, now };
        let doc = build_import_batch(request, &dataset, batch_id, &replay_ids, &ctx);
        insert_in(&mut tx, tenant, ObjectKind::Batch, &doc).await?;
        tx.commit()
            .await
            .map_err(backend("committing a new batch"))?;
        Ok(doc)
    }

    async fn ping(&self) -> Result<(), MetastoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.reader)
            .await
            .map_err(backend("pinging the database"))?;
        Ok(())
    }
}

async fn mark_batches_deleted(
    conn: &mut SqliteConnection,
    tenant: &Tenant,
    dataset_id: &str,
    actor: &Actor,
) -> Result<(), MetastoreError> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT doc FROM batches WHERE org = ? AND sandbox = ? AND dataset_id = ? AND status <> 'deleted'",
    )
    .bind(tenant.org())
    .bind(tenant.sandbox())
    .bind(dataset_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend("reading the batches of a deleted dataset"))?;
    let ctx = WriteContext {
        tenant,
        actor,
        now: now_millis(),
    };
    for text in rows {
        let mut batch = parse_doc(&text)?;
        batch.insert("status".into(), Value::from(BatchStatus::Deleted.as_str()));
        catalog::touch(&mut batch, &ctx);
        store(conn, tenant, ObjectKind::Batch, &batch, StoreMode::Update).await?;
    }
    Ok(())
}
