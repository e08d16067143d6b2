//! The web console's SQL page over the real router, the real engine and ingested rows: a
//! signed-in session runs a SELECT and sees its rows; the page caps the rows it shows,
//! refuses what it does not run, and walls tenants as the wire endpoint does; and the same
//! in headless Chromium (see `lakeport_test_support::browser`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use lakeport_test_support::browser::{self, Locator, click, screenshot, serve, wait_for_text};
use lakeport_test_support::*;
use tower::ServiceExt;

use crate::rest::{app, events, ns, slow_sql};

const BASE: &str = "/console";

/// The API with the console mounted as `lakeport serve` mounts it, SELECTs limited to
/// `timeout`.
fn mounted(app: &TestApp, timeout: Duration) -> Router {
    let engine = Arc::clone(&app.state().query().expect("the engine is wired in").engine);
    lakeport_console::mount(
        app.api(),
        app.state().auth().clone(),
        &lakeport_config::ConsoleConfig::default(),
        false,
        Some(lakeport_console::SqlEngine { engine, timeout }),
    )
}

/// A browser without JavaScript: keeps cookies, follows no redirects.
struct Browser {
    router: Router,
    cookies: HashMap<String, String>,
}

impl Browser {
    async fn send(&mut self, method: Method, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut request = Request::builder().method(method).uri(path);
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if !cookie.is_empty() {
            request = request.header("cookie", cookie.join("; "));
        }
        let body = if form.is_empty() {
            Body::empty()
        } else {
            request = request.header("content-type", "application/x-www-form-urlencoded");
            Body::from(serde_urlencoded::to_string(form).unwrap())
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        for value in response.headers().get_all("set-cookie") {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.insert(name.to_owned(), value.to_owned());
        }
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Signs in with `token`, chooses `org` / prod, and returns the session's form token.
    async fn sign_in(router: Router, token: &str, org: &str) -> (Self, String) {
        let mut browser = Self {
            router,
            cookies: HashMap::new(),
        };
        let (_, form) = browser
            .send(Method::GET, &format!("{BASE}/signin"), &[])
            .await;
        let nonce = input(&form, "nonce");
        let (status, text) = browser
            .send(
                Method::POST,
                &format!("{BASE}/signin"),
                &[
                    ("nonce", &nonce),
                    ("token", token),
                    ("api_key", "sql-page-test"),
                ],
            )
            .await;
        assert_eq!(status, 303, "{text}");
        let (_, tenant) = browser
            .send(Method::GET, &format!("{BASE}/tenant"), &[])
            .await;
        let csrf = input(&tenant, "csrf");
        let (status, text) = browser
            .send(
                Method::POST,
                &format!("{BASE}/tenant"),
                &[("csrf", &csrf), ("org", org), ("sandbox", "prod")],
            )
            .await;
        assert_eq!(status, 303, "{text}");
        (browser, csrf)
    }

    async fn run(&mut self, csrf: &str, sql: &str) -> (u16, String) {
        self.send(
            Method::POST,
            &format!("{BASE}/sql"),
            &[("csrf", csrf), ("sql", sql)],
        )
        .await
    }
}

fn input(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {page}"))
        + marker.len();
    page[start..][..page[start..].find('"').unwrap()].to_owned()
}

/// The body cells of the result table, row by row.
fn cells(page: &str) -> Vec<Vec<String>> {
    let Some(start) = page.find("<tbody>") else {
        return Vec::new();
    };
    let body = &page[start..page[start..].find("</tbody>").unwrap() + start];
    body.split("<tr>")
        .skip(1)
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| {
                    let text = &cell[cell.find('>').unwrap() + 1..cell.find("</td>").unwrap()];
                    text.replace("<code>", "").replace("</code>", "")
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_page_shows_a_selects_rows_capped_and_its_errors() {
    let app = app().await;
    let (_, table) = events(&app).await;
    let router = mounted(&app, Duration::from_secs(60));
    let (mut browser, csrf) = Browser::sign_in(router, TOKEN, ORG_A).await;

    // The dataset page links to the SQL page with its query filled in.
    let sql = format!("SELECT * FROM {table} LIMIT 10");
    let (status, page) = browser
        .send(
            Method::GET,
            &format!(
                "{BASE}/sql?{}",
                serde_urlencoded::to_string([("sql", &sql)]).unwrap()
            ),
            &[],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains(&format!(">{sql}</textarea>")), "{page}");

    let (status, page) = browser
        .run(
            &csrf,
            &format!(
                "SELECT _id, {ns}.points AS points, {ns}.tier AS tier FROM {table} WHERE {ns}.points >= 10 ORDER BY _id",
                ns = ns()
            ),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("scope=\"col\">points</th>"), "{page}");
    assert!(page.contains("4 rows"), "{page}");
    assert_eq!(
        cells(&page),
        [
            ["e1", "10", "silver"],
            ["e2", "20", "gold"],
            ["e3", "30", "silver"],
            ["e4", "40", "gold"]
        ]
    );

    // 5^4 = 625 rows: the page shows the first 100 and says there are more.
    let (status, page) = browser
        .run(
            &csrf,
            &format!("SELECT a._id, b._id, c._id FROM {table} a, {table} b, {table} c, {table} d"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let rows = cells(&page);
    assert_eq!(rows.len(), 100);
    assert_eq!(
        rows[0].len(),
        3,
        "repeated column names keep their own values"
    );
    assert!(page.contains("the first of more"), "{page}");

    // Objects, nulls and arrays are shown, not lost.
    let (status, page) = browser
        .run(
            &csrf,
            &format!(
                "SELECT {ns} AS obj, NULL AS nothing FROM {table} WHERE _id = 'e2'",
                ns = ns()
            ),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let rows = cells(&page);
    assert!(rows[0][0].contains("&quot;points&quot;:20"), "{page}");
    assert_eq!(rows[0][1], "null");

    // What the page does not run, or cannot, says why.
    for (sql, code, words) in [
        ("SELECT * FROM no_such_table", "42P01", "no_such_table"),
        ("SELEC 1", "42601", ""),
        (
            &format!("CREATE TABLE copy AS SELECT * FROM {table}") as &str,
            "0A000",
            "POST /data/foundation/query/queries",
        ),
        ("DELETE FROM t", "0A000", "not supported"),
        ("", "42601", "write a SELECT"),
    ] {
        let (status, page) = browser.run(&csrf, sql).await;
        assert_eq!(status, 422, "{sql}: {page}");
        assert!(page.contains(&format!("ERROR {code}")), "{sql}: {page}");
        assert!(page.contains(words), "{sql}: {page}");
    }
    let long = format!("SELECT '{}'", "x".repeat(9000));
    let (status, page) = browser.run(&csrf, &long).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("ERROR 54000"), "{page}");

    // A form from another session (or none) runs nothing.
    let (status, page) = browser.run("forged", "SELECT 1").await;
    assert_eq!(status, 403, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sql_page_walls_tenants_and_stops_a_select_at_its_time_limit() {
    let app = app().await;
    let (_, table) = events(&app).await;

    // Org B's session: org A's table does not exist for it, by name or in the catalog.
    let router = mounted(&app, Duration::from_secs(60));
    let (mut org_b, csrf_b) = Browser::sign_in(router, TOKEN_B_ONLY, ORG_B).await;
    let (status, page) = org_b
        .run(&csrf_b, &format!("SELECT _id FROM {table}"))
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("ERROR 42P01"), "{page}");
    assert!(!page.contains("<td"), "{page}");
    let (status, page) = org_b
        .run(
            &csrf_b,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains(&table), "{page}");

    // Without a session the page is the sign-in's.
    let mut stranger = Browser {
        router: mounted(&app, Duration::from_secs(60)),
        cookies: HashMap::new(),
    };
    let (status, _) = stranger.run("x", "SELECT 1").await;
    assert_eq!(status, 303);

    // A SELECT past `query.select_timeout_secs` is cancelled with 57014.
    let router = mounted(&app, Duration::from_millis(300));
    let (mut browser, csrf) = Browser::sign_in(router, TOKEN, ORG_A).await;
    let slow = slow_sql()["sql"].as_str().unwrap().to_owned();
    let (status, page) = browser.run(&csrf, &slow).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("ERROR 57014"), "{page}");
    assert!(page.contains("query.select_timeout_secs"), "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_runs_a_select_from_a_dataset_page_in_chromium() {
    let Some(browser) = browser::Browser::start().await else {
        return;
    };
    let app = app().await;
    let (id, table) = events(&app).await;
    let (origin, server) = serve(mounted(&app, Duration::from_secs(60))).await;
    browser.sign_in(&origin, TOKEN, ORG_A, false).await;
    let client = &browser.client;

    // The dataset page's link opens the SQL page with the dataset's query filled in.
    client
        .goto(&format!("{origin}/console/datasets/{id}"))
        .await
        .unwrap();
    client
        .find(Locator::LinkText("Run it on the SQL page"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let area = client.wait().for_element(Locator::Id("sql")).await.unwrap();
    assert_eq!(
        area.prop("value").await.unwrap(),
        Some(format!("SELECT * FROM {table} LIMIT 10"))
    );
    area.clear().await.unwrap();
    area.send_keys(&format!(
        "SELECT {ns}.tier AS tier, count(*) AS events, sum({ns}.points) AS points\nFROM {table}\nGROUP BY 1 ORDER BY 1",
        ns = ns()
    ))
    .await
    .unwrap();
    click(client, "form.sql button[type=submit]").await;
    wait_for_text(client, "2 rows", 20).await;
    let mut cells = Vec::new();
    for cell in client
        .find_all(Locator::Css("table.result tbody td"))
        .await
        .unwrap()
    {
        cells.push(cell.text().await.unwrap());
    }
    assert_eq!(cells, ["gold", "3", "60", "silver", "2", "40"]);
    screenshot(client, "sql").await;
    server.abort();
}
