//! A dataset's Delta table outside the promotion (spec §12): created with the dataset,
//! deleted with it, read as of a version, and the start-up conversion of datasets whose
//! batches were promoted before their tables existed.

use lakeport_domain::Doc;
use lakeport_domain::catalog::{self, TABLE_FORMAT_TAG};
use lakeport_domain::ids::BatchId;
use lakeport_domain::query::{ListQuery, ObjectKind, PageLimits};
use lakeport_domain::status::BatchStatus;
use lakeport_domain::tenant::Tenant;
use lakeport_metastore::Metastore;
use lakeport_storage::{Key, Storage};
use serde_json::{Value, json};

use crate::{JobError, TABLE_VERSION_FIELD};

/// Datasets read per page of the conversion's walk.
const DATASET_PAGE: u32 = 100;
/// Batches read per page of one dataset's history.
const BATCH_PAGE: u32 = 100;

fn open(
    storage: &Storage,
    tenant: &Tenant,
    dataset_id: &str,
) -> Result<lakeport_lake::Table, JobError> {
    Ok(lakeport_lake::Table::open(
        storage,
        &lakeport_lake::dataset_root(tenant.org(), tenant.sandbox(), dataset_id),
    )?)
}

/// The Arrow schema of a dataset, or None when it has none (no `schemaRef`, a schema that
/// does not resolve or has no Arrow equivalent): such a dataset gets its table from its
/// first promotion, which fails with the reason.
async fn arrow_schema(
    metastore: &dyn Metastore,
    tenant: &Tenant,
    dataset: &Doc,
) -> Result<Option<arrow_schema::Schema>, JobError> {
    let Ok(full) = crate::promote::full_schema(metastore, tenant, dataset).await? else {
        return Ok(None);
    };
    Ok(lakeport_parquet::arrow_schema(&full).ok())
}

/// Creates the empty table of a new dataset (version 0) and returns its version; None when
/// the dataset has no usable schema yet.
///
/// # Errors
/// The registry or the table cannot be read or written.
pub async fn create_table(
    metastore: &dyn Metastore,
    storage: &Storage,
    tenant: &Tenant,
    dataset_id: &str,
    dataset: &Doc,
) -> Result<Option<u64>, JobError> {
    let Some(schema) = arrow_schema(metastore, tenant, dataset).await? else {
        return Ok(None);
    };
    let version = open(storage, tenant, dataset_id)?.create(&schema).await?;
    Ok(Some(version))
}

/// Deletes a dataset's table (its log and every file under its root); returns how many
/// objects were deleted.
///
/// # Errors
/// The storage refused a listing or a deletion.
pub async fn delete_table(
    storage: &Storage,
    tenant: &Tenant,
    dataset_id: &str,
) -> Result<u64, JobError> {
    Ok(open(storage, tenant, dataset_id)?.delete().await?)
}

/// Returns the version read and the keys of the table's files live at `version` (the
/// latest when None), or None when the table or that version does not exist.
///
/// # Errors
/// The log cannot be read.
pub async fn table_files(
    storage: &Storage,
    tenant: &Tenant,
    dataset_id: &str,
    version: Option<u64>,
) -> Result<Option<(u64, Vec<Key>)>, JobError> {
    let table = open(storage, tenant, dataset_id)?;
    let Some(latest) = table.version().await? else {
        return Ok(None);
    };
    let version = version.unwrap_or(latest);
    if version > latest {
        return Ok(None);
    }
    let files = table.live_files(Some(version)).await?;
    Ok(Some((
        version,
        files.iter().map(|path| table.key_of(path)).collect(),
    )))
}

/// What [`convert_datasets`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Converted {
    /// Datasets that got a table (or whose interrupted conversion was finished).
    pub datasets: usize,
    /// Commits written for their batches (promotions and removals).
    pub commits: usize,
}

/// Converts every dataset that has no recorded table version (created before tables
/// existed) into a Delta table, writing its history as commits: one per promoted batch, in
/// the order they were created (a replay removing its predecessors' files), then a removal
/// for each batch reverted since; each batch's Catalog entry records its version, the
/// dataset its latest version and the `delta` format tag. Safe to run again after a crash:
/// a batch's commit already in the log is found, not repeated. Runs at start-up, before
/// this node's workers.
///
/// # Errors
/// The metastore or the storage failed; a dataset whose schema cannot be resolved is
/// skipped (logged).
pub async fn convert_datasets(
    metastore: &dyn Metastore,
    storage: &Storage,
) -> Result<Converted, JobError> {
    let mut converted = Converted::default();
    let mut after = (String::new(), String::new(), String::new());
    loop {
        let page = metastore.all_datasets(&after, DATASET_PAGE).await?;
        let Some((last_tenant, last)) = page.last() else {
            break;
        };
        after = (
            last_tenant.org().to_owned(),
            last_tenant.sandbox().to_owned(),
            catalog::object_id(last).unwrap_or_default().to_owned(),
        );
        let full = page.len() == DATASET_PAGE as usize;
        for (tenant, dataset) in page {
            if dataset.contains_key(TABLE_VERSION_FIELD) {
                continue;
            }
            let id = catalog::object_id(&dataset).unwrap_or_default().to_owned();
            match convert_dataset(metastore, storage, &tenant, &id, &dataset).await? {
                Some(commits) => {
                    converted.datasets += 1;
                    converted.commits += commits;
                }
                None => tracing::warn!(
                    dataset.id = %id,
                    tenant.org = tenant.org(),
                    "dataset not converted to a Delta table: its schema cannot be resolved; its next promotion creates the table"
                ),
            }
        }
        if !full {
            break;
        }
    }
    Ok(converted)
}

/// Converts one dataset; returns how many commits were written, or None when its schema
/// cannot be resolved.
async fn convert_dataset(
    metastore: &dyn Metastore,
    storage: &Storage,
    tenant: &Tenant,
    dataset_id: &str,
    dataset: &Doc,
) -> Result<Option<usize>, JobError> {
    let Some(schema) = arrow_schema(metastore, tenant, dataset).await? else {
        return Ok(None);
    };
    let table = open(storage, tenant, dataset_id)?;
    let mut latest = table.create(&schema).await?;
    let mut commits = 0;
    let mut reverted: Vec<String> = Vec::new();
    let mut start = 0u32;
    loop {
        let params = [
            ("dataSet".to_owned(), dataset_id.to_owned()),
            ("orderBy".to_owned(), "created".to_owned()),
            ("limit".to_owned(), BATCH_PAGE.to_string()),
            ("start".to_owned(), start.to_string()),
        ];
        let limits = PageLimits {
            default_limit: BATCH_PAGE,
            max_limit: BATCH_PAGE,
            reject_over_max: false,
        };
        let query = ListQuery::parse(ObjectKind::Batch, &params, limits)
            .map_err(|err| JobError::Io(format!("listing a dataset's batches: {err}")))?;
        let batches = metastore.list(tenant, ObjectKind::Batch, &query).await?;
        let count = batches.len();
        for batch in batches {
            let status = catalog::batch_status(&batch);
            if !matches!(status, Some(BatchStatus::Success | BatchStatus::Inactive)) {
                continue;
            }
            let batch_id = catalog::object_id(&batch).unwrap_or_default().to_owned();
            let stored = metastore
                .batch_dataset_files(tenant, &BatchId::from(batch_id.clone()))
                .await?;
            let mut files = Vec::new();
            for file in stored {
                let key = Key::parse(file.location.as_str()).map_err(|err| {
                    JobError::Io(format!("{} is not a storage key: {err}", file.location))
                })?;
                let number = |field: &str| file.doc.get(field).and_then(Value::as_u64);
                files.push(lakeport_lake::DataFile {
                    key,
                    size: number("size").unwrap_or_default(),
                    records: number("records").unwrap_or_default(),
                });
            }
            if files.is_empty() {
                // Collected already: nothing of it is left to show.
                continue;
            }
            let replaces: Vec<String> = batch
                .get("replay")
                .and_then(|replay| replay.get("predecessors"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
            let committed = table
                .commit_batch(&lakeport_lake::BatchCommit {
                    batch_id: &batch_id,
                    schema: &schema,
                    files: &files,
                    replaces: &replaces,
                    created_ms: batch.get("created").and_then(Value::as_i64).unwrap_or(0),
                    // An interrupted conversion may have committed it.
                    retry: true,
                })
                .await?;
            if !committed.found {
                commits += 1;
            }
            latest = latest.max(committed.version);
            set_field(
                metastore,
                tenant,
                ObjectKind::Batch,
                &batch_id,
                json!(committed.version),
            )
            .await?;
            if status == Some(BatchStatus::Inactive) {
                reverted.push(batch_id);
            }
        }
        if count < BATCH_PAGE as usize {
            break;
        }
        start += BATCH_PAGE;
    }
    // Reverted and replaced batches leave the table (a replay's commit removed its
    // predecessors already; then there is nothing to remove).
    for batch_id in reverted {
        if let Some(version) = table.remove_batch(&batch_id).await? {
            commits += 1;
            latest = latest.max(version);
        }
    }
    let change: lakeport_metastore::DocChange = Box::new(move |doc: &Doc| {
        let mut next = doc.clone();
        next.insert(TABLE_VERSION_FIELD.into(), json!(latest));
        let tags = next
            .entry("tags")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Value::Object(tags) = tags {
            tags.insert(TABLE_FORMAT_TAG.into(), json!(["delta"]));
        }
        Ok(next)
    });
    metastore
        .update(
            tenant,
            ObjectKind::Dataset,
            dataset_id,
            Default::default(),
            change,
        )
        .await?;
    tracing::info!(
        dataset.id = %dataset_id,
        tenant.org = tenant.org(),
        table.version = latest,
        commits,
        "dataset converted to a Delta table"
    );
    Ok(Some(commits))
}

/// Records the table version on a Catalog object without touching anything else.
async fn set_field(
    metastore: &dyn Metastore,
    tenant: &Tenant,
    kind: ObjectKind,
    id: &str,
    version: Value,
) -> Result<(), JobError> {
    let change: lakeport_metastore::DocChange = Box::new(move |doc: &Doc| {
        let mut next = doc.clone();
        next.insert(TABLE_VERSION_FIELD.into(), version.clone());
        Ok(next)
    });
    metastore
        .update(tenant, kind, id, Default::default(), change)
        .await?;
    Ok(())
}
