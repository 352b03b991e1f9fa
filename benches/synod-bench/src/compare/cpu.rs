//! CPU time spent during one load run: by the server's processes (every member), and by the
//! whole machine (all time that is not idle, I/O wait or steal). Machine minus server is the
//! load generator plus the OS; on a machine the two share, that is CPU a faster server cannot
//! have, so these two figures say whether a run was bound by the server or by its client.
//!
//! Reads /proc only (Linux); where it cannot, the run simply has no CPU figures. Never judges
//! them.

use std::sync::OnceLock;
use std::time::Instant;

use crate::report::lines::CpuUse;

/// The counters at the start of a run.
pub struct CpuMeter {
    pids: Vec<u32>,
    server_ticks: u64,
    machine_ticks: u64,
    started: Instant,
    ticks_per_sec: f64,
}

impl CpuMeter {
    /// Reads the counters now; `None` if /proc cannot be read for every one of `pids`.
    pub fn start(pids: Vec<u32>) -> Option<CpuMeter> {
        // Asked before the counters are read, so that `getconf` is not counted in the run.
        let ticks_per_sec = ticks_per_sec();
        let server_ticks = processes_ticks(&pids)?;
        let machine_ticks = machine_busy_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
        Some(CpuMeter {
            pids,
            server_ticks,
            machine_ticks,
            started: Instant::now(),
            ticks_per_sec,
        })
    }

    /// What was spent since [`CpuMeter::start`] (the servers must still run).
    pub fn finish(self) -> Option<CpuUse> {
        let server = processes_ticks(&self.pids)?;
        let machine = machine_busy_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
        Some(CpuUse {
            server_secs: server.saturating_sub(self.server_ticks) as f64 / self.ticks_per_sec,
            machine_secs: machine.saturating_sub(self.machine_ticks) as f64 / self.ticks_per_sec,
            wall_secs: self.started.elapsed().as_secs_f64(),
        })
    }
}

/// Measures around `f` when `pids` can be read; `f`'s result either way.
pub fn measured<T>(pids: Vec<u32>, f: impl FnOnce() -> T) -> (T, Option<CpuUse>) {
    let meter = CpuMeter::start(pids);
    let out = f();
    (out, meter.and_then(CpuMeter::finish))
}

fn processes_ticks(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().try_fold(0u64, |sum, pid| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(sum + process_ticks(&stat)?)
    })
}

/// utime + stime of a `/proc/<pid>/stat` line (fields 14 and 15). The command name (field 2)
/// is in parentheses and may hold spaces or parentheses itself, so fields are counted from
/// the last `)`.
fn process_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): field n is at index n - 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Busy ticks of all CPUs from `/proc/stat`'s first line: user, nice, system, irq and softirq
/// (guest time is already part of user); idle, iowait and steal are not busy.
fn machine_busy_ticks(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 4 {
        return None;
    }
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6))
}

/// The kernel's USER_HZ as `getconf CLK_TCK` reports it (asked once per process); 100
/// (Linux's value on every common architecture) if it cannot be asked.
fn ticks_per_sec() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|&t| t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_ticks_count_fields_after_the_command_name_even_if_it_holds_spaces() {
        let stat = "4242 (tokio (rt) worker) S 1 4242 4242 0 -1 4194560 8362 0 0 0 \
                    77 45 0 0 20 0 9 0 1234 5678 910 18446744073709551615";
        assert_eq!(process_ticks(stat), Some(77 + 45));
        assert_eq!(process_ticks("4242 (cut"), None);
        assert_eq!(process_ticks("4242 (x) S 1 2"), None);
    }

    #[test]
    fn machine_busy_ticks_leave_out_idle_iowait_and_steal() {
        let stat = "cpu  100 5 30 9000 40 2 3 700 0 0\ncpu0 50 2 15 4500 20 1 1 350 0 0\n";
        assert_eq!(machine_busy_ticks(stat), Some(100 + 5 + 30 + 2 + 3));
        assert_eq!(machine_busy_ticks("cpu0 1 2 3 4\n"), None);
        assert_eq!(machine_busy_ticks("cpu  1 x 3 4\n"), None);
    }

    #[test]
    fn a_meter_on_this_process_counts_the_cpu_it_burns() {
        let pid = std::process::id();
        let own = || processes_ticks(&[pid]).expect("/proc is readable on Linux");
        let ((), cpu) = measured(vec![pid], || {
            // Burn until the kernel has charged this process 20 ticks (bounded in time).
            let from = own();
            let give_up = Instant::now() + std::time::Duration::from_secs(30);
            let mut x = 0u64;
            while own() < from + 20 && Instant::now() < give_up {
                for _ in 0..100_000 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
            }
            std::hint::black_box(x);
        });
        let cpu = cpu.expect("/proc is readable on Linux");
        assert!(cpu.server_secs >= 20.0 / ticks_per_sec(), "{cpu:?}");
        assert!(cpu.machine_secs > 0.0, "{cpu:?}");
        assert!(cpu.wall_secs > 0.0, "{cpu:?}");
    }
}
