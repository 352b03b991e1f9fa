//! zk-bench: a ZooKeeper-protocol load generator, to compare servers (ZooKeeper itself, Synod's
//! embedded gateway) on the same workload.
//!
//!   zk-bench --endpoints 127.0.0.1:2181 --sessions 16 --op create|set|get --total 20000
//!            --value-size 256 [--pipeline 1] [--nodes 1000] [--warmup 0] [--json]
//!
//! Every session is one TCP connection with its own ZooKeeper session (ConnectRequest with a 30 s
//! timeout). A session keeps `--pipeline` requests outstanding (1 = a synchronous client: send,
//! wait for the reply, send the next); the sessions share one counter of `--total` operations, so
//! a faster session does more of them, as the clients of etcd's benchmark tool do.
//!
//! - create: `--total` distinct persistent znodes `/bench-<run id>/n<i>` of `--value-size` bytes;
//!   the parent is created first, untimed.
//! - set / get: setData (version -1) / getData (no watch) over `--nodes` znodes
//!   `/bench-<run id>/k<i>` (operation i on node i mod nodes), created first, untimed, by one
//!   session in multis of 25 creates (so the setup does not depend on how a server copes with
//!   concurrent creates under one parent).
//!
//! `--warmup N` first runs N untimed operations of the same kind (creates go to other paths).
//! Every reply's xid must be the one expected (replies come in request order on a session) and
//! its err 0: a non-zero err is counted by code. The output gives throughput (completed
//! operations / time from the first request to the last reply) and latency p50/p99/p99.9 (ms,
//! request written to reply read, per operation); `--json` prints it as one JSON object.
//!
//! Exit status: 0 if every reply had err 0 (warmup included), 1 if some had not (still
//! reported; warmup errors separately), 2 if the run
//! could not be completed (connection refused or lost, a malformed or unexpected reply, a reply
//! not in `--request-timeout`, or the whole run not in `--timeout`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use zk_gateway::jute::{
    encode_connect_request, encode_request, Acl, ConnectRequest, CreateRequest, Id, MultiOp,
    Request, RequestHeader, SetDataRequest,
};
use zk_gateway::proto::{op, perms};

/// set/get setup: creates per multi (Synod maps a multi to one etcd Txn, limited by etcd's
/// --max-txn-ops, default 128 operations; a create there writes 3 keys and its parent's 1).
const SETUP_BATCH: u64 = 25;

/// Largest reply frame accepted (a getData of a 256-byte value is ~100 bytes of header + data).
const MAX_FRAME: usize = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OpKind {
    Create,
    Set,
    Get,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Set => "set",
            OpKind::Get => "get",
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "zk-bench",
    about = "ZooKeeper-protocol load generator (create/set/get)"
)]
struct Args {
    /// Servers, host:port, comma-separated; sessions are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2181")]
    endpoints: Vec<String>,
    /// Concurrent sessions, one TCP connection each.
    #[arg(long, default_value_t = 16)]
    sessions: usize,
    /// The operation to measure.
    #[arg(long, value_enum)]
    op: OpKind,
    /// Operations to measure, over all sessions.
    #[arg(long, default_value_t = 20000)]
    total: u64,
    /// Bytes of data per create/set (and so per get).
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// Requests outstanding per session (1: synchronous).
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// set/get: znodes created first and operated on round-robin.
    #[arg(long, default_value_t = 1000)]
    nodes: u64,
    /// Untimed operations of the same kind before the measured ones.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Session timeout asked for in the ConnectRequest (ms).
    #[arg(long, default_value_t = 30000)]
    session_timeout: i32,
    /// Seconds to wait for any one reply (or the handshake).
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Seconds the whole run (connect, setup, warmup, measurement) may take.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Run id used in the parent's name `/bench-<id>` (default: from the clock and pid).
    #[arg(long)]
    run_id: Option<String>,
    /// Worker threads of the client's runtime (1: a single-threaded client).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Print the result as one JSON object.
    #[arg(long)]
    json: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(msg.into().into())
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}

/// `ReplyHeader {int xid; long zxid; int err}`
#[derive(Debug, Clone, Copy)]
struct ReplyHeader {
    xid: i32,
    #[allow(dead_code)]
    zxid: i64,
    err: i32,
}

/// One client session: a connection after a successful handshake.
struct Session {
    id: usize,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_xid: i32,
    out: Vec<u8>,
    frame: Vec<u8>,
    request_timeout: Duration,
}

impl Session {
    async fn connect(
        id: usize,
        addr: &str,
        session_timeout: i32,
        request_timeout: Duration,
    ) -> Result<Session> {
        let stream = tokio::time::timeout(request_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("session {id}: connect to {addr} timed out"))?
            .map_err(|e| format!("session {id}: connect to {addr}: {e}"))?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let mut s = Session {
            id,
            reader: BufReader::with_capacity(64 << 10, r),
            writer: w,
            next_xid: 1,
            out: Vec::with_capacity(1024),
            frame: Vec::with_capacity(1024),
            request_timeout,
        };
        encode_connect_request(
            &mut s.out,
            &ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: 0,
                time_out: session_timeout,
                session_id: 0,
                passwd: vec![0; 16],
                read_only: Some(false),
            },
        );
        s.writer.write_all(&s.out).await?;
        s.read_frame()
            .await
            .map_err(|e| format!("session {id}: handshake with {addr}: {e}"))?;
        // ConnectResponse {int protocolVersion; int timeOut; long sessionId; buffer passwd} [bool readOnly]
        let b = &s.frame;
        if b.len() < 20 {
            return err(format!(
                "session {id}: short ConnectResponse ({} bytes) from {addr}",
                b.len()
            ));
        }
        let (time_out, session_id) = (be_i32(b, 4), be_i64(b, 8));
        if time_out <= 0 || session_id == 0 {
            return err(format!(
                "session {id}: {addr} refused the session (timeOut {time_out})"
            ));
        }
        Ok(s)
    }

    /// Reads one length-prefixed frame into `self.frame`, within the request timeout.
    async fn read_frame(&mut self) -> Result<()> {
        let reader = &mut self.reader;
        let frame = &mut self.frame;
        let read = async {
            let len = reader.read_i32().await?;
            if len < 0 || len as usize > MAX_FRAME {
                return err(format!("bad frame length {len}"));
            }
            frame.resize(len as usize, 0);
            reader.read_exact(frame).await?;
            Ok(())
        };
        match tokio::time::timeout(self.request_timeout, read).await {
            Ok(r) => r.map_err(|e| -> BoxError {
                if e.downcast_ref::<std::io::Error>().map(|e| e.kind())
                    == Some(std::io::ErrorKind::UnexpectedEof)
                {
                    "connection closed by the server".into()
                } else {
                    e
                }
            }),
            Err(_) => err(format!("no reply within {:?}", self.request_timeout)),
        }
    }

    /// Reads the next reply's header, skipping watch notifications (xid -1; none are set here).
    async fn read_reply(&mut self) -> Result<ReplyHeader> {
        loop {
            self.read_frame().await?;
            if self.frame.len() < 16 {
                return err(format!("short reply ({} bytes)", self.frame.len()));
            }
            let h = ReplyHeader {
                xid: be_i32(&self.frame, 0),
                zxid: be_i64(&self.frame, 4),
                err: be_i32(&self.frame, 12),
            };
            if h.xid != zk_gateway::proto::xid::NOTIFICATION {
                return Ok(h);
            }
        }
    }

    /// Encodes and writes one request; returns its xid.
    async fn send(&mut self, opcode: i32, req: &Request) -> Result<i32> {
        let xid = self.next_xid;
        self.next_xid = self.next_xid.wrapping_add(1).max(1);
        self.out.clear();
        encode_request(&mut self.out, &RequestHeader { xid, op: opcode }, req);
        self.writer.write_all(&self.out).await?;
        Ok(xid)
    }

    /// One synchronous request; returns the reply's err.
    async fn call(&mut self, opcode: i32, req: &Request) -> Result<i32> {
        let xid = self.send(opcode, req).await?;
        let h = self.read_reply().await?;
        if h.xid != xid {
            return err(format!(
                "session {}: reply xid {} for request xid {xid}",
                self.id, h.xid
            ));
        }
        Ok(h.err)
    }

    /// closeSession, best effort (the run's result does not depend on it).
    async fn close(mut self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            self.call(op::CLOSE_SESSION, &Request::CloseSession),
        )
        .await;
    }
}

/// What one phase does: operation `i` of a phase is `request(i)`.
#[derive(Clone)]
struct Plan {
    kind: OpKind,
    /// `/bench-<run id>`
    parent: String,
    /// Prefix of the created paths (`n` measured creates, `w` warmup creates, `k` set/get nodes).
    create_prefix: char,
    nodes: u64,
    value: Arc<Vec<u8>>,
}

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

impl Plan {
    fn request(&self, i: u64) -> (i32, Request) {
        match self.kind {
            OpKind::Create => (
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
            OpKind::Set => (
                op::SET_DATA,
                Request::SetData(SetDataRequest {
                    path: node_path(&self.parent, i % self.nodes),
                    data: Some(self.value.as_ref().clone()),
                    version: -1,
                }),
            ),
            OpKind::Get => (
                op::GET_DATA,
                Request::GetData {
                    path: node_path(&self.parent, i % self.nodes),
                    watch: false,
                },
            ),
        }
    }
}

/// A MultiResponse body (after the ReplyHeader) of creates: `Some(0)` if every result is a
/// create, `Some(err)` with the first error result's code, `None` if it cannot be read.
/// Each result is `MultiHeader {int type; boolean done; int err}` and, for a create (type 1),
/// `CreateResponse {ustring path}`, for an error (type -1) `ErrorResponse {int err}`; the list
/// ends with a header with done = true.
fn multi_error(mut b: &[u8]) -> Option<i32> {
    for _ in 0..1_000_000 {
        if b.len() < 9 {
            return None;
        }
        let (ty, done) = (be_i32(b, 0), b[4] != 0);
        b = &b[9..];
        if done {
            return Some(0);
        }
        match ty {
            1 => {
                if b.len() < 4 {
                    return None;
                }
                let n = be_i32(b, 0).max(0) as usize;
                b = b.get(4 + n..)?;
            }
            -1 => {
                if b.len() < 4 {
                    return None;
                }
                return Some(be_i32(b, 0));
            }
            _ => return None,
        }
    }
    None
}

fn node_path(parent: &str, k: u64) -> String {
    format!("{parent}/k{k:09}")
}

/// One session's part of a phase.
struct SessionResult {
    hist: Histogram<u64>,
    errors: BTreeMap<i32, u64>,
    done: u64,
}

fn new_hist() -> Histogram<u64> {
    // microseconds, 1 us .. 10 min, 3 significant digits
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

async fn session_loop(
    s: &mut Session,
    plan: &Plan,
    next: &AtomicU64,
    total: u64,
    pipeline: usize,
) -> Result<SessionResult> {
    let mut res = SessionResult {
        hist: new_hist(),
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
        let us = t0.elapsed().as_micros().clamp(1, u64::MAX as u128) as u64;
        if h.xid != xid {
            return err(format!(
                "session {}: reply xid {} where {xid} was expected",
                s.id, h.xid
            ));
        }
        res.hist.saturating_record(us);
        res.done += 1;
        if h.err != 0 {
            *res.errors.entry(h.err).or_default() += 1;
        }
    }
    Ok(res)
}

struct PhaseResult {
    elapsed: Duration,
    hist: Histogram<u64>,
    errors: BTreeMap<i32, u64>,
    done: u64,
}

/// Runs `total` operations of `plan` over all sessions; returns the sessions for the next phase.
async fn run_phase(
    sessions: Vec<Session>,
    plan: &Plan,
    total: u64,
    pipeline: usize,
) -> Result<(Vec<Session>, PhaseResult)> {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sessions.len());
    for mut s in sessions {
        let plan = plan.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let r = session_loop(&mut s, &plan, &next, total, pipeline).await;
            (s, r)
        }));
    }
    let mut out = PhaseResult {
        elapsed: Duration::ZERO,
        hist: new_hist(),
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
                out.hist
                    .add(&r.hist)
                    .map_err(|e| format!("histogram: {e:?}"))?;
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

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

struct Report {
    setup_s: f64,
    /// Error replies during the warmup, by code (they make the exit status 1 too).
    warmup_errors: BTreeMap<i32, u64>,
    result: PhaseResult,
}

async fn run(args: &Args) -> Result<Report> {
    if args.sessions == 0 || args.pipeline == 0 || args.endpoints.is_empty() {
        return err("--sessions, --pipeline and --endpoints must not be zero/empty");
    }
    if args.op != OpKind::Create && args.nodes == 0 {
        return err("--nodes must be at least 1 for set/get");
    }
    let rto = Duration::from_secs(args.request_timeout.max(1));
    let run_id = args.run_id.clone().unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        format!("{}-{}", t.as_millis(), std::process::id())
    });
    let parent = format!("/bench-{run_id}");
    let value: Arc<Vec<u8>> = Arc::new(
        (0..args.value_size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect(),
    );

    let setup_start = Instant::now();
    let mut sessions = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        let addr = &args.endpoints[i % args.endpoints.len()];
        sessions.push(Session::connect(i, addr, args.session_timeout, rto).await?);
    }
    // The parent, then the set/get nodes, from all sessions, untimed.
    let e = sessions[0]
        .call(
            op::CREATE,
            &Request::Create {
                op: op::CREATE,
                req: CreateRequest {
                    path: parent.clone(),
                    data: Some(Vec::new()),
                    acl: open_acl(),
                    flags: 0,
                    ttl: None,
                },
            },
        )
        .await?;
    if e != 0 {
        return err(format!("create {parent}: error {e}"));
    }
    let measured = Plan {
        kind: args.op,
        parent: parent.clone(),
        create_prefix: 'n',
        nodes: args.nodes,
        value: value.clone(),
    };
    if args.op != OpKind::Create {
        // The set/get nodes: from one session, in multis of SETUP_BATCH creates, so that the
        // setup does not depend on how a server handles concurrent creates under one parent.
        let mut k = 0;
        while k < args.nodes {
            let end = (k + SETUP_BATCH).min(args.nodes);
            let ops = (k..end)
                .map(|i| MultiOp::Create {
                    op: op::CREATE,
                    req: CreateRequest {
                        path: node_path(&parent, i),
                        data: Some(value.as_ref().clone()),
                        acl: open_acl(),
                        flags: 0,
                        ttl: None,
                    },
                })
                .collect();
            let e = sessions[0].call(op::MULTI, &Request::Multi(ops)).await?;
            let first = multi_error(&sessions[0].frame[16..]);
            if e != 0 || first != Some(0) {
                return err(format!(
                    "creating nodes {k}..{end} of {parent} (multi): reply err {e}, first op error {first:?}"
                ));
            }
            k = end;
        }
    }
    let mut warmup_errors = BTreeMap::new();
    if args.warmup > 0 {
        let warm = Plan {
            create_prefix: 'w',
            ..measured.clone()
        };
        let (s, r) = run_phase(sessions, &warm, args.warmup, args.pipeline).await?;
        sessions = s;
        warmup_errors = r.errors;
    }
    let setup_s = setup_start.elapsed().as_secs_f64();

    let (sessions, result) = run_phase(sessions, &measured, args.total, args.pipeline).await?;

    for s in sessions {
        s.close().await;
    }
    Ok(Report {
        setup_s,
        warmup_errors,
        result,
    })
}

fn print_report(args: &Args, rep: &Report) {
    let r = &rep.result;
    let secs = r.elapsed.as_secs_f64();
    let throughput = if secs > 0.0 {
        r.done as f64 / secs
    } else {
        0.0
    };
    let nerr: u64 = r.errors.values().sum();
    let ok_throughput = if secs > 0.0 {
        (r.done - nerr) as f64 / secs
    } else {
        0.0
    };
    let h = &r.hist;
    let (p50, p99, p999, max, mean) = if h.is_empty() {
        (0.0, 0.0, 0.0, 0.0, 0.0)
    } else {
        (
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.mean() / 1000.0,
        )
    };
    if args.json {
        let by_code = |m: &BTreeMap<i32, u64>| -> serde_json::Map<String, serde_json::Value> {
            m.iter()
                .map(|(c, n)| (c.to_string(), (*n).into()))
                .collect()
        };
        let v = serde_json::json!({
            "op": args.op.name(),
            "endpoints": args.endpoints,
            "sessions": args.sessions,
            "pipeline": args.pipeline,
            "value_size": args.value_size,
            "nodes": if args.op == OpKind::Create { serde_json::Value::Null } else { args.nodes.into() },
            "warmup": args.warmup,
            "total": args.total,
            "completed": r.done,
            "errors": nerr,
            "error_codes": by_code(&r.errors),
            "warmup_errors": rep.warmup_errors.values().sum::<u64>(),
            "warmup_error_codes": by_code(&rep.warmup_errors),
            "setup_s": round3(rep.setup_s),
            "elapsed_s": round3(secs),
            "throughput": round3(throughput),
            "ok_throughput": round3(ok_throughput),
            "latency_ms": {
                "mean": round3(mean), "p50": round3(p50), "p99": round3(p99),
                "p999": round3(p999), "max": round3(max),
            },
        });
        println!("{v}");
    } else {
        println!(
            "op {} | {} sessions x pipeline {} | value {} B | {} ops in {:.3} s (setup {:.3} s)",
            args.op.name(),
            args.sessions,
            args.pipeline,
            args.value_size,
            r.done,
            secs,
            rep.setup_s
        );
        println!("throughput: {throughput:.1} ops/s ({ok_throughput:.1} ops/s with err 0)");
        println!(
            "latency ms: mean {mean:.3}  p50 {p50:.3}  p99 {p99:.3}  p99.9 {p999:.3}  max {max:.3}"
        );
        if nerr == 0 {
            println!("errors: 0");
        } else {
            println!("errors: {nerr} (by code: {:?})", r.errors);
        }
        if !rep.warmup_errors.is_empty() {
            println!("warmup errors (by code): {:?}", rep.warmup_errors);
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn main() {
    let args = Args::parse();
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let overall = Duration::from_secs(args.timeout.max(1));
    let outcome = rt.block_on(async { tokio::time::timeout(overall, run(&args)).await });
    let code = match outcome {
        Ok(Ok(rep)) => {
            print_report(&args, &rep);
            if rep.result.errors.is_empty() && rep.warmup_errors.is_empty() {
                0
            } else {
                1
            }
        }
        Ok(Err(e)) => {
            eprintln!("zk-bench: {e}");
            2
        }
        Err(_) => {
            eprintln!(
                "zk-bench: the run did not finish within {} s (--timeout)",
                args.timeout
            );
            2
        }
    };
    // Do not wait for spawned tasks of a failed run.
    rt.shutdown_timeout(Duration::from_millis(100));
    std::process::exit(code);
}
