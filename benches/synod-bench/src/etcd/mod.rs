//! `synod-bench etcd <scenario>`: one run of an etcd v3 scenario against any etcd v3 server
//! (Synod or upstream etcd), with etcd's benchmark tool's model of load: `--clients`
//! concurrent clients, each with one request outstanding, spread round-robin over `--conns`
//! gRPC connections, sharing one counter of `--total` requests.
//!
//! This module owns the subcommand's command line and its validation, the run's overall
//! timeout and exit status, and the [`RunRecord`] of a run; the scenarios live in [`kv`] (put,
//! range, txn-put), [`lease`] and [`watch`], the request loop in [`load`]. It must never hide
//! or retry a failed request: a gRPC error is counted by code and the run goes on (exit status
//! 1); only a run that cannot complete (no connection, a failed setup, `--timeout`) is fatal
//! (exit status 2).

mod conn;
mod keys;
mod kv;
mod lease;
mod load;
mod watch;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::ValueEnum;
use serde_json::{Map, Value};
use synod_proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;

use self::keys::KeySpace;
use self::load::{ErrorTally, LoadResult};
use crate::latency::{round3, round6};
use crate::output::Sink;
use crate::progress::Progress;
use crate::record::RunRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Put a key of the key space (random, or sequential with --sequential-keys).
    Put,
    /// Range over --key [--end | --prefix] (one key by default).
    Range,
    /// A Txn with no compares and one put in success.
    TxnPut,
    /// --watchers watchers on the key space, then --total puts; events/s and put-to-event latency.
    Watch,
    /// A keep-alive on each client's own lease and LeaseKeepAlive stream.
    LeaseKeepalive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

#[derive(clap::Args, Debug)]
pub struct EtcdArgs {
    /// The scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// The servers' client URLs, comma-separated (host:port means http://host:port);
    /// connections are spread over them round-robin.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Concurrent clients, each with one request outstanding.
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// gRPC connections (one HTTP/2 connection each); the clients share them round-robin.
    #[arg(long, default_value_t = 10)]
    pub conns: u32,
    /// Requests in all, shared by the clients (a faster client does more). watch: puts.
    #[arg(long, default_value_t = 10000)]
    pub total: u64,
    /// Bytes per key: key i is the decimal i zero-padded to this length.
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Keys 0 .. key-space - 1 are used.
    #[arg(long, default_value_t = 1)]
    pub key_space: u64,
    /// Request n writes key n mod key-space (default: a key picked uniformly at random).
    #[arg(long)]
    pub sequential_keys: bool,
    /// Write the run's record (JSON) to this file; `-`: to stdout (the summary then goes to
    /// stderr).
    #[arg(long, value_name = "PATH")]
    pub json: Option<String>,
    /// No progress bar (there is none either when stderr is not a terminal).
    #[arg(long)]
    pub quiet: bool,
    /// Seconds the whole run may take (connect, setup, requests); beyond: exit status 2.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub timeout: u64,

    /// The key to range over (default: key 0).
    #[arg(long, help_heading = "range")]
    pub key: Option<String>,
    /// The range's end (exclusive).
    #[arg(long, help_heading = "range", conflicts_with = "prefix")]
    pub end: Option<String>,
    /// Range over every key with --key as prefix.
    #[arg(long, help_heading = "range")]
    pub prefix: bool,
    /// At most this many kvs per range (0: no limit).
    #[arg(long, help_heading = "range", default_value_t = 0)]
    pub limit: i64,
    /// l: linearizable, s: serializable.
    #[arg(long, help_heading = "range", value_enum, default_value = "l")]
    pub consistency: Consistency,

    /// Watchers, all on the whole key space.
    #[arg(long, help_heading = "watch", default_value_t = 1000)]
    pub watchers: u32,
    /// Watch streams the watchers are spread over (streams are spread over the connections).
    #[arg(long, help_heading = "watch", default_value_t = 10)]
    pub streams: u32,
}

/// The validated settings of a run.
struct Config<'a> {
    args: &'a EtcdArgs,
    endpoints: Vec<String>,
    keys: KeySpace,
    value: Vec<u8>,
}

impl<'a> Config<'a> {
    fn new(args: &'a EtcdArgs) -> Result<Config<'a>, String> {
        if args.clients == 0 || args.conns == 0 || args.total == 0 {
            return Err("--clients, --conns and --total must be at least 1".into());
        }
        if args.scenario == Scenario::Watch {
            if args.watchers == 0 || args.streams == 0 {
                return Err("--watchers and --streams must be at least 1".into());
            }
            if args.streams > args.watchers {
                return Err(format!(
                    "--streams {} is more than --watchers {}: a stream without watchers measures nothing",
                    args.streams, args.watchers
                ));
            }
        }
        if args.limit < 0 {
            return Err("--limit must not be negative".into());
        }
        let endpoints = args
            .endpoints
            .iter()
            .map(|e| conn::normalize(e))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err("--endpoints is empty".into());
        }
        let keys = KeySpace::new(args.key_size, args.key_space)?;
        // Any bytes would do; printable ones keep a server's debug output readable.
        let value = (0..args.val_size).map(|i| b'a' + (i % 26) as u8).collect();
        Ok(Config {
            args,
            endpoints,
            keys,
            value,
        })
    }

    fn scenario_name(&self) -> &'static str {
        match self.args.scenario {
            Scenario::Put => "put",
            Scenario::Range => match self.args.consistency {
                Consistency::L => "range-linearizable",
                Consistency::S => "range-serializable",
            },
            Scenario::TxnPut => "txn-put",
            Scenario::Watch => "watch",
            Scenario::LeaseKeepalive => "lease-keepalive",
        }
    }

    /// The range request of the range scenario.
    fn range_request(&self) -> RangeRequest {
        let a = self.args;
        let key = match &a.key {
            Some(k) => k.clone().into_bytes(),
            None => self.keys.key(0),
        };
        let range_end = if a.prefix {
            keys::prefix_end(&key)
        } else {
            a.end.clone().map(String::into_bytes).unwrap_or_default()
        };
        RangeRequest {
            key,
            range_end,
            limit: a.limit,
            serializable: a.consistency == Consistency::S,
            ..Default::default()
        }
    }

    /// The record of a run, with the parameters every scenario has; the scenario adds its own.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        total: u64,
        ok: u64,
        errors: &ErrorTally,
        elapsed: Duration,
        unit: &str,
        latency: &crate::latency::Recorder,
        extra: Map<String, Value>,
    ) -> RunRecord {
        let a = self.args;
        let secs = elapsed.as_secs_f64();
        let mut params = Map::new();
        params.insert("key_size".into(), a.key_size.into());
        params.insert("val_size".into(), a.val_size.into());
        params.insert("key_space".into(), a.key_space.into());
        params.insert("sequential_keys".into(), a.sequential_keys.into());
        params.insert("errors_by_code".into(), errors.counts_json());
        params.insert(
            "request_timeout_secs".into(),
            load::REQUEST_TIMEOUT.as_secs().into(),
        );
        params.extend(extra);
        RunRecord {
            tool: "synod-bench".into(),
            protocol: "etcd".into(),
            scenario: self.scenario_name().into(),
            endpoint: self.endpoints.join(","),
            clients: a.clients,
            conns: a.conns,
            total,
            ok,
            errors: errors.total(),
            elapsed_secs: round6(secs),
            throughput: if secs > 0.0 {
                round3(ok as f64 / secs)
            } else {
                0.0
            },
            unit: unit.into(),
            latency_ms: latency.summary(),
            params,
        }
    }
}

/// A finished run: its record and the summary lines only the scenario knows.
struct Report {
    record: RunRecord,
    extra: Vec<String>,
}

pub fn main(args: EtcdArgs) -> i32 {
    let cfg = match Config::new(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("synod-bench etcd: {e}");
            return 2;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("synod-bench etcd: cannot start the runtime: {e}");
            return 2;
        }
    };
    let (what, units) = match args.scenario {
        Scenario::Watch => (
            "events",
            args.total.saturating_mul(u64::from(args.watchers)),
        ),
        _ => ("requests", args.total),
    };
    let progress = Progress::new(what, units, args.quiet);
    progress.note("connecting");
    let limit = Duration::from_secs(args.timeout.max(1));
    // The timer must be made inside the runtime.
    let outcome = rt.block_on(async { tokio::time::timeout(limit, run(&cfg, &progress)).await });
    // Before finish(), which moves the bar to its end.
    let done = progress.done();
    progress.finish();
    let code = match outcome {
        Ok(Ok(rep)) => match Sink::new(args.json.as_deref()).emit(&rep.record, &rep.extra) {
            Ok(()) if rep.record.errors == 0 => 0,
            Ok(()) => 1,
            Err(e) => {
                eprintln!("synod-bench etcd: {e}");
                2
            }
        },
        Ok(Err(e)) => {
            eprintln!("synod-bench etcd: {e}");
            2
        }
        Err(_) => {
            eprintln!(
                "synod-bench etcd: the run did not finish within {} s (--timeout): {} of {} {what} done",
                args.timeout,
                done, units
            );
            2
        }
    };
    // Do not wait for the tasks of an unfinished run.
    rt.shutdown_timeout(Duration::from_millis(100));
    code
}

async fn run(cfg: &Config<'_>, progress: &Progress) -> Result<Report, String> {
    let a = cfg.args;
    let channels = conn::connect(&cfg.endpoints, a.conns).await?;
    match a.scenario {
        Scenario::Put | Scenario::TxnPut | Scenario::Range => {
            run_kv(cfg, &channels, progress).await
        }
        Scenario::LeaseKeepalive => run_lease(cfg, &channels, progress).await,
        Scenario::Watch => run_watch(cfg, &channels, progress).await,
    }
}

fn channel_of(channels: &[Channel], client: usize) -> Channel {
    channels[client % channels.len()].clone()
}

async fn run_kv(
    cfg: &Config<'_>,
    channels: &[Channel],
    progress: &Progress,
) -> Result<Report, String> {
    let a = cfg.args;
    let op = match a.scenario {
        Scenario::Put => kv::KvOp::Put,
        Scenario::TxnPut => kv::KvOp::TxnPut,
        _ => kv::KvOp::Range(cfg.range_request()),
    };
    let shared = Arc::new(kv::Shared {
        op,
        keys: cfg.keys,
        sequential: a.sequential_keys,
        value: cfg.value.clone(),
        first_kvs: OnceLock::new(),
        put_times: None,
    });
    let workers = (0..a.clients as usize)
        .map(|c| kv::KvWorker::new(channel_of(channels, c), shared.clone()))
        .collect();
    progress.start("");
    let (r, _) = load::drive(workers, a.total, progress).await?;
    let mut extra = Map::new();
    let mut lines = r.errors.lines();
    if let kv::KvOp::Range(req) = &shared.op {
        let show = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        extra.insert("key".into(), show(&req.key).into());
        extra.insert("range_end".into(), show(&req.range_end).into());
        extra.insert("limit".into(), req.limit.into());
        extra.insert(
            "consistency".into(),
            if req.serializable { "s" } else { "l" }.into(),
        );
        let kvs = shared.first_kvs.get().copied();
        extra.insert("kvs_per_range".into(), kvs.map_or(Value::Null, Value::from));
        lines.push(match kvs {
            Some(n) => format!("kvs per range (first response): {n}"),
            None => "kvs per range: no successful response".into(),
        });
    }
    Ok(kv_report(cfg, r, extra, lines))
}

fn kv_report(
    cfg: &Config<'_>,
    r: LoadResult,
    extra: Map<String, Value>,
    lines: Vec<String>,
) -> Report {
    let record = cfg.record(
        cfg.args.total,
        r.ok,
        &r.errors,
        r.elapsed,
        "req/s",
        &r.latency,
        extra,
    );
    Report {
        record,
        extra: lines,
    }
}

async fn run_lease(
    cfg: &Config<'_>,
    channels: &[Channel],
    progress: &Progress,
) -> Result<Report, String> {
    let a = cfg.args;
    progress.note("granting leases");
    let setups =
        (0..a.clients as usize).map(|c| lease::LeaseWorker::setup(channel_of(channels, c)));
    let workers = futures::future::try_join_all(setups).await?;
    progress.start("");
    let (r, workers) = load::drive(workers, a.total, progress).await?;
    progress.note("revoking leases");
    futures::future::join_all(workers.into_iter().map(lease::LeaseWorker::revoke)).await;
    let mut extra = Map::new();
    extra.insert("lease_ttl".into(), lease::LEASE_TTL.into());
    let lines = r.errors.lines();
    Ok(kv_report(cfg, r, extra, lines))
}

async fn run_watch(
    cfg: &Config<'_>,
    channels: &[Channel],
    progress: &Progress,
) -> Result<Report, String> {
    let a = cfg.args;
    let plan = watch::WatchPlan {
        keys: cfg.keys,
        sequential: a.sequential_keys,
        value: cfg.value.clone(),
        clients: a.clients,
        total: a.total,
        watchers: a.watchers,
        streams: a.streams,
    };
    let r = watch::run(&plan, channels, progress).await?;
    let params = watch::params(&r, &plan);
    let mut lines = vec![format!(
        "watchers: {} over {} streams, created in {:.3} s; puts: {} ok of {} ({:.1} req/s); \
         events not from the run's puts: {}",
        plan.watchers,
        plan.streams,
        r.create_secs,
        r.puts.ok,
        plan.total,
        if r.puts.elapsed.as_secs_f64() > 0.0 {
            r.puts.ok as f64 / r.puts.elapsed.as_secs_f64()
        } else {
            0.0
        },
        r.unmatched
    )];
    lines.push("latency: from a put's response at its client to the event's arrival".into());
    lines.extend(r.puts.errors.lines());
    let expected = a.total.saturating_mul(u64::from(a.watchers));
    let record = cfg.record(
        expected,
        r.events,
        &r.puts.errors,
        r.elapsed,
        "events/s",
        &r.event_latency,
        params,
    );
    Ok(Report {
        record,
        extra: lines,
    })
}
