use std::collections::HashMap;

use serde_json::json;

use super::*;
use crate::xdm::resolve::{resolve, strip_text};

fn tenant() -> Tenant {
    Tenant::parse("ACME@AdobeOrg", "prod").unwrap()
}

fn actor() -> Actor {
    Actor {
        client_id: "client".into(),
        user: "client@AdobeID".into(),
    }
}

/// An in-memory registry: built-ins plus what the test created.
#[derive(Default)]
struct Registry {
    stored: HashMap<String, Doc>,
}

impl Registry {
    fn lookup(&self, id: &str) -> Option<Doc> {
        builtin(id).cloned().or_else(|| {
            self.stored
                .values()
                .find(|doc| doc["$id"] == id || doc["meta:altId"] == id)
                .cloned()
        })
    }

    fn create(&mut self, kind: ResourceKind, hex: &str, body: Value) -> Result<Doc, String> {
        let tenant = tenant();
        let actor = actor();
        let ctx = RegistryContext {
            tenant: &tenant,
            tenant_id: "acme",
            actor: &actor,
            now: 7,
        };
        let doc = new_resource(kind, body, hex, &ctx, &|id| self.lookup(id))
            .map_err(|e| e.to_string())?;
        self.stored
            .insert(doc["$id"].as_str().unwrap().to_owned(), doc.clone());
        Ok(doc)
    }

    fn full(&self, doc: &Doc) -> Value {
        resolve(doc, &|id| self.lookup(id)).unwrap().full
    }
}

fn loyalty_field_group() -> Value {
    json!({
        "title": "Loyalty", "type": "object",
        "meta:intendedToExtend": ["https://ns.adobe.com/xdm/context/profile"],
        "definitions": {"loyalty": {"properties": {"_acme": {"type": "object", "properties": {
            "memberId": {"type": "string", "pattern": "^M-[0-9]{6}$"},
            "points": {"type": "integer", "minimum": 0, "meta:xdmType": "int"},
            "joined": {"type": "string", "format": "date"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "attrs": {"type": "object", "additionalProperties": {"type": "string"}}}}}}},
        "allOf": [{"$ref": "#/definitions/loyalty"}]
    })
}

#[test]
fn field_group_and_schema_resolve_into_the_full_form() {
    let mut registry = Registry::default();
    let group = registry
        .create(ResourceKind::FieldGroup, "aa11", loyalty_field_group())
        .unwrap();
    assert_eq!(group["$id"], "https://ns.adobe.com/acme/mixins/aa11");
    assert_eq!(group["meta:altId"], "_acme.mixins.aa11");
    assert_eq!(group["version"], "1.0");
    assert_eq!(group["meta:tenantNamespace"], "_acme");
    let fields = &group["definitions"]["loyalty"]["properties"]["_acme"]["properties"];
    assert_eq!(fields["joined"]["meta:xdmType"], "date");
    assert_eq!(fields["attrs"]["meta:xdmType"], "map");
    assert_eq!(fields["points"]["meta:xdmType"], "int");

    let schema = registry
        .create(
            ResourceKind::Schema,
            "bb22",
            json!({"title": "Members", "type": "object", "allOf": [
                {"$ref": "https://ns.adobe.com/xdm/context/profile"},
                {"$ref": group["$id"], "type": "object", "meta:xdmType": "object"},
                {"$ref": "https://ns.adobe.com/xdm/context/profile-person-details"}]}),
        )
        .unwrap();
    assert_eq!(
        schema["meta:class"],
        "https://ns.adobe.com/xdm/context/profile"
    );
    assert_eq!(
        schema["meta:extends"],
        json!([
            "https://ns.adobe.com/xdm/context/profile",
            "https://ns.adobe.com/xdm/data/record",
            "https://ns.adobe.com/acme/mixins/aa11",
            "https://ns.adobe.com/xdm/context/profile-person-details"
        ])
    );
    let full = registry.full(&schema);
    assert_eq!(
        full["properties"]["_acme"]["properties"]["memberId"]["pattern"],
        "^M-[0-9]{6}$"
    );
    assert_eq!(full["properties"]["identityMap"]["meta:xdmType"], "map");
    assert_eq!(
        full["properties"]["person"]["properties"]["name"]["properties"]["firstName"]["meta:xdmType"],
        "string"
    );
    assert!(full.get("allOf").is_none());
    let mut notext = full.clone();
    strip_text(&mut notext);
    assert!(notext.get("title").is_none());
    assert!(notext["properties"]["person"].get("title").is_none());
}

#[test]
fn experience_event_schemas_require_id_and_timestamp() {
    let mut registry = Registry::default();
    let schema = registry
        .create(
            ResourceKind::Schema,
            "cc33",
            json!({"title": "Events", "type": "object", "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/context/experienceevent"},
            {"$ref": "https://ns.adobe.com/xdm/context/experienceevent-commerce"}]}),
        )
        .unwrap();
    let full = registry.full(&schema);
    assert_eq!(full["required"], json!(["_id", "timestamp"]));
    assert_eq!(full["properties"]["timestamp"]["meta:xdmType"], "date-time");
    assert_eq!(
        full["properties"]["commerce"]["properties"]["order"]["properties"]["currencyCode"]["pattern"],
        "^[A-Z]{3}$"
    );
}

#[test]
fn adhoc_classes_get_a_dataset_namespace_that_schemas_inherit() {
    let mut registry = Registry::default();
    let class = registry
        .create(ResourceKind::Class, "0123456789abcdef0123456789abcdef", json!({"title": "CSV rows", "type": "object", "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/data/adhoc"},
            {"properties": {"_adhoc": {"type": "object", "properties": {"loyaltyId": {"type": "string"}, "points": {"type": "integer"}}}}}]}))
        .unwrap();
    assert_eq!(
        class["meta:datasetNamespace"],
        "_0123456789abcdef0123456789abcdef"
    );
    assert!(
        class["allOf"][1]["properties"]
            .get("_0123456789abcdef0123456789abcdef")
            .is_some()
    );
    let schema = registry
        .create(
            ResourceKind::Schema,
            "dd44",
            json!({"title": "CSV schema", "type": "object", "allOf": [{"$ref": class["$id"]}]}),
        )
        .unwrap();
    assert_eq!(
        schema["meta:datasetNamespace"],
        "_0123456789abcdef0123456789abcdef"
    );
    let full = registry.full(&schema);
    assert_eq!(
        full["properties"]["_0123456789abcdef0123456789abcdef"]["properties"]["points"]["meta:xdmType"],
        "long"
    );
}

#[test]
fn bad_bodies_are_refused_with_a_reason() {
    let mut registry = Registry::default();
    let cases = [
        (
            ResourceKind::Schema,
            json!({"type": "object", "allOf": []}),
            "title is required: a non-empty string",
        ),
        (
            ResourceKind::Schema,
            json!({"title": "x", "type": "array", "allOf": []}),
            "type is \"array\"; a schema must have type \"object\"",
        ),
        (
            // No type is "object" (AEP and aepp's createProfileSchema); allOf is still checked.
            ResourceKind::Schema,
            json!({"title": "x", "allOf": []}),
            "allOf must reference exactly one class",
        ),
        (
            ResourceKind::Schema,
            json!({"title": "x", "type": "object"}),
            "allOf is required",
        ),
        (
            ResourceKind::Schema,
            json!({"title": "x", "type": "object", "allOf": [{"$ref": "https://ns.adobe.com/acme/mixins/nope"}]}),
            "allOf $ref \"https://ns.adobe.com/acme/mixins/nope\" does not name a class or field group in this sandbox",
        ),
        (
            ResourceKind::Schema,
            json!({"title": "x", "type": "object", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile-person-details"}]}),
            "allOf must reference exactly one class",
        ),
        (
            ResourceKind::Schema,
            json!({"title": "x", "type": "object", "allOf": [{"$ref": "https://ns.adobe.com/xdm/context/profile"}, {"$ref": "https://ns.adobe.com/xdm/context/experienceevent"}]}),
            "a schema has exactly one class",
        ),
        (
            ResourceKind::FieldGroup,
            json!({"title": "x", "type": "object", "properties": {"loose": {"type": "string"}}}),
            "#/properties/loose: custom fields must be nested under the tenant namespace object \"_acme\"",
        ),
        (
            ResourceKind::FieldGroup,
            json!({"title": "x", "type": "object", "properties": {"_acme": {"type": "object", "properties": {"bad name": {"type": "string"}}}}}),
            "#/properties/_acme/properties/bad name: field names may only hold letters, digits, '-' and '_'",
        ),
        (
            ResourceKind::FieldGroup,
            json!({"title": "x", "type": "object", "properties": {"_acme": {"type": "object", "properties": {"n": {"type": "decimal"}}}}}),
            "#/properties/_acme/properties/n: type \"decimal\" is not one of",
        ),
        (
            ResourceKind::FieldGroup,
            json!({"title": "x", "type": "object", "properties": {"_acme": {"type": "object", "properties": {"n": {"$ref": "https://ns.adobe.com/acme/datatypes/none"}}}}}),
            "#/properties/_acme/properties/n: $ref \"https://ns.adobe.com/acme/datatypes/none\" does not name a resource",
        ),
        (
            ResourceKind::DataType,
            json!({"title": "x", "type": "object"}),
            "a data type needs properties",
        ),
        (
            ResourceKind::Class,
            json!({"title": "x", "type": "object", "allOf": []}),
            "a class must reference exactly one behavior",
        ),
    ];
    for (kind, body, expected) in cases {
        let err = registry.create(kind, "ee55", body.clone()).unwrap_err();
        assert!(err.starts_with(expected), "{body}: {err}");
    }
}

#[test]
fn data_type_cycles_are_detected() {
    let mut registry = Registry::default();
    registry
        .create(ResourceKind::DataType, "a1", json!({"title": "A", "type": "object", "properties": {"b": {"$ref": "https://ns.adobe.com/acme/datatypes/b2"}}}))
        .unwrap_err();
    // Create B first, then A referencing B, then make B reference A through PUT.
    let b = registry
        .create(
            ResourceKind::DataType,
            "b2",
            json!({"title": "B", "type": "object", "properties": {"x": {"type": "string"}}}),
        )
        .unwrap();
    registry
        .create(
            ResourceKind::DataType,
            "a1",
            json!({"title": "A", "type": "object", "properties": {"b": {"$ref": b["$id"]}}}),
        )
        .unwrap();
    let tenant = tenant();
    let actor = actor();
    let ctx = RegistryContext {
        tenant: &tenant,
        tenant_id: "acme",
        actor: &actor,
        now: 8,
    };
    let err = replace_resource(&b, json!({"title": "B", "type": "object", "properties": {"a": {"$ref": "https://ns.adobe.com/acme/datatypes/a1"}}}), &ctx, &|id| registry.lookup(id))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("$ref cycle: https://ns.adobe.com/acme/datatypes/b2 -> "),
        "{err}"
    );
}

#[test]
fn replace_and_patch_keep_identity_and_bump_the_minor_version() {
    let mut registry = Registry::default();
    let group = registry
        .create(ResourceKind::FieldGroup, "aa11", loyalty_field_group())
        .unwrap();
    let tenant = tenant();
    let actor = actor();
    let ctx = RegistryContext {
        tenant: &tenant,
        tenant_id: "acme",
        actor: &actor,
        now: 9,
    };
    let patched = patch_resource(
        &group,
        json!([{"op": "replace", "path": "/title", "value": "Loyalty v2"}]),
        &ctx,
        &|id| registry.lookup(id),
    )
    .unwrap();
    assert_eq!(
        (patched["title"].as_str(), patched["version"].as_str()),
        (Some("Loyalty v2"), Some("1.1"))
    );
    assert_eq!(patched["$id"], group["$id"]);
    assert_eq!(patched["meta:registryMetadata"]["repo:createdDate"], 7);
    assert_eq!(patched["meta:registryMetadata"]["repo:lastModifiedDate"], 9);
    let err =
        patch_resource(&group, json!({"op": "x"}), &ctx, &|id| registry.lookup(id)).unwrap_err();
    assert!(matches!(err, RegistryError::Patch(_)));
}

#[test]
fn evolution_only_adds() {
    let before = json!({"type": "object", "meta:xdmType": "object", "required": ["a"], "properties": {
        "a": {"type": "string", "meta:xdmType": "string"},
        "n": {"type": "integer", "meta:xdmType": "int", "minimum": 0, "maximum": 10},
        "e": {"type": "string", "meta:xdmType": "string", "enum": ["x", "y"]}}});
    let mut added = before.clone();
    added["properties"]["new"] = json!({"type": "string", "meta:xdmType": "string"});
    added["properties"]["n"]["maximum"] = json!(20);
    added["properties"]["e"]["enum"] = json!(["x", "y", "z"]);
    assert_eq!(check_additive(&before, &added), Ok(()));
    let mut breaking = before.clone();
    breaking["properties"].as_object_mut().unwrap().remove("a");
    breaking["properties"]["n"]["meta:xdmType"] = json!("long");
    breaking["properties"]["e"]["enum"] = json!(["x"]);
    breaking["required"] = json!(["e"]);
    breaking["properties"]["new"] =
        json!({"type": "string", "meta:xdmType": "string", "maxLength": 3});
    assert_eq!(
        check_additive(&before, &breaking).unwrap_err(),
        vec![
            "/e becomes required",
            "/a is removed",
            "/n changes type from int to long",
            "/e restricts its enum"
        ]
    );
}

#[test]
fn builtins_cover_the_required_global_resources() {
    for id in [
        "https://ns.adobe.com/xdm/data/record",
        "https://ns.adobe.com/xdm/data/time-series",
        "https://ns.adobe.com/xdm/data/adhoc",
        "https://ns.adobe.com/xdm/context/profile",
        "https://ns.adobe.com/xdm/context/experienceevent",
        "_xdm.context.profile",
    ] {
        assert!(builtin(id).is_some(), "{id}");
    }
    for doc in builtins() {
        assert!(kind_of(doc).is_some(), "{}", doc["$id"]);
        let registry = Registry::default();
        resolve(doc, &|id| registry.lookup(id)).unwrap();
    }
}

#[test]
fn dependents_are_found_transitively_from_the_refs_they_hold() {
    let mut registry = Registry::default();
    let leaf = json!({"title": "Leaf", "type": "object", "properties": {"v": {"type": "string"}}});
    let a = registry
        .create(ResourceKind::DataType, "a1", leaf.clone())
        .unwrap();
    let mut unrelated = leaf.clone();
    unrelated["title"] = json!("Unrelated");
    registry
        .create(ResourceKind::DataType, "u1", unrelated)
        .unwrap();
    // B refers to A by meta:altId, in an array's items; C refers to B through a definition.
    registry
        .create(
            ResourceKind::DataType,
            "b1",
            json!({"title": "B", "type": "object",
            "properties": {"list": {"type": "array", "items": {"$ref": a["meta:altId"]}}}}),
        )
        .unwrap();
    registry
        .create(ResourceKind::DataType, "c1", json!({"title": "C", "type": "object",
            "definitions": {"d": {"properties": {"b": {"$ref": "https://ns.adobe.com/acme/datatypes/b1"}}}},
            "allOf": [{"$ref": "#/definitions/d"}]}))
        .unwrap();
    let resources: Vec<Doc> = registry.stored.values().cloned().collect();
    let mut found: Vec<&str> = dependents(&resources, &a)
        .iter()
        .map(|doc| doc["title"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    assert_eq!(found, ["B", "C"]);
    let c = &registry.stored["https://ns.adobe.com/acme/datatypes/c1"];
    assert!(dependents(&resources, c).is_empty());
}
