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
