//! The read pages: datasets, a dataset (schema tree, batch chart, batches), its data
//! preview, a batch (timeline, metrics, errors, files, rejected rows with their
//! violations, downloads, actions), the batch status fragment the page polls, downloads,
//! and the schema/field group trees. Every listing is one paged, filtered Catalog or
//! registry call; nothing lists everything.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use futures::StreamExt;
use maud::{Markup, html};
use serde_json::{Map, Value};

use crate::api::{ApiFailure, enc};
use crate::chart;
use crate::html::{self, Frame};
use crate::session::Session;
use crate::{Id, Ids, Shared, query_pairs};

/// Most rows a listing page shows; a larger `limit` is clamped to it.
pub const MAX_PAGE: u64 = 50;
/// Highest `start` offset a listing accepts; deeper pages are clamped to it.
pub const MAX_START: u64 = 1_000_000;
/// Longest dataset search text.
const MAX_SEARCH: usize = 100;
/// Dataset files the dataset page sums for its row count and size.
const FILES_SUMMED: u64 = 100;
/// Batches the dataset page's chart shows.
const CHART_BATCHES: u64 = 100;
/// Rejected rows the batch page shows, and the bytes of failed-row files it reads for them.
const MAX_REJECTED_ROWS: usize = 100;
const MAX_REJECTED_BYTES: usize = 1024 * 1024;
/// Schema tree bounds: depth and fields shown.
const MAX_TREE_DEPTH: usize = 12;
const MAX_TREE_FIELDS: usize = 1000;

const CATALOG: &str = "/data/foundation/catalog";
const EXPORT: &str = "/data/foundation/export";
const REGISTRY: &str = "/data/foundation/schemaregistry";
const XED_FULL: &str = "application/vnd.adobe.xed-full+json; version=1";

/// Paging parameters, clamped.
struct Paging {
    start: u64,
    limit: u64,
}

fn paging(params: &HashMap<String, String>, prefix: &str, default: u64) -> Paging {
    let number = |key: &str| {
        params
            .get(&format!("{prefix}{key}"))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Paging {
        start: number("start").unwrap_or(0).min(MAX_START),
        limit: number("limit").unwrap_or(default).clamp(1, MAX_PAGE),
    }
}

/// Where a page of a dataset's batches starts, newest first, without an offset scan: the
/// batches created before `before` (ms), after skipping `skip` of them — the rows of the
/// previous pages that share the boundary's `created` (a tie group; usually none).
#[derive(Debug, PartialEq, Eq)]
struct Cursor {
    before: Option<i64>,
    skip: u64,
}

impl Cursor {
    fn from_params(params: &HashMap<String, String>) -> Self {
        Self {
            before: params.get("before").and_then(|v| v.trim().parse().ok()),
            skip: params
                .get("skip")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
                .min(MAX_START),
        }
    }

    /// The cursor of the page after `rows` (this page, newest first).
    fn next<T>(&self, rows: &[(String, T)], created: impl Fn(&T) -> Option<i64>) -> Option<Self> {
        let last = created(&rows.last()?.1)?;
        let ties = rows
            .iter()
            .filter(|(_, row)| created(row) == Some(last))
            .count() as u64;
        let carried = if self.before == Some(last + 1) {
            self.skip
        } else {
            0
        };
        Some(Self {
            before: Some(last + 1),
            skip: ties + carried,
        })
    }
}

fn frame<'a>(console: &'a Shared, session: &'a Session, title: &'a str) -> Frame<'a> {
    Frame {
        base: &console.base,
        session: Some(session),
        title,
        refresh_secs: None,
    }
}

/// The first (only) object of a Catalog map answer.
fn first_object(map: &Value) -> Option<(String, Value)> {
    map.as_object()
        .and_then(|m| m.iter().next())
        .map(|(k, v)| (k.clone(), v.clone()))
}

fn text<'a>(doc: &'a Value, key: &str) -> &'a str {
    doc[key].as_str().unwrap_or_default()
}

fn num(doc: &Value, key: &str) -> Option<u64> {
    doc[key]
        .as_u64()
        .or_else(|| doc[key].as_str().and_then(|s| s.parse().ok()))
}

fn ms(doc: &Value, key: &str) -> Option<i64> {
    doc[key].as_i64()
}

/// A name search as a Catalog `name` wildcard filter: `*text*`, where the user's own `*`
/// and `,` (the any-of separator) also match anything.
fn name_filter(search: &str) -> String {
    let mut pattern = String::from("*");
    for ch in search.chars() {
        if ch == '*' || ch == ',' {
            if !pattern.ends_with('*') {
                pattern.push('*');
            }
        } else {
            pattern.push(ch);
        }
    }
    if !pattern.ends_with('*') {
        pattern.push('*');
    }
    pattern
}

fn link(base: &str, path: &str, params: &[(&str, String)]) -> String {
    let query = serde_urlencoded::to_string(params).unwrap_or_default();
    if query.is_empty() {
        format!("{base}{path}")
    } else {
        format!("{base}{path}?{query}")
    }
}

pub async fn datasets(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = query_pairs(raw.as_deref());
    let page = paging(&params, "", 20);
    let search: String = params
        .get("q")
        .map(|q| q.trim().chars().take(MAX_SEARCH).collect())
        .unwrap_or_default();
    let mut query = vec![
        ("limit", (page.limit + 1).to_string()),
        ("start", page.start.to_string()),
        ("orderBy", "desc:created".to_owned()),
        (
            "properties",
            "name,schemaRef,lastBatchId,lastBatchStatus,created,tags".to_owned(),
        ),
    ];
    if !search.is_empty() {
        query.push(("name", name_filter(&search)));
    }
    let uri = link(CATALOG, "/dataSets", &query);
    let list = match console.api.get_json(&session, &uri).await {
        Ok(list) => list,
        Err(failure) => return console.failure(&session, "dataset", failure),
    };
    let mut rows: Vec<(String, Value)> = list
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let more = rows.len() as u64 > page.limit;
    rows.truncate(page.limit as usize);
    // The last batches of the page, in one call.
    let last_ids: Vec<&str> = rows
        .iter()
        .filter_map(|(_, d)| d["lastBatchId"].as_str())
        .collect();
    let mut last: HashMap<String, Value> = HashMap::new();
    if !last_ids.is_empty() {
        let uri = link(
            CATALOG,
            "/batches",
            &[
                ("batch", last_ids.join(",")),
                ("limit", MAX_PAGE.to_string()),
                (
                    "properties",
                    "status,recordCount,failedRecordCount,size,created".to_owned(),
                ),
            ],
        );
        if let Ok(Value::Object(map)) = console.api.get_json(&session, &uri).await {
            last.extend(map);
        }
    }
    let base = &console.base;
    let here = |start: u64| {
        let mut params = vec![
            ("start", start.to_string()),
            ("limit", page.limit.to_string()),
        ];
        if !search.is_empty() {
            params.push(("q", search.clone()));
        }
        link(base, "/datasets", &params)
    };
    let prev = (page.start > 0).then(|| here(0));
    let next = more.then(|| here(page.start + page.limit));
    let body = html! {
        div.heading {
            h1 { "Datasets" }
            form.search role="search" method="get" action={ (base) "/datasets" } {
                label for="q" { "Search by name" }
                input #q type="search" name="q" value=(search) maxlength=(MAX_SEARCH);
                button type="submit" { "Search" }
            }
        }
        @if rows.is_empty() {
            p.empty { @if search.is_empty() { "No datasets yet. Create one with the Catalog API or " code { "lakeport dataset create" } "." } @else { "No dataset name contains “" (search) "”." } }
        } @else {
            table.list {
                caption.visually-hidden { "Datasets, newest first" }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Schema" } th scope="col" { "Last batch" } th scope="col" class="num" { "Rows (last batch)" } th scope="col" class="num" { "Size (last batch)" } th scope="col" { "Created" } } }
                tbody {
                    @for (id, doc) in &rows {
                        @let last_batch = doc["lastBatchId"].as_str().and_then(|b| last.get(b));
                        tr {
                            td { a href={ (base) "/datasets/" (enc(id)) } { (display_name(doc, id)) } div.sub { code { (id) } } }
                            td {
                                @let schema_id = text(&doc["schemaRef"], "id");
                                @if schema_id.is_empty() { "—" } @else {
                                    a href=(link(base, "/schema", &[("id", schema_id.to_owned())])) title=(schema_id) { (schema_title(schema_id)) }
                                }
                            }
                            td {
                                (html::status(text(doc, "lastBatchStatus")))
                                @if let Some(batch) = doc["lastBatchId"].as_str() {
                                    " " a.sub href={ (base) "/batches/" (enc(batch)) } { "open" }
                                }
                            }
                            td.num {
                                @if let Some(b) = last_batch {
                                    (html::count(num(b, "recordCount")))
                                    @if let Some(failed) = num(b, "failedRecordCount").filter(|f| *f > 0) {
                                        div.sub.bad-text { (html::count(Some(failed))) " rejected" }
                                    }
                                } @else { "—" }
                            }
                            td.num { (html::bytes(last_batch.and_then(|b| num(b, "size")))) }
                            td { (html::time(ms(doc, "created"))) }
                        }
                    }
                }
            }
        }
        (html::pager(prev, next, "Dataset pages"))
        p.hint { (page.limit) " per page." }
    };
    html::respond(
        StatusCode::OK,
        &frame(&console, &session, "Datasets"),
        &body,
    )
}

fn display_name(doc: &Value, id: &str) -> String {
    match doc["name"].as_str() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => id.to_owned(),
    }
}

/// The readable end of a schema `$id`.
fn schema_title(id: &str) -> String {
    if id.is_empty() {
        return "—".to_owned();
    }
    id.rsplit('/').next().unwrap_or(id).to_owned()
}

/// Fetches one Catalog object by id; a malformed id is a 404 like an unknown one.
async fn catalog_object(
    console: &Shared,
    session: &Session,
    collection: &str,
    id: &str,
    properties: Option<&str>,
) -> Result<Value, ApiFailure> {
    let mut uri = format!("{CATALOG}/{collection}/{}", enc(id));
    if let Some(properties) = properties {
        uri.push_str("?properties=");
        uri.push_str(properties);
    }
    match console.api.get_json(session, &uri).await {
        Ok(map) => first_object(&map)
            .map(|(_, doc)| doc)
            .ok_or(ApiFailure::NotFound),
        Err(ApiFailure::Refused { status, .. }) if status == StatusCode::BAD_REQUEST => {
            Err(ApiFailure::NotFound)
        }
        Err(failure) => Err(failure),
    }
}

pub async fn dataset(
    State(console): State<Shared>,
    headers: HeaderMap,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = query_pairs(raw.as_deref());
    let page = paging(&params, "", 20);
    let cursor = Cursor::from_params(&params);
    let doc = match catalog_object(&console, &session, "dataSets", &id, None).await {
        Ok(doc) => doc,
        Err(failure) => return console.failure(&session, "dataset", failure),
    };
    let batch_properties = "status,created,completed,recordCount,failedRecordCount,size";
    let mut batches_query = vec![
        ("dataSet", id.clone()),
        ("orderBy", "desc:created".to_owned()),
        ("start", cursor.skip.to_string()),
        ("limit", (page.limit + 1).to_string()),
        ("properties", batch_properties.to_owned()),
    ];
    if let Some(before) = cursor.before {
        batches_query.push(("createdBefore", before.to_string()));
    }
    let batches_uri = link(CATALOG, "/batches", &batches_query);
    let chart_uri = link(
        CATALOG,
        "/batches",
        &[
            ("dataSet", id.clone()),
            ("orderBy", "desc:created".to_owned()),
            ("limit", CHART_BATCHES.to_string()),
            ("properties", batch_properties.to_owned()),
        ],
    );
    let schema_id = text(&doc["schemaRef"], "id").to_owned();
    let schema_uri = format!("{REGISTRY}/tenant/schemas/{}", enc(&schema_id));
    let files_uri = link(
        CATALOG,
        "/dataSetFiles",
        &[
            ("dataSetId", id.clone()),
            ("isValid", "true".to_owned()),
            ("limit", FILES_SUMMED.to_string()),
            ("properties", "records,size".to_owned()),
        ],
    );
    let (batches, chart_batches, files, schema) = tokio::join!(
        console.api.get_json(&session, &batches_uri),
        console.api.get_json(&session, &chart_uri),
        console.api.get_json(&session, &files_uri),
        async {
            if schema_id.is_empty() {
                Err(ApiFailure::NotFound)
            } else {
                console
                    .api
                    .get_json_as(&session, &schema_uri, XED_FULL)
                    .await
            }
        }
    );
    let mut batches: Vec<(String, Value)> = match batches {
        Ok(Value::Object(map)) => map.into_iter().collect(),
        Ok(_) => Vec::new(),
        Err(failure) => return console.failure(&session, "dataset", failure),
    };
    let more = batches.len() as u64 > page.limit;
    batches.truncate(page.limit as usize);
    // Rows and bytes of the live data: the valid dataset files, summed over the first
    // FILES_SUMMED (a lower bound past that).
    let (rows, size, files_capped) = match &files {
        Ok(Value::Object(map)) => (
            map.values().filter_map(|f| num(f, "records")).sum::<u64>(),
            map.values().filter_map(|f| num(f, "size")).sum::<u64>(),
            map.len() as u64 >= FILES_SUMMED,
        ),
        _ => (0, 0, false),
    };
    let bars: Vec<chart::Bar> = match chart_batches {
        Ok(Value::Object(map)) => map
            .into_iter()
            .map(|(bid, b)| chart::Bar {
                status: text(&b, "status").to_owned(),
                created: ms(&b, "created"),
                ingested: num(&b, "recordCount").unwrap_or(0),
                rejected: num(&b, "failedRecordCount").unwrap_or(0),
                id: bid,
            })
            .collect(),
        _ => Vec::new(),
    };
    let base = &console.base;
    let table = doc["tags"]["adobe/pqs/table"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sql = if table.is_empty() {
        String::new()
    } else {
        format!("SELECT * FROM {table} LIMIT 10")
    };
    let first_page = link(
        base,
        &format!("/datasets/{}", enc(&id)),
        &[("limit", page.limit.to_string())],
    );
    let prev = (cursor.before.is_some() || cursor.skip > 0).then_some(first_page);
    let next = if more {
        cursor.next(&batches, |b| ms(b, "created")).map(|next| {
            let mut params = vec![
                (
                    "before",
                    next.before.map(|b| b.to_string()).unwrap_or_default(),
                ),
                ("limit", page.limit.to_string()),
            ];
            if next.skip > 0 {
                params.push(("skip", next.skip.to_string()));
            }
            link(base, &format!("/datasets/{}", enc(&id)), &params)
        })
    } else {
        None
    };
    let name = display_name(&doc, &id);
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href={ (base) "/datasets" } { "Datasets" } " / " span { (name) } }
        div.heading {
            h1 { (name) }
            div.actions {
                a.button.primary href={ (base) "/datasets/" (enc(&id)) "/upload" } { "Upload files" }
                a.button href={ (base) "/datasets/" (enc(&id)) "/preview" } { "Preview data" }
            }
        }
        @if let Some(description) = doc["description"].as_str().filter(|d| !d.is_empty()) { p { (description) } }
        dl.facts {
            dt { "Dataset id" } dd { code { (id) } }
            dt { "Schema" } dd {
                @if schema_id.is_empty() { "—" } @else {
                    a href=(link(base, "/schema", &[("id", schema_id.clone())])) { code { (schema_id) } }
                }
            }
            dt { "Last batch" } dd {
                (html::status(text(&doc, "lastBatchStatus")))
                @if let Some(batch) = doc["lastBatchId"].as_str() { " " a href={ (base) "/batches/" (enc(batch)) } { code { (batch) } } }
            }
            dt { "Rows" } dd { @if files_capped { "≥ " } (html::count(Some(rows))) @if files_capped { span.sub { " (the first " (FILES_SUMMED) " files)" } } }
            dt { "Size" } dd { @if files_capped { "≥ " } (html::bytes(Some(size))) }
            dt { "Created" } dd { (html::time(ms(&doc, "created"))) }
            dt { "Table" } dd { @if table.is_empty() { "— (created by the first ingested batch)" } @else { code { (table) } } }
        }
        @if !sql.is_empty() {
            section {
                h2 { "Query it" }
                p.hint { "On the SQL page, with " code { "psql" } " on the Query Service's wire endpoint, or with the Query Service API:" }
                div.copy {
                    pre #sql { code { (sql) } }
                    button type="button" data-copy="sql" hidden { "Copy" }
                }
                p { a href=(link(base, "/sql", &[("sql", sql.clone())])) { "Run it on the SQL page" } }
            }
        }
        section {
            h2 { "Batches over time" }
            @if bars.is_empty() { p.empty { "No batches yet." } }
            @else {
                figure.chart {
                    (html::trusted(chart::svg(&bars, base)))
                    figcaption {
                        "The last " (bars.len()) " batches, oldest on the left; height: rows read (square-root scale); top part: rejected rows. "
                        span.legend { span.key.ok {} "success " span.key.bad {} "failed/aborted " span.key.run {} "in progress " span.key.off {} "inactive " span.key.rejected {} "rejected rows" }
                    }
                }
            }
        }
        section {
            h2 { "Batches" }
            @if batches.is_empty() { p.empty { "No batches on this page." } }
            @else {
                table.list {
                    caption.visually-hidden { "Batches of this dataset, newest first" }
                    thead { tr { th scope="col" { "Batch" } th scope="col" { "Status" } th scope="col" class="num" { "Rows ingested" } th scope="col" class="num" { "Rows rejected" } th scope="col" class="num" { "Size" } th scope="col" { "Created" } th scope="col" { "Completed" } } }
                    tbody {
                        @for (bid, b) in &batches {
                            tr {
                                td { a href={ (base) "/batches/" (enc(bid)) } { code { (bid) } } }
                                td { (html::status(text(b, "status"))) }
                                td.num { (html::count(num(b, "recordCount"))) }
                                td.num { @let failed = num(b, "failedRecordCount"); @if failed.unwrap_or(0) > 0 { span.bad-text { (html::count(failed)) } } @else { (html::count(failed)) } }
                                td.num { (html::bytes(num(b, "size"))) }
                                td { (html::time(ms(b, "created"))) }
                                td { (html::time(ms(b, "completed"))) }
                            }
                        }
                    }
                }
            }
            (html::pager(prev, next, "Batch pages"))
        }
        section {
            h2 { "Schema" }
            @match &schema {
                Ok(schema) => { (schema_tree(schema)) }
                Err(_) => { p.empty { "The schema could not be read." } }
            }
        }
    };
    html::respond(StatusCode::OK, &frame(&console, &session, &name), &body)
}

/// A schema's fields as a nested list: name, type and title, objects expandable.
fn schema_tree(schema: &Value) -> Markup {
    let mut budget = MAX_TREE_FIELDS;
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    let required = required_of(schema);
    html! {
        @if let Some(title) = schema["title"].as_str() { p { strong { (title) } @if let Some(class) = schema["meta:class"].as_str() { " · class " code { (class) } } } }
        ul.tree { (fields(properties, &required, 0, &mut budget)) }
        @if budget == 0 { p.hint { "Only the first " (MAX_TREE_FIELDS) " fields are shown." } }
    }
}

fn required_of(node: &Value) -> Vec<String> {
    node["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn type_of(node: &Value) -> String {
    let base = node["meta:xdmType"]
        .as_str()
        .or_else(|| node["type"].as_str())
        .unwrap_or("any");
    if base == "array" {
        format!("array of {}", type_of(&node["items"]))
    } else {
        base.to_owned()
    }
}

fn fields(
    properties: &Map<String, Value>,
    required: &[String],
    depth: usize,
    budget: &mut usize,
) -> Markup {
    let mut items = Vec::new();
    for (name, node) in properties {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let holder = if node["properties"].is_object() {
            node
        } else {
            &node["items"]
        };
        let item = match holder["properties"].as_object() {
            Some(children) if depth < MAX_TREE_DEPTH => {
                let inner = fields(children, &required_of(holder), depth + 1, budget);
                html! {
                    details open[depth < 1] {
                        summary { (field_line(name, node, required)) }
                        ul { (inner) }
                    }
                }
            }
            _ => field_line(name, node, required),
        };
        items.push(item);
    }
    html! { @for item in items { li { (item) } } }
}

fn field_line(name: &str, node: &Value, required: &[String]) -> Markup {
    html! {
        code.field { (name) }
        " " span.type { (type_of(node)) }
        @if required.iter().any(|r| r == name) { " " span.req { "required" } }
        @if let Some(title) = node["title"].as_str() { " " span.sub { (title) } }
    }
}

pub async fn preview(State(console): State<Shared>, headers: HeaderMap, Id(id): Id) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let doc = match catalog_object(&console, &session, "dataSets", &id, Some("name")).await {
        Ok(doc) => doc,
        Err(failure) => return console.failure(&session, "dataset", failure),
    };
    let rows = match console
        .api
        .get_json(&session, &format!("{EXPORT}/datasets/{}/preview", enc(&id)))
        .await
    {
        Ok(answer) => answer["data"].as_array().cloned().unwrap_or_default(),
        Err(failure) => return console.failure(&session, "dataset", failure),
    };
    let mut columns: Vec<String> = Vec::new();
    for row in rows.iter().take(20) {
        if let Some(map) = row.as_object() {
            for key in map.keys() {
                if columns.len() < 30 && !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
    }
    let name = display_name(&doc, &id);
    let base = &console.base;
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href={ (base) "/datasets" } { "Datasets" } " / " a href={ (base) "/datasets/" (enc(&id)) } { (name) } " / " span { "Preview" } }
        h1 { "Preview of " (name) }
        @if rows.is_empty() { p.empty { "Nothing ingested yet." } }
        @else {
            p.hint { "The first " (rows.len().min(20)) " rows of the newest data." }
            div.scroll {
                table.list.preview {
                    thead { tr { @for c in &columns { th scope="col" { (c) } } } }
                    tbody { @for row in rows.iter().take(20) { tr { @for c in &columns { td { (cell(&row[c.as_str()])) } } } } }
                }
            }
        }
    };
    html::respond(StatusCode::OK, &frame(&console, &session, "Preview"), &body)
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    truncate(&text, 200)
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut out: String = text.chars().take(max).collect();
        out.push('…');
        out
    }
}

pub async fn batch(State(console): State<Shared>, headers: HeaderMap, Id(id): Id) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let doc = match catalog_object(&console, &session, "batches", &id, None).await {
        Ok(doc) => doc,
        Err(failure) => return console.failure(&session, "batch", failure),
    };
    let status = text(&doc, "status").to_owned();
    let dataset_id = doc["relatedObjects"]
        .as_array()
        .and_then(|r| r.iter().find(|o| o["type"] == "dataSet"))
        .and_then(|o| o["id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let failed_count = num(&doc, "failedRecordCount").unwrap_or(0);
    let terminal = !html::running(&status);
    let (dataset, files, failed, sample) = tokio::join!(
        async {
            if dataset_id.is_empty() {
                None
            } else {
                catalog_object(&console, &session, "dataSets", &dataset_id, Some("name"))
                    .await
                    .ok()
            }
        },
        async {
            if status == "success" || status == "inactive" {
                console
                    .api
                    .get_json(&session, &format!("{EXPORT}/batches/{}/files", enc(&id)))
                    .await
                    .ok()
            } else {
                None
            }
        },
        async {
            if terminal && (failed_count > 0 || status == "failed") {
                rejected_rows(&console, &session, &id).await
            } else {
                None
            }
        },
        async {
            if terminal && failed_count > 0 {
                console
                    .api
                    .send(
                        &session,
                        None,
                        Method::HEAD,
                        &format!(
                            "{EXPORT}/batches/{}/meta?path=row_errors_sample.json",
                            enc(&id)
                        ),
                        &[],
                        Body::empty(),
                    )
                    .await
                    .status()
                    .is_success()
            } else {
                false
            }
        },
    );
    let dataset_name = dataset
        .as_ref()
        .map_or_else(|| dataset_id.clone(), |d| display_name(d, &dataset_id));
    let base = &console.base;
    let files: Vec<Value> = files
        .and_then(|f| f["data"].as_array().cloned())
        .unwrap_or_default();
    let (failed_files, rejected) = failed.unwrap_or_default();
    let errors: Vec<Value> = doc["errors"].as_array().cloned().unwrap_or_default();
    let metrics = doc["metrics"].as_object().cloned().unwrap_or_default();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" {
            a href={ (base) "/datasets" } { "Datasets" } " / "
            @if !dataset_id.is_empty() { a href={ (base) "/datasets/" (enc(&dataset_id)) } { (dataset_name) } " / " }
            span { "Batch" }
        }
        div.heading {
            h1 { "Batch " code { (id) } }
            div.actions {
                @if status == "success" { a.button.danger href={ (base) "/batches/" (enc(&id)) "/revert" } { "Revert…" } }
                @if html::running(&status) { a.button.danger href={ (base) "/batches/" (enc(&id)) "/abort" } { "Abort…" } }
            }
        }
        (status_section(&console, &id, &doc))
        section {
            h2 { "Timeline" }
            ol.timeline {
                li { span.when { (html::time(ms(&doc, "created"))) } " Created (loading) by " code { (text(&doc, "createdUser")) } }
                @if let Some(started) = ms(&doc, "started") { li { span.when { (html::time(Some(started))) } " Processing started" } }
                @if let Some(completed) = ms(&doc, "completed") { li { span.when { (html::time(Some(completed))) } " Completed: " (html::status(&status)) } }
                li { span.when { (html::time(ms(&doc, "updated"))) } " Last change: " (html::status(&status)) }
            }
        }
        @if !errors.is_empty() {
            section {
                h2 { "Errors" }
                table.list {
                    thead { tr { th scope="col" { "Code" } th scope="col" { "Description" } th scope="col" class="num" { "Rows" } } }
                    tbody { @for e in &errors { tr { td { code { (text(e, "code")) } } td { (text(e, "description")) } td.num { (html::count(num(e, "recordCount"))) } } } }
                }
            }
        }
        @if !rejected.is_empty() || !failed_files.is_empty() {
            section #rejected {
                h2 { "Rejected rows" }
                @if rejected.is_empty() { p.empty { "The rejected rows could not be read." } }
                @else {
                    p.hint { "Each rejected row with the violations that rejected it" @if rejected.len() >= MAX_REJECTED_ROWS { " (the first " (MAX_REJECTED_ROWS) "; download the files for all)" } "." }
                    div.scroll {
                        table.list.rejected {
                            thead { tr { th scope="col" { "File" } th scope="col" { "Row" } th scope="col" { "Violations" } } }
                            tbody {
                                @for row in &rejected {
                                    tr {
                                        td { (row.file) }
                                        td { pre.row { (row.row) } }
                                        td { ul.violations { @for v in &row.violations { li { code { (v.code) } @if !v.at.is_empty() { " at " code { (v.at) } } " " (v.message) } } } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if !metrics.is_empty() {
            section {
                h2 { "Metrics" }
                dl.facts.metrics { @for (key, value) in &metrics { dt { (key) } dd { (metric(key, value)) } } }
            }
        }
        section {
            h2 { "Downloads" }
            ul.downloads {
                @for f in &files {
                    @let file_id = text(f, "dataSetFileId");
                    li { a href={ (base) "/files/" (enc(file_id)) } { "Data file " code { (file_id) } } " · " (html::count(num(f, "records"))) " rows · " (html::bytes(num(f, "size"))) }
                }
                @for name in &failed_files {
                    li { a href=(link(base, &format!("/batches/{}/download/failed", enc(&id)), &[("path", name.clone())])) download { "Rejected rows: " code { (name) } } }
                }
                @if sample {
                    li { a href=(link(base, &format!("/batches/{}/download/meta", enc(&id)), &[("path", "row_errors_sample.json".to_owned())])) download { "Diagnostics sample: " code { "row_errors_sample.json" } } }
                }
                @if files.is_empty() && failed_files.is_empty() && !sample { li.empty { "Nothing to download." } }
            }
        }
    };
    let mut frame = frame(&console, &session, "Batch");
    if !terminal {
        frame.refresh_secs = Some(5);
    }
    html::respond(StatusCode::OK, &frame, &body)
}

fn metric(key: &str, value: &Value) -> String {
    match value.as_i64() {
        Some(ms) if key.ends_with("Time") => html::time(Some(ms)),
        Some(n) if key.ends_with("ByteSize") => html::bytes(u64::try_from(n).ok()),
        Some(n) => html::count(u64::try_from(n).ok()),
        None => value.to_string(),
    }
}

/// The part of the batch page that changes while the batch runs; polled by console.js.
fn status_section(console: &Shared, id: &str, doc: &Value) -> Markup {
    let status = text(doc, "status");
    let running = html::running(status);
    html! {
        section #batch-status aria-live="polite"
            data-poll=[running.then(|| format!("{}/batches/{}/status", console.base, enc(id)))]
            data-running=(running) {
            dl.facts.status {
                dt { "Status" } dd { (html::status(status)) @if running { " " span.spinner aria-hidden="true" {} span.sub { " updating…" } } }
                dt { "Rows ingested" } dd { (html::count(num(doc, "recordCount"))) }
                dt { "Rows rejected" } dd { (html::count(num(doc, "failedRecordCount"))) }
                dt { "Size" } dd { (html::bytes(num(doc, "size"))) }
                dt { "Format" } dd { (text(&doc["inputFormat"], "format")) }
            }
        }
    }
}

pub async fn batch_status(
    State(console): State<Shared>,
    headers: HeaderMap,
    Id(id): Id,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(_) => return StatusCode::UNAUTHORIZED.into_response(),
    };
    match catalog_object(&console, &session, "batches", &id, None).await {
        Ok(doc) => (
            [("cache-control", "no-store")],
            Html(status_section(&console, &id, &doc).into_string()),
        )
            .into_response(),
        Err(ApiFailure::NotFound) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

/// One rejected row and why.
struct Rejected {
    file: String,
    row: String,
    violations: Vec<Violation>,
}

struct Violation {
    code: String,
    at: String,
    message: String,
}

/// Reads the failed-row files of a batch (at most [`MAX_REJECTED_ROWS`] rows and
/// [`MAX_REJECTED_BYTES`] bytes): returns the files' names and the rows.
async fn rejected_rows(
    console: &Shared,
    session: &Session,
    id: &str,
) -> Option<(Vec<String>, Vec<Rejected>)> {
    let listing = console
        .api
        .get_json(session, &format!("{EXPORT}/batches/{}/failed", enc(id)))
        .await
        .ok()?;
    let names: Vec<String> = listing["data"]
        .as_array()?
        .iter()
        .filter_map(|f| f["name"].as_str().map(str::to_owned))
        .filter(|name| name != "_SUCCESS")
        .collect();
    let mut rows = Vec::new();
    let mut budget = MAX_REJECTED_BYTES;
    for name in &names {
        if rows.len() >= MAX_REJECTED_ROWS || budget == 0 {
            break;
        }
        let uri = link(
            EXPORT,
            &format!("/batches/{}/failed", enc(id)),
            &[("path", name.clone())],
        );
        let response = console
            .api
            .send(session, None, Method::GET, &uri, &[], Body::empty())
            .await;
        if !response.status().is_success() {
            continue;
        }
        let bytes = read_prefix(response.into_body(), budget).await;
        budget = budget.saturating_sub(bytes.len());
        // Whole lines only: a row cut by the byte bound is left out.
        let complete = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(end) => &bytes[..=end],
            None => &bytes[..0],
        };
        for line in complete.split(|b| *b == b'\n') {
            if rows.len() >= MAX_REJECTED_ROWS {
                break;
            }
            if let Ok(value) = serde_json::from_slice::<Value>(line) {
                rows.push(rejected(&value));
            }
        }
    }
    Some((names, rows))
}

/// Reads at most `max` bytes of a body, dropping the rest unread.
async fn read_prefix(body: Body, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = max - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= max {
            break;
        }
    }
    out
}

/// Splits a failed-row record (spec §7.5) into the row and its violations.
fn rejected(value: &Value) -> Rejected {
    let file = text(value, "_filename").to_owned();
    let row = if let Some(raw) = value["_corrupt_record"].as_str() {
        truncate(raw, 2000)
    } else {
        let row: Map<String, Value> = value
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| {
                        !matches!(
                            k.as_str(),
                            "_errors" | "_validationErrors" | "_filename" | "_corrupt_record"
                        )
                    })
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        truncate(
            &serde_json::to_string_pretty(&Value::Object(row)).unwrap_or_default(),
            2000,
        )
    };
    let mut violations = Vec::new();
    for e in value["_errors"].as_array().into_iter().flatten() {
        violations.push(Violation {
            code: text(e, "code").to_owned(),
            at: text(e, "column").to_owned(),
            message: text(e, "message").to_owned(),
        });
    }
    for e in value["_validationErrors"].as_array().into_iter().flatten() {
        violations.push(Violation {
            code: text(e, "keyword").to_owned(),
            at: text(e, "pointerToViolation").to_owned(),
            message: text(e, "message").to_owned(),
        });
    }
    Rejected {
        file,
        row,
        violations,
    }
}

/// `/batches/{id}/download/{failed|meta}?path=…`: the Data Access file, streamed through.
pub async fn download(
    State(console): State<Shared>,
    headers: HeaderMap,
    Ids(id, kind): Ids,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    if kind != "failed" && kind != "meta" {
        return console.not_found(Some(&session), "download");
    }
    let params = query_pairs(raw.as_deref());
    let Some(path) = params.get("path").filter(|p| !p.is_empty()) else {
        return console.not_found(Some(&session), "file");
    };
    let uri = link(
        EXPORT,
        &format!("/batches/{}/{kind}", enc(&id)),
        &[("path", path.clone())],
    );
    stream_through(&console, &session, &uri, path).await
}

/// `/files/{id}`: the physical files behind a dataset file, and with `path` the bytes.
pub async fn dataset_file(
    State(console): State<Shared>,
    headers: HeaderMap,
    Id(id): Id,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = query_pairs(raw.as_deref());
    if let Some(path) = params.get("path").filter(|p| !p.is_empty()) {
        let uri = link(
            EXPORT,
            &format!("/files/{}", enc(&id)),
            &[("path", path.clone())],
        );
        return stream_through(&console, &session, &uri, path).await;
    }
    let listing = match console
        .api
        .get_json(&session, &format!("{EXPORT}/files/{}", enc(&id)))
        .await
    {
        Ok(listing) => listing,
        Err(ApiFailure::Refused { status, .. }) if status == StatusCode::BAD_REQUEST => {
            return console.not_found(Some(&session), "file");
        }
        Err(failure) => return console.failure(&session, "file", failure),
    };
    let base = &console.base;
    let entries = listing["data"].as_array().cloned().unwrap_or_default();
    let body = html! {
        h1 { "Dataset file " code { (id) } }
        ul.downloads {
            @for e in &entries {
                @let name = text(e, "name");
                li { a href=(link(base, &format!("/files/{}", enc(&id)), &[("path", name.to_owned())])) download { code { (name) } } " · " (html::bytes(num(e, "length"))) }
            }
        }
    };
    html::respond(
        StatusCode::OK,
        &frame(&console, &session, "Dataset file"),
        &body,
    )
}

/// Streams an API download to the browser as an attachment.
async fn stream_through(console: &Shared, session: &Session, uri: &str, path: &str) -> Response {
    let response = console
        .api
        .send(session, None, Method::GET, uri, &[], Body::empty())
        .await;
    if !response.status().is_success() {
        let failure = ApiFailure::from_response(response).await;
        let failure = match failure {
            ApiFailure::Refused { status, .. } if status == StatusCode::BAD_REQUEST => {
                ApiFailure::NotFound
            }
            other => other,
        };
        return console.failure(session, "file", failure);
    }
    let name: String = path
        .rsplit('/')
        .next()
        .unwrap_or("download")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(value) = format!("attachment; filename=\"{name}\"").parse() {
        parts.headers.insert(header::CONTENT_DISPOSITION, value);
    }
    parts.headers.insert(
        "x-content-type-options",
        header::HeaderValue::from_static("nosniff"),
    );
    Response::from_parts(parts, body)
}

pub async fn schemas(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = query_pairs(raw.as_deref());
    let kind = match params.get("kind").map(String::as_str) {
        Some("fieldgroups") => "fieldgroups",
        _ => "schemas",
    };
    let mut query = vec![
        ("orderby", "title".to_owned()),
        ("limit", MAX_PAGE.to_string()),
    ];
    if let Some(start) = params.get("start").filter(|s| !s.is_empty()) {
        query.push(("start", start.chars().take(300).collect()));
    }
    let uri = link(REGISTRY, &format!("/tenant/{kind}"), &query);
    let list = match console
        .api
        .get_json_as(&session, &uri, "application/vnd.adobe.xed-id+json")
        .await
    {
        Ok(list) => list,
        Err(failure) => return console.failure(&session, "schema", failure),
    };
    let results = list["results"].as_array().cloned().unwrap_or_default();
    let next = list["_page"]["next"].as_str().map(|start| {
        link(
            &console.base,
            "/schemas",
            &[("kind", kind.to_owned()), ("start", start.to_owned())],
        )
    });
    let base = &console.base;
    let body = html! {
        h1 { "Schemas and field groups" }
        nav.tabs aria-label="Kind" {
            a href={ (base) "/schemas" } aria-current=[(kind == "schemas").then_some("page")] { "Schemas" }
            a href={ (base) "/schemas?kind=fieldgroups" } aria-current=[(kind == "fieldgroups").then_some("page")] { "Field groups" }
        }
        @if results.is_empty() { p.empty { "None in this sandbox." } }
        @else {
            table.list {
                thead { tr { th scope="col" { "Title" } th scope="col" { "Id" } th scope="col" { "Version" } } }
                tbody {
                    @for r in &results {
                        @let sid = text(r, "$id");
                        tr {
                            td { a href=(link(base, "/schema", &[("id", sid.to_owned()), ("kind", kind.to_owned())])) { (text(r, "title")) } }
                            td { code { (sid) } }
                            td { (text(r, "version")) }
                        }
                    }
                }
            }
        }
        (html::pager(None, next, "Schema pages"))
    };
    html::respond(StatusCode::OK, &frame(&console, &session, "Schemas"), &body)
}

pub async fn schema(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let params = query_pairs(raw.as_deref());
    let kind = match params.get("kind").map(String::as_str) {
        Some("fieldgroups") => "fieldgroups",
        _ => "schemas",
    };
    let Some(id) = params
        .get("id")
        .filter(|id| !id.is_empty() && id.len() <= 1000)
    else {
        return console.not_found(Some(&session), "schema");
    };
    let mut doc = None;
    for container in ["tenant", "global"] {
        let uri = format!("{REGISTRY}/{container}/{kind}/{}", enc(id));
        match console.api.get_json_as(&session, &uri, XED_FULL).await {
            Ok(found) => {
                doc = Some(found);
                break;
            }
            Err(ApiFailure::NotFound | ApiFailure::Refused { .. }) => {}
            Err(failure) => return console.failure(&session, "schema", failure),
        }
    }
    let Some(doc) = doc else {
        return console.not_found(Some(&session), "schema");
    };
    let base = &console.base;
    let title = text(&doc, "title").to_owned();
    let body = html! {
        nav.crumbs aria-label="Breadcrumb" { a href={ (base) "/schemas" } { "Schemas" } " / " span { (title) } }
        h1 { (title) }
        p { code { (id) } @if let Some(v) = doc["version"].as_str() { " · version " (v) } }
        @if let Some(d) = doc["description"].as_str() { p { (d) } }
        (schema_tree(&doc))
    };
    html::respond(StatusCode::OK, &frame(&console, &session, &title), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_cannot_become_an_any_of_or_a_negation() {
        assert_eq!(name_filter("orders"), "*orders*");
        assert_eq!(name_filter("a,b"), "*a*b*");
        assert_eq!(name_filter("!x"), "*!x*");
        assert_eq!(name_filter("**"), "*");
    }

    #[test]
    fn the_next_page_starts_after_the_last_row_and_its_ties() {
        let rows = |created: &[i64]| -> Vec<(String, i64)> {
            created.iter().map(|c| (String::new(), *c)).collect()
        };
        let first = Cursor {
            before: None,
            skip: 0,
        };
        let next = first.next(&rows(&[9, 8, 7, 7]), |c| Some(*c)).unwrap();
        assert_eq!(
            next,
            Cursor {
                before: Some(8),
                skip: 2
            }
        );
        // A page inside one tie group carries the skip forward.
        let again = next.next(&rows(&[7, 7]), |c| Some(*c)).unwrap();
        assert_eq!(
            again,
            Cursor {
                before: Some(8),
                skip: 4
            }
        );
        let later = again.next(&rows(&[7, 5]), |c| Some(*c)).unwrap();
        assert_eq!(
            later,
            Cursor {
                before: Some(6),
                skip: 1
            }
        );
    }

    #[test]
    fn paging_is_clamped() {
        let params: HashMap<String, String> = [("limit", "100000"), ("start", "99999999999")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let page = paging(&params, "", 20);
        assert_eq!(page.limit, MAX_PAGE);
        assert_eq!(page.start, MAX_START);
        let page = paging(
            &HashMap::from([("limit".to_owned(), "0".to_owned())]),
            "",
            20,
        );
        assert_eq!(page.limit, 1);
    }

    #[test]
    fn a_rejected_row_keeps_its_fields_and_violations() {
        let r = rejected(&serde_json::json!({
            "name": "x", "_id": "1", "_filename": "a.json",
            "_validationErrors": [{"keyword": "required", "message": "missing", "pointerToViolation": "#/age"}],
            "_errors": [{"code": "INGEST-9101-400", "column": "age", "message": "not a number"}]
        }));
        assert_eq!(r.file, "a.json");
        assert!(
            r.row.contains("\"name\"") && r.row.contains("\"_id\"") && !r.row.contains("_filename")
        );
        assert_eq!(r.violations.len(), 2);
        assert_eq!(r.violations[0].code, "INGEST-9101-400");
        assert_eq!(r.violations[1].at, "#/age");
    }
}
