//! The Query Service's stored objects, once for both backends (spec §11.4): queries (their
//! states and results) and query templates, one row each in `qs_objects` with the columns
//! listings filter and sort on (created, updated, state, soft-deleted, hidden).

use std::sync::Arc;

use lakeport_domain::Doc;
use lakeport_domain::ids::QsObjectId;
use lakeport_domain::queryservice::{
    self, QsField, QsKind, QsListing, QsOp, QsOrderField, QsStart, QsValue,
};
use lakeport_domain::tenant::Tenant;
use serde_json::Value;

use crate::MetastoreError;
use crate::backend::{
    Conn, FixedSql, Lock, encode_doc, fetch_built, fetch_one, fetch_opt, parse_doc,
};
use crate::sql::{Bind, Statement};

/// A change to a stored query or template, computed from its current state inside the
/// write transaction; it may run more than once when a backend retries. `Ok(None)` leaves
/// the object as it is.
pub type QsChange = Arc<dyn Fn(&Doc) -> Result<Option<Doc>, MetastoreError> + Send + Sync>;

/// What an insert is checked against, in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QsCap {
    /// At most `max` queries of the organization (all sandboxes) SUBMITTED or IN_PROGRESS
    /// and heartbeating since `stale_before` (epoch ms; older ones ran on a node that
    /// stopped).
    RunningPerOrg { max: u64, stale_before: i64 },
    /// At most this many objects of the kind in the sandbox.
    PerSandbox(u64),
}

fn id_of(doc: &Doc) -> String {
    doc.get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn name_of(doc: &Doc) -> Option<String> {
    doc.get("name").and_then(Value::as_str).map(str::to_owned)
}

/// Stores a new object after checking its cap.
pub(crate) async fn insert<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: QsKind,
    doc: Doc,
    cap: QsCap,
) -> Result<Doc, MetastoreError> {
    match cap {
        QsCap::RunningPerOrg { max, stale_before } => {
            let running: i64 = fetch_one(
                conn,
                "counting running queries",
                "SELECT COUNT(*) FROM qs_objects WHERE org = $1 AND kind = $2 AND state IN ('SUBMITTED', 'IN_PROGRESS') AND updated >= $3",
                &[&tenant.org(), &kind.as_str(), &stale_before],
            )
            .await?;
            if u64::try_from(running).unwrap_or(u64::MAX) >= max {
                return Err(MetastoreError::TooManyRequests(format!(
                    "the organization has {running} queries submitted or in progress; at most {max} may run at once (query.max_running_per_org); retry when one has finished"
                )));
            }
        }
        QsCap::PerSandbox(max) => {
            let count: i64 = fetch_one(
                conn,
                "counting query objects",
                "SELECT COUNT(*) FROM qs_objects WHERE org = $1 AND sandbox = $2 AND kind = $3",
                &[&tenant.org(), &tenant.sandbox(), &kind.as_str()],
            )
            .await?;
            if u64::try_from(count).unwrap_or(u64::MAX) >= max {
                return Err(MetastoreError::LimitExceeded(format!(
                    "this sandbox already holds {count} {}s; at most {max} are allowed",
                    kind.noun()
                )));
            }
        }
    }
    let index = queryservice::index_of(&doc);
    let id = id_of(&doc);
    let name = name_of(&doc);
    let text = encode_doc(&doc)?;
    conn.execute(
        "storing a query object",
        "INSERT INTO qs_objects (org, sandbox, kind, id, created, updated, state, deleted, hidden, name, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &tenant.org(),
            &tenant.sandbox(),
            &kind.as_str(),
            &id,
            &index.created,
            &index.updated,
            &index.state,
            &i64::from(index.deleted),
            &i64::from(index.hidden),
            &name,
            &text,
        ],
    )
    .await?;
    Ok(doc)
}

/// Returns one object of the tenant.
pub(crate) async fn get<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: QsKind,
    id: &QsObjectId,
    lock: Lock,
) -> Result<Option<Doc>, MetastoreError> {
    let id = id.as_str();
    let sql = format!(
        "SELECT body FROM qs_objects WHERE org = $1 AND sandbox = $2 AND kind = $3 AND id = $4{}",
        C::Dialect::lock(lock)
    );
    let text: Option<String> = fetch_opt(
        conn,
        "reading a query object",
        &sql,
        &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &id],
    )
    .await?;
    text.as_deref().map(parse_doc).transpose()
}

/// Returns one page of a listing, plus one more object when there is a next page.
pub(crate) async fn list<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: QsKind,
    listing: &QsListing,
) -> Result<Vec<Doc>, MetastoreError> {
    let mut statement = Statement {
        sql: String::new(),
        binds: Vec::new(),
    };
    let org = statement.text(tenant.org());
    let sandbox = statement.text(tenant.sandbox());
    let kind_value = statement.text(kind.as_str());
    statement.push(&format!(
        "SELECT body FROM qs_objects WHERE org = {org} AND sandbox = {sandbox} AND kind = {kind_value}"
    ));
    if kind == QsKind::Query {
        if listing.exclude_soft_deleted {
            statement.push(" AND deleted = 0");
        }
        if listing.exclude_hidden {
            statement.push(" AND hidden = 0");
        }
    }
    for filter in &listing.filters {
        let column = match filter.field {
            QsField::Created => "created",
            QsField::Updated => "updated",
            QsField::State => "state",
            QsField::Id => "id",
            QsField::Name => "name",
        };
        let value = match &filter.value {
            QsValue::Millis(millis) => statement.bind(Bind::Int(*millis)),
            QsValue::Text(text) => statement.text(text),
        };
        let condition = if filter.op == QsOp::Contains {
            C::Dialect::contains(column, &value)
        } else {
            format!("{column} {} {value}", filter.op.sql())
        };
        statement.push(&format!(" AND {condition}"));
    }
    let column = match listing.order {
        QsOrderField::Created => "created",
        QsOrderField::Updated => "updated",
    };
    let (direction, beyond) = if listing.descending {
        ("DESC", "<")
    } else {
        ("ASC", ">")
    };
    let mut offset = 0u64;
    match &listing.start {
        QsStart::Beginning => {}
        QsStart::Offset(skip) => offset = *skip,
        QsStart::After { millis, id } => {
            let at = statement.bind(Bind::Int(*millis));
            match id {
                Some(id) => {
                    let id = statement.text(id);
                    statement.push(&format!(
                        " AND ({column} {beyond} {at} OR ({column} = {at} AND id {beyond} {id}))"
                    ));
                }
                None => statement.push(&format!(" AND {column} {beyond} {at}")),
            }
        }
    }
    let limit = statement.bind(Bind::Int(i64::from(listing.limit) + 1));
    let offset = statement.bind(Bind::Int(i64::try_from(offset).unwrap_or(i64::MAX)));
    statement.push(&format!(
        " ORDER BY {column} {direction}, id {direction} LIMIT {limit} OFFSET {offset}"
    ));
    let texts: Vec<String> = fetch_built(conn, "listing query objects", &statement).await?;
    texts.iter().map(|text| parse_doc(text)).collect()
}

/// Applies `change` to an object in one transaction and rewrites its indexed columns.
pub(crate) async fn update<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: QsKind,
    id: &QsObjectId,
    change: &QsChange,
) -> Result<Doc, MetastoreError> {
    let Some(current) = get(conn, tenant, kind, id, Lock::Update).await? else {
        return Err(MetastoreError::QsNotFound {
            kind,
            id: id.clone(),
        });
    };
    let id = id.as_str();
    let Some(next) = change(&current)? else {
        return Ok(current);
    };
    let index = queryservice::index_of(&next);
    let name = name_of(&next);
    let text = encode_doc(&next)?;
    conn.execute(
        "updating a query object",
        "UPDATE qs_objects SET updated = $5, state = $6, deleted = $7, hidden = $8, name = $9, body = $10 WHERE org = $1 AND sandbox = $2 AND kind = $3 AND id = $4",
        &[
            &tenant.org(),
            &tenant.sandbox(),
            &kind.as_str(),
            &id,
            &index.updated,
            &index.state,
            &i64::from(index.deleted),
            &i64::from(index.hidden),
            &name,
            &text,
        ],
    )
    .await?;
    Ok(next)
}

/// Deletes an object; false when it did not exist.
pub(crate) async fn delete<C: Conn>(
    conn: &mut C,
    tenant: &Tenant,
    kind: QsKind,
    id: &QsObjectId,
) -> Result<bool, MetastoreError> {
    let id = id.as_str();
    let deleted = conn
        .execute(
            "deleting a query object",
            "DELETE FROM qs_objects WHERE org = $1 AND sandbox = $2 AND kind = $3 AND id = $4",
            &[&tenant.org(), &tenant.sandbox(), &kind.as_str(), &id],
        )
        .await?;
    Ok(deleted > 0)
}
