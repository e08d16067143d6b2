//! Connection limits of `lakeport serve` (`server.header_timeout_secs`,
//! `server.idle_timeout_secs`, `server.max_connections`): idle, half-open and slow
//! connections are closed, connections over the limit are refused with a 503 problem, and
//! `/health` keeps answering. Before these limits, ~20,000 half-open connections exhausted
//! the file descriptors and `/health` stopped answering.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::Server;

/// Reads until the server closes the connection; returns what it sent, or `None` when the
/// connection is still open after `patience`.
fn closed_within(stream: &mut TcpStream, patience: Duration) -> Option<String> {
    stream.set_read_timeout(Some(patience)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(String::from_utf8_lossy(&received).into_owned()),
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None;
            }
            // A reset also means the server closed it.
            Err(_) => return Some(String::from_utf8_lossy(&received).into_owned()),
        }
    }
}

/// `GET /health` on a fresh connection, retried while the server sheds a flood.
fn health_within(server: &Server, patience: Duration) -> Option<u16> {
    let started = Instant::now();
    while started.elapsed() < patience {
        if let Ok(mut conn) = crate::http::Conn::connect(&server.address)
            && let Ok(reply) = conn.request("GET", "/health", &[], None)
        {
            if reply.status == 200 {
                return Some(200);
            }
            assert_eq!(reply.status, 503, "{}", reply.body);
            assert_eq!(
                reply.json()["type"],
                "http://ns.adobe.com/aep/errors/LAKEPORT-9503-503"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn idle_and_slow_connections_are_closed_and_health_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let token = "connections-token";
    let server = Server::start_with_env(
        dir.path(),
        &["--token", token],
        &[
            ("LAKEPORT__SERVER__HEADER_TIMEOUT_SECS", "1".to_owned()),
            ("LAKEPORT__SERVER__IDLE_TIMEOUT_SECS", "1".to_owned()),
            ("LAKEPORT__SERVER__MAX_CONNECTIONS", "16".to_owned()),
        ],
    );
    assert_eq!(health_within(&server, Duration::from_secs(5)), Some(200));

    // A slow header, a body that stops, and a keep-alive connection left idle.
    let mut slow_header = TcpStream::connect(&server.address).unwrap();
    slow_header
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let mut slow_body = TcpStream::connect(&server.address).unwrap();
    let request = format!(
        "POST /data/foundation/catalog/dataSets HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\nx-api-key: k\r\nx-gw-ims-org-id: {}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"name\":",
        crate::ORG
    );
    slow_body.write_all(request.as_bytes()).unwrap();
    let mut idle = TcpStream::connect(&server.address).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();

    // 300 silent connections: far more than the limit of 16.
    let mut silent: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&server.address).ok())
        .collect();
    assert!(silent.len() > 16);

    // Within a few seconds every one of them is closed by the server.
    let patience = Duration::from_secs(6);
    assert!(
        closed_within(&mut slow_header, patience).is_some(),
        "a slow header is cut off"
    );
    let answer = closed_within(&mut slow_body, patience).expect("a stalled body is cut off");
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("could not be read to the end"),
        "{answer}"
    );
    let answer = closed_within(&mut idle, patience).expect("an idle keep-alive connection ends");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut refused = 0;
    for stream in &mut silent {
        let answer = closed_within(stream, patience).expect("a silent connection is closed");
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("server.max_connections"), "{answer}");
            refused += 1;
        }
    }
    assert!(refused > 0, "connections over the limit are answered 503");

    // The server still answers, on a new connection and on the API.
    assert_eq!(health_within(&server, Duration::from_secs(5)), Some(200));
    let mut conn = server.conn();
    let reply = crate::send(
        &mut conn,
        token,
        "GET",
        "/data/foundation/catalog/dataSets",
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}
