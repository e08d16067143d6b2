//! The walk of a row read straight from its text: no tape, strings borrowed from the row.
//!
//! It reads plain JSON only, as the scanner of `scan.rs` does, and accepts a row only when
//! the tape walk would accept it with the same values: anything else — an escape in a
//! string, a syntax error, a repeated key, a violation — makes it give up ([`Bail`]), and
//! the caller rolls the columns back and walks the row's tape instead.

use lakeport_domain::xdm::validate::UnknownFields;
use lakeport_domain::xdm::validate::plan::{Field, FieldKind, ObjectFields};

use super::super::columns::{Column, NO_KEY, StructColumn};
use super::super::scan::{MAX_DEPTH, Scanner};
use super::super::tape::{Tape, Token};
use super::{Bail, Bits, Scalar, Walker, close_entries, push_string, void_struct};

/// The most entries of a map whose keys are compared inline; a larger map is left to the
/// tape walk.
const MAP_KEYS: usize = 16;

impl Walker {
    /// Appends the row `text` to `root`, reading it once. `skipped` is scratch space for
    /// the values of unknown properties, which are counted, not stored. On [`Bail`] the
    /// columns hold a partial row the caller must truncate.
    pub(crate) fn text_row(
        &mut self,
        fields: ObjectFields<'_>,
        root: &mut StructColumn,
        text: &str,
        skipped: &mut Tape,
    ) -> Result<(), Bail> {
        self.fields = 0;
        self.trusted = false;
        self.refused = false;
        let mut input = Scanner::new(text);
        input.skip_whitespace();
        self.read_object(fields, root, &mut input, skipped, 1)?;
        input.finish().ok_or(Bail)
    }

    /// Gives up on the row for a value the tape walk would give up on too.
    fn refuse<T>(&mut self) -> Result<T, Bail> {
        self.refused = true;
        Err(Bail)
    }

    /// Runs a step shared with the tape walk, which gives up where it does.
    #[inline]
    fn refusing<T>(&mut self, step: impl FnOnce(&mut Self) -> Result<T, Bail>) -> Result<T, Bail> {
        let result = step(self);
        if result.is_err() {
            self.refused = true;
        }
        result
    }

    /// Reads the object at the input's position as one entry of `column`.
    fn read_object(
        &mut self,
        fields: ObjectFields<'_>,
        column: &mut StructColumn,
        input: &mut Scanner<'_>,
        skipped: &mut Tape,
        depth: usize,
    ) -> Result<(), Bail> {
        open(input, b'{', depth)?;
        let row_len = column.len();
        let mut seen = Bits::default();
        let mut cursor = 0;
        // The property of the previous key, as an index of `next_keys`.
        let mut previous = column.slots.len();
        let mut count = 0;
        if !close(input, b'}') {
            loop {
                input.expect(b'"').ok_or(Bail)?;
                let predicted = column.next_keys[previous] as usize;
                let found = if predicted != NO_KEY as usize
                    && match column.keys.words(predicted) {
                        Some(words) => input.key_is_words(words),
                        None => input.key_is(column.keys.quoted(predicted)),
                    } {
                    cursor = predicted + 1;
                    Some(predicted)
                } else {
                    let name = input.string().ok_or(Bail)?;
                    let found = fields.find(name, &mut cursor);
                    if let Some(position) = found {
                        column.next_keys[previous] = offset(position);
                    }
                    found
                };
                after_key(input)?;
                count += 1;
                match found {
                    None => {
                        if self.unknown_fields == UnknownFields::Reject {
                            return self.refuse();
                        }
                        skipped.clear();
                        input.value(skipped, depth).ok_or(Bail)?;
                        self.fields += skipped.nested_fields(0);
                        if self.fields > self.max_fields {
                            return self.refuse();
                        }
                    }
                    Some(position) => {
                        previous = position;
                        if !seen.insert(position) {
                            return self.refuse();
                        }
                        if null(input)? {
                            self.refusing(|walker| {
                                walker.null_field(fields, position, column, &mut seen)
                            })?;
                        } else {
                            let field = fields.field(position);
                            let slot = &mut column.slots[position].column;
                            if field.is_scalar() {
                                // Most properties: read here, without a call per value, and
                                // a string for a string column appended here too.
                                match (scalar(input)?, slot) {
                                    (Scalar::Str(text), Column::Utf8(utf8))
                                        if field.is_string() =>
                                    {
                                        let trusted = self.trusted;
                                        let window = input.window_of_last(text.len());
                                        self.refusing(|_| {
                                            push_string(trusted, field, utf8, text, window)
                                        })?
                                    }
                                    (value, slot) => {
                                        self.refusing(|walker| walker.scalar(field, slot, value))?
                                    }
                                }
                            } else {
                                self.read_value(field, slot, input, skipped, depth)?;
                            }
                        }
                    }
                }
                if next(input, b'}')? {
                    break;
                }
            }
        }
        self.refusing(|walker| walker.count_fields(count))?;
        self.refusing(|walker| walker.close_object(fields, column, &mut seen, row_len))
    }

    /// Reads, converts, checks and appends the value at the input's position (not null).
    fn read_value(
        &mut self,
        field: Field<'_>,
        column: &mut Column,
        input: &mut Scanner<'_>,
        skipped: &mut Tape,
        depth: usize,
    ) -> Result<(), Bail> {
        match field.kind() {
            FieldKind::Object(fields) => {
                if field.has_checks() && !field.accepts_object() {
                    return self.refuse();
                }
                match column {
                    Column::Struct(structure) => {
                        self.read_object(fields, structure, input, skipped, depth + 1)
                    }
                    _ => {
                        let mut void = void_struct(fields);
                        self.read_object(fields, &mut void, input, skipped, depth + 1)
                    }
                }
            }
            FieldKind::Map(values) => {
                if field.has_checks() && !field.accepts_object() {
                    return self.refuse();
                }
                self.read_map(values, column, input, skipped, depth + 1)
            }
            FieldKind::Array(items) => {
                self.read_array(field, items, column, input, skipped, depth + 1)
            }
            _ => {
                let value = scalar(input)?;
                self.refusing(|walker| walker.scalar(field, column, value))
            }
        }
    }

    /// Reads a map: null entries are dropped, keys must be distinct.
    fn read_map(
        &mut self,
        values: Field<'_>,
        column: &mut Column,
        input: &mut Scanner<'_>,
        skipped: &mut Tape,
        depth: usize,
    ) -> Result<(), Bail> {
        open(input, b'{', depth)?;
        let mut keys = [""; MAP_KEYS];
        let mut len = 0;
        let mut entries = 0;
        if !close(input, b'}') {
            loop {
                let name = key(input)?;
                if len == MAP_KEYS || keys[..len].contains(&name) {
                    return Err(Bail);
                }
                keys[len] = name;
                len += 1;
                if !null(input)? {
                    match column {
                        Column::Map {
                            keys: key_column,
                            values: value_column,
                            ..
                        } => {
                            key_column.push(name).map_err(|_| Bail)?;
                            self.read_value(values, value_column, input, skipped, depth)?;
                        }
                        _ => self.read_value(values, &mut Column::Void, input, skipped, depth)?,
                    }
                    entries += 1;
                }
                if next(input, b'}')? {
                    break;
                }
            }
        }
        self.refusing(|walker| walker.count_fields(len))?;
        close_entries(column, entries)
    }

    /// Reads an array: null items are kept.
    fn read_array(
        &mut self,
        field: Field<'_>,
        items: Field<'_>,
        column: &mut Column,
        input: &mut Scanner<'_>,
        skipped: &mut Tape,
        depth: usize,
    ) -> Result<(), Bail> {
        open(input, b'[', depth)?;
        let mut len = 0;
        if !close(input, b']') {
            loop {
                input.skip_whitespace();
                let is_null = null(input)?;
                match column {
                    Column::List {
                        items: item_column, ..
                    } => {
                        if is_null {
                            item_column.push_null();
                        } else {
                            self.read_value(items, item_column, input, skipped, depth)?;
                        }
                    }
                    _ if is_null => {}
                    _ => self.read_value(items, &mut Column::Void, input, skipped, depth)?,
                }
                len += 1;
                if next(input, b']')? {
                    break;
                }
            }
        }
        self.refusing(|walker| walker.count_fields(len))?;
        // The tape walk checks the item count first; a refusal gives up either way.
        if field.has_checks() && field.accepts_items(len) != Some(true) {
            return self.refuse();
        }
        close_entries(column, len)
    }
}

/// Moves past the opening byte of a container at nesting `depth`, and the whitespace after
/// it.
#[inline]
fn open(input: &mut Scanner<'_>, byte: u8, depth: usize) -> Result<(), Bail> {
    if depth > MAX_DEPTH || input.peek() != Some(byte) {
        return Err(Bail);
    }
    input.advance();
    input.skip_whitespace();
    Ok(())
}

/// Moves past `byte` when it comes next: an empty container.
#[inline]
fn close(input: &mut Scanner<'_>, byte: u8) -> bool {
    let empty = input.peek() == Some(byte);
    if empty {
        input.advance();
    }
    empty
}

/// Moves past the comma or the closing `byte` after an entry; `true` at the end.
#[inline]
fn next(input: &mut Scanner<'_>, byte: u8) -> Result<bool, Bail> {
    input.skip_whitespace();
    match input.peek() {
        Some(b',') => {
            input.advance();
            Ok(false)
        }
        Some(found) if found == byte => {
            input.advance();
            Ok(true)
        }
        _ => Err(Bail),
    }
}

/// Reads an object key and its colon, and the whitespace after it.
#[inline]
fn key<'a>(input: &mut Scanner<'a>) -> Result<&'a str, Bail> {
    input.expect(b'"').ok_or(Bail)?;
    let name = input.string().ok_or(Bail)?;
    after_key(input)?;
    Ok(name)
}

/// Moves past the colon after a key, and the whitespace after it.
#[inline]
fn after_key(input: &mut Scanner<'_>) -> Result<(), Bail> {
    input.expect(b':').ok_or(Bail)?;
    input.skip_whitespace();
    Ok(())
}

/// Converts a property's position to the 32-bit form of `next_keys`.
fn offset(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(NO_KEY)
}

/// Moves past a `null` when one comes next.
#[inline]
fn null(input: &mut Scanner<'_>) -> Result<bool, Bail> {
    if input.peek() != Some(b'n') {
        return Ok(false);
    }
    input.word("null").ok_or(Bail)?;
    Ok(true)
}

/// Reads a string, number or boolean.
#[inline(always)]
fn scalar<'a>(input: &mut Scanner<'a>) -> Result<Scalar<'a>, Bail> {
    Ok(match input.peek().ok_or(Bail)? {
        b'"' => {
            input.advance();
            Scalar::Str(input.string().ok_or(Bail)?)
        }
        b't' => {
            input.word("true").ok_or(Bail)?;
            Scalar::Bool(true)
        }
        b'f' => {
            input.word("false").ok_or(Bail)?;
            Scalar::Bool(false)
        }
        b'-' | b'0'..=b'9' => match input.number_token().ok_or(Bail)? {
            Token::PosInt(value) => Scalar::PosInt(value),
            Token::NegInt(value) => Scalar::NegInt(value),
            Token::Float(value) => Scalar::Float(value),
            _ => return Err(Bail),
        },
        _ => return Err(Bail),
    })
}
