//! The fast path of [`Tape::parse`]: a single-pass scanner for the plain JSON most rows are
//! (no escapes in strings, integers that fit 64 bits, nesting under [`MAX_DEPTH`]), which
//! fills the tape without serde's visitor calls. Whatever it is not sure of — any syntax
//! error, an escape, a control character, an integer out of range, `-0`, deep nesting — it
//! gives up on, and the row is parsed again by serde_json's own parser, which then
//! decides, with its own error message. So a row the scanner accepts is one serde_json
//! accepts, with the same tokens: doubles are converted by serde_json itself.

use super::columns::{KeyWords, WINDOW};
use super::tape::{Tape, Token};

/// The deepest nesting the scanner follows (serde_json's own limit is 128).
pub(super) const MAX_DEPTH: usize = 100;

/// Fills `tape` (empty) with the tokens of `text`, or returns `None` when the row needs
/// serde_json's parser; the tape is then left partly filled.
pub(super) fn scan(tape: &mut Tape, text: &str) -> Option<()> {
    let mut scanner = Scanner::new(text);
    scanner.skip_whitespace();
    scanner.value(tape, 0)?;
    scanner.finish()
}

/// A position in the text of one row, and the reading of plain JSON tokens from it.
pub(super) struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// Whether the text has no backslash and no control character at all: a string then
    /// ends at the next quote.
    plain: bool,
}

impl<'a> Scanner<'a> {
    pub(super) fn new(text: &'a str) -> Self {
        let bytes = text.as_bytes();
        // One pass the compiler vectorises, instead of two more tests per string byte.
        let special = bytes.iter().fold(0u8, |found, &byte| {
            found | u8::from(byte < 0x20) | u8::from(byte == b'\\')
        });
        Self {
            text,
            bytes,
            at: 0,
            plain: special == 0,
        }
    }

    /// Checks that only whitespace is left.
    pub(super) fn finish(&mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.bytes.len()).then_some(())
    }

    #[inline]
    pub(super) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    /// Moves past one byte (one the caller peeked).
    #[inline]
    pub(super) fn advance(&mut self) {
        self.at += 1;
    }

    /// Moves past `word` (`true`, `false`, `null`), or returns `None`.
    #[inline]
    pub(super) fn word(&mut self, word: &str) -> Option<()> {
        if !self.bytes[self.at..].starts_with(word.as_bytes()) {
            return None;
        }
        self.at += word.len();
        Some(())
    }

    /// Moves past `quoted` (a key's name and closing quote) when the text goes on with
    /// exactly it (after the key's opening quote); an empty `quoted` never matches.
    #[inline]
    pub(super) fn key_is(&mut self, quoted: &[u8]) -> bool {
        let end = self.at + quoted.len();
        let matches = !quoted.is_empty()
            && self
                .bytes
                .get(self.at..end)
                .is_some_and(|text| same_bytes(text, quoted));
        if matches {
            self.at = end;
        }
        matches
    }

    /// [`key_is`](Self::key_is) for a name given as words: the text's next 16 bytes are
    /// compared under the name's masks, without slicing per word. With fewer than 16 bytes
    /// left in the row it says no, and the key is read as any other.
    #[inline]
    pub(super) fn key_is_words(&mut self, key: &KeyWords) -> bool {
        let Some(block) = self
            .bytes
            .get(self.at..)
            .and_then(<[u8]>::first_chunk::<16>)
        else {
            return false;
        };
        let (low, high) = block.split_at(8);
        let word = |half: &[u8]| {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(half);
            u64::from_le_bytes(eight)
        };
        let matches =
            word(low) & key.masks[0] == key.words[0] && word(high) & key.masks[1] == key.words[1];
        if matches {
            self.at += key.len;
        }
        matches
    }

    #[inline]
    pub(super) fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    /// Consumes `byte` after optional whitespace.
    #[inline]
    pub(super) fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Reads one value (at its first byte) onto `tape`.
    pub(super) fn value(&mut self, tape: &mut Tape, depth: usize) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(tape, depth + 1),
            b'[' => self.array(tape, depth + 1),
            b'"' => {
                self.at += 1;
                let text = self.string()?;
                tape.push_str(text);
                Some(())
            }
            b't' => self.literal("true", Token::Bool(true), tape),
            b'f' => self.literal("false", Token::Bool(false), tape),
            b'n' => self.literal("null", Token::Null, tape),
            b'-' | b'0'..=b'9' => self.number(tape),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, token: Token, tape: &mut Tape) -> Option<()> {
        self.word(word)?;
        tape.push_token(token);
        Some(())
    }

    fn object(&mut self, tape: &mut Tape, depth: usize) -> Option<()> {
        self.container(tape, depth, b'}', |scanner, tape| {
            scanner.expect(b'"')?;
            let key = scanner.string()?;
            tape.push_str(key);
            scanner.expect(b':')?;
            scanner.skip_whitespace();
            scanner.value(tape, depth)
        })
    }

    fn array(&mut self, tape: &mut Tape, depth: usize) -> Option<()> {
        self.container(tape, depth, b']', |scanner, tape| {
            scanner.skip_whitespace();
            scanner.value(tape, depth)
        })
    }

    /// Reads an object or an array (at its opening byte): entries read by `entry`, separated
    /// by commas, up to `close`; records it on the tape with its length.
    #[inline]
    fn container(
        &mut self,
        tape: &mut Tape,
        depth: usize,
        close: u8,
        mut entry: impl FnMut(&mut Self, &mut Tape) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        let at = tape.open();
        self.skip_whitespace();
        let mut len = 0;
        if self.peek()? == close {
            self.at += 1;
        } else {
            loop {
                entry(self, tape)?;
                len += 1;
                self.skip_whitespace();
                match self.peek()? {
                    b',' => self.at += 1,
                    byte if byte == close => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        if close == b'}' {
            tape.close_object(at, len);
        } else {
            tape.close_array(at, len);
        }
        Some(())
    }

    /// The row's [`WINDOW`] bytes from the start of the string just read (of `len` bytes,
    /// its closing quote the last byte read), when the row has that many.
    #[inline]
    pub(super) fn window_of_last(&self, len: usize) -> Option<&'a [u8; WINDOW]> {
        let start = self.at.checked_sub(len + 1)?;
        self.bytes.get(start..)?.first_chunk::<WINDOW>()
    }

    /// Reads a string's body after its opening quote, up to and past the closing quote;
    /// `None` for an escape, a control character or a missing end.
    #[inline]
    pub(super) fn string(&mut self) -> Option<&'a str> {
        if !self.plain {
            return self.checked_string();
        }
        let start = self.at;
        let end = start + quote(&self.bytes[start..])?;
        self.at = end + 1;
        // The quote is ASCII, so both ends are character boundaries of the text.
        self.text.get(start..end)
    }

    /// [`string`](Self::string) in a row that has a backslash or a control character
    /// somewhere: the string must end at a quote before either.
    #[inline(never)]
    fn checked_string(&mut self) -> Option<&'a str> {
        let start = self.at;
        let end = start + stop(&self.bytes[start..])?;
        if self.bytes[end] != b'"' {
            return None;
        }
        self.at = end + 1;
        self.text.get(start..end)
    }

    /// Moves past a run of digits: their value (wrapped past 19 digits) and count.
    #[inline]
    fn wrapping_digits(&mut self) -> (u64, usize) {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value.wrapping_mul(10).wrapping_add(u64::from(digit - b'0'));
            self.at += 1;
        }
        (value, self.at - start)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self, tape: &mut Tape) -> Option<()> {
        let token = self.number_token()?;
        tape.push_token(token);
        Some(())
    }

    /// Reads a number (at its first byte) as the token serde_json would give.
    pub(super) fn number_token(&mut self) -> Option<Token> {
        let start = self.at;
        let negative = self.peek()? == b'-';
        if negative {
            self.at += 1;
        }
        let integer_start = self.at;
        let significand = match self.peek()? {
            b'0' => {
                self.at += 1;
                0
            }
            b'1'..=b'9' => {
                let (value, count) = self.wrapping_digits();
                if count <= 19 {
                    value
                } else {
                    // Past 19 digits the wrapped value may be wrong: checked, as before.
                    checked_digits(0, &self.bytes[integer_start..self.at])?
                }
            }
            _ => return None,
        };
        let integer_digits = self.at - integer_start;
        let mut double = false;
        // A decimal without an exponent whose digits fit a double exactly is converted here
        // as serde_json converts it (see `exact_decimal`); `None` when it does not qualify.
        let mut decimal = None;
        if self.peek() == Some(b'.') {
            self.at += 1;
            let fraction_start = self.at;
            let (fraction, count) = self.wrapping_digits();
            if count == 0 {
                return None;
            }
            decimal = if integer_digits + count <= 19 {
                // No wrapping: the digits are below 10^19. The same test as `exact_decimal`.
                let digits = significand.wrapping_mul(TENS[count]).wrapping_add(fraction);
                (count < EXACT_POWERS.len() && digits < 1 << 53)
                    .then(|| digits as f64 / EXACT_POWERS[count])
            } else {
                exact_decimal(significand, &self.bytes[fraction_start..self.at])
            };
            double = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            decimal = None;
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
            double = true;
        }
        if matches!(self.peek(), Some(b'0'..=b'9')) {
            // A leading zero followed by digits.
            return None;
        }
        let token = if let Some(value) = decimal {
            Token::Float(if negative { -value } else { value })
        } else if double {
            // serde_json's own conversion, so that the double is the one it would give.
            let value: f64 = serde_json::from_str(&self.text[start..self.at]).ok()?;
            if !value.is_finite() {
                return None;
            }
            Token::Float(value)
        } else if !negative {
            Token::PosInt(significand)
        } else {
            // serde_json makes `-0` and integers below i64's range doubles: leave them to it.
            let value = i64::try_from(significand).ok()?.checked_neg()?;
            if value >= 0 {
                return None;
            }
            Token::NegInt(value)
        };
        Some(token)
    }
}

/// The powers of ten below 10^20, as integers (`TENS[n]` is 10^n).
const TENS: [u64; 20] = {
    let mut tens = [1u64; 20];
    let mut n = 1;
    while n < 20 {
        tens[n] = tens[n - 1] * 10;
        n += 1;
    }
    tens
};

/// The value of `digits` appended to `value`, or `None` past `u64`.
fn checked_digits(value: u64, digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(value, |value, &digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// The powers of ten a double holds exactly.
const EXACT_POWERS: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Converts `integer.fraction` (no exponent) when every value in the conversion is exact:
/// the digits as an integer below 2^53 and at most 22 fraction digits. serde_json (without
/// `float_roundtrip`) then computes the same single correctly rounded division,
/// `digits as f64 / 10^fraction_digits`; anything else is left to it.
fn exact_decimal(integer: u64, fraction: &[u8]) -> Option<f64> {
    let power = *EXACT_POWERS.get(fraction.len())?;
    let mut digits = integer;
    for &digit in fraction {
        digits = digits
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    (digits < 1 << 53).then(|| digits as f64 / power)
}

/// Compares two byte strings with two overlapping loads for up to 16 bytes, four for up to
/// 32: keys are short, and a call to `memcmp` costs more than the comparison.
#[inline]
fn same_bytes(left: &[u8], right: &[u8]) -> bool {
    fn word(bytes: &[u8], at: usize) -> u64 {
        let mut eight = [0; 8];
        eight.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(eight)
    }
    fn half(bytes: &[u8], at: usize) -> u32 {
        let mut four = [0; 4];
        four.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(four)
    }
    let len = left.len();
    if len != right.len() {
        return false;
    }
    match len {
        0..=3 => left.iter().zip(right).all(|(a, b)| a == b),
        4..=8 => half(left, 0) == half(right, 0) && half(left, len - 4) == half(right, len - 4),
        9..=16 => word(left, 0) == word(right, 0) && word(left, len - 8) == word(right, len - 8),
        // A tenant's namespace (`_` and a 24-character tenant id) among them.
        17..=32 => {
            word(left, 0) == word(right, 0)
                && word(left, 8) == word(right, 8)
                && word(left, len - 16) == word(right, len - 16)
                && word(left, len - 8) == word(right, len - 8)
        }
        _ => left == right,
    }
}

/// Returns the position of the first quote of `bytes`, eight bytes at a time.
#[inline]
fn quote(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        let x = u64::from_le_bytes(eight) ^ (ONES * u64::from(b'"'));
        // A byte of `x` is flagged when it is zero (exact for the lowest flagged byte).
        let found = x.wrapping_sub(ONES) & !x & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&byte| byte == b'"')
        .map(|offset| at + offset)
}

/// Returns the position of the first quote, backslash or control character of `bytes`,
/// eight bytes at a time (strings are short: a call to a vectorised search costs more).
#[inline]
fn stop(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let word = u64::from_le_bytes(word.try_into().ok()?);
        // A byte of `x` is flagged when it is zero (exact for the lowest flagged byte).
        let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
        let found = zero(word ^ (ONES * u64::from(b'"')))
            | zero(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    bytes[at..]
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        .map(|offset| at + offset)
}

#[cfg(test)]
mod tests {
    #[test]
    fn same_bytes_agrees_with_slice_equality_at_every_length() {
        let base: Vec<u8> = (0..40u8).map(|byte| b'a' + byte % 26).collect();
        for len in 0..=40 {
            let left = &base[..len];
            assert!(super::same_bytes(left, left));
            for flip in 0..len {
                let mut right = left.to_vec();
                right[flip] ^= 0x20;
                assert!(!super::same_bytes(left, &right), "{len} {flip}");
            }
            if len > 0 {
                assert!(!super::same_bytes(left, &base[..len - 1]));
            }
        }
    }

    /// A name given as words matches where its bytes do, and moves past them; with fewer
    /// than 16 bytes left it says no.
    #[test]
    fn a_key_as_words_matches_as_its_bytes_do() {
        use super::super::columns::KeyWords;
        // Names that share their first eight bytes, or all but their last.
        let row = br#"{"a":1,"ab":2,"longPrefixA":3,"longPrefixB":4,"longPrefix":5,"sixteen bytes !!":6}"#;
        let text = std::str::from_utf8(row).unwrap();
        for start in 0..row.len() {
            for len in 1..=16 {
                let Some(quoted) = row.get(start..start + len) else {
                    continue;
                };
                let key = KeyWords::of(quoted).expect("at most 16 bytes");
                for at in 0..row.len() {
                    let mut words = super::Scanner::new(text);
                    words.at = at;
                    let mut bytes = super::Scanner::new(text);
                    bytes.at = at;
                    let expected = at + 16 <= row.len() && bytes.key_is(quoted);
                    assert_eq!(words.key_is_words(&key), expected, "{start} {len} {at}");
                    assert_eq!(words.at, if expected { at + len } else { at });
                }
            }
        }
        assert!(KeyWords::of(b"").is_none());
        assert!(KeyWords::of(&[b'x'; 17]).is_none());
    }

    #[test]
    fn stop_and_quote_find_the_first_byte_they_look_for() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)
        };
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = [
            b'a', b' ', b'"', b'\\', 0x1f, 0x20, 0x00, 0x7f, 0x80, 0xe9, 0xff, b'!',
        ];
        for _ in 0..50_000 {
            let len = (next() % 40) as usize;
            // Mostly plain letters, a few of the bytes that matter.
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let roll = next();
                    if roll % 6 == 0 {
                        alphabet[(roll / 6 % alphabet.len() as u64) as usize]
                    } else {
                        b'a' + (roll % 26) as u8
                    }
                })
                .collect();
            assert_eq!(super::stop(&bytes), naive(&bytes), "{bytes:?}");
            assert_eq!(
                super::quote(&bytes),
                bytes.iter().position(|&byte| byte == b'"'),
                "{bytes:?}"
            );
        }
    }
}
