//! The read-only accelerated-store tables aepp 0.6.0's `InteractiveQuery` and
//! `InteractiveQuery2` read when they connect (spec §11.2):
//! `qsaccel.profile_agg.adwh_dim_merge_policies` with one default merge policy, and
//! `qsaccel.profile_agg.adwh_dim_namespaces` with none, column names upper-case as written.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemorySchemaProvider, SchemaProvider,
};
use datafusion::datasource::MemTable;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

/// Returns true when a statement names the stub catalog.
pub(crate) fn mentions(sql: &str) -> bool {
    sql.to_ascii_lowercase().contains("qsaccel.")
}

fn table(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Arc<MemTable> {
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)
        .expect("the stub columns match their schema");
    Arc::new(
        MemTable::try_new(schema, vec![vec![batch]]).expect("the stub batch matches its schema"),
    )
}

/// Returns a context holding only the stub tables; identifiers are not folded to lower
/// case, so the upper-case column names resolve unquoted.
pub(crate) fn context(runtime: &Arc<RuntimeEnv>) -> SessionContext {
    let mut config = SessionConfig::new();
    config.options_mut().sql_parser.enable_ident_normalization = false;
    let context = SessionContext::new_with_config_rt(config, Arc::clone(runtime));
    let schema = MemorySchemaProvider::new();
    let policies = table(
        vec![
            Field::new("MERGE_POLICY_ID", DataType::Int64, false),
            Field::new("MERGE_POLICY", DataType::Utf8, false),
            Field::new("IS_DEFAULT_MERGE_POLICY", DataType::Boolean, false),
        ],
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(StringArray::from(vec!["Default"])),
            Arc::new(BooleanArray::from(vec![true])),
        ],
    );
    let namespaces = table(
        vec![
            Field::new("NAMESPACE_ID", DataType::Int64, false),
            Field::new("NAMESPACE_DESCRIPTION", DataType::Utf8, false),
            Field::new("MERGE_POLICY_ID", DataType::Int64, false),
        ],
        vec![
            Arc::new(Int64Array::from(Vec::<i64>::new())),
            Arc::new(StringArray::from(Vec::<&str>::new())),
            Arc::new(Int64Array::from(Vec::<i64>::new())),
        ],
    );
    schema
        .register_table("adwh_dim_merge_policies".to_owned(), policies)
        .expect("a new schema takes the table");
    schema
        .register_table("adwh_dim_namespaces".to_owned(), namespaces)
        .expect("a new schema takes the table");
    let catalog = MemoryCatalogProvider::new();
    catalog
        .register_schema("profile_agg", Arc::new(schema))
        .expect("a new catalog takes the schema");
    context.register_catalog("qsaccel", Arc::new(catalog));
    context
}
