//! Compiles a resolved XDM schema into the node tree the walker runs over.

use serde_json::{Map, Number, Value};

use super::node::{
    Bound, BoundSide, Checks, EnumSet, EnumValues, Format, IntegerWidth, Kind, Limit, Node,
    ObjectNode, Property, StringOnly, escape_pointer,
};
use super::pattern::Pattern;
use super::walk::Walk;
use super::{SchemaError, Source, UnknownFields};

/// Nesting deeper than this is refused, so that compiling and walking cannot overflow the
/// stack on a hostile schema; the registry's resolution never produces deeper schemas.
const MAX_DEPTH: usize = crate::xdm::resolve::MAX_FIELD_DEPTH;
/// Object properties and string enums larger than this are looked up through a hash table.
const HASHED_ABOVE: usize = 12;

/// Compiles the schema root, which must be an object.
pub(super) fn compile_root(schema: &Value) -> Result<Node, SchemaError> {
    let root = compile_node(schema, "#".to_owned(), 0)?;
    match root.kind {
        Kind::Object(_) => Ok(root),
        _ => Err(SchemaError::RootNotObject {
            location: "#".to_owned(),
        }),
    }
}

fn compile_node(schema: &Value, location: String, depth: usize) -> Result<Node, SchemaError> {
    if depth > MAX_DEPTH {
        return Err(SchemaError::TooDeep {
            location,
            limit: MAX_DEPTH,
        });
    }
    let Value::Object(field) = schema else {
        return Err(SchemaError::NotAFieldDefinition { location });
    };
    if let Some(target) = field.get("$ref") {
        let target = target
            .as_str()
            .map_or_else(|| target.to_string(), str::to_owned);
        return Err(SchemaError::UnresolvedRef { location, target });
    }
    for keyword in ["allOf", "anyOf", "oneOf"] {
        if field.contains_key(keyword) {
            return Err(SchemaError::UnresolvedComposition { location, keyword });
        }
    }

    let kind = compile_kind(field, &location, depth)?;
    let mut node = Node {
        kind,
        checks: None,
        default: None,
        location: location.into_boxed_str(),
    };
    let mut checks = Checks {
        enum_values: compile_enum(field, &node)?,
        ..compile_checks(field, &node)?
    };
    checks.string_only = checks.string_only();
    if !checks.is_empty() {
        node.checks = Some(Box::new(checks));
    }
    node.default = compile_default(field, &node)?;
    Ok(node)
}

/// Decides the XDM type from `meta:xdmType` and `type` (inferring the former when absent)
/// and compiles the children of objects, maps and arrays.
fn compile_kind(
    field: &Map<String, Value>,
    location: &str,
    depth: usize,
) -> Result<Kind, SchemaError> {
    let type_name = optional_str(field, "type", location)?;
    let xdm_type = optional_str(field, "meta:xdmType", location)?;
    let format = optional_str(field, "format", location)?;

    let json_type = |name: &str| match name {
        "string" | "number" | "integer" | "boolean" | "object" | "array" => Ok(()),
        _ => Err(SchemaError::UnknownType {
            location: location.to_owned(),
            type_name: name.to_owned(),
        }),
    };
    if let Some(type_name) = type_name {
        json_type(type_name)?;
    }
    let is_map_shaped = !field.contains_key("properties")
        && matches!(field.get("additionalProperties"), Some(Value::Object(_)));
    let xdm_type = match (xdm_type, type_name) {
        (Some(xdm_type), _) => xdm_type,
        (None, Some("string")) => match format {
            Some("date") => "date",
            Some("date-time") => "date-time",
            _ => "string",
        },
        (None, Some("number")) => "number",
        (None, Some("integer")) => "long",
        (None, Some("boolean")) => "boolean",
        (None, Some("object")) if is_map_shaped => "map",
        (None, Some("object")) => "object",
        (None, Some(_)) => "array",
        (None, None) => {
            return Err(SchemaError::MissingType {
                location: location.to_owned(),
            });
        }
    };
    let (kind, expected_type) = match xdm_type {
        "string" => (Kind::String, "string"),
        "date" => (Kind::Date, "string"),
        "date-time" => (Kind::DateTime, "string"),
        "number" => (Kind::Number, "number"),
        "long" => (Kind::Integer(IntegerWidth::Long), "integer"),
        "int" => (Kind::Integer(IntegerWidth::Int), "integer"),
        "short" => (Kind::Integer(IntegerWidth::Short), "integer"),
        "byte" => (Kind::Integer(IntegerWidth::Byte), "integer"),
        "boolean" => (Kind::Boolean, "boolean"),
        "object" => (
            Kind::Object(Box::new(compile_object(field, location, depth)?)),
            "object",
        ),
        "map" => {
            let values_location = format!("{location}/additionalProperties");
            let values = match field.get("additionalProperties") {
                Some(values @ Value::Object(_)) => {
                    compile_node(values, values_location, depth + 1)?
                }
                _ => {
                    return Err(SchemaError::InvalidKeyword {
                        location: location.to_owned(),
                        keyword: "additionalProperties",
                        expected: "a field definition giving the type of the map's values",
                    });
                }
            };
            (Kind::Map(Box::new(values)), "object")
        }
        "array" => {
            let items_location = format!("{location}/items");
            let items = match field.get("items") {
                Some(items @ Value::Object(_)) => compile_node(items, items_location, depth + 1)?,
                _ => {
                    return Err(SchemaError::InvalidKeyword {
                        location: location.to_owned(),
                        keyword: "items",
                        expected: "a field definition giving the type of the array's items",
                    });
                }
            };
            (Kind::Array(Box::new(items)), "array")
        }
        other => {
            return Err(SchemaError::UnknownXdmType {
                location: location.to_owned(),
                xdm_type: other.to_owned(),
            });
        }
    };
    if let Some(type_name) = type_name
        && type_name != expected_type
    {
        return Err(SchemaError::TypeMismatch {
            location: location.to_owned(),
            xdm_type: xdm_type.to_owned(),
            type_name: type_name.to_owned(),
        });
    }
    Ok(kind)
}

fn compile_object(
    field: &Map<String, Value>,
    location: &str,
    depth: usize,
) -> Result<ObjectNode, SchemaError> {
    let properties = match field.get("properties") {
        None => Vec::new(),
        Some(Value::Object(properties)) => properties
            .iter()
            .map(|(name, definition)| {
                let property_location = format!("{location}/properties/{}", escape_pointer(name));
                Ok(Property {
                    name: name.as_str().into(),
                    node: compile_node(definition, property_location, depth + 1)?,
                    required: false,
                })
            })
            .collect::<Result<Vec<_>, SchemaError>>()?,
        Some(_) => {
            return Err(SchemaError::InvalidKeyword {
                location: location.to_owned(),
                keyword: "properties",
                expected: "an object of field definitions",
            });
        }
    };
    let mut object = ObjectNode {
        index: (properties.len() > HASHED_ABOVE).then(|| {
            properties
                .iter()
                .enumerate()
                .map(|(position, property)| (property.name.clone(), position))
                .collect()
        }),
        properties,
        required: Vec::new(),
    };
    let required = match field.get("required") {
        None => &[][..],
        Some(Value::Array(names)) => names.as_slice(),
        Some(_) => return Err(invalid(location, "required", "an array of field names")),
    };
    for name in required {
        let Value::String(name) = name else {
            return Err(invalid(location, "required", "an array of field names"));
        };
        let Some(position) = object.find(name, &mut 0) else {
            return Err(SchemaError::UndeclaredRequired {
                location: location.to_owned(),
                name: name.clone(),
            });
        };
        if !object.properties[position].required {
            object.properties[position].required = true;
            object.required.push(position);
        }
    }
    Ok(object)
}

/// Converts the `enum` values to the field's type so that rows compare against converted
/// values.
fn compile_enum(
    field: &Map<String, Value>,
    node: &Node,
) -> Result<Option<EnumValues>, SchemaError> {
    let Some(listed) = field.get("enum") else {
        return Ok(None);
    };
    let Value::Array(listed) = listed else {
        return Err(invalid(&node.location, "enum", "an array of values"));
    };
    let mut values = Vec::with_capacity(listed.len());
    for value in listed {
        let converted =
            convert_constant(node, value).map_err(|reason| SchemaError::InvalidEnumValue {
                location: node.location.to_string(),
                value: value.to_string(),
                reason,
            })?;
        values.push(converted);
    }
    let mut display = values
        .iter()
        .take(10)
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    if values.len() > 10 {
        display.push_str(", …");
    }
    let values = if values.iter().all(Value::is_string) {
        let strings = values
            .into_iter()
            .map(|value| match value {
                Value::String(text) => text.into_boxed_str(),
                _ => unreachable!("all values are strings"),
            })
            .collect::<Vec<_>>();
        if strings.len() > HASHED_ABOVE {
            EnumSet::HashedStrings(strings.into_iter().collect())
        } else {
            EnumSet::Strings(strings)
        }
    } else {
        EnumSet::Values(values)
    };
    Ok(Some(EnumValues {
        values,
        display: display.into_boxed_str(),
    }))
}

/// Compiles the constraint keywords other than `enum` (which needs the node without checks).
fn compile_checks(field: &Map<String, Value>, node: &Node) -> Result<Checks, SchemaError> {
    let location = &*node.location;
    let pattern = match field.get("pattern") {
        None => None,
        Some(Value::String(source)) => {
            Some(
                Pattern::compile(source).map_err(|reason| SchemaError::InvalidPattern {
                    location: location.to_owned(),
                    pattern: source.clone(),
                    reason,
                })?,
            )
        }
        Some(_) => return Err(invalid(location, "pattern", "a string")),
    };
    let format = match optional_str(field, "format", location)? {
        Some("date") => Some(Format::Date),
        Some("date-time") => Some(Format::DateTime),
        Some("email") => Some(Format::Email),
        Some("uri") => Some(Format::Uri),
        Some("uuid") => Some(Format::Uuid),
        // Unknown formats are annotations (spec §7.2 step 5 lists the checked ones).
        _ => None,
    }
    // Date and date-time fields already parse their values while converting.
    .filter(|_| matches!(node.kind, Kind::String));

    let mut bounds = Vec::new();
    for (keyword, side) in [
        ("minimum", BoundSide::Minimum),
        ("maximum", BoundSide::Maximum),
        ("exclusiveMinimum", BoundSide::ExclusiveMinimum),
        ("exclusiveMaximum", BoundSide::ExclusiveMaximum),
    ] {
        match field.get(keyword) {
            None => {}
            Some(Value::Number(number)) => bounds.push(Bound {
                side,
                limit: limit_of(number),
                implied_by: None,
            }),
            // Draft-04 form: a boolean that makes `minimum`/`maximum` exclusive.
            Some(Value::Bool(false)) if side.is_exclusive() => {}
            Some(Value::Bool(true)) if side.is_exclusive() => {
                let inclusive = if side == BoundSide::ExclusiveMinimum {
                    BoundSide::Minimum
                } else {
                    BoundSide::Maximum
                };
                let bound = bounds
                    .iter_mut()
                    .find(|bound| bound.side == inclusive)
                    .ok_or_else(|| invalid(location, side.keyword(), "a number"))?;
                bound.side = side;
            }
            Some(_) => return Err(invalid(location, keyword, "a number")),
        }
    }
    if let Kind::Integer(width) = node.kind {
        let (lowest, highest) = width.range();
        let has_lower = bounds
            .iter()
            .any(|bound| matches!(bound.side, BoundSide::Minimum | BoundSide::ExclusiveMinimum));
        let has_upper = bounds
            .iter()
            .any(|bound| matches!(bound.side, BoundSide::Maximum | BoundSide::ExclusiveMaximum));
        if !has_lower {
            bounds.push(Bound {
                side: BoundSide::Minimum,
                limit: Limit::Integer(lowest),
                implied_by: Some(width),
            });
        }
        if !has_upper {
            bounds.push(Bound {
                side: BoundSide::Maximum,
                limit: Limit::Integer(highest),
                implied_by: Some(width),
            });
        }
    }
    let unique_items = match field.get("uniqueItems") {
        None => false,
        Some(Value::Bool(unique)) => *unique,
        Some(_) => return Err(invalid(location, "uniqueItems", "a boolean")),
    };
    let (integer_range, float_range) = super::node::ranges_of(&bounds);
    Ok(Checks {
        enum_values: None,
        integer_range,
        float_range,
        string_only: StringOnly::Several,
        pattern,
        min_length: count(field, "minLength", location)?,
        max_length: count(field, "maxLength", location)?,
        bounds,
        format,
        min_items: count(field, "minItems", location)?,
        max_items: count(field, "maxItems", location)?,
        unique_items,
    })
}

/// Converts and validates the `default` against the field itself.
fn compile_default(field: &Map<String, Value>, node: &Node) -> Result<Option<Value>, SchemaError> {
    match field.get("default") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            convert_constant(node, value)
                .map(Some)
                .map_err(|reason| SchemaError::InvalidDefault {
                    location: node.location.to_string(),
                    value: value.to_string(),
                    reason,
                })
        }
    }
}

/// Runs a schema constant (enum value, default) through the node as a JSON value.
fn convert_constant(node: &Node, value: &Value) -> Result<Value, String> {
    let mut converted = value.clone();
    if converted.is_null() {
        return Ok(converted);
    }
    let mut walk = Walk::new(Source::Json, UnknownFields::Reject, usize::MAX);
    walk.visit(node, &mut converted);
    match walk.into_violations().into_iter().next() {
        None => Ok(converted),
        Some(violation) if violation.pointer.is_empty() => Err(violation.message),
        Some(violation) => Err(format!("{}: {}", violation.pointer, violation.message)),
    }
}

fn limit_of(number: &Number) -> Limit {
    match number.as_i64() {
        Some(integer) => Limit::Integer(integer),
        None => Limit::Float(number.as_f64().unwrap_or(f64::MAX)),
    }
}

fn count(
    field: &Map<String, Value>,
    keyword: &'static str,
    location: &str,
) -> Result<Option<usize>, SchemaError> {
    match field.get(keyword) {
        None => Ok(None),
        Some(Value::Number(number)) => {
            let whole = number.as_u64().or_else(|| {
                number
                    .as_f64()
                    .filter(|float| float.fract() == 0.0 && *float >= 0.0)
                    .map(|float| float as u64)
            });
            whole
                .map(|count| Some(usize::try_from(count).unwrap_or(usize::MAX)))
                .ok_or_else(|| invalid(location, keyword, "a non-negative integer"))
        }
        Some(_) => Err(invalid(location, keyword, "a non-negative integer")),
    }
}

fn optional_str<'a>(
    field: &'a Map<String, Value>,
    keyword: &'static str,
    location: &str,
) -> Result<Option<&'a str>, SchemaError> {
    match field.get(keyword) {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid(location, keyword, "a string")),
    }
}

fn invalid(location: &str, keyword: &'static str, expected: &'static str) -> SchemaError {
    SchemaError::InvalidKeyword {
        location: location.to_owned(),
        keyword,
        expected,
    }
}
