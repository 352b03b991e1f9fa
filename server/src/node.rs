//! A running member: the MVCC store, the Raft instance and the peer clients, wired together.
//!
//! The node is what the API handlers talk to. It offers three things: `propose` (replicate a
//! write through Raft, forwarding to the leader when this member is a follower), `read_barrier`
//! (make a following read linearizable) and `read` (a consistent view of the local store). It
//! owns start-up (opening files, bootstrapping a new cluster, publishing this member) and
//! shutdown. It never builds gRPC responses; that is `api`'s job.
//!
//! Whatever the leader must decide before a command is replicated is decided here, by the
//! member that hands the command to Raft (only the leader's `client_write` succeeds): a lease
//! grant without an id gets one ([`Node::prepare_for_leader`]). The node also carries a
//! follower's lease calls to the leader ([`Node::forward_lease_renew`],
//! [`Node::forward_lease_time_to_live`]); what they mean is the `lease` module's business.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use openraft::errors::ClientWriteError;
use openraft::errors::RaftError;
use openraft::raft::ReadPolicy;
use openraft::type_config::async_runtime::WatchReceiver;
use openraft::{Config as RaftConfig, ServerState, SnapshotPolicy};
use synod_mvcc::{MvccStore, ReadView};
use synod_proto::etcdserverpb::{LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, ResponseHeader};
use synod_proto::peerpb::{
    internal_request::Request, InternalRequest, InternalResponse, MemberAttributes,
};

use crate::raft::log_store::LogStore;
use crate::raft::network::{PeerClients, PeerError, PeerNetwork};
use crate::raft::observer::ApplyObserver;
use crate::raft::state_machine::{decode_member_attributes, StateMachine, META_MEMBER_PREFIX};
use crate::raft::{Applied, Command, MemberId, MemberNode, Raft, RejectKind};

/// How long a defragment waits for the store's open transactions (long reads, a snapshot being
/// sent) to end before giving up with nothing changed.
const DEFRAGMENT_WAIT: Duration = Duration::from_secs(10);

/// What a node needs to start; derived from the etcd-style configuration by `main`.
#[derive(Debug, Clone)]
pub struct NodeSettings {
    pub name: String,
    pub data_dir: PathBuf,
    pub member_id: MemberId,
    pub cluster_id: u64,
    /// Every member of the initial cluster, this one included.
    pub initial_members: Vec<(MemberId, MemberNode)>,
    /// `--initial-cluster-state new`: bootstrap Raft membership if the log is empty.
    pub new_cluster: bool,
    pub advertise_client_urls: Vec<String>,
    pub advertise_peer_urls: Vec<String>,
    pub heartbeat_interval: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub peer_tls: Option<crate::transport::tls::PeerTlsConnector>,
}

/// Why a node could not serve a request. Mapped to etcd's gRPC statuses in `api::errors`.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("no leader")]
    NoLeader,
    #[error("leader changed")]
    LeaderChanged,
    #[error("request timed out")]
    Timeout,
    #[error("server stopped")]
    Stopped,
    #[error("{1}")]
    Rejected(RejectKind, String),
    #[error("storage: {0}")]
    Storage(String),
}

/// Why a node could not start. Printed by `main` and turned into a non-zero exit.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot access data directory: {0}")]
    DataDir(String),
    #[error("{0}")]
    Store(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// A running member. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    raft: Raft,
    store: MvccStore,
    settings: NodeSettings,
    peers: Arc<PeerClients>,
    request_timeout: Duration,
    lease_ids: LeaseIdGen,
}

/// What the leader answered to a forwarded lease call.
#[derive(Debug, Clone, PartialEq)]
pub enum Forwarded<T> {
    Answer(T),
    /// The leader has no such lease.
    NotFound,
    /// The member asked is not (or not yet) the leader, or this member is: ask again.
    NotLeader,
}

/// Lease ids this member picks, etcd-style: the low 16 bits of the member id, then the low 40
/// bits of the start time in milliseconds and an 8-bit counter, which together increase by one
/// per id. Ids are positive (the top bit is cleared) and, across members with distinct low
/// member-id bits, unique.
struct LeaseIdGen {
    prefix: u64,
    suffix: AtomicU64,
}

impl LeaseIdGen {
    const SUFFIX_BITS: u32 = 48;

    fn new(member_id: MemberId) -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        LeaseIdGen {
            prefix: (member_id & 0xFFFF) << Self::SUFFIX_BITS,
            suffix: AtomicU64::new((millis & ((1 << 40) - 1)) << 8),
        }
    }

    fn next(&self) -> i64 {
        let suffix = self.suffix.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        let id = self.prefix | (suffix & ((1 << Self::SUFFIX_BITS) - 1));
        (id & (i64::MAX as u64)) as i64
    }
}

fn prepare_dir(dir: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| StartError::DataDir(format!("mkdir {}: {e}", dir.display())))?;
    // Like etcd, refuse a directory we cannot write before touching any file in it.
    let probe = dir.join(".touch");
    std::fs::write(&probe, b"")
        .map_err(|e| StartError::DataDir(format!("open {}: {e}", probe.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

impl Node {
    /// Opens the member's files, starts Raft and, for a new cluster, bootstraps its membership.
    pub async fn start(settings: NodeSettings) -> Result<Node, StartError> {
        Self::start_with_observers(settings, Vec::new()).await
    }

    /// [`Node::start`], reporting what the state machine applies to `observers`.
    pub async fn start_with_observers(
        settings: NodeSettings,
        observers: Vec<Arc<dyn ApplyObserver>>,
    ) -> Result<Node, StartError> {
        let member_dir = settings.data_dir.join("member");
        prepare_dir(&member_dir)?;
        let store = MvccStore::open(&member_dir.join("state.redb")).map_err(|e| {
            StartError::Store(format!(
                "open {}: {e}",
                member_dir.join("state.redb").display()
            ))
        })?;
        let legacy_log = member_dir.join("raft-log.redb");
        if legacy_log.exists() {
            // Development builds before the segment log kept it in redb; nothing released did.
            return Err(StartError::Store(format!(
                "{}: a Raft log in the format of an earlier development build; this Synod keeps \
                 its log in {}/ (start from an empty data directory)",
                legacy_log.display(),
                member_dir.join("raft-wal").display()
            )));
        }
        let log = LogStore::open(&member_dir.join("raft-wal"))
            .map_err(|e| StartError::Store(e.to_string()))?;

        let hb = settings.heartbeat_interval.as_millis().max(10) as u64;
        let et = settings.election_timeout.as_millis().max(hb as u128 * 2) as u64;
        let raft_config = RaftConfig {
            cluster_name: "synod".into(),
            heartbeat_interval: hb,
            election_timeout_min: et,
            election_timeout_max: et * 2,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(
                settings.snapshot_count.clamp(1000, 100_000),
            ),
            max_in_snapshot_log_to_keep: 5000,
            ..Default::default()
        }
        .validate()
        .map_err(|e| StartError::Raft(e.to_string()))?;

        let peers = PeerClients::new(settings.peer_tls.clone());
        let network = PeerNetwork {
            clients: peers.clone(),
        };
        let sm = StateMachine::new(store.clone()).with_observers(observers);
        let raft = Raft::new(settings.member_id, Arc::new(raft_config), network, log, sm)
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;

        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        if !initialized && settings.new_cluster {
            let members: BTreeMap<MemberId, MemberNode> =
                settings.initial_members.iter().cloned().collect();
            // Every member of a new static cluster proposes the same initial membership; the
            // entries are identical, so whichever wins the first election, the logs agree.
            if let Err(e) = raft.initialize(members).await {
                tracing::debug!(error = %e, "initialize skipped");
            }
        }
        let request_timeout = Duration::from_secs(5) + settings.election_timeout * 2;
        let lease_ids = LeaseIdGen::new(settings.member_id);
        Ok(Node {
            inner: Arc::new(Inner {
                raft,
                store,
                settings,
                peers,
                request_timeout,
                lease_ids,
            }),
        })
    }

    pub fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    pub fn settings(&self) -> &NodeSettings {
        &self.inner.settings
    }

    pub fn member_id(&self) -> MemberId {
        self.inner.settings.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.inner.settings.cluster_id
    }

    /// How long one client request may take (etcd's `ReqTimeout`).
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// A copy of the latest Raft metrics (term, leader, log and applied positions).
    pub fn metrics(&self) -> crate::raft::typ::RaftMetrics {
        self.with_metrics(|m| m.clone())
    }

    /// Reads the latest Raft metrics in place: the per-request paths (headers, leadership
    /// checks) need one field, not a copy of the whole metrics (maps included).
    fn with_metrics<R>(&self, f: impl FnOnce(&crate::raft::typ::RaftMetrics) -> R) -> R {
        f(&self.inner.raft.metrics().borrow_watched())
    }

    /// The current Raft leader, if one is known.
    pub fn leader(&self) -> Option<MemberId> {
        self.with_metrics(|m| m.current_leader)
    }

    fn leader_node(&self) -> Option<(MemberId, MemberNode)> {
        self.with_metrics(|m| {
            let id = m.current_leader?;
            let node = m.membership_config.membership().get_node(&id)?.clone();
            Some((id, node))
        })
    }

    pub fn is_leader(&self) -> bool {
        self.with_metrics(|m| m.state == ServerState::Leader)
    }

    /// Fills a response header the way etcd does: cluster, member, revision, raft term.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        let term = self.with_metrics(|m| m.current_term);
        ResponseHeader {
            cluster_id: self.cluster_id(),
            member_id: self.member_id(),
            revision,
            raft_term: term,
        }
    }

    /// A consistent view of the local store (serializable read).
    pub fn read(&self) -> Result<ReadView, NodeError> {
        self.inner
            .store
            .read()
            .map_err(|e| NodeError::Storage(e.to_string()))
    }

    /// Compacts this member's store file (etcd's defragment, local to the member). Blocks
    /// reads and applies while it runs, as etcd's does.
    pub async fn defragment(&self) -> Result<(), NodeError> {
        let store = self.inner.store.clone();
        let started = std::time::Instant::now();
        let before = store.size_on_disk();
        tokio::task::spawn_blocking(move || store.defragment(DEFRAGMENT_WAIT))
            .await
            .map_err(|e| NodeError::Storage(format!("defragment: {e}")))?
            .map_err(|e| NodeError::Storage(e.to_string()))?;
        tracing::info!(
            took = ?started.elapsed(),
            size_before = before,
            size_after = self.inner.store.size_on_disk(),
            "finished defragment"
        );
        Ok(())
    }

    pub fn store_sizes(&self) -> (u64, u64) {
        (
            self.inner.store.size_on_disk(),
            self.inner.store.size_in_use(),
        )
    }

    /// Waits for a leader to be known, up to the request timeout.
    async fn wait_for_leader(&self, within: Duration) -> Result<(), NodeError> {
        let mut rx = self.inner.raft.metrics();
        let wait = async {
            loop {
                if rx.borrow_watched().current_leader.is_some() {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(NodeError::Stopped);
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| NodeError::NoLeader)?
    }

    /// Replicates one write through Raft and returns the state machine's answer.
    pub async fn propose(&self, req: InternalRequest) -> Result<InternalResponse, NodeError> {
        let cmd = Command(req);
        let applied = tokio::time::timeout(self.inner.request_timeout, self.propose_cmd(&cmd))
            .await
            .map_err(|_| NodeError::Timeout)??;
        match applied {
            Applied::Done(resp) => Ok(resp),
            Applied::Rejected(kind, msg) => Err(NodeError::Rejected(kind, msg)),
        }
    }

    async fn propose_cmd(&self, cmd: &Command) -> Result<Applied, NodeError> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            // Only the leader's client_write succeeds, so what is decided here is decided by
            // the leader; a follower forwards the original command and the leader decides.
            let local = self.prepare(cmd)?.unwrap_or_else(|| cmd.clone());
            match self.inner.raft.client_write(local).await {
                Ok(resp) => return Ok(resp.data),
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                    if let (Some(_), Some(node)) = (f.leader_id, f.leader_node) {
                        match self.inner.peers.forward(&node, cmd).await {
                            Ok(applied) => return Ok(applied),
                            Err(e) => {
                                tracing::debug!(error = %e, "forward to leader failed");
                                if attempts >= 20 {
                                    return Err(forward_error(e));
                                }
                            }
                        }
                    } else if attempts >= 20 {
                        return Err(NodeError::NoLeader);
                    }
                    self.wait_for_leader(self.inner.settings.election_timeout * 3)
                        .await?;
                    tokio::time::sleep(Duration::from_millis(10 * attempts)).await;
                }
                Err(RaftError::APIError(e)) => {
                    tracing::debug!(error = %e, "proposal dropped");
                    return Err(NodeError::LeaderChanged);
                }
                Err(RaftError::Fatal(e)) => {
                    tracing::error!(error = %e, "raft stopped");
                    return Err(NodeError::Stopped);
                }
            }
        }
    }

    /// Replicates `req` only if this member leads: never forwarded, never retried. For what
    /// the leader proposes on its own behalf from its own clock (lease checkpoints), which
    /// means nothing coming from another member. Not the leader: [`NodeError::LeaderChanged`].
    pub async fn propose_as_leader(
        &self,
        req: InternalRequest,
    ) -> Result<InternalResponse, NodeError> {
        let write = self.inner.raft.client_write(Command(req));
        let written = tokio::time::timeout(self.inner.request_timeout, write)
            .await
            .map_err(|_| NodeError::Timeout)?;
        match written {
            Ok(resp) => match resp.data {
                Applied::Done(resp) => Ok(resp),
                Applied::Rejected(kind, msg) => Err(NodeError::Rejected(kind, msg)),
            },
            Err(RaftError::APIError(_)) => Err(NodeError::LeaderChanged),
            Err(RaftError::Fatal(_)) => Err(NodeError::Stopped),
        }
    }

    /// What the leader decides before replicating `cmd`, if anything: `Some` with the completed
    /// command, `None` when `cmd` is ready as it is.
    fn prepare(&self, cmd: &Command) -> Result<Option<Command>, NodeError> {
        match &cmd.0.request {
            Some(Request::LeaseGrant(g)) if g.id == 0 => {
                let mut grant = *g;
                grant.id = self.unused_lease_id()?;
                Ok(Some(Command(InternalRequest {
                    request: Some(Request::LeaseGrant(grant)),
                })))
            }
            _ => Ok(None),
        }
    }

    /// `cmd` as the leader proposes it (see [`Node::prepare`]); for forwarded commands.
    pub fn prepare_for_leader(&self, cmd: Command) -> Result<Command, NodeError> {
        Ok(self.prepare(&cmd)?.unwrap_or(cmd))
    }

    /// A lease id no granted lease has (etcd's `reqIDGen`, skipping ids in use).
    fn unused_lease_id(&self) -> Result<i64, NodeError> {
        let view = self.read()?;
        for _ in 0..1000 {
            let id = self.inner.lease_ids.next();
            let taken = view
                .lease(id)
                .map_err(|e| NodeError::Storage(e.to_string()))?
                .is_some();
            if id != 0 && !taken {
                return Ok(id);
            }
        }
        Err(NodeError::Storage("no unused lease id found".into()))
    }

    /// Asks the current leader to renew lease `id` (one attempt; the caller retries).
    pub async fn forward_lease_renew(&self, id: i64) -> Result<Forwarded<i64>, NodeError> {
        let Some((leader, node)) = self.leader_node() else {
            return Err(NodeError::NoLeader);
        };
        if leader == self.member_id() {
            return Ok(Forwarded::NotLeader);
        }
        match self.inner.peers.lease_renew(&node, id).await {
            Ok(resp) => Ok(Forwarded::Answer(resp.ttl)),
            Err(e) => forwarded_refusal(e),
        }
    }

    /// Asks the current leader for a lease's time to live (one attempt; the caller retries).
    pub async fn forward_lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<Forwarded<LeaseTimeToLiveResponse>, NodeError> {
        let Some((leader, node)) = self.leader_node() else {
            return Err(NodeError::NoLeader);
        };
        if leader == self.member_id() {
            return Ok(Forwarded::NotLeader);
        }
        match self.inner.peers.lease_time_to_live(&node, req).await {
            Ok(resp) => Ok(Forwarded::Answer(resp)),
            Err(e) => forwarded_refusal(e),
        }
    }

    /// Makes the next local read linearizable: returns once this member has applied everything
    /// the leader had committed when the barrier was requested.
    pub async fn read_barrier(&self) -> Result<(), NodeError> {
        tokio::time::timeout(self.inner.request_timeout, self.read_barrier_inner())
            .await
            .map_err(|_| NodeError::Timeout)?
    }

    async fn read_barrier_inner(&self) -> Result<(), NodeError> {
        let mut attempts = 0u64;
        loop {
            attempts += 1;
            if self.is_leader() {
                match self
                    .inner
                    .raft
                    .ensure_linearizable(ReadPolicy::ReadIndex)
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(RaftError::Fatal(_)) => return Err(NodeError::Stopped),
                    Err(e) => tracing::debug!(error = %e, "read index on leader failed"),
                }
            } else if let Some((_, node)) = self.leader_node() {
                match self.inner.peers.read_index(&node).await {
                    Ok(index) => {
                        return self
                            .inner
                            .raft
                            .wait(Some(self.inner.request_timeout))
                            .applied_index_at_least(Some(index), "linearizable read")
                            .await
                            .map(|_| ())
                            .map_err(|_| NodeError::Timeout);
                    }
                    Err(e) => tracing::debug!(error = %e, "read index from leader failed"),
                }
            }
            if attempts >= 20 {
                return Err(NodeError::NoLeader);
            }
            self.wait_for_leader(self.inner.settings.election_timeout * 3)
                .await?;
            tokio::time::sleep(Duration::from_millis(10 * attempts)).await;
        }
    }

    /// Announces this member's name and client URLs through Raft (etcd's "published").
    pub async fn publish(&self) -> Result<(), NodeError> {
        let s = &self.inner.settings;
        let attrs = MemberAttributes {
            member_id: s.member_id,
            name: s.name.clone(),
            client_urls: s.advertise_client_urls.clone(),
            peer_urls: s.advertise_peer_urls.clone(),
        };
        // etcd retries until it succeeds or stops: a member without quorum is simply not
        // ready yet (its clients wait), which is no reason to give up for good.
        loop {
            match self
                .propose(InternalRequest {
                    request: Some(Request::Publish(attrs.clone())),
                })
                .await
            {
                Ok(_) => return Ok(()),
                Err(e @ NodeError::Stopped) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "failed to publish local member to cluster through raft");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Every voting member with what it published (name, client URLs), in member-id order.
    pub fn members(
        &self,
    ) -> Result<Vec<(MemberId, MemberNode, Option<MemberAttributes>)>, NodeError> {
        let membership = self.with_metrics(|m| m.membership_config.clone());
        let view = self.read()?;
        let mut out = Vec::new();
        for (id, node) in membership.membership().nodes() {
            let key = format!("{META_MEMBER_PREFIX}{id:016x}");
            let attrs = view
                .meta(&key)
                .map_err(|e| NodeError::Storage(e.to_string()))?
                .and_then(|b| decode_member_attributes(&b));
            out.push((*id, node.clone(), attrs));
        }
        Ok(out)
    }

    pub async fn shutdown(&self) {
        let _ = self.inner.raft.shutdown().await;
        let _ = self.inner.store.sync();
    }
}

/// A forwarded lease call the leader refused.
fn forwarded_refusal<T>(e: PeerError) -> Result<Forwarded<T>, NodeError> {
    match e {
        PeerError::Refused(tonic::Code::NotFound, _) => Ok(Forwarded::NotFound),
        PeerError::Refused(tonic::Code::FailedPrecondition, _) => Ok(Forwarded::NotLeader),
        PeerError::Refused(tonic::Code::DeadlineExceeded, _) => Err(NodeError::Timeout),
        other => Err(forward_error(other)),
    }
}

fn forward_error(e: PeerError) -> NodeError {
    match e {
        PeerError::Unreachable(..) => NodeError::NoLeader,
        PeerError::Remote(m) if m.contains("forward") || m.contains("leader") => {
            NodeError::LeaderChanged
        }
        other => NodeError::Storage(other.to_string()),
    }
}
