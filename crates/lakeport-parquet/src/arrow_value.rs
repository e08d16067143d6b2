//! Arrow ↔ JSON glue: Arrow values as the JSON the validator reads (Parquet input and
//! preview), and the zero-copy re-typing that gives decoded batches the mapped schema's
//! timestamp time zone.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type,
    Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, GenericListArray, ListArray, MapArray, OffsetSizeTrait, RecordBatch,
    StructArray,
};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{ArrowError, DataType, Field, FieldRef, Fields, Schema, TimeUnit};
use serde_json::{Map, Number, Value};

#[cfg(test)]
mod tests;

/// Returns row `index` of `batch` as a JSON object; null columns are left out.
///
/// # Errors
///
/// A message naming the column when a value has no JSON form (binary data that is not
/// UTF-8).
pub(crate) fn row_object(batch: &RecordBatch, index: usize) -> Result<Map<String, Value>, String> {
    let schema = batch.schema_ref();
    let mut row = Map::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if column.is_null(index) {
            continue;
        }
        let value = value_at(column.as_ref(), index)
            .map_err(|reason| format!("column {}: {reason}", field.name()))?;
        row.insert(field.name().clone(), value);
    }
    Ok(row)
}

/// Returns the value at `index` as JSON: dates as `YYYY-MM-DD`, timestamps as RFC 3339 in
/// UTC, structs and maps as objects (null members left out), lists as arrays, decimals as
/// numbers, anything without a JSON form as its Arrow display string.
pub(crate) fn value_at(array: &dyn Array, index: usize) -> Result<Value, String> {
    if array.is_null(index) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(array.as_boolean().value(index)),
        DataType::Int8 => Value::from(array.as_primitive::<Int8Type>().value(index)),
        DataType::Int16 => Value::from(array.as_primitive::<Int16Type>().value(index)),
        DataType::Int32 => Value::from(array.as_primitive::<Int32Type>().value(index)),
        DataType::Int64 => Value::from(array.as_primitive::<Int64Type>().value(index)),
        DataType::UInt8 => Value::from(array.as_primitive::<UInt8Type>().value(index)),
        DataType::UInt16 => Value::from(array.as_primitive::<UInt16Type>().value(index)),
        DataType::UInt32 => Value::from(array.as_primitive::<UInt32Type>().value(index)),
        DataType::UInt64 => Value::from(array.as_primitive::<UInt64Type>().value(index)),
        DataType::Float16 => float(f64::from(
            array.as_primitive::<Float16Type>().value(index).to_f32(),
        )),
        DataType::Float32 => float(f64::from(array.as_primitive::<Float32Type>().value(index))),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(index)),
        DataType::Utf8 => Value::from(array.as_string::<i32>().value(index)),
        DataType::LargeUtf8 => Value::from(array.as_string::<i64>().value(index)),
        DataType::Utf8View => Value::from(array.as_string_view().value(index)),
        DataType::Binary => binary(array.as_binary::<i32>().value(index))?,
        DataType::LargeBinary => binary(array.as_binary::<i64>().value(index))?,
        DataType::BinaryView => binary(array.as_binary_view().value(index))?,
        DataType::FixedSizeBinary(_) => binary(array.as_fixed_size_binary().value(index))?,
        DataType::Date32 => Value::String(format_date(i64::from(
            array.as_primitive::<Date32Type>().value(index),
        ))),
        DataType::Date64 => {
            let millis = array.as_primitive::<Date64Type>().value(index);
            Value::String(format_date(millis.div_euclid(MILLIS_PER_DAY)))
        }
        DataType::Timestamp(unit, _) => {
            // With or without a time zone, Arrow timestamps count from the UTC epoch.
            let (value, per_second, digits) = match unit {
                TimeUnit::Second => (
                    array.as_primitive::<TimestampSecondType>().value(index),
                    1,
                    0,
                ),
                TimeUnit::Millisecond => (
                    array
                        .as_primitive::<TimestampMillisecondType>()
                        .value(index),
                    1_000,
                    3,
                ),
                TimeUnit::Microsecond => (
                    array
                        .as_primitive::<TimestampMicrosecondType>()
                        .value(index),
                    1_000_000,
                    6,
                ),
                TimeUnit::Nanosecond => (
                    array.as_primitive::<TimestampNanosecondType>().value(index),
                    1_000_000_000,
                    9,
                ),
            };
            Value::String(format_timestamp(value, per_second, digits))
        }
        DataType::Time32(TimeUnit::Second) => Value::String(format_time(
            i64::from(array.as_primitive::<Time32SecondType>().value(index)),
            1,
            0,
        )),
        DataType::Time32(_) => Value::String(format_time(
            i64::from(array.as_primitive::<Time32MillisecondType>().value(index)),
            1_000,
            3,
        )),
        DataType::Time64(TimeUnit::Nanosecond) => Value::String(format_time(
            array.as_primitive::<Time64NanosecondType>().value(index),
            1_000_000_000,
            9,
        )),
        DataType::Time64(_) => Value::String(format_time(
            array.as_primitive::<Time64MicrosecondType>().value(index),
            1_000_000,
            6,
        )),
        DataType::Decimal32(_, _) => decimal(array.as_primitive::<Decimal32Type>(), index),
        DataType::Decimal64(_, _) => decimal(array.as_primitive::<Decimal64Type>(), index),
        DataType::Decimal128(_, _) => decimal(array.as_primitive::<Decimal128Type>(), index),
        DataType::Decimal256(_, _) => decimal(array.as_primitive::<Decimal256Type>(), index),
        DataType::List(_) => list(array.as_list::<i32>(), index)?,
        DataType::LargeList(_) => list(array.as_list::<i64>(), index)?,
        DataType::FixedSizeList(_, _) => {
            let values = array.as_fixed_size_list().value(index);
            elements(values.as_ref())?
        }
        DataType::Struct(_) => Value::Object(struct_object(array.as_struct(), index)?),
        DataType::Map(_, _) => map_object(array.as_map(), index)?,
        DataType::Dictionary(_, _) => {
            // Readers unpack dictionaries per batch (see `without_dictionaries`); this
            // covers any left over, one key at a time.
            let dictionary = array.as_any_dictionary();
            let key = value_at(dictionary.keys(), index)?
                .as_u64()
                .and_then(|key| usize::try_from(key).ok())
                .ok_or_else(|| "dictionary key is not an index".to_owned())?;
            value_at(dictionary.values().as_ref(), key)?
        }
        // Durations, intervals, unions, …: no XDM counterpart; their display form lets a
        // string field take them and gives any other field a clear conversion error.
        _ => Value::String(display(array, index)?),
    })
}

const MILLIS_PER_DAY: i64 = 86_400_000;

fn float(value: f64) -> Value {
    // JSON has no NaN or infinity; their names reach the validator as text.
    Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number)
}

fn binary(bytes: &[u8]) -> Result<Value, String> {
    std::str::from_utf8(bytes)
        .map(Value::from)
        .map_err(|_| "binary value is not UTF-8 text".to_owned())
}

fn decimal<T: arrow_array::types::DecimalType>(
    array: &arrow_array::PrimitiveArray<T>,
    index: usize,
) -> Value {
    let text = array.value_as_string(index);
    // Integral decimals stay exact integers; others become doubles, like JSON numbers do.
    let integral = match text.split_once('.') {
        Some((integer, fraction)) if fraction.bytes().all(|digit| digit == b'0') => integer,
        Some(_) => "",
        None => text.as_str(),
    };
    if let Ok(integer) = integral.parse::<i64>() {
        return Value::from(integer);
    }
    match text.parse::<f64>() {
        Ok(double) => float(double),
        Err(_) => Value::String(text),
    }
}

fn list<O: OffsetSizeTrait>(array: &GenericListArray<O>, index: usize) -> Result<Value, String> {
    elements(array.value(index).as_ref())
}

fn elements(values: &dyn Array) -> Result<Value, String> {
    (0..values.len())
        .map(|index| value_at(values, index))
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

fn struct_object(array: &StructArray, index: usize) -> Result<Map<String, Value>, String> {
    let mut object = Map::with_capacity(array.num_columns());
    for (field, column) in array.fields().iter().zip(array.columns()) {
        if column.is_null(index) {
            continue;
        }
        let value = value_at(column.as_ref(), index)
            .map_err(|reason| format!("{}: {reason}", field.name()))?;
        object.insert(field.name().clone(), value);
    }
    Ok(object)
}

fn map_object(array: &MapArray, index: usize) -> Result<Value, String> {
    let entries = array.value(index);
    let keys = entries.column(0);
    let values = entries.column(1);
    let mut object = Map::with_capacity(entries.len());
    for entry in 0..entries.len() {
        let key = match value_at(keys.as_ref(), entry)? {
            Value::String(key) => key,
            other => other.to_string(),
        };
        if values.is_null(entry) {
            continue;
        }
        object.insert(key, value_at(values.as_ref(), entry)?);
    }
    Ok(Value::Object(object))
}

fn display(array: &dyn Array, index: usize) -> Result<String, String> {
    let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())
        .map_err(|err| format!("value has no text form: {err}"))?;
    Ok(formatter.value(index).to_string())
}

/// Returns the `YYYY-MM-DD` form of a day count from 1970-01-01 (proleptic Gregorian).
pub(crate) fn format_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    if (0..=9999).contains(&year) {
        format!("{year:04}-{month:02}-{day:02}")
    } else {
        // Outside four-digit years: keep the sign so the validator rejects it as a date.
        format!("{year:+}-{month:02}-{day:02}")
    }
}

/// Returns `YYYY-MM-DDTHH:MM:SS[.f…]Z` for `value` units (`per_second` to the second) since
/// the epoch, with `digits` fractional digits.
pub(crate) fn format_timestamp(value: i64, per_second: i64, digits: usize) -> String {
    let seconds = value.div_euclid(per_second);
    let fraction = value.rem_euclid(per_second);
    let days = seconds.div_euclid(86_400);
    let time = format_time_of_day(seconds.rem_euclid(86_400), fraction, digits);
    format!("{}T{time}Z", format_date(days))
}

fn format_time(value: i64, per_second: i64, digits: usize) -> String {
    format_time_of_day(
        value.div_euclid(per_second),
        value.rem_euclid(per_second),
        digits,
    )
}

fn format_time_of_day(seconds: i64, fraction: i64, digits: usize) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if digits == 0 {
        format!("{hours:02}:{minutes:02}:{seconds:02}")
    } else {
        format!("{hours:02}:{minutes:02}:{seconds:02}.{fraction:0digits$}")
    }
}

/// Howard Hinnant's `civil_from_days`: (year, month, day) of a day count from 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * shifted_month + 2) / 5 + 1)
        .expect("day of month is 1..=31");
    let month = u32::try_from(if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    })
    .expect("month is 1..=12");
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Returns `batch` with every timestamp column (at any depth) whose XDM field is a `date`
/// turned into text: the `YYYY-MM-DD` of a timestamp at midnight UTC (pandas and pyarrow
/// write dates parsed from text as such timestamps), else the RFC 3339 timestamp, which the
/// validator then refuses as a date, row by row. `schema` is the resolved XDM schema; the
/// batch's columns were checked to be in it. Other columns are kept as they are.
pub(crate) fn dates_from_timestamps(
    batch: RecordBatch,
    schema: &Value,
) -> Result<RecordBatch, ArrowError> {
    let properties = schema.get("properties");
    let mut changed = false;
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        let node = properties.and_then(|properties| properties.get(field.name()));
        match node
            .map(|node| date_text(column, node))
            .transpose()?
            .flatten()
        {
            Some(adapted) => {
                changed = true;
                fields.push(field_of(field, adapted.data_type()));
                columns.push(adapted);
            }
            None => {
                fields.push(field.clone());
                columns.push(column.clone());
            }
        }
    }
    if !changed {
        return Ok(batch);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn field_of(field: &FieldRef, data_type: &DataType) -> FieldRef {
    Arc::new(
        Field::new(field.name(), data_type.clone(), field.is_nullable())
            .with_metadata(field.metadata().clone()),
    )
}

/// Returns `array` with its timestamps for XDM dates as text, `None` when nothing changes.
fn date_text(array: &ArrayRef, node: &Value) -> Result<Option<ArrayRef>, ArrowError> {
    Ok(match array.data_type() {
        DataType::Timestamp(unit, _) if crate::schema::is_date_field(node) => {
            let per_second: i64 = match unit {
                TimeUnit::Second => 1,
                TimeUnit::Millisecond => 1_000,
                TimeUnit::Microsecond => 1_000_000,
                TimeUnit::Nanosecond => 1_000_000_000,
            };
            let values = arrow_cast::cast(array, &DataType::Int64)?;
            let values = values.as_primitive::<Int64Type>();
            let per_day = per_second * 86_400;
            let text: arrow_array::StringArray = values
                .iter()
                .map(|value| {
                    value.map(|value| {
                        if value.rem_euclid(per_day) == 0 {
                            format_date(value.div_euclid(per_day))
                        } else {
                            let digits = per_second.ilog10() as usize;
                            format_timestamp(value, per_second, digits)
                        }
                    })
                })
                .collect();
            Some(Arc::new(text))
        }
        DataType::Struct(fields) => {
            let Some(properties) = node.get("properties") else {
                return Ok(None);
            };
            let structs = array.as_struct();
            let mut changed = false;
            let mut new_fields = Vec::with_capacity(fields.len());
            let mut columns = Vec::with_capacity(fields.len());
            for (field, column) in fields.iter().zip(structs.columns()) {
                match properties
                    .get(field.name())
                    .map(|child| date_text(column, child))
                    .transpose()?
                    .flatten()
                {
                    Some(adapted) => {
                        changed = true;
                        new_fields.push(field_of(field, adapted.data_type()));
                        columns.push(adapted);
                    }
                    None => {
                        new_fields.push(field.clone());
                        columns.push(column.clone());
                    }
                }
            }
            if !changed {
                return Ok(None);
            }
            Some(Arc::new(StructArray::try_new_with_length(
                new_fields.into(),
                columns,
                structs.nulls().cloned(),
                structs.len(),
            )?))
        }
        DataType::List(element) => {
            let Some(items) = node.get("items") else {
                return Ok(None);
            };
            let (_, offsets, values, nulls) = array.as_list::<i32>().clone().into_parts();
            let Some(values) = date_text(&values, items)? else {
                return Ok(None);
            };
            let element = field_of(element, values.data_type());
            Some(Arc::new(ListArray::try_new(
                element, offsets, values, nulls,
            )?))
        }
        DataType::LargeList(element) => {
            let Some(items) = node.get("items") else {
                return Ok(None);
            };
            let (_, offsets, values, nulls) = array.as_list::<i64>().clone().into_parts();
            let Some(values) = date_text(&values, items)? else {
                return Ok(None);
            };
            let element = field_of(element, values.data_type());
            Some(Arc::new(arrow_array::LargeListArray::try_new(
                element, offsets, values, nulls,
            )?))
        }
        DataType::Map(entries, sorted) => {
            let (Some(values_node), DataType::Struct(entry_fields)) =
                (node.get("additionalProperties"), entries.data_type())
            else {
                return Ok(None);
            };
            let (_, offsets, entry_array, nulls, _) = array.as_map().clone().into_parts();
            let (_, mut entry_columns, entry_nulls) = entry_array.into_parts();
            let Some(values) = entry_columns
                .get(1)
                .map(|values| date_text(values, values_node))
                .transpose()?
                .flatten()
            else {
                return Ok(None);
            };
            let mut new_entry_fields: Vec<FieldRef> = entry_fields.iter().cloned().collect();
            new_entry_fields[1] = field_of(&entry_fields[1], values.data_type());
            entry_columns[1] = values;
            let entry_fields: Fields = new_entry_fields.into();
            let entry_array =
                StructArray::try_new(entry_fields.clone(), entry_columns, entry_nulls)?;
            let entries = Arc::new(Field::new(
                entries.name(),
                DataType::Struct(entry_fields),
                entries.is_nullable(),
            ));
            Some(Arc::new(MapArray::try_new(
                entries,
                offsets,
                entry_array,
                nulls,
                *sorted,
            )?))
        }
        _ => None,
    })
}

/// Returns `batch` with every dictionary-encoded column (at any depth) cast to its value
/// type, so that rows read one value at a time don't look keys up through the dictionary.
///
/// A top-level dictionary of text or binary stays one: each row looks its value up when it
/// is built, so a large value repeated on many rows is held once (see `read::parquet`).
pub(crate) fn without_dictionaries(batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    if !batch
        .schema_ref()
        .fields()
        .iter()
        .any(|field| has_dictionary(field.data_type()) && !is_text_dictionary(field.data_type()))
    {
        return Ok(batch);
    }
    let fields: Fields = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|field| {
            if is_text_dictionary(field.data_type()) {
                return field.clone();
            }
            Arc::new(
                Field::new(
                    field.name(),
                    plain_type(field.data_type()),
                    field.is_nullable(),
                )
                .with_metadata(field.metadata().clone()),
            )
        })
        .collect();
    let columns = batch
        .columns()
        .iter()
        .zip(&fields)
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                arrow_cast::cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

fn is_text_dictionary(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Dictionary(_, values) if matches!(
            values.as_ref(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Binary | DataType::LargeBinary
        )
    )
}

fn has_dictionary(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, _) => true,
        DataType::Struct(fields) => fields.iter().any(|field| has_dictionary(field.data_type())),
        DataType::List(element)
        | DataType::LargeList(element)
        | DataType::FixedSizeList(element, _)
        | DataType::Map(element, _) => has_dictionary(element.data_type()),
        _ => false,
    }
}

fn plain_type(data_type: &DataType) -> DataType {
    let plain_field = |field: &FieldRef| {
        Arc::new(
            Field::new(
                field.name(),
                plain_type(field.data_type()),
                field.is_nullable(),
            )
            .with_metadata(field.metadata().clone()),
        )
    };
    match data_type {
        DataType::Dictionary(_, values) => plain_type(values),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(plain_field).collect()),
        DataType::List(element) => DataType::List(plain_field(element)),
        DataType::LargeList(element) => DataType::LargeList(plain_field(element)),
        DataType::FixedSizeList(element, size) => {
            DataType::FixedSizeList(plain_field(element), *size)
        }
        DataType::Map(entries, sorted) => DataType::Map(plain_field(entries), *sorted),
        other => other.clone(),
    }
}
