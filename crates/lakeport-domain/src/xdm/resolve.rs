//! Resolution of registry resources into the full (`xed-full`) form that validation and the
//! Arrow mapping consume (spec §5.3, §7.1): classes, behaviors, field groups and data types
//! referenced through `allOf` and `$ref` are merged into one `properties` tree.

use std::collections::HashMap;
use std::rc::Rc;

use serde_json::{Map, Value, json};

use crate::Doc;

/// The deepest field nesting a resolved schema may have: a top-level field is at depth 1,
/// a field of an object (or an array's items, a map's values) one deeper. Every recursive
/// walk over a resolved schema (validation, the Arrow mapping, evolution checks) relies on
/// this bound; it keeps them far from the stack of a 2 MiB worker thread, even in a debug
/// build. AEP publishes no hard nesting limit (its Profile guardrails recommend identity
/// fields no deeper than 4 levels); this one is Lakeport's.
pub const MAX_FIELD_DEPTH: usize = 32;

/// The most fields (at any depth, each use of a data type counted again) one resolution may
/// produce. It bounds the time and memory of a resolution whose data types fan out
/// (a type whose fields refer twice to the previous one doubles at each level).
pub const MAX_RESOLVED_FIELDS: usize = 10_000;

/// The longest chain of references (`allOf` and `$ref` to resources or `#/definitions`) one
/// resolution follows. A field `$ref` also nests a level, so field chains meet
/// [`MAX_FIELD_DEPTH`] first; this bounds chains of `allOf` includes.
pub const MAX_REFERENCE_DEPTH: usize = 64;

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
    #[error(
        "{location}: fields nest deeper than {limit} levels once references are resolved (through {})",
        abbreviate(chain)
    )]
    TooDeep {
        location: String,
        limit: usize,
        chain: Vec<String>,
    },
    #[error(
        "the resolved form has more than {limit} fields (each use of a data type counts its fields again), reached at {reference}"
    )]
    TooLarge { limit: usize, reference: String },
    #[error("references chain more than {limit} deep: {}", abbreviate(chain))]
    TooManyReferences { limit: usize, chain: Vec<String> },
}

/// Shows a long reference chain by its two first and three last links.
fn abbreviate(chain: &[String]) -> String {
    if chain.len() <= 6 {
        return chain.join(" -> ");
    }
    let skipped = chain.len() - 5;
    format!(
        "{} -> … {skipped} more … -> {}",
        chain[..2].join(" -> "),
        chain[chain.len() - 3..].join(" -> ")
    )
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
/// Each referenced resource and definition is resolved once and reused; the resolution
/// stops with an error at [`MAX_FIELD_DEPTH`], [`MAX_RESOLVED_FIELDS`] or
/// [`MAX_REFERENCE_DEPTH`], so it is bounded in time, memory and stack whatever the graph.
///
/// # Errors
/// Unknown references, `$ref` cycles (between resources, definitions, or a field and its
/// own resource), malformed `allOf`/`properties` members, and the limits above.
pub fn resolve(doc: &Doc, lookup: &Lookup<'_>) -> Result<Resolved, ResolveError> {
    let id = doc
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or("#")
        .to_owned();
    let mut resolver = Resolver {
        lookup,
        stack: vec![id.clone()],
        used: Vec::new(),
        memo: HashMap::new(),
        aliases: HashMap::new(),
        fields: 0,
    };
    let root = Owner { id: &id, doc };
    let block = resolver.resolve_block(&root, doc, "#", 0)?;
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
    if !block.required.is_empty() {
        full.insert(
            "required".into(),
            Value::Array(block.required.into_iter().map(Value::String).collect()),
        );
    }
    full.insert("properties".into(), Value::Object(block.properties));
    Ok(Resolved {
        full: Value::Object(full),
        used: resolver.used,
    })
}

/// The fields one block (a resource, a definition or an inline `allOf` item) contributes.
#[derive(Debug, Clone, Default)]
struct Block {
    properties: Map<String, Value>,
    required: Vec<String>,
    /// Fields in `properties`, at any depth.
    fields: usize,
    /// Depth of the deepest field, counting the block's own fields as 1.
    height: usize,
    /// The `title` and `description` of a resource (a data type's, copied to each use).
    about: Map<String, Value>,
}

impl Block {
    /// Adds a resolved field; two object fields of the same name merge.
    fn add(&mut self, name: &str, field: Field) {
        self.fields += field.fields;
        self.height = self.height.max(field.height);
        merge_property(&mut self.properties, name, field.value);
    }

    /// Adds every field and required name of another block.
    fn absorb(&mut self, other: &Block) {
        for (name, value) in &other.properties {
            merge_property(&mut self.properties, name, value.clone());
        }
        self.add_required(other.required.iter().map(String::as_str));
        self.fields += other.fields;
        self.height = self.height.max(other.height);
    }

    fn add_required<'n>(&mut self, names: impl IntoIterator<Item = &'n str>) {
        for name in names {
            if !self.required.iter().any(|r| r == name) {
                self.required.push(name.to_owned());
            }
        }
    }
}

/// One resolved field with its size.
struct Field {
    value: Value,
    /// This field and every field below it.
    fields: usize,
    /// 1 for a leaf, 1 + the deepest child otherwise.
    height: usize,
}

/// The resource whose `#/definitions` local references name.
struct Owner<'d> {
    id: &'d str,
    doc: &'d Doc,
}

struct Resolver<'l, 'a> {
    lookup: &'l Lookup<'a>,
    /// The resources and definitions being resolved, outermost first (cycle detection).
    stack: Vec<String>,
    used: Vec<String>,
    /// Resolved resources (by `$id`) and definitions (by `$id#/definitions/name`).
    memo: HashMap<String, Rc<Block>>,
    /// Reference spellings (`meta:altId`, …) already seen, mapped to the `$id`.
    aliases: HashMap<String, String>,
    /// Fields produced so far, each reuse of a resolved block counted again.
    fields: usize,
}

impl Resolver<'_, '_> {
    /// The ad-hoc namespace a schema inherits from its class.
    fn dataset_namespace(&self, doc: &Doc) -> Option<String> {
        let class = doc.get("meta:class").and_then(Value::as_str)?;
        (self.lookup)(class)?
            .get("meta:datasetNamespace")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Counts `count` new fields against [`MAX_RESOLVED_FIELDS`].
    fn charge(&mut self, count: usize, reference: &str) -> Result<(), ResolveError> {
        self.fields = self.fields.saturating_add(count);
        if self.fields > MAX_RESOLVED_FIELDS {
            return Err(ResolveError::TooLarge {
                limit: MAX_RESOLVED_FIELDS,
                reference: reference.to_owned(),
            });
        }
        Ok(())
    }

    /// Enters a resource or definition: refuses cycles and over-long chains.
    fn enter(&mut self, key: &str) -> Result<(), ResolveError> {
        if let Some(start) = self.stack.iter().position(|entry| entry == key) {
            let mut cycle = self.stack[start..].to_vec();
            cycle.push(key.to_owned());
            return Err(ResolveError::Cycle { cycle });
        }
        if self.stack.len() >= MAX_REFERENCE_DEPTH {
            let mut chain = self.stack.clone();
            chain.push(key.to_owned());
            return Err(ResolveError::TooManyReferences {
                limit: MAX_REFERENCE_DEPTH,
                chain,
            });
        }
        self.stack.push(key.to_owned());
        Ok(())
    }

    /// Checks that a block whose fields sit below `depth` fits [`MAX_FIELD_DEPTH`].
    fn check_depth(&self, depth: usize, height: usize, location: &str) -> Result<(), ResolveError> {
        if depth + height > MAX_FIELD_DEPTH {
            return Err(self.too_deep(location));
        }
        Ok(())
    }

    fn too_deep(&self, location: &str) -> ResolveError {
        ResolveError::TooDeep {
            location: location.to_owned(),
            limit: MAX_FIELD_DEPTH,
            chain: self.stack.clone(),
        }
    }

    /// Resolves what a `$ref` names: a definition of `owner` or another resource. `depth`
    /// is the depth of the field the block's fields are placed under (0 at the top).
    fn resolve_reference(
        &mut self,
        owner: &Owner<'_>,
        reference: &str,
        location: &str,
        depth: usize,
    ) -> Result<Rc<Block>, ResolveError> {
        if let Some(name) = reference.strip_prefix("#/definitions/") {
            let key = format!("{}#/definitions/{name}", owner.id);
            if let Some(block) = self.memo.get(&key).cloned() {
                self.check_depth(depth, block.height, location)?;
                self.charge(block.fields, &key)?;
                return Ok(block);
            }
            let definition = owner
                .doc
                .get("definitions")
                .and_then(|d| d.get(name))
                .and_then(Value::as_object)
                .ok_or_else(|| ResolveError::UnknownDefinition {
                    reference: reference.to_owned(),
                    location: location.to_owned(),
                })?;
            self.enter(&key)?;
            let definition_location = format!("#/definitions/{name}");
            let block = self.resolve_block(owner, definition, &definition_location, depth)?;
            self.stack.pop();
            let block = Rc::new(block);
            self.memo.insert(key, Rc::clone(&block));
            return Ok(block);
        }
        let known = self.aliases.get(reference).cloned();
        if let Some(id) = &known
            && let Some(block) = self.memo.get(id).cloned()
        {
            self.check_depth(depth, block.height, location)?;
            self.charge(block.fields, id)?;
            return Ok(block);
        }
        let other = (self.lookup)(reference).ok_or_else(|| ResolveError::UnknownRef {
            reference: reference.to_owned(),
            location: location.to_owned(),
        })?;
        let id = other
            .get("$id")
            .and_then(Value::as_str)
            .unwrap_or(reference)
            .to_owned();
        self.aliases.insert(reference.to_owned(), id.clone());
        if let Some(block) = self.memo.get(&id).cloned() {
            self.check_depth(depth, block.height, location)?;
            self.charge(block.fields, &id)?;
            return Ok(block);
        }
        self.enter(&id)?;
        if !self.used.contains(&id) {
            self.used.push(id.clone());
        }
        let other_owner = Owner {
            id: &id,
            doc: &other,
        };
        let mut block = self.resolve_block(&other_owner, &other, location, depth)?;
        self.stack.pop();
        for key in ["title", "description"] {
            if let Some(value) = other.get(key) {
                block.about.insert(key.to_owned(), value.clone());
            }
        }
        let block = Rc::new(block);
        self.memo.insert(id, Rc::clone(&block));
        Ok(block)
    }

    /// Resolves one block (a resource, a definition or an `allOf` item) of `owner` whose
    /// fields sit below a field at `depth`.
    fn resolve_block(
        &mut self,
        owner: &Owner<'_>,
        block: &Map<String, Value>,
        location: &str,
        depth: usize,
    ) -> Result<Block, ResolveError> {
        let mut out = Block::default();
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
                        let resolved =
                            self.resolve_reference(owner, reference, &item_location, depth)?;
                        out.absorb(&resolved);
                    }
                    Some(_) => return Err(malformed(&item_location, "$ref must be a string")),
                    None => {
                        let inline = self.resolve_block(owner, item, &item_location, depth)?;
                        out.absorb(&inline);
                    }
                }
            }
        }
        if let Some(own) = block.get("properties") {
            let Value::Object(own) = own else {
                return Err(malformed(location, "properties must be an object"));
            };
            for (name, field) in own {
                let field_location = format!("{location}/properties/{name}");
                let resolved = self.resolve_field(owner, field, &field_location, depth + 1)?;
                out.add(name, resolved);
            }
        }
        if let Some(Value::Array(names)) = block.get("required") {
            out.add_required(names.iter().filter_map(Value::as_str));
        }
        Ok(out)
    }

    /// Resolves one field at `depth` (a top-level field is at depth 1).
    fn resolve_field(
        &mut self,
        owner: &Owner<'_>,
        field: &Value,
        location: &str,
        depth: usize,
    ) -> Result<Field, ResolveError> {
        if depth > MAX_FIELD_DEPTH {
            return Err(self.too_deep(location));
        }
        let Value::Object(object) = field else {
            return Err(malformed(location, "a field must be an object"));
        };
        self.charge(1, location)?;
        if let Some(reference) = object.get("$ref") {
            let Some(reference) = reference.as_str() else {
                return Err(malformed(location, "$ref must be a string"));
            };
            let block = self.resolve_reference(owner, reference, location, depth)?;
            let mut resolved = block.about.clone();
            if !reference.starts_with("#/definitions/") {
                resolved.insert("meta:referencedFrom".into(), json!(reference));
            }
            resolved.insert("type".into(), json!("object"));
            resolved.insert("meta:xdmType".into(), json!("object"));
            if !block.required.is_empty() {
                resolved.insert(
                    "required".into(),
                    Value::Array(block.required.iter().cloned().map(Value::String).collect()),
                );
            }
            resolved.insert("properties".into(), Value::Object(block.properties.clone()));
            // Sibling keys of the $ref (title, description, …) describe this use of it.
            for (key, value) in object {
                if key != "$ref" {
                    resolved.insert(key.clone(), value.clone());
                }
            }
            return Ok(Field {
                value: Value::Object(resolved),
                fields: 1 + block.fields,
                height: 1 + block.height,
            });
        }
        let mut resolved = object.clone();
        let mut fields = 1;
        let mut height = 1;
        if let Some(Value::Object(children)) = object.get("properties") {
            let mut out = Map::new();
            for (name, child) in children {
                let child_location = format!("{location}/properties/{name}");
                let child = self.resolve_field(owner, child, &child_location, depth + 1)?;
                fields += child.fields;
                height = height.max(1 + child.height);
                out.insert(name.clone(), child.value);
            }
            resolved.insert("properties".into(), Value::Object(out));
        }
        for key in ["items", "additionalProperties"] {
            // `additionalProperties: false` is a keyword, not a field.
            let child = match object.get(key) {
                Some(value) if key == "additionalProperties" && !value.is_object() => None,
                child => child,
            };
            if let Some(child) = child {
                let child_location = format!("{location}/{key}");
                let child = self.resolve_field(owner, child, &child_location, depth + 1)?;
                fields += child.fields;
                height = height.max(1 + child.height);
                resolved.insert(key.into(), child.value);
            }
        }
        Ok(Field {
            value: Value::Object(resolved),
            fields,
            height,
        })
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

#[cfg(test)]
mod tests;
