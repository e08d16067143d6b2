use std::io::{Cursor, Read};
use std::path::Path;

use super::*;
use crate::read::input;

/// A stream of `prefix`, `count` copies of `fill`, then `suffix`, made as it is read.
fn stream(prefix: &str, fill: u8, count: u64, suffix: &str) -> Input {
    let bytes = Cursor::new(prefix.as_bytes().to_vec())
        .chain(std::io::repeat(fill).take(count))
        .chain(Cursor::new(suffix.as_bytes().to_vec()));
    input(Box::new(bytes))
}

const BIG: u64 = 16 * 1024 * 1024;

fn open(reader: Input, limit: usize) -> CsvFile {
    CsvFile::open(
        reader,
        Path::new("t.csv"),
        "t.csv",
        &CsvOptions::default(),
        limit,
    )
    .unwrap()
}

fn next(file: &mut CsvFile) -> (String, Vec<Option<String>>) {
    let mut values = Vec::new();
    let kind = match file.next(&mut values).unwrap() {
        Next::End => "end".to_owned(),
        Next::Values => "values".to_owned(),
        Next::Corrupt { message, .. } => format!("corrupt: {message}"),
        Next::Oversized { raw, message } => {
            assert!(raw.len() <= OVERSIZED_PREFIX_BYTES);
            format!("oversized: {message}")
        }
    };
    (kind, values)
}

#[test]
fn an_unterminated_quote_is_read_once_to_the_end_within_the_limit() {
    let mut file = open(stream("a,b\n1,2\n3,\"", b'q', BIG, "\n4,5\n"), 4096);
    assert_eq!(next(&mut file).0, "values");
    let (kind, _) = next(&mut file);
    assert_eq!(
        kind,
        format!(
            "oversized: record 2 is larger than the maximum row size of 4096 bytes ({} bytes \
             and runs to the end of the file); the row is skipped (is a quoted field left open?)",
            BIG + 8
        )
    );
    assert!(file.record.fields.capacity() <= 8192);
    assert_eq!(next(&mut file).0, "end");
}

#[test]
fn a_record_over_the_limit_is_skipped_and_reading_goes_on() {
    let mut file = open(stream("a,b\n\"", b'x', BIG, "\",1\n\"7\nlines\",8\n"), 4096);
    let (kind, _) = next(&mut file);
    assert!(
        kind.starts_with("oversized: record 1 is larger than the maximum row size of 4096 bytes"),
        "{kind}"
    );
    assert!(file.record.fields.capacity() <= 8192);
    let (kind, values) = next(&mut file);
    assert_eq!(kind, "values");
    assert_eq!(values, [Some("7\nlines".to_owned()), Some("8".to_owned())]);
    assert_eq!(next(&mut file).0, "end");
}

#[test]
fn many_tiny_fields_count_towards_the_limit() {
    // One byte per field delimiter: 10,000 empty fields are 10,000 bytes of row.
    let mut file = open(stream("a\n", b',', 10_000, "\nx\n"), 5000);
    assert!(next(&mut file).0.starts_with("oversized: record 1 "));
    assert!(file.record.ends.capacity() <= 8192);
    assert_eq!(next(&mut file).1, [Some("x".to_owned())]);
}

#[test]
fn a_header_over_the_limit_fails_the_file() {
    let reader = stream("", b'h', 10_000, "\n1\n");
    let Err(err) = CsvFile::open(
        reader,
        Path::new("t.csv"),
        "t.csv",
        &CsvOptions::default(),
        100,
    ) else {
        panic!("the header fits");
    };
    assert_eq!(
        err.to_string(),
        "file t.csv cannot be decoded as CSV: the header row is larger than the maximum row \
         size of 100 bytes (10001 bytes)"
    );
}

#[test]
fn records_at_the_limit_are_kept() {
    // "abcd,e": 5 field bytes and 2 fields.
    let mut file = open(stream("h1,h2\nabcd,e\n", b'x', 0, ""), 7);
    assert_eq!(next(&mut file).0, "values");
    let mut file = open(stream("h1,h2\nabcde,e\n", b'x', 0, ""), 7);
    assert!(next(&mut file).0.starts_with("oversized: record 1 "));
}

use proptest::prelude::*;

/// Bytes that are often almost CSV, with the special bytes of `options`.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b",".to_vec()),
        Just(b";".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"abc".to_vec()),
        Just(b"12".to_vec()),
        Just(b"".to_vec()),
        Just("é".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 1..3),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

fn options() -> impl Strategy<Value = CsvOptions> {
    (
        prop_oneof![Just(b','), Just(b';')],
        prop_oneof![Just(b'"'), Just(b'\'')],
        prop_oneof![Just(None), Just(Some(b'\\'))],
        any::<bool>(),
        prop_oneof![Just(crate::Charset::Utf8), Just(crate::Charset::Latin1)],
    )
        .prop_map(|(delimiter, quote, escape, header, charset)| CsvOptions {
            delimiter,
            quote,
            escape,
            null_marker: None,
            header,
            charset,
        })
}

/// One record's values (`None` for null).
type Fields = Vec<Option<String>>;

/// Reads every record of `bytes` with our reader: the header (or the first record) then
/// per record its fields (`None` for an oversized record), or the file-level error.
fn ours(
    bytes: &[u8],
    options: &CsvOptions,
    limit: usize,
) -> Result<(Vec<String>, Vec<Option<Fields>>), ProcessError> {
    let reader = input(Box::new(Cursor::new(bytes.to_vec())));
    let mut file = CsvFile::open(reader, Path::new("f"), "f", options, limit)?;
    let header = file.header().to_vec();
    let mut records = Vec::new();
    let mut values = Vec::new();
    loop {
        match file.next(&mut values)? {
            Next::End => return Ok((header, records)),
            Next::Values | Next::Corrupt { .. } => records.push(Some(values.clone())),
            Next::Oversized { raw, .. } => {
                assert!(raw.len() <= limit.min(OVERSIZED_PREFIX_BYTES));
                records.push(None);
            }
        }
        let bound = limit.saturating_add(1).saturating_mul(2).saturating_add(64);
        assert!(file.record.fields.capacity() <= bound);
        assert!(file.record.ends.capacity() <= bound);
    }
}

/// What one read of a record gave: its kind, and its fields for a record of values.
#[derive(Debug, PartialEq)]
enum Outcome {
    Values(Fields),
    Corrupt(String),
    Oversized(String),
    Error(String),
}

/// Reads every record of `bytes` with `next` (`text: false`) or with `next_text` and
/// `text` (`text: true`).
fn reads(bytes: &[u8], options: &CsvOptions, limit: usize, text: bool) -> Vec<Outcome> {
    let reader = input(Box::new(Cursor::new(bytes.to_vec())));
    let mut file = match CsvFile::open(reader, Path::new("f"), "f", options, limit) {
        Ok(file) => file,
        Err(err) => return vec![Outcome::Error(err.to_string())],
    };
    let mut reads = Vec::new();
    let mut values = Vec::new();
    loop {
        let next = if text {
            file.next_text()
        } else {
            file.next(&mut values)
        };
        reads.push(match next {
            Err(err) => Outcome::Error(err.to_string()),
            Ok(Next::End) => return reads,
            Ok(Next::Values) if text => Outcome::Values(
                file.text()
                    .fields()
                    .map(|field| field.map(str::to_owned))
                    .collect(),
            ),
            Ok(Next::Values) => Outcome::Values(values.clone()),
            Ok(Next::Corrupt { raw, message }) => {
                Outcome::Corrupt(format!("{message}: {}", String::from_utf8_lossy(&raw)))
            }
            Ok(Next::Oversized { raw, message }) => {
                Outcome::Oversized(format!("{message}: {}", String::from_utf8_lossy(&raw)))
            }
        });
        if matches!(reads.last(), Some(Outcome::Error(_))) {
            return reads;
        }
    }
}

#[test]
fn plain_lines_are_read_in_place_with_the_same_fields() {
    let bytes = b"a,b,c\n1,,x\n\"q\",2,3\n4,5\n,,\r\n6,7,8\n9,\xff,0\n10,11,12";
    let options = CsvOptions::default();
    let expected = reads(bytes, &options, usize::MAX, false);
    assert_eq!(reads(bytes, &options, usize::MAX, true), expected);
    assert_eq!(expected.len(), 6, "{expected:?}");
    assert_eq!(
        expected[0],
        Outcome::Values(vec![Some("1".to_owned()), None, Some("x".to_owned())])
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `next_text` reads the records, fields and errors `next` reads, whether a record is
    /// a plain line read in place or goes through csv_core.
    #[test]
    fn next_text_reads_what_next_reads(
        bytes in csvish(),
        options in options(),
        limit in prop_oneof![Just(usize::MAX), 1usize..40],
    ) {
        prop_assert_eq!(
            reads(&bytes, &options, limit, true),
            reads(&bytes, &options, limit, false)
        );
    }

    /// Without a row limit our reader splits records and fields exactly as the csv crate
    /// does with the same options; a file is refused only with a typed file-level error.
    #[test]
    fn csv_records_match_the_csv_crate(bytes in csvish(), options in options()) {
        let Ok((header, records)) = ours(&bytes, &options, usize::MAX) else {
            let err = ours(&bytes, &options, usize::MAX).unwrap_err();
            prop_assert!(matches!(err, ProcessError::File(_)), "{err}");
            return Ok(());
        };
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(options.delimiter)
            .quote(options.quote)
            .escape(options.escape)
            .double_quote(true)
            .from_reader(body);
        let theirs: Vec<csv::ByteRecord> = reader.byte_records().map(Result::unwrap).collect();
        let decode = |field: &[u8]| super::decode(field, options.charset).map(|text| text.into_owned());
        let first: Vec<String> = theirs[0].iter().map(|field| decode(field).unwrap()).collect();
        if options.header {
            prop_assert_eq!(&header, &first);
        } else {
            prop_assert_eq!(header.len(), first.len());
        }
        let data = if options.header { &theirs[1..] } else { &theirs[..] };
        prop_assert_eq!(records.len(), data.len());
        for (ours, theirs) in records.iter().zip(data) {
            let theirs: Vec<Option<String>> = theirs
                .iter()
                .map(|field| decode(field).filter(|text| !text.is_empty()))
                .collect();
            prop_assert_eq!(ours.as_ref().unwrap(), &theirs);
        }
    }

    /// With a small row limit: never a panic, a typed outcome, records within the limit, and
    /// buffers bounded by it (checked in `ours`).
    #[test]
    fn csv_records_stay_within_the_row_limit(
        bytes in prop_oneof![csvish(), proptest::collection::vec(any::<u8>(), 0..200)],
        options in options(),
        limit in 1usize..24,
    ) {
        match ours(&bytes, &options, limit) {
            Ok((_, records)) => {
                for record in records.iter().flatten() {
                    let size: usize = record.iter().map(|field| field.as_ref().map_or(0, String::len)).sum();
                    // Field bytes plus one per field, as read (Latin-1 text may be longer).
                    prop_assert!(size <= 2 * limit, "{record:?}");
                }
            }
            Err(err) => prop_assert!(matches!(err, ProcessError::File(_)), "{err}"),
        }
    }
}

proptest! {
    /// The word-at-a-time search finds every delimiter, as a plain loop does.
    #[test]
    fn delimiters_are_found_as_a_plain_loop_finds_them(
        line in proptest::collection::vec(prop_oneof![Just(b','), Just(b';'), Just(0xac), any::<u8>()], 0..70),
        delimiter in prop_oneof![Just(b','), Just(b';'), Just(0x2c ^ 0x80)],
    ) {
        let mut found = Vec::new();
        let ascii = super::delimiters(&line, delimiter, &mut found);
        prop_assert_eq!(ascii, line.is_ascii());
        let expected: Vec<usize> = line
            .iter()
            .enumerate()
            .filter(|(_, byte)| **byte == delimiter)
            .map(|(at, _)| at)
            .collect();
        prop_assert_eq!(found, expected);
    }
}
