//! The growth curve, per server and round: one server loaded with more and more distinct keys
//! (the sizes of `--growth-sizes`); at each size a put run over random keys of the loaded key
//! space (throughput, p99) and serializable ranges whose range holds exactly 1, 10, 100, 1000
//! keys (latency). Runs synod-bench's etcd load generator only; never judges the figures.

use super::cpu;
use super::loadgen;
use super::servers::{Flavor, Server};
use super::Ctx;
use crate::report::lines::{CpuUse, Line, Run};

pub fn run(ctx: &mut Ctx, flavor: Flavor, round: u32) -> Result<(), String> {
    super::sync_disks();
    let dir = ctx.run_dir("growth", flavor, round)?;
    let mut server = Server::start(flavor, 1, false, &dir, &ctx.bins, &ctx.grpc)?;
    let addr = server.endpoints().into_iter().next().ok_or("no endpoint")?;
    let url = format!("http://{addr}");
    let timeout = ctx.sizes.timeout;
    let sizes = ctx.sizes.growth.clone();
    let ranges = ctx.sizes.growth_ranges.clone();
    let put_total = ctx.sizes.growth_put;
    for size in sizes {
        // Keys 0..size (the ones loaded before are written again).
        let load = loadgen::put_args(size, size, true);
        let (done, cpu) = cpu::measured(server.pids(), || {
            loadgen::run("etcd", &load, &url, &dir, &format!("load-{size}"), timeout)
        });
        let done = (done?, cpu);
        server.check_alive()?;
        push(
            ctx,
            "growth-load",
            flavor,
            round,
            &load,
            Some(size),
            None,
            done,
        );
        super::sync_disks();

        let put = loadgen::put_args(put_total, size, false);
        let (done, cpu) = cpu::measured(server.pids(), || {
            loadgen::run("etcd", &put, &url, &dir, &format!("put-{size}"), timeout)
        });
        let done = (done?, cpu);
        server.check_alive()?;
        push(
            ctx,
            "growth-put",
            flavor,
            round,
            &put,
            Some(size),
            None,
            done,
        );

        for &(n, total) in &ranges {
            if n > size {
                continue;
            }
            // [key 0, key n): exactly n keys, the result size whatever the store holds.
            let end = format!("{n:08}");
            let range = loadgen::args(&[
                "range",
                "--clients",
                "1",
                "--conns",
                "1",
                "--total",
                &total.to_string(),
                "--key",
                "00000000",
                "--end",
                &end,
                "--limit",
                &n.to_string(),
                "--consistency",
                "s",
            ]);
            let (done, cpu) = cpu::measured(server.pids(), || {
                loadgen::run(
                    "etcd",
                    &range,
                    &url,
                    &dir,
                    &format!("range-{size}-{n}"),
                    timeout,
                )
            });
            let done = (done?, cpu);
            server.check_alive()?;
            push(
                ctx,
                "growth-range",
                flavor,
                round,
                &range,
                Some(size),
                Some(n),
                done,
            );
        }
    }
    server.stop();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn push(
    ctx: &mut Ctx,
    scenario: &str,
    flavor: Flavor,
    round: u32,
    args: &[String],
    store_keys: Option<u64>,
    result_keys: Option<u64>,
    (done, cpu): (loadgen::Finished, Option<CpuUse>),
) {
    ctx.push(Line::Run(Run {
        scenario: scenario.into(),
        server: flavor.name().into(),
        round,
        command: loadgen::command_line("etcd", args),
        store_keys,
        result_keys,
        tool_errors: done.tool_errors,
        record: done.record,
        cpu,
    }));
}
