//! The resources scenario, per server and round: load N distinct keys (synod-bench etcd put,
//! sequential keys), then the server's resident memory, its data on disk, the same after a
//! compaction at the current revision and a defragmentation, and the time a restart on the
//! same data dir takes to serve a linearizable range. Measures the server from outside only
//! (/proc, the file system, the etcd API); never changes a server setting.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

use super::cpu;
use super::loadgen;
use super::servers::{Flavor, Server};
use super::Ctx;
use crate::report::lines::{Line, Resources, Run};

pub fn run(ctx: &mut Ctx, flavor: Flavor, round: u32) -> Result<(), String> {
    super::sync_disks();
    let dir = ctx.run_dir("resources", flavor, round)?;
    let mut server = Server::start(flavor, 1, false, &dir, &ctx.bins, &ctx.grpc)?;
    let addr = server.endpoints().into_iter().next().ok_or("no endpoint")?;
    let args = loadgen::put_args(ctx.sizes.keys, ctx.sizes.keys, true);
    let timeout = ctx.sizes.timeout;
    let url = format!("http://{addr}");
    let (done, cpu) = cpu::measured(server.pids(), || {
        loadgen::run("etcd", &args, &url, &dir, "load", timeout)
    });
    let done = done?;
    server.check_alive()?;
    ctx.push(Line::Run(Run {
        scenario: "resources-load".into(),
        server: flavor.name().into(),
        round,
        command: loadgen::command_line("etcd", &args),
        store_keys: None,
        result_keys: None,
        tool_errors: done.tool_errors,
        record: done.record,
        cpu,
    }));
    let pid = server.pid().ok_or("the server has no process")?;
    let rss_bytes = rss(pid)?;
    let disk_bytes = du(server.data_dir())?;
    let defrag_error = ctx
        .grpc
        .compact_and_defrag(&addr, Duration::from_secs(timeout))?;
    let disk_after_defrag_bytes = du(server.data_dir())?;
    let restart = server.restart(&ctx.grpc, Duration::from_secs(timeout))?;
    server.check_alive()?;
    server.stop();
    ctx.push(Line::Resources(Resources {
        server: flavor.name().into(),
        round,
        keys: ctx.sizes.keys,
        rss_bytes,
        disk_bytes,
        disk_after_defrag_bytes,
        defrag_error,
        restart_secs: restart.as_secs_f64(),
    }));
    Ok(())
}

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no VmRSS in {path}"))
}

/// Bytes allocated to everything under `dir`, each inode once (what `du -s` counts).
pub fn du(dir: &Path) -> Result<u64, String> {
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
        if seen.insert((meta.dev(), meta.ino())) {
            total += meta.blocks() * 512;
        }
        if meta.is_dir() {
            let entries = std::fs::read_dir(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            for e in entries {
                stack.push(e.map_err(|e| format!("{}: {e}", p.display()))?.path());
            }
        }
    }
    Ok(total)
}
