//! Parquet as pandas, pyarrow and Spark write it: every Arrow type a common writer emits
//! reaches its XDM field with the conversions of spec §7.2 step 4, as JSON values do.

use std::sync::Arc;

use arrow_array::builder::{
    LargeListBuilder, ListBuilder, MapBuilder, StringBuilder, StringDictionaryBuilder,
    TimestampNanosecondBuilder,
};
use arrow_array::types::{Int8Type, Int32Type};
use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Date64Array, Decimal128Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeBinaryArray,
    LargeStringArray, RecordBatch, StringViewArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field};
use lakeport_parquet::{FileFormat, ProcessOptions};
use serde_json::{Value, json};

use crate::parquet_input::parquet_bytes;
use crate::support::Batch;

const DAY_NS: i64 = 86_400_000_000_000;
/// 2024-03-01 in days since the epoch.
const MARCH_1: i64 = 19_783;

/// Ingests a Parquet file with one `column` and returns the ingested values, then `None`
/// per rejected row (every case puts its rejected row last), and the rejections' reasons.
fn ingest(column: &str, array: ArrayRef) -> (Vec<Option<Value>>, Vec<String>) {
    let record_batch = RecordBatch::try_from_iter([(column, array.clone())]).unwrap();
    let mut batch = Batch::new("types.schema.json", ProcessOptions::default());
    let stats = batch
        .process(
            "in.parquet",
            &parquet_bytes(&record_batch),
            &FileFormat::Parquet,
        )
        .unwrap_or_else(|err| panic!("{column} {}: {err}", array.data_type()));
    assert_eq!(stats.input_records, array.len() as u64);
    let output = batch.finish();
    let mut values: Vec<Option<Value>> = batch
        .output_rows(&output)
        .into_iter()
        .map(|row| Some(row[column].clone()))
        .collect();
    let mut reasons = Vec::new();
    if output.failed_records > 0 {
        for reject in batch.json_lines("failed/part-00001.json") {
            let errors = reject.get("_errors").or(reject.get("_validationErrors"));
            reasons.push(errors.unwrap()[0]["message"].as_str().unwrap().to_owned());
            values.push(None);
        }
    }
    (values, reasons)
}

fn check(column: &str, array: ArrayRef, expected: &[Option<Value>]) {
    let data_type = array.data_type().clone();
    let (values, reasons) = ingest(column, array);
    assert_eq!(values, expected, "{column} from {data_type}: {reasons:?}");
}

#[test]
fn timestamps_at_midnight_are_dates_in_every_unit() {
    let midnight_s = MARCH_1 * 86_400;
    let cases: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(vec![MARCH_1 * DAY_NS, 0])),
        Arc::new(TimestampMicrosecondArray::from(vec![
            midnight_s * 1_000_000,
            0,
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![midnight_s * 1000, 0]).with_timezone("UTC")),
        Arc::new(TimestampSecondArray::from(vec![midnight_s, 0]).with_timezone("+00:00")),
    ];
    for array in cases {
        check(
            "d",
            array,
            &[Some(json!("2024-03-01")), Some(json!("1970-01-01"))],
        );
    }
    // Before the epoch too.
    check(
        "d",
        Arc::new(TimestampNanosecondArray::from(vec![-DAY_NS])),
        &[Some(json!("1969-12-31"))],
    );
}

#[test]
fn a_timestamp_with_a_time_of_day_is_not_a_date() {
    let (values, reasons) = ingest(
        "d",
        Arc::new(TimestampNanosecondArray::from(vec![
            MARCH_1 * DAY_NS,
            MARCH_1 * DAY_NS + 1,
        ])),
    );
    assert_eq!(values, [Some(json!("2024-03-01")), None]);
    assert!(
        reasons[0].contains("\"2024-03-01T00:00:00.000000001Z\" is not a date"),
        "{reasons:?}"
    );
}

#[test]
fn nested_timestamps_for_dates_in_lists_maps_and_objects() {
    let mut days = LargeListBuilder::new(TimestampNanosecondBuilder::new());
    days.append_value([Some(MARCH_1 * DAY_NS), None, Some(0)]);
    days.append_null();
    check(
        "days",
        Arc::new(days.finish()),
        &[
            Some(json!(["2024-03-01", null, "1970-01-01"])),
            Some(Value::Null),
        ],
    );

    let mut due = MapBuilder::new(
        None,
        StringBuilder::new(),
        TimestampNanosecondBuilder::new(),
    );
    due.keys().append_value("renewal");
    due.values().append_value(MARCH_1 * DAY_NS);
    due.append(true).unwrap();
    check(
        "due",
        Arc::new(due.finish()),
        &[Some(json!({"renewal": "2024-03-01"}))],
    );

    let o = StructArray::from(vec![(
        Arc::new(Field::new(
            "d",
            DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None),
            true,
        )),
        Arc::new(TimestampNanosecondArray::from(vec![MARCH_1 * DAY_NS])) as ArrayRef,
    )]);
    check("o", Arc::new(o), &[Some(json!({"d": "2024-03-01"}))]);
}

#[test]
fn dates_and_timestamps_keep_their_types() {
    let date = [Some(json!("2024-03-01")), Some(json!("1970-01-01"))];
    check(
        "d",
        Arc::new(Date32Array::from(vec![MARCH_1 as i32, 0])),
        &date,
    );
    check(
        "d",
        Arc::new(Date64Array::from(vec![MARCH_1 * 86_400_000, 0])),
        &date,
    );
    let at = [
        Some(json!("2024-03-01T10:30:00.123456Z")),
        Some(json!("1970-01-01T00:00:00.000000Z")),
    ];
    let micros = MARCH_1 * 86_400_000_000 + 37_800_123_456;
    check(
        "dt",
        Arc::new(TimestampNanosecondArray::from(vec![micros * 1000, 0])),
        &at,
    );
    check(
        "dt",
        Arc::new(TimestampMicrosecondArray::from(vec![micros, 0]).with_timezone("UTC")),
        &at,
    );
    // Integers are epoch milliseconds for a date-time.
    check(
        "dt",
        Arc::new(Int64Array::from(vec![micros / 1000, 0])),
        &[
            Some(json!("2024-03-01T10:30:00.123000Z")),
            Some(json!("1970-01-01T00:00:00.000000Z")),
        ],
    );
}

#[test]
fn integers_of_any_width_fill_integer_fields_within_range() {
    let in_range = [Some(json!(7)), Some(json!(-3))];
    let fields: [(&str, Vec<ArrayRef>); 4] = [
        (
            "by",
            vec![
                Arc::new(Int8Array::from(vec![7, -3])),
                Arc::new(Int64Array::from(vec![7, -3])),
                Arc::new(Float64Array::from(vec![7.0, -3.0])),
            ],
        ),
        (
            "sh",
            vec![
                Arc::new(Int16Array::from(vec![7, -3])),
                Arc::new(Int32Array::from(vec![7, -3])),
            ],
        ),
        (
            "i",
            vec![
                Arc::new(Int64Array::from(vec![7, -3])),
                Arc::new(
                    Decimal128Array::from(vec![7, -3])
                        .with_precision_and_scale(10, 0)
                        .unwrap(),
                ),
            ],
        ),
        ("l", vec![Arc::new(Int32Array::from(vec![7, -3]))]),
    ];
    for (field, arrays) in fields {
        for array in arrays {
            check(field, array, &in_range);
        }
    }
    let unsigned: [ArrayRef; 4] = [
        Arc::new(UInt8Array::from(vec![7])),
        Arc::new(UInt16Array::from(vec![7])),
        Arc::new(UInt32Array::from(vec![7])),
        Arc::new(UInt64Array::from(vec![7])),
    ];
    for array in unsigned {
        check("l", array, &[Some(json!(7))]);
    }
    // Out of range: the row is rejected, as a JSON number would be.
    check(
        "by",
        Arc::new(Int64Array::from(vec![1, 128])),
        &[Some(json!(1)), None],
    );
    check(
        "sh",
        Arc::new(Int32Array::from(vec![1, 40_000])),
        &[Some(json!(1)), None],
    );
    check(
        "i",
        Arc::new(Int64Array::from(vec![1, 3_000_000_000])),
        &[Some(json!(1)), None],
    );
    check(
        "l",
        Arc::new(UInt64Array::from(vec![1, u64::MAX])),
        &[Some(json!(1)), None],
    );
}

#[test]
fn numbers_and_booleans() {
    check(
        "n",
        Arc::new(Float32Array::from(vec![0.5, 2.0])),
        &[Some(json!(0.5)), Some(json!(2.0))],
    );
    check(
        "n",
        Arc::new(Int64Array::from(vec![5, -1])),
        &[Some(json!(5.0)), Some(json!(-1.0))],
    );
    check(
        "n",
        Arc::new(
            Decimal128Array::from(vec![1234, 5])
                .with_precision_and_scale(10, 2)
                .unwrap(),
        ),
        &[Some(json!(12.34)), Some(json!(0.05))],
    );
    check(
        "flag",
        Arc::new(BooleanArray::from(vec![true, false])),
        &[Some(json!(true)), Some(json!(false))],
    );
}

#[test]
fn every_string_encoding_is_a_string() {
    let text = [Some(json!("gold")), Some(json!("silver"))];
    let mut dictionary = StringDictionaryBuilder::<Int32Type>::new();
    dictionary.append_value("gold");
    dictionary.append_value("silver");
    let mut small_dictionary = StringDictionaryBuilder::<Int8Type>::new();
    small_dictionary.append_value("gold");
    small_dictionary.append_value("silver");
    let arrays: [ArrayRef; 6] = [
        Arc::new(LargeStringArray::from(vec!["gold", "silver"])),
        Arc::new(StringViewArray::from(vec!["gold", "silver"])),
        Arc::new(dictionary.finish()),
        Arc::new(small_dictionary.finish()),
        Arc::new(BinaryArray::from(vec![b"gold".as_slice(), b"silver"])),
        Arc::new(LargeBinaryArray::from(vec![b"gold".as_slice(), b"silver"])),
    ];
    for array in arrays {
        check("s", array, &text);
    }
    // Numbers convert to a string field, as JSON numbers do.
    check(
        "s",
        Arc::new(Int64Array::from(vec![5, 6])),
        &[Some(json!("5")), Some(json!("6"))],
    );
}

#[test]
fn lists_of_every_kind_are_arrays() {
    let mut large = LargeListBuilder::new(StringBuilder::new());
    large.append_value([Some("a"), Some("b")]);
    large.append_value([Some("c")]);
    let mut of_dictionaries = ListBuilder::new(StringDictionaryBuilder::<Int32Type>::new());
    of_dictionaries.values().append_value("a");
    of_dictionaries.values().append_value("b");
    of_dictionaries.append(true);
    of_dictionaries.values().append_value("c");
    of_dictionaries.append(true);
    let expected = [Some(json!(["a", "b"])), Some(json!(["c"]))];
    check("tags", Arc::new(large.finish()), &expected);
    check("tags", Arc::new(of_dictionaries.finish()), &expected);
}
