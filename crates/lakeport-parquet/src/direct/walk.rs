//! The one pass over a parsed row: converts each value as the row validator would, checks it
//! with the compiled field's predicates, and appends it to its column.
//!
//! The walker only ever *accepts*: anything it is not sure of — a violation, a duplicate
//! key, an `enum` on an array, a row with too many fields — makes it give up on the row
//! ([`Bail`]). The caller then rolls the columns back to the row's start and runs the row
//! validator on a `Value`, which decides and reports. So a row is written by this walker
//! only when the validator would accept it, and as the validator would convert it.

use lakeport_domain::xdm::validate::plan::{self, Field, FieldKind, IntegerType, ObjectFields};
use lakeport_domain::xdm::validate::{Source, UnknownFields};

use super::columns::{Column, StructColumn, Utf8, WINDOW};
use super::tape::{Tape, Token};

mod fused;

/// The walker gave up on the row: the row validator must decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bail;

/// A scalar JSON value (never null), borrowed from a tape or from the row's text.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scalar<'a> {
    Bool(bool),
    PosInt(u64),
    NegInt(i64),
    Float(f64),
    Str(&'a str),
}

impl Scalar<'_> {
    /// Returns the serde_json number of a number.
    fn number(self) -> Option<serde_json::Number> {
        match self {
            Self::PosInt(value) => Some(value.into()),
            Self::NegInt(value) => Some(value.into()),
            Self::Float(value) => serde_json::Number::from_f64(value),
            Self::Bool(_) | Self::Str(_) => None,
        }
    }
}

/// The state of walking one row.
pub(crate) struct Walker {
    source: Source,
    unknown_fields: UnknownFields,
    max_fields: usize,
    fields: usize,
    /// Set while appending a value the validator has already accepted and converted (a
    /// default, or a row the validator decided): checks and field counts are skipped.
    trusted: bool,
    /// Scratch text for numbers converted to strings and canonical date-times.
    scratch: String,
    /// Set when the walk from a row's text gave up on a value or a rule the tape walk
    /// checks the same way, rather than on text it cannot read: the row then goes
    /// straight to the row validator.
    pub(crate) refused: bool,
}

impl Walker {
    pub(crate) fn new(source: Source, unknown_fields: UnknownFields, max_fields: usize) -> Self {
        Self {
            source,
            unknown_fields,
            max_fields,
            fields: 0,
            trusted: false,
            scratch: String::new(),
            refused: false,
        }
    }

    /// Appends the row at the start of `tape` to `root`, checking it; on [`Bail`] the
    /// columns hold a partial row the caller must truncate.
    pub(crate) fn row(
        &mut self,
        fields: ObjectFields<'_>,
        root: &mut StructColumn,
        tape: &Tape,
    ) -> Result<(), Bail> {
        self.fields = 0;
        self.trusted = false;
        self.object(fields, root, tape, 0)
    }

    /// Appends a row the validator accepted and converted.
    pub(crate) fn converted_row(
        &mut self,
        fields: ObjectFields<'_>,
        root: &mut StructColumn,
        tape: &Tape,
    ) -> Result<(), Bail> {
        self.fields = 0;
        self.trusted = true;
        let appended = self.object(fields, root, tape, 0);
        self.trusted = false;
        appended
    }

    #[inline]
    fn count_field(&mut self) -> Result<(), Bail> {
        if self.trusted {
            return Ok(());
        }
        self.fields += 1;
        if self.fields > self.max_fields {
            return Err(Bail);
        }
        Ok(())
    }

    /// [`count_field`](Self::count_field) for `count` fields at once: the walk of a row's
    /// text counts an object's or an array's entries as it closes it (the row is bounded in
    /// bytes, so the count is too until then).
    #[inline]
    fn count_fields(&mut self, count: usize) -> Result<(), Bail> {
        if self.trusted {
            return Ok(());
        }
        self.fields += count;
        if self.fields > self.max_fields {
            return Err(Bail);
        }
        Ok(())
    }

    /// Appends the object at `at` as one entry of `column` (every slot gets a value or a
    /// null).
    fn object(
        &mut self,
        fields: ObjectFields<'_>,
        column: &mut StructColumn,
        tape: &Tape,
        at: usize,
    ) -> Result<(), Bail> {
        let Token::Object { len, .. } = tape.token(at) else {
            return Err(Bail);
        };
        let row_len = column.len();
        let mut seen = Bits::default();
        let mut cursor = 0;
        let mut key_at = at + 1;
        for _ in 0..len {
            let value_at = key_at + 1;
            let next = tape.skip(value_at);
            self.count_field()?;
            let name = tape.key(key_at);
            match fields.find(name, &mut cursor) {
                None => {
                    if !self.trusted {
                        if self.unknown_fields == UnknownFields::Reject {
                            return Err(Bail);
                        }
                        self.fields += tape.nested_fields(value_at);
                        if self.fields > self.max_fields {
                            return Err(Bail);
                        }
                    }
                }
                Some(position) => {
                    // A repeated key: serde_json keeps the last value at the first
                    // position; let the validator's `Value` settle it.
                    if !seen.insert(position) {
                        return Err(Bail);
                    }
                    if matches!(tape.token(value_at), Token::Null) {
                        self.null_field(fields, position, column, &mut seen)?;
                    } else {
                        let field = fields.field(position);
                        self.value(field, &mut column.slots[position].column, tape, value_at)?;
                    }
                }
            }
            key_at = next;
        }
        self.close_object(fields, column, &mut seen, row_len)
    }

    /// Handles a null value of the known property at `position`: the default of a required
    /// property, or a null (which must not be given again).
    fn null_field(
        &mut self,
        fields: ObjectFields<'_>,
        position: usize,
        column: &mut StructColumn,
        seen: &mut Bits,
    ) -> Result<(), Bail> {
        if fields.is_required(position) {
            let slot = &mut column.slots[position];
            let Some(default) = &slot.default else {
                return Err(Bail);
            };
            self.default(fields.field(position), &mut slot.column, default)
        } else {
            seen.mark_null(position);
            Ok(())
        }
    }

    /// Ends an object whose entries were appended: the defaults of absent required
    /// properties, nulls for the other absent ones, and the object itself.
    fn close_object(
        &mut self,
        fields: ObjectFields<'_>,
        column: &mut StructColumn,
        seen: &mut Bits,
        row_len: usize,
    ) -> Result<(), Bail> {
        for &position in fields.required() {
            if seen.contains(position) || seen.is_null(position) {
                continue;
            }
            let slot = &mut column.slots[position];
            let Some(default) = &slot.default else {
                return Err(Bail);
            };
            let field = fields.field(position);
            self.default(field, &mut slot.column, default)?;
            seen.insert(position);
        }
        // Every property given a value (or a default) is marked present; the others get a
        // null.
        let len = column.slots.len();
        if len <= 64 {
            // Most objects: one word of bits, without the iterator over several.
            let mut missing = seen.absent_low(len);
            while missing != 0 {
                let position = missing.trailing_zeros() as usize;
                missing &= missing - 1;
                column.slots[position].column.push_null();
            }
        } else {
            for position in seen.absent(len) {
                column.slots[position].column.push_null();
            }
        }
        debug_assert!(
            column
                .slots
                .iter()
                .all(|slot| matches!(slot.column, Column::Void) || slot.column.len() == row_len + 1)
        );
        column.push_present();
        Ok(())
    }

    /// Appends a field's default, which the validator converted when it compiled the schema.
    fn default(
        &mut self,
        field: Field<'_>,
        column: &mut Column,
        default: &Tape,
    ) -> Result<(), Bail> {
        let trusted = std::mem::replace(&mut self.trusted, true);
        let appended = self.value(field, column, default, 0);
        self.trusted = trusted;
        appended
    }

    /// Converts, checks and appends the value at `at` (never null).
    fn value(
        &mut self,
        field: Field<'_>,
        column: &mut Column,
        tape: &Tape,
        at: usize,
    ) -> Result<(), Bail> {
        let token = tape.token(at);
        let check = !self.trusted && field.has_checks();
        match field.kind() {
            FieldKind::String
            | FieldKind::Integer(_)
            | FieldKind::Number
            | FieldKind::Boolean
            | FieldKind::Date
            | FieldKind::DateTime => {
                let scalar = match token {
                    Token::Bool(flag) => Scalar::Bool(flag),
                    Token::PosInt(value) => Scalar::PosInt(value),
                    Token::NegInt(value) => Scalar::NegInt(value),
                    Token::Float(value) => Scalar::Float(value),
                    Token::Str { start, end } => Scalar::Str(tape.str(start, end)),
                    Token::Null | Token::Object { .. } | Token::Array { .. } => {
                        return Err(Bail);
                    }
                };
                self.scalar(field, column, scalar)
            }
            FieldKind::Object(fields) => {
                if check && !field.accepts_object() {
                    return Err(Bail);
                }
                match column {
                    Column::Struct(structure) => self.object(fields, structure, tape, at),
                    _ => self.object(fields, &mut void_struct(fields), tape, at),
                }
            }
            FieldKind::Map(values) => {
                if check && !field.accepts_object() {
                    return Err(Bail);
                }
                self.map(values, column, tape, at)
            }
            FieldKind::Array(items) => self.array(field, items, column, tape, at),
        }
    }

    /// Converts, checks and appends a scalar value of a scalar field. Each kind has a
    /// function of its own: a call then saves only the registers its kind needs.
    #[inline]
    pub(super) fn scalar(
        &mut self,
        field: Field<'_>,
        column: &mut Column,
        scalar: Scalar<'_>,
    ) -> Result<(), Bail> {
        let check = !self.trusted && field.has_checks();
        match field.kind() {
            FieldKind::String => self.string_scalar(field, column, scalar, check),
            FieldKind::Integer(width) => integer_scalar(field, column, scalar, check, width),
            FieldKind::Number => number_scalar(field, column, scalar, check),
            FieldKind::Boolean => self.boolean_scalar(field, column, scalar, check),
            FieldKind::Date => date_scalar(field, column, scalar, check),
            FieldKind::DateTime => date_time_scalar(field, column, scalar, check),
            FieldKind::Object(_) | FieldKind::Map(_) | FieldKind::Array(_) => Err(Bail),
        }
    }

    #[inline(never)]
    fn string_scalar(
        &mut self,
        field: Field<'_>,
        column: &mut Column,
        scalar: Scalar<'_>,
        check: bool,
    ) -> Result<(), Bail> {
        let Scalar::Str(text) = scalar else {
            return self.number_as_string(field, column, scalar, check);
        };
        match column {
            Column::Utf8(utf8) => push_string(self.trusted, field, utf8, text, None),
            _ if check && !field.accepts_str(text) => Err(Bail),
            _ => Ok(()),
        }
    }

    #[inline(never)]
    fn boolean_scalar(
        &mut self,
        field: Field<'_>,
        column: &mut Column,
        scalar: Scalar<'_>,
        check: bool,
    ) -> Result<(), Bail> {
        let flag = match scalar {
            Scalar::Bool(flag) => flag,
            Scalar::Str(text) if self.source == Source::Csv => match text {
                "true" => true,
                "false" => false,
                _ => return Err(Bail),
            },
            _ => return Err(Bail),
        };
        if check && !field.accepts_bool(flag) {
            return Err(Bail);
        }
        if let Column::Boolean { values, valid } = column {
            values.append(flag);
            valid.append(true);
        }
        Ok(())
    }

    /// Appends a map: null entries are dropped, keys must be distinct.
    fn map(
        &mut self,
        values: Field<'_>,
        column: &mut Column,
        tape: &Tape,
        at: usize,
    ) -> Result<(), Bail> {
        let Token::Object { len, .. } = tape.token(at) else {
            return Err(Bail);
        };
        if !self.trusted && has_repeated_key(tape, at, len as usize) {
            return Err(Bail);
        }
        let mut key_at = at + 1;
        let mut entries = 0usize;
        for _ in 0..len {
            let value_at = key_at + 1;
            let next = tape.skip(value_at);
            self.count_field()?;
            if !matches!(tape.token(value_at), Token::Null) {
                match column {
                    Column::Map {
                        keys,
                        values: value_column,
                        ..
                    } => {
                        keys.push(tape.key(key_at)).map_err(|_| Bail)?;
                        self.value(values, value_column, tape, value_at)?;
                    }
                    _ => self.value(values, &mut Column::Void, tape, value_at)?,
                }
                entries += 1;
            }
            key_at = next;
        }
        close_entries(column, entries)
    }

    /// Appends an array: null items are kept.
    fn array(
        &mut self,
        field: Field<'_>,
        items: Field<'_>,
        column: &mut Column,
        tape: &Tape,
        at: usize,
    ) -> Result<(), Bail> {
        let Token::Array { len, .. } = tape.token(at) else {
            return Err(Bail);
        };
        if !self.trusted && field.has_checks() && field.accepts_items(len as usize) != Some(true) {
            return Err(Bail);
        }
        let mut item_at = at + 1;
        for _ in 0..len {
            self.count_field()?;
            let is_null = matches!(tape.token(item_at), Token::Null);
            match column {
                Column::List {
                    items: item_column, ..
                } => {
                    if is_null {
                        item_column.push_null();
                    } else {
                        self.value(items, item_column, tape, item_at)?;
                    }
                }
                _ if is_null => {}
                _ => self.value(items, &mut Column::Void, tape, item_at)?,
            }
            item_at = tape.skip(item_at);
        }
        close_entries(column, len as usize)
    }
}

/// Ends a present list or map of `entries` items or entries.
fn close_entries(column: &mut Column, entries: usize) -> Result<(), Bail> {
    if let Column::List { offsets, valid, .. } | Column::Map { offsets, valid, .. } = column {
        let last = *offsets.last().expect("offsets start with 0");
        let end = usize::try_from(last).unwrap_or(usize::MAX) + entries;
        offsets.push(i32::try_from(end).map_err(|_| Bail)?);
        valid.append(true);
    }
    Ok(())
}

/// A struct column that stores nothing, for checking an object that holds no data.
fn void_struct(fields: ObjectFields<'_>) -> StructColumn {
    StructColumn::void(fields)
}

/// Returns the integer of a number for epoch milliseconds; doubles are refused.
/// A number for a string field, rendered as serde_json renders it (`5`, `2.5`, `1e300`);
/// rare, so kept out of [`Walker::scalar`].
impl Walker {
    #[cold]
    #[inline(never)]
    fn number_as_string(
        &mut self,
        field: Field<'_>,
        column: &mut Column,
        scalar: Scalar<'_>,
        check: bool,
    ) -> Result<(), Bail> {
        let number = scalar.number().ok_or(Bail)?;
        let mut text = std::mem::take(&mut self.scratch);
        text.clear();
        text.push_str(&number.to_string());
        let result = match column {
            Column::Utf8(utf8) => push_string(self.trusted, field, utf8, &text, None),
            _ if check && !field.accepts_str(&text) => Err(Bail),
            _ => Ok(()),
        };
        self.scratch = text;
        result
    }
}

#[inline(never)]
fn integer_scalar(
    field: Field<'_>,
    column: &mut Column,
    scalar: Scalar<'_>,
    check: bool,
    width: IntegerType,
) -> Result<(), Bail> {
    let integer = match scalar {
        Scalar::PosInt(value) => i64::try_from(value).map_err(|_| Bail)?,
        Scalar::NegInt(value) => value,
        Scalar::Float(value) => plan::integer_from_float(value).ok_or(Bail)?,
        Scalar::Str(text) => plan::integer_from_str(text).ok_or(Bail)?,
        Scalar::Bool(_) => return Err(Bail),
    };
    if check && !field.accepts_integer(integer) {
        return Err(Bail);
    }
    push_integer(column, width, integer)
}

#[inline(never)]
fn number_scalar(
    field: Field<'_>,
    column: &mut Column,
    scalar: Scalar<'_>,
    check: bool,
) -> Result<(), Bail> {
    let float = match scalar {
        Scalar::PosInt(value) => value as f64,
        Scalar::NegInt(value) => value as f64,
        Scalar::Float(value) => value,
        Scalar::Str(text) => plan::number_from_str(text).ok_or(Bail)?,
        Scalar::Bool(_) => return Err(Bail),
    };
    if check && !field.accepts_float(float) {
        return Err(Bail);
    }
    if let Column::Float64(floats) = column {
        floats.push(float);
    }
    Ok(())
}

#[inline(never)]
fn date_scalar(
    field: Field<'_>,
    column: &mut Column,
    scalar: Scalar<'_>,
    check: bool,
) -> Result<(), Bail> {
    let days = match scalar {
        Scalar::Str(text) => {
            let days = lakeport_domain::xdm::validate::parse_date(text).ok_or(Bail)?;
            if check && !field.accepts_str(text) {
                return Err(Bail);
            }
            days
        }
        Scalar::PosInt(_) | Scalar::NegInt(_) => epoch_date(field, scalar, check)?,
        _ => return Err(Bail),
    };
    if let Column::Date32(dates) = column {
        dates.push(days);
    }
    Ok(())
}

#[inline(never)]
fn date_time_scalar(
    field: Field<'_>,
    column: &mut Column,
    scalar: Scalar<'_>,
    check: bool,
) -> Result<(), Bail> {
    let micros = match scalar {
        Scalar::Str(text) => lakeport_domain::xdm::validate::parse_date_time(text).ok_or(Bail)?,
        Scalar::PosInt(_) | Scalar::NegInt(_) => epoch_date_time(scalar)?,
        _ => return Err(Bail),
    };
    // Checks see the canonical text the validator converts the value to.
    if check && !field.accepts_str(&plan::render_date_time(micros)) {
        return Err(Bail);
    }
    if let Column::Timestamp(stamps, _) = column {
        stamps.push(micros);
    }
    Ok(())
}

/// Epoch milliseconds for a date field: the day, checked as its canonical text.
#[cold]
#[inline(never)]
fn epoch_date(field: Field<'_>, scalar: Scalar<'_>, check: bool) -> Result<i32, Bail> {
    let days = plan::date_from_epoch_millis(epoch_millis(scalar)?).ok_or(Bail)?;
    if check && !field.accepts_str(&plan::render_date(days)) {
        return Err(Bail);
    }
    Ok(days)
}

/// Epoch milliseconds for a date-time field, as microseconds.
#[cold]
#[inline(never)]
fn epoch_date_time(scalar: Scalar<'_>) -> Result<i64, Bail> {
    plan::date_time_from_epoch_millis(epoch_millis(scalar)?).ok_or(Bail)
}

fn epoch_millis(scalar: Scalar<'_>) -> Result<i64, Bail> {
    match scalar {
        Scalar::PosInt(value) => i64::try_from(value).map_err(|_| Bail),
        Scalar::NegInt(value) => Ok(value),
        _ => Err(Bail),
    }
}

fn push_integer(column: &mut Column, width: IntegerType, integer: i64) -> Result<(), Bail> {
    match (column, width) {
        (Column::Int8(values), IntegerType::Byte) => {
            values.push(i8::try_from(integer).map_err(|_| Bail)?);
        }
        (Column::Int16(values), IntegerType::Short) => {
            values.push(i16::try_from(integer).map_err(|_| Bail)?);
        }
        (Column::Int32(values), IntegerType::Int) => {
            values.push(i32::try_from(integer).map_err(|_| Bail)?);
        }
        (Column::Int64(values), IntegerType::Long) => values.push(integer),
        _ => {}
    }
    Ok(())
}

/// Whether the object at `at` repeats a key (its `len` entries).
fn has_repeated_key(tape: &Tape, at: usize, len: usize) -> bool {
    const INLINE: usize = 16;
    if len < 2 {
        return false;
    }
    if len <= INLINE {
        let mut keys = [""; INLINE];
        let mut key_at = at + 1;
        for index in 0..len {
            let key = tape.key(key_at);
            if keys[..index].contains(&key) {
                return true;
            }
            keys[index] = key;
            key_at = tape.skip(key_at + 1);
        }
        return false;
    }
    let mut distinct = std::collections::HashSet::with_capacity(len);
    let mut key_at = at + 1;
    for _ in 0..len {
        if !distinct.insert(tape.key(key_at)) {
            return true;
        }
        key_at = tape.skip(key_at + 1);
    }
    false
}

/// Which properties of an object were present (and which were null); inline for the
/// first 64.
#[derive(Default)]
struct Bits {
    /// Properties given a value or a null.
    taken: u64,
    /// Of those, the ones given a null.
    null: u64,
    high: Vec<(u64, u64)>,
}

impl Bits {
    fn word(&mut self, position: usize) -> (&mut u64, &mut u64, u64) {
        let bit = 1u64 << (position % 64);
        if position < 64 {
            return (&mut self.taken, &mut self.null, bit);
        }
        let index = position / 64 - 1;
        if self.high.len() <= index {
            self.high.resize(index + 1, (0, 0));
        }
        let (taken, null) = &mut self.high[index];
        (taken, null, bit)
    }

    fn peek(&self, position: usize) -> (u64, u64, u64) {
        let bit = 1u64 << (position % 64);
        if position < 64 {
            return (self.taken, self.null, bit);
        }
        let (taken, null) = self
            .high
            .get(position / 64 - 1)
            .copied()
            .unwrap_or_default();
        (taken, null, bit)
    }

    /// Marks a property present; `false` when it was already present or null.
    #[inline]
    fn insert(&mut self, position: usize) -> bool {
        let (taken, _, bit) = self.word(position);
        if *taken & bit != 0 {
            return false;
        }
        *taken |= bit;
        true
    }

    /// Makes a property [`insert`](Self::insert)ed a null one instead of present.
    fn mark_null(&mut self, position: usize) {
        let (_, null, bit) = self.word(position);
        *null |= bit;
    }

    /// The positions below `len` (at most 64) not marked present, as bits.
    #[inline]
    fn absent_low(&self, len: usize) -> u64 {
        let valid = if len >= 64 {
            u64::MAX
        } else {
            (1u64 << len) - 1
        };
        !(self.taken & !self.null) & valid
    }

    /// Returns the positions below `len` not marked present, in order.
    fn absent(&self, len: usize) -> impl Iterator<Item = usize> + '_ {
        (0..len.div_ceil(64)).flat_map(move |word| {
            let present = match word {
                0 => self.taken & !self.null,
                _ => self
                    .high
                    .get(word - 1)
                    .map_or(0, |&(taken, null)| taken & !null),
            };
            let valid = match len - word * 64 {
                left if left >= 64 => u64::MAX,
                left => (1u64 << left) - 1,
            };
            let mut missing = !present & valid;
            std::iter::from_fn(move || {
                if missing == 0 {
                    return None;
                }
                let bit = missing.trailing_zeros() as usize;
                missing &= missing - 1;
                Some(word * 64 + bit)
            })
        })
    }

    fn contains(&self, position: usize) -> bool {
        let (taken, null, bit) = self.peek(position);
        taken & !null & bit != 0
    }

    fn is_null(&self, position: usize) -> bool {
        let (_, null, bit) = self.peek(position);
        null & bit != 0
    }
}

/// Checks (unless `trusted`) and appends a string of a string field: the common case of
/// [`Walker::scalar`], which the fused walk also calls directly. `window`: the row's bytes
/// from `text` on, when the row has enough (see [`Utf8::push_windowed`]).
#[inline]
pub(super) fn push_string(
    trusted: bool,
    field: Field<'_>,
    utf8: &mut Utf8,
    text: &str,
    window: Option<&[u8; WINDOW]>,
) -> Result<(), Bail> {
    if !trusted && field.has_checks() && !field.accepts_str(text) {
        return Err(Bail);
    }
    utf8.push_windowed(text, window).map_err(|_| Bail)
}

#[cfg(test)]
mod tests {
    use super::Bits;

    #[test]
    fn absent_positions_are_those_not_marked_present_in_every_word() {
        let mut bits = Bits::default();
        for position in [0, 3, 63, 64, 65, 130, 199] {
            assert!(bits.insert(position));
        }
        assert!(bits.insert(7));
        bits.mark_null(7);
        assert!(!bits.insert(7), "a null property is taken");
        assert!(!bits.contains(7) && bits.is_null(7));
        assert!(bits.contains(3) && !bits.is_null(3));
        let absent: Vec<usize> = bits.absent(200).collect();
        let expected: Vec<usize> = (0..200)
            .filter(|position| ![0, 3, 63, 64, 65, 130, 199].contains(position))
            .collect();
        assert_eq!(absent, expected);
        assert_eq!(bits.absent(64).count(), 61);
        // One word of bits says the same for up to 64 positions.
        for len in 0..=64 {
            let low = bits.absent_low(len);
            let from_bits: Vec<usize> = (0..64).filter(|bit| low & (1 << bit) != 0).collect();
            assert_eq!(from_bits, bits.absent(len).collect::<Vec<_>>(), "{len}");
        }
        assert_eq!(Bits::default().absent(3).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(Bits::default().absent(0).count(), 0);
    }
}
