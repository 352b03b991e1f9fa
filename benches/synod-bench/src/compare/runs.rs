//! One run of a load scenario against one fresh server: etcd's benchmark tool against etcd or
//! Synod (one member or a cluster), or `synod-bench zk` against ZooKeeper or Synod's embedded
//! gateway. Starts the server, runs the tool, checks the server survived, stops it, records.
//! Never retries a failed run (a failure is reported as one).

use std::process::Command;
use std::time::Duration;

use super::cpu;
use super::loadgen;
use super::procs::{self, Ended};
use super::referee::Referee;
use super::scenarios::RANGE_KEY;
use super::servers::{tail, Flavor, Server};
use super::Ctx;
use crate::report::lines::{Line, Run};

pub fn referee(
    ctx: &mut Ctx,
    scenario: &str,
    r: &Referee,
    members: usize,
    flavor: Flavor,
    round: u32,
) -> Result<(), String> {
    super::sync_disks();
    let dir = ctx.run_dir(scenario, flavor, round)?;
    let mut server = Server::start(flavor, members, false, &dir, &ctx.bins, &ctx.grpc)?;
    let endpoints = server.endpoints();
    if r.scenario.starts_with("range") {
        let first = endpoints.first().ok_or("no endpoint")?;
        ctx.grpc.put(
            first,
            RANGE_KEY.as_bytes(),
            &[b'v'; 256],
            Duration::from_secs(10),
        )?;
    }
    let eps = endpoints.join(",");
    let out = dir.join("benchmark.out");
    let mut cmd = Command::new(&ctx.benchmark);
    cmd.arg(format!("--endpoints={eps}")).args(r.args());
    let limit = ctx.sizes.timeout;
    let (ended, cpu) = cpu::measured(server.pids(), || {
        procs::run("benchmark", &mut cmd, &out, Duration::from_secs(limit))
    });
    match ended? {
        Ended::Exited(0) => {}
        Ended::Exited(code) => {
            return Err(format!(
                "benchmark failed (exit status {code})\n{}\n{}",
                tool_tail(&out),
                server.log_tail()
            ))
        }
        Ended::TimedOut => {
            return Err(format!(
                "benchmark did not finish in {limit} s\n{}\n{}",
                tool_tail(&out),
                server.log_tail()
            ))
        }
    }
    server.check_alive()?;
    server.stop();
    let text = std::fs::read(&out).map_err(|e| format!("cannot read {}: {e}", out.display()))?;
    let record = r
        .parse(&String::from_utf8_lossy(&text), &eps)
        .map_err(|e| format!("benchmark output: {e}\n{}", tool_tail(&out)))?;
    ctx.push(Line::Run(Run {
        scenario: scenario.into(),
        server: flavor.name().into(),
        round,
        command: r.command_line(),
        store_keys: None,
        result_keys: None,
        tool_errors: record.errors > 0,
        record,
        cpu,
    }));
    Ok(())
}

pub fn zk(
    ctx: &mut Ctx,
    scenario: &str,
    op: &str,
    flavor: Flavor,
    round: u32,
) -> Result<(), String> {
    super::sync_disks();
    let dir = ctx.run_dir(scenario, flavor, round)?;
    let mut server = Server::start(flavor, 1, true, &dir, &ctx.bins, &ctx.grpc)?;
    let ep = server.zk_endpoint.clone().ok_or("no ZooKeeper endpoint")?;
    let total = ctx.sizes.zk.to_string();
    let nodes = ctx.sizes.zk_nodes.to_string();
    let mut args = loadgen::args(&[
        op,
        "--sessions",
        "16",
        "--total",
        &total,
        "--value-size",
        "256",
    ]);
    if op != "create" {
        args.extend(loadgen::args(&["--nodes", &nodes]));
    }
    let (done, cpu) = cpu::measured(server.pids(), || {
        loadgen::run("zk", &args, &ep, &dir, "zk", ctx.sizes.timeout)
    });
    let done = done.map_err(|e| format!("{e}\n{}", server.log_tail()))?;
    server.check_alive()?;
    server.stop();
    let mut record = done.record;
    if !server.zk_version.is_empty() {
        record
            .params
            .insert("server_version".into(), server.zk_version.clone().into());
    }
    ctx.push(Line::Run(Run {
        scenario: scenario.into(),
        server: flavor.name().into(),
        round,
        command: loadgen::command_line("zk", &args),
        store_keys: None,
        result_keys: None,
        tool_errors: done.tool_errors,
        record,
        cpu,
    }));
    Ok(())
}

/// The end of the benchmark tool's output without gRPC's INFO chatter.
fn tool_tail(out: &std::path::Path) -> String {
    let all = tail(out, 400);
    let kept: Vec<&str> = all.lines().filter(|l| !l.starts_with("INFO: ")).collect();
    format!(
        "--- benchmark output ({}), last lines:\n{}",
        out.display(),
        kept[kept.len().saturating_sub(30)..].join("\n")
    )
}
