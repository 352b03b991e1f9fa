//! A stream's delivery queue: what the hub pushes to without ever waiting, and the stream
//! drains.
//!
//! Two properties matter:
//!
//! * **Bounded.** The queue holds at most a budget of bytes of events that grows with the
//!   number of watchers on it (a base for the stream plus a share per watcher). A push over
//!   budget fails at once ([`TrySend::Full`]); the hub then catches that watcher up from the
//!   store later. Memory per stream stays bounded whatever the write rate. (A single delivery
//!   larger than the whole budget is still queued when the queue is empty: it has to go out.)
//! * **Coalescing.** Events for a watcher whose previous events are still queued are appended
//!   to that queued delivery (up to [`MAX_MERGED_EVENTS`]) instead of queueing another. A
//!   stream that keeps up sends each batch at once; a stream that is behind sends fewer,
//!   larger responses, which is what clients can absorb fastest (a response costs a client
//!   far more than an event in it). etcd gets the same effect from its slow-watcher path,
//!   which answers many revisions in one response.
//!
//! Order per watcher is preserved; deliveries of different watchers are independent.
//! This module never decides what to deliver; it only queues, merges and counts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use foldhash::HashMap;
use tokio::sync::Notify;

use super::hub::{Delivery, WatcherKey};

/// Bytes of events a stream may hold whatever its watchers.
pub const SINK_BASE: usize = 1 << 20;
/// Further bytes a stream may hold for each of its watchers.
pub const SINK_PER_WATCHER: usize = 64 << 10;
/// What a delivery is charged besides its events' keys and values.
const DELIVERY_OVERHEAD: usize = 64;
/// What an event is charged besides its keys and values.
const EVENT_OVERHEAD: usize = 48;
/// Events are merged into a queued delivery up to this many.
pub const MAX_MERGED_EVENTS: usize = 1000;

#[derive(Default)]
struct Queue {
    /// Deliveries and what each is charged.
    items: VecDeque<(Delivery, usize)>,
    /// The sum of the charges.
    bytes: usize,
    /// Sequence number of `items[0]`.
    head_seq: u64,
    /// Each watcher's last queued delivery, by sequence number, while it is an Events one.
    open: HashMap<WatcherKey, u64>,
    /// The reader is gone.
    closed: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Notify,
    watchers: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn limit(&self) -> usize {
        SINK_BASE.saturating_add(
            self.watchers
                .load(Ordering::Relaxed)
                .saturating_mul(SINK_PER_WATCHER),
        )
    }
}

/// The hub's end of a stream's queue; cheap to clone (one per watcher).
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
}

/// The stream's end. Dropping it closes the queue.
pub struct SinkReceiver {
    shared: Arc<Shared>,
}

/// Why a push did not happen.
#[derive(Debug)]
pub enum TrySend {
    /// Over budget: the stream is behind.
    Full,
    /// The stream is gone.
    Closed,
}

/// Creates a queue with no watchers yet.
pub fn sink() -> (Sink, SinkReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        ready: Notify::new(),
        watchers: AtomicUsize::new(0),
    });
    (
        Sink {
            shared: shared.clone(),
        },
        SinkReceiver { shared },
    )
}

/// What a list of events is charged against the budget: their keys and values, roughly.
/// (A queued event shares its key and value with every other watcher's copy; charging each
/// queue in full keeps a stalled stream's budget independent of who else watches.)
fn events_cost(events: &[super::WatchEvent]) -> usize {
    events
        .iter()
        .map(|e| EVENT_OVERHEAD + e.payload_len())
        .sum()
}

fn cost(d: &Delivery) -> usize {
    DELIVERY_OVERHEAD
        + match d {
            Delivery::Events { events, .. } => events_cost(events),
            Delivery::Progress { .. } | Delivery::Compacted { .. } => 0,
        }
}

fn watcher_of(d: &Delivery) -> WatcherKey {
    match d {
        Delivery::Events { watcher, .. }
        | Delivery::Progress { watcher, .. }
        | Delivery::Compacted { watcher, .. } => *watcher,
    }
}

impl Queue {
    /// Queues `d` (or merges it into the watcher's queued events) unless the queue is over
    /// `limit` or closed. `Ok(true)`: a new item the reader must be woken for.
    fn push(&mut self, limit: usize, mut d: Delivery) -> Result<bool, TrySend> {
        if self.closed {
            return Err(TrySend::Closed);
        }
        let watcher = watcher_of(&d);
        let charge = cost(&d);
        // Merge into the watcher's queued events if there is room.
        if let (
            Delivery::Events {
                revision, events, ..
            },
            Some(&at),
        ) = (&mut d, self.open.get(&watcher).copied().as_ref())
        {
            let index = usize::try_from(at.wrapping_sub(self.head_seq)).unwrap_or(usize::MAX);
            let added = charge - DELIVERY_OVERHEAD;
            let fits = self.bytes + added <= limit;
            if let Some((
                Delivery::Events {
                    revision: merged_rev,
                    events: merged,
                    ..
                },
                merged_cost,
            )) = self.items.get_mut(index)
            {
                if !fits {
                    return Err(TrySend::Full);
                }
                if merged.len() + events.len() <= MAX_MERGED_EVENTS {
                    merged.append(events);
                    *merged_rev = *revision;
                    *merged_cost += added;
                    self.bytes += added;
                    return Ok(false);
                }
            }
        }
        if !self.items.is_empty() && self.bytes + charge > limit {
            return Err(TrySend::Full);
        }
        let seq = self.head_seq.wrapping_add(self.items.len() as u64);
        if matches!(d, Delivery::Events { .. }) {
            self.open.insert(watcher, seq);
        } else {
            self.open.remove(&watcher);
        }
        self.items.push_back((d, charge));
        self.bytes += charge;
        Ok(true)
    }
}

impl Sink {
    /// Queues `d` (or merges it into the watcher's queued events) unless the queue is over
    /// budget or its reader is gone.
    pub fn try_send(&self, d: Delivery) -> Result<(), TrySend> {
        let mut q = self.shared.lock();
        let pushed = q.push(self.shared.limit(), d)?;
        drop(q);
        if pushed {
            self.shared.ready.notify_one();
        }
        Ok(())
    }

    /// [`Sink::try_send`] for several deliveries at once, in order, under one lock of the
    /// queue: the hub hands a stream all its watchers' events of a batch together, so the
    /// queue's lock is not passed back and forth with the reader once per watcher. One result
    /// per delivery.
    pub fn try_send_all(
        &self,
        deliveries: impl IntoIterator<Item = Delivery>,
    ) -> Vec<Result<(), TrySend>> {
        let limit = self.shared.limit();
        let mut q = self.shared.lock();
        let mut wake = false;
        let results = deliveries
            .into_iter()
            .map(|d| {
                q.push(limit, d).map(|pushed| {
                    wake |= pushed;
                })
            })
            .collect();
        drop(q);
        if wake {
            self.shared.ready.notify_one();
        }
        results
    }

    /// Which stream's queue this is: equal for every handle on the same queue, while it lives.
    pub fn queue_id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// Whether a push could succeed now.
    pub fn has_room(&self) -> bool {
        let q = self.shared.lock();
        !q.closed && (q.items.is_empty() || q.bytes < self.shared.limit())
    }

    /// A watcher joined (`true`) or left (`false`) this queue: its share of the budget.
    pub(super) fn watcher_joined(&self, joined: bool) {
        if joined {
            self.shared.watchers.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = self
                .shared
                .watchers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
}

impl SinkReceiver {
    /// The next delivery, waiting for one.
    pub async fn recv(&mut self) -> Option<Delivery> {
        let shared = self.shared.clone();
        loop {
            // Registered before looking, so a push in between is not missed; a wake-up taken
            // by a future dropped in a `select!` is handed on by tokio.
            let notified = shared.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(d) = self.try_recv() {
                return Some(d);
            }
            notified.await;
        }
    }

    /// The next delivery if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        let mut q = self.shared.lock();
        let (d, charge) = q.items.pop_front()?;
        q.bytes -= charge;
        let seq = q.head_seq;
        q.head_seq = q.head_seq.wrapping_add(1);
        let watcher = watcher_of(&d);
        if q.open.get(&watcher) == Some(&seq) {
            q.open.remove(&watcher);
        }
        Some(d)
    }

    /// How many deliveries are queued.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.shared.lock().items.is_empty()
    }
}

impl Drop for SinkReceiver {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.closed = true;
        q.items.clear();
        q.bytes = 0;
        q.open.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_proto::mvccpb::{Event, KeyValue};

    fn progress(n: i64) -> Delivery {
        Delivery::Progress {
            watcher: 0,
            watch_id: 0,
            revision: n,
        }
    }

    fn events(watcher: WatcherKey, revs: &[i64]) -> Delivery {
        Delivery::Events {
            watcher,
            watch_id: watcher as i64,
            revision: revs.last().copied().unwrap_or(0),
            events: revs
                .iter()
                .map(|r| {
                    Event {
                        kv: Some(KeyValue {
                            mod_revision: *r,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }
                    .into()
                })
                .collect(),
        }
    }

    fn big(watcher: WatcherKey, rev: i64, size: usize) -> Delivery {
        Delivery::Events {
            watcher,
            watch_id: 0,
            revision: rev,
            events: vec![Event {
                kv: Some(KeyValue {
                    value: vec![0; size],
                    mod_revision: rev,
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into()],
        }
    }

    #[tokio::test]
    async fn the_byte_budget_grows_with_watchers_and_frees_as_the_reader_drains() {
        let (sink, mut rx) = sink();
        // Distinct watchers: no merging. Each charge is just under 64 KiB.
        let each = (64 << 10) - DELIVERY_OVERHEAD - EVENT_OVERHEAD;
        for w in 0..16 {
            sink.try_send(big(w, 1, each)).unwrap();
        }
        assert!(matches!(
            sink.try_send(big(99, 1, each)),
            Err(TrySend::Full)
        ));
        assert!(!sink.has_room());
        // Enough watchers for one more such delivery.
        let joins = (64usize << 10).div_ceil(SINK_PER_WATCHER);
        for _ in 0..joins {
            sink.watcher_joined(true);
        }
        sink.try_send(big(99, 1, each)).unwrap();
        assert!(matches!(
            sink.try_send(big(98, 1, each)),
            Err(TrySend::Full)
        ));
        assert!(rx.recv().await.is_some());
        assert!(sink.has_room());
        sink.try_send(big(98, 1, each)).unwrap();
        for _ in 0..joins + 2 {
            sink.watcher_joined(false); // never below zero
        }
        assert!(matches!(sink.try_send(big(97, 1, 10)), Err(TrySend::Full)));
    }

    #[tokio::test]
    async fn a_delivery_larger_than_the_budget_goes_out_alone() {
        let (sink, mut rx) = sink();
        sink.try_send(big(1, 1, 2 * SINK_BASE)).unwrap();
        assert!(matches!(sink.try_send(big(2, 1, 1)), Err(TrySend::Full)));
        assert!(rx.try_recv().is_some());
        sink.try_send(big(2, 1, 1)).unwrap();
    }

    #[tokio::test]
    async fn queued_events_of_a_watcher_are_merged_in_order() {
        let (sink, mut rx) = sink();
        sink.try_send(events(1, &[2])).unwrap();
        sink.try_send(events(2, &[2])).unwrap();
        sink.try_send(events(1, &[3, 3])).unwrap();
        sink.try_send(progress(3)).unwrap(); // watcher 0
        sink.try_send(events(2, &[4])).unwrap();
        assert_eq!(rx.try_recv(), Some(events(1, &[2, 3, 3])));
        // Once taken, a watcher's next events start a new delivery.
        sink.try_send(events(1, &[5])).unwrap();
        assert_eq!(rx.try_recv(), Some(events(2, &[2, 4])));
        assert_eq!(rx.try_recv(), Some(progress(3)));
        assert_eq!(rx.try_recv(), Some(events(1, &[5])));
        assert_eq!(rx.try_recv(), None);
    }

    #[tokio::test]
    async fn a_progress_note_closes_the_watchers_open_delivery() {
        let (sink, mut rx) = sink();
        sink.try_send(events(0, &[2])).unwrap();
        sink.try_send(progress(2)).unwrap();
        sink.try_send(events(0, &[3])).unwrap();
        assert_eq!(rx.try_recv(), Some(events(0, &[2])));
        assert_eq!(rx.try_recv(), Some(progress(2)));
        assert_eq!(rx.try_recv(), Some(events(0, &[3])));
    }

    #[tokio::test]
    async fn several_deliveries_sent_together_are_queued_and_merged_as_if_sent_one_by_one() {
        let (sink, mut rx) = sink();
        sink.try_send(events(1, &[2])).unwrap();
        let results = sink.try_send_all([
            events(2, &[3]),
            events(1, &[3]),
            progress(3),
            big(3, 3, 2 * SINK_BASE),
            events(2, &[4]),
        ]);
        let outcome: Vec<&str> = results
            .iter()
            .map(|r| match r {
                Ok(()) => "ok",
                Err(TrySend::Full) => "full",
                Err(TrySend::Closed) => "closed",
            })
            .collect();
        // The oversized delivery finds the queue not empty: refused, and only it.
        assert_eq!(outcome, ["ok", "ok", "ok", "full", "ok"]);
        assert_eq!(rx.try_recv(), Some(events(1, &[2, 3])));
        assert_eq!(rx.try_recv(), Some(events(2, &[3, 4])));
        assert_eq!(rx.try_recv(), Some(progress(3)));
        assert_eq!(rx.try_recv(), None);
        drop(rx);
        assert!(sink
            .try_send_all([progress(4), events(1, &[5])])
            .iter()
            .all(|r| matches!(r, Err(TrySend::Closed))));
    }

    #[test]
    fn every_handle_on_a_queue_has_its_id_and_another_queue_another() {
        let (a, _ra) = sink();
        let (b, _rb) = sink();
        assert_eq!(a.queue_id(), a.clone().queue_id());
        assert_ne!(a.queue_id(), b.queue_id());
    }

    #[tokio::test]
    async fn a_dropped_reader_closes_the_sink() {
        let (sink, rx) = sink();
        drop(rx);
        assert!(matches!(sink.try_send(progress(1)), Err(TrySend::Closed)));
    }
}
