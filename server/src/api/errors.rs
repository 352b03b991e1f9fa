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

/// A refusal by the election or lock recipes (etcd's `v3election` and `clientv3/concurrency`).
///
/// etcd 3.4 returns these as plain Go errors from its `v3election` / `v3lock` servers, so
/// grpc-go answers with `Unknown` and the error's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    /// `v3election.ErrMissingLeaderKey`: Proclaim or Resign without a leader key.
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// `concurrency.ErrElectionNotLeader`: the key to proclaim with is not the leader's.
    #[error("election: not leader")]
    NotLeader,
    /// `concurrency.ErrElectionNoLeader`: nobody campaigns on the election.
    #[error("election: no leader")]
    NoLeader,
    /// `concurrency.waitDelete` lost its watcher without an error.
    #[error("lost watcher waiting for delete")]
    LostWatcher,
}

impl From<RecipeError> for Status {
    fn from(e: RecipeError) -> Status {
        Status::unknown(e.to_string())
    }
}

/// What an etcd error from a KV, lease or watch call made by a recipe becomes.
///
/// etcd 3.4's Election and Lock servers run the clientv3 recipes over an in-process client.
/// That client turns every status carrying one of etcd's error messages into an `EtcdError`,
/// which has no gRPC status of its own, so the outer server answers `Unknown` with the same
/// message (e.g. `etcdserver: requested lease not found` is `NotFound` from `Put` but
/// `Unknown` from `Lock`). Other statuses pass through unchanged.
pub fn recipe_status(s: Status) -> Status {
    if s.message().starts_with("etcdserver: ") {
        Status::unknown(s.message().to_owned())
    } else {
        s
    }
}
