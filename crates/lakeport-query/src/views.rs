//! Nested strings read straight into view arrays.
//!
//! A table's columns are the types deltalake-core gives them: strings and binaries as view
//! types, at every depth. DataFusion tells the Parquet reader to produce views only for
//! top-level columns; a string inside a struct (`_acme.loyalty.tier`) was read into a
//! `Utf8` array, copying every value out of the page's dictionary, and then cast to
//! `Utf8View`, copying it again. Read as a view, a dictionary-encoded value is a 16-byte view
//! of the dictionary page's buffer.
//!
//! The reader takes its Arrow types from the file's `ARROW:schema` hint, so this factory
//! hands the Parquet reader each file's metadata with a hint that names a view type wherever
//! the table has one and the file holds a plain string or binary. Everything else (row
//! groups, statistics, the page index, the bytes read) is the wrapped reader's.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::ParquetFileReaderFactory;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::arrow::{
    ARROW_SCHEMA_META_KEY, encode_arrow_schema, parquet_to_arrow_schema,
};
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::metadata::{
    FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataBuilder,
};
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::FutureExt as _;
use futures::future::BoxFuture;

/// Wraps a reader factory: its readers' metadata carries view-type hints for `table`.
pub(crate) struct ViewReaderFactory {
    inner: Arc<dyn ParquetFileReaderFactory>,
    table: SchemaRef,
}

impl ViewReaderFactory {
    pub(crate) fn new(inner: Arc<dyn ParquetFileReaderFactory>, table: SchemaRef) -> Self {
        Self { inner, table }
    }
}

impl fmt::Debug for ViewReaderFactory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewReaderFactory")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl ParquetFileReaderFactory for ViewReaderFactory {
    fn create_reader(
        &self,
        partition_index: usize,
        partitioned_file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> datafusion::common::Result<Box<dyn AsyncFileReader + Send>> {
        let inner = self.inner.create_reader(
            partition_index,
            partitioned_file,
            metadata_size_hint,
            metrics,
        )?;
        Ok(Box::new(ViewReader {
            inner,
            table: Arc::clone(&self.table),
        }))
    }
}

struct ViewReader {
    inner: Box<dyn AsyncFileReader + Send>,
    table: SchemaRef,
}

impl AsyncFileReader for ViewReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, ParquetResult<Bytes>> {
        self.inner.get_bytes(range)
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, ParquetResult<Vec<Bytes>>> {
        self.inner.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        async move {
            let metadata = self.inner.get_metadata(options).await?;
            with_view_hints(metadata, &self.table)
        }
        .boxed()
    }
}

/// Returns `metadata` with an `ARROW:schema` hint that reads as views the strings and
/// binaries `table` has as views; `metadata` itself when no column changes.
///
/// # Errors
/// The file's schema cannot be turned into Arrow (the reader would refuse it as well).
fn with_view_hints(
    metadata: Arc<ParquetMetaData>,
    table: &Schema,
) -> ParquetResult<Arc<ParquetMetaData>> {
    let file = metadata.file_metadata();
    let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())?;
    let Some(fields) = hinted_fields(schema.fields(), table.fields()) else {
        return Ok(metadata);
    };
    let hinted = Schema::new_with_metadata(fields, schema.metadata().clone());
    let mut pairs: Vec<KeyValue> = file
        .key_value_metadata()
        .into_iter()
        .flatten()
        .filter(|pair| pair.key != ARROW_SCHEMA_META_KEY)
        .cloned()
        .collect();
    pairs.push(KeyValue::new(
        ARROW_SCHEMA_META_KEY.to_owned(),
        encode_arrow_schema(&hinted),
    ));
    let file_metadata = FileMetaData::new(
        file.version(),
        file.num_rows(),
        file.created_by().map(str::to_owned),
        Some(pairs),
        file.schema_descr_ptr(),
        file.column_orders().cloned(),
    );
    let rebuilt = ParquetMetaDataBuilder::new(file_metadata)
        .set_row_groups(metadata.row_groups().to_vec())
        .set_column_index(metadata.column_index().cloned())
        .set_offset_index(metadata.offset_index().cloned())
        .build();
    Ok(Arc::new(rebuilt))
}

/// The file's `fields` with view types where `table`'s same-named fields have them; None
/// when nothing changes.
fn hinted_fields(fields: &Fields, table: &Fields) -> Option<Fields> {
    let mut changed = false;
    let out: Vec<FieldRef> = fields
        .iter()
        .map(|field| {
            let wanted = table.find(field.name()).map(|(_, wanted)| wanted);
            match wanted.and_then(|wanted| hinted_type(field.data_type(), wanted.data_type())) {
                Some(data_type) => {
                    changed = true;
                    Arc::new(Field::clone(field).with_data_type(data_type))
                }
                None => Arc::clone(field),
            }
        })
        .collect();
    changed.then(|| Fields::from(out))
}

/// The type to read a file's column of type `file` as, for a table column of type `table`;
/// None when it stays.
fn hinted_type(file: &DataType, table: &DataType) -> Option<DataType> {
    match (file, table) {
        (DataType::Utf8 | DataType::LargeUtf8, DataType::Utf8View) => Some(DataType::Utf8View),
        (DataType::Binary | DataType::LargeBinary, DataType::BinaryView) => {
            Some(DataType::BinaryView)
        }
        (DataType::Struct(fields), DataType::Struct(wanted)) => {
            hinted_fields(fields, wanted).map(DataType::Struct)
        }
        (DataType::List(item), DataType::List(wanted) | DataType::LargeList(wanted)) => {
            hinted_type(item.data_type(), wanted.data_type())
                .map(|inner| DataType::List(Arc::new(Field::clone(item).with_data_type(inner))))
        }
        (DataType::LargeList(item), DataType::List(wanted) | DataType::LargeList(wanted)) => {
            hinted_type(item.data_type(), wanted.data_type()).map(|inner| {
                DataType::LargeList(Arc::new(Field::clone(item).with_data_type(inner)))
            })
        }
        (DataType::Map(entries, sorted), DataType::Map(wanted, _)) => {
            hinted_type(entries.data_type(), wanted.data_type()).map(|inner| {
                DataType::Map(
                    Arc::new(Field::clone(entries).with_data_type(inner)),
                    *sorted,
                )
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_become_views_at_every_depth_only_where_the_table_has_views() {
        let file = Fields::from(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new(
                "_acme",
                DataType::Struct(Fields::from(vec![
                    Field::new("tier", DataType::Utf8, true),
                    Field::new("points", DataType::Int64, true),
                    Field::new_list("tags", Field::new("element", DataType::Utf8, true), true),
                    Field::new("kept", DataType::Utf8, true),
                ])),
                true,
            ),
        ]);
        let table = Fields::from(vec![
            Field::new("id", DataType::Utf8View, false),
            Field::new(
                "_acme",
                DataType::Struct(Fields::from(vec![
                    Field::new("tier", DataType::Utf8View, true),
                    Field::new("points", DataType::Int64, true),
                    Field::new_list(
                        "tags",
                        Field::new("element", DataType::Utf8View, true),
                        true,
                    ),
                    Field::new("kept", DataType::Utf8, true),
                ])),
                true,
            ),
        ]);
        let hinted = hinted_fields(&file, &table).expect("the strings change");
        assert_eq!(hinted[0].data_type(), &DataType::Utf8View);
        let DataType::Struct(inner) = hinted[1].data_type() else {
            panic!("the struct stays a struct: {:?}", hinted[1]);
        };
        assert_eq!(inner[0].data_type(), &DataType::Utf8View);
        assert_eq!(inner[1].data_type(), &DataType::Int64);
        assert_eq!(
            inner[2].data_type(),
            &DataType::List(Arc::new(Field::new("element", DataType::Utf8View, true)))
        );
        assert_eq!(
            inner[3].data_type(),
            &DataType::Utf8,
            "the table keeps it Utf8"
        );
        assert!(
            hinted_fields(&hinted, &table).is_none(),
            "a file already read as the table wants is left alone"
        );
    }
}
