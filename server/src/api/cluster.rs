//! The etcd `Cluster` gRPC service: MemberList over the Raft membership and what each member
//! published. Static clusters only for now: membership changes answer `Unimplemented`.

use synod_proto::etcdserverpb::cluster_server::Cluster;
use synod_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use tonic::{Request, Response, Status};

use crate::node::Node;

#[derive(Clone)]
pub struct ClusterService {
    node: Node,
}

impl ClusterService {
    pub fn new(node: Node) -> Self {
        ClusterService { node }
    }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        _: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        Err(Status::unimplemented(
            "member add is not supported by Synod yet",
        ))
    }

    async fn member_remove(
        &self,
        _: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        Err(Status::unimplemented(
            "member remove is not supported by Synod yet",
        ))
    }

    async fn member_update(
        &self,
        _: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        Err(Status::unimplemented(
            "member update is not supported by Synod yet",
        ))
    }

    async fn member_list(
        &self,
        request: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if request.into_inner().linearizable {
            self.node.read_barrier().await?;
        }
        let members = self
            .node
            .members()?
            .into_iter()
            .map(|(id, node, attrs)| {
                let (name, client_urls) =
                    attrs.map(|a| (a.name, a.client_urls)).unwrap_or_default();
                Member {
                    id,
                    name,
                    peer_ur_ls: node.peer_urls,
                    client_ur_ls: client_urls,
                    is_learner: false,
                }
            })
            .collect();
        // etcd's cluster service fills cluster, member and term but not the revision.
        Ok(Response::new(MemberListResponse {
            header: Some(self.node.header(0)),
            members,
        }))
    }

    async fn member_promote(
        &self,
        _: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        Err(Status::unimplemented(
            "member promote is not supported by Synod yet",
        ))
    }
}
