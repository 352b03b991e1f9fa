//! grpc-gateway v1's streaming calls: `/v3/watch` and `/v3/lease/keepalive` (bidirectional:
//! the request body is a sequence of JSON messages) and `/v3/election/observe` (one JSON
//! request, a stream of answers).
//!
//! Answers are streamed as newline-delimited JSON objects, `{"result":<message>}` for each
//! message and `{"error":{...}}` for a failure, exactly as grpc-gateway v1's
//! `ForwardResponseStream` writes them. The body's messages are decoded as they arrive, so a
//! client may keep the request open and send more (a watch create after another).
//!
//! Like the unary gateway, this never implements etcd semantics: every answer comes from the
//! service (through the `open` functions it is given).

use std::convert::Infallible;
use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{post, MethodRouter};
use axum::Router;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use http::header::{HeaderValue, CONTENT_TYPE};
use http::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::{
    decode_request, error_response, gateway_method_not_allowed, http_status, GatewayConfig,
    API_PREFIXES, JSON,
};

/// The client's messages, decoded from the request body as they arrive.
pub type Inbound<Req> = BoxStream<'static, Result<Req, Status>>;
/// What a streaming call answers: its messages, in order, until the channel closes.
pub type Outbound<Resp> = mpsc::Receiver<Result<Resp, Status>>;

/// Adds `POST {prefix}{path}` for a bidirectional-stream RPC: `open` starts the call with
/// the decoded request messages and returns its answers.
pub fn bidi_route<Req, Resp, F>(
    router: Router,
    config: GatewayConfig,
    path: &str,
    open: F,
) -> Router
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(Inbound<Req>) -> Outbound<Resp> + Clone + Send + Sync + 'static,
{
    let handler = move |req: Request| {
        let open = open.clone();
        async move {
            let inbound = json_messages::<Req>(req.into_body(), config);
            stream_response(ReceiverStream::new(open(inbound)))
        }
    };
    add_route(router, path, handler)
}

/// Adds `POST {prefix}{path}` for a server-streaming RPC: the body is one request;
/// `call` answers with a stream (or fails before streaming, answered like a unary error).
pub fn server_stream_route<Req, Resp, F, Fut, St>(
    router: Router,
    config: GatewayConfig,
    path: &str,
    call: F,
) -> Router
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
    Resp: Serialize + Send + 'static,
    F: Fn(tonic::Request<Req>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<tonic::Response<St>, Status>> + Send + 'static,
    St: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let handler = move |req: Request| {
        let call = call.clone();
        async move {
            let request = match decode_request::<Req>(config, req).await {
                Ok(r) => r,
                Err(status) => return error_response(&status),
            };
            match call(request).await {
                Ok(response) => stream_response(response.into_inner()),
                Err(status) => error_response(&status),
            }
        }
    };
    add_route(router, path, handler)
}

fn add_route<H, Fut>(router: Router, path: &str, handler: H) -> Router
where
    H: Fn(Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    API_PREFIXES.iter().fold(router, |router, prefix| {
        let h = handler.clone();
        let method_router: MethodRouter =
            post(move |req: Request| h(req)).fallback(gateway_method_not_allowed);
        router.route(&format!("{prefix}{path}"), method_router)
    })
}

/// A 200 response whose body is one JSON line per message of `answers`.
fn stream_response<Resp, St>(answers: St) -> Response
where
    Resp: Serialize + Send + 'static,
    St: Stream<Item = Result<Resp, Status>> + Send + 'static,
{
    let lines = answers.map(|item| Ok::<_, Infallible>(bytes::Bytes::from(json_line(item))));
    let mut response = Response::new(Body::from_stream(lines));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON));
    response
}

#[derive(Serialize)]
struct ResultLine<'a, T> {
    result: &'a T,
}

/// grpc-gateway v1's stream error object.
#[derive(Serialize)]
struct StreamError<'a> {
    grpc_code: i32,
    http_code: u16,
    message: &'a str,
    http_status: &'a str,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    error: StreamError<'a>,
}

fn json_line<T: Serialize>(item: Result<T, Status>) -> Vec<u8> {
    let encoded = match &item {
        Ok(message) => serde_json::to_vec(&ResultLine { result: message }),
        Err(status) => {
            let http = http_status(status.code());
            serde_json::to_vec(&ErrorLine {
                error: StreamError {
                    grpc_code: status.code() as i32,
                    http_code: http.as_u16(),
                    message: status.message(),
                    http_status: http.canonical_reason().unwrap_or(""),
                },
            })
        }
    };
    let mut line = encoded.unwrap_or_else(|e| {
        let http = StatusCode::INTERNAL_SERVER_ERROR;
        serde_json::to_vec(&ErrorLine {
            error: StreamError {
                grpc_code: tonic::Code::Internal as i32,
                http_code: http.as_u16(),
                message: &e.to_string(),
                http_status: http.canonical_reason().unwrap_or(""),
            },
        })
        .unwrap_or_default()
    });
    line.push(b'\n');
    line
}

/// Decodes the JSON messages of a request body as its bytes arrive. A message that does not
/// decode, or more than the request limit of bytes without a complete message, ends the
/// stream with an error.
fn json_messages<Req>(body: Body, config: GatewayConfig) -> Inbound<Req>
where
    Req: DeserializeOwned + prost::Message + Default + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Result<Req, Status>>(16);
    let limit = config.max_body_bytes();
    tokio::spawn(async move {
        let mut data = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let chunk = tokio::select! {
                chunk = data.next() => chunk,
                _ = tx.closed() => return,
            };
            let ended = match chunk {
                Some(Ok(bytes)) => {
                    buf.extend_from_slice(&bytes);
                    false
                }
                Some(Err(e)) => {
                    let _ = tx
                        .send(Err(Status::invalid_argument(format!(
                            "reading request body: {e}"
                        ))))
                        .await;
                    return;
                }
                None => true,
            };
            loop {
                match next_message::<Req>(&buf, ended) {
                    Parsed::Message(msg, used) => {
                        buf.drain(..used);
                        if tx.send(Ok(msg)).await.is_err() {
                            return;
                        }
                    }
                    Parsed::NeedMore => break,
                    Parsed::Failed(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
            if ended {
                return;
            }
            if buf.len() > limit {
                let text = format!(
                    "grpc: received message larger than max (more than {limit} bytes of JSON)"
                );
                let _ = tx.send(Err(Status::resource_exhausted(text))).await;
                return;
            }
        }
    });
    ReceiverStream::new(rx).boxed()
}

enum Parsed<T> {
    /// A message and how many bytes of the buffer it used.
    Message(T, usize),
    NeedMore,
    Failed(Status),
}

/// The first JSON message of `buf`. `ended`: no more bytes will come, so an incomplete
/// message is an error and trailing whitespace is nothing.
fn next_message<T: DeserializeOwned + Default>(buf: &[u8], ended: bool) -> Parsed<T> {
    let mut values = serde_json::Deserializer::from_slice(buf).into_iter::<Option<T>>();
    match values.next() {
        None => Parsed::NeedMore,
        Some(Ok(v)) => Parsed::Message(v.unwrap_or_default(), values.byte_offset()),
        Some(Err(e)) if e.is_eof() && !ended => Parsed::NeedMore,
        Some(Err(e)) => Parsed::Failed(Status::invalid_argument(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_proto::etcdserverpb::{WatchRequest, WatchResponse};

    #[test]
    fn messages_are_taken_one_at_a_time_and_partial_ones_wait() {
        let body = br#"{"create_request":{"key":"Zm9v"}} {"cancel_request""#;
        let Parsed::Message(first, used) = next_message::<WatchRequest>(body, false) else {
            panic!("first message not decoded");
        };
        assert!(first.request_union.is_some());
        assert!(matches!(
            next_message::<WatchRequest>(&body[used..], false),
            Parsed::NeedMore
        ));
        assert!(matches!(
            next_message::<WatchRequest>(&body[used..], true),
            Parsed::Failed(_)
        ));
        assert!(matches!(
            next_message::<WatchRequest>(b"  \n", true),
            Parsed::NeedMore
        ));
    }

    #[test]
    fn lines_are_result_or_error_objects() {
        let ok = json_line(Ok(WatchResponse {
            watch_id: 3,
            ..Default::default()
        }));
        assert_eq!(ok, b"{\"result\":{\"watch_id\":\"3\"}}\n");
        let err = json_line::<WatchResponse>(Err(Status::not_found("x")));
        assert_eq!(
            String::from_utf8_lossy(&err),
            "{\"error\":{\"grpc_code\":5,\"http_code\":404,\"message\":\"x\",\"http_status\":\"Not Found\"}}\n"
        );
    }
}
