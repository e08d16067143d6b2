use serde_json::{Value, json};

use super::*;

/// Returns `field` with its XDM type recorded in the metadata, as the mapping does.
fn xdm(field: Field, xdm_type: &str) -> Field {
    field.with_metadata(HashMap::from([(
        XDM_TYPE_METADATA_KEY.to_owned(),
        xdm_type.to_owned(),
    )]))
}

/// Returns a resolved root schema with these properties and root `required` list.
fn root(properties: Value, required: Value) -> Value {
    json!({"type": "object", "meta:xdmType": "object", "required": required, "properties": properties})
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn list_of(element: Field) -> DataType {
    DataType::List(Arc::new(element))
}

fn map_of(value: Field) -> DataType {
    let entries = Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            value,
        ])),
        false,
    );
    DataType::Map(Arc::new(entries), false)
}

/// Maps `definition` as an optional field named `f` and checks its type and XDM metadata.
#[track_caller]
fn check(definition: Value, expected_type: DataType, expected_xdm_type: &str) {
    let actual = arrow_field("f", &definition, false).unwrap();
    assert_eq!(
        actual,
        xdm(Field::new("f", expected_type, true), expected_xdm_type)
    );
}

/// Maps `schema` and checks the full error message.
#[track_caller]
fn check_error(schema: Value, expected: &str) {
    let actual = match arrow_schema(&schema) {
        Ok(mapped) => format!("mapped: {mapped:?}"),
        Err(err) => err.to_string(),
    };
    assert_eq!(actual, expected);
}

#[test]
fn every_scalar_xdm_type_maps_to_its_arrow_type() {
    let cases = [
        (
            json!({"type": "string", "meta:xdmType": "string"}),
            DataType::Utf8,
            "string",
        ),
        (
            json!({"type": "number", "meta:xdmType": "number"}),
            DataType::Float64,
            "number",
        ),
        (
            json!({"type": "integer", "meta:xdmType": "long"}),
            DataType::Int64,
            "long",
        ),
        (
            json!({"type": "integer", "meta:xdmType": "int"}),
            DataType::Int32,
            "int",
        ),
        (
            json!({"type": "integer", "meta:xdmType": "short"}),
            DataType::Int16,
            "short",
        ),
        (
            json!({"type": "integer", "meta:xdmType": "byte"}),
            DataType::Int8,
            "byte",
        ),
        (
            json!({"type": "boolean", "meta:xdmType": "boolean"}),
            DataType::Boolean,
            "boolean",
        ),
        (
            json!({"type": "string", "format": "date", "meta:xdmType": "date"}),
            DataType::Date32,
            "date",
        ),
        (
            json!({"type": "string", "format": "date-time", "meta:xdmType": "date-time"}),
            utc_micros(),
            "date-time",
        ),
    ];
    for (definition, expected_type, expected_xdm_type) in cases {
        check(definition, expected_type, expected_xdm_type);
    }
}

#[test]
fn meta_xdm_type_alone_is_enough() {
    check(json!({"meta:xdmType": "short"}), DataType::Int16, "short");
    check(json!({"meta:xdmType": "date"}), DataType::Date32, "date");
}

#[test]
fn types_are_inferred_when_meta_xdm_type_is_absent() {
    check(json!({"type": "string"}), DataType::Utf8, "string");
    check(
        json!({"type": "string", "format": "date"}),
        DataType::Date32,
        "date",
    );
    check(
        json!({"type": "string", "format": "date-time"}),
        utc_micros(),
        "date-time",
    );
    check(json!({"type": "number"}), DataType::Float64, "number");
    check(json!({"type": "integer"}), DataType::Int64, "long");
    check(json!({"type": "boolean"}), DataType::Boolean, "boolean");
    check(
        json!({"type": "object", "properties": {"a": {"type": "string"}}}),
        DataType::Struct(Fields::from(vec![xdm(
            Field::new("a", DataType::Utf8, true),
            "string",
        )])),
        "object",
    );
    check(
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
        map_of(xdm(Field::new("value", DataType::Utf8, true), "string")),
        "map",
    );
    check(
        json!({"type": "array", "items": {"type": "integer"}}),
        list_of(xdm(Field::new("element", DataType::Int64, true), "long")),
        "array",
    );
}

#[test]
fn unknown_formats_are_ignored_and_an_explicit_xdm_type_wins_over_format() {
    check(
        json!({"type": "string", "format": "email"}),
        DataType::Utf8,
        "string",
    );
    check(
        json!({"type": "string", "format": "uri"}),
        DataType::Utf8,
        "string",
    );
    check(
        json!({"type": "string", "format": "date-time", "meta:xdmType": "string"}),
        DataType::Utf8,
        "string",
    );
}

#[test]
fn an_object_with_properties_is_a_struct_even_with_additional_properties() {
    check(
        json!({"type": "object", "properties": {"a": {"type": "boolean"}}, "additionalProperties": false}),
        DataType::Struct(Fields::from(vec![xdm(
            Field::new("a", DataType::Boolean, true),
            "boolean",
        )])),
        "object",
    );
}

#[test]
fn nested_objects_are_structs_with_fields_in_schema_order() {
    let definition = json!({
        "type": "object", "meta:xdmType": "object",
        "properties": {
            "zeta": {"type": "string", "meta:xdmType": "string"},
            "alpha": {"type": "object", "meta:xdmType": "object", "properties": {
                "y": {"type": "integer", "meta:xdmType": "int"},
                "b": {"type": "number", "meta:xdmType": "number"}}},
            "mid": {"type": "boolean", "meta:xdmType": "boolean"}}
    });
    let inner = Fields::from(vec![
        xdm(Field::new("y", DataType::Int32, true), "int"),
        xdm(Field::new("b", DataType::Float64, true), "number"),
    ]);
    check(
        definition,
        DataType::Struct(Fields::from(vec![
            xdm(Field::new("zeta", DataType::Utf8, true), "string"),
            xdm(Field::new("alpha", DataType::Struct(inner), true), "object"),
            xdm(Field::new("mid", DataType::Boolean, true), "boolean"),
        ])),
        "object",
    );
}

#[test]
fn arrays_are_lists_of_nullable_elements_including_lists_of_structs() {
    check(
        json!({"type": "array", "meta:xdmType": "array", "items": {"type": "string", "meta:xdmType": "string"}}),
        list_of(xdm(Field::new("element", DataType::Utf8, true), "string")),
        "array",
    );
    let definition = json!({
        "type": "array", "meta:xdmType": "array",
        "items": {"type": "object", "meta:xdmType": "object", "required": ["sku"], "properties": {
            "sku": {"type": "string", "meta:xdmType": "string"},
            "quantity": {"type": "integer", "meta:xdmType": "int"},
            "seen": {"type": "array", "items": {"type": "string", "format": "date-time"}}}}
    });
    let item = Fields::from(vec![
        xdm(Field::new("sku", DataType::Utf8, false), "string"),
        xdm(Field::new("quantity", DataType::Int32, true), "int"),
        xdm(
            Field::new(
                "seen",
                list_of(xdm(Field::new("element", utc_micros(), true), "date-time")),
                true,
            ),
            "array",
        ),
    ]);
    check(
        definition,
        list_of(xdm(
            Field::new("element", DataType::Struct(item), true),
            "object",
        )),
        "array",
    );
}

#[test]
fn maps_have_utf8_keys_and_nullable_values_of_string_int_or_object() {
    check(
        json!({"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "string"}}),
        map_of(xdm(Field::new("value", DataType::Utf8, true), "string")),
        "map",
    );
    check(
        json!({"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "integer", "meta:xdmType": "int"}}),
        map_of(xdm(Field::new("value", DataType::Int32, true), "int")),
        "map",
    );
    check(
        json!({"type": "object", "meta:xdmType": "map", "additionalProperties": {
            "type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}}),
        map_of(xdm(
            Field::new(
                "value",
                DataType::Struct(Fields::from(vec![xdm(
                    Field::new("id", DataType::Utf8, false),
                    "string",
                )])),
                true,
            ),
            "object",
        )),
        "map",
    );
}

#[test]
fn a_map_is_a_map_even_when_it_also_declares_properties() {
    check(
        json!({"type": "object", "meta:xdmType": "map", "properties": {"a": {"type": "string"}},
               "additionalProperties": {"type": "string"}}),
        map_of(xdm(Field::new("value", DataType::Utf8, true), "string")),
        "map",
    );
}

#[test]
fn nullability_follows_required_at_the_root_and_in_nested_objects() {
    let schema = root(
        json!({
            "a": {"type": "string"},
            "b": {"type": "string"},
            "outer": {"type": "object", "required": ["x"], "properties": {
                "x": {"type": "string"},
                "y": {"type": "string"}}},
            "required_outer": {"type": "object", "properties": {
                "x": {"type": "string"}}}
        }),
        json!(["b", "required_outer", "not_a_field"]),
    );
    let mapped = arrow_schema(&schema).unwrap();
    let nullability: Vec<(String, bool)> = mapped
        .flattened_fields()
        .iter()
        .map(|field| (field.name().clone(), field.is_nullable()))
        .collect();
    let expected = [
        ("a", true),
        ("b", false),
        ("outer", true),
        ("x", false),
        ("y", true),
        ("required_outer", false),
        ("x", true),
    ];
    let expected: Vec<(String, bool)> = expected
        .iter()
        .map(|(name, nullable)| (name.to_string(), *nullable))
        .collect();
    assert_eq!(nullability, expected);
}

#[test]
fn arrow_field_honours_required() {
    let field = arrow_field("id", &json!({"type": "string"}), true).unwrap();
    assert_eq!(
        field,
        xdm(Field::new("id", DataType::Utf8, false), "string")
    );
}

#[test]
fn every_field_records_its_xdm_type_except_synthetic_map_keys_and_entries() {
    let schema = root(
        json!({
            "n": {"type": "integer", "meta:xdmType": "byte"},
            "o": {"type": "object", "properties": {
                "tags": {"type": "array", "items": {"type": "integer", "meta:xdmType": "short"}},
                "attrs": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "string", "format": "date"}}}}
        }),
        json!([]),
    );
    let mapped = arrow_schema(&schema).unwrap();
    let xdm_types: Vec<(String, Option<String>)> = mapped
        .flattened_fields()
        .iter()
        .map(|field| {
            let xdm_type = field.metadata().get(XDM_TYPE_METADATA_KEY).cloned();
            (field.name().clone(), xdm_type)
        })
        .collect();
    let expected = [
        ("n", Some("byte")),
        ("o", Some("object")),
        ("tags", Some("array")),
        ("element", Some("short")),
        ("attrs", Some("map")),
        ("entries", None),
        ("key", None),
        ("value", Some("date")),
    ];
    let expected: Vec<(String, Option<String>)> = expected
        .iter()
        .map(|(name, xdm_type)| (name.to_string(), xdm_type.map(str::to_owned)))
        .collect();
    assert_eq!(xdm_types, expected);
    assert!(mapped.metadata().is_empty());
}

#[test]
fn the_benchmark_experience_event_schema_maps_to_typed_columns() {
    // The experience-event class plus ../shared/bench/fieldgroup.json, resolved (xed-full).
    let schema = json!({
        "$id": "https://ns.adobe.com/acme/schemas/bench",
        "title": "Bench events", "type": "object", "meta:xdmType": "object",
        "meta:class": "https://ns.adobe.com/xdm/context/experienceevent",
        "required": ["_id", "timestamp"],
        "properties": {
            "_id": {"type": "string", "meta:xdmType": "string"},
            "timestamp": {"type": "string", "format": "date-time", "meta:xdmType": "date-time"},
            "eventType": {"type": "string", "meta:xdmType": "string"},
            "_acme": {"type": "object", "meta:xdmType": "object", "required": ["loyalty"], "properties": {
                "identity": {"type": "object", "meta:xdmType": "object", "properties": {
                    "ecid": {"type": "string", "pattern": "^[0-9a-f]{16}$", "meta:xdmType": "string"},
                    "crmId": {"type": "string", "minLength": 1, "maxLength": 32, "meta:xdmType": "string"}}},
                "person": {"type": "object", "meta:xdmType": "object", "properties": {
                    "firstName": {"type": "string", "meta:xdmType": "string"},
                    "lastName": {"type": "string", "meta:xdmType": "string"},
                    "birthDate": {"type": "string", "format": "date", "meta:xdmType": "date"},
                    "email": {"type": "string", "format": "email", "meta:xdmType": "string"}}},
                "loyalty": {"type": "object", "meta:xdmType": "object", "required": ["memberId"], "properties": {
                    "memberId": {"type": "string", "pattern": "^M-[0-9]{6}$", "meta:xdmType": "string"},
                    "tier": {"type": "string", "enum": ["bronze", "silver", "gold", "platinum"], "meta:xdmType": "string"},
                    "points": {"type": "integer", "minimum": 0, "maximum": 10000000, "meta:xdmType": "long"},
                    "joined": {"type": "string", "format": "date", "meta:xdmType": "date"}}},
                "order": {"type": "object", "meta:xdmType": "object", "properties": {
                    "priceTotal": {"type": "number", "minimum": 0, "meta:xdmType": "number"},
                    "currencyCode": {"type": "string", "pattern": "^[A-Z]{3}$", "meta:xdmType": "string"},
                    "items": {"type": "integer", "minimum": 0, "maximum": 32767, "meta:xdmType": "short"}}},
                "channel": {"type": "string", "enum": ["web", "mobile", "store"], "meta:xdmType": "string"},
                "score": {"type": "number", "minimum": 0, "maximum": 100, "meta:xdmType": "number"},
                "optIn": {"type": "boolean", "meta:xdmType": "boolean"},
                "tags": {"type": "array", "meta:xdmType": "array", "items": {"type": "string", "meta:xdmType": "string"}},
                "attributes": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "string"}}}}
        }
    });

    let field = |name: &str, data_type: DataType, nullable: bool, xdm_type: &str| {
        xdm(Field::new(name, data_type, nullable), xdm_type)
    };
    let object = |fields: Vec<Field>| DataType::Struct(Fields::from(fields));
    let expected = Schema::new(vec![
        field("_id", DataType::Utf8, false, "string"),
        field("timestamp", utc_micros(), false, "date-time"),
        field("eventType", DataType::Utf8, true, "string"),
        field(
            "_acme",
            object(vec![
                field(
                    "identity",
                    object(vec![
                        field("ecid", DataType::Utf8, true, "string"),
                        field("crmId", DataType::Utf8, true, "string"),
                    ]),
                    true,
                    "object",
                ),
                field(
                    "person",
                    object(vec![
                        field("firstName", DataType::Utf8, true, "string"),
                        field("lastName", DataType::Utf8, true, "string"),
                        field("birthDate", DataType::Date32, true, "date"),
                        field("email", DataType::Utf8, true, "string"),
                    ]),
                    true,
                    "object",
                ),
                field(
                    "loyalty",
                    object(vec![
                        field("memberId", DataType::Utf8, false, "string"),
                        field("tier", DataType::Utf8, true, "string"),
                        field("points", DataType::Int64, true, "long"),
                        field("joined", DataType::Date32, true, "date"),
                    ]),
                    false,
                    "object",
                ),
                field(
                    "order",
                    object(vec![
                        field("priceTotal", DataType::Float64, true, "number"),
                        field("currencyCode", DataType::Utf8, true, "string"),
                        field("items", DataType::Int16, true, "short"),
                    ]),
                    true,
                    "object",
                ),
                field("channel", DataType::Utf8, true, "string"),
                field("score", DataType::Float64, true, "number"),
                field("optIn", DataType::Boolean, true, "boolean"),
                field(
                    "tags",
                    list_of(field("element", DataType::Utf8, true, "string")),
                    true,
                    "array",
                ),
                field(
                    "attributes",
                    map_of(field("value", DataType::Utf8, true, "string")),
                    true,
                    "map",
                ),
            ]),
            true,
            "object",
        ),
    ]);
    assert_eq!(arrow_schema(&schema).unwrap(), expected);
}

#[test]
fn a_leftover_ref_is_an_error() {
    check_error(
        root(
            json!({"_acme": {"type": "object", "properties": {
                "person": {"$ref": "https://ns.adobe.com/xdm/context/person"}}}}),
            json!([]),
        ),
        "#/properties/_acme/properties/person: unresolved $ref \"https://ns.adobe.com/xdm/context/person\" (map the resolved xed-full form)",
    );
    check_error(
        json!({"$ref": "https://ns.adobe.com/acme/schemas/1"}),
        "#: unresolved $ref \"https://ns.adobe.com/acme/schemas/1\" (map the resolved xed-full form)",
    );
}

#[test]
fn unknown_or_missing_types_are_errors() {
    check_error(
        root(json!({"a": {"type": "null"}}), json!([])),
        "#/properties/a: unknown type \"null\"",
    );
    check_error(
        root(json!({"a": {"type": ["string", "null"]}}), json!([])),
        "#/properties/a: unknown type [\"string\",\"null\"]",
    );
    check_error(
        root(
            json!({"a": {"type": "integer", "meta:xdmType": "decimal"}}),
            json!([]),
        ),
        "#/properties/a: unknown meta:xdmType \"decimal\"",
    );
    check_error(
        root(json!({"a": {"title": "A"}}), json!([])),
        "#/properties/a: field has neither type nor meta:xdmType",
    );
    check_error(
        root(json!({"a": "string"}), json!([])),
        "#/properties/a: field definition is not a JSON object",
    );
}

#[test]
fn a_meta_xdm_type_that_contradicts_type_is_an_error() {
    check_error(
        root(
            json!({"a": {"type": "string", "meta:xdmType": "int"}}),
            json!([]),
        ),
        "#/properties/a: meta:xdmType \"int\" needs type \"integer\", not \"string\"",
    );
}

#[test]
fn an_array_without_items_is_an_error() {
    check_error(
        root(
            json!({"_acme": {"type": "object", "properties": {"tags": {"type": "array"}}}}),
            json!([]),
        ),
        "#/properties/_acme/properties/tags: array has no items",
    );
    check_error(
        root(
            json!({"tags": {"type": "array", "items": [{"type": "string"}]}}),
            json!([]),
        ),
        "#/properties/tags/items: field definition is not a JSON object",
    );
}

#[test]
fn objects_and_maps_without_their_members_are_errors() {
    check_error(
        root(json!({"o": {"type": "object"}}), json!([])),
        "#/properties/o: object has neither properties nor additionalProperties",
    );
    check_error(
        root(
            json!({"o": {"type": "object", "meta:xdmType": "object", "additionalProperties": {"type": "string"}}}),
            json!([]),
        ),
        "#/properties/o: object has no properties (a map needs meta:xdmType \"map\" or no meta:xdmType)",
    );
    check_error(
        root(
            json!({"m": {"type": "object", "meta:xdmType": "map"}}),
            json!([]),
        ),
        "#/properties/m: map has no additionalProperties schema",
    );
    check_error(
        root(
            json!({"m": {"type": "object", "additionalProperties": true}}),
            json!([]),
        ),
        "#/properties/m: map has no additionalProperties schema",
    );
    check_error(
        root(
            json!({"m": {"type": "object", "meta:xdmType": "map", "additionalProperties": {"type": "array"}}}),
            json!([]),
        ),
        "#/properties/m/additionalProperties: array has no items",
    );
}

#[test]
fn malformed_properties_and_required_are_errors() {
    check_error(
        root(
            json!({"o": {"type": "object", "properties": [{"type": "string"}]}}),
            json!([]),
        ),
        "#/properties/o: properties is not a JSON object",
    );
    check_error(
        root(json!({"a": {"type": "string"}}), json!("a")),
        "#: required is not an array of field names",
    );
    check_error(
        root(
            json!({"o": {"type": "object", "required": [1], "properties": {"a": {"type": "string"}}}}),
            json!([]),
        ),
        "#/properties/o: required is not an array of field names",
    );
}

#[test]
fn the_root_must_be_an_object_with_properties() {
    check_error(
        json!({"type": "array", "items": {"type": "string"}}),
        "#: the root schema must be an object, not array",
    );
    check_error(
        json!({"type": "object", "additionalProperties": {"type": "string"}}),
        "#: the root schema must be an object, not map",
    );
    check_error(
        json!({"type": "object", "meta:xdmType": "object"}),
        "#: object has neither properties nor additionalProperties",
    );
}

#[test]
fn error_locations_escape_field_names_and_are_exposed() {
    let error = arrow_field("a/b~c", &json!({"type": "array"}), false).unwrap_err();
    assert_eq!(error.location(), "#/properties/a~1b~0c");
    assert_eq!(
        error.to_string(),
        "#/properties/a~1b~0c: array has no items"
    );
}

/// Issue 11: every walk over a resolved schema is bounded by the registry's nesting limit,
/// so a hand-made schema nested thousands deep is an error, not a stack overflow.
#[test]
fn nesting_beyond_the_registry_limit_is_refused() {
    let nested = |levels: usize| {
        let mut field = json!({"type": "string"});
        for _ in 1..levels {
            field = json!({"type": "array", "items": field});
        }
        root(json!({"f": field}), json!([]))
    };
    assert!(arrow_schema(&nested(MAX_FIELD_DEPTH)).is_ok());
    let mut location = "#/properties/f".to_owned();
    for _ in 0..MAX_FIELD_DEPTH {
        location.push_str("/items");
    }
    check_error(
        nested(MAX_FIELD_DEPTH + 1),
        &format!(
            "{location}: fields nest deeper than {MAX_FIELD_DEPTH} levels (the Schema Registry's resolution limit)"
        ),
    );
    assert!(matches!(
        arrow_schema(&nested(1_000)),
        Err(MappingError::TooDeep { .. })
    ));
}

/// Issue 11: objects without properties (aepp's FieldGroupManager creates them before their
/// sub-fields) have no Parquet column; they are left out instead of failing every batch.
#[test]
fn objects_without_properties_have_no_column() {
    let schema = root(
        json!({
            "name": {"type": "string"},
            "empty": {"type": "object", "properties": {}},
            "emptyList": {"type": "array", "items": {"type": "object", "properties": {}}},
            "nested": {"type": "object", "properties": {
                "inner": {"type": "object", "properties": {}},
                "kept": {"type": "boolean"}}},
            "hollow": {"type": "object", "properties": {"inner": {"type": "object", "properties": {}}}}
        }),
        json!(["empty"]),
    );
    let mapped = arrow_schema(&schema).unwrap();
    let names: Vec<&str> = mapped.fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["name", "nested"]);
    let DataType::Struct(nested) = mapped.field_with_name("nested").unwrap().data_type() else {
        panic!("nested is a struct");
    };
    assert_eq!(nested.len(), 1);
    check_error(
        root(
            json!({"empty": {"type": "object", "properties": {}}}),
            json!([]),
        ),
        "#: the schema has no field that can hold data (objects without properties hold none)",
    );
}
