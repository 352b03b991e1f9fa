//! The watch hub: every watcher of this member, and the delivery of applied events to them.
//!
//! etcd's `watchableStore`, rebuilt around bounded queues. Every member applies every entry,
//! so every member serves watches from its own store; nothing here goes through Raft.
//!
//! * A watcher belongs to a [`Sink`] (one per gRPC watch stream, or one per internal
//!   subscription). A sink is a bounded queue of [`Delivery`]s; the stream drains it.
//! * A **synced** watcher gets events straight from the state machine: [`WatchHub`] is an
//!   [`ApplyObserver`], and `events_applied` pushes each batch's matching events onto the
//!   sinks, each stream's watchers together (`try_send_all`, one lock of its queue per batch).
//!   It never waits: a sink that is full turns its watcher **unsynced**
//!   (etcd's victims), and the apply path moves on. Writes never wait for watchers.
//! * An **unsynced** watcher (a full sink, or a start revision in the past) is caught up by
//!   the hub's catch-up task, which reads the store's history from the watcher's next
//!   revision in bounded chunks, whenever its sink has room. Once it has everything up to the
//!   last published revision it is synced again. A watcher whose next revision has been
//!   compacted gets one [`Delivery::Compacted`] and is removed.
//!
//! Each watcher remembers `next_rev`, the first revision it has not been sent; a delivery only
//! ever carries events at or above it and moves it past them, so no event is sent twice and
//! none is skipped, whichever path (apply or catch-up) delivers it. Memory per watcher is
//! bounded by its sink's capacity, whatever the write rate.
//!
//! The hub never writes the store, never blocks the state machine, and knows nothing of gRPC.

use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use synod_mvcc::{KeyRange, MvccError};
use synod_proto::mvccpb::Event;
use tokio::sync::Notify;

use super::event::{SharedEvent, WatchEvent};
use super::sink::{Sink, TrySend};
use crate::node::Node;
use crate::raft::observer::ApplyObserver;

/// How often unsynced watchers are caught up when nothing wakes the task sooner (etcd: 100 ms).
const CATCH_UP_INTERVAL: Duration = Duration::from_millis(100);
/// At most this many events are read from history for one watcher in one pass (whole
/// revisions are never split, so a delivery may hold a few more).
const CATCH_UP_EVENTS: usize = 1000;

/// Identifies a watcher in the hub, unique for the hub's lifetime (watch ids are only unique
/// within a stream and may be reused after a cancel).
pub type WatcherKey = u64;

/// What a watcher watches, as the client asked.
#[derive(Debug, Clone)]
pub struct WatchSpec {
    pub range: KeyRange,
    /// The first revision to deliver (etcd's `start_revision`, or current + 1).
    pub start_rev: i64,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    /// The id the client knows the watcher by (reported back in every delivery).
    pub watch_id: i64,
}

/// One message to a sink's reader, in the order the watcher must see them.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    /// Events of one watcher; `revision` is the store revision they bring the watcher to.
    Events {
        watcher: WatcherKey,
        watch_id: i64,
        revision: i64,
        events: Vec<WatchEvent>,
    },
    /// The watcher has seen every change up to `revision` (a progress notification).
    Progress {
        watcher: WatcherKey,
        watch_id: i64,
        revision: i64,
    },
    /// The watcher's next revision was compacted away; it has been removed.
    Compacted {
        watcher: WatcherKey,
        watch_id: i64,
        compact_revision: i64,
    },
}

struct Watcher {
    spec: WatchSpec,
    /// The first revision not yet delivered.
    next_rev: i64,
    synced: bool,
    sink: Sink,
}

impl Watcher {
    /// This watcher's view of `ev` (filters, prev_kv), or `None` if it does not see it.
    fn select(&self, ev: &Arc<SharedEvent>) -> Option<WatchEvent> {
        let kv = ev.kv()?;
        if kv.mod_revision < self.next_rev || !self.spec.range.contains(&kv.key) {
            return None;
        }
        let is_put = ev.is_put();
        if (is_put && self.spec.no_put) || (!is_put && self.spec.no_delete) {
            return None;
        }
        // A handle on the shared event: no copy of its key or value per watcher.
        Some(WatchEvent::new(ev, self.spec.prev_kv))
    }
}

/// One stream's share of an applied batch: its watchers (with the first revision each is
/// handed) and their deliveries, in the same order.
struct StreamBatch {
    sink: Sink,
    watchers: Vec<(WatcherKey, i64)>,
    deliveries: Vec<Delivery>,
}

#[derive(Default)]
struct State {
    next_key: WatcherKey,
    watchers: HashMap<WatcherKey, Watcher>,
    /// Synced single-key watchers by key, and synced range watchers: where an event is looked
    /// up on the apply path without visiting every watcher.
    synced_single: HashMap<Vec<u8>, HashSet<WatcherKey>>,
    synced_ranges: HashSet<WatcherKey>,
    /// The store revision of the last batch handed to the watchers.
    published: i64,
    /// How many watchers are not synced (the catch-up task has work).
    unsynced: usize,
    /// How many watchers asked for `prev_kv` (applied events carry it only if any did).
    prev_kv_watchers: usize,
}

impl State {
    fn index(&mut self, key: WatcherKey) {
        let Some(w) = self.watchers.get(&key) else {
            return;
        };
        match &w.spec.range {
            KeyRange::Single(k) => {
                self.synced_single.entry(k.clone()).or_default().insert(key);
            }
            KeyRange::Span { .. } => {
                self.synced_ranges.insert(key);
            }
        }
    }

    fn unindex(&mut self, key: WatcherKey) {
        let Some(w) = self.watchers.get(&key) else {
            return;
        };
        match &w.spec.range {
            KeyRange::Single(k) => {
                if let Some(set) = self.synced_single.get_mut(k) {
                    set.remove(&key);
                    if set.is_empty() {
                        self.synced_single.remove(k);
                    }
                }
            }
            KeyRange::Span { .. } => {
                self.synced_ranges.remove(&key);
            }
        }
    }

    fn set_synced(&mut self, key: WatcherKey, synced: bool) {
        let Some(w) = self.watchers.get_mut(&key) else {
            return;
        };
        if w.synced == synced {
            return;
        }
        w.synced = synced;
        if synced {
            self.unsynced -= 1;
            self.index(key);
        } else {
            self.unsynced += 1;
            self.unindex(key);
        }
    }

    fn insert(&mut self, key: WatcherKey, w: Watcher) {
        let synced = w.synced;
        if w.spec.prev_kv {
            self.prev_kv_watchers += 1;
        }
        self.watchers.insert(key, w);
        if synced {
            self.index(key);
        } else {
            self.unsynced += 1;
        }
    }

    fn remove(&mut self, key: WatcherKey) -> Option<Watcher> {
        self.unindex(key);
        let w = self.watchers.remove(&key)?;
        w.sink.watcher_joined(false);
        if w.spec.prev_kv {
            self.prev_kv_watchers -= 1;
        }
        if !w.synced {
            self.unsynced -= 1;
        }
        Some(w)
    }

    /// Synced watchers that may see an event on `key`.
    fn candidates(&self, key: &[u8], out: &mut HashSet<WatcherKey>) {
        if let Some(set) = self.synced_single.get(key) {
            out.extend(set.iter().copied());
        }
        for k in &self.synced_ranges {
            if self
                .watchers
                .get(k)
                .is_some_and(|w| w.spec.range.contains(key))
            {
                out.insert(*k);
            }
        }
    }
}

struct Inner {
    state: Mutex<State>,
    node: OnceLock<Node>,
    /// Wakes the catch-up task (a watcher fell behind, or a sink was drained).
    wake: Notify,
}

/// The watch hub; cheap to clone. Create it before the node (the state machine reports to
/// [`WatchHub::observer`]), then [`WatchHub::start`] it with the node.
#[derive(Clone)]
pub struct WatchHub {
    inner: Arc<Inner>,
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    pub fn new() -> Self {
        WatchHub {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                node: OnceLock::new(),
                wake: Notify::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What the state machine reports applied batches to.
    pub fn observer(&self) -> Arc<dyn ApplyObserver> {
        Arc::new(self.clone())
    }

    /// Attaches the node (whose store the catch-up task reads) and runs the catch-up task
    /// until `stop` turns true.
    pub fn start(&self, node: Node, mut stop: tokio::sync::watch::Receiver<bool>) {
        if let Ok(view) = node.read() {
            let mut s = self.lock();
            s.published = s.published.max(view.current_revision());
        }
        if self.inner.node.set(node).is_err() {
            tracing::warn!("watch hub started twice; ignoring the second start");
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = this.inner.wake.notified() => {}
                    _ = tokio::time::sleep(CATCH_UP_INTERVAL) => {}
                    _ = stop.changed() => return,
                }
                if *stop.borrow() {
                    return;
                }
                // Keep going while a pass made progress: a watcher far behind catches up at
                // the speed its reader drains, not one chunk per interval.
                while this.catch_up_pass() {
                    tokio::task::yield_now().await;
                }
            }
        });
    }

    /// The revision of the last batch handed to watchers (what a new watcher is created at).
    pub fn revision(&self) -> i64 {
        self.lock().published
    }

    /// Adds a watcher to `sink`. It is synced at once if its start revision is in the future;
    /// otherwise it is caught up from history first. Returns its key and the revision it was
    /// created at.
    pub fn add(&self, sink: &Sink, mut spec: WatchSpec) -> (WatcherKey, i64) {
        let mut s = self.lock();
        let created_at = s.published;
        if spec.start_rev == 0 {
            spec.start_rev = created_at + 1;
        }
        let key = s.next_key;
        s.next_key += 1;
        sink.watcher_joined(true);
        let synced = spec.start_rev > created_at;
        s.insert(
            key,
            Watcher {
                next_rev: spec.start_rev,
                spec,
                synced,
                sink: sink.clone(),
            },
        );
        drop(s);
        if !synced {
            self.inner.wake.notify_one();
        }
        (key, created_at)
    }

    /// Removes a watcher; `false` if there was none with that key.
    pub fn remove(&self, key: WatcherKey) -> bool {
        self.lock().remove(key).is_some()
    }

    /// Removes several watchers (a stream that ended).
    pub fn remove_all(&self, keys: impl IntoIterator<Item = WatcherKey>) {
        let mut s = self.lock();
        for key in keys {
            s.remove(key);
        }
    }

    /// Queues a progress notification for a synced watcher: it has seen everything up to the
    /// last published revision. Queued behind its pending events, so it never claims more
    /// than was delivered. An unsynced watcher gets none (etcd does the same).
    pub fn request_progress(&self, key: WatcherKey) {
        let s = self.lock();
        let Some(w) = s.watchers.get(&key) else {
            return;
        };
        if w.synced {
            let _ = w.sink.try_send(Delivery::Progress {
                watcher: key,
                watch_id: w.spec.watch_id,
                revision: s.published,
            });
        }
    }

    /// Wakes the catch-up task: a stream drained its sink, so watchers that fell behind can
    /// make progress now.
    pub fn drained(&self) {
        if self.lock().unsynced > 0 {
            self.inner.wake.notify_one();
        }
    }

    /// One catch-up pass over every unsynced watcher whose sink has room; whether any made
    /// progress. Like etcd's `syncWatchers`, history is read once for all of them, from the
    /// smallest next revision, and each watcher takes what it needs from that chunk.
    fn catch_up_pass(&self) -> bool {
        let Some(node) = self.inner.node.get() else {
            return false;
        };
        let (pending, prev_kv) = {
            let s = self.lock();
            let pending: Vec<(WatcherKey, i64)> = s
                .watchers
                .iter()
                .filter(|(_, w)| !w.synced && w.sink.has_room())
                .map(|(k, w)| (*k, w.next_rev))
                .collect();
            let prev_kv = pending
                .iter()
                .any(|(k, _)| s.watchers.get(k).is_some_and(|w| w.spec.prev_kv));
            (pending, prev_kv)
        };
        if pending.is_empty() {
            return false;
        }
        let view = match node.read() {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = %e, "watch catch-up cannot read the store");
                return false;
            }
        };
        let current = view.current_revision();
        // etcd's compaction revision is -1 until the first compaction: a start revision below
        // it (negative ones included) is compacted away, and -1 on a never-compacted store
        // means "from now on".
        let compacted_at = match view.compact_revision() {
            0 => -1,
            c => c,
        };
        let (compacted, live): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|(_, next_rev)| *next_rev < compacted_at);
        let mut progressed = false;
        for (key, _) in compacted {
            progressed |= self.deliver_compacted(key, compacted_at);
        }
        let Some(from) = live.iter().map(|(_, next_rev)| (*next_rev).max(1)).min() else {
            return progressed;
        };
        let events = match view.events_between(from, current, CATCH_UP_EVENTS, prev_kv) {
            Ok(events) => events,
            // Compacted since the revision was looked at: the next pass sorts it out.
            Err(MvccError::Compacted) => return true,
            Err(e) => {
                tracing::warn!(error = %e, "watch catch-up failed");
                return progressed;
            }
        };
        // A chunk that hit the limit ends at its last revision; otherwise it covers
        // everything up to `current`.
        let covered = match events.last().and_then(|e| e.kv.as_ref()) {
            Some(kv) if events.len() >= CATCH_UP_EVENTS => kv.mod_revision,
            _ => current,
        };
        // Read once for every watcher of the pass, and shared by them.
        let events: Vec<Arc<SharedEvent>> = events.into_iter().map(SharedEvent::new).collect();
        let mut s = self.lock();
        for (key, next_rev) in live {
            if next_rev < 1 {
                // Negative start revision that is not compacted: no history, from now on.
                progressed |= Self::deliver_caught_up(&mut s, key, next_rev, &[], current);
                continue;
            }
            let upto = if next_rev <= covered {
                covered
            } else if covered == current {
                // Already past everything stored: nothing to send, maybe synced now.
                next_rev - 1
            } else {
                continue;
            };
            progressed |= Self::deliver_caught_up(&mut s, key, next_rev, &events, upto);
        }
        progressed
    }

    /// Sends the events of `events` at or above the watcher's next revision (history from
    /// `from_rev` up to `covered`) to an unsynced watcher; moves it to synced if that brought
    /// it up to the last published revision.
    fn deliver_caught_up(
        s: &mut State,
        key: WatcherKey,
        from_rev: i64,
        events: &[Arc<SharedEvent>],
        covered: i64,
    ) -> bool {
        let published = s.published;
        let Some(w) = s.watchers.get_mut(&key) else {
            return false;
        };
        // Canceled and re-added, or resynced meanwhile: this read is stale.
        if w.synced || w.next_rev != from_rev {
            return false;
        }
        let selected: Vec<WatchEvent> = events
            .iter()
            .filter(|e| e.kv().is_some_and(|kv| kv.mod_revision <= covered))
            .filter_map(|e| w.select(e))
            .collect();
        let sent = if selected.is_empty() {
            Ok(())
        } else {
            w.sink.try_send(Delivery::Events {
                watcher: key,
                watch_id: w.spec.watch_id,
                revision: covered,
                events: selected,
            })
        };
        match sent {
            Ok(()) => {}
            Err(TrySend::Full) => return false,
            Err(TrySend::Closed) => {
                s.remove(key);
                return false;
            }
        }
        let moved = covered + 1 != w.next_rev;
        w.next_rev = covered + 1;
        // Everything published is delivered (a batch committed but not yet published is
        // below `next_rev` and will be skipped when it is).
        if covered >= published {
            s.set_synced(key, true);
            return true;
        }
        moved
    }

    fn deliver_compacted(&self, key: WatcherKey, compact_revision: i64) -> bool {
        let mut s = self.lock();
        let Some(w) = s.watchers.get(&key) else {
            return false;
        };
        if w.synced {
            return false;
        }
        let delivery = Delivery::Compacted {
            watcher: key,
            watch_id: w.spec.watch_id,
            compact_revision,
        };
        match w.sink.try_send(delivery) {
            Err(TrySend::Full) => false,
            Ok(()) | Err(TrySend::Closed) => {
                s.remove(key);
                true
            }
        }
    }

    /// Hands one applied batch to the synced watchers.
    fn publish(&self, revision: i64, events: &[Event], with_prev_kv: bool) {
        let mut s = self.lock();
        s.published = s.published.max(revision);
        if events.is_empty() || s.watchers.is_empty() {
            return;
        }
        let mut matched: HashSet<WatcherKey> = HashSet::new();
        for ev in events {
            if let Some(kv) = &ev.kv {
                s.candidates(&kv.key, &mut matched);
            }
        }
        if matched.is_empty() {
            return;
        }
        // One copy of each event, whatever the number of watchers that see it.
        let events: Vec<Arc<SharedEvent>> = events.iter().cloned().map(SharedEvent::new).collect();
        let mut fell_behind = false;
        // Each stream's watchers are handed their events together, so its queue is locked once
        // per batch rather than once per watcher (the lock would bounce between this thread
        // and the stream's reader: 60% of the push cost with 100 watchers per stream).
        let mut streams: HashMap<usize, StreamBatch> = HashMap::new();
        for key in matched {
            let Some(w) = s.watchers.get_mut(&key) else {
                continue;
            };
            let selected: Vec<WatchEvent> = events.iter().filter_map(|e| w.select(e)).collect();
            let Some(first_rev) = selected.first().map(WatchEvent::mod_revision) else {
                continue;
            };
            if w.spec.prev_kv && !with_prev_kv {
                // Applied before this watcher asked for prev_kv (the batch had begun when it
                // was added): its events come from the store instead, which has them.
                w.next_rev = first_rev;
                s.set_synced(key, false);
                fell_behind = true;
                continue;
            }
            let batch = streams
                .entry(w.sink.queue_id())
                .or_insert_with(|| StreamBatch {
                    sink: w.sink.clone(),
                    watchers: Vec::new(),
                    deliveries: Vec::new(),
                });
            batch.watchers.push((key, first_rev));
            batch.deliveries.push(Delivery::Events {
                watcher: key,
                watch_id: w.spec.watch_id,
                revision,
                events: selected,
            });
        }
        for batch in streams.into_values() {
            let results = batch.sink.try_send_all(batch.deliveries);
            for ((key, first_rev), result) in batch.watchers.into_iter().zip(results) {
                match result {
                    Ok(()) => {
                        if let Some(w) = s.watchers.get_mut(&key) {
                            w.next_rev = revision + 1;
                        }
                    }
                    Err(TrySend::Full) => {
                        // Its reader is slow: catch it up from the store later, starting with
                        // the first event it missed.
                        if let Some(w) = s.watchers.get_mut(&key) {
                            w.next_rev = first_rev;
                        }
                        s.set_synced(key, false);
                        fell_behind = true;
                    }
                    Err(TrySend::Closed) => {
                        s.remove(key);
                    }
                }
            }
        }
        drop(s);
        if fell_behind {
            tracing::debug!(revision, "watchers fell behind");
            self.inner.wake.notify_one();
        }
    }

    /// After a snapshot install the store jumped to `revision` without events: every watcher
    /// catches up from history (or learns that it was compacted).
    fn resync_all(&self, revision: i64) {
        let mut s = self.lock();
        s.published = revision;
        let keys: Vec<WatcherKey> = s.watchers.keys().copied().collect();
        for key in keys {
            s.set_synced(key, false);
        }
        drop(s);
        self.inner.wake.notify_one();
    }

    /// How many watchers exist and how many of them are synced (for tests and status).
    pub fn counts(&self) -> (usize, usize) {
        let s = self.lock();
        let synced = s.watchers.values().filter(|w| w.synced).count();
        (s.watchers.len(), synced)
    }
}

impl ApplyObserver for WatchHub {
    fn wants_prev_kv(&self) -> bool {
        self.lock().prev_kv_watchers > 0
    }

    fn events_applied(&self, revision: i64, events: &[Event], with_prev_kv: bool) {
        self.publish(revision, events, with_prev_kv);
    }

    fn restored(&self, revision: i64) {
        self.resync_all(revision);
    }
}

#[cfg(test)]
mod tests {
    use super::super::sink::{sink, SinkReceiver};
    use super::*;
    use synod_proto::mvccpb::{event::EventType, KeyValue};

    fn spec(prev_kv: bool, watch_id: i64) -> WatchSpec {
        WatchSpec {
            range: KeyRange::Single(b"k".to_vec()),
            start_rev: 0,
            no_put: false,
            no_delete: false,
            prev_kv,
            watch_id,
        }
    }

    fn overwrite(rev: i64, with_prev: bool) -> Event {
        let kv = |v: &str, m: i64| KeyValue {
            key: b"k".to_vec(),
            value: v.as_bytes().to_vec(),
            create_revision: 2,
            mod_revision: m,
            version: m - 1,
            lease: 0,
        };
        Event {
            r#type: EventType::Put as i32,
            kv: Some(kv("new", rev)),
            prev_kv: with_prev.then(|| kv("old", rev - 1)),
        }
    }

    /// The next delivery, which must be events.
    fn next_events(rx: &mut SinkReceiver) -> (WatcherKey, Vec<WatchEvent>) {
        match rx.try_recv() {
            Some(Delivery::Events {
                watcher, events, ..
            }) => (watcher, events),
            other => panic!("expected a watcher's events, got {other:?}"),
        }
    }

    #[test]
    fn applied_events_carry_prev_kv_only_while_a_watcher_wants_it() {
        let hub = WatchHub::new();
        assert!(!hub.wants_prev_kv());
        let (tx, _rx) = sink();
        let (plain, _) = hub.add(&tx, spec(false, 1));
        assert!(!hub.wants_prev_kv());
        let (with_prev, _) = hub.add(&tx, spec(true, 2));
        assert!(hub.wants_prev_kv());
        hub.remove(with_prev);
        assert!(!hub.wants_prev_kv());
        hub.remove(plain);
    }

    #[test]
    fn a_prev_kv_watcher_catches_up_from_the_store_after_a_batch_without_prev_kv() {
        let hub = WatchHub::new();
        let (tx, mut rx) = sink();
        let (plain, _) = hub.add(&tx, spec(false, 1));
        let (with_prev, _) = hub.add(&tx, spec(true, 2));
        assert_eq!(hub.counts(), (2, 2));

        // A batch applied before the prev_kv watcher was added: the plain watcher gets it
        // live, the other falls back to the store, from the event's revision.
        hub.events_applied(5, &[overwrite(5, false)], false);
        let (watcher, events) = next_events(&mut rx);
        assert_eq!(watcher, plain);
        assert_eq!(events.len(), 1);
        assert!(
            rx.try_recv().is_none(),
            "the prev_kv watcher got events without prev_kv"
        );
        assert_eq!(hub.counts(), (2, 1));
        let s = hub.lock();
        let w = &s.watchers[&with_prev];
        assert!(!w.synced);
        assert_eq!(w.next_rev, 5);
        drop(s);

        // A batch with prev_kv goes live to synced watchers as before.
        hub.events_applied(6, &[overwrite(6, true)], true);
        let (watcher, events) = next_events(&mut rx);
        assert_eq!(watcher, plain);
        assert_eq!(events[0].mod_revision(), 6);
    }
}
