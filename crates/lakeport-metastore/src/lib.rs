//! The Catalog's metadata store: datasets, batches and dataset files, per tenant.
//!
//! This crate owns every line of SQL in Lakeport. It exposes the [`Metastore`] trait,
//! implemented by the embedded SQLite backend and (with the `postgres` feature) by
//! PostgreSQL, chosen by URL through [`open`]. It depends only on `lakeport-domain`; it
//! must never depend on the API, storage or Arrow crates. Every write
//! runs in one transaction and decisions (version checks, uniqueness, state rules) are made
//! inside it by calling pure `domain` functions.

use async_trait::async_trait;
use lakeport_domain::catalog::import::{NewImportBatch, ReplayError};
use lakeport_domain::catalog::{Actor, DocumentError};
use lakeport_domain::flow::{FlowKind, InletFlow, Reference};
use lakeport_domain::ids::{BatchId, DatasetId, QsObjectId, ResourceId};
use lakeport_domain::ingest::{Chunk, Job};
use lakeport_domain::query::{ListQuery, ObjectKind};
use lakeport_domain::queryservice::{QsKind, QsListing};
use lakeport_domain::status::{BatchAction, InvalidTransition};
use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::ResourceKind;
use lakeport_domain::{Doc, ErrorKind, HasKind};

mod backend;
mod catalog;
mod ingest;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod queries;
pub mod references;
mod registry;
mod sql;
pub mod sqlite;
mod store;
mod stream;

use std::sync::Arc;

/// A change to apply to a stored document, computed from its current state inside the
/// write transaction. It returns the complete new document.
pub type DocChange = Box<dyn FnOnce(&Doc) -> Result<Doc, DocumentError> + Send>;

/// Why a metastore operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    #[error("{} {id} does not exist", kind.noun())]
    NotFound { kind: ObjectKind, id: String },
    #[error("{} {id} already exists", kind.noun())]
    AlreadyExists { kind: ObjectKind, id: String },
    #[error("a batch with externalId {external_id:?} already exists in this sandbox")]
    DuplicateExternalId { external_id: String },
    #[error("dataset {id} does not exist in this sandbox")]
    UnknownDataset { id: String },
    #[error("If-Match {expected:?} does not match the current version {actual:?}")]
    VersionMismatch { expected: String, actual: String },
    #[error(transparent)]
    InvalidDocument(#[from] DocumentError),
    #[error(transparent)]
    InvalidReplay(#[from] ReplayError),
    #[error("a {} titled {title:?} already exists in this sandbox; titles are unique per resource kind", kind.noun())]
    DuplicateTitle { kind: ResourceKind, title: String },
    #[error("resource {id} does not exist in this sandbox")]
    ResourceNotFound { id: String },
    #[error("resource {id} already exists")]
    ResourceExists { id: String },
    #[error("{id} was changed by another request since it was read; retry")]
    ConcurrentChange { id: String },
    #[error(
        "batch {batch_id} is in status '{status}'; files can only be uploaded while it is 'loading'"
    )]
    BatchNotLoading { batch_id: String, status: String },
    #[error("batch {batch_id} belongs to dataset {actual}, not {requested}")]
    WrongDataset {
        batch_id: String,
        requested: String,
        actual: String,
    },
    #[error("{0}")]
    LimitExceeded(String),
    #[error("batch {batch_id}: {source}")]
    InvalidSignal {
        batch_id: String,
        #[source]
        source: InvalidTransition,
    },
    #[error(
        "no chunked upload of {path:?} was initialized in batch {batch_id}; send action=INITIALIZE first"
    )]
    UploadNotStarted { batch_id: String, path: String },
    #[error("{0}")]
    InvalidQuery(String),
    /// A Flow Service object names another one, or a dataset, that is not there.
    #[error("{0}")]
    InvalidReference(String),
    /// A Flow Service object is still used by another one.
    #[error("{0}")]
    InUse(String),
    #[error("{} {id} does not exist in this sandbox", kind.noun())]
    QsNotFound { kind: QsKind, id: QsObjectId },
    /// The object's state does not allow the change (cancelling a finished query).
    #[error("{0}")]
    StateConflict(String),
    /// A cap on concurrent work is reached; retrying later may succeed.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("job {job_id} is no longer leased by this worker")]
    LostLease { job_id: i64 },
    #[error("the metastore is unavailable: {0}")]
    Unavailable(String),
    #[error("metastore failure while {doing}: {source}")]
    Backend {
        doing: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HasKind for MetastoreError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound { .. }
            | Self::QsNotFound { .. }
            | Self::ResourceNotFound { .. }
            | Self::UploadNotStarted { .. } => ErrorKind::NotFound,
            Self::BatchNotLoading { .. }
            | Self::WrongDataset { .. }
            | Self::LimitExceeded(_)
            | Self::InvalidSignal { .. }
            | Self::InvalidQuery(_)
            | Self::InvalidReference(_)
            | Self::InUse(_) => ErrorKind::InvalidInput,
            Self::LostLease { .. } | Self::StateConflict(_) => ErrorKind::Conflict,
            Self::TooManyRequests(_) => ErrorKind::Unavailable,
            // AEP answers conflicts of ids and externalIds with 400 (spec §3.1).
            Self::AlreadyExists { .. }
            | Self::DuplicateExternalId { .. }
            | Self::DuplicateTitle { .. }
            | Self::ResourceExists { .. }
            | Self::ConcurrentChange { .. } => ErrorKind::Conflict,
            Self::UnknownDataset { .. } | Self::InvalidDocument(_) | Self::InvalidReplay(_) => {
                ErrorKind::InvalidInput
            }
            Self::VersionMismatch { .. } => ErrorKind::PreconditionFailed,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Backend { .. } => ErrorKind::Internal,
        }
    }
}

/// Options of a Catalog update.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// The `If-Match` header; the update fails unless it names the current version.
    pub if_match: Option<String>,
}

/// Upload limits checked when a file is recorded (spec §1.8, §3.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    pub max_files: u64,
    pub max_batch_bytes: u64,
}

/// A file uploaded into a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFile {
    pub path: String,
    /// Bytes of the complete file; for a chunked upload in progress, bytes received.
    pub size: u64,
    /// The id of the upload that holds the file's bytes (part of its storage key), so a
    /// replacement never overwrites acknowledged bytes in place.
    pub upload_id: String,
    /// `Some` while a chunked upload is in progress: the chunks received so far.
    pub chunks: Option<Vec<Chunk>>,
}

/// An output file registered as a dataset file when a batch is promoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDatasetFile {
    /// The file name clients see (`part-00001.parquet`).
    pub name: String,
    /// The object storage key.
    pub location: String,
    pub records: u64,
    pub size: u64,
}

/// The result of processing a batch, committed in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// Fields merged into the batch (status, counts, metrics, errors, completed, …).
    pub batch_fields: Doc,
    /// Dataset files to register (empty when the batch failed).
    pub files: Vec<NewDatasetFile>,
    /// Where this attempt's diagnostics live, if any were written.
    pub diagnostics_location: Option<String>,
    /// The diagnostics files written under that location, so that Data Access lists them
    /// without listing object storage.
    pub diagnostics_files: Vec<DiagnosticsFile>,
    /// How long the data of the predecessors this promotion makes `inactive` is kept before
    /// their clean-up jobs (enqueued in the promotion's transaction) collect it.
    pub cleanup_delay_ms: i64,
}

/// A file of a batch's diagnostics: `failed/part-00001.json`, `meta/row_errors/…`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiagnosticsFile {
    /// The path under the diagnostics location, `/`-separated.
    pub path: String,
    pub size: u64,
}

/// A dataset file with its storage location, for Data Access and clean-up.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDatasetFile {
    pub doc: Doc,
    pub location: String,
}

/// A batch whose diagnostics (`failed/`, `meta/`) outlived the retention period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiredDiagnostics {
    pub tenant: Tenant,
    pub batch_id: BatchId,
    /// The attempt root the diagnostics were written under.
    pub location: String,
}

/// A streaming inlet: its base connection, the tenant that owns it and the flows it feeds.
#[derive(Debug, Clone, PartialEq)]
pub struct Inlet {
    pub tenant: Tenant,
    pub connection: Doc,
    pub flows: Vec<InletFlow>,
    /// The tenant's Flow Service generation when this was read: every create or delete of
    /// a Flow Service object in the tenant advances it, so an append made with a cached
    /// inlet can check, inside its own transaction, that the routing it used still holds.
    pub generation: i64,
}

/// A record accepted by an inlet, to append to its dataset's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewStreamRecord {
    pub dataset_id: String,
    /// The base connection (inlet) that accepted it.
    pub connection_id: String,
    pub received: i64,
    /// The entity as one line of JSON.
    pub body: String,
}

/// One request's records, appended together with other requests' in one transaction
/// (group commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppend {
    pub tenant: Tenant,
    /// The Flow Service generation the records were routed with ([`Inlet::generation`]);
    /// when the tenant's has moved on, none of them is appended. `None` skips the check.
    pub generation: Option<i64>,
    pub records: Vec<NewStreamRecord>,
}

/// Where an appended record is in the log: the chunk row that holds it and its line there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedRecord {
    pub chunk: i64,
    pub line: u32,
}

/// What became of one [`StreamAppend`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Appended; one position per record, in order.
    Appended(Vec<AppendedRecord>),
    /// Nothing appended: the tenant's Flow Service objects changed since the routing was
    /// read. Read the inlet again and retry.
    Stale,
}

/// A segment sealed by [`Metastore::seal_stream_segments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSegment {
    pub tenant: Tenant,
    pub dataset_id: String,
    pub segment: i64,
    pub batch_id: String,
    pub records: u64,
    pub bytes: u64,
}

/// A sealed segment with its records, read to write its batch file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSegment {
    pub dataset_id: String,
    pub segment: i64,
    pub batch_id: String,
    /// True once its batch is terminal (its records are then gone). Only rows made before
    /// done segments were deleted have it: a segment is now forgotten when it is done.
    pub done: bool,
    /// One page of the entities as JSON Lines chunks in append order: each chunk holds one
    /// or more entities, one per line, without a final newline.
    pub records: Vec<String>,
    /// Where the next page starts (pass it as `after`); `None` once this page is the last.
    pub next_after: Option<i64>,
    /// How many entities the whole segment holds.
    pub record_count: u64,
}

/// How [`open`] sets up a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenOptions {
    /// How hard SQLite syncs commits; PostgreSQL keeps its server's settings.
    pub durability: sqlite::Durability,
    /// Connections in this process's PostgreSQL pool (SQLite always has one writer and a
    /// few readers).
    pub max_connections: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            durability: sqlite::Durability::Process,
            max_connections: 10,
        }
    }
}

/// Opens the metastore a URL names — `sqlite://path` (or `sqlite:path`) for the embedded
/// backend, `postgres://…` or `postgresql://…` for PostgreSQL — and applies pending
/// migrations.
///
/// # Errors
/// Fails when the URL names no supported backend (or PostgreSQL in a build without the
/// `postgres` feature), or when the backend cannot be opened or migrated. Messages never
/// quote the URL, which may hold a password.
pub async fn open(url: &str, options: OpenOptions) -> Result<Arc<dyn Metastore>, MetastoreError> {
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteMetastore::open(url, options.durability).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        #[cfg(feature = "postgres")]
        {
            let store = postgres::PostgresMetastore::open(url, options.max_connections).await?;
            return Ok(Arc::new(store));
        }
        #[cfg(not(feature = "postgres"))]
        return Err(MetastoreError::Unavailable(
            "this build has no PostgreSQL support; build lakeport with the `postgres` feature"
                .to_owned(),
        ));
    }
    let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
    Err(MetastoreError::Unavailable(format!(
        "metastore URL scheme {scheme:?} is not supported; use sqlite:// or postgres://"
    )))
}

/// The Catalog's persistent store. One implementation per backend; all of them pass the
/// same conformance suite (`tests/it/conformance.rs`).
#[async_trait]
pub trait Metastore: Send + Sync + 'static {
    /// Stores a new object whose `id` field is set; fails if the id (or, for batches, the
    /// externalId) is taken in the tenant. A new batch is recorded on its dataset's
    /// `lastBatch*` fields.
    async fn insert(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError>;

    /// Returns the objects with these ids that exist in the tenant, in the order asked.
    async fn get(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        ids: &[String],
    ) -> Result<Vec<Doc>, MetastoreError>;

    /// Returns one page of the objects matching the query, in the query's order.
    async fn list(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<Vec<Doc>, MetastoreError>;

    /// Returns how many objects match the query's filters, ignoring paging.
    async fn count(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        query: &ListQuery,
    ) -> Result<u64, MetastoreError>;

    /// Replaces an object with the result of `change` applied to its current state, in one
    /// transaction. A batch status change is recorded on its dataset.
    async fn update(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        options: UpdateOptions,
        change: DocChange,
    ) -> Result<Doc, MetastoreError>;

    /// Deletes an object; returns false when it did not exist. Deleting a dataset deletes
    /// its dataset files and marks its batches `deleted`.
    async fn delete(
        &self,
        tenant: &Tenant,
        kind: ObjectKind,
        id: &str,
        actor: &Actor,
    ) -> Result<bool, MetastoreError>;

    /// Creates a batch through the Batch Ingestion API (spec §3.1): checks the dataset,
    /// the externalId and the replay predecessors, and stores the batch in `loading`, all
    /// in one transaction.
    async fn create_import_batch(
        &self,
        tenant: &Tenant,
        request: &NewImportBatch,
        batch_id: &BatchId,
        actor: &Actor,
        now: i64,
    ) -> Result<Doc, MetastoreError>;

    /// Stores a new Schema Registry resource (its `$id`, `meta:altId` and `title` set);
    /// titles are unique per kind within the tenant.
    async fn insert_resource(
        &self,
        tenant: &Tenant,
        kind: ResourceKind,
        doc: Doc,
    ) -> Result<Doc, MetastoreError>;

    /// Returns the tenant's resource whose `$id` or `meta:altId` is `id`.
    async fn get_resource(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
    ) -> Result<Option<Doc>, MetastoreError>;

    /// Returns the tenant's resources (of one kind, or all), oldest first.
    async fn list_resources(
        &self,
        tenant: &Tenant,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<Doc>, MetastoreError>;

    /// Returns the tenant's resources whose stored text contains `needle` (an `$id` or
    /// `meta:altId`), oldest first: a superset of the resources that `$ref` it, found without
    /// loading the whole registry.
    async fn resources_containing(
        &self,
        tenant: &Tenant,
        needle: &str,
    ) -> Result<Vec<Doc>, MetastoreError>;

    /// Replaces a resource if it still has `expected_version` (optimistic concurrency: the
    /// caller computed `doc` from that version and the registry it read).
    async fn replace_resource(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
        expected_version: &str,
        doc: Doc,
    ) -> Result<Doc, MetastoreError>;

    /// Deletes a resource; returns false when it did not exist.
    async fn delete_resource(
        &self,
        tenant: &Tenant,
        id: &ResourceId,
    ) -> Result<bool, MetastoreError>;

    /// Checks that a batch exists, belongs to `dataset_id` and is `loading` (spec §3.2).
    async fn upload_target(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
    ) -> Result<Doc, MetastoreError>;

    /// Records a complete staged file (replacing an earlier one of the same path) after
    /// checking the batch again and the file-count and size limits; returns the upload id
    /// it replaced, whose bytes may now be deleted.
    #[expect(
        clippy::too_many_arguments,
        reason = "one upload is described by all of these"
    )]
    async fn record_file(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
        path: &str,
        upload_id: &str,
        size: u64,
        limits: UploadLimits,
    ) -> Result<Option<String>, MetastoreError>;

    /// Starts (or restarts) a chunked upload; returns the id of an upload it replaced.
    async fn start_chunked_upload(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
        path: &str,
        upload_id: &str,
    ) -> Result<Option<String>, MetastoreError>;

    /// Records a received chunk and returns the file's chunk state.
    async fn record_chunk(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        dataset_id: &DatasetId,
        path: &str,
        upload_id: &str,
        chunk: Chunk,
    ) -> Result<BatchFile, MetastoreError>;

    /// Returns one file of a batch.
    async fn batch_file(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        path: &str,
    ) -> Result<Option<BatchFile>, MetastoreError>;

    /// Returns every file of a batch, by path.
    async fn batch_files(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Vec<BatchFile>, MetastoreError>;

    /// Applies a client signal (spec §3.7) in one transaction; the follow-up job goes in that
    /// same transaction: COMPLETE enqueues the promotion, ABORT the clean-up, REVERT the
    /// clean-up of the reverted data due `cleanup_delay_ms` after `now`. Returns the batch
    /// as it now is.
    async fn signal_batch(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
        action: BatchAction,
        actor: &Actor,
        now: i64,
        cleanup_delay_ms: i64,
    ) -> Result<Doc, MetastoreError>;

    /// Rung (`notify_one`) when this node queues a job that is due at once: a batch signal,
    /// a table job, sealed or requeued stream segments. Idle workers of the node wait on it
    /// next to their poll interval, so a job starts without waiting for the next poll; jobs
    /// queued by other nodes are still found by polling.
    fn job_bell(&self) -> Arc<tokio::sync::Notify>;

    /// Claims the next runnable job (queued and due, or running with an expired lease).
    async fn claim_job(
        &self,
        worker: &str,
        lease_ms: i64,
        now: i64,
    ) -> Result<Option<Job>, MetastoreError>;

    /// Extends a job's lease; false when the worker no longer holds it.
    async fn renew_lease(&self, job: &Job, until: i64) -> Result<bool, MetastoreError>;

    /// Returns up to `limit` datasets of every tenant after `after` (org, sandbox, id; three
    /// empty strings for the first page), ordered so: the start-up conversion of datasets to
    /// Delta tables walks them all once.
    async fn all_datasets(
        &self,
        after: &(String, String, String),
        limit: u32,
    ) -> Result<Vec<(Tenant, Doc)>, MetastoreError>;

    /// Takes the lock on a dataset's Delta table for `job`, whose lease the worker must hold
    /// (else `LostLease`): the metastore is each table's commit coordinator (spec §12), so
    /// one commit at a time is written to a table, by a lease holder. Returns false while
    /// another job holds the lock. The lock ends with [`Metastore::unlock_table`] or with
    /// the holder's lease (the job done, retried, or its lease expired).
    async fn lock_table(
        &self,
        job: &Job,
        dataset_id: &DatasetId,
        now: i64,
    ) -> Result<bool, MetastoreError>;

    /// Releases `job`'s lock on a dataset's table (a no-op when it holds none).
    async fn unlock_table(&self, job: &Job, dataset_id: &DatasetId) -> Result<(), MetastoreError>;

    /// Moves a batch to `processing` for a job; `None` when there is nothing to process
    /// (the batch was aborted or already finished), in which case the job is done.
    async fn begin_processing(&self, job: &Job, now: i64) -> Result<Option<Doc>, MetastoreError>;

    /// Commits a processed batch in one transaction: dataset files registered, batch
    /// fields and status set, the dataset's `lastBatch*` moved, replay predecessors made
    /// `inactive` with their delayed clean-up jobs enqueued, the job done — or nothing, if
    /// the job's lease was lost.
    async fn complete_promotion(
        &self,
        job: &Job,
        promotion: Promotion,
        now: i64,
    ) -> Result<Doc, MetastoreError>;

    /// Records a transient failure: the job runs again after `retry_at` (batch `retrying`)
    /// or, once `max_attempts` are used, the batch becomes `stalled`.
    async fn retry_job(
        &self,
        job: &Job,
        error: &str,
        retry_at: i64,
        max_attempts: u32,
        now: i64,
    ) -> Result<(), MetastoreError>;

    /// Marks a job done without promotion (clean-up jobs, nothing to do).
    async fn finish_job(&self, job: &Job, now: i64) -> Result<(), MetastoreError>;

    /// Enqueues a job for a batch.
    async fn enqueue_job(
        &self,
        tenant: &Tenant,
        kind: lakeport_domain::ingest::JobKind,
        batch_id: &BatchId,
        run_at: i64,
    ) -> Result<(), MetastoreError>;

    /// Enqueues a table job (compaction or vacuum) for a dataset, unless one of that kind
    /// is queued or running for it already; returns the job's id.
    async fn enqueue_table_job(
        &self,
        tenant: &Tenant,
        kind: lakeport_domain::ingest::JobKind,
        dataset_id: &DatasetId,
    ) -> Result<i64, MetastoreError>;

    /// Returns a dataset's table job; None when the tenant has no such job for it.
    async fn table_job(
        &self,
        tenant: &Tenant,
        dataset_id: &DatasetId,
        id: i64,
    ) -> Result<Option<lakeport_domain::ingest::TableJob>, MetastoreError>;

    /// Marks a table job done with what it did (JSON); `LostLease` when the worker no
    /// longer holds it.
    async fn finish_table_job(
        &self,
        job: &Job,
        result: &str,
        now: i64,
    ) -> Result<(), MetastoreError>;

    /// Moves `loading` batches created before `created_before` to `abandoned`; returns
    /// their (tenant, batch id) so their staged data can be removed.
    async fn abandon_stale_batches(
        &self,
        created_before: i64,
        now: i64,
    ) -> Result<Vec<(Tenant, BatchId)>, MetastoreError>;

    /// Returns a dataset file with its storage location.
    async fn dataset_file(
        &self,
        tenant: &Tenant,
        id: &str,
    ) -> Result<Option<StoredDatasetFile>, MetastoreError>;

    /// Returns the dataset files of a batch with their storage locations.
    async fn batch_dataset_files(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Vec<StoredDatasetFile>, MetastoreError>;

    /// Returns where a batch's diagnostics were written, if anywhere.
    async fn diagnostics_location(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Option<String>, MetastoreError>;

    /// Returns the diagnostics files recorded for a batch, or `None` when none were
    /// recorded (no diagnostics, cleared by retention, or written before files were
    /// recorded: then listing storage under [`Metastore::diagnostics_location`] finds them).
    async fn diagnostics_files(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<Option<Vec<DiagnosticsFile>>, MetastoreError>;

    /// Returns up to `limit` batches completed before `completed_before` whose
    /// diagnostics location is still recorded, oldest first, in every tenant.
    async fn expired_diagnostics(
        &self,
        completed_before: i64,
        limit: u32,
    ) -> Result<Vec<ExpiredDiagnostics>, MetastoreError>;

    /// Forgets a batch's diagnostics location once its files are deleted; returns false
    /// when none was recorded.
    async fn clear_diagnostics(
        &self,
        tenant: &Tenant,
        batch_id: &BatchId,
    ) -> Result<bool, MetastoreError>;

    /// Stores a new Flow Service object after checking, in the same transaction, what it
    /// references (spec §10.1) and the per-kind limit.
    async fn insert_flow_object(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
        doc: Doc,
        reference: &Reference,
    ) -> Result<Doc, MetastoreError>;

    /// Returns one Flow Service object of the tenant.
    async fn get_flow_object(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
        id: &str,
    ) -> Result<Option<Doc>, MetastoreError>;

    /// Returns every Flow Service object of a kind in the tenant, oldest first.
    async fn list_flow_objects(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
    ) -> Result<Vec<Doc>, MetastoreError>;

    /// Deletes a Flow Service object; refuses one still used by another; returns false
    /// when it did not exist.
    async fn delete_flow_object(
        &self,
        tenant: &Tenant,
        kind: FlowKind,
        id: &str,
    ) -> Result<bool, MetastoreError>;

    /// Returns the inlet with this id, whichever tenant owns it.
    async fn inlet(&self, inlet_id: &str) -> Result<Option<Inlet>, MetastoreError>;

    /// Appends several requests' records to their datasets' logs in one transaction (one
    /// commit, one fsync); returns one outcome per request, in order. Records of one
    /// tenant, dataset and connection share a chunk row. Once this returns, the appended
    /// records are as durable as any commit.
    async fn append_stream_groups(
        &self,
        groups: Vec<StreamAppend>,
        now: i64,
    ) -> Result<Vec<AppendOutcome>, MetastoreError>;

    /// Appends one request's records without a generation check; returns their positions.
    async fn append_stream_records(
        &self,
        tenant: &Tenant,
        records: Vec<NewStreamRecord>,
        now: i64,
    ) -> Result<Vec<AppendedRecord>, MetastoreError> {
        let group = StreamAppend {
            tenant: tenant.clone(),
            generation: None,
            records,
        };
        match self.append_stream_groups(vec![group], now).await?.pop() {
            Some(AppendOutcome::Appended(positions)) => Ok(positions),
            _ => Err(MetastoreError::Backend {
                doing: "appending stream records",
                source: "an unchecked append was reported stale".into(),
            }),
        }
    }

    /// Seals the open segments whose oldest record arrived at or before `opened_before`
    /// or that hold `max_bytes` or more, and enqueues their flush jobs.
    async fn seal_stream_segments(
        &self,
        opened_before: i64,
        max_bytes: u64,
        now: i64,
    ) -> Result<Vec<SealedSegment>, MetastoreError>;

    /// Enqueues a new flush job for each segment sealed at or before `sealed_before` that
    /// is not done, has no batch yet and no queued or running flush job (its job failed
    /// for good, say object storage was down through every retry), so its acknowledged
    /// records still land; returns those segments (at most 100 per call).
    async fn requeue_stalled_segments(
        &self,
        sealed_before: i64,
        now: i64,
    ) -> Result<Vec<SealedSegment>, MetastoreError>;

    /// Returns the segment whose batch id is `batch_id` with one page of its records: those
    /// after `after` (`None`: from its first), as many as fit in `max_bytes` (at least one
    /// chunk). `None` once it is done (its batch terminal or deleted: the row and its
    /// records are gone).
    async fn stream_segment(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        after: Option<i64>,
        max_bytes: u64,
    ) -> Result<Option<StreamSegment>, MetastoreError>;

    /// Creates a segment's batch with its staged file and completes it, in one
    /// transaction; false when that was done already or the dataset is gone.
    async fn submit_stream_segment(
        &self,
        tenant: &Tenant,
        batch_id: &str,
        upload_id: &str,
        size: u64,
        now: i64,
    ) -> Result<bool, MetastoreError>;

    /// Stores a new Query Service object (its `id`, `created` and `updated` set) after
    /// checking `cap` in the same transaction.
    async fn insert_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        doc: Doc,
        cap: queries::QsCap,
    ) -> Result<Doc, MetastoreError>;

    /// Returns one Query Service object of the tenant.
    async fn get_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        id: &QsObjectId,
    ) -> Result<Option<Doc>, MetastoreError>;

    /// Returns one page of a listing in its order, plus one more object when a next page
    /// exists.
    async fn list_qs_objects(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        listing: &QsListing,
    ) -> Result<Vec<Doc>, MetastoreError>;

    /// Replaces an object with what `change` makes of its current state, in one
    /// transaction; returns the object as it now is.
    async fn update_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        id: &QsObjectId,
        change: queries::QsChange,
    ) -> Result<Doc, MetastoreError>;

    /// Deletes an object; false when it did not exist.
    async fn delete_qs_object(
        &self,
        tenant: &Tenant,
        kind: QsKind,
        id: &QsObjectId,
    ) -> Result<bool, MetastoreError>;

    /// Checks that the backend answers; used by `/health`.
    async fn ping(&self) -> Result<(), MetastoreError>;
}
