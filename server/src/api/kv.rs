//! The etcd `KV` gRPC service: validate, then read locally or propose through Raft.
//!
//! Handlers never touch storage directly: reads go through `Node::read` (after a read barrier
//! unless the request is serializable), writes through `Node::propose`. Every response header is
//! filled here, once, from the node.

use std::pin::Pin;

use futures::Stream;
use synod_proto::etcdserverpb::kv_server::Kv;
use synod_proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, RangeStreamResponse, TxnRequest, TxnResponse,
};
use synod_proto::peerpb::{internal_request, internal_response};
use tonic::{Request, Response, Status};

use super::errors::mvcc_status;
use super::validate;
use super::Limits;

use crate::node::Node;

#[derive(Clone)]
pub struct KvService {
    node: Node,
    limits: Limits,
}

impl KvService {
    pub fn new(node: Node, limits: Limits) -> Self {
        KvService { node, limits }
    }

    async fn propose(
        &self,
        req: internal_request::Request,
    ) -> Result<internal_response::Response, Status> {
        super::propose_within_limit(&self.node, &self.limits, req).await
    }
}

fn unexpected() -> Status {
    Status::internal("state machine answered with the wrong response kind")
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(
        &self,
        request: Request<RangeRequest>,
    ) -> Result<Response<RangeResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        validate::check_range(&req)?;
        if !req.serializable {
            self.node.read_barrier().await?;
        }
        let view = self.node.read()?;
        let mut resp = view.range(&req).map_err(mvcc_status)?;
        resp.header = Some(self.node.header(view.current_revision()));
        Ok(Response::new(resp))
    }

    type RangeStreamStream =
        Pin<Box<dyn Stream<Item = Result<RangeStreamResponse, Status>> + Send>>;

    async fn range_stream(
        &self,
        _: Request<RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        // etcd 3.4 has no RangeStream; answer as its gRPC server does for an unknown method.
        Err(Status::unimplemented(
            "unknown method RangeStream for service etcdserverpb.KV",
        ))
    }

    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        validate::check_put(&req)?;
        match self.propose(internal_request::Request::Put(req)).await? {
            internal_response::Response::Put(mut r) => {
                r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                Ok(Response::new(r))
            }
            _ => Err(unexpected()),
        }
    }

    async fn delete_range(
        &self,
        request: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        validate::check_delete(&req)?;
        match self
            .propose(internal_request::Request::DeleteRange(req))
            .await?
        {
            internal_response::Response::DeleteRange(mut r) => {
                r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                Ok(Response::new(r))
            }
            _ => Err(unexpected()),
        }
    }

    async fn txn(&self, request: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        validate::check_txn(&req, self.limits.max_txn_ops)?;
        match self.propose(internal_request::Request::Txn(req)).await? {
            internal_response::Response::Txn(mut r) => {
                r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                Ok(Response::new(r))
            }
            _ => Err(unexpected()),
        }
    }

    async fn compact(
        &self,
        request: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let req = request.into_inner();
        super::check_grpc_size(&req, &self.limits)?;
        match self
            .propose(internal_request::Request::Compaction(req))
            .await?
        {
            internal_response::Response::Compaction(mut r) => {
                r.header = Some(self.node.header(r.header.map_or(0, |h| h.revision)));
                Ok(Response::new(r))
            }
            _ => Err(unexpected()),
        }
    }
}
