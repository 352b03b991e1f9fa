//! The etcd `Maintenance` gRPC service: Status (what `etcdctl endpoint status` shows), Alarm,
//! Defragment and HashKV (what `etcdctl endpoint hashkv` shows), all local to the member.
//!
//! RPCs Synod does not provide yet answer `Unimplemented`, never a fake success.

use std::pin::Pin;

use futures::Stream;
use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use synod_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse, DowngradeRequest,
    DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse, MoveLeaderRequest,
    MoveLeaderResponse, SnapshotRequest, SnapshotResponse, StatusRequest, StatusResponse,
};
use tonic::{Request, Response, Status};

use crate::api::errors::mvcc_status;
use crate::node::Node;

/// The etcd version Synod reports itself compatible with.
pub const ETCD_VERSION: &str = "3.4.23";

#[derive(Clone)]
pub struct MaintenanceService {
    node: Node,
}

impl MaintenanceService {
    pub fn new(node: Node) -> Self {
        MaintenanceService { node }
    }
}

#[tonic::async_trait]
impl Maintenance for MaintenanceService {
    async fn alarm(&self, _: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let rev = self.node.read()?.current_revision();
        Ok(Response::new(AlarmResponse {
            header: Some(self.node.header(rev)),
            alarms: vec![],
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let rev = self.node.read()?.current_revision();
        let m = self.node.metrics();
        let (db_size, db_size_in_use) = self.node.store_sizes();
        Ok(Response::new(StatusResponse {
            header: Some(self.node.header(rev)),
            version: ETCD_VERSION.to_string(),
            db_size: db_size as i64,
            leader: m.current_leader.unwrap_or(0),
            raft_index: m.last_log_index.unwrap_or(0),
            raft_term: m.current_term,
            raft_applied_index: m.last_applied.map_or(0, |l| l.index),
            errors: vec![],
            db_size_in_use: db_size_in_use as i64,
            is_learner: false,
            ..Default::default()
        }))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        // etcd answers a bare `DefragmentResponse`, without a header.
        self.node.defragment().await?;
        Ok(Response::new(DefragmentResponse::default()))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented("hash is not supported by Synod yet"))
    }

    async fn hash_kv(
        &self,
        request: Request<HashKvRequest>,
    ) -> Result<Response<HashKvResponse>, Status> {
        let rev = request.into_inner().revision;
        let view = self.node.read()?;
        let current = view.current_revision();
        // It reads the whole history up to `rev`: off the runtime's workers.
        let hashed = tokio::task::spawn_blocking(move || view.hash_kv(rev))
            .await
            .map_err(|e| Status::internal(format!("hashkv: {e}")))?;
        let (hash, compact_revision) = hashed.map_err(mvcc_status)?;
        Ok(Response::new(HashKvResponse {
            header: Some(self.node.header(current)),
            hash,
            compact_revision,
            // Added in etcd 3.5; etcd 3.4 (the reference) leaves it unset.
            hash_revision: 0,
        }))
    }

    type SnapshotStream = Pin<Box<dyn Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented(
            "snapshot is not supported by Synod yet",
        ))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented(
            "move-leader is not supported by Synod yet",
        ))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        // etcd 3.4 has no Downgrade RPC.
        Err(Status::unimplemented(
            "unknown method Downgrade for service etcdserverpb.Maintenance",
        ))
    }
}
