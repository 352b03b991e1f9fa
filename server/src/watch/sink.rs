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

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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

impl Sink {
    /// Queues `d` (or merges it into the watcher's queued events) unless the queue is over
    /// budget or its reader is gone.
    pub fn try_send(&self, mut d: Delivery) -> Result<(), TrySend> {
        let mut q = self.shared.lock();
        if q.closed {
            return Err(TrySend::Closed);
        }
        let limit = self.shared.limit();
        let watcher = watcher_of(&d);
        let charge = cost(&d);
        // Merge into the watcher's queued events if there is room.
        if let (
            Delivery::Events {
                revision, events, ..
            },
            Some(&at),
        ) = (&mut d, q.open.get(&watcher).copied().as_ref())
        {
            let index = usize::try_from(at.wrapping_sub(q.head_seq)).unwrap_or(usize::MAX);
            let added = charge - DELIVERY_OVERHEAD;
            let fits = q.bytes + added <= limit;
            if let Some((
                Delivery::Events {
                    revision: merged_rev,
                    events: merged,
                    ..
                },
                merged_cost,
            )) = q.items.get_mut(index)
            {
                if !fits {
                    return Err(TrySend::Full);
                }
                if merged.len() + events.len() <= MAX_MERGED_EVENTS {
                    merged.append(events);
                    *merged_rev = *revision;
                    *merged_cost += added;
                    q.bytes += added;
                    return Ok(());
                }
            }
        }
        if !q.items.is_empty() && q.bytes + charge > limit {
            return Err(TrySend::Full);
        }
        let seq = q.head_seq.wrapping_add(q.items.len() as u64);
        if matches!(d, Delivery::Events { .. }) {
            q.open.insert(watcher, seq);
        } else {
            q.open.remove(&watcher);
        }
        q.items.push_back((d, charge));
        q.bytes += charge;
        drop(q);
        self.shared.ready.notify_one();
        Ok(())
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
    async fn a_dropped_reader_closes_the_sink() {
        let (sink, rx) = sink();
        drop(rx);
        assert!(matches!(sink.try_send(progress(1)), Err(TrySend::Closed)));
    }
}
