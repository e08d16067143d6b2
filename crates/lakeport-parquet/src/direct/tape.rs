//! A flat token tape of one JSON row, filled by a scanner for plain rows (`scan.rs`) or by
//! serde_json's own parser.
//!
//! A row the scanner is not sure of is parsed with the same `serde_json::Deserializer` that builds a
//! [`serde_json::Value`], through a [`DeserializeSeed`] that appends tokens to a reused
//! vector instead of allocating a tree: a row is accepted or refused exactly as
//! `serde_json::from_slice::<Value>` would, numbers are the same [`Number`]s, and strings are
//! copied once into one reused text buffer. Containers record where they end, so a walker
//! can skip a value it does not need in one step.

use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

/// One token of a [`Tape`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Token {
    Null,
    Bool(bool),
    /// A non-negative integer, as serde_json keeps it.
    PosInt(u64),
    /// A negative integer.
    NegInt(i64),
    /// A finite double.
    Float(f64),
    /// A string (a value or, inside an object, a key): a range of the tape's text.
    Str {
        start: u32,
        end: u32,
    },
    /// An object of `len` entries, each a key token followed by its value's tokens; the
    /// object's tokens end before token `end`.
    Object {
        len: u32,
        end: u32,
    },
    /// An array of `len` items; its tokens end before token `end`.
    Array {
        len: u32,
        end: u32,
    },
}

/// The tokens of one row and the text of its strings; reused from row to row.
#[derive(Debug, Default)]
pub(crate) struct Tape {
    tokens: Vec<Token>,
    text: String,
}

impl Tape {
    /// Parses one row, replacing the tape's contents.
    ///
    /// # Errors
    /// serde_json's error when the bytes are not exactly one JSON value.
    pub(crate) fn parse(&mut self, bytes: &[u8]) -> Result<(), serde_json::Error> {
        self.clear();
        // A row checked as UTF-8 once is parsed as text, whose strings serde_json does not
        // check again one by one; a row that is not UTF-8 gets serde_json's own error.
        if let Ok(text) = std::str::from_utf8(bytes) {
            // Most rows are plain JSON the scanner reads in one pass; anything it is not
            // sure of is parsed again by serde_json.
            if super::scan::scan(self, text).is_some() {
                return Ok(());
            }
            self.tokens.clear();
            self.text.clear();
            let mut deserializer = serde_json::Deserializer::from_str(text);
            ValueSeed(self).deserialize(&mut deserializer)?;
            return deserializer.end();
        }
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        ValueSeed(self).deserialize(&mut deserializer)?;
        deserializer.end()
    }

    /// Parses one row with serde_json's parser only (the scanner's reference in tests).
    #[cfg(test)]
    pub(super) fn parse_with_serde(&mut self, text: &str) -> Result<(), serde_json::Error> {
        self.tokens.clear();
        self.text.clear();
        let mut deserializer = serde_json::Deserializer::from_str(text);
        ValueSeed(self).deserialize(&mut deserializer)?;
        deserializer.end()
    }

    /// Returns the tokens and the text, for comparing two tapes in tests.
    #[cfg(test)]
    pub(super) fn dump(&self) -> (String, &str) {
        (format!("{:?}", self.tokens), &self.text)
    }

    /// Builds the tape of a value (a converted row, or a field's default).
    pub(crate) fn from_value(value: &Value) -> Self {
        let mut tape = Self::default();
        tape.push_value(value);
        tape
    }

    /// Replaces the tape's contents with the tokens of `value`.
    pub(crate) fn set_value(&mut self, value: &Value) {
        self.tokens.clear();
        self.text.clear();
        self.push_value(value);
    }

    fn push_value(&mut self, value: &Value) {
        match value {
            Value::Null => self.tokens.push(Token::Null),
            Value::Bool(flag) => self.tokens.push(Token::Bool(*flag)),
            Value::Number(number) => self.tokens.push(number_token(number)),
            Value::String(text) => self.push_str(text),
            Value::Array(items) => {
                let at = self.open();
                for item in items {
                    self.push_value(item);
                }
                self.close_array(at, items.len());
            }
            Value::Object(fields) => {
                let at = self.open();
                for (key, field) in fields {
                    self.push_str(key);
                    self.push_value(field);
                }
                self.close_object(at, fields.len());
            }
        }
    }

    /// Empties the tape.
    pub(super) fn clear(&mut self) {
        self.tokens.clear();
        self.text.clear();
    }

    pub(super) fn push_token(&mut self, token: Token) {
        self.tokens.push(token);
    }

    pub(super) fn push_str(&mut self, text: &str) {
        let start = self.text.len();
        self.text.push_str(text);
        self.tokens.push(Token::Str {
            start: offset(start),
            end: offset(self.text.len()),
        });
    }

    pub(super) fn open(&mut self) -> usize {
        self.tokens.push(Token::Null);
        self.tokens.len() - 1
    }

    pub(super) fn close_object(&mut self, at: usize, len: usize) {
        self.tokens[at] = Token::Object {
            len: offset(len),
            end: offset(self.tokens.len()),
        };
    }

    pub(super) fn close_array(&mut self, at: usize, len: usize) {
        self.tokens[at] = Token::Array {
            len: offset(len),
            end: offset(self.tokens.len()),
        };
    }

    /// Returns the token at `at`.
    #[inline]
    pub(crate) fn token(&self, at: usize) -> Token {
        self.tokens[at]
    }

    /// Returns the text of a string token's range.
    #[inline]
    pub(crate) fn str(&self, start: u32, end: u32) -> &str {
        &self.text[start as usize..end as usize]
    }

    /// Returns the text of the string token at `at` (an object key).
    #[inline]
    pub(crate) fn key(&self, at: usize) -> &str {
        match self.tokens[at] {
            Token::Str { start, end } => self.str(start, end),
            _ => unreachable!("an object key is a string token"),
        }
    }

    /// Returns the position after the value that starts at `at`.
    #[inline]
    pub(crate) fn skip(&self, at: usize) -> usize {
        match self.tokens[at] {
            Token::Object { end, .. } | Token::Array { end, .. } => end as usize,
            _ => at + 1,
        }
    }

    /// Counts the object entries and array items nested in the value at `at`, as the row
    /// walk counts the fields of a value it drops.
    pub(crate) fn nested_fields(&self, at: usize) -> usize {
        self.tokens[at..self.skip(at)]
            .iter()
            .map(|token| match token {
                Token::Object { len, .. } | Token::Array { len, .. } => *len as usize,
                _ => 0,
            })
            .sum()
    }
}

/// Returns the token of a number, keeping serde_json's distinction between non-negative
/// integers, negative integers and doubles.
fn number_token(number: &Number) -> Token {
    if let Some(unsigned) = number.as_u64() {
        Token::PosInt(unsigned)
    } else if let Some(signed) = number.as_i64() {
        Token::NegInt(signed)
    } else {
        Token::Float(number.as_f64().unwrap_or(f64::NAN))
    }
}

/// Returns the serde_json number of a number token.
#[cfg(test)]
pub(crate) fn number_of(token: Token) -> Option<Number> {
    match token {
        Token::PosInt(value) => Some(value.into()),
        Token::NegInt(value) => Some(value.into()),
        Token::Float(value) => Number::from_f64(value),
        _ => None,
    }
}

/// Converts a position to the tape's 32-bit offsets; rows are far smaller (the row limit).
fn offset(position: usize) -> u32 {
    u32::try_from(position).expect("a row is smaller than 4 GiB")
}

/// Parses one value onto the tape.
struct ValueSeed<'t>(&'t mut Tape);

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.0.tokens.push(Token::Bool(value));
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.0.tokens.push(number_token(&Number::from(value)));
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.0.tokens.push(Token::PosInt(value));
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        // As `Value` does: a double without a JSON form is null.
        self.0.tokens.push(if value.is_finite() {
            Token::Float(value)
        } else {
            Token::Null
        });
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.0.push_str(value);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.tokens.push(Token::Null);
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        self.0.tokens.push(Token::Null);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let at = self.0.open();
        let mut len = 0;
        while items.next_element_seed(ValueSeed(&mut *self.0))?.is_some() {
            len += 1;
        }
        self.0.close_array(at, len);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let at = self.0.open();
        let mut len = 0;
        while entries.next_key_seed(KeySeed(&mut *self.0))?.is_some() {
            entries.next_value_seed(ValueSeed(&mut *self.0))?;
            len += 1;
        }
        self.0.close_object(at, len);
        Ok(())
    }
}

/// Parses one object key onto the tape.
struct KeySeed<'t>(&'t mut Tape);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object key")
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.0.push_str(value);
        Ok(())
    }
}
