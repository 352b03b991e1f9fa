//! `synod-bench zk <scenario>`: a ZooKeeper-protocol load generator (the former `zk-bench`), to
//! compare servers (ZooKeeper itself, Synod's embedded gateway) on the same workload.
//!
//! Every session is one TCP connection with its own ZooKeeper session (ConnectRequest with a
//! `--session-timeout`). In create/set/get a session keeps `--pipeline` requests outstanding
//! (1 = a synchronous client: send, wait for the reply, send the next); the sessions share one
//! counter of `--total` operations, so a faster session does more of them, as the clients of
//! etcd's benchmark tool do.
//!
//! - create: `--total` distinct persistent znodes `/bench-<run id>/n<i>` of `--value-size`
//!   bytes; the parent is created first, untimed.
//! - set / get: setData (version -1) / getData (no watch) over `--nodes` znodes
//!   `/bench-<run id>/k<i>` (operation i on node i mod nodes), created first, untimed, by one
//!   session in multis of 25 creates.
//! - watch: `--watchers` sessions keep a data watch on one znode, one writer session changes
//!   it `--total` times, each change only once every watcher has its event and is armed again
//!   (see [`watch`]); `--sessions`, `--pipeline` and `--nodes` do not apply.
//!
//! `--warmup N` first runs N untimed operations of the same kind (creates go to other paths;
//! watch: N untimed changes). Every reply's xid must be the one expected and its err 0: a
//! non-zero err is counted by code. Throughput counts the replies with err 0 (watch: events)
//! per second, from the first request to the last reply (event); latency is per request,
//! request written to reply read (watch: setData reply to event).
//!
//! This module owns the subcommand's command line, the session setup, the overall timeout and
//! the exit status: 0 if every reply had err 0 (warmup included), 1 if some had not (still
//! reported; warmup errors separately), 2 if the run could not be completed (connection
//! refused or lost, a malformed or unexpected reply, a reply not in `--request-timeout`, or
//! the whole run not in `--timeout`). It must never count a run as complete that was not.

mod load;
mod session;
mod watch;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use serde_json::{Map, Value};

use self::load::{create_nodes, run_phase, Plan};
use self::session::Session;
use crate::latency::{round3, round6, Recorder};
use crate::output::Sink;
use crate::progress::Progress;
use crate::record::RunRecord;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

fn err<T>(msg: impl Into<String>) -> Result<T> {
    Err(msg.into().into())
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Distinct persistent znodes under one parent.
    Create,
    /// setData (version -1) over --nodes znodes.
    Set,
    /// getData (no watch) over --nodes znodes.
    Get,
    /// --watchers sessions watch one znode, one writer changes it --total times.
    Watch,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Create => "create",
            Scenario::Set => "set",
            Scenario::Get => "get",
            Scenario::Watch => "watch",
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct ZkArgs {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Servers, host:port, comma-separated; sessions are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2181")]
    pub endpoints: Vec<String>,
    /// Concurrent sessions, one TCP connection each (create/set/get).
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,
    /// Operations to measure, over all sessions (watch: setData calls).
    #[arg(long, default_value_t = 20000)]
    pub total: u64,
    /// Bytes of data per create/set (and so per get).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Requests outstanding per session (1: synchronous; create/set/get).
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// set/get: znodes created first and operated on round-robin.
    #[arg(long, default_value_t = 1000)]
    pub nodes: u64,
    /// Untimed operations of the same kind before the measured ones.
    #[arg(long, default_value_t = 0)]
    pub warmup: u64,
    /// Session timeout asked for in the ConnectRequest (ms).
    #[arg(long, default_value_t = 30000)]
    pub session_timeout: i32,
    /// Seconds to wait for any one reply (or the handshake, or watch: a change's events).
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds the whole run (connect, setup, warmup, measurement) may take.
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Run id used in the parent's name `/bench-<id>` (default: from the clock and pid).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Worker threads of the client's runtime (1: a single-threaded client).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the run's record (JSON) to this file; `-`: to stdout (the summary then goes to
    /// stderr).
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,
    /// No progress bar (there is none either when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Sessions watching the znode (plus one writer session).
    #[arg(long, help_heading = "watch", default_value_t = 16)]
    pub watchers: usize,
}

/// A finished run: its record, the scenario's summary lines, and whether any reply (warmup
/// included) carried an error.
struct Outcome {
    record: RunRecord,
    extra: Vec<String>,
    any_errors: bool,
}

pub fn main(args: ZkArgs) -> i32 {
    let rt = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("synod-bench zk: cannot start the runtime: {e}");
            return 2;
        }
    };
    let (what, units) = match args.scenario {
        Scenario::Watch => ("events", args.total.saturating_mul(args.watchers as u64)),
        _ => ("ops", args.total),
    };
    let progress = Progress::new(what, units, args.quiet);
    progress.note("setup");
    let overall = Duration::from_secs(args.timeout.max(1));
    let outcome = rt.block_on(async { tokio::time::timeout(overall, run(&args, &progress)).await });
    // Before finish(), which moves the bar to its end.
    let done = progress.done();
    progress.finish();
    let code = match outcome {
        Ok(Ok(o)) => match Sink::new(args.json.as_deref()).emit(&o.record, &o.extra) {
            Ok(()) if o.any_errors => 1,
            Ok(()) => 0,
            Err(e) => {
                eprintln!("synod-bench zk: {e}");
                2
            }
        },
        Ok(Err(e)) => {
            eprintln!("synod-bench zk: {e}");
            2
        }
        Err(_) => {
            eprintln!(
                "synod-bench zk: the run did not finish within {} s (--timeout): {} of {} {what} done",
                args.timeout,
                done, units
            );
            2
        }
    };
    // Do not wait for spawned tasks of a failed run.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn run(args: &ZkArgs, progress: &Progress) -> Result<Outcome> {
    let watch = args.scenario == Scenario::Watch;
    if args.endpoints.is_empty() || args.total == 0 {
        return err("--endpoints must not be empty and --total must be at least 1");
    }
    if watch && args.watchers == 0 {
        return err("--watchers must be at least 1");
    }
    if !watch && (args.sessions == 0 || args.pipeline == 0) {
        return err("--sessions and --pipeline must be at least 1");
    }
    if matches!(args.scenario, Scenario::Set | Scenario::Get) && args.nodes == 0 {
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
    // watch: the writer is session 0, the watchers 1..=watchers.
    let n_sessions = if watch {
        args.watchers + 1
    } else {
        args.sessions
    };
    let mut sessions = Vec::with_capacity(n_sessions);
    for i in 0..n_sessions {
        let addr = &args.endpoints[i % args.endpoints.len()];
        sessions.push(Session::connect(i, addr, args.session_timeout, rto).await?);
    }
    load::create_node(&mut sessions[0], &parent, Vec::new()).await?;

    if watch {
        let watchers = sessions.split_off(1);
        let Some(writer) = sessions.pop() else {
            return err("no writer session");
        };
        let setup_secs = setup_start.elapsed().as_secs_f64();
        let r = watch::run(
            writer,
            watchers,
            &parent,
            &value,
            args.warmup,
            args.total,
            progress,
        )
        .await?;
        return Ok(watch_outcome(args, &r, setup_secs));
    }

    let measured = Plan {
        kind: args.scenario,
        parent: parent.clone(),
        create_prefix: 'n',
        nodes: args.nodes,
        value: value.clone(),
    };
    if args.scenario != Scenario::Create {
        create_nodes(&mut sessions[0], &parent, args.nodes, &value).await?;
    }
    let mut warmup_errors = BTreeMap::new();
    if args.warmup > 0 {
        progress.note("warmup");
        let warm = Plan {
            create_prefix: 'w',
            ..measured.clone()
        };
        let hidden = Progress::new("ops", args.warmup, true);
        let (s, r) = run_phase(sessions, &warm, args.warmup, args.pipeline, &hidden).await?;
        sessions = s;
        warmup_errors = r.errors;
    }
    let setup_secs = setup_start.elapsed().as_secs_f64();

    progress.start("");
    let (sessions, r) = run_phase(sessions, &measured, args.total, args.pipeline, progress).await?;
    for s in sessions {
        s.close().await;
    }

    let secs = r.elapsed.as_secs_f64();
    let nerr: u64 = r.errors.values().sum();
    let ok = r.done - nerr;
    let per_sec = |n: u64| {
        if secs > 0.0 {
            round3(n as f64 / secs)
        } else {
            0.0
        }
    };
    let mut p = common_params(args, &r.errors, &warmup_errors, setup_secs);
    p.insert("pipeline".into(), args.pipeline.into());
    let nodes = if args.scenario == Scenario::Create {
        Value::Null
    } else {
        args.nodes.into()
    };
    p.insert("nodes".into(), nodes);
    p.insert("completed".into(), r.done.into());
    p.insert("throughput_all_replies".into(), per_sec(r.done).into());
    let record = RunRecord {
        tool: "synod-bench".into(),
        protocol: "zk".into(),
        scenario: args.scenario.name().into(),
        endpoint: args.endpoints.join(","),
        clients: args.sessions as u32,
        conns: args.sessions as u32,
        total: args.total,
        ok,
        errors: nerr,
        elapsed_secs: round6(secs),
        throughput: per_sec(ok),
        unit: "req/s".into(),
        latency_ms: r.hist.summary(),
        params: p,
    };
    let mut extra = vec![format!(
        "{} sessions x pipeline {} | value {} B | setup {:.3} s | {:.1} ops/s counting error replies too",
        args.sessions,
        args.pipeline,
        args.value_size,
        setup_secs,
        per_sec(r.done)
    )];
    if !warmup_errors.is_empty() {
        extra.push(format!("warmup errors (by code): {warmup_errors:?}"));
    }
    Ok(Outcome {
        record,
        extra,
        any_errors: nerr > 0 || !warmup_errors.is_empty(),
    })
}

fn by_code(m: &BTreeMap<i32, u64>) -> Value {
    m.iter()
        .map(|(c, n)| (c.to_string(), Value::from(*n)))
        .collect::<Map<_, _>>()
        .into()
}

fn common_params(
    args: &ZkArgs,
    errors: &BTreeMap<i32, u64>,
    warmup_errors: &BTreeMap<i32, u64>,
    setup_secs: f64,
) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("value_size".into(), args.value_size.into());
    p.insert("warmup".into(), args.warmup.into());
    p.insert("errors_by_code".into(), by_code(errors));
    p.insert(
        "warmup_errors".into(),
        warmup_errors.values().sum::<u64>().into(),
    );
    p.insert("warmup_errors_by_code".into(), by_code(warmup_errors));
    p.insert("setup_secs".into(), round3(setup_secs).into());
    p.insert("session_timeout_ms".into(), args.session_timeout.into());
    p.insert("request_timeout_secs".into(), args.request_timeout.into());
    p
}

fn latency_json(r: &Recorder) -> Value {
    r.summary()
        .and_then(|l| serde_json::to_value(l).ok())
        .unwrap_or(Value::Null)
}

fn watch_outcome(args: &ZkArgs, r: &watch::WatchResult, setup_secs: f64) -> Outcome {
    let secs = r.elapsed.as_secs_f64();
    let nerr: u64 = r.errors.values().sum();
    let sessions = (args.watchers + 1) as u32;
    let mut p = common_params(args, &r.errors, &r.warmup_errors, setup_secs);
    p.insert("watchers".into(), args.watchers.into());
    p.insert("sets".into(), args.total.into());
    p.insert("changes".into(), r.changes.into());
    p.insert(
        "latency".into(),
        "from the setData reply at the writer to the event's arrival at a watcher (0 if the event came first)".into(),
    );
    p.insert(
        "set_request_to_event_ms".into(),
        latency_json(&r.from_request),
    );
    let record = RunRecord {
        tool: "synod-bench".into(),
        protocol: "zk".into(),
        scenario: "watch".into(),
        endpoint: args.endpoints.join(","),
        clients: sessions,
        conns: sessions,
        total: args.total.saturating_mul(args.watchers as u64),
        ok: r.events,
        errors: nerr,
        elapsed_secs: round6(secs),
        throughput: if secs > 0.0 {
            round3(r.events as f64 / secs)
        } else {
            0.0
        },
        unit: "events/s".into(),
        latency_ms: r.latency.summary(),
        params: p,
    };
    let mut extra = vec![format!(
        "{} watchers + 1 writer | {} changes of {} B | setup {:.3} s",
        args.watchers, r.changes, args.value_size, setup_secs
    )];
    extra.push("latency: from the setData reply to the event's arrival at each watcher".into());
    if let Some(l) = r.from_request.summary() {
        extra.push(format!(
            "setData request to event, ms: p50 {:.3}  p99 {:.3}  max {:.3}",
            l.p50, l.p99, l.max
        ));
    }
    if !r.warmup_errors.is_empty() {
        extra.push(format!("warmup errors (by code): {:?}", r.warmup_errors));
    }
    Outcome {
        record,
        extra,
        any_errors: nerr > 0 || !r.warmup_errors.is_empty(),
    }
}
