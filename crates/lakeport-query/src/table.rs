//! A dataset's Delta table as a DataFusion table: the Parquet files live at one version of
//! the table, read by DataFusion's own Parquet scan.
//!
//! deltalake-core's provider wraps its Parquet scan in a node of its own, which the physical
//! optimizer cannot push a projection into: `SELECT _acme.loyalty.points …` read every leaf
//! of the `_acme` struct. Here the scan is a plain `DataSourceExec` over the table's live
//! files, so DataFusion pushes `get_field` projections into it and reads only the Parquet
//! leaves a statement names, and filters into its row-group and page pruning.
//!
//! The files are the `add` actions of the snapshot already loaded (the same log replay that
//! leaves out reverted and replaced batches' files); their `numRecords` stats add up to the
//! table's exact row count, so `count(*)` is answered without reading a file. A table this scan cannot read
//! as plain Parquet (partition columns, deletion vectors, column mapping: Lakeport writes
//! none, another writer could) is read through deltalake-core's provider instead.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::stats::Precision;
use datafusion::common::{Result, Statistics};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::object_store::ObjectStoreUrl;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use deltalake_core::DeltaTable;
use object_store::path::Path;

use crate::views::ViewReaderFactory;

/// The Delta configuration key of column mapping; any mode but `none` renames columns in
/// the files.
const COLUMN_MAPPING: &str = "delta.columnMapping.mode";

/// One version of a dataset's table: its schema and the Parquet files live in it.
#[derive(Debug)]
pub(crate) struct LakeTable {
    schema: SchemaRef,
    store: ObjectStoreUrl,
    files: Vec<PartitionedFile>,
    statistics: Statistics,
}

/// Returns `delta` (loaded at the version to read) as a DataFusion table, and registers its
/// object store with `session`'s runtime.
///
/// # Errors
/// The snapshot's files cannot be read, a file's path is not a URL under the table, or
/// deltalake-core refuses the table (a reader feature it does not support).
pub(crate) async fn provider(
    delta: &DeltaTable,
    session: &dyn Session,
) -> std::result::Result<Arc<dyn TableProvider>, String> {
    delta
        .update_datafusion_session(session)
        .map_err(|err| err.to_string())?;
    // deltalake-core's provider decides the table's columns (string and binary columns as
    // view types, nested nullability as the log has it), so the schema a statement sees does
    // not depend on which scan reads the files.
    let delta_provider = delta
        .table_provider()
        .await
        .map_err(|err| err.to_string())?;
    match LakeTable::new(delta, delta_provider.schema())? {
        Some(table) => Ok(Arc::new(table)),
        None => {
            tracing::debug!(table = %delta.table_url(), "table read through deltalake-core's scan");
            Ok(delta_provider)
        }
    }
}

impl LakeTable {
    /// Lists the live files of `delta`'s loaded version; None when the table needs more than
    /// a plain Parquet read (partition columns, deletion vectors, column mapping).
    fn new(delta: &DeltaTable, schema: SchemaRef) -> std::result::Result<Option<Self>, String> {
        let state = delta.snapshot().map_err(|err| err.to_string())?;
        let snapshot = state.snapshot();
        let metadata = snapshot.metadata();
        let mapped = metadata
            .configuration()
            .get(COLUMN_MAPPING)
            .is_some_and(|mode| mode != "none");
        if !metadata.partition_columns().is_empty() || mapped {
            return Ok(None);
        }
        let mut root = delta.table_url().clone();
        if !root.path().ends_with('/') {
            root.set_path(&format!("{}/", root.path()));
        }
        let store = ObjectStoreUrl::parse(&root[..url::Position::BeforePath])
            .map_err(|err| format!("the table's store {root}: {err}"))?;
        let log = snapshot.try_log_data().map_err(|err| err.to_string())?;
        let mut files = Vec::with_capacity(log.num_files());
        let mut rows = Some(0usize);
        for file in log.iter() {
            if file.deletion_vector_descriptor().is_some() {
                return Ok(None);
            }
            // `add` paths are relative to the root and URL-encoded (or absolute URLs).
            let url = root
                .join(&file.path())
                .map_err(|err| format!("the path of file {}: {err}", file.path()))?;
            if url[..url::Position::BeforePath] != root[..url::Position::BeforePath] {
                return Err(format!("file {} is outside the table's store", file.path()));
            }
            let location = Path::from_url_path(url.path())
                .map_err(|err| format!("the path of file {}: {err}", file.path()))?;
            rows = rows
                .zip(file.num_records())
                .map(|(sum, count)| sum.saturating_add(count));
            // Given the decoded path as it is: `PartitionedFile::new` would encode it again.
            // No per-file statistics: a column vector per file would cost more memory than
            // the table's row count (all the scan's plans use) is worth.
            let mut part = PartitionedFile::new("", u64::try_from(file.size()).unwrap_or_default());
            part.object_meta.location = location;
            files.push(part);
        }
        let mut statistics = Statistics::new_unknown(&schema);
        if let Some(rows) = rows {
            statistics.num_rows = Precision::Exact(rows);
        }
        Ok(Some(Self {
            schema,
            store,
            files,
            statistics,
        }))
    }
}

#[async_trait]
impl TableProvider for LakeTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn statistics(&self) -> Option<Statistics> {
        Some(self.statistics.clone())
    }

    /// Filters stay above the scan; the physical optimizer pushes them into it (row-group
    /// and page pruning, and row filters when `pushdown_filters` is set).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(columns) => Arc::new(self.schema.project(columns)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        // What `ParquetFormat::create_physical_plan` builds (the footer cache of the runtime),
        // with readers that read nested strings as the table's view types (`views`).
        let runtime = state.runtime_env();
        let cached = CachedParquetFileReaderFactory::new(
            runtime.object_store(&self.store)?,
            runtime.cache_manager.get_file_metadata_cache(),
        );
        let source = ParquetSource::new(TableSchema::from(Arc::clone(&self.schema)))
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_parquet_file_reader_factory(Arc::new(ViewReaderFactory::new(
                Arc::new(cached),
                Arc::clone(&self.schema),
            )));
        // One group: DataFusion splits it by byte ranges into `target_partitions` streams.
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_group(FileGroup::new(self.files.clone()))
            .with_statistics(self.statistics.clone())
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
