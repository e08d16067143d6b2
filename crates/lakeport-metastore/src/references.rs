//! The part of a tenant's Schema Registry that one request reads: the resources a document
//! refers to (transitively), and the resources that refer to a changed one. Loaded by id and
//! by an indexed text search, so a request costs what it touches, not the size of the
//! registry (a soak with 2,000 field groups loaded all of them on every write and promotion).

use std::collections::{HashMap, HashSet};

use lakeport_domain::Doc;
use lakeport_domain::ids::ResourceId;
use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::{builtin, external_refs, external_refs_in};
use serde_json::Value;

use crate::{Metastore, MetastoreError};

/// Most registry resources one request may read. A schema that needs more is refused; AEP
/// publishes no such limit, and no real schema comes near it (the resolver's own limits,
/// 10,000 fields and 64 nested references, are reached first in practice).
pub const MAX_RESOURCES_READ: usize = 2_000;

/// Why a neighbourhood could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum NeighbourhoodError {
    #[error(transparent)]
    Metastore(#[from] MetastoreError),
    #[error(
        "this change reads more than {MAX_RESOURCES_READ} registry resources (what it refers to and what refers to it); split it into smaller schemas"
    )]
    TooLarge,
}

/// Registry resources loaded for one request, found by `$id` or `meta:altId`.
#[derive(Debug, Default)]
pub struct Neighbourhood {
    docs: Vec<Doc>,
    names: HashMap<String, usize>,
}

impl Neighbourhood {
    /// The loaded resources (tenant resources and the built-ins they use), in load order.
    pub fn docs(&self) -> &[Doc] {
        &self.docs
    }

    /// The resource named `reference` (its `$id` or `meta:altId`), if loaded.
    pub fn find(&self, reference: &str) -> Option<Doc> {
        self.names
            .get(reference)
            .map(|&index| self.docs[index].clone())
    }

    fn contains(&self, reference: &str) -> bool {
        self.names.contains_key(reference)
    }

    fn add(&mut self, reference: &str, doc: Doc) -> Result<bool, NeighbourhoodError> {
        let id = doc.get("$id").and_then(Value::as_str).map(str::to_owned);
        if let Some(&index) = id.as_deref().and_then(|id| self.names.get(id)) {
            // Reached under another name (its altId): remember that name too.
            self.names.insert(reference.to_owned(), index);
            return Ok(false);
        }
        if self.docs.len() >= MAX_RESOURCES_READ {
            return Err(NeighbourhoodError::TooLarge);
        }
        let index = self.docs.len();
        for name in [Some(reference.to_owned()), id, alt_id(&doc)]
            .into_iter()
            .flatten()
        {
            self.names.insert(name, index);
        }
        self.docs.push(doc);
        Ok(true)
    }
}

fn alt_id(doc: &Doc) -> Option<String> {
    doc.get("meta:altId")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// Loads what `refs` name, transitively (every `$ref` inside what was loaded). Take the
/// references of a stored resource with [`external_refs`] and those of a request body or
/// JSON Patch with [`external_refs_in`]. A reference to nothing is left out; resolution
/// reports it.
///
/// # Errors
/// A metastore failure, or [`NeighbourhoodError::TooLarge`].
pub async fn referenced(
    store: &dyn Metastore,
    tenant: &Tenant,
    refs: Vec<String>,
) -> Result<Neighbourhood, NeighbourhoodError> {
    let mut loaded = Neighbourhood::default();
    load_closure(store, tenant, &mut loaded, refs).await?;
    Ok(loaded)
}

/// The references of a request body or JSON Patch, owned.
pub fn refs_in(value: &Value) -> Vec<String> {
    external_refs_in(value)
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// The references of a stored resource, owned.
pub fn refs_of(doc: &Doc) -> Vec<String> {
    external_refs(doc).into_iter().map(str::to_owned).collect()
}

/// Loads the resources whose resolution reads `changed` (those that `$ref` it, directly or
/// through others), everything those and `refs` name, and `changed` itself. The
/// domain's dependency checks see the same answer over this as over the whole registry.
///
/// # Errors
/// A metastore failure, or [`NeighbourhoodError::TooLarge`].
pub async fn around(
    store: &dyn Metastore,
    tenant: &Tenant,
    changed: &Doc,
    refs: Vec<String>,
) -> Result<Neighbourhood, NeighbourhoodError> {
    let mut loaded = Neighbourhood::default();
    let changed_id = changed
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    loaded.add(changed_id, changed.clone())?;
    // Referrers, breadth first: a text search finds candidates, their `$ref`s decide.
    let mut searched: HashSet<String> = HashSet::new();
    let mut targets: Vec<Doc> = vec![changed.clone()];
    while let Some(target) = targets.pop() {
        let names: Vec<String> = [
            target.get("$id").and_then(Value::as_str).map(str::to_owned),
            alt_id(&target),
        ]
        .into_iter()
        .flatten()
        .collect();
        for name in &names {
            if !searched.insert(name.clone()) {
                continue;
            }
            for candidate in store.resources_containing(tenant, name).await? {
                let refers = external_refs(&candidate)
                    .iter()
                    .any(|reference| names.iter().any(|n| n == reference));
                let id = candidate
                    .get("$id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if refers && !loaded.contains(&id) && loaded.add(&id, candidate.clone())? {
                    targets.push(candidate);
                }
            }
        }
    }
    let mut pending = refs;
    for doc in &loaded.docs {
        pending.extend(external_refs(doc).into_iter().map(str::to_owned));
    }
    load_closure(store, tenant, &mut loaded, pending).await?;
    Ok(loaded)
}

async fn load_closure(
    store: &dyn Metastore,
    tenant: &Tenant,
    loaded: &mut Neighbourhood,
    mut pending: Vec<String>,
) -> Result<(), NeighbourhoodError> {
    let mut missing: HashSet<String> = HashSet::new();
    while let Some(reference) = pending.pop() {
        if loaded.contains(&reference) || missing.contains(&reference) {
            continue;
        }
        let found = match builtin(&reference) {
            Some(doc) => Some(doc.clone()),
            None => {
                store
                    .get_resource(tenant, &ResourceId::from(&reference))
                    .await?
            }
        };
        let Some(doc) = found else {
            missing.insert(reference);
            continue;
        };
        let refs = refs_of(&doc);
        if loaded.add(&reference, doc)? {
            pending.extend(refs);
        }
    }
    Ok(())
}
