use serde_json::Value;

use super::tape::{Tape, Token};

/// Rebuilds a `Value` from the tape, to compare with serde_json's own.
fn value_of(tape: &Tape, at: usize) -> Value {
    match tape.token(at) {
        Token::Null => Value::Null,
        Token::Bool(flag) => Value::Bool(flag),
        token @ (Token::PosInt(_) | Token::NegInt(_) | Token::Float(_)) => {
            Value::Number(super::tape::number_of(token).unwrap())
        }
        Token::Str { start, end } => Value::from(tape.str(start, end)),
        Token::Array { len, .. } => {
            let mut items = Vec::new();
            let mut item_at = at + 1;
            for _ in 0..len {
                items.push(value_of(tape, item_at));
                item_at = tape.skip(item_at);
            }
            Value::Array(items)
        }
        Token::Object { len, .. } => {
            let mut fields = serde_json::Map::new();
            let mut key_at = at + 1;
            for _ in 0..len {
                fields.insert(tape.key(key_at).to_owned(), value_of(tape, key_at + 1));
                key_at = tape.skip(key_at + 1);
            }
            Value::Object(fields)
        }
    }
}

#[track_caller]
fn check(text: &[u8]) {
    let mut tape = Tape::default();
    let parsed = tape.parse(text);
    match serde_json::from_slice::<Value>(text) {
        Ok(expected) => {
            assert!(parsed.is_ok(), "{parsed:?}");
            assert_eq!(value_of(&tape, 0), expected);
            let mut again = Tape::default();
            again.set_value(&expected);
            assert_eq!(value_of(&again, 0), expected);
        }
        Err(err) => assert_eq!(parsed.unwrap_err().to_string(), err.to_string()),
    }
}

#[test]
fn the_tape_accepts_and_refuses_what_serde_json_does() {
    for text in [
        &b"{\"a\":1,\"b\":[true,null,-2,3.5,\"x\\ny\"],\"c\":{\"d\":{}}}"[..],
        b"[1,[2,[3]],{}]",
        b"-0",
        b"1e400",
        b"18446744073709551615",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"0.1",
        b"\"\\ud800\"",
        b"\"\\ud83d\\ude00\"",
        b"\"\xff\"",
        b"{\"a\":1,}",
        b"{} {}",
        b"  {\"a\" : 1 }  ",
        b"{\"a\":1,\"a\":2}",
        b"",
        b"nul",
    ] {
        check(text);
    }
}

#[test]
fn nested_fields_count_entries_and_items() {
    let mut tape = Tape::default();
    tape.parse(b"{\"a\":[1,{\"b\":null,\"c\":[]}],\"d\":2}")
        .unwrap();
    // The object's value at token 2 is the array [1, {...}]: 2 items + 2 entries.
    assert_eq!(tape.nested_fields(2), 4);
    assert_eq!(tape.nested_fields(0), 6);
}
