use std::sync::Arc;
use std::time::{Duration, Instant};

use lakeport_api::context::Auth;
use lakeport_api::query::{QueryEngine, ResultFiles, Statement};
use lakeport_domain::tenant::Tenant;
use lakeport_query::QueryService;
use lakeport_test_support::*;
use serde_json::{Value, json};

const QS: &str = "/data/foundation/query";

pub(crate) async fn app_with(adjust: impl FnOnce(&mut lakeport_config::Config)) -> TestApp {
    TestApp::with_query_engine(
        adjust,
        Box::new(|config, metastore, storage| {
            let service = QueryService::new(
                Auth::from_config(&config.auth),
                metastore,
                storage,
                &config.query,
            )
            .unwrap();
            (Arc::new(service) as Arc<dyn QueryEngine>, Some(15433))
        }),
    )
    .await
}

pub(crate) async fn app() -> TestApp {
    app_with(|_| {}).await
}

pub(crate) fn ns() -> String {
    format!("_{TENANT_A}")
}

pub(crate) fn event(index: usize) -> Value {
    json!({
        "_id": format!("e{index}"),
        "timestamp": "2024-03-01T10:00:00Z",
        ns(): {"memberId": format!("M-{index:03}"), "points": index * 10,
               "tier": if index.is_multiple_of(2) { "gold" } else { "silver" }}
    })
}

/// Ingests rows through the Batch Ingestion API and returns the batch id.
pub(crate) async fn ingest(app: &TestApp, dataset: &str, rows: &[Value]) -> String {
    let batch = app.create_batch(json!({"datasetId": dataset})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: String = rows.iter().map(|row| format!("{row}\n")).collect();
    app.upload(&batch, dataset, "rows.json", body.as_bytes())
        .await;
    let reply = app.signal(&batch, "COMPLETE").await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    app.run_jobs().await;
    assert_eq!(app.batch(&batch).await["status"], "success");
    batch
}

pub(crate) async fn dataset(app: &TestApp, id: &str) -> Value {
    let reply = app.get(&format!("{CATALOG_DATASETS}/{id}")).send().await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    reply.body[id].clone()
}

/// An event dataset with five ingested rows; returns (dataset id, table name).
pub(crate) async fn events(app: &TestApp) -> (String, String) {
    let id = app.create_event_dataset("Loyalty Events").await;
    ingest(app, &id, &(0..5).map(event).collect::<Vec<_>>()).await;
    let table = dataset(app, &id).await["tags"]["adobe/pqs/table"][0]
        .as_str()
        .unwrap()
        .to_owned();
    (id, table)
}

async fn submit(app: &TestApp, body: Value) -> Value {
    submit_as(app, ORG_A, body).await
}

async fn submit_as(app: &TestApp, org: &str, body: Value) -> Value {
    let reply = app
        .post(&format!("{QS}/queries"))
        .tenant(org, "prod")
        .json(body)
        .send()
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    assert_eq!(reply.body["state"], "SUBMITTED", "{}", reply.text);
    reply.body
}

/// Polls a query until it is terminal, running ingestion jobs meanwhile.
async fn finish(app: &TestApp, id: &str) -> Value {
    finish_as(app, ORG_A, id).await
}

async fn finish_as(app: &TestApp, org: &str, id: &str) -> Value {
    let started = Instant::now();
    loop {
        app.run_jobs().await;
        let reply = app
            .get(&format!("{QS}/queries/{id}"))
            .tenant(org, "prod")
            .send()
            .await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        let state = reply.body["state"].as_str().unwrap().to_owned();
        if !matches!(state.as_str(), "SUBMITTED" | "IN_PROGRESS") {
            return reply.body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "query {id} still {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads a table's rows back through a second engine over the same metastore and storage,
/// as JSON objects sorted by their text.
async fn rows(app: &TestApp, select: &str) -> Vec<Value> {
    // As the REST API does: parsed (SNAPSHOT clauses rewritten) first.
    let Statement::Select { sql: select } =
        lakeport_query::parse_statement(select).unwrap().statement
    else {
        panic!("{select} is not a SELECT");
    };
    engine_rows(app, &select).await
}

/// Runs `sql` as it is (no REST parsing: EXPLAIN too) on a second engine over the same
/// metastore and storage; returns its rows as JSON objects sorted by their text.
async fn engine_rows(app: &TestApp, sql: &str) -> Vec<Value> {
    let engine = QueryService::new(
        Auth::from_config(&lakeport_config::Config::default().auth),
        Arc::clone(app.metastore()),
        app.storage().clone(),
        &lakeport_config::Config::default().query,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let files = ResultFiles {
        dir: dir.path().to_owned(),
        max_file_bytes: 1 << 20,
        max_total_bytes: 1 << 30,
    };
    let tenant = Tenant::parse(ORG_A, "prod").unwrap();
    let outcome = engine.run(&tenant, sql, None, Some(&files)).await.unwrap();
    let mut rows: Vec<Value> = outcome
        .files
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    rows.sort_by_key(ToString::to_string);
    assert_eq!(rows.len() as u64, outcome.rows);
    rows
}

/// XDM's camel-case fields resolve unquoted and in any case, as in Adobe's SQL (Spark's
/// names are case-insensitive); DataFusion alone folds `memberId` to an unknown `memberid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camel_case_fields_resolve_in_any_case() {
    let app = app().await;
    let (_, table) = events(&app).await;
    let ns = ns();
    let found = rows(
        &app,
        &format!(
            "SELECT {ns}.memberid AS m, {ns}.memberId AS n FROM {table} WHERE {ns}.MEMBERID = 'M-001'"
        ),
    )
    .await;
    assert_eq!(found, [json!({"m": "M-001", "n": "M-001"})]);
    // Quoted, a name is as written.
    let submitted = submit(
        &app,
        json!({"dbName": "prod:all", "sql": format!("SELECT {ns}.\"memberid\" FROM {table}")}),
    )
    .await;
    let done = finish(&app, submitted["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "FAILED", "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_select_runs_as_a_job_to_success_and_is_listed() {
    let app = app().await;
    let (dataset_id, table) = events(&app).await;
    let submitted = submit(
        &app,
        json!({"dbName": "prod:all", "name": "gold members", "description": "count",
               "sql": format!("SELECT _id FROM {table} WHERE {}.tier = 'gold'", ns())}),
    )
    .await;
    let id = submitted["id"].as_str().unwrap();
    assert_eq!(submitted["client"], "API");
    assert_eq!(submitted["request"]["name"], "gold members");
    let referenced = &submitted["_links"]["referenced_datasets"];
    assert_eq!(referenced.as_array().map(Vec::len), Some(1), "{submitted}");
    assert_eq!(referenced[0]["id"], dataset_id.as_str());
    assert!(
        referenced[0]["href"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/data/foundation/catalog/dataSets/{dataset_id}"))
    );
    assert!(
        submitted["_links"]["cancel"]["href"]
            .as_str()
            .unwrap()
            .ends_with(id)
    );
    let done = finish(&app, id).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["rowCount"], 3);
    assert_eq!(done["errors"], json!([]));
    assert!(done["_links"].get("cancel").is_none());
    let listed = app.get(&format!("{QS}/queries")).send().await;
    assert_eq!(listed.status.as_u16(), 200, "{}", listed.text);
    assert_eq!(listed.body["queries"][0]["id"], id);
    assert_eq!(listed.body["queries"][0]["state"], "SUCCESS");
    assert_eq!(listed.body["_page"]["count"], 1);
    assert_eq!(listed.body["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_statement_ends_failed_with_its_error_and_bad_sql_is_refused() {
    let app = app().await;
    let (_, table) = events(&app).await;
    let failing = submit(
        &app,
        json!({"sql": format!("SELECT CAST({}.tier AS INT) FROM {table}", ns())}),
    )
    .await;
    let done = finish(&app, failing["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["errors"][0]["errorType"], "USER_ERROR", "{done}");
    assert!(
        done["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("gold"),
        "{done}"
    );

    for (sql, needle) in [
        ("SELEC 1", "42601"),
        ("SELECT * FROM no_such_table", "42P01"),
        ("DELETE FROM t", "0A000"),
    ] {
        let reply = app
            .post(&format!("{QS}/queries"))
            .json(json!({"sql": sql}))
            .send()
            .await;
        assert!(
            reply.problem(400, "QS-9002-400").contains(needle),
            "{sql}: {}",
            reply.text
        );
    }
    for body in [
        json!({"name": "no sql"}),
        json!({"sql": 7}),
        json!({"sql": "SELECT 1", "dbName": "dev:all"}),
        json!({"sql": "x".repeat(256 * 1024 + 1)}),
        json!({"templateId": "0a0a0a0a-0000-0000-0000-000000000000"}),
    ] {
        let reply = app.post(&format!("{QS}/queries")).json(body).send().await;
        reply.problem(400, "QS-9001-400");
    }
    let reply = app.get(&format!("{QS}/queries/nope")).send().await;
    reply.problem(404, "QS-9003-404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctas_creates_a_dataset_whose_rows_read_back_and_insert_into_appends() {
    let app = app().await;
    let (_, table) = events(&app).await;
    let ns = ns();
    let ctas = submit(
        &app,
        json!({"sql": format!(
            "CREATE TABLE member_points AS SELECT _id AS event_id, {ns}.\"memberId\" AS member, {ns}.points AS points FROM {table}"
        )}),
    )
    .await;
    assert_eq!(ctas["isCTAS"], true);
    let done = finish(&app, ctas["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    assert_eq!(done["rowCount"], 5);
    let created = done["_links"]["created_dataset"]["id"].as_str().unwrap();
    let doc = dataset(&app, created).await;
    assert_eq!(doc["name"], "member_points");
    assert_eq!(doc["tags"]["adobe/pqs/table"], json!(["member_points"]));
    assert_eq!(doc["tags"]["lakeport/query"][0], ctas["id"]);
    assert_eq!(doc["classification"]["dataBehavior"], "adhoc");
    // The rows went through a batch of the dataset, promoted like any other.
    let batch = doc["lastBatchId"].as_str().unwrap();
    assert_eq!(app.batch(batch).await["status"], "success");
    assert_eq!(app.batch(batch).await["recordCount"], 5);
    let expected: Vec<Value> = (0..5)
        .map(|i| json!({"event_id": format!("e{i}"), "member": format!("M-{i:03}"), "points": i * 10}))
        .collect();
    assert_eq!(rows(&app, "SELECT * FROM member_points").await, expected);

    // The same table again is a FAILED query, not a second dataset.
    let again = submit(
        &app,
        json!({"sql": format!("CREATE TABLE member_points AS SELECT _id AS event_id FROM {table}")}),
    )
    .await;
    let again = finish(&app, again["id"].as_str().unwrap()).await;
    assert_eq!(again["state"], "FAILED");
    assert_eq!(again["errors"][0]["code"], "42P07", "{again}");

    let insert = submit(
        &app,
        json!({"sql": format!(
            "INSERT INTO member_points SELECT _id AS event_id, {ns}.\"memberId\" AS member, {ns}.points + 1 AS points FROM {table} WHERE {ns}.points >= 30"
        )}),
    )
    .await;
    assert_eq!(insert["isInsertInto"], true);
    let inserted = finish(&app, insert["id"].as_str().unwrap()).await;
    assert_eq!(inserted["state"], "SUCCESS", "{inserted}");
    assert_eq!(inserted["rowCount"], 2);
    let mut all = expected.clone();
    all.push(json!({"event_id": "e3", "member": "M-003", "points": 31}));
    all.push(json!({"event_id": "e4", "member": "M-004", "points": 41}));
    all.sort_by_key(ToString::to_string);
    assert_eq!(rows(&app, "SELECT * FROM member_points").await, all);

    // An unknown column is refused before anything is written.
    let unknown = submit(
        &app,
        json!({"sql": format!("INSERT INTO member_points SELECT _id AS nope FROM {table}")}),
    )
    .await;
    let unknown = finish(&app, unknown["id"].as_str().unwrap()).await;
    assert_eq!(unknown["state"], "FAILED");
    assert_eq!(unknown["errors"][0]["code"], "42703", "{unknown}");
    assert_eq!(rows(&app, "SELECT * FROM member_points").await.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctas_parameters_name_the_dataset_as_aepp_sends_them() {
    let app = app().await;
    let (_, table) = events(&app).await;
    let ctas = submit(
        &app,
        json!({"dbName": "prod:all", "name": "ctas", "sql": format!("SELECT _id AS id FROM {table} WHERE _id = 'e1'"),
               "ctasParameters": {"datasetName": "Gold Copy", "description": "made by a query"}}),
    )
    .await;
    assert_eq!(ctas["isCTAS"], true);
    assert!(
        ctas["effectiveSQL"]
            .as_str()
            .unwrap()
            .starts_with("CREATE TABLE \"Gold Copy\" AS (")
    );
    let done = finish(&app, ctas["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "SUCCESS", "{done}");
    let doc = dataset(
        &app,
        done["_links"]["created_dataset"]["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(doc["name"], "Gold Copy");
    assert_eq!(doc["description"], "made by a query");
    assert_eq!(
        rows(&app, "SELECT * FROM gold_copy").await,
        vec![json!({"id": "e1"})]
    );
}

/// A statement that runs for minutes (ten billion generated rows, aggregated batch by batch).
pub(crate) fn slow_sql() -> Value {
    json!({"sql": "SELECT sum(value % 7) FROM generate_series(1, 10000000000)"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_query_is_cancelled_and_a_finished_one_is_a_conflict() {
    let app = app().await;
    let slow = submit(&app, slow_sql()).await;
    let id = slow["id"].as_str().unwrap();
    let reply = app
        .patch(&format!("{QS}/queries/{id}"))
        .json(json!({"op": "cancel"}))
        .send()
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"message": "Query cancel request received", "statusCode": 202})
    );
    let done = finish(&app, id).await;
    assert_eq!(done["state"], "KILLED", "{done}");
    assert_eq!(done["errors"][0]["code"], "57014");
    // The job saw the cancel and did not overwrite it.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = app.get(&format!("{QS}/queries/{id}")).send().await;
    assert_eq!(later.body["state"], "KILLED");
    let reply = app
        .patch(&format!("{QS}/queries/{id}"))
        .json(json!({"op": "cancel"}))
        .send()
        .await;
    reply.problem(409, "QS-9008-409");
    let reply = app
        .patch(&format!("{QS}/queries/{id}"))
        .json(json!({"op": "explode"}))
        .send()
        .await;
    reply.problem(400, "QS-9001-400");
    // Soft-deleted queries leave the default listing.
    let reply = app.delete(&format!("{QS}/queries/{id}")).send().await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let listed = app.get(&format!("{QS}/queries")).send().await;
    assert_eq!(listed.body["queries"], json!([]));
    let listed = app
        .get(&format!("{QS}/queries?excludeSoftDeleted=false"))
        .send()
        .await;
    assert_eq!(listed.body["queries"][0]["id"], id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_past_its_time_limit_ends_in_timeout_and_running_queries_are_capped() {
    let app = app_with(|config| {
        config.query.select_timeout_secs = 1;
        config.query.max_running_per_org = 1;
    })
    .await;
    let slow = submit(&app, slow_sql()).await;
    let reply = app
        .post(&format!("{QS}/queries"))
        .json(json!({"sql": "SELECT 1"}))
        .send()
        .await;
    assert!(
        reply
            .problem(429, "QS-9009-429")
            .contains("max_running_per_org")
    );
    let done = finish(&app, slow["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "TIMEOUT", "{done}");
    assert_eq!(done["errors"][0]["code"], "53400");
    // The cap counts running queries only.
    let next = submit(&app, json!({"sql": "SELECT 1"})).await;
    let next = finish(&app, next["id"].as_str().unwrap()).await;
    assert_eq!(next["state"], "SUCCESS", "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_that_outgrows_the_memory_pool_fails_with_53200_and_the_next_one_runs() {
    let app = app_with(|config| config.query.max_memory_bytes = 8 << 20).await;
    let greedy = submit(
        &app,
        json!({"sql": "SELECT cardinality(array_agg(value)) FROM generate_series(1, 20000000)"}),
    )
    .await;
    let done = finish(&app, greedy["id"].as_str().unwrap()).await;
    assert_eq!(done["state"], "FAILED", "{done}");
    assert_eq!(done["errors"][0]["code"], "53200", "{done}");
    let message = done["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("query.max_memory_bytes"), "{message}");
    // The failed query gave its memory back.
    let next = submit(
        &app,
        json!({"sql": "SELECT count(*) FROM generate_series(1, 1000)"}),
    )
    .await;
    let next = finish(&app, next["id"].as_str().unwrap()).await;
    assert_eq!(next["state"], "SUCCESS", "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_reads_only_the_tables_it_names() {
    let app = app().await;
    let (_, table) = events(&app).await;
    // A second dataset of the sandbox whose Delta log cannot be read.
    let broken = app.create_event_dataset("Broken Events").await;
    ingest(&app, &broken, &[event(0)]).await;
    let broken_table = dataset(&app, &broken).await["tags"]["adobe/pqs/table"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let log = lakeport_storage::keys::dataset(ORG_A, "prod", &broken).join("_delta_log");
    let commits = app.storage().list_keys(&log).await.unwrap();
    assert!(!commits.is_empty());
    for commit in commits.iter().filter(|key| key.as_ref().ends_with(".json")) {
        use object_store::ObjectStoreExt as _;
        app.storage()
            .store()
            .put(commit, b"not a Delta commit\n".to_vec().into())
            .await
            .unwrap();
    }
    // A query of the first table never opens the second one.
    let fine = submit(
        &app,
        json!({"sql": format!("WITH t AS (SELECT * FROM public.{table}) SELECT count(*) FROM t")}),
    )
    .await;
    let fine = finish(&app, fine["id"].as_str().unwrap()).await;
    assert_eq!(fine["state"], "SUCCESS", "{fine}");
    // The broken one fails, naming its dataset.
    let bad = submit(
        &app,
        json!({"sql": format!("SELECT count(*) FROM {broken_table}")}),
    )
    .await;
    let bad = finish(&app, bad["id"].as_str().unwrap()).await;
    assert_eq!(bad["state"], "FAILED", "{bad}");
    assert_eq!(bad["errors"][0]["code"], "58000", "{bad}");
    assert!(
        bad["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains(&broken),
        "{bad}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_with_next_links_filter_and_check_their_parameters() {
    let app = app().await;
    let mut ids = Vec::new();
    for index in 0..5 {
        let query = submit(&app, json!({"sql": format!("SELECT {index}")})).await;
        ids.push(query["id"].as_str().unwrap().to_owned());
        finish(&app, ids.last().unwrap()).await;
    }
    // Newest first by default; follow the next links as aepp does.
    let mut seen = Vec::new();
    let mut url = format!("{QS}/queries?limit=2");
    let mut pages = 0;
    loop {
        let reply = app.get(&url).send().await;
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
        for query in reply.body["queries"].as_array().unwrap() {
            seen.push(query["id"].as_str().unwrap().to_owned());
        }
        pages += 1;
        match reply.body["_links"]["next"]["href"].as_str() {
            Some(next) => {
                url = next
                    .split_once("localhost")
                    .map_or(next, |(_, path)| path)
                    .to_owned()
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let ascending = app
        .get(&format!("{QS}/queries?orderby=%2Bcreated&limit=1000"))
        .send()
        .await;
    let order: Vec<&str> = ascending.body["queries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let filtered = app
        .get(&format!(
            "{QS}/queries?property=state%3D%3DSUCCESS,id%3D%3D{}",
            ids[2]
        ))
        .send()
        .await;
    assert_eq!(
        filtered.body["queries"].as_array().unwrap().len(),
        1,
        "{}",
        filtered.text
    );
    let offset = app.get(&format!("{QS}/queries?start=4")).send().await;
    assert_eq!(offset.body["queries"][0]["id"], ids[0].as_str());
    for bad in [
        "limit=0",
        "limit=1001",
        "orderby=name",
        "property=sql~x",
        "start=soon",
        "excludeHidden=maybe",
    ] {
        let reply = app.get(&format!("{QS}/queries?{bad}")).send().await;
        reply.problem(400, "QS-9001-400");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_created_read_replaced_run_and_deleted() {
    let app = app().await;
    let (_, table) = events(&app).await;
    let reply = app
        .post(&format!("{QS}/query-templates"))
        .json(json!({"name": "by tier", "sql": format!("SELECT _id FROM {table} WHERE {}.tier = '$tier'", ns()),
                     "queryParameters": {"tier": "gold"}}))
        .send()
        .await;
    assert_eq!(reply.status.as_u16(), 202, "{}", reply.text);
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert!(
        reply.body["_links"]["update"]["href"]
            .as_str()
            .unwrap()
            .ends_with(&id)
    );
    let got = app.get(&format!("{QS}/query-templates/{id}")).send().await;
    assert_eq!(got.body["name"], "by tier");
    let listed = app.get(&format!("{QS}/query-templates")).send().await;
    assert_eq!(listed.body["templates"][0]["id"], id.as_str());
    // The template's parameters, then the request's over them.
    let run = submit(&app, json!({"templateId": id})).await;
    assert!(run["effectiveSQL"].as_str().unwrap().contains("'gold'"));
    assert_eq!(
        finish(&app, run["id"].as_str().unwrap()).await["rowCount"],
        3
    );
    let run = submit(
        &app,
        json!({"templateId": id, "queryParameters": {"tier": "silver"}}),
    )
    .await;
    assert_eq!(run["templateId"], id.as_str());
    assert_eq!(
        finish(&app, run["id"].as_str().unwrap()).await["rowCount"],
        2
    );
    let replaced = app
        .put(&format!("{QS}/query-templates/{id}"))
        .json(json!({"name": "renamed", "sql": "SELECT 1"}))
        .send()
        .await;
    assert_eq!(replaced.status.as_u16(), 202, "{}", replaced.text);
    assert_eq!(replaced.body["name"], "renamed");
    let got = app.get(&format!("{QS}/query-templates/{id}")).send().await;
    assert_eq!(got.body["sql"], "SELECT 1");
    let bad = app
        .post(&format!("{QS}/query-templates"))
        .json(json!({"name": "no sql"}))
        .send()
        .await;
    bad.problem(400, "QS-9001-400");
    let deleted = app
        .delete(&format!("{QS}/query-templates/{id}"))
        .send()
        .await;
    assert_eq!(deleted.status.as_u16(), 202, "{}", deleted.text);
    let gone = app.get(&format!("{QS}/query-templates/{id}")).send().await;
    gone.problem(404, "QS-9003-404");
    let gone = app
        .delete(&format!("{QS}/query-templates/{id}"))
        .send()
        .await;
    gone.problem(404, "QS-9003-404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_and_templates_of_one_tenant_are_invisible_to_others() {
    let app = app().await;
    let query = submit(&app, json!({"sql": "SELECT 1"})).await;
    let id = query["id"].as_str().unwrap();
    finish(&app, id).await;
    let template = app
        .post(&format!("{QS}/query-templates"))
        .json(json!({"name": "t", "sql": "SELECT 1"}))
        .send()
        .await;
    let template = template.body["id"].as_str().unwrap().to_owned();
    for (org, sandbox) in [(ORG_B, "prod"), (ORG_A, "dev")] {
        let reply = app
            .get(&format!("{QS}/queries/{id}"))
            .tenant(org, sandbox)
            .send()
            .await;
        reply.problem(404, "QS-9003-404");
        for op in ["soft_delete", "cancel"] {
            let reply = app
                .patch(&format!("{QS}/queries/{id}"))
                .tenant(org, sandbox)
                .json(json!({"op": op}))
                .send()
                .await;
            reply.problem(404, "QS-9003-404");
        }
        let reply = app
            .delete(&format!("{QS}/queries/{id}"))
            .tenant(org, sandbox)
            .send()
            .await;
        reply.problem(404, "QS-9003-404");
        let reply = app
            .put(&format!("{QS}/query-templates/{template}"))
            .tenant(org, sandbox)
            .json(json!({"name": "mine now", "sql": "SELECT 2"}))
            .send()
            .await;
        reply.problem(404, "QS-9003-404");
        let reply = app
            .delete(&format!("{QS}/query-templates/{template}"))
            .tenant(org, sandbox)
            .send()
            .await;
        reply.problem(404, "QS-9003-404");
        let reply = app
            .get(&format!("{QS}/query-templates"))
            .tenant(org, sandbox)
            .send()
            .await;
        assert_eq!(reply.body["templates"], json!([]), "{}", reply.text);
        // Another tenant's template cannot be run by its id.
        let reply = app
            .post(&format!("{QS}/queries"))
            .tenant(org, sandbox)
            .json(json!({"templateId": template}))
            .send()
            .await;
        assert!(
            reply
                .problem(400, "QS-9001-400")
                .contains("names no query template")
        );
        let reply = app
            .get(&format!("{QS}/queries"))
            .tenant(org, sandbox)
            .send()
            .await;
        assert_eq!(reply.body["queries"], json!([]));
        let reply = app
            .get(&format!("{QS}/query-templates/{template}"))
            .tenant(org, sandbox)
            .send()
            .await;
        reply.problem(404, "QS-9003-404");
    }
    // The owner still sees both unchanged.
    let mine = app.get(&format!("{QS}/queries/{id}")).send().await;
    assert_eq!(mine.body["state"], "SUCCESS", "{}", mine.text);
    assert!(mine.body.get("softDeleted").is_none(), "{}", mine.text);
    let mine = app
        .get(&format!("{QS}/query-templates/{template}"))
        .send()
        .await;
    assert_eq!(mine.body["sql"], "SELECT 1", "{}", mine.text);

    // A table of org A is not a table of org B: a SELECT, a CTAS reading it and an INSERT
    // INTO it are refused when the query is submitted.
    let (_, table) = events(&app).await;
    for sql in [
        format!("SELECT * FROM {table}"),
        format!("CREATE TABLE stolen AS SELECT * FROM {table}"),
        format!("SELECT _id FROM (SELECT * FROM public.{table}) AS t"),
    ] {
        let reply = app
            .post(&format!("{QS}/queries"))
            .tenant(ORG_B, "prod")
            .json(json!({"sql": sql}))
            .send()
            .await;
        assert!(reply.problem(400, "QS-9002-400").contains("42P01"), "{sql}");
    }
    let into = submit_as(
        &app,
        ORG_B,
        json!({"sql": format!("INSERT INTO {table} SELECT 'x' AS _id")}),
    )
    .await;
    let into = finish_as(&app, ORG_B, into["id"].as_str().unwrap()).await;
    assert_eq!(into["state"], "FAILED", "{into}");
    assert_eq!(into["errors"][0]["code"], "42P01", "{into}");
    assert!(
        app.get(&format!("{CATALOG_DATASETS}?name=stolen"))
            .tenant(ORG_B, "prod")
            .send()
            .await
            .body
            .as_object()
            .is_some_and(serde_json::Map::is_empty)
    );
    // Org A's table still holds its five rows only.
    assert_eq!(
        rows(&app, &format!("SELECT _id FROM {table}")).await.len(),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_ids_bodies_and_parameters_are_4xx() {
    let app = app().await;
    for path in [
        format!("{QS}/queries/not%20an%20id"),
        format!("{QS}/queries/{}", "a".repeat(65)),
        format!("{QS}/queries/%00"),
        format!("{QS}/query-templates/..%2F..%2Fetc"),
    ] {
        let reply = app.get(&path).send().await;
        reply.problem(404, "QS-9003-404");
    }
    let query = submit(&app, json!({"sql": "SELECT 1"})).await;
    let id = query["id"].as_str().unwrap();
    for body in [
        json!({"op": 5}),
        json!({}),
        json!([1]),
        json!({"op": "explode"}),
    ] {
        let reply = app
            .patch(&format!("{QS}/queries/{id}"))
            .json(body.clone())
            .send()
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{body}: {}", reply.text);
    }
    let reply = app
        .patch(&format!("{QS}/queries/{id}"))
        .header("content-type", "application/json")
        .raw("{not json")
        .send()
        .await;
    assert_eq!(reply.status.as_u16(), 400, "{}", reply.text);
    for body in [
        json!({}),
        json!({"sql": 5}),
        json!({"sql": ""}),
        json!({"sql": "SELECT 1", "queryParameters": "x"}),
        json!({"sql": "SELECT 1", "ctasParameters": {"datasetName": 7}}),
        json!({"templateId": "no such template"}),
    ] {
        let reply = app
            .post(&format!("{QS}/queries"))
            .json(body.clone())
            .send()
            .await;
        assert_eq!(reply.status.as_u16(), 400, "{body}: {}", reply.text);
    }
    for query in [
        "limit=0",
        "limit=abc",
        "orderby=-nope",
        "start=x&orderby=+created",
        "property=state~~",
    ] {
        let reply = app.get(&format!("{QS}/queries?{query}")).send().await;
        assert_eq!(reply.status.as_u16(), 400, "{query}: {}", reply.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_over_the_size_limit_fails_the_query_and_creates_no_dataset() {
    let app = app_with(|config| config.query.max_result_bytes = 4096).await;
    let big = submit(
        &app,
        json!({"sql": "CREATE TABLE too_big AS SELECT value AS n, repeat('x', 100) AS pad FROM generate_series(1, 1000)"}),
    )
    .await;
    let big = finish(&app, big["id"].as_str().unwrap()).await;
    assert_eq!(big["state"], "FAILED", "{big}");
    assert_eq!(big["errors"][0]["code"], "54000", "{big}");
    assert!(
        big["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("max_result_bytes")
    );
    assert!(
        app.get(&format!("{CATALOG_DATASETS}?name=too_big"))
            .send()
            .await
            .body
            .as_object()
            .is_some_and(serde_json::Map::is_empty)
    );
    // A result under the limit is written.
    let small = submit(
        &app,
        json!({"sql": "CREATE TABLE small AS SELECT value AS n FROM generate_series(1, 5)"}),
    )
    .await;
    let small = finish(&app, small["id"].as_str().unwrap()).await;
    assert_eq!(small["state"], "SUCCESS", "{small}");
    assert_eq!(small["rowCount"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_parameters_name_the_wire_endpoint_and_the_callers_token() {
    let app = app().await;
    let reply = app
        .get(&format!("{QS}/connection_parameters"))
        .header("x-sandbox-name", "dev")
        .send()
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    assert_eq!(
        reply.body,
        json!({"version": 1, "username": ORG_A, "dbName": "dev:all", "host": "127.0.0.1",
               "port": 15433, "token": TOKEN, "compressedToken": TOKEN, "websocketHost": "127.0.0.1"})
    );
}

/// The ids a SELECT returns, sorted.
async fn ids(app: &TestApp, select: &str) -> Vec<String> {
    let mut ids: Vec<String> = rows(app, select)
        .await
        .iter()
        .map(|row| row["_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_clauses_read_a_table_as_of_a_batch_or_version_and_between_them() {
    let app = app().await;
    let id = app.create_event_dataset("Travel").await;
    let first = ingest(&app, &id, &[event(0), event(1)]).await;
    let second = ingest(&app, &id, &[event(2)]).await;
    let third = ingest(&app, &id, &[event(3), event(4)]).await;
    // REVERT removes the second batch's rows from the table now, not from its history.
    let reply = app.signal(&second, "REVERT").await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    app.run_jobs().await;
    let table = dataset(&app, &id).await["tags"]["adobe/pqs/table"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let cases: [(String, &[&str]); 9] = [
        (
            format!("SELECT _id FROM {table}"),
            &["e0", "e1", "e3", "e4"],
        ),
        (
            format!("SELECT _id FROM {table} SNAPSHOT AS OF '{first}'"),
            &["e0", "e1"],
        ),
        (
            format!("SELECT _id FROM {table} SNAPSHOT AS OF '{second}'"),
            &["e0", "e1", "e2"],
        ),
        (
            format!("SELECT _id FROM {table} SNAPSHOT AS OF '{third}'"),
            &["e0", "e1", "e2", "e3", "e4"],
        ),
        // The dataset's empty table is version 0; the first batch made version 1.
        (
            format!("SELECT _id FROM {table} SNAPSHOT AS OF 1"),
            &["e0", "e1"],
        ),
        (format!("SELECT _id FROM {table} SNAPSHOT AS OF 0"), &[]),
        (
            format!("SELECT _id FROM {table} SNAPSHOT SINCE '{first}'"),
            &["e3", "e4"],
        ),
        (
            format!("SELECT _id FROM {table} SNAPSHOT BETWEEN '{first}' AND '{third}'"),
            &["e2", "e3", "e4"],
        ),
        (
            format!(
                "SELECT t._id FROM public.{table} SNAPSHOT BETWEEN HEAD AND '{second}' AS t WHERE t._id <> 'e0'"
            ),
            &["e1", "e2"],
        ),
    ];
    for (sql, expected) in cases {
        assert_eq!(ids(&app, &sql).await, expected, "{sql}");
    }
    // Counts come from the live files' numRecords: the reverted batch's file is not live.
    let count = |sql: String| {
        let app = &app;
        async move { rows(app, &sql).await }
    };
    assert_eq!(
        count(format!("SELECT count(*) AS n FROM {table}")).await,
        [json!({"n": 4})]
    );
    assert_eq!(
        count(format!(
            "SELECT count(*) AS n FROM {table} SNAPSHOT AS OF '{third}'"
        ))
        .await,
        [json!({"n": 5})]
    );
    // Nested fields read from the leaves, now and as of a batch before the REVERT.
    let ns = ns();
    assert_eq!(
        ids(
            &app,
            &format!("SELECT _id FROM {table} WHERE {ns}.tier = 'gold'")
        )
        .await,
        ["e0", "e4"]
    );
    assert_eq!(
        ids(
            &app,
            &format!("SELECT _id FROM {table} SNAPSHOT AS OF '{second}' WHERE {ns}.tier = 'gold'")
        )
        .await,
        ["e0", "e2"]
    );

    // Through the REST API: a query and a CTAS of the table as of the first batch.
    let query = submit(
        &app,
        json!({"sql": format!("SELECT _id FROM {table} SNAPSHOT AS OF '{first}'")}),
    )
    .await;
    let query = finish(&app, query["id"].as_str().unwrap()).await;
    assert_eq!(query["state"], "SUCCESS", "{query}");
    assert_eq!(query["rowCount"], 2);
    assert_eq!(query["_links"]["referenced_datasets"][0]["id"], id.as_str());
    let ctas = submit(
        &app,
        json!({"sql": format!("CREATE TABLE as_first AS SELECT _id AS event_id FROM {table} SNAPSHOT AS OF '{first}'")}),
    )
    .await;
    let ctas = finish(&app, ctas["id"].as_str().unwrap()).await;
    assert_eq!(ctas["state"], "SUCCESS", "{ctas}");
    assert_eq!(
        rows(&app, "SELECT event_id FROM as_first ORDER BY event_id").await,
        vec![json!({"event_id": "e0"}), json!({"event_id": "e1"})]
    );
    // Snapshot ids that name nothing the table has: FAILED with 22023.
    let other = app.create_event_dataset("Other").await;
    let elsewhere = ingest(&app, &other, &[event(9)]).await;
    for snapshot in [
        format!("'{elsewhere}'"),
        "'NO_SUCH_BATCH'".to_owned(),
        "99".to_owned(),
    ] {
        let failed = submit(
            &app,
            json!({"sql": format!("SELECT _id FROM {table} SNAPSHOT AS OF {snapshot}")}),
        )
        .await;
        let failed = finish(&app, failed["id"].as_str().unwrap()).await;
        assert_eq!(failed["state"], "FAILED", "{snapshot}: {failed}");
        assert_eq!(failed["errors"][0]["code"], "22023", "{snapshot}: {failed}");
    }
    // Malformed clauses are refused when submitted.
    for sql in [
        format!("SELECT _id FROM {table} SNAPSHOT AS OF HEAD"),
        format!("SELECT _id FROM {table} SNAPSHOT FROM 1"),
        format!("SELECT _id FROM {table} SNAPSHOT AS OF 'bad id'"),
    ] {
        let reply = app
            .post(&format!("{QS}/queries"))
            .json(json!({"sql": sql}))
            .send()
            .await;
        reply.problem(400, "QS-9002-400");
    }
    // Another org cannot read the table through a snapshot either.
    let reply = app
        .post(&format!("{QS}/queries"))
        .tenant(ORG_B, "prod")
        .json(json!({"sql": format!("SELECT _id FROM {table} SNAPSHOT AS OF '{first}'")}))
        .send()
        .await;
    assert!(reply.problem(400, "QS-9002-400").contains("42P01"));
}

/// The plan text of an EXPLAIN [ANALYZE] statement, one plan row after another.
async fn plan_of(app: &TestApp, explain: &str) -> String {
    engine_rows(app, explain)
        .await
        .iter()
        .map(|row| format!("{}\n", row["plan"].as_str().unwrap_or_default()))
        .collect()
}

/// The `bytes_scanned` metric of the Parquet scan of an EXPLAIN ANALYZE.
async fn bytes_scanned(app: &TestApp, select: &str) -> u64 {
    let plan = plan_of(app, &format!("EXPLAIN ANALYZE {select}")).await;
    let scan = plan
        .lines()
        .find(|line| line.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no Parquet scan in {plan}"));
    let value = scan
        .split("bytes_scanned=")
        .nth(1)
        .unwrap_or_else(|| panic!("no bytes_scanned in {scan}"));
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    assert!(
        value[digits.len()..].starts_with([',', ' ', ']']),
        "bytes_scanned is a plain number: {scan}"
    );
    digits.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_field_is_read_from_its_own_parquet_leaves_only() {
    let app = app().await;
    let (_, table) = events(&app).await;
    let ns = ns();
    let select = format!("SELECT avg({ns}.points) AS avg FROM {table} WHERE {ns}.tier = 'gold'");
    assert_eq!(rows(&app, &select).await, vec![json!({"avg": 20.0})]);

    // The Parquet scan itself takes the fields out of the struct (so its reader builds a
    // leaf mask), instead of a projection above a scan of the whole `_<tenant>` column.
    let plan = plan_of(&app, &format!("EXPLAIN {select}")).await;
    let scan = plan
        .lines()
        .find(|line| line.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no Parquet scan in {plan}"));
    assert!(
        scan.contains("get_field") && scan.contains("points") && scan.contains("tier"),
        "the scan computes the fields: {plan}"
    );
    assert!(!scan.contains("memberId"), "{plan}");
    assert!(!plan.contains("DeltaScan"), "{plan}");

    // And reads fewer bytes for one leaf than for the whole struct, and for the struct than
    // for every column.
    let leaf = bytes_scanned(&app, &format!("SELECT {ns}.points FROM {table}")).await;
    let two = bytes_scanned(
        &app,
        &format!("SELECT {ns}.points, {ns}.address.city FROM {table}"),
    )
    .await;
    let whole = bytes_scanned(&app, &format!("SELECT {ns} FROM {table}")).await;
    let all = bytes_scanned(&app, &format!("SELECT * FROM {table}")).await;
    assert!(
        0 < leaf && leaf < two && two < whole && whole < all,
        "bytes scanned: one leaf {leaf}, two leaves {two}, the struct {whole}, every column {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_added_to_the_schema_later_read_as_null_in_older_files() {
    let app = app().await;
    let id = app.create_event_dataset("Evolving").await;
    let first = ingest(&app, &id, &[event(0), event(1)]).await;
    // The dataset's field group gains a field and a field of a nested object.
    let schema_id = dataset(&app, &id).await["schemaRef"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let encode = |id: &str| id.replace(':', "%3A").replace('/', "%2F");
    let schema = app
        .get(&format!("{REGISTRY}/tenant/schemas/{}", encode(&schema_id)))
        .header("accept", XED)
        .send()
        .await;
    assert_eq!(schema.status.as_u16(), 200, "{}", schema.text);
    let group_id = schema.body["allOf"][1]["$ref"].as_str().unwrap().to_owned();
    let ns = ns();
    let reply = app
        .patch(&format!("{REGISTRY}/tenant/fieldgroups/{}", encode(&group_id)))
        .json(json!([
            {"op": "add", "path": format!("/definitions/d/properties/{ns}/properties/level"),
             "value": {"type": "string"}},
            {"op": "add",
             "path": format!("/definitions/d/properties/{ns}/properties/address/properties/country"),
             "value": {"type": "string"}}
        ]))
        .send()
        .await;
    assert_eq!(reply.status.as_u16(), 200, "{}", reply.text);
    let mut newer = event(2);
    newer[&ns]["level"] = json!("vip");
    newer[&ns]["address"] = json!({"city": "Basel", "country": "CH"});
    ingest(&app, &id, &[newer]).await;
    let table = dataset(&app, &id).await["tags"]["adobe/pqs/table"][0]
        .as_str()
        .unwrap()
        .to_owned();

    assert_eq!(
        rows(
            &app,
            &format!(
                "SELECT _id, {ns}.level AS level, {ns}.address.country AS country, {ns}.points AS points FROM {table}"
            )
        )
        .await,
        vec![
            json!({"_id": "e0", "points": 0}),
            json!({"_id": "e1", "points": 10}),
            json!({"_id": "e2", "level": "vip", "country": "CH", "points": 20}),
        ]
    );
    assert_eq!(
        ids(
            &app,
            &format!(
                "SELECT _id FROM {table} WHERE {ns}.level IS NULL AND {ns}.address.country IS NULL"
            )
        )
        .await,
        ["e0", "e1"]
    );
    assert_eq!(
        ids(
            &app,
            &format!("SELECT _id FROM {table} WHERE {ns}.address.country = 'CH'")
        )
        .await,
        ["e2"]
    );
    // As of the first batch the table has the older schema: the new field is not there.
    assert_eq!(
        ids(
            &app,
            &format!("SELECT _id FROM {table} SNAPSHOT AS OF '{first}' WHERE {ns}.points >= 0")
        )
        .await,
        ["e0", "e1"]
    );
}
