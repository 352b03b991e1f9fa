//! The etcd `Lease` gRPC service (`v3rpc/lease.go` over `v3_server.go`).
//!
//! Grants and revocations are proposed through Raft (`Node::propose`); keep-alives and
//! time-to-live go to the lessor, which answers from the leader's deadlines; the lease list is
//! read from the local store after a read barrier. This module owns request checks made before
//! Raft (TTL bounds) and the shape of responses (headers, etcd's "not found" answers). It never
//! touches the store or the deadlines itself.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use synod_proto::etcdserverpb::lease_server::Lease;
use synod_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest, LeaseKeepAliveResponse,
    LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus,
    LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use synod_proto::peerpb::{internal_request, internal_response, InternalRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::errors::{mvcc_status, LeaseRequestError};
use super::Limits;
use crate::lease::{Lessor, MAX_LEASE_TTL};
use crate::node::{Node, NodeError};
use crate::raft::RejectKind;

/// How many times a grant whose generated id turned out to be taken is retried.
const GRANT_ATTEMPTS: usize = 3;

#[derive(Clone)]
pub struct LeaseService {
    node: Node,
    lessor: Lessor,
    limits: Limits,
}

impl LeaseService {
    pub fn new(node: Node, lessor: Lessor, limits: Limits) -> Self {
        LeaseService {
            node,
            lessor,
            limits,
        }
    }

    async fn propose(
        &self,
        req: internal_request::Request,
    ) -> Result<internal_response::Response, NodeError> {
        let resp = self
            .node
            .propose(InternalRequest { request: Some(req) })
            .await?;
        resp.response
            .ok_or_else(|| NodeError::Storage("state machine returned no response".into()))
    }

    /// Serves one keep-alive stream: renews each requested lease in order and answers each
    /// request; ends when the client half-closes, fails, or goes away. Used by gRPC and the
    /// JSON gateway alike.
    pub fn serve_keep_alive<S>(
        &self,
        mut inbound: S,
    ) -> mpsc::Receiver<Result<LeaseKeepAliveResponse, Status>>
    where
        S: Stream<Item = Result<LeaseKeepAliveRequest, Status>> + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(16);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = inbound.next() => next,
                    _ = tx.closed() => return,
                };
                let req = match next {
                    Some(Ok(req)) => req,
                    None => return,
                    Some(Err(status)) => {
                        tracing::debug!(%status, "lease keep-alive stream ended");
                        return;
                    }
                };
                // Like etcd, the header is taken before renewing: its revision is never newer
                // than the renewal.
                let answer = match this.local_header() {
                    Ok(header) => this
                        .lessor
                        .renew(req.id)
                        .await
                        .map(|ttl| LeaseKeepAliveResponse {
                            header,
                            id: req.id,
                            // etcd answers a keep-alive of an unknown lease with TTL 0.
                            ttl: ttl.unwrap_or(0),
                        })
                        .map_err(Status::from),
                    Err(e) => Err(Status::from(e)),
                };
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    return;
                }
            }
        });
        rx
    }

    /// A header carrying this member's current revision.
    fn local_header(&self) -> Result<Option<synod_proto::etcdserverpb::ResponseHeader>, NodeError> {
        let rev = self.node.read()?.current_revision();
        Ok(Some(self.node.header(rev)))
    }
}

fn unexpected() -> Status {
    Status::internal("state machine answered with the wrong response kind")
}

type KeepAliveStream = Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        let mut req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        if req.ttl > MAX_LEASE_TTL {
            return Err(LeaseRequestError::TtlTooLarge.into());
        }
        // etcd raises short TTLs when granting (`lessor.Grant`); done before replication so
        // every member stores the same TTL.
        req.ttl = req.ttl.max(self.lessor.min_ttl());
        // ID 0: the leader picks one before proposing (see `Node::prepare_for_leader`).
        let generated = req.id == 0;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .propose(internal_request::Request::LeaseGrant(req))
                .await
            {
                Ok(internal_response::Response::LeaseGrant(mut r)) => {
                    r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                    return Ok(Response::new(r));
                }
                Ok(_) => return Err(unexpected()),
                // A generated id collided with a client-chosen one: pick another.
                Err(NodeError::Rejected(RejectKind::LeaseExists, _))
                    if generated && attempt < GRANT_ATTEMPTS => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        match self
            .propose(internal_request::Request::LeaseRevoke(req))
            .await?
        {
            internal_response::Response::LeaseRevoke(mut r) => {
                r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                Ok(Response::new(r))
            }
            _ => Err(unexpected()),
        }
    }

    type LeaseKeepAliveStream = KeepAliveStream;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let rx = self.serve_keep_alive(request.into_inner());
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        let id = req.id;
        let resp = match self.lessor.time_to_live(req).await? {
            Some(resp) => resp,
            // etcd: an unknown lease is not an error, it has TTL -1.
            None => LeaseTimeToLiveResponse {
                id,
                ttl: -1,
                ..Default::default()
            },
        };
        Ok(Response::new(LeaseTimeToLiveResponse {
            header: self.local_header()?,
            ..resp
        }))
    }

    async fn lease_leases(
        &self,
        request: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        super::check_grpc_size(request.get_ref(), &self.limits)?;
        // A grant answered through another member is applied here too before listing.
        self.node.read_barrier().await?;
        let view = self.node.read()?;
        let leases = view
            .leases()
            .map_err(mvcc_status)?
            .into_iter()
            .map(|(id, _)| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.node.header(view.current_revision())),
            leases,
        }))
    }
}
