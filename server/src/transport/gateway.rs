//! etcd 3.4's HTTP/JSON API on the client port: the grpc-gateway v1 routes (`/v3/...`,
//! also under `/v3beta/...`; 3.4 no longer serves `/v3alpha`), `GET /health` and
//! `GET /version`, byte-for-byte like etcd where clients can tell.
//!
//! This module owns JSON decoding of requests, forwarding of HTTP headers as gRPC metadata,
//! calling the gRPC service traits in-process, and encoding responses and errors the way
//! grpc-gateway v1 does (`{"error":…,"message":…,"code":…}` with its HTTP status mapping).
//!
//! It must never implement etcd semantics itself: every answer comes from the service
//! traits (or the health closure); and it must never set a router fallback (the merged
//! client router has exactly one, see [`client_router`]).
//!
//! Adding a service (auth, election, lock): write a `*_routes` function like
//! [`kv_routes`] — one [`unary_route`] line per RPC — and merge it in
//! [`json_gateway_with_config`] (or, like [`lease_routes`], in the server's router).
//! Streaming RPCs (watch, lease keep-alive, election observe) go through [`bidi_route`] and
//! [`server_stream_route`] (`streaming.rs`: newline-delimited `{"result":…}` objects).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use base64::Engine as _;
use futures::future::BoxFuture;
use http::header::{HeaderValue, ALLOW, CONTENT_TYPE, HOST};
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use synod_proto::etcdserverpb::cluster_server::Cluster;
use synod_proto::etcdserverpb::kv_server::Kv;
use synod_proto::etcdserverpb::lease_server::Lease;
use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use synod_proto::v3electionpb::election_server::Election;
use synod_proto::v3lockpb::lock_server::Lock;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::{Code, Status};

use super::listener::ConnInfo;

/// `GET /health`'s check: `Ok` is healthy, `Err(reason)` is logged and answered with 503.
pub type HealthCheck = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// `GET /metrics`'s body, rendered when scraped.
pub type MetricsText = Arc<dyn Fn() -> String + Send + Sync>;

/// The etcd server version Synod reports (`/version`'s `etcdserver`).
pub const ETCD_SERVER_VERSION: &str = "3.4.23";
/// The etcd cluster version Synod reports (`/version`'s `etcdcluster`).
pub const ETCD_CLUSTER_VERSION: &str = "3.4.0";
/// API prefixes served; etcd 3.4 rewrites `/v3beta/` to `/v3/`.
pub const API_PREFIXES: [&str; 2] = ["/v3", "/v3beta"];
/// etcd's default `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1536 * 1024;
/// etcd's gRPC receive limit is `--max-request-bytes` plus this overhead.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;
/// JSON (base64, field names) is larger than protobuf; bodies may be this many times the
/// protobuf limit before they are refused unread.
const JSON_EXPANSION: usize = 8;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// Gateway settings taken from the server configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatewayConfig {
    /// etcd's `--max-request-bytes`.
    pub max_request_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
        }
    }
}

impl GatewayConfig {
    /// Largest protobuf-encoded request accepted (what the gRPC server would accept).
    fn max_message_bytes(&self) -> usize {
        self.max_request_bytes.saturating_add(GRPC_OVERHEAD_BYTES)
    }

    /// Largest JSON body read.
    fn max_body_bytes(&self) -> usize {
        self.max_message_bytes().saturating_mul(JSON_EXPANSION)
    }
}

/// The JSON gateway with default settings; see [`json_gateway_with_config`].
pub fn json_gateway<K, M, C>(kv: K, maintenance: M, cluster: C, health: HealthCheck) -> Router
where
    K: Kv,
    M: Maintenance,
    C: Cluster,
{
    json_gateway_with_config(GatewayConfig::default(), kv, maintenance, cluster, health)
}

/// The JSON gateway: KV, maintenance status, member list, `/health` and `/version`.
/// Has no fallback, so it can be merged into tonic's router.
pub fn json_gateway_with_config<K, M, C>(
    config: GatewayConfig,
    kv: K,
    maintenance: M,
    cluster: C,
    health: HealthCheck,
) -> Router
where
    K: Kv,
    M: Maintenance,
    C: Cluster,
{
    Router::new()
        .merge(kv_routes(config, Arc::new(kv)))
        .merge(maintenance_routes(config, Arc::new(maintenance)))
        .merge(cluster_routes(config, Arc::new(cluster)))
        .merge(etcdhttp_routes(health))
}

/// `/v3/kv/{range,put,deleterange,txn,compaction}`.
pub fn kv_routes<K: Kv>(c: GatewayConfig, kv: Arc<K>) -> Router {
    let r = Router::new();
    let r = unary_route(r, c, "/kv/range", kv.clone(), |s, q| async move {
        s.range(q).await
    });
    let r = unary_route(
        r,
        c,
        "/kv/put",
        kv.clone(),
        |s, q| async move { s.put(q).await },
    );
    let r = unary_route(r, c, "/kv/deleterange", kv.clone(), |s, q| async move {
        s.delete_range(q).await
    });
    let r = unary_route(
        r,
        c,
        "/kv/txn",
        kv.clone(),
        |s, q| async move { s.txn(q).await },
    );
    unary_route(r, c, "/kv/compaction", kv, |s, q| async move {
        s.compact(q).await
    })
}

/// The unary lease RPCs, at etcd 3.4's paths: `/v3/lease/{grant,revoke,timetolive,leases}`
/// and the `/v3/kv/lease/{revoke,timetolive,leases}` aliases.
pub fn lease_routes<L: Lease>(c: GatewayConfig, lease: Arc<L>) -> Router {
    let r = Router::new();
    let r = unary_route(r, c, "/lease/grant", lease.clone(), |s, q| async move {
        s.lease_grant(q).await
    });
    let r = ["/lease/revoke", "/kv/lease/revoke"]
        .into_iter()
        .fold(r, |r, path| {
            unary_route(r, c, path, lease.clone(), |s, q| async move {
                s.lease_revoke(q).await
            })
        });
    let r = ["/lease/timetolive", "/kv/lease/timetolive"]
        .into_iter()
        .fold(r, |r, path| {
            unary_route(r, c, path, lease.clone(), |s, q| async move {
                s.lease_time_to_live(q).await
            })
        });
    ["/lease/leases", "/kv/lease/leases"]
        .into_iter()
        .fold(r, |r, path| {
            unary_route(r, c, path, lease.clone(), |s, q| async move {
                s.lease_leases(q).await
            })
        })
}

/// The election service: `/v3/election/{campaign,proclaim,leader,resign}` and the
/// `/v3/election/observe` stream.
pub fn election_routes<E: Election>(c: GatewayConfig, election: Arc<E>) -> Router {
    let r = Router::new();
    let e = election.clone();
    let r = unary_route(r, c, "/election/campaign", e, |s, q| async move {
        s.campaign(q).await
    });
    let e = election.clone();
    let r = unary_route(r, c, "/election/proclaim", e, |s, q| async move {
        s.proclaim(q).await
    });
    let e = election.clone();
    let r = unary_route(r, c, "/election/leader", e, |s, q| async move {
        s.leader(q).await
    });
    let e = election.clone();
    let r = unary_route(r, c, "/election/resign", e, |s, q| async move {
        s.resign(q).await
    });
    server_stream_route(r, c, "/election/observe", move |q| {
        let e = election.clone();
        async move { e.observe(q).await }
    })
}

/// The lock service: `/v3/lock/{lock,unlock}`.
pub fn lock_routes<L: Lock>(c: GatewayConfig, lock: Arc<L>) -> Router {
    let r = unary_route(
        Router::new(),
        c,
        "/lock/lock",
        lock.clone(),
        |s, q| async move { s.lock(q).await },
    );
    unary_route(r, c, "/lock/unlock", lock, |s, q| async move {
        s.unlock(q).await
    })
}

/// `/v3/maintenance/{status,defragment}`.
pub fn maintenance_routes<M: Maintenance>(c: GatewayConfig, m: Arc<M>) -> Router {
    let r = unary_route(
        Router::new(),
        c,
        "/maintenance/status",
        m.clone(),
        |s, q| async move { s.status(q).await },
    );
    unary_route(r, c, "/maintenance/defragment", m, |s, q| async move {
        s.defragment(q).await
    })
}

/// `/v3/cluster/member/list`.
pub fn cluster_routes<C: Cluster>(c: GatewayConfig, cluster: Arc<C>) -> Router {
    unary_route(
        Router::new(),
        c,
        "/cluster/member/list",
        cluster,
        |s, q| async move { s.member_list(q).await },
    )
}

/// Adds `POST {prefix}{path}` for every prefix in [`API_PREFIXES`], decoding the JSON body
/// into `Req` and answering with `call(svc, request)`'s JSON response or gateway error.
pub fn unary_route<S, Req, Resp, F, Fut>(
    router: Router,
    config: GatewayConfig,
    path: &str,
    svc: S,
    call: F,
) -> Router
where
    S: Clone + Send + Sync + 'static,
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(S, tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>> + Send + 'static,
{
    let handler = move |req: Request| {
        let (svc, call) = (svc.clone(), call.clone());
        async move { unary(config, req, |q| call(svc, q)).await }
    };
    API_PREFIXES.iter().fold(router, |router, prefix| {
        let method_router: MethodRouter =
            post(handler.clone()).fallback(gateway_method_not_allowed);
        router.route(&format!("{prefix}{path}"), method_router)
    })
}

/// One gateway call: decode, forward metadata, call, encode.
async fn unary<Req, Resp, Fut>(
    config: GatewayConfig,
    req: Request,
    call: impl FnOnce(tonic::Request<Req>) -> Fut,
) -> Response
where
    Req: DeserializeOwned + prost::Message + Default,
    Resp: Serialize,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    match decode_request::<Req>(config, req).await {
        Ok(request) => match call(request).await {
            Ok(response) => json_response(response),
            Err(status) => error_response(&status),
        },
        Err(status) => error_response(&status),
    }
}

/// Turns an HTTP request into the `tonic::Request` the gRPC service would have seen.
async fn decode_request<Req>(
    config: GatewayConfig,
    req: Request,
) -> Result<tonic::Request<Req>, Status>
where
    Req: DeserializeOwned + prost::Message + Default,
{
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, config.max_body_bytes()).await?;
    let message: Req = decode_json(&bytes).map_err(|e| Status::invalid_argument(e.to_string()))?;
    let (size, max) = (message.encoded_len(), config.max_message_bytes());
    if size > max {
        let text = format!("grpc: received message larger than max ({size} vs. {max})");
        return Err(Status::resource_exhausted(text));
    }
    let conn = parts.extensions.get::<ConnInfo>().cloned();
    let mut request = tonic::Request::new(message);
    forward_metadata(
        &parts.headers,
        parts.uri.authority(),
        conn.as_ref(),
        request.metadata_mut(),
    )?;
    if let Some(conn) = conn {
        request.extensions_mut().insert(conn);
    }
    if let Some(info) = parts
        .extensions
        .get::<tonic::transport::server::TcpConnectInfo>()
    {
        request.extensions_mut().insert(info.clone());
    }
    Ok(request)
}

async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, Status> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Status::resource_exhausted(
            format!("grpc: received message larger than max (more than {limit} bytes of JSON)"),
        )),
        Err(e) => Err(Status::invalid_argument(format!(
            "reading request body: {e}"
        ))),
    }
}

/// Decodes the first JSON value of `body` like grpc-gateway: an empty body (or `null`)
/// is the default message, anything after the first value is ignored.
pub fn decode_json<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Option<T>>();
    Ok(values.next().transpose()?.flatten().unwrap_or_default())
}

/// grpc-gateway's `DefaultHeaderMatcher` plus `AnnotateContext`: `Authorization` as-is,
/// IANA permanent headers as `grpcgateway-<name>`, `Grpc-Metadata-<key>` as `<key>`,
/// and `x-forwarded-host` / `x-forwarded-for`.
fn forward_metadata(
    headers: &HeaderMap,
    authority: Option<&http::uri::Authority>,
    conn: Option<&ConnInfo>,
    md: &mut MetadataMap,
) -> Result<(), Status> {
    for (name, value) in headers {
        let key = name.as_str();
        if key == "authorization" {
            append_ascii(md, "authorization", value.as_bytes());
        }
        if is_permanent_header(key) {
            append_ascii(md, &format!("grpcgateway-{key}"), value.as_bytes());
        } else if let Some(inner) = key.strip_prefix("grpc-metadata-") {
            append_custom(md, inner, value)?;
        }
    }
    let host = headers
        .get("x-forwarded-host")
        .or_else(|| headers.get(HOST))
        .map(HeaderValue::as_bytes);
    if let Some(host) = host.or_else(|| authority.map(|a| a.as_str().as_bytes())) {
        append_ascii(md, "x-forwarded-host", host);
    }
    if let Some(conn) = conn {
        append_ascii(
            md,
            "x-forwarded-for",
            forwarded_for(headers, conn.remote_addr).as_bytes(),
        );
    }
    Ok(())
}

fn forwarded_for(headers: &HeaderMap, remote: SocketAddr) -> String {
    match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(previous) if !previous.is_empty() => format!("{previous}, {}", remote.ip()),
        _ => remote.ip().to_string(),
    }
}

fn append_ascii(md: &mut MetadataMap, key: &str, value: &[u8]) {
    match (
        MetadataKey::from_bytes(key.as_bytes()),
        MetadataValue::try_from(value),
    ) {
        (Ok(name), Ok(value)) => {
            md.append(name, value);
        }
        _ => tracing::debug!(key, "dropping header that is not valid gRPC metadata"),
    }
}

/// `Grpc-Metadata-<key>`; `-bin` keys carry base64 (padded or not), as in grpc-gateway.
fn append_custom(md: &mut MetadataMap, key: &str, value: &HeaderValue) -> Result<(), Status> {
    if !key.ends_with("-bin") {
        append_ascii(md, key, value.as_bytes());
        return Ok(());
    }
    let invalid = |e: &dyn std::fmt::Display| {
        Status::invalid_argument(format!("invalid binary header Grpc-Metadata-{key}: {e}"))
    };
    let raw = value.as_bytes();
    let decoded = if raw.len().is_multiple_of(4) {
        base64::engine::general_purpose::STANDARD.decode(raw)
    } else {
        base64::engine::general_purpose::STANDARD_NO_PAD.decode(raw)
    }
    .map_err(|e| invalid(&e))?;
    let key = MetadataKey::from_bytes(key.as_bytes()).map_err(|e| invalid(&e))?;
    md.append_bin(key, MetadataValue::from_bytes(&decoded));
    Ok(())
}

/// IANA permanent request headers, as grpc-gateway v1 lists them (lowercase).
fn is_permanent_header(key: &str) -> bool {
    matches!(
        key,
        "accept"
            | "accept-charset"
            | "accept-language"
            | "accept-ranges"
            | "authorization"
            | "cache-control"
            | "content-type"
            | "cookie"
            | "date"
            | "expect"
            | "from"
            | "host"
            | "if-match"
            | "if-modified-since"
            | "if-none-match"
            | "if-schedule-tag-match"
            | "if-unmodified-since"
            | "max-forwards"
            | "origin"
            | "pragma"
            | "referer"
            | "user-agent"
            | "via"
            | "warning"
    )
}

/// A successful call: 200, the message as JSON, header metadata as `Grpc-Metadata-*`.
fn json_response<Resp: Serialize>(response: tonic::Response<Resp>) -> Response {
    let (metadata, message, _) = response.into_parts();
    let mut out = match serde_json::to_vec(&message) {
        Ok(body) => bytes_response(StatusCode::OK, JSON, body),
        Err(e) => return error_response(&Status::internal(e.to_string())),
    };
    copy_metadata(&metadata, out.headers_mut());
    out
}

/// grpc-gateway v1's error body. Field order and omission of empty fields follow its
/// jsonpb marshalling; `details` is never sent (etcd errors carry none).
#[derive(Debug, Serialize)]
struct ErrorBody<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    code: i32,
}

fn is_zero(code: &i32) -> bool {
    *code == 0
}

/// The gateway's answer for a failed call: mapped HTTP status and
/// `{"error":msg,"message":msg,"code":n}`.
pub fn error_response(status: &Status) -> Response {
    let body = ErrorBody {
        error: status.message(),
        message: status.message(),
        code: status.code() as i32,
    };
    let mut out = match serde_json::to_vec(&body) {
        Ok(json) => bytes_response(http_status(status.code()), JSON, json),
        Err(_) => bytes_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            JSON,
            br#"{"error": "failed to marshal error message"}"#.to_vec(),
        ),
    };
    copy_metadata(status.metadata(), out.headers_mut());
    out
}

/// grpc-gateway v1's `HTTPStatusFromCode`.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Server metadata becomes `Grpc-Metadata-<key>` response headers (ASCII values only).
fn copy_metadata(metadata: &MetadataMap, headers: &mut HeaderMap) {
    for entry in metadata.iter() {
        if let tonic::metadata::KeyAndValueRef::Ascii(key, value) = entry {
            let name = format!("grpc-metadata-{}", key.as_str());
            let Ok(name) = http::HeaderName::try_from(name) else {
                continue;
            };
            if let Ok(value) = HeaderValue::from_bytes(value.as_encoded_bytes()) {
                headers.append(name, value);
            }
        }
    }
}

fn bytes_response(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Go's `http.Error`: plain text plus a newline, `nosniff`.
pub fn go_http_error(status: StatusCode, text: &str) -> Response {
    let mut response = bytes_response(status, TEXT, format!("{text}\n").into_bytes());
    let nosniff = HeaderValue::from_static("nosniff");
    response
        .headers_mut()
        .insert("x-content-type-options", nosniff);
    response
}

/// What grpc-gateway answers for a known path with the wrong method.
async fn gateway_method_not_allowed() -> Response {
    go_http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// etcdhttp's `allowMethod(w, r, "GET")` failure.
async fn get_only() -> Response {
    let mut response = go_http_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET"));
    response
}

/// `GET /health` and `GET /version`.
pub fn etcdhttp_routes(health: HealthCheck) -> Router {
    let health_route = get(move || health_handler(health.clone())).fallback(get_only);
    Router::new()
        .route("/health", health_route)
        .route("/version", get(version_handler).fallback(get_only))
}

/// `GET /metrics`: Prometheus text.
pub fn metrics_routes(metrics: MetricsText) -> Router {
    let route = get(move || {
        let metrics = metrics.clone();
        async move {
            bytes_response(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics().into_bytes(),
            )
        }
    })
    .fallback(get_only);
    Router::new().route("/metrics", route)
}

/// etcd 3.4: 200 `{"health":"true"}`, or 503 `{"health":"false"}` via `http.Error`.
async fn health_handler(health: HealthCheck) -> Response {
    match health().await {
        Ok(()) => bytes_response(StatusCode::OK, TEXT, br#"{"health":"true"}"#.to_vec()),
        Err(reason) => {
            tracing::warn!(%reason, "/health error (status code 503)");
            go_http_error(StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
        }
    }
}

/// The exact `/version` body.
pub fn version_json() -> String {
    format!(r#"{{"etcdserver":"{ETCD_SERVER_VERSION}","etcdcluster":"{ETCD_CLUSTER_VERSION}"}}"#)
}

async fn version_handler() -> Response {
    bytes_response(StatusCode::OK, JSON, version_json().into_bytes())
}

/// The client port's router: tonic's gRPC routes plus `gateway`, with one fallback that
/// answers like etcd — gRPC `Unimplemented` for gRPC requests, grpc-gateway's
/// `Not Found` under `/v3/`, Go's `404 page not found` elsewhere.
pub fn client_router(grpc: tonic::service::Routes, gateway: Router) -> Router {
    grpc.into_axum_router().merge(gateway).fallback(not_found)
}

async fn not_found(req: Request) -> Response {
    let is_grpc = req
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if is_grpc {
        let (parts, ()) = Status::unimplemented("unknown service")
            .into_http::<()>()
            .into_parts();
        return Response::from_parts(parts, Body::empty());
    }
    let path = req.uri().path();
    if API_PREFIXES.iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('/'))
    }) {
        return go_http_error(StatusCode::NOT_FOUND, "Not Found");
    }
    go_http_error(StatusCode::NOT_FOUND, "404 page not found")
}

mod streaming;
pub use streaming::{bidi_route, server_stream_route, Inbound, Outbound};

#[cfg(test)]
mod tests;
