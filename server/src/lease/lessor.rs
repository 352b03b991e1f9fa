//! The lessor: in-memory lease deadlines, kept by the current leader only.
//!
//! Like etcd's `lessor`, the member that leads keeps, for every granted lease, the instant it
//! expires; followers keep nothing (their leases never expire on their own). The lessor:
//!
//! * **promotes** when this member becomes leader and has applied the first entry of its term
//!   (so every lease granted in earlier terms is in its store): it loads every lease from the
//!   store and gives each a fresh deadline, `now + TTL + election timeout` (etcd's `Promote`,
//!   which extends by one election timeout); it **demotes** (forgets every deadline) as soon as
//!   the member stops leading. Leadership is read from openraft's metrics.
//! * learns of grants and revocations from the state machine ([`ApplyObserver`]): a grant
//!   applied on the leader gets `now + TTL`, a revocation drops the deadline.
//! * renews a deadline to `now + TTL` on keep-alive ([`Lessor::renew`]) and reports the time
//!   left ([`Lessor::time_to_live`]); on a follower both are forwarded to the leader.
//! * every [`TICK`] proposes a `LeaseRevoke` through Raft for at most [`REVOKE_PER_TICK`]
//!   expired leases (etcd's rate limit); an expired lease is looked at again after one request
//!   timeout if its revocation has not been applied by then.
//!
//! It owns the deadlines only. It must never write to the store (revocations are proposed like
//! any client write) and never answer a client; deadlines must never influence what the state
//! machine applies.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use openraft::type_config::async_runtime::WatchReceiver;
use openraft::vote::RaftLeaderId;
use openraft::ServerState;
use synod_proto::etcdserverpb::{
    LeaseRevokeRequest, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use synod_proto::peerpb::{internal_request::Request, InternalRequest};
use tokio::sync::watch;
use tonic::Status;

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
/// How often a waiting call looks again (leader not ready yet, expired lease being revoked,
/// leader unknown).
const POLL: Duration = Duration::from_millis(50);

/// etcd's minimum lease TTL in seconds: `ceil(((3 * electionTicks) / 2) * heartbeat)`, with
/// `electionTicks = election / heartbeat`. With etcd's defaults (100 ms, 1000 ms) it is 2.
pub fn min_lease_ttl(heartbeat: Duration, election: Duration) -> i64 {
    let heartbeat_ms = heartbeat.as_millis().max(1);
    let election_ticks = election.as_millis() / heartbeat_ms;
    let min_ms = (3 * election_ticks / 2) * heartbeat_ms;
    i64::try_from(min_ms.div_ceil(1000)).unwrap_or(i64::MAX)
}

/// `now + secs`, saturating far in the future instead of overflowing.
fn after(now: Instant, secs: i64) -> Instant {
    let secs = u64::try_from(secs).unwrap_or(0);
    now.checked_add(Duration::from_secs(secs))
        .or_else(|| now.checked_add(Duration::from_secs(u64::from(u32::MAX))))
        .unwrap_or(now)
}

/// etcd's `int64(lease.Remaining().Seconds())`: whole seconds left, truncated toward zero
/// (negative once the deadline has passed by a second or more).
fn remaining_secs(expiry: Instant, now: Instant) -> i64 {
    if expiry >= now {
        i64::try_from((expiry - now).as_secs()).unwrap_or(i64::MAX)
    } else {
        -i64::try_from((now - expiry).as_secs()).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Deadline {
    /// Granted TTL in seconds (raised to the minimum).
    ttl: i64,
    expiry: Instant,
    /// When the expiry queue looks at this lease next (its `queue` entry).
    check_at: Instant,
}

/// The leader's deadlines. Pure data: every method takes the current instant.
#[derive(Debug, Default)]
struct Deadlines {
    /// The term this member was promoted in; `None` when not the primary lessor.
    primary_term: Option<u64>,
    leases: HashMap<i64, Deadline>,
    /// `(check_at, id)` of every lease, soonest first.
    queue: BTreeSet<(Instant, i64)>,
}

impl Deadlines {
    fn set(&mut self, id: i64, ttl: i64, expiry: Instant) {
        self.remove(id);
        self.leases.insert(
            id,
            Deadline {
                ttl,
                expiry,
                check_at: expiry,
            },
        );
        self.queue.insert((expiry, id));
    }

    fn remove(&mut self, id: i64) -> bool {
        match self.leases.remove(&id) {
            Some(d) => {
                self.queue.remove(&(d.check_at, id));
                true
            }
            None => false,
        }
    }

    /// Restarts lease `id`'s full TTL; its granted TTL, or `None` if unknown.
    fn renew(&mut self, id: i64, now: Instant) -> Option<i64> {
        let ttl = self.leases.get(&id)?.ttl;
        self.set(id, ttl, after(now, ttl));
        Some(ttl)
    }

    /// Up to `limit` leases whose deadline has passed, each rescheduled `retry` from now so it
    /// is proposed again only if its revocation has not been applied by then.
    fn take_expired(&mut self, now: Instant, limit: usize, retry: Duration) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(&(at, id)) = self.queue.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.queue.remove(&(at, id));
            let Some(d) = self.leases.get_mut(&id) else {
                continue;
            };
            d.check_at = if d.expiry > now {
                d.expiry
            } else {
                out.push(id);
                now.checked_add(retry).unwrap_or(now)
            };
            self.queue.insert((d.check_at, id));
        }
        out
    }

    /// Becomes the primary lessor for `term` with `leases` (id, granted TTL) from the store.
    fn promote(&mut self, term: u64, leases: &[(i64, i64)], now: Instant, extend: Duration) {
        self.demote();
        self.primary_term = Some(term);
        // TODO(issue 3): preserve each lease's remaining TTL across a leader change (etcd's
        // lease checkpoints). For now a new leader restarts every lease's full TTL, as etcd
        // 3.4 does without checkpointing.
        let base = now.checked_add(extend).unwrap_or(now);
        for &(id, ttl) in leases {
            self.set(id, ttl, after(base, ttl));
        }
    }

    fn demote(&mut self) {
        self.primary_term = None;
        self.leases.clear();
        self.queue.clear();
    }
}

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
                tracing::info!("lessor demoted: lease deadlines dropped");
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
            let leases = node
                .read()?
                .leases()
                .map_err(|e| NodeError::Storage(e.to_string()))?;
            let leases: Vec<(i64, i64)> = leases
                .into_iter()
                .map(|(id, ttl)| (id, ttl.max(self.inner.min_ttl)))
                .collect();
            d.promote(term, &leases, Instant::now(), self.inner.extend);
            tracing::info!(term, leases = leases.len(), "lessor promoted");
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

    /// The expiry loop: follows leadership, and on every tick proposes revocations.
    async fn run(self, node: Node, mut stop: watch::Receiver<bool>) {
        let mut metrics = node.raft().metrics();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen = None;
        loop {
            let ticked = tokio::select! {
                _ = tick.tick() => true,
                changed = metrics.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    false
                }
                _ = stop.changed() => return,
            };
            if *stop.borrow() {
                return;
            }
            // Metrics change often; only a change of role inputs needs a look before the tick.
            let inputs = role_inputs(&metrics.borrow_watched());
            if !ticked && seen == Some(inputs) {
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
            if !ticked || role != Role::Primary {
                continue;
            }
            let expired = self.inner.lock().take_expired(
                Instant::now(),
                REVOKE_PER_TICK,
                node.request_timeout(),
            );
            if !expired.is_empty() {
                tokio::spawn(revoke_expired(node.clone(), expired));
            }
        }
    }
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
    fn leases_changed(&self, changes: &[LeaseChange]) {
        let mut d = self.0.lock();
        if d.primary_term.is_none() {
            return;
        }
        let now = Instant::now();
        for change in changes {
            match *change {
                LeaseChange::Granted { id, ttl } => {
                    let ttl = ttl.max(self.0.min_ttl);
                    d.set(id, ttl, after(now, ttl));
                }
                LeaseChange::Revoked { id } => {
                    d.remove(id);
                }
            }
        }
    }

    fn restored(&self, _revision: i64) {
        // The leases may have changed wholesale; promotion reloads them from the store.
        self.0.lock().demote();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_ttl_matches_etcd_defaults() {
        let ms = Duration::from_millis;
        // etcd defaults: heartbeat 100 ms, election 1000 ms -> 1.5 s -> 2 s.
        assert_eq!(min_lease_ttl(ms(100), ms(1000)), 2);
        // 3 * 5 / 2 = 7 ticks (integer division) * 200 ms = 1.4 s -> 2 s.
        assert_eq!(min_lease_ttl(ms(200), ms(1000)), 2);
        assert_eq!(min_lease_ttl(ms(100), ms(2000)), 3);
        assert_eq!(min_lease_ttl(ms(0), ms(0)), 0);
    }

    #[test]
    fn remaining_truncates_toward_zero() {
        let now = Instant::now();
        let s = Duration::from_millis;
        assert_eq!(remaining_secs(now + s(9_900), now), 9);
        assert_eq!(remaining_secs(now, now + s(500)), 0);
        assert_eq!(remaining_secs(now, now + s(1_500)), -1);
    }

    #[test]
    fn huge_ttls_do_not_overflow() {
        let now = Instant::now();
        assert!(after(now, MAX_LEASE_TTL) > now);
        assert_eq!(after(now, -5), now);
    }

    #[test]
    fn expired_leases_are_taken_in_deadline_order_and_bounded() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.set(1, 5, t0 + s(5));
        d.set(2, 3, t0 + s(3));
        d.set(3, 10, t0 + s(10));
        d.set(4, 4, t0 + s(4));
        assert!(d.take_expired(t0 + s(2), 10, s(7)).is_empty());
        assert_eq!(d.take_expired(t0 + s(6), 2, s(7)), vec![2, 4]);
        assert_eq!(d.take_expired(t0 + s(6), 2, s(7)), vec![1]);
        // Taken leases come back only after the retry interval.
        assert!(d.take_expired(t0 + s(12), 10, s(7)).contains(&3));
        // All three were taken at 6 s, so all are due again at 13 s (ties in id order).
        assert_eq!(d.take_expired(t0 + s(13), 10, s(7)), vec![1, 2, 4]);
        assert_eq!(d.queue.len(), d.leases.len());
    }

    #[test]
    fn renewing_moves_the_deadline_and_revoking_forgets_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.set(1, 5, t0 + s(5));
        assert_eq!(d.renew(1, t0 + s(4)), Some(5));
        assert!(d.take_expired(t0 + s(6), 10, s(7)).is_empty());
        assert_eq!(d.take_expired(t0 + s(9), 10, s(7)), vec![1]);
        // A renewal after being taken (revoke in flight) reschedules it again.
        assert_eq!(d.renew(1, t0 + s(9)), Some(5));
        assert!(d.take_expired(t0 + s(13), 10, s(7)).is_empty());
        assert!(d.remove(1));
        assert!(!d.remove(1));
        assert_eq!(d.renew(1, t0), None);
        assert!(d.queue.is_empty());
    }

    #[test]
    fn promotion_restarts_every_lease_and_demotion_forgets_them() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.set(9, 1, t0);
        d.promote(3, &[(1, 10), (2, 20)], t0, s(1));
        assert_eq!(d.primary_term, Some(3));
        assert_eq!(d.leases.len(), 2);
        assert_eq!(d.leases[&1].expiry, t0 + s(11));
        assert_eq!(d.leases[&2].expiry, t0 + s(21));
        d.demote();
        assert_eq!(d.primary_term, None);
        assert!(d.leases.is_empty() && d.queue.is_empty());
    }
}
