//! XDM → Arrow schema mapping (spec §7.1).
//!
//! Every XDM type becomes one Arrow type; each Arrow field records its XDM type in its
//! metadata under [`XDM_TYPE_METADATA_KEY`] so that a reader can tell, say, a `short` from an
//! `int` after a round trip through Parquet, or a `map` from a list of structs.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use lakeport_domain::xdm::resolve::MAX_FIELD_DEPTH;
use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// The field-metadata key under which each Arrow field keeps its XDM type (`"date-time"`, …).
pub const XDM_TYPE_METADATA_KEY: &str = "xdm:type";

/// Names of the synthetic fields Arrow needs for lists and maps.
const LIST_ELEMENT: &str = "element";
const MAP_ENTRIES: &str = "entries";
const MAP_KEY: &str = "key";
const MAP_VALUE: &str = "value";

/// Why a resolved XDM schema could not be mapped to Arrow. Every message starts with the
/// JSON-pointer location of the offending schema node (`#/properties/_acme/properties/tags`).
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{location}: field definition is not a JSON object")]
    NotASchema { location: String },
    #[error("{location}: unresolved $ref {reference} (map the resolved xed-full form)")]
    UnresolvedRef { location: String, reference: String },
    #[error("{location}: field has neither type nor meta:xdmType")]
    MissingType { location: String },
    #[error("{location}: unknown type {found}")]
    UnknownType { location: String, found: String },
    #[error("{location}: unknown meta:xdmType {found}")]
    UnknownXdmType { location: String, found: String },
    #[error("{location}: meta:xdmType \"{xdm_type}\" needs type \"{expected}\", not \"{found}\"")]
    TypeMismatch {
        location: String,
        xdm_type: &'static str,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{location}: array has no items")]
    MissingItems { location: String },
    #[error("{location}: map has no additionalProperties schema")]
    MissingMapValues { location: String },
    #[error("{location}: object has neither properties nor additionalProperties")]
    MissingProperties { location: String },
    #[error(
        "{location}: object has no properties (a map needs meta:xdmType \"map\" or no meta:xdmType)"
    )]
    ObjectWithoutProperties { location: String },
    #[error("{location}: properties is not a JSON object")]
    InvalidProperties { location: String },
    #[error("{location}: required is not an array of field names")]
    InvalidRequired { location: String },
    #[error(
        "{location}: fields nest deeper than {limit} levels (the Schema Registry's resolution limit)"
    )]
    TooDeep { location: String, limit: usize },
    #[error(
        "{location}: the schema has no field that can hold data (objects without properties hold none)"
    )]
    NoColumns { location: String },
    #[error("{location}: the root schema must be an object, not {xdm_type}")]
    RootNotObject {
        location: String,
        xdm_type: &'static str,
    },
}

impl MappingError {
    /// Returns the JSON-pointer location of the schema node that could not be mapped.
    pub fn location(&self) -> &str {
        match self {
            Self::NotASchema { location }
            | Self::UnresolvedRef { location, .. }
            | Self::MissingType { location }
            | Self::UnknownType { location, .. }
            | Self::UnknownXdmType { location, .. }
            | Self::TypeMismatch { location, .. }
            | Self::MissingItems { location }
            | Self::MissingMapValues { location }
            | Self::MissingProperties { location }
            | Self::ObjectWithoutProperties { location }
            | Self::InvalidProperties { location }
            | Self::InvalidRequired { location }
            | Self::TooDeep { location, .. }
            | Self::NoColumns { location }
            | Self::RootNotObject { location, .. } => location,
        }
    }
}

/// Returns the Arrow schema of a resolved (`xed-full`) XDM schema: one top-level field per
/// root property, in schema order, non-nullable only when listed in the root's `required`.
///
/// # Errors
///
/// Fails when the root is not an object, or when any field is malformed: a leftover `$ref`,
/// an unknown `type` or `meta:xdmType`, an array without `items`, an object with neither
/// `properties` nor `additionalProperties`, and so on.
pub fn arrow_schema(full_schema: &Value) -> Result<Schema, MappingError> {
    let location = "#";
    let (data_type, xdm_type) = map_type(location, full_schema, 0)?;
    match data_type {
        DataType::Struct(fields) if fields.is_empty() => Err(MappingError::NoColumns {
            location: location.to_owned(),
        }),
        DataType::Struct(fields) => Ok(Schema::new(fields)),
        _ => Err(MappingError::RootNotObject {
            location: location.to_owned(),
            xdm_type: xdm_type.as_str(),
        }),
    }
}

/// Returns the Arrow field for one XDM field definition named `name`; the field is
/// non-nullable only when `required` (the parent lists it in its `required`).
///
/// # Errors
///
/// Fails as [`arrow_schema()`] does; locations start at `#/properties/<name>`.
pub fn arrow_field(name: &str, field: &Value, required: bool) -> Result<Field, MappingError> {
    map_field(&property_location("#", name), name, field, required, 1)
}

/// The XDM types of spec §7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XdmType {
    String,
    Number,
    Long,
    Int,
    Short,
    Byte,
    Boolean,
    Date,
    DateTime,
    Object,
    Map,
    Array,
}

impl XdmType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "number" => Self::Number,
            "long" => Self::Long,
            "int" => Self::Int,
            "short" => Self::Short,
            "byte" => Self::Byte,
            "boolean" => Self::Boolean,
            "date" => Self::Date,
            "date-time" => Self::DateTime,
            "object" => Self::Object,
            "map" => Self::Map,
            "array" => Self::Array,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Long => "long",
            Self::Int => "int",
            Self::Short => "short",
            Self::Byte => "byte",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::DateTime => "date-time",
            Self::Object => "object",
            Self::Map => "map",
            Self::Array => "array",
        }
    }

    /// Returns the JSON Schema `type` that goes with this XDM type.
    fn json_type(self) -> JsonType {
        match self {
            Self::String | Self::Date | Self::DateTime => JsonType::String,
            Self::Number => JsonType::Number,
            Self::Long | Self::Int | Self::Short | Self::Byte => JsonType::Integer,
            Self::Boolean => JsonType::Boolean,
            Self::Object | Self::Map => JsonType::Object,
            Self::Array => JsonType::Array,
        }
    }
}

/// The JSON Schema `type` values an XDM field may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

impl JsonType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "number" => Self::Number,
            "integer" => Self::Integer,
            "boolean" => Self::Boolean,
            "object" => Self::Object,
            "array" => Self::Array,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Number => "number",
            Self::Integer => "integer",
            Self::Boolean => "boolean",
            Self::Object => "object",
            Self::Array => "array",
        }
    }
}

/// Maps the field at `depth` (a top-level field is at depth 1).
fn map_field(
    location: &str,
    name: &str,
    definition: &Value,
    required: bool,
    depth: usize,
) -> Result<Field, MappingError> {
    let (data_type, xdm_type) = map_type(location, definition, depth)?;
    Ok(Field::new(name, data_type, !required).with_metadata(xdm_metadata(xdm_type)))
}

fn xdm_metadata(xdm_type: XdmType) -> HashMap<String, String> {
    HashMap::from([(
        XDM_TYPE_METADATA_KEY.to_owned(),
        xdm_type.as_str().to_owned(),
    )])
}

/// Returns the Arrow type of one schema node at `depth` and the XDM type it was mapped from.
/// Nesting is bounded like the registry's resolution, so the recursion is too.
fn map_type(
    location: &str,
    definition: &Value,
    depth: usize,
) -> Result<(DataType, XdmType), MappingError> {
    if depth > MAX_FIELD_DEPTH {
        return Err(MappingError::TooDeep {
            location: location.to_owned(),
            limit: MAX_FIELD_DEPTH,
        });
    }
    let Some(definition) = definition.as_object() else {
        return Err(MappingError::NotASchema {
            location: location.to_owned(),
        });
    };
    if let Some(reference) = definition.get("$ref") {
        return Err(MappingError::UnresolvedRef {
            location: location.to_owned(),
            reference: reference.to_string(),
        });
    }
    let xdm_type = xdm_type(location, definition)?;
    let data_type = match xdm_type {
        XdmType::String => DataType::Utf8,
        XdmType::Number => DataType::Float64,
        XdmType::Long => DataType::Int64,
        XdmType::Int => DataType::Int32,
        XdmType::Short => DataType::Int16,
        XdmType::Byte => DataType::Int8,
        XdmType::Boolean => DataType::Boolean,
        XdmType::Date => DataType::Date32,
        // XDM date-times carry an offset (RFC 3339); they are stored normalised to UTC.
        XdmType::DateTime => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        XdmType::Object => DataType::Struct(struct_fields(location, definition, depth)?),
        XdmType::Map => map_data_type(location, definition, depth)?,
        XdmType::Array => list_data_type(location, definition, depth)?,
    };
    Ok((data_type, xdm_type))
}

/// Whether a resolved field definition is an XDM `date`.
pub(crate) fn is_date_field(definition: &Value) -> bool {
    definition
        .as_object()
        .is_some_and(|definition| matches!(xdm_type("", definition), Ok(XdmType::Date)))
}

/// Returns the node's XDM type: its `meta:xdmType` when present (checked against `type`),
/// otherwise inferred from `type`, `format` and `additionalProperties`.
fn xdm_type(location: &str, definition: &Map<String, Value>) -> Result<XdmType, MappingError> {
    let json_type = match definition.get("type") {
        None => None,
        Some(Value::String(name)) if JsonType::parse(name).is_some() => JsonType::parse(name),
        Some(other) => {
            return Err(MappingError::UnknownType {
                location: location.to_owned(),
                found: other.to_string(),
            });
        }
    };
    let declared = match definition.get("meta:xdmType") {
        None => None,
        Some(Value::String(name)) if XdmType::parse(name).is_some() => XdmType::parse(name),
        Some(other) => {
            return Err(MappingError::UnknownXdmType {
                location: location.to_owned(),
                found: other.to_string(),
            });
        }
    };
    match (declared, json_type) {
        (Some(xdm_type), Some(json_type)) if xdm_type.json_type() != json_type => {
            Err(MappingError::TypeMismatch {
                location: location.to_owned(),
                xdm_type: xdm_type.as_str(),
                expected: xdm_type.json_type().as_str(),
                found: json_type.as_str(),
            })
        }
        (Some(xdm_type), _) => Ok(xdm_type),
        (None, Some(json_type)) => Ok(infer_xdm_type(json_type, definition)),
        (None, None) => Err(MappingError::MissingType {
            location: location.to_owned(),
        }),
    }
}

fn infer_xdm_type(json_type: JsonType, definition: &Map<String, Value>) -> XdmType {
    match json_type {
        // Other formats (email, uri, uuid, …) constrain values but keep them strings.
        JsonType::String => match definition.get("format").and_then(Value::as_str) {
            Some("date") => XdmType::Date,
            Some("date-time") => XdmType::DateTime,
            _ => XdmType::String,
        },
        JsonType::Number => XdmType::Number,
        JsonType::Integer => XdmType::Long,
        JsonType::Boolean => XdmType::Boolean,
        JsonType::Object
            if definition.contains_key("additionalProperties")
                && !definition.contains_key("properties") =>
        {
            XdmType::Map
        }
        JsonType::Object => XdmType::Object,
        JsonType::Array => XdmType::Array,
    }
}

/// Returns the struct fields of an object node, in schema order.
fn struct_fields(
    location: &str,
    definition: &Map<String, Value>,
    depth: usize,
) -> Result<Fields, MappingError> {
    let properties = match definition.get("properties") {
        Some(Value::Object(properties)) => properties,
        Some(_) => {
            return Err(MappingError::InvalidProperties {
                location: location.to_owned(),
            });
        }
        None if definition.contains_key("additionalProperties") => {
            return Err(MappingError::ObjectWithoutProperties {
                location: location.to_owned(),
            });
        }
        None => {
            return Err(MappingError::MissingProperties {
                location: location.to_owned(),
            });
        }
    };
    let required = required_names(location, definition)?;
    let mut fields = Vec::with_capacity(properties.len());
    for (name, field) in properties {
        let field_location = property_location(location, name);
        let mapped = map_field(
            &field_location,
            name,
            field,
            required.contains(&name.as_str()),
            depth + 1,
        )?;
        // An object without properties (aepp creates them before their sub-fields) holds no
        // data, and Parquet cannot store an empty struct: it has no column. Its values are
        // `{}` at most, which the row encoder then ignores.
        if holds_data(mapped.data_type()) {
            fields.push(mapped);
        }
    }
    Ok(Fields::from(fields))
}

/// Whether a mapped type has at least one leaf column (an empty struct, or a list or map of
/// one, has none).
fn holds_data(data_type: &DataType) -> bool {
    match data_type {
        DataType::Struct(fields) => !fields.is_empty(),
        DataType::List(element) => holds_data(element.data_type()),
        DataType::Map(entries, _) => holds_data(entries.data_type()),
        _ => true,
    }
}

/// Returns the node's `required` list (empty when absent).
fn required_names<'a>(
    location: &str,
    definition: &'a Map<String, Value>,
) -> Result<Vec<&'a str>, MappingError> {
    let invalid = || MappingError::InvalidRequired {
        location: location.to_owned(),
    };
    match definition.get("required") {
        None => Ok(Vec::new()),
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| name.as_str().ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// Returns `Map<entries: Struct<key: Utf8 not null, value: V>>` for a map node; XDM map keys
/// are always strings and values may be null.
fn map_data_type(
    location: &str,
    definition: &Map<String, Value>,
    depth: usize,
) -> Result<DataType, MappingError> {
    let value_location = format!("{location}/additionalProperties");
    let values = match definition.get("additionalProperties") {
        Some(values @ Value::Object(_)) => values,
        _ => {
            return Err(MappingError::MissingMapValues {
                location: location.to_owned(),
            });
        }
    };
    let value_field = map_field(&value_location, MAP_VALUE, values, false, depth + 1)?;
    let key_field = Field::new(MAP_KEY, DataType::Utf8, false);
    let entries = Field::new(
        MAP_ENTRIES,
        DataType::Struct(Fields::from(vec![key_field, value_field])),
        false,
    );
    Ok(DataType::Map(Arc::new(entries), false))
}

/// Returns `List<element: T>` for an array node; elements may be null.
fn list_data_type(
    location: &str,
    definition: &Map<String, Value>,
    depth: usize,
) -> Result<DataType, MappingError> {
    let Some(items) = definition.get("items") else {
        return Err(MappingError::MissingItems {
            location: location.to_owned(),
        });
    };
    let element = map_field(
        &format!("{location}/items"),
        LIST_ELEMENT,
        items,
        false,
        depth + 1,
    )?;
    Ok(DataType::List(Arc::new(element)))
}

/// Returns the JSON-pointer location of property `name` under `parent` (RFC 6901 escaping).
fn property_location(parent: &str, name: &str) -> String {
    let escaped = name.replace('~', "~0").replace('/', "~1");
    format!("{parent}/properties/{escaped}")
}
