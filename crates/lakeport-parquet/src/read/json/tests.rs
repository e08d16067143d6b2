use std::io::{Cursor, Read};

use super::*;
use crate::read::input;

/// A stream of `prefix`, `count` copies of `fill`, then `suffix`, made as it is read: the
/// test holds none of it.
fn stream(prefix: &str, fill: u8, count: u64, suffix: &str) -> Input {
    let bytes = Cursor::new(prefix.as_bytes().to_vec())
        .chain(std::io::repeat(fill).take(count))
        .chain(Cursor::new(suffix.as_bytes().to_vec()));
    input(Box::new(bytes))
}

const BIG: u64 = 16 * 1024 * 1024;

#[test]
fn a_line_over_the_limit_is_read_through_without_being_held() {
    let mut reader = stream("{\"a\": \"", b'x', BIG, "\"}\r\n{\"b\": 1}");
    let mut line = Vec::new();
    let read = read_line(&mut reader, &mut line, 4096).unwrap();
    assert_eq!(
        read,
        Line::Oversized {
            bytes: BIG + 10,
            to_end: false
        }
    );
    assert_eq!(line.len(), OVERSIZED_PREFIX_BYTES);
    assert!(line.starts_with(b"{\"a\": \"xxx"));
    // The buffer grew to the limit at most, never to the line.
    assert!(line.capacity() <= 8192, "{}", line.capacity());
    assert_eq!(
        read_line(&mut reader, &mut line, 4096).unwrap(),
        Line::Complete
    );
    assert_eq!(line, b"{\"b\": 1}");
    assert_eq!(read_line(&mut reader, &mut line, 4096).unwrap(), Line::End);
}

#[test]
fn a_line_at_the_limit_is_kept_and_a_last_line_without_newline_counts() {
    let mut reader = stream("", b'x', 100, "\nabc");
    let mut line = Vec::new();
    assert_eq!(
        read_line(&mut reader, &mut line, 100).unwrap(),
        Line::Complete
    );
    assert_eq!(line.len(), 100);
    assert_eq!(
        read_line(&mut reader, &mut line, 2).unwrap(),
        Line::Oversized {
            bytes: 3,
            to_end: true
        }
    );
    assert_eq!(line, b"ab");
}

fn elements(text: &str, limit: usize) -> Result<Vec<(Element, String)>, String> {
    let mut splitter = Elements::new(text.as_bytes(), limit);
    let mut out = Vec::new();
    let mut element = Vec::new();
    loop {
        match splitter.next(&mut element) {
            Ok(Element::End) => return Ok(out),
            Ok(kind) => out.push((kind, String::from_utf8(element.clone()).unwrap())),
            Err(ArrayError::Syntax(reason)) => return Err(reason),
            Err(ArrayError::Io(err)) => panic!("{err}"),
        }
    }
}

#[test]
fn the_splitter_finds_elements_of_every_kind() {
    let text = r#" [ {"a": "x,]}\"{"}, [1, [2]], "s\\", 12.5e3 ,true,null, {} ] "#;
    let found: Vec<String> = elements(text, 1000)
        .unwrap()
        .into_iter()
        .map(|(kind, bytes)| {
            assert_eq!(kind, Element::Value);
            bytes
        })
        .collect();
    assert_eq!(
        found,
        [
            r#"{"a": "x,]}\"{"}"#,
            "[1, [2]]",
            r#""s\\""#,
            "12.5e3",
            "true",
            "null",
            "{}"
        ]
    );
    assert_eq!(elements("[]", 10).unwrap(), []);
    assert_eq!(elements(" [ ]\n", 10).unwrap(), []);
}

#[test]
fn the_splitter_refuses_what_is_not_one_array() {
    for (text, reason) in [
        ("{}", "expected '[' at byte 0, found '{'"),
        ("[1,]", "expected an element at byte 3, found ']'"),
        ("[,1]", "expected an element at byte 1, found ','"),
        (
            "[1 2]",
            "expected ',' or ']' after an element at byte 3, found '2'",
        ),
        (
            "[1",
            "expected ',' or ']' after an element at byte 2, found the end of the file",
        ),
        (
            "[{\"a\": 1",
            "expected the rest of the element at byte 8, found the end of the file",
        ),
        (
            "[\"open",
            "expected the rest of the element at byte 6, found the end of the file",
        ),
        (
            "[] x",
            "expected nothing after the array at byte 3, found 'x'",
        ),
        (
            "[",
            "expected an element at byte 1, found the end of the file",
        ),
    ] {
        assert_eq!(elements(text, 100).unwrap_err(), reason, "{text}");
    }
}

#[test]
fn an_element_over_the_limit_is_skipped_and_the_array_goes_on() {
    let mut reader = stream(
        "[{\"a\": 1}, {\"big\": \"",
        b'y',
        BIG,
        "\"}, {\"c\": [\"]\"]}]",
    );
    let mut splitter = Elements::new(&mut reader, 4096);
    let mut element = Vec::new();
    assert_eq!(splitter.next(&mut element).unwrap(), Element::Value);
    assert_eq!(
        splitter.next(&mut element).unwrap(),
        Element::Oversized { bytes: BIG + 11 }
    );
    assert!(element.starts_with(b"{\"big\": \"yyy"));
    assert!(element.capacity() <= 8192, "{}", element.capacity());
    assert_eq!(splitter.next(&mut element).unwrap(), Element::Value);
    assert_eq!(element, b"{\"c\": [\"]\"]}");
    assert_eq!(splitter.next(&mut element).unwrap(), Element::End);
}

#[test]
fn deep_nesting_is_not_recursion() {
    let depth = 1_000_000;
    let text = format!("[{}{}]", "[".repeat(depth), "]".repeat(depth));
    let found = elements(&text, usize::MAX).unwrap();
    assert_eq!(found.len(), 1);
    // serde_json itself refuses it (its recursion limit), as an ordinary decoding error.
    assert!(serde_json::from_slice::<Value>(found[0].1.as_bytes()).is_err());
}

/// A sink that keeps what it is given.
#[derive(Default)]
struct Collect {
    rows: Vec<Value>,
    corrupt: Vec<(Vec<u8>, String)>,
}

impl RowSink for Collect {
    fn row(&mut self, row: Value, original: &dyn Fn() -> Value) -> Result<Flow, ProcessError> {
        assert_eq!(original(), row);
        self.rows.push(row);
        Ok(Flow::Continue)
    }

    fn corrupt(&mut self, raw: &[u8], message: String) -> Result<Flow, ProcessError> {
        self.corrupt.push((raw.to_vec(), message));
        Ok(Flow::Continue)
    }
}

fn lines_of(bytes: &[u8], limit: usize) -> (Result<(), ProcessError>, Collect) {
    let mut sink = Collect::default();
    let reader = input(Box::new(Cursor::new(bytes.to_vec())));
    let result = read_lines(reader, Path::new("f"), "f", limit, &mut sink);
    (result, sink)
}

fn array_of(bytes: &[u8], limit: usize) -> (Result<(), ProcessError>, Collect) {
    let mut sink = Collect::default();
    let reader = input(Box::new(Cursor::new(bytes.to_vec())));
    let result = read_array(reader, Path::new("f"), "f", limit, &mut sink);
    (result, sink)
}

/// Bytes that are often almost JSON: tokens, fragments and noise.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b"\"".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\n".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\"k\": ".to_vec()),
        Just(b"\"text\"".to_vec()),
        Just(b"12".to_vec()),
        Just(b"-3.5e2".to_vec()),
        Just(b"true".to_vec()),
        Just(b"null".to_vec()),
        Just(b"\"\\u00e9\\\"\"".to_vec()),
        Just(b"\x0c".to_vec()),
        Just("é".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ];
    proptest::collection::vec(token, 0..40).prop_map(|tokens| tokens.concat())
}

use proptest::prelude::*;

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        // Quarters parse back exactly (serde_json's float parsing is not round-trip exact).
        (-4000i32..4000).prop_map(|quarters| Value::from(f64::from(quarters) / 4.0)),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,4}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// JSON Lines against a model that splits on `\n`: every non-blank line is a row when
    /// it is valid JSON within the limit, else a corrupt row whose kept bytes stay within
    /// the limit; the only file-level outcome is an empty file.
    #[test]
    fn json_lines_match_a_line_splitting_model(
        bytes in prop_oneof![jsonish(), proptest::collection::vec(any::<u8>(), 0..200)],
        limit in 1usize..64,
    ) {
        let (result, sink) = lines_of(&bytes, limit);
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let mut lines: Vec<&[u8]> = body.split(|&byte| byte == b'\n').collect();
        if body.ends_with(b"\n") || body.is_empty() {
            lines.pop();
        }
        let mut rows = Vec::new();
        let mut corrupt = 0;
        for line in &lines {
            if line.len() > limit {
                corrupt += 1;
            } else if !line.trim_ascii().is_empty() {
                match serde_json::from_slice::<Value>(line.trim_ascii()) {
                    Ok(value) => rows.push(value),
                    Err(_) => corrupt += 1,
                }
            }
        }
        prop_assert_eq!(&sink.rows, &rows);
        prop_assert_eq!(sink.corrupt.len(), corrupt);
        for (raw, _) in &sink.corrupt {
            prop_assert!(raw.len() <= limit.min(OVERSIZED_PREFIX_BYTES));
        }
        match result {
            Ok(()) => prop_assert!(!rows.is_empty() || corrupt > 0),
            Err(ProcessError::File(crate::FileError::Empty { .. })) => {
                prop_assert!(rows.is_empty() && corrupt == 0);
            }
            Err(other) => prop_assert!(false, "unexpected error {other}"),
        }
    }

    /// A JSON array without a row limit against serde_json reading the whole array: the same
    /// rows, or both refuse the file.
    #[test]
    fn json_arrays_match_serde_json(bytes in jsonish()) {
        let (result, sink) = array_of(&bytes, usize::MAX);
        let whole = serde_json::from_slice::<Vec<Value>>(&bytes);
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        match (&result, whole) {
            (Ok(()), Ok(elements)) => {
                prop_assert_eq!(&sink.rows, &elements);
                prop_assert!(sink.corrupt.is_empty());
            }
            (Err(ProcessError::File(crate::FileError::Empty { .. })), _) => prop_assert!(blank),
            (Err(ProcessError::File(crate::FileError::Undecodable { .. })), Err(_)) => {}
            (result, whole) => prop_assert!(false, "ours {result:?}, serde_json {whole:?}"),
        }
    }

    /// Real arrays, compact or pretty-printed: every element comes back; with a row limit,
    /// exactly the elements longer than it (as written) are corrupt rows.
    #[test]
    fn json_arrays_of_real_values_come_back(
        elements in proptest::collection::vec(json_value(), 0..8),
        pretty in any::<bool>(),
        limit in 1usize..200,
    ) {
        let bytes = if pretty {
            serde_json::to_vec_pretty(&elements).unwrap()
        } else {
            serde_json::to_vec(&elements).unwrap()
        };
        let (result, sink) = array_of(&bytes, usize::MAX);
        prop_assert!(result.is_ok());
        prop_assert_eq!(&sink.rows, &elements);
        if !pretty {
            let (result, sink) = array_of(&bytes, limit);
            prop_assert!(result.is_ok());
            let fitting: Vec<&Value> = elements
                .iter()
                .filter(|element| serde_json::to_vec(element).unwrap().len() <= limit)
                .collect();
            prop_assert_eq!(sink.rows.iter().collect::<Vec<_>>(), fitting);
            prop_assert_eq!(sink.corrupt.len() + sink.rows.len(), elements.len());
        }
    }

    /// With a small row limit, arrays never fail other than as a typed file error, and what
    /// is kept of an oversized element stays within the limit.
    #[test]
    fn json_arrays_stay_within_the_row_limit(bytes in jsonish(), limit in 1usize..32) {
        let (result, sink) = array_of(&bytes, limit);
        prop_assert!(matches!(result, Ok(()) | Err(ProcessError::File(_))), "{result:?}");
        for (raw, message) in &sink.corrupt {
            prop_assert!(raw.len() <= limit, "{message}");
            prop_assert!(message.contains("larger than the maximum row size"));
        }
        for row in &sink.rows {
            prop_assert!(serde_json::to_vec(row).unwrap().len() <= limit * 6 + 2);
        }
    }
}

/// Rows across the read-ahead's block boundaries, blank lines and one row too long among
/// them: the rows and corrupt rows are those of a buffered read.
#[test]
fn json_lines_read_ahead_are_the_rows_of_a_buffered_read() {
    let mut text = String::new();
    let mut row = 0u64;
    while text.len() < 3 * crate::read::AHEAD_BLOCK + 1000 {
        row += 1;
        let pad = "p".repeat((row * 37 % 900) as usize);
        text.push_str(&format!("{{\"row\": {row}, \"pad\": \"{pad}\"}}\n"));
        if row.is_multiple_of(1000) {
            text.push_str("\n  \n");
        }
        if row == 2000 {
            text.push_str(&format!("{{\"long\": \"{}\"}}\n", "x".repeat(5000)));
        }
    }
    let limit = 4096;
    let mut buffered = Collect::default();
    read_lines(
        input(Box::new(Cursor::new(text.clone().into_bytes()))),
        Path::new("f"),
        "f",
        limit,
        &mut buffered,
    )
    .unwrap();
    let mut ahead = Collect::default();
    let reader = Input::read_ahead(Box::new(Cursor::new(text.into_bytes()))).unwrap();
    read_lines(reader, Path::new("f"), "f", limit, &mut ahead).unwrap();
    assert_eq!(ahead.rows.len() as u64, row);
    assert_eq!(ahead.rows, buffered.rows);
    assert_eq!(ahead.corrupt, buffered.corrupt);
    assert_eq!(ahead.corrupt.len(), 1);
}
