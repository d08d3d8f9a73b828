//! The HTTP/1 server the API runs on: hyper, driven here rather than through `axum::serve`,
//! which cannot be configured (axum 0.8). What this adds:
//!
//! - a **header-read timeout**: a connection that sends no complete request head within
//!   `http.header_read_timeout_ms` is closed, and so is a keep-alive connection idle that long
//!   after its last response (hyper uses the one timer for both); a streaming response (SSE)
//!   or an upgraded WebSocket is never cut by it;
//! - a **cap on open connections** (`http.max_connections`, below the process's file limit):
//!   beyond it, a new connection is answered 503 and closed at once, so idle sockets can never
//!   use up the file descriptors every other client needs;
//! - graceful shutdown: idle connections close, responses under way finish (the caller bounds
//!   how long).

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;

/// How connections are limited.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Longest wait for a request head, and longest a keep-alive connection may stay idle.
    pub header_read_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
}

/// Serve `router` on `listener` until `stopped` changes or closes, then let open connections
/// finish; `on_connect` sets each accepted socket's options.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: ConnectionLimits,
    mut on_connect: impl FnMut(&mut TcpStream),
    mut stopped: watch::Receiver<()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).max_buf_size(64 * 1024);
    let (closing, closing_signal) = watch::channel(false);
    let mut connections = JoinSet::new();
    loop {
        let (mut stream, client) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            _ = stopped.changed() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refuse(&stream, limits.max_connections);
            continue;
        };
        on_connect(&mut stream);
        let io = TokioIo::new(Counted { stream, _permit: permit });
        let router = TowerToHyperService::new(router.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(client));
            hyper::service::Service::call(&router, request)
        });
        let connection = http.serve_connection(io, service).with_upgrades();
        let mut closing = closing_signal.clone();
        connections.spawn(async move {
            let mut connection = pin!(connection);
            let mut shutting_down = false;
            loop {
                tokio::select! {
                    served = connection.as_mut() => {
                        if let Err(e) = served {
                            tracing::trace!(%client, "connection ended: {e}");
                        }
                        return;
                    }
                    _ = closing.wait_for(|closing| *closing), if !shutting_down => {
                        shutting_down = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

/// Over the cap: a 503 if the socket takes it at once (it never waits), then closed.
fn refuse(stream: &TcpStream, max: usize) {
    let body = format!(r#"{{"code":"too_many_connections","message":"{max} connections are open, the most allowed"}}"#);
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n\
         retry-after: 1\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    _ = stream.try_write(answer.as_bytes());
    tracing::debug!("{max} connections are open, the most allowed (http.max_connections): one refused");
}

/// An accept error: out of file descriptors (or another passing fault) clears up when
/// connections close, so wait a moment instead of spinning.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if !matches!(error.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        tracing::error!("accepting a connection failed: {error}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Open file descriptors the process keeps beside its connections: the store, plugins and
/// their caches, the file watcher, connections to nodes.
const RESERVED_FILES: usize = 256;

/// `max_connections`, lowered to what the process's file limit allows (after raising its soft
/// limit to the hard one, as servers do).
pub fn connection_cap(max_connections: usize) -> usize {
    let files = raise_file_limit();
    let cap = max_connections.min(files.saturating_sub(RESERVED_FILES).max(1));
    if cap < max_connections {
        tracing::warn!("http.max_connections lowered to {cap}: the process may open {files} files (ulimit -n)");
    }
    cap
}

/// Raise the soft limit on open files to the hard limit; the soft limit in the end.
fn raise_file_limit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return usize::MAX;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// A connection's socket, holding its place among `max_connections` until the socket itself is
/// dropped (after a WebSocket upgrade, the session owns it).
struct Counted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
