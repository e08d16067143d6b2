//! Columnar validation of decoded Arrow record batches (Parquet input, issue 16): each column
//! of a batch is converted to the dataset's Arrow type and checked against the compiled
//! validator in one loop over its values (dictionary values once each), structs and lists
//! recursively; no row becomes a `serde_json::Value` unless it is *undecided*.
//!
//! Like the JSON walker, this only ever accepts. A row is undecided when any of its values
//! fails a conversion or a check, a required field is null or missing, a container check
//! needs the whole value (`enum` on an object, `uniqueItems`), a column has a type this
//! module does not convert (decimals, binary, times, Arrow maps, large lists, …: the row
//! validator handles those), or the row may have more fields or bytes than the limits. The
//! caller hands undecided rows to the row validator, which accepts and converts them or
//! writes their diagnostics exactly as before; the other rows are taken from the converted
//! columns as they are. Conversions use the validator's own scalar functions and
//! predicates (`plan`), so a value accepted here is accepted, and converted the same way,
//! by the row path.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BooleanArray, ListArray, MapArray, PrimitiveArray, Scalar, StringArray,
    StructArray, new_null_array,
};
use arrow_buffer::{BooleanBufferBuilder, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, TimeUnit};
use lakeport_domain::xdm::validate::plan::{self, Field, FieldKind, IntegerType, ObjectFields};
use lakeport_domain::xdm::validate::{Source, Validator, parse_date, parse_date_time};
use serde_json::Number;

use crate::arrow_value::{format_date, format_timestamp};

/// The row of an element that belongs to no present value (under a null parent, a null
/// list item, outside every list's range).
const DEAD: u32 = u32::MAX;

/// What a byte-size estimate counts for a non-text value; at least what the row path's
/// estimate counts for any value that is not text.
const SCALAR_BYTES: u64 = 48;

/// A record batch converted to the dataset's columns, and which rows are left to the row
/// validator.
pub(crate) struct Checked {
    /// One array per field of the target schema, as long as the input batch. The values of
    /// undecided rows are unspecified (often null, even in required fields).
    pub(crate) columns: Vec<ArrayRef>,
    /// Per row: whether the row validator must decide it.
    pub(crate) undecided: Vec<bool>,
}

/// Converts and checks every column of `batch` (a Parquet file's columns, checked to be in
/// the schema, or the text columns of CSV records) for the fields of `target` (the
/// dataset's Arrow schema), with the conversions of `source` (CSV text converts to
/// booleans, other text does not). A row whose fields or estimated JSON size could pass
/// `max_row_bytes` or the validator's field limit is undecided, so the row path applies
/// those limits.
///
/// # Errors
/// Arrow's error when an array cannot be built (a bug).
pub(crate) fn check_batch(
    validator: &Validator,
    source: Source,
    target: &Fields,
    file: &Fields,
    columns: &[ArrayRef],
    rows: usize,
    max_row_bytes: usize,
) -> Result<Checked, ArrowError> {
    let mut state = State {
        undecided: vec![false; rows],
        fields: vec![0; rows],
        bytes: vec![0; rows],
        text_booleans: source == Source::Csv,
        sizes: max_row_bytes != usize::MAX,
        shared: 0,
        shared_limit: (max_row_bytes / 4) as u64,
        repeated: 0,
        identity: false,
    };
    let identity: Vec<u32> = (0..rows)
        .map(|row| u32::try_from(row).unwrap_or(DEAD))
        .collect();
    let columns = state.object(validator.root(), target, file, columns, &identity)?;
    let max_fields = validator.options().max_fields_per_row;
    for row in 0..rows {
        if state.fields[row] > max_fields
            || state.bytes[row].saturating_add(state.shared) > max_row_bytes as u64
        {
            state.undecided[row] = true;
        }
    }
    Ok(Checked {
        columns,
        undecided: state.undecided,
    })
}

/// Per row: the verdict so far, and the counts the row path limits.
struct State {
    undecided: Vec<bool>,
    /// Fields as the row validator counts them: present properties, array items, map
    /// entries.
    fields: Vec<usize>,
    /// An upper bound of the row path's JSON size estimate.
    bytes: Vec<u64>,
    /// Whether `true` and `false` text converts to booleans (CSV).
    text_booleans: bool,
    /// Whether the rows' sizes are estimated: not without a row limit (CSV, whose reader
    /// bounds the record).
    sizes: bool,
    /// Bytes counted for every row at once: the largest element of each scalar column
    /// outside lists whose largest element is small (see [`State::leaf`]).
    shared: u64,
    /// The most `shared` may reach: a quarter of the row limit, so that a column of large
    /// values is counted row by row and one large value leaves no other row undecided.
    shared_limit: u64,
    /// Lists entered: inside one, a row may have many elements of a column.
    repeated: usize,
    /// Whether the elements of the object being converted are the rows themselves, in
    /// order (set by [`State::object`] for each of its properties).
    identity: bool,
}

impl State {
    /// Converts the properties of objects whose elements sit at `rows`; returns one array
    /// per field of `target`, in its order.
    fn object(
        &mut self,
        object: ObjectFields<'_>,
        target: &Fields,
        file: &Fields,
        columns: &[ArrayRef],
        rows: &[u32],
    ) -> Result<Vec<ArrayRef>, ArrowError> {
        let mut out: Vec<Option<ArrayRef>> = vec![None; target.len()];
        // The same for every property of the object: whether its elements are the rows
        // themselves, in order (the top level, objects never null).
        let identity = rows.len() == self.fields.len()
            && rows
                .iter()
                .enumerate()
                .all(|(index, &row)| row as usize == index);
        for position in 0..object.len() {
            self.identity = identity;
            let name = object.name(position);
            let field = object.field(position);
            let required = object.is_required(position);
            let target_index = target.iter().position(|arrow| arrow.name() == name);
            let column = file
                .iter()
                .position(|arrow| arrow.name() == name)
                .map(|index| &columns[index]);
            match (target_index, column) {
                (Some(index), Some(column)) => {
                    out[index] =
                        Some(self.property(field, &target[index], column, rows, required, name)?);
                }
                (Some(index), None) => {
                    out[index] = Some(self.missing(field, &target[index], rows, required)?);
                }
                // A field that holds no data (an object without properties) is left to
                // the row validator wherever the file has it.
                (None, Some(_)) => self.mark_live(rows),
                (None, None) => {
                    if required {
                        self.mark_live(rows);
                    }
                }
            }
        }
        out.into_iter()
            .map(|array| {
                array.ok_or_else(|| {
                    ArrowError::SchemaError("an Arrow field has no compiled property".to_owned())
                })
            })
            .collect()
    }

    /// Converts one property's column: a null element is an absent property, which a
    /// required property with a default takes the default for.
    fn property(
        &mut self,
        field: Field<'_>,
        target: &FieldRef,
        column: &ArrayRef,
        rows: &[u32],
        required: bool,
        name: &str,
    ) -> Result<ArrayRef, ArrowError> {
        let nulls = column.nulls().filter(|nulls| nulls.null_count() > 0);
        let name_bytes = name.len() as u64 + 4;
        if nulls.is_none() {
            // Every live element is present: count it, keep the rows as they are.
            self.count_present(rows, name_bytes);
            return self.value(field, target.data_type(), column.as_ref(), rows);
        }
        let default = if required {
            default_array(field, target.data_type())
        } else {
            None
        };
        let mut defaults = None;
        let count_bytes = !self.shared_bytes(name_bytes);
        // Slices, so that the loop keeps their lengths in registers.
        let (fields, bytes, undecided) = (
            &mut self.fields[..],
            &mut self.bytes[..],
            &mut self.undecided[..],
        );
        let present: Vec<u32> = rows
            .iter()
            .enumerate()
            .map(|(index, &row)| {
                if row == DEAD || nulls.is_some_and(|nulls| nulls.is_null(index)) {
                    if row != DEAD && required {
                        if default.is_some() {
                            defaults.get_or_insert_with(|| vec![false; rows.len()])[index] = true;
                        } else {
                            undecided[row as usize] = true;
                        }
                    }
                    return DEAD;
                }
                fields[row as usize] += 1;
                if count_bytes {
                    bytes[row as usize] += name_bytes;
                }
                row
            })
            .collect();
        let converted = self.value(field, target.data_type(), column.as_ref(), &present)?;
        with_default(converted, default, defaults)
    }

    /// Counts a field of `name_bytes` for every live row of `rows` (the rows of the object
    /// [`object`](Self::object) is converting).
    fn count_present(&mut self, rows: &[u32], name_bytes: u64) {
        let count_bytes = !self.shared_bytes(name_bytes);
        let (fields, bytes) = (&mut self.fields[..], &mut self.bytes[..]);
        if self.identity {
            // The top level and objects never null: one add per row, vectorised.
            fields.iter_mut().for_each(|count| *count += 1);
            if count_bytes {
                bytes.iter_mut().for_each(|size| *size += name_bytes);
            }
            return;
        }
        for &row in rows {
            if row != DEAD {
                fields[row as usize] += 1;
                if count_bytes {
                    bytes[row as usize] += name_bytes;
                }
            }
        }
    }

    /// The column of a property the file does not have: null, or the default of a required
    /// property (a required property without one is left to the row validator).
    fn missing(
        &mut self,
        field: Field<'_>,
        target: &FieldRef,
        rows: &[u32],
        required: bool,
    ) -> Result<ArrayRef, ArrowError> {
        let nulls = new_null_array(target.data_type(), rows.len());
        if !required {
            return Ok(nulls);
        }
        let Some(default) = default_array(field, target.data_type()) else {
            self.mark_live(rows);
            return Ok(nulls);
        };
        let live = rows.iter().map(|&row| row != DEAD).collect();
        with_default(nulls, Some(default), Some(live))
    }

    /// Converts the non-null elements at live `rows` to `target`.
    fn value(
        &mut self,
        field: Field<'_>,
        target: &DataType,
        array: &dyn Array,
        rows: &[u32],
    ) -> Result<ArrayRef, ArrowError> {
        match (field.kind(), array.data_type(), target) {
            (
                FieldKind::Object(object),
                DataType::Struct(file_fields),
                DataType::Struct(target_fields),
            ) if field.accepts_object() => {
                let structs = array.as_struct();
                let inner = self.live_bytes(rows, structs.nulls(), 2);
                let children = self.object(
                    object,
                    target_fields,
                    file_fields,
                    structs.columns(),
                    &inner,
                )?;
                let nulls = self.container_nulls(structs.nulls(), rows);
                Ok(Arc::new(StructArray::try_new_with_length(
                    target_fields.clone(),
                    children,
                    nulls,
                    structs.len(),
                )?))
            }
            (FieldKind::Array(items), DataType::List(_), DataType::List(target_item)) => {
                self.list(field, items, target_item, array, rows)
            }
            (FieldKind::Map(values), DataType::Struct(file_fields), DataType::Map(entries, _))
                if field.accepts_object() =>
            {
                self.map_from_struct(values, file_fields, entries, array, rows)
            }
            (FieldKind::Object(_) | FieldKind::Map(_) | FieldKind::Array(_), _, _) => {
                Ok(self.unsupported(target, array, rows))
            }
            _ => self.leaf(field, target, array, rows),
        }
    }

    fn list(
        &mut self,
        field: Field<'_>,
        items: Field<'_>,
        target_item: &FieldRef,
        array: &dyn Array,
        rows: &[u32],
    ) -> Result<ArrayRef, ArrowError> {
        let list = array.as_list::<i32>();
        // A sliced list's values run past its rows: only the items of its rows are checked
        // and kept (an item outside them would be a valid struct with dropped fields).
        let (offsets, values) = match (list.offsets().first(), list.offsets().last()) {
            (Some(&first), Some(&last))
                if first != 0 || usize::try_from(last).ok() != Some(list.values().len()) =>
            {
                let start = usize::try_from(first).unwrap_or(0);
                let end = usize::try_from(last).unwrap_or(0);
                let offsets: ScalarBuffer<i32> =
                    list.offsets().iter().map(|offset| offset - first).collect();
                (
                    OffsetBuffer::new(offsets),
                    list.values().slice(start, end.saturating_sub(start)),
                )
            }
            _ => (list.offsets().clone(), list.values().clone()),
        };
        let mut item_rows = vec![DEAD; values.len()];
        for (index, &row) in rows.iter().enumerate() {
            if row == DEAD || list.is_null(index) {
                continue;
            }
            let start = usize::try_from(offsets[index]).unwrap_or(0);
            let end = usize::try_from(offsets[index + 1]).unwrap_or(0);
            let count = end.saturating_sub(start);
            if field.accepts_items(count) != Some(true) {
                self.undecided[row as usize] = true;
            }
            self.fields[row as usize] += count;
            self.bytes[row as usize] += 2;
            item_rows[start..end].fill(row);
        }
        // Null items are kept (and counted); the others are converted.
        let item_nulls = values.nulls();
        for (index, row) in item_rows.iter_mut().enumerate() {
            if *row != DEAD && item_nulls.is_some_and(|nulls| nulls.is_null(index)) {
                self.bytes[*row as usize] += 4;
                *row = DEAD;
            }
        }
        self.repeated += 1;
        let converted = self.value(items, target_item.data_type(), values.as_ref(), &item_rows);
        self.repeated -= 1;
        let converted = converted?;
        let nulls = self.container_nulls(list.nulls(), rows);
        Ok(Arc::new(ListArray::try_new(
            target_item.clone(),
            offsets,
            converted,
            nulls,
        )?))
    }

    /// An XDM map filled by a struct column: each non-null child is an entry keyed by its
    /// name, in the struct's order (as the row path reads it).
    fn map_from_struct(
        &mut self,
        values: Field<'_>,
        file_fields: &Fields,
        entries: &FieldRef,
        array: &dyn Array,
        rows: &[u32],
    ) -> Result<ArrayRef, ArrowError> {
        let DataType::Struct(entry_fields) = entries.data_type() else {
            return Ok(self.unsupported(array.data_type(), array, rows));
        };
        let names: Vec<&str> = file_fields
            .iter()
            .map(|field| field.name().as_str())
            .collect();
        let distinct = names
            .iter()
            .enumerate()
            .all(|(index, name)| !names[..index].contains(name));
        let Some(value_field) = entry_fields.get(1) else {
            return Err(ArrowError::SchemaError(
                "map entries without values".to_owned(),
            ));
        };
        let structs = array.as_struct();
        if !distinct {
            let target = DataType::Map(entries.clone(), false);
            return Ok(self.unsupported(&target, array, rows));
        }
        let inner = self.live_bytes(rows, structs.nulls(), 2);
        let mut converted = Vec::with_capacity(names.len());
        for (name, child) in names.iter().zip(structs.columns()) {
            let child_nulls = child.nulls();
            let present: Vec<u32> = inner
                .iter()
                .enumerate()
                .map(|(index, &row)| {
                    if row == DEAD || child_nulls.is_some_and(|nulls| nulls.is_null(index)) {
                        return DEAD;
                    }
                    self.fields[row as usize] += 1;
                    self.bytes[row as usize] += name.len() as u64 + 4;
                    row
                })
                .collect();
            converted.push(self.value(
                values,
                value_field.data_type(),
                child.as_ref(),
                &present,
            )?);
        }
        let mut offsets = Vec::with_capacity(structs.len() + 1);
        offsets.push(0i32);
        let mut picks: Vec<(usize, usize)> = Vec::new();
        for index in 0..structs.len() {
            if structs.is_valid(index) {
                for (child, column) in structs.columns().iter().enumerate() {
                    if column.is_valid(index) {
                        picks.push((child, index));
                    }
                }
            }
            offsets.push(
                i32::try_from(picks.len())
                    .map_err(|_| ArrowError::ComputeError("too many map entries".to_owned()))?,
            );
        }
        let keys = StringArray::from_iter_values(picks.iter().map(|&(child, _)| names[child]));
        let value_array = if converted.is_empty() {
            new_null_array(value_field.data_type(), 0)
        } else {
            let sources: Vec<&dyn Array> = converted.iter().map(AsRef::as_ref).collect();
            arrow_select::interleave::interleave(&sources, &picks)?
        };
        let entry_struct = StructArray::try_new(
            entry_fields.clone(),
            vec![Arc::new(keys) as ArrayRef, value_array],
            None,
        )?;
        let nulls = self.container_nulls(structs.nulls(), rows);
        Ok(Arc::new(MapArray::try_new(
            entries.clone(),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            entry_struct,
            nulls,
            false,
        )?))
    }

    /// Converts a scalar column; a value that fails makes its row undecided.
    fn leaf(
        &mut self,
        field: Field<'_>,
        target: &DataType,
        array: &dyn Array,
        rows: &[u32],
    ) -> Result<ArrayRef, ArrowError> {
        let Some((converted, bad)) = convert_leaf(field, target, array, self.text_booleans)? else {
            return Ok(self.unsupported(target, array, rows));
        };
        debug_assert!(bad.len() == rows.len());
        // Outside lists a row has at most one element of the column: the column's largest
        // bounds each row's, and is counted once for all rows while that stays small.
        let shared = !self.sizes
            || (self.repeated == 0
                && largest_size(array)
                    .is_some_and(|largest| self.shared_bytes(largest.saturating_add(3))));
        if shared {
            let undecided = &mut self.undecided[..];
            for (&row, _) in rows.iter().zip(&bad).filter(|&(_, &bad)| bad) {
                if row != DEAD {
                    undecided[row as usize] = true;
                }
            }
            return Ok(converted);
        }
        let sizes = text_sizes(array);
        let (bytes, undecided) = (&mut self.bytes[..], &mut self.undecided[..]);
        let mut add = |row: u32, bad: bool, size: u64| {
            if row != DEAD {
                undecided[row as usize] |= bad;
                bytes[row as usize] += size;
            }
        };
        match &sizes {
            Some(sizes) => {
                debug_assert!(sizes.len() == rows.len());
                for ((&row, &bad), &size) in rows.iter().zip(&bad).zip(sizes) {
                    add(row, bad, size + 3);
                }
            }
            None => {
                for (&row, &bad) in rows.iter().zip(&bad) {
                    add(row, bad, SCALAR_BYTES);
                }
            }
        }
        Ok(converted)
    }

    /// Leaves every live element to the row validator.
    fn unsupported(&mut self, target: &DataType, array: &dyn Array, rows: &[u32]) -> ArrayRef {
        self.mark_live(rows);
        new_null_array(target, array.len())
    }

    fn mark_live(&mut self, rows: &[u32]) {
        for &row in rows {
            if row != DEAD {
                self.undecided[row as usize] = true;
            }
        }
    }

    /// Adds `bytes` to the rows of the live, non-null elements; returns the rows of the
    /// elements' children (dead where the element is null).
    fn live_bytes(&mut self, rows: &[u32], nulls: Option<&NullBuffer>, bytes: u64) -> Vec<u32> {
        let count_bytes = !self.shared_bytes(bytes);
        let sizes = &mut self.bytes[..];
        rows.iter()
            .enumerate()
            .map(|(index, &row)| {
                if row == DEAD || nulls.is_some_and(|nulls| nulls.is_null(index)) {
                    return DEAD;
                }
                if count_bytes {
                    sizes[row as usize] += bytes;
                }
                row
            })
            .collect()
    }

    /// Counts `bytes` once for every row, when a row holds at most one such element (outside
    /// lists) and the shared count stays small; false when the caller counts them row by
    /// row. Without a size estimate (CSV) there is nothing to count.
    fn shared_bytes(&mut self, bytes: u64) -> bool {
        if !self.sizes {
            return true;
        }
        if self.repeated > 0 {
            return false;
        }
        let total = self.shared.saturating_add(bytes);
        if total > self.shared_limit {
            return false;
        }
        self.shared = total;
        true
    }

    /// The validity of a converted container: the file's, with the elements of undecided
    /// rows null too, so that no required child's placeholder shows through.
    fn container_nulls(&self, nulls: Option<&NullBuffer>, rows: &[u32]) -> Option<NullBuffer> {
        let undecided = &self.undecided[..];
        if !rows
            .iter()
            .any(|&row| row != DEAD && undecided[row as usize])
        {
            // Nothing to hide: the file's validity as it is.
            return nulls.filter(|nulls| nulls.null_count() > 0).cloned();
        }
        let mut valid = BooleanBufferBuilder::new(rows.len());
        for (index, &row) in rows.iter().enumerate() {
            let file_valid = nulls.is_none_or(|nulls| nulls.is_valid(index));
            valid.append(file_valid && (row == DEAD || !undecided[row as usize]));
        }
        let nulls = NullBuffer::new(valid.finish());
        (nulls.null_count() > 0).then_some(nulls)
    }
}

/// Returns `converted` with the default at the positions `defaults` marks.
fn with_default(
    converted: ArrayRef,
    default: Option<ArrayRef>,
    defaults: Option<Vec<bool>>,
) -> Result<ArrayRef, ArrowError> {
    match (default, defaults) {
        (Some(default), Some(defaults)) => arrow_select::zip::zip(
            &BooleanArray::from(defaults),
            &Scalar::new(default),
            &converted,
        ),
        _ => Ok(converted),
    }
}

/// The converted default of a scalar field as a one-element array of `target`; `None` for
/// no default, or a default of a container (left to the row validator).
fn default_array(field: Field<'_>, target: &DataType) -> Option<ArrayRef> {
    let value = field.default_value()?;
    Some(match (field.kind(), target) {
        (FieldKind::String, DataType::Utf8) => Arc::new(StringArray::from(vec![value.as_str()?])),
        (FieldKind::Integer(_), DataType::Int8) => {
            Arc::new(PrimitiveArray::<Int8Type>::from(vec![
                i8::try_from(value.as_i64()?).ok()?,
            ]))
        }
        (FieldKind::Integer(_), DataType::Int16) => {
            Arc::new(PrimitiveArray::<Int16Type>::from(vec![
                i16::try_from(value.as_i64()?).ok()?,
            ]))
        }
        (FieldKind::Integer(_), DataType::Int32) => {
            Arc::new(PrimitiveArray::<Int32Type>::from(vec![
                i32::try_from(value.as_i64()?).ok()?,
            ]))
        }
        (FieldKind::Integer(_), DataType::Int64) => {
            Arc::new(PrimitiveArray::<Int64Type>::from(vec![value.as_i64()?]))
        }
        (FieldKind::Number, DataType::Float64) => {
            Arc::new(PrimitiveArray::<Float64Type>::from(vec![value.as_f64()?]))
        }
        (FieldKind::Boolean, DataType::Boolean) => {
            Arc::new(BooleanArray::from(vec![value.as_bool()?]))
        }
        (FieldKind::Date, DataType::Date32) => {
            Arc::new(PrimitiveArray::<Date32Type>::from(vec![parse_date(
                value.as_str()?,
            )?]))
        }
        (FieldKind::DateTime, DataType::Timestamp(TimeUnit::Microsecond, _)) => Arc::new(
            PrimitiveArray::<TimestampMicrosecondType>::from(vec![parse_date_time(
                value.as_str()?,
            )?])
            .with_data_type(target.clone()),
        ),
        _ => return None,
    })
}

/// The largest byte length of the column's elements as [`text_sizes`] counts them (nulls
/// included), or [`SCALAR_BYTES`] for a column that is not text.
fn largest_size(array: &dyn Array) -> Option<u64> {
    match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .offsets()
            .windows(2)
            .map(|pair| u64::try_from(pair[1] - pair[0]).unwrap_or(u64::MAX))
            .max()
            .or(Some(0)),
        _ => match text_sizes(array) {
            Some(sizes) => Some(sizes.into_iter().max().unwrap_or(0)),
            None => Some(SCALAR_BYTES),
        },
    }
}

/// The byte length of each text element, `None` for a column that is not text (every
/// column the conversions read is text, a dictionary of text, or a scalar whose JSON form is
/// shorter than [`SCALAR_BYTES`]).
/// The sizes of null elements are unspecified: no count reads them.
fn text_sizes(array: &dyn Array) -> Option<Vec<u64>> {
    let lengths = |length: usize| length as u64;
    // From the offsets alone, without a validity test per element.
    let spans = |offsets: &[i64]| {
        offsets
            .windows(2)
            .map(|pair| u64::try_from(pair[1] - pair[0]).unwrap_or(0))
            .collect()
    };
    match array.data_type() {
        DataType::Utf8 => Some(
            array
                .as_string::<i32>()
                .offsets()
                .windows(2)
                .map(|pair| u64::try_from(pair[1] - pair[0]).unwrap_or(0))
                .collect(),
        ),
        DataType::LargeUtf8 => Some(spans(array.as_string::<i64>().offsets())),
        DataType::Utf8View => Some(
            array
                .as_string_view()
                .iter()
                .map(|text| lengths(text.map_or(0, str::len)))
                .collect(),
        ),
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_any_dictionary();
            if dictionary.values().is_empty() {
                // Null throughout: no key to look up.
                return Some(vec![0; array.len()]);
            }
            let sizes = text_sizes(dictionary.values().as_ref())?;
            Some(
                dictionary
                    .normalized_keys()
                    .into_iter()
                    .map(|key| sizes.get(key).copied().unwrap_or(0))
                    .collect(),
            )
        }
        _ => None,
    }
}

/// A file column's values, normalised to the few kinds the conversions read.
enum Values {
    Int(PrimitiveArray<Int64Type>),
    UInt(PrimitiveArray<UInt64Type>),
    Float(PrimitiveArray<Float64Type>),
    Text(StringArray),
    Bool(arrow_array::BooleanArray),
    /// Days since the epoch (from Date32 or Date64).
    Days(Vec<i64>),
    /// A timestamp in units of `1 / per_second` seconds, shown with `digits` digits.
    Stamp(PrimitiveArray<Int64Type>, i64, usize),
}

fn values_of(array: &dyn Array) -> Result<Option<Values>, ArrowError> {
    let cast = |to: &DataType| arrow_cast::cast(array, to);
    Ok(Some(match array.data_type() {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => Values::Int(cast(&DataType::Int64)?.as_primitive().clone()),
        DataType::UInt64 => Values::UInt(array.as_primitive::<UInt64Type>().clone()),
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            Values::Float(cast(&DataType::Float64)?.as_primitive().clone())
        }
        DataType::Utf8 => Values::Text(array.as_string::<i32>().clone()),
        DataType::LargeUtf8 | DataType::Utf8View => {
            Values::Text(cast(&DataType::Utf8)?.as_string::<i32>().clone())
        }
        DataType::Boolean => Values::Bool(array.as_boolean().clone()),
        DataType::Date32 => Values::Days(
            array
                .as_primitive::<Date32Type>()
                .values()
                .iter()
                .map(|&days| i64::from(days))
                .collect(),
        ),
        DataType::Date64 => Values::Days(
            array
                .as_primitive::<arrow_array::types::Date64Type>()
                .values()
                .iter()
                .map(|&millis| millis.div_euclid(86_400_000))
                .collect(),
        ),
        DataType::Timestamp(unit, _) => {
            let (per_second, digits) = match unit {
                TimeUnit::Second => (1, 0),
                TimeUnit::Millisecond => (1_000, 3),
                TimeUnit::Microsecond => (1_000_000, 6),
                TimeUnit::Nanosecond => (1_000_000_000, 9),
            };
            Values::Stamp(
                cast(&DataType::Int64)?.as_primitive().clone(),
                per_second,
                digits,
            )
        }
        _ => return Ok(None),
    }))
}

/// The text the row path shows a non-text value as, for a string field.
fn text_of(values: &Values, index: usize) -> Option<String> {
    Some(match values {
        Values::Int(array) => array.value(index).to_string(),
        Values::UInt(array) => array.value(index).to_string(),
        Values::Float(array) => {
            let value = array.value(index);
            Number::from_f64(value).map_or_else(|| value.to_string(), |number| number.to_string())
        }
        Values::Days(days) => format_date(days[index]),
        Values::Stamp(array, per_second, digits) => {
            format_timestamp(array.value(index), *per_second, *digits)
        }
        Values::Text(_) | Values::Bool(_) => return None,
    })
}

/// Seconds of the years 1000–8000: timestamps in there render with four-digit years, so
/// their conversion needs no text round trip.
const PLAIN_SECONDS: std::ops::Range<i64> = -30_000_000_000..190_000_000_000;

/// Converts a timestamp to microseconds as the row path does (text, then parsed).
fn stamp_micros(value: i64, per_second: i64, digits: usize) -> Option<i64> {
    let micros = match per_second {
        1 => value.checked_mul(1_000_000),
        1_000 => value.checked_mul(1_000),
        1_000_000 => Some(value),
        _ if value % 1_000 == 0 => Some(value / 1_000),
        _ => None,
    };
    match micros {
        Some(micros) if PLAIN_SECONDS.contains(&micros.div_euclid(1_000_000)) => Some(micros),
        _ => parse_date_time(&format_timestamp(value, per_second, digits)),
    }
}

/// Converts the elements of one scalar column for `field`; returns the converted array and
/// which non-null elements fail. `None` when the column's type is not converted here.
fn convert_leaf(
    field: Field<'_>,
    target: &DataType,
    array: &dyn Array,
    text_booleans: bool,
) -> Result<Option<(ArrayRef, Vec<bool>)>, ArrowError> {
    if let DataType::Dictionary(_, _) = array.data_type() {
        let dictionary = array.as_any_dictionary();
        // An empty dictionary (a column null throughout, as Parquet writers encode one) has
        // no key to normalise.
        if dictionary.values().is_empty() && array.null_count() == array.len() {
            return Ok(Some((
                new_null_array(target, array.len()),
                vec![false; array.len()],
            )));
        }
        if dictionary.values().null_count() > 0 || dictionary.values().is_empty() {
            return Ok(None);
        }
        let Some((values, bad_values)) =
            convert_leaf(field, target, dictionary.values().as_ref(), text_booleans)?
        else {
            return Ok(None);
        };
        let keys = dictionary.normalized_keys();
        let taken = arrow_select::take::take(values.as_ref(), dictionary.keys(), None)?;
        let bad = (0..array.len())
            .map(|index| array.is_valid(index) && bad_values.get(keys[index]) == Some(&true))
            .collect();
        return Ok(Some((taken, bad)));
    }
    let Some(values) = values_of(array)? else {
        return Ok(None);
    };
    let checks = field.has_checks();
    let len = array.len();
    let mut bad = vec![false; len];
    let converted: ArrayRef = match (field.kind(), target) {
        (FieldKind::String, DataType::Utf8) => {
            if let Values::Text(text) = &values {
                if checks {
                    let check = field.string_check();
                    for (bad, value) in bad.iter_mut().zip(text.iter()) {
                        *bad = value.is_some_and(|value| !check.accepts(value));
                    }
                }
                Arc::new(text.clone())
            } else {
                let mut builder = StringBuilder::with_capacity(len, len * 16);
                for (index, bad) in bad.iter_mut().enumerate() {
                    if array.is_null(index) {
                        builder.append_null();
                        continue;
                    }
                    match text_of(&values, index) {
                        Some(text) if !checks || field.accepts_str(&text) => {
                            builder.append_value(text);
                        }
                        _ => {
                            *bad = true;
                            builder.append_null();
                        }
                    }
                }
                Arc::new(builder.finish())
            }
        }
        (FieldKind::Integer(width), _) => {
            let integer = |index: usize| -> Option<i64> {
                let value = match &values {
                    Values::Int(array) => array.value(index),
                    Values::UInt(array) => i64::try_from(array.value(index)).ok()?,
                    Values::Float(array) => plan::integer_from_float(array.value(index))?,
                    Values::Text(array) => plan::integer_from_str(array.value(index))?,
                    _ => return None,
                };
                (!checks || field.accepts_integer(value)).then_some(value)
            };
            match (width, target) {
                (IntegerType::Byte, DataType::Int8) => {
                    primitive::<Int8Type>(array, &mut bad, |index| {
                        i8::try_from(integer(index)?).ok()
                    })
                }
                (IntegerType::Short, DataType::Int16) => {
                    primitive::<Int16Type>(array, &mut bad, |index| {
                        i16::try_from(integer(index)?).ok()
                    })
                }
                (IntegerType::Int, DataType::Int32) => {
                    primitive::<Int32Type>(array, &mut bad, |index| {
                        i32::try_from(integer(index)?).ok()
                    })
                }
                (IntegerType::Long, DataType::Int64) => {
                    primitive::<Int64Type>(array, &mut bad, integer)
                }
                _ => return Ok(None),
            }
        }
        (FieldKind::Number, DataType::Float64) => {
            primitive::<Float64Type>(array, &mut bad, |index| {
                let value = match &values {
                    Values::Int(array) => array.value(index) as f64,
                    Values::UInt(array) => array.value(index) as f64,
                    Values::Float(array) => array.value(index),
                    Values::Text(array) => plan::number_from_str(array.value(index))?,
                    _ => return None,
                };
                (value.is_finite() && (!checks || field.accepts_float(value))).then_some(value)
            })
        }
        (FieldKind::Boolean, DataType::Boolean) => {
            if let (Values::Text(text), true) = (&values, text_booleans) {
                let mut flags = arrow_array::builder::BooleanBuilder::with_capacity(len);
                for (index, bad) in bad.iter_mut().enumerate() {
                    let flag = match text.is_valid(index).then(|| text.value(index)) {
                        None => None,
                        Some("true") => Some(true),
                        Some("false") => Some(false),
                        Some(_) => {
                            *bad = true;
                            None
                        }
                    };
                    if let Some(flag) = flag
                        && checks
                        && !field.accepts_bool(flag)
                    {
                        *bad = true;
                    }
                    flags.append_option(flag);
                }
                return Ok(Some((Arc::new(flags.finish()), bad)));
            }
            let Values::Bool(flags) = &values else {
                bad = (0..len).map(|index| array.is_valid(index)).collect();
                return Ok(Some((new_null_array(target, len), bad)));
            };
            if checks {
                for (index, bad) in bad.iter_mut().enumerate() {
                    *bad = flags.is_valid(index) && !field.accepts_bool(flags.value(index));
                }
            }
            Arc::new(flags.clone())
        }
        (FieldKind::Date, DataType::Date32) => primitive::<Date32Type>(array, &mut bad, |index| {
            let (days, text) = match &values {
                Values::Days(days) => {
                    let days = i32::try_from(days[index]).ok()?;
                    let millis = i64::from(days).checked_mul(86_400_000)?;
                    (
                        plan::date_from_epoch_millis(millis).filter(|&d| d == days)?,
                        None,
                    )
                }
                Values::Text(array) => {
                    let text = array.value(index);
                    (parse_date(text)?, Some(text))
                }
                Values::Int(array) => (plan::date_from_epoch_millis(array.value(index))?, None),
                Values::UInt(array) => (
                    plan::date_from_epoch_millis(i64::try_from(array.value(index)).ok()?)?,
                    None,
                ),
                _ => return None,
            };
            let passes = !checks
                || match text {
                    Some(text) => field.accepts_str(text),
                    None => field.accepts_str(&plan::render_date(days)),
                };
            passes.then_some(days)
        }),
        (FieldKind::DateTime, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
            let stamps = primitive::<TimestampMicrosecondType>(array, &mut bad, |index| {
                let micros = match &values {
                    Values::Stamp(array, per_second, digits) => {
                        stamp_micros(array.value(index), *per_second, *digits)?
                    }
                    Values::Text(array) => parse_date_time(array.value(index))?,
                    Values::Int(array) => plan::date_time_from_epoch_millis(array.value(index))?,
                    Values::UInt(array) => {
                        plan::date_time_from_epoch_millis(i64::try_from(array.value(index)).ok()?)?
                    }
                    _ => return None,
                };
                (!checks || field.accepts_str(&plan::render_date_time(micros))).then_some(micros)
            });
            Arc::new(
                stamps
                    .as_primitive::<TimestampMicrosecondType>()
                    .clone()
                    .with_data_type(target.clone()),
            )
        }
        _ => return Ok(None),
    };
    Ok(Some((converted, bad)))
}

/// Builds a primitive array from the non-null elements of `array`; an element `convert`
/// refuses is null and marked in `bad`.
fn primitive<T: ArrowPrimitiveType>(
    array: &dyn Array,
    bad: &mut [bool],
    mut convert: impl FnMut(usize) -> Option<T::Native>,
) -> ArrayRef {
    let len = array.len();
    let mut values = Vec::with_capacity(len);
    if array.null_count() == 0 {
        // Most columns: no null and every value converts, so no validity to build.
        for index in 0..len {
            match convert(index) {
                Some(value) => values.push(value),
                None => break,
            }
        }
        if values.len() == len {
            return Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), None));
        }
        values.clear();
    }
    let mut valid = BooleanBufferBuilder::new(len);
    for (index, bad) in bad.iter_mut().enumerate() {
        if array.is_null(index) {
            values.push(T::Native::default());
            valid.append(false);
            continue;
        }
        match convert(index) {
            Some(value) => {
                values.push(value);
                valid.append(true);
            }
            None => {
                *bad = true;
                values.push(T::Native::default());
                valid.append(false);
            }
        }
    }
    let nulls = NullBuffer::new(valid.finish());
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    Arc::new(PrimitiveArray::<T>::new(ScalarBuffer::from(values), nulls))
}
