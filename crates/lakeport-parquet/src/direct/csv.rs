//! CSV records as columns (issue 16): the fields of a chunk of records are appended to one
//! text column per header column, and the columns are nested into struct arrays along the
//! header's field paths, so that the chunk has the shape of the row the row path builds
//! (`a.b` → `{"a": {"b": …}}`, an object present when any of its fields is) and can be
//! converted and checked column by column like a Parquet record batch.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{Array, ArrayRef, StringArray, StructArray};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer};
use arrow_schema::{ArrowError, Field, Fields};

/// One level of the header's paths: a leaf (a header column) or an object of them.
enum Shape {
    Leaf(usize),
    Object(Vec<(String, Shape)>),
}

impl Shape {
    /// Adds the column at `path` below this object, keeping names in the order they first
    /// appear in the header.
    fn insert(&mut self, path: &[String], column: usize) {
        let Shape::Object(children) = self else {
            return;
        };
        let (first, rest) = path.split_first().expect("a header path has a segment");
        let position = match children.iter().position(|(name, _)| name == first) {
            Some(position) => position,
            None => {
                let shape = if rest.is_empty() {
                    Shape::Leaf(column)
                } else {
                    Shape::Object(Vec::new())
                };
                children.push((first.clone(), shape));
                children.len() - 1
            }
        };
        if !rest.is_empty() {
            children[position].1.insert(rest, column);
        }
    }
}

/// The text columns of a chunk of CSV records.
pub(crate) struct CsvColumns {
    shape: Shape,
    builders: Vec<StringBuilder>,
    rows: usize,
}

/// A chunk of records as columns.
pub(crate) struct CsvChunk {
    /// The top-level fields of the nested columns.
    pub(crate) fields: Fields,
    /// One array per field, as long as the chunk.
    pub(crate) columns: Vec<ArrayRef>,
    /// The text column of each header column, to rebuild a row for the row validator.
    pub(crate) leaves: Vec<StringArray>,
}

impl CsvColumns {
    /// Prepares the columns of `paths`, the field path of each header column (checked not to
    /// collide).
    pub(crate) fn new(paths: &[Vec<String>]) -> Self {
        let mut shape = Shape::Object(Vec::new());
        for (column, path) in paths.iter().enumerate() {
            shape.insert(path, column);
        }
        Self {
            shape,
            builders: paths.iter().map(|_| StringBuilder::new()).collect(),
            rows: 0,
        }
    }

    /// Returns how many records the chunk holds.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Appends one record of one field per column (`None` for null).
    pub(crate) fn push<'t>(&mut self, fields: impl Iterator<Item = Option<&'t str>>) {
        for (builder, field) in self.builders.iter_mut().zip(fields) {
            match field {
                Some(text) => builder.append_value(text),
                None => builder.append_null(),
            }
        }
        self.rows += 1;
    }

    /// Returns the chunk as nested columns and empties the builders.
    ///
    /// # Errors
    /// Arrow's error when an array cannot be built (a bug).
    pub(crate) fn finish(&mut self) -> Result<CsvChunk, ArrowError> {
        // Each builder starts the next chunk with room for one like this one: a finished
        // builder keeps no buffers, and growing new ones by doubling copies the text again.
        let leaves: Vec<StringArray> = self
            .builders
            .iter_mut()
            .map(|builder| {
                let leaf = builder.finish();
                *builder = StringBuilder::with_capacity(leaf.len(), leaf.value_data().len());
                leaf
            })
            .collect();
        let rows = std::mem::take(&mut self.rows);
        let Shape::Object(children) = &self.shape else {
            unreachable!("the root is an object");
        };
        let (fields, columns) = nest(children, &leaves, rows)?;
        Ok(CsvChunk {
            fields,
            columns,
            leaves,
        })
    }
}

/// Builds the fields and arrays of an object's children; an object's array is valid where
/// any of its children is.
fn nest(
    children: &[(String, Shape)],
    leaves: &[StringArray],
    rows: usize,
) -> Result<(Fields, Vec<ArrayRef>), ArrowError> {
    let mut fields = Vec::with_capacity(children.len());
    let mut columns = Vec::with_capacity(children.len());
    for (name, shape) in children {
        let column: ArrayRef = match shape {
            Shape::Leaf(index) => Arc::new(leaves[*index].clone()),
            Shape::Object(grandchildren) => {
                let (inner_fields, inner) = nest(grandchildren, leaves, rows)?;
                let mut valid = BooleanBufferBuilder::new(rows);
                valid.append_n(rows, false);
                for column in &inner {
                    match column.logical_nulls() {
                        None => {
                            valid = BooleanBufferBuilder::new(rows);
                            valid.append_n(rows, true);
                            break;
                        }
                        Some(nulls) => {
                            for index in nulls.valid_indices() {
                                valid.set_bit(index, true);
                            }
                        }
                    }
                }
                let nulls = NullBuffer::new(valid.finish());
                let nulls = (nulls.null_count() > 0).then_some(nulls);
                Arc::new(StructArray::try_new_with_length(
                    inner_fields,
                    inner,
                    nulls,
                    rows,
                )?)
            }
        };
        fields.push(Field::new(name, column.data_type().clone(), true));
        columns.push(column);
    }
    Ok((Fields::from(fields), columns))
}

impl CsvChunk {
    /// Returns the fields of `row`, one per header column, as [`CsvFile::next`] reads them.
    ///
    /// [`CsvFile::next`]: crate::read::csv::CsvFile::next
    pub(crate) fn values(&self, row: usize) -> Vec<Option<String>> {
        self.leaves
            .iter()
            .map(|leaf| leaf.is_valid(row).then(|| leaf.value(row).to_owned()))
            .collect()
    }
}
