use arrow_array::builder::{Int64Builder, MapBuilder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    BinaryArray, Date32Array, Decimal128Array, Float64Array, Int32Array, ListArray, StringArray,
    TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use serde_json::json;

use super::*;

/// Returns the JSON of every value of `array`.
fn values(array: &dyn Array) -> Vec<Value> {
    (0..array.len())
        .map(|index| value_at(array, index).unwrap())
        .collect()
}

#[track_caller]
fn check(array: &dyn Array, expected: Value) {
    assert_eq!(Value::Array(values(array)), expected);
}

#[test]
fn dates_render_as_iso_days_across_eras() {
    let cases = [
        (0, "1970-01-01"),
        (-1, "1969-12-31"),
        (19_782, "2024-02-29"),
        (11_016, "2000-02-29"),
        (-719_162, "0001-01-01"),
        (2_932_896, "9999-12-31"),
    ];
    for (days, expected) in cases {
        assert_eq!(format_date(days), expected, "{days} days");
    }
    assert_eq!(format_date(2_932_897), "+10000-01-01");
}

#[test]
fn timestamps_render_in_utc_with_the_unit_precision() {
    check(
        &TimestampMicrosecondArray::from(vec![Some(1_700_000_000_123_456), Some(-1), None])
            .with_timezone("+02:00"),
        json!([
            "2023-11-14T22:13:20.123456Z",
            "1969-12-31T23:59:59.999999Z",
            null
        ]),
    );
    check(
        &TimestampSecondArray::from(vec![0]),
        json!(["1970-01-01T00:00:00Z"]),
    );
    check(
        &TimestampNanosecondArray::from(vec![1]),
        json!(["1970-01-01T00:00:00.000000001Z"]),
    );
    check(
        &Date32Array::from(vec![Some(19_782), None]),
        json!(["2024-02-29", null]),
    );
}

#[test]
fn scalars_decimals_and_text_map_to_json() {
    check(&Int32Array::from(vec![Some(-5), None]), json!([-5, null]));
    check(
        &Float64Array::from(vec![2.5, f64::NAN]),
        json!([2.5, "NaN"]),
    );
    check(&StringArray::from(vec!["é"]), json!(["é"]));
    check(
        &Decimal128Array::from(vec![1234, 1200])
            .with_precision_and_scale(10, 2)
            .unwrap(),
        json!([12.34, 12]),
    );
    let binary = BinaryArray::from(vec![b"ok".as_slice(), b"\xff".as_slice()]);
    assert_eq!(value_at(&binary, 0), Ok(json!("ok")));
    assert_eq!(
        value_at(&binary, 1),
        Err("binary value is not UTF-8 text".to_owned())
    );
}

#[test]
fn lists_structs_maps_and_dictionaries_nest() {
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), None]),
        None,
        Some(vec![]),
    ]);
    check(&list, json!([[1, null], null, []]));

    let mut map = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
    map.keys().append_value("a");
    map.values().append_value(1);
    map.keys().append_value("gone");
    map.values().append_null();
    map.append(true).unwrap();
    map.append(false).unwrap();
    check(&map.finish(), json!([{"a": 1}, null]));

    let structs = StructArray::from(vec![
        (
            Arc::new(Field::new("x", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef,
        ),
        (
            Arc::new(Field::new("y", DataType::Utf8, true)),
            Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
        ),
    ]);
    check(&structs, json!([{"x": 1, "y": "a"}, {"y": "b"}]));

    let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
    dictionary.append_value("gold");
    dictionary.append_null();
    dictionary.append_value("gold");
    check(&dictionary.finish(), json!(["gold", null, "gold"]));
}

#[test]
fn nested_dictionaries_are_unpacked_per_batch_and_top_level_text_ones_kept() {
    let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
    dictionary.append_value("silver");
    let mut nested =
        arrow_array::builder::ListBuilder::new(StringDictionaryBuilder::<Int32Type>::new());
    nested.values().append_value("gold");
    nested.append(true);
    let batch = RecordBatch::try_from_iter([
        ("tier", Arc::new(dictionary.finish()) as ArrayRef),
        ("tiers", Arc::new(nested.finish()) as ArrayRef),
    ])
    .unwrap();
    let plain = without_dictionaries(batch).unwrap();
    // A top-level text dictionary stays one (a large repeated value is held once)...
    assert!(matches!(
        plain.schema().field(0).data_type(),
        DataType::Dictionary(_, _)
    ));
    // ...nested ones are unpacked.
    assert_eq!(
        plain.schema().field(1).data_type(),
        &DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
    );
    assert_eq!(
        row_object(&plain, 0).unwrap(),
        json!({"tier": "silver", "tiers": ["gold"]})
            .as_object()
            .unwrap()
            .clone()
    );
}
