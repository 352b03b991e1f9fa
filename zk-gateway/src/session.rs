//! Sessions on etcd leases: a session id IS a lease id, its key `P s <id>` is attached to the
//! lease, and its password is derived from the store's secret, so any gateway on the same store
//! can verify and resume it. This module grants, resumes, keeps alive and ends sessions, and
//! reaps the ephemerals of sessions that are gone (in one guarded txn per session, so parents'
//! cversion/pzxid/numChildren move as upstream's do). It never touches a connection's socket.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha1::{Digest, Sha1};
use synod_proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
use tokio::sync::mpsc;

use crate::layout::{KeyKind, SessionRecord};
use crate::store::{delete, mod_is, put, StoreError, ZkStore};
use crate::txn::Plan;
use crate::watches::{ConnId, Outgoing, Watches};

/// Timeout bounds, as upstream derives them from tickTime.
#[derive(Clone, Copy, Debug)]
pub struct TimeoutBounds {
    pub min_ms: i32,
    pub max_ms: i32,
}

impl TimeoutBounds {
    pub fn negotiate(&self, asked: i32) -> i32 {
        asked.clamp(self.min_ms, self.max_ms.max(self.min_ms))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Unknown or expired session, or a wrong password: the client is told it expired.
    #[error("session expired")]
    Expired,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Ephemerals deleted per txn when a session ends.
const REAP_CHUNK: usize = 16;

struct Local {
    conn: ConnId,
    ttl: Duration,
    last_sent: Instant,
}

/// The sessions of this gateway's connections, and the keeper that renews their leases.
#[derive(Clone)]
pub struct Sessions {
    store: ZkStore,
    secret: Arc<Vec<u8>>,
    /// Names this gateway instance in session records.
    instance: Arc<String>,
    local: Arc<Mutex<HashMap<i64, Local>>>,
    watches: Watches,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Sessions {
    pub async fn new(store: ZkStore, watches: Watches) -> Result<Sessions, StoreError> {
        let secret = store
            .get(store.layout().secret_key())
            .await?
            .map(|kv| kv.value)
            .unwrap_or_default();
        let instance: u64 = rand::random();
        Ok(Sessions {
            store,
            secret: Arc::new(secret),
            instance: Arc::new(format!("{instance:016x}")),
            local: Arc::new(Mutex::new(HashMap::new())),
            watches,
        })
    }

    /// The 16-byte password of `session`: the same on every gateway of this store.
    pub fn password(&self, session: i64) -> Vec<u8> {
        let mut h = Sha1::new();
        h.update(self.secret.as_slice());
        h.update(session.to_be_bytes());
        h.finalize()[..16].to_vec()
    }

    fn holder(&self, conn: ConnId) -> String {
        format!("{}/{conn}", self.instance)
    }

    fn lease_ttl(timeout_ms: i32) -> i64 {
        ((timeout_ms as i64) + 999) / 1000
    }

    /// A new session for `conn` with the negotiated `timeout_ms`.
    pub async fn create(&self, conn: ConnId, timeout_ms: i32) -> Result<i64, StoreError> {
        let grant = self
            .store
            .backend()
            .lease_grant(LeaseGrantRequest {
                ttl: Self::lease_ttl(timeout_ms),
                id: 0,
            })
            .await?;
        let id = grant.id;
        let rec = SessionRecord {
            timeout_ms,
            holder: self.holder(conn),
        };
        self.store
            .commit(
                vec![],
                vec![put(self.store.layout().session_key(id), rec.encode(), id)],
            )
            .await?;
        self.track(id, conn, grant.ttl);
        Ok(id)
    }

    /// Resumes `session` on `conn` if it is alive and `passwd` is its password.
    pub async fn resume(
        &self,
        conn: ConnId,
        session: i64,
        passwd: &[u8],
        timeout_ms: i32,
    ) -> Result<(), SessionError> {
        // upstream: the connection holding the session is closed first, before the password
        // of the new one is even checked
        let previous = lock(&self.local).get(&session).map(|l| l.conn);
        if let Some(old) = previous {
            if old != conn {
                self.watches.send(old, Outgoing::Close);
            }
        }
        if passwd != self.password(session).as_slice() {
            return Err(SessionError::Expired);
        }
        let key = self.store.layout().session_key(session);
        let Some(kv) = self.store.get(key.clone()).await? else {
            return Err(SessionError::Expired);
        };
        let rec = SessionRecord {
            timeout_ms,
            holder: self.holder(conn),
        };
        let written = self
            .store
            .commit(
                vec![mod_is(key.clone(), kv.mod_revision)],
                vec![put(key, rec.encode(), session)],
            )
            .await?;
        if written.is_none() {
            return Err(SessionError::Expired);
        }
        self.track(session, conn, Self::lease_ttl(timeout_ms));
        Ok(())
    }

    fn track(&self, session: i64, conn: ConnId, ttl_s: i64) {
        lock(&self.local).insert(
            session,
            Local {
                conn,
                ttl: Duration::from_secs(ttl_s.max(1) as u64),
                last_sent: Instant::now(),
            },
        );
    }

    /// The connection dropped without closing the session: stop renewing it (it expires after
    /// its timeout unless the client resumes it somewhere).
    pub fn detach(&self, session: i64, conn: ConnId) {
        let mut l = lock(&self.local);
        if l.get(&session).is_some_and(|s| s.conn == conn) {
            l.remove(&session);
        }
    }

    /// closeSession: the session's ephemerals go in one txn with its key, then its lease.
    pub async fn close(&self, session: i64) -> Result<i64, StoreError> {
        lock(&self.local).remove(&session);
        let rev = self.reap(session, true).await?;
        let _ = self.store.backend().lease_revoke(session).await;
        Ok(rev)
    }

    /// Deletes the ephemerals of `session` (and its key, if `with_key`) in one guarded txn,
    /// retried until it applies. Returns the revision it applied at (or the current one).
    pub async fn reap(&self, session: i64, with_key: bool) -> Result<i64, StoreError> {
        for _ in 0..100 {
            let all = self.store.ephemerals_of(session, 0).await?;
            // One txn for up to REAP_CHUNK ephemerals (upstream etcd refuses a txn of more than
            // --max-txn-ops operations, 128 by default; each znode is about six). A session
            // with more is reaped in several txns, the last one with its key.
            let last_chunk = all.len() <= REAP_CHUNK;
            let paths = &all[..all.len().min(REAP_CHUNK)];
            let with_key = with_key && last_chunk;
            let mut plan = Plan::new(&self.store, 0, now_ms());
            for p in paths {
                match plan.node(p).await? {
                    Some(n) if n.is_ephemeral() && n.data.owner == session => {
                        let _ = plan.delete(p.as_str(), -1, None).await;
                    }
                    _ => plan.also(delete(self.store.layout().ephemeral_key(session, p))),
                }
            }
            if with_key {
                plan.also(delete(self.store.layout().session_key(session)));
            }
            if !plan.writes_anything() {
                return self.store.current_revision().await;
            }
            if let Some(rev) = plan.commit().await? {
                if last_chunk {
                    return Ok(rev);
                }
            }
        }
        tracing::warn!(
            session,
            "zk gateway: could not reap a session's ephemerals (contention)"
        );
        self.store.current_revision().await
    }

    /// Sessions that left ephemerals behind but have no key any more (their gateway died, or
    /// the event was missed): reaped. Run at start and periodically.
    pub async fn sweep(&self) -> Result<(), StoreError> {
        let mut owners = Vec::new();
        for k in self
            .store
            .keys(self.store.layout().ephemerals_range(None))
            .await?
        {
            if let KeyKind::Ephemeral(s, _) = k {
                if !owners.contains(&s) {
                    owners.push(s);
                }
            }
        }
        for s in owners {
            if self
                .store
                .get(self.store.layout().session_key(s))
                .await?
                .is_none()
            {
                self.reap(s, false).await?;
            }
        }
        Ok(())
    }

    /// A session key changed hands: if this gateway holds the session on another connection
    /// than the record names, that connection is closed (the client moved elsewhere).
    pub async fn held_elsewhere(&self, session: i64) {
        let conn = lock(&self.local).get(&session).map(|l| l.conn);
        let Some(conn) = conn else { return };
        let Ok(Some(kv)) = self
            .store
            .get(self.store.layout().session_key(session))
            .await
        else {
            return;
        };
        if let Some(rec) = SessionRecord::decode(&kv.value) {
            if rec.holder != self.holder(conn) {
                // only if `conn` still holds it: a resume on this gateway may have taken the
                // session over meanwhile, and its connection must stay tracked and renewed
                self.detach(session, conn);
                self.watches.send(conn, Outgoing::Close);
            }
        }
    }

    /// The session is gone: if a connection of this gateway still holds it, it is told.
    pub fn gone(&self, session: i64) -> Option<ConnId> {
        lock(&self.local).remove(&session).map(|l| l.conn)
    }

    /// Number of sessions held by this gateway.
    pub fn count(&self) -> usize {
        lock(&self.local).len()
    }

    /// Renews the leases of this gateway's sessions, each every third of its TTL, over one
    /// keep-alive stream; a lease the store no longer knows ends its connection.
    pub async fn keep_alive(self) {
        loop {
            let (tx, rx) = mpsc::channel(256);
            let mut responses = match self.store.backend().lease_keep_alive(rx).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "zk gateway: keep-alive stream failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let due: Vec<i64> = {
                            let mut l = lock(&self.local);
                            let now = Instant::now();
                            l.iter_mut()
                                .filter(|(_, s)| now.duration_since(s.last_sent) >= s.ttl / 3)
                                .map(|(id, s)| {
                                    s.last_sent = now;
                                    *id
                                })
                                .collect()
                        };
                        for id in due {
                            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                                break;
                            }
                        }
                    }
                    r = responses.next() => {
                        match r {
                            Some(Ok(resp)) => {
                                if resp.ttl <= 0 {
                                    if let Some(conn) = self.gone(resp.id) {
                                        self.watches.send(conn, Outgoing::Close);
                                    }
                                }
                            }
                            _ => break,
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
