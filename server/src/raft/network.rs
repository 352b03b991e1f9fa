//! The peer transport: how this member reaches the others.
//!
//! Raft RPCs travel over the `synodpeer.Peer` gRPC service (tonic, on `--listen-peer-urls`) as
//! postcard-encoded openraft messages: openraft's types already carry serde derives, and one
//! opaque payload keeps the peer protocol stable while openraft's message shapes evolve.
//! The same channels carry forwarded client writes (on one stream per leader, see
//! [`super::forwarding`]) and read-index requests ([`PeerClients::forward`],
//! [`PeerClients::read_index`]) and a follower's lease calls that
//! only the leader can answer ([`PeerClients::lease_renew`], [`PeerClients::lease_time_to_live`],
//! typed etcd messages rather than postcard payloads).
//!
//! This module never decides anything: it only moves bytes between members.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::errors::{NetworkError, ReplicationClosed, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::{AnyError, OptionalSend};
use serde::{de::DeserializeOwned, Serialize};
use synod_proto::etcdserverpb::{
    LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use synod_proto::peerpb::peer_client::PeerClient;
use synod_proto::peerpb::RaftPayload;
use tonic::transport::{Channel, Endpoint};

use crate::transport::tls::PeerTlsConnector;

use super::forwarding::ForwardStreams;
use super::typ::{
    AppendEntriesRequest, AppendEntriesResponse, RPCError, Snapshot, SnapshotMeta,
    SnapshotResponse, StreamingError, Vote, VoteRequest, VoteResponse,
};
use super::{Applied, Command, MemberId, MemberNode, SnapshotData, TypeConfig};

/// Largest peer message: a whole snapshot travels in one message.
pub const MAX_PEER_MESSAGE: usize = 1 << 30;

/// Errors a peer call can end with, as seen by the caller.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("peer {0} unreachable: {1}")]
    Unreachable(String, String),
    #[error("peer call failed: {0}")]
    Call(String),
    #[error("peer answered an undecodable message: {0}")]
    Decode(String),
    /// The remote side reported an error (text from the remote).
    #[error("{0}")]
    Remote(String),
    /// A typed peer call was refused by the remote with this gRPC status.
    #[error("peer refused: {1}")]
    Refused(tonic::Code, String),
}

pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, PeerError> {
    postcard::to_stdvec(v).map_err(|e| PeerError::Decode(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, PeerError> {
    postcard::from_bytes(b).map_err(|e| PeerError::Decode(e.to_string()))
}

/// A whole snapshot as it travels to a follower.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct SnapshotTransfer {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// Lazily-connected gRPC channels to the other members, keyed by peer URL, and the streams
/// this member forwards client writes on.
pub struct PeerClients {
    channels: Mutex<HashMap<String, Channel>>,
    tls: Option<PeerTlsConnector>,
    forwarding: ForwardStreams,
}

impl PeerClients {
    pub fn new(tls: Option<PeerTlsConnector>) -> Arc<Self> {
        Arc::new(PeerClients {
            channels: Mutex::new(HashMap::new()),
            tls,
            forwarding: ForwardStreams::default(),
        })
    }

    fn channel(&self, url: &str) -> Result<Channel, PeerError> {
        let mut map = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = map.get(url) {
            return Ok(c.clone());
        }
        // TLS, when on, is done by our own connector (etcd's peer auto-TLS skips verification,
        // which tonic's TLS cannot); the endpoint itself is therefore always plain http.
        let plain = url
            .strip_prefix("https://")
            .map_or_else(|| url.to_string(), |rest| format!("http://{rest}"));
        let ep = Endpoint::from_shared(plain)
            .map_err(|e| PeerError::Unreachable(url.to_string(), e.to_string()))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(5))
            .keep_alive_while_idle(true);
        let ch = match &self.tls {
            Some(connector) => ep.connect_with_connector_lazy(connector.clone()),
            None => ep.connect_lazy(),
        };
        map.insert(url.to_string(), ch.clone());
        Ok(ch)
    }

    fn client(&self, node: &MemberNode) -> Result<PeerClient<Channel>, PeerError> {
        self.client_at(peer_url(node)?)
    }

    fn client_at(&self, url: &str) -> Result<PeerClient<Channel>, PeerError> {
        Ok(PeerClient::new(self.channel(url)?)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE))
    }

    async fn call<Req, Resp, F, Fut>(
        &self,
        node: &MemberNode,
        req: &Req,
        f: F,
    ) -> Result<Resp, PeerError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        F: FnOnce(PeerClient<Channel>, RaftPayload) -> Fut,
        Fut: Future<Output = Result<tonic::Response<RaftPayload>, tonic::Status>>,
    {
        let client = self.client(node)?;
        let payload = RaftPayload { data: encode(req)? };
        let resp = f(client, payload).await.map_err(|s| match s.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown => {
                PeerError::Unreachable(node.name.clone(), s.message().to_string())
            }
            _ => PeerError::Call(s.message().to_string()),
        })?;
        let out: Result<Resp, String> = decode(&resp.into_inner().data)?;
        out.map_err(PeerError::Remote)
    }

    /// Asks `leader` to propose a client write on this member's behalf (over this member's
    /// forwarding stream to it, see [`super::forwarding`]).
    pub async fn forward(&self, leader: &MemberNode, cmd: &Command) -> Result<Applied, PeerError> {
        let url = peer_url(leader)?;
        self.forwarding
            .forward(leader, url, || self.client_at(url), cmd)
            .await
    }

    /// Asks `leader` for a read index: the log index a linearizable read must wait for.
    pub async fn read_index(&self, leader: &MemberNode) -> Result<u64, PeerError> {
        self.call(leader, &(), |mut c, p| async move { c.read_index(p).await })
            .await
    }

    /// Asks `leader` to renew a lease (a keep-alive that reached a follower).
    pub async fn lease_renew(
        &self,
        leader: &MemberNode,
        id: i64,
    ) -> Result<LeaseKeepAliveResponse, PeerError> {
        let mut client = self.client(leader)?;
        let resp = client
            .lease_renew(LeaseKeepAliveRequest { id })
            .await
            .map_err(|s| refused(leader, s))?;
        Ok(resp.into_inner())
    }

    /// Asks `leader` for a lease's remaining time to live (only the leader keeps deadlines).
    pub async fn lease_time_to_live(
        &self,
        leader: &MemberNode,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, PeerError> {
        let mut client = self.client(leader)?;
        let resp = client
            .lease_time_to_live(req)
            .await
            .map_err(|s| refused(leader, s))?;
        Ok(resp.into_inner())
    }
}

/// The URL `node` is dialled at: its first peer URL.
fn peer_url(node: &MemberNode) -> Result<&str, PeerError> {
    node.peer_urls
        .first()
        .map(String::as_str)
        .ok_or_else(|| PeerError::Unreachable(node.name.clone(), "member has no peer URL".into()))
}

/// A typed peer call's failure: transport trouble is `Unreachable`, anything else the remote's
/// status.
fn refused(node: &MemberNode, s: tonic::Status) -> PeerError {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::Unknown => {
            PeerError::Unreachable(node.name.clone(), s.message().to_string())
        }
        code => PeerError::Refused(code, s.message().to_string()),
    }
}

/// openraft's network factory: one [`PeerConn`] per target member.
#[derive(Clone)]
pub struct PeerNetwork {
    pub clients: Arc<PeerClients>,
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConn;

    async fn new_client(&mut self, target: MemberId, node: &MemberNode) -> Self::Network {
        PeerConn {
            target,
            node: node.clone(),
            clients: self.clients.clone(),
        }
    }
}

pub struct PeerConn {
    target: MemberId,
    node: MemberNode,
    clients: Arc<PeerClients>,
}

fn rpc_error(target: MemberId, e: PeerError) -> RPCError {
    match e {
        PeerError::Unreachable(..) => RPCError::Unreachable(Unreachable::new(&AnyError::error(
            format!("member {target:x}: {e}"),
        ))),
        other => RPCError::Network(NetworkError::new(&AnyError::error(format!(
            "member {target:x}: {other}"
        )))),
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConn {
    type SnapshotData = SnapshotData;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError> {
        self.clients
            .call(&self.node, &rpc, |mut c, p| async move {
                c.append_entries(p).await
            })
            .await
            .map_err(|e| rpc_error(self.target, e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest,
        _option: RPCOption,
    ) -> Result<VoteResponse, RPCError> {
        self.clients
            .call(&self.node, &rpc, |mut c, p| async move { c.vote(p).await })
            .await
            .map_err(|e| rpc_error(self.target, e))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse, StreamingError> {
        let transfer = SnapshotTransfer {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot.into_inner(),
        };
        let resp = self
            .clients
            .call(&self.node, &transfer, |mut c, p| async move {
                c.install_snapshot(p).await
            })
            .await
            .map_err(|e| rpc_error(self.target, e))?;
        Ok(resp)
    }
}
