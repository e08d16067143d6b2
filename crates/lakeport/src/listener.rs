//! The HTTP listener of `lakeport serve`. It accepts TCP connections up to
//! `server.max_connections` (a connection over the limit is answered 503 and closed), serves
//! each with hyper's HTTP/1 server, and closes connections that stall:
//!
//! - headers not received within `server.header_timeout_secs` of the connection being ready
//!   for a request (a silent new connection, a slow header, an idle keep-alive connection);
//! - no progress for `server.idle_timeout_secs` while a request body is read (between two
//!   pieces of the body) or while a response is written.
//!
//! Without these, half-open connections pile up until the process runs out of file
//! descriptors and even `/health` stops answering.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rand::RngCore;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

/// The connection limits of `server.*`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// How long a graceful stop waits for open connections to finish their requests.
    pub shutdown_timeout: Duration,
}

impl Limits {
    pub fn from_config(server: &lakeport_config::ServerConfig) -> Self {
        Self {
            header_timeout: Duration::from_secs(server.header_timeout_secs),
            idle_timeout: Duration::from_secs(server.idle_timeout_secs),
            max_connections: usize::try_from(server.max_connections).unwrap_or(usize::MAX),
            shutdown_timeout: Duration::from_secs(server.shutdown_timeout_secs),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open connections
/// finish their requests.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let service = tower::ServiceBuilder::new()
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            limits.idle_timeout,
        ))
        .service(app);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let mut last_refusal_logged: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            if last_refusal_logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    server.max_connections = limits.max_connections,
                    "refusing connections: the server holds its maximum of open connections"
                );
                last_refusal_logged = Some(Instant::now());
            }
            refuse(&stream, limits.max_connections);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(StallGuard::new(stream, limits.idle_timeout));
        let connection = builder.serve_connection(io, TowerToHyperService::new(service.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(peer = %peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout_secs = limits.shutdown_timeout.as_secs(),
            "requests still open at the end of server.shutdown_timeout_secs; closing their connections"
        );
    }
}

/// Answers a connection over the limit with a 503 problem (best effort, without waiting)
/// and closes it.
fn refuse(stream: &TcpStream, limit: usize) {
    let mut bytes = [0u8; 12];
    rand::rng().fill_bytes(&mut bytes);
    let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let body = serde_json::json!({
        "type": "http://ns.adobe.com/aep/errors/LAKEPORT-9503-503",
        "status": 503,
        "title": "Too many connections",
        "detail": format!("the server holds its maximum of {limit} connections (server.max_connections); retry shortly"),
        "report": {"requestId": id},
        "errorId": id,
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    // A fresh socket's send buffer is empty: the write completes or fails at once.
    let _ = stream.try_write(response.as_bytes());
}

/// A TCP stream whose writes fail with `TimedOut` when they make no progress for the idle
/// timeout (a client that stopped reading its response). Reads are bounded by hyper's
/// header timeout and the request body timeout.
struct StallGuard {
    io: TcpStream,
    timeout: Duration,
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl StallGuard {
    fn new(io: TcpStream, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            write_stall: None,
        }
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.write_stall = None;
            return poll;
        }
        let timeout = self.timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if stall.as_mut().poll(cx).is_ready() {
            self.write_stall = None;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing of the response within server.idle_timeout_secs",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.progress(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.progress(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    /// A client that stops reading its response: the write fails with `TimedOut` once it
    /// makes no progress for the idle timeout, instead of holding the connection forever.
    #[tokio::test]
    async fn a_stalled_write_times_out() {
        let (server, _client) = pair().await;
        let mut guarded = StallGuard::new(server, Duration::from_millis(200));
        let data = vec![7u8; 64 * 1024 * 1024];
        let written = tokio::time::timeout(Duration::from_secs(30), guarded.write_all(&data))
            .await
            .expect("the guard ends the stalled write");
        assert_eq!(
            written.unwrap_err().kind(),
            io::ErrorKind::TimedOut,
            "the client never reads"
        );
    }

    /// A client that keeps reading, slowly: every bit of progress resets the timer.
    #[tokio::test]
    async fn a_slow_reader_is_not_cut_off() {
        let (server, mut client) = pair().await;
        let mut guarded = StallGuard::new(server, Duration::from_millis(300));
        let total = 8 * 1024 * 1024;
        let reader = tokio::spawn(async move {
            let mut buffer = vec![0u8; 256 * 1024];
            let mut read = 0;
            while read < total {
                let n = client.read(&mut buffer).await.unwrap();
                assert!(n > 0);
                read += n;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            read
        });
        guarded.write_all(&vec![1u8; total]).await.unwrap();
        guarded.flush().await.unwrap();
        assert_eq!(reader.await.unwrap(), total);
    }
}
