//! Listener tests: one port serving gRPC (h2c / h2 over TLS) and HTTP/1.1 JSON, TLS
//! failures isolated per connection, bind errors, graceful stop.

use std::path::Path;
use std::time::Duration;

use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::kv_server::KvServer;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};

use super::super::gateway::{client_router, json_gateway};
use super::super::test_support::{
    fixture, health, require_fixtures, MemKv, StubCluster, StubMaintenance,
};
use super::super::tls::{self, PeerTlsConnector, TlsSettings};
use super::*;

/// A running server: address, shutdown trigger, task.
struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let done = tokio::time::timeout(DRAIN_TIMEOUT + Duration::from_secs(5), self.task).await;
        assert!(done.is_ok(), "serve did not return after shutdown");
    }
}

/// gRPC KV + the JSON gateway + a tiny axum route, merged exactly as the server does it.
fn app() -> axum::Router {
    let kv = MemKv::default();
    let grpc = tonic::service::Routes::new(KvServer::new(kv.clone())).prepare();
    let gateway = json_gateway(kv, StubMaintenance, StubCluster, health(Ok(())))
        .route("/whoami", axum::routing::get(whoami))
        .route("/hang", axum::routing::get(futures::future::pending::<()>));
    client_router(grpc, gateway)
}

/// Echoes the connection info the listener attached.
async fn whoami(axum::Extension(info): axum::Extension<ConnInfo>) -> String {
    let certs = info.peer_certificates.map_or(0, |c| c.len());
    format!("tls={} certs={}", info.tls, certs)
}

async fn start(tls: Option<Arc<rustls::ServerConfig>>) -> Running {
    let listener = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, tls, app(), async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task,
    }
}

async fn h2c_client(addr: SocketAddr) -> KvClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("h2c connect");
    KvClient::new(channel)
}

async fn tls_client(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<KvClient<Channel>, tonic::transport::Error> {
    let endpoint = Endpoint::from_shared(format!("http://localhost:{}", addr.port())).expect("uri");
    let channel = endpoint
        .connect_with_connector(PeerTlsConnector::new(config))
        .await?;
    Ok(KvClient::new(channel))
}

/// Puts foo=bar over gRPC and reads it back.
async fn grpc_round_trip(client: &mut KvClient<Channel>) {
    let put = PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        ..Default::default()
    };
    client.put(put).await.expect("put");
    let range = client
        .range(RangeRequest {
            key: b"foo".to_vec(),
            ..Default::default()
        })
        .await
        .expect("range");
    assert_eq!(range.into_inner().kvs[0].value, b"bar");
}

/// One HTTP/1.1 request with `Connection: close`; returns the raw response.
async fn http1<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    method: &str,
    path: &str,
    body: &str,
) -> String {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    io.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let _ = io.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

fn server_settings(client_cert_auth: bool) -> TlsSettings {
    TlsSettings {
        cert_file: Some(fixture("server.crt")),
        key_file: Some(fixture("server.key.insecure")),
        trusted_ca_file: client_cert_auth.then(|| fixture("ca.crt")),
        client_cert_auth,
        crl_file: client_cert_auth.then(|| fixture("revoke.crl")),
        auto_tls: false,
    }
}

fn client_settings(cert: Option<(&str, &str)>) -> TlsSettings {
    TlsSettings {
        cert_file: cert.map(|(c, _)| fixture(c)),
        key_file: cert.map(|(_, k)| fixture(k)),
        trusted_ca_file: Some(fixture("ca.crt")),
        ..TlsSettings::default()
    }
}

fn server_tls(client_cert_auth: bool) -> Arc<rustls::ServerConfig> {
    tls::server_config(
        &server_settings(client_cert_auth),
        Path::new("/nonexistent"),
        &[],
    )
    .expect("server tls")
}

/// Whether a TLS client with `config` gets an answer from `addr`.
async fn accepted(config: Arc<rustls::ClientConfig>, addr: SocketAddr) -> bool {
    match PeerTlsConnector::new(config)
        .connect("localhost", addr.port())
        .await
    {
        Err(_) => false,
        // TLS 1.3: the client learns of a rejected certificate on its first read.
        Ok(tls) => http1(tls, "GET", "/whoami", "").await.contains("200 OK"),
    }
}

#[tokio::test]
async fn grpc_h2c_and_http1_share_a_port() {
    let server = start(None).await;
    let mut client = h2c_client(server.addr).await;
    grpc_round_trip(&mut client).await;

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let response = http1(tcp, "POST", "/v3/kv/range", r#"{"key":"Zm9v"}"#).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains(r#""value":"YmFy""#), "{response}");

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let response = http1(tcp, "GET", "/whoami", "").await;
    assert!(response.ends_with("tls=false certs=0"), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn grpc_and_http1_over_tls() {
    require_fixtures();
    let server = start(Some(server_tls(false))).await;
    let config = tls::client_config(&client_settings(None)).expect("client tls");
    let mut client = tls_client(server.addr, config.clone())
        .await
        .expect("tls connect");
    grpc_round_trip(&mut client).await;

    let tls = PeerTlsConnector::new(config)
        .connect("localhost", server.addr.port())
        .await
        .expect("tls");
    let response = http1(tls, "POST", "/v3beta/kv/range", r#"{"key":"Zm9v"}"#).await;
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains(r#""value":"YmFy""#), "{response}");
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_with_crl() {
    require_fixtures();
    let server = start(Some(server_tls(true))).await;
    let good = tls::client_config(&client_settings(Some((
        "server2.crt",
        "server2.key.insecure",
    ))))
    .expect("tls");
    let tls = PeerTlsConnector::new(good.clone())
        .connect("127.0.0.1", server.addr.port())
        .await
        .expect("mtls");
    let response = http1(tls, "GET", "/whoami", "").await;
    assert!(response.ends_with("tls=true certs=1"), "{response}");
    let mut client = tls_client(server.addr, good).await.expect("mtls grpc");
    grpc_round_trip(&mut client).await;

    let anonymous = tls::client_config(&client_settings(None)).expect("tls");
    let revoked = tls::client_config(&client_settings(Some((
        "server-revoked.crt",
        "server-revoked.key.insecure",
    ))))
    .expect("tls");
    assert!(
        !accepted(anonymous, server.addr).await,
        "no client cert was accepted"
    );
    assert!(
        !accepted(revoked.clone(), server.addr).await,
        "revoked cert was accepted"
    );
    server.stop().await;

    // Without the CRL the same certificate is fine: the rejection above was the CRL's.
    let mut settings = server_settings(true);
    settings.crl_file = None;
    let config = tls::server_config(&settings, Path::new("/nonexistent"), &[]).expect("tls");
    let server = start(Some(config)).await;
    assert!(
        accepted(revoked, server.addr).await,
        "revoked cert without CRL"
    );
    server.stop().await;
}

#[tokio::test]
async fn stalled_and_failed_handshakes_do_not_block_others() {
    require_fixtures();
    let server = start(Some(server_tls(false))).await;
    let _silent = TcpStream::connect(server.addr).await.expect("connect");
    let mut garbage = TcpStream::connect(server.addr).await.expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\n\r\n")
        .await
        .expect("write");
    let plain = http1(
        TcpStream::connect(server.addr).await.expect("connect"),
        "GET",
        "/version",
        "",
    )
    .await;
    assert!(
        !plain.contains("200 OK"),
        "plain HTTP must not be served on a TLS port: {plain}"
    );

    let config = tls::client_config(&client_settings(None)).expect("client tls");
    let connector = PeerTlsConnector::new(config);
    let connect = connector.connect("localhost", server.addr.port());
    let tls = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .expect("not stalled")
        .expect("tls");
    let response = http1(tls, "GET", "/version", "").await;
    assert!(
        response.contains(r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#),
        "{response}"
    );
    server.stop().await;
}

#[tokio::test]
async fn auto_tls_peer_skips_verification() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = TlsSettings {
        auto_tls: true,
        ..TlsSettings::default()
    };
    let hosts = ["127.0.0.1:0".to_string()];
    let server_config =
        tls::server_config(&settings, &dir.path().join("fixtures/peer"), &hosts).expect("auto tls");
    let server = start(Some(server_config)).await;
    let config = tls::client_config(&settings).expect("client");
    let mut client = tls_client(server.addr, config)
        .await
        .expect("connect without verification");
    grpc_round_trip(&mut client).await;
    server.stop().await;
}

#[tokio::test]
async fn bind_in_use_reads_like_etcd() {
    let first = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = first.local_addr().expect("addr");
    let err = bind(addr).expect_err("port is taken");
    assert_eq!(
        err.to_string(),
        format!("listen tcp {addr}: bind: address already in use")
    );
}

#[test]
fn bind_outside_runtime_is_an_error() {
    let err = bind("127.0.0.1:0".parse().expect("addr")).expect_err("no runtime");
    assert!(
        err.to_string()
            .starts_with("listen tcp 127.0.0.1:0: socket: "),
        "{err}"
    );
}

#[tokio::test]
async fn shutdown_closes_idle_connections() {
    let server = start(None).await;
    let mut client = h2c_client(server.addr).await;
    grpc_round_trip(&mut client).await;
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    let addr = server.addr;
    server.stop().await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), idle.read(&mut buf))
        .await
        .expect("closed promptly");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "connection still open: {read:?}"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still open"
    );
}

#[tokio::test]
async fn shutdown_cuts_requests_that_never_finish() {
    let server = start(None).await;
    let mut hung = TcpStream::connect(server.addr).await.expect("connect");
    hung.write_all(b"GET /hang HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    server.stop().await;
    let waited = started.elapsed();
    assert!(
        waited >= DRAIN_TIMEOUT - Duration::from_millis(500),
        "did not drain: {waited:?}"
    );
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(1), hung.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "hung connection not closed");
}
