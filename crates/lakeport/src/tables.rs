//! The datasets' Delta tables behind the API (dataset creation and deletion, the preview's
//! time travel), over `lakeport-jobs`' table functions.

use std::sync::Arc;

use lakeport_domain::Doc;
use lakeport_domain::tenant::Tenant;
use lakeport_metastore::Metastore;
use lakeport_storage::{Key, Storage};

pub struct DeltaTables {
    pub metastore: Arc<dyn Metastore>,
    pub storage: Storage,
}

#[async_trait::async_trait]
impl lakeport_api::Tables for DeltaTables {
    async fn create(
        &self,
        tenant: &Tenant,
        dataset_id: &str,
        dataset: &Doc,
    ) -> Result<Option<u64>, String> {
        lakeport_jobs::tables::create_table(
            self.metastore.as_ref(),
            &self.storage,
            tenant,
            dataset_id,
            dataset,
        )
        .await
        .map_err(|err| err.to_string())
    }

    async fn delete(&self, tenant: &Tenant, dataset_id: &str) -> Result<u64, String> {
        lakeport_jobs::tables::delete_table(&self.storage, tenant, dataset_id)
            .await
            .map_err(|err| err.to_string())
    }

    async fn files(
        &self,
        tenant: &Tenant,
        dataset_id: &str,
        version: Option<u64>,
    ) -> Result<Option<(u64, Vec<Key>)>, String> {
        lakeport_jobs::tables::table_files(&self.storage, tenant, dataset_id, version)
            .await
            .map_err(|err| err.to_string())
    }
}
