//! A read-only view of the compiled schema for decoders that convert values straight into
//! columns instead of building a [`serde_json::Value`] per row.
//!
//! The view exposes the same node tree the row walk runs over, the same conversion
//! functions and the same checks, as predicates without messages: a decoder converts each
//! value as the walk would, asks the field whether the converted value passes, and hands
//! any row it cannot accept to [`Validator::validate`](super::Validator::validate), which
//! decides and reports the violations. A predicate that says `true` must therefore agree
//! exactly with the walk; one that cannot tell (a check only the walk implements) says so.

use serde_json::{Number, Value};

use super::formats;
use super::node::{EnumSet, Format, IntegerWidth, Kind, Node, ObjectNode, StringOnly};
use super::pattern::Pattern;
use super::walk::{compare_float, compare_integer, integer_of_float, parse_integer, parse_number};

/// One field of the compiled schema (or the root).
#[derive(Debug, Clone, Copy)]
pub struct Field<'v> {
    node: &'v Node,
}

/// The XDM type a field converts its values to, with the children of containers.
#[derive(Debug, Clone, Copy)]
pub enum FieldKind<'v> {
    String,
    Integer(IntegerType),
    Number,
    Boolean,
    Date,
    DateTime,
    Object(ObjectFields<'v>),
    /// A map; the field describes its values.
    Map(Field<'v>),
    /// An array; the field describes its items.
    Array(Field<'v>),
}

/// A field's string checks, resolved by [`Field::string_check`]; `accepts` answers as
/// [`Field::accepts_str`] does.
#[derive(Debug, Clone, Copy)]
pub struct StringCheck<'v>(Resolved<'v>);

#[derive(Debug, Clone, Copy)]
enum Resolved<'v> {
    None,
    Pattern(&'v Pattern),
    Enum(&'v EnumSet),
    Email,
    Lengths {
        min: Option<usize>,
        max: Option<usize>,
    },
    Any(Field<'v>),
}

impl StringCheck<'_> {
    /// Whether `text` passes.
    #[inline]
    pub fn accepts(&self, text: &str) -> bool {
        match self.0 {
            Resolved::None => true,
            Resolved::Pattern(pattern) => pattern.is_match(text),
            Resolved::Enum(allowed) => allowed.contains_str(text),
            Resolved::Email => formats::is_email(text),
            Resolved::Lengths { min, max } => {
                min.is_none_or(|min| !formats::shorter_than(text, min))
                    && max.is_none_or(|max| !formats::longer_than(text, max))
            }
            Resolved::Any(field) => field.accepts_str(text),
        }
    }
}

/// The XDM integer types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegerType {
    Byte,
    Short,
    Int,
    Long,
}

/// The properties of an object field, in schema order.
#[derive(Debug, Clone, Copy)]
pub struct ObjectFields<'v> {
    object: &'v ObjectNode,
}

impl<'v> Field<'v> {
    pub(super) fn new(node: &'v Node) -> Self {
        Self { node }
    }

    /// Returns the field's type.
    pub fn kind(&self) -> FieldKind<'v> {
        match &self.node.kind {
            Kind::String => FieldKind::String,
            Kind::Integer(width) => FieldKind::Integer(match width {
                IntegerWidth::Byte => IntegerType::Byte,
                IntegerWidth::Short => IntegerType::Short,
                IntegerWidth::Int => IntegerType::Int,
                IntegerWidth::Long => IntegerType::Long,
            }),
            Kind::Number => FieldKind::Number,
            Kind::Boolean => FieldKind::Boolean,
            Kind::Date => FieldKind::Date,
            Kind::DateTime => FieldKind::DateTime,
            Kind::Object(object) => FieldKind::Object(ObjectFields { object }),
            Kind::Map(values) => FieldKind::Map(Field::new(values)),
            Kind::Array(items) => FieldKind::Array(Field::new(items)),
        }
    }

    /// Whether the field holds a string, number or boolean (not an object, map or array).
    #[inline]
    pub fn is_scalar(&self) -> bool {
        !matches!(
            self.node.kind,
            Kind::Object(_) | Kind::Map(_) | Kind::Array(_)
        )
    }

    /// Whether the field holds a string (of no format that converts it: not a date).
    #[inline]
    pub fn is_string(&self) -> bool {
        matches!(self.node.kind, Kind::String)
    }

    /// Returns the converted `default` a required field takes when it is absent or null.
    pub fn default_value(&self) -> Option<&'v Value> {
        self.node.default.as_ref()
    }

    /// Whether the field has any constraint keyword.
    pub fn has_checks(&self) -> bool {
        self.node.checks.is_some()
    }

    /// Whether a converted string value (a string field's text, or the canonical text of a
    /// date or date-time) passes the field's `enum`, `pattern`, lengths and `format`.
    pub fn accepts_str(&self, text: &str) -> bool {
        let Some(checks) = &self.node.checks else {
            return true;
        };
        match checks.string_only {
            StringOnly::Nothing => return true,
            StringOnly::Pattern => {
                return checks
                    .pattern
                    .as_ref()
                    .is_none_or(|pattern| pattern.is_match(text));
            }
            StringOnly::Enum => {
                return checks
                    .enum_values
                    .as_ref()
                    .is_none_or(|allowed| allowed.values.contains_str(text));
            }
            StringOnly::Email => return formats::is_email(text),
            StringOnly::Lengths | StringOnly::Several => {}
        }
        if let Some(allowed) = &checks.enum_values
            && !allowed.values.contains_str(text)
        {
            return false;
        }
        if let Some(pattern) = &checks.pattern
            && !pattern.is_match(text)
        {
            return false;
        }
        if let Some(min_length) = checks.min_length
            && formats::shorter_than(text, min_length)
        {
            return false;
        }
        if let Some(max_length) = checks.max_length
            && formats::longer_than(text, max_length)
        {
            return false;
        }
        match checks.format {
            None => true,
            Some(Format::Date) => formats::parse_date(text).is_some(),
            Some(Format::DateTime) => formats::parse_date_time(text).is_some(),
            Some(Format::Email) => formats::is_email(text),
            Some(Format::Uri) => formats::is_absolute_uri(text),
            Some(Format::Uuid) => formats::is_uuid(text),
        }
    }

    /// [`accepts_str`](Self::accepts_str) resolved once, for checking many values of the
    /// field in a row: a field whose only check is a `pattern`, an `enum`, lengths or the
    /// `email` format is checked without looking up the others for every value.
    pub fn string_check(&self) -> StringCheck<'v> {
        let Some(checks) = &self.node.checks else {
            return StringCheck(Resolved::None);
        };
        StringCheck(match checks.string_only {
            StringOnly::Nothing => Resolved::None,
            StringOnly::Pattern => checks
                .pattern
                .as_ref()
                .map_or(Resolved::None, Resolved::Pattern),
            StringOnly::Enum => checks
                .enum_values
                .as_ref()
                .map_or(Resolved::None, |allowed| Resolved::Enum(&allowed.values)),
            StringOnly::Email => Resolved::Email,
            StringOnly::Lengths => Resolved::Lengths {
                min: checks.min_length,
                max: checks.max_length,
            },
            StringOnly::Several => Resolved::Any(*self),
        })
    }

    /// Whether a converted integer passes the field's `enum` and bounds (declared or implied
    /// by the integer type).
    pub fn accepts_integer(&self, value: i64) -> bool {
        let Some(checks) = &self.node.checks else {
            return true;
        };
        if let Some(allowed) = &checks.enum_values
            && !allowed.values.contains(&Value::from(value))
        {
            return false;
        }
        if let Some((low, high)) = checks.integer_range {
            return low <= value && value <= high;
        }
        checks.bounds.iter().all(|bound| {
            let ordering = compare_integer(value, bound.limit);
            bound.side.accepts(ordering)
        })
    }

    /// Whether a converted double passes the field's `enum` and bounds.
    pub fn accepts_float(&self, value: f64) -> bool {
        let Some(checks) = &self.node.checks else {
            return true;
        };
        if let Some(allowed) = &checks.enum_values {
            let Some(number) = Number::from_f64(value) else {
                return false;
            };
            if !allowed.values.contains(&Value::Number(number)) {
                return false;
            }
        }
        if !value.is_nan() {
            return checks.float_range.contains(value);
        }
        checks.bounds.iter().all(|bound| {
            let ordering = compare_float(value, bound.limit);
            bound.side.accepts(ordering)
        })
    }

    /// Whether a boolean passes the field's `enum`.
    pub fn accepts_bool(&self, value: bool) -> bool {
        match self.node.checks.as_deref() {
            Some(checks) => checks
                .enum_values
                .as_ref()
                .is_none_or(|allowed| allowed.values.contains(&Value::Bool(value))),
            None => true,
        }
    }

    /// Whether an array of `count` converted items passes `minItems`/`maxItems`; `None`
    /// when the field has a check only the row walk implements (`uniqueItems`, `enum`).
    pub fn accepts_items(&self, count: usize) -> Option<bool> {
        let Some(checks) = &self.node.checks else {
            return Some(true);
        };
        if checks.unique_items || checks.enum_values.is_some() {
            return None;
        }
        Some(
            checks.min_items.is_none_or(|min| count >= min)
                && checks.max_items.is_none_or(|max| count <= max),
        )
    }

    /// Whether an object or map value passes without the row walk: `false` when the field
    /// has an `enum`, which compares whole values.
    pub fn accepts_object(&self) -> bool {
        self.node
            .checks
            .as_deref()
            .is_none_or(|checks| checks.enum_values.is_none())
    }
}

impl<'v> ObjectFields<'v> {
    pub(super) fn new(object: &'v ObjectNode) -> Self {
        Self { object }
    }

    /// Returns how many properties the object declares.
    pub fn len(&self) -> usize {
        self.object.properties.len()
    }

    /// Whether the object declares no property.
    pub fn is_empty(&self) -> bool {
        self.object.properties.is_empty()
    }

    /// Returns the name of the property at `position`.
    pub fn name(&self, position: usize) -> &'v str {
        &self.object.properties[position].name
    }

    /// Returns the field of the property at `position`.
    pub fn field(&self, position: usize) -> Field<'v> {
        Field::new(&self.object.properties[position].node)
    }

    /// Whether the property at `position` is required.
    pub fn is_required(&self, position: usize) -> bool {
        self.object.properties[position].required
    }

    /// Returns the positions of the required properties.
    pub fn required(&self) -> &'v [usize] {
        &self.object.required
    }

    /// Finds a property by name; `cursor` is the position after the previous match (rows
    /// usually list fields in schema order).
    #[inline]
    pub fn find(&self, name: &str, cursor: &mut usize) -> Option<usize> {
        self.object.find(name, cursor)
    }
}

/// Converts the text of a value for an integer field: an optionally signed run of ASCII
/// digits within the 64-bit range (no spaces, no fraction).
pub fn integer_from_str(text: &str) -> Option<i64> {
    parse_integer(text).ok()
}

/// Converts a double for an integer field: whole and within the 64-bit range.
pub fn integer_from_float(value: f64) -> Option<i64> {
    integer_of_float(value).ok()
}

/// Converts the text of a value for a number field (JSON number syntax, a leading `+` and
/// leading zeros allowed); `None` when it is not a number or too large for a double.
pub fn number_from_str(text: &str) -> Option<f64> {
    parse_number(text).ok()
}

/// Converts integer epoch milliseconds for a date field into days since 1970-01-01, when the
/// day renders with a four-digit year.
pub fn date_from_epoch_millis(millis: i64) -> Option<i32> {
    let days = millis.div_euclid(86_400_000);
    if formats::day_in_renderable_range(days) {
        i32::try_from(days).ok()
    } else {
        None
    }
}

/// Converts integer epoch milliseconds for a date-time field into microseconds, when the
/// instant renders with a four-digit year.
pub fn date_time_from_epoch_millis(millis: i64) -> Option<i64> {
    millis
        .checked_mul(1000)
        .filter(|&micros| formats::in_renderable_range(micros))
}

/// Renders days since the epoch as the `YYYY-MM-DD` text a converted date has.
pub fn render_date(days: i32) -> String {
    formats::render_date(i64::from(days))
}

/// Renders microseconds since the epoch as the canonical UTC text a converted date-time has.
pub fn render_date_time(micros: i64) -> String {
    String::from_utf8(formats::render_date_time(micros).to_vec())
        .expect("a rendered date-time is ASCII")
}
