//! The lessor: lease deadlines in memory, decided by the leader and estimated everywhere.
//!
//! Like etcd's `lessor`, the member that leads (the *primary*) keeps, for every granted lease,
//! the instant it expires, and that deadline alone decides expiry. Unlike etcd 3.4 by default,
//! every other member keeps a *shadow* of it, so that a new leader resumes each lease's
//! remaining TTL instead of restarting the full TTL (etcd issues #9395, #17132). The lessor:
//!
//! * **shadows** on every member that is not primary: a grant applied at instant `a` gives the
//!   lease the estimated expiry `a + TTL` (members apply within milliseconds of the leader, and
//!   never before it, so the estimate errs on the long side); a revocation drops it; a lease
//!   checkpoint re-bases it to `a + remaining`. All three are reported by the state machine
//!   ([`ApplyObserver`]).
//! * **checkpoints** renewals, as the primary: keep-alives reach only the leader, so every
//!   [`CHECKPOINT_INTERVAL`] it proposes `LeaseCheckpoint` commands (at most
//!   [`CHECKPOINT_BATCH`] leases each) carrying the remaining TTL, in whole seconds rounded
//!   up, of each lease renewed since its last checkpoint; every [`PERSIST_INTERVAL`] it
//!   checkpoints every lease, so that the remaining TTL the store persists (what a
//!   whole-cluster restart resumes from) is never far behind for leases nobody renews.
//!   Checkpoints are data like any command: applying one never fails and never changes what
//!   else the state machine does; the primary ignores them (its own clock decides).
//! * **promotes** when this member becomes leader and has applied the first entry of its term
//!   (so every lease granted in earlier terms is in its store): each lease's deadline becomes
//!   `max(shadow, now) + election timeout` (etcd's `Promote` extends by one election timeout,
//!   which also covers a renewal made in the last checkpoint interval of the old leader), or,
//!   with no shadow (a fresh restart), `now + persisted remaining TTL (or TTL) + election
//!   timeout`. It **demotes** as soon as the member stops leading: its deadlines become its
//!   shadows (it may lead again). Leadership is read from openraft's metrics.
//! * renews a deadline to `now + TTL` on keep-alive ([`Lessor::renew`]) and reports the time
//!   left ([`Lessor::time_to_live`]), both from the primary's deadlines; on a follower both are
//!   forwarded to the leader.
//! * every [`TICK`] proposes a `LeaseRevoke` through Raft for at most [`REVOKE_PER_TICK`]
//!   expired leases (etcd's rate limit); an expired lease is looked at again after one request
//!   timeout if its revocation has not been applied by then.
//!
//! It owns the deadlines and shadows only. It must never write to the store (revocations and
//! checkpoints are proposed through Raft like any write), never answer a client, and never let
//! a deadline or shadow influence what the state machine applies; its observer must stay quick
//! (no I/O, no waiting: it runs on the apply path).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use openraft::type_config::async_runtime::WatchReceiver;
use openraft::vote::RaftLeaderId;
use openraft::ServerState;
use synod_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use synod_proto::peerpb::{internal_request::Request, InternalRequest};
use tokio::sync::watch;
use tonic::Status;

use super::deadlines::{min_lease_ttl, remaining_secs, Deadlines};
use crate::node::{Forwarded, Node, NodeError, NodeSettings};
use crate::raft::observer::{ApplyObserver, LeaseChange};
use crate::raft::peer_service::LeaderDuties;
use crate::raft::typ::RaftMetrics;
use crate::raft::{Command, RejectKind};

/// etcd's `MaxLeaseTTL`: a grant asking for more is refused.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;
/// How often expired leases are looked for (etcd's lessor loop).
pub const TICK: Duration = Duration::from_millis(500);
/// At most this many revocations are proposed per tick (etcd: `leaseRevokeRate / 2`).
pub const REVOKE_PER_TICK: usize = 500;
/// How often the leader checkpoints the leases renewed since its last checkpoint.
///
/// The trade-off: a renewal is known only to the leader until its checkpoint applies, so if
/// the leader dies first the next one under-estimates that lease by up to this interval (plus
/// the checkpoint's commit latency). The election timeout added on promotion covers that as
/// long as this interval does not exceed it (etcd's default election timeout is 1 s), and a
/// client renews at a third of the TTL anyway. Shorter means more Raft entries: one per
/// interval per [`CHECKPOINT_BATCH`] renewed leases (~16 bytes each), applied on every member;
/// nothing is proposed in an interval without renewals.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many leases per checkpoint command (etcd's `maxLeaseCheckpointBatchSize`),
/// which keeps each log entry around 16 KiB.
pub const CHECKPOINT_BATCH: usize = 1000;
/// How often the leader checkpoints every lease, renewed or not (etcd's default
/// `checkpointInterval`). Shadows do not need it (a member estimates an unrenewed lease from
/// its grant); the remaining TTL persisted in the store does: without it a whole-cluster
/// restart would give a never-renewed lease its full TTL again.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(300);
/// How often a waiting call looks again (leader not ready yet, expired lease being revoked,
/// leader unknown).
const POLL: Duration = Duration::from_millis(50);

/// This member's part in keeping lease deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Leader with its deadlines loaded.
    Primary,
    /// Leader, but the first entry of its term is not applied yet: wait.
    Pending,
    /// Not the leader: ask the leader.
    Follower,
}

/// What a leader-local lease call found.
enum Local<T> {
    Done(T),
    NotPrimary,
}

struct Inner {
    min_ttl: i64,
    /// Added to every deadline on promotion (etcd: the election timeout).
    extend: Duration,
    node: OnceLock<Node>,
    deadlines: Mutex<Deadlines>,
    /// A checkpoint proposal is under way: the next one waits for it (its leases stay due), so
    /// a slow log never piles up proposals.
    checkpointing: AtomicBool,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Deadlines> {
        self.deadlines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The lessor; cheap to clone. Create it before the node (the node's state machine reports to
/// [`Lessor::observer`]), then [`Lessor::start`] it with the node.
#[derive(Clone)]
pub struct Lessor {
    inner: Arc<Inner>,
}

/// (leading, term, applied an entry of this term): what decides the [`Role`].
fn role_inputs(m: &RaftMetrics) -> (bool, u64, bool) {
    let leading = m.state == ServerState::Leader;
    let term = m.current_term;
    let ready = m
        .last_applied
        .as_ref()
        .is_some_and(|l| l.committed_leader_id().term() == term);
    (leading, term, ready)
}

impl Lessor {
    pub fn new(settings: &NodeSettings) -> Self {
        Lessor {
            inner: Arc::new(Inner {
                min_ttl: min_lease_ttl(settings.heartbeat_interval, settings.election_timeout),
                extend: settings.election_timeout,
                node: OnceLock::new(),
                deadlines: Mutex::new(Deadlines::default()),
                checkpointing: AtomicBool::new(false),
            }),
        }
    }

    /// The smallest TTL a lease is granted with (shorter requests are raised to it).
    pub fn min_ttl(&self) -> i64 {
        self.inner.min_ttl
    }

    /// What the state machine reports applied grants and revocations to.
    pub fn observer(&self) -> Arc<dyn ApplyObserver> {
        Arc::new(Observer(self.inner.clone()))
    }

    /// What the peer service delegates the leader's lease work to.
    pub fn duties(&self) -> Arc<dyn LeaderDuties> {
        Arc::new(self.clone())
    }

    /// Attaches the node and runs the expiry loop until `stop` turns true.
    pub fn start(&self, node: Node, stop: watch::Receiver<bool>) {
        if self.inner.node.set(node.clone()).is_err() {
            tracing::warn!("lessor started twice; ignoring the second start");
            return;
        }
        let this = self.clone();
        tokio::spawn(async move { this.run(node, stop).await });
    }

    fn node(&self) -> Result<Node, NodeError> {
        self.inner
            .node
            .get()
            .cloned()
            .ok_or_else(|| NodeError::Storage("lessor is not started".into()))
    }

    /// Brings the deadlines in line with this member's Raft role (promote or demote).
    fn sync_role(&self, node: &Node) -> Result<Role, NodeError> {
        // Borrowed, not cloned (this runs on every keep-alive); the borrow ends here, before
        // the store is read.
        let (leading, term, ready) = role_inputs(&node.raft().metrics().borrow_watched());
        let mut d = self.inner.lock();
        if !leading || !ready {
            if d.primary_term.is_some() {
                d.demote();
                tracing::info!("lessor demoted: lease deadlines kept as estimates");
            }
            return Ok(if leading {
                Role::Pending
            } else {
                Role::Follower
            });
        }
        if d.primary_term != Some(term) {
            // Read under the lock: a grant applied meanwhile is either in this view or
            // reported to the observer after we are primary.
            let mut leases = node
                .read()?
                .lease_records()
                .map_err(|e| NodeError::Storage(e.to_string()))?;
            for r in &mut leases {
                r.ttl = r.ttl.max(self.inner.min_ttl);
            }
            let estimated = d.promote(term, &leases, Instant::now(), self.inner.extend);
            tracing::info!(
                term,
                leases = leases.len(),
                estimated,
                "lessor promoted: deadlines resume from estimates (or persisted remaining TTLs)"
            );
        }
        Ok(Role::Primary)
    }

    /// Waits until this member is the primary lessor (`true`) or is not the leader (`false`).
    async fn await_role(&self, node: &Node) -> Result<bool, NodeError> {
        loop {
            match self.sync_role(node)? {
                Role::Primary => return Ok(true),
                Role::Follower => return Ok(false),
                Role::Pending => tokio::time::sleep(POLL).await,
            }
        }
    }

    /// Renews on this member if it is the primary lessor (etcd `lessor.Renew`): an expired
    /// lease is not renewed, the call waits for its revocation (then: not found) or for this
    /// member to stop leading.
    async fn renew_local(&self, node: &Node, id: i64) -> Result<Local<Option<i64>>, NodeError> {
        loop {
            if !self.await_role(node).await? {
                return Ok(Local::NotPrimary);
            }
            {
                let mut d = self.inner.lock();
                let now = Instant::now();
                match d.leases.get(&id) {
                    None => return Ok(Local::Done(None)),
                    Some(l) if l.expiry > now => return Ok(Local::Done(d.renew(id, now))),
                    Some(_) => {}
                }
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn time_to_live_local(
        &self,
        node: &Node,
        req: &LeaseTimeToLiveRequest,
    ) -> Result<Local<Option<LeaseTimeToLiveResponse>>, NodeError> {
        if !self.await_role(node).await? {
            return Ok(Local::NotPrimary);
        }
        let found = {
            let d = self.inner.lock();
            d.leases
                .get(&req.id)
                .map(|l| (l.ttl, remaining_secs(l.expiry, Instant::now())))
        };
        let Some((granted_ttl, ttl)) = found else {
            return Ok(Local::Done(None));
        };
        let keys = if req.keys {
            node.read()?
                .keys_with_lease(req.id)
                .map_err(|e| NodeError::Storage(e.to_string()))?
        } else {
            Vec::new()
        };
        Ok(Local::Done(Some(LeaseTimeToLiveResponse {
            header: None,
            id: req.id,
            ttl,
            granted_ttl,
            keys,
        })))
    }

    /// Renews lease `id` (a keep-alive): its granted TTL, or `None` if there is no such lease
    /// (etcd answers a keep-alive for it with TTL 0). Forwarded to the leader on a follower.
    pub async fn renew(&self, id: i64) -> Result<Option<i64>, NodeError> {
        let node = self.node()?;
        let work = async {
            loop {
                if let Local::Done(r) = self.renew_local(&node, id).await? {
                    return Ok(r);
                }
                match node.forward_lease_renew(id).await {
                    Ok(Forwarded::Answer(ttl)) => return Ok(Some(ttl)),
                    Ok(Forwarded::NotFound) => return Ok(None),
                    Ok(Forwarded::NotLeader) => {}
                    Err(e @ NodeError::Stopped) => return Err(e),
                    Err(e) => tracing::debug!(error = %e, lease = id, "lease renew at leader"),
                }
                tokio::time::sleep(POLL).await;
            }
        };
        tokio::time::timeout(node.request_timeout(), work)
            .await
            .map_err(|_| NodeError::Timeout)?
    }

    /// The lease's remaining TTL (from the leader's deadline), granted TTL and, if asked, its
    /// keys; `None` if there is no such lease. Forwarded to the leader on a follower.
    pub async fn time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<Option<LeaseTimeToLiveResponse>, NodeError> {
        let node = self.node()?;
        let work = async {
            loop {
                if let Local::Done(r) = self.time_to_live_local(&node, &req).await? {
                    return Ok(r);
                }
                match node.forward_lease_time_to_live(req).await {
                    Ok(Forwarded::Answer(resp)) => return Ok(Some(resp)),
                    Ok(Forwarded::NotFound) => return Ok(None),
                    Ok(Forwarded::NotLeader) => {}
                    Err(e @ NodeError::Stopped) => return Err(e),
                    Err(e) => tracing::debug!(error = %e, lease = req.id, "lease ttl at leader"),
                }
                tokio::time::sleep(POLL).await;
            }
        };
        tokio::time::timeout(node.request_timeout(), work)
            .await
            .map_err(|_| NodeError::Timeout)?
    }

    /// The lessor loop: follows leadership; as the primary, proposes revocations every
    /// [`TICK`] and checkpoints every [`CHECKPOINT_INTERVAL`] (all leases every
    /// [`PERSIST_INTERVAL`]).
    async fn run(self, node: Node, mut stop: watch::Receiver<bool>) {
        let mut metrics = node.raft().metrics();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut checkpoint = tokio::time::interval(CHECKPOINT_INTERVAL);
        checkpoint.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut persist = tokio::time::interval_at(
            tokio::time::Instant::now() + PERSIST_INTERVAL,
            PERSIST_INTERVAL,
        );
        persist.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = None;
        loop {
            let wake = tokio::select! {
                _ = tick.tick() => Wake::Expiry,
                _ = checkpoint.tick() => Wake::Checkpoint,
                _ = persist.tick() => Wake::PersistAll,
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    Wake::Metrics
                }
                _ = stop.changed() => return,
            };
            if *stop.borrow() {
                return;
            }
            // Metrics change often; only a change of role inputs needs a look before the tick.
            let inputs = role_inputs(&metrics.borrow_watched());
            if wake == Wake::Metrics && seen == Some(inputs) {
                continue;
            }
            seen = Some(inputs);
            let role = match self.sync_role(&node) {
                Ok(role) => role,
                Err(e) => {
                    tracing::warn!(error = %e, "lessor cannot follow leadership");
                    continue;
                }
            };
            if role != Role::Primary {
                continue;
            }
            match wake {
                Wake::Expiry => {
                    let expired = self.inner.lock().take_expired(
                        Instant::now(),
                        REVOKE_PER_TICK,
                        node.request_timeout(),
                    );
                    if !expired.is_empty() {
                        tokio::spawn(revoke_expired(node.clone(), expired));
                    }
                }
                Wake::Checkpoint => self.start_checkpoint(&node),
                Wake::PersistAll => self.inner.lock().checkpoint_all(),
                Wake::Metrics => {}
            }
        }
    }

    /// Proposes the due checkpoints in the background, unless a proposal is still under way
    /// (then they stay due for the next interval).
    fn start_checkpoint(&self, node: &Node) {
        if self.inner.checkpointing.swap(true, Ordering::AcqRel) {
            return;
        }
        let in_flight = CheckpointInFlight(self.inner.clone());
        let (term, due) = {
            let mut d = self.inner.lock();
            (d.primary_term, d.take_checkpoints(Instant::now()))
        };
        let Some(term) = term else {
            return;
        };
        if due.is_empty() {
            return;
        }
        let node = node.clone();
        tokio::spawn(async move {
            propose_checkpoints(&node, &in_flight.0, term, due).await;
            drop(in_flight);
        });
    }
}

/// Why the lessor loop woke up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Expiry,
    Checkpoint,
    PersistAll,
    Metrics,
}

/// Clears [`Inner::checkpointing`] when the proposal ends, however it ends.
struct CheckpointInFlight(Arc<Inner>);

impl Drop for CheckpointInFlight {
    fn drop(&mut self) {
        self.0.checkpointing.store(false, Ordering::Release);
    }
}

/// Proposes `due` as `LeaseCheckpoint` commands of at most [`CHECKPOINT_BATCH`] leases, in
/// order, while this member leads. Proposed by the leader only, never forwarded: a checkpoint
/// is this member's clock speaking. On failure, what was not applied is due again next time.
async fn propose_checkpoints(node: &Node, inner: &Inner, term: u64, due: Vec<(i64, i64)>) {
    for (i, chunk) in due.chunks(CHECKPOINT_BATCH).enumerate() {
        let checkpoints = chunk
            .iter()
            .map(|&(id, remaining_ttl)| LeaseCheckpoint { id, remaining_ttl })
            .collect();
        let req = InternalRequest {
            request: Some(Request::LeaseCheckpoint(LeaseCheckpointRequest {
                checkpoints,
            })),
        };
        if let Err(e) = node.propose_as_leader(req).await {
            tracing::debug!(error = %e, leases = due.len(), "lease checkpoint not applied");
            let rest = due[i * CHECKPOINT_BATCH..].iter().map(|&(id, _)| id);
            inner.lock().requeue(term, rest);
            return;
        }
    }
    tracing::trace!(leases = due.len(), "leases checkpointed");
}

/// Proposes a `LeaseRevoke` for each expired lease (while this member still leads).
async fn revoke_expired(node: Node, ids: Vec<i64>) {
    let calls = ids.into_iter().map(|id| {
        let node = node.clone();
        async move {
            if !node.is_leader() {
                return;
            }
            let req = InternalRequest {
                request: Some(Request::LeaseRevoke(LeaseRevokeRequest { id })),
            };
            match node.propose(req).await {
                Ok(_) => tracing::debug!(lease = %format!("{id:016x}"), "expired lease revoked"),
                Err(NodeError::Rejected(RejectKind::LeaseNotFound, _)) => {}
                Err(e) => tracing::warn!(
                    lease = %format!("{id:016x}"),
                    error = %e,
                    "failed to revoke expired lease; will retry"
                ),
            }
        }
    });
    futures::future::join_all(calls).await;
}

/// The state machine's view of the lessor.
struct Observer(Arc<Inner>);

impl ApplyObserver for Observer {
    // Runs on the apply path: in-memory updates under one short lock, nothing else.
    fn leases_changed(&self, changes: &[LeaseChange]) {
        let mut d = self.0.lock();
        let now = Instant::now();
        for change in changes {
            match *change {
                LeaseChange::Granted { id, ttl } => d.granted(id, ttl.max(self.0.min_ttl), now),
                LeaseChange::Revoked { id } => d.revoked(id),
                LeaseChange::Checkpointed { id, remaining_ttl } => {
                    d.checkpointed(id, remaining_ttl, now)
                }
            }
        }
    }

    fn restored(&self, _revision: i64) {
        // The leases may have changed wholesale, so every estimate is suspect (an id may even
        // have been revoked and granted again): forget them all. Promotion reloads the leases
        // and their persisted remaining TTLs from the store.
        self.0.lock().reset();
    }
}

#[tonic::async_trait]
impl LeaderDuties for Lessor {
    fn prepare(&self, cmd: Command) -> Result<Command, Status> {
        let node = self
            .node()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        node.prepare_for_leader(cmd)
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    async fn lease_renew(&self, id: i64) -> Result<i64, Status> {
        let node = self
            .node()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let local = tokio::time::timeout(node.request_timeout(), self.renew_local(&node, id));
        match local.await {
            Err(_) => Err(Status::deadline_exceeded("etcdserver: request timed out")),
            Ok(Err(e)) => Err(Status::unavailable(e.to_string())),
            Ok(Ok(Local::NotPrimary)) => Err(Status::failed_precondition("not the leader")),
            Ok(Ok(Local::Done(None))) => Err(Status::not_found("lease not found")),
            Ok(Ok(Local::Done(Some(ttl)))) => Ok(ttl),
        }
    }

    async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, Status> {
        let node = self
            .node()
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let local =
            tokio::time::timeout(node.request_timeout(), self.time_to_live_local(&node, &req));
        match local.await {
            Err(_) => Err(Status::deadline_exceeded("etcdserver: request timed out")),
            Ok(Err(e)) => Err(Status::unavailable(e.to_string())),
            Ok(Ok(Local::NotPrimary)) => Err(Status::failed_precondition("not the leader")),
            Ok(Ok(Local::Done(None))) => Err(Status::not_found("lease not found")),
            Ok(Ok(Local::Done(Some(resp)))) => Ok(resp),
        }
    }
}
