//! The Catalog's metadata store: datasets, batches and dataset files, per tenant.
//!
//! This crate owns every line of SQL in Lakeport. It exposes the [`Metastore`] trait,
//! implemented by the embedded SQLite backend (and by PostgreSQL next), and depends only on
//! `lakeport-domain`; it must never depend on the API, storage or Arrow crates. Every write
//! runs in one transaction and decisions (version checks, uniqueness, state rules) are made
//! inside it by calling pure `domain` functions.

use async_trait::async_trait;
use lakeport_domain::catalog::import::{NewImportBatch, ReplayError};
use lakeport_domain::catalog::{Actor, DocumentError};
use lakeport_domain::query::{ListQuery, ObjectKind};
use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::ResourceKind;
use lakeport_domain::{Doc, ErrorKind, HasKind};

pub mod sqlite;

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
            Self::NotFound { .. } | Self::ResourceNotFound { .. } => ErrorKind::NotFound,
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
        batch_id: &str,
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
    async fn get_resource(&self, tenant: &Tenant, id: &str) -> Result<Option<Doc>, MetastoreError>;

    /// Returns the tenant's resources (of one kind, or all), oldest first.
    async fn list_resources(
        &self,
        tenant: &Tenant,
        kind: Option<ResourceKind>,
    ) -> Result<Vec<Doc>, MetastoreError>;

    /// Replaces a resource if it still has `expected_version` (optimistic concurrency: the
    /// caller computed `doc` from that version and the registry it read).
    async fn replace_resource(
        &self,
        tenant: &Tenant,
        id: &str,
        expected_version: &str,
        doc: Doc,
    ) -> Result<Doc, MetastoreError>;

    /// Deletes a resource; returns false when it did not exist.
    async fn delete_resource(&self, tenant: &Tenant, id: &str) -> Result<bool, MetastoreError>;

    /// Checks that the backend answers; used by `/health`.
    async fn ping(&self) -> Result<(), MetastoreError>;
}
