//! The lease-keepalive scenario: every client grants itself a lease (TTL 60 s, untimed), opens
//! a LeaseKeepAlive stream, then each request is one keep-alive on that stream: send one,
//! await its response, repeat.
//!
//! It owns the lease's life in a run: granted in setup, kept alive by the measured requests,
//! revoked (best effort) at the end. It must never have two keep-alives of a client in flight,
//! and never read a response as another request's: a request that failed or timed out leaves
//! its stream out of step, so the next request opens a fresh stream.

use std::time::Duration;

use futures::channel::mpsc;
use synod_proto::etcdserverpb::lease_client::LeaseClient;
use synod_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseRevokeRequest,
};
use tonic::codec::Streaming;
use tonic::transport::Channel;

use super::load::{Failure, Worker, REQUEST_TIMEOUT};

pub const LEASE_TTL: i64 = 60;

struct Stream {
    tx: mpsc::UnboundedSender<LeaseKeepAliveRequest>,
    rx: Streaming<LeaseKeepAliveResponse>,
}

pub struct LeaseWorker {
    client: LeaseClient<Channel>,
    id: i64,
    /// `None` when the previous request broke the stream (or left it out of step).
    stream: Option<Stream>,
}

impl LeaseWorker {
    /// Grants the lease and opens its keep-alive stream (with one keep-alive). Any failure
    /// here is fatal to the run: a client without a lease has nothing to measure.
    pub async fn setup(channel: Channel) -> Result<LeaseWorker, String> {
        let mut client = LeaseClient::new(channel);
        let grant = tokio::time::timeout(
            REQUEST_TIMEOUT,
            client.lease_grant(LeaseGrantRequest {
                ttl: LEASE_TTL,
                id: 0,
            }),
        )
        .await
        .map_err(|_| "LeaseGrant: no reply within 10 s".to_string())?
        .map_err(|s| format!("LeaseGrant: {:?}: {}", s.code(), s.message()))?
        .into_inner();
        if !grant.error.is_empty() || grant.id == 0 {
            return Err(format!(
                "LeaseGrant refused: {:?} (id {})",
                grant.error, grant.id
            ));
        }
        let mut w = LeaseWorker {
            client,
            id: grant.id,
            stream: None,
        };
        tokio::time::timeout(REQUEST_TIMEOUT, w.reopen())
            .await
            .map_err(|_| "LeaseKeepAlive: no reply within 10 s".to_string())?
            .map_err(|f| format!("LeaseKeepAlive: {}: {}", f.code, f.message))?;
        Ok(w)
    }

    /// Opens a new stream with one keep-alive and awaits its response. The request is queued
    /// before the call: a gRPC server may send the response headers only with the first
    /// message, so awaiting the call before sending anything could wait forever.
    async fn reopen(&mut self) -> Result<(), Failure> {
        self.stream = None;
        let (tx, rx) = mpsc::unbounded();
        tx.unbounded_send(LeaseKeepAliveRequest { id: self.id })
            .map_err(|_| Failure::new("stream-closed", "keep-alive queue closed"))?;
        let rx = self.client.lease_keep_alive(rx).await?.into_inner();
        let mut s = Stream { tx, rx };
        let resp = next_response(&mut s).await?;
        check(self.id, &resp)?;
        self.stream = Some(s);
        Ok(())
    }

    /// Best-effort revoke at the end of the run (not measured; the lease would expire anyway).
    pub async fn revoke(mut self) {
        drop(self.stream.take());
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.client.lease_revoke(LeaseRevokeRequest { id: self.id }),
        )
        .await;
    }
}

async fn next_response(s: &mut Stream) -> Result<LeaseKeepAliveResponse, Failure> {
    s.rx.message()
        .await?
        .ok_or_else(|| Failure::new("stream-closed", "the server ended the keep-alive stream"))
}

/// A keep-alive answer for another lease, or with TTL <= 0 (the lease is gone), is an error.
fn check(id: i64, resp: &LeaseKeepAliveResponse) -> Result<(), Failure> {
    if resp.id != id {
        return Err(Failure::new(
            "wrong-lease",
            format!("keep-alive of lease {id} answered for lease {}", resp.id),
        ));
    }
    if resp.ttl <= 0 {
        return Err(Failure::new(
            "lease-not-found",
            format!("keep-alive of lease {id}: TTL {}", resp.ttl),
        ));
    }
    Ok(())
}

impl Worker for LeaseWorker {
    async fn call(&mut self, _n: u64) -> Result<(), Failure> {
        // Taken out for the duration of the request: if the request fails or is cancelled by
        // the timeout, the stream is not put back, and the next request opens a new one.
        let Some(mut s) = self.stream.take() else {
            return self.reopen().await;
        };
        s.tx.unbounded_send(LeaseKeepAliveRequest { id: self.id })
            .map_err(|_| Failure::new("stream-closed", "keep-alive stream closed"))?;
        let resp = next_response(&mut s).await?;
        self.stream = Some(s);
        check(self.id, &resp)
    }
}
