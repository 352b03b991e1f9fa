//! The receiving side of the peer transport: the `synodpeer.Peer` gRPC service.
//!
//! Decodes each postcard payload, hands it to the local openraft instance and encodes the answer
//! as `Result<T, String>`. It must never touch the store directly: everything goes through Raft.
//! What only the leader's upper layers can do for a follower (pick a lease id for a forwarded
//! grant, renew a lease, report its time to live) is delegated to [`LeaderDuties`].

use std::sync::Arc;

use futures::stream::BoxStream;
use openraft::raft::ReadPolicy;
use serde::Serialize;
use synod_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use synod_proto::peerpb::peer_server::Peer;
use synod_proto::peerpb::{ForwardedResults, ForwardedWrites, RaftPayload};
use tonic::{Request, Response, Status, Streaming};

use super::forwarding;
use super::network::{decode, encode, SnapshotTransfer};
use super::typ::{AppendEntriesRequest, Snapshot, VoteRequest};
use super::{Command, Raft};

/// Work a follower asks of the leader that lives above Raft (implemented by the lessor).
///
/// Errors are the statuses the follower sees: `NotFound` for an unknown lease,
/// `FailedPrecondition` when this member is not (or not yet) the leader.
#[tonic::async_trait]
pub trait LeaderDuties: Send + Sync + 'static {
    /// Completes a forwarded command the way the leader must before proposing it (a lease
    /// grant without an id gets one).
    fn prepare(&self, cmd: Command) -> Result<Command, Status>;

    /// Renews lease `id`; answers its granted TTL.
    async fn lease_renew(&self, id: i64) -> Result<i64, Status>;

    /// The lease's remaining and granted TTL (and keys if asked), without a header.
    async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status>;
}

pub struct PeerService {
    raft: Raft,
    duties: Arc<dyn LeaderDuties>,
}

impl PeerService {
    pub fn new(raft: Raft, duties: Arc<dyn LeaderDuties>) -> Self {
        PeerService { raft, duties }
    }
}

fn reply<T: Serialize, E: std::fmt::Display>(
    r: Result<T, E>,
) -> Result<Response<RaftPayload>, Status> {
    let r: Result<T, String> = r.map_err(|e| e.to_string());
    let data = encode(&r).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(RaftPayload { data }))
}

fn payload<T: serde::de::DeserializeOwned>(req: Request<RaftPayload>) -> Result<T, Status> {
    decode(&req.into_inner().data).map_err(|e| Status::invalid_argument(e.to_string()))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let rpc: AppendEntriesRequest = payload(req)?;
        reply(self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let rpc: VoteRequest = payload(req)?;
        reply(self.raft.vote(rpc).await)
    }

    async fn install_snapshot(
        &self,
        req: Request<RaftPayload>,
    ) -> Result<Response<RaftPayload>, Status> {
        let t: SnapshotTransfer = payload(req)?;
        let snapshot = Snapshot {
            meta: t.meta,
            snapshot: std::io::Cursor::new(t.data),
        };
        reply(self.raft.install_full_snapshot(t.vote, snapshot).await)
    }

    type ForwardStreamStream = BoxStream<'static, Result<ForwardedResults, Status>>;

    async fn forward_stream(
        &self,
        req: Request<Streaming<ForwardedWrites>>,
    ) -> Result<Response<Self::ForwardStreamStream>, Status> {
        Ok(Response::new(forwarding::serve(
            self.raft.clone(),
            self.duties.clone(),
            req.into_inner(),
        )))
    }

    async fn read_index(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let () = payload(req)?;
        reply(
            self.raft
                .get_read_log_id(ReadPolicy::ReadIndex)
                .await
                .map(|(read, _)| read.index()),
        )
    }

    async fn lease_renew(
        &self,
        req: Request<LeaseKeepAliveRequest>,
    ) -> Result<Response<LeaseKeepAliveResponse>, Status> {
        let id = req.into_inner().id;
        let ttl = self.duties.lease_renew(id).await?;
        Ok(Response::new(LeaseKeepAliveResponse {
            header: None,
            id,
            ttl,
        }))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let resp = self.duties.lease_time_to_live(req.into_inner()).await?;
        Ok(Response::new(resp))
    }
}
