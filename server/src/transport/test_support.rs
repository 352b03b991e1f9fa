//! Test doubles shared by the transport tests: in-memory gRPC services and etcd's TLS
//! fixtures. Test-only; never compiled into the server.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use synod_proto::etcdserverpb::maintenance_server::Maintenance;
use synod_proto::etcdserverpb::{self as pb, cluster_server::Cluster, kv_server::Kv};
use synod_proto::mvccpb::KeyValue;
use tonic::{Request, Response, Status};

use super::gateway::HealthCheck;

/// etcd's own TLS test fixtures (shipped with Debian's etcd source).
pub fn fixture(name: &str) -> PathBuf {
    Path::new("/usr/share/gocode/src/go.etcd.io/etcd/integration/fixtures").join(name)
}

/// The TLS tests need etcd's fixture certificates: a missing package fails them loudly.
pub fn require_fixtures() {
    assert!(
        fixture("server.crt").is_file(),
        "etcd's TLS fixtures are missing ({}): install golang-etcd-server-dev (scripts/setup-test-deps)",
        fixture("server.crt").display()
    );
}

fn header(revision: i64) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        cluster_id: 14841639068965178418,
        member_id: 10276657743932975437,
        revision,
        raft_term: 2,
    })
}

/// Stored key/value pairs, in write order.
type Pairs = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>)>>>;

/// A one-map KV store: `put` stores, `range` returns the exact key; `range` of key
/// `"fail"` fails with InvalidArgument. Records the last `authorization` metadata seen.
#[derive(Clone, Default)]
pub struct MemKv {
    data: Pairs,
    /// The `authorization` metadata of the last request.
    pub last_auth: Arc<Mutex<Option<String>>>,
}

impl MemKv {
    fn record_auth<T>(&self, req: &Request<T>) {
        let auth = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if let Ok(mut last) = self.last_auth.lock() {
            *last = auth;
        }
    }

    fn revision(&self) -> i64 {
        self.data.lock().map(|d| d.len() as i64 + 1).unwrap_or(1)
    }
}

#[tonic::async_trait]
impl Kv for MemKv {
    async fn range(
        &self,
        req: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        self.record_auth(&req);
        let key = req.into_inner().key;
        if key == b"fail" {
            return Err(Status::invalid_argument("etcdserver: key is not provided"));
        }
        let data = self.data.lock().map_err(|_| Status::internal("poisoned"))?;
        let kvs: Vec<KeyValue> = data
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(k, v)| KeyValue {
                key: k.clone(),
                value: v.clone(),
                create_revision: 2,
                mod_revision: 2,
                version: 1,
                lease: 0,
            })
            .collect();
        let count = kvs.len() as i64;
        Ok(Response::new(pb::RangeResponse {
            header: header(data.len() as i64 + 1),
            kvs,
            more: false,
            count,
        }))
    }

    type RangeStreamStream = futures::stream::Empty<Result<pb::RangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        Err(Status::unimplemented("range_stream"))
    }

    async fn put(&self, req: Request<pb::PutRequest>) -> Result<Response<pb::PutResponse>, Status> {
        self.record_auth(&req);
        let put = req.into_inner();
        let mut data = self.data.lock().map_err(|_| Status::internal("poisoned"))?;
        data.push((put.key, put.value));
        let revision = data.len() as i64 + 1;
        Ok(Response::new(pb::PutResponse {
            header: header(revision),
            prev_kv: None,
        }))
    }

    async fn delete_range(
        &self,
        _: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        Err(Status::unimplemented("delete_range"))
    }

    async fn txn(&self, _: Request<pb::TxnRequest>) -> Result<Response<pb::TxnResponse>, Status> {
        Err(Status::unimplemented("txn"))
    }

    async fn compact(
        &self,
        _: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        Ok(Response::new(pb::CompactionResponse {
            header: header(self.revision()),
        }))
    }
}

/// Maintenance with only `status`.
#[derive(Clone, Default)]
pub struct StubMaintenance;

#[tonic::async_trait]
impl Maintenance for StubMaintenance {
    async fn alarm(
        &self,
        _: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        Err(Status::unimplemented("alarm"))
    }
    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        Ok(Response::new(pb::StatusResponse {
            header: header(1),
            version: "3.4.23".into(),
            ..Default::default()
        }))
    }
    async fn defragment(
        &self,
        _: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        Ok(Response::new(pb::DefragmentResponse::default()))
    }
    async fn hash(
        &self,
        _: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        Err(Status::unimplemented("hash"))
    }
    async fn hash_kv(
        &self,
        _: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        Err(Status::unimplemented("hash_kv"))
    }
    type SnapshotStream = futures::stream::Empty<Result<pb::SnapshotResponse, Status>>;
    async fn snapshot(
        &self,
        _: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        Err(Status::unimplemented("snapshot"))
    }
    async fn move_leader(
        &self,
        _: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("move_leader"))
    }
    async fn downgrade(
        &self,
        _: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(Status::unimplemented("downgrade"))
    }
}

/// Cluster with only `member_list` (one member).
#[derive(Clone, Default)]
pub struct StubCluster;

#[tonic::async_trait]
impl Cluster for StubCluster {
    async fn member_add(
        &self,
        _: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        Err(Status::unimplemented("member_add"))
    }
    async fn member_remove(
        &self,
        _: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        Err(Status::unimplemented("member_remove"))
    }
    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(Status::unimplemented("member_update"))
    }
    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let member = pb::Member {
            id: 10276657743932975437,
            name: "default".into(),
            ..Default::default()
        };
        Ok(Response::new(pb::MemberListResponse {
            header: header(1),
            members: vec![member],
        }))
    }
    async fn member_promote(
        &self,
        _: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        Err(Status::unimplemented("member_promote"))
    }
}

/// A health check that always answers `result`.
pub fn health(result: Result<(), String>) -> HealthCheck {
    Arc::new(move || -> BoxFuture<'static, Result<(), String>> {
        let result = result.clone();
        Box::pin(async move { result })
    })
}
