//! TCP listeners serving HTTP/1.1 and HTTP/2 (gRPC and the JSON gateway) on one port,
//! in the clear or over TLS, like etcd 3.4's `embed/serve.go` (which uses cmux for this).
//!
//! This module owns binding sockets, the accept loop, per-connection TLS handshakes, HTTP
//! protocol detection (h2 prior knowledge, as gRPC clients use on plain TCP, or HTTP/1.1),
//! per-request connection info, and graceful shutdown. Every connection's incoming bytes pass
//! through `url_authority` first (etcdctl's URL-shaped HTTP/2 `:authority`).
//!
//! It must never look at request contents or decide routing: that is the `axum::Router`
//! it is given. One bad client (failed or slow TLS handshake, broken connection) must
//! never stop the accept loop or affect other connections.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use super::url_authority::UrlAuthority;

/// How long a client may take to complete its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`serve`] waits, after shutdown was signalled, for open connections to finish
/// their in-flight requests before closing them (watch streams never finish by themselves).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// etcd's default `--grpc-keepalive-interval` (server-side HTTP/2 pings).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);
/// etcd's default `--grpc-keepalive-timeout`.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// etcd's default `--max-concurrent-streams` (math.MaxUint32).
const MAX_CONCURRENT_STREAMS: u32 = u32::MAX;
/// Listen backlog.
const BACKLOG: u32 = 1024;
/// Longest pause after a failed `accept` (Go's `http.Server` backs off up to 1s too).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Who is on the other end of a request; inserted into every request's extensions
/// (`tonic::Request::extensions()` / `http::Request::extensions()`).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Our address on this connection.
    pub local_addr: Option<SocketAddr>,
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The client's certificate chain (leaf first), if it presented a verified one.
    pub peer_certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// A listening socket could not be opened; displays like Go's
/// `listen tcp 127.0.0.1:2379: bind: address already in use`.
#[derive(Debug, thiserror::Error)]
#[error("listen tcp {addr}: {op}: {reason}")]
pub struct BindError {
    /// The address that was asked for.
    pub addr: SocketAddr,
    /// The step that failed: `socket`, `setsockopt`, `bind` or `listen`.
    pub op: &'static str,
    reason: String,
    /// The underlying OS error.
    #[source]
    pub source: io::Error,
}

impl BindError {
    fn new(addr: SocketAddr, op: &'static str, source: io::Error) -> Self {
        Self {
            addr,
            op,
            reason: go_error_text(&source),
            source,
        }
    }
}

/// Go prints OS errors as lowercase `strerror` text without the error number.
fn go_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error ") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Opens a listening TCP socket on `addr` with `SO_REUSEADDR` (as Go does).
///
/// Must be called within a Tokio runtime; outside one this returns an error.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, BindError> {
    if tokio::runtime::Handle::try_current().is_err() {
        let e = io::Error::other("no Tokio runtime to register the socket with");
        return Err(BindError::new(addr, "socket", e));
    }
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| BindError::new(addr, "socket", e))?;
    socket
        .set_reuseaddr(true)
        .map_err(|e| BindError::new(addr, "setsockopt", e))?;
    socket
        .bind(addr)
        .map_err(|e| BindError::new(addr, "bind", e))?;
    socket
        .listen(BACKLOG)
        .map_err(|e| BindError::new(addr, "listen", e))
}

/// Serves `app` on every connection accepted from `listener` until `shutdown` completes.
///
/// Connections are TLS when `tls` is given (its ALPN should offer `h2` and `http/1.1`,
/// as `tls::server_config` does), plain TCP otherwise; each speaks HTTP/1.1 or HTTP/2
/// (detected from the connection preface). Every request carries a [`ConnInfo`] and a
/// `tonic::transport::server::TcpConnectInfo` extension (so `Request::remote_addr()` works).
///
/// On shutdown the listener is closed, open connections are asked to finish (HTTP/2
/// GOAWAY, HTTP/1.1 close after the current response) and are cut after [`DRAIN_TIMEOUT`].
/// Dropping the returned future also asks every connection to shut down gracefully.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let local = listener.local_addr().ok();
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctx = ConnCtx {
        acceptor: tls.map(TlsAcceptor::from),
        builder: Arc::new(http_builder()),
        app,
        stop: stop_rx,
    };
    let mut conns = JoinSet::new();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    tracing::debug!(addr = ?local, tls = ctx.acceptor.is_some(), "serving");
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(done) = conns.join_next(), if !conns.is_empty() => log_panic(done),
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    backoff = Duration::ZERO;
                    conns.spawn(handle_connection(stream, remote, ctx.clone()));
                }
                Err(e) => backoff = accept_failed(e, backoff).await,
            },
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drain(conns).await;
    tracing::debug!(addr = ?local, "stopped serving");
}

/// Everything a connection task needs.
#[derive(Clone)]
struct ConnCtx {
    acceptor: Option<TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: axum::Router,
    stop: watch::Receiver<bool>,
}

fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT);
    builder
}

/// Logs a failed `accept` (e.g. out of file descriptors) and pauses before the next one.
async fn accept_failed(e: io::Error, backoff: Duration) -> Duration {
    let next = (backoff * 2).clamp(Duration::from_millis(5), MAX_ACCEPT_BACKOFF);
    tracing::warn!(error = %e, retry_in = ?next, "accept failed");
    tokio::time::sleep(next).await;
    next
}

/// A connection task that panicked is a bug; the accept loop carries on regardless.
fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "connection task panicked");
        }
    }
}

/// Waits for connections to finish, then cuts whatever is left after [`DRAIN_TIMEOUT`].
async fn drain(mut conns: JoinSet<()>) {
    let finished = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN_TIMEOUT, finished).await.is_err() {
        tracing::info!(
            open = conns.len(),
            "closing connections that did not finish in time"
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

/// Resolves once shutdown is signalled (or the server is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn handle_connection(stream: TcpStream, remote: SocketAddr, mut ctx: ConnCtx) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    let mut info = ConnInfo {
        local_addr: stream.local_addr().ok(),
        remote_addr: remote,
        tls: false,
        peer_certificates: None,
    };
    let Some(acceptor) = ctx.acceptor.clone() else {
        return serve_io(stream, info, ctx).await;
    };
    let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
    let result = tokio::select! {
        r = handshake => r,
        () = stopped(&mut ctx.stop) => return,
    };
    match result {
        Ok(Ok(tls)) => {
            info.tls = true;
            info.peer_certificates = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|c| Arc::new(c.to_vec()));
            serve_io(tls, info, ctx).await;
        }
        Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
    }
}

/// Serves HTTP on one established connection until it closes or shutdown is signalled.
async fn serve_io<I>(io: I, info: ConnInfo, mut ctx: ConnCtx)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let remote = info.remote_addr;
    let tonic_info = tonic::transport::server::TcpConnectInfo {
        local_addr: info.local_addr,
        remote_addr: Some(info.remote_addr),
    };
    let app = ctx.app.clone();
    let service = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        req.extensions_mut().insert(tonic_info.clone());
        app.clone().oneshot(req)
    });
    let conn = ctx
        .builder
        .serve_connection_with_upgrades(TokioIo::new(UrlAuthority::new(io)), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut ctx.stop) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%remote, error = %e, "connection closed with error");
    }
}

#[cfg(test)]
mod tests;
