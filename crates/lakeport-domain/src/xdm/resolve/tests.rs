//! Property tests of the resolver on random resource graphs (issue 11): whatever the graph —
//! cycles through resources or definitions, deep chains, fan-out — resolution answers `Ok`
//! or a typed error, never panics or overflows, reads each resource at most once, and an
//! `Ok` result stays within the nesting and size limits.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::*;

/// What one generated reference points at.
#[derive(Debug, Clone)]
enum Target {
    /// Another resource (maybe itself), by `$id` or by `meta:altId`.
    Resource { index: usize, by_alt_id: bool },
    /// One of the owner's two definitions.
    Definition(usize),
}

/// One generated field.
#[derive(Debug, Clone)]
enum FieldSpec {
    Leaf,
    Ref(Target),
    /// An inline object holding these fields.
    Object(Vec<FieldSpec>),
    /// An array whose items are this field.
    Array(Box<FieldSpec>),
}

/// One block: `allOf` references and fields.
#[derive(Debug, Clone)]
struct BlockSpec {
    includes: Vec<Target>,
    fields: Vec<FieldSpec>,
}

/// One resource: its own block and two definitions.
#[derive(Debug, Clone)]
struct ResourceSpec {
    own: BlockSpec,
    definitions: [BlockSpec; 2],
}

fn id(index: usize) -> String {
    format!("https://ns.adobe.com/acme/datatypes/r{index}")
}

fn alt_id(index: usize) -> String {
    format!("_acme.datatypes.r{index}")
}

fn reference(target: &Target) -> String {
    match target {
        Target::Resource { index, by_alt_id } if *by_alt_id => alt_id(*index),
        Target::Resource { index, .. } => id(*index),
        Target::Definition(slot) => format!("#/definitions/d{slot}"),
    }
}

fn field_json(field: &FieldSpec) -> Value {
    match field {
        FieldSpec::Leaf => json!({"type": "string"}),
        FieldSpec::Ref(target) => json!({"$ref": reference(target)}),
        FieldSpec::Object(fields) => json!({"type": "object", "properties": fields_json(fields)}),
        FieldSpec::Array(items) => json!({"type": "array", "items": field_json(items)}),
    }
}

fn fields_json(fields: &[FieldSpec]) -> Value {
    let map: Map<String, Value> = fields
        .iter()
        .enumerate()
        .map(|(position, field)| (format!("f{position}"), field_json(field)))
        .collect();
    Value::Object(map)
}

fn block_json(block: &BlockSpec) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("type".into(), json!("object"));
    if !block.includes.is_empty() {
        let items: Vec<Value> = block
            .includes
            .iter()
            .map(|target| json!({"$ref": reference(target)}))
            .collect();
        out.insert("allOf".into(), Value::Array(items));
    }
    out.insert("properties".into(), fields_json(&block.fields));
    out
}

fn resource_json(index: usize, spec: &ResourceSpec) -> Doc {
    let mut doc = block_json(&spec.own);
    doc.insert("$id".into(), json!(id(index)));
    doc.insert("meta:altId".into(), json!(alt_id(index)));
    doc.insert("title".into(), json!(format!("r{index}")));
    let definitions: Map<String, Value> = spec
        .definitions
        .iter()
        .enumerate()
        .map(|(slot, block)| (format!("d{slot}"), Value::Object(block_json(block))))
        .collect();
    doc.insert("definitions".into(), Value::Object(definitions));
    doc
}

/// A node of the reference graph: a resource, or a definition of one.
type Node = (usize, Option<usize>);

fn field_targets<'a>(field: &'a FieldSpec, out: &mut Vec<&'a Target>) {
    match field {
        FieldSpec::Leaf => {}
        FieldSpec::Ref(target) => out.push(target),
        FieldSpec::Object(fields) => fields.iter().for_each(|f| field_targets(f, out)),
        FieldSpec::Array(items) => field_targets(items, out),
    }
}

fn edges(resources: &[ResourceSpec], (index, slot): Node) -> Vec<Node> {
    let resource = &resources[index];
    let block = match slot {
        None => &resource.own,
        Some(slot) => &resource.definitions[slot],
    };
    let mut targets: Vec<&Target> = block.includes.iter().collect();
    block
        .fields
        .iter()
        .for_each(|f| field_targets(f, &mut targets));
    targets
        .into_iter()
        .map(|target| match target {
            Target::Resource { index, .. } => (*index, None),
            Target::Definition(slot) => (index, Some(*slot)),
        })
        .collect()
}

/// Whether a reference cycle is reachable from `root` (an independent depth-first search).
fn reaches_cycle(resources: &[ResourceSpec], root: Node) -> bool {
    fn visit(
        resources: &[ResourceSpec],
        node: Node,
        on_path: &mut HashSet<Node>,
        done: &mut HashSet<Node>,
    ) -> bool {
        if on_path.contains(&node) {
            return true;
        }
        if !done.insert(node) {
            return false;
        }
        on_path.insert(node);
        let found = edges(resources, node)
            .into_iter()
            .any(|next| visit(resources, next, on_path, done));
        on_path.remove(&node);
        found
    }
    visit(resources, root, &mut HashSet::new(), &mut HashSet::new())
}

/// Counts the fields of a resolved tree and its depth (top-level fields at 1).
fn measure(properties: &Map<String, Value>, depth: usize, fields: &mut usize, deepest: &mut usize) {
    for field in properties.values() {
        measure_field(field, depth, fields, deepest);
    }
}

fn measure_field(field: &Value, depth: usize, fields: &mut usize, deepest: &mut usize) {
    *fields += 1;
    *deepest = (*deepest).max(depth);
    if let Some(Value::Object(children)) = field.get("properties") {
        measure(children, depth + 1, fields, deepest);
    }
    if let Some(items @ Value::Object(_)) = field.get("items") {
        measure_field(items, depth + 1, fields, deepest);
    }
}

fn target(resources: usize) -> impl Strategy<Value = Target> {
    prop_oneof![
        (0..resources, any::<bool>())
            .prop_map(|(index, by_alt_id)| Target::Resource { index, by_alt_id }),
        (0..2usize).prop_map(Target::Definition),
    ]
}

fn field(resources: usize) -> impl Strategy<Value = FieldSpec> {
    let leaf = prop_oneof![
        2 => Just(FieldSpec::Leaf),
        3 => target(resources).prop_map(FieldSpec::Ref),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(FieldSpec::Object),
            inner.prop_map(|items| FieldSpec::Array(Box::new(items))),
        ]
    })
}

fn block(resources: usize) -> impl Strategy<Value = BlockSpec> {
    (
        prop::collection::vec(target(resources), 0..2),
        prop::collection::vec(field(resources), 0..3),
    )
        .prop_map(|(includes, fields)| BlockSpec { includes, fields })
}

fn graph() -> impl Strategy<Value = Vec<ResourceSpec>> {
    (1..7usize).prop_flat_map(|count| {
        prop::collection::vec(
            (block(count), block(count), block(count)).prop_map(|(own, first, second)| {
                ResourceSpec {
                    own,
                    definitions: [first, second],
                }
            }),
            count,
        )
    })
}

/// Resolves the `roots` of the graph and checks the properties of each answer.
fn check_graph(resources: &[ResourceSpec], roots: &[usize]) -> Result<(), TestCaseError> {
    let docs: HashMap<String, Doc> = resources
        .iter()
        .enumerate()
        .flat_map(|(index, spec)| {
            let doc = resource_json(index, spec);
            [(id(index), doc.clone()), (alt_id(index), doc)]
        })
        .collect();
    for &index in roots {
        let lookups = Cell::new(0usize);
        let lookup = |reference: &str| {
            lookups.set(lookups.get() + 1);
            docs.get(reference).cloned()
        };
        let result = resolve(&docs[&id(index)], &lookup);
        // Each resource is read at most once per spelling of its reference (plus the
        // class look-up of a schema, absent here): memoisation, not exponential work.
        prop_assert!(
            lookups.get() <= 2 * resources.len(),
            "{} look-ups for {} resources",
            lookups.get(),
            resources.len()
        );
        let cyclic = reaches_cycle(resources, (index, None));
        match result {
            Ok(resolved) => {
                prop_assert!(!cyclic, "a cyclic graph resolved");
                let (mut fields, mut deepest) = (0, 0);
                let properties = resolved.full["properties"].as_object().unwrap();
                measure(properties, 1, &mut fields, &mut deepest);
                prop_assert!(deepest <= MAX_FIELD_DEPTH, "depth {deepest}");
                prop_assert!(fields <= MAX_RESOLVED_FIELDS, "{fields} fields");
            }
            Err(ResolveError::Cycle { cycle }) => {
                prop_assert!(cyclic, "cycle reported on an acyclic graph: {cycle:?}");
                prop_assert_eq!(cycle.first(), cycle.last());
            }
            Err(
                ResolveError::TooDeep { .. }
                | ResolveError::TooLarge { .. }
                | ResolveError::TooManyReferences { .. },
            ) => {}
            Err(other) => prop_assert!(false, "unexpected error: {other}"),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_resolve_or_fail_with_a_typed_error(resources in graph()) {
        let roots: Vec<usize> = (0..resources.len()).collect();
        check_graph(&resources, &roots)?;
    }
}

proptest! {
    // Each case resolves up to the 10,000-field limit in a debug build: few cases.
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Chains up to 80 long where each link refers `width` times to the previous one
    /// (exponential when resolved naively), optionally closed into a cycle.
    #[test]
    fn deep_and_wide_chains_stay_bounded(
        length in 1..80usize,
        width in 1..4usize,
        back_edge in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut resources: Vec<ResourceSpec> = (0..length)
            .map(|index| {
                let fields = if index == 0 {
                    vec![FieldSpec::Leaf]
                } else {
                    vec![FieldSpec::Ref(Target::Resource { index: index - 1, by_alt_id: false }); width]
                };
                let empty = BlockSpec { includes: Vec::new(), fields: Vec::new() };
                ResourceSpec {
                    own: BlockSpec { includes: Vec::new(), fields },
                    definitions: [empty.clone(), empty],
                }
            })
            .collect();
        if let Some(to) = back_edge {
            resources[0].own.fields.push(FieldSpec::Ref(Target::Resource {
                index: to.index(length),
                by_alt_id: true,
            }));
        }
        check_graph(&resources, &[0, length / 2, length - 1])?;
    }
}

#[test]
fn a_self_including_definition_is_a_cycle_naming_it() {
    let doc: Doc = serde_json::from_value(json!({
        "$id": "https://ns.adobe.com/acme/datatypes/loop", "title": "loop", "type": "object",
        "definitions": {"a": {"allOf": [{"$ref": "#/definitions/a"}]}},
        "allOf": [{"$ref": "#/definitions/a"}]
    }))
    .unwrap();
    let err = resolve(&doc, &|_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "$ref cycle: https://ns.adobe.com/acme/datatypes/loop#/definitions/a -> https://ns.adobe.com/acme/datatypes/loop#/definitions/a"
    );
}

/// The deepest schema resolution allows is one the validator compiles: the two limits agree.
#[test]
fn a_chain_at_the_nesting_limit_resolves_and_compiles() {
    let chain = |links: usize| -> HashMap<String, Doc> {
        (0..links)
            .map(|index| {
                let properties = if index == 0 {
                    json!({"leaf": {"type": "string"}})
                } else {
                    json!({"next": {"$ref": id(index - 1)}})
                };
                let doc: Doc = serde_json::from_value(
                    json!({"$id": id(index), "title": "link", "type": "object", "properties": properties}),
                )
                .unwrap();
                (id(index), doc)
            })
            .collect()
    };
    let docs = chain(MAX_FIELD_DEPTH);
    let top = &docs[&id(MAX_FIELD_DEPTH - 1)];
    let resolved = resolve(top, &|reference| docs.get(reference).cloned()).unwrap();
    crate::xdm::validate::Validator::compile(&resolved.full).unwrap();

    let docs = chain(MAX_FIELD_DEPTH + 1);
    let top = &docs[&id(MAX_FIELD_DEPTH)];
    let err = resolve(top, &|reference| docs.get(reference).cloned()).unwrap_err();
    assert!(
        matches!(
            err,
            ResolveError::TooDeep {
                limit: MAX_FIELD_DEPTH,
                ..
            }
        ),
        "{err}"
    );
}
