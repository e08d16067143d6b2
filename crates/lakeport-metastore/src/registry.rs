//! The Schema Registry's resources, once for both backends: `$id`, `meta:altId` and titles
//! unique per tenant (titles per kind), optimistic replacement by version.

use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::{ResourceKind, kind_of};
use lakeport_domain::{Doc, now_millis};

use crate::MetastoreError;
use crate::backend::{Conn, FixedSql, ToParam, encode_doc, fetch, fetch_one, fetch_opt, parse_doc};
use crate::catalog::field_str;
use crate::sql::Dialect;

/// Returns `$id`, `meta:altId`, `title` and `version` of a resource document.
fn resource_keys(doc: &Doc) -> (String, String, String, String) {
    let text = |key: &str| field_str(doc, key).unwrap_or_default().to_owned();
    (
        text("$id"),
        text("meta:altId"),
        text("title"),
        text("version"),
    )
}

async fn load_texts<C: Conn>(
    conn: &mut C,
    doing: &'static str,
    condition: &str,
    params: &[&dyn ToParam],
) -> Result<Vec<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT {} FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND {condition} ORDER BY created, id",
        C::Dialect::BODY
    );
    let texts: Vec<String> = fetch(conn, doing, &sql, params).await?;
    texts.iter().map(|text| parse_doc(text)).collect()
}

pub(crate) async fn get<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    id: &str,
) -> Result<Option<Doc>, MetastoreError> {
    let sql = format!(
        "SELECT {} FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND (id = $3 OR alt_id = $3)",
        C::Dialect::BODY
    );
    let params: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &id];
    let text: Option<String> = fetch_opt(conn, "reading a resource", &sql, &params).await?;
    text.as_deref().map(parse_doc).transpose()
}

pub(crate) async fn list<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: Option<ResourceKind>,
) -> Result<Vec<Doc>, MetastoreError> {
    let doing = "listing resources";
    match kind {
        Some(kind) => {
            let params: [&dyn ToParam; 3] =
                [&tenant.org(), &tenant.sandbox(), &kind.resource_type()];
            load_texts(conn, doing, "kind = $3", &params).await
        }
        None => {
            let params: [&dyn ToParam; 2] = [&tenant.org(), &tenant.sandbox()];
            load_texts(conn, doing, "TRUE", &params).await
        }
    }
}

/// Returns the tenant's resources whose stored text contains `needle`, oldest first.
pub(crate) async fn containing<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    needle: &str,
) -> Result<Vec<Doc>, MetastoreError> {
    let condition = C::Dialect::contains(C::Dialect::BODY, "$3");
    let params: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &needle];
    load_texts(conn, "finding referring resources", &condition, &params).await
}

async fn check_title<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ResourceKind,
    title: &str,
    id: &str,
) -> Result<(), MetastoreError> {
    let params: [&dyn ToParam; 5] = [
        &tenant.org(),
        &tenant.sandbox(),
        &kind.resource_type(),
        &title,
        &id,
    ];
    let taken: bool = fetch_one(
        conn,
        "checking a title",
        "SELECT EXISTS (SELECT 1 FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND kind = $3 AND title = $4 AND id <> $5)",
        &params,
    )
    .await?;
    if taken {
        return Err(MetastoreError::DuplicateTitle {
            kind,
            title: title.to_owned(),
        });
    }
    Ok(())
}

/// Maps a resource write that a concurrent write beat to a unique constraint.
fn resource_conflict<C: Conn>(
    err: MetastoreError,
    kind: ResourceKind,
    title: &str,
    id: &str,
) -> MetastoreError {
    match C::unique_violation(&err) {
        Some("xdm_resources_title_key") => MetastoreError::DuplicateTitle {
            kind,
            title: title.to_owned(),
        },
        Some(_) => MetastoreError::ResourceExists { id: id.to_owned() },
        None => err,
    }
}

pub(crate) async fn insert<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: ResourceKind,
    doc: Doc,
) -> Result<Doc, MetastoreError> {
    let (id, alt_id, title, version) = resource_keys(&doc);
    check_title(conn, tenant, kind, &title, &id).await?;
    let text = encode_doc(&doc)?;
    let sql = format!(
        "INSERT INTO xdm_resources (org, sandbox, kind, id, alt_id, title, version, created, {}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, {})",
        C::Dialect::doc_columns(),
        C::Dialect::doc_values("$9")
    );
    let params: [&dyn ToParam; 9] = [
        &tenant.org(),
        &tenant.sandbox(),
        &kind.resource_type(),
        &id,
        &alt_id,
        &title,
        &version,
        &now_millis(),
        &text,
    ];
    conn.execute("storing a resource", &sql, &params)
        .await
        .map_err(|err| resource_conflict::<C>(err, kind, &title, &id))?;
    Ok(doc)
}

pub(crate) async fn replace<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    id: &str,
    expected_version: &str,
    doc: Doc,
) -> Result<Doc, MetastoreError> {
    let kind = kind_of(&doc).ok_or_else(|| MetastoreError::Backend {
        doing: "replacing a resource",
        source: "the resource has no meta:resourceType".into(),
    })?;
    let (_, _, title, version) = resource_keys(&doc);
    check_title(conn, tenant, kind, &title, id).await?;
    let text = encode_doc(&doc)?;
    let sql = format!(
        "UPDATE xdm_resources SET title = $1, version = $2, {} WHERE org = $4 AND sandbox = $5 AND id = $6 AND version = $7",
        C::Dialect::set_doc("$3")
    );
    let params: [&dyn ToParam; 7] = [
        &title,
        &version,
        &text,
        &tenant.org(),
        &tenant.sandbox(),
        &id,
        &expected_version,
    ];
    let changed = conn
        .execute("replacing a resource", &sql, &params)
        .await
        .map_err(|err| resource_conflict::<C>(err, kind, &title, id))?;
    if changed == 0 {
        let id = id.to_owned();
        return Err(if get(conn, tenant, &id).await?.is_some() {
            MetastoreError::ConcurrentChange { id }
        } else {
            MetastoreError::ResourceNotFound { id }
        });
    }
    Ok(doc)
}

pub(crate) async fn delete<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    id: &str,
) -> Result<bool, MetastoreError> {
    let params: [&dyn ToParam; 3] = [&tenant.org(), &tenant.sandbox(), &id];
    let deleted = conn
        .execute(
            "deleting a resource",
            "DELETE FROM xdm_resources WHERE org = $1 AND sandbox = $2 AND (id = $3 OR alt_id = $3)",
            &params,
        )
        .await?;
    Ok(deleted > 0)
}
