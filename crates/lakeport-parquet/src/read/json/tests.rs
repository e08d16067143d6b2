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
