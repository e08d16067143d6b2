//! Hand-written parsers and checks for the string formats of spec §7.2: ISO dates, RFC 3339
//! date-times, email addresses, absolute URIs and UUIDs.

/// Microseconds in one day.
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Days from 1970-01-01 to 0000-01-01 (negative) and to 9999-12-31: the range a four-digit
/// year can render.
const FIRST_DAY: i64 = -719_528;
const LAST_DAY: i64 = 2_932_896;

/// Length of a canonical date-time, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
pub(super) const DATE_TIME_LEN: usize = 27;

/// Whether `text` has fewer than `min` code points (`minLength`). A code point is 1 to 4
/// bytes, so only a text of `min` to `4 × min` bytes has its code points counted.
pub(super) fn shorter_than(text: &str, min: usize) -> bool {
    text.len() < min || (text.len() < min.saturating_mul(4) && text.chars().count() < min)
}

/// Whether `text` has more than `max` code points (`maxLength`): only a text of more than
/// `max` bytes has its code points counted.
pub(super) fn longer_than(text: &str, max: usize) -> bool {
    text.len() > max && text.chars().count() > max
}

/// Parses a strict `YYYY-MM-DD` date into days since 1970-01-01.
///
/// Years run from 0000 to 9999 on the proleptic Gregorian calendar; a month or day outside
/// its calendar range (month `00` or `13`, `04-31`, `02-29` in a common year) is refused.
pub fn parse_date(text: &str) -> Option<i32> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 {
        return None;
    }
    let days = date_days(bytes)?;
    i32::try_from(days).ok()
}

/// Days since 1970-01-01 of the `YYYY-MM-DD` the first ten bytes of `bytes` (at least ten)
/// must be. The eight digits are gathered into one word and read at once ([`digit_pairs`]).
#[inline(always)]
fn date_days(bytes: &[u8]) -> Option<i64> {
    let head = word_at(bytes, 0)?;
    let tail = bytes.get(8..10)?;
    if bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    // `YYYY` stays, `MM` moves down over the first `-`, `DD` goes on top.
    let digits = head & 0xFFFF_FFFF
        | head >> 8 & 0xFFFF_0000_0000
        | u64::from(u16::from_le_bytes([tail[0], tail[1]])) << 48;
    let [century, year, month, day] = digit_pairs(digits)?;
    checked_days_from_civil(
        i64::from(century * 100 + year),
        i64::from(month),
        i64::from(day),
    )
}

/// The eight bytes of `bytes` from `at`, as a little-endian word.
#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    bytes
        .get(at..)?
        .first_chunk::<8>()
        .map(|eight| u64::from_le_bytes(*eight))
}

/// The four two-digit numbers eight ASCII digits write (the first byte the most
/// significant digit of the first number), or `None` when a byte is not an ASCII digit.
/// Each byte is checked within itself: its high nibble must be 3, and adding 6 to it must
/// not carry out of its low nibble (a digit is 0x30 to 0x39).
#[inline(always)]
fn digit_pairs(word: u64) -> Option<[u32; 4]> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    const SIXES: u64 = 0x0606_0606_0606_0606;
    if word & HIGH != THREES || word.wrapping_add(SIXES) & HIGH != THREES {
        return None;
    }
    let values = word & 0x0F0F_0F0F_0F0F_0F0F;
    // Each even byte becomes itself × 10 plus the byte after it (at most 99: no carry).
    let pairs = (values * 10 + (values >> 8)) & 0x00FF_00FF_00FF_00FF;
    Some([0, 16, 32, 48].map(|shift| (pairs >> shift) as u32 & 0xFF))
}

/// Parses an RFC 3339 date-time into microseconds since 1970-01-01T00:00:00Z.
///
/// Accepts `yyyy-MM-ddTHH:mm:ss`, an optional fraction of 1 to 9 digits (truncated to
/// microseconds) and a mandatory offset, `Z` or `±HH:mm`; `T` and `Z` may be lower case as
/// RFC 3339 allows. Leap seconds (`:60`) are refused, and so is an instant whose UTC
/// calendar year is outside 0000–9999, because it cannot be rendered canonically.
pub fn parse_date_time(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || !matches!(bytes[10], b'T' | b't')
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    // `HH:MM:SS` as `HHMMSS00`: each pair moved down over the colons before it.
    let time = word_at(bytes, 11)?;
    let time = time & 0xFFFF | time >> 8 & 0xFFFF_0000 | time >> 16 & 0xFFFF_0000_0000;
    let [hour, minute, second, _] = digit_pairs(time | 0x3030 << 48)?;
    let (hour, minute, second) = (i64::from(hour), i64::from(minute), i64::from(second));
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = date_days(bytes)?;

    let mut rest = &bytes[19..];
    let mut micros = 0i64;
    if let [b'.', fraction @ ..] = rest {
        let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if !(1..=9).contains(&count) {
            return None;
        }
        let mut scale = 100_000i64;
        for &digit in &fraction[..count.min(6)] {
            micros += i64::from(digit - b'0') * scale;
            scale /= 10;
        }
        rest = &fraction[count..];
    }
    let offset_seconds = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let offset_hour = digits(&[*h1, *h2])?;
            let offset_minute = digits(&[*m1, *m2])?;
            if offset_hour > 23 || offset_minute > 59 {
                return None;
            }
            let magnitude = offset_hour * 3600 + offset_minute * 60;
            if *sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return None,
    };
    let local_seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    let utc_micros = (local_seconds - offset_seconds) * 1_000_000 + micros;
    in_renderable_range(utc_micros).then_some(utc_micros)
}

/// Whether an instant (microseconds since the epoch) falls in years 0000–9999 UTC.
pub(super) fn in_renderable_range(micros: i64) -> bool {
    (FIRST_DAY..=LAST_DAY).contains(&micros.div_euclid(MICROS_PER_DAY))
}

/// Whether a day number (days since the epoch) falls in years 0000–9999.
pub(super) fn day_in_renderable_range(days: i64) -> bool {
    (FIRST_DAY..=LAST_DAY).contains(&days)
}

/// Renders days since the epoch as `YYYY-MM-DD`; the day must be in the renderable range.
pub(super) fn render_date(days: i64) -> String {
    let mut out = [0u8; 10];
    write_date(&mut out, days);
    String::from_utf8(out.to_vec()).expect("a rendered date is ASCII")
}

/// Renders microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`; the instant must be
/// in the renderable range.
pub(super) fn render_date_time(micros: i64) -> [u8; DATE_TIME_LEN] {
    let mut out = [0u8; DATE_TIME_LEN];
    let days = micros.div_euclid(MICROS_PER_DAY);
    let of_day = micros.rem_euclid(MICROS_PER_DAY);
    write_date(&mut out[..10], days);
    out[10] = b'T';
    let seconds = of_day / 1_000_000;
    write_two(&mut out[11..13], seconds / 3600);
    out[13] = b':';
    write_two(&mut out[14..16], seconds / 60 % 60);
    out[16] = b':';
    write_two(&mut out[17..19], seconds % 60);
    out[19] = b'.';
    let mut fraction = of_day % 1_000_000;
    for slot in out[20..26].iter_mut().rev() {
        *slot = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    out[26] = b'Z';
    out
}

fn write_date(out: &mut [u8], days: i64) {
    debug_assert!(
        day_in_renderable_range(days),
        "day {days} is not renderable"
    );
    let (year, month, day) = civil_from_days(days);
    write_two(&mut out[0..2], year / 100);
    write_two(&mut out[2..4], year % 100);
    out[4] = b'-';
    write_two(&mut out[5..7], month);
    out[7] = b'-';
    write_two(&mut out[8..10], day);
}

fn write_two(out: &mut [u8], value: i64) {
    out[0] = b'0' + (value / 10) as u8;
    out[1] = b'0' + (value % 10) as u8;
}

/// Parses a run of ASCII digits (at most four) into a number.
/// The number a run of up to four ASCII digits writes; `None` when a byte is not one.
fn digits(bytes: &[u8]) -> Option<i64> {
    debug_assert!(bytes.len() <= 4, "a field of a date or time");
    // Every byte is looked at, without a branch per byte: dates are mostly valid.
    let mut value = 0i64;
    let mut invalid = false;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        invalid |= digit > 9;
        value = value * 10 + i64::from(digit);
    }
    (!invalid).then_some(value)
}

#[cfg(test)]
fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days of each month in a common year, and the days of the year before it (index 1 to 12).
const MONTH_DAYS: [i64; 13] = [0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const DAYS_BEFORE_MONTH: [i64; 13] = [0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];

/// Days since 1970-01-01 of a date of a four-digit year, `None` when the month or the day
/// is outside the calendar.
pub(super) fn checked_days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    if !(1..=12).contains(&month) || !(0..=9999).contains(&year) || !(1..=31).contains(&day) {
        return None;
    }
    // In range: 32-bit arithmetic, whose divisions by constants are cheaper.
    let (year, month, day) = (year as u32, month as usize, day as u32);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let length = MONTH_DAYS[month] as u32 + u32::from(leap && month == 2);
    if day > length {
        return None;
    }
    // Leap years before `year`: the multiples of 4, less those of 100, plus those of 400,
    // in 0..year (year 0, a leap year of the proleptic calendar, among them).
    let leap_years = year.div_ceil(4) - year.div_ceil(100) + year.div_ceil(400);
    let day_of_year = DAYS_BEFORE_MONTH[month] as u32 + u32::from(leap && month > 2) + day - 1;
    Some(i64::from(year * 365 + leap_years + day_of_year) + FIRST_DAY)
}

/// [`checked_days_from_civil`] by Howard Hinnant's algorithm, for any year (the tests check
/// the two against each other).
#[cfg(test)]
pub(super) fn checked_days_from_civil_reference(year: i64, month: i64, day: i64) -> Option<i64> {
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => return None,
    };
    (1..=days_in_month)
        .contains(&day)
        .then(|| days_from_civil(year, month, day))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
#[cfg(test)]
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date of a day number (inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A pragmatic RFC 5322 `addr-spec` check: a dot-atom or quoted local part of at most 64
/// bytes, `@`, and a domain of dot-separated labels (letters, digits, inner hyphens) or a
/// bracketed domain literal; at most 254 bytes in all. Non-ASCII letters are accepted
/// (RFC 6531), comments and folding white space are not.
pub(super) fn is_email(text: &str) -> bool {
    if text.len() > 254 {
        return false;
    }
    if let Some(valid) = plain_email(text.as_bytes()) {
        return valid;
    }
    let Some(at) = text.bytes().rposition(|b| b == b'@') else {
        return false;
    };
    is_email_local_part(&text[..at]) && is_email_domain(&text[at + 1..])
}

/// The bytes of an address as [`plain_email`] reads them.
const EMAIL_OTHER: u8 = 0;
const EMAIL_ALNUM: u8 = 1;
const EMAIL_HYPHEN: u8 = 2;
const EMAIL_DOT: u8 = 3;
const EMAIL_AT: u8 = 4;
/// `atext` of a local part that is not a letter, digit or hyphen.
const EMAIL_ATEXT: u8 = 5;
/// A quote, a bracket or a non-ASCII byte: the full check decides.
const EMAIL_DEFER: u8 = 6;

const EMAIL_CLASS: [u8; 256] = {
    let mut table = [EMAIL_OTHER; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = match byte as u8 {
            b'-' => EMAIL_HYPHEN,
            b'.' => EMAIL_DOT,
            b'@' => EMAIL_AT,
            b'"' | b'[' => EMAIL_DEFER,
            other if other.is_ascii_alphanumeric() => EMAIL_ALNUM,
            other if !other.is_ascii() => EMAIL_DEFER,
            other if ATEXT[other as usize] => EMAIL_ATEXT,
            _ => EMAIL_OTHER,
        };
        byte += 1;
    }
    table
};

/// [`is_email`] for the common address, in one pass: ASCII, a dot-atom local part and a
/// host name (the same rules as [`is_email_local_part`] and [`is_ascii_email_domain`]).
/// `None` for anything else (a quoted local part, a domain literal, a non-ASCII byte, no
/// `@`), which the full check decides.
fn plain_email(bytes: &[u8]) -> Option<bool> {
    let mut at = 0;
    let mut previous = EMAIL_DOT;
    loop {
        // Letters and digits, most of an address, in a loop of their own.
        let run = alnum_run(&bytes[at..]);
        if run > 0 {
            at += run;
            previous = EMAIL_ALNUM;
        }
        let class = EMAIL_CLASS[usize::from(*bytes.get(at)?)];
        match class {
            EMAIL_HYPHEN | EMAIL_ATEXT => {}
            EMAIL_DOT if previous != EMAIL_DOT => {}
            EMAIL_AT => break,
            EMAIL_DEFER => return None,
            _ => return Some(false),
        }
        previous = class;
        at += 1;
    }
    if at == 0 || at > 64 || previous == EMAIL_DOT {
        return Some(false);
    }
    let domain = &bytes[at + 1..];
    if domain.is_empty() || domain.len() > 253 {
        return Some(false);
    }
    let mut label_length = 0;
    let mut previous = EMAIL_DOT;
    let mut at = 0;
    loop {
        let run = alnum_run(&domain[at..]);
        if run > 0 {
            at += run;
            label_length += run;
            if label_length > 63 {
                return Some(false);
            }
            previous = EMAIL_ALNUM;
        }
        let Some(&byte) = domain.get(at) else {
            break;
        };
        let class = EMAIL_CLASS[usize::from(byte)];
        match class {
            EMAIL_HYPHEN if label_length > 0 => label_length += 1,
            EMAIL_DOT if label_length > 0 && previous != EMAIL_HYPHEN => label_length = 0,
            EMAIL_DEFER => return None,
            // A second `@` means the first was in the local part, which no dot-atom allows.
            _ => return Some(false),
        }
        if label_length > 63 {
            return Some(false);
        }
        previous = class;
        at += 1;
    }
    Some(label_length > 0 && previous != EMAIL_HYPHEN)
}

/// The number of ASCII letters and digits `bytes` starts with.
#[inline(always)]
fn alnum_run(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .position(|&byte| EMAIL_CLASS[usize::from(byte)] != EMAIL_ALNUM)
        .unwrap_or(bytes.len())
}

fn is_email_local_part(local: &str) -> bool {
    if local.is_empty() || local.len() > 64 {
        return false;
    }
    if let Some(quoted) = local.strip_prefix('"') {
        let Some(inner) = quoted.strip_suffix('"') else {
            return false;
        };
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    if !chars
                        .next()
                        .is_some_and(|escaped| escaped == ' ' || escaped.is_ascii_graphic())
                    {
                        return false;
                    }
                }
                '"' => return false,
                ' ' => {}
                c if c.is_ascii_graphic() || !c.is_ascii() => {}
                _ => return false,
            }
        }
        return true;
    }
    // A dot-atom: atext runs separated by single dots. Bytes of non-ASCII characters are
    // accepted as atext (RFC 6531).
    let mut previous = b'.';
    for b in local.bytes() {
        let allowed = if b == b'.' {
            previous != b'.'
        } else {
            ATEXT[usize::from(b)]
        };
        if !allowed {
            return false;
        }
        previous = b;
    }
    previous != b'.'
}

/// The bytes of an e-mail address's dot-atom other than the dot: letters, digits, RFC
/// 5322's specials, and every byte of a non-ASCII character. One lookup per byte.
const ATEXT: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = match byte as u8 {
            b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'/' | b'=' | b'?'
            | b'^' | b'_' | b'`' | b'{' | b'|' | b'}' | b'~' => true,
            other => other.is_ascii_alphanumeric() || !other.is_ascii(),
        };
        byte += 1;
    }
    table
};

fn is_email_domain(domain: &str) -> bool {
    if let Some(literal) = domain.strip_prefix('[') {
        return literal.strip_suffix(']').is_some_and(|inner| {
            !inner.is_empty() && inner.bytes().all(|b| matches!(b, 33..=90 | 94..=126))
        });
    }
    if domain.is_empty() || domain.len() > 253 {
        return false;
    }
    // Dot-separated labels of at most 63 characters: letters, digits and inner hyphens.
    if domain.is_ascii() {
        return is_ascii_email_domain(domain.as_bytes());
    }
    let mut label_length = 0;
    let mut previous = '.';
    for c in domain.chars() {
        if c == '.' {
            if label_length == 0 || previous == '-' {
                return false;
            }
            label_length = 0;
        } else {
            let allowed = c.is_ascii_alphanumeric()
                || (c == '-' && label_length > 0)
                || (!c.is_ascii() && c.is_alphanumeric());
            label_length += 1;
            if !allowed || label_length > 63 {
                return false;
            }
        }
        previous = c;
    }
    label_length > 0 && previous != '-'
}

/// [`is_email_domain`]'s labels for an ASCII domain, a byte at a time (the same rules: a
/// non-ASCII letter is the only thing the character loop adds).
fn is_ascii_email_domain(domain: &[u8]) -> bool {
    let mut label_length = 0;
    let mut previous = b'.';
    for &b in domain {
        if b == b'.' {
            if label_length == 0 || previous == b'-' {
                return false;
            }
            label_length = 0;
        } else {
            let allowed = b.is_ascii_alphanumeric() || (b == b'-' && label_length > 0);
            label_length += 1;
            if !allowed || label_length > 63 {
                return false;
            }
        }
        previous = b;
    }
    label_length > 0 && previous != b'-'
}

/// An RFC 3986 absolute URI check: `scheme ":"` followed by URI characters only (unreserved,
/// reserved, `%` and two hex digits), at most one `#`, brackets only around an IP literal
/// host, and a numeric port.
pub(super) fn is_absolute_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.bytes();
    if !scheme_chars.next().is_some_and(|b| b.is_ascii_alphabetic())
        || !scheme_chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return false;
    }
    let (before_fragment, fragment) = match rest.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (rest, None),
    };
    let (hier_part, query) = match before_fragment.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (before_fragment, None),
    };
    let path = match hier_part.strip_prefix("//") {
        Some(after_slashes) => {
            let end = after_slashes.find('/').unwrap_or(after_slashes.len());
            if !is_authority(&after_slashes[..end]) {
                return false;
            }
            &after_slashes[end..]
        }
        None => hier_part,
    };
    is_uri_text(path, b"/:@")
        && query.is_none_or(|query| is_uri_text(query, b"/:@?"))
        && fragment.is_none_or(|fragment| is_uri_text(fragment, b"/:@?"))
}

fn is_authority(authority: &str) -> bool {
    let host_and_port = match authority.rsplit_once('@') {
        Some((user_info, host_and_port)) => {
            if !is_uri_text(user_info, b":") {
                return false;
            }
            host_and_port
        }
        None => authority,
    };
    let (host, port) = if let Some(literal) = host_and_port.strip_prefix('[') {
        let Some((inner, after)) = literal.split_once(']') else {
            return false;
        };
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
        {
            return false;
        }
        match after {
            "" => ("", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match host_and_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_and_port, None),
        }
    };
    is_uri_text(host, b"") && port.is_none_or(|port| port.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `text` holds only unreserved characters, sub-delimiters, `%XX` escapes and the
/// given extra delimiters.
fn is_uri_text(text: &str, extra: &[u8]) -> bool {
    let bytes = text.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        let b = bytes[index];
        if b == b'%' {
            if !(bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit))
            {
                return false;
            }
            index += 3;
            continue;
        }
        let allowed = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || matches!(
                b,
                b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
            )
            || extra.contains(&b);
        if !allowed {
            return false;
        }
        index += 1;
    }
    true
}

/// Whether `text` is a UUID in the 8-4-4-4-12 hexadecimal form (either case).
pub(super) fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(index, b)| match index {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}
