//! The `pattern` keyword: ECMA-262 patterns compiled for the regex crate, with a fast path
//! for the fully anchored fixed-shape patterns XDM schemas mostly use (`^M-[0-9]{6}$`).

/// A compiled `pattern`.
#[derive(Debug)]
pub(super) struct Pattern {
    matcher: Matcher,
    /// The pattern as written in the schema.
    pub source: Box<str>,
}

#[derive(Debug)]
enum Matcher {
    Simple(SimplePattern),
    Regex(regex::Regex),
}

impl Pattern {
    /// Compiles an ECMA-262 pattern; the error is the regex crate's one-line reason.
    pub fn compile(source: &str) -> Result<Self, String> {
        check_ecma_syntax(source)?;
        // The regex is compiled even when the fast path applies, so that both agree on which
        // patterns are valid.
        let regex = regex::Regex::new(&translate_ecma_pattern(source))
            .map_err(|err| regex_error_reason(&err))?;
        let matcher = match SimplePattern::parse(source) {
            Some(simple) => Matcher::Simple(simple),
            None => Matcher::Regex(regex),
        };
        Ok(Self {
            matcher,
            source: source.into(),
        })
    }

    /// Whether the pattern matches somewhere in `text` (anchors permitting).
    #[inline]
    pub fn is_match(&self, text: &str) -> bool {
        match &self.matcher {
            Matcher::Simple(simple) => simple.is_match(text.as_bytes()),
            Matcher::Regex(regex) => regex.is_match(text),
        }
    }
}

/// Letters that start an escape in ECMA-262 (without the `u` flag, as JSON Schema reads
/// `pattern`); any other escaped letter is that letter in ECMA-262 but often something else
/// in the regex crate (`\A`, `\z`, `\p{L}`, `\U…`).
const ECMA_LETTER_ESCAPES: &str = "dDwWsSbBtnvfrcxuk";

/// Refuses what the regex crate would read but ECMA-262 does not, or reads differently:
/// inline flags (`(?i)`), `(?P<name>…)` groups, letter escapes outside ECMA-262's set, and
/// `\x`/`\u` not followed by two or four hex digits (`\x{41}`).
fn check_ecma_syntax(pattern: &str) -> Result<(), String> {
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    let hex_digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, count: usize| {
        (0..count).all(|_| chars.next_if(char::is_ascii_hexdigit).is_some())
    };
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('x') if !hex_digits(&mut chars, 2) => {
                    return Err("\\x must be followed by two hex digits in ECMA-262".into());
                }
                Some('u') if !hex_digits(&mut chars, 4) => {
                    return Err("\\u must be followed by four hex digits in ECMA-262".into());
                }
                Some(letter)
                    if letter.is_ascii_alphabetic() && !ECMA_LETTER_ESCAPES.contains(letter) =>
                {
                    return Err(format!(
                        "\\{letter} is not an ECMA-262 escape (ECMA-262 reads it as the letter {letter})"
                    ));
                }
                _ => {}
            },
            '[' if !in_class => {
                in_class = true;
                // `[]` and `[^]`: a `]` right after the opening closes the class.
                chars.next_if_eq(&'^');
                if chars.next_if_eq(&']').is_some() {
                    in_class = false;
                }
            }
            ']' if in_class => in_class = false,
            '(' if !in_class && chars.next_if_eq(&'?').is_some() => {
                let named_group = chars.peek().is_some_and(|next| *next == '<') && {
                    let mut ahead = chars.clone();
                    ahead.next();
                    ahead.next().is_some_and(|c| {
                        c == '=' || c == '!' || c == '_' || c == '$' || c.is_alphabetic()
                    })
                };
                if !named_group && chars.next_if(|c| matches!(c, ':' | '=' | '!')).is_none() {
                    let rest: String = chars.take(3).collect();
                    return Err(format!(
                        "(?{rest}… is not ECMA-262 group syntax (only (?:, (?=, (?!, (?<=, (?<! and (?<name>)"
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Rewrites the ECMA-262 pattern syntax that the regex crate reads differently: `\d` and
/// `\w` are ASCII-only in ECMA-262 (Unicode-aware in the regex crate), and inside a class
/// `[`, `&` and `~` are literals in ECMA-262 but class syntax in the regex crate. `[]`
/// (matches nothing) and `[^]` (matches anything) are ECMA-only spellings too.
/// Look-around and back-references stay unsupported and fail to compile.
pub(super) fn translate_ecma_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('d') => out.push_str(if in_class { "0-9" } else { "[0-9]" }),
                Some('w') => out.push_str(if in_class {
                    "0-9A-Za-z_"
                } else {
                    "[0-9A-Za-z_]"
                }),
                // Inside a class, ECMA-262's `\b` is a backspace.
                Some('b') if in_class => out.push_str("\\x08"),
                Some('D') if !in_class => out.push_str("[^0-9]"),
                Some('W') if !in_class => out.push_str("[^0-9A-Za-z_]"),
                Some(escaped) => {
                    out.push('\\');
                    out.push(escaped);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                let negated = chars.next_if_eq(&'^').is_some();
                if chars.next_if_eq(&']').is_some() {
                    out.push_str(if negated { r"[\s\S]" } else { r"[\s&&\S]" });
                } else {
                    in_class = true;
                    out.push_str(if negated { "[^" } else { "[" });
                }
            }
            '[' | '&' | '~' if in_class => {
                out.push('\\');
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Keeps the one-line reason of a regex error (the crate's message has a caret diagram).
fn regex_error_reason(err: &regex::Error) -> String {
    let text = err.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or(text.lines().next().unwrap_or_default())
        .to_owned()
}

/// A pattern `^…$` made only of single-character ASCII classes (literals, `\d`, `\w`,
/// escaped punctuation, non-negated `[…]`), each with a repetition count. It matches by one
/// left-to-right scan with no backtracking, which is exact because a variable count is only
/// accepted on an item whose class shares no character with any later item.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SimplePattern {
    items: Vec<Item>,
    /// When every count is fixed (`^M-[0-9]{6}$`): the text's length, and each item as a
    /// table of the bytes it accepts with its count, so that a text is checked by its
    /// length and one lookup per byte.
    fixed: Option<(usize, Vec<(ByteSet, usize)>)>,
    /// The fixed pattern again, as words when it is 4 bytes long or more and each class is
    /// at most two ranges of ASCII: a text is then checked eight (or four) bytes at a time.
    words: Option<Words>,
}

/// A fixed-length pattern checked a word at a time ([`Words::is_match`]).
#[derive(Debug, PartialEq, Eq)]
struct Words {
    len: usize,
    words: Vec<Word>,
}

/// The bytes of a word of the text, from `at`, `width` 8 or 4 bytes: for each byte, the
/// additions that set its high bit when it is at least the low end of a range (`low`) and
/// when it is past the high end (`high`), for each of two ranges.
#[derive(Debug, PartialEq, Eq)]
struct Word {
    at: usize,
    width: usize,
    low: [u64; 2],
    high: [u64; 2],
}

/// The high bit of every byte of a word.
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

impl Words {
    /// The words of a fixed pattern whose byte at each position must be in `classes[i]`;
    /// `None` when it is shorter than 4 bytes or a class is more than two ranges.
    fn new(classes: &[u128]) -> Option<Self> {
        let len = classes.len();
        if len < 4 {
            return None;
        }
        let ranges = classes
            .iter()
            .map(|&class| class_ranges(class))
            .collect::<Option<Vec<_>>>()?;
        let width = if len >= 8 { 8 } else { 4 };
        // Words from the start, the last one ending at the end (overlapping the one before).
        let mut starts: Vec<usize> = (0..=len - width).step_by(width).collect();
        if starts.last() != Some(&(len - width)) {
            starts.push(len - width);
        }
        let words = starts
            .into_iter()
            .map(|at| {
                let mut word = Word {
                    at,
                    width,
                    low: [0; 2],
                    high: [0; 2],
                };
                // Bytes past a 4-byte word are zero in the loaded value: any range takes
                // them (0 is at least 0 and not past 127).
                for byte in 0..8 {
                    let pair = ranges
                        .get(at + byte)
                        .filter(|_| byte < width)
                        .copied()
                        .unwrap_or([(0, 127), EMPTY_RANGE]);
                    for (range, &(low, high)) in pair.iter().enumerate() {
                        word.low[range] |= u64::from(0x80 - low) << (8 * byte);
                        word.high[range] |= u64::from(0x7F - high) << (8 * byte);
                    }
                }
                word
            })
            .collect();
        Some(Self { len, words })
    }

    /// Whether `text` matches. For a byte below 128 and a range of 7-bit bounds,
    /// `byte + 0x80 - low` has its high bit set when `byte >= low`, and `byte + 0x7F - high`
    /// when `byte > high`; no sum passes 255, so the bytes of a word never carry into one
    /// another.
    #[inline]
    fn is_match(&self, text: &[u8]) -> bool {
        if text.len() != self.len {
            return false;
        }
        self.words.iter().all(|word| {
            let Some(bytes) = text.get(word.at..) else {
                return false;
            };
            let x = if word.width == 8 {
                bytes
                    .first_chunk::<8>()
                    .map(|eight| u64::from_le_bytes(*eight))
            } else {
                bytes
                    .first_chunk::<4>()
                    .map(|four| u64::from(u32::from_le_bytes(*four)))
            };
            let Some(x) = x else {
                return false;
            };
            let within =
                |range: usize| x.wrapping_add(word.low[range]) & !x.wrapping_add(word.high[range]);
            x & HIGH_BITS == 0 && (within(0) | within(1)) & HIGH_BITS == HIGH_BITS
        })
    }
}

/// A range no byte below 128 is in: its low end's addition is 0.
const EMPTY_RANGE: (u8, u8) = (0x80, 0x7F);

/// The ranges of an ASCII class (as bytes), when it is one or two; `None` for more, or
/// for an empty class.
fn class_ranges(class: u128) -> Option<[(u8, u8); 2]> {
    let mut ranges = Vec::new();
    let mut byte = 0u32;
    while byte < 128 {
        if class & (1 << byte) == 0 {
            byte += 1;
            continue;
        }
        let low = byte;
        while byte < 128 && class & (1 << byte) != 0 {
            byte += 1;
        }
        ranges.push((low as u8, (byte - 1) as u8));
    }
    match ranges[..] {
        [one] => Some([one, EMPTY_RANGE]),
        [one, two] => Some([one, two]),
        _ => None,
    }
}

/// The bytes a class accepts, by byte value (no byte of 128 or more).
type ByteSet = Box<[bool; 256]>;

#[derive(Debug, PartialEq, Eq)]
struct Item {
    /// The ASCII characters the item accepts, one bit per code point.
    class: u128,
    min: usize,
    max: usize,
}

impl SimplePattern {
    /// Parses the fast-path shape, or returns `None` for anything else.
    pub fn parse(source: &str) -> Option<Self> {
        let body = source.strip_prefix('^')?.as_bytes();
        let mut items = Vec::new();
        let mut position = 0;
        loop {
            let class = match *body.get(position)? {
                // The end anchor must be the last character.
                b'$' => {
                    if position + 1 != body.len() {
                        return None;
                    }
                    break;
                }
                b'\\' => {
                    position += 1;
                    escape_class(*body.get(position)?)?
                }
                b'[' => {
                    let (class, next) = bracket_class(body, position + 1)?;
                    position = next - 1;
                    class
                }
                b'^' | b'.' | b'|' | b'?' | b'*' | b'+' | b'(' | b')' | b']' | b'{' | b'}' => {
                    return None;
                }
                literal if literal.is_ascii() => 1u128 << literal,
                _ => return None,
            };
            position += 1;
            let (min, max, next) = quantifier(body, position)?;
            position = next;
            items.push(Item { class, min, max });
        }
        let mut later = 0u128;
        for item in items.iter().rev() {
            if item.min != item.max && item.class & later != 0 {
                return None;
            }
            later |= item.class;
        }
        let length = items
            .iter()
            .map(|item| item.max)
            .try_fold(0usize, usize::checked_add);
        let fixed = length
            .filter(|_| items.iter().all(|item| item.min == item.max))
            .map(|length| {
                let tables = items
                    .iter()
                    .map(|item| {
                        let mut set: ByteSet = Box::new([false; 256]);
                        for (byte, accepted) in set.iter_mut().enumerate().take(128) {
                            *accepted = item.class & (1u128 << byte) != 0;
                        }
                        (set, item.max)
                    })
                    .collect();
                (length, tables)
            });
        let words = fixed.as_ref().and_then(|_| {
            let classes: Vec<u128> = items
                .iter()
                .flat_map(|item| std::iter::repeat_n(item.class, item.max))
                .collect();
            Words::new(&classes)
        });
        Some(Self {
            items,
            fixed,
            words,
        })
    }

    pub fn is_match(&self, text: &[u8]) -> bool {
        if let Some(words) = &self.words {
            return words.is_match(text);
        }
        if let Some((length, items)) = &self.fixed {
            if text.len() != *length {
                return false;
            }
            let mut rest = text;
            for (set, count) in items {
                let (these, after) = rest.split_at(*count);
                if !these.iter().all(|&b| set[usize::from(b)]) {
                    return false;
                }
                rest = after;
            }
            return true;
        }
        let mut position = 0;
        for item in &self.items {
            let mut count = 0;
            while count < item.max
                && let Some(&b) = text.get(position)
                && in_class(item.class, b)
            {
                count += 1;
                position += 1;
            }
            if count < item.min {
                return false;
            }
        }
        position == text.len()
    }
}

/// Whether `class` (one bit per ASCII code point) holds `b`. Tested on the half of the
/// class that holds `b`: a shift of the whole 128-bit class costs several instructions per
/// character.
#[inline]
fn in_class(class: u128, b: u8) -> bool {
    let half = if b & 64 == 0 {
        class as u64
    } else {
        (class >> 64) as u64
    };
    b < 128 && (half >> (b & 63)) & 1 == 1
}

fn escape_class(escaped: u8) -> Option<u128> {
    match escaped {
        b'd' => Some(range(b'0', b'9')),
        b'w' => Some(range(b'0', b'9') | range(b'A', b'Z') | range(b'a', b'z') | 1 << b'_'),
        // Escaped punctuation is the literal character.
        punctuation if punctuation.is_ascii_punctuation() => Some(1 << punctuation),
        _ => None,
    }
}

/// Parses a non-negated bracket class starting after `[`; returns it and the position after
/// `]`.
fn bracket_class(body: &[u8], mut position: usize) -> Option<(u128, usize)> {
    if matches!(body.get(position), Some(b'^' | b']')) {
        return None;
    }
    let mut class = 0u128;
    loop {
        let first = match *body.get(position)? {
            b']' => return Some((class, position + 1)),
            b'\\' => {
                position += 1;
                match *body.get(position)? {
                    b'd' | b'w' => {
                        class |= escape_class(body[position])?;
                        position += 1;
                        continue;
                    }
                    punctuation if punctuation.is_ascii_punctuation() => punctuation,
                    _ => return None,
                }
            }
            b'[' | b'&' | b'~' => return None,
            literal if literal.is_ascii() => literal,
            _ => return None,
        };
        position += 1;
        // A range `a-z`, unless the `-` is the last character of the class.
        if body.get(position) == Some(&b'-') && body.get(position + 1).is_some_and(|&b| b != b']') {
            let last = *body.get(position + 1)?;
            if last == b'\\' || !last.is_ascii() || last < first {
                return None;
            }
            class |= range(first, last);
            position += 2;
        } else {
            class |= 1 << first;
        }
    }
}

/// Parses an optional quantifier; returns `(min, max, position after it)`.
fn quantifier(body: &[u8], position: usize) -> Option<(usize, usize, usize)> {
    match body.get(position) {
        Some(b'?') => Some((0, 1, position + 1)),
        Some(b'*') => Some((0, usize::MAX, position + 1)),
        Some(b'+') => Some((1, usize::MAX, position + 1)),
        Some(b'{') => {
            let close = position + body[position..].iter().position(|&b| b == b'}')?;
            let inside = std::str::from_utf8(&body[position + 1..close]).ok()?;
            let number = |text: &str| {
                (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| text.parse::<usize>().ok())
                    .flatten()
            };
            let (min, max) = match inside.split_once(',') {
                None => {
                    let count = number(inside)?;
                    (count, count)
                }
                Some((min, "")) => (number(min)?, usize::MAX),
                Some((min, max)) => (number(min)?, number(max)?),
            };
            // A lazy `{n,m}?` or a possessive form is not the fast path.
            if min > max || matches!(body.get(close + 1), Some(b'?' | b'+' | b'*' | b'{')) {
                return None;
            }
            Some((min, max, close + 1))
        }
        _ => Some((1, 1, position)),
    }
    .filter(|&(_, _, next)| !matches!(body.get(next), Some(b'?' | b'+' | b'*' | b'{')))
}

fn range(first: u8, last: u8) -> u128 {
    (first..=last).fold(0, |class, b| class | 1 << b)
}
