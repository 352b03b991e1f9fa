//! ZooKeeper watches, served from ONE etcd watch per gateway on the whole layout, fanned out
//! in-process: the registry of one-shot (data, child), persistent and persistent-recursive
//! watches of every connection, the dispatcher that turns etcd events into upstream's
//! WatcherEvents, and the fence that lets a reply wait until every event up to its zxid has
//! been queued to its connection (a client sees an event before any reply reflecting the
//! change). Never writes the store.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use futures::StreamExt;
use synod_proto::etcdserverpb::watch_request::RequestUnion;
use synod_proto::etcdserverpb::{WatchCreateRequest, WatchProgressRequest, WatchRequest};
use synod_proto::mvccpb::event::EventType;
use tokio::sync::{mpsc, watch};

use crate::acl::Identity;
use crate::jute::{encode_notification, Acl, WatcherEvent};
use crate::layout::{
    data_record_repeats, decode_acl_record, decode_event_order, KeyKind, Part, ZnodeEvent,
};
use crate::path::ZnodePath;
use crate::proto::{event, perms, state};
use crate::store::ZkStore;

/// ACLs the dispatcher keeps before it starts over.
const ACL_CACHE_LIMIT: usize = 100_000;
/// Most repeated data events one stored write may raise (a multi holds far fewer ops; a
/// record that says more is not the gateway's and is not trusted further).
const MAX_REPEATS: i32 = 4096;

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

/// How a watch is registered: a one-shot data (getData/exists) or child (getChildren) watch,
/// or an addWatch persistent / persistent-recursive watch (which sits in both tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WatchKind {
    Data,
    Child,
    Persistent,
    Recursive,
}

/// Upstream's `WatcherMode`: one per (connection, path) per table; registering again
/// overwrites it (so a one-shot watch set over a persistent one makes it one-shot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Standard,
    Persistent,
    Recursive,
}

/// Upstream's two watch managers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Data,
    Child,
}

#[derive(Default)]
struct WatchTable {
    by_path: HashMap<ZnodePath, HashMap<ConnId, Mode>>,
    /// Recursive registrations: only then do triggers look at parents.
    recursive: usize,
}

impl WatchTable {
    fn set(&mut self, path: &ZnodePath, conn: ConnId, mode: Mode) -> bool {
        let old = self
            .by_path
            .entry(path.clone())
            .or_default()
            .insert(conn, mode);
        if old == Some(Mode::Recursive) {
            self.recursive -= 1;
        }
        if mode == Mode::Recursive {
            self.recursive += 1;
        }
        old.is_none()
    }

    fn remove(&mut self, path: &ZnodePath, conn: ConnId) -> bool {
        let Some(m) = self.by_path.get_mut(path) else {
            return false;
        };
        let old = m.remove(&conn);
        if m.is_empty() {
            self.by_path.remove(path);
        }
        if old == Some(Mode::Recursive) {
            self.recursive -= 1;
        }
        old.is_some()
    }

    /// `WatchManager.triggerWatch`: who hears `event_type` on `path`; one-shot watches at
    /// the path are consumed.
    fn trigger(
        &mut self,
        path: &ZnodePath,
        event_type: i32,
        removed: &mut Vec<ConnId>,
    ) -> HashSet<ConnId> {
        let mut hit = HashSet::new();
        if let Some(m) = self.by_path.get_mut(path) {
            m.retain(|conn, mode| match mode {
                Mode::Recursive => {
                    if event_type != event::NODE_CHILDREN_CHANGED {
                        hit.insert(*conn);
                    }
                    true
                }
                Mode::Persistent => {
                    hit.insert(*conn);
                    true
                }
                Mode::Standard => {
                    hit.insert(*conn);
                    removed.push(*conn);
                    false
                }
            });
            if m.is_empty() {
                self.by_path.remove(path);
            }
        }
        if self.recursive > 0 && event_type != event::NODE_CHILDREN_CHANGED {
            let mut p = path.parent();
            while let Some(cur) = p {
                if let Some(m) = self.by_path.get(&cur) {
                    hit.extend(
                        m.iter()
                            .filter(|(_, mode)| **mode == Mode::Recursive)
                            .map(|(c, _)| *c),
                    );
                }
                p = cur.parent();
            }
        }
        hit
    }
}

/// A connection as the dispatcher sees it: where its frames go, and who it is now (for
/// upstream's READ check on every event it would deliver).
struct Conn {
    tx: mpsc::UnboundedSender<Outgoing>,
    identity: Arc<RwLock<Identity>>,
}

#[derive(Default)]
struct Tables {
    data: WatchTable,
    child: WatchTable,
    conns: HashMap<ConnId, Conn>,
    /// Watches per connection, so a reply knows in O(1) whether it needs the fence.
    counts: HashMap<ConnId, usize>,
}

impl Tables {
    /// Whether an event at `path` could reach anyone.
    fn listened(&self, path: &ZnodePath) -> bool {
        self.data.recursive > 0
            || self.child.recursive > 0
            || self.data.by_path.contains_key(path)
            || self.child.by_path.contains_key(path)
    }

    fn count(&mut self, conn: ConnId, delta: isize) {
        let c = self.counts.entry(conn).or_insert(0);
        *c = c.saturating_add_signed(delta);
        if *c == 0 {
            self.counts.remove(&conn);
        }
    }

    fn table(&mut self, t: Table) -> &mut WatchTable {
        match t {
            Table::Data => &mut self.data,
            Table::Child => &mut self.child,
        }
    }
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
    /// ACLs of watched znodes, kept current from the ACL records' events.
    acls: HashMap<ZnodePath, Vec<Acl>>,
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
                acls: HashMap::new(),
                processed: ptx,
                nudges: nrx,
                sessions,
            },
        )
    }

    fn lock(&self) -> MutexGuard<'_, Tables> {
        lock(&self.tables)
    }

    pub fn connect(
        &self,
        conn: ConnId,
        tx: mpsc::UnboundedSender<Outgoing>,
        identity: Arc<RwLock<Identity>>,
    ) {
        self.lock().conns.insert(conn, Conn { tx, identity });
    }

    /// Forgets a connection and all its watches.
    pub fn disconnect(&self, conn: ConnId) {
        let mut guard = self.lock();
        let t = &mut *guard;
        t.conns.remove(&conn);
        t.counts.remove(&conn);
        for table in [&mut t.data, &mut t.child] {
            let paths: Vec<ZnodePath> = table
                .by_path
                .iter()
                .filter(|(_, m)| m.contains_key(&conn))
                .map(|(p, _)| p.clone())
                .collect();
            for p in paths {
                table.remove(&p, conn);
            }
        }
    }

    /// Registers a watch (upstream's `DataTree.addWatch` and the getData/exists/getChildren
    /// watch flags).
    pub fn add(&self, conn: ConnId, kind: WatchKind, path: &ZnodePath) {
        let mut t = self.lock();
        let added = match kind {
            WatchKind::Data => t.data.set(path, conn, Mode::Standard) as usize,
            WatchKind::Child => t.child.set(path, conn, Mode::Standard) as usize,
            WatchKind::Persistent | WatchKind::Recursive => {
                let mode = if kind == WatchKind::Persistent {
                    Mode::Persistent
                } else {
                    Mode::Recursive
                };
                t.data.set(path, conn, mode) as usize + t.child.set(path, conn, mode) as usize
            }
        };
        t.count(conn, added as isize);
    }

    /// upstream's `containsWatcher` (3.8): true if ANY connection watches `path` in the table.
    pub fn watched(&self, table: Table, path: &ZnodePath) -> bool {
        self.lock().table(table).by_path.contains_key(path)
    }

    /// Removes `conn`'s watch on `path` from the table, whatever its mode; whether it had one.
    pub fn remove(&self, conn: ConnId, table: Table, path: &ZnodePath) -> bool {
        let mut t = self.lock();
        let had = t.table(table).remove(path, conn);
        if had {
            t.count(conn, -1);
        }
        had
    }

    /// Whether `conn` has any watch at all (replies to it then need the fence).
    pub fn watching(&self, conn: ConnId) -> bool {
        self.lock().counts.contains_key(&conn)
    }

    /// Counts for the four-letter words (of one table, or both): (connections with watches,
    /// watched paths, watches).
    pub fn summary(&self, only: Option<Table>) -> (usize, usize, usize) {
        let t = self.lock();
        let mut conns = HashSet::new();
        let mut paths = HashSet::new();
        let mut total = 0;
        for (kind, table) in [(Table::Data, &t.data), (Table::Child, &t.child)] {
            if only.is_some_and(|k| k != kind) {
                continue;
            }
            for (p, m) in &table.by_path {
                paths.insert(p.clone());
                total += m.len();
                conns.extend(m.keys().copied());
            }
        }
        (conns.len(), paths.len(), total)
    }

    /// The watched paths of every connection (for `wchc`).
    pub fn by_connection(&self) -> HashMap<ConnId, Vec<String>> {
        let t = self.lock();
        let mut out: HashMap<ConnId, Vec<String>> = HashMap::new();
        for table in [&t.data, &t.child] {
            for (p, m) in &table.by_path {
                for c in m.keys() {
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
        if tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            tracing::warn!(revision, "watch fence timed out; replying anyway");
        }
    }

    /// Sends a frame to a connection (notifications of the gateway itself, e.g. session moved).
    pub fn send(&self, conn: ConnId, out: Outgoing) {
        if let Some(c) = self.lock().conns.get(&conn) {
            let _ = c.tx.send(out);
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
    /// Triggers `event_type` on `path` in one table and sends the event to everyone who
    /// hears it, minus `suppress`; returns who heard it.
    fn trigger(
        &mut self,
        table: Table,
        path: &ZnodePath,
        event_type: i32,
        suppress: &HashSet<ConnId>,
        acl: Option<&[Acl]>,
    ) -> HashSet<ConnId> {
        let mut removed = Vec::new();
        let mut hit = self.table(table).trigger(path, event_type, &mut removed);
        for c in removed {
            self.count(c, -1);
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
            if let Some(conn) = self.conns.get(c) {
                // upstream (CVE-2024-23944, in Debian's 3.8.0): an event is delivered only to a
                // connection that may READ the znode it names; the watch is consumed anyway
                let readable = acl.is_none_or(|acl| {
                    conn.identity
                        .read()
                        .is_ok_and(|id| id.allowed(acl, perms::READ))
                });
                if readable {
                    let _ = conn.tx.send(Outgoing::Frame(frame.clone()));
                }
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
        let order_key = layout.event_order_key();
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
                        // ACL records first: an event is checked against the ACL its znode
                        // had when it changed (a deleted znode's from the cache, or read at
                        // the revision before; no prev_kv, which would cost every write a
                        // history read)
                        let mut gone = Vec::new();
                        for ev in &resp.events {
                            let Some(kv) = ev.kv.as_ref() else { continue };
                            if let KeyKind::Node(path, Part::Acl) = layout.parse(&kv.key) {
                                let deleted = ev.r#type == EventType::Delete as i32;
                                let value = if deleted {
                                    ev.prev_kv.as_ref().map(|p| p.value.as_slice())
                                } else {
                                    Some(kv.value.as_slice())
                                };
                                if let Some((acl, _)) = value.and_then(decode_acl_record) {
                                    self.remember_acl(path.clone(), acl);
                                }
                                if deleted {
                                    gone.push(path);
                                }
                            }
                        }
                        // a multi that changed a znode more than once stored its events'
                        // order: its revision's events come from that, not from its records
                        // (a byte comparison: this pass sees every event of the stream)
                        let mut orders = HashMap::new();
                        for ev in &resp.events {
                            let Some(kv) = ev.kv.as_ref() else { continue };
                            if ev.r#type == EventType::Put as i32 && kv.key == order_key {
                                if let Some(order) = decode_event_order(&kv.value) {
                                    orders.insert(kv.mod_revision, order);
                                }
                            }
                        }
                        for ev in &resp.events {
                            let Some(kv) = ev.kv.as_ref() else { continue };
                            let rev = kv.mod_revision;
                            last = last.max(rev);
                            let deleted = ev.r#type == EventType::Delete as i32;
                            match layout.parse(&kv.key) {
                                KeyKind::Node(_, Part::Data) if orders.contains_key(&rev) => {}
                                KeyKind::EventOrder => {
                                    for (what, path) in orders.remove(&rev).unwrap_or_default() {
                                        let gone = what == ZnodeEvent::Deleted;
                                        self.load_acls(&store, &path, rev, gone).await;
                                        self.fire(what, &path);
                                    }
                                }
                                KeyKind::Node(path, Part::Data) => {
                                    self.load_acls(&store, &path, rev, deleted).await;
                                    self.dispatch_data(&path, deleted, kv);
                                }
                                KeyKind::Session(id) => self.session_changed(id, deleted),
                                _ => {}
                            }
                        }
                        for path in gone {
                            self.acls.remove(&path);
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

    fn remember_acl(&mut self, path: ZnodePath, acl: Vec<Acl>) {
        if self.acls.len() >= ACL_CACHE_LIMIT {
            self.acls.clear();
        }
        self.acls.insert(path, acl);
    }

    /// Makes sure the ACLs an event at `path` is checked against (its own and its parent's)
    /// are known, reading them at the event's revision if they are not cached. Only for
    /// znodes someone watches.
    async fn load_acls(&mut self, store: &ZkStore, path: &ZnodePath, rev: i64, deleted: bool) {
        let mut wanted = vec![path.clone()];
        if let Some(p) = path.parent() {
            wanted.push(p);
        }
        for p in wanted {
            if self.acls.contains_key(&p) || !lock(&self.tables).listened(&p) {
                continue;
            }
            // a deleted znode's records are gone at `rev`
            let at = if deleted && &p == path { rev - 1 } else { rev };
            if let Ok((Some(n), _)) = store.read_at(&p, 0, at).await {
                self.remember_acl(p, n.acl);
            }
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

    /// The events of one data record: created, changed or deleted; then one NodeDataChanged
    /// for each further setData of the multi that wrote it (a record of a multi that changed
    /// only this znode twice, written before `P order` existed).
    fn dispatch_data(&self, path: &ZnodePath, deleted: bool, kv: &synod_proto::mvccpb::KeyValue) {
        if deleted {
            self.fire(ZnodeEvent::Deleted, path);
            return;
        }
        if kv.create_revision == kv.mod_revision {
            self.fire(ZnodeEvent::Created, path);
        } else {
            self.fire(ZnodeEvent::DataChanged, path);
        }
        let repeats = data_record_repeats(&kv.value).clamp(0, MAX_REPEATS);
        for _ in 0..repeats {
            self.fire(ZnodeEvent::DataChanged, path);
        }
    }

    /// Triggers what `what` on `path` triggers upstream (DataTree's deleteNode, createNode,
    /// setData), each watcher event checked against the ACL of the znode it names.
    fn fire(&self, what: ZnodeEvent, path: &ZnodePath) {
        let mut t = lock(&self.tables);
        let none = HashSet::new();
        let own = self.acls.get(path).map(|a| a.as_slice());
        let parent = path.parent();
        let parent_changed = |t: &mut Tables| {
            if let Some(p) = &parent {
                let parent_acl = self.acls.get(p).map(|a| a.as_slice());
                t.trigger(
                    Table::Child,
                    p,
                    event::NODE_CHILDREN_CHANGED,
                    &none,
                    parent_acl,
                );
            }
        };
        match what {
            ZnodeEvent::Deleted => {
                let first = t.trigger(Table::Data, path, event::NODE_DELETED, &none, own);
                t.trigger(Table::Child, path, event::NODE_DELETED, &first, own);
                parent_changed(&mut t);
            }
            ZnodeEvent::Created => {
                t.trigger(Table::Data, path, event::NODE_CREATED, &none, own);
                parent_changed(&mut t);
            }
            ZnodeEvent::DataChanged => {
                t.trigger(Table::Data, path, event::NODE_DATA_CHANGED, &none, own);
            }
        }
    }

    fn session_changed(&self, id: i64, deleted: bool) {
        let _ = self.sessions.send(if deleted {
            SessionEvent::Gone(id)
        } else {
            SessionEvent::Held(id)
        });
    }
}
