use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema};
use serde_json::{Value, json};

use super::*;

fn schema() -> Value {
    json!({
        "type": "object", "meta:xdmType": "object", "meta:datasetNamespace": "_adhoc1",
        "properties": {
            "_id": {"type": "string"},
            "_adhoc1": {"type": "object", "properties": {
                "name": {"type": "string"},
                "_id": {"type": "string"},
                "address": {"type": "object", "properties": {"city": {"type": "string"}}},
                "attrs": {"type": "object", "meta:xdmType": "map",
                          "additionalProperties": {"type": "string"}}}},
            "tags": {"type": "array", "items": {"type": "object",
                     "properties": {"label": {"type": "string"}}}}
        }
    })
}

#[track_caller]
fn check_header(header: &[&str], expected: Result<Vec<&str>, &str>) {
    let header: Vec<String> = header.iter().map(|name| (*name).to_owned()).collect();
    let actual = map_csv_header(&schema(), &header)
        .map(|paths| paths.iter().map(|path| path.join(".")).collect::<Vec<_>>());
    let expected = expected
        .map(|paths| paths.into_iter().map(str::to_owned).collect::<Vec<_>>())
        .map_err(str::to_owned);
    assert_eq!(actual, expected);
}

#[test]
fn csv_headers_resolve_top_level_then_namespace_then_dotted() {
    check_header(
        &["_id", "name", "address.city", "attrs.color"],
        Ok(vec![
            "_id",
            "_adhoc1.name",
            "_adhoc1.address.city",
            "_adhoc1.attrs.color",
        ]),
    );
    // `_id` exists at the top level and in the namespace: the top level wins.
    check_header(
        &["_adhoc1._id", "_adhoc1.address.city", "_id"],
        Ok(vec!["_adhoc1._id", "_adhoc1.address.city", "_id"]),
    );
}

#[test]
fn csv_headers_outside_the_schema_are_refused() {
    check_header(
        &["_id", "nickname", "address.zip"],
        Err("CSV header names not in the schema: \"nickname\", \"address.zip\""),
    );
    check_header(
        &["_id", "first name"],
        Err("CSV header names may not contain spaces: \"first name\""),
    );
    check_header(&["_id", ""], Err("CSV header column 2 has no name"));
    check_header(
        &["name", "_adhoc1.name"],
        Err("CSV header names \"name\" and \"_adhoc1.name\" map to the same field _adhoc1.name"),
    );
    check_header(
        &["_adhoc1.address", "_adhoc1.address.city"],
        Err(
            "CSV header names \"_adhoc1.address\" and \"_adhoc1.address.city\" map to the same field _adhoc1.address",
        ),
    );
}

#[track_caller]
fn check_columns(fields: Vec<Field>, expected: Result<(), &str>) {
    let actual = check_parquet_columns(&schema(), &Schema::new(fields));
    assert_eq!(actual, expected.map_err(str::to_owned));
}

#[test]
fn parquet_columns_and_struct_children_must_be_in_the_schema() {
    let address = DataType::Struct(Fields::from(vec![Field::new("city", DataType::Utf8, true)]));
    let namespace = DataType::Struct(Fields::from(vec![
        Field::new("address", address, true),
        // A struct may fill a map: its children are keys.
        Field::new(
            "attrs",
            DataType::Struct(Fields::from(vec![Field::new("any", DataType::Utf8, true)])),
            true,
        ),
    ]));
    check_columns(
        vec![
            Field::new("_id", DataType::Utf8, true),
            Field::new("_adhoc1", namespace, true),
        ],
        Ok(()),
    );
    let bad_tag = DataType::List(Arc::new(Field::new(
        "element",
        DataType::Struct(Fields::from(vec![Field::new(
            "colour",
            DataType::Utf8,
            true,
        )])),
        true,
    )));
    check_columns(
        vec![
            Field::new("extra", DataType::Utf8, true),
            Field::new("tags", bad_tag, true),
        ],
        Err("columns not in the schema: \"extra\", \"tags.colour\""),
    );
}
