//! `synod-bench compare`: upstream etcd 3.4, ZooKeeper 3.8 and Synod on loopback, every scenario
//! against each, alternating (the first server swaps every round), a fresh server per run; every
//! result appended to `runs.jsonl`, then `results.md` and `chart.svg` (see `report`).
//!
//! This module owns the command line and the order of the runs. The parts: `servers` (starting
//! and stopping), `procs` (child processes, clean-up on signals), `referee` (etcd's benchmark
//! tool), `loadgen` (synod-bench's own load runs), `runs`, `resources`, `growth` (one scenario
//! run each), `scenarios` (names and load), `grpc`, `machine`. Nothing here tunes a server to a
//! tool, and nothing judges a timing: the report compares, and `--smoke` checks only that every
//! run completed with valid records.

mod cpu;
mod growth;
mod grpc;
mod loadgen;
mod machine;
mod procs;
mod referee;
mod resources;
mod runs;
mod scenarios;
mod servers;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use crate::report::lines::{Failure, Line};
use grpc::Grpc;
use scenarios::{Kind, Sizes};
use servers::{Bins, Flavor};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Scenarios (default: all): put put-1client put-3member range-linearizable
    /// range-serializable txn-put watch lease-keepalive zk-create zk-set zk-get resources growth;
    /// or the groups all, etcd (the eight etcd-benchmark scenarios), zk.
    pub scenarios: Vec<String>,
    /// Runs per server and scenario (default 3; 1 with --smoke).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// Tiny totals, 1 round: checks that every scenario runs against every server and yields
    /// valid records (never any timing). The report goes to the temp dir unless --out-dir.
    #[arg(long)]
    pub smoke: bool,
    /// Multiply every request total by this (keys loaded and store sizes excepted).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// resources: distinct keys loaded (default 1000000; 2000 with --smoke).
    #[arg(long)]
    pub keys: Option<u64>,
    /// growth: store sizes, comma-separated (default 10000,100000,1000000).
    #[arg(long, value_delimiter = ',')]
    pub growth_sizes: Option<Vec<u64>>,
    /// Seconds one tool run may take (default 900; 120 with --smoke).
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Where runs.jsonl, results.md and chart.svg go (default benches/results/latest, relative
    /// to the current directory; with --smoke a directory in the temp dir).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Keep the temp dir (data dirs, server logs, tool outputs, and the runs.jsonl of an
    /// interrupted comparison); it is always kept on a failure.
    #[arg(long)]
    pub keep: bool,
    /// The synod binary (default $SYNOD_BIN, else `synod` next to this executable). It is
    /// copied into the temp dir first, so a rebuild cannot swap it mid-comparison.
    #[arg(long)]
    pub synod_bin: Option<PathBuf>,
    /// etcd 3.4 (default $ETCD_BIN, else /usr/bin/etcd).
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// etcd's benchmark tool (default $BENCHMARK_BIN, else ${SYNOD_CACHE:-~/.cache/synod}/benchmark).
    #[arg(long)]
    pub benchmark_bin: Option<PathBuf>,
}

/// What every scenario run needs.
pub(crate) struct Ctx {
    pub bins: Bins,
    pub benchmark: PathBuf,
    pub grpc: Grpc,
    pub work: PathBuf,
    pub sizes: Sizes,
    pub lines: Vec<Line>,
    jsonl: File,
    started: Instant,
}

impl Ctx {
    /// Records a line (runs.jsonl is written as it goes) and says what it was.
    pub fn push(&mut self, line: Line) {
        match serde_json::to_string(&line) {
            Ok(json) => {
                if let Err(e) = writeln!(self.jsonl, "{json}").and_then(|_| self.jsonl.flush()) {
                    eprintln!("synod-bench compare: warning: cannot append to runs.jsonl: {e}");
                }
            }
            Err(e) => eprintln!("synod-bench compare: warning: cannot encode a line: {e}"),
        }
        if let Some(text) = describe(&line) {
            self.say(&text);
        }
        self.lines.push(line);
    }

    pub fn say(&self, text: &str) {
        eprintln!("[{:>5}s] {text}", self.started.elapsed().as_secs());
    }

    /// A new directory for one run.
    pub fn run_dir(&self, scenario: &str, flavor: Flavor, round: u32) -> Result<PathBuf, String> {
        let dir = self
            .work
            .join(format!("{scenario}-{}-{round}", flavor.name()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(dir)
    }
}

/// Flushes dirty pages left by the previous run, so that their write-back does not land in the
/// next run (etcd's bbolt leaves many to the kernel).
pub(crate) fn sync_disks() {
    let _ = std::process::Command::new("sync").status();
}

pub fn main(args: CompareArgs) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("synod-bench compare: ERROR: {e}");
            2
        }
    }
}

fn run(args: CompareArgs) -> Result<i32, String> {
    let chosen = scenarios::select(&args.scenarios)?;
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err("--scale must be a positive number".into());
    }
    let rounds = args.rounds.unwrap_or(if args.smoke { 1 } else { 3 }).max(1);
    let sizes = Sizes::new(
        args.smoke,
        args.scale,
        args.keys,
        args.growth_sizes.clone(),
        args.timeout,
    );
    let kinds: Vec<(&str, Kind)> = chosen
        .iter()
        .filter_map(|s| Kind::of(s, &sizes).map(|k| (*s, k)))
        .collect();
    let tools = Tools::find(
        &args,
        kinds.iter().any(|(_, k)| k.uses_zookeeper()),
        kinds.iter().any(|(_, k)| k.uses_benchmark()),
    )?;

    let work = procs::temp_dir("synod-compare")?;
    procs::set_work_dir(&work, args.keep);
    procs::clean_up_on_signals();
    let synod = work.join("synod");
    std::fs::copy(&tools.synod, &synod).map_err(|e| {
        format!(
            "cannot copy {} to {}: {e}",
            tools.synod.display(),
            synod.display()
        )
    })?;
    let out_dir = match (&args.out_dir, args.smoke) {
        (Some(d), _) => d.clone(),
        (None, true) => work.join("results"),
        (None, false) => PathBuf::from("benches/results/latest"),
    };
    // runs.jsonl grows in the work dir and lands in the out dir at the end, so an interrupted
    // comparison leaves the previous results alone (--keep keeps the partial runs.jsonl).
    let jsonl_path = work.join("runs.jsonl");
    let jsonl = File::create(&jsonl_path)
        .map_err(|e| format!("cannot create {}: {e}", jsonl_path.display()))?;

    let command = format!(
        "synod-bench compare {}",
        std::env::args().skip(2).collect::<Vec<_>>().join(" ")
    );
    let machine = machine::collect(&machine::Inputs {
        etcd: &tools.etcd,
        benchmark: &tools.benchmark,
        synod: &tools.synod,
        rounds,
        smoke: args.smoke,
        command: command.trim_end().to_string(),
    });
    let mut ctx = Ctx {
        bins: Bins {
            etcd: tools.etcd.clone(),
            synod,
            java: tools.java.clone(),
            zk_classpath: tools.zk_classpath.clone(),
        },
        benchmark: tools.benchmark.clone(),
        grpc: Grpc::new()?,
        work: work.clone(),
        sizes,
        lines: Vec::new(),
        jsonl,
        started: Instant::now(),
    };
    ctx.say(&format!(
        "comparing {} scenario(s), {rounds} round(s){}; work dir {}; results in {}",
        kinds.len(),
        if args.smoke { ", smoke" } else { "" },
        work.display(),
        out_dir.display()
    ));
    ctx.push(Line::Machine(machine));

    for (scenario, kind) in &kinds {
        run_scenario(&mut ctx, scenario, kind, rounds);
    }

    report_and_finish(
        &ctx,
        &out_dir,
        &work,
        args.keep,
        args.smoke && args.out_dir.is_none(),
    )
}

/// Every round of one scenario; a failed run skips the scenario's remaining rounds.
fn run_scenario(ctx: &mut Ctx, scenario: &str, kind: &Kind, rounds: u32) {
    let upstream = if kind.uses_zookeeper() {
        Flavor::ZooKeeper
    } else {
        Flavor::Etcd
    };
    for round in 1..=rounds {
        let order = if round % 2 == 1 {
            [upstream, Flavor::Synod]
        } else {
            [Flavor::Synod, upstream]
        };
        for flavor in order {
            ctx.say(&format!(
                "{scenario}: {} round {round}/{rounds} ...",
                flavor.name()
            ));
            let result = match kind {
                Kind::Referee(r, members) => {
                    runs::referee(ctx, scenario, r, *members, flavor, round)
                }
                Kind::Zk(op) => runs::zk(ctx, scenario, op, flavor, round),
                Kind::Resources => resources::run(ctx, flavor, round),
                Kind::Growth => growth::run(ctx, flavor, round),
            };
            if let Err(reason) = result {
                procs::halt_if_interrupted();
                eprintln!(
                    "synod-bench compare: {scenario} against {} failed in round {round}:\n{reason}",
                    flavor.name()
                );
                let first = reason.lines().next().unwrap_or("").to_string();
                ctx.push(Line::Failure(Failure {
                    scenario: scenario.into(),
                    server: flavor.name().into(),
                    round,
                    reason: first,
                }));
                return;
            }
        }
    }
}

fn report_and_finish(
    ctx: &Ctx,
    out_dir: &Path,
    work: &Path,
    keep: bool,
    out_in_work: bool,
) -> Result<i32, String> {
    crate::report::write(&ctx.lines, out_dir)?;
    let jsonl = out_dir.join("runs.jsonl");
    std::fs::copy(work.join("runs.jsonl"), &jsonl)
        .map_err(|e| format!("cannot write {}: {e}", jsonl.display()))?;
    let md = std::fs::read_to_string(out_dir.join("results.md")).unwrap_or_default();
    println!("{md}");
    let problems: Vec<String> = ctx.lines.iter().filter_map(problem).collect();
    let runs = ctx
        .lines
        .iter()
        .filter(|l| matches!(l, Line::Run(_) | Line::Resources(_)))
        .count();
    if problems.is_empty() {
        ctx.say(&format!("all {runs} runs completed with valid records"));
    } else {
        for p in &problems {
            eprintln!("synod-bench compare: PROBLEM: {p}");
        }
    }
    let keep_work = keep || !problems.is_empty();
    if keep_work {
        eprintln!(
            "synod-bench compare: work dir (data dirs, logs, tool outputs) kept in {}",
            work.display()
        );
    } else if let Err(e) = std::fs::remove_dir_all(work) {
        eprintln!(
            "synod-bench compare: warning: cannot remove {}: {e}",
            work.display()
        );
    }
    if out_in_work && !keep_work {
        eprintln!("synod-bench compare: smoke run: report not kept (--keep or --out-dir keeps it)");
    } else {
        eprintln!("synod-bench compare: results in {}", out_dir.display());
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}

/// Why a line makes the comparison fail (a run that did not complete, failed requests, a
/// figure that is missing or not a positive number); None if it is valid.
fn problem(line: &Line) -> Option<String> {
    let pos = |x: f64| x.is_finite() && x > 0.0;
    match line {
        Line::Machine(_) => None,
        Line::Failure(f) => Some(format!(
            "{} against {}, round {}: {}",
            f.scenario, f.server, f.round, f.reason
        )),
        Line::Run(r) => {
            let rec = &r.record;
            let what = format!("{} against {}, round {}", r.scenario, r.server, r.round);
            if r.tool_errors || rec.errors > 0 {
                return Some(format!(
                    "{what}: {} of {} requests failed",
                    rec.errors, rec.total
                ));
            }
            if rec.ok == 0 || !pos(rec.throughput) || !pos(rec.elapsed_secs) {
                return Some(format!(
                    "{what}: no throughput ({} ok in {} s)",
                    rec.ok, rec.elapsed_secs
                ));
            }
            if let Some(l) = &rec.latency_ms {
                if ![l.p50, l.p99, l.p999, l.max, l.mean]
                    .iter()
                    .all(|x| x.is_finite() && *x >= 0.0)
                {
                    return Some(format!("{what}: latency figures are not numbers"));
                }
            }
            None
        }
        Line::Resources(r) => {
            let ok = r.rss_bytes > 0
                && r.disk_bytes > 0
                && r.disk_after_defrag_bytes > 0
                && pos(r.restart_secs);
            (!ok).then(|| {
                format!(
                    "resources of {}, round {}: a figure is missing",
                    r.server, r.round
                )
            })
        }
    }
}

/// The one-line summary of a line, as the run goes.
fn describe(line: &Line) -> Option<String> {
    match line {
        Line::Run(r) => {
            let rec = &r.record;
            let lat = rec.latency_ms.as_ref().map_or(String::new(), |l| format!(", p50 {:.2} ms, p99 {:.2} ms", l.p50, l.p99));
            let size = r.store_keys.map_or(String::new(), |k| format!(" [{k} keys{}]", r.result_keys.map_or(String::new(), |n| format!(", {n} per range"))));
            let errs = if rec.errors > 0 { format!(", {} ERRORS", rec.errors) } else { String::new() };
            Some(format!("    {} {} round {}{size}: {:.0} {}{lat}{errs}", r.scenario, r.server, r.round, rec.throughput, rec.unit))
        }
        Line::Resources(r) => Some(format!(
            "    resources {} round {}: {} keys, RSS {:.1} MiB, disk {:.1} MiB, after compact+defrag {:.1} MiB{}, restart {:.2} s",
            r.server,
            r.round,
            r.keys,
            mib(r.rss_bytes),
            mib(r.disk_bytes),
            mib(r.disk_after_defrag_bytes),
            r.defrag_error.as_ref().map_or(String::new(), |e| format!(" (no defragment: {e})")),
            r.restart_secs
        )),
        _ => None,
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// The programs, found and checked before anything starts.
struct Tools {
    synod: PathBuf,
    etcd: PathBuf,
    benchmark: PathBuf,
    java: PathBuf,
    zk_classpath: String,
}

const SETUP: &str = "run scripts/setup-test-deps";

impl Tools {
    fn find(args: &CompareArgs, zookeeper: bool, benchmark: bool) -> Result<Tools, String> {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let synod = args
            .synod_bin
            .clone()
            .or_else(|| env("SYNOD_BIN"))
            .unwrap_or_else(|| {
                std::env::current_exe()
                    .ok()
                    .and_then(|e| e.parent().map(|d| d.join("synod")))
                    .unwrap_or_else(|| "synod".into())
            });
        let etcd = args
            .etcd_bin
            .clone()
            .or_else(|| env("ETCD_BIN"))
            .unwrap_or_else(|| "/usr/bin/etcd".into());
        let cache = env("SYNOD_CACHE")
            .or_else(|| env("HOME").map(|h| h.join(".cache/synod")))
            .unwrap_or_else(|| ".".into());
        let bench = args
            .benchmark_bin
            .clone()
            .or_else(|| env("BENCHMARK_BIN"))
            .unwrap_or_else(|| cache.join("benchmark"));
        let java = env("JAVA")
            .map_or_else(|| on_path("java"), Some)
            .unwrap_or_else(|| "java".into());
        let j = "/usr/share/java";
        let zk_classpath = std::env::var("ZK_CLASSPATH").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
            format!("{j}/zookeeper.jar:{j}/zookeeper-jute.jar:{j}/slf4j-api.jar:{j}/slf4j-log4j12.jar:{j}/log4j-1.2.jar")
        });
        executable(
            &synod,
            "synod",
            "build it: cargo build --release -p synod, or set SYNOD_BIN",
        )?;
        executable(&etcd, "etcd 3.4", SETUP)?;
        if benchmark {
            executable(&bench, "etcd's benchmark tool", SETUP)?;
        }
        if zookeeper {
            executable(&java, "java (for ZooKeeper 3.8)", SETUP)?;
            for jar in zk_classpath.split(':') {
                if !Path::new(jar).exists() {
                    return Err(format!(
                        "ZooKeeper 3.8 not found: {jar} is missing ({SETUP}, or set ZK_CLASSPATH)"
                    ));
                }
            }
        }
        Ok(Tools {
            synod,
            etcd,
            benchmark: bench,
            java,
            zk_classpath,
        })
    }
}

fn executable(p: &Path, what: &str, hint: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        _ => Err(format!("{what} not found at {} ({hint})", p.display())),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
