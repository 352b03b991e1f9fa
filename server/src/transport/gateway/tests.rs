//! Gateway tests: JSON encoding as etcd's grpc-gateway does it, error bodies, routes.

use axum::body::Body;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use synod_proto::etcdserverpb as pb;
use tower::ServiceExt as _;

use super::super::test_support::{health, MemKv, StubCluster, StubMaintenance};
use super::*;

fn gateway(kv: MemKv) -> Router {
    json_gateway(kv, StubMaintenance, StubCluster, health(Ok(())))
}

/// Sends one request through `app`; returns status, content type, headers and body text.
async fn call(
    app: &Router,
    method: Method,
    path: &str,
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", "token-abc")
        .body(Body::from(body.to_string()))
        .expect("request");
    let response = app.clone().oneshot(req).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[test]
fn put_request_json_matches_etcd() {
    let put = pb::PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        lease: 7,
        ..Default::default()
    };
    let json = serde_json::to_value(&put).expect("encode");
    assert_eq!(json, json!({"key": "Zm9v", "value": "YmFy", "lease": "7"}));
    let decoded: pb::PutRequest =
        decode_json(br#"{"key":"Zm9v","value":"YmFy","lease":"7","prev_kv":true}"#)
            .expect("decode");
    assert_eq!(
        decoded,
        pb::PutRequest {
            prev_kv: true,
            ..put
        }
    );
}

#[test]
fn range_json_matches_etcd() {
    let req: pb::RangeRequest =
        decode_json(br#"{"key":"Zm9v","range_end":"Zm9w","limit":10,"revision":"3"}"#)
            .expect("decode");
    assert_eq!(
        (
            req.key.as_slice(),
            req.range_end.as_slice(),
            req.limit,
            req.revision
        ),
        (&b"foo"[..], &b"fop"[..], 10, 3)
    );
    let resp = pb::RangeResponse {
        header: Some(pb::ResponseHeader {
            cluster_id: u64::MAX,
            member_id: 1,
            revision: 5,
            raft_term: 2,
        }),
        kvs: vec![synod_proto::mvccpb::KeyValue {
            key: b"foo".to_vec(),
            value: b"bar".to_vec(),
            create_revision: 5,
            mod_revision: 5,
            version: 1,
            lease: 0,
        }],
        more: false,
        count: 1,
    };
    let text = serde_json::to_string(&resp).expect("encode");
    assert_eq!(
        text,
        r#"{"header":{"cluster_id":"18446744073709551615","member_id":"1","revision":"5","raft_term":"2"},"kvs":[{"key":"Zm9v","create_revision":"5","mod_revision":"5","version":"1","value":"YmFy"}],"count":"1"}"#
    );
}

#[test]
fn empty_and_null_bodies_are_default_requests() {
    assert_eq!(
        decode_json::<pb::RangeRequest>(b"").expect("empty"),
        pb::RangeRequest::default()
    );
    assert_eq!(
        decode_json::<pb::RangeRequest>(b"  \n").expect("blank"),
        pb::RangeRequest::default()
    );
    assert_eq!(
        decode_json::<pb::RangeRequest>(b"null").expect("null"),
        pb::RangeRequest::default()
    );
    let trailing: pb::RangeRequest =
        decode_json(br#"{"key":"Zm9v"} garbage"#).expect("first value only");
    assert_eq!(trailing.key, b"foo");
    assert!(decode_json::<pb::RangeRequest>(b"{\"key\":").is_err());
}

#[tokio::test]
async fn invalid_argument_error_body() {
    let response = error_response(&Status::invalid_argument("etcdserver: key is not provided"));
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(content_type(response.headers()), "application/json");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(
        body,
        r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
    );
}

#[test]
fn http_status_mapping() {
    let cases = [
        (Code::Cancelled, 408),
        (Code::Unknown, 500),
        (Code::InvalidArgument, 400),
        (Code::DeadlineExceeded, 504),
        (Code::NotFound, 404),
        (Code::AlreadyExists, 409),
        (Code::PermissionDenied, 403),
        (Code::Unauthenticated, 401),
        (Code::ResourceExhausted, 429),
        (Code::FailedPrecondition, 412),
        (Code::Aborted, 409),
        (Code::OutOfRange, 400),
        (Code::Unimplemented, 501),
        (Code::Internal, 500),
        (Code::Unavailable, 503),
        (Code::DataLoss, 500),
    ];
    for (code, status) in cases {
        assert_eq!(http_status(code).as_u16(), status, "{code:?}");
    }
}

#[tokio::test]
async fn put_then_range_over_both_prefixes() {
    let kv = MemKv::default();
    let app = gateway(kv.clone());
    let (status, headers, body) = call(
        &app,
        Method::POST,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmFy"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(content_type(&headers), "application/json");
    let put: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(put["header"]["revision"], "2");
    assert_eq!(
        kv.last_auth.lock().expect("lock").as_deref(),
        Some("token-abc")
    );

    for prefix in ["/v3", "/v3beta"] {
        let (status, _, body) = call(
            &app,
            Method::POST,
            &format!("{prefix}/kv/range"),
            r#"{"key":"Zm9v"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{prefix}: {body}");
        let range: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(range["kvs"][0]["value"], "YmFy", "{body}");
        assert_eq!(range["count"], "1");
    }
}

#[tokio::test]
async fn other_unary_routes() {
    let app = gateway(MemKv::default());
    for (path, needle) in [
        ("/v3/kv/compaction", r#""revision":"1""#),
        ("/v3/maintenance/status", r#""version":"3.4.23""#),
        // etcd answers a defragment with an empty object.
        ("/v3/maintenance/defragment", "{}"),
        ("/v3/cluster/member/list", r#""name":"default""#),
        (
            "/v3beta/cluster/member/list",
            r#""ID":"10276657743932975437""#,
        ),
    ] {
        let (status, _, body) = call(&app, Method::POST, path, "{}").await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body}");
    }
    let (status, _, body) = call(&app, Method::POST, "/v3/kv/txn", "{}").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::NOT_IMPLEMENTED,
            r#"{"error":"txn","message":"txn","code":12}"#
        )
    );
}

#[tokio::test]
async fn service_and_decode_errors() {
    let app = gateway(MemKv::default());
    let (status, _, body) = call(&app, Method::POST, "/v3/kv/range", r#"{"key":"ZmFpbA=="}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
    );

    let (status, headers, body) = call(&app, Method::POST, "/v3/kv/put", r#"{"key": 12"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type(&headers), "application/json");
    let error: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(error["code"], 3, "{body}");
    assert_eq!(error["error"], error["message"]);

    let (status, _, body) = call(&app, Method::POST, "/v3/kv/range", "").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "empty body is an empty request: {body}"
    );
}

#[tokio::test]
async fn oversized_request_is_resource_exhausted() {
    let config = GatewayConfig {
        max_request_bytes: 16,
    };
    let app = json_gateway_with_config(
        config,
        MemKv::default(),
        StubMaintenance,
        StubCluster,
        health(Ok(())),
    );
    let big = format!(r#"{{"key":"Zm9v","value":"{}"}}"#, "QUFB".repeat(200_000));
    let (status, _, body) = call(&app, Method::POST, "/v3/kv/put", &big).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"QUFB"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn wrong_method_on_gateway_route() {
    let app = gateway(MemKv::default());
    let (status, headers, body) = call(&app, Method::GET, "/v3/kv/range", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
    );
    assert_eq!(content_type(&headers), "text/plain; charset=utf-8");
}

#[tokio::test]
async fn version_text() {
    let app = gateway(MemKv::default());
    let (status, headers, body) = call(&app, Method::GET, "/version", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, r#"{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}"#);
    assert_eq!(content_type(&headers), "application/json");
    let (status, headers, body) = call(&app, Method::POST, "/version", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n")
    );
    assert_eq!(
        headers.get(ALLOW).and_then(|v| v.to_str().ok()),
        Some("GET")
    );
}

#[tokio::test]
async fn health_true_and_false() {
    let app = gateway(MemKv::default());
    let (status, _, body) = call(&app, Method::GET, "/health", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, r#"{"health":"true"}"#)
    );
    let sick = json_gateway(
        MemKv::default(),
        StubMaintenance,
        StubCluster,
        health(Err("no leader".into())),
    );
    let (status, _, body) = call(&sick, Method::GET, "/health", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "{\"health\":\"false\"}\n")
    );
}

#[tokio::test]
async fn client_router_fallbacks() {
    let grpc = tonic::service::Routes::new(pb::kv_server::KvServer::new(MemKv::default()));
    let app = client_router(grpc, gateway(MemKv::default()));
    let (status, _, body) = call(&app, Method::POST, "/v3/kv/nope", "{}").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "Not Found\n")
    );
    let (status, _, body) = call(&app, Method::POST, "/v3alpha/kv/range", "{}").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "404 page not found\n")
    );
    let (status, _, body) = call(&app, Method::GET, "/version", "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, version_json().as_str())
    );

    let req = Request::builder()
        .method(Method::POST)
        .uri("/etcdserverpb.Nope/Range")
        .header(CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(req).await.expect("infallible");
    assert_eq!(
        response
            .headers()
            .get("grpc-status")
            .and_then(|v| v.to_str().ok()),
        Some("12")
    );
}

#[test]
fn metadata_forwarding() {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_static("tok"));
    headers.insert("grpc-metadata-hello", HeaderValue::from_static("world"));
    headers.insert("grpc-metadata-blob-bin", HeaderValue::from_static("AQID"));
    headers.insert("user-agent", HeaderValue::from_static("curl/8"));
    headers.insert("host", HeaderValue::from_static("localhost:2379"));
    let conn = ConnInfo {
        local_addr: None,
        remote_addr: "10.1.2.3:5555".parse().expect("addr"),
        tls: false,
        peer_certificates: None,
    };
    let mut md = MetadataMap::new();
    forward_metadata(&headers, None, Some(&conn), &mut md).expect("forward");
    let ascii = |k: &str| md.get(k).and_then(|v| v.to_str().ok()).map(String::from);
    assert_eq!(ascii("authorization").as_deref(), Some("tok"));
    assert_eq!(ascii("grpcgateway-authorization").as_deref(), Some("tok"));
    assert_eq!(ascii("grpcgateway-user-agent").as_deref(), Some("curl/8"));
    assert_eq!(ascii("hello").as_deref(), Some("world"));
    assert_eq!(ascii("x-forwarded-host").as_deref(), Some("localhost:2379"));
    assert_eq!(ascii("x-forwarded-for").as_deref(), Some("10.1.2.3"));
    let blob = md.get_bin("blob-bin").and_then(|v| v.to_bytes().ok());
    assert_eq!(blob.as_deref(), Some(&[1u8, 2, 3][..]));

    headers.insert("grpc-metadata-bad-bin", HeaderValue::from_static("!!!"));
    let err =
        forward_metadata(&headers, None, None, &mut MetadataMap::new()).expect_err("bad base64");
    assert_eq!(err.code(), Code::InvalidArgument);
}

/// Answers every lease RPC from its request alone, so routes and JSON can be checked.
#[derive(Clone)]
struct EchoLease;

#[tonic::async_trait]
impl synod_proto::etcdserverpb::lease_server::Lease for EchoLease {
    async fn lease_grant(
        &self,
        req: tonic::Request<pb::LeaseGrantRequest>,
    ) -> Result<tonic::Response<pb::LeaseGrantResponse>, Status> {
        let r = req.into_inner();
        Ok(tonic::Response::new(pb::LeaseGrantResponse {
            id: r.id,
            ttl: r.ttl,
            ..Default::default()
        }))
    }

    async fn lease_revoke(
        &self,
        req: tonic::Request<pb::LeaseRevokeRequest>,
    ) -> Result<tonic::Response<pb::LeaseRevokeResponse>, Status> {
        if req.into_inner().id == 0 {
            return Err(Status::not_found("etcdserver: requested lease not found"));
        }
        Ok(tonic::Response::new(pb::LeaseRevokeResponse::default()))
    }

    type LeaseKeepAliveStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>,
    >;

    async fn lease_keep_alive(
        &self,
        _: tonic::Request<tonic::Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<tonic::Response<Self::LeaseKeepAliveStream>, Status> {
        Err(Status::unimplemented("keep-alive"))
    }

    async fn lease_time_to_live(
        &self,
        req: tonic::Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<tonic::Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = req.into_inner();
        Ok(tonic::Response::new(pb::LeaseTimeToLiveResponse {
            id: r.id,
            ttl: 7,
            granted_ttl: 9,
            keys: if r.keys { vec![b"k".to_vec()] } else { vec![] },
            ..Default::default()
        }))
    }

    async fn lease_leases(
        &self,
        _: tonic::Request<pb::LeaseLeasesRequest>,
    ) -> Result<tonic::Response<pb::LeaseLeasesResponse>, Status> {
        Ok(tonic::Response::new(pb::LeaseLeasesResponse {
            header: None,
            leases: vec![pb::LeaseStatus { id: 5 }],
        }))
    }
}

#[tokio::test]
async fn lease_routes_serve_etcds_paths_and_field_names() {
    let app = lease_routes(GatewayConfig::default(), Arc::new(EchoLease));
    for prefix in API_PREFIXES {
        let cases = [
            (
                "/lease/grant",
                r#"{"TTL":30,"ID":12}"#,
                r#"{"ID":"12","TTL":"30"}"#,
            ),
            ("/lease/revoke", r#"{"ID":12}"#, "{}"),
            ("/kv/lease/revoke", r#"{"ID":12}"#, "{}"),
            (
                "/lease/timetolive",
                r#"{"ID":"12","keys":true}"#,
                r#"{"ID":"12","TTL":"7","grantedTTL":"9","keys":["aw=="]}"#,
            ),
            (
                "/kv/lease/timetolive",
                r#"{"ID":12}"#,
                r#"{"ID":"12","TTL":"7","grantedTTL":"9"}"#,
            ),
            ("/lease/leases", "", r#"{"leases":[{"ID":"5"}]}"#),
            ("/kv/lease/leases", "{}", r#"{"leases":[{"ID":"5"}]}"#),
        ];
        for (path, body, want) in cases {
            let path = format!("{prefix}{path}");
            let (status, _, got) = call(&app, Method::POST, &path, body).await;
            assert_eq!((status, got.as_str()), (StatusCode::OK, want), "{path}");
        }
    }
    let (status, _, body) = call(&app, Method::POST, "/v3/lease/revoke", "{}").await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::NOT_FOUND,
            r#"{"error":"etcdserver: requested lease not found","message":"etcdserver: requested lease not found","code":5}"#
        )
    );
    let (status, _, _) = call(&app, Method::GET, "/v3/lease/grant", "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}
