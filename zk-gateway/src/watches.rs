//! ZooKeeper watches, served from ONE etcd watch per gateway on the whole layout, fanned out
//! in-process: the registry of one-shot (data, child), persistent and persistent-recursive
//! watches of every connection, the dispatcher that turns etcd events into upstream's
//! WatcherEvents, and the fence that lets a reply wait until every event up to its zxid has
//! been queued to its connection (a client sees an event before any reply reflecting the
//! change). Never writes the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use synod_proto::etcdserverpb::watch_request::RequestUnion;
use synod_proto::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest};
use synod_proto::mvccpb::event::EventType;
use tokio::sync::{mpsc, watch};

use crate::jute::{encode_notification, WatcherEvent};
use crate::layout::{KeyKind, Part};
use crate::path::ZnodePath;
use crate::proto::{event, state};
use crate::store::ZkStore;

/// A connection's id within this gateway.
pub type ConnId = u64;

/// What the dispatcher sends a connection.
#[derive(Debug)]
pub enum Outgoing {
    /// An encoded frame (a notification or a reply).
    Frame(Vec<u8>),
    /// Close the connection (its session moved to another connection or expired).
    Close,
}

/// What the store told the dispatcher about sessions.
#[derive(Debug, Clone, Copy)]
pub enum SessionEvent {
    /// The session's key was written by `holder`.
    Held(i64),
    /// The session's key is gone: expired or closed.
    Gone(i64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    Recursive,
}

#[derive(Default)]
struct Tables {
    by_kind: HashMap<WatchKind, HashMap<ZnodePath, HashSet<ConnId>>>,
    conns: HashMap<ConnId, mpsc::UnboundedSender<Outgoing>>,
}

/// The gateway's watches.
#[derive(Clone)]
pub struct Watches {
    tables: Arc<Mutex<Tables>>,
    processed: watch::Receiver<i64>,
    nudge: mpsc::Sender<()>,
}

/// The dispatcher's half: fed by the etcd watch stream.
pub struct Dispatcher {
    tables: Arc<Mutex<Tables>>,
    processed: watch::Sender<i64>,
    nudges: mpsc::Receiver<()>,
    sessions: mpsc::UnboundedSender<SessionEvent>,
}

impl Watches {
    /// The registry and its dispatcher; `start` is the revision already reflected in the
    /// gateway's view. Session events go to `sessions`.
    pub fn new(start: i64, sessions: mpsc::UnboundedSender<SessionEvent>) -> (Watches, Dispatcher) {
        let tables = Arc::new(Mutex::new(Tables::default()));
        let (ptx, prx) = watch::channel(start);
        let (ntx, nrx) = mpsc::channel(1);
        (
            Watches {
                tables: tables.clone(),
                processed: prx,
                nudge: ntx,
            },
            Dispatcher {
                tables,
                processed: ptx,
                nudges: nrx,
                sessions,
            },
        )
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        lock(&self.tables)
    }

    pub fn connect(&self, conn: ConnId, tx: mpsc::UnboundedSender<Outgoing>) {
        self.lock().conns.insert(conn, tx);
    }

    /// Forgets a connection and all its watches.
    pub fn disconnect(&self, conn: ConnId) {
        let mut t = self.lock();
        t.conns.remove(&conn);
        for table in t.by_kind.values_mut() {
            table.retain(|_, set| {
                set.remove(&conn);
                !set.is_empty()
            });
        }
    }

    pub fn add(&self, conn: ConnId, kind: WatchKind, path: &ZnodePath) {
        self.lock()
            .by_kind
            .entry(kind)
            .or_default()
            .entry(path.clone())
            .or_default()
            .insert(conn);
    }

    /// Whether `conn` has a watch of `kind` on `path`.
    pub fn has(&self, conn: ConnId, kind: WatchKind, path: &ZnodePath) -> bool {
        self.lock()
            .by_kind
            .get(&kind)
            .and_then(|t| t.get(path))
            .is_some_and(|s| s.contains(&conn))
    }

    /// Removes `conn`'s watch of `kind` on `path`; whether there was one.
    pub fn remove(&self, conn: ConnId, kind: WatchKind, path: &ZnodePath) -> bool {
        let mut t = self.lock();
        let Some(table) = t.by_kind.get_mut(&kind) else {
            return false;
        };
        let Some(set) = table.get_mut(path) else {
            return false;
        };
        let had = set.remove(&conn);
        if set.is_empty() {
            table.remove(path);
        }
        had
    }

    /// Whether `conn` has any watch at all (replies to it then need the fence).
    pub fn watching(&self, conn: ConnId) -> bool {
        self.lock()
            .by_kind
            .values()
            .any(|t| t.values().any(|s| s.contains(&conn)))
    }

    /// Counts for the four-letter words: (connections with watches, watched paths, watches).
    pub fn summary(&self) -> (usize, usize, usize) {
        let t = self.lock();
        let mut conns = HashSet::new();
        let mut paths = HashSet::new();
        let mut total = 0;
        for table in t.by_kind.values() {
            for (p, s) in table {
                paths.insert(p.clone());
                total += s.len();
                conns.extend(s.iter().copied());
            }
        }
        (conns.len(), paths.len(), total)
    }

    /// The watched paths of every connection (for `wchc`/`dump`-like reports).
    pub fn by_connection(&self) -> HashMap<ConnId, Vec<String>> {
        let t = self.lock();
        let mut out: HashMap<ConnId, Vec<String>> = HashMap::new();
        for table in t.by_kind.values() {
            for (p, s) in table {
                for c in s {
                    out.entry(*c).or_default().push(p.to_string());
                }
            }
        }
        out
    }

    /// The revision up to which every event has been queued to its connections.
    pub fn processed(&self) -> i64 {
        *self.processed.borrow()
    }

    /// Waits until every event up to `revision` has been queued to its connections.
    pub async fn fence(&self, revision: i64) {
        let mut rx = self.processed.clone();
        if *rx.borrow() >= revision {
            return;
        }
        let _ = self.nudge.try_send(());
        let wait = rx.wait_for(|p| *p >= revision);
        if tokio::time::timeout(Duration::from_secs(5), wait).await.is_err() {
            tracing::warn!(revision, "watch fence timed out; replying anyway");
        }
    }

    /// Sends a frame to a connection (notifications of the gateway itself, e.g. session moved).
    pub fn send(&self, conn: ConnId, out: Outgoing) {
        if let Some(tx) = self.lock().conns.get(&conn) {
            let _ = tx.send(out);
        }
    }
}

fn lock(m: &Mutex<Tables>) -> MutexGuard<'_, Tables> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Tables {
    /// Upstream's `WatchManager.triggerWatch` for one table, minus `suppress`.
    fn trigger(
        &mut self,
        path: &ZnodePath,
        event_type: i32,
        one_shot: WatchKind,
        suppress: &HashSet<ConnId>,
    ) -> HashSet<ConnId> {
        let mut hit: HashSet<ConnId> = HashSet::new();
        if let Some(t) = self.by_kind.get_mut(&one_shot) {
            if let Some(set) = t.remove(path) {
                hit.extend(set);
            }
        }
        if let Some(set) = self.by_kind.get(&WatchKind::Persistent).and_then(|t| t.get(path)) {
            hit.extend(set.iter().copied());
        }
        if event_type != event::NODE_CHILDREN_CHANGED {
            if let Some(t) = self.by_kind.get(&WatchKind::Recursive) {
                let mut p = Some(path.clone());
                while let Some(cur) = p {
                    if let Some(set) = t.get(&cur) {
                        hit.extend(set.iter().copied());
                    }
                    p = cur.parent();
                }
            }
        }
        hit.retain(|c| !suppress.contains(c));
        let ev = WatcherEvent {
            event_type,
            state: state::SYNC_CONNECTED,
            path: path.to_string(),
        };
        let mut frame = Vec::new();
        encode_notification(&mut frame, -1, &ev);
        for c in &hit {
            if let Some(tx) = self.conns.get(c) {
                let _ = tx.send(Outgoing::Frame(frame.clone()));
            }
        }
        hit
    }
}

impl Dispatcher {
    /// Follows the store from `start + 1` for as long as the gateway lives, reconnecting the
    /// watch stream if it breaks.
    pub async fn run(mut self, store: ZkStore, start: i64) {
        let layout = store.layout().clone();
        let mut next = start + 1;
        loop {
            let (req_tx, req_rx) = mpsc::channel(8);
            let create = WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: layout.prefix().to_vec(),
                    range_end: layout.prefix_end(),
                    start_revision: next,
                    ..Default::default()
                })),
            };
            if req_tx.send(create).await.is_err() {
                return;
            }
            let mut stream = match store.backend().watch(req_rx).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "zk gateway: watch stream failed to open; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let Some(Ok(resp)) = msg else {
                            tracing::warn!("zk gateway: watch stream ended; reopening");
                            break;
                        };
                        if resp.canceled {
                            if resp.compact_revision > 0 {
                                tracing::error!(compact = resp.compact_revision,
                                    "zk gateway: missed events compacted away; resuming");
                                next = resp.compact_revision;
                            }
                            break;
                        }
                        if resp.created {
                            continue;
                        }
                        let header_rev = resp.header.as_ref().map_or(0, |h| h.revision);
                        if resp.events.is_empty() {
                            // A progress notification: everything up to header_rev was sent.
                            self.advance(header_rev);
                            next = next.max(header_rev + 1);
                            continue;
                        }
                        let mut last = 0;
                        for ev in &resp.events {
                            let Some(kv) = ev.kv.as_ref() else { continue };
                            last = last.max(kv.mod_revision);
                            self.dispatch(&layout, ev.r#type == EventType::Delete as i32, kv);
                        }
                        self.advance(last);
                        next = next.max(last + 1);
                    }
                    nudge = self.nudges.recv() => {
                        if nudge.is_none() {
                            return;
                        }
                        let progress = WatchRequest {
                            request_union: Some(RequestUnion::ProgressRequest(WatchProgressRequest {})),
                        };
                        let _ = req_tx.send(progress).await;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn advance(&self, revision: i64) {
        self.processed.send_if_modified(|p| {
            if revision > *p {
                *p = revision;
                true
            } else {
                false
            }
        });
    }

    fn dispatch(&self, layout: &crate::layout::Layout, deleted: bool, kv: &synod_proto::mvccpb::KeyValue) {
        match layout.parse(&kv.key) {
            KeyKind::Node(path, Part::Data) => {
                let mut t = lock(&self.tables);
                let none = HashSet::new();
                let parent = path.parent();
                if deleted {
                    let first = t.trigger(&path, event::NODE_DELETED, WatchKind::Data, &none);
                    t.trigger(&path, event::NODE_DELETED, WatchKind::Child, &first);
                    if let Some(p) = parent {
                        t.trigger(&p, event::NODE_CHILDREN_CHANGED, WatchKind::Child, &none);
                    }
                } else if kv.create_revision == kv.mod_revision {
                    t.trigger(&path, event::NODE_CREATED, WatchKind::Data, &none);
                    if let Some(p) = parent {
                        t.trigger(&p, event::NODE_CHILDREN_CHANGED, WatchKind::Child, &none);
                    }
                } else {
                    t.trigger(&path, event::NODE_DATA_CHANGED, WatchKind::Data, &none);
                }
            }
            KeyKind::Session(id) => {
                let _ = self.sessions.send(if deleted {
                    SessionEvent::Gone(id)
                } else {
                    SessionEvent::Held(id)
                });
            }
            _ => {}
        }
    }
}
