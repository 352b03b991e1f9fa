//! What the comparison ran on and with: date, cores, memory, CPU, kernel, load, and the
//! versions of etcd, ZooKeeper and the Synod under test. Reads /proc and asks the programs
//! (`etcd --version`, dpkg, git, sha256sum); a figure it cannot get is "unknown", never an error.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::lines::Machine;

pub struct Inputs<'a> {
    pub etcd: &'a Path,
    pub benchmark: &'a Path,
    /// The synod binary as given (its copy under test has the same digest).
    pub synod: &'a Path,
    pub rounds: u32,
    pub smoke: bool,
    pub command: String,
}

pub fn collect(i: &Inputs) -> Machine {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".to_string());
    let kernel = read_trim("/proc/sys/kernel/osrelease");
    let load = read_trim("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let etcd = output(Command::new(i.etcd).arg("--version"))
        .lines()
        .find_map(|l| {
            l.strip_prefix("etcd Version:")
                .map(|v| format!("etcd {}", v.trim()))
        })
        .unwrap_or_else(|| "unknown".to_string());
    let zk = output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "zookeeper"]));
    let zookeeper = if zk.is_empty() {
        "unknown".to_string()
    } else {
        format!("Debian package zookeeper {zk}")
    };
    Machine {
        date: utc_now(),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        memory_bytes: mem_kib * 1024,
        cpu,
        kernel,
        load_before: load,
        etcd,
        zookeeper,
        synod: synod_identity(i.synod),
        benchmark: i.benchmark.display().to_string(),
        rounds: i.rounds,
        smoke: i.smoke,
        command: i.command.clone(),
    }
}

/// "commit abc1234 (+ uncommitted changes), binary sha256 0123456789ab"
fn synod_identity(bin: &Path) -> String {
    let commit = output(Command::new("git").args(["rev-parse", "--short", "HEAD"]));
    let commit = if commit.is_empty() {
        "unknown commit".to_string()
    } else {
        format!("commit {commit}")
    };
    let dirty = Command::new("git")
        .args(["diff", "--quiet", "HEAD"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.code() == Some(1))
        .unwrap_or(false);
    let sum = output(Command::new("sha256sum").arg(bin));
    let sum: String = sum.chars().take(12).collect();
    format!(
        "{commit}{}, binary {} (sha256 {})",
        if dirty { " + uncommitted changes" } else { "" },
        bin.display(),
        if sum.is_empty() { "unknown" } else { &sum }
    )
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// A program's stdout, trimmed ("" if it could not run).
fn output(cmd: &mut Command) -> String {
    cmd.stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Now, UTC, as `YYYY-MM-DDTHH:MMZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil(secs / 86_400);
    let t = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}Z",
        t / 3600,
        (t % 3600) / 60
    )
}

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian.
fn civil(days: u64) -> (u64, u64, u64) {
    // Count in 400-year eras starting on March 1st, year 0, so leap days come last.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil(0), (1970, 1, 1));
        assert_eq!(super::civil(11_016), (2000, 2, 29));
        assert_eq!(super::civil(20_819), (2027, 1, 1));
    }
}
