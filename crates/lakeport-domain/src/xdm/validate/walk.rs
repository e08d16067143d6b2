//! The single pass over a row: converts each value in place to its field's type (spec §7.2
//! step 4), checks the constraints (step 5) and the required fields (step 6), and collects
//! every violation.
//!
//! Violations are created with a pointer relative to the value being visited; each parent
//! prefixes its own segment on the way back up, so a clean row never builds a pointer.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde_json::{Map, Number, Value};

use super::formats;
use super::node::{BoundSide, Checks, Format, Kind, Limit, Node, ObjectNode, escape_pointer};
use super::{Source, UnknownFields, Violation, ViolationCode};

/// The state of validating one row.
pub(super) struct Walk {
    source: Source,
    unknown_fields: UnknownFields,
    max_fields: usize,
    fields: usize,
    violations: Vec<Violation>,
}

impl Walk {
    pub fn new(source: Source, unknown_fields: UnknownFields, max_fields: usize) -> Self {
        Self {
            source,
            unknown_fields,
            max_fields,
            fields: 0,
            violations: Vec::new(),
        }
    }

    /// Returns how many fields (properties, map entries, array items) the row had, counted
    /// until the limit was passed.
    pub fn fields_seen(&self) -> usize {
        self.fields
    }

    pub fn into_violations(self) -> Vec<Violation> {
        self.violations
    }

    fn too_many_fields(&self) -> bool {
        self.fields > self.max_fields
    }

    /// Converts `value` (never null) to the node's type and checks its constraints.
    pub fn visit(&mut self, node: &Node, value: &mut Value) {
        // `uniqueItems` compares converted items only, so it is skipped when one failed.
        let mut items_converted = true;
        let converted = match &node.kind {
            Kind::String => self.convert_string(node, value),
            Kind::Integer(_) => self.convert_integer(node, value),
            Kind::Number => self.convert_number(node, value),
            Kind::Boolean => self.convert_boolean(node, value),
            Kind::Date => self.convert_date(node, value),
            Kind::DateTime => self.convert_date_time(node, value),
            Kind::Object(object) => match value {
                Value::Object(fields) => {
                    self.visit_object(node, object, fields);
                    true
                }
                _ => self.refuse(node, value, ""),
            },
            Kind::Map(values) => match value {
                Value::Object(entries) => {
                    self.visit_map(values, entries);
                    true
                }
                _ => self.refuse(node, value, ""),
            },
            Kind::Array(items) => match value {
                Value::Array(elements) => {
                    items_converted = self.visit_array(items, elements);
                    true
                }
                _ => self.refuse(node, value, ""),
            },
        };
        if converted && let Some(checks) = &node.checks {
            self.check(node, checks, value, items_converted);
        }
    }

    /// Visits the properties of an object in row order, then its missing required fields.
    pub fn visit_object(
        &mut self,
        node: &Node,
        object: &ObjectNode,
        fields: &mut Map<String, Value>,
    ) {
        let mut seen = Seen::default();
        let mut cursor = 0;
        fields.retain(|name, value| {
            self.fields += 1;
            if self.too_many_fields() {
                return true;
            }
            let Some(position) = object.find(name, &mut cursor) else {
                self.fields += count_nested(value);
                if self.unknown_fields == UnknownFields::Reject {
                    self.violations.push(Violation {
                        code: ViolationCode::Conversion,
                        keyword: "additionalProperties",
                        pointer: pointer_segment(name),
                        schema_location: node.location.to_string(),
                        message: format!("field {name:?} is not in the schema"),
                    });
                }
                return false;
            };
            seen.insert(position);
            let property = &object.properties[position];
            if value.is_null() {
                if !property.required {
                    return false;
                }
                if let Some(default) = &property.node.default {
                    *value = default.clone();
                    return true;
                }
                self.violations
                    .push(required_violation(&property.node, name, "is null"));
                return false;
            }
            let first_new = self.violations.len();
            self.visit(&property.node, value);
            prefix(&mut self.violations[first_new..], || pointer_segment(name));
            true
        });
        for &position in &object.required {
            if seen.contains(position) {
                continue;
            }
            let property = &object.properties[position];
            match &property.node.default {
                Some(default) => {
                    fields.insert(property.name.to_string(), default.clone());
                }
                None => self.violations.push(required_violation(
                    &property.node,
                    &property.name,
                    "is missing",
                )),
            }
        }
    }

    /// Converts every entry of a map to the declared value type; null entries are dropped.
    fn visit_map(&mut self, values: &Node, entries: &mut Map<String, Value>) {
        entries.retain(|key, value| {
            self.fields += 1;
            if self.too_many_fields() {
                return true;
            }
            if value.is_null() {
                return false;
            }
            let first_new = self.violations.len();
            self.visit(values, value);
            prefix(&mut self.violations[first_new..], || pointer_segment(key));
            true
        });
    }

    /// Converts every item of an array; null items are kept as they are. Returns whether
    /// every item converted.
    fn visit_array(&mut self, items: &Node, elements: &mut [Value]) -> bool {
        let first_new = self.violations.len();
        for (index, element) in elements.iter_mut().enumerate() {
            self.fields += 1;
            if self.too_many_fields() {
                break;
            }
            if element.is_null() {
                continue;
            }
            let item_first_new = self.violations.len();
            self.visit(items, element);
            prefix(&mut self.violations[item_first_new..], || {
                format!("/{index}")
            });
        }
        self.violations.len() == first_new
    }

    fn convert_string(&mut self, node: &Node, value: &mut Value) -> bool {
        match value {
            Value::String(_) => true,
            // Integers and doubles render as JSON does (`5`, `2.5`, `1e300`).
            Value::Number(number) => {
                *value = Value::String(number.to_string());
                true
            }
            _ => self.refuse(node, value, ""),
        }
    }

    fn convert_integer(&mut self, node: &Node, value: &mut Value) -> bool {
        let integer = match value {
            Value::Number(number) => {
                if number.is_i64() {
                    return true;
                }
                match number.as_f64() {
                    Some(float) if number.is_f64() => integer_of_float(float),
                    _ => Err(IntegerError::Overflow),
                }
            }
            Value::String(text) => parse_integer(text),
            _ => return self.refuse(node, value, ""),
        };
        match integer {
            Ok(integer) => {
                *value = Value::Number(integer.into());
                true
            }
            Err(IntegerError::NotAnInteger) if value.is_string() => {
                self.refuse(node, value, ": not an integer")
            }
            Err(IntegerError::NotAnInteger) => self.refuse(node, value, ": not a whole number"),
            Err(IntegerError::Overflow) => {
                self.refuse(node, value, ": outside the 64-bit integer range")
            }
        }
    }

    fn convert_number(&mut self, node: &Node, value: &mut Value) -> bool {
        let float = match value {
            Value::Number(number) => {
                if number.is_f64() {
                    return true;
                }
                number.as_f64()
            }
            Value::String(text) => match parse_number(text) {
                Ok(float) => Some(float),
                Err(NumberError::NotANumber) => return self.refuse(node, value, ": not a number"),
                Err(NumberError::Overflow) => None,
            },
            _ => return self.refuse(node, value, ""),
        };
        match float.and_then(Number::from_f64) {
            Some(number) => {
                *value = Value::Number(number);
                true
            }
            None => self.refuse(node, value, ": outside the range of a double"),
        }
    }

    fn convert_boolean(&mut self, node: &Node, value: &mut Value) -> bool {
        match value {
            Value::Bool(_) => true,
            Value::String(text) if self.source == Source::Csv => match text.as_str() {
                "true" => {
                    *value = Value::Bool(true);
                    true
                }
                "false" => {
                    *value = Value::Bool(false);
                    true
                }
                _ => self.refuse(node, value, ": expected true or false"),
            },
            Value::String(_) => self.refuse(node, value, ": text converts to boolean only in CSV"),
            _ => self.refuse(node, value, ""),
        }
    }

    fn convert_date(&mut self, node: &Node, value: &mut Value) -> bool {
        match value {
            Value::String(text) => {
                if formats::parse_date(text).is_some() {
                    true
                } else {
                    self.push_format(node, text, Format::Date);
                    false
                }
            }
            Value::Number(number) if number.is_f64() => self.refuse(
                node,
                value,
                ": only integer epoch milliseconds convert to a date",
            ),
            Value::Number(number) => match number.as_i64() {
                Some(millis) => {
                    let days = millis.div_euclid(86_400_000);
                    if formats::day_in_renderable_range(days) {
                        *value = Value::String(formats::render_date(days));
                        true
                    } else {
                        self.refuse(
                            node,
                            value,
                            ": epoch milliseconds outside the years 0000-9999",
                        )
                    }
                }
                None => self.refuse(
                    node,
                    value,
                    ": epoch milliseconds outside the years 0000-9999",
                ),
            },
            _ => self.refuse(node, value, ""),
        }
    }

    fn convert_date_time(&mut self, node: &Node, value: &mut Value) -> bool {
        let micros = match value {
            Value::String(text) => match formats::parse_date_time(text) {
                Some(micros) => micros,
                None => {
                    self.push_format(node, text, Format::DateTime);
                    return false;
                }
            },
            Value::Number(number) if number.is_f64() => {
                return self.refuse(
                    node,
                    value,
                    ": only integer epoch milliseconds convert to a date-time",
                );
            }
            Value::Number(number) => match number.as_i64() {
                Some(millis)
                    if millis
                        .checked_mul(1000)
                        .is_some_and(formats::in_renderable_range) =>
                {
                    millis * 1000
                }
                _ => {
                    return self.refuse(
                        node,
                        value,
                        ": epoch milliseconds outside the years 0000-9999",
                    );
                }
            },
            _ => return self.refuse(node, value, ""),
        };
        let canonical = formats::render_date_time(micros);
        let canonical = std::str::from_utf8(&canonical).expect("a rendered date-time is ASCII");
        match value {
            Value::String(text) if text == canonical => {}
            Value::String(text) => {
                text.clear();
                text.push_str(canonical);
            }
            _ => *value = Value::String(canonical.to_owned()),
        }
        true
    }

    /// Records a refused conversion; always returns false (not converted).
    #[cold]
    fn refuse(&mut self, node: &Node, value: &Value, reason: &str) -> bool {
        self.violations.push(Violation {
            code: ViolationCode::Conversion,
            keyword: "type",
            pointer: String::new(),
            schema_location: node.location.to_string(),
            message: format!(
                "cannot convert {} to {}{reason}",
                describe(value),
                node.kind.name()
            ),
        });
        false
    }

    #[cold]
    fn push_format(&mut self, node: &Node, text: &str, format: Format) {
        let expected = match format {
            Format::Date => "a date (expected YYYY-MM-DD)",
            Format::DateTime => {
                "a date-time (expected yyyy-MM-ddTHH:mm:ss, an optional fraction of 1-9 digits and an offset, Z or ±HH:mm)"
            }
            Format::Email => "an email address",
            Format::Uri => "an absolute URI",
            Format::Uuid => "a UUID (expected 8-4-4-4-12 hexadecimal digits)",
        };
        let message = format!("{} is not {expected}", quote(text));
        self.push(node, ViolationCode::Format, "format", message);
    }

    #[cold]
    fn push(&mut self, node: &Node, code: ViolationCode, keyword: &'static str, message: String) {
        self.violations.push(Violation {
            code,
            keyword,
            pointer: String::new(),
            schema_location: node.location.to_string(),
            message,
        });
    }

    /// Checks the constraint keywords on a converted value.
    fn check(&mut self, node: &Node, checks: &Checks, value: &Value, items_converted: bool) {
        if let Some(allowed) = &checks.enum_values
            && !allowed.values.contains(value)
        {
            let message = format!("{} is not one of {}", preview(value), allowed.display);
            self.push(node, ViolationCode::Enum, "enum", message);
        }
        match value {
            Value::String(text) => self.check_string(node, checks, text),
            Value::Number(number) => self.check_bounds(node, checks, number),
            Value::Array(elements) => self.check_items(node, checks, elements, items_converted),
            _ => {}
        }
    }

    fn check_string(&mut self, node: &Node, checks: &Checks, text: &str) {
        if let Some(pattern) = &checks.pattern
            && !pattern.is_match(text)
        {
            let message = format!(
                "{} does not match the pattern {}",
                quote(text),
                pattern.source
            );
            self.push(node, ViolationCode::PatternOrLength, "pattern", message);
        }
        // Lengths count code points; a string has at most as many code points as bytes.
        if let Some(min_length) = checks.min_length
            && formats::shorter_than(text, min_length)
        {
            let length = text.chars().count();
            let message = format!(
                "{} has {length} {}, fewer than the minimum length {min_length}",
                quote(text),
                plural(length, "character")
            );
            self.push(node, ViolationCode::PatternOrLength, "minLength", message);
        }
        if let Some(max_length) = checks.max_length
            && formats::longer_than(text, max_length)
        {
            let length = text.chars().count();
            let message = format!(
                "{} has {length} {}, more than the maximum length {max_length}",
                quote(text),
                plural(length, "character")
            );
            self.push(node, ViolationCode::PatternOrLength, "maxLength", message);
        }
        if let Some(format) = checks.format {
            let valid = match format {
                Format::Date => formats::parse_date(text).is_some(),
                Format::DateTime => formats::parse_date_time(text).is_some(),
                Format::Email => formats::is_email(text),
                Format::Uri => formats::is_absolute_uri(text),
                Format::Uuid => formats::is_uuid(text),
            };
            if !valid {
                self.push_format(node, text, format);
            }
        }
    }

    fn check_bounds(&mut self, node: &Node, checks: &Checks, number: &Number) {
        for bound in &checks.bounds {
            let ordering = match (number.as_i64(), number.as_f64()) {
                (Some(integer), _) => compare_integer(integer, bound.limit),
                (None, Some(float)) => compare_float(float, bound.limit),
                (None, None) => continue,
            };
            let relation = match bound.side {
                BoundSide::Minimum => "less than the minimum",
                BoundSide::Maximum => "greater than the maximum",
                BoundSide::ExclusiveMinimum => "not greater than the exclusive minimum",
                BoundSide::ExclusiveMaximum => "not less than the exclusive maximum",
            };
            if !bound.side.accepts(ordering) {
                let implied = match bound.implied_by {
                    Some(width) => format!(" of {}", width.name()),
                    None => String::new(),
                };
                let message = format!("{number} is {relation} {}{implied}", bound.limit);
                self.push(node, ViolationCode::Range, bound.side.keyword(), message);
            }
        }
    }

    fn check_items(
        &mut self,
        node: &Node,
        checks: &Checks,
        elements: &[Value],
        items_converted: bool,
    ) {
        if let Some(min_items) = checks.min_items
            && elements.len() < min_items
        {
            let count = elements.len();
            let message = format!(
                "the array has {count} {}, fewer than the minimum {min_items}",
                plural(count, "item")
            );
            self.push(node, ViolationCode::PatternOrLength, "minItems", message);
        }
        if let Some(max_items) = checks.max_items
            && elements.len() > max_items
        {
            let count = elements.len();
            let message = format!(
                "the array has {count} {}, more than the maximum {max_items}",
                plural(count, "item")
            );
            self.push(node, ViolationCode::PatternOrLength, "maxItems", message);
        }
        if checks.unique_items
            && items_converted
            && let Some((first, second)) = first_duplicate(elements)
        {
            let message = format!("items {first} and {second} are equal, but items must be unique");
            self.push(node, ViolationCode::PatternOrLength, "uniqueItems", message);
        }
    }
}

/// Which properties of an object were present; inline for the first 64.
#[derive(Default)]
struct Seen {
    low: u64,
    high: Vec<u64>,
}

impl Seen {
    #[inline]
    fn insert(&mut self, position: usize) {
        if position < 64 {
            self.low |= 1 << position;
        } else {
            let word = position / 64 - 1;
            if self.high.len() <= word {
                self.high.resize(word + 1, 0);
            }
            self.high[word] |= 1 << (position % 64);
        }
    }

    #[inline]
    fn contains(&self, position: usize) -> bool {
        if position < 64 {
            self.low & (1 << position) != 0
        } else {
            self.high
                .get(position / 64 - 1)
                .is_some_and(|word| word & (1 << (position % 64)) != 0)
        }
    }
}

#[cold]
fn required_violation(node: &Node, name: &str, what: &str) -> Violation {
    Violation {
        code: ViolationCode::Required,
        keyword: "required",
        pointer: pointer_segment(name),
        schema_location: node.location.to_string(),
        message: format!("required field {name:?} {what}"),
    }
}

/// Prefixes the pointers of the violations a child produced with the child's segment.
#[inline]
fn prefix(violations: &mut [Violation], segment: impl Fn() -> String) {
    if violations.is_empty() {
        return;
    }
    let segment = segment();
    for violation in violations {
        violation.pointer.insert_str(0, &segment);
    }
}

fn pointer_segment(name: &str) -> String {
    format!("/{}", escape_pointer(name))
}

/// Counts the fields inside a value that is dropped without being visited.
fn count_nested(value: &Value) -> usize {
    if !matches!(value, Value::Object(_) | Value::Array(_)) {
        return 0;
    }
    let mut count = 0;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(fields) => {
                count += fields.len();
                pending.extend(fields.values());
            }
            Value::Array(elements) => {
                count += elements.len();
                pending.extend(elements);
            }
            _ => {}
        }
    }
    count
}

pub(super) enum IntegerError {
    NotAnInteger,
    Overflow,
}

/// Parses an optionally signed run of ASCII digits.
pub(super) fn parse_integer(text: &str) -> Result<i64, IntegerError> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (value, count) = leading_digits(digits.as_bytes());
    if count == 0 || count != digits.len() {
        return Err(IntegerError::NotAnInteger);
    }
    // Up to 18 digits the value is exact and within i64 either way.
    if count <= 18 {
        let value = value as i64;
        return Ok(if text.starts_with('-') { -value } else { value });
    }
    let unsigned = text.strip_prefix('+').unwrap_or(text);
    unsigned.parse::<i64>().map_err(|_| IntegerError::Overflow)
}

/// Converts an integral double in the i64 range.
pub(super) fn integer_of_float(float: f64) -> Result<i64, IntegerError> {
    if float.fract() != 0.0 {
        return Err(IntegerError::NotAnInteger);
    }
    // 2^63 is exactly representable; every integral double below it fits in i64.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&float) {
        Ok(float as i64)
    } else {
        Err(IntegerError::Overflow)
    }
}

pub(super) enum NumberError {
    NotANumber,
    Overflow,
}

/// Parses JSON number syntax, also allowing a leading `+` and leading zeros (as integers do);
/// a result too large for a double is an overflow.
pub(super) fn parse_number(text: &str) -> Result<f64, NumberError> {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    let bytes = unsigned.as_bytes();
    let (integer, integer_digits) = leading_digits(bytes);
    if integer_digits == 0 {
        return Err(NumberError::NotANumber);
    }
    let mut rest = &bytes[integer_digits..];
    let mut significand = (integer, integer_digits);
    let mut fraction_digits = 0;
    if let [b'.', after @ ..] = rest {
        let (fraction, count) = leading_digits(after);
        if count == 0 {
            return Err(NumberError::NotANumber);
        }
        fraction_digits = count;
        // Only used below while the digits number at most 15, when this cannot overflow.
        let scale = EXACT_POWERS.get(count).map_or(0, |&power| power as u64);
        significand = (
            significand.0.wrapping_mul(scale).wrapping_add(fraction),
            significand.1 + count,
        );
        rest = &after[count..];
    }
    // A decimal of at most 15 digits (below 2^53) and no exponent: both operands of the
    // division are doubles exactly, and its one correctly rounded result is the correctly
    // rounded value of the decimal, the double `str::parse` gives (by the same path).
    if rest.is_empty() && significand.1 <= 15 {
        let magnitude = significand.0 as f64 / EXACT_POWERS[fraction_digits];
        return Ok(if text.starts_with('-') {
            -magnitude
        } else {
            magnitude
        });
    }
    if let [b'e' | b'E', after @ ..] = rest {
        let after = match after {
            [b'+' | b'-', digits @ ..] => digits,
            digits => digits,
        };
        let exponent_digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if exponent_digits == 0 {
            return Err(NumberError::NotANumber);
        }
        rest = &after[exponent_digits..];
    }
    if !rest.is_empty() {
        return Err(NumberError::NotANumber);
    }
    match text.strip_prefix('+').unwrap_or(text).parse::<f64>() {
        Ok(float) if float.is_finite() => Ok(float),
        Ok(_) => Err(NumberError::Overflow),
        Err(_) => Err(NumberError::NotANumber),
    }
}

/// The powers of ten up to 10^15, which doubles hold exactly.
const EXACT_POWERS: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The leading ASCII digits of `bytes`: their value (wrapped past 20 digits) and count.
#[inline]
fn leading_digits(bytes: &[u8]) -> (u64, usize) {
    let mut value: u64 = 0;
    let mut count = 0;
    while let Some(&byte) = bytes.get(count)
        && byte.is_ascii_digit()
    {
        value = value.wrapping_mul(10).wrapping_add(u64::from(byte - b'0'));
        count += 1;
    }
    (value, count)
}

/// Compares an integer with a bound exactly.
pub(super) fn compare_integer(value: i64, limit: Limit) -> Ordering {
    match limit {
        Limit::Integer(limit) => value.cmp(&limit),
        Limit::Float(limit) => {
            if limit >= 9_223_372_036_854_775_808.0 {
                return Ordering::Less;
            }
            if limit < -9_223_372_036_854_775_808.0 {
                return Ordering::Greater;
            }
            let floor = limit.floor();
            match value.cmp(&(floor as i64)) {
                Ordering::Equal if limit > floor => Ordering::Less,
                ordering => ordering,
            }
        }
    }
}

pub(super) fn compare_float(value: f64, limit: Limit) -> Ordering {
    let limit = match limit {
        Limit::Integer(limit) => limit as f64,
        Limit::Float(limit) => limit,
    };
    value.partial_cmp(&limit).unwrap_or(Ordering::Equal)
}

/// Finds the first pair of equal items (by the second item's position).
fn first_duplicate(elements: &[Value]) -> Option<(usize, usize)> {
    if elements.len() <= 32 {
        return (1..elements.len()).find_map(|second| {
            (0..second)
                .find(|&first| elements[first] == elements[second])
                .map(|first| (first, second))
        });
    }
    let mut by_hash: std::collections::HashMap<u64, Vec<usize>> = std::collections::HashMap::new();
    for (second, element) in elements.iter().enumerate() {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        hash_value(element, &mut hasher);
        let bucket = by_hash.entry(hasher.finish()).or_default();
        if let Some(&first) = bucket.iter().find(|&&first| elements[first] == *element) {
            return Some((first, second));
        }
        bucket.push(second);
    }
    None
}

/// Hashes a value consistently with `Value`'s equality (object key order does not matter).
fn hash_value(value: &Value, hasher: &mut impl Hasher) {
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(flag) => (1u8, flag).hash(hasher),
        Value::Number(number) => {
            2u8.hash(hasher);
            match (number.as_i64(), number.as_u64(), number.as_f64()) {
                (Some(integer), _, _) => (0u8, integer).hash(hasher),
                (None, Some(unsigned), _) => (1u8, unsigned).hash(hasher),
                // -0.0 == 0.0, so both hash alike.
                (None, None, Some(float)) => {
                    (2u8, if float == 0.0 { 0 } else { float.to_bits() }).hash(hasher)
                }
                (None, None, None) => {}
            }
        }
        Value::String(text) => (3u8, text).hash(hasher),
        Value::Array(elements) => {
            (4u8, elements.len()).hash(hasher);
            for element in elements {
                hash_value(element, hasher);
            }
        }
        Value::Object(fields) => {
            (5u8, fields.len()).hash(hasher);
            let mut combined = 0u64;
            for (key, field) in fields {
                let mut entry = std::collections::hash_map::DefaultHasher::new();
                key.hash(&mut entry);
                hash_value(field, &mut entry);
                combined = combined.wrapping_add(entry.finish());
            }
            combined.hash(hasher);
        }
    }
}

/// Describes a value with its JSON type for messages: `string "abc"`, `integer 5`,
/// `an object`.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(flag) => format!("boolean {flag}"),
        Value::Number(number) if number.is_f64() => format!("double {number}"),
        Value::Number(number) => format!("integer {number}"),
        Value::String(text) => format!("string {}", quote(text)),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

fn plural(count: usize, noun: &str) -> String {
    if count == 1 {
        noun.to_owned()
    } else {
        format!("{noun}s")
    }
}

/// Renders a value briefly for messages.
fn preview(value: &Value) -> String {
    match value {
        Value::String(text) => quote(text),
        Value::Array(_) => "the array".to_owned(),
        Value::Object(_) => "the object".to_owned(),
        other => other.to_string(),
    }
}

/// Quotes a string as JSON, shortened to 64 characters.
fn quote(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        None => Value::from(text).to_string(),
        Some((cut, _)) => format!("{}…", Value::from(&text[..cut])),
    }
}
