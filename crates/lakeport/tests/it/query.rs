//! The Query Service's PostgreSQL wire endpoint (spec §11) through a real PostgreSQL client:
//! login with org id + token, SQL over the ingested rows, and the tenant wall.

use std::time::Duration;

use crate::crash::{TENANT, TOKEN, event_dataset, new_batch, rows, upload, wait_for};
use crate::{ORG, Server, send};

const ORG_B: &str = "B0B0B0B0B0B0B0B0B0B0B0B0@AdobeOrg";
const TOKEN_B: &str = "org-b-token";

/// The rows of a simple-protocol statement as text (None for NULL), or the server's
/// SQLSTATE and message.
fn sql(
    address: &str,
    user: &str,
    password: &str,
    database: &str,
    statement: &str,
) -> Result<Vec<Vec<Option<String>>>, (String, String)> {
    let (host, port) = address.split_once(':').unwrap();
    let config = format!(
        "host={host} port={port} user='{user}' password='{password}' dbname='{database}' connect_timeout=10"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let failure = |err: tokio_postgres::Error| {
            let code = err
                .code()
                .map(|code| code.code().to_owned())
                .unwrap_or_default();
            let message = err
                .as_db_error()
                .map_or_else(|| err.to_string(), |db| db.message().to_owned());
            (code, message)
        };
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .map_err(failure)?;
        let driver = tokio::spawn(connection);
        let messages = client.simple_query(statement).await.map_err(failure)?;
        drop(client);
        let _ = driver.await;
        Ok(messages
            .into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    })
}

/// The connection string of an org-A session on `server`'s wire endpoint, and a runtime to
/// drive tokio-postgres in.
fn org_session(server: &Server) -> (String, tokio::runtime::Runtime) {
    let wire = server
        .query_address()
        .expect("the wire endpoint is announced");
    let (host, port) = wire.split_once(':').unwrap();
    let config = format!(
        "host={host} port={port} user='{ORG}' password='{TOKEN}' dbname='prod:all' connect_timeout=10"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (config, runtime)
}

fn text(rows: &[&[&str]]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|row| row.iter().map(|cell| Some((*cell).to_owned())).collect())
        .collect()
}

#[test]
fn sessions_see_their_own_tables_and_select_the_ingested_rows() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = format!(
        "[{{token = \"{TOKEN}\", orgs = [\"{ORG}\"]}}, {{token = \"{TOKEN_B}\", orgs = [\"{ORG_B}\"]}}]"
    );
    let server = Server::start_with_env(dir.path(), &[], &[("LAKEPORT__AUTH__TOKENS", tokens)]);
    let wire = server
        .query_address()
        .expect("the wire endpoint is announced");
    let mut conn = server.conn();
    let dataset = event_dataset(&mut conn);
    let id = new_batch(&mut conn, &dataset);
    upload(&mut conn, &id, &dataset, "rows.json", &rows(5, 0));
    let reply = send(
        &mut conn,
        TOKEN,
        "POST",
        &format!("/data/foundation/import/batches/{id}?action=COMPLETE"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let done = wait_for(
        &mut conn,
        &id,
        |status| status == "success" || status == "failed",
        Duration::from_secs(60),
    );
    assert_eq!(done["status"], "success", "{done}");
    let detail = send(
        &mut conn,
        TOKEN,
        "GET",
        &format!("/data/foundation/catalog/dataSets/{dataset}"),
        None,
    )
    .json();
    let table = detail[&dataset]["tags"]["adobe/pqs/table"][0]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("dataset has a table name: {detail}"));
    let ns = format!("_{TENANT}");
    let a = |statement: &str| sql(&wire, ORG, TOKEN, "prod:all", statement);

    assert_eq!(
        a(&format!("SELECT count(*) FROM {table}")),
        Ok(text(&[&["5"]]))
    );
    // XDM objects are structs, reached with dots as in AEP.
    assert_eq!(
        a(&format!(
            "SELECT _id, {ns}.n, {ns}.text FROM {table} ORDER BY _id"
        )),
        Ok((0..5)
            .map(|i| {
                vec![
                    Some(format!("e{i}")),
                    Some(i.to_string()),
                    Some("some text to make the row a little longer".to_owned()),
                ]
            })
            .collect())
    );
    assert_eq!(
        a(&format!(
            "SELECT {ns}.n % 2 AS parity, count(*) AS c, sum({ns}.n) AS s FROM {table} WHERE {ns}.n >= 1 GROUP BY 1 ORDER BY 1"
        )),
        Ok(text(&[&["0", "2", "6"], &["1", "2", "4"]]))
    );
    // A session's SET of DataFusion's Parquet settings applies to its scans: with row-level
    // filter pushdown on, the scan itself drops the 3 rows the filter refuses.
    let pruned_in_scan = |settings: &str| -> u64 {
        let plan = a(&format!(
            "{settings}EXPLAIN ANALYZE SELECT _id FROM {table} WHERE {ns}.n >= 3"
        ))
        .unwrap_or_else(|err| panic!("EXPLAIN ANALYZE failed: {err:?}"));
        let plan: Vec<String> = plan.into_iter().flatten().flatten().collect();
        let plan = plan.join("\n");
        let scan = plan
            .lines()
            .find(|line| line.contains("DataSourceExec"))
            .unwrap_or_else(|| panic!("no Parquet scan in {plan}"));
        scan.split("pushdown_rows_pruned=")
            .nth(1)
            .map_or(0, |value| {
                let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
                digits
                    .parse()
                    .unwrap_or_else(|_| panic!("no count in {scan}"))
            })
    };
    assert_eq!(pruned_in_scan(""), 0);
    assert_eq!(
        pruned_in_scan("SET datafusion.execution.parquet.pushdown_filters = true; "),
        3
    );
    // The extended protocol (prepared statements with parameters, as JDBC and psycopg 3 send).
    let (host, port) = wire.split_once(':').unwrap();
    let config = format!(
        "host={host} port={port} user='{ORG}' password='{TOKEN}' dbname='prod:all' connect_timeout=10"
    );
    let extended = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
                .await
                .unwrap();
            let driver = tokio::spawn(connection);
            let rows = client
                .query(
                    // XDM's camel-case fields resolve in any case, as in Adobe's SQL.
                    &format!(
                        "SELECT _id FROM {table} WHERE {ns}.n >= $1 AND EVENTTYPE IS NULL ORDER BY _id"
                    ),
                    &[&3i64],
                )
                .await
                .map(|rows| {
                    rows.iter()
                        .map(|row| row.get::<_, String>(0))
                        .collect::<Vec<_>>()
                });
            drop(client);
            let _ = driver.await;
            rows
        });
    assert_eq!(
        extended.map_err(|err| format!("{err:?}")),
        Ok(vec!["e3".to_owned(), "e4".to_owned()])
    );
    // Unquoted camel-case field names resolve in any case (Adobe's SQL is Spark's, whose
    // names are case-insensitive); as spelled and quoted, they resolve as before.
    for statement in [
        format!("SELECT count(eventtype) AS c, count(*) AS n FROM {table} WHERE eventType IS NULL"),
        format!(
            "SELECT count(\"eventType\") AS c, count(*) AS n FROM {table} WHERE EventType IS NULL"
        ),
    ] {
        assert_eq!(a(&statement), Ok(text(&[&["0", "5"]])), "{statement}");
    }
    // A bare sandbox name is the same database.
    assert_eq!(
        sql(
            &wire,
            ORG,
            TOKEN,
            "prod",
            &format!("SELECT count(*) FROM {table}")
        ),
        Ok(text(&[&["5"]]))
    );
    assert_eq!(
        a("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"),
        Ok(text(&[&[table.as_str()]]))
    );

    // SNAPSHOT (spec §11.3): after a second batch, the table as of the first batch, the
    // rows since it, and a snapshot id that names no batch of the table.
    let second = new_batch(&mut conn, &dataset);
    upload(&mut conn, &second, &dataset, "more.json", &rows(2, 5));
    let reply = send(
        &mut conn,
        TOKEN,
        "POST",
        &format!("/data/foundation/import/batches/{second}?action=COMPLETE"),
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let done = wait_for(
        &mut conn,
        &second,
        |status| status == "success" || status == "failed",
        Duration::from_secs(60),
    );
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(
        a(&format!("SELECT count(*) FROM {table}")),
        Ok(text(&[&["7"]]))
    );
    assert_eq!(
        a(&format!(
            "SELECT count(*) FROM {table} SNAPSHOT AS OF '{id}'"
        )),
        Ok(text(&[&["5"]]))
    );
    assert_eq!(
        a(&format!(
            "SELECT t._id FROM {table} SNAPSHOT SINCE '{id}' t ORDER BY t._id"
        )),
        Ok(text(&[&["e5"], &["e6"]]))
    );
    let unknown = a(&format!(
        "SELECT count(*) FROM {table} SNAPSHOT AS OF 'NOT_A_BATCH'"
    ))
    .unwrap_err();
    assert_eq!(unknown.0, "22023", "{unknown:?}");

    // Org B, with its own token, sees no table of org A: not by name, not in listings.
    let b = |statement: &str| sql(&wire, ORG_B, TOKEN_B, "prod:all", statement);
    let refused = b(&format!(
        "SELECT count(*) FROM {table} SNAPSHOT AS OF '{id}'"
    ))
    .unwrap_err();
    assert_eq!(refused.0, "42P01", "{refused:?}");
    let refused = b(&format!("SELECT count(*) FROM {table}")).unwrap_err();
    assert!(refused.1.contains(&table), "{refused:?}");
    assert_eq!(
        b("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"),
        Ok(vec![])
    );
    assert_eq!(
        b(&format!(
            "SELECT relname FROM pg_catalog.pg_class WHERE relname = '{table}'"
        )),
        Ok(vec![])
    );
    // Nor does org A in another sandbox.
    assert_eq!(
        sql(
            &wire,
            ORG,
            TOKEN,
            "dev:all",
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ),
        Ok(vec![])
    );

    // Refused logins: a wrong password, a token of another org, a database that is no sandbox.
    let wrong = sql(&wire, ORG, "not-a-token", "prod:all", "SELECT 1").unwrap_err();
    assert_eq!(wrong.0, "28P01", "{wrong:?}");
    let other = sql(&wire, ORG_B, TOKEN, "prod:all", "SELECT 1").unwrap_err();
    assert_eq!(other.0, "28000", "{other:?}");
    let database = sql(&wire, ORG, TOKEN, "no such db!", "SELECT 1").unwrap_err();
    assert_eq!(database.0, "3D000", "{database:?}");
}

#[test]
fn sessions_over_query_max_sessions_are_refused_until_one_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &["--token", TOKEN],
        &[("LAKEPORT__QUERY__MAX_SESSIONS", "1".to_owned())],
    );
    let (config, runtime) = org_session(&server);
    runtime.block_on(async move {
        let (first, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let refused = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .err()
            .expect("a second session is refused");
        assert_eq!(
            refused.code().map(|code| code.code()),
            Some("53300"),
            "{refused:?}"
        );
        // The first session still works, and once it closes its place is free again.
        assert!(first.simple_query("SELECT 1").await.is_ok());
        drop(first);
        let _ = driver.await;
        let started = std::time::Instant::now();
        loop {
            match tokio_postgres::connect(&config, tokio_postgres::NoTls).await {
                Ok(_) => break,
                Err(err) => assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "the closed session's place was not freed: {err:?}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[test]
fn statements_are_bounded_by_the_memory_pool_and_the_spill_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &["--token", TOKEN],
        &[
            ("LAKEPORT__QUERY__MAX_MEMORY_BYTES", (16 << 20).to_string()),
            ("LAKEPORT__QUERY__MAX_SPILL_BYTES", (256 << 20).to_string()),
        ],
    );
    let wire = server
        .query_address()
        .expect("the wire endpoint is announced");
    let run = |statement: &str| sql(&wire, ORG, TOKEN, "prod:all", statement);

    // An aggregate state that cannot spill outgrows the pool: 53200, naming the setting.
    let exhausted =
        run("SELECT cardinality(array_agg(value)) FROM generate_series(1, 20000000)").unwrap_err();
    assert_eq!(exhausted.0, "53200", "{exhausted:?}");
    assert!(
        exhausted.1.contains("query.max_memory_bytes"),
        "{exhausted:?}"
    );
    // A sort larger than the pool spills to disk and completes.
    let sorted = run(
        "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r FROM generate_series(1, 3000000))",
    )
    .unwrap();
    assert_eq!(sorted, text(&[&["3000000"]]));
    // The session's place and the pool are free again.
    assert_eq!(run("SELECT 1").unwrap(), text(&[&["1"]]));
}

#[test]
fn a_statement_past_the_spill_limit_fails_and_one_past_the_timeout_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &["--token", TOKEN],
        &[
            ("LAKEPORT__QUERY__MAX_MEMORY_BYTES", (16 << 20).to_string()),
            ("LAKEPORT__QUERY__MAX_SPILL_BYTES", (1 << 20).to_string()),
            ("LAKEPORT__QUERY__SELECT_TIMEOUT_SECS", "1".to_owned()),
        ],
    );
    let wire = server
        .query_address()
        .expect("the wire endpoint is announced");
    // The sort that spills 20+ MB above finds no room on disk.
    let full = sql(
        &wire,
        ORG,
        TOKEN,
        "prod:all",
        "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r FROM generate_series(1, 3000000))",
    )
    .unwrap_err();
    assert_eq!(full.0, "53100", "{full:?}");
    assert!(full.1.contains("query.max_spill_bytes"), "{full:?}");
    let started = std::time::Instant::now();
    let cancelled = sql(
        &wire,
        ORG,
        TOKEN,
        "prod:all",
        "SELECT count(*) FROM generate_series(1, 100000000000)",
    )
    .unwrap_err();
    assert_eq!(cancelled.0, "57014", "{cancelled:?}");
    assert!(
        cancelled.1.contains("query.select_timeout_secs"),
        "{cancelled:?}"
    );
    // Cancelled, not run to the end (which takes hours).
    assert!(started.elapsed() < Duration::from_secs(60));
}

#[test]
fn a_cancel_request_ends_the_running_statement_and_the_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &["--token", TOKEN], &[]);
    let (config, runtime) = org_session(&server);
    runtime.block_on(async move {
        let (client, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        // (A cancel sent while nothing runs is not tested: cancel_query returns before the
        // server has handled it, so it may land on the next statement, as with PostgreSQL.)
        let cancel = client.cancel_token();
        // psql's Ctrl-C: a second connection sends the session's pid and secret key.
        let started = std::time::Instant::now();
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            cancel.cancel_query(tokio_postgres::NoTls).await.unwrap();
        });
        let err = client
            .simple_query("SELECT count(*) FROM generate_series(1, 100000000000)")
            .await
            .expect_err("the statement is cancelled, not run for hours");
        canceller.await.unwrap();
        assert_eq!(err.code().map(|code| code.code()), Some("57014"), "{err:?}");
        assert!(
            err.as_db_error()
                .is_some_and(|db| db.message().contains("user request")),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(60));
        // The session goes on.
        let rows = client.simple_query("SELECT 2").await.unwrap();
        assert!(rows.iter().any(|message| matches!(
            message,
            tokio_postgres::SimpleQueryMessage::Row(row) if row.get(0) == Some("2")
        )));
        drop(client);
        let _ = driver.await;
    });
}

/// `query.tls_cert` / `query.tls_key` make the wire endpoint negotiate TLS (a client that
/// checks the certificate against its CA gets a session), and `query.tls_required` refuses a
/// session without TLS with 28000, as Adobe's Query Service wants `sslmode=require`.
#[test]
fn wire_sessions_negotiate_tls_and_are_refused_without_it_when_required() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let dir = tempfile::tempdir().unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/wire-tls");
    let path = |name: &str| fixtures.join(name).display().to_string();
    let server = Server::start_with_env(
        dir.path(),
        &[],
        &[
            ("LAKEPORT__QUERY__TLS_CERT", path("server.pem")),
            ("LAKEPORT__QUERY__TLS_KEY", path("server.key")),
            ("LAKEPORT__QUERY__TLS_REQUIRED", "true".to_owned()),
            (
                "LAKEPORT__AUTH__TOKENS",
                format!("[{{token = \"{TOKEN}\", orgs = [\"{ORG}\"]}}]"),
            ),
        ],
    );
    let wire = server
        .query_address()
        .expect("the wire endpoint is announced");
    let refused = sql(&wire, ORG, TOKEN, "prod:all", "SELECT 1").unwrap_err();
    assert_eq!(refused.0, "28000", "{refused:?}");
    assert!(refused.1.contains("sslmode=require"), "{refused:?}");

    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(fixtures.join("ca.pem")).unwrap();
    for cert in CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let client_config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let (host, port) = wire.split_once(':').unwrap();
    let config = format!(
        "host={host} port={port} user='{ORG}' password='{TOKEN}' dbname='prod:all' sslmode=require connect_timeout=10"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let one = runtime.block_on(async move {
        let connector = tokio_postgres_rustls::MakeRustlsConnect::new(client_config);
        let (client, connection) = tokio_postgres::connect(&config, connector).await.unwrap();
        let driver = tokio::spawn(connection);
        let rows = client.query("SELECT 1 + 1", &[]).await.unwrap();
        drop(client);
        let _ = driver.await;
        rows[0].get::<_, i64>(0)
    });
    assert_eq!(one, 2);
}
