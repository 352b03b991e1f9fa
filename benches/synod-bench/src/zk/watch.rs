//! The watch scenario of `synod-bench zk`: `--watchers` sessions each keep a data watch on one
//! shared znode (getData with watch; watches are one-shot, so each re-arms with getData+watch
//! after every event); one writer session does `--total` setData calls, each only once every
//! watcher has received the previous change's event and re-armed, so that no change is
//! coalesced or missed. It measures events per second (from the first measured setData to the
//! last event) and, per event, the time from the setData's reply to the event's arrival (0 if
//! the event came first).
//!
//! It owns the watcher/writer hand-off. It must never start a change before every watcher is
//! armed again, and never take a notification of another kind (a session event, a deletion
//! before the end) for a data change: anything unexpected ends the run. The end of the run is
//! signalled in the protocol itself: the writer deletes the znode, and every watcher stops at
//! its NodeDeleted event.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use zk_gateway::jute::{DeleteRequest, Request, SetDataRequest};
use zk_gateway::proto::{event, op};

use super::load::create_node;
use super::session::{Frame, Session};
use super::{err, Result};
use crate::latency::Recorder;
use crate::progress::Progress;

/// What the watchers and the writer share.
struct Shared {
    t0: Instant,
    /// Watchers armed: +1 per watcher for its first watch and for every re-arm after an event.
    acks: AtomicU64,
    /// Per watcher: when its last data-change event arrived, in ns after `t0`.
    event_ns: Vec<AtomicU64>,
    notify: Notify,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.t0)
            .as_nanos()
            .min(u128::from(u64::MAX)) as u64
    }

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

pub struct WatchResult {
    /// From the first measured setData to the last event of the last measured change.
    pub elapsed: Duration,
    pub events: u64,
    /// setData reply to event arrival.
    pub latency: Recorder,
    /// setData request sent to event arrival (for the record's params).
    pub from_request: Recorder,
    pub changes: u64,
    pub errors: BTreeMap<i32, u64>,
    pub warmup_errors: BTreeMap<i32, u64>,
}

/// `writer` makes `parent/w`; `watchers` watch it; `warmup` untimed changes, then `total`.
pub async fn run(
    mut writer: Session,
    watchers: Vec<Session>,
    parent: &str,
    value: &[u8],
    warmup: u64,
    total: u64,
    progress: &Progress,
) -> Result<WatchResult> {
    let path = format!("{parent}/w");
    create_node(&mut writer, &path, value.to_vec()).await?;
    let w = watchers.len() as u64;
    let shared = Arc::new(Shared {
        t0: Instant::now(),
        acks: AtomicU64::new(0),
        event_ns: (0..w).map(|_| AtomicU64::new(0)).collect(),
        notify: Notify::new(),
        failure: Mutex::new(None),
    });
    let tasks: Vec<_> = watchers
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let (shared, path) = (shared.clone(), path.clone());
            tokio::spawn(async move {
                let r = watcher(s, i, &path, &shared).await;
                if let Err(e) = &r {
                    shared.fail(format!("watcher {i}: {e}"));
                }
                r
            })
        })
        .collect();

    // Every watcher armed before the first change.
    let mut armed = w;
    wait_acks(&shared, armed, writer.request_timeout()).await?;

    let mut res = WatchResult {
        elapsed: Duration::ZERO,
        events: 0,
        latency: Recorder::new(),
        from_request: Recorder::new(),
        changes: 0,
        errors: BTreeMap::new(),
        warmup_errors: BTreeMap::new(),
    };
    let mut first_set: Option<Instant> = None;
    let mut last_event_ns = 0;
    for round in 0..warmup + total {
        let measured = round >= warmup;
        if round == warmup {
            progress.start("events");
        }
        let sent = Instant::now();
        if measured && first_set.is_none() {
            first_set = Some(sent);
        }
        let req = Request::SetData(SetDataRequest {
            path: path.clone(),
            data: Some(value.to_vec()),
            version: -1,
        });
        let e = writer.call(op::SET_DATA, &req).await?;
        let replied = Instant::now();
        if e != 0 {
            // No change, so no event: counted, and on to the next round.
            let errors = if measured {
                &mut res.errors
            } else {
                &mut res.warmup_errors
            };
            *errors.entry(e).or_default() += 1;
            continue;
        }
        armed += w;
        wait_acks(&shared, armed, writer.request_timeout()).await?;
        if !measured {
            continue;
        }
        res.changes += 1;
        let (replied_ns, sent_ns) = (shared.nanos(replied), shared.nanos(sent));
        for slot in &shared.event_ns {
            let ev = slot.load(Ordering::Acquire);
            res.latency.record_us(ev.saturating_sub(replied_ns) / 1000);
            res.from_request
                .record_us(ev.saturating_sub(sent_ns) / 1000);
            last_event_ns = last_event_ns.max(ev);
        }
        res.events += w;
        progress.inc(w);
    }
    if let Some(first) = first_set {
        if res.changes > 0 {
            res.elapsed = Duration::from_nanos(last_event_ns)
                .saturating_sub(first.saturating_duration_since(shared.t0));
        } else {
            res.elapsed = first.elapsed();
        }
    }

    // The end: deleting the znode fires every watcher's watch with NodeDeleted.
    let e = writer
        .call(
            op::DELETE,
            &Request::Delete(DeleteRequest {
                path: path.clone(),
                version: -1,
            }),
        )
        .await?;
    if e != 0 {
        return err(format!("delete {path} (the end of the run): error {e}"));
    }
    let mut sessions = vec![writer];
    for t in tasks {
        sessions.push(t.await??);
    }
    for s in sessions {
        s.close().await;
    }
    Ok(res)
}

/// Waits until `target` acks are in, a watcher failed, or nothing happened for `limit`.
async fn wait_acks(shared: &Shared, target: u64, limit: Duration) -> Result<()> {
    loop {
        if let Some(f) = shared.failure() {
            return err(f);
        }
        let acks = shared.acks.load(Ordering::Acquire);
        if acks >= target {
            return Ok(());
        }
        if tokio::time::timeout(limit, shared.notify.notified())
            .await
            .is_err()
        {
            return err(format!(
                "the watchers did not all receive the change and re-arm within {limit:?} \
                 ({} of {target} acknowledgements)",
                acks
            ));
        }
    }
}

/// One watcher session: arm, then for every data change record the event's arrival and
/// re-arm, until the znode is deleted.
async fn watcher(mut s: Session, i: usize, path: &str, shared: &Shared) -> Result<Session> {
    arm(&mut s, path).await?;
    shared.acks.fetch_add(1, Ordering::AcqRel);
    shared.notify.notify_one();
    loop {
        match s.read_any().await? {
            Frame::Notification { kind, .. } if kind == event::NODE_DATA_CHANGED => {
                shared.event_ns[i].store(shared.nanos(Instant::now()), Ordering::Release);
                arm(&mut s, path).await?;
                shared.acks.fetch_add(1, Ordering::AcqRel);
                shared.notify.notify_one();
            }
            Frame::Notification { kind, .. } if kind == event::NODE_DELETED => return Ok(s),
            Frame::Notification { kind, state } => {
                return err(format!(
                    "unexpected watch notification: type {kind}, state {state}"
                ))
            }
            Frame::Reply(h) => {
                return err(format!(
                    "unexpected reply (xid {}) while waiting for an event",
                    h.xid
                ))
            }
        }
    }
}

/// getData with watch; the reply must be for this request and err 0. No notification can come
/// before it: the watch it sets is the only one, and it fires only after being set.
async fn arm(s: &mut Session, path: &str) -> Result<()> {
    let xid = s
        .send(
            op::GET_DATA,
            &Request::GetData {
                path: path.to_string(),
                watch: true,
            },
        )
        .await?;
    match s.read_any().await? {
        Frame::Reply(h) => {
            s.check_xid(h, xid)?;
            if h.err != 0 {
                return err(format!("getData {path} with watch: error {}", h.err));
            }
            Ok(())
        }
        Frame::Notification { kind, state } => err(format!(
            "watch notification (type {kind}, state {state}) before the watch was set"
        )),
    }
}
