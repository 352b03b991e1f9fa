//! The watch scenario: `--watchers` watchers over `--streams` Watch streams (streams spread
//! over the connections), all on the whole key space; once every one is created, `--total`
//! puts from `--clients` clients to keys of the space. It measures the events received by all
//! watchers per second (from the first put to the last event expected: puts x watchers) and,
//! for every event, the time from its put's response at the client to its arrival (0 when the
//! event came first).
//!
//! It owns the streams' setup and the matching of events to puts, by revision: every put
//! creates one revision, noted in [`PutTimes`] when its response arrives. It must never count
//! the run complete before every expected event has arrived, and it assumes nobody else writes
//! to the server during the run (another writer's revisions make events it cannot match: they
//! are counted, not timed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::channel::mpsc;
use synod_proto::etcdserverpb::kv_client::KvClient;
use synod_proto::etcdserverpb::watch_client::WatchClient;
use synod_proto::etcdserverpb::{
    watch_request, RangeRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use tokio::sync::{watch, Notify};
use tonic::codec::Streaming;
use tonic::transport::Channel;

use super::keys::KeySpace;
use super::kv::{KvOp, KvWorker, Shared};
use super::load::{self, REQUEST_TIMEOUT};
use crate::latency::Recorder;
use crate::progress::Progress;

/// When the response of each of the run's puts came back, by revision: the puts of the run
/// make revisions `base + 1 ..= base + total` (one each, nobody else writing).
pub struct PutTimes {
    base: i64,
    t0: Instant,
    /// Nanoseconds after `t0` (+1, so that 0 means "no response yet").
    slots: Vec<AtomicU64>,
}

impl PutTimes {
    fn new(base: i64, t0: Instant, total: u64) -> PutTimes {
        PutTimes {
            base,
            t0,
            slots: (0..total).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn slot(&self, revision: i64) -> Option<&AtomicU64> {
        let i = revision.checked_sub(self.base)?.checked_sub(1)?;
        self.slots.get(usize::try_from(i).ok()?)
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0)
            .as_nanos()
            .min(u128::from(u64::MAX - 1)) as u64
    }

    /// A put's response with this revision has arrived.
    pub fn mark(&self, revision: i64) {
        if let Some(slot) = self.slot(revision) {
            slot.store(self.nanos(Instant::now()) + 1, Ordering::Release);
        }
    }

    /// Microseconds from the response of the put at `revision` to `arrival`: 0 if the event
    /// came first, `None` if the revision is none of the run's puts.
    fn latency_us(&self, revision: i64, arrival: Instant) -> Option<u64> {
        let put = self.slot(revision)?.load(Ordering::Acquire);
        if put == 0 {
            return Some(0);
        }
        Some(self.nanos(arrival).saturating_sub(put - 1) / 1000)
    }
}

/// The watch scenario's settings.
pub struct WatchPlan {
    pub keys: KeySpace,
    pub sequential: bool,
    pub value: Vec<u8>,
    pub clients: u32,
    pub total: u64,
    pub watchers: u32,
    pub streams: u32,
}

/// What the watch scenario measured.
pub struct WatchResult {
    /// From the first put to the last expected event.
    pub elapsed: Duration,
    pub events: u64,
    /// Events whose revision is none of the run's puts (another writer's).
    pub unmatched: u64,
    pub event_latency: Recorder,
    pub puts: load::LoadResult,
    pub create_secs: f64,
}

/// One Watch stream with its watchers created.
struct OpenStream {
    /// Kept until the end: closing the request side could end the stream.
    _tx: mpsc::UnboundedSender<WatchRequest>,
    rx: Streaming<WatchResponse>,
}

/// What the event loops share with the run.
struct Events {
    times: Arc<PutTimes>,
    received: AtomicU64,
    last_event_ns: AtomicU64,
    /// Wakes the run on every response (it re-checks `received`) and on a failure.
    notify: Notify,
    failure: Mutex<Option<String>>,
    progress: Progress,
}

impl Events {
    fn fail(&self, msg: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(msg);
        }
        self.notify.notify_one();
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|mut f| f.take())
    }
}

pub async fn run(
    plan: &WatchPlan,
    channels: &[Channel],
    progress: &Progress,
) -> Result<WatchResult, String> {
    let (key, range_end) = plan.keys.whole_range();

    // The watchers: stream s on channel s mod conns, watcher w on stream w mod streams.
    progress.note("creating watchers");
    let create_start = Instant::now();
    let opening = (0..plan.streams).map(|s| {
        let n =
            u64::from(plan.watchers / plan.streams + u32::from(s < plan.watchers % plan.streams));
        let channel = channels[s as usize % channels.len()].clone();
        open_stream(channel, n, key.clone(), range_end.clone())
    });
    let streams = futures::future::try_join_all(opening).await?;
    let create_secs = create_start.elapsed().as_secs_f64();

    // The revision before the first put: the puts make the next `total` ones.
    let mut kv = KvClient::new(channels[0].clone());
    let base = tokio::time::timeout(
        REQUEST_TIMEOUT,
        kv.range(RangeRequest {
            key: key.clone(),
            count_only: true,
            ..Default::default()
        }),
    )
    .await
    .map_err(|_| "reading the current revision: no reply within 10 s".to_string())?
    .map_err(|s| {
        format!(
            "reading the current revision: {:?}: {}",
            s.code(),
            s.message()
        )
    })?
    .into_inner()
    .header
    .map_or(0, |h| h.revision);

    let t0 = Instant::now();
    let times = Arc::new(PutTimes::new(base, t0, plan.total));
    let events = Arc::new(Events {
        times: times.clone(),
        received: AtomicU64::new(0),
        last_event_ns: AtomicU64::new(0),
        notify: Notify::new(),
        failure: Mutex::new(None),
        progress: progress.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let loops: Vec<_> = streams
        .into_iter()
        .map(|s| tokio::spawn(event_loop(s, events.clone(), stop_rx.clone())))
        .collect();

    progress.start("events");
    let shared = Arc::new(Shared {
        op: KvOp::Put,
        keys: plan.keys,
        sequential: plan.sequential,
        value: plan.value.clone(),
        first_kvs: OnceLock::new(),
        put_times: Some(times),
    });
    let workers = (0..plan.clients as usize)
        .map(|c| KvWorker::new(channels[c % channels.len()].clone(), shared.clone()))
        .collect();
    // The put progress is not shown: the bar counts events.
    let (puts, _) = load::drive(
        workers,
        plan.total,
        &Progress::new("puts", plan.total, true),
    )
    .await?;

    // Every successful put makes one event per watcher. (A put that timed out may still have
    // been applied: its events are extra, and the wait below does not depend on them.)
    let expected = puts.ok * u64::from(plan.watchers);
    loop {
        if let Some(f) = events.failure() {
            return Err(f);
        }
        if events.received.load(Ordering::Acquire) >= expected {
            break;
        }
        events.notify.notified().await;
    }
    let last = events.last_event_ns.load(Ordering::Acquire);
    let elapsed = if expected == 0 {
        puts.elapsed
    } else {
        Duration::from_nanos(last)
    };
    let _ = stop_tx.send(true);
    let mut event_latency = Recorder::new();
    let mut unmatched = 0;
    for l in loops {
        let (hist, n) = l
            .await
            .map_err(|e| format!("a watch stream task failed: {e}"))?;
        event_latency.merge(&hist);
        unmatched += n;
    }
    Ok(WatchResult {
        elapsed,
        events: events.received.load(Ordering::Acquire),
        unmatched,
        event_latency,
        puts,
        create_secs,
    })
}

/// Opens one Watch stream and creates `n` watchers on `[key, range_end)` on it, waiting for
/// every `created` answer. The create requests are queued before the call: a gRPC server may
/// send the response headers only with its first message.
async fn open_stream(
    channel: Channel,
    n: u64,
    key: Vec<u8>,
    range_end: Vec<u8>,
) -> Result<OpenStream, String> {
    let mut client = WatchClient::new(channel);
    let (tx, rx) = mpsc::unbounded();
    for _ in 0..n {
        let create = WatchCreateRequest {
            key: key.clone(),
            range_end: range_end.clone(),
            ..Default::default()
        };
        tx.unbounded_send(WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(create)),
        })
        .map_err(|_| "watch request queue closed".to_string())?;
    }
    let mut rx = tokio::time::timeout(REQUEST_TIMEOUT, client.watch(rx))
        .await
        .map_err(|_| "opening a watch stream: no reply within 10 s".to_string())?
        .map_err(|s| format!("opening a watch stream: {:?}: {}", s.code(), s.message()))?
        .into_inner();
    let mut created = 0;
    while created < n {
        let resp = tokio::time::timeout(REQUEST_TIMEOUT, rx.message())
            .await
            .map_err(|_| {
                format!("watch creation: {created} of {n} created, then nothing for 10 s")
            })?
            .map_err(|s| format!("watch creation: {:?}: {}", s.code(), s.message()))?
            .ok_or_else(|| "watch creation: the server ended the stream".to_string())?;
        if resp.canceled {
            return Err(format!("watch creation refused: {}", resp.cancel_reason));
        }
        if resp.created {
            created += 1;
        }
    }
    Ok(OpenStream { _tx: tx, rx })
}

/// Receives one stream's events until told to stop; gives back their latencies and the number
/// of events it could not match to a put. A broken or canceled stream fails the run (its
/// events will never come).
async fn event_loop(
    mut s: OpenStream,
    ev: Arc<Events>,
    mut stop: watch::Receiver<bool>,
) -> (Recorder, u64) {
    let mut hist = Recorder::new();
    let mut unmatched = 0;
    loop {
        let msg = tokio::select! {
            biased;
            _ = stop.changed() => break,
            m = s.rx.message() => m,
        };
        let resp = match msg {
            Ok(Some(r)) => r,
            Ok(None) => {
                ev.fail("the server ended a watch stream".into());
                break;
            }
            Err(st) => {
                ev.fail(format!("watch stream: {:?}: {}", st.code(), st.message()));
                break;
            }
        };
        if resp.canceled {
            ev.fail(format!("a watcher was canceled: {}", resp.cancel_reason));
            break;
        }
        if resp.events.is_empty() {
            continue;
        }
        let arrival = Instant::now();
        for e in &resp.events {
            let rev = e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            match ev.times.latency_us(rev, arrival) {
                Some(us) => hist.record_us(us),
                None => unmatched += 1,
            }
        }
        let n = resp.events.len() as u64;
        ev.last_event_ns
            .fetch_max(ev.times.nanos(arrival), Ordering::AcqRel);
        ev.received.fetch_add(n, Ordering::AcqRel);
        ev.progress.inc(n);
        ev.notify.notify_one();
    }
    (hist, unmatched)
}

/// The figures of a finished watch run that are not in the record's main fields.
pub fn params(r: &WatchResult, plan: &WatchPlan) -> serde_json::Map<String, serde_json::Value> {
    let mut p = serde_json::Map::new();
    p.insert("watchers".into(), plan.watchers.into());
    p.insert("streams".into(), plan.streams.into());
    p.insert("puts".into(), plan.total.into());
    p.insert("puts_ok".into(), r.puts.ok.into());
    p.insert("put_errors".into(), r.puts.errors.total().into());
    p.insert(
        "watch_create_secs".into(),
        crate::latency::round3(r.create_secs).into(),
    );
    let rate = if r.create_secs > 0.0 {
        f64::from(plan.watchers) / r.create_secs
    } else {
        0.0
    };
    p.insert(
        "watch_create_per_sec".into(),
        crate::latency::round3(rate).into(),
    );
    p.insert("events_unmatched".into(), r.unmatched.into());
    p.insert(
        "latency".into(),
        "from a put's response at its client to the event's arrival (0 if the event came first)"
            .into(),
    );
    if let Some(l) = r.puts.latency.summary() {
        p.insert(
            "put_latency_ms".into(),
            serde_json::to_value(l).unwrap_or_default(),
        );
    }
    p
}
