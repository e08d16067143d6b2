//! The SQL page: a SELECT over the signed-in tenant's tables, its first rows shown as a
//! table. The Query Service's REST API returns no rows (as in AEP), so the page runs the
//! statement on the node's SQL engine directly, after the API has authenticated the
//! session's token for its tenant; the engine sees only that tenant's tables, as a wire
//! session does. CREATE TABLE AS and INSERT INTO go through the Query Service API or psql.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use lakeport_api::query::{Sample, SqlError, Statement};
use lakeport_domain::tenant::Tenant;
use maud::{Markup, html};
use serde_json::Value;

use crate::html::{self, Frame};
use crate::session::Session;
use crate::{Shared, SqlEngine, query_pairs};

/// Rows the page shows at most.
pub const MAX_ROWS: usize = 100;
/// JSON bytes of those rows at most; a result with wider rows shows fewer.
pub const MAX_BYTES: usize = 1024 * 1024;
/// The longest statement the page takes.
const MAX_SQL_CHARS: usize = 8 * 1024;

/// What running a statement gave.
enum Outcome {
    Rows(Sample, Duration),
    Failed(SqlError),
}

pub async fn form(
    State(console): State<Shared>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let sql = query_pairs(raw.as_deref())
        .remove("sql")
        .unwrap_or_default();
    page(&console, &session, StatusCode::OK, &sql, None)
}

pub async fn run(State(console): State<Shared>, headers: HeaderMap, body: Body) -> Response {
    let session = match console.signed_in(&headers) {
        Ok(session) => session,
        Err(redirect) => return redirect,
    };
    let form = match console
        .session_form(
            &session,
            body,
            "Statement refused",
            &format!("The SQL page takes statements of at most {MAX_SQL_CHARS} characters."),
        )
        .await
    {
        Ok(form) => form,
        Err(page) => return page,
    };
    let sql = form.get("sql").map(|s| s.trim()).unwrap_or_default();
    let Some(engine) = console.sql.as_ref() else {
        return page(
            &console,
            &session,
            StatusCode::SERVICE_UNAVAILABLE,
            sql,
            Some(failure(&SqlError::new(
                "0A000",
                "this server runs without the Query Service's SQL engine",
            ))),
        );
    };
    // The API decides whether the session's token still holds its tenant (revoked tokens,
    // removed entitlements), exactly as for any other page.
    if let Err(failure) = console
        .api
        .get_json(&session, "/data/foundation/query/queries?limit=1")
        .await
    {
        return console.failure(&session, "page", failure);
    }
    let outcome = if sql.is_empty() {
        Outcome::Failed(SqlError::new("42601", "write a SELECT statement to run"))
    } else if sql.chars().count() > MAX_SQL_CHARS {
        Outcome::Failed(SqlError::new(
            "54000",
            format!(
                "the statement is longer than {MAX_SQL_CHARS} characters, the most the SQL page takes"
            ),
        ))
    } else {
        execute(engine, &session, sql).await
    };
    let status = match &outcome {
        Outcome::Rows(..) => StatusCode::OK,
        Outcome::Failed(err) if err.code.starts_with("58") || err.code.starts_with("XX") => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Outcome::Failed(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let result = match &outcome {
        Outcome::Rows(sample, elapsed) => rows(sample, *elapsed),
        Outcome::Failed(err) => failure(err),
    };
    page(&console, &session, status, sql, Some(result))
}

async fn execute(engine: &SqlEngine, session: &Session, sql: &str) -> Outcome {
    let Some(tenant) = session
        .tenant
        .as_ref()
        .and_then(|(org, sandbox)| Tenant::parse(org, sandbox).ok())
    else {
        return Outcome::Failed(SqlError::new("28000", "choose an organization and sandbox"));
    };
    let select = match engine.engine.parse(sql) {
        Ok(parsed) => match parsed.statement {
            Statement::Select { sql } => sql,
            Statement::CreateTableAs { .. } | Statement::InsertInto { .. } => {
                return Outcome::Failed(SqlError::new(
                    "0A000",
                    "the SQL page runs SELECT statements; run CREATE TABLE AS and INSERT INTO through the Query Service API (POST /data/foundation/query/queries) or psql, so they are recorded as queries",
                ));
            }
        },
        Err(err) => return Outcome::Failed(err),
    };
    let started = Instant::now();
    let sampled = tokio::time::timeout(
        engine.timeout,
        engine.engine.sample(&tenant, &select, MAX_ROWS, MAX_BYTES),
    )
    .await;
    match sampled {
        Ok(Ok(sample)) => Outcome::Rows(sample, started.elapsed()),
        Ok(Err(err)) => Outcome::Failed(err),
        Err(_) => Outcome::Failed(SqlError::new(
            "57014",
            format!(
                "canceling statement due to statement timeout: it ran longer than query.select_timeout_secs ({} s)",
                engine.timeout.as_secs()
            ),
        )),
    }
}

fn rows(sample: &Sample, elapsed: Duration) -> Markup {
    let count = sample.rows.len();
    // A column of numbers is right-aligned, its heading too.
    let numeric: Vec<bool> = (0..sample.columns.len())
        .map(|i| {
            sample.rows.iter().any(|row| row[i].is_number())
                && sample
                    .rows
                    .iter()
                    .all(|row| row[i].is_number() || row[i].is_null())
        })
        .collect();
    html! {
        p.hint {
            (count) " " @if count == 1 { "row" } @else { "rows" }
            @if sample.truncated { ", the first of more (the page shows at most " (MAX_ROWS) " rows; use psql or LIMIT/OFFSET for the rest)" }
            " · " (elapsed.as_millis()) " ms"
        }
        div.scroll {
            table.list.result {
                thead { tr { @for (column, numeric) in sample.columns.iter().zip(&numeric) { th.num[*numeric] scope="col" { (column) } } } }
                tbody {
                    @for row in &sample.rows {
                        tr { @for value in row { (cell(value)) } }
                    }
                }
            }
        }
    }
}

fn cell(value: &Value) -> Markup {
    match value {
        Value::Null => html! { td.null { "null" } },
        Value::Number(n) => html! { td.num { (n) } },
        Value::String(s) => html! { td { (s) } },
        Value::Bool(b) => html! { td { (b) } },
        other => html! { td { code { (other.to_string()) } } },
    }
}

fn failure(err: &SqlError) -> Markup {
    html! {
        div.alert role="alert" {
            strong { "ERROR " (err.code) } ": " (err.message)
        }
    }
}

fn page(
    console: &Shared,
    session: &Session,
    status: StatusCode,
    sql: &str,
    result: Option<Markup>,
) -> Response {
    let base = &console.base;
    let body = html! {
        h1 { "SQL" }
        p.hint {
            "A SELECT over the datasets of this sandbox; each dataset is a table named by its "
            code { "adobe/pqs/table" } " tag. The page shows the first " (MAX_ROWS)
            " rows. For more, connect " code { "psql" } " to the Query Service's wire endpoint."
        }
        form.sql method="post" action={ (base) "/sql" } {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="sql" { "Statement" }
            textarea #sql name="sql" rows="8" spellcheck="false" required maxlength=(MAX_SQL_CHARS) { (sql) }
            button.primary type="submit" { "Run" }
        }
        @if let Some(result) = result { section #result aria-live="polite" { h2 { "Result" } (result) } }
    };
    html::respond(
        status,
        &Frame {
            base,
            session: Some(session),
            title: "SQL",
            refresh_secs: None,
        },
        &body,
    )
}
