//! Consensus: Synod's openraft type configuration and the storage/network adapters.
//!
//! Every write (Put, DeleteRange, Txn, Compact, LeaseGrant, LeaseRevoke, member publication)
//! becomes one openraft log entry carrying a [`Command`]; the state machine answers it with an
//! [`Applied`]. This module owns the Raft-facing types only: it never interprets a command
//! (that is `synod_mvcc`'s job) and never speaks gRPC to clients (that is `api`'s job).

pub mod forwarding;
pub mod log_store;
pub mod network;
pub mod observer;
pub mod peer_service;
pub mod state_machine;
mod storage_codec;
mod wal;

use std::fmt;

use prost::Message;
use serde::{Deserialize, Serialize};
use synod_proto::peerpb::{InternalRequest, InternalResponse};

/// An etcd member id (etcd's `types.ID`): Synod's Raft node id is the etcd member id.
pub type MemberId = u64;

/// What Raft stores about a member: enough to dial it and to list it in MemberList.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberNode {
    pub name: String,
    pub peer_urls: Vec<String>,
}

impl fmt::Display for MemberNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.name, self.peer_urls.join(","))
    }
}

/// A replicated command: an etcd request as the state machine will apply it.
///
/// Carried in log entries and over the peer wire as its protobuf encoding, so the log holds the
/// same bytes etcd's WAL would (an `InternalRequest` is a oneof of etcd request messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Command(pub InternalRequest);

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use synod_proto::peerpb::internal_request::Request;
        let kind = match &self.0.request {
            Some(Request::Put(_)) => "put",
            Some(Request::DeleteRange(_)) => "delete_range",
            Some(Request::Txn(_)) => "txn",
            Some(Request::Compaction(_)) => "compaction",
            Some(Request::Publish(_)) => "publish",
            Some(Request::LeaseGrant(_)) => "lease_grant",
            Some(Request::LeaseRevoke(_)) => "lease_revoke",
            Some(Request::LeaseCheckpoint(_)) => "lease_checkpoint",
            None => "empty",
        };
        f.write_str(kind)
    }
}

impl Serialize for Command {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.encode_to_vec())
    }
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = serde_bytes_vec(d)?;
        InternalRequest::decode(bytes.as_slice())
            .map(Command)
            .map_err(serde::de::Error::custom)
    }
}

/// Why the state machine refused a command. The API layer maps each kind to etcd's gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectKind {
    Compacted,
    FutureRevision,
    KeyNotFound,
    LeaseNotFound,
    Invalid,
    /// Appended last: the variant index is on the peer wire (postcard) and must not move.
    LeaseExists,
}

/// The state machine's answer to one [`Command`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Applied {
    /// The response, protobuf-encoded only when it crosses the peer wire (a forwarded write).
    Done(#[serde(with = "response_as_bytes")] InternalResponse),
    Rejected(RejectKind, String),
}

impl Applied {
    pub fn done(resp: InternalResponse) -> Self {
        Applied::Done(resp)
    }
}

mod response_as_bytes {
    use prost::Message;
    use synod_proto::peerpb::InternalResponse;

    pub fn serialize<S: serde::Serializer>(v: &InternalResponse, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&v.encode_to_vec())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<InternalResponse, D::Error> {
        let bytes = super::serde_bytes_vec(d)?;
        InternalResponse::decode(bytes.as_slice()).map_err(serde::de::Error::custom)
    }
}

fn serde_bytes_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::with_capacity(a.size_hint().unwrap_or(0));
            while let Some(b) = a.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
    d.deserialize_bytes(V)
}

openraft::declare_raft_types!(
    /// Synod's Raft type configuration.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = MemberId,
        Node = MemberNode,
);

/// The snapshot payload: the whole MVCC state as produced by `MvccStore::snapshot_bytes`.
pub type SnapshotData = std::io::Cursor<Vec<u8>>;

pub type Raft = openraft::Raft<TypeConfig, state_machine::StateMachine>;

/// Short names for openraft's generic types instantiated with [`TypeConfig`].
pub mod typ {
    use super::TypeConfig;
    pub type Vote = <TypeConfig as openraft::RaftTypeConfig>::Vote;
    pub type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
    pub type Entry = <TypeConfig as openraft::RaftTypeConfig>::Entry;
    pub type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
    pub type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
    pub type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, super::SnapshotData>;
    pub type LogState = openraft::storage::LogState<TypeConfig>;
    pub type IOFlushed = openraft::storage::IOFlushed<TypeConfig>;
    pub type RPCError = openraft::errors::RPCError<TypeConfig>;
    pub type StreamingError = openraft::errors::StreamingError<TypeConfig>;
    pub type VoteRequest = openraft::raft::VoteRequest<TypeConfig>;
    pub type VoteResponse = openraft::raft::VoteResponse<TypeConfig>;
    pub type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
    pub type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<TypeConfig>;
    pub type SnapshotResponse = openraft::raft::SnapshotResponse<TypeConfig>;
    pub type ClientWriteError = openraft::errors::ClientWriteError<TypeConfig>;
    pub type RaftError<E = openraft::errors::Infallible> =
        openraft::errors::RaftError<TypeConfig, E>;
    pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
}
