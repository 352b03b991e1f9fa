//! The gRPC route of etcd's `Watch` service (`/etcdserverpb.Watch/Watch`), served with
//! [`WatchReply`] as its response type instead of the generated `WatchResponse`.
//!
//! The generated `WatchServer` would make every response a `WatchResponse`, i.e. a copy of
//! every event per watcher, encoded per watcher. This route is that server with one
//! difference: the codec encodes `WatchReply`, whose events arrive pre-encoded and shared (see
//! `api::watch_reply`). Requests are decoded as usual. On the wire nothing differs.
//!
//! This module only adapts HTTP/2 requests to [`WatchService::serve_stream`]; it never looks at
//! what a stream asks for.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use synod_proto::etcdserverpb::WatchRequest;
use tokio_stream::wrappers::ReceiverStream;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, StreamingService};
use tonic::{Request, Response, Status, Streaming};

use crate::api::watch::WatchService;
use crate::api::watch_reply::WatchReply;

const METHOD_PATH: &str = "/etcdserverpb.Watch/Watch";

/// The `etcdserverpb.Watch` service for a `tonic::service::Routes`.
#[derive(Clone)]
pub struct WatchRoute {
    service: WatchService,
    max_decoding_message_size: Option<usize>,
}

impl WatchRoute {
    pub fn new(service: WatchService) -> Self {
        WatchRoute {
            service,
            max_decoding_message_size: None,
        }
    }

    /// The largest request accepted (as the generated servers' option of the same name).
    #[must_use]
    pub fn max_decoding_message_size(mut self, limit: usize) -> Self {
        self.max_decoding_message_size = Some(limit);
        self
    }
}

impl NamedService for WatchRoute {
    const NAME: &'static str = "etcdserverpb.Watch";
}

/// One call of the streaming method.
struct WatchCall(WatchService);

impl StreamingService<WatchRequest> for WatchCall {
    type Response = WatchReply;
    type ResponseStream = ReceiverStream<Result<WatchReply, Status>>;
    type Future = BoxFuture<'static, Result<Response<Self::ResponseStream>, Status>>;

    fn call(&mut self, request: Request<Streaming<WatchRequest>>) -> Self::Future {
        let rx = self.0.serve_stream(request.into_inner());
        Box::pin(async move { Ok(Response::new(ReceiverStream::new(rx))) })
    }
}

impl<B> tower::Service<http::Request<B>> for WatchRoute
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != METHOD_PATH {
            // Any other method of this service: gRPC's Unimplemented, as generated servers do.
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let service = self.service.clone();
        let max_decoding = self.max_decoding_message_size;
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<WatchReply, WatchRequest>::default();
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(max_decoding, None);
            Ok(grpc.streaming(WatchCall(service), req).await)
        })
    }
}
