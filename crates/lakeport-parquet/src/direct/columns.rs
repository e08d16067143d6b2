//! Column builders shaped like the dataset's Arrow schema, that the row walker appends
//! converted values to and that roll back to a row boundary when a row turns out bad.

use std::sync::Arc;

use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType,
};
use arrow_array::{
    ArrayRef, BooleanArray, ListArray, MapArray, PrimitiveArray, RecordBatch, StringArray,
    StructArray,
};
use arrow_buffer::{
    BooleanBufferBuilder, Buffer, NullBuffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer,
};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, SchemaRef};
use lakeport_domain::xdm::validate::Validator;
use lakeport_domain::xdm::validate::plan::{Field, FieldKind, ObjectFields};

use super::tape::Tape;

/// Builds the validity bits of a column (only once a null is appended).
type Validity = NullBufferBuilder;

/// A primitive column: values and validity.
#[derive(Debug)]
pub(crate) struct Primitive<T> {
    values: Vec<T>,
    valid: Validity,
}

impl<T: arrow_buffer::ArrowNativeType> Primitive<T> {
    fn new() -> Self {
        Self {
            values: Vec::new(),
            valid: Validity::new(0),
        }
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        self.values.push(value);
        self.valid.append(true);
    }

    fn push_null(&mut self) {
        self.values.push(T::default());
        self.valid.append(false);
    }

    fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        self.valid.truncate(len);
    }

    fn finish<P: ArrowPrimitiveType<Native = T>>(&mut self, data_type: &DataType) -> ArrayRef {
        let capacity = self.values.len();
        let values = std::mem::replace(&mut self.values, Vec::with_capacity(capacity));
        let array = PrimitiveArray::<P>::new(ScalarBuffer::from(values), nulls(&mut self.valid))
            .with_data_type(data_type.clone());
        Arc::new(array)
    }
}

/// The bytes [`Utf8::push_windowed`] copies at once.
pub(crate) const WINDOW: usize = 32;

/// A UTF-8 column.
#[derive(Debug)]
pub(crate) struct Utf8 {
    offsets: Vec<i32>,
    data: Vec<u8>,
    valid: Validity,
}

impl Utf8 {
    fn new() -> Self {
        Self {
            offsets: vec![0],
            data: Vec::new(),
            valid: Validity::new(0),
        }
    }

    // Inlined into the walks: a call's entry and exit cost more than the append.
    #[inline(always)]
    pub(crate) fn push(&mut self, text: &str) -> Result<(), Overflow> {
        self.data.extend_from_slice(text.as_bytes());
        self.close_value()
    }

    /// [`push`](Self::push) for a `text` that `window` begins with (the row's bytes from the
    /// string on): a string of at most [`WINDOW`] bytes is copied as the whole window, a copy
    /// of fixed size the compiler inlines, and cut back to its length, instead of a call
    /// to `memcpy` for a few bytes.
    #[inline(always)]
    pub(crate) fn push_windowed(
        &mut self,
        text: &str,
        window: Option<&[u8; WINDOW]>,
    ) -> Result<(), Overflow> {
        match window {
            Some(window) if text.len() <= WINDOW => {
                debug_assert!(window.starts_with(text.as_bytes()));
                let start = self.data.len();
                self.data.extend_from_slice(window);
                self.data.truncate(start + text.len());
            }
            _ => self.data.extend_from_slice(text.as_bytes()),
        }
        self.close_value()
    }

    /// Ends the value whose bytes were just appended.
    #[inline(always)]
    fn close_value(&mut self) -> Result<(), Overflow> {
        let end = i32::try_from(self.data.len()).map_err(|_| Overflow)?;
        self.offsets.push(end);
        self.valid.append(true);
        Ok(())
    }

    fn push_null(&mut self) {
        self.offsets
            .push(*self.offsets.last().expect("offsets start with 0"));
        self.valid.append(false);
    }

    fn len(&self) -> usize {
        self.offsets.len() - 1
    }

    fn truncate(&mut self, len: usize) {
        self.offsets.truncate(len + 1);
        self.data.truncate(self.offsets[len] as usize);
        self.valid.truncate(len);
    }

    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let offsets = take_offsets(&mut self.offsets);
        let capacity = self.data.capacity();
        let data = std::mem::replace(&mut self.data, Vec::with_capacity(capacity));
        let nulls = nulls(&mut self.valid);
        if nulls
            .as_ref()
            .is_some_and(|nulls| nulls.len() != offsets.len() - 1)
        {
            return Err(ArrowError::InvalidArgumentError(
                "a text column's validity and values differ in length".to_owned(),
            ));
        }
        // `OffsetBuffer::new` checks the offsets (from 0, never decreasing); this checks that
        // they stay within the text.
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        if offsets.last().is_some_and(|&end| end as usize > data.len()) {
            return Err(ArrowError::InvalidArgumentError(
                "a text column's offsets pass its end".to_owned(),
            ));
        }
        #[allow(unsafe_code)]
        // SAFETY: what `try_new` would check once more, a scan of every byte (1.6% of a JSON
        // ingest's instructions). `data` only grows by whole `&str`s (`push`) and shrinks to
        // the end of one (`truncate`), and each offset is where one ends: the text between
        // two offsets is valid UTF-8. The lengths and the offsets' bounds are checked above.
        let array = unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(data), nulls) };
        Ok(Arc::new(array))
    }
}

/// Takes a column's offsets, leaving the first offset of the next record batch in a vector
/// as large: the next batch is about as long, and its offsets then never regrow.
fn take_offsets(offsets: &mut Vec<i32>) -> Vec<i32> {
    let mut next = Vec::with_capacity(offsets.capacity());
    next.push(0);
    std::mem::replace(offsets, next)
}

/// A column's 32-bit offsets ran out: more than 2 GiB of text or items in one record batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Overflow;

/// One column, shaped like its Arrow type.
#[derive(Debug)]
pub(crate) enum Column {
    /// A field that holds no data (an object without properties): values are checked, not
    /// stored.
    Void,
    Utf8(Utf8),
    Int8(Primitive<i8>),
    Int16(Primitive<i16>),
    Int32(Primitive<i32>),
    Int64(Primitive<i64>),
    Float64(Primitive<f64>),
    Boolean {
        values: BooleanBufferBuilder,
        valid: Validity,
    },
    Date32(Primitive<i32>),
    Timestamp(Primitive<i64>, DataType),
    Struct(StructColumn),
    List {
        offsets: Vec<i32>,
        valid: Validity,
        items: Box<Column>,
        field: FieldRef,
    },
    Map {
        offsets: Vec<i32>,
        valid: Validity,
        keys: Utf8,
        values: Box<Column>,
        entries: FieldRef,
    },
}

/// The properties of an object: one slot per declared property, in schema order.
#[derive(Debug)]
pub(crate) struct StructColumn {
    pub(crate) slots: Vec<Slot>,
    /// For each property, and last for the start of an object, the property that followed
    /// it in the last object read from a row's text (`NO_KEY` for none): rows of a file
    /// list their keys in the same order, so the next key is usually known.
    pub(crate) next_keys: Vec<u32>,
    /// Each property's name and closing quote, as a row's raw text has them, side by side
    /// (close together in memory, unlike the compiled properties).
    pub(crate) keys: QuotedKeys,
    valid: Validity,
    len: usize,
    /// The Arrow fields, and for each the position of its slot.
    fields: Fields,
    field_slots: Vec<usize>,
}

/// The column of one declared property and its default as a tape.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) column: Column,
    pub(crate) default: Option<Tape>,
}

impl Column {
    /// Builds the column of `field` for the Arrow type it was mapped to (`None` when the
    /// mapping dropped it for holding no data).
    fn new(field: Field<'_>, data_type: Option<&DataType>) -> Result<Self, String> {
        let Some(data_type) = data_type else {
            return Ok(Self::Void);
        };
        let mismatch =
            || format!("the Arrow type {data_type} does not fit the compiled field {field:?}");
        Ok(match (field.kind(), data_type) {
            (FieldKind::String, DataType::Utf8) => Self::Utf8(Utf8::new()),
            (FieldKind::Integer(_), DataType::Int8) => Self::Int8(Primitive::new()),
            (FieldKind::Integer(_), DataType::Int16) => Self::Int16(Primitive::new()),
            (FieldKind::Integer(_), DataType::Int32) => Self::Int32(Primitive::new()),
            (FieldKind::Integer(_), DataType::Int64) => Self::Int64(Primitive::new()),
            (FieldKind::Number, DataType::Float64) => Self::Float64(Primitive::new()),
            (FieldKind::Boolean, DataType::Boolean) => Self::Boolean {
                values: BooleanBufferBuilder::new(0),
                valid: Validity::new(0),
            },
            (FieldKind::Date, DataType::Date32) => Self::Date32(Primitive::new()),
            (FieldKind::DateTime, DataType::Timestamp(..)) => {
                Self::Timestamp(Primitive::new(), data_type.clone())
            }
            (FieldKind::Object(object), DataType::Struct(fields)) => {
                Self::Struct(StructColumn::new(object, fields)?)
            }
            (FieldKind::Array(items), DataType::List(element)) => Self::List {
                offsets: vec![0],
                valid: Validity::new(0),
                items: Box::new(Self::new(items, Some(element.data_type()))?),
                field: element.clone(),
            },
            (FieldKind::Map(values), DataType::Map(entries, _)) => {
                let DataType::Struct(entry_fields) = entries.data_type() else {
                    return Err(mismatch());
                };
                let value_type = entry_fields.get(1).map(|value| value.data_type());
                Self::Map {
                    offsets: vec![0],
                    valid: Validity::new(0),
                    keys: Utf8::new(),
                    values: Box::new(Self::new(values, value_type)?),
                    entries: entries.clone(),
                }
            }
            _ => return Err(mismatch()),
        })
    }

    /// Returns how many values the column holds.
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Void => 0,
            Self::Utf8(column) => column.len(),
            Self::Int8(column) => column.values.len(),
            Self::Int16(column) => column.values.len(),
            Self::Int32(column) | Self::Date32(column) => column.values.len(),
            Self::Int64(column) | Self::Timestamp(column, _) => column.values.len(),
            Self::Float64(column) => column.values.len(),
            Self::Boolean { valid, .. } => valid.len(),
            Self::Struct(column) => column.len,
            Self::List { offsets, .. } | Self::Map { offsets, .. } => offsets.len() - 1,
        }
    }

    /// Appends a null (an absent optional field, a null array item).
    pub(crate) fn push_null(&mut self) {
        match self {
            Self::Void => {}
            Self::Utf8(column) => column.push_null(),
            Self::Int8(column) => column.push_null(),
            Self::Int16(column) => column.push_null(),
            Self::Int32(column) | Self::Date32(column) => column.push_null(),
            Self::Int64(column) | Self::Timestamp(column, _) => column.push_null(),
            Self::Float64(column) => column.push_null(),
            Self::Boolean { values, valid } => {
                values.append(false);
                valid.append(false);
            }
            Self::Struct(column) => {
                for slot in &mut column.slots {
                    slot.column.push_null();
                }
                column.valid.append(false);
                column.len += 1;
            }
            Self::List { offsets, valid, .. } | Self::Map { offsets, valid, .. } => {
                offsets.push(*offsets.last().expect("offsets start with 0"));
                valid.append(false);
            }
        }
    }

    /// Drops every value from `len` on: the rows after a row boundary.
    pub(crate) fn truncate(&mut self, len: usize) {
        match self {
            Self::Void => {}
            Self::Utf8(column) => column.truncate(len),
            Self::Int8(column) => column.truncate(len),
            Self::Int16(column) => column.truncate(len),
            Self::Int32(column) | Self::Date32(column) => column.truncate(len),
            Self::Int64(column) | Self::Timestamp(column, _) => column.truncate(len),
            Self::Float64(column) => column.truncate(len),
            Self::Boolean { values, valid } => {
                values.truncate(len);
                valid.truncate(len);
            }
            Self::Struct(column) => column.truncate(len),
            Self::List {
                offsets,
                valid,
                items,
                ..
            } => {
                offsets.truncate(len + 1);
                valid.truncate(len);
                items.truncate(offsets[len] as usize);
            }
            Self::Map {
                offsets,
                valid,
                keys,
                values,
                ..
            } => {
                offsets.truncate(len + 1);
                valid.truncate(len);
                let entries = offsets[len] as usize;
                keys.truncate(entries);
                values.truncate(entries);
            }
        }
    }

    /// Returns the values as an Arrow array and empties the column.
    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        Ok(match self {
            Self::Void => unreachable!("a column without data is not in the Arrow schema"),
            Self::Utf8(column) => column.finish()?,
            Self::Int8(column) => column.finish::<Int8Type>(&DataType::Int8),
            Self::Int16(column) => column.finish::<Int16Type>(&DataType::Int16),
            Self::Int32(column) => column.finish::<Int32Type>(&DataType::Int32),
            Self::Int64(column) => column.finish::<Int64Type>(&DataType::Int64),
            Self::Float64(column) => column.finish::<Float64Type>(&DataType::Float64),
            Self::Date32(column) => column.finish::<Date32Type>(&DataType::Date32),
            Self::Timestamp(column, data_type) => {
                column.finish::<TimestampMicrosecondType>(data_type)
            }
            Self::Boolean { values, valid } => {
                Arc::new(BooleanArray::new(values.finish(), nulls(valid)))
            }
            Self::Struct(column) => Arc::new(column.finish()?),
            Self::List {
                offsets,
                valid,
                items,
                field,
            } => {
                let offsets = take_offsets(offsets);
                Arc::new(ListArray::try_new(
                    field.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    items.finish()?,
                    nulls(valid),
                )?)
            }
            Self::Map {
                offsets,
                valid,
                keys,
                values,
                entries,
            } => {
                let offsets = take_offsets(offsets);
                let DataType::Struct(entry_fields) = entries.data_type() else {
                    unreachable!("checked when the column was built")
                };
                let entry_count = keys.len();
                let entry_struct = StructArray::try_new_with_length(
                    entry_fields.clone(),
                    vec![keys.finish()?, values.finish()?],
                    None,
                    entry_count,
                )?;
                Arc::new(MapArray::try_new(
                    entries.clone(),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    entry_struct,
                    nulls(valid),
                    false,
                )?)
            }
        })
    }
}

impl StructColumn {
    fn new(object: ObjectFields<'_>, fields: &Fields) -> Result<Self, String> {
        let mut slots = Vec::with_capacity(object.len());
        let mut field_slots = Vec::with_capacity(fields.len());
        for position in 0..object.len() {
            let name = object.name(position);
            let arrow = fields.iter().position(|field| field.name() == name);
            let property = object.field(position);
            let data_type = arrow.map(|index| fields[index].data_type());
            slots.push(Slot {
                column: Column::new(property, data_type)?,
                default: property.default_value().map(Tape::from_value),
            });
            if let Some(index) = arrow {
                field_slots.push((index, position));
            }
        }
        field_slots.sort_unstable();
        if field_slots.len() != fields.len()
            || field_slots
                .iter()
                .enumerate()
                .any(|(expected, (index, _))| *index != expected)
        {
            return Err("the Arrow fields do not match the compiled properties".to_owned());
        }
        Ok(Self {
            next_keys: vec![NO_KEY; slots.len() + 1],
            keys: QuotedKeys::new(object),
            slots,
            valid: Validity::new(0),
            len: 0,
            fields: fields.clone(),
            field_slots: field_slots.into_iter().map(|(_, slot)| slot).collect(),
        })
    }

    /// Builds the column of an object that holds no data: its values are checked (required
    /// fields, defaults, unknown fields), nothing is stored.
    pub(crate) fn void(object: ObjectFields<'_>) -> Self {
        Self {
            next_keys: vec![NO_KEY; object.len() + 1],
            keys: QuotedKeys::new(object),
            slots: (0..object.len())
                .map(|position| Slot {
                    column: Column::Void,
                    default: object.field(position).default_value().map(Tape::from_value),
                })
                .collect(),
            valid: Validity::new(0),
            len: 0,
            fields: Fields::empty(),
            field_slots: Vec::new(),
        }
    }

    /// Marks one more present object; its slots must have been appended to.
    #[inline]
    pub(crate) fn push_present(&mut self) {
        self.valid.append(true);
        self.len += 1;
    }

    /// Returns how many objects the column holds.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn truncate(&mut self, len: usize) {
        for slot in &mut self.slots {
            slot.column.truncate(len);
        }
        self.valid.truncate(len);
        self.len = self.len.min(len);
    }

    fn arrays(&mut self) -> Result<Vec<ArrayRef>, ArrowError> {
        self.field_slots
            .iter()
            .map(|&slot| self.slots[slot].column.finish())
            .collect()
    }

    fn finish(&mut self) -> Result<StructArray, ArrowError> {
        let len = std::mem::take(&mut self.len);
        let arrays = self.arrays()?;
        StructArray::try_new_with_length(self.fields.clone(), arrays, nulls(&mut self.valid), len)
    }
}

/// No property: the key that follows is not known.
pub(crate) const NO_KEY: u32 = u32::MAX;

/// The names of an object's properties followed by their closing quote, for matching keys
/// against a row's raw text.
#[derive(Debug)]
pub(crate) struct QuotedKeys {
    text: Vec<u8>,
    /// Where each property's quoted name starts and ends in `text`; empty for a name that
    /// the raw text would hold escaped (a quote, backslash or control character).
    ranges: Vec<(u32, u32)>,
    /// Each quoted name of at most 16 bytes as two little-endian words, with the masks of
    /// its bytes: compared with the row's next 16 bytes in two steps (a name matched this
    /// way is never empty, so its masks are never both zero).
    words: Vec<Option<KeyWords>>,
}

/// A quoted property name of at most 16 bytes: its bytes as two little-endian words (zero
/// past its end), the masks of those bytes, and its length.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyWords {
    pub(crate) words: [u64; 2],
    pub(crate) masks: [u64; 2],
    pub(crate) len: usize,
}

impl KeyWords {
    pub(crate) fn of(quoted: &[u8]) -> Option<Self> {
        if quoted.is_empty() || quoted.len() > 16 {
            return None;
        }
        let mut bytes = [0u8; 16];
        let mut mask = [0u8; 16];
        bytes[..quoted.len()].copy_from_slice(quoted);
        mask[..quoted.len()].fill(0xff);
        let word = |bytes: &[u8; 16], half: usize| {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(&bytes[half * 8..half * 8 + 8]);
            u64::from_le_bytes(eight)
        };
        Some(Self {
            words: [word(&bytes, 0), word(&bytes, 1)],
            masks: [word(&mask, 0), word(&mask, 1)],
            len: quoted.len(),
        })
    }
}

impl QuotedKeys {
    fn new(object: ObjectFields<'_>) -> Self {
        let mut keys = Self {
            text: Vec::new(),
            ranges: Vec::with_capacity(object.len()),
            words: Vec::with_capacity(object.len()),
        };
        for position in 0..object.len() {
            let name = object.name(position);
            let plain = name
                .bytes()
                .all(|byte| byte != b'"' && byte != b'\\' && byte >= 0x20);
            let start = keys.text.len();
            if plain {
                keys.text.extend_from_slice(name.as_bytes());
                keys.text.push(b'"');
            }
            let offset = |at: usize| u32::try_from(at).unwrap_or(u32::MAX);
            keys.ranges.push((offset(start), offset(keys.text.len())));
            keys.words.push(KeyWords::of(&keys.text[start..]));
        }
        keys
    }

    /// The quoted name of the property at `position` as words, when it has at most 16
    /// bytes (and can be matched against raw text at all).
    #[inline]
    pub(crate) fn words(&self, position: usize) -> Option<&KeyWords> {
        self.words.get(position)?.as_ref()
    }

    /// Returns the quoted name of the property at `position`; empty when it cannot be
    /// matched against raw text.
    #[inline]
    pub(crate) fn quoted(&self, position: usize) -> &[u8] {
        let (start, end) = self.ranges[position];
        self.text
            .get(start as usize..end as usize)
            .unwrap_or_default()
    }
}

/// Takes the validity bits, leaving an empty builder; `None` when every value is valid.
fn nulls(valid: &mut Validity) -> Option<NullBuffer> {
    // A row rolled back may have left bits without a null.
    valid.finish().filter(|nulls| nulls.null_count() > 0)
}

/// The columns of a whole row: the dataset's top-level fields.
#[derive(Debug)]
pub(crate) struct RowColumns {
    pub(crate) root: StructColumn,
    schema: SchemaRef,
}

impl RowColumns {
    /// Builds the columns of the mapped Arrow schema for the validator's compiled fields.
    ///
    /// # Errors
    /// A message when the two do not describe the same fields (they are compiled from the
    /// same schema, so this is a bug).
    pub(crate) fn new(validator: &Validator, schema: SchemaRef) -> Result<Self, String> {
        let root = StructColumn::new(validator.root(), schema.fields())?;
        Ok(Self { root, schema })
    }

    /// Returns how many rows the columns hold.
    pub(crate) fn rows(&self) -> usize {
        self.root.len
    }

    /// Drops a partly appended row: everything from row `rows` on.
    pub(crate) fn truncate(&mut self, rows: usize) {
        self.root.truncate(rows);
    }

    /// Returns the rows as one record batch and empties the columns.
    ///
    /// # Errors
    /// Arrow's error when an array cannot be built (a bug, or offsets beyond 2 GiB).
    pub(crate) fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let rows = std::mem::take(&mut self.root.len);
        let arrays = self.root.arrays()?;
        // The root has no validity of its own.
        drop(self.root.valid.finish());
        RecordBatch::try_new_with_options(
            self.schema.clone(),
            arrays,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
    }
}
