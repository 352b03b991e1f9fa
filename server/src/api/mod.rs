//! The client-facing gRPC services, one file each, and the mapping of errors to etcd statuses.
//!
//! Handlers validate requests exactly as etcd does, then go through `Node`; they never open the
//! store's files and never talk to Raft directly.

pub mod cluster;
pub mod election;
pub mod errors;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod recipe;
pub mod validate;
pub mod watch;
pub mod watch_reply;

/// Request limits taken from `--max-request-bytes` and `--max-txn-ops`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
}

impl From<crate::node::NodeError> for tonic::Status {
    fn from(e: crate::node::NodeError) -> tonic::Status {
        errors::node_status(e)
    }
}

/// Replicates one request through Raft; refuses it first, with etcd's "request is too large",
/// if its encoding exceeds `--max-request-bytes` (etcd checks the same before proposing).
pub async fn propose_within_limit(
    node: &crate::node::Node,
    limits: &Limits,
    req: synod_proto::peerpb::internal_request::Request,
) -> Result<synod_proto::peerpb::internal_response::Response, tonic::Status> {
    use prost::Message as _;
    let req = synod_proto::peerpb::InternalRequest { request: Some(req) };
    if req.encoded_len() > limits.max_request_bytes {
        return Err(errors::RequestError::TooLarge.into());
    }
    let resp = node.propose(req).await?;
    resp.response
        .ok_or_else(|| tonic::Status::internal("state machine returned no response"))
}

/// grpc-go's receive limit, checked where etcd's gRPC server would check it.
///
/// tonic's own limit answers with different text, so the transport limit is set generously and
/// this check reproduces grpc-go's `ResourceExhausted` message byte for byte.
pub fn check_grpc_size<M: prost::Message>(msg: &M, limits: &Limits) -> Result<(), tonic::Status> {
    let len = msg.encoded_len();
    let max = limits.max_grpc_recv_bytes();
    if len > max {
        return Err(tonic::Status::resource_exhausted(format!(
            "grpc: received message larger than max ({len} vs. {max})"
        )));
    }
    Ok(())
}

impl Limits {
    /// etcd's gRPC receive limit: the request limit plus 512 KiB of overhead.
    pub fn max_grpc_recv_bytes(&self) -> usize {
        self.max_request_bytes + 512 * 1024
    }

    /// The limit handed to tonic: large enough that `check_grpc_size` sees oversized messages.
    pub fn transport_decode_limit(&self) -> usize {
        self.max_grpc_recv_bytes().saturating_mul(4).max(64 << 20)
    }
}
