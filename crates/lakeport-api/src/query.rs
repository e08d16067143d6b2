//! The Query Service's REST API (`/data/foundation/query`, spec §11.4): queries that run as
//! jobs with Adobe's states, query templates, and the wire endpoint's connection parameters.
//!
//! SQL is parsed and run by a [`QueryEngine`] the binary wires in (DataFusion, in
//! `lakeport-query`), so this crate never compiles it. A query runs on the node that accepted
//! it, as a task that watches its stored state (a cancel on any node is seen within half a
//! second) and heartbeats `updated`; a query whose node stopped is failed once its heartbeat
//! is two minutes old. CREATE TABLE AS SELECT and INSERT INTO write their result as JSON
//! Lines files of one batch created, uploaded and completed through the Batch Ingestion
//! handlers, so rows pass the ordinary validation and promotion (§7) into Catalog, Data
//! Access and the Delta table.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lakeport_domain::Doc;
use lakeport_domain::catalog::{Actor, TABLE_NAME_TAG};
use lakeport_domain::ids::{self, QsObjectId};
use lakeport_domain::now_millis;
use lakeport_domain::query::{ListQuery, ObjectKind};
use lakeport_domain::queryservice::{
    self, NewQuery, NewTemplate, QsKind, QsListing, QsRequestError, QsStart, QueryState,
};
use lakeport_domain::tenant::Tenant;
use lakeport_domain::xdm::registry::ResourceKind;
use lakeport_metastore::MetastoreError;
use lakeport_metastore::queries::{QsCap, QsChange};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::context::{RequestContext, origin, rfc3339};
use crate::error::{ApiError, Service};
use crate::extract;

const SERVICE: Service = Service::Query;
/// The base path of the Query Service.
pub const BASE_PATH: &str = "/data/foundation/query";
/// How often a running query reads its stored state (to see a cancel).
const WATCH_EVERY: Duration = Duration::from_millis(500);
/// How often a running query records that it is alive.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(30);
/// A query not finished whose heartbeat is older than this ran on a node that stopped.
const STALE_AFTER_MS: i64 = 120_000;
/// How often a CTAS or INSERT INTO looks at its batch while it is promoted.
const BATCH_POLL: Duration = Duration::from_millis(200);
/// Largest JSON Lines file one result file may grow to before the next one starts.
const MAX_RESULT_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// The name of a result file in its batch.
const RESULT_FILE_PREFIX: &str = "query-result";

/// A statement as the engine parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// A query whose rows are counted (REST) or returned (wire).
    Select { sql: String },
    /// `CREATE TABLE t [WITH (schema='title')] AS SELECT …`: a new dataset `t` with the
    /// result rows.
    CreateTableAs {
        table: String,
        schema_title: Option<String>,
        select: String,
    },
    /// `INSERT INTO t SELECT …`: the result rows appended to dataset `t`.
    InsertInto { table: String, select: String },
}

/// A parsed statement and the tables it reads (without CTE names), as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub statement: Statement,
    pub tables: Vec<String>,
}

/// Why a statement could not be parsed or run: a SQLSTATE and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    pub code: String,
    pub message: String,
}

impl SqlError {
    /// Returns an error with a SQLSTATE.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
        }
    }

    /// Returns true when the failure is the server's, not the statement's (SQLSTATE class
    /// 58 or XX).
    fn is_system(&self) -> bool {
        self.code.starts_with("58") || self.code.starts_with("XX")
    }
}

/// Where the rows of a CTAS or INSERT INTO go: JSON Lines files in `dir`, a new one started
/// once one holds `max_file_bytes`; the statement fails (54000) once they hold more than
/// `max_total_bytes` together.
#[derive(Debug, Clone)]
pub struct ResultFiles {
    pub dir: PathBuf,
    pub max_file_bytes: u64,
    pub max_total_bytes: u64,
}

/// What running a SELECT produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectOutcome {
    /// Rows the statement returned.
    pub rows: u64,
    /// The result columns as XDM field definitions (`properties` of a schema), in order.
    pub properties: Map<String, Value>,
    /// The JSON Lines files written, when files were asked for.
    pub files: Vec<PathBuf>,
}

/// The first rows of a SELECT, as the web console's SQL page shows them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// The result's column names, in order (possibly repeated, as SQL allows).
    pub columns: Vec<String>,
    /// At most the asked number of rows, each a value per column (JSON, as the REST API
    /// and Data Access show values).
    pub rows: Vec<Vec<Value>>,
    /// True when the statement had more rows (or more bytes) than were returned; the rest
    /// was never read.
    pub truncated: bool,
}

/// The SQL engine behind the REST API; the binary wires in DataFusion.
#[async_trait::async_trait]
pub trait QueryEngine: Send + Sync + 'static {
    /// Parses one statement.
    ///
    /// # Errors
    /// A syntax error (42601), or a statement the Query Service does not run (0A000).
    fn parse(&self, sql: &str) -> Result<Parsed, SqlError>;

    /// Runs a SELECT over the tenant's tables. With `target`, the result's columns must all
    /// be top-level columns of that table (42703 otherwise). With `files`, the rows are
    /// written as JSON Lines there; otherwise they are only counted.
    ///
    /// # Errors
    /// The statement fails to plan (unknown table 42P01, column 42703, function 42883) or
    /// to run.
    async fn run(
        &self,
        tenant: &Tenant,
        select: &str,
        target: Option<&str>,
        files: Option<&ResultFiles>,
    ) -> Result<SelectOutcome, SqlError>;

    /// Runs a SELECT over the tenant's tables and returns its first `max_rows` rows, stopping
    /// earlier once they hold `max_bytes` of JSON; the rest of the result is not computed
    /// beyond what the engine already had in hand.
    ///
    /// # Errors
    /// As [`QueryEngine::run`].
    async fn sample(
        &self,
        tenant: &Tenant,
        select: &str,
        max_rows: usize,
        max_bytes: usize,
    ) -> Result<Sample, SqlError>;
}

/// The engine and where its wire endpoint listens, as `AppState` holds them.
#[derive(Clone)]
pub struct QueryWiring {
    pub engine: Arc<dyn QueryEngine>,
    /// The port the wire endpoint listens on; `None` when it is off.
    pub wire_port: Option<u16>,
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/connection_parameters", get(connection_parameters))
        .route("/queries", get(list_queries).post(create_query))
        .route(
            "/queries/{id}",
            get(get_query).patch(patch_query).delete(delete_query),
        )
        .route(
            "/query-templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/query-templates/{id}",
            get(get_template)
                .put(replace_template)
                .delete(delete_template),
        )
}

fn request_error(err: &QsRequestError) -> ApiError {
    match err {
        QsRequestError::InvalidBody(detail) => ApiError::qs_invalid_request(detail.clone()),
        QsRequestError::InvalidParameter(detail) => {
            ApiError::invalid_query(SERVICE, detail.clone())
        }
    }
}

fn sql_error(err: &SqlError) -> ApiError {
    ApiError::invalid_sql(format!("{} (SQLSTATE {})", err.message, err.code))
}

fn metastore_error(err: MetastoreError) -> ApiError {
    ApiError::from_metastore(SERVICE, err)
}

fn not_found(kind: QsKind, id: &str) -> ApiError {
    ApiError::not_found(
        SERVICE,
        format!("{} {id} does not exist in this sandbox", kind.noun()),
    )
}

fn engine(state: &AppState) -> Result<&QueryWiring, ApiError> {
    state.query().ok_or_else(ApiError::query_engine_missing)
}

/// An id in a path: one that cannot be an id names no object (404).
fn path_id(kind: QsKind, segment: &str) -> Result<QsObjectId, ApiError> {
    QsObjectId::parse(segment).map_err(|_| not_found(kind, segment))
}

fn bearer_token(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .map(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or(value)
                .trim()
                .to_owned()
        })
        .unwrap_or_default()
}

/// `GET /connection_parameters`: what a PostgreSQL client needs to log in to the wire
/// endpoint; the password is the request's own token (spec §11.4).
async fn connection_parameters(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wiring = engine(&state)?;
    let config = state.query_config();
    let Some(port) = config.public_port.or(wiring.wire_port) else {
        return Err(ApiError::wire_endpoint_off());
    };
    let listen_host = config
        .listen
        .parse::<std::net::SocketAddr>()
        .ok()
        .filter(|address| !address.ip().is_unspecified())
        .map(|address| address.ip().to_string());
    let request_host = || {
        let origin = origin(&state, &headers);
        let authority = origin.split("://").nth(1).unwrap_or("localhost").to_owned();
        match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_owned(),
            _ => authority,
        }
    };
    let host = config
        .public_host
        .clone()
        .or(listen_host)
        .unwrap_or_else(request_host);
    let token = bearer_token(&headers);
    Ok(Json(json!({
        "version": 1,
        "username": ctx.tenant.org(),
        "dbName": format!("{}:all", ctx.tenant.sandbox()),
        "host": host,
        "port": port,
        "token": token,
        "compressedToken": token,
        "websocketHost": host,
    }))
    .into_response())
}

/// The statement a new query runs, with what it writes.
#[derive(Debug, Clone)]
struct Plan {
    statement: Statement,
    /// The dataset name a CTAS creates (the table name, or `ctasParameters.datasetName`).
    dataset_name: Option<String>,
    description: Option<String>,
    /// `insertIntoParameters.datasetName`: a dataset name (or table name) to append to.
    insert_dataset: Option<String>,
    /// The ids of the datasets whose tables the statement reads.
    referenced: Vec<String>,
}

impl Plan {
    fn is_ctas(&self) -> bool {
        matches!(self.statement, Statement::CreateTableAs { .. })
    }

    fn is_insert(&self) -> bool {
        matches!(self.statement, Statement::InsertInto { .. })
    }
}

fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Resolves the SQL of a request (its template, `queryParameters`) and parses it.
async fn plan(
    state: &AppState,
    tenant: &Tenant,
    wiring: &QueryWiring,
    request: &NewQuery,
) -> Result<(Plan, String), ApiError> {
    let (sql, parameters) = match (&request.sql, &request.template_id) {
        (Some(sql), _) => (sql.clone(), request.query_parameters.clone()),
        (None, Some(template_id)) => {
            let unknown = || {
                request_error(&QsRequestError::InvalidBody(format!(
                    "templateId {template_id} names no query template in this sandbox"
                )))
            };
            let id = QsObjectId::parse(template_id).map_err(|_| unknown())?;
            let template = state
                .metastore()
                .get_qs_object(tenant, QsKind::Template, &id)
                .await
                .map_err(metastore_error)?
                .ok_or_else(|| {
                    request_error(&QsRequestError::InvalidBody(format!(
                        "templateId {template_id} names no query template in this sandbox"
                    )))
                })?;
            let sql = template
                .get("sql")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut parameters = template
                .get("queryParameters")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            parameters.extend(request.query_parameters.clone());
            (sql, parameters)
        }
        (None, None) => unreachable!("NewQuery::parse requires sql or templateId"),
    };
    let sql = queryservice::substitute(&sql, &parameters).map_err(|err| request_error(&err))?;
    let Parsed { statement, tables } = wiring.engine.parse(&sql).map_err(|err| sql_error(&err))?;
    // Name errors are the request's (400), as Adobe answers them; a table without a batch
    // yet exists in the Catalog and fails when the query runs.
    let mut referenced = Vec::new();
    for table in &tables {
        let found = dataset_by_table(state, tenant, table)
            .await
            .map_err(|err| sql_error(&err))?;
        match found {
            Some(id) if !referenced.contains(&id) => referenced.push(id),
            Some(_) => {}
            None => {
                return Err(sql_error(&SqlError::new(
                    "42P01",
                    format!("relation \"{table}\" does not exist in this sandbox"),
                )));
            }
        }
    }
    let mut plan = Plan {
        statement,
        dataset_name: None,
        description: None,
        insert_dataset: None,
        referenced,
    };
    let mut effective = sql.clone();
    if let Some(ctas) = &request.ctas {
        let Statement::Select { sql: select } = &plan.statement else {
            return Err(request_error(&QsRequestError::InvalidBody(
                "ctasParameters go with a SELECT statement, not a CREATE TABLE or INSERT".into(),
            )));
        };
        effective = format!(
            "CREATE TABLE {} AS ({select})",
            quote_identifier(&ctas.dataset_name)
        );
        plan.statement = Statement::CreateTableAs {
            table: ctas.dataset_name.clone(),
            schema_title: ctas.target_schema_title.clone(),
            select: select.clone(),
        };
        plan.dataset_name = Some(ctas.dataset_name.clone());
        plan.description = ctas.description.clone();
    } else if let Some(dataset) = &request.insert_into {
        let Statement::Select { sql: select } = &plan.statement else {
            return Err(request_error(&QsRequestError::InvalidBody(
                "insertIntoParameters go with a SELECT statement, not a CREATE TABLE or INSERT"
                    .into(),
            )));
        };
        effective = format!("INSERT INTO {} {select}", quote_identifier(dataset));
        plan.statement = Statement::InsertInto {
            table: dataset.clone(),
            select: select.clone(),
        };
        plan.insert_dataset = Some(dataset.clone());
    } else if let Statement::CreateTableAs { table, .. } = &plan.statement {
        plan.dataset_name = Some(table.clone());
    }
    Ok((plan, effective))
}

fn object(value: Value) -> Doc {
    match value {
        Value::Object(doc) => doc,
        _ => Doc::new(),
    }
}

/// `POST /queries`: 202 with the query in `SUBMITTED`; it runs in the background.
async fn create_query(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let wiring = engine(&state)?.clone();
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let request = NewQuery::parse(body, ctx.tenant.sandbox()).map_err(|err| request_error(&err))?;
    let (plan, effective) = plan(&state, &ctx.tenant, &wiring, &request).await?;
    let id = QsObjectId::from(ids::new_uuid());
    let now = rfc3339(now_millis());
    let mut doc = object(json!({
        "id": id.as_str(),
        "name": request.name,
        "description": request.description,
        "dbName": request.db_name,
        "sql": effective,
        "effectiveSQL": effective,
        "request": request.request,
        "isCTAS": plan.is_ctas(),
        "isInsertInto": plan.is_insert(),
        "state": QueryState::Submitted.as_str(),
        "created": now,
        "updated": now,
        "elapsedTime": 0,
        "rowCount": 0,
        "userId": ctx.actor.user,
        "client": "API",
        "errors": [],
        "version": 1,
        "referencedDataSets": plan.referenced,
    }));
    if let Some(template_id) = &request.template_id {
        doc.insert("templateId".into(), json!(template_id));
    }
    let cap = QsCap::RunningPerOrg {
        max: state.query_config().max_running_per_org,
        stale_before: now_millis() - STALE_AFTER_MS,
    };
    let doc = state
        .metastore()
        .insert_qs_object(&ctx.tenant, QsKind::Query, doc, cap)
        .await
        .map_err(metastore_error)?;
    tracing::info!(query.id = %id, tenant.org = ctx.tenant.org(), tenant.sandbox = ctx.tenant.sandbox(), ctas = plan.is_ctas(), insert_into = plan.is_insert(), "query submitted");
    tokio::spawn(run_query(
        state.clone(),
        wiring,
        ctx.tenant.clone(),
        ctx.actor.clone(),
        id,
        plan,
    ));
    Ok((
        StatusCode::ACCEPTED,
        Json(render_query(&state, &headers, doc)),
    )
        .into_response())
}

fn link(href: String, method: &str) -> Value {
    json!({"href": href, "method": method})
}

/// The query as served: internal fields dropped, `_links` added.
fn render_query(state: &AppState, headers: &HeaderMap, mut doc: Doc) -> Value {
    let base = format!("{}{BASE_PATH}", origin(state, headers));
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    doc.remove(queryservice::HIDDEN_FIELD);
    let created_dataset = doc.remove("createdDataSetId");
    let mut links = object(json!({
        "self": link(format!("{base}/queries/{id}"), "GET"),
        "soft_delete": {"href": format!("{base}/queries/{id}"), "method": "PATCH", "body": "{\"op\": \"soft_delete\"}"},
        "referenced_datasets": referenced_datasets(state, headers, doc.remove("referencedDataSets")),
    }));
    if !QueryState::of(&doc).is_some_and(QueryState::is_terminal) {
        links.insert(
            "cancel".into(),
            json!({"href": format!("{base}/queries/{id}"), "method": "PATCH", "body": "{\"op\": \"cancel\"}"}),
        );
    }
    if let Some(Value::String(dataset)) = created_dataset {
        links.insert(
            "created_dataset".into(),
            json!({"id": dataset, "href": format!("{}/data/foundation/catalog/dataSets/{dataset}", origin(state, headers))}),
        );
    }
    doc.insert("_links".into(), Value::Object(links));
    Value::Object(doc)
}

/// `_links.referenced_datasets`: each dataset the statement reads, with its Catalog link.
fn referenced_datasets(state: &AppState, headers: &HeaderMap, ids: Option<Value>) -> Value {
    let catalog = format!(
        "{}/data/foundation/catalog/dataSets",
        origin(state, headers)
    );
    let ids = ids
        .as_ref()
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    ids.iter()
        .filter_map(Value::as_str)
        .map(|id| json!({"id": id, "href": format!("{catalog}/{id}")}))
        .collect()
}

/// Marks a query whose node stopped (its heartbeat is stale) as failed.
async fn settle_stale(state: &AppState, tenant: &Tenant, doc: Doc) -> Result<Doc, ApiError> {
    let index = queryservice::index_of(&doc);
    let running = QueryState::of(&doc).is_some_and(|s| !s.is_terminal());
    if !running || index.updated >= now_millis() - STALE_AFTER_MS {
        return Ok(doc);
    }
    let id = QsObjectId::from(doc.get("id").and_then(Value::as_str).unwrap_or_default());
    let change: QsChange = Arc::new(|current: &Doc| {
        let index = queryservice::index_of(current);
        let running = QueryState::of(current).is_some_and(|s| !s.is_terminal());
        if !running || index.updated >= now_millis() - STALE_AFTER_MS {
            return Ok(None);
        }
        Ok(Some(finished(
            current,
            QueryState::Failed,
            None,
            Some(&SqlError::new(
                "58000",
                "the server running this query stopped before it finished; submit it again",
            )),
        )))
    });
    state
        .metastore()
        .update_qs_object(tenant, QsKind::Query, &id, change)
        .await
        .map_err(metastore_error)
}

/// `GET /queries/{id}`.
async fn get_query(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(QsKind::Query, &id)?;
    let doc = state
        .metastore()
        .get_qs_object(&ctx.tenant, QsKind::Query, &id)
        .await
        .map_err(metastore_error)?
        .ok_or_else(|| not_found(QsKind::Query, &id))?;
    let doc = settle_stale(&state, &ctx.tenant, doc).await?;
    Ok(Json(render_query(&state, &headers, doc)).into_response())
}

/// The envelope of a listing: `{<items>, _page, _links, version}`; the next link carries
/// `orderby` and `start` (the last item's value, with its id to break ties) and is absent
/// on the last page.
fn listing_page(
    origin: &str,
    path: &str,
    items_key: &str,
    listing: &QsListing,
    params: &[(String, String)],
    mut docs: Vec<Doc>,
    render: impl Fn(Doc) -> Value,
) -> Value {
    let more = docs.len() > listing.limit as usize;
    docs.truncate(listing.limit as usize);
    let field = listing.order.as_str();
    let next_start = docs.last().map(|last| {
        let value = last.get(field).and_then(Value::as_str).unwrap_or_default();
        let id = last.get("id").and_then(Value::as_str).unwrap_or_default();
        (value.to_owned(), id.to_owned())
    });
    let count = docs.len();
    let start_given = params
        .iter()
        .find(|(name, _)| name == "start")
        .map(|(_, value)| value.clone());
    let mut links = Map::new();
    let mut next_value = Value::Null;
    if more && let Some((value, id)) = next_start {
        let mut pairs: Vec<(String, String)> = params
            .iter()
            .filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "start" | "startId" | "orderby" | "orderBy" | "limit"
                )
            })
            .cloned()
            .collect();
        pairs.push(("orderby".into(), listing.orderby()));
        pairs.push(("limit".into(), listing.limit.to_string()));
        match listing.start {
            QsStart::Offset(offset) => {
                let next = offset + count as u64;
                next_value = json!(next.to_string());
                pairs.push(("start".into(), next.to_string()));
            }
            _ => {
                next_value = json!(value);
                pairs.push(("start".into(), value));
                pairs.push(("startId".into(), id));
            }
        }
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        links.insert(
            "next".into(),
            json!({"href": format!("{origin}{BASE_PATH}{path}?{query}")}),
        );
    }
    let items: Vec<Value> = docs.into_iter().map(render).collect();
    json!({
        items_key: items,
        "_page": {"orderby": listing.orderby(), "start": start_given, "next": next_value, "count": count},
        "_links": links,
        "version": 1,
    })
}

/// `GET /queries`.
async fn list_queries(
    State(state): State<AppState>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list_objects(&state, &ctx, query, &headers, QsKind::Query, render_query).await
}

/// One page of the caller's queries or templates, rendered by `render`.
async fn list_objects(
    state: &AppState,
    ctx: &RequestContext,
    query: Option<String>,
    headers: &HeaderMap,
    kind: QsKind,
    render: fn(&AppState, &HeaderMap, Doc) -> Value,
) -> Result<Response, ApiError> {
    let (path, items_key) = match kind {
        QsKind::Query => ("/queries", "queries"),
        QsKind::Template => ("/query-templates", "templates"),
    };
    let params = extract::query_pairs(SERVICE, query.as_deref())?;
    let listing = QsListing::parse(kind, &params).map_err(|err| request_error(&err))?;
    let docs = state
        .metastore()
        .list_qs_objects(&ctx.tenant, kind, &listing)
        .await
        .map_err(metastore_error)?;
    let body = listing_page(
        &origin(state, headers),
        path,
        items_key,
        &listing,
        &params,
        docs,
        |doc| render(state, headers, doc),
    );
    Ok(Json(body).into_response())
}

/// `PATCH /queries/{id}` with `{"op": "cancel" | "soft_delete"}`: 202.
async fn patch_query(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = path_id(QsKind::Query, &id)?;
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let op = body.get("op").and_then(Value::as_str).unwrap_or_default();
    match op {
        "cancel" => change_query(&state, &ctx, &id, Op::Cancel).await,
        "soft_delete" => change_query(&state, &ctx, &id, Op::SoftDelete).await,
        _ => Err(request_error(&QsRequestError::InvalidBody(format!(
            "op must be \"cancel\" or \"soft_delete\", not {op:?}"
        )))),
    }
}

/// `DELETE /queries/{id}` (aepp's `deleteQuery`; not in Adobe's spec): a soft delete.
async fn delete_query(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(QsKind::Query, &id)?;
    change_query(&state, &ctx, &id, Op::SoftDelete).await
}

#[derive(Clone, Copy)]
enum Op {
    Cancel,
    SoftDelete,
}

async fn change_query(
    state: &AppState,
    ctx: &RequestContext,
    id: &QsObjectId,
    op: Op,
) -> Result<Response, ApiError> {
    let query_id = id.clone();
    let change: QsChange = Arc::new(move |current: &Doc| {
        let mut next = current.clone();
        match op {
            Op::Cancel => {
                let state = QueryState::of(current).unwrap_or(QueryState::Failed);
                if state.is_terminal() {
                    return Err(MetastoreError::StateConflict(format!(
                        "query {query_id} is {}; only a SUBMITTED or IN_PROGRESS query can be cancelled",
                        state.as_str()
                    )));
                }
                next = finished(
                    current,
                    QueryState::Killed,
                    None,
                    Some(&SqlError::new(
                        "57014",
                        "the query was cancelled by request",
                    )),
                );
            }
            Op::SoftDelete => {
                next.insert(queryservice::SOFT_DELETED_FIELD.into(), json!(true));
                next.insert("updated".into(), json!(rfc3339(now_millis())));
            }
        }
        Ok(Some(next))
    });
    state
        .metastore()
        .update_qs_object(&ctx.tenant, QsKind::Query, id, change)
        .await
        .map_err(|err| match err {
            MetastoreError::QsNotFound { .. } => not_found(QsKind::Query, id),
            err => metastore_error(err),
        })?;
    let message = match op {
        Op::Cancel => "Query cancel request received",
        Op::SoftDelete => "Query soft delete request received",
    };
    tracing::info!(query.id = %id, tenant.org = ctx.tenant.org(), message, "query changed");
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": message, "statusCode": 202})),
    )
        .into_response())
}

/// The query document once it ends in `state`.
fn finished(current: &Doc, state: QueryState, rows: Option<u64>, error: Option<&SqlError>) -> Doc {
    let mut next = current.clone();
    let now = now_millis();
    next.insert("state".into(), json!(state.as_str()));
    next.insert("updated".into(), json!(rfc3339(now)));
    let created = queryservice::index_of(current).created;
    next.insert("elapsedTime".into(), json!((now - created).max(0)));
    if let Some(rows) = rows {
        next.insert("rowCount".into(), json!(rows));
    }
    if let Some(error) = error {
        let error_type = if error.is_system() {
            "SYSTEM_ERROR"
        } else {
            "USER_ERROR"
        };
        next.insert(
            "errors".into(),
            json!([{"code": error.code, "message": error.message, "errorType": error_type}]),
        );
    }
    next
}

/// Applies a change to a running query; a failure is logged (the heartbeat or the stale
/// rule settles it later).
async fn update_running(
    state: &AppState,
    tenant: &Tenant,
    id: &QsObjectId,
    change: QsChange,
) -> Option<Doc> {
    match state
        .metastore()
        .update_qs_object(tenant, QsKind::Query, id, change)
        .await
    {
        Ok(doc) => Some(doc),
        Err(err) => {
            tracing::warn!(query.id = %id, error = %err, "could not record a query's progress");
            None
        }
    }
}

fn only_in_progress(apply: impl Fn(&Doc) -> Doc + Send + Sync + 'static) -> QsChange {
    Arc::new(move |current: &Doc| {
        if QueryState::of(current) == Some(QueryState::InProgress) {
            Ok(Some(apply(current)))
        } else {
            Ok(None)
        }
    })
}

/// How a supervised run ended.
enum Ending {
    Done(Result<u64, SqlError>),
    Killed,
    TimedOut,
}

/// Runs one query: SUBMITTED → IN_PROGRESS, the statement under its time limit while
/// watching for a cancel, then SUCCESS, FAILED or TIMEOUT (a cancel already set KILLED).
async fn run_query(
    state: AppState,
    wiring: QueryWiring,
    tenant: Tenant,
    actor: Actor,
    id: QsObjectId,
    plan: Plan,
) {
    let start: QsChange = Arc::new(|current: &Doc| {
        if QueryState::of(current) != Some(QueryState::Submitted) {
            return Ok(None);
        }
        let mut next = current.clone();
        next.insert("state".into(), json!(QueryState::InProgress.as_str()));
        next.insert("updated".into(), json!(rfc3339(now_millis())));
        Ok(Some(next))
    });
    match update_running(&state, &tenant, &id, start).await {
        Some(doc) if QueryState::of(&doc) == Some(QueryState::InProgress) => {}
        _ => return,
    }
    let config = state.query_config();
    let limit = Duration::from_secs(match plan.statement {
        Statement::Select { .. } => config.select_timeout_secs,
        _ => config.write_timeout_secs,
    });
    let scratch = state.scratch_dir().join("query").join(id.as_str());
    let started = Instant::now();
    let ending = {
        let work = execute(&state, &wiring, &tenant, &actor, &id, &plan, &scratch);
        supervise(&state, &tenant, &id, work, limit).await
    };
    if let Err(err) = tokio::fs::remove_dir_all(&scratch).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(query.id = %id, error = %err, "could not remove a query's scratch files");
    }
    let (next_state, rows, error) = match ending {
        Ending::Done(Ok(rows)) => (QueryState::Success, Some(rows), None),
        Ending::Done(Err(err)) => (QueryState::Failed, None, Some(err)),
        Ending::TimedOut => (
            QueryState::Timeout,
            None,
            Some(SqlError::new(
                "53400",
                format!(
                    "the query ran longer than its limit of {} s (query.select_timeout_secs / query.write_timeout_secs)",
                    limit.as_secs()
                ),
            )),
        ),
        Ending::Killed => {
            tracing::info!(query.id = %id, duration_ms = started.elapsed().as_millis() as u64, "query cancelled");
            return;
        }
    };
    let change =
        only_in_progress(move |current| finished(current, next_state, rows, error.as_ref()));
    update_running(&state, &tenant, &id, change).await;
    tracing::info!(query.id = %id, query.state = next_state.as_str(), duration_ms = started.elapsed().as_millis() as u64, "query finished");
}

/// Drives `work` until it ends, the stored query is no longer IN_PROGRESS (cancelled), or
/// `limit` passes; heartbeats `updated` meanwhile.
async fn supervise(
    state: &AppState,
    tenant: &Tenant,
    id: &QsObjectId,
    work: impl std::future::Future<Output = Result<u64, SqlError>>,
    limit: Duration,
) -> Ending {
    let deadline = tokio::time::Instant::now() + limit;
    let mut last_beat = Instant::now();
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => return Ending::Done(result),
            () = tokio::time::sleep_until(deadline) => return Ending::TimedOut,
            () = tokio::time::sleep(WATCH_EVERY) => {
                match state.metastore().get_qs_object(tenant, QsKind::Query, id).await {
                    Ok(Some(doc)) if QueryState::of(&doc) != Some(QueryState::InProgress) => {
                        return Ending::Killed;
                    }
                    Ok(None) => return Ending::Killed,
                    Ok(Some(_)) => {}
                    Err(err) => tracing::warn!(query.id = %id, error = %err, "could not read a running query's state"),
                }
                if last_beat.elapsed() >= HEARTBEAT_EVERY {
                    last_beat = Instant::now();
                    let beat = only_in_progress(|current| {
                        let mut next = current.clone();
                        next.insert("updated".into(), json!(rfc3339(now_millis())));
                        next
                    });
                    update_running(state, tenant, id, beat).await;
                }
            }
        }
    }
}

fn system_error(doing: &str, err: impl std::fmt::Display) -> SqlError {
    SqlError::new("58000", format!("{doing}: {err}"))
}

fn api_failure(doing: &str, err: &ApiError) -> SqlError {
    let code = if err.status.is_server_error() {
        "58000"
    } else {
        "22023"
    };
    SqlError::new(code, format!("{doing}: {}", err.detail))
}

/// Runs the statement; returns the rows it produced (for CTAS and INSERT INTO, written).
async fn execute(
    state: &AppState,
    wiring: &QueryWiring,
    tenant: &Tenant,
    actor: &Actor,
    id: &QsObjectId,
    plan: &Plan,
    scratch: &FsPath,
) -> Result<u64, SqlError> {
    let files = ResultFiles {
        dir: scratch.to_owned(),
        max_file_bytes: MAX_RESULT_FILE_BYTES.min(state.ingest_config().max_put_bytes),
        max_total_bytes: state.query_config().max_result_bytes,
    };
    let ctx = RequestContext {
        tenant: tenant.clone(),
        actor: actor.clone(),
        request_id: id.to_string(),
    };
    match &plan.statement {
        Statement::Select { sql } => {
            let outcome = wiring.engine.run(tenant, sql, None, None).await?;
            Ok(outcome.rows)
        }
        Statement::CreateTableAs {
            table,
            schema_title,
            select,
        } => {
            let dataset_name = plan.dataset_name.clone().unwrap_or_else(|| table.clone());
            let table_name = lakeport_domain::catalog::table_name(Some(&dataset_name), "");
            if let Some(existing) = dataset_by_table(state, tenant, &table_name).await? {
                return Err(SqlError::new(
                    "42P07",
                    format!(
                        "relation \"{table_name}\" already exists (dataset {existing}); INSERT INTO appends to it"
                    ),
                ));
            }
            create_dir(scratch).await?;
            let outcome = wiring
                .engine
                .run(tenant, select, None, Some(&files))
                .await?;
            let schema_id = match schema_title {
                Some(title) => schema_by_title(state, tenant, title).await?,
                None => adhoc_schema(state, &ctx, &dataset_name, id, &outcome.properties).await?,
            };
            let dataset_id = create_dataset(
                state,
                &ctx,
                &dataset_name,
                plan.description.as_deref(),
                &schema_id,
                id,
            )
            .await?;
            let record = Arc::new(dataset_id.clone());
            let mark: QsChange = Arc::new(move |current: &Doc| {
                let mut next = current.clone();
                next.insert("createdDataSetId".into(), json!(record.as_str()));
                Ok(Some(next))
            });
            update_running(state, tenant, id, mark).await;
            if outcome.rows > 0 {
                ingest(state, &ctx, &dataset_id, &outcome.files).await?;
            }
            Ok(outcome.rows)
        }
        Statement::InsertInto { table, select } => {
            let name = plan.insert_dataset.as_deref().unwrap_or(table);
            let table_name = table.to_ascii_lowercase();
            let dataset_id = match dataset_by_table(state, tenant, &table_name).await? {
                Some(found) => found,
                None => dataset_by_name(state, tenant, name)
                    .await?
                    .ok_or_else(|| {
                        SqlError::new(
                            "42P01",
                            format!("relation \"{name}\" does not exist: no dataset of this sandbox has that table name or dataset name"),
                        )
                    })?,
            };
            let target = table_of(state, tenant, &dataset_id).await?;
            create_dir(scratch).await?;
            let outcome = wiring
                .engine
                .run(tenant, select, target.as_deref(), Some(&files))
                .await?;
            if outcome.rows > 0 {
                ingest(state, &ctx, &dataset_id, &outcome.files).await?;
            }
            Ok(outcome.rows)
        }
    }
}

async fn create_dir(dir: &FsPath) -> Result<(), SqlError> {
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|err| system_error("creating the query's scratch directory", err))
}

fn tag_query(table: &str) -> Result<ListQuery, SqlError> {
    let params = vec![
        ("tags".to_owned(), format!("{TABLE_NAME_TAG}:{table}")),
        ("limit".to_owned(), "1".to_owned()),
    ];
    ListQuery::parse(ObjectKind::Dataset, &params, Default::default())
        .map_err(|err| SqlError::new("42602", format!("invalid table name {table:?}: {err}")))
}

/// Returns the dataset whose table is `table`.
async fn dataset_by_table(
    state: &AppState,
    tenant: &Tenant,
    table: &str,
) -> Result<Option<String>, SqlError> {
    let query = tag_query(table)?;
    let found = state
        .metastore()
        .list(tenant, ObjectKind::Dataset, &query)
        .await
        .map_err(|err| system_error("looking up the table", err))?;
    Ok(found
        .first()
        .and_then(|doc| doc.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Returns a dataset named `name`.
async fn dataset_by_name(
    state: &AppState,
    tenant: &Tenant,
    name: &str,
) -> Result<Option<String>, SqlError> {
    let params = vec![
        ("name".to_owned(), name.to_owned()),
        ("limit".to_owned(), "1".to_owned()),
    ];
    let Ok(query) = ListQuery::parse(ObjectKind::Dataset, &params, Default::default()) else {
        return Ok(None);
    };
    let found = state
        .metastore()
        .list(tenant, ObjectKind::Dataset, &query)
        .await
        .map_err(|err| system_error("looking up the dataset", err))?;
    Ok(found
        .first()
        .and_then(|doc| doc.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Returns a dataset's table name.
async fn table_of(
    state: &AppState,
    tenant: &Tenant,
    dataset_id: &str,
) -> Result<Option<String>, SqlError> {
    let found = state
        .metastore()
        .get(tenant, ObjectKind::Dataset, &[dataset_id.to_owned()])
        .await
        .map_err(|err| system_error("reading the dataset", err))?;
    Ok(found
        .first()
        .and_then(|doc| doc.get("tags"))
        .and_then(|tags| tags.get(TABLE_NAME_TAG))
        .and_then(|names| names.get(0))
        .and_then(Value::as_str)
        .map(str::to_owned))
}

/// Returns the `$id` of the schema titled `title` (`CREATE TABLE … WITH (schema='…')`,
/// `ctasParameters.targetSchemaTitle`).
async fn schema_by_title(
    state: &AppState,
    tenant: &Tenant,
    title: &str,
) -> Result<String, SqlError> {
    let schemas = state
        .metastore()
        .list_resources(tenant, Some(ResourceKind::Schema))
        .await
        .map_err(|err| system_error("listing the schemas", err))?;
    schemas
        .iter()
        .find(|schema| schema.get("title").and_then(Value::as_str) == Some(title))
        .and_then(|schema| schema.get("$id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            SqlError::new(
                "42704",
                format!("no schema of this sandbox is titled {title:?}"),
            )
        })
}

async fn body_json(response: Response) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers
}

/// Creates the ad-hoc class and schema of a CTAS without a schema: the result columns as
/// top-level fields (Adobe: "an ad hoc schema that matches the structure of the output
/// data"), through the Schema Registry's own create path.
async fn adhoc_schema(
    state: &AppState,
    ctx: &RequestContext,
    dataset_name: &str,
    query_id: &str,
    properties: &Map<String, Value>,
) -> Result<String, SqlError> {
    let suffix = query_id.replace('-', "");
    let class_body = json!({
        "title": format!("{dataset_name} query class {suffix}"),
        "description": format!("Ad hoc class of the result of query {query_id}"),
        "type": "object",
        "allOf": [
            {"$ref": "https://ns.adobe.com/xdm/data/adhoc"},
            {"properties": properties},
        ],
    });
    let class = create_resource(state, ctx, "classes", class_body)
        .await
        .map_err(|err| api_failure("creating the result's ad hoc class", &err))?;
    let schema_body = json!({
        "title": format!("{dataset_name} query schema {suffix}"),
        "description": format!("Ad hoc schema of the result of query {query_id}"),
        "type": "object",
        "allOf": [{"$ref": class["$id"]}],
    });
    let schema = create_resource(state, ctx, "schemas", schema_body)
        .await
        .map_err(|err| api_failure("creating the result's ad hoc schema", &err))?;
    schema["$id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| system_error("creating the result's schema", "no $id in the answer"))
}

async fn create_resource(
    state: &AppState,
    ctx: &RequestContext,
    kind: &str,
    body: Value,
) -> Result<Value, ApiError> {
    let response = crate::registry::create_resource(
        State(state.clone()),
        ctx.clone(),
        Path(("tenant".to_owned(), kind.to_owned())),
        json_headers(),
        Body::from(body.to_string()),
    )
    .await?;
    Ok(body_json(response).await)
}

/// Creates the CTAS dataset through the Catalog's own create path.
async fn create_dataset(
    state: &AppState,
    ctx: &RequestContext,
    name: &str,
    description: Option<&str>,
    schema_id: &str,
    query_id: &str,
) -> Result<String, SqlError> {
    let mut body = json!({
        "name": name,
        "schemaRef": {"id": schema_id, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "fileDescription": {"format": "json"},
        "tags": {"lakeport/source": ["query"], "lakeport/query": [query_id]},
    });
    if let Some(description) = description {
        body["description"] = json!(description);
    }
    let response = crate::catalog::datasets::create_dataset(
        State(state.clone()),
        ctx.clone(),
        RawQuery(None),
        json_headers(),
        Body::from(body.to_string()),
    )
    .await
    .map_err(|err| api_failure("creating the dataset", &err))?;
    let answer = body_json(response).await;
    answer[0]
        .as_str()
        .and_then(|reference| reference.rsplit('/').next())
        .map(str::to_owned)
        .ok_or_else(|| system_error("creating the dataset", "no reference in the answer"))
}

fn file_body(path: PathBuf) -> Body {
    use tokio::io::AsyncReadExt as _;
    let stream = futures::stream::try_unfold(None, move |file: Option<tokio::fs::File>| {
        let path = path.clone();
        async move {
            let mut file = match file {
                Some(file) => file,
                None => tokio::fs::File::open(&path).await?,
            };
            let mut buffer = vec![0u8; 256 * 1024];
            let read = file.read(&mut buffer).await?;
            if read == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buffer.truncate(read);
            Ok(Some((axum::body::Bytes::from(buffer), Some(file))))
        }
    });
    Body::from_stream(stream)
}

/// Writes result files as one batch of the dataset through the Batch Ingestion handlers
/// (create, upload, COMPLETE), then waits until the batch is terminal.
async fn ingest(
    state: &AppState,
    ctx: &RequestContext,
    dataset_id: &str,
    files: &[PathBuf],
) -> Result<(), SqlError> {
    let body = json!({
        "datasetId": dataset_id,
        "inputFormat": {"format": "json"},
        "tags": {"lakeport/source": ["query"], "lakeport/query": [ctx.request_id]},
    });
    let response = crate::ingest::create_batch(
        State(state.clone()),
        ctx.clone(),
        json_headers(),
        Body::from(body.to_string()),
    )
    .await
    .map_err(|err| api_failure("creating the result's batch", &err))?;
    let batch = body_json(response).await;
    let batch_id = batch["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| system_error("creating the result's batch", "no id in the answer"))?;
    for (index, file) in files.iter().enumerate() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        crate::ingest::upload_file(
            State(state.clone()),
            ctx.clone(),
            Path((
                batch_id.clone(),
                dataset_id.to_owned(),
                format!("{RESULT_FILE_PREFIX}-{:05}.json", index + 1),
            )),
            headers,
            file_body(file.clone()),
        )
        .await
        .map_err(|err| api_failure("uploading the result", &err))?;
    }
    crate::ingest::signal_batch(
        State(state.clone()),
        ctx.clone(),
        Path(batch_id.clone()),
        RawQuery(Some("action=COMPLETE".to_owned())),
    )
    .await
    .map_err(|err| api_failure("completing the result's batch", &err))?;
    tracing::info!(batch.id = %batch_id, dataset.id = %dataset_id, query.id = %ctx.request_id, "query result submitted as a batch");
    loop {
        tokio::time::sleep(BATCH_POLL).await;
        let found = state
            .metastore()
            .get(
                &ctx.tenant,
                ObjectKind::Batch,
                std::slice::from_ref(&batch_id),
            )
            .await
            .map_err(|err| system_error("reading the result's batch", err))?;
        let Some(batch) = found.first() else {
            return Err(system_error("reading the result's batch", "it is gone"));
        };
        match batch
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "success" => return Ok(()),
            "loading" | "staging" | "processing" | "retrying" | "queued" => {}
            status => {
                let reasons: Vec<String> = batch
                    .get("errors")
                    .and_then(Value::as_array)
                    .map(|errors| {
                        errors
                            .iter()
                            .take(5)
                            .filter_map(|error| {
                                error
                                    .get("description")
                                    .or_else(|| error.get("message"))
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                return Err(SqlError::new(
                    "22000",
                    format!(
                        "the result's batch {batch_id} ended {status}: {}",
                        if reasons.is_empty() {
                            "no reason recorded".to_owned()
                        } else {
                            reasons.join("; ")
                        }
                    ),
                ));
            }
        }
    }
}

/// The template as served, with `_links`.
fn render_template(state: &AppState, headers: &HeaderMap, mut doc: Doc) -> Value {
    let base = format!("{}{BASE_PATH}", origin(state, headers));
    let id = doc
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    doc.insert(
        "_links".into(),
        json!({
            "self": link(format!("{base}/query-templates/{id}"), "GET"),
            "update": link(format!("{base}/query-templates/{id}"), "PUT"),
            "delete": link(format!("{base}/query-templates/{id}"), "DELETE"),
        }),
    );
    Value::Object(doc)
}

/// `POST /query-templates`: 202 with the template.
async fn create_template(
    State(state): State<AppState>,
    ctx: RequestContext,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let template = NewTemplate::parse(body).map_err(|err| request_error(&err))?;
    let id = QsObjectId::from(ids::new_uuid());
    let now = rfc3339(now_millis());
    let doc = template.to_doc(&id, &ctx.actor.user, &now, &now);
    let doc = state
        .metastore()
        .insert_qs_object(
            &ctx.tenant,
            QsKind::Template,
            doc,
            QsCap::PerSandbox(queryservice::MAX_TEMPLATES),
        )
        .await
        .map_err(metastore_error)?;
    tracing::info!(template.id = %id, tenant.org = ctx.tenant.org(), "query template created");
    Ok((
        StatusCode::ACCEPTED,
        Json(render_template(&state, &headers, doc)),
    )
        .into_response())
}

/// `GET /query-templates`.
async fn list_templates(
    State(state): State<AppState>,
    ctx: RequestContext,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list_objects(
        &state,
        &ctx,
        query,
        &headers,
        QsKind::Template,
        render_template,
    )
    .await
}

/// `GET /query-templates/{id}`.
async fn get_template(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = path_id(QsKind::Template, &id)?;
    let doc = state
        .metastore()
        .get_qs_object(&ctx.tenant, QsKind::Template, &id)
        .await
        .map_err(metastore_error)?
        .ok_or_else(|| not_found(QsKind::Template, &id))?;
    Ok(Json(render_template(&state, &headers, doc)).into_response())
}

/// `PUT /query-templates/{id}`: 202 with the template as it now is.
async fn replace_template(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = path_id(QsKind::Template, &id)?;
    let (body, _) = extract::json_body(SERVICE, &headers, body).await?;
    let template = Arc::new(NewTemplate::parse(body).map_err(|err| request_error(&err))?);
    let user = ctx.actor.user.clone();
    let change: QsChange = Arc::new(move |current: &Doc| {
        let mut next = current.clone();
        next.insert("name".into(), json!(template.name));
        next.insert("sql".into(), json!(template.sql));
        next.insert("queryParameters".into(), json!(template.query_parameters));
        next.insert("lastUpdatedBy".into(), json!(user));
        next.insert("updated".into(), json!(rfc3339(now_millis())));
        Ok(Some(next))
    });
    let doc = state
        .metastore()
        .update_qs_object(&ctx.tenant, QsKind::Template, &id, change)
        .await
        .map_err(|err| match err {
            MetastoreError::QsNotFound { .. } => not_found(QsKind::Template, &id),
            err => metastore_error(err),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(render_template(&state, &headers, doc)),
    )
        .into_response())
}

/// `DELETE /query-templates/{id}`: 202.
async fn delete_template(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = path_id(QsKind::Template, &id)?;
    let deleted = state
        .metastore()
        .delete_qs_object(&ctx.tenant, QsKind::Template, &id)
        .await
        .map_err(metastore_error)?;
    if !deleted {
        return Err(not_found(QsKind::Template, &id));
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "Deleted", "statusCode": 202})),
    )
        .into_response())
}
