//! The ZooKeeper gateway embedded in `synod`: its `Backend` calls this member's etcd v3 services
//! in-process (the same handlers gRPC clients reach, minus the network and the protobuf round
//! trip). The gateway itself lives in the `synod-zk-gateway` crate and knows nothing of this.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use synod_proto::etcdserverpb::kv_server::Kv;
use synod_proto::etcdserverpb::lease_server::Lease;
use synod_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseRevokeRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse, WatchRequest,
    WatchResponse,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Status};
use zk_gateway::backend::ResponseStream;

use crate::api::kv::KvService;
use crate::api::lease::LeaseService;
use crate::api::watch::WatchService;
use crate::config::ZkSettings;

/// This member's services, as the gateway's store.
#[derive(Clone)]
pub struct Embedded {
    pub kv: KvService,
    pub lease: LeaseService,
    pub watch: WatchService,
}

impl zk_gateway::Backend for Embedded {
    fn range(&self, req: RangeRequest) -> BoxFuture<'static, Result<RangeResponse, Status>> {
        let kv = self.kv.clone();
        Box::pin(async move { Ok(kv.range(Request::new(req)).await?.into_inner()) })
    }

    fn txn(&self, req: TxnRequest) -> BoxFuture<'static, Result<TxnResponse, Status>> {
        let kv = self.kv.clone();
        Box::pin(async move { Ok(kv.txn(Request::new(req)).await?.into_inner()) })
    }

    fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> BoxFuture<'static, Result<LeaseGrantResponse, Status>> {
        let lease = self.lease.clone();
        Box::pin(async move { Ok(lease.lease_grant(Request::new(req)).await?.into_inner()) })
    }

    fn lease_revoke(&self, id: i64) -> BoxFuture<'static, Result<(), Status>> {
        let lease = self.lease.clone();
        Box::pin(async move {
            lease
                .lease_revoke(Request::new(LeaseRevokeRequest { id }))
                .await?;
            Ok(())
        })
    }

    fn lease_keep_alive(
        &self,
        requests: mpsc::Receiver<LeaseKeepAliveRequest>,
    ) -> BoxFuture<'static, Result<ResponseStream<LeaseKeepAliveResponse>, Status>> {
        let rx = self
            .lease
            .serve_keep_alive(ReceiverStream::new(requests).map(Ok));
        Box::pin(async move { Ok(ReceiverStream::new(rx).boxed()) })
    }

    fn watch(
        &self,
        requests: mpsc::Receiver<WatchRequest>,
    ) -> BoxFuture<'static, Result<ResponseStream<WatchResponse>, Status>> {
        let rx = self
            .watch
            .serve_stream(ReceiverStream::new(requests).map(Ok));
        let responses = ReceiverStream::new(rx)
            .map(|r| r.map(crate::api::watch_reply::WatchReply::into_response));
        Box::pin(async move { Ok(responses.boxed()) })
    }
}

/// The gateway's configuration from synod's `--zk-*` flags.
pub fn gateway_config(listen: std::net::SocketAddr, s: &ZkSettings) -> zk_gateway::Config {
    let mut c = zk_gateway::Config::new(listen);
    let ms = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
    c.prefix = s.prefix.clone();
    c.tick_ms = ms(s.tick_ms.max(1));
    c.min_session_timeout_ms = (s.min_session_timeout_ms > 0).then(|| ms(s.min_session_timeout_ms));
    c.max_session_timeout_ms = (s.max_session_timeout_ms > 0).then(|| ms(s.max_session_timeout_ms));
    c.container_check_interval = Duration::from_millis(s.container_check_interval_ms.max(1));
    c.four_letter_words = s
        .four_letter_words
        .split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect();
    c.super_digest = (!s.super_digest.is_empty()).then(|| s.super_digest.clone());
    c
}
