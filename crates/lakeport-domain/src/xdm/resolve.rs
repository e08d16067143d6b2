//! Resolution of registry resources into the full (`xed-full`) form that validation and the
//! Arrow mapping consume (spec §5.3, §7.1): classes, behaviors, field groups and data types
//! referenced through `allOf` and `$ref` are merged into one `properties` tree.

use serde_json::{Map, Value, json};

use crate::Doc;

/// Why a resource cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "{location}: $ref {reference:?} does not name a resource in this sandbox or the global container"
    )]
    UnknownRef { reference: String, location: String },
    #[error("{location}: $ref {reference:?} names no entry of this resource's definitions")]
    UnknownDefinition { reference: String, location: String },
    #[error("$ref cycle: {}", cycle.join(" -> "))]
    Cycle { cycle: Vec<String> },
    #[error("{location}: {reason}")]
    Malformed { location: String, reason: String },
}

/// A resolved resource and the ids of every resource its resolution read.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub full: Value,
    pub used: Vec<String>,
}

/// Finds a resource (tenant or global) by `$id` or `meta:altId`.
pub type Lookup<'a> = dyn Fn(&str) -> Option<Doc> + 'a;

/// Keys of a resource that describe it rather than its fields; copied to the full form.
const DESCRIPTIVE_KEYS: &[&str] = &[
    "$id",
    "meta:altId",
    "meta:resourceType",
    "version",
    "title",
    "description",
    "meta:class",
    "meta:extends",
    "meta:datasetNamespace",
    "meta:abstract",
    "meta:extensible",
    "meta:containerId",
    "meta:tenantNamespace",
    "meta:intendedToExtend",
    "meta:sandboxId",
    "meta:sandboxType",
    "imsOrg",
    "meta:registryMetadata",
];

/// Resolves a resource into its full form.
///
/// # Errors
/// Unknown references, `$ref` cycles and malformed `allOf`/`properties` members.
pub fn resolve(doc: &Doc, lookup: &Lookup<'_>) -> Result<Resolved, ResolveError> {
    let mut resolver = Resolver {
        lookup,
        stack: Vec::new(),
        used: Vec::new(),
    };
    let id = doc
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or("#")
        .to_owned();
    resolver.stack.push(id);
    let mut properties = Map::new();
    let mut required = Vec::new();
    resolver.merge_resource(doc, &mut properties, &mut required, "#")?;
    let mut full = Map::new();
    for key in DESCRIPTIVE_KEYS {
        if let Some(value) = doc.get(*key) {
            full.insert((*key).to_owned(), value.clone());
        }
    }
    if !full.contains_key("meta:datasetNamespace")
        && let Some(namespace) = resolver.dataset_namespace(doc)
    {
        full.insert("meta:datasetNamespace".into(), json!(namespace));
    }
    full.insert("type".into(), json!("object"));
    full.insert("meta:xdmType".into(), json!("object"));
    if !required.is_empty() {
        full.insert(
            "required".into(),
            Value::Array(required.into_iter().map(Value::String).collect()),
        );
    }
    full.insert("properties".into(), Value::Object(properties));
    Ok(Resolved {
        full: Value::Object(full),
        used: resolver.used,
    })
}

struct Resolver<'l, 'a> {
    lookup: &'l Lookup<'a>,
    stack: Vec<String>,
    used: Vec<String>,
}

impl Resolver<'_, '_> {
    fn fetch(&mut self, reference: &str, location: &str) -> Result<Doc, ResolveError> {
        let doc = (self.lookup)(reference).ok_or_else(|| ResolveError::UnknownRef {
            reference: reference.to_owned(),
            location: location.to_owned(),
        })?;
        let id = doc
            .get("$id")
            .and_then(Value::as_str)
            .unwrap_or(reference)
            .to_owned();
        if self.stack.contains(&id) {
            let mut cycle = self.stack.clone();
            cycle.push(id);
            return Err(ResolveError::Cycle { cycle });
        }
        if !self.used.contains(&id) {
            self.used.push(id);
        }
        Ok(doc)
    }

    /// The ad-hoc namespace a schema inherits from its class.
    fn dataset_namespace(&self, doc: &Doc) -> Option<String> {
        let class = doc.get("meta:class").and_then(Value::as_str)?;
        (self.lookup)(class)?
            .get("meta:datasetNamespace")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    fn merge_resource(
        &mut self,
        doc: &Doc,
        properties: &mut Map<String, Value>,
        required: &mut Vec<String>,
        location: &str,
    ) -> Result<(), ResolveError> {
        self.merge_block(doc, doc, properties, required, location)
    }

    /// Merges one block (a resource, a definition or an `allOf` item) of `owner`.
    fn merge_block(
        &mut self,
        owner: &Doc,
        block: &Map<String, Value>,
        properties: &mut Map<String, Value>,
        required: &mut Vec<String>,
        location: &str,
    ) -> Result<(), ResolveError> {
        if let Some(items) = block.get("allOf") {
            let Value::Array(items) = items else {
                return Err(malformed(location, "allOf must be an array"));
            };
            for (index, item) in items.iter().enumerate() {
                let item_location = format!("{location}/allOf/{index}");
                let Value::Object(item) = item else {
                    return Err(malformed(&item_location, "allOf items must be objects"));
                };
                match item.get("$ref") {
                    Some(Value::String(reference)) => {
                        if let Some(name) = reference.strip_prefix("#/definitions/") {
                            let definition = owner
                                .get("definitions")
                                .and_then(|d| d.get(name))
                                .and_then(Value::as_object)
                                .ok_or_else(|| ResolveError::UnknownDefinition {
                                    reference: reference.clone(),
                                    location: item_location.clone(),
                                })?;
                            let definition_location = format!("#/definitions/{name}");
                            self.merge_block(
                                owner,
                                definition,
                                properties,
                                required,
                                &definition_location,
                            )?;
                        } else {
                            let other = self.fetch(reference, &item_location)?;
                            let id = other
                                .get("$id")
                                .and_then(Value::as_str)
                                .unwrap_or(reference)
                                .to_owned();
                            self.stack.push(id);
                            self.merge_resource(&other, properties, required, "#")?;
                            self.stack.pop();
                        }
                    }
                    Some(_) => return Err(malformed(&item_location, "$ref must be a string")),
                    None => self.merge_block(owner, item, properties, required, &item_location)?,
                }
            }
        }
        if let Some(own) = block.get("properties") {
            let Value::Object(own) = own else {
                return Err(malformed(location, "properties must be an object"));
            };
            for (name, field) in own {
                let field_location = format!("{location}/properties/{name}");
                let resolved = self.resolve_field(owner, field, &field_location)?;
                merge_property(properties, name, resolved);
            }
        }
        if let Some(Value::Array(names)) = block.get("required") {
            for name in names.iter().filter_map(Value::as_str) {
                if !required.iter().any(|r| r == name) {
                    required.push(name.to_owned());
                }
            }
        }
        Ok(())
    }

    fn resolve_field(
        &mut self,
        owner: &Doc,
        field: &Value,
        location: &str,
    ) -> Result<Value, ResolveError> {
        let Value::Object(object) = field else {
            return Err(malformed(location, "a field must be an object"));
        };
        if let Some(reference) = object.get("$ref") {
            let Some(reference) = reference.as_str() else {
                return Err(malformed(location, "$ref must be a string"));
            };
            let mut properties = Map::new();
            let mut required = Vec::new();
            let mut resolved = Map::new();
            if let Some(name) = reference.strip_prefix("#/definitions/") {
                let definition = owner
                    .get("definitions")
                    .and_then(|d| d.get(name))
                    .and_then(Value::as_object)
                    .ok_or_else(|| ResolveError::UnknownDefinition {
                        reference: reference.to_owned(),
                        location: location.to_owned(),
                    })?;
                self.merge_block(owner, definition, &mut properties, &mut required, location)?;
            } else {
                let data_type = self.fetch(reference, location)?;
                let id = data_type
                    .get("$id")
                    .and_then(Value::as_str)
                    .unwrap_or(reference)
                    .to_owned();
                self.stack.push(id);
                self.merge_resource(&data_type, &mut properties, &mut required, location)?;
                self.stack.pop();
                for key in ["title", "description"] {
                    if let Some(value) = data_type.get(key) {
                        resolved.insert(key.to_owned(), value.clone());
                    }
                }
                resolved.insert("meta:referencedFrom".into(), json!(reference));
            }
            resolved.insert("type".into(), json!("object"));
            resolved.insert("meta:xdmType".into(), json!("object"));
            if !required.is_empty() {
                resolved.insert(
                    "required".into(),
                    Value::Array(required.into_iter().map(Value::String).collect()),
                );
            }
            resolved.insert("properties".into(), Value::Object(properties));
            // Sibling keys of the $ref (title, description, …) describe this use of it.
            for (key, value) in object {
                if key != "$ref" {
                    resolved.insert(key.clone(), value.clone());
                }
            }
            return Ok(Value::Object(resolved));
        }
        let mut resolved = object.clone();
        if let Some(Value::Object(children)) = object.get("properties") {
            let mut out = Map::new();
            for (name, child) in children {
                let child_location = format!("{location}/properties/{name}");
                out.insert(
                    name.clone(),
                    self.resolve_field(owner, child, &child_location)?,
                );
            }
            resolved.insert("properties".into(), Value::Object(out));
        }
        if let Some(items) = object.get("items") {
            let items_location = format!("{location}/items");
            resolved.insert(
                "items".into(),
                self.resolve_field(owner, items, &items_location)?,
            );
        }
        if let Some(values @ Value::Object(_)) = object.get("additionalProperties") {
            let values_location = format!("{location}/additionalProperties");
            resolved.insert(
                "additionalProperties".into(),
                self.resolve_field(owner, values, &values_location)?,
            );
        }
        Ok(Value::Object(resolved))
    }
}

fn malformed(location: &str, reason: &str) -> ResolveError {
    ResolveError::Malformed {
        location: location.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Adds a field to a properties map; two object fields of the same name (a tenant
/// namespace contributed by several field groups) merge their properties.
fn merge_property(properties: &mut Map<String, Value>, name: &str, field: Value) {
    match (properties.get_mut(name), field) {
        (Some(Value::Object(existing)), Value::Object(incoming))
            if existing.contains_key("properties") && incoming.contains_key("properties") =>
        {
            for (key, value) in incoming {
                match key.as_str() {
                    "properties" => {
                        if let (Some(Value::Object(target)), Value::Object(children)) =
                            (existing.get_mut("properties"), value)
                        {
                            for (child_name, child) in children {
                                merge_property(target, &child_name, child);
                            }
                        }
                    }
                    "required" => {
                        let union: Vec<Value> = existing
                            .get("required")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default()
                            .into_iter()
                            .chain(value.as_array().cloned().unwrap_or_default())
                            .fold(Vec::new(), |mut acc, v| {
                                if !acc.contains(&v) {
                                    acc.push(v);
                                }
                                acc
                            });
                        existing.insert("required".into(), Value::Array(union));
                    }
                    _ => {
                        existing.entry(key).or_insert(value);
                    }
                }
            }
        }
        (_, field) => {
            properties.insert(name.to_owned(), field);
        }
    }
}

/// Removes `title` and `description` from every schema node (the `-notext` Accept
/// variants), leaving fields that happen to be named `title` or `description` alone.
pub fn strip_text(node: &mut Value) {
    let Value::Object(map) = node else {
        return;
    };
    map.remove("title");
    map.remove("description");
    for (key, child) in map.iter_mut() {
        match (key.as_str(), child) {
            ("properties" | "definitions", Value::Object(fields)) => {
                fields.values_mut().for_each(strip_text)
            }
            ("allOf", Value::Array(items)) => items.iter_mut().for_each(strip_text),
            ("items" | "additionalProperties", child) => strip_text(child),
            _ => {}
        }
    }
}
