//! synod-bench's own load runs (`synod-bench etcd ...`, `synod-bench zk ...`) as child processes
//! of compare: this same executable, with `--json <file> --quiet --timeout <secs>`, its record
//! read back from the file. Never measures anything itself.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::procs::{self, Ended};
use super::servers::tail;
use crate::record::RunRecord;

/// A finished run: its record, and whether the tool reported failed requests (exit status 1).
pub struct Finished {
    pub record: RunRecord,
    pub tool_errors: bool,
}

/// `synod-bench <face> <args...> --endpoints <endpoints>`; outputs under `dir` as `<id>.*`.
pub fn run(
    face: &str,
    args: &[String],
    endpoints: &str,
    dir: &Path,
    id: &str,
    timeout_secs: u64,
) -> Result<Finished, String> {
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find synod-bench's own executable: {e}"))?;
    let json = dir.join(format!("{id}.json"));
    let out = dir.join(format!("{id}.out"));
    let _ = std::fs::remove_file(&json);
    let mut cmd = Command::new(exe);
    cmd.arg(face)
        .args(args)
        .arg("--endpoints")
        .arg(endpoints)
        .arg("--json")
        .arg(&json)
        .arg("--quiet")
        .arg("--timeout")
        .arg(timeout_secs.to_string());
    let what = format!("synod-bench {face} {}", args.join(" "));
    let code = match procs::run(
        "synod-bench",
        &mut cmd,
        &out,
        Duration::from_secs(timeout_secs + 30),
    )? {
        Ended::Exited(c) => c,
        Ended::TimedOut => {
            return Err(format!(
                "`{what}` did not finish in {} s\n{}",
                timeout_secs + 30,
                tail(&out, 20)
            ))
        }
    };
    if code != 0 && code != 1 {
        return Err(format!(
            "`{what}` could not complete (exit status {code})\n{}",
            tail(&out, 20)
        ));
    }
    let text = std::fs::read_to_string(&json).map_err(|e| {
        format!(
            "`{what}`: no record in {}: {e}\n{}",
            json.display(),
            tail(&out, 20)
        )
    })?;
    let record: RunRecord = serde_json::from_str(text.trim())
        .map_err(|e| format!("`{what}`: unreadable record {}: {e}", json.display()))?;
    Ok(Finished {
        record,
        tool_errors: code == 1,
    })
}

/// The command line as the report shows it.
pub fn command_line(face: &str, args: &[String]) -> String {
    format!("synod-bench {face} {}", args.join(" "))
}

/// Owned argument list from string slices.
pub fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// `put` with 50 clients on 10 connections, 8-byte keys and 256-byte values: `total` puts over
/// `key_space` keys, random ones, or with `sequential` keys 0, 1, ... (a load of distinct keys).
pub fn put_args(total: u64, key_space: u64, sequential: bool) -> Vec<String> {
    let (total, key_space) = (total.to_string(), key_space.to_string());
    let mut a = args(&[
        "put",
        "--clients",
        "50",
        "--conns",
        "10",
        "--total",
        &total,
        "--key-size",
        "8",
        "--val-size",
        "256",
        "--key-space",
        &key_space,
    ]);
    if sequential {
        a.push("--sequential-keys".into());
    }
    a
}
