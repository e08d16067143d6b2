//! Unit tests of the validator: schema compile errors, the date parsers, schema locations
//! and the paths the file corpus (`tests/xdm_corpus.rs`) does not reach.

use serde_json::{Value, json};

use super::pattern::{SimplePattern, translate_ecma_pattern};
use super::*;

/// Compiles `schema` and renders the outcome: `ok` or `error: <message>`.
#[track_caller]
fn check_compile(schema: Value, expected: &str) {
    let actual = match Validator::compile(&schema) {
        Ok(_) => "ok".to_owned(),
        Err(err) => format!("error: {err}"),
    };
    assert_eq!(actual, expected);
}

/// Wraps field definitions into a schema root.
fn root(properties: Value) -> Value {
    json!({"type": "object", "meta:xdmType": "object", "properties": properties})
}

/// Validates one JSON row and renders the outcome: the converted row, or one line per
/// violation as `code keyword pointer schema_location: message`.
#[track_caller]
fn check(validator: &Validator, row: Value, expected: &str) {
    let actual = match validator.validate(row, Source::Json) {
        Ok(converted) => converted.to_string(),
        Err(violations) => violations
            .iter()
            .map(|violation| {
                format!(
                    "{} {} {} {}: {}",
                    violation.code.code(),
                    violation.keyword,
                    violation.pointer,
                    violation.schema_location,
                    violation.message
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    assert_eq!(actual, expected);
}

#[test]
fn leftover_refs_and_compositions_are_refused_where_they_are() {
    check_compile(
        root(
            json!({"_acme": {"type": "object", "properties": {"x": {"$ref": "https://ns.adobe.com/acme/datatypes/x"}}}}),
        ),
        "error: #/properties/_acme/properties/x: unresolved $ref \"https://ns.adobe.com/acme/datatypes/x\"; the validator needs the resolved (xed-full) schema",
    );
    check_compile(
        root(json!({"list": {"type": "array", "items": {"$ref": "#/definitions/item"}}})),
        "error: #/properties/list/items: unresolved $ref \"#/definitions/item\"; the validator needs the resolved (xed-full) schema",
    );
    check_compile(
        json!({"type": "object", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"}]}),
        "error: #: unresolved allOf; the validator needs the resolved (xed-full) schema",
    );
}

#[test]
fn unknown_and_inconsistent_types_are_refused() {
    check_compile(
        root(json!({"a": {"type": "strng"}})),
        "error: #/properties/a: unknown type \"strng\" (expected string, number, integer, boolean, object or array)",
    );
    check_compile(
        root(json!({"a": {"type": "integer", "meta:xdmType": "int64"}})),
        "error: #/properties/a: unknown meta:xdmType \"int64\" (expected string, number, long, int, short, byte, boolean, date, date-time, object, map or array)",
    );
    check_compile(
        root(json!({"a": {"type": "string", "meta:xdmType": "int"}})),
        "error: #/properties/a: meta:xdmType \"int\" does not fit type \"string\"",
    );
    check_compile(
        root(json!({"a": {"title": "no type"}})),
        "error: #/properties/a: the field has neither type nor meta:xdmType",
    );
    check_compile(
        root(json!({"a": {"type": ["string", "null"]}})),
        "error: #/properties/a: type must be a string",
    );
    check_compile(
        root(json!({"a": "string"})),
        "error: #/properties/a: a field definition must be a JSON object",
    );
    check_compile(
        json!({"type": "string"}),
        "error: #: the schema root must be an object",
    );
    check_compile(
        json!({"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "string"}}),
        "error: #: the schema root must be an object",
    );
    // meta:xdmType alone is enough.
    check_compile(root(json!({"a": {"meta:xdmType": "short"}})), "ok");
}

#[test]
fn invalid_keywords_name_the_field_and_the_keyword() {
    check_compile(
        root(
            json!({"_acme": {"type": "object", "properties": {"points": {"type": "integer", "minimum": "0"}}}}),
        ),
        "error: #/properties/_acme/properties/points: minimum must be a number",
    );
    check_compile(
        root(json!({"a": {"type": "number", "exclusiveMaximum": "10"}})),
        "error: #/properties/a: exclusiveMaximum must be a number",
    );
    check_compile(
        root(json!({"a": {"type": "number", "exclusiveMinimum": true}})),
        "error: #/properties/a: exclusiveMinimum must be a number",
    );
    check_compile(
        root(json!({"a": {"type": "string", "maxLength": -1}})),
        "error: #/properties/a: maxLength must be a non-negative integer",
    );
    check_compile(
        root(json!({"a": {"type": "array", "items": {"type": "string"}, "minItems": 1.5}})),
        "error: #/properties/a: minItems must be a non-negative integer",
    );
    check_compile(
        root(json!({"a": {"type": "array", "items": {"type": "string"}, "uniqueItems": "yes"}})),
        "error: #/properties/a: uniqueItems must be a boolean",
    );
    check_compile(
        root(json!({"a": {"type": "string", "enum": "red"}})),
        "error: #/properties/a: enum must be an array of values",
    );
    check_compile(
        root(json!({"a": {"type": "string", "pattern": 5}})),
        "error: #/properties/a: pattern must be a string",
    );
    check_compile(
        root(json!({"a": {"type": "array"}})),
        "error: #/properties/a: items must be a field definition giving the type of the array's items",
    );
    check_compile(
        root(json!({"a": {"type": "array", "items": [{"type": "string"}]}})),
        "error: #/properties/a: items must be a field definition giving the type of the array's items",
    );
    check_compile(
        root(json!({"a": {"type": "object", "meta:xdmType": "map"}})),
        "error: #/properties/a: additionalProperties must be a field definition giving the type of the map's values",
    );
    check_compile(
        json!({"type": "object", "properties": {}, "required": "a"}),
        "error: #: required must be an array of field names",
    );
    check_compile(
        json!({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]}),
        "error: #: required field \"b\" is not declared in properties",
    );
}

#[test]
fn invalid_and_unsupported_patterns_are_compile_errors() {
    check_compile(
        root(json!({"a": {"type": "string", "pattern": "^(ab$"}})),
        "error: #/properties/a: pattern \"^(ab$\" is not a supported regular expression: unclosed group",
    );
    check_compile(
        root(json!({"a": {"type": "string", "pattern": "^(?=a)b"}})),
        "error: #/properties/a: pattern \"^(?=a)b\" is not a supported regular expression: look-around, including look-ahead and look-behind, is not supported",
    );
    check_compile(
        root(json!({"a": {"type": "string", "pattern": "(a)\\1"}})),
        "error: #/properties/a: pattern \"(a)\\\\1\" is not a supported regular expression: backreferences are not supported",
    );
}

#[test]
fn enum_values_and_defaults_must_fit_their_field() {
    check_compile(
        root(json!({"a": {"type": "integer", "meta:xdmType": "int", "enum": [1, 2.5]}})),
        "error: #/properties/a: enum value 2.5 does not fit the field: cannot convert double 2.5 to int: not a whole number",
    );
    check_compile(
        root(json!({"a": {"type": "string", "format": "date", "enum": ["2024-02-30"]}})),
        "error: #/properties/a: enum value \"2024-02-30\" does not fit the field: \"2024-02-30\" is not a date (expected YYYY-MM-DD)",
    );
    check_compile(
        root(json!({"a": {"type": "string", "enum": ["silver", "gold"], "default": "bronze"}})),
        "error: #/properties/a: default \"bronze\" does not satisfy the field: \"bronze\" is not one of \"silver\", \"gold\"",
    );
    check_compile(
        root(json!({"a": {"type": "integer", "meta:xdmType": "byte", "default": 300}})),
        "error: #/properties/a: default 300 does not satisfy the field: 300 is greater than the maximum 127 of byte",
    );
    check_compile(
        root(
            json!({"a": {"type": "object", "required": ["b"], "properties": {"b": {"type": "string"}}, "default": {}}}),
        ),
        "error: #/properties/a: default {} does not satisfy the field: /b: required field \"b\" is missing",
    );
}

#[test]
fn deeply_nested_schemas_are_refused_instead_of_overflowing() {
    let mut schema = json!({"type": "string"});
    for _ in 0..100 {
        schema = json!({"type": "object", "properties": {"a": schema}});
    }
    let err = Validator::compile(&schema).expect_err("too deep");
    assert!(
        matches!(err, SchemaError::TooDeep { limit: 32, .. }),
        "{err}"
    );
}

#[test]
fn violations_carry_the_schema_location_of_the_failing_field() {
    let validator = Validator::compile(&json!({
        "type": "object",
        "required": ["_id"],
        "properties": {
            "_id": {"type": "string"},
            "_acme": {"type": "object", "required": ["memberId"], "properties": {
                "memberId": {"type": "string"},
                "loyalty": {"type": "object", "properties": {"points": {"type": "integer", "minimum": 0}}},
                "visits": {"type": "array", "items": {"type": "string", "format": "date"}},
                "attrs": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "integer"}}
            }}
        }
    }))
    .unwrap();
    check(
        &validator,
        json!({"_acme": {"loyalty": {"points": -5}, "visits": ["2024-01-01", "soon"], "attrs": {"a/b": "x"}}}),
        "INGEST-9104-400 minimum /_acme/loyalty/points #/properties/_acme/properties/loyalty/properties/points: -5 is less than the minimum 0\n\
         INGEST-9105-400 format /_acme/visits/1 #/properties/_acme/properties/visits/items: \"soon\" is not a date (expected YYYY-MM-DD)\n\
         INGEST-9101-400 type /_acme/attrs/a~1b #/properties/_acme/properties/attrs/additionalProperties: cannot convert string \"x\" to long: not an integer\n\
         INGEST-1555-400 required /_acme/memberId #/properties/_acme/properties/memberId: required field \"memberId\" is missing\n\
         INGEST-1555-400 required /_id #/properties/_id: required field \"_id\" is missing",
    );
    check(
        &validator,
        json!([1]),
        "INGEST-1401-400 type  #: the row is an array, expected a JSON object",
    );
    let strict = Validator::compile_with(
        &json!({"type": "object", "properties": {"a": {"type": "object", "properties": {}}}}),
        ValidatorOptions {
            unknown_fields: UnknownFields::Reject,
            ..ValidatorOptions::default()
        },
    )
    .unwrap();
    check(
        &strict,
        json!({"a": {"b~c": 1}}),
        "INGEST-9101-400 additionalProperties /a/b~0c #/properties/a: field \"b~c\" is not in the schema",
    );
}

#[test]
fn the_default_field_limit_is_ten_thousand() {
    let validator = Validator::compile(&root(
        json!({"list": {"type": "array", "items": {"type": "integer"}}}),
    ))
    .unwrap();
    assert_eq!(validator.options().max_fields_per_row, 10_000);
    // The property itself counts as one field, each item as one more.
    let fits = json!({"list": vec![1; 9_999]});
    assert!(validator.validate(fits, Source::Json).is_ok());
    let too_many = json!({"list": vec![1; 10_000]});
    let violations = validator.validate(too_many, Source::Json).unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].code, ViolationCode::Parse);
    assert_eq!(
        violations[0].message,
        "the row has more than 10000 fields (object properties, map entries and array items)"
    );
}

#[test]
fn wide_objects_find_properties_out_of_order_and_track_required_beyond_64() {
    let names = (0..100)
        .map(|index| format!("f{index}"))
        .collect::<Vec<_>>();
    let properties = names
        .iter()
        .map(|name| {
            (
                name.clone(),
                json!({"type": "integer", "meta:xdmType": "short"}),
            )
        })
        .collect::<serde_json::Map<_, _>>();
    let validator = Validator::compile(&json!({
        "type": "object",
        "required": ["f3", "f70", "f99"],
        "properties": properties,
    }))
    .unwrap();
    check(
        &validator,
        json!({"f99": "1", "f70": 2, "f3": 3.0}),
        r#"{"f99":1,"f70":2,"f3":3}"#,
    );
    check(
        &validator,
        json!({"f98": 1, "f70": null, "f0": 40000}),
        "INGEST-1555-400 required /f70 #/properties/f70: required field \"f70\" is null\n\
         INGEST-9104-400 maximum /f0 #/properties/f0: 40000 is greater than the maximum 32767 of short\n\
         INGEST-1555-400 required /f3 #/properties/f3: required field \"f3\" is missing\n\
         INGEST-1555-400 required /f99 #/properties/f99: required field \"f99\" is missing",
    );
}

#[test]
fn large_string_enums_use_the_hashed_set() {
    let allowed = (0..50).map(|index| format!("v{index}")).collect::<Vec<_>>();
    let validator =
        Validator::compile(&root(json!({"a": {"type": "string", "enum": allowed}}))).unwrap();
    check(&validator, json!({"a": "v49"}), r#"{"a":"v49"}"#);
    check(
        &validator,
        json!({"a": "v50"}),
        "INGEST-9102-400 enum /a #/properties/a: \"v50\" is not one of \"v0\", \"v1\", \"v2\", \"v3\", \"v4\", \"v5\", \"v6\", \"v7\", \"v8\", \"v9\", …",
    );
}

#[test]
fn long_strings_are_shortened_in_messages() {
    let validator =
        Validator::compile(&root(json!({"a": {"type": "string", "maxLength": 3}}))).unwrap();
    let long = "é".repeat(100);
    let shown = "é".repeat(64);
    check(
        &validator,
        json!({ "a": long }),
        &format!(
            "INGEST-9103-400 maxLength /a #/properties/a: \"{shown}\"… has 100 characters, more than the maximum length 3"
        ),
    );
}

#[test]
fn csv_text_converts_like_json_text_except_booleans() {
    let validator = Validator::compile(&root(json!({
        "flag": {"type": "boolean"},
        "count": {"type": "integer", "meta:xdmType": "byte"},
    })))
    .unwrap();
    let row = || json!({"flag": "true", "count": "-128"});
    assert_eq!(
        validator.validate(row(), Source::Csv).unwrap(),
        json!({"flag": true, "count": -128})
    );
    let violations = validator.validate(row(), Source::Json).unwrap_err();
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].pointer, "/flag");
    assert_eq!(
        validator.validate(row(), Source::Parquet).unwrap_err(),
        violations
    );
}

#[test]
fn parse_date_is_strict() {
    assert_eq!(parse_date("1970-01-01"), Some(0));
    assert_eq!(parse_date("1970-01-02"), Some(1));
    assert_eq!(parse_date("1969-12-31"), Some(-1));
    assert_eq!(parse_date("2000-03-01"), Some(11_017));
    assert_eq!(parse_date("2024-02-29"), Some(19_782));
    assert_eq!(parse_date("0000-01-01"), Some(-719_528));
    assert_eq!(parse_date("9999-12-31"), Some(2_932_896));
    for bad in [
        "2023-02-29",
        "1900-02-29",
        "2024-00-01",
        "2024-13-01",
        "2024-04-31",
        "2024-06-31",
        "2024-01-00",
        "2024-01-32",
        "2024-1-01",
        "2024-01-1",
        "24-01-01",
        "2024/01/01",
        "2024-01-01 ",
        " 2024-01-01",
        "+2024-01-01",
        "２０２４-01-01",
        "",
        "2024-01-0a",
    ] {
        assert_eq!(parse_date(bad), None, "{bad}");
    }
}

/// The date and date-time parsers, which read their digits eight at a time, answer as the
/// field-by-field reading they replaced (kept here) on valid dates and times and on
/// thousands of variants with one to three bytes changed, cut or added.
#[test]
fn date_parsers_agree_with_a_reading_field_by_field() {
    fn field(bytes: &[u8]) -> Option<i64> {
        bytes.iter().try_fold(0i64, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + i64::from(byte - b'0'))
        })
    }
    fn reference_date(text: &str) -> Option<i32> {
        let bytes = text.as_bytes();
        if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
            return None;
        }
        let (year, month, day) = (
            field(&bytes[0..4])?,
            field(&bytes[5..7])?,
            field(&bytes[8..10])?,
        );
        i32::try_from(formats::checked_days_from_civil(year, month, day)?).ok()
    }
    fn reference_date_time(text: &str) -> Option<i64> {
        let bytes = text.as_bytes();
        if bytes.len() < 20
            || bytes[4] != b'-'
            || bytes[7] != b'-'
            || !matches!(bytes[10], b'T' | b't')
            || bytes[13] != b':'
            || bytes[16] != b':'
        {
            return None;
        }
        let (year, month, day) = (
            field(&bytes[0..4])?,
            field(&bytes[5..7])?,
            field(&bytes[8..10])?,
        );
        let (hour, minute, second) = (
            field(&bytes[11..13])?,
            field(&bytes[14..16])?,
            field(&bytes[17..19])?,
        );
        if hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        let days = formats::checked_days_from_civil(year, month, day)?;
        // The fraction and the offset, read as the parser reads them after a date-time it
        // takes (their reading did not change): what they add to the epoch.
        let tail = parse_date_time(&format!("1970-01-01T00:00:00{}", &text[19..]))?;
        let micros = (days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000 + tail;
        formats::in_renderable_range(micros).then_some(micros)
    }
    let templates = [
        "2024-09-05T07:53:23Z",
        "1999-12-31T23:59:59.999999Z",
        "0000-01-01T00:00:00+00:00",
        "9999-12-31T23:59:59-01:30",
        "2024-02-29T12:00:00.5z",
        "1900-02-28t00:00:00Z",
    ];
    let alphabet = *b"0123456789/:;-Tt Z.+\x7f";
    let mut next = random_numbers();
    for _ in 0..200_000 {
        let template = templates[(next() % templates.len() as u64) as usize];
        let mut bytes = template.as_bytes().to_vec();
        for _ in 0..next() % 4 {
            let at = (next() % bytes.len() as u64) as usize;
            match next() % 8 {
                0 => bytes.truncate(at),
                1 => bytes.insert(at, alphabet[(next() % alphabet.len() as u64) as usize]),
                _ => bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize],
            }
            if bytes.is_empty() {
                break;
            }
        }
        let text = std::str::from_utf8(&bytes).expect("ASCII");
        let date = &text[..text.len().min(10)];
        assert_eq!(parse_date(date), reference_date(date), "{date:?}");
        assert_eq!(parse_date_time(text), reference_date_time(text), "{text:?}");
    }
}

#[test]
fn parse_date_time_returns_utc_microseconds() {
    assert_eq!(parse_date_time("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_date_time("1970-01-01T00:00:00.000001Z"), Some(1));
    assert_eq!(parse_date_time("1970-01-01T00:00:00.0000019Z"), Some(1));
    assert_eq!(parse_date_time("1970-01-01T00:00:00.5Z"), Some(500_000));
    assert_eq!(parse_date_time("1970-01-01T01:00:00+01:00"), Some(0));
    assert_eq!(parse_date_time("1969-12-31T19:00:00-05:00"), Some(0));
    assert_eq!(parse_date_time("1969-12-31T23:59:59.999999Z"), Some(-1));
    assert_eq!(
        parse_date_time("2023-11-14T22:13:20.123Z"),
        Some(1_700_000_000_123_000)
    );
    assert_eq!(
        parse_date_time("9999-12-31T23:59:59.999999Z"),
        Some(253_402_300_799_999_999)
    );
    assert_eq!(
        parse_date_time("0000-01-01T00:00:00Z"),
        Some(-62_167_219_200_000_000)
    );
    for bad in [
        "1970-01-01T00:00:00",
        "1970-01-01T00:00:00.Z",
        "1970-01-01T00:00:00.1234567890Z",
        "1970-01-01T00:00Z",
        "1970-01-01T24:00:00Z",
        "1970-01-01T00:60:00Z",
        "1970-01-01T00:00:60Z",
        "1970-01-01T00:00:00+01",
        "1970-01-01T00:00:00+0100",
        "1970-01-01T00:00:00+24:00",
        "1970-01-01T00:00:00ZZ",
        "1970-01-01 00:00:00Z",
        "1970-02-30T00:00:00Z",
        "9999-12-31T23:59:59-00:01",
        "0000-01-01T00:00:00+00:01",
    ] {
        assert_eq!(parse_date_time(bad), None, "{bad}");
    }
}

#[test]
fn dates_round_trip_through_rendering_for_every_day_of_four_centuries() {
    // 1900-01-01 to 2299-12-31 covers every leap-year rule.
    for days in -25_567..120_525 {
        let rendered = formats::render_date(days);
        assert_eq!(
            parse_date(&rendered).map(i64::from),
            Some(days),
            "{rendered}"
        );
    }
}

#[test]
fn ecma_patterns_are_translated_to_the_regex_dialect() {
    assert_eq!(translate_ecma_pattern(r"^\d{3}$"), "^[0-9]{3}$");
    assert_eq!(translate_ecma_pattern(r"[\d\w.-]+"), "[0-90-9A-Za-z_.-]+");
    assert_eq!(
        translate_ecma_pattern(r"\D\W\s\."),
        r"[^0-9][^0-9A-Za-z_]\s\."
    );
    assert_eq!(translate_ecma_pattern(r"[[a]&&[~&]"), r"[\[a]&&[\~\&]");
    assert_eq!(translate_ecma_pattern(r"[]a[^]"), r"[\s&&\S]a[\s\S]");
    let validator = Validator::compile(&root(json!({
        "never": {"type": "string", "pattern": "[]"},
        "any": {"type": "string", "pattern": "^[^]$"},
        "bracket": {"type": "string", "pattern": "^[[]$"},
    })))
    .unwrap();
    check(
        &validator,
        json!({"any": "\n", "bracket": "["}),
        r#"{"any":"\n","bracket":"["}"#,
    );
    check(
        &validator,
        json!({"never": ""}),
        "INGEST-9103-400 pattern /never #/properties/never: \"\" does not match the pattern []",
    );
}

#[test]
fn email_uri_and_uuid_checks() {
    for good in [
        "a@b",
        "a.b-c+d@example.com",
        "\"a b\\\"c\"@example.com",
        "x@[IPv6:2001:db8::1]",
        "ü@münchen.de",
    ] {
        assert!(formats::is_email(good), "{good}");
    }
    for bad in [
        "a", "a@", "@b", "a@b@c", "a..b@c", "a@b..c", "a@-b.c", "a@b-.c", "\"a@b", "a b@c", "a@[]",
    ] {
        assert!(!formats::is_email(bad), "{bad}");
    }
    // Labels of 63 characters (bytes or not) pass, of 64 do not; a fault before or after a
    // non-ASCII character is one.
    let label = "l".repeat(63);
    for (domain, valid) in [
        (format!("{label}.com"), true),
        (format!("{label}l.com"), false),
        (format!("{}é.com", "l".repeat(62)), true),
        (format!("{label}é.com"), false),
        ("a-.é".to_owned(), false),
        ("é.-a".to_owned(), false),
        ("-é.a".to_owned(), false),
        ("é.a-".to_owned(), false),
        ("a_é.b".to_owned(), false),
        ("é.b_".to_owned(), false),
        ("müller-straße.de".to_owned(), true),
    ] {
        assert_eq!(formats::is_email(&format!("x@{domain}")), valid, "{domain}");
    }
    // The length limits, at and past each: a local part of 64 bytes, an address of 254 (which
    // keeps a domain within its 253).
    let domain = |length: usize| {
        let mut domain = vec!["d".repeat(63); length / 64].join(".");
        let rest = length - domain.len();
        if rest > 0 {
            domain.push_str(&format!(".{}", "e".repeat(rest - 1)));
        }
        domain
    };
    assert_eq!(domain(253).len(), 253);
    for (address, valid) in [
        (format!("{}@example.com", "l".repeat(64)), true),
        (format!("{}@example.com", "l".repeat(65)), false),
        (format!("{}@example.com", "l.".repeat(32)), false),
        (format!("a@{}", domain(252)), true),
        (format!("{}@{}", "l".repeat(64), domain(189)), true),
        (format!("{}@{}", "l".repeat(64), domain(190)), false),
        (format!("a@{}", domain(253)), false),
    ] {
        assert_eq!(
            formats::is_email(&address),
            valid,
            "{} bytes: {address}",
            address.len()
        );
    }
    for good in [
        "a:",
        "urn:uuid:123",
        "http://h",
        "http://h:8080/p?q#f",
        "s3://bucket/key%20x",
        "http://[::1]/",
    ] {
        assert!(formats::is_absolute_uri(good), "{good}");
    }
    for bad in [
        ":x",
        "h",
        "//h/p",
        "http://h:x/",
        "http://h/p q",
        "http://h/%2",
        "http://[::1/",
        "é:x",
        "http://h/ü",
    ] {
        assert!(!formats::is_absolute_uri(bad), "{bad}");
    }
    assert!(formats::is_uuid("00000000-0000-0000-0000-000000000000"));
    assert!(!formats::is_uuid("00000000-0000-0000-0000-00000000000"));
    assert!(!formats::is_uuid("00000000_0000-0000-0000-000000000000"));
}

#[test]
fn validators_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Validator>();
}

#[test]
fn violation_codes_and_descriptions() {
    let codes = [
        (ViolationCode::Parse, "INGEST-1401-400"),
        (ViolationCode::Required, "INGEST-1555-400"),
        (ViolationCode::Conversion, "INGEST-9101-400"),
        (ViolationCode::Enum, "INGEST-9102-400"),
        (ViolationCode::PatternOrLength, "INGEST-9103-400"),
        (ViolationCode::Range, "INGEST-9104-400"),
        (ViolationCode::Format, "INGEST-9105-400"),
    ];
    for (code, text) in codes {
        assert_eq!(code.code(), text);
        assert!(code.description().ends_with('.'));
    }
    assert_eq!(
        ViolationCode::Required.description(),
        "A required field is absent or null."
    );
}

#[test]
fn simple_patterns_take_the_fast_path_only_when_a_scan_is_exact() {
    for fast in [
        r"^M-[0-9]{6}$",
        r"^[0-9a-f]{16}$",
        r"^[A-Z]{3}$",
        r"^S\d+$",
        r"^[a-z]+-\d{2,4}$",
        r"^\d*\.csv$",
        r"^[-a-z_]{1,}\$?$",
        r"^$",
    ] {
        assert!(SimplePattern::parse(fast).is_some(), "{fast}");
    }
    for slow in [
        r"[0-9]{6}",   // not anchored at the start
        r"^[0-9]{6}",  // not anchored at the end
        r"^\w*\.csv$", // a variable item overlapping later literals
        r"^a+a$",      // a variable item overlapping a later one needs backtracking
        r"^\w+_x$",    // same, through \w
        r"^(ab)+$",    // groups
        r"^a|b$",      // alternation
        r"^[^a]$",     // negated classes match non-ASCII characters
        r"^.$",        // so does the dot
        r"^\s$",       // Unicode white space
        r"^é$",        // non-ASCII literals
        r"^a+?$",      // lazy quantifier
        r"^a{2$",      // an unclosed brace
        r"^a$$",       // an end anchor that is not last
    ] {
        assert_eq!(SimplePattern::parse(slow), None, "{slow}");
    }
}

#[test]
fn the_fast_path_agrees_with_the_regex_engine() {
    let patterns = [
        r"^M-[0-9]{6}$",
        r"^[0-9a-f]{16}$",
        r"^[A-Z]{2}-\d{3}$",
        r"^S\d+$",
        r"^[a-z]+-\d{2,4}$",
        r"^\d*\.csv$",
        r"^[-a-z_]{1,}\$?$",
        r"^x?y*z{0,2}$",
        r"^[a\-z]{2}$",
        r"^$",
    ];
    let inputs = [
        "",
        "M-123456",
        "M-12345",
        "M-1234567",
        "m-123456",
        "M-12345a",
        "0123456789abcdef",
        "0123456789ABCDEF",
        "AB-123",
        "AB-1234",
        "S",
        "S1",
        "S123",
        "S12a",
        "abc-12",
        "abc-12345",
        "-12",
        "abc-1",
        "a.csv",
        ".csv",
        "a_b.csv",
        "12.csv",
        "a.csvx",
        "a-b_c",
        "a-b$",
        "$",
        "-",
        "x",
        "xy",
        "xyyyzz",
        "xzzz",
        "yz",
        "a-",
        "-z",
        "az",
        "aé",
        "M-１２３４５６",
        "M-123456\n",
        "é",
    ];
    for source in patterns {
        let simple =
            SimplePattern::parse(source).unwrap_or_else(|| panic!("{source} takes the fast path"));
        let regex = regex::Regex::new(&translate_ecma_pattern(source)).unwrap();
        for input in inputs {
            assert_eq!(
                simple.is_match(input.as_bytes()),
                regex.is_match(input),
                "{source} on {input:?}"
            );
        }
    }
}

/// Issue 11: syntax the regex crate reads but ECMA-262 does not (or reads as plain letters)
/// is refused, so a pattern means the same here as in any JSON Schema validator.
#[test]
fn non_ecma_pattern_syntax_is_refused() {
    let outcome = |pattern: &str| match check_pattern(pattern) {
        Ok(()) => "ok".to_owned(),
        Err(reason) => reason,
    };
    for valid in [
        r"^\d{3}-\w+$",
        r"^[A-Z]{2}\x41\u00e9$",
        r"(?:ab)+c",
        r"(?<year>\d{4})",
        r"[]a[^]",
        r"\/\.\-\(",
        r"[\b\t]",
    ] {
        assert_eq!(outcome(valid), "ok", "{valid}");
    }
    for (pattern, reason) in [
        (r"(?i)abc", "(?i)a… is not ECMA-262 group syntax"),
        (r"(?P<n>a)", "(?P<n… is not ECMA-262 group syntax"),
        (
            r"\Aabc\z",
            r"\A is not an ECMA-262 escape (ECMA-262 reads it as the letter A)",
        ),
        (r"\p{L}+", r"\p is not an ECMA-262 escape"),
        (
            r"\x{41}",
            r"\x must be followed by two hex digits in ECMA-262",
        ),
        (
            r"\u{41}",
            r"\u must be followed by four hex digits in ECMA-262",
        ),
        (r"(?=a)b", "look-around"),
    ] {
        let actual = outcome(pattern);
        assert!(
            actual.starts_with(reason) || actual.contains(reason),
            "{pattern}: {actual}"
        );
    }
}

/// The e-mail check's byte tables give the answers of the rules written out per character:
/// random addresses over an alphabet of the bytes that matter, and of runs of letters and
/// digits that the check reads in a loop of their own.
#[test]
fn email_check_agrees_with_the_rules_written_per_character() {
    fn reference(text: &str) -> bool {
        let Some(at) = text.rfind('@') else {
            return false;
        };
        let (local, domain) = (&text[..at], &text[at + 1..]);
        if text.len() > 254 || local.is_empty() || local.len() > 64 {
            return false;
        }
        if local.starts_with('"') || domain.starts_with('[') {
            return formats::is_email(text);
        }
        let mut previous = '.';
        for c in local.chars() {
            let allowed = match c {
                '.' => previous != '.',
                c if !c.is_ascii() => true,
                c => c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c),
            };
            if !allowed {
                return false;
            }
            previous = c;
        }
        if previous == '.' || domain.is_empty() || domain.len() > 253 {
            return false;
        }
        domain.split('.').all(|label| {
            let count = label.chars().count();
            (1..=63).contains(&count)
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    }
    let alphabet = [
        "a",
        "Z",
        "7",
        ".",
        "-",
        "@",
        "+",
        "_",
        "~",
        "\"",
        " ",
        "ü",
        "é",
        "\u{2603}",
        "!",
        "(",
        ",",
        "..",
        "x.y",
        "com",
        // Runs of letters and digits long enough that two make a label or a local part
        // too long.
        "abcdefghij0123456789abcdefghij0123456789",
    ];
    let mut next = random_numbers();
    for _ in 0..200_000 {
        let mut text = String::new();
        for _ in 0..next() % 12 {
            text.push_str(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        if next().is_multiple_of(2) {
            text.push('@');
            for _ in 0..next() % 8 {
                text.push_str(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
        }
        assert_eq!(formats::is_email(&text), reference(&text), "{text:?}");
    }
}

/// A deterministic stream of pseudo-random numbers (xorshift) for the randomised tests.
fn random_numbers() -> impl FnMut() -> u64 {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// Fixed-length patterns take a table per item; they answer as the regex engine does on
/// random texts near their length, with bytes in and out of every class.
#[test]
fn fixed_length_patterns_agree_with_the_regex_engine() {
    let alphabet = [
        "M", "-", "0", "9", "a", "f", "g", "A", "Z", "_", "x", "\u{e9}", "\u{ff11}", "\n",
    ];
    let mut next = random_numbers();
    for source in [
        r"^M-[0-9]{6}$",
        r"^[0-9a-f]{16}$",
        r"^[A-Z]{3}$",
        r"^\w{2}-\d{1}$",
        r"^$",
        // Checked a word at a time: four to seven bytes, past a multiple of eight, classes
        // of two ranges; and of three ranges, checked by table.
        r"^[A-Z]{2}-\d{2}$",
        r"^\d{4}$",
        r"^[a-z]{3}\d{7}$",
        r"^[0-9a-fA-F]{8}$",
        r"^[ab]{9}$",
    ] {
        let simple = SimplePattern::parse(source).expect("fast path");
        let regex = regex::Regex::new(&translate_ecma_pattern(source)).unwrap();
        let width = match source.len() {
            n if n > 12 => 18,
            _ => 8,
        };
        for _ in 0..50_000 {
            let mut text = String::new();
            for _ in 0..next() % width {
                text.push_str(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            if next().is_multiple_of(4) {
                // Mostly matching texts too: a valid one, with one character changed.
                text = match source {
                    r"^M-[0-9]{6}$" => format!("M-{:06}", next() % 1_000_000),
                    r"^[0-9a-f]{16}$" => format!("{:016x}", next()),
                    r"^[A-Z]{2}-\d{2}$" => format!("QZ-{:02}", next() % 100),
                    r"^\d{4}$" => format!("{:04}", next() % 10_000),
                    r"^[a-z]{3}\d{7}$" => format!("abz{:07}", next() % 10_000_000),
                    r"^[0-9a-fA-F]{8}$" => format!("{:08X}", next() as u32),
                    r"^[ab]{9}$" => "abbabaaab".to_owned(),
                    _ => text,
                };
                if next().is_multiple_of(2) && !text.is_empty() {
                    let at = (next() % text.len() as u64) as usize;
                    if text.is_char_boundary(at) && text.is_char_boundary(at + 1) {
                        let with = alphabet[(next() % alphabet.len() as u64) as usize];
                        text.replace_range(at..at + 1, with);
                    }
                }
            }
            assert_eq!(
                simple.is_match(text.as_bytes()),
                regex.is_match(&text),
                "{source} on {text:?}"
            );
        }
        // Characters whose UTF-8 bytes, stripped of their high bit, are hex digits.
        for text in [
            "\u{1c30}0123456789abc",
            "0123456789abcd\u{e1}",
            "\u{1c30}\u{1c31}\u{1c32}",
        ] {
            assert_eq!(
                simple.is_match(text.as_bytes()),
                regex.is_match(text),
                "{source} on {text:?}"
            );
        }
    }
}

#[test]
fn min_length_counts_code_points_only_when_the_bytes_cannot_tell() {
    // Every case agrees with counting the code points.
    for text in [
        "",
        "a",
        "ab",
        "\u{e9}",
        "\u{e9}\u{e9}",
        "\u{1f600}",
        "a\u{1f600}b",
        "abcdefgh",
    ] {
        for min in 0..12 {
            assert_eq!(
                formats::shorter_than(text, min),
                text.chars().count() < min,
                "{text:?} {min}"
            );
        }
    }
    // No overflow for a huge minimum.
    assert!(formats::shorter_than("abc", usize::MAX));
}

/// A field's string check resolved once answers as `accepts_str` for every kind of field:
/// one check of each kind alone, several together, none.
#[test]
fn resolved_string_checks_agree_with_accepts_str() {
    let validator = Validator::compile(&root(json!({
        "plain": {"type": "string"},
        "pattern": {"type": "string", "pattern": "^[a-c]{2}$"},
        "listed": {"type": "string", "enum": ["ab", "é", ""]},
        "email": {"type": "string", "format": "email"},
        "uri": {"type": "string", "format": "uri"},
        "short": {"type": "string", "maxLength": 2},
        "long": {"type": "string", "minLength": 2},
        "between": {"type": "string", "minLength": 1, "maxLength": 3},
        "mixed": {"type": "string", "pattern": "b", "maxLength": 3},
        "listed_short": {"type": "string", "enum": ["ab", "abcd"], "maxLength": 3},
    })))
    .unwrap();
    let fields = validator.root();
    let alphabet = ["a", "b", "c", "é", "\u{1f600}", "@", ".", "x", "-", ":"];
    let mut next = random_numbers();
    let mut texts: Vec<String> = vec![String::new(), "ab".into(), "a@b.c".into(), "é".into()];
    for _ in 0..2_000 {
        let mut text = String::new();
        for _ in 0..next() % 6 {
            text.push_str(alphabet[(next() % alphabet.len() as u64) as usize]);
        }
        texts.push(text);
    }
    for position in 0..fields.len() {
        let field = fields.field(position);
        let check = field.string_check();
        for text in &texts {
            assert_eq!(
                check.accepts(text),
                field.accepts_str(text),
                "{} {text:?}",
                fields.name(position)
            );
        }
    }
}

/// The bounds of a number or integer field, resolved into one range, accept exactly the
/// values the row validator accepts: random sets of inclusive and exclusive limits, integer
/// and fractional, on random values near them.
#[test]
fn resolved_bounds_agree_with_the_row_validator() {
    let mut next = random_numbers();
    let limits: [f64; 8] = [-3.0, -2.5, 0.0, 1.0, 1.5, 2.0, 7.0, 9_007_199_254_740_993.0];
    let keywords = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
    for round in 0..400 {
        let mut field = serde_json::Map::new();
        field.insert(
            "type".into(),
            json!(if round % 2 == 0 { "integer" } else { "number" }),
        );
        for keyword in keywords {
            if next().is_multiple_of(2) {
                let limit = limits[(next() % limits.len() as u64) as usize];
                let value = if limit.fract() == 0.0 && next().is_multiple_of(2) {
                    json!(limit as i64)
                } else {
                    json!(limit)
                };
                field.insert(keyword.into(), value);
            }
        }
        let validator =
            Validator::compile(&root(json!({"f": Value::Object(field.clone())}))).unwrap();
        let fields = validator.root();
        let mut cursor = 0;
        let f = fields.field(fields.find("f", &mut cursor).unwrap());
        for value in -5i64..=10 {
            let accepted = validator
                .validate(json!({"f": value}), Source::Json)
                .is_ok();
            let predicate = if round % 2 == 0 {
                f.accepts_integer(value)
            } else {
                f.accepts_float(value as f64)
            };
            assert_eq!(predicate, accepted, "{field:?} {value}");
        }
        if round % 2 == 1 {
            for value in [-2.5, -2.4999, 1.5, 1.4999, 1.5001, 0.5, 7.0000001] {
                let accepted = validator
                    .validate(json!({"f": value}), Source::Json)
                    .is_ok();
                assert_eq!(f.accepts_float(value), accepted, "{field:?} {value}");
            }
        }
    }
}

/// The calendar arithmetic of the date parsers agrees with Howard Hinnant's algorithm on
/// every day of every four-digit year, and refuses the same months and days.
#[test]
fn days_from_civil_agree_with_the_reference_for_every_four_digit_year() {
    for year in 0..=9999 {
        for month in 0..=13 {
            for day in [0, 1, 2, 15, 27, 28, 29, 30, 31, 32] {
                assert_eq!(
                    formats::checked_days_from_civil(year, month, day),
                    formats::checked_days_from_civil_reference(year, month, day),
                    "{year}-{month}-{day}"
                );
            }
        }
    }
    // Outside four digits: refused (no parser gives such a year).
    assert_eq!(formats::checked_days_from_civil(-1, 1, 1), None);
    assert_eq!(formats::checked_days_from_civil(10_000, 1, 1), None);
    // A day or month past 32 bits is not taken for its low bits.
    assert_eq!(
        formats::checked_days_from_civil(2000, 1, (1 << 32) + 5),
        None
    );
    assert_eq!(
        formats::checked_days_from_civil(2000, (1 << 32) + 1, 5),
        None
    );
}

/// A number's text converts to the very double `str::parse` gives, on the fast path for
/// short decimals and off it: random signs, leading zeros, digits and exponents.
#[test]
fn number_text_converts_as_the_standard_parser_does() {
    let mut next = random_numbers();
    let mut digits = |count: u64| -> String {
        (0..count)
            .map(|_| char::from(b'0' + (next() % 10) as u8))
            .collect()
    };
    let mut shapes = random_numbers();
    for _ in 0..200_000 {
        let shape = shapes();
        let sign = ["", "-", "+"][(shape % 3) as usize];
        let integer = digits(1 + (shape >> 2) % 20);
        let fraction = match (shape >> 8) % 4 {
            0 => String::new(),
            _ => format!(".{}", digits(1 + (shape >> 12) % 25)),
        };
        let exponent = match (shape >> 20) % 5 {
            0 => format!("e{}", (shape >> 24) % 40),
            _ => String::new(),
        };
        let text = format!("{sign}{integer}{fraction}{exponent}");
        let expected: f64 = text.trim_start_matches('+').parse().unwrap();
        let converted = walk::parse_number(&text).ok().expect("a number");
        assert_eq!(converted.to_bits(), expected.to_bits(), "{text}");
    }
    for text in [
        "0.1",
        "-0.0",
        "0.30000000000000004",
        "9007199254740993",
        "1.5e3",
    ] {
        let expected: f64 = text.parse().unwrap();
        let converted = walk::parse_number(text).ok().expect("a number");
        assert_eq!(converted.to_bits(), expected.to_bits(), "{text}");
    }
}

/// An integer's text converts as `str::parse` says, up to and past the 64-bit range.
#[test]
fn integer_text_converts_as_the_standard_parser_does() {
    let mut next = random_numbers();
    for _ in 0..200_000 {
        let shape = next();
        let sign = ["", "-", "+"][(shape % 3) as usize];
        let digits: String = (0..1 + (shape >> 2) % 21)
            .map(|_| char::from(b'0' + (next() % 10) as u8))
            .collect();
        let text = format!("{sign}{digits}");
        let expected = text.trim_start_matches('+').parse::<i64>().ok();
        assert_eq!(walk::parse_integer(&text).ok(), expected, "{text}");
    }
    for text in [
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "-0",
    ] {
        assert_eq!(
            walk::parse_integer(text).ok(),
            text.parse::<i64>().ok(),
            "{text}"
        );
    }
    for text in ["", "-", "+", "1.0", "1e3", " 1", "--1", "+-1", "١"] {
        assert!(walk::parse_integer(text).is_err(), "{text:?}");
    }
}
