//! The receiving side of the peer transport: the `synodpeer.Peer` gRPC service.
//!
//! Decodes each postcard payload, hands it to the local openraft instance and encodes the answer
//! as `Result<T, String>`. It must never touch the store directly: everything goes through Raft.

use openraft::raft::ReadPolicy;
use serde::Serialize;
use synod_proto::peerpb::peer_server::Peer;
use synod_proto::peerpb::RaftPayload;
use tonic::{Request, Response, Status};

use super::network::{decode, encode, SnapshotTransfer};
use super::typ::{AppendEntriesRequest, Snapshot, VoteRequest};
use super::{Command, Raft};

pub struct PeerService {
    raft: Raft,
}

impl PeerService {
    pub fn new(raft: Raft) -> Self {
        PeerService { raft }
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

    async fn forward(&self, req: Request<RaftPayload>) -> Result<Response<RaftPayload>, Status> {
        let cmd: Command = payload(req)?;
        reply(self.raft.client_write(cmd).await.map(|r| r.data))
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
}
