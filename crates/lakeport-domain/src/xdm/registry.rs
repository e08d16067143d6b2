//! Schema Registry resources (spec §5): kinds, identifiers, the documents the registry
//! stores for create/PUT/PATCH, the built-in global resources, and the evolution rule for
//! schemas in use.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use super::resolve::{Lookup, MAX_FIELD_DEPTH, ResolveError, resolve};
use super::validate::check_pattern;
use crate::Doc;
use crate::catalog::Actor;
use crate::tenant::Tenant;

/// The kinds of registry resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    Schema,
    Class,
    FieldGroup,
    DataType,
    Behavior,
}

impl ResourceKind {
    /// Every kind, in the order `/stats` reports them.
    pub const ALL: [ResourceKind; 5] = [
        ResourceKind::Schema,
        ResourceKind::Class,
        ResourceKind::FieldGroup,
        ResourceKind::DataType,
        ResourceKind::Behavior,
    ];

    /// Parses a path segment; `mixins` is the deprecated alias of `fieldgroups`.
    pub fn from_path(segment: &str) -> Option<Self> {
        match segment {
            "schemas" => Some(Self::Schema),
            "classes" => Some(Self::Class),
            "fieldgroups" | "mixins" => Some(Self::FieldGroup),
            "datatypes" => Some(Self::DataType),
            "behaviors" => Some(Self::Behavior),
            _ => None,
        }
    }

    /// Returns `meta:resourceType`, which is also the kind segment of `$id` and
    /// `meta:altId` (field groups keep `mixins`).
    pub fn resource_type(self) -> &'static str {
        match self {
            Self::Schema => "schemas",
            Self::Class => "classes",
            Self::FieldGroup => "mixins",
            Self::DataType => "datatypes",
            Self::Behavior => "behaviors",
        }
    }

    /// Parses `meta:resourceType`.
    pub fn from_resource_type(resource_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.resource_type() == resource_type)
    }

    /// Returns the noun used in messages.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Schema => "schema",
            Self::Class => "class",
            Self::FieldGroup => "field group",
            Self::DataType => "data type",
            Self::Behavior => "behavior",
        }
    }
}

/// Everything a registry write needs besides the body.
#[derive(Debug, Clone)]
pub struct RegistryContext<'a> {
    pub tenant: &'a Tenant,
    /// The org's tenant id (`acmecorp`): custom fields live under `_<tenant id>`.
    pub tenant_id: &'a str,
    pub actor: &'a Actor,
    pub now: i64,
}

/// Why a registry body or change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("the JSON Patch cannot be applied: {0}")]
    Patch(String),
    #[error("{noun} {id} is read-only: it belongs to the global container")]
    ReadOnly { noun: &'static str, id: String },
}

fn invalid(message: impl Into<String>) -> RegistryError {
    RegistryError::Invalid(message.into())
}

/// Returns the read-only built-in resources of the `global` container.
pub fn builtins() -> &'static [Doc] {
    static BUILTINS: OnceLock<Vec<Doc>> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        serde_json::from_str(include_str!("builtins.json"))
            .expect("builtins.json is a valid array of resources")
    })
}

/// Finds a built-in by `$id` or `meta:altId`.
pub fn builtin(id: &str) -> Option<&'static Doc> {
    builtins().iter().find(|doc| {
        doc.get("$id").and_then(Value::as_str) == Some(id)
            || doc.get("meta:altId").and_then(Value::as_str) == Some(id)
    })
}

/// Returns the kind of a stored resource.
pub fn kind_of(doc: &Doc) -> Option<ResourceKind> {
    doc.get("meta:resourceType")
        .and_then(Value::as_str)
        .and_then(ResourceKind::from_resource_type)
}

/// Returns the `$id` and `meta:altId` of a new tenant resource.
pub fn new_ids(kind: ResourceKind, tenant_id: &str, hex: &str) -> (String, String) {
    let segment = kind.resource_type();
    (
        format!("https://ns.adobe.com/{tenant_id}/{segment}/{hex}"),
        format!("_{tenant_id}.{segment}.{hex}"),
    )
}

/// Keys the registry sets; ignored when a client sends them.
const SYSTEM_KEYS: &[&str] = &[
    "$id",
    "meta:altId",
    "meta:resourceType",
    "version",
    "meta:containerId",
    "meta:tenantNamespace",
    "meta:sandboxId",
    "meta:sandboxType",
    "imsOrg",
    "meta:registryMetadata",
    "meta:class",
    "meta:extends",
    "meta:abstract",
    "meta:extensible",
    "meta:datasetNamespace",
    "meta:xdmVersion",
];

const BEHAVIORS: [&str; 3] = [
    "https://ns.adobe.com/xdm/data/record",
    "https://ns.adobe.com/xdm/data/time-series",
    "https://ns.adobe.com/xdm/data/adhoc",
];

/// Builds the stored document of a new tenant resource from a POST body.
///
/// # Errors
/// Says which member is missing or invalid, or which reference does not resolve.
pub fn new_resource(
    kind: ResourceKind,
    body: Value,
    hex: &str,
    ctx: &RegistryContext<'_>,
    lookup: &Lookup<'_>,
) -> Result<Doc, RegistryError> {
    let (id, alt_id) = new_ids(kind, ctx.tenant_id, hex);
    let metadata = json!({
        "repo:createdDate": ctx.now,
        "repo:lastModifiedDate": ctx.now,
        "xdm:createdClientId": ctx.actor.client_id,
        "xdm:lastModifiedClientId": ctx.actor.client_id,
        "xdm:createdUserId": ctx.actor.user,
        "xdm:lastModifiedUserId": ctx.actor.user,
        "eTag": format!("{hex}-1.0"),
    });
    build(
        kind, body, &id, &alt_id, "1.0", metadata, hex, None, ctx, lookup,
    )
}

/// Builds the stored document that replaces `current` (PUT): the body's members, the
/// current identity, the minor version bumped.
///
/// # Errors
/// As [`new_resource`].
pub fn replace_resource(
    current: &Doc,
    body: Value,
    ctx: &RegistryContext<'_>,
    lookup: &Lookup<'_>,
) -> Result<Doc, RegistryError> {
    let kind =
        kind_of(current).ok_or_else(|| invalid("the stored resource has no meta:resourceType"))?;
    let id = current
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let alt_id = current
        .get("meta:altId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let hex = id.rsplit('/').next().unwrap_or_default().to_owned();
    let version = bump_minor(
        current
            .get("version")
            .and_then(Value::as_str)
            .unwrap_or("1.0"),
    );
    let mut metadata = current
        .get("meta:registryMetadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    metadata["repo:lastModifiedDate"] = json!(ctx.now);
    metadata["xdm:lastModifiedClientId"] = json!(ctx.actor.client_id);
    metadata["xdm:lastModifiedUserId"] = json!(ctx.actor.user);
    metadata["eTag"] = json!(format!("{hex}-{version}"));
    let namespace = current.get("meta:datasetNamespace").and_then(Value::as_str);
    build(
        kind, body, &id, &alt_id, &version, metadata, &hex, namespace, ctx, lookup,
    )
}

/// Applies a JSON Patch (PATCH) to a stored resource and rebuilds it as a PUT would.
///
/// # Errors
/// A patch that does not apply, or a result that is not a valid resource.
pub fn patch_resource(
    current: &Doc,
    patch: Value,
    ctx: &RegistryContext<'_>,
    lookup: &Lookup<'_>,
) -> Result<Doc, RegistryError> {
    let patch: json_patch::Patch = serde_json::from_value(patch).map_err(|err| {
        RegistryError::Patch(format!(
            "the body must be an array of RFC 6902 operations ({err})"
        ))
    })?;
    let mut value = Value::Object(current.clone());
    json_patch::patch(&mut value, &patch).map_err(|err| RegistryError::Patch(err.to_string()))?;
    replace_resource(current, value, ctx, lookup)
}

fn bump_minor(version: &str) -> String {
    let (major, minor) = version.split_once('.').unwrap_or(("1", "0"));
    let minor: u64 = minor.parse().unwrap_or(0);
    format!("{major}.{}", minor + 1)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one private builder shared by create and replace"
)]
fn build(
    kind: ResourceKind,
    body: Value,
    id: &str,
    alt_id: &str,
    version: &str,
    metadata: Value,
    hex: &str,
    existing_namespace: Option<&str>,
    ctx: &RegistryContext<'_>,
    lookup: &Lookup<'_>,
) -> Result<Doc, RegistryError> {
    let Value::Object(mut body) = body else {
        return Err(invalid(
            "the body must be a JSON object describing the resource",
        ));
    };
    for key in SYSTEM_KEYS {
        body.remove(*key);
    }
    match body.get("title") {
        Some(Value::String(title)) if !title.trim().is_empty() => {}
        Some(Value::String(_)) | None => {
            return Err(invalid("title is required: a non-empty string"));
        }
        Some(_) => return Err(invalid("title must be a string")),
    }
    if let Some(description) = body.get("description")
        && !description.is_string()
    {
        return Err(invalid("description must be a string"));
    }
    // A missing type means "object" for every kind: AEP accepts schemas without it, and
    // aepp's createProfileSchema/createExperienceEventSchema and SchemaManager send none.
    match body.get("type") {
        None => {}
        Some(Value::String(t)) if t == "object" => {}
        Some(other) => {
            return Err(invalid(format!(
                "type is {other}; a {} must have type \"object\"",
                kind.noun()
            )));
        }
    }
    if let Some(all_of) = body.get("allOf")
        && !all_of
            .as_array()
            .is_some_and(|items| items.iter().all(Value::is_object))
    {
        return Err(invalid("allOf must be an array of objects"));
    }

    let mut doc = Map::new();
    doc.insert("$id".into(), json!(id));
    doc.insert("meta:altId".into(), json!(alt_id));
    doc.insert("meta:resourceType".into(), json!(kind.resource_type()));
    doc.insert("version".into(), json!(version));
    for (key, value) in body {
        doc.insert(key, value);
    }
    doc.entry("type").or_insert_with(|| json!("object"));
    doc.insert("meta:xdmType".into(), json!("object"));

    match kind {
        ResourceKind::Schema => shape_schema(&mut doc, lookup)?,
        ResourceKind::Class => shape_class(&mut doc, hex, existing_namespace, lookup)?,
        ResourceKind::FieldGroup => {
            shape_field_group(&mut doc, ctx.tenant_id)?;
            mark_extensible(&mut doc);
        }
        ResourceKind::DataType => {
            if !doc.contains_key("properties") && !doc.contains_key("allOf") {
                return Err(invalid(
                    "a data type needs properties (or definitions referenced from allOf)",
                ));
            }
            mark_extensible(&mut doc);
        }
        ResourceKind::Behavior => {
            return Err(invalid("behaviors are built in and cannot be created"));
        }
    }
    for container in ["properties", "definitions"] {
        if let Some(Value::Object(fields)) = doc.get_mut(container) {
            let location = format!("#/{container}");
            if container == "properties" {
                check_fields(fields, &location, true)?;
            } else {
                for (name, definition) in fields.iter_mut() {
                    if let Some(Value::Object(properties)) = definition.get_mut("properties") {
                        check_fields(
                            properties,
                            &format!("#/definitions/{name}/properties"),
                            true,
                        )?;
                    }
                }
            }
        }
    }
    if let Some(Value::Array(items)) = doc.get_mut("allOf") {
        for (index, item) in items.iter_mut().enumerate() {
            if let Some(Value::Object(properties)) = item.get_mut("properties") {
                check_fields(properties, &format!("#/allOf/{index}/properties"), true)?;
            }
        }
    }
    doc.insert("meta:containerId".into(), json!("tenant"));
    doc.insert(
        "meta:tenantNamespace".into(),
        json!(format!("_{}", ctx.tenant_id)),
    );
    doc.insert("meta:sandboxId".into(), json!(ctx.tenant.sandbox_id()));
    let sandbox_type = if ctx.tenant.sandbox() == "prod" {
        "production"
    } else {
        "development"
    };
    doc.insert("meta:sandboxType".into(), json!(sandbox_type));
    doc.insert("imsOrg".into(), json!(ctx.tenant.org()));
    doc.insert("meta:registryMetadata".into(), metadata);

    // The resource must resolve: every $ref known, no cycles.
    let self_lookup = |reference: &str| -> Option<Doc> {
        if reference == id || reference == alt_id {
            Some(doc.clone())
        } else {
            lookup(reference)
        }
    };
    resolve(&doc, &self_lookup)?;
    Ok(doc)
}

/// Tenant field groups and data types are abstract (only used through a schema) and
/// extensible, as AEP answers; aepp's FieldGroupManager and DataTypeManager refuse to edit a
/// resource that is not `meta:extensible`.
fn mark_extensible(doc: &mut Doc) {
    doc.insert("meta:abstract".into(), json!(true));
    doc.insert("meta:extensible".into(), json!(true));
}

fn refs(doc: &Doc) -> Vec<String> {
    doc.get("allOf")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.get("$ref").and_then(Value::as_str))
                .filter(|reference| !reference.starts_with('#'))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn shape_schema(doc: &mut Doc, lookup: &Lookup<'_>) -> Result<(), RegistryError> {
    if !doc.contains_key("allOf") {
        return Err(invalid(
            "allOf is required: [{\"$ref\": <class $id>}, {\"$ref\": <field group $id>}, ...]",
        ));
    }
    let mut class = None;
    let mut extends: Vec<String> = Vec::new();
    let push = |list: &mut Vec<String>, id: &str| {
        if !list.iter().any(|seen| seen == id) {
            list.push(id.to_owned());
        }
    };
    for reference in refs(doc) {
        let target = lookup(&reference).ok_or_else(|| {
            invalid(format!(
                "allOf $ref {reference:?} does not name a class or field group in this sandbox"
            ))
        })?;
        let target_id = target
            .get("$id")
            .and_then(Value::as_str)
            .unwrap_or(&reference)
            .to_owned();
        match kind_of(&target) {
            Some(ResourceKind::Class) => {
                if let Some(first) = &class {
                    return Err(invalid(format!(
                        "a schema has exactly one class; allOf names {first} and {target_id}"
                    )));
                }
                class = Some(target_id.clone());
                push(&mut extends, &target_id);
                for behavior in refs(&target) {
                    push(&mut extends, &behavior);
                }
            }
            Some(ResourceKind::FieldGroup) => {
                push(&mut extends, &target_id);
                for inherited in refs(&target) {
                    push(&mut extends, &inherited);
                }
            }
            Some(ResourceKind::DataType)
            | Some(ResourceKind::Behavior)
            | Some(ResourceKind::Schema)
            | None => {
                return Err(invalid(format!(
                    "allOf $ref {reference:?} is a {}; a schema combines one class with field groups",
                    kind_of(&target).map_or("resource of unknown kind", ResourceKind::noun)
                )));
            }
        }
    }
    let Some(class) = class else {
        return Err(invalid(
            "allOf must reference exactly one class (e.g. https://ns.adobe.com/xdm/context/profile)",
        ));
    };
    if let Some(namespace) = lookup(&class).and_then(|c| c.get("meta:datasetNamespace").cloned()) {
        doc.insert("meta:datasetNamespace".into(), namespace);
    }
    doc.insert("meta:class".into(), json!(class));
    doc.insert("meta:extends".into(), json!(extends));
    doc.insert("meta:abstract".into(), json!(false));
    doc.insert("meta:extensible".into(), json!(false));
    Ok(())
}

fn shape_class(
    doc: &mut Doc,
    hex: &str,
    existing_namespace: Option<&str>,
    lookup: &Lookup<'_>,
) -> Result<(), RegistryError> {
    let behaviors: Vec<String> = refs(doc)
        .into_iter()
        .filter(|reference| {
            lookup(reference)
                .and_then(|target| target.get("$id").and_then(Value::as_str).map(str::to_owned))
                .is_some_and(|id| BEHAVIORS.contains(&id.as_str()))
        })
        .collect();
    let [behavior] = behaviors.as_slice() else {
        return Err(invalid(format!(
            "a class must reference exactly one behavior in allOf: {}",
            BEHAVIORS.join(", ")
        )));
    };
    let behavior = lookup(behavior)
        .and_then(|b| b.get("$id").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| behavior.clone());
    if behavior.ends_with("/adhoc") {
        // Ad-hoc classes get a unique namespace object instead of `_adhoc` (spec §5.3).
        let namespace = existing_namespace.map_or_else(|| format!("_{hex}"), str::to_owned);
        rename_adhoc(doc, &namespace);
        doc.insert("meta:datasetNamespace".into(), json!(namespace));
    }
    doc.insert("meta:extends".into(), json!([behavior]));
    doc.insert("meta:abstract".into(), json!(true));
    doc.insert("meta:extensible".into(), json!(true));
    Ok(())
}

fn rename_adhoc(doc: &mut Doc, namespace: &str) {
    let rename = |properties: &mut Map<String, Value>| {
        if let Some(value) = properties.remove("_adhoc") {
            properties.insert(namespace.to_owned(), value);
        }
    };
    if let Some(Value::Object(properties)) = doc.get_mut("properties") {
        rename(properties);
    }
    if let Some(Value::Array(items)) = doc.get_mut("allOf") {
        for item in items {
            if let Some(Value::Object(properties)) = item.get_mut("properties") {
                rename(properties);
            }
        }
    }
}

fn shape_field_group(doc: &mut Doc, tenant_id: &str) -> Result<(), RegistryError> {
    match doc.get("meta:intendedToExtend") {
        None => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(invalid(
                "meta:intendedToExtend must be an array of class $ids",
            ));
        }
    }
    let namespace = format!("_{tenant_id}");
    let mut top_level: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(definitions)) = doc.get("definitions") {
        for (name, definition) in definitions {
            if let Some(Value::Object(properties)) = definition.get("properties") {
                top_level.extend(
                    properties
                        .keys()
                        .map(|k| (k.clone(), format!("#/definitions/{name}/properties/{k}"))),
                );
            }
        }
    }
    if let Some(Value::Object(properties)) = doc.get("properties") {
        top_level.extend(
            properties
                .keys()
                .map(|k| (k.clone(), format!("#/properties/{k}"))),
        );
    }
    if let Some((field, location)) = top_level.iter().find(|(field, _)| *field != namespace) {
        return Err(invalid(format!(
            "{location}: custom fields must be nested under the tenant namespace object \"{namespace}\", not at the top level as {field:?}"
        )));
    }
    Ok(())
}

const XDM_TYPES: [&str; 12] = [
    "string",
    "number",
    "long",
    "int",
    "short",
    "byte",
    "boolean",
    "date",
    "date-time",
    "object",
    "map",
    "array",
];

/// Checks field names and types and fills `meta:xdmType` on every field; `top_level` fields
/// are at depth 1.
fn check_fields(
    fields: &mut Map<String, Value>,
    location: &str,
    top_level: bool,
) -> Result<(), RegistryError> {
    check_fields_at(fields, location, if top_level { 1 } else { 2 })
}

fn check_fields_at(
    fields: &mut Map<String, Value>,
    location: &str,
    depth: usize,
) -> Result<(), RegistryError> {
    let top_level = depth == 1;
    for (name, field) in fields.iter_mut() {
        let field_location = format!("{location}/{name}");
        let name_ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            return Err(invalid(format!(
                "{field_location}: field names may only hold letters, digits, '-' and '_'"
            )));
        }
        if name.starts_with('_') && !top_level {
            return Err(invalid(format!(
                "{field_location}: only namespace objects at the top level may start with '_'"
            )));
        }
        check_field(field, &field_location, depth)?;
    }
    Ok(())
}

fn check_field(field: &mut Value, location: &str, depth: usize) -> Result<(), RegistryError> {
    if depth > MAX_FIELD_DEPTH {
        return Err(invalid(format!(
            "{location}: fields nest deeper than {MAX_FIELD_DEPTH} levels"
        )));
    }
    let Value::Object(object) = field else {
        return Err(invalid(format!("{location}: a field must be an object")));
    };
    if object.contains_key("$ref") {
        return Ok(());
    }
    let json_type = object
        .get("type")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let xdm_type = match object.get("meta:xdmType") {
        Some(Value::String(xdm)) => {
            if !XDM_TYPES.contains(&xdm.as_str()) {
                return Err(invalid(format!(
                    "{location}: meta:xdmType {xdm:?} is not one of {}",
                    XDM_TYPES.join(", ")
                )));
            }
            xdm.clone()
        }
        Some(_) => {
            return Err(invalid(format!(
                "{location}: meta:xdmType must be a string"
            )));
        }
        None => {
            let format = object.get("format").and_then(Value::as_str);
            match (json_type.as_deref(), format) {
                (Some("string"), Some("date")) => "date".into(),
                (Some("string"), Some("date-time")) => "date-time".into(),
                (Some("string"), _) => "string".into(),
                (Some("number"), _) => "number".into(),
                (Some("integer"), _) => "long".into(),
                (Some("boolean"), _) => "boolean".into(),
                (Some("array"), _) => "array".into(),
                (Some("object"), _)
                    if object.contains_key("additionalProperties")
                        && !object.contains_key("properties") =>
                {
                    "map".into()
                }
                (Some("object"), _) => "object".into(),
                (Some(other), _) => {
                    return Err(invalid(format!(
                        "{location}: type {other:?} is not one of string, number, integer, boolean, object, array"
                    )));
                }
                (None, _) => {
                    return Err(invalid(format!(
                        "{location}: a field needs a type (or a $ref to a data type)"
                    )));
                }
            }
        }
    };
    match object.get("pattern") {
        None => {}
        Some(Value::String(pattern)) => {
            // Refused here rather than at ingestion, where every row would fail (issue 11).
            check_pattern(pattern).map_err(|reason| {
                invalid(format!(
                    "{location}: pattern {pattern:?} is not a supported ECMA-262 regular expression: {reason}"
                ))
            })?;
        }
        Some(_) => {
            return Err(invalid(format!("{location}: pattern must be a string")));
        }
    }
    object.insert("meta:xdmType".into(), json!(xdm_type));
    if json_type.is_none() {
        let implied = match xdm_type.as_str() {
            "string" | "date" | "date-time" => "string",
            "number" => "number",
            "long" | "int" | "short" | "byte" => "integer",
            "boolean" => "boolean",
            "array" => "array",
            _ => "object",
        };
        object.insert("type".into(), json!(implied));
    }
    if let Some(Value::Object(children)) = object.get_mut("properties") {
        check_fields_at(children, &format!("{location}/properties"), depth + 1)?;
    }
    if let Some(items) = object.get_mut("items") {
        check_field(items, &format!("{location}/items"), depth + 1)?;
    } else if xdm_type == "array" {
        return Err(invalid(format!("{location}: an array field needs items")));
    }
    if let Some(values @ Value::Object(_)) = object.get_mut("additionalProperties") {
        check_field(
            values,
            &format!("{location}/additionalProperties"),
            depth + 1,
        )?;
    }
    Ok(())
}

/// Returns the resources whose resolution reads `current`, directly or through others,
/// found from the `$ref`s they hold (without resolving anything).
pub fn dependents<'r>(resources: &'r [Doc], current: &Doc) -> Vec<&'r Doc> {
    let id_of = |doc: &Doc| doc.get("$id").and_then(Value::as_str).map(str::to_owned);
    let mut canonical: HashMap<&str, String> = HashMap::new();
    for doc in resources {
        if let Some(id) = id_of(doc) {
            for key in ["$id", "meta:altId"] {
                if let Some(name) = doc.get(key).and_then(Value::as_str) {
                    canonical.insert(name, id.clone());
                }
            }
        }
    }
    // Who refers to whom: target $id → indexes of the resources holding such a $ref.
    let mut referrers: HashMap<String, Vec<usize>> = HashMap::new();
    for (index, doc) in resources.iter().enumerate() {
        for reference in external_refs(doc) {
            if let Some(target) = canonical.get(reference) {
                referrers.entry(target.clone()).or_default().push(index);
            }
        }
    }
    let Some(changed_id) = id_of(current) else {
        return Vec::new();
    };
    let mut found: Vec<bool> = vec![false; resources.len()];
    let mut queue = vec![changed_id.clone()];
    while let Some(target) = queue.pop() {
        for &index in referrers
            .get(&target)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let Some(id) = id_of(&resources[index]) else {
                continue;
            };
            if !found[index] && id != changed_id {
                found[index] = true;
                queue.push(id);
            }
        }
    }
    resources
        .iter()
        .zip(found)
        .filter_map(|(doc, found)| found.then_some(doc))
        .collect()
}

/// Every `$ref` of a document that names another resource (not `#/definitions/…`). The
/// walk is iterative, so a deeply nested document cannot exhaust the stack.
pub fn external_refs(doc: &Doc) -> Vec<&str> {
    let mut refs = Vec::new();
    for value in doc.values() {
        refs.extend(external_refs_in(value));
    }
    if let Some(Value::String(reference)) = doc.get("$ref")
        && !reference.starts_with('#')
    {
        refs.push(reference.as_str());
    }
    refs
}

/// Every `$ref` to another resource (not `#/…`) anywhere inside `value`: a stored resource, a
/// request body or a JSON Patch. Iterative, so any nesting depth is safe.
pub fn external_refs_in(value: &Value) -> Vec<&str> {
    let mut refs = Vec::new();
    let mut pending: Vec<&Value> = vec![value];
    while let Some(value) = pending.pop() {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref")
                    && !reference.starts_with('#')
                {
                    refs.push(reference.as_str());
                }
                pending.extend(map.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    refs
}

/// Checks that every resource whose resolution reads `current` still resolves once it is
/// replaced by `next`: a change must not close a `$ref` cycle through another resource or
/// push a dependent past the resolution limits.
///
/// # Errors
/// The first dependent that no longer resolves (and did before), with the reason.
pub fn check_dependents(resources: &[Doc], current: &Doc, next: &Doc) -> Result<(), RegistryError> {
    let changed_id = current
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let changed_alt_id = current.get("meta:altId").and_then(Value::as_str);
    let find = |reference: &str| {
        resources
            .iter()
            .find(|doc| {
                doc.get("$id").and_then(Value::as_str) == Some(reference)
                    || doc.get("meta:altId").and_then(Value::as_str) == Some(reference)
            })
            .cloned()
    };
    let after = |reference: &str| {
        if reference == changed_id || Some(reference) == changed_alt_id {
            Some(next.clone())
        } else {
            find(reference)
        }
    };
    for other in dependents(resources, current) {
        let other_id = other.get("$id").and_then(Value::as_str).unwrap_or_default();
        // A dependent that was already broken (stored before a limit existed) does not
        // block the change.
        if let Err(err) = resolve(other, &after)
            && resolve(other, &find).is_ok()
        {
            return Err(invalid(format!(
                "{other_id} uses {changed_id} and would no longer resolve after this change: {err}"
            )));
        }
    }
    Ok(())
}

/// Checks that `next` only adds to `previous` (spec §5.3 evolution rule): no field removed
/// or retyped, no constraint tightened, no new required field.
///
/// # Errors
/// Every breaking change found, each naming the field.
pub fn check_additive(previous: &Value, next: &Value) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    compare_node(previous, next, "", &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn compare_node(previous: &Value, next: &Value, path: &str, problems: &mut Vec<String>) {
    let shown = if path.is_empty() { "/" } else { path };
    let xdm = |v: &Value| {
        v.get("meta:xdmType")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if xdm(previous) != xdm(next) {
        problems.push(format!(
            "{shown} changes type from {} to {}",
            xdm(previous).unwrap_or_default(),
            xdm(next).unwrap_or_default()
        ));
        return;
    }
    let required = |v: &Value| -> Vec<String> {
        v.get("required")
            .and_then(Value::as_array)
            .map(|r| {
                r.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = required(previous);
    for name in required(next) {
        if !before.contains(&name) {
            problems.push(format!("{path}/{name} becomes required"));
        }
    }
    for keyword in ["pattern", "format"] {
        if next.get(keyword).is_some() && next.get(keyword) != previous.get(keyword) {
            problems.push(format!("{shown} changes its {keyword}"));
        }
    }
    if let Some(Value::Array(allowed)) = next.get("enum") {
        let widened = previous
            .get("enum")
            .and_then(Value::as_array)
            .is_some_and(|old| old.iter().all(|v| allowed.contains(v)));
        if !widened {
            problems.push(format!("{shown} restricts its enum"));
        }
    }
    for (keyword, tighter_when_larger) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
    ] {
        if let Some(new) = next.get(keyword).and_then(Value::as_f64) {
            let tightened = match previous.get(keyword).and_then(Value::as_f64) {
                None => true,
                Some(old) if tighter_when_larger => new > old,
                Some(old) => new < old,
            };
            if tightened {
                problems.push(format!("{shown} tightens {keyword}"));
            }
        }
    }
    if let Some(Value::Object(old_fields)) = previous.get("properties") {
        let new_fields = next.get("properties").and_then(Value::as_object);
        for (name, old_field) in old_fields {
            let child = format!("{path}/{name}");
            match new_fields.and_then(|fields| fields.get(name)) {
                Some(new_field) => compare_node(old_field, new_field, &child, problems),
                None => problems.push(format!("{child} is removed")),
            }
        }
    }
    for keyword in ["items", "additionalProperties"] {
        if let (Some(old), Some(new)) = (previous.get(keyword), next.get(keyword))
            && old.is_object()
        {
            compare_node(old, new, &format!("{path}/{keyword}"), problems);
        }
    }
}

#[cfg(test)]
mod tests;
