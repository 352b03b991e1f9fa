//! results.md: the machine, the summary table (medians, ratios, targets), the CPU per
//! operation (server and rest of the machine), every run, the resources and the growth curve.
//! Only formats what the lines hold; never measures anything.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::lines::{Line, Machine, Run};
use super::stats::{self, bytes, median, micros, ms, ratio, thousands};
use super::targets::{Better, Metric, Pick, GROWTH_BAND, METRICS};

pub fn render(lines: &[Line]) -> String {
    let mut out = String::new();
    let machine = super::lines::machine(lines);
    header(&mut out, &machine);
    summary(&mut out, lines);
    cpu(&mut out, lines, machine.cores);
    problems(&mut out, lines);
    runs(&mut out, lines);
    resources(&mut out, lines);
    growth(&mut out, lines);
    out
}

fn server_name(s: &str) -> &str {
    match s {
        "etcd" => "etcd",
        "zookeeper" => "ZooKeeper",
        "synod" => "Synod",
        other => other,
    }
}

fn header(out: &mut String, m: &Machine) {
    let _ = writeln!(out, "# Synod vs etcd 3.4 and ZooKeeper 3.8\n");
    if m.smoke {
        let _ = writeln!(
            out,
            "**Smoke run**: tiny totals that only check that every scenario runs; its figures mean nothing.\n"
        );
    }
    let _ = writeln!(
        out,
        "`{}`: every run starts fresh servers on 127.0.0.1 with new data dirs; runs alternate \
         between the servers (the first one swaps every round), {} round(s); the tables give \
         medians over the rounds. Synod runs with the README's default settings (durable: a write \
         is answered once its Raft entry is fsynced), etcd with its defaults, ZooKeeper with its \
         defaults (forceSync on). The etcd scenarios are measured by etcd 3.4's own `benchmark` \
         tool; the ZooKeeper scenarios, the resources and the growth curve by `synod-bench`. \
         8-byte keys, 256-byte values.\n",
        if m.command.is_empty() {
            "synod-bench compare"
        } else {
            &m.command
        },
        m.rounds
    );
    let gib = m.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0);
    let _ = writeln!(out, "- date: {}", m.date);
    let _ = writeln!(
        out,
        "- machine: {} cores ({}), {gib:.0} GiB, Linux {}, load average before the runs: {}",
        m.cores, m.cpu, m.kernel, m.load_before
    );
    let _ = writeln!(out, "- etcd: {}; benchmark tool: {}", m.etcd, m.benchmark);
    let _ = writeln!(out, "- ZooKeeper: {}", m.zookeeper);
    let _ = writeln!(out, "- Synod: {}\n", m.synod);
}

/// The unit of a scenario's throughput, as its runs give it.
fn unit(lines: &[Line], scenario: &str) -> String {
    lines
        .iter()
        .find_map(|l| match l {
            Line::Run(r) if r.scenario == scenario => Some(r.record.unit.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "req/s".to_string())
}

/// (upstream median, synod median, ratio) of a metric.
pub fn medians(lines: &[Line], m: &Metric) -> (Option<f64>, Option<f64>, Option<f64>) {
    let u = median(&stats::values(lines, m, m.upstream()));
    let s = median(&stats::values(lines, m, "synod"));
    (u, s, ratio(s, u))
}

fn summary(out: &mut String, lines: &[Line]) {
    let _ = writeln!(out, "## Summary\n");
    let _ = writeln!(out, "![Synod / upstream, every target](chart.svg)\n");
    let _ = writeln!(
        out,
        "| scenario | figure | upstream | Synod | Synod / upstream | target | met |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for m in METRICS {
        let (u, s, r) = medians(lines, m);
        if u.is_none() && s.is_none() {
            continue;
        }
        let unit = unit(lines, m.scenario);
        let f = |x: Option<f64>| x.map_or("-".to_string(), |x| stats::format(m.pick, &unit, x));
        let label = if m.scenario == "resources" {
            resources_label(lines)
        } else {
            m.label.to_string()
        };
        let (rt, met) = match r {
            Some(r) => (
                format!("{r:.2}"),
                match m.met(r) {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                },
            ),
            None => ("-".to_string(), ""),
        };
        let dir = if m.better == Better::Higher {
            "higher is better"
        } else {
            "lower is better"
        };
        let _ = writeln!(
            out,
            "| {label} | {} ({dir}) | {} {} | {} | {rt} | {} | {met} |",
            m.figure(),
            server_name(m.upstream()),
            f(u),
            f(s),
            m.target_text()
        );
    }
    let _ = writeln!(out);
}

/// Where each scenario's CPU went: medians over the rounds of the server's CPU and of the rest
/// of the machine's (the load tool, the OS) per operation, and how busy all cores were.
fn cpu(out: &mut String, lines: &[Line], cores: usize) {
    let scenarios = run_scenarios(lines);
    let with_cpu = |s: &str| {
        lines
            .iter()
            .any(|l| matches!(l, Line::Run(r) if r.scenario == s && r.cpu.is_some()))
    };
    if !scenarios.iter().any(|s| with_cpu(s)) {
        return;
    }
    let _ = writeln!(out, "## CPU per operation\n");
    let _ = writeln!(
        out,
        "CPU time from the load tool's start to its exit (its setup included), divided by the \
         operations it completed (requests; events for watch). *Server*: every process of the \
         server (all members of a cluster). *Rest*: the rest of the machine's busy time, which \
         is the load tool and the OS; on a shared machine it is CPU the server cannot have, so \
         when all cores are near 100% busy, a server can only go faster by needing less itself \
         or by answering in fewer, larger messages. Medians over the rounds.\n"
    );
    let _ = writeln!(
        out,
        "| scenario | server | server CPU (µs/op) | rest (µs/op) | all {cores} cores busy |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|");
    for s in scenarios.iter().filter(|s| with_cpu(s)) {
        let mut servers: Vec<&str> = Vec::new();
        for l in lines {
            if let Line::Run(r) = l {
                if &r.scenario == s && !servers.contains(&r.server.as_str()) {
                    servers.push(&r.server);
                }
            }
        }
        for server in servers {
            let runs: Vec<&Run> = lines
                .iter()
                .filter_map(|l| match l {
                    Line::Run(r) if &r.scenario == s && r.server == server => Some(r),
                    _ => None,
                })
                .collect();
            let pick = |f: &dyn Fn(&Run) -> Option<f64>| {
                median(&runs.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            let us = |x: Option<f64>| x.map_or("-".to_string(), micros);
            let busy = pick(&|r| stats::busy_share(r, cores))
                .map_or("-".to_string(), |x| format!("{:.0}%", x * 100.0));
            let _ = writeln!(
                out,
                "| {s} | {} | {} | {} | {busy} |",
                server_name(server),
                us(pick(&stats::server_us_per_op)),
                us(pick(&stats::rest_us_per_op)),
            );
        }
    }
    let _ = writeln!(out);
}

fn resources_label(lines: &[Line]) -> String {
    let keys = lines.iter().find_map(|l| {
        if let Line::Resources(r) = l {
            Some(r.keys)
        } else {
            None
        }
    });
    match keys {
        Some(k) => format!("{} keys loaded", thousands(k as f64)),
        None => "keys loaded".to_string(),
    }
}

fn problems(out: &mut String, lines: &[Line]) {
    let mut text = String::new();
    for l in lines {
        match l {
            Line::Failure(f) => {
                let _ = writeln!(
                    text,
                    "- {} against {}, round {}: **could not complete**: {}",
                    f.scenario, f.server, f.round, f.reason
                );
            }
            Line::Run(r) if r.tool_errors || r.record.errors > 0 => {
                let _ = writeln!(
                    text,
                    "- {} against {}, round {}: {} of {} requests failed",
                    r.scenario, r.server, r.round, r.record.errors, r.record.total
                );
            }
            _ => {}
        }
    }
    if !text.is_empty() {
        let _ = writeln!(out, "## Problems\n\n{text}");
    }
}

/// Scenarios in the order their runs appear, excluding the growth curve and resources.
fn run_scenarios(lines: &[Line]) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for l in lines {
        if let Line::Run(r) = l {
            if !r.scenario.starts_with("growth")
                && !r.scenario.starts_with("resources")
                && seen.insert(r.scenario.clone())
            {
                order.push(r.scenario.clone());
            }
        }
    }
    order
}

fn runs(out: &mut String, lines: &[Line]) {
    let scenarios = run_scenarios(lines);
    if scenarios.is_empty() {
        return;
    }
    let _ = writeln!(out, "## Every run\n");
    for s in scenarios {
        let runs: Vec<&Run> = lines
            .iter()
            .filter_map(|l| match l {
                Line::Run(r) if r.scenario == s => Some(r),
                _ => None,
            })
            .collect();
        let Some(first) = runs.first() else { continue };
        let _ = writeln!(out, "### {s}\n");
        let _ = writeln!(out, "`{}`\n", first.command);
        let _ = writeln!(
            out,
            "| server | round | {} | p50 (ms) | p99 (ms) | p99.9 (ms) | errors | server CPU (µs/op) | rest (µs/op) |",
            first.record.unit
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
        for r in runs {
            let lat = |p: fn(&crate::record::Latency) -> f64| {
                r.record
                    .latency_ms
                    .as_ref()
                    .map_or("-".to_string(), |l| ms(p(l)))
            };
            let us = |x: Option<f64>| x.map_or("-".to_string(), micros);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                server_name(&r.server),
                r.round,
                thousands(r.record.throughput),
                lat(|l| l.p50),
                lat(|l| l.p99),
                lat(|l| l.p999),
                r.record.errors,
                us(stats::server_us_per_op(r)),
                us(stats::rest_us_per_op(r)),
            );
        }
        let _ = writeln!(out);
    }
}

fn resources(out: &mut String, lines: &[Line]) {
    let rs: Vec<_> = lines
        .iter()
        .filter_map(|l| {
            if let Line::Resources(r) = l {
                Some(r)
            } else {
                None
            }
        })
        .collect();
    if rs.is_empty() {
        return;
    }
    let _ = writeln!(out, "### resources\n");
    let _ = writeln!(
        out,
        "Load {} distinct keys (`synod-bench etcd put`, 50 clients / 10 conns, sequential keys), then: the \
         server's VmRSS; bytes allocated under its data dir (as `du`); the same after a compaction at \
         the current revision and a defragmentation; then SIGTERM, wait for the exit, start it again on \
         the same data dir and time until the first linearizable range is answered.\n",
        thousands(rs[0].keys as f64)
    );
    let _ = writeln!(out, "| server | round | load (req/s) | resident memory | on disk | after compact + defrag | restart (s) |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for r in rs {
        let load = lines.iter().find_map(|l| match l {
            Line::Run(x)
                if x.scenario == "resources-load" && x.server == r.server && x.round == r.round =>
            {
                Some(thousands(x.record.throughput))
            }
            _ => None,
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.2} |",
            server_name(&r.server),
            r.round,
            load.unwrap_or_else(|| "-".to_string()),
            bytes(r.rss_bytes as f64),
            bytes(r.disk_bytes as f64),
            bytes(r.disk_after_defrag_bytes as f64),
            r.restart_secs
        );
    }
    for r in lines.iter().filter_map(|l| {
        if let Line::Resources(r) = l {
            Some(r)
        } else {
            None
        }
    }) {
        if let Some(e) = &r.defrag_error {
            let _ = writeln!(
                out,
                "\n{} round {}: no defragmentation (\"{e}\"): its size after is after the compaction only.",
                server_name(&r.server),
                r.round
            );
        }
    }
    let _ = writeln!(out);
}

/// Growth curve: medians per (server, store size) of the put runs and of the range runs per
/// result size, and the checks of the growth targets.
fn growth(out: &mut String, lines: &[Line]) {
    let growth: Vec<&Run> = lines
        .iter()
        .filter_map(|l| match l {
            Line::Run(r) if r.scenario == "growth-put" || r.scenario == "growth-range" => Some(r),
            _ => None,
        })
        .collect();
    if growth.is_empty() {
        return;
    }
    let sizes: BTreeSet<u64> = growth.iter().filter_map(|r| r.store_keys).collect();
    let results: BTreeSet<u64> = growth.iter().filter_map(|r| r.result_keys).collect();
    let mut servers: Vec<&str> = Vec::new();
    for r in &growth {
        if !servers.contains(&r.server.as_str()) {
            servers.push(&r.server);
        }
    }
    // The median of `figure` over the runs of one server, scenario, store size and result size.
    let median_at = |server: &str,
                     scen: &str,
                     size: u64,
                     res: Option<u64>,
                     figure: &dyn Fn(&Run) -> Option<f64>|
     -> Option<f64> {
        let v: Vec<f64> = growth
            .iter()
            .filter(|r| {
                r.server == server
                    && r.scenario == scen
                    && r.store_keys == Some(size)
                    && r.result_keys == res
            })
            .filter_map(|r| figure(r))
            .collect();
        median(&v)
    };
    let pick = |server: &str, scen: &str, size: u64, res: Option<u64>, p: Pick| {
        median_at(server, scen, size, res, &|r| stats::run_figure(r, p))
    };
    let put_cpu = |server: &str, size: u64| {
        median_at(server, "growth-put", size, None, &stats::server_us_per_op)
    };
    let _ = writeln!(out, "## Growth curve\n");
    let put_cmd = growth
        .iter()
        .find(|r| r.scenario == "growth-put")
        .map(|r| r.command.as_str())
        .unwrap_or("");
    let range_cmd = growth
        .iter()
        .find(|r| r.scenario == "growth-range")
        .map(|r| r.command.as_str())
        .unwrap_or("");
    let _ = writeln!(
        out,
        "One server per round, loaded with more and more distinct keys; at each size a put run over random \
         keys of the loaded key space (`{put_cmd}`) and ranges returning 1, 10, ... keys (`{range_cmd}`: \
         shown for n = 1: the range [key 0, key n) holds exactly n keys). Medians over the rounds.\n"
    );
    let mut head =
        "| server | keys in store | put (req/s) | put p99 (ms) | put: server CPU (µs/put) |"
            .to_string();
    let mut rule = "|---|---|---|---|---|".to_string();
    for n in &results {
        let _ = write!(head, " range {n} p50 (ms) |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    let opt = |x: Option<f64>, f: &dyn Fn(f64) -> String| x.map_or("-".to_string(), f);
    for s in &servers {
        for &size in &sizes {
            let mut row = format!(
                "| {} | {} | {} | {} | {} |",
                server_name(s),
                thousands(size as f64),
                opt(
                    pick(s, "growth-put", size, None, Pick::Throughput),
                    &thousands
                ),
                opt(pick(s, "growth-put", size, None, Pick::P99), &ms),
                opt(put_cpu(s, size), &micros)
            );
            for &n in &results {
                let _ = write!(
                    row,
                    " {} |",
                    opt(pick(s, "growth-range", size, Some(n), Pick::P50), &ms)
                );
            }
            let _ = writeln!(out, "{row}");
        }
    }
    let _ = writeln!(out);
    let band = GROWTH_BAND * 100.0;
    let _ = writeln!(
        out,
        "Targets (Synod): put throughput and p99 at every size within {band:.0}% of each other (smallest \
         ≥ {:.0}% of largest); range latency at the largest store within {band:.0}% of that at the \
         smallest, for every result size (it may grow with the result, not with the store).\n",
        100.0 - band
    );
    let _ = writeln!(out, "| server | check | figure | met |");
    let _ = writeln!(out, "|---|---|---|---|");
    let verdict = |ok: bool| if ok { "yes" } else { "**no**" };
    for s in &servers {
        for (what, p) in [("put throughput", Pick::Throughput), ("put p99", Pick::P99)] {
            let v: Vec<f64> = sizes
                .iter()
                .filter_map(|&k| pick(s, "growth-put", k, None, p))
                .collect();
            let (lo, hi) = v.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
            if v.len() >= 2 && hi > 0.0 {
                let share = lo / hi;
                let _ = writeln!(
                    out,
                    "| {} | {what}: smallest / largest over the sizes | {share:.2} | {} |",
                    server_name(s),
                    verdict(share >= 1.0 - GROWTH_BAND)
                );
            }
        }
        for &n in &results {
            // The smallest and largest stores where ranges of n keys were measured.
            let measured: Vec<(u64, f64)> = sizes
                .iter()
                .filter_map(|&k| pick(s, "growth-range", k, Some(n), Pick::P50).map(|x| (k, x)))
                .collect();
            let (Some(&(small, a)), Some(&(large, b))) = (measured.first(), measured.last()) else {
                continue;
            };
            if small == large {
                continue;
            }
            if let Some(r) = ratio(Some(b), Some(a)) {
                let _ = writeln!(
                    out,
                    "| {} | range returning {n} keys: p50 at {} keys / at {} keys | {r:.2} | {} |",
                    server_name(s),
                    thousands(large as f64),
                    thousands(small as f64),
                    verdict(r <= 1.0 + GROWTH_BAND)
                );
            }
        }
    }
    let _ = writeln!(out);
}
