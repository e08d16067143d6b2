use serde_json::json;

use super::*;

#[track_caller]
fn check_error(status: u16, body: &str, expected: &str) {
    let err = ClientError::from_answer(
        "GET",
        "/data/foundation/catalog/batches/x?limit=1",
        status,
        body.as_bytes(),
    );
    assert_eq!(err.to_string(), expected);
}

#[test]
fn gateway_problem_and_plain_answers_become_one_line_errors() {
    check_error(
        401,
        r#"{"error_code": "401013", "message": "OAuth token is not valid"}"#,
        "GET /data/foundation/catalog/batches/x was refused: 401 OAuth token is not valid (error_code 401013)",
    );
    check_error(
        404,
        r#"{"type": "http://ns.adobe.com/aep/errors/CAT-9004-404", "status": 404, "title": "Not found", "detail": "batch x\ndoes not exist"}"#,
        "GET /data/foundation/catalog/batches/x: 404 Not found: batch x does not exist",
    );
    check_error(
        502,
        "<html>bad gateway</html>",
        "GET /data/foundation/catalog/batches/x: 502 Bad Gateway: <html>bad gateway</html>",
    );
    check_error(
        500,
        "",
        "GET /data/foundation/catalog/batches/x: 500 Internal Server Error: (empty body)",
    );
}

#[test]
fn statuses_parse_with_synonyms_and_unknown_values_survive() {
    assert_eq!(BatchStatus::parse("active"), BatchStatus::Success);
    assert_eq!(BatchStatus::parse("FAILURE"), BatchStatus::Failed);
    assert_eq!(BatchStatus::parse("archived").as_str(), "archived");
    assert!(BatchStatus::parse("stalled").is_settled());
    assert!(!BatchStatus::parse("processing").is_settled());
}

#[test]
fn batch_accessors_read_counts_given_as_numbers_or_strings() {
    let Value::Object(doc) = json!({"status": "success", "recordCount": 4, "failedRecordCount": "2",
        "metrics": {"inputRecordCount": 6},
        "relatedObjects": [{"type": "batch", "id": "b"}, {"type": "dataSet", "id": "d1"}],
        "errors": [{"code": "INGEST-1212-400", "description": "2 rows were rejected"}, {"code": 1401, "recordCount": 1}]})
    else {
        unreachable!()
    };
    let batch = Batch::from_doc("b1".into(), doc);
    assert_eq!(batch.status, BatchStatus::Success);
    assert_eq!(batch.dataset_id(), Some("d1"));
    assert_eq!(
        (
            batch.rows_read(),
            batch.rows_ingested(),
            batch.rows_rejected()
        ),
        (Some(6), Some(4), Some(2))
    );
    let errors = batch.errors();
    assert_eq!(errors[1].code, "1401");
    assert_eq!(errors[1].record_count, Some(1));
}

#[test]
fn urls_encode_ids_and_keep_partition_folders() {
    assert_eq!(
        encode_component("https://ns.adobe.com/acme/schemas/1f"),
        "https%3A%2F%2Fns.adobe.com%2Facme%2Fschemas%2F1f"
    );
    let target = FileTarget {
        batch: "B1",
        dataset: "d1",
        path: "day=2024-03-01/part 1.json",
    };
    assert_eq!(
        file_url(&target),
        "/data/foundation/import/batches/B1/datasets/d1/files/day%3D2024-03-01/part%201.json"
    );
    assert_eq!(
        query_string(&[("orderBy", "desc:created"), ("limit", "5")]),
        "?orderBy=desc%3Acreated&limit=5"
    );
}

#[test]
fn connections_need_an_http_url_and_clean_headers() {
    let mut connection = Connection {
        url: "http://127.0.0.1:8080/".into(),
        token: "t".into(),
        api_key: "k".into(),
        org: "O@AdobeOrg".into(),
        sandbox: "prod".into(),
    };
    assert_eq!(
        Client::new(&connection).unwrap().url(),
        "http://127.0.0.1:8080"
    );
    connection.url = "127.0.0.1:8080".into();
    assert!(
        Client::new(&connection)
            .unwrap_err()
            .to_string()
            .contains("must start with http://")
    );
    connection.url = "https://platform.adobe.io".into();
    connection.token = "a\nb".into();
    assert_eq!(
        Client::new(&connection).unwrap_err().to_string(),
        "invalid token: contains control characters"
    );
}

/// One request as the fake server received it.
#[derive(Debug)]
struct Received {
    head: String,
    body: Vec<u8>,
}

/// Answers one connection per canned answer (`Connection: close`), in order, and returns
/// what it received.
fn fake_server(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<Received>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let mut received = Vec::new();
        for answer in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&line);
            }
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let (status, rest) = answer.split_once('\n').unwrap_or((answer, ""));
            let reply = format!(
                "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{rest}",
                rest.len()
            );
            reader.get_mut().write_all(reply.as_bytes()).unwrap();
            received.push(Received { head, body });
        }
        received
    });
    (url, handle)
}

fn fast_client(url: &str) -> Client {
    Client::new(&Connection {
        url: url.to_owned(),
        token: "t".into(),
        api_key: "k".into(),
        org: "O@AdobeOrg".into(),
        sandbox: "prod".into(),
    })
    .unwrap()
    .with_retry(RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
    })
}

#[test]
fn unavailable_and_throttled_answers_are_retried() {
    let (url, server) = fake_server(vec![
        "503 Service Unavailable\n{}",
        "429 Too Many Requests\n{}",
        "200 OK\n{\"b1\": {\"status\": \"processing\"}}",
    ]);
    let batch = fast_client(&url).batch("b1").unwrap();
    assert_eq!(batch.status, BatchStatus::Processing);
    let received = server.join().unwrap();
    assert_eq!(received.len(), 3);
    assert!(
        received[2]
            .head
            .starts_with("GET /data/foundation/catalog/batches/b1 ")
    );
    assert!(received[2].head.contains("x-gw-ims-org-id: O@AdobeOrg"));
}

#[test]
fn an_upload_is_sent_again_from_disk_after_a_server_error() {
    #[derive(Default)]
    struct Counter(std::sync::atomic::AtomicI64);
    impl Progress for Counter {
        fn advance(&self, bytes: u64) {
            self.0
                .fetch_add(bytes as i64, std::sync::atomic::Ordering::Relaxed);
        }
        fn rewind(&self, bytes: u64) {
            self.0
                .fetch_sub(bytes as i64, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let dir = std::env::temp_dir().join(format!("lakeport-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rows.json");
    let bytes: Vec<u8> = (0..20_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(&file, &bytes).unwrap();

    let (url, server) = fake_server(vec!["500 Internal Server Error\n{}", "200 OK\n"]);
    let counter = Counter::default();
    let target = FileTarget {
        batch: "B",
        dataset: "d",
        path: "day=1/rows.json",
    };
    let sent = fast_client(&url)
        .upload_file(&target, &file, &counter)
        .unwrap();
    assert_eq!(sent, 20_000);
    assert_eq!(counter.0.into_inner(), 20_000);
    let received = server.join().unwrap();
    assert_eq!(received.len(), 2);
    assert!(
        received[1].head.starts_with(
            "PUT /data/foundation/import/batches/B/datasets/d/files/day%3D1/rows.json "
        )
    );
    assert_eq!(received[1].body, bytes);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn creating_calls_are_not_repeated_after_an_ambiguous_failure_and_4xx_never() {
    let (url, server) = fake_server(vec!["500 Internal Server Error\n{\"title\": \"boom\"}"]);
    let err = fast_client(&url)
        .create_dataset(&json!({"name": "x"}))
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    assert_eq!(server.join().unwrap().len(), 1);

    let (url, server) = fake_server(vec![
        "400 Bad Request\n{\"title\": \"Bad\", \"detail\": \"no\"}",
    ]);
    let err = fast_client(&url).batch("b1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "GET /data/foundation/catalog/batches/b1: 400 Bad: no"
    );
    assert_eq!(server.join().unwrap().len(), 1);
}

#[test]
fn an_unreachable_server_is_reported_after_the_retries() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = fast_client(&url).batch("b1").unwrap_err();
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot reach {url}: connection refused")
    );
}
