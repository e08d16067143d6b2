//! The open lake (spec §12): every dataset is one Delta Lake table at its root in object
//! storage (`lake/<org>/<sandbox>/datasets/<id>/`, a local directory or an S3 bucket), so
//! DuckDB, Polars, Spark and delta-rs read it without Lakeport in the path.
//!
//! Each batch that reaches `success` is one commit of `add` actions for its Parquet parts,
//! its `commitInfo` naming the batch ([`BATCH_ID_KEY`]); REVERT commits `remove` actions, and
//! a replay removes its predecessors' files in the commit that adds its own. A commit for a
//! batch is written at most once: a retry searches the log since the batch was created for
//! one, so a worker that crashed between the Delta commit and the Catalog commit finds its
//! own commit.
//!
//! The Delta protocol is delta-rs's (`deltalake-core`, no DataFusion), over the object store
//! `lakeport-storage` already configured. Only `lakeport-jobs` depends on this crate; it
//! depends on `lakeport-storage` and never on the metastore or the API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake_core::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake_core::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake_core::kernel::{Action, Add, MetadataExt as _, Remove, StructType};
use deltalake_core::logstore::{LogStoreRef, StorageConfig, default_logstore};
use deltalake_core::operations::create::CreateBuilder;
use deltalake_core::protocol::{DeltaOperation, SaveMode};
use deltalake_core::table::state::DeltaTableState;
use deltalake_core::{DeltaTable, DeltaTableError, TableProperty};
use futures::TryStreamExt as _;
use lakeport_storage::{Key, Storage};
use object_store::ObjectStoreExt as _;
use object_store::prefix::PrefixStore;
use serde_json::{Value, json};

#[cfg(test)]
mod tests;

/// The `commitInfo` key naming the batch a commit is for.
pub const BATCH_ID_KEY: &str = "lakeportBatchId";
/// The `commitInfo` key naming what the commit did to the batch: [`PROMOTE`] or [`REVERT`].
pub const OPERATION_KEY: &str = "lakeportOperation";
/// A batch's files were added (and, for a replay, its predecessors' removed).
pub const PROMOTE: &str = "promote";
/// A batch's files were removed (REVERT, or its data collected).
pub const REVERT: &str = "revert";
/// Small files were rewritten as fewer, larger ones ([`Table::commit_compaction`]).
pub const OPTIMIZE: &str = "optimize";
/// The folder under a table's root that compaction writes its files to.
pub const COMPACTED_DIR: &str = "compacted";
/// The suffix of the object, next to a compacted file, that lists the files whose rows it
/// holds (its parts): a REVERT or replay of one of their batches puts the others back.
const PARTS_SUFFIX: &str = ".parts.json";

/// Commits are checkpointed every this many versions (Delta's default, spec §12).
const CHECKPOINT_INTERVAL: &str = "10";
/// `delta.dataSkippingNumIndexedCols` of every table: Lakeport's `add` stats hold
/// numRecords only.
const NO_INDEXED_COLUMNS: &str = "0";
/// [`CHECKPOINT_INTERVAL`] as a number.
const CHECKPOINT_EVERY: u64 = 10;
/// How far a node's clock may be behind another's: commits this much older than the batch
/// are still searched for it.
const CLOCK_SKEW_MS: i64 = 10 * 60 * 1000;
/// The most commits searched for a batch's earlier commit.
const MAX_COMMITS_SEARCHED: u64 = 10_000;
/// The most tables whose state a [`TableCache`] keeps.
const TABLES_CACHED: usize = 128;

/// Why a table operation failed; every failure is transient for the job that meets it.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("delta table {location}: {doing}: {source}")]
    Delta {
        location: String,
        doing: &'static str,
        #[source]
        source: Box<DeltaTableError>,
    },
    #[error("delta table {location}: the dataset's schema cannot be a Delta schema: {reason}")]
    Schema { location: String, reason: String },
    #[error("delta table {location}: {reason}")]
    Log { location: String, reason: String },
}

/// A Parquet file of a batch, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    /// The object's key (under the table's root).
    pub key: Key,
    pub size: u64,
    pub records: u64,
}

/// A successful batch to commit.
#[derive(Debug, Clone)]
pub struct BatchCommit<'a> {
    pub batch_id: &'a str,
    /// The dataset's Arrow schema (from the XDM mapping), which the table's follows.
    pub schema: &'a arrow_schema::Schema,
    /// The batch's Parquet parts (only good rows' files for a partial batch).
    pub files: &'a [DataFile],
    /// Batches whose live files this commit removes: a replay's predecessors.
    pub replaces: &'a [String],
    /// When the batch was created (ms): no earlier commit can be for it, so the search
    /// for an existing commit stops there.
    pub created_ms: i64,
    /// True when an earlier attempt may have committed the batch (a retry after a crash or
    /// a lost lease): only then is the log searched for its commit, so a first attempt
    /// reads no more of the log than the commit itself needs.
    pub retry: bool,
}

/// A commit of a batch, made now or found in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub version: u64,
    /// The files the commit added (on a retry: those of the attempt that committed).
    pub files: Vec<DataFile>,
    /// True when the commit was already in the log (a retry after a crash).
    pub found: bool,
}

/// A compacted file to commit: its key, size and rows, and the live batch files whose rows
/// it holds, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    pub file: DataFile,
    pub parts: Vec<DataFile>,
}

/// What [`Table::commit_compaction`] committed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionCommit {
    /// The version written; None when every compaction was left out.
    pub version: Option<u64>,
    /// The compactions in that version.
    pub committed: Vec<Compaction>,
    /// Compactions left out because the table changed while they were written.
    pub skipped: usize,
}

/// What [`Table::vacuum`] deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vacuumed {
    /// Compacted files (and their parts lists) deleted.
    pub files: u64,
    pub bytes: u64,
    /// Compacted files no longer live but removed too recently to delete.
    pub retained: u64,
}

/// The latest loaded state of recently used tables, shared by a node's workers: the next
/// commit to a table reads only the log entries written since (by any node) instead of its
/// last checkpoint and every commit after it. At most [`TABLES_CACHED`] tables are kept.
#[derive(Clone, Default)]
pub struct TableCache {
    states: Arc<Mutex<HashMap<String, DeltaTableState>>>,
}

impl TableCache {
    /// Returns an empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, location: &str) -> Option<DeltaTableState> {
        let states = self
            .states
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        states.get(location).cloned()
    }

    fn put(&self, location: &str, state: DeltaTableState) {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if states.len() >= TABLES_CACHED && !states.contains_key(location) {
            // Any table makes room: the next commit to it loads it again.
            if let Some(evicted) = states.keys().next().cloned() {
                states.remove(&evicted);
            }
        }
        states.insert(location.to_owned(), state);
    }

    fn forget(&self, location: &str) {
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        states.remove(location);
    }

    /// Returns how many tables are cached.
    pub fn len(&self) -> usize {
        self.states
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .len()
    }

    /// Returns true when no table is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One dataset's Delta table.
pub struct Table {
    root: Key,
    location: String,
    log_store: LogStoreRef,
    storage: Storage,
    cache: Option<TableCache>,
}

/// Returns the dataset's table root in the lake.
pub fn dataset_root(org: &str, sandbox: &str, dataset: &str) -> Key {
    lakeport_storage::keys::dataset(org, sandbox, dataset)
}

impl Table {
    /// Returns the table rooted at `root` in `storage` (nothing is read yet).
    ///
    /// # Errors
    /// The storage URL of the root is not a URL.
    pub fn open(storage: &Storage, root: &Key) -> Result<Self, LakeError> {
        let location = storage.url_of(root);
        let url = url::Url::parse(&location).map_err(|err| LakeError::Log {
            location: location.clone(),
            reason: format!("not a URL: {err}"),
        })?;
        // delta-rs reads the log through the prefixed store and, by URL path, through the
        // store at the URL's root.
        let prefixed: Arc<dyn object_store::ObjectStore> =
            Arc::new(PrefixStore::new(Arc::clone(storage.store()), root.clone()));
        let log_store = default_logstore(
            prefixed,
            Arc::clone(storage.url_root()),
            &url,
            &StorageConfig::default(),
        );
        Ok(Self {
            root: root.clone(),
            location,
            log_store,
            storage: storage.clone(),
            cache: None,
        })
    }

    /// Keeps the table's state in `cache` between calls (see [`TableCache`]).
    #[must_use]
    pub fn with_cache(mut self, cache: &TableCache) -> Self {
        self.cache = Some(cache.clone());
        self
    }

    /// Creates the empty table of a new dataset (version 0: protocol and metadata) unless
    /// it exists; returns its latest version.
    ///
    /// # Errors
    /// The log cannot be read or written, or the schema has no Delta equivalent.
    pub async fn create(&self, schema: &arrow_schema::Schema) -> Result<u64, LakeError> {
        let schema = self.delta_schema(schema)?;
        let table = self.create_or_load(&schema).await?;
        Ok(table.version().unwrap_or_default())
    }

    /// Deletes the table: its log and every data file under its root. Returns how many
    /// objects were deleted.
    ///
    /// # Errors
    /// The storage refused a listing or a deletion.
    pub async fn delete(&self) -> Result<u64, LakeError> {
        if let Some(cache) = &self.cache {
            cache.forget(&self.location);
        }
        // The log first: once it is gone no engine sees a table there, whatever is left.
        let failed = |err: lakeport_storage::StorageError| LakeError::Log {
            location: self.location.clone(),
            reason: format!("deleting the table: {err}"),
        };
        let log = self
            .storage
            .delete_prefix(&self.root.clone().join("_delta_log"))
            .await
            .map_err(failed)?;
        let rest = self
            .storage
            .delete_prefix(&self.root)
            .await
            .map_err(failed)?;
        Ok(log + rest)
    }

    /// Returns the table's URL (`file:///…` or `s3://bucket/…`), as engines open it.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn error(&self, doing: &'static str) -> impl FnOnce(DeltaTableError) -> LakeError + '_ {
        move |source| LakeError::Delta {
            location: self.location.clone(),
            doing,
            source: Box::new(source),
        }
    }

    /// Loads the latest version, or None when the table has no commit yet. A cached state
    /// is brought up to date with the commits made since it was cached.
    async fn load(&self) -> Result<Option<DeltaTable>, LakeError> {
        if let Some(cache) = &self.cache
            && let Some(state) = cache.get(&self.location)
        {
            let mut table = DeltaTable::new(Arc::clone(&self.log_store));
            table.state = Some(state);
            match table.update_incremental(None).await {
                Ok(()) => {
                    self.remember(&table);
                    return Ok(Some(table));
                }
                Err(err) => {
                    // The log moved in a way an update cannot follow (the table was
                    // deleted, its log expired): read it afresh.
                    tracing::debug!(table = %self.location, error = %err, "cached table state dropped");
                    cache.forget(&self.location);
                }
            }
        }
        let exists = self
            .log_store
            .is_delta_table_location()
            .await
            .map_err(self.error("looking for the log"))?;
        if !exists {
            return Ok(None);
        }
        let mut table = DeltaTable::new(Arc::clone(&self.log_store));
        table.load().await.map_err(self.error("loading the log"))?;
        self.remember(&table);
        Ok(Some(table))
    }

    fn remember(&self, table: &DeltaTable) {
        if let (Some(cache), Some(state)) = (&self.cache, &table.state) {
            cache.put(&self.location, state.clone());
        }
    }

    /// Returns the delta-rs table at its latest version, or None before the first commit,
    /// for engines that read it through their own delta-rs integration (the Query Service).
    ///
    /// # Errors
    /// The log cannot be read.
    pub async fn delta_table(&self) -> Result<Option<DeltaTable>, LakeError> {
        self.load().await
    }

    /// Returns the delta-rs table at `version`, or None when the table has no commit yet or
    /// no such version (SNAPSHOT clauses of the Query Service).
    ///
    /// # Errors
    /// The log cannot be read, or that version's log entries are gone.
    pub async fn delta_table_at(&self, version: u64) -> Result<Option<DeltaTable>, LakeError> {
        let Some(latest) = self.version().await? else {
            return Ok(None);
        };
        if version > latest {
            return Ok(None);
        }
        let mut table = DeltaTable::new(Arc::clone(&self.log_store));
        table
            .load_version(version)
            .await
            .map_err(self.error("loading the log"))?;
        Ok(Some(table))
    }

    /// Returns the latest version, or None when the table has no commit yet.
    ///
    /// # Errors
    /// The log cannot be read.
    pub async fn version(&self) -> Result<Option<u64>, LakeError> {
        Ok(self.load().await?.and_then(|table| table.version()))
    }

    fn delta_schema(&self, schema: &arrow_schema::Schema) -> Result<StructType, LakeError> {
        schema.try_into_kernel().map_err(|err| LakeError::Schema {
            location: self.location.clone(),
            reason: err.to_string(),
        })
    }

    /// Creates the table (version 0: protocol and metadata, no data) unless it exists, and
    /// returns it loaded.
    async fn create_or_load(&self, schema: &StructType) -> Result<DeltaTable, LakeError> {
        if let Some(table) = self.load().await? {
            return Ok(table);
        }
        let created = CreateBuilder::new()
            .with_log_store(Arc::clone(&self.log_store))
            .with_columns(schema.fields().cloned())
            .with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL),
            )
            // Lakeport's `add` stats hold numRecords only, so no column is declared for
            // data skipping: readers (and delta-rs after every commit) then parse a stats
            // schema of one field instead of min/max/nullCount for each of the first 32.
            .with_configuration_property(
                TableProperty::DataSkippingNumIndexedCols,
                Some(NO_INDEXED_COLUMNS),
            )
            .with_save_mode(SaveMode::Ignore)
            .await;
        match created {
            Ok(table) => {
                self.remember(&table);
                Ok(table)
            }
            // Another worker created it first: use theirs.
            Err(_) if self.load().await?.is_some() => {
                self.load().await?.ok_or_else(|| LakeError::Log {
                    location: self.location.clone(),
                    reason: "the table disappeared while it was being created".to_owned(),
                })
            }
            Err(err) => Err(self.error("creating the table")(err)),
        }
    }

    /// Commits a successful batch: one version with an `add` per file, the `remove`s of the
    /// files of the batches it replaces, and, when the dataset's schema gained columns, the
    /// new `metaData`. When the log already holds this batch's commit (a worker crashed
    /// after it), nothing is written and that commit is returned.
    ///
    /// # Errors
    /// The log cannot be read or written, or the schema has no Delta equivalent.
    pub async fn commit_batch(&self, batch: &BatchCommit<'_>) -> Result<Committed, LakeError> {
        let schema = self.delta_schema(batch.schema)?;
        let table = self.create_or_load(&schema).await?;
        if batch.retry
            && let Some(found) = self
                .find_commit(&table, batch.batch_id, PROMOTE, batch.created_ms)
                .await?
        {
            return Ok(found);
        }
        let snapshot = table
            .snapshot()
            .map_err(self.error("reading the snapshot"))?;
        let mut actions = Vec::new();
        let indexed = TableProperty::DataSkippingNumIndexedCols.as_ref();
        let unindexed = snapshot
            .metadata()
            .configuration()
            .get(indexed)
            .map(String::as_str)
            == Some(NO_INDEXED_COLUMNS);
        if snapshot.schema().as_ref() != &schema || !unindexed {
            // A new column, or a table made before it declared no stats columns.
            let metadata = snapshot
                .metadata()
                .clone()
                .with_schema(&schema)
                .and_then(|metadata| {
                    metadata.add_config_key(indexed.to_owned(), NO_INDEXED_COLUMNS.to_owned())
                })
                .map_err(|err| self.error("updating the metadata")(err.into()))?;
            actions.push(Action::Metadata(metadata));
        }
        let now = lakeport_now();
        for file in batch.files {
            actions.push(Action::Add(Add {
                path: self.relative(&file.key)?,
                partition_values: HashMap::new(),
                size: i64::try_from(file.size).unwrap_or(i64::MAX),
                modification_time: now,
                data_change: true,
                stats: Some(json!({ "numRecords": file.records }).to_string()),
                ..Add::default()
            }));
        }
        let (removes, restores) = self
            .removes_of(&table, batch.replaces.iter().map(String::as_str), now)
            .await?;
        let operation = if removes.is_empty() {
            DeltaOperation::Write {
                mode: SaveMode::Append,
                partition_by: None,
                predicate: None,
            }
        } else {
            DeltaOperation::Write {
                mode: SaveMode::Overwrite,
                partition_by: None,
                predicate: Some(batches_predicate(batch.replaces)),
            }
        };
        actions.extend(removes.into_iter().map(Action::Remove));
        actions.extend(restores.into_iter().map(Action::Add));
        let version = self
            .commit(&table, actions, operation, Some(batch.batch_id), PROMOTE)
            .await?;
        Ok(Committed {
            version,
            files: batch.files.to_vec(),
            found: false,
        })
    }

    /// Commits the `remove` of every live file of `batch_id` (REVERT). Returns the version,
    /// or None when nothing of the batch is in the table (never committed, or removed
    /// already), in which case nothing is written.
    ///
    /// # Errors
    /// The log cannot be read or written.
    pub async fn remove_batch(&self, batch_id: &str) -> Result<Option<u64>, LakeError> {
        let Some(table) = self.load().await? else {
            return Ok(None);
        };
        let (removes, restores) = self
            .removes_of(&table, std::iter::once(batch_id), lakeport_now())
            .await?;
        if removes.is_empty() {
            return Ok(None);
        }
        let operation = DeltaOperation::Delete {
            predicate: Some(batches_predicate(&[batch_id.to_owned()])),
        };
        let actions = removes
            .into_iter()
            .map(Action::Remove)
            .chain(restores.into_iter().map(Action::Add))
            .collect();
        self.commit(&table, actions, operation, Some(batch_id), REVERT)
            .await
            .map(Some)
    }

    /// Returns the latest version and its live files, in path order (batch files sort by
    /// their batch's creation), or None before the table's first commit.
    ///
    /// # Errors
    /// The log cannot be read.
    pub async fn live_data_files(&self) -> Result<Option<(u64, Vec<DataFile>)>, LakeError> {
        let Some(table) = self.load().await? else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .map_err(self.error("reading the snapshot"))?;
        let mut files: Vec<DataFile> = snapshot
            .snapshot()
            .file_views(self.log_store.as_ref(), None)
            .map_ok(|file| DataFile {
                key: self.absolute(&file.path()),
                size: u64::try_from(file.size()).unwrap_or_default(),
                records: file.num_records().unwrap_or_default() as u64,
            })
            .try_collect()
            .await
            .map_err(self.error("listing the live files"))?;
        files.sort_by(|a, b| a.key.as_ref().cmp(b.key.as_ref()));
        Ok(Some((snapshot.version(), files)))
    }

    /// Returns the key for a new compacted file named `name` (under [`COMPACTED_DIR`]).
    pub fn compacted_key(&self, name: &str) -> Key {
        self.root.clone().join(COMPACTED_DIR).join(name)
    }

    /// Returns true when a key is a batch's own file (under `batches/`), which compaction
    /// may take as a part; compacted files are never parts again.
    pub fn is_batch_file(&self, key: &Key) -> bool {
        self.relative(key)
            .is_ok_and(|path| path.starts_with("batches/"))
    }

    /// Commits compacted files in place of their parts: one version with a `remove` of
    /// every part and an `add` of every compacted file, none of them a data change (the
    /// rows are the same). Each compacted file's parts list is written next to it first.
    /// A compaction whose parts are not all live any more (a REVERT or replay committed
    /// since it was planned) or whose file is gone is left out: its file is left for
    /// [`Table::vacuum`]. Call it holding the table lock.
    ///
    /// # Errors
    /// The log, the storage or the parts list cannot be read or written.
    pub async fn commit_compaction(
        &self,
        compactions: &[Compaction],
        target_size: u64,
    ) -> Result<CompactionCommit, LakeError> {
        let table = self.load().await?.ok_or_else(|| LakeError::Log {
            location: self.location.clone(),
            reason: "the table has no commit to compact".to_owned(),
        })?;
        let live = self.live_paths(&table).await?;
        let now = lakeport_now();
        let mut actions = Vec::new();
        let mut outcome = CompactionCommit::default();
        for compaction in compactions {
            let paths: Vec<String> = compaction
                .parts
                .iter()
                .map(|part| self.relative(&part.key))
                .collect::<Result<_, _>>()?;
            let written = self
                .storage
                .store()
                .head(&compaction.file.key)
                .await
                .is_ok();
            if !written || paths.iter().any(|path| !live.contains(path)) {
                tracing::info!(table = %self.location, file = %compaction.file.key, written, "compaction left out: the table changed while it was written");
                outcome.skipped += 1;
                continue;
            }
            let mut parts = Vec::with_capacity(paths.len());
            for (part, path) in compaction.parts.iter().zip(paths) {
                actions.push(Action::Remove(Remove {
                    path: path.clone(),
                    data_change: false,
                    deletion_timestamp: Some(now),
                    extended_file_metadata: Some(true),
                    partition_values: Some(HashMap::new()),
                    size: Some(i64::try_from(part.size).unwrap_or(i64::MAX)),
                    ..Remove::default()
                }));
                parts.push(json!({"path": path, "size": part.size, "records": part.records}));
            }
            let path = self.relative(&compaction.file.key)?;
            let list = json!({ "parts": parts }).to_string();
            self.storage
                .store()
                .put(
                    &self.absolute(&format!("{path}{PARTS_SUFFIX}")),
                    object_store::PutPayload::from(list.into_bytes()),
                )
                .await
                .map_err(|err| LakeError::Log {
                    location: self.location.clone(),
                    reason: format!("writing the parts list of {path}: {err}"),
                })?;
            actions.push(Action::Add(Add {
                path,
                partition_values: HashMap::new(),
                size: i64::try_from(compaction.file.size).unwrap_or(i64::MAX),
                modification_time: now,
                data_change: false,
                stats: Some(json!({ "numRecords": compaction.file.records }).to_string()),
                ..Add::default()
            }));
            outcome.committed.push(compaction.clone());
        }
        if outcome.committed.is_empty() {
            return Ok(outcome);
        }
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: i64::try_from(target_size).unwrap_or(i64::MAX),
        };
        outcome.version = Some(
            self.commit(&table, actions, operation, None, OPTIMIZE)
                .await?,
        );
        Ok(outcome)
    }

    /// Deletes the compacted files that no version since `cutoff_ms` can read: files no
    /// longer live that were removed before it (by a REVERT or replay of one of their
    /// batches), and files a compaction wrote but never committed (it crashed) that are
    /// older than it, each with its parts list. Batch files are never deleted here: they
    /// belong to their batches, which the Catalog's clean-up collects.
    ///
    /// # Errors
    /// The log cannot be read, or the storage refused a listing or a deletion.
    pub async fn vacuum(&self, cutoff_ms: i64) -> Result<Vacuumed, LakeError> {
        let Some(table) = self.load().await? else {
            return Ok(Vacuumed::default());
        };
        let state = table
            .snapshot()
            .map_err(self.error("reading the snapshot"))?;
        let live = self.live_paths(&table).await?;
        let removed_at: HashMap<String, i64> = state
            .all_tombstones(self.log_store.as_ref())
            .map_ok(|tombstone| {
                (
                    tombstone.path().into_owned(),
                    tombstone.deletion_timestamp().unwrap_or_default(),
                )
            })
            .try_collect()
            .await
            .map_err(self.error("listing the removed files"))?;
        let storage_error = |doing: &str, err: object_store::Error| LakeError::Log {
            location: self.location.clone(),
            reason: format!("{doing}: {err}"),
        };
        let mut listing = self
            .storage
            .store()
            .list(Some(&self.root.clone().join(COMPACTED_DIR)));
        let mut files = Vec::new();
        let mut lists = HashMap::new();
        while let Some(meta) = listing
            .try_next()
            .await
            .map_err(|err| storage_error("listing compacted files", err))?
        {
            let path = self.relative(&meta.location)?;
            let modified = meta.last_modified.timestamp_millis();
            match path.strip_suffix(PARTS_SUFFIX) {
                Some(file) => {
                    lists.insert(file.to_owned(), (meta.location, modified));
                }
                None => files.push((path, meta.location, meta.size, modified)),
            }
        }
        let mut vacuumed = Vacuumed::default();
        for (path, key, size, modified) in files {
            let list = lists.remove(&path);
            if live.contains(&path) {
                continue;
            }
            // Removed by a commit, or never committed: its own age then.
            let gone_since = removed_at.get(&path).copied().unwrap_or(modified);
            if gone_since >= cutoff_ms {
                vacuumed.retained += 1;
                continue;
            }
            // The data first: a parts list left by a crash here is collected next time.
            self.storage
                .store()
                .delete(&key)
                .await
                .map_err(|err| storage_error("deleting a compacted file", err))?;
            if let Some((list, _)) = list {
                self.storage
                    .store()
                    .delete(&list)
                    .await
                    .map_err(|err| storage_error("deleting a parts list", err))?;
            }
            vacuumed.files += 1;
            vacuumed.bytes += size;
        }
        // Parts lists whose compacted file is gone (a crash between the two deletions, or
        // before the file was written).
        for (path, (list, modified)) in lists {
            if !live.contains(&path) && modified < cutoff_ms {
                self.storage
                    .store()
                    .delete(&list)
                    .await
                    .map_err(|err| storage_error("deleting a parts list", err))?;
            }
        }
        tracing::info!(table = %self.location, deleted = vacuumed.files, bytes = vacuumed.bytes, retained = vacuumed.retained, "table vacuumed");
        Ok(vacuumed)
    }

    /// The paths of the files live in a loaded table.
    async fn live_paths(
        &self,
        table: &DeltaTable,
    ) -> Result<std::collections::HashSet<String>, LakeError> {
        table
            .snapshot()
            .map_err(self.error("reading the snapshot"))?
            .snapshot()
            .file_views(self.log_store.as_ref(), None)
            .map_ok(|file| file.path().into_owned())
            .try_collect()
            .await
            .map_err(self.error("listing the live files"))
    }

    /// Reads the parts list written next to a compacted file.
    async fn parts_of(&self, path: &str) -> Result<Vec<DataFile>, LakeError> {
        let failed = |reason: String| LakeError::Log {
            location: self.location.clone(),
            reason: format!("the parts list of {path}: {reason}"),
        };
        let bytes = self
            .storage
            .store()
            .get(&self.absolute(&format!("{path}{PARTS_SUFFIX}")))
            .await
            .map_err(|err| failed(err.to_string()))?
            .bytes()
            .await
            .map_err(|err| failed(err.to_string()))?;
        let list: Value =
            serde_json::from_slice(&bytes).map_err(|err| failed(format!("not JSON: {err}")))?;
        list.get("parts")
            .and_then(Value::as_array)
            .ok_or_else(|| failed("no parts array".to_owned()))?
            .iter()
            .map(|part| {
                let path = part.get("path").and_then(Value::as_str);
                let size = part.get("size").and_then(Value::as_u64);
                let records = part.get("records").and_then(Value::as_u64);
                match (path, size, records) {
                    (Some(path), Some(size), Some(records)) => Ok(DataFile {
                        key: self.absolute(path),
                        size,
                        records,
                    }),
                    _ => Err(failed(format!("a malformed part: {part}"))),
                }
            })
            .collect()
    }

    async fn commit(
        &self,
        table: &DeltaTable,
        actions: Vec<Action>,
        operation: DeltaOperation,
        batch_id: Option<&str>,
        what: &str,
    ) -> Result<u64, LakeError> {
        let snapshot = table
            .snapshot()
            .map_err(self.error("reading the snapshot"))?;
        // Expired log entries are looked for (a listing of the whole log) only with the
        // commits that write a checkpoint, not with every commit.
        let checkpoint_due = (snapshot.version() + 2).is_multiple_of(CHECKPOINT_EVERY);
        let mut metadata = vec![(OPERATION_KEY.to_owned(), Value::from(what))];
        if let Some(batch_id) = batch_id {
            metadata.push((BATCH_ID_KEY.to_owned(), Value::from(batch_id)));
        }
        let properties = CommitProperties::default()
            .with_metadata(metadata)
            .with_cleanup_expired_logs(Some(checkpoint_due));
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), Arc::clone(&self.log_store), operation)
            .await
            .map_err(self.error("committing"))?;
        if let Some(cache) = &self.cache {
            cache.put(&self.location, finalized.snapshot());
        }
        Ok(finalized.version())
    }

    /// Returns `remove` actions for the live files of the given batches (their keys are
    /// under `batches/<id>/`), and for the compacted files holding rows of theirs, with
    /// `add` actions that put back the other parts of those compacted files.
    async fn removes_of(
        &self,
        table: &DeltaTable,
        batch_ids: impl Iterator<Item = &str>,
        now: i64,
    ) -> Result<(Vec<Remove>, Vec<Add>), LakeError> {
        let prefixes: Vec<String> = batch_ids.map(|id| format!("batches/{id}/")).collect();
        if prefixes.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let of_batches = |path: &str| {
            prefixes
                .iter()
                .any(|prefix| path.starts_with(prefix.as_str()))
        };
        let snapshot = table
            .snapshot()
            .map_err(self.error("reading the snapshot"))?;
        let files: Vec<_> = snapshot
            .snapshot()
            .file_views(self.log_store.as_ref(), None)
            .try_collect()
            .await
            .map_err(self.error("listing the live files"))?;
        let remove = |path: &str, size: i64| Remove {
            path: path.to_owned(),
            data_change: true,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(true),
            partition_values: Some(HashMap::new()),
            size: Some(size),
            ..Remove::default()
        };
        let mut removes = Vec::new();
        let mut restores = Vec::new();
        for file in &files {
            let path = file.path();
            if of_batches(&path) {
                removes.push(remove(&path, file.size()));
            } else if path.starts_with(COMPACTED_DIR) {
                let parts = self.parts_of(&path).await?;
                let (gone, kept): (Vec<_>, Vec<_>) = parts
                    .into_iter()
                    .partition(|part| self.relative(&part.key).is_ok_and(|p| of_batches(&p)));
                if gone.is_empty() {
                    continue;
                }
                removes.push(remove(&path, file.size()));
                for part in kept {
                    restores.push(Add {
                        path: self.relative(&part.key)?,
                        partition_values: HashMap::new(),
                        size: i64::try_from(part.size).unwrap_or(i64::MAX),
                        modification_time: now,
                        data_change: true,
                        stats: Some(json!({ "numRecords": part.records }).to_string()),
                        ..Add::default()
                    });
                }
            }
        }
        Ok((removes, restores))
    }

    /// Looks for the commit that did `what` to `batch_id`, newest first, back to the
    /// commits made before the batch was created.
    async fn find_commit(
        &self,
        table: &DeltaTable,
        batch_id: &str,
        what: &str,
        created_ms: i64,
    ) -> Result<Option<Committed>, LakeError> {
        let Some(latest) = table.version() else {
            return Ok(None);
        };
        let oldest = latest.saturating_sub(MAX_COMMITS_SEARCHED);
        for version in (oldest..=latest).rev() {
            let Some(bytes) = self
                .log_store
                .read_commit_entry(version)
                .await
                .map_err(self.error("reading a commit"))?
            else {
                // Expired from the log: nothing older is left either.
                return Ok(None);
            };
            let entry = CommitEntry::parse(&bytes).map_err(|reason| LakeError::Log {
                location: self.location.clone(),
                reason: format!("commit {version}: {reason}"),
            })?;
            if entry.batch_id.as_deref() == Some(batch_id)
                && entry.operation.as_deref() == Some(what)
            {
                let files = entry
                    .adds
                    .into_iter()
                    .map(|(path, size, records)| DataFile {
                        key: self.absolute(&path),
                        size,
                        records,
                    })
                    .collect();
                return Ok(Some(Committed {
                    version,
                    files,
                    found: true,
                }));
            }
            if entry
                .timestamp
                .is_some_and(|at| at < created_ms.saturating_sub(CLOCK_SKEW_MS))
            {
                return Ok(None);
            }
        }
        Ok(None)
    }

    /// Returns every commit in the log, oldest first, as delta-rs reads it.
    ///
    /// # Errors
    /// The log cannot be read.
    pub async fn commits(&self) -> Result<Vec<CommitSummary>, LakeError> {
        let Some(table) = self.load().await? else {
            return Ok(Vec::new());
        };
        let latest = table.version().unwrap_or_default();
        let mut commits = Vec::new();
        for version in 0..=latest {
            let Some(bytes) = self
                .log_store
                .read_commit_entry(version)
                .await
                .map_err(self.error("reading a commit"))?
            else {
                continue;
            };
            let entry = CommitEntry::parse(&bytes).map_err(|reason| LakeError::Log {
                location: self.location.clone(),
                reason: format!("commit {version}: {reason}"),
            })?;
            commits.push(CommitSummary {
                version,
                batch_id: entry.batch_id,
                operation: entry.operation,
                added: entry.adds.into_iter().map(|(path, _, _)| path).collect(),
                removed: entry.removes,
            });
        }
        Ok(commits)
    }

    /// Returns the paths (relative to the root) of the files live at `version` (the
    /// latest when None), sorted, as delta-rs replays the log.
    ///
    /// # Errors
    /// The log cannot be read or the version does not exist.
    pub async fn live_files(&self, version: Option<u64>) -> Result<Vec<String>, LakeError> {
        let mut table = DeltaTable::new(Arc::clone(&self.log_store));
        match version {
            Some(version) => table.load_version(version).await,
            None => table.load().await,
        }
        .map_err(self.error("loading the log"))?;
        let snapshot = table
            .snapshot()
            .map_err(self.error("reading the snapshot"))?;
        let mut paths: Vec<String> = snapshot
            .snapshot()
            .file_views(self.log_store.as_ref(), None)
            .map_ok(|file| file.path().into_owned())
            .try_collect()
            .await
            .map_err(self.error("listing the live files"))?;
        paths.sort();
        Ok(paths)
    }

    /// Returns the key of a path relative to the table's root.
    pub fn key_of(&self, relative: &str) -> Key {
        self.absolute(relative)
    }

    /// Returns the path of a key relative to the table root, as `add` actions hold it.
    fn relative(&self, key: &Key) -> Result<String, LakeError> {
        key.prefix_match(&self.root)
            .map(|parts| {
                parts
                    .map(|part| part.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .filter(|path| !path.is_empty())
            .ok_or_else(|| LakeError::Log {
                location: self.location.clone(),
                reason: format!("{key} is not a file under the table's root"),
            })
    }

    fn absolute(&self, relative: &str) -> Key {
        let mut key = self.root.clone();
        for part in relative.split('/').filter(|part| !part.is_empty()) {
            key = key.join(part);
        }
        key
    }
}

/// One commit of the log, as [`Table::commits`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub version: u64,
    /// The batch named in `commitInfo` (none for the table's creation).
    pub batch_id: Option<String>,
    /// [`PROMOTE`] or [`REVERT`] (none for the table's creation).
    pub operation: Option<String>,
    /// Paths of the `add` actions, relative to the table's root.
    pub added: Vec<String>,
    /// Paths of the `remove` actions.
    pub removed: Vec<String>,
}

/// What one log entry says about batches.
#[derive(Debug, Default)]
struct CommitEntry {
    batch_id: Option<String>,
    operation: Option<String>,
    timestamp: Option<i64>,
    /// (path, size, records) of each `add`.
    adds: Vec<(String, u64, u64)>,
    removes: Vec<String>,
}

impl CommitEntry {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|err| format!("not UTF-8: {err}"))?;
        let mut entry = Self::default();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let action: Value =
                serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
            if let Some(info) = action.get("commitInfo") {
                entry.batch_id = info
                    .get(BATCH_ID_KEY)
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                entry.operation = info
                    .get(OPERATION_KEY)
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                entry.timestamp = info.get("timestamp").and_then(Value::as_i64);
            } else if let Some(add) = action.get("add") {
                let path = add.get("path").and_then(Value::as_str).unwrap_or_default();
                // Paths are URI-encoded in the log; ours are plain ASCII segments.
                let path = percent_decode(path);
                let size = add.get("size").and_then(Value::as_u64).unwrap_or_default();
                let records = add
                    .get("stats")
                    .and_then(Value::as_str)
                    .and_then(|stats| serde_json::from_str::<Value>(stats).ok())
                    .and_then(|stats| stats.get("numRecords").and_then(Value::as_u64))
                    .unwrap_or_default();
                entry.adds.push((path, size, records));
            } else if let Some(remove) = action.get("remove") {
                let path = remove
                    .get("path")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                entry.removes.push(percent_decode(path));
            }
        }
        Ok(entry)
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// The predicate a commit's `operationParameters` show for the batches it touches.
fn batches_predicate(batch_ids: &[String]) -> String {
    let quoted: Vec<String> = batch_ids.iter().map(|id| format!("'{id}'")).collect();
    format!("_ACP_BATCHID IN ({})", quoted.join(", "))
}

fn lakeport_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}
