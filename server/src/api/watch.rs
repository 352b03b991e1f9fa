//! The etcd `Watch` gRPC service (`v3rpc/watch.go`): one bidirectional stream, many watchers.
//!
//! Each stream has two tasks. The receiving task reads the client's create, cancel and
//! progress requests and hands them over in order. The sending task owns the stream's
//! watchers: it registers them with the [`WatchHub`], answers requests, and turns the hub's
//! deliveries into responses (`WatchReply`, encoded as etcd's `WatchResponse`). Because one
//! task both sends a watcher's `created` answer and forwards its events, no event can overtake
//! the `created` answer. Output is a bounded
//! channel: a client that stops reading stalls only its own sending task, whose watchers then
//! fall behind in the hub and catch up from the store later (never unbounded buffering).
//!
//! This module owns etcd's request semantics (key and range normalisation, watch ids, error
//! reasons, progress notifications, fragmentation); it never reads the store itself.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use prost::Message;
use synod_mvcc::KeyRange;
use synod_proto::etcdserverpb::watch_create_request::FilterType;
use synod_proto::etcdserverpb::watch_request::RequestUnion;
use synod_proto::etcdserverpb::{WatchCreateRequest, WatchRequest};
use tokio::sync::mpsc;
use tonic::Status;

use super::watch_reply::{event_field_len, WatchReply};
use crate::node::Node;
use crate::watch::{sink, Delivery, SinkReceiver, WatchHub, WatchSpec, WatcherKey};

/// The watch id etcd answers with when a watcher could not be created.
const INVALID_WATCH_ID: i64 = -1;
/// etcd's `AutoWatchID`: the client leaves the choice to the server.
const AUTO_WATCH_ID: i64 = 0;
/// Responses queued for the transport before the sending task waits.
const OUTPUT_CAPACITY: usize = 4;
/// Client requests queued before the receiving task waits.
const REQUEST_CAPACITY: usize = 16;

const ERR_DUPLICATE_ID: &str = "mvcc: duplicate watch ID provided on the WatchStream";
const ERR_EMPTY_RANGE: &str = "mvcc: watcher range is empty";

/// What every watch stream of this member shares.
#[derive(Clone)]
pub struct WatchService {
    node: Node,
    hub: WatchHub,
    /// Responses larger than this are split when the watcher asked for fragments (etcd:
    /// `--max-request-bytes` plus the gRPC overhead allowance).
    fragment_limit: usize,
    progress_interval: Duration,
    /// Watch streams open now (etcd's `watch_stream_total`).
    streams: Arc<AtomicUsize>,
}

impl WatchService {
    /// How many watch streams are open.
    pub fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Relaxed)
    }

    pub fn new(
        node: Node,
        hub: WatchHub,
        fragment_limit: usize,
        progress_interval: Duration,
    ) -> Self {
        WatchService {
            node,
            hub,
            fragment_limit,
            progress_interval,
            streams: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Serves one watch stream: `inbound` are the client's requests; the returned receiver
    /// yields the responses (it ends when the stream is over). Used by gRPC and the JSON
    /// gateway alike.
    pub fn serve_stream<S>(&self, inbound: S) -> mpsc::Receiver<Result<WatchReply, Status>>
    where
        S: Stream<Item = Result<WatchRequest, Status>> + Send + Unpin + 'static,
    {
        let (out_tx, out_rx) = mpsc::channel(OUTPUT_CAPACITY);
        let (req_tx, req_rx) = mpsc::channel(REQUEST_CAPACITY);
        tokio::spawn(receive(inbound, req_tx));
        let stream = StreamState::new(self.clone(), out_tx);
        tokio::spawn(stream.run(req_rx));
        out_rx
    }
}

/// What the receiving task hands to the sending task.
enum Inbound {
    Request(WatchRequest),
    /// The client's stream failed: the watch stream ends.
    Failed,
}

/// Reads the client's requests until it half-closes (the stream goes on sending, as etcd
/// does) or fails (the stream ends).
async fn receive<S>(mut inbound: S, tx: mpsc::Sender<Inbound>)
where
    S: Stream<Item = Result<WatchRequest, Status>> + Unpin,
{
    loop {
        let next = tokio::select! {
            next = inbound.next() => next,
            _ = tx.closed() => return,
        };
        let item = match next {
            None => return,
            Some(Ok(req)) => Inbound::Request(req),
            Some(Err(status)) => {
                tracing::debug!(%status, "watch stream receive failed");
                Inbound::Failed
            }
        };
        let failed = matches!(item, Inbound::Failed);
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// A watcher of this stream, as the sending task knows it.
struct StreamWatcher {
    key: WatcherKey,
    progress_notify: bool,
    fragment: bool,
}

/// The sending task's state: the stream's watchers by watch id.
struct StreamState {
    svc: WatchService,
    out: mpsc::Sender<Result<WatchReply, Status>>,
    watchers: HashMap<i64, StreamWatcher>,
    next_id: i64,
    /// etcd's per-stream progress flags: ids due a progress notification at the next tick
    /// (cleared when events were sent since the last tick).
    progress_due: HashSet<i64>,
}

/// The sending task stops: the client went away.
struct Gone;

impl StreamState {
    fn new(svc: WatchService, out: mpsc::Sender<Result<WatchReply, Status>>) -> Self {
        StreamState {
            svc,
            out,
            watchers: HashMap::new(),
            next_id: 0,
            progress_due: HashSet::new(),
        }
    }

    async fn run(mut self, mut requests: mpsc::Receiver<Inbound>) {
        self.svc.streams.fetch_add(1, Ordering::Relaxed);
        let (sink, mut deliveries) = sink();
        let mut requests_open = true;
        let mut tick = tokio::time::interval_at(
            tokio::time::Instant::now() + self.svc.progress_interval,
            self.svc.progress_interval,
        );
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pacer = Pacer::new();
        loop {
            let paused_until = pacer.paused_until;
            let step = tokio::select! {
                req = requests.recv(), if requests_open => match req {
                    Some(Inbound::Request(r)) => {
                        // A progress answer claims every event up to its revision was sent:
                        // send what is queued first, even if the stream is pacing itself.
                        let flushed = if matches!(r.request_union, Some(RequestUnion::ProgressRequest(_))) {
                            self.send_queued(&mut deliveries).await.map(|_| ())
                        } else {
                            Ok(())
                        };
                        match flushed {
                            Ok(()) => self.on_request(r, &sink).await,
                            Err(gone) => Err(gone),
                        }
                    }
                    Some(Inbound::Failed) => Err(Gone),
                    // Half-closed: keep sending, as etcd does.
                    None => {
                        requests_open = false;
                        Ok(())
                    }
                },
                Some(d) = deliveries.recv(), if paused_until.is_none() => {
                    let step = self.on_delivery(d).await;
                    pacer.sent(tokio::time::Instant::now());
                    if deliveries.is_empty() {
                        self.svc.hub.drained();
                    }
                    step
                }
                _ = sleep_until_some(paused_until) => {
                    // Drain what the pause gathered (not what arrives meanwhile); if that
                    // was still a lot, the stream stays busy and pauses again.
                    pacer.paused_until = None;
                    let step = self.send_queued(&mut deliveries).await;
                    if step.as_ref().is_ok_and(|sent| *sent >= STAY_BUSY) {
                        pacer.pause(tokio::time::Instant::now());
                    }
                    self.svc.hub.drained();
                    step.map(|_| ())
                }
                _ = tick.tick() => {
                    self.on_progress_tick();
                    Ok(())
                }
                _ = self.out.closed() => Err(Gone),
            };
            if step.is_err() {
                break;
            }
        }
        self.svc
            .hub
            .remove_all(self.watchers.values().map(|w| w.key));
        self.svc.streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Sends the deliveries queued now (not those that arrive meanwhile); how many.
    async fn send_queued(&mut self, deliveries: &mut SinkReceiver) -> Result<usize, Gone> {
        let queued = deliveries.len();
        for sent in 0..queued {
            let Some(d) = deliveries.try_recv() else {
                return Ok(sent);
            };
            self.on_delivery(d).await?;
        }
        Ok(queued)
    }

    async fn send(&self, resp: WatchReply) -> Result<(), Gone> {
        self.out.send(Ok(resp)).await.map_err(|_| Gone)
    }

    fn header(&self, revision: i64) -> Option<synod_proto::etcdserverpb::ResponseHeader> {
        Some(self.svc.node.header(revision))
    }

    async fn on_request(
        &mut self,
        req: WatchRequest,
        sink: &crate::watch::Sink,
    ) -> Result<(), Gone> {
        match req.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c, sink).await,
            Some(RequestUnion::CancelRequest(c)) => {
                // etcd answers only a cancel of a watcher that exists.
                let Some(w) = self.watchers.remove(&c.watch_id) else {
                    return Ok(());
                };
                self.svc.hub.remove(w.key);
                self.progress_due.remove(&c.watch_id);
                let resp = WatchReply {
                    header: self.header(self.svc.hub.revision()),
                    watch_id: c.watch_id,
                    canceled: true,
                    ..Default::default()
                };
                self.send(resp).await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // etcd 3.4 answers at once with the store's revision, for the whole stream.
                let resp = WatchReply {
                    header: self.header(self.svc.hub.revision()),
                    watch_id: INVALID_WATCH_ID,
                    ..Default::default()
                };
                self.send(resp).await
            }
            None => Ok(()),
        }
    }

    async fn create(
        &mut self,
        c: WatchCreateRequest,
        sink: &crate::watch::Sink,
    ) -> Result<(), Gone> {
        let range = watch_range(&c.key, &c.range_end);
        let refused = |reason: &str, rev: i64, this: &Self| WatchReply {
            header: this.header(rev),
            watch_id: INVALID_WATCH_ID,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        };
        if range.is_empty() {
            return self
                .send(refused(ERR_EMPTY_RANGE, self.svc.hub.revision(), self))
                .await;
        }
        let id = if c.watch_id == AUTO_WATCH_ID {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        } else if self.watchers.contains_key(&c.watch_id) {
            return self
                .send(refused(ERR_DUPLICATE_ID, self.svc.hub.revision(), self))
                .await;
        } else {
            c.watch_id
        };
        let spec = WatchSpec {
            range,
            start_rev: c.start_revision,
            no_put: c.filters.contains(&(FilterType::Noput as i32)),
            no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
            prev_kv: c.prev_kv,
            watch_id: id,
        };
        let (key, created_at) = self.svc.hub.add(sink, spec);
        self.watchers.insert(
            id,
            StreamWatcher {
                key,
                progress_notify: c.progress_notify,
                fragment: c.fragment,
            },
        );
        if c.progress_notify {
            self.progress_due.insert(id);
        }
        let resp = WatchReply {
            header: self.header(created_at),
            watch_id: id,
            created: true,
            ..Default::default()
        };
        self.send(resp).await
    }

    /// Whether `d` is for a watcher this stream still has (deliveries queued before a cancel,
    /// or for an earlier watcher with a reused id, are dropped).
    fn current(&self, watch_id: i64, watcher: WatcherKey) -> Option<&StreamWatcher> {
        self.watchers.get(&watch_id).filter(|w| w.key == watcher)
    }

    async fn on_delivery(&mut self, d: Delivery) -> Result<(), Gone> {
        match d {
            Delivery::Events {
                watcher,
                watch_id,
                revision,
                events,
            } => {
                let Some(w) = self.current(watch_id, watcher) else {
                    return Ok(());
                };
                let fragment = w.fragment;
                let resp = WatchReply {
                    header: self.header(revision),
                    watch_id,
                    events,
                    ..Default::default()
                };
                if !resp.events.is_empty() {
                    self.progress_due.remove(&watch_id);
                }
                if fragment {
                    for part in fragments(resp, self.svc.fragment_limit) {
                        self.send(part).await?;
                    }
                    Ok(())
                } else {
                    self.send(resp).await
                }
            }
            Delivery::Progress {
                watcher,
                watch_id,
                revision,
            } => {
                if self.current(watch_id, watcher).is_none() {
                    return Ok(());
                }
                let resp = WatchReply {
                    header: self.header(revision),
                    watch_id,
                    ..Default::default()
                };
                self.send(resp).await
            }
            Delivery::Compacted {
                watcher,
                watch_id,
                compact_revision,
            } => {
                if self.current(watch_id, watcher).is_none() {
                    return Ok(());
                }
                self.watchers.remove(&watch_id);
                self.progress_due.remove(&watch_id);
                // etcd's compacted answer carries no revision in its header.
                let resp = WatchReply {
                    header: self.header(0),
                    watch_id,
                    compact_revision,
                    canceled: true,
                    ..Default::default()
                };
                self.send(resp).await
            }
        }
    }

    /// etcd's progress ticker: a watcher that asked for progress notifications and got no
    /// events since the last tick gets one (if it is synced); every such watcher is then due
    /// again at the next tick.
    fn on_progress_tick(&mut self) {
        for (id, w) in &self.watchers {
            if !w.progress_notify {
                continue;
            }
            if self.progress_due.contains(id) {
                self.svc.hub.request_progress(w.key);
            }
        }
        self.progress_due = self
            .watchers
            .iter()
            .filter(|(_, w)| w.progress_notify)
            .map(|(id, _)| *id)
            .collect();
    }
}

/// Paces a busy stream. Every response costs a client far more than an event in it (etcd's
/// Go client spends its time per response), and a watcher's events queued while its stream
/// waits merge into one response (see `watch::sink`). A stream that sent
/// [`BUSY_RESPONSES`] responses within [`BUSY_WINDOW`] pauses for [`BUSY_PAUSE`], then sends
/// what gathered meanwhile and, while that is still [`STAY_BUSY`] deliveries or more, pauses
/// again: under a write storm each watcher gets one response per pause with everything since,
/// instead of one per applied batch. Streams that are not that busy
/// (anything short of thousands of responses a second) never pause. etcd gets the same
/// effect, with up to 100 ms of delay, from its slow-watcher path.
struct Pacer {
    window_start: tokio::time::Instant,
    in_window: u32,
    paused_until: Option<tokio::time::Instant>,
}

const BUSY_RESPONSES: u32 = 128;
const BUSY_WINDOW: Duration = Duration::from_millis(10);
/// 50 ms: etcd's benchmark (1000 watchers on 10 streams, 2M events) got 1.57M events/s with
/// 20 ms and 1.70M with 50 ms (etcd 1.59M, same machine); etcd's slow path waits up to 100 ms.
const BUSY_PAUSE: Duration = Duration::from_millis(50);
/// After a pause, a drain of at least this many deliveries means the stream is still busy.
const STAY_BUSY: usize = 32;

impl Pacer {
    fn new() -> Self {
        Pacer {
            window_start: tokio::time::Instant::now(),
            in_window: 0,
            paused_until: None,
        }
    }

    /// One delivery was sent at `now`.
    fn sent(&mut self, now: tokio::time::Instant) {
        if now.duration_since(self.window_start) > BUSY_WINDOW {
            self.window_start = now;
            self.in_window = 0;
        }
        self.in_window += 1;
        if self.in_window >= BUSY_RESPONSES {
            self.pause(now);
        }
    }

    /// Stops taking deliveries for [`BUSY_PAUSE`].
    fn pause(&mut self, now: tokio::time::Instant) {
        self.paused_until = Some(now + BUSY_PAUSE);
        self.window_start = now + BUSY_PAUSE;
        self.in_window = 0;
    }
}

/// Sleeps until `at`, or forever if there is no `at`.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The key range of a create request, normalised as etcd does: an empty key is `"\0"`, an
/// empty `range_end` watches one key, `"\0"` watches every key from `key` on.
fn watch_range(key: &[u8], range_end: &[u8]) -> KeyRange {
    let key: &[u8] = if key.is_empty() { &[0] } else { key };
    KeyRange::from_request(key, range_end)
}

/// Splits a response larger than `limit` into several, each with at least one event and
/// `fragment` set on all but the last (etcd's `sendFragments`). Small responses and single
/// events go out whole.
fn fragments(resp: WatchReply, limit: usize) -> Vec<WatchReply> {
    if resp.encoded_len() < limit || resp.events.len() < 2 {
        return vec![resp];
    }
    let mut out = Vec::new();
    let mut template = resp;
    let mut events = std::mem::take(&mut template.events).into_iter().peekable();
    let base = template.encoded_len();
    while events.peek().is_some() {
        let mut part = WatchReply {
            fragment: true,
            ..template.clone()
        };
        let mut size = base;
        while let Some(ev) = events.peek() {
            let add = event_field_len(ev);
            if !part.events.is_empty() && size + add >= limit {
                break;
            }
            size += add;
            if let Some(ev) = events.next() {
                part.events.push(ev);
            }
        }
        if events.peek().is_none() {
            part.fragment = false;
        }
        out.push(part);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::WatchEvent;
    use synod_proto::mvccpb::{Event, KeyValue};

    fn ev(n: usize, size: usize) -> WatchEvent {
        Event {
            kv: Some(KeyValue {
                key: format!("k{n}").into_bytes(),
                value: vec![b'v'; size],
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn a_stream_pauses_only_after_a_burst_of_responses() {
        let t0 = tokio::time::Instant::now();
        let mut p = Pacer::new();
        p.window_start = t0;
        // A steady trickle (one response every 100 us is 10,000 a second, but the window
        // restarts every 10 ms, holding at most 101) never pauses.
        for i in 0..1000u64 {
            p.sent(t0 + Duration::from_micros(100 * i));
            assert!(p.paused_until.is_none(), "paused after {i}");
        }
        let t1 = t0 + Duration::from_secs(1);
        for _ in 0..BUSY_RESPONSES - 1 {
            p.sent(t1);
        }
        assert!(p.paused_until.is_none());
        p.sent(t1);
        assert_eq!(p.paused_until, Some(t1 + BUSY_PAUSE));
    }

    #[test]
    fn small_responses_are_not_fragmented() {
        let resp = WatchReply {
            events: vec![ev(1, 10), ev(2, 10)],
            ..Default::default()
        };
        let parts = fragments(resp.clone(), 1000);
        assert_eq!(parts, vec![resp]);
    }

    #[test]
    fn large_responses_split_with_fragment_flag_on_all_but_last() {
        let events: Vec<WatchEvent> = (0..10).map(|i| ev(i, 100)).collect();
        let resp = WatchReply {
            watch_id: 7,
            events: events.clone(),
            ..Default::default()
        };
        let parts = fragments(resp, 350);
        assert!(parts.len() > 1);
        let (last, rest) = parts.split_last().unwrap();
        assert!(rest.iter().all(|p| p.fragment && !p.events.is_empty()));
        assert!(!last.fragment);
        assert!(parts.iter().all(|p| p.watch_id == 7));
        let joined: Vec<WatchEvent> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, events);
    }

    #[test]
    fn an_event_larger_than_the_limit_still_goes_out() {
        let events: Vec<WatchEvent> = (0..3).map(|i| ev(i, 500)).collect();
        let parts = fragments(
            WatchReply {
                events,
                ..Default::default()
            },
            100,
        );
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.events.len() == 1));
    }

    #[test]
    fn empty_key_means_nul_and_nul_end_means_from_key() {
        assert_eq!(watch_range(b"", b""), KeyRange::Single(vec![0]));
        assert!(watch_range(b"b", b"a").is_empty());
        assert!(watch_range(b"a", b"a").is_empty());
        assert!(watch_range(b"a", b"\0").contains(b"zzz"));
    }
}
