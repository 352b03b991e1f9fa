//! The one place where Synod's typed errors become etcd's gRPC statuses.
//!
//! Codes and messages are upstream's exactly (etcd's `rpctypes`), because clients match on the
//! message text. Nothing else in the server constructs a `tonic::Status` for these cases.

use tonic::{Code, Status};

use crate::node::NodeError;
use crate::raft::RejectKind;

/// A request refused by validation before it reaches Raft (etcd's `checkXRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: request is too large")]
    TooLarge,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
}

/// A lease request refused before it reaches Raft (etcd's lessor checks, made up front).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LeaseRequestError {
    #[error("etcdserver: too large lease TTL")]
    TtlTooLarge,
}

impl From<LeaseRequestError> for Status {
    fn from(e: LeaseRequestError) -> Status {
        match e {
            LeaseRequestError::TtlTooLarge => Status::out_of_range(e.to_string()),
        }
    }
}

impl From<RequestError> for Status {
    fn from(e: RequestError) -> Status {
        Status::new(Code::InvalidArgument, e.to_string())
    }
}

/// Maps a node failure to etcd's status.
pub fn node_status(e: NodeError) -> Status {
    match e {
        NodeError::NoLeader => Status::unavailable("etcdserver: no leader"),
        NodeError::LeaderChanged => Status::unavailable("etcdserver: leader changed"),
        NodeError::Timeout => Status::unavailable("etcdserver: request timed out"),
        NodeError::Stopped => Status::unavailable("etcdserver: server stopped"),
        NodeError::Rejected(kind, msg) => rejected(kind, &msg),
        NodeError::Storage(msg) => Status::unknown(msg),
    }
}

fn rejected(kind: RejectKind, msg: &str) -> Status {
    match kind {
        RejectKind::Compacted => {
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted")
        }
        RejectKind::FutureRevision => {
            Status::out_of_range("etcdserver: mvcc: required revision is a future revision")
        }
        RejectKind::KeyNotFound => Status::invalid_argument("etcdserver: key not found"),
        RejectKind::LeaseNotFound => Status::not_found("etcdserver: requested lease not found"),
        RejectKind::LeaseExists => Status::failed_precondition("etcdserver: lease already exists"),
        RejectKind::Invalid => Status::invalid_argument(format!("etcdserver: {msg}")),
    }
}

/// Maps a refusal of a local read by the MVCC store to etcd's status.
pub fn mvcc_status(e: synod_mvcc::MvccError) -> Status {
    use synod_mvcc::MvccError;
    match e {
        MvccError::Compacted => rejected(RejectKind::Compacted, ""),
        MvccError::FutureRevision => rejected(RejectKind::FutureRevision, ""),
        MvccError::KeyNotFound => rejected(RejectKind::KeyNotFound, ""),
        MvccError::LeaseNotFound => rejected(RejectKind::LeaseNotFound, ""),
        MvccError::LeaseExists => rejected(RejectKind::LeaseExists, ""),
        other => Status::unknown(other.to_string()),
    }
}
