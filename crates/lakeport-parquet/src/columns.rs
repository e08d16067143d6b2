//! The header/column check of spec §7.2 step 2: CSV header names and Parquet columns must
//! name fields of the (resolved) dataset schema; the file must be a subset of the schema.

use std::collections::HashSet;

use arrow_schema::{DataType, Schema};
use serde_json::{Map, Value};

#[cfg(test)]
mod tests;

/// How many offending names a file-level error lists before "and N more".
const NAMES_SHOWN: usize = 10;

/// Returns the properties of an object node (`None` for maps, arrays and scalars).
fn object_properties(node: &Value) -> Option<&Map<String, Value>> {
    if is_map(node) {
        return None;
    }
    node.get("properties")?.as_object()
}

/// Whether a node is an XDM map (declared, or an object with only `additionalProperties`).
fn is_map(node: &Value) -> bool {
    match node.get("meta:xdmType").and_then(Value::as_str) {
        Some(xdm_type) => xdm_type == "map",
        None => {
            node.get("type").and_then(Value::as_str) == Some("object")
                && node
                    .get("additionalProperties")
                    .is_some_and(Value::is_object)
                && node.get("properties").is_none()
        }
    }
}

/// Returns the field path (segments) each CSV header name maps to: the top-level field of
/// that name, else the field inside the schema's `meta:datasetNamespace` object, else the
/// dotted path `a.b.c` from the root, else from the namespace object (the last hop may be a
/// map key).
///
/// # Errors
///
/// The message of a [`FileError::NotInSchema`](crate::FileError::NotInSchema): names with
/// spaces, names without a field, and names that collide (twice the same field, or a field
/// and one of its sub-fields).
pub(crate) fn map_csv_header(
    schema: &Value,
    header: &[String],
) -> Result<Vec<Vec<String>>, String> {
    let with_spaces: Vec<&str> = header
        .iter()
        .filter(|name| name.chars().any(char::is_whitespace))
        .map(String::as_str)
        .collect();
    if !with_spaces.is_empty() {
        return Err(format!(
            "CSV header names may not contain spaces: {}",
            list_names(&with_spaces)
        ));
    }
    if let Some(position) = header.iter().position(String::is_empty) {
        return Err(format!("CSV header column {} has no name", position + 1));
    }
    let namespace = schema
        .get("meta:datasetNamespace")
        .and_then(Value::as_str)
        .and_then(|name| Some((name, object_properties(schema)?.get(name)?)))
        .and_then(|(name, node)| Some((name, object_properties(node)?)));
    let root = object_properties(schema);
    let mut paths = Vec::with_capacity(header.len());
    let mut unknown = Vec::new();
    for name in header {
        let path = if root.is_some_and(|properties| properties.contains_key(name)) {
            Some(vec![name.clone()])
        } else if let Some((namespace, properties)) = namespace
            && properties.contains_key(name)
        {
            Some(vec![namespace.to_owned(), name.clone()])
        } else if name.contains('.') && dotted_path_exists(schema, name) {
            Some(name.split('.').map(str::to_owned).collect())
        } else if let Some((namespace, _)) = namespace
            && name.contains('.')
            && dotted_path_exists(&schema["properties"][namespace], name)
        {
            // Ad-hoc schemas keep every field in the namespace object, so a dotted name
            // also resolves from there.
            Some(
                std::iter::once(namespace)
                    .chain(name.split('.'))
                    .map(str::to_owned)
                    .collect(),
            )
        } else {
            None
        };
        match path {
            Some(path) => paths.push(path),
            None => unknown.push(name.as_str()),
        }
    }
    if !unknown.is_empty() {
        return Err(format!(
            "CSV header names not in the schema: {}",
            list_names(&unknown)
        ));
    }
    check_collisions(header, &paths)?;
    Ok(paths)
}

fn dotted_path_exists(schema: &Value, dotted: &str) -> bool {
    let segments: Vec<&str> = dotted.split('.').collect();
    let mut node = schema;
    for (position, segment) in segments.iter().enumerate() {
        if segment.is_empty() {
            return false;
        }
        if is_map(node) {
            // A map key must be the last segment: map values are leaves here.
            return position == segments.len() - 1;
        }
        match object_properties(node).and_then(|properties| properties.get(*segment)) {
            Some(child) => node = child,
            None => return false,
        }
    }
    true
}

/// Refuses two columns that map to the same field, or to a field and one of its sub-fields.
fn check_collisions(header: &[String], paths: &[Vec<String>]) -> Result<(), String> {
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by(|&a, &b| paths[a].cmp(&paths[b]));
    // Sorted segment-wise, every extension of a path directly follows it.
    for pair in order.windows(2) {
        let (first, second) = (&paths[pair[0]], &paths[pair[1]]);
        if second.starts_with(first) {
            return Err(format!(
                "CSV header names {:?} and {:?} map to the same field {}",
                header[pair[0]],
                header[pair[1]],
                first.join(".")
            ));
        }
    }
    Ok(())
}

/// Checks that every column of a Parquet file (and every child of its struct columns, at any
/// depth through lists) names a field of the schema.
///
/// # Errors
///
/// The message of a [`FileError::NotInSchema`](crate::FileError::NotInSchema) listing the
/// dotted paths of the unknown columns.
pub(crate) fn check_parquet_columns(schema: &Value, file_schema: &Schema) -> Result<(), String> {
    let mut unknown = Vec::new();
    let mut seen = HashSet::new();
    for field in file_schema.fields() {
        if !seen.insert(field.name().as_str()) {
            return Err(format!("column {:?} appears twice", field.name()));
        }
        match object_properties(schema).and_then(|properties| properties.get(field.name())) {
            Some(node) => check_type(node, field.data_type(), field.name(), &mut unknown),
            None => unknown.push(field.name().clone()),
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = unknown.iter().map(String::as_str).collect();
    Err(format!("columns not in the schema: {}", list_names(&names)))
}

/// Collects the children of a struct column that the schema node does not declare. Only
/// names are checked here; a type that does not fit is a per-row conversion error.
fn check_type(node: &Value, data_type: &DataType, path: &str, unknown: &mut Vec<String>) {
    match data_type {
        DataType::Struct(fields) => {
            // A struct may fill an XDM map: its children are keys then, not fields.
            let Some(properties) = object_properties(node) else {
                return;
            };
            for field in fields {
                let child_path = format!("{path}.{}", field.name());
                match properties.get(field.name()) {
                    Some(child) => check_type(child, field.data_type(), &child_path, unknown),
                    None => unknown.push(child_path),
                }
            }
        }
        DataType::List(element)
        | DataType::LargeList(element)
        | DataType::FixedSizeList(element, _)
        | DataType::ListView(element)
        | DataType::LargeListView(element) => {
            if let Some(items) = node.get("items") {
                check_type(items, element.data_type(), path, unknown);
            }
        }
        DataType::Map(entries, _) => {
            if let (Some(values), DataType::Struct(entry_fields)) =
                (node.get("additionalProperties"), entries.data_type())
                && let Some(value_field) = entry_fields.get(1)
            {
                check_type(values, value_field.data_type(), path, unknown);
            }
        }
        DataType::Dictionary(_, values) => check_type(node, values, path, unknown),
        _ => {}
    }
}

fn list_names(names: &[&str]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(NAMES_SHOWN)
        .map(|name| format!("{name:?}"))
        .collect();
    match names.len().checked_sub(NAMES_SHOWN) {
        Some(more) if more > 0 => format!("{} and {more} more", shown.join(", ")),
        _ => shown.join(", "),
    }
}
