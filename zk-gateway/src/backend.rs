//! The seam between the gateway and the store: the handful of etcd v3 calls the gateway makes
//! (Range, Txn, LeaseGrant, LeaseRevoke, the LeaseKeepAlive and Watch streams). `Remote` speaks
//! gRPC to any etcd v3 endpoint; `synod` embeds the gateway with an implementation that calls
//! its services in-process. Nothing else in the gateway knows which one it talks to, and this
//! module never interprets keys or values.

use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use synod_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse, WatchRequest,
    WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Status;

/// A stream of responses from one of the store's bidirectional streams.
pub type ResponseStream<T> = BoxStream<'static, Result<T, Status>>;

/// The etcd v3 calls the gateway needs. Every method is one round trip (or one stream) to the
/// store; errors are the store's gRPC status, unchanged.
pub trait Backend: Send + Sync + 'static {
    fn range(&self, req: RangeRequest) -> BoxFuture<'static, Result<RangeResponse, Status>>;
    fn txn(&self, req: TxnRequest) -> BoxFuture<'static, Result<TxnResponse, Status>>;
    fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> BoxFuture<'static, Result<LeaseGrantResponse, Status>>;
    fn lease_revoke(&self, id: i64) -> BoxFuture<'static, Result<(), Status>>;
    /// Opens a keep-alive stream fed by `requests`.
    fn lease_keep_alive(
        &self,
        requests: mpsc::Receiver<LeaseKeepAliveRequest>,
    ) -> BoxFuture<'static, Result<ResponseStream<LeaseKeepAliveResponse>, Status>>;
    /// Opens a watch stream fed by `requests`.
    fn watch(
        &self,
        requests: mpsc::Receiver<WatchRequest>,
    ) -> BoxFuture<'static, Result<ResponseStream<WatchResponse>, Status>>;
}

pub type SharedBackend = Arc<dyn Backend>;

/// An etcd v3 cluster reached over gRPC (upstream etcd or a Synod member).
#[derive(Clone)]
pub struct Remote {
    channel: Channel,
}

impl Remote {
    /// A lazily connecting client balanced over `endpoints` (`http://host:port`).
    pub fn connect(endpoints: &[String]) -> Result<Remote, tonic::transport::Error> {
        let mut list = Vec::new();
        for e in endpoints {
            list.push(tonic::transport::Endpoint::from_shared(e.clone())?);
        }
        Ok(Remote {
            channel: Channel::balance_list(list.into_iter()),
        })
    }
}

impl Backend for Remote {
    fn range(&self, req: RangeRequest) -> BoxFuture<'static, Result<RangeResponse, Status>> {
        let mut c = KvClient::new(self.channel.clone());
        Box::pin(async move { Ok(c.range(req).await?.into_inner()) })
    }

    fn txn(&self, req: TxnRequest) -> BoxFuture<'static, Result<TxnResponse, Status>> {
        let mut c = KvClient::new(self.channel.clone());
        Box::pin(async move { Ok(c.txn(req).await?.into_inner()) })
    }

    fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> BoxFuture<'static, Result<LeaseGrantResponse, Status>> {
        let mut c = LeaseClient::new(self.channel.clone());
        Box::pin(async move { Ok(c.lease_grant(req).await?.into_inner()) })
    }

    fn lease_revoke(&self, id: i64) -> BoxFuture<'static, Result<(), Status>> {
        let mut c = LeaseClient::new(self.channel.clone());
        Box::pin(async move {
            c.lease_revoke(LeaseRevokeRequest { id }).await?;
            Ok(())
        })
    }

    fn lease_keep_alive(
        &self,
        requests: mpsc::Receiver<LeaseKeepAliveRequest>,
    ) -> BoxFuture<'static, Result<ResponseStream<LeaseKeepAliveResponse>, Status>> {
        // etcd sends the stream's response headers only with its first answer, and tonic's call
        // completes only on those headers: so the call runs on its own task and the stream is
        // returned at once, or the caller could never send the request that gets it going.
        let mut c = LeaseClient::new(self.channel.clone());
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            match c.lease_keep_alive(ReceiverStream::new(requests)).await {
                Ok(resp) => forward(resp.into_inner(), tx).await,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Box::pin(async move { Ok(ReceiverStream::new(rx).boxed()) })
    }

    fn watch(
        &self,
        requests: mpsc::Receiver<WatchRequest>,
    ) -> BoxFuture<'static, Result<ResponseStream<WatchResponse>, Status>> {
        // as lease_keep_alive: never wait for the response headers before returning
        let mut c = WatchClient::new(self.channel.clone());
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            match c.watch(ReceiverStream::new(requests)).await {
                Ok(resp) => forward(resp.into_inner(), tx).await,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        Box::pin(async move { Ok(ReceiverStream::new(rx).boxed()) })
    }
}

/// Copies a gRPC response stream into a channel until either side ends.
async fn forward<T>(mut s: tonic::Streaming<T>, tx: mpsc::Sender<Result<T, Status>>) {
    loop {
        let item = match s.message().await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => return,
            Err(e) => Err(e),
        };
        let stop = item.is_err();
        if tx.send(item).await.is_err() || stop {
            return;
        }
    }
}
