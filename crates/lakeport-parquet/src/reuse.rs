//! Reusing the encoded pages of a Parquet input (issue 16). When every row of an input row
//! group passes validation, a leaf column whose values the dataset stores exactly as the
//! input holds them (the same physical type, the same meaning, the same optional and
//! repeated ancestors) is copied into the output row group as its compressed pages are,
//! instead of being decoded into Arrow and encoded again. Validation still reads every value
//! of every column; only the encoding is skipped.
//!
//! A copied chunk keeps the input's codec and encodings (those every common reader handles:
//! see [`group_leaves`]) and loses its statistics: an input's statistics are not trusted to
//! prune queries. Nothing is held while a group's rows arrive: the writer encodes the other
//! leaves as they come, and when a row of the group was rejected (or the file failed part
//! way), reads the planned leaves of the group again from the input, without the rejected
//! rows, and encodes them too.

use std::fs::File;
use std::sync::Arc;

use arrow_array::BooleanArray;
use arrow_schema::Schema;
use arrow_select::filter::filter_record_batch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::compute_leaves;
use parquet::arrow::{ArrowSchemaConverter, ProjectionMask};
use parquet::basic::{
    Compression, ConvertedType, Encoding, LogicalType, Repetition, TimeUnit, Type as Physical,
};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{ColumnChunkMetaData, ParquetMetaData};
use parquet::schema::types::{ColumnDescPtr, SchemaDescriptor, Type};

/// The largest input row group copied, in compressed bytes: the writer holds the encoded
/// pages of the other leaves of a copied group until its end (an encoded row group is cut
/// every `rows_per_row_group` rows instead).
const COPY_GROUP_BYTES: i64 = 64 * 1024 * 1024;

/// Rows read at a time when a group's planned leaves are read again (fewer for wide rows).
const REREAD_ROWS: usize = 8192;

/// Uncompressed bytes (as the footer counts them) such a read holds at most, about.
const REREAD_BYTES: u64 = 32 * 1024 * 1024;

/// An input row group whose pages may be copied: the file, its footer, the group, and for
/// each leaf column of the output the input leaf to copy (`None`: encoded).
#[derive(Clone)]
pub(crate) struct CopyGroup {
    pub(crate) file: Arc<File>,
    pub(crate) metadata: Arc<ParquetMetaData>,
    pub(crate) group: usize,
    pub(crate) leaves: Arc<[Option<usize>]>,
    pub(crate) rows: usize,
    /// The file row (from 0) of the group's first row.
    pub(crate) first_row: u64,
}

impl std::fmt::Debug for CopyGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyGroup")
            .field("group", &self.group)
            .field("rows", &self.rows)
            .field("leaves", &self.leaves)
            .finish_non_exhaustive()
    }
}

impl CopyGroup {
    /// The close result that splices input leaf `input` into an output column `descr`:
    /// the chunk's sizes, offsets, codec and encodings, without statistics or page index.
    pub(crate) fn close_result(
        &self,
        input: usize,
        descr: ColumnDescPtr,
    ) -> Result<ColumnCloseResult, ParquetError> {
        let chunk = self.metadata.row_group(self.group).column(input);
        let metadata = ColumnChunkMetaData::builder(descr)
            .set_compression_codec(chunk.compression_codec())
            .set_encodings_mask(*chunk.encodings_mask())
            .set_total_compressed_size(chunk.compressed_size())
            .set_total_uncompressed_size(chunk.uncompressed_size())
            .set_num_values(chunk.num_values())
            .set_data_page_offset(chunk.data_page_offset())
            .set_dictionary_page_offset(chunk.dictionary_page_offset())
            .build()?;
        Ok(ColumnCloseResult {
            bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or(0),
            rows_written: u64::try_from(self.metadata.row_group(self.group).num_rows())
                .unwrap_or(0),
            metadata,
            bloom_filter: None,
            column_index: None,
            offset_index: None,
        })
    }

    /// Encodes the planned leaves of the group's first `covered` rows but those at offsets
    /// `rejected` (ascending) into `writers` (one per output leaf), read again from the
    /// input a few thousand rows at a time.
    pub(crate) fn encode_from_input(
        &self,
        writers: &mut [crate::output::LeafWriter],
        covered: usize,
        rejected: &[usize],
    ) -> Result<(), ParquetError> {
        let mut pairs: Vec<(usize, usize)> = self
            .leaves
            .iter()
            .enumerate()
            .filter_map(|(output, input)| input.map(|input| (input, output)))
            .collect();
        pairs.sort_unstable();
        let metadata =
            ArrowReaderMetadata::try_new(Arc::clone(&self.metadata), ArrowReaderOptions::new())?;
        let metadata = match crate::read::parquet::keeping_dictionaries(&metadata) {
            Some(schema) => ArrowReaderMetadata::try_new(
                Arc::clone(&self.metadata),
                ArrowReaderOptions::new().with_schema(Arc::new(schema)),
            )?,
            None => metadata,
        };
        let group = self.metadata.row_group(self.group);
        let rows = u64::try_from(group.num_rows()).unwrap_or(1).max(1);
        let bytes = u64::try_from(group.total_byte_size()).unwrap_or(0);
        let per_row = bytes.div_ceil(rows).max(1);
        let batch_rows = usize::try_from(REREAD_BYTES / per_row)
            .unwrap_or(REREAD_ROWS)
            .clamp(1, REREAD_ROWS);
        let mask = ProjectionMask::leaves(
            self.metadata.file_metadata().schema_descr(),
            pairs.iter().map(|&(input, _)| input),
        );
        let file = self
            .file
            .try_clone()
            .map_err(|err| ParquetError::External(Box::new(err)))?;
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata)
            .with_projection(mask)
            .with_row_groups(vec![self.group])
            .with_batch_size(batch_rows)
            // Only the rows read the first time: after a page that failed to decode, no
            // page past them is decoded again.
            .with_limit(covered)
            .build()?;
        let mut row = 0;
        for batch in reader {
            if row >= covered {
                break;
            }
            let batch = batch?;
            let taken = batch.num_rows().min(covered - row);
            let keep: BooleanArray = (row..row + taken)
                .map(|row| Some(rejected.binary_search(&row).is_err()))
                .collect();
            let batch = filter_record_batch(&batch.slice(0, taken), &keep)?;
            row += taken;
            let mut leaves = Vec::with_capacity(pairs.len());
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                leaves.extend(compute_leaves(field, column)?);
            }
            if leaves.len() != pairs.len() {
                return Err(ParquetError::General(format!(
                    "{} leaves read again from the input for {} planned",
                    leaves.len(),
                    pairs.len()
                )));
            }
            for (leaf, &(_, output)) in leaves.iter().zip(&pairs) {
                writers[output].write_leaf(leaf)?;
            }
        }
        Ok(())
    }
}

/// For each leaf column of the Parquet schema written for `output`, the leaf of `input`
/// holding the same values in the same encoding, when there is one.
pub(crate) fn plan(input: &SchemaDescriptor, output: &Schema) -> Vec<Option<usize>> {
    let Ok(output) = ArrowSchemaConverter::new().convert(output) else {
        return Vec::new();
    };
    (0..output.num_columns())
        .map(|leaf| {
            let wanted = output.column(leaf);
            let kind = kind_of(&wanted)?;
            let found = (0..input.num_columns())
                .find(|&other| input.column(other).path() == wanted.path())?;
            let other = input.column(found);
            (kind_of(&other) == Some(kind)
                && other.max_def_level() == wanted.max_def_level()
                && other.max_rep_level() == wanted.max_rep_level()
                && ancestry(input, found) == ancestry(&output, leaf))
            .then_some(found)
        })
        .collect()
}

/// The leaves of `plan` that row group `group` of `metadata` lets copy: none in a group over
/// [`COPY_GROUP_BYTES`]; chunks in the file itself, compressed with a codec and encoded
/// with encodings every common Parquet reader handles. `None` when no leaf is left.
pub(crate) fn group_leaves(
    metadata: &ParquetMetaData,
    group: usize,
    plan: &[Option<usize>],
) -> Option<Arc<[Option<usize>]>> {
    group_leaves_within(metadata, group, plan, COPY_GROUP_BYTES)
}

/// [`group_leaves`] with `max_bytes` for [`COPY_GROUP_BYTES`].
#[allow(deprecated)] // `BIT_PACKED`: the levels of older writers, which every reader decodes
fn group_leaves_within(
    metadata: &ParquetMetaData,
    group: usize,
    plan: &[Option<usize>],
    max_bytes: i64,
) -> Option<Arc<[Option<usize>]>> {
    let row_group = metadata.row_group(group);
    if row_group.compressed_size() > max_bytes {
        return None;
    }
    let leaves: Vec<Option<usize>> = plan
        .iter()
        .map(|input| {
            input.filter(|&input| {
                let chunk = row_group.column(input);
                chunk.file_path().is_none()
                    && matches!(
                        chunk.compression(),
                        Compression::UNCOMPRESSED
                            | Compression::SNAPPY
                            | Compression::GZIP(_)
                            | Compression::ZSTD(_)
                            | Compression::LZ4_RAW
                    )
                    && chunk.encodings().all(|encoding| {
                        matches!(
                            encoding,
                            Encoding::PLAIN
                                | Encoding::PLAIN_DICTIONARY
                                | Encoding::RLE_DICTIONARY
                                | Encoding::RLE
                                | Encoding::BIT_PACKED
                        )
                    })
                    && chunk.compressed_size() > 0
            })
        })
        .collect();
    leaves.iter().any(Option::is_some).then(|| leaves.into())
}

/// What a leaf's values are, as far as copying goes; `None` for types never copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Boolean,
    Int(u8),
    Float,
    Double,
    Date,
    TimestampMillis,
    TimestampMicros,
    Text,
    Binary,
}

fn kind_of(descr: &ColumnDescPtr) -> Option<Kind> {
    let logical = descr.logical_type_ref();
    let converted = descr.converted_type();
    match descr.physical_type() {
        Physical::BOOLEAN if logical.is_none() => Some(Kind::Boolean),
        Physical::FLOAT if logical.is_none() => Some(Kind::Float),
        Physical::DOUBLE if logical.is_none() => Some(Kind::Double),
        Physical::BYTE_ARRAY => match (logical, converted) {
            (Some(LogicalType::String), _) | (None, ConvertedType::UTF8) => Some(Kind::Text),
            (None, ConvertedType::NONE) => Some(Kind::Binary),
            _ => None,
        },
        Physical::INT32 => match (logical, converted) {
            (Some(LogicalType::Date), _) | (None, ConvertedType::DATE) => Some(Kind::Date),
            (Some(LogicalType::Integer(int)), _) if int.is_signed => {
                u8::try_from(int.bit_width).ok().map(Kind::Int)
            }
            (None, ConvertedType::NONE | ConvertedType::INT_32) => Some(Kind::Int(32)),
            (None, ConvertedType::INT_16) => Some(Kind::Int(16)),
            (None, ConvertedType::INT_8) => Some(Kind::Int(8)),
            _ => None,
        },
        Physical::INT64 => match (logical, converted) {
            (Some(LogicalType::Timestamp(timestamp)), _) if timestamp.is_adjusted_to_u_t_c => {
                match timestamp.unit {
                    TimeUnit::MILLIS => Some(Kind::TimestampMillis),
                    TimeUnit::MICROS => Some(Kind::TimestampMicros),
                    TimeUnit::NANOS => None,
                }
            }
            (None, ConvertedType::TIMESTAMP_MILLIS) => Some(Kind::TimestampMillis),
            (None, ConvertedType::TIMESTAMP_MICROS) => Some(Kind::TimestampMicros),
            (Some(LogicalType::Integer(int)), _) if int.is_signed && int.bit_width == 64 => {
                Some(Kind::Int(64))
            }
            (None, ConvertedType::NONE | ConvertedType::INT_64) => Some(Kind::Int(64)),
            _ => None,
        },
        _ => None,
    }
}

/// The repetition of each node from the top-level field down to leaf `leaf`.
fn ancestry(schema: &SchemaDescriptor, leaf: usize) -> Vec<Repetition> {
    let parts = schema.column(leaf).path().parts().to_vec();
    let mut node: &Type = schema.get_column_root(leaf);
    let repetition = |node: &Type| {
        let info = node.get_basic_info();
        if info.has_repetition() {
            info.repetition()
        } else {
            Repetition::REQUIRED
        }
    };
    let mut chain = vec![repetition(node)];
    for part in parts.iter().skip(1) {
        let Some(child) = node
            .get_fields()
            .iter()
            .find(|child| child.name() == part.as_str())
        else {
            break;
        };
        node = child;
        chain.push(repetition(node));
    }
    chain
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::{group_leaves_within, plan};

    #[test]
    fn same_leaves_are_planned_and_large_groups_are_not_copied() {
        let file_schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("count", DataType::Int64, true),
            Field::new("level", DataType::Int64, true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec![Some("a"), None, Some("c")])),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
            Arc::new(Int64Array::from(vec![4, 5, 6])),
        ];
        let batch = RecordBatch::try_new(file_schema.clone(), columns).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.parquet");
        let mut writer =
            ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), file_schema, None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let metadata =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                .unwrap()
                .metadata()
                .clone();
        // The dataset: `level` required (its levels differ), `count` a 32-bit integer, `name`
        // as in the file, and a column the file lacks.
        let output = Schema::new(vec![
            Field::new("missing", DataType::Utf8, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("count", DataType::Int32, true),
            Field::new("level", DataType::Int64, false),
        ]);
        let planned = plan(metadata.file_metadata().schema_descr(), &output);
        assert_eq!(planned, vec![None, Some(0), None, None]);
        let size = metadata.row_group(0).compressed_size();
        assert_eq!(
            group_leaves_within(&metadata, 0, &planned, size).as_deref(),
            Some(&[None, Some(0), None, None][..])
        );
        assert_eq!(group_leaves_within(&metadata, 0, &planned, size - 1), None);
    }
}
