//! Lakeport's own encoder for most leaves: texts (`Utf8`), integers and dates (`Int8`,
//! `Int16` and `Int32` stored as 32-bit, `Date32`, `Int64`, timestamps of milliseconds to
//! nanoseconds), doubles and booleans, under nothing but structs, or as the elements of a
//! list or the keys and values of a map (under structs). These were where the parquet
//! crate's writer spent its time: it interned every value through a general hash table,
//! compared every value twice for the chunk's min and max, computed every leaf's levels
//! through its general level builder, and grew its page buffers from nothing for each page.
//! Lists of structs and deeper nesting stay with the crate.
//!
//! A leaf is written as the crate writes it with Lakeport's settings (data pages v1, Snappy,
//! a dictionary until its plain bytes reach [`DICTIONARY_PAGE_BYTES`], then plain pages;
//! statistics per chunk, texts' truncated to 64 bytes, a double's zero min as -0.0 and zero
//! max as +0.0, NaN left out; level histograms), and checked against the crate's output in
//! `tests.rs`. What differs is how: the dictionary remembers the last value it saw and
//! hashes with foldhash, a dictionary-encoded chunk's min and max are those of its distinct
//! values (found once, when the dictionary is written), a plain page's are positions in the
//! page until it is closed, a leaf under structs keeps its definition levels only from the
//! first row that is not defined, a leaf missing from a whole batch is written in bulk, and
//! pages are compressed from buffers kept for the whole chunk.

use std::hash::BuildHasher;

use arrow_array::types::{
    Date32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType,
};
use arrow_array::{Array, ArrowPrimitiveType, RecordBatch, StringArray, cast::AsArray};
use arrow_schema::{DataType, Schema, TimeUnit};
use bytes::Bytes;
use hashbrown::{DefaultHashBuilder, HashTable};
use parquet::basic::{Compression, Encoding, EncodingMask, PageType, Type as Physical};
use parquet::column::page::{CompressedPage, Page, PageWriteSpec, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::data_type::ByteArray;
use parquet::errors::{ParquetError, Result};
use parquet::file::metadata::{ColumnChunkMetaData, LevelHistogram, PageEncodingStats};
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::{ColumnDescPtr, ColumnDescriptor};

use super::{DATA_PAGE_BYTES, DICTIONARY_PAGE_BYTES};

/// The rows a data page holds at most (the crate's default, which Lakeport keeps).
const DATA_PAGE_ROWS: usize = 20_000;

/// The bytes a min or max statistic keeps (the crate's default, which Lakeport keeps).
const STATISTICS_BYTES: usize = 64;

/// Bytes left free at the start of a leaf's plain values: a plain page's levels, when they
/// are one run (no nulls), are written there, so that the page is compressed where its
/// values are instead of being copied after its levels first. A run of definition levels
/// takes at most 10 bytes (its length, a varint of up to 5 bytes, and a value).
const PLAIN_GAP: usize = 16;

/// Where a leaf Lakeport encodes sits in a record batch, and what its values are.
#[derive(Clone, Debug)]
pub(crate) struct OwnPath {
    /// At each level from the batch's column down, the child's index and whether the field
    /// is nullable (adds a definition level): down to the leaf, or to the list or map that
    /// holds it.
    steps: Vec<(usize, bool)>,
    /// For a leaf in a list or a map, where it is in them.
    repeated: Option<Repeated>,
    /// What its values are.
    kind: Kind,
}

/// The values of a leaf Lakeport encodes: texts, integers or doubles stored as they are in
/// Arrow (dates as days, timestamps in their unit), little-endian, or booleans (bit-packed
/// plain values, as the crate writes them: no dictionary).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Text,
    Int32,
    Int64,
    Double,
    Boolean,
}

impl Kind {
    /// The kind of an Arrow type the crate writes without converting its values.
    fn of(data_type: &DataType) -> Option<Self> {
        match data_type {
            DataType::Utf8 => Some(Self::Text),
            // XDM's `short` and `byte` are stored as 32-bit integers, as the crate does.
            DataType::Int32 | DataType::Date32 | DataType::Int16 | DataType::Int8 => {
                Some(Self::Int32)
            }
            DataType::Int64
            | DataType::Timestamp(
                TimeUnit::Millisecond | TimeUnit::Microsecond | TimeUnit::Nanosecond,
                _,
            ) => Some(Self::Int64),
            DataType::Float64 => Some(Self::Double),
            DataType::Boolean => Some(Self::Boolean),
            _ => None,
        }
    }

    fn physical(self) -> Physical {
        match self {
            Self::Text => Physical::BYTE_ARRAY,
            Self::Int32 => Physical::INT32,
            Self::Int64 => Physical::INT64,
            Self::Double => Physical::DOUBLE,
            Self::Boolean => Physical::BOOLEAN,
        }
    }

    /// Whether `a` sorts before `b` (both values of this kind, not NaN).
    #[inline(always)]
    fn less(self, a: &[u8], b: &[u8]) -> bool {
        match self {
            Self::Text => text_less(a, b),
            Self::Int32 => int32(a) < int32(b),
            Self::Int64 => int64(a) < int64(b),
            Self::Double => double(a) < double(b),
            Self::Boolean => a < b,
        }
    }

    /// Whether a value takes part in the statistics (a NaN does not).
    #[inline(always)]
    fn ordered(self, value: &[u8]) -> bool {
        self != Self::Double || !double(value).is_nan()
    }

    /// [`less`](Self::less) of two fixed-width values as their little-endian bits.
    #[inline(always)]
    fn less_key(self, a: u64, b: u64) -> bool {
        match self {
            Self::Int32 => (a as u32 as i32) < (b as u32 as i32),
            Self::Double => f64::from_bits(a) < f64::from_bits(b),
            Self::Boolean => a < b,
            _ => (a as i64) < (b as i64),
        }
    }

    /// [`ordered`](Self::ordered) of a fixed-width value as its bits.
    #[inline(always)]
    fn ordered_key(self, key: u64) -> bool {
        self != Self::Double || !f64::from_bits(key).is_nan()
    }

    /// The bytes of a fixed-width value (a boolean's statistics take one).
    fn width(self) -> usize {
        match self {
            Self::Boolean => 1,
            Self::Int32 => 4,
            _ => 8,
        }
    }
}

/// A leaf's values in a record batch, appended one at a time (one implementation per kind
/// of storage, so that the loops over rows are compiled for each).
trait Source {
    fn put(&self, leaf: &mut OwnLeaf, index: usize);
}

/// Texts: their offsets and bytes.
struct Texts<'a> {
    offsets: &'a [i32],
    data: &'a [u8],
}

impl Source for Texts<'_> {
    #[inline(always)]
    fn put(&self, leaf: &mut OwnLeaf, index: usize) {
        let (start, end) = (
            self.offsets[index] as usize,
            self.offsets[index + 1] as usize,
        );
        leaf.value(&self.data[start..end]);
    }
}

/// Booleans, one bit each.
struct Bits<'a>(&'a arrow_buffer::BooleanBuffer);

impl Source for Bits<'_> {
    #[inline(always)]
    fn put(&self, leaf: &mut OwnLeaf, index: usize) {
        leaf.bit_value(self.0.value(index));
    }
}

/// Fixed-width values of `W` bytes, little-endian.
struct Fixed<'a, const W: usize>(&'a [u8]);

/// Signed integers of `W` bytes (1 or 2), little-endian, stored as 32-bit ones.
struct Narrow<'a, const W: usize>(&'a [u8]);

impl<const W: usize> Source for Narrow<'_, W> {
    #[inline(always)]
    fn put(&self, leaf: &mut OwnLeaf, index: usize) {
        let bytes = &self.0[index * W..index * W + W];
        let value = if W == 1 {
            i32::from(bytes[0] as i8)
        } else {
            i32::from(i16::from_le_bytes([bytes[0], bytes[1]]))
        };
        leaf.fixed_value(u64::from(value as u32));
    }
}

impl<const W: usize> Source for Fixed<'_, W> {
    #[inline(always)]
    fn put(&self, leaf: &mut OwnLeaf, index: usize) {
        let mut key = [0u8; 8];
        key[..W].copy_from_slice(&self.0[index * W..index * W + W]);
        leaf.fixed_value(u64::from_le_bytes(key));
    }
}

fn int32(bytes: &[u8]) -> i32 {
    i32::from_le_bytes(bytes.try_into().unwrap_or_default())
}

fn int64(bytes: &[u8]) -> i64 {
    i64::from_le_bytes(bytes.try_into().unwrap_or_default())
}

fn double(bytes: &[u8]) -> f64 {
    f64::from_le_bytes(bytes.try_into().unwrap_or_default())
}

/// A leaf's values in a record batch, each as the bytes its plain encoding holds (but
/// fixed-width ones of 1 and 2 bytes: signed integers, stored as 32-bit ones).
enum Values<'a> {
    Text { offsets: &'a [i32], data: &'a [u8] },
    Fixed { bytes: &'a [u8], width: usize },
    Bits(&'a arrow_buffer::BooleanBuffer),
}

impl<'a> Values<'a> {
    fn of(kind: Kind, array: &'a dyn Array) -> Option<Self> {
        fn fixed<T: ArrowPrimitiveType>(array: &dyn Array) -> Option<&[u8]> {
            Some(array.as_primitive_opt::<T>()?.values().inner().as_slice())
        }
        let bytes = match (kind, array.data_type()) {
            (Kind::Text, _) => {
                let strings = array.as_any().downcast_ref::<StringArray>()?;
                return Some(Self::Text {
                    offsets: strings.value_offsets(),
                    data: strings.value_data(),
                });
            }
            (_, DataType::Int32) => fixed::<Int32Type>(array)?,
            (_, DataType::Int16) => {
                let bytes = fixed::<Int16Type>(array)?;
                return Some(Self::Fixed { bytes, width: 2 });
            }
            (_, DataType::Int8) => {
                let bytes = fixed::<Int8Type>(array)?;
                return Some(Self::Fixed { bytes, width: 1 });
            }
            (_, DataType::Date32) => fixed::<Date32Type>(array)?,
            (_, DataType::Int64) => fixed::<Int64Type>(array)?,
            (_, DataType::Timestamp(TimeUnit::Millisecond, _)) => {
                fixed::<TimestampMillisecondType>(array)?
            }
            (_, DataType::Timestamp(TimeUnit::Microsecond, _)) => {
                fixed::<TimestampMicrosecondType>(array)?
            }
            (_, DataType::Timestamp(TimeUnit::Nanosecond, _)) => {
                fixed::<TimestampNanosecondType>(array)?
            }
            (_, DataType::Float64) => fixed::<Float64Type>(array)?,
            (Kind::Boolean, DataType::Boolean) => {
                return Some(Self::Bits(array.as_boolean_opt()?.values()));
            }
            _ => return None,
        };
        let width = if kind == Kind::Int32 { 4 } else { 8 };
        Some(Self::Fixed { bytes, width })
    }
}

/// A leaf in a list (its elements) or a map (its keys or its values).
#[derive(Clone, Copy, Debug)]
struct Repeated {
    /// The child of the map's entries (0 the keys, 1 the values); `None` for a list.
    entry: Option<usize>,
}

/// The path of `descr` in `schema` when it is a leaf of a [`Kind`] under nothing but
/// structs, or the elements of a list or the keys or values of a map of them (under structs);
/// `None` for any other leaf, and when the levels would not be those of the file's schema.
pub(crate) fn own_path(schema: &Schema, descr: &ColumnDescriptor) -> Option<OwnPath> {
    // Levels are kept as bytes: deeper paths (no XDM schema has them) stay with the crate.
    if descr.max_rep_level() > 1 || descr.max_def_level() > i16::from(u8::MAX) {
        return None;
    }
    let parts = descr.path().parts();
    let mut fields = schema.fields();
    let mut steps = Vec::with_capacity(parts.len());
    let mut levels = 0i16;
    let mut repeated = None;
    let mut kind = None;
    for (depth, name) in parts.iter().enumerate() {
        let (index, field) = fields.find(name)?;
        steps.push((index, field.is_nullable()));
        levels += i16::from(field.is_nullable());
        let left = parts.len() - depth - 1;
        match field.data_type() {
            DataType::Struct(children) if left > 0 => fields = children,
            leaf if left == 0 => {
                kind = Kind::of(leaf);
                break;
            }
            DataType::List(element) if left == 2 => {
                kind = Kind::of(element.data_type());
                levels += 1 + i16::from(element.is_nullable());
                repeated = Some(Repeated { entry: None });
                break;
            }
            DataType::Map(entries, _) if left == 2 => {
                let DataType::Struct(children) = entries.data_type() else {
                    return None;
                };
                let (entry, element) = children.find(&parts[parts.len() - 1])?;
                if children.len() != 2 {
                    return None;
                }
                kind = Kind::of(element.data_type());
                levels += 1 + i16::from(element.is_nullable());
                repeated = Some(Repeated { entry: Some(entry) });
                break;
            }
            _ => return None,
        }
    }
    let kind = kind.filter(|kind| kind.physical() == descr.physical_type())?;
    let rep = i16::from(repeated.is_some());
    (levels == descr.max_def_level() && rep == descr.max_rep_level()).then_some(OwnPath {
        steps,
        repeated,
        kind,
    })
}

/// The lists or maps of a leaf in a record batch: their offsets, their elements' nulls,
/// and the levels of the rows (in `batch_levels` when `any_null`, else all `levels_before`).
#[derive(Clone, Copy)]
struct Shape<'a> {
    offsets: &'a [i32],
    element_nulls: Option<&'a arrow_buffer::NullBuffer>,
    any_null: bool,
    levels_before: u8,
}

/// The column writer of one leaf Lakeport encodes, for one row group.
pub(crate) struct OwnLeaf {
    descr: ColumnDescPtr,
    path: OwnPath,
    max_def: i16,
    /// The page being filled: its definition levels (when the leaf has any) and repetition
    /// levels (in a list or map), its dictionary indices or plain values, and its rows.
    levels: Vec<u8>,
    reps: Vec<u8>,
    indices: Vec<u32>,
    plain: Vec<u8>,
    /// The smallest and largest plain value of the page, where they are in `plain`.
    page_min: Option<(usize, usize)>,
    page_max: Option<(usize, usize)>,
    /// The same for fixed-width values, as their bits.
    page_min_key: Option<u64>,
    page_max_key: Option<u64>,
    /// The booleans in `plain`.
    plain_bits: usize,
    page_rows: usize,
    page_nulls: usize,
    /// The chunk's dictionary, until the chunk falls back to plain pages.
    dictionary: Option<Dictionary>,
    /// The dictionary page, once the chunk fell back.
    dictionary_page: Option<CompressedPage>,
    /// The data pages closed so far, and their compressed bytes.
    pages: Vec<CompressedPage>,
    page_bytes: usize,
    /// The chunk's statistics: min and max of the plain values (the dictionary's are added
    /// when it is written), nulls, text bytes, and rows by definition level.
    min: Option<Vec<u8>>,
    max: Option<Vec<u8>>,
    nulls: u64,
    text_bytes: i64,
    histogram: Vec<i64>,
    rep_histogram: [i64; 2],
    rows: u64,
    /// Level entries written (rows, in a list or map the elements, or one for an empty or
    /// null one).
    entries: u64,
    /// Scratch: the batch's levels, an uncompressed page and its compressed bytes.
    batch_levels: Vec<u8>,
    page: Vec<u8>,
    compressed: Vec<u8>,
    compressor: snap::raw::Encoder,
}

impl OwnLeaf {
    pub(crate) fn new(descr: ColumnDescPtr, path: OwnPath) -> Self {
        let max_def = descr.max_def_level();
        let prefixed = path.kind == Kind::Text;
        // Booleans have no dictionary (as the crate writes them).
        let dictionary = (path.kind != Kind::Boolean).then(|| Dictionary::new(prefixed));
        Self {
            descr,
            path,
            max_def,
            levels: Vec::new(),
            reps: Vec::new(),
            indices: Vec::new(),
            plain: vec![0; PLAIN_GAP],
            page_min: None,
            page_max: None,
            page_min_key: None,
            page_max_key: None,
            plain_bits: 0,
            page_rows: 0,
            page_nulls: 0,
            dictionary,
            dictionary_page: None,
            pages: Vec::new(),
            page_bytes: 0,
            min: None,
            max: None,
            nulls: 0,
            text_bytes: 0,
            histogram: vec![0; max_def as usize + 1],
            rep_histogram: [0; 2],
            rows: 0,
            entries: 0,
            batch_levels: Vec::new(),
            page: Vec::new(),
            compressed: Vec::new(),
            compressor: snap::raw::Encoder::new(),
        }
    }

    /// The bytes the leaf holds so far (encoded pages and the page being filled).
    pub(crate) fn memory_size(&self) -> usize {
        self.page_bytes
            + self.levels.len()
            + self.reps.len()
            + self.indices.len() * 4
            + (self.plain.len() - PLAIN_GAP)
            + self
                .dictionary
                .as_ref()
                .map_or(0, |dictionary| dictionary.page.len())
            + self
                .dictionary_page
                .as_ref()
                .map_or(0, CompressedPage::compressed_size)
    }

    /// Appends the leaf's values of every row of `batch` (whose schema is the file's).
    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let mut levels_before = 0u8;
        let mut any_null = false;
        let mut column: Option<&dyn Array> = None;
        self.batch_levels.clear();
        for &(index, nullable) in &self.path.steps {
            let array: &dyn Array = match column {
                None => batch.columns().get(index).map(|array| array.as_ref()),
                Some(parent) => parent
                    .as_struct_opt()
                    .and_then(|parent| parent.columns().get(index))
                    .map(|array| array.as_ref()),
            }
            .ok_or_else(|| ParquetError::General("a leaf is missing from a batch".into()))?;
            if nullable {
                match array.nulls().filter(|nulls| nulls.null_count() > 0) {
                    Some(nulls) => {
                        if !any_null {
                            any_null = true;
                            self.batch_levels.resize(rows, levels_before);
                        }
                        for (row, level) in self.batch_levels.iter_mut().enumerate() {
                            if *level == levels_before && nulls.is_valid(row) {
                                *level += 1;
                            }
                        }
                    }
                    None if any_null => {
                        for level in &mut self.batch_levels {
                            if *level == levels_before {
                                *level += 1;
                            }
                        }
                    }
                    None => {}
                }
                levels_before += 1;
            }
            column = Some(array);
        }
        if let Some(repeated) = self.path.repeated {
            let array = column.ok_or_else(|| ParquetError::General("a leaf has no path".into()))?;
            return self.write_repeated(repeated, array, any_null, levels_before);
        }
        let values = column
            .and_then(|array| Values::of(self.path.kind, array))
            .ok_or_else(|| ParquetError::General("a leaf's values are not its type".into()))?;
        let max = self.max_def as u8;
        // A batch where the leaf is missing from every row in the same way (a sparse
        // schema's untouched fields): its rows' levels in bulk.
        if let Some(level) = uniform(&self.batch_levels).filter(|&level| any_null && level < max) {
            return self.bulk(level, rows);
        }
        match values {
            Values::Text { offsets, data } => self.rows(&Texts { offsets, data }, rows, any_null),
            Values::Fixed { bytes, width: 4 } => self.rows(&Fixed::<4>(bytes), rows, any_null),
            Values::Fixed { bytes, width: 2 } => self.rows(&Narrow::<2>(bytes), rows, any_null),
            Values::Fixed { bytes, width: 1 } => self.rows(&Narrow::<1>(bytes), rows, any_null),
            Values::Fixed { bytes, .. } => self.rows(&Fixed::<8>(bytes), rows, any_null),
            Values::Bits(bits) => self.rows(&Bits(bits), rows, any_null),
        }
    }

    /// The rows of a leaf under structs, whose levels are in `batch_levels` when `any_null`.
    fn rows<S: Source>(&mut self, values: &S, rows: usize, any_null: bool) -> Result<()> {
        let max = self.max_def as u8;
        for row in 0..rows {
            let level = if any_null {
                self.batch_levels[row]
            } else {
                max
            };
            if level == max {
                values.put(self, row);
            } else {
                self.null(level);
            }
            self.end_row()?;
        }
        self.rows += rows as u64;
        Ok(())
    }

    /// The rows of a leaf in a list or map (`array`), whose own level (its ancestors' and its
    /// own nullability) is `levels_before` when defined, or `batch_levels` says where it is not.
    fn write_repeated(
        &mut self,
        repeated: Repeated,
        array: &dyn Array,
        any_null: bool,
        levels_before: u8,
    ) -> Result<()> {
        let missing = || ParquetError::General("a leaf's list or map does not match".into());
        let (offsets, elements) = match repeated.entry {
            None => {
                let list = array.as_list_opt::<i32>().ok_or_else(missing)?;
                (list.value_offsets(), list.values())
            }
            Some(entry) => {
                let map = array.as_map_opt().ok_or_else(missing)?;
                (
                    map.value_offsets(),
                    map.entries().columns().get(entry).ok_or_else(missing)?,
                )
            }
        };
        let values = Values::of(self.path.kind, elements.as_ref()).ok_or_else(missing)?;
        let element_nulls = elements.nulls().filter(|nulls| nulls.null_count() > 0);
        let rows = offsets.len().saturating_sub(1);
        // No element in the batch: one level a row, in bulk when they are all the same.
        if offsets.first() == offsets.last() {
            let level = if any_null {
                uniform(&self.batch_levels)
            } else {
                Some(levels_before)
            };
            if let Some(level) = level {
                return self.bulk(level, rows);
            }
        }
        let shape = Shape {
            offsets,
            element_nulls,
            any_null,
            levels_before,
        };
        match values {
            Values::Text { offsets, data } => self.entries_of(&Texts { offsets, data }, &shape),
            Values::Fixed { bytes, width: 4 } => self.entries_of(&Fixed::<4>(bytes), &shape),
            Values::Fixed { bytes, width: 2 } => self.entries_of(&Narrow::<2>(bytes), &shape),
            Values::Fixed { bytes, width: 1 } => self.entries_of(&Narrow::<1>(bytes), &shape),
            Values::Fixed { bytes, .. } => self.entries_of(&Fixed::<8>(bytes), &shape),
            Values::Bits(bits) => self.entries_of(&Bits(bits), &shape),
        }
    }

    /// The rows of a leaf in a list or map of the given `shape`.
    fn entries_of<S: Source>(&mut self, values: &S, shape: &Shape<'_>) -> Result<()> {
        let Shape {
            offsets,
            element_nulls,
            any_null,
            levels_before,
        } = *shape;
        let max = self.max_def as u8;
        // Defined and not empty: one more level for the repetition.
        let present = levels_before + 1;
        let rows = offsets.len().saturating_sub(1);
        for row in 0..rows {
            let level = if any_null {
                self.batch_levels[row]
            } else {
                levels_before
            };
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            if level < levels_before || start == end {
                self.entry(level, 0);
            } else {
                for element in start..end {
                    let rep = u8::from(element > start);
                    if element_nulls.is_some_and(|nulls| nulls.is_null(element)) {
                        self.entry(present, rep);
                    } else {
                        self.entry(max, rep);
                        values.put(self, element);
                    }
                }
            }
            self.end_row()?;
        }
        self.rows += rows as u64;
        Ok(())
    }

    /// Counts a row of the page, and closes the page (or gives up the dictionary) when full.
    #[inline(always)]
    fn end_row(&mut self) -> Result<()> {
        self.page_rows += 1;
        if self.page_rows >= DATA_PAGE_ROWS
            || self.plain.len() >= PLAIN_GAP + DATA_PAGE_BYTES
            || self.dictionary_full()
        {
            self.cut()?;
        }
        Ok(())
    }

    /// `rows` rows below the full level, each `level` (and, in a list or map, one entry
    /// starting a row), page by page.
    fn bulk(&mut self, level: u8, rows: usize) -> Result<()> {
        let max = self.max_def as u8;
        let mut left = rows;
        while left > 0 {
            let take = DATA_PAGE_ROWS.saturating_sub(self.page_rows).clamp(1, left);
            if self.path.repeated.is_some() {
                self.levels.resize(self.levels.len() + take, level);
                self.reps.resize(self.reps.len() + take, 0);
            } else {
                self.levels.resize(self.page_rows, max);
                self.levels.resize(self.page_rows + take, level);
                self.page_nulls += take;
                self.histogram[level as usize] += take as i64;
            }
            self.nulls += take as u64;
            self.page_rows += take;
            left -= take;
            if self.page_rows >= DATA_PAGE_ROWS {
                self.cut()?;
            }
        }
        self.rows += rows as u64;
        Ok(())
    }

    /// A level entry of a leaf in a list or map; those below the full level are nulls.
    #[inline(always)]
    fn entry(&mut self, level: u8, rep: u8) {
        self.levels.push(level);
        self.reps.push(rep);
        if level < self.max_def as u8 {
            self.nulls += 1;
        }
    }

    #[inline(always)]
    fn value(&mut self, value: &[u8]) {
        let kind = self.path.kind;
        if kind == Kind::Text {
            self.text_bytes += value.len() as i64;
        }
        match &mut self.dictionary {
            Some(dictionary) => self.indices.push(dictionary.intern(value)),
            None => {
                if kind == Kind::Text {
                    self.plain
                        .extend_from_slice(&(value.len() as u32).to_le_bytes());
                }
                let here = (self.plain.len(), self.plain.len() + value.len());
                self.plain.extend_from_slice(value);
                if !kind.ordered(value) {
                    return;
                }
                match self.page_min {
                    Some((start, end)) if !kind.less(value, &self.plain[start..end]) => {}
                    _ => self.page_min = Some(here),
                }
                match self.page_max {
                    Some((start, end)) if !kind.less(&self.plain[start..end], value) => {}
                    _ => self.page_max = Some(here),
                }
            }
        }
    }

    /// A boolean: a bit of the plain page, least significant first.
    #[inline(always)]
    fn bit_value(&mut self, bit: bool) {
        if self.plain_bits.is_multiple_of(8) {
            self.plain.push(0);
        }
        if bit && let Some(last) = self.plain.last_mut() {
            *last |= 1 << (self.plain_bits % 8);
        }
        self.plain_bits += 1;
        let key = u64::from(bit);
        match self.page_min_key {
            Some(min) if min <= key => {}
            _ => self.page_min_key = Some(key),
        }
        match self.page_max_key {
            Some(max) if max >= key => {}
            _ => self.page_max_key = Some(key),
        }
    }

    /// A fixed-width value, as its little-endian bits.
    #[inline(always)]
    fn fixed_value(&mut self, key: u64) {
        let kind = self.path.kind;
        match &mut self.dictionary {
            Some(dictionary) => self.indices.push(dictionary.intern_key(key, kind)),
            None => {
                put_key(&mut self.plain, key, kind);
                if !kind.ordered_key(key) {
                    return;
                }
                match self.page_min_key {
                    Some(min) if !kind.less_key(key, min) => {}
                    _ => self.page_min_key = Some(key),
                }
                match self.page_max_key {
                    Some(max) if !kind.less_key(max, key) => {}
                    _ => self.page_max_key = Some(key),
                }
            }
        }
    }

    /// A row below the leaf's full definition level. The page's levels are kept only from
    /// its first such row on: until then, every row of the page is defined.
    fn null(&mut self, level: u8) {
        self.levels.resize(self.page_rows, self.max_def as u8);
        self.levels.push(level);
        self.nulls += 1;
        self.page_nulls += 1;
        self.histogram[level as usize] += 1;
    }

    fn dictionary_full(&self) -> bool {
        self.dictionary
            .as_ref()
            .is_some_and(|dictionary| dictionary.page.len() >= DICTIONARY_PAGE_BYTES)
    }

    /// Closes the page when it is full, and gives up the dictionary when it is.
    #[cold]
    fn cut(&mut self) -> Result<()> {
        if self.page_rows >= DATA_PAGE_ROWS || self.page_size() >= DATA_PAGE_BYTES {
            self.flush_page()?;
        }
        if self.dictionary_full() {
            self.fall_back()?;
        }
        Ok(())
    }

    /// What the page being filled would take, about (the crate's estimate).
    fn page_size(&self) -> usize {
        match &self.dictionary {
            Some(dictionary) => {
                1 + (self.indices.len() * bit_width(dictionary.len().saturating_sub(1) as u64))
                    .div_ceil(8)
            }
            None => self.plain.len() - PLAIN_GAP,
        }
    }

    /// Closes the page being filled into a compressed data page.
    fn flush_page(&mut self) -> Result<()> {
        if self.page_rows == 0 {
            return Ok(());
        }
        // The page's min and max join the chunk's: texts where they are in the page,
        // fixed-width values as their bits.
        let kind = self.path.kind;
        let ranges = [self.page_min.take(), self.page_max.take()];
        let keys = [self.page_min_key.take(), self.page_max_key.take()]
            .map(|key| key.map(u64::to_le_bytes));
        let plain = &self.plain;
        let values = ranges
            .iter()
            .flatten()
            .map(|&(start, end)| &plain[start..end])
            .chain(keys.iter().flatten().map(|bytes| &bytes[..kind.width()]));
        for value in values {
            widen(kind, &mut self.min, &mut self.max, value);
        }
        self.page.clear();
        let entries = if self.path.repeated.is_some() {
            self.levels.len()
        } else {
            self.page_rows
        };
        if self.path.repeated.is_some() {
            self.page.extend_from_slice(&[0; 4]);
            encode_hybrid(&self.reps, 1, &mut self.page);
            let length = (self.page.len() - 4) as u32;
            self.page[..4].copy_from_slice(&length.to_le_bytes());
            for &rep in &self.reps {
                self.rep_histogram[rep as usize] += 1;
            }
            for &level in &self.levels {
                self.histogram[level as usize] += 1;
            }
        } else if self.max_def > 0 {
            let defined = (self.page_rows - self.page_nulls) as i64;
            self.histogram[self.max_def as usize] += defined;
        }
        if self.max_def > 0 {
            let width = bit_width(self.max_def as u64);
            let start = self.page.len();
            self.page.extend_from_slice(&[0; 4]);
            if self.levels.is_empty() {
                encode_run(self.max_def as u32, entries, width, &mut self.page);
            } else {
                self.levels.resize(entries, self.max_def as u8);
                encode_hybrid(&self.levels, width, &mut self.page);
            }
            let length = (self.page.len() - start - 4) as u32;
            self.page[start..start + 4].copy_from_slice(&length.to_le_bytes());
        } else {
            self.histogram[0] += entries as i64;
        }
        let (encoding, buf, uncompressed) = match &self.dictionary {
            Some(dictionary) => {
                let width = bit_width(dictionary.len().saturating_sub(1) as u64);
                self.page.push(width as u8);
                encode_hybrid(&self.indices, width, &mut self.page);
                let buf = self.compress_page()?;
                (Encoding::RLE_DICTIONARY, buf, self.page.len())
            }
            None if self.page.len() <= PLAIN_GAP => {
                // The levels go in the gap just before the values: one buffer, no copy.
                let start = PLAIN_GAP - self.page.len();
                self.plain[start..PLAIN_GAP].copy_from_slice(&self.page);
                let page = &self.plain[start..];
                let buf = compress(&mut self.compressor, &mut self.compressed, page)?;
                (Encoding::PLAIN, buf, page.len())
            }
            None => {
                self.page.extend_from_slice(&self.plain[PLAIN_GAP..]);
                let buf = self.compress_page()?;
                (Encoding::PLAIN, buf, self.page.len())
            }
        };
        self.page_bytes += buf.len();
        self.pages.push(CompressedPage::new(
            Page::DataPage {
                buf,
                num_values: entries as u32,
                encoding,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            },
            uncompressed,
        ));
        self.entries += entries as u64;
        self.levels.clear();
        self.reps.clear();
        self.indices.clear();
        self.plain_bits = 0;
        self.plain.truncate(PLAIN_GAP);
        self.page_rows = 0;
        self.page_nulls = 0;
        Ok(())
    }

    /// Snappy of `self.page`, in a buffer of its own size.
    fn compress_page(&mut self) -> Result<Bytes> {
        compress(&mut self.compressor, &mut self.compressed, &self.page)
    }

    /// Writes the dictionary page (its values join the statistics) and goes on with plain
    /// pages, after closing the page of indices being filled.
    fn fall_back(&mut self) -> Result<()> {
        self.flush_page()?;
        self.write_dictionary()
    }

    fn write_dictionary(&mut self) -> Result<()> {
        let Some(dictionary) = self.dictionary.take() else {
            return Ok(());
        };
        // The smallest and largest distinct value, then the chunk's statistics once.
        let kind = self.path.kind;
        let (mut lowest, mut highest): (Option<&[u8]>, Option<&[u8]>) = (None, None);
        if dictionary.keys.is_empty() {
            for value in dictionary.values() {
                if !kind.ordered(value) {
                    continue;
                }
                if lowest.is_none_or(|lowest| kind.less(value, lowest)) {
                    lowest = Some(value);
                }
                if highest.is_none_or(|highest| kind.less(highest, value)) {
                    highest = Some(value);
                }
            }
        } else {
            let (mut low, mut high): (Option<usize>, Option<usize>) = (None, None);
            for (index, &key) in dictionary.keys.iter().enumerate() {
                if !kind.ordered_key(key) {
                    continue;
                }
                if low.is_none_or(|low| kind.less_key(key, dictionary.keys[low])) {
                    low = Some(index);
                }
                if high.is_none_or(|high| kind.less_key(dictionary.keys[high], key)) {
                    high = Some(index);
                }
            }
            lowest =
                low.map(|index| Dictionary::entry(&dictionary.page, dictionary.entries[index]));
            highest =
                high.map(|index| Dictionary::entry(&dictionary.page, dictionary.entries[index]));
        }
        for value in [lowest, highest].into_iter().flatten() {
            widen(kind, &mut self.min, &mut self.max, value);
        }
        self.page.clear();
        self.page.extend_from_slice(&dictionary.page);
        let buf = self.compress_page()?;
        self.dictionary_page = Some(CompressedPage::new(
            Page::DictionaryPage {
                buf,
                num_values: dictionary.len() as u32,
                encoding: Encoding::PLAIN,
                is_sorted: false,
            },
            dictionary.page.len(),
        ));
        Ok(())
    }

    /// Closes the chunk: its bytes (the dictionary page first, then the data pages) and what
    /// the row group records of it, with offsets from the start of those bytes.
    pub(crate) fn close(mut self) -> Result<(Bytes, ColumnCloseResult)> {
        self.flush_page()?;
        self.write_dictionary()?;
        let mut encodings = vec![Encoding::RLE];
        let mut encoding_stats: Vec<PageEncodingStats> = Vec::new();
        let mut sink = TrackedWrite::new(Vec::with_capacity(self.memory_size() + 4096));
        let mut specs: Vec<PageWriteSpec> = Vec::with_capacity(self.pages.len() + 1);
        let mut dictionary_offset = None;
        {
            let mut writer = SerializedPageWriter::new(&mut sink);
            for page in self.dictionary_page.take().into_iter().chain(self.pages) {
                let (page_type, encoding) = (page.page_type(), page.encoding());
                encodings.push(encoding);
                match encoding_stats.last_mut() {
                    Some(last) if last.page_type == page_type && last.encoding == encoding => {
                        last.count += 1;
                    }
                    _ => encoding_stats.push(PageEncodingStats {
                        page_type,
                        encoding,
                        count: 1,
                    }),
                }
                let spec = writer.write_page(page)?;
                if page_type == PageType::DICTIONARY_PAGE {
                    dictionary_offset = Some(spec.offset as i64);
                }
                specs.push(spec);
            }
            writer.close()?;
        }
        let bytes = Bytes::from(sink.into_inner()?);
        let data_offset = specs
            .iter()
            .find(|spec| spec.page_type != PageType::DICTIONARY_PAGE)
            .map_or(0, |spec| spec.offset as i64);
        let compressed: u64 = specs.iter().map(|spec| spec.compressed_size as u64).sum();
        let uncompressed: u64 = specs.iter().map(|spec| spec.uncompressed_size as u64).sum();
        let written: u64 = specs.iter().map(|spec| spec.bytes_written).sum();
        let statistics = statistics(self.path.kind, self.min.take(), self.max.take(), self.nulls);
        let histogram = (self.max_def > 0).then(|| LevelHistogram::from(self.histogram));
        let metadata = ColumnChunkMetaData::builder(self.descr)
            .set_compression(Compression::SNAPPY)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(encoding_stats)
            .set_total_compressed_size(compressed as i64)
            .set_total_uncompressed_size(uncompressed as i64)
            .set_num_values(self.entries as i64)
            .set_data_page_offset(data_offset)
            .set_dictionary_page_offset(dictionary_offset)
            .set_statistics(statistics)
            .set_unencoded_byte_array_data_bytes(
                (self.path.kind == Kind::Text).then_some(self.text_bytes),
            )
            .set_repetition_level_histogram(
                self.path
                    .repeated
                    .map(|_| LevelHistogram::from(self.rep_histogram.to_vec())),
            )
            .set_definition_level_histogram(histogram)
            .build()?;
        Ok((
            bytes,
            ColumnCloseResult {
                bytes_written: written,
                rows_written: self.rows,
                metadata,
                bloom_filter: None,
                column_index: None,
                offset_index: None,
            },
        ))
    }
}

/// The chunk's statistics as the crate writes them: texts' min and max truncated, signed
/// types' also in the deprecated fields, a double's zero min as -0.0 and zero max as +0.0.
fn statistics(kind: Kind, min: Option<Vec<u8>>, max: Option<Vec<u8>>, nulls: u64) -> Statistics {
    let bounds = min.zip(max);
    match kind {
        Kind::Boolean => {
            let flag = |bytes: &[u8]| bytes.first().is_some_and(|&byte| byte != 0);
            let (min, max) = bounds.map(|(min, max)| (flag(&min), flag(&max))).unzip();
            Statistics::Boolean(ValueStatistics::new(min, max, None, Some(nulls), false))
        }
        Kind::Text => match bounds {
            Some((min, max)) => {
                let (min, min_cut) = truncate_min(min);
                let (max, max_cut) = truncate_max(max);
                Statistics::ByteArray(
                    ValueStatistics::new(
                        Some(ByteArray::from(min)),
                        Some(ByteArray::from(max)),
                        None,
                        Some(nulls),
                        false,
                    )
                    .with_min_is_exact(!min_cut)
                    .with_max_is_exact(!max_cut),
                )
            }
            None => {
                Statistics::ByteArray(ValueStatistics::new(None, None, None, Some(nulls), false))
            }
        },
        Kind::Int32 => {
            let (min, max) = bounds.map(|(min, max)| (int32(&min), int32(&max))).unzip();
            Statistics::Int32(signed(ValueStatistics::new(
                min,
                max,
                None,
                Some(nulls),
                false,
            )))
        }
        Kind::Int64 => {
            let (min, max) = bounds.map(|(min, max)| (int64(&min), int64(&max))).unzip();
            Statistics::Int64(signed(ValueStatistics::new(
                min,
                max,
                None,
                Some(nulls),
                false,
            )))
        }
        Kind::Double => {
            let zero = |value: f64, zero: f64| if value == 0.0 { zero } else { value };
            let (min, max) = bounds
                .map(|(min, max)| (zero(double(&min), -0.0), zero(double(&max), 0.0)))
                .unzip();
            Statistics::Double(signed(ValueStatistics::new(
                min,
                max,
                None,
                Some(nulls),
                false,
            )))
        }
    }
}

/// Statistics of a type with a signed sort order: also written to the deprecated fields.
fn signed<T>(statistics: ValueStatistics<T>) -> ValueStatistics<T> {
    statistics.with_backwards_compatible_min_max(true)
}

/// Widens `min`..`max` to take in `value`.
fn widen(kind: Kind, min: &mut Option<Vec<u8>>, max: &mut Option<Vec<u8>>, value: &[u8]) {
    if !kind.ordered(value) {
        return;
    }
    if min.as_deref().is_none_or(|min| kind.less(value, min)) {
        set(min, value);
    }
    if max.as_deref().is_none_or(|max| kind.less(max, value)) {
        set(max, value);
    }
}

/// `bound` becomes `value`, in its own buffer when it has one.
fn set(bound: &mut Option<Vec<u8>>, value: &[u8]) {
    let bound = bound.get_or_insert_with(Vec::new);
    bound.clear();
    bound.extend_from_slice(value);
}

/// A chunk's dictionary: its page's plain bytes (each value's length, `u32` little-endian,
/// then its bytes), where each value starts in them, and a table of the values by hash.
struct Dictionary {
    /// Whether each value's length precedes it (texts).
    prefixed: bool,
    page: Vec<u8>,
    entries: Vec<(u32, u32)>,
    table: HashTable<u32>,
    hasher: DefaultHashBuilder,
    /// The index of the last value interned: runs of one value skip the table.
    last: Option<u32>,
    /// Fixed-width values: each entry's bits, and the last one interned with its index.
    keys: Vec<u64>,
    last_key: Option<(u64, u32)>,
    /// Texts of up to 16 bytes interned lately, [`RECENT`] slots by a hash of their words
    /// (empty until the first text, and for fixed-width values): a value found here needs
    /// neither a hash of its bytes nor a comparison with the page.
    recent: Vec<Recent>,
}

/// The slots of [`Dictionary::recent`].
const RECENT: usize = 256;

/// A short text of a dictionary: its bytes as [`short_words`] gives them, its length
/// (`u32::MAX` in an empty slot) and its index.
#[derive(Clone, Copy)]
struct Recent {
    words: [u64; 2],
    len: u32,
    index: u32,
}

impl Recent {
    const EMPTY: Self = Self {
        words: [0; 2],
        len: u32::MAX,
        index: 0,
    };
}

/// The bytes of a text of at most 16 bytes as two words that, with its length, tell it
/// from every other: two overlapping loads cover all of them. `None` for a longer text.
#[inline(always)]
fn short_words(value: &[u8]) -> Option<[u64; 2]> {
    let n = value.len();
    Some(match n {
        8..=16 => [word(value, 0), word(value, n - 8)],
        4..=7 => [
            u64::from(half(value, 0)) | u64::from(half(value, n - 4)) << 32,
            0,
        ],
        1..=3 => [
            u64::from(value[0]) | u64::from(value[n / 2]) << 8 | u64::from(value[n - 1]) << 16,
            0,
        ],
        0 => [0; 2],
        _ => return None,
    })
}

/// The slot of [`Dictionary::recent`] for a short text.
#[inline(always)]
fn recent_slot(words: [u64; 2], len: usize) -> usize {
    let mixed =
        (words[0] ^ words[1].rotate_left(32) ^ len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (mixed >> (64 - RECENT.trailing_zeros())) as usize
}

impl Dictionary {
    fn new(prefixed: bool) -> Self {
        Self {
            prefixed,
            page: Vec::new(),
            entries: Vec::new(),
            table: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            last: None,
            keys: Vec::new(),
            last_key: None,
            recent: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn entry(page: &[u8], (start, length): (u32, u32)) -> &[u8] {
        &page[start as usize..(start + length) as usize]
    }

    fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.entries
            .iter()
            .map(|&entry| Self::entry(&self.page, entry))
    }

    /// The index of a fixed-width value (its bits), added when new.
    #[inline(always)]
    fn intern_key(&mut self, key: u64, kind: Kind) -> u32 {
        if let Some((last, index)) = self.last_key
            && last == key
        {
            return index;
        }
        let hash = self.hasher.hash_one(key);
        let keys = &self.keys;
        let index = match self.table.find(hash, |&index| keys[index as usize] == key) {
            Some(&index) => index,
            None => {
                let index = self.keys.len() as u32;
                let start = self.page.len() as u32;
                put_key(&mut self.page, key, kind);
                self.entries.push((start, kind.width() as u32));
                self.keys.push(key);
                let (keys, hasher) = (&self.keys, &self.hasher);
                self.table
                    .insert_unique(hash, index, |&index| hasher.hash_one(keys[index as usize]));
                index
            }
        };
        self.last_key = Some((key, index));
        index
    }

    /// The index of `value`, added when new.
    #[inline(always)]
    fn intern(&mut self, value: &[u8]) -> u32 {
        let Some(words) = short_words(value).filter(|_| !self.recent.is_empty()) else {
            return self.intern_hashed(value);
        };
        let slot = recent_slot(words, value.len()) & (self.recent.len() - 1);
        let recent = self.recent[slot];
        if recent.len as usize == value.len() && recent.words == words {
            return recent.index;
        }
        let index = self.intern_hashed(value);
        self.recent[slot] = Recent {
            words,
            len: value.len() as u32,
            index,
        };
        index
    }

    /// [`intern`](Self::intern) through the table of values by hash.
    #[inline(always)]
    fn intern_hashed(&mut self, value: &[u8]) -> u32 {
        if let Some(last) = self.last
            && same(Self::entry(&self.page, self.entries[last as usize]), value)
        {
            return last;
        }
        let hash = self.hasher.hash_one(value);
        let (page, entries) = (&self.page, &self.entries);
        let index = match self.table.find(hash, |&index| {
            same(Self::entry(page, entries[index as usize]), value)
        }) {
            Some(&index) => index,
            None => {
                let index = self.entries.len() as u32;
                if self.prefixed {
                    self.page
                        .extend_from_slice(&(value.len() as u32).to_le_bytes());
                    if self.recent.is_empty() {
                        // The slots come with the first text: a leaf that never has a value
                        // (a wide, sparse schema's) holds none.
                        self.recent = vec![Recent::EMPTY; RECENT];
                    }
                }
                let start = self.page.len() as u32;
                self.page.extend_from_slice(value);
                self.entries.push((start, value.len() as u32));
                let (page, entries, hasher) = (&self.page, &self.entries, &self.hasher);
                self.table.insert_unique(hash, index, |&index| {
                    hasher.hash_one(Self::entry(page, entries[index as usize]))
                });
                index
            }
        };
        self.last = Some(index);
        index
    }
}

/// Snappy of `page` (through the scratch buffer `compressed`), in a buffer of its own size.
fn compress(
    compressor: &mut snap::raw::Encoder,
    compressed: &mut Vec<u8>,
    page: &[u8],
) -> Result<Bytes> {
    // The scratch buffer only grows: zeroing it again for each page cost a `memset` of
    // the page's size.
    let bound = snap::raw::max_compress_len(page.len());
    if compressed.len() < bound {
        compressed.resize(bound, 0);
    }
    let length = compressor
        .compress(page, compressed)
        .map_err(|err| ParquetError::External(Box::new(err)))?;
    Ok(Bytes::copy_from_slice(&compressed[..length]))
}

/// The value every element of `values` has, if they are not empty and all the same.
fn uniform(values: &[u8]) -> Option<u8> {
    let first = *values.first()?;
    values.iter().all(|&value| value == first).then_some(first)
}

/// `a == b`, without a call to `memcmp` for the short texts most columns hold: up to 16
/// bytes are compared as two overlapping words.
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    match n {
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        _ => a == b,
    }
}

/// `a < b` as byte strings, eight bytes at a time as big-endian words while both have
/// eight more, then byte by byte.
#[inline(always)]
fn text_less(a: &[u8], b: &[u8]) -> bool {
    let common = a.len().min(b.len());
    let mut at = 0;
    while at + 8 <= common {
        let (x, y) = (word(a, at).swap_bytes(), word(b, at).swap_bytes());
        if x != y {
            return x < y;
        }
        at += 8;
    }
    for (x, y) in a[at..common].iter().zip(&b[at..common]) {
        if x != y {
            return x < y;
        }
    }
    a.len() < b.len()
}

/// The eight bytes of `bytes` from `at`, as a little-endian word.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The four bytes of `bytes` from `at`, as a little-endian word.
#[inline(always)]
fn half(bytes: &[u8], at: usize) -> u32 {
    let mut half = [0u8; 4];
    half.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(half)
}

/// Appends a fixed-width value's plain bytes.
#[inline(always)]
fn put_key(out: &mut Vec<u8>, key: u64, kind: Kind) {
    if kind == Kind::Int32 {
        out.extend_from_slice(&(key as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&key.to_le_bytes());
    }
}

/// The bits that hold every value up to `max`.
fn bit_width(max: u64) -> usize {
    (64 - max.leading_zeros()) as usize
}

/// Appends `values` in Parquet's RLE / bit-packed hybrid encoding at `width` bits each
/// (definition and repetition levels, dictionary indices), group of eight by group of eight:
/// a group of one value starts an RLE run that takes every equal value after it; the other
/// groups are bit-packed, at most 63 groups a run; only the last group is padded.
fn encode_hybrid<T: Copy + Into<u32> + PartialEq>(values: &[T], width: usize, out: &mut Vec<u8>) {
    // Values waiting to be bit-packed, from `pending` to `at` (whole groups).
    let mut pending = 0;
    let mut at = 0;
    while at + 8 <= values.len() {
        let value = values[at];
        if values[at + 1..at + 8].iter().all(|&other| other == value) {
            let mut end = at + 8;
            while end < values.len() && values[end] == value {
                end += 1;
            }
            bit_pack(&values[pending..at], width, out);
            encode_run(value.into(), end - at, width, out);
            at = end;
            pending = end;
        } else {
            at += 8;
        }
    }
    bit_pack(&values[pending..], width, out);
}

/// Appends an RLE run of `length` times `value` at `width` bits.
fn encode_run(value: u32, length: usize, width: usize, out: &mut Vec<u8>) {
    put_varint(out, (length as u64) << 1);
    out.extend_from_slice(&value.to_le_bytes()[..width.div_ceil(8)]);
}

/// Bit-packs `values` in runs of at most 63 groups of eight, padding the last group.
fn bit_pack<T: Copy + Into<u32>>(values: &[T], width: usize, out: &mut Vec<u8>) {
    for run in values.chunks(63 * 8) {
        let groups = run.len().div_ceil(8);
        put_varint(out, ((groups as u64) << 1) | 1);
        let mut bits = 0u64;
        let mut count = 0;
        for index in 0..groups * 8 {
            let value: u32 = run.get(index).map_or(0, |&value| value.into());
            bits |= u64::from(value) << count;
            count += width;
            while count >= 8 {
                out.push(bits as u8);
                bits >>= 8;
                count -= 8;
            }
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A min statistic cut to [`STATISTICS_BYTES`] at a character boundary, and whether it was.
fn truncate_min(value: Vec<u8>) -> (Vec<u8>, bool) {
    if value.len() <= STATISTICS_BYTES {
        return (value, false);
    }
    let Ok(text) = std::str::from_utf8(&value) else {
        return (value[..STATISTICS_BYTES].to_vec(), true);
    };
    match (1..=STATISTICS_BYTES).rfind(|&end| text.is_char_boundary(end)) {
        Some(end) => (value[..end].to_vec(), true),
        None => (value, false),
    }
}

/// A max statistic cut to [`STATISTICS_BYTES`] at a character boundary with its last
/// character incremented (so that it stays an upper bound), and whether it was.
fn truncate_max(value: Vec<u8>) -> (Vec<u8>, bool) {
    if value.len() <= STATISTICS_BYTES {
        return (value, false);
    }
    let cut = match std::str::from_utf8(&value) {
        Ok(text) => (STATISTICS_BYTES.saturating_sub(3)..=STATISTICS_BYTES)
            .rfind(|&end| text.is_char_boundary(end))
            .and_then(|end| increment_last_char(&text[..end])),
        Err(_) => increment_bytes(value[..STATISTICS_BYTES].to_vec()),
    };
    match cut {
        Some(cut) => (cut, true),
        None => (value, false),
    }
}

/// `text` with its last character that can be incremented without growing in bytes
/// incremented, and cut after it.
fn increment_last_char(text: &str) -> Option<Vec<u8>> {
    text.char_indices().rev().find_map(|(start, character)| {
        let next = char::from_u32(character as u32 + 1)?;
        (next.len_utf8() == character.len_utf8()).then(|| {
            let mut bytes = text.as_bytes()[..start + character.len_utf8()].to_vec();
            next.encode_utf8(&mut bytes[start..]);
            bytes
        })
    })
}

/// `bytes` plus one, as a big-endian number of its length; `None` when all are 0xff.
fn increment_bytes(mut bytes: Vec<u8>) -> Option<Vec<u8>> {
    for byte in bytes.iter_mut().rev() {
        let (next, overflow) = byte.overflowing_add(1);
        *byte = next;
        if !overflow {
            return Some(bytes);
        }
    }
    None
}

#[cfg(test)]
mod tests;
