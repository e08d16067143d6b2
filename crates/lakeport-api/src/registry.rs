//! The Schema Registry subset (`/data/foundation/schemaregistry`, spec §5): schemas,
//! classes, field groups (and the `/mixins` alias), data types and behaviors in the
//! `tenant` and read-only `global` containers, with Adobe's Accept-header rules.

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakeport_domain::ids::ResourceId;
use lakeport_domain::query::{Filter, ListQuery, ObjectKind, PageLimits, Value as QueryValue};
use lakeport_domain::xdm::registry::{
    self, RegistryContext, RegistryError, ResourceKind, builtin, builtins, check_additive, kind_of,
};
use lakeport_domain::xdm::resolve::{resolve, strip_text};
use lakeport_domain::{Doc, now_millis};
use rand::RngCore;
use serde_json::{Map, Value, json};

use lakeport_metastore::references::{self, Neighbourhood, NeighbourhoodError};

use crate::AppState;
use crate::context::{RequestContext, origin};
use crate::error::{ApiError, Service};
use crate::extract;

const SERVICE: Service = Service::Registry;

/// Most results one registry list call returns (spec §1.8).
const MAX_RESULTS: usize = 300;

/// Returns the registry routes, relative to `/data/foundation/schemaregistry`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/stats", get(stats))
        .route(
            "/{container}/{kind}",
            get(list_resources).post(create_resource),
        )
        .route(
            "/{container}/{kind}/{id}",
            get(get_resource)
                .put(replace_resource)
                .patch(patch_resource)
                .delete(delete_resource),
        )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    Global,
    Tenant,
}

fn container(segment: &str) -> Result<Container, ApiError> {
    match segment {
        "global" => Ok(Container::Global),
        "tenant" => Ok(Container::Tenant),
        other => Err(ApiError::not_found(
            SERVICE,
            format!("container {other:?} does not exist; use global or tenant"),
        )),
    }
}

fn kind(segment: &str) -> Result<ResourceKind, ApiError> {
    ResourceKind::from_path(segment).ok_or_else(|| {
        ApiError::not_found(
            SERVICE,
            format!(
                "{segment:?} is not a supported registry resource; use schemas, classes, fieldgroups (mixins), datatypes or behaviors"
            ),
        )
    })
}

fn writable(container: Container) -> Result<(), ApiError> {
    match container {
        Container::Tenant => Ok(()),
        Container::Global => Err(ApiError::read_only_container(
            "the global container holds Adobe's built-in resources and is read-only; write to /tenant",
        )),
    }
}

fn registry_error(err: RegistryError) -> ApiError {
    ApiError::invalid_body(SERVICE, err.to_string())
}

fn metastore_error(err: lakeport_metastore::MetastoreError) -> ApiError {
    ApiError::from_metastore(SERVICE, err)
}

/// The representation an Accept header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Representation {
    /// `xed-id`: summaries in lists.
    Summary,
    /// `xed`: the stored document (`allOf`/`$ref` kept).
    Raw { text: bool },
    /// `xed-full`, `xed-full-desc`, `xed-deprecatefield`: references resolved.
    Full { text: bool },
}

/// Parses `application/vnd.adobe.xed[-variant]+json[; version=1]`; `xdm` is accepted as a
/// synonym of `xed` (the most used Python client sends it).
fn parse_accept(headers: &HeaderMap) -> Option<(String, Option<String>)> {
    let accept = headers.get("accept")?.to_str().ok()?;
    let mut parts = accept.split(';');
    let media_type = parts.next()?.trim().to_ascii_lowercase();
    let variant = media_type
        .strip_prefix("application/vnd.adobe.xed")
        .or_else(|| media_type.strip_prefix("application/vnd.adobe.xdm"))?
        .strip_suffix("+json")?
        .to_owned();
    let version = parts.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("version"))
            .then(|| value.trim().trim_matches('"').to_owned())
    });
    Some((variant, version))
}

fn list_representation(headers: &HeaderMap) -> Result<Representation, ApiError> {
    match parse_accept(headers)
        .as_ref()
        .map(|(variant, _)| variant.as_str())
    {
        Some("-id") => Ok(Representation::Summary),
        Some("") => Ok(Representation::Raw { text: true }),
        _ => Err(ApiError::invalid_accept(
            "a list call needs Accept: application/vnd.adobe.xed-id+json (summaries) or application/vnd.adobe.xed+json (full resources)",
        )),
    }
}

fn lookup_representation(headers: &HeaderMap) -> Result<Representation, ApiError> {
    let not_acceptable = |detail: String| ApiError::not_acceptable(detail);
    let Some((variant, version)) = parse_accept(headers) else {
        return Err(not_acceptable(
            "a lookup needs Accept: application/vnd.adobe.xed[-full|-notext|-full-notext]+json; version=1".to_owned(),
        ));
    };
    match version.as_deref() {
        None => {
            return Err(ApiError::accept_version_missing(
                "a lookup's Accept header must carry the major version, e.g. application/vnd.adobe.xed-full+json; version=1",
            ));
        }
        // The major version, alone or with a minor (aepp's getBehavior sends `version=1.0`).
        Some(v)
            if v == "1"
                || v.strip_prefix("1.").is_some_and(|minor| {
                    !minor.is_empty() && minor.bytes().all(|b| b.is_ascii_digit())
                }) => {}
        Some(other) => {
            return Err(not_acceptable(format!(
                "version {other} is not available; use version=1"
            )));
        }
    }
    match variant.as_str() {
        "" => Ok(Representation::Raw { text: true }),
        "-notext" => Ok(Representation::Raw { text: false }),
        "-full" | "-full-desc" | "-deprecatefield" => Ok(Representation::Full { text: true }),
        "-full-notext" => Ok(Representation::Full { text: false }),
        other => Err(not_acceptable(format!(
            "application/vnd.adobe.xed{other}+json is not supported for lookups"
        ))),
    }
}

fn neighbourhood_error(err: NeighbourhoodError) -> ApiError {
    match err {
        NeighbourhoodError::Metastore(err) => metastore_error(err),
        too_large @ NeighbourhoodError::TooLarge => {
            ApiError::invalid_body(SERVICE, too_large.to_string())
        }
    }
}

/// The resources `refs` name, transitively (tenant resources and built-ins).
async fn referenced(
    state: &AppState,
    ctx: &RequestContext,
    refs: Vec<String>,
) -> Result<Neighbourhood, ApiError> {
    references::referenced(state.metastore(), &ctx.tenant, refs)
        .await
        .map_err(neighbourhood_error)
}

/// `changed`, what reads it, and what those and `refs` name.
async fn around(
    state: &AppState,
    ctx: &RequestContext,
    changed: &Doc,
    refs: Vec<String>,
) -> Result<Neighbourhood, ApiError> {
    references::around(state.metastore(), &ctx.tenant, changed, refs)
        .await
        .map_err(neighbourhood_error)
}

fn summary(doc: &Doc) -> Value {
    let mut out = Map::new();
    for key in ["$id", "meta:altId", "version", "title"] {
        if let Some(value) = doc.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

/// `GET /stats`.
async fn stats(State(state): State<AppState>, ctx: RequestContext) -> Result<Response, ApiError> {
    let resources = state
        .metastore()
        .list_resources(&ctx.tenant, None)
        .await
        .map_err(metastore_error)?;
    let count = |kind: ResourceKind| {
        resources
            .iter()
            .filter(|doc| kind_of(doc) == Some(kind))
            .count()
    };
    let with_type = |doc: &Doc| {
        let mut item = summary(doc);
        item["meta:resourceType"] = doc.get("meta:resourceType").cloned().unwrap_or(Value::Null);
        item
    };
    let modified = |doc: &Doc| {
        doc.get("meta:registryMetadata")
            .and_then(|m| m.get("repo:lastModifiedDate"))
            .and_then(Value::as_i64)
            .unwrap_or_default()
    };
    let recently_created: Vec<Value> = resources.iter().rev().take(5).map(with_type).collect();
    let mut by_update: Vec<&Doc> = resources.iter().collect();
    by_update.sort_by_key(|doc| std::cmp::Reverse(modified(doc)));
    let recently_updated: Vec<Value> = by_update.into_iter().take(5).map(with_type).collect();
    let mut class_usage = Map::new();
    for schema in resources
        .iter()
        .filter(|doc| kind_of(doc) == Some(ResourceKind::Schema))
    {
        if let Some(class) = schema.get("meta:class").and_then(Value::as_str) {
            let entry = class_usage
                .entry(class.to_owned())
                .or_insert_with(|| json!([]));
            if let Value::Array(items) = entry {
                items.push(summary(schema));
            }
        }
    }
    Ok(Json(json!({
        "imsOrg": ctx.tenant.org(),
        "tenantId": state.tenant_id(&ctx.tenant),
        "counts": {
            "schemas": count(ResourceKind::Schema),
            "mixins": count(ResourceKind::FieldGroup),
            "datatypes": count(ResourceKind::DataType),
            "classes": count(ResourceKind::Class),
            "unions": 0,
        },
        "recentlyCreatedResources": recently_created,
        "recentlyUpdatedResources": recently_updated,
        "classUsage": class_usage,
    }))
    .into_response())
}

/// `GET /{container}/{kind}`: `orderby`, `start`, `limit` and `property` (spec §5.2).
async fn list_resources(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((container_segment, kind_segment)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let container = container(&container_segment)?;
    let kind = kind(&kind_segment)?;
    let representation = list_representation(&headers)?;
    let params = extract::query_pairs(SERVICE, query.as_deref())?;
    let mut docs: Vec<Doc> = match container {
        Container::Global => builtins()
            .iter()
            .filter(|doc| kind_of(doc) == Some(kind))
            .cloned()
            .collect(),
        Container::Tenant => state
            .metastore()
            .list_resources(&ctx.tenant, Some(kind))
            .await
            .map_err(metastore_error)?,
    };
    let property_params: Vec<(String, String)> = params
        .iter()
        .filter(|(key, _)| key == "property")
        .cloned()
        .collect();
    let filters = ListQuery::parse(ObjectKind::Dataset, &property_params, PageLimits::default())
        .map_err(|err| ApiError::from_query(SERVICE, &err))?
        .filters;
    docs.retain(|doc| filters.iter().all(|filter| filter.matches(doc)));

    let orderby = params
        .iter()
        .find(|(key, _)| key == "orderby")
        .map(|(_, v)| v.clone());
    let mut primary = None;
    if let Some(orderby) = &orderby {
        let keys: Vec<(String, bool)> = orderby
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| match k.strip_prefix('-') {
                Some(field) => (field.to_owned(), true),
                None => (k.trim_start_matches('+').to_owned(), false),
            })
            .collect();
        docs.sort_by(|a, b| {
            for (field, descending) in &keys {
                let ordering = sort_key(a, field).cmp(&sort_key(b, field));
                let ordering = if *descending {
                    ordering.reverse()
                } else {
                    ordering
                };
                if ordering.is_ne() {
                    return ordering;
                }
            }
            std::cmp::Ordering::Equal
        });
        primary = keys.first().cloned();
    }
    if let Some((field, descending)) = &primary
        && let Some((_, start)) = params.iter().find(|(key, _)| key == "start")
    {
        docs.retain(|doc| {
            let key = sort_key(doc, field);
            if *descending {
                key.as_str() < start.as_str()
            } else {
                key.as_str() > start.as_str()
            }
        });
    }
    let limit = match params.iter().find(|(key, _)| key == "limit") {
        None => MAX_RESULTS,
        Some((_, value)) => match value.trim().parse::<usize>() {
            Ok(limit) if limit <= 500 => limit.clamp(1, MAX_RESULTS),
            _ => {
                return Err(ApiError::invalid_query(
                    SERVICE,
                    format!(
                        "query parameter \"limit\": {value:?} must be an integer from 0 to 500"
                    ),
                ));
            }
        },
    };
    let more = docs.len() > limit;
    docs.truncate(limit);
    let next = match (&primary, more, docs.last()) {
        (Some((field, _)), true, Some(last)) => Some(sort_key(last, field)),
        _ => None,
    };
    let base = format!(
        "{}/data/foundation/schemaregistry/{container_segment}/{kind_segment}",
        origin(&state, &headers)
    );
    let next_link = next.as_ref().map(|start| {
        let query = serde_urlencoded::to_string([
            ("orderby", orderby.clone().unwrap_or_default()),
            ("start", start.clone()),
            ("limit", limit.to_string()),
        ])
        .unwrap_or_default();
        json!({"href": format!("{base}?{query}")})
    });
    let results: Vec<Value> = docs
        .iter()
        .map(|doc| match representation {
            Representation::Summary => summary(doc),
            _ => Value::Object(doc.clone()),
        })
        .collect();
    let global = format!(
        "{}/data/foundation/schemaregistry/global/{kind_segment}",
        origin(&state, &headers)
    );
    Ok(Json(json!({
        "results": results,
        "_page": {"orderby": orderby, "next": next, "count": results.len()},
        "_links": {"next": next_link, format!("global_{kind_segment}"): {"href": global}},
    }))
    .into_response())
}

fn sort_key(doc: &Doc, field: &str) -> String {
    match doc.get(field) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Finds a resource of a kind in a container, by `$id` or `meta:altId`.
async fn find_resource(
    state: &AppState,
    ctx: &RequestContext,
    container: Container,
    kind: ResourceKind,
    id: &ResourceId,
) -> Result<Doc, ApiError> {
    let found = match container {
        Container::Global => builtin(id).cloned(),
        Container::Tenant => state
            .metastore()
            .get_resource(&ctx.tenant, id)
            .await
            .map_err(metastore_error)?,
    };
    match found {
        Some(doc) if kind_of(&doc) == Some(kind) => Ok(doc),
        _ => Err(ApiError::not_found(
            SERVICE,
            format!(
                "no {} with $id or meta:altId {id:?} exists in the {} container",
                kind.noun(),
                if container == Container::Global {
                    "global"
                } else {
                    "tenant"
                }
            ),
        )),
    }
}

/// `GET /{container}/{kind}/{id}`.
async fn get_resource(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((container_segment, kind_segment, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let container = container(&container_segment)?;
    let kind = kind(&kind_segment)?;
    let id = extract::resource_id(SERVICE, &id)?;
    let representation = lookup_representation(&headers)?;
    // A lookup in the tenant container also finds the global built-ins, as AEP answers
    // aepp's SchemaManager/ClassManager, which look up a schema's class and field groups
    // through the tenant container. Writes (PUT, PATCH, DELETE) stay tenant-only.
    let doc = match find_resource(&state, &ctx, container, kind, &id).await {
        Err(_) if container == Container::Tenant && builtin(&id).is_some() => {
            find_resource(&state, &ctx, Container::Global, kind, &id).await?
        }
        found => found?,
    };
    let mut body = match representation {
        Representation::Full { .. } => {
            let resources = referenced(&state, &ctx, references::refs_of(&doc)).await?;
            resolve(&doc, &|reference| resources.find(reference))
                .map_err(|err| registry_error(err.into()))?
                .full
        }
        _ => Value::Object(doc),
    };
    if matches!(
        representation,
        Representation::Full { text: false } | Representation::Raw { text: false }
    ) {
        strip_text(&mut body);
    }
    Ok(Json(body).into_response())
}

fn new_hex() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /tenant/{kind}`: 201 with the stored resource.
pub(crate) async fn create_resource(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((container_segment, kind_segment)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    writable(container(&container_segment)?)?;
    let kind = kind(&kind_segment)?;
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let resources = referenced(&state, &ctx, references::refs_in(&body)).await?;
    let tenant_id = state.tenant_id(&ctx.tenant);
    let registry_ctx = RegistryContext {
        tenant: &ctx.tenant,
        tenant_id: &tenant_id,
        actor: &ctx.actor,
        now: now_millis(),
    };
    let doc = registry::new_resource(kind, body, &new_hex(), &registry_ctx, &|reference| {
        resources.find(reference)
    })
    .map_err(registry_error)?;
    let doc = state
        .metastore()
        .insert_resource(&ctx.tenant, kind, doc)
        .await
        .map_err(metastore_error)?;
    let resource_id = doc.get("$id").and_then(Value::as_str).unwrap_or_default();
    tracing::info!(
        xdm.id = resource_id,
        xdm.kind = kind.resource_type(),
        tenant.org = ctx.tenant.org(),
        "registry resource created"
    );
    Ok((StatusCode::CREATED, Json(doc)).into_response())
}

/// The `$id` a found resource is stored under (a lookup may have used its `meta:altId`).
fn stored_id(found: &Doc, asked: &ResourceId) -> ResourceId {
    found
        .get("$id")
        .and_then(Value::as_str)
        .map_or_else(|| asked.clone(), ResourceId::from)
}

/// How a resource is being changed.
enum Change {
    Replace(Value),
    Patch(Value),
}

async fn change_resource(
    state: &AppState,
    ctx: &RequestContext,
    container_segment: &str,
    kind_segment: &str,
    id: &str,
    change: Change,
) -> Result<Response, ApiError> {
    writable(container(container_segment)?)?;
    let kind = kind(kind_segment)?;
    let id = extract::resource_id(SERVICE, id)?;
    let current = find_resource(state, ctx, Container::Tenant, kind, &id).await?;
    let refs = match &change {
        Change::Replace(body) | Change::Patch(body) => references::refs_in(body),
    };
    let neighbourhood = around(state, ctx, &current, refs).await?;
    let resources = neighbourhood.docs();
    let tenant_id = state.tenant_id(&ctx.tenant);
    let registry_ctx = RegistryContext {
        tenant: &ctx.tenant,
        tenant_id: &tenant_id,
        actor: &ctx.actor,
        now: now_millis(),
    };
    let lookup = |reference: &str| neighbourhood.find(reference);
    let next = match change {
        Change::Replace(body) => registry::replace_resource(&current, body, &registry_ctx, &lookup),
        Change::Patch(patch) => registry::patch_resource(&current, patch, &registry_ctx, &lookup),
    }
    .map_err(registry_error)?;
    registry::check_dependents(resources, &current, &next).map_err(registry_error)?;
    check_evolution(state, ctx, &neighbourhood, &current, &next).await?;
    let version = current
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("1.0")
        .to_owned();
    let resource_id = stored_id(&current, &id);
    let doc = state
        .metastore()
        .replace_resource(&ctx.tenant, &resource_id, &version, next)
        .await
        .map_err(metastore_error)?;
    Ok(Json(doc).into_response())
}

/// Datasets of the tenant whose `schemaRef.id` is one of `schema_ids`.
async fn datasets_using(
    state: &AppState,
    ctx: &RequestContext,
    schema_ids: Vec<String>,
) -> Result<Vec<Doc>, ApiError> {
    if schema_ids.is_empty() {
        return Ok(Vec::new());
    }
    let query = ListQuery {
        limit: 100,
        start: 0,
        order: Vec::new(),
        properties: None,
        filters: vec![Filter::AnyOf {
            field: vec!["schemaRef".to_owned(), "id".to_owned()],
            values: schema_ids
                .iter()
                .map(|id| QueryValue {
                    text: id.clone(),
                    number: None,
                    boolean: None,
                    like: None,
                    version_key: None,
                })
                .collect(),
            negated: false,
        }],
    };
    state
        .metastore()
        .list(&ctx.tenant, ObjectKind::Dataset, &query)
        .await
        .map_err(metastore_error)
}

/// Schemas in use by a dataset that holds data only evolve additively (spec §5.3): every
/// tenant schema whose resolution reads the changed resource is compared before and after.
async fn check_evolution(
    state: &AppState,
    ctx: &RequestContext,
    neighbourhood: &Neighbourhood,
    current: &Doc,
    next: &Doc,
) -> Result<(), ApiError> {
    let resources = neighbourhood.docs();
    let changed_id = current
        .get("$id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let before = |reference: &str| neighbourhood.find(reference);
    let after = |reference: &str| {
        if reference == changed_id
            || Some(reference) == current.get("meta:altId").and_then(Value::as_str)
        {
            Some(next.clone())
        } else {
            neighbourhood.find(reference)
        }
    };
    let mut problems = Vec::new();
    // Only the changed schema and the schemas that read the changed resource can break.
    let affected = registry::dependents(resources, current);
    for schema in resources.iter().filter(|doc| {
        kind_of(doc) == Some(ResourceKind::Schema)
            && (doc.get("$id").and_then(Value::as_str) == Some(changed_id)
                || affected
                    .iter()
                    .any(|dependent| std::ptr::eq(*dependent, *doc)))
    }) {
        let schema_id = schema
            .get("$id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Ok(old) = resolve(schema, &before) else {
            continue;
        };
        let with_data: Vec<Doc> = datasets_using(state, ctx, vec![schema_id.to_owned()])
            .await?
            .into_iter()
            .filter(|dataset| dataset.contains_key("lastSuccessfulBatch"))
            .collect();
        if with_data.is_empty() {
            continue;
        }
        let new_schema = if schema_id == changed_id {
            next.clone()
        } else {
            schema.clone()
        };
        let new = resolve(&new_schema, &after).map_err(|err| registry_error(err.into()))?;
        if let Err(found) = check_additive(&old.full, &new.full) {
            let dataset = with_data[0]
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            problems.push(format!(
                "schema {schema_id} is used by dataset {dataset}, which holds data, so it may only change additively: {}",
                found.join("; ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::breaking_schema_change(problems.join(" | ")))
    }
}

/// `PUT /tenant/{kind}/{id}`.
async fn replace_resource(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((container_segment, kind_segment, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    change_resource(
        &state,
        &ctx,
        &container_segment,
        &kind_segment,
        &id,
        Change::Replace(body),
    )
    .await
}

/// `PATCH /tenant/{kind}/{id}`: a JSON Patch array (sent as `application/json`).
async fn patch_resource(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((container_segment, kind_segment, id)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    change_resource(
        &state,
        &ctx,
        &container_segment,
        &kind_segment,
        &id,
        Change::Patch(body),
    )
    .await
}

/// `DELETE /tenant/{kind}/{id}`: 204; refused while a dataset or another resource uses it.
async fn delete_resource(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path((container_segment, kind_segment, id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    writable(container(&container_segment)?)?;
    let kind = kind(&kind_segment)?;
    let id = extract::resource_id(SERVICE, &id)?;
    let current = find_resource(&state, &ctx, Container::Tenant, kind, &id).await?;
    let resource_id = stored_id(&current, &id);
    let in_use = |detail: String| ApiError::resource_in_use(detail);
    if kind == ResourceKind::Schema {
        let datasets = datasets_using(&state, &ctx, vec![resource_id.to_string()]).await?;
        if let Some(dataset) = datasets.first() {
            return Err(in_use(format!(
                "schema {resource_id} is used by dataset {}; delete or re-point the dataset first",
                dataset
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
            )));
        }
    }
    let neighbourhood = around(&state, &ctx, &current, Vec::new()).await?;
    if let Some(other) = registry::dependents(neighbourhood.docs(), &current).first() {
        let other_id = other.get("$id").and_then(Value::as_str).unwrap_or_default();
        return Err(in_use(format!(
            "{} {resource_id} is used by {other_id}",
            kind.noun()
        )));
    }
    state
        .metastore()
        .delete_resource(&ctx.tenant, &resource_id)
        .await
        .map_err(metastore_error)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
