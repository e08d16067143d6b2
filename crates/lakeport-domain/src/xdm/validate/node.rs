//! The compiled schema: the node tree `compile` builds and `walk` runs over.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::{Number, Value};

use super::pattern::Pattern;

/// One compiled field (or the schema root).
#[derive(Debug)]
pub(super) struct Node {
    pub kind: Kind,
    /// Constraint keywords; `None` for the common unconstrained field.
    pub checks: Option<Box<Checks>>,
    /// The converted `default`, filled in for a required field that is absent or null.
    pub default: Option<Value>,
    /// The schema location, `#/properties/a/properties/b`.
    pub location: Box<str>,
}

impl Node {
    /// Returns the object layout of an object node (the root always is one).
    pub fn as_object(&self) -> &ObjectNode {
        match &self.kind {
            Kind::Object(object) => object,
            _ => unreachable!("compile_root only builds object roots"),
        }
    }
}

/// The XDM type a value is converted to.
#[derive(Debug)]
pub(super) enum Kind {
    String,
    Integer(IntegerWidth),
    Number,
    Boolean,
    Date,
    DateTime,
    Object(Box<ObjectNode>),
    Map(Box<Node>),
    Array(Box<Node>),
}

impl Kind {
    /// Returns the XDM type name used in messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer(width) => width.name(),
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::DateTime => "date-time",
            Self::Object(_) => "object",
            Self::Map(_) => "map",
            Self::Array(_) => "array",
        }
    }
}

/// The XDM integer types and their implied two's-complement ranges (spec §8.13).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum IntegerWidth {
    Byte,
    Short,
    Int,
    Long,
}

impl IntegerWidth {
    pub fn name(self) -> &'static str {
        match self {
            Self::Byte => "byte",
            Self::Short => "short",
            Self::Int => "int",
            Self::Long => "long",
        }
    }

    /// Returns the implied inclusive range; `long` is ±(2^53−1), what a double holds exactly.
    pub(super) fn range(self) -> (i64, i64) {
        match self {
            Self::Byte => (i64::from(i8::MIN), i64::from(i8::MAX)),
            Self::Short => (i64::from(i16::MIN), i64::from(i16::MAX)),
            Self::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
            Self::Long => (-9_007_199_254_740_991, 9_007_199_254_740_991),
        }
    }
}

/// The properties of an object node.
#[derive(Debug)]
pub(super) struct ObjectNode {
    pub properties: Vec<Property>,
    /// Property positions by name, for objects with many properties.
    pub index: Option<FxHashMap<Box<str>, usize>>,
    /// Positions of the required properties, in the schema's `required` order.
    pub required: Vec<usize>,
}

impl ObjectNode {
    /// Finds a property by name. `cursor` is the position after the previous match: rows
    /// usually list fields in schema order, so the next property is tried first.
    #[inline]
    pub fn find(&self, name: &str, cursor: &mut usize) -> Option<usize> {
        if let Some(property) = self.properties.get(*cursor)
            && same_name(&property.name, name)
        {
            *cursor += 1;
            return Some(*cursor - 1);
        }
        let found = match &self.index {
            Some(index) => index.get(name).copied(),
            None => self
                .properties
                .iter()
                .position(|property| same_name(&property.name, name)),
        }?;
        *cursor = found + 1;
        Some(found)
    }
}

/// Compares two short names without calling `memcmp`: property names are a few bytes long
/// and compared once per field of every row.
#[inline]
fn same_name(expected: &str, actual: &str) -> bool {
    expected.len() == actual.len() && expected.bytes().zip(actual.bytes()).all(|(a, b)| a == b)
}

/// A declared property of an object.
#[derive(Debug)]
pub(super) struct Property {
    pub name: Box<str>,
    pub node: Node,
    pub required: bool,
}

/// The constraint keywords of one field.
#[derive(Debug, Default)]
pub(super) struct Checks {
    pub enum_values: Option<EnumValues>,
    pub pattern: Option<Pattern>,
    pub min_length: Option<usize>,
    pub max_length: Option<usize>,
    pub bounds: Vec<Bound>,
    pub format: Option<Format>,
    pub min_items: Option<usize>,
    pub max_items: Option<usize>,
    pub unique_items: bool,
    /// The bounds as one inclusive range of integers, when every limit is an integer.
    pub integer_range: Option<(i64, i64)>,
    /// The bounds as one range of doubles.
    pub float_range: FloatRange,
    /// Which of the string checks the field has, when only one kind (set once compiled).
    pub string_only: StringOnly,
}

/// The string checks of a field when they are of one kind, so that a string is checked
/// without looking at the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum StringOnly {
    /// None: the field's checks are for other types.
    Nothing,
    Pattern,
    Enum,
    Email,
    Lengths,
    /// Several kinds, or a format other than e-mail.
    #[default]
    Several,
}

/// The bounds of a field as one range of doubles: the tightest lower and upper limit, each
/// with whether it is exclusive.
#[derive(Debug, Clone, Copy)]
pub(super) struct FloatRange {
    pub low: (f64, bool),
    pub high: (f64, bool),
}

impl Default for FloatRange {
    fn default() -> Self {
        Self {
            low: (f64::NEG_INFINITY, false),
            high: (f64::INFINITY, false),
        }
    }
}

impl FloatRange {
    /// Whether `value` (not NaN) is within the range, as every bound would say.
    #[inline]
    pub fn contains(&self, value: f64) -> bool {
        let (low, low_exclusive) = self.low;
        let (high, high_exclusive) = self.high;
        (value > low || (!low_exclusive && value == low))
            && (value < high || (!high_exclusive && value == high))
    }
}

/// The ranges equivalent to `bounds` (all of them must hold).
pub(super) fn ranges_of(bounds: &[Bound]) -> (Option<(i64, i64)>, FloatRange) {
    let mut integers = Some((i64::MIN, i64::MAX));
    let mut floats = FloatRange::default();
    for bound in bounds {
        let (limit, exclusive) = match bound.side {
            BoundSide::Minimum | BoundSide::Maximum => (bound.limit, false),
            BoundSide::ExclusiveMinimum | BoundSide::ExclusiveMaximum => (bound.limit, true),
        };
        let float = match limit {
            Limit::Integer(limit) => limit as f64,
            Limit::Float(limit) => limit,
        };
        let lower = matches!(bound.side, BoundSide::Minimum | BoundSide::ExclusiveMinimum);
        if lower {
            if float > floats.low.0 || (float == floats.low.0 && exclusive) {
                floats.low = (float, exclusive);
            }
        } else if float < floats.high.0 || (float == floats.high.0 && exclusive) {
            floats.high = (float, exclusive);
        }
        integers = match (integers, limit) {
            (Some((low, high)), Limit::Integer(limit)) => match bound.side {
                BoundSide::Minimum => Some((low.max(limit), high)),
                BoundSide::ExclusiveMinimum => limit.checked_add(1).map(|at| (low.max(at), high)),
                BoundSide::Maximum => Some((low, high.min(limit))),
                BoundSide::ExclusiveMaximum => limit.checked_sub(1).map(|at| (low, high.min(at))),
            },
            _ => None,
        };
    }
    (integers, floats)
}

impl Checks {
    /// Which kind of string check the field has, when only one.
    pub(super) fn string_only(&self) -> StringOnly {
        let lengths = self.min_length.is_some() || self.max_length.is_some();
        match (
            self.enum_values.is_some(),
            self.pattern.is_some(),
            lengths,
            self.format,
        ) {
            (false, false, false, None) => StringOnly::Nothing,
            (false, true, false, None) => StringOnly::Pattern,
            (true, false, false, None) => StringOnly::Enum,
            (false, false, false, Some(Format::Email)) => StringOnly::Email,
            (false, false, true, None) => StringOnly::Lengths,
            _ => StringOnly::Several,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.enum_values.is_none()
            && self.pattern.is_none()
            && self.min_length.is_none()
            && self.max_length.is_none()
            && self.bounds.is_empty()
            && self.format.is_none()
            && self.min_items.is_none()
            && self.max_items.is_none()
            && !self.unique_items
    }
}

/// The allowed values of a field, converted to the field's type.
#[derive(Debug)]
pub(super) struct EnumValues {
    pub values: EnumSet,
    /// The values as listed in messages: `"bronze", "silver", "gold"`.
    pub display: Box<str>,
}

#[derive(Debug)]
pub(super) enum EnumSet {
    Strings(Vec<Box<str>>),
    HashedStrings(FxHashSet<Box<str>>),
    Values(Vec<Value>),
}

impl EnumSet {
    pub fn contains(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::Strings(strings), Value::String(text)) => {
                strings.iter().any(|allowed| **allowed == **text)
            }
            (Self::HashedStrings(strings), Value::String(text)) => strings.contains(text.as_str()),
            (Self::Strings(_) | Self::HashedStrings(_), _) => false,
            (Self::Values(values), value) => values.contains(value),
        }
    }

    /// Whether a string value is allowed, without building a `Value` for it.
    pub fn contains_str(&self, text: &str) -> bool {
        match self {
            Self::Strings(strings) => strings.iter().any(|allowed| **allowed == *text),
            Self::HashedStrings(strings) => strings.contains(text),
            Self::Values(values) => values.iter().any(|value| value.as_str() == Some(text)),
        }
    }
}

/// The string formats that are checked; other `format` values are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Date,
    DateTime,
    Email,
    Uri,
    Uuid,
}

/// One numeric bound.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bound {
    pub side: BoundSide,
    pub limit: Limit,
    /// The integer type whose range implies this bound, when the schema declares none.
    pub implied_by: Option<IntegerWidth>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BoundSide {
    Minimum,
    Maximum,
    ExclusiveMinimum,
    ExclusiveMaximum,
}

impl BoundSide {
    pub(super) fn is_exclusive(self) -> bool {
        matches!(self, Self::ExclusiveMinimum | Self::ExclusiveMaximum)
    }

    /// Whether a value that compares to the limit as `ordering` satisfies this bound.
    pub(super) fn accepts(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering;
        match self {
            Self::Minimum => ordering != Ordering::Less,
            Self::Maximum => ordering != Ordering::Greater,
            Self::ExclusiveMinimum => ordering == Ordering::Greater,
            Self::ExclusiveMaximum => ordering == Ordering::Less,
        }
    }

    pub fn keyword(self) -> &'static str {
        match self {
            Self::Minimum => "minimum",
            Self::Maximum => "maximum",
            Self::ExclusiveMinimum => "exclusiveMinimum",
            Self::ExclusiveMaximum => "exclusiveMaximum",
        }
    }
}

/// A bound as the schema wrote it: integers stay exact, everything else is a double.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Limit {
    Integer(i64),
    Float(f64),
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Integer(value) => write!(f, "{value}"),
            Self::Float(value) => match Number::from_f64(*value) {
                Some(number) => write!(f, "{number}"),
                None => write!(f, "{value}"),
            },
        }
    }
}

/// Escapes a property name for a JSON pointer (`~` → `~0`, `/` → `~1`).
pub(super) fn escape_pointer(name: &str) -> std::borrow::Cow<'_, str> {
    if name.contains(['~', '/']) {
        name.replace('~', "~0").replace('/', "~1").into()
    } else {
        name.into()
    }
}

pub(super) type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;
pub(super) type FxHashSet<K> = HashSet<K, BuildHasherDefault<FxHasher>>;

/// A small fast hasher for the schema's own names: the tables are built once from the
/// schema and only looked up by rows, so flooding them is not a concern.
#[derive(Default, Clone, Copy)]
pub(super) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("chunk of 8")));
        }
        let mut tail = [0u8; 8];
        let remainder = chunks.remainder();
        tail[..remainder.len()].copy_from_slice(remainder);
        self.add(u64::from_le_bytes(tail));
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}
