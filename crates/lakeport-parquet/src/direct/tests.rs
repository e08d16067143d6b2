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

/// A small deterministic generator (xorshift), so that a failure is reproducible.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % bound as u64) as usize
    }

    /// Returns `text` with one to three characters inserted, removed or replaced by
    /// characters of `alphabet`.
    fn edit(&mut self, text: &str, alphabet: &[char]) -> String {
        let mut text: Vec<char> = text.chars().collect();
        for _ in 0..1 + self.below(3) {
            let at = self.below(text.len() + 1);
            let pick = alphabet[self.below(alphabet.len())];
            match self.below(3) {
                0 => text.insert(at, pick),
                1 if at < text.len() => {
                    text.remove(at);
                }
                _ if at < text.len() => text[at] = pick,
                _ => text.push(pick),
            }
        }
        text.into_iter().collect()
    }
}

/// The scanner's answer for `text` against serde_json's: when the scanner accepts a row,
/// serde_json accepts it too with the very same tokens and text. Returns whether the
/// scanner accepted it.
#[track_caller]
fn scanner_agrees(text: &str) -> bool {
    let mut scanned = Tape::default();
    let accepted = super::scan::scan(&mut scanned, text).is_some();
    let mut reference = Tape::default();
    let parsed = reference.parse_with_serde(text);
    if accepted {
        assert!(
            parsed.is_ok(),
            "the scanner accepted what serde_json refuses ({parsed:?}): {text:?}"
        );
        assert_eq!(
            scanned.dump(),
            reference.dump(),
            "different tapes for {text:?}"
        );
    }
    accepted
}

#[test]
fn the_scanner_accepts_only_what_serde_json_accepts_with_the_same_tokens() {
    let seeds = [
        r#"{"_id":"a-1","timestamp":"2024-01-02T03:04:05Z","eventType":"commerce.purchases","_acme":{"loyalty":{"points":1200,"tier":"gold"},"order":{"priceTotal":123.45,"items":[1,2,3]},"score":-0.5e-3,"optIn":true,"none":null}}"#,
        r#"[1, -2, 3.0, 4e10, 5E-2, 0, -9223372036854775807, 18446744073709551615, [], {}, [[[]]], "é ü 😀"]"#,
        "  {\"a\" :\t{ \"b\" : [ true , false , null ] } }\r\n",
        r#"{"a":1,"a":2,"":""}"#,
    ];
    for seed in seeds {
        assert!(
            scanner_agrees(seed),
            "the scanner gave up on plain JSON: {seed}"
        );
    }
    // Rows the scanner leaves to serde_json, which accepts or refuses them itself.
    for text in [
        r#"{"a":"x\ny"}"#,
        "-0",
        "01",
        "1.",
        ".5",
        "1e",
        "+1",
        "-",
        "18446744073709551616",
        "-9223372036854775808",
        "1e400",
        r#"{"a":1,}"#,
        "[1,]",
        "[1 2]",
        r#"{"a" 1}"#,
        "{} {}",
        "nul",
        "tru",
        "\"\u{1}\"",
        "\"unterminated",
        "",
        &"[".repeat(200),
    ] {
        assert!(!scanner_agrees(text), "the scanner accepted {text:?}");
    }
    // Random edits of the seeds: whatever the scanner accepts, serde_json accepts the same.
    let alphabet: Vec<char> = "{}[]\",:.-+eE0123456789 \t\n\\truefalsn\u{1}é"
        .chars()
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0;
    for round in 0..20_000 {
        let text = rng.edit(seeds[round % seeds.len()], &alphabet);
        if scanner_agrees(&text) {
            accepted += 1;
        }
    }
    // Many edits keep the JSON valid (a digit for a digit, a space added), so the
    // comparison above covered accepted rows, not only refusals.
    assert!(accepted > 1000, "only {accepted} edited rows were accepted");
}

/// A JSON case of the validator corpus: its validator, Arrow schema and rows.
struct Case {
    name: String,
    validator: lakeport_domain::xdm::validate::Validator,
    arrow: arrow_schema::SchemaRef,
    rows: Vec<String>,
}

/// Reads the corpus cases whose rows are JSON (`lakeport-domain/testdata/xdm`).
fn json_cases() -> Vec<Case> {
    use lakeport_domain::xdm::validate::{UnknownFields, Validator, ValidatorOptions};
    let corpus =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lakeport-domain/testdata/xdm");
    let mut cases = Vec::new();
    let mut dirs: Vec<_> = std::fs::read_dir(&corpus)
        .expect("the corpus is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let mut options = ValidatorOptions::default();
        let mut schema_file = "schema.json".to_owned();
        if let Ok(text) = std::fs::read_to_string(dir.join("options.json")) {
            let settings: Value = serde_json::from_str(&text).expect("options are JSON");
            if settings
                .get("source")
                .is_some_and(|source| source != "json")
            {
                continue;
            }
            if settings["unknownFields"] == "reject" {
                options.unknown_fields = UnknownFields::Reject;
            }
            if let Some(limit) = settings["maxFieldsPerRow"].as_u64() {
                options.max_fields_per_row = usize::try_from(limit).expect("a small limit");
            }
            if let Some(schema) = settings["schema"].as_str() {
                schema_file = schema.to_owned();
            }
        }
        let schema: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(&schema_file)).expect("the schema is readable"),
        )
        .expect("the schema is JSON");
        let rows = std::fs::read_to_string(dir.join("rows.jsonl")).expect("rows are readable");
        cases.push(Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            validator: Validator::compile_with(&schema, options).expect("the schema compiles"),
            arrow: std::sync::Arc::new(
                crate::schema::arrow_schema(&schema).expect("the schema maps to Arrow"),
            ),
            rows: rows.lines().map(str::to_owned).collect(),
        });
    }
    cases
}

/// Offers `text` to the walk from the text and to the tape walk, each on its own columns.
/// When the first accepts a row, the second must accept it with the same columns; a row
/// only the tape walk accepts is appended to both. Returns whether each walk accepted it.
#[track_caller]
fn walks_agree(
    case: &Case,
    from_text: &mut super::RowBuilder,
    on_tape: &mut super::RowBuilder,
    text: &str,
) -> (bool, bool) {
    let by_text = from_text.text_row_only(&case.validator, text);
    let refused = from_text.walker.refused;
    let by_tape = on_tape.tape_row_only(&case.validator, text.as_bytes());
    if refused {
        // The row goes straight to the row validator: the tape walk must not accept it.
        assert!(
            !by_tape,
            "{}: the text walk refused a row the tape walk accepts: {text}",
            case.name
        );
    }
    if by_text {
        assert!(
            by_tape,
            "{}: the text walk accepted a row the tape walk refuses: {text}",
            case.name
        );
    } else if by_tape {
        assert!(from_text.tape_row_only(&case.validator, text.as_bytes()));
    }
    if by_text || by_tape {
        assert_eq!(
            from_text.finish().unwrap(),
            on_tape.finish().unwrap(),
            "{}: different columns for {text}",
            case.name
        );
    }
    (by_text, by_tape)
}

#[test]
fn the_walk_from_the_text_accepts_only_what_the_tape_walk_accepts_with_the_same_values() {
    let cases = json_cases();
    assert!(cases.len() >= 8, "only {} JSON cases", cases.len());
    let alphabet: Vec<char> = "{}[]\",:.-+eE0123456789 \t\\truefalsnxyzT:Z@\u{1}é"
        .chars()
        .collect();
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    // Rows offered, accepted by the text walk, accepted by the tape walk.
    let mut counts = [0usize; 4];
    let mut count = |(by_text, by_tape): (bool, bool), refused: bool| {
        counts[0] += 1;
        counts[1] += usize::from(by_text);
        counts[2] += usize::from(by_tape);
        counts[3] += usize::from(refused);
    };
    for case in &cases {
        let mut from_text = super::RowBuilder::new(&case.validator, case.arrow.clone()).unwrap();
        let mut on_tape = super::RowBuilder::new(&case.validator, case.arrow.clone()).unwrap();
        for row in &case.rows {
            let agreed = walks_agree(case, &mut from_text, &mut on_tape, row);
            count(agreed, from_text.walker.refused);
        }
        // Random edits of the case's rows: values of other types, broken syntax, keys
        // renamed or repeated.
        for _ in 0..2_000 {
            let row = rng.below(case.rows.len());
            let text = rng.edit(&case.rows[row], &alphabet);
            let agreed = walks_agree(case, &mut from_text, &mut on_tape, &text);
            count(agreed, from_text.walker.refused);
        }
    }
    let [offered, by_text, by_tape, refused] = counts;
    assert!(
        refused > 2_000,
        "only {refused} rows were refused by a check"
    );
    // Most edits make a row invalid, and both walks give up on it; of the rows the tape
    // walk accepts, the text walk leaves only those with escapes and the like to it.
    assert!(
        by_text > 2_000 && by_text * 100 >= by_tape * 95,
        "of {offered} rows, the text walk accepted {by_text} and the tape walk {by_tape}"
    );
}

#[test]
fn decimals_the_scanner_converts_are_serde_json_s_doubles() {
    let mut rng = Rng(0x51_7cc1_b727_220a);
    let mut checked = 0;
    for _ in 0..100_000 {
        let integer: String = match rng.below(4) {
            0 => "0".to_owned(),
            _ => {
                let len = 1 + rng.below(17);
                let mut digits: String = (0..len)
                    .map(|_| char::from(b'0' + rng.below(10) as u8))
                    .collect();
                if digits.starts_with('0') {
                    digits.replace_range(0..1, "7");
                }
                digits
            }
        };
        let fraction: String = (0..1 + rng.below(24))
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect();
        let sign = if rng.below(2) == 0 { "" } else { "-" };
        let text = format!("{sign}{integer}.{fraction}");
        let mut tape = Tape::default();
        assert!(super::scan::scan(&mut tape, &text).is_some(), "{text}");
        let Token::Float(scanned) = tape.token(0) else {
            panic!("{text} is not a double on the tape");
        };
        let expected: f64 = serde_json::from_str(&text).unwrap();
        assert_eq!(scanned.to_bits(), expected.to_bits(), "{text}");
        checked += 1;
    }
    assert_eq!(checked, 100_000);
}

/// Integers up to and past 64 bits: the scanner's token is serde_json's number, or the
/// scanner leaves the text to serde_json (past `u64`, below `i64`, `-0`).
#[test]
fn integers_the_scanner_reads_are_serde_json_s() {
    let mut rng = Rng(0x2b99_2ddf_a232_49d6);
    for round in 0..100_000 {
        let len = 1 + rng.below(22);
        let mut digits: String = (0..len)
            .map(|_| char::from(b'0' + rng.below(10) as u8))
            .collect();
        if digits.starts_with('0') && len > 1 {
            digits.replace_range(0..1, "9");
        }
        if round % 7 == 0 {
            // Near the edges of `u64` and `i64`.
            digits = [
                "18446744073709551615",
                "18446744073709551616",
                "9223372036854775808",
                "9223372036854775807",
                "99999999999999999999",
                "10000000000000000000",
                "0",
            ][round / 7 % 7]
                .to_owned();
        }
        let sign = if rng.below(2) == 0 { "" } else { "-" };
        let text = format!("{sign}{digits}");
        let expected: serde_json::Number = serde_json::from_str(&text).unwrap();
        let mut tape = Tape::default();
        match super::scan::scan(&mut tape, &text) {
            // Left to serde_json: fine at the edges, never for an ordinary integer.
            None => assert!(
                digits.len() >= 19 || text == "-0",
                "{text} was left to serde_json, which reads {expected}"
            ),
            Some(()) => match tape.token(0) {
                Token::PosInt(value) => assert_eq!(Some(value), expected.as_u64(), "{text}"),
                Token::NegInt(value) => assert_eq!(Some(value), expected.as_i64(), "{text}"),
                other => panic!("{text} scanned as {other:?}"),
            },
        }
    }
}

#[test]
fn keys_with_characters_json_escapes_are_never_matched_raw() {
    use lakeport_domain::xdm::validate::Validator;
    let schema = serde_json::json!({
        "$id": "https://ns.adobe.com/acme/schemas/keys",
        "title": "keys",
        "meta:class": "https://ns.adobe.com/xdm/data/record",
        "type": "object",
        "meta:xdmType": "object",
        "properties": {
            "a\"b": {"type": "string", "meta:xdmType": "string"},
            "c": {"type": "string", "meta:xdmType": "string"},
            "": {"type": "string", "meta:xdmType": "string"}
        }
    });
    let validator = Validator::compile(&schema).unwrap();
    let arrow = std::sync::Arc::new(crate::schema::arrow_schema(&schema).unwrap());
    let mut from_text = super::RowBuilder::new(&validator, arrow.clone()).unwrap();
    let mut on_tape = super::RowBuilder::new(&validator, arrow).unwrap();
    let case = Case {
        name: "keys".to_owned(),
        validator,
        arrow: std::sync::Arc::new(arrow_schema::Schema::empty()),
        rows: Vec::new(),
    };
    // The same rows twice, so that the second time every key is predicted.
    for _ in 0..2 {
        for row in [
            r#"{"c":"1","":"2"}"#,
            r#"{"a\"b":"3","c":"4"}"#,
            r#"{"a":"5"}"#,
            r#"{"c":"6","c":"7"}"#,
            r#"{"a"b":"not JSON"}"#,
        ] {
            walks_agree(&case, &mut from_text, &mut on_tape, row);
        }
    }
    // The escaped key is read by the tape walk only; the others from the text.
    assert!(!from_text.text_row_only(&case.validator, r#"{"a\"b":"8"}"#));
    assert!(from_text.text_row_only(&case.validator, r#"{"c":"9","":"10"}"#));
}
