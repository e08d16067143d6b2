//! Differential test of the row validator against an independent JSON Schema implementation
//! (the `jsonschema` crate, draft 7), on generated schemas and rows (issue 11).
//!
//! Both must agree on accept/reject wherever XDM's rules are JSON Schema's. The generator
//! leaves out what XDM deliberately does differently:
//! - type conversions: a number sent to a string field becomes a string, and a string sent
//!   to a number or integer field is parsed (spec §7.2), so string fields only get strings,
//!   objects, arrays and booleans, and numeric fields never get strings;
//! - `null`: an optional field that is null is dropped and null array items are kept, where
//!   JSON Schema refuses null for a typed field, so rows hold no null;
//! - XDM's implied integer ranges (`long` is ±2^53−1): integers stay within ±10^6;
//! - `format`, `default`, `uniqueItems` and maps are not generated; strings are ASCII, so
//!   both count the same length.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{Source, Validator};

const PATTERNS: &[&str] = &["^[a-c]+$", "b", "^x.*y$", "[0-9]{2}", "^$", "^(ab|c)*$"];

/// A generated field: its schema and a strategy for values that mostly fit it.
#[derive(Debug, Clone)]
enum FieldSpec {
    String {
        min_length: Option<usize>,
        max_length: Option<usize>,
        pattern: Option<&'static str>,
        allowed: Option<Vec<String>>,
    },
    Integer {
        minimum: Option<i64>,
        maximum: Option<i64>,
        allowed: Option<Vec<i64>>,
    },
    Number {
        minimum: Option<f64>,
        maximum: Option<f64>,
    },
    Boolean,
    Object {
        fields: Vec<FieldSpec>,
        required: Vec<bool>,
    },
    Array {
        items: Box<FieldSpec>,
        min_items: Option<usize>,
        max_items: Option<usize>,
    },
}

fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec!['a', 'b', 'c', 'x', 'y', '0', '1', '9']),
        0..6,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn field_spec() -> impl Strategy<Value = FieldSpec> {
    let string = (
        prop::option::of(0..4usize),
        prop::option::of(0..6usize),
        prop::option::of(prop::sample::select(PATTERNS)),
        prop::option::of(prop::collection::vec(text(), 1..4)),
    )
        .prop_map(
            |(min_length, max_length, pattern, allowed)| FieldSpec::String {
                min_length,
                max_length,
                pattern,
                allowed,
            },
        );
    let integer = (
        prop::option::of(-5..5i64),
        prop::option::of(-5..5i64),
        prop::option::of(prop::collection::vec(-3..3i64, 1..4)),
    )
        .prop_map(|(minimum, maximum, allowed)| FieldSpec::Integer {
            minimum,
            maximum,
            allowed,
        });
    let number =
        (prop::option::of(-4..4i32), prop::option::of(-4..4i32)).prop_map(|(minimum, maximum)| {
            FieldSpec::Number {
                minimum: minimum.map(|m| f64::from(m) / 2.0),
                maximum: maximum.map(|m| f64::from(m) / 2.0),
            }
        });
    let leaf = prop_oneof![string, integer, number, Just(FieldSpec::Boolean)];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec((inner.clone(), any::<bool>()), 1..4).prop_map(|fields| {
                let (fields, required) = fields.into_iter().unzip();
                FieldSpec::Object { fields, required }
            }),
            (
                inner,
                prop::option::of(0..3usize),
                prop::option::of(0..4usize)
            )
                .prop_map(|(items, min_items, max_items)| FieldSpec::Array {
                    items: Box::new(items),
                    min_items,
                    max_items,
                }),
        ]
    })
}

fn name(position: usize) -> String {
    format!("f{position}")
}

fn schema_of(spec: &FieldSpec) -> Value {
    let mut out = Map::new();
    let mut set = |key: &str, value: Value| {
        out.insert(key.to_owned(), value);
    };
    match spec {
        FieldSpec::String {
            min_length,
            max_length,
            pattern,
            allowed,
        } => {
            set("type", json!("string"));
            if let Some(min) = min_length {
                set("minLength", json!(min));
            }
            if let Some(max) = max_length {
                set("maxLength", json!(max));
            }
            if let Some(pattern) = pattern {
                set("pattern", json!(pattern));
            }
            if let Some(allowed) = allowed {
                set("enum", json!(allowed));
            }
        }
        FieldSpec::Integer {
            minimum,
            maximum,
            allowed,
        } => {
            set("type", json!("integer"));
            if let Some(min) = minimum {
                set("minimum", json!(min));
            }
            if let Some(max) = maximum {
                set("maximum", json!(max));
            }
            if let Some(allowed) = allowed {
                set("enum", json!(allowed));
            }
        }
        FieldSpec::Number { minimum, maximum } => {
            set("type", json!("number"));
            if let Some(min) = minimum {
                set("minimum", json!(min));
            }
            if let Some(max) = maximum {
                set("maximum", json!(max));
            }
        }
        FieldSpec::Boolean => set("type", json!("boolean")),
        FieldSpec::Object { fields, required } => {
            set("type", json!("object"));
            set("properties", properties_of(fields));
            let names: Vec<String> = required
                .iter()
                .enumerate()
                .filter(|(_, required)| **required)
                .map(|(position, _)| name(position))
                .collect();
            if !names.is_empty() {
                set("required", json!(names));
            }
        }
        FieldSpec::Array {
            items,
            min_items,
            max_items,
        } => {
            set("type", json!("array"));
            set("items", schema_of(items));
            if let Some(min) = min_items {
                set("minItems", json!(min));
            }
            if let Some(max) = max_items {
                set("maxItems", json!(max));
            }
        }
    }
    Value::Object(out)
}

fn properties_of(fields: &[FieldSpec]) -> Value {
    Value::Object(
        fields
            .iter()
            .enumerate()
            .map(|(position, field)| (name(position), schema_of(field)))
            .collect(),
    )
}

/// Values of a type the field does not take, without XDM's conversions (see the module
/// documentation).
fn wrong_type(spec: &FieldSpec) -> BoxedStrategy<Value> {
    let boolean = any::<bool>().prop_map(Value::Bool);
    let number = (-3..3i64).prop_map(|n| json!(n));
    let string = text().prop_map(Value::String);
    let object = Just(json!({"z": 1}));
    let array = Just(json!([1]));
    match spec {
        FieldSpec::String { .. } => prop_oneof![boolean, object, array].boxed(),
        FieldSpec::Integer { .. } | FieldSpec::Number { .. } => {
            prop_oneof![boolean, object, array].boxed()
        }
        FieldSpec::Boolean => prop_oneof![number, string, object, array].boxed(),
        FieldSpec::Object { .. } => prop_oneof![boolean, number, string, array].boxed(),
        FieldSpec::Array { .. } => prop_oneof![boolean, number, string, object].boxed(),
    }
}

/// Strings that match each of [`PATTERNS`] (the generator also tries random text).
fn matching(pattern: &str) -> Vec<&'static str> {
    match pattern {
        "^[a-c]+$" => vec!["a", "abc", "cab"],
        "b" => vec!["b", "abc", "xbx"],
        "^x.*y$" => vec!["xy", "xaby"],
        "[0-9]{2}" => vec!["10", "a99b"],
        "^$" => vec![""],
        _ => vec!["", "ab", "cab"],
    }
}

/// Values for a field: mostly fitting its type and constraints, sometimes of its type but
/// anywhere, rarely of another type.
fn value_for(spec: &FieldSpec) -> BoxedStrategy<Value> {
    let fitting: BoxedStrategy<Value> = match spec {
        FieldSpec::String {
            pattern, allowed, ..
        } => {
            let candidates: Vec<String> = match (allowed, pattern) {
                (Some(allowed), _) => allowed.clone(),
                (None, Some(pattern)) => matching(pattern).into_iter().map(str::to_owned).collect(),
                (None, None) => vec!["ab".to_owned(), "b".to_owned(), "abcx".to_owned()],
            };
            prop::sample::select(candidates)
                .prop_map(Value::String)
                .boxed()
        }
        FieldSpec::Integer {
            minimum,
            maximum,
            allowed,
        } => match allowed {
            Some(allowed) => prop::sample::select(allowed.clone())
                .prop_map(|n| json!(n))
                .boxed(),
            None => {
                let low = minimum.unwrap_or(-6);
                let high = maximum.unwrap_or(6).max(low);
                prop_oneof![
                    3 => (low..=high).prop_map(|n| json!(n)),
                    // Integral doubles are integers in both (`2.0`).
                    1 => (low..=high).prop_map(|n| json!(n as f64)),
                ]
                .boxed()
            }
        },
        FieldSpec::Number { minimum, maximum } => {
            let low = minimum.unwrap_or(-3.0);
            let high = maximum.unwrap_or(3.0).max(low);
            (0..=8i32)
                .prop_map(move |step| json!(low + (high - low) * f64::from(step) / 8.0))
                .boxed()
        }
        FieldSpec::Boolean => any::<bool>().prop_map(Value::Bool).boxed(),
        FieldSpec::Object { fields, required } => object_value(fields, required),
        FieldSpec::Array {
            items,
            min_items,
            max_items,
        } => {
            let low = min_items.unwrap_or(0);
            let high = max_items.unwrap_or(4).max(low);
            prop::collection::vec(value_for(items), low..=high)
                .prop_map(Value::Array)
                .boxed()
        }
    };
    let anywhere: BoxedStrategy<Value> = match spec {
        FieldSpec::String { .. } => text().prop_map(Value::String).boxed(),
        FieldSpec::Integer { .. } => prop_oneof![
            (-6..6i64).prop_map(|n| json!(n)),
            (-6..6i32).prop_map(|n| json!(f64::from(n) + 0.5)),
            (-1_000_000..1_000_000i64).prop_map(|n| json!(n)),
        ]
        .boxed(),
        FieldSpec::Number { .. } => (-12..12i32).prop_map(|n| json!(f64::from(n) / 4.0)).boxed(),
        FieldSpec::Array { items, .. } => prop::collection::vec(value_for(items), 0..6)
            .prop_map(Value::Array)
            .boxed(),
        _ => fitting.clone(),
    };
    prop_oneof![16 => fitting, 3 => anywhere, 1 => wrong_type(spec)].boxed()
}

/// Objects whose fields are each present or not (a required one mostly present), plus
/// sometimes an undeclared one.
fn object_value(fields: &[FieldSpec], required: &[bool]) -> BoxedStrategy<Value> {
    let present: Vec<BoxedStrategy<Option<Value>>> = fields
        .iter()
        .zip(required)
        .map(|(field, required)| {
            let presence = if *required { 0.95 } else { 0.7 };
            prop::option::weighted(presence, value_for(field)).boxed()
        })
        .collect();
    (present, any::<bool>())
        .prop_map(|(values, extra)| {
            let mut object: Map<String, Value> = values
                .into_iter()
                .enumerate()
                .filter_map(|(position, value)| value.map(|value| (name(position), value)))
                .collect();
            if extra {
                // Undeclared fields: dropped by XDM, allowed by JSON Schema.
                object.insert("undeclared".into(), json!("anything"));
            }
            Value::Object(object)
        })
        .boxed()
}

/// A root schema and rows for it.
fn case() -> impl Strategy<Value = (Value, Vec<Value>)> {
    prop::collection::vec((field_spec(), any::<bool>()), 1..5).prop_flat_map(|fields| {
        let (fields, required): (Vec<FieldSpec>, Vec<bool>) = fields.into_iter().unzip();
        let root = FieldSpec::Object {
            fields: fields.clone(),
            required,
        };
        let schema = schema_of(&root);
        let FieldSpec::Object { fields, required } = root else {
            unreachable!("the root is an object")
        };
        let rows = prop::collection::vec(object_value(&fields, &required), 1..8);
        (Just(schema), rows)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_validator_agrees_with_json_schema((schema, rows) in case()) {
        let ours = Validator::compile(&schema).expect("generated schemas compile");
        let theirs = jsonschema::draft7::new(&schema).expect("generated schemas are draft 7");
        for row in rows {
            let accepted = ours.validate(row.clone(), Source::Json);
            let expected = theirs.is_valid(&row);
            prop_assert_eq!(
                accepted.is_ok(),
                expected,
                "schema {} row {}: ours {:?}",
                schema,
                row,
                accepted.err()
            );
        }
    }
}
