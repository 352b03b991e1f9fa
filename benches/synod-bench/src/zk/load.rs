//! The request scenarios of `synod-bench zk`: create, set and get, run by every session with
//! `--pipeline` requests outstanding, all sharing one counter of operations.
//!
//! It owns what each request is, the untimed setup (the parent, the set/get znodes) and the
//! phases (warmup, measured). It must never let a reply count for another request: replies
//! come in request order on a session, and a reply with an unexpected xid ends the run.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zk_gateway::jute::{CreateRequest, MultiOp, Request, SetDataRequest};
use zk_gateway::proto::op;

use super::session::{be_i32, open_acl, Session};
use super::{err, BoxError, Result, Scenario};
use crate::latency::Recorder;
use crate::progress::Progress;

/// set/get setup: creates per multi (Synod maps a multi to one etcd Txn, limited by etcd's
/// --max-txn-ops, default 128 operations; a create there writes 3 keys and its parent's 1).
const SETUP_BATCH: u64 = 25;

/// What one phase does: operation `i` of a phase is `request(i)`.
#[derive(Clone)]
pub struct Plan {
    pub kind: Scenario,
    /// `/bench-<run id>`
    pub parent: String,
    /// Prefix of the created paths (`n` measured creates, `w` warmup creates).
    pub create_prefix: char,
    pub nodes: u64,
    pub value: Arc<Vec<u8>>,
}

impl Plan {
    fn request(&self, i: u64) -> (i32, Request) {
        match self.kind {
            Scenario::Set => (
                op::SET_DATA,
                Request::SetData(SetDataRequest {
                    path: node_path(&self.parent, i % self.nodes),
                    data: Some(self.value.as_ref().clone()),
                    version: -1,
                }),
            ),
            Scenario::Get => (
                op::GET_DATA,
                Request::GetData {
                    path: node_path(&self.parent, i % self.nodes),
                    watch: false,
                },
            ),
            // create (watch never runs a phase)
            _ => (
                op::CREATE,
                Request::Create {
                    op: op::CREATE,
                    req: CreateRequest {
                        path: format!("{}/{}{i:09}", self.parent, self.create_prefix),
                        data: Some(self.value.as_ref().clone()),
                        acl: open_acl(),
                        flags: 0,
                        ttl: None,
                    },
                },
            ),
        }
    }
}

pub fn node_path(parent: &str, k: u64) -> String {
    format!("{parent}/k{k:09}")
}

/// A persistent znode with open ACLs; an error reply is fatal (this is setup).
pub async fn create_node(s: &mut Session, path: &str, data: Vec<u8>) -> Result<()> {
    let e = s
        .call(
            op::CREATE,
            &Request::Create {
                op: op::CREATE,
                req: CreateRequest {
                    path: path.to_string(),
                    data: Some(data),
                    acl: open_acl(),
                    flags: 0,
                    ttl: None,
                },
            },
        )
        .await?;
    if e != 0 {
        return err(format!("create {path}: error {e}"));
    }
    Ok(())
}

/// The set/get znodes `parent/k<i>`, from one session, in multis of SETUP_BATCH creates, so
/// that the setup does not depend on how a server handles concurrent creates under one parent.
pub async fn create_nodes(s: &mut Session, parent: &str, nodes: u64, value: &[u8]) -> Result<()> {
    let mut k = 0;
    while k < nodes {
        let end = (k + SETUP_BATCH).min(nodes);
        let ops = (k..end)
            .map(|i| MultiOp::Create {
                op: op::CREATE,
                req: CreateRequest {
                    path: node_path(parent, i),
                    data: Some(value.to_vec()),
                    acl: open_acl(),
                    flags: 0,
                    ttl: None,
                },
            })
            .collect();
        let e = s.call(op::MULTI, &Request::Multi(ops)).await?;
        let first = s.frame.get(16..).and_then(multi_error);
        if e != 0 || first != Some(0) {
            return err(format!(
                "creating nodes {k}..{end} of {parent} (multi): reply err {e}, first op error {first:?}"
            ));
        }
        k = end;
    }
    Ok(())
}

/// A MultiResponse body (after the ReplyHeader) of creates: `Some(0)` if every result is a
/// create, `Some(err)` with the first error result's code, `None` if it cannot be read.
/// Each result is `MultiHeader {int type; boolean done; int err}` and, for a create (type 1),
/// `CreateResponse {ustring path}`, for an error (type -1) `ErrorResponse {int err}`; the list
/// ends with a header with done = true.
fn multi_error(mut b: &[u8]) -> Option<i32> {
    // Bounded by the frame's length: every step consumes at least 9 bytes.
    loop {
        let ty = be_i32(b, 0)?;
        let done = *b.get(4)? != 0;
        b = b.get(9..)?;
        if done {
            return Some(0);
        }
        match ty {
            1 => {
                let n = be_i32(b, 0)?.max(0) as usize;
                b = b.get(4usize.checked_add(n)?..)?;
            }
            -1 => return be_i32(b, 0),
            _ => return None,
        }
    }
}

/// One session's part of a phase.
struct SessionResult {
    hist: Recorder,
    errors: BTreeMap<i32, u64>,
    done: u64,
}

async fn session_loop(
    s: &mut Session,
    plan: &Plan,
    next: &AtomicU64,
    total: u64,
    pipeline: usize,
    progress: &Progress,
) -> Result<SessionResult> {
    let mut res = SessionResult {
        hist: Recorder::new(),
        errors: BTreeMap::new(),
        done: 0,
    };
    let mut inflight: VecDeque<(i32, Instant)> = VecDeque::with_capacity(pipeline);
    let mut exhausted = false;
    // Bounded: at most `total` requests are claimed over all sessions, and every iteration
    // either sends one or consumes one reply.
    loop {
        while !exhausted && inflight.len() < pipeline {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= total {
                exhausted = true;
                break;
            }
            let (opcode, req) = plan.request(i);
            let t0 = Instant::now();
            let xid = s
                .send(opcode, &req)
                .await
                .map_err(|e| format!("session {}: send: {e}", s.id))?;
            inflight.push_back((xid, t0));
        }
        let Some((xid, t0)) = inflight.pop_front() else {
            break;
        };
        let h = s
            .read_reply()
            .await
            .map_err(|e| format!("session {}: {e}", s.id))?;
        // Every reply's latency counts, error replies included (zk-bench's rule).
        let took = t0.elapsed();
        s.check_xid(h, xid)?;
        res.hist.record(took);
        res.done += 1;
        if h.err != 0 {
            *res.errors.entry(h.err).or_default() += 1;
        }
        progress.inc(1);
    }
    Ok(res)
}

pub struct PhaseResult {
    pub elapsed: Duration,
    pub hist: Recorder,
    pub errors: BTreeMap<i32, u64>,
    pub done: u64,
}

/// Runs `total` operations of `plan` over all sessions; returns the sessions for the next phase.
pub async fn run_phase(
    sessions: Vec<Session>,
    plan: &Plan,
    total: u64,
    pipeline: usize,
    progress: &Progress,
) -> Result<(Vec<Session>, PhaseResult)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sessions.len());
    for mut s in sessions {
        let plan = plan.clone();
        let next = next.clone();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let r = session_loop(&mut s, &plan, &next, total, pipeline, &progress).await;
            (s, r)
        }));
    }
    let mut out = PhaseResult {
        elapsed: Duration::ZERO,
        hist: Recorder::new(),
        errors: BTreeMap::new(),
        done: 0,
    };
    let mut sessions = Vec::with_capacity(tasks.len());
    let mut first_err: Option<BoxError> = None;
    for t in tasks {
        let (s, r) = t.await?;
        sessions.push(s);
        match r {
            Ok(r) => {
                out.hist.merge(&r.hist);
                for (code, n) in r.errors {
                    *out.errors.entry(code).or_default() += n;
                }
                out.done += r.done;
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    out.elapsed = start.elapsed();
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok((sessions, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_results() {
        // one create result ("/a"), then done
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, b'/', b'a'];
        b.extend([0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(multi_error(&b), Some(0));
        // an error result -110
        let e = [
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x92, 0xff, 0xff, 0xff, 0x92,
        ];
        assert_eq!(multi_error(&e), Some(-110));
        assert_eq!(multi_error(&b[..10]), None);
        assert_eq!(multi_error(&[]), None);
        // a create result claiming a path longer than the frame
        let long = [0, 0, 0, 1, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff];
        assert_eq!(multi_error(&long), None);
    }
}
