//! The lines of a comparison's `runs.jsonl`: one JSON object per line, tagged by `kind`.
//!
//! `compare` appends them as the runs finish; `report` reads them back and needs nothing else,
//! so every figure the report shows must be in a line. A line is only ever added, never
//! rewritten. This module owns the format; it must never compute or judge anything.

use serde::{Deserialize, Serialize};

use crate::record::RunRecord;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    /// Where and with what the comparison ran (one per comparison).
    Machine(Machine),
    /// One load run against one server.
    Run(Run),
    /// The resources scenario of one server in one round.
    Resources(Resources),
    /// A run that could not be completed (the scenario's remaining rounds were skipped).
    Failure(Failure),
}

/// The comparison's machine line (a default one if the file has none).
pub fn machine(lines: &[Line]) -> Machine {
    lines
        .iter()
        .find_map(|l| match l {
            Line::Machine(m) => Some(m.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    /// UTC, `YYYY-MM-DDTHH:MMZ`, when the comparison started.
    pub date: String,
    pub cores: usize,
    pub memory_bytes: u64,
    pub cpu: String,
    pub kernel: String,
    /// /proc/loadavg's first three fields before the first run.
    pub load_before: String,
    pub etcd: String,
    pub zookeeper: String,
    /// The synod under test: commit (with "+ uncommitted changes" when dirty) and binary digest.
    pub synod: String,
    pub benchmark: String,
    pub rounds: u32,
    pub smoke: bool,
    /// The compare command line.
    pub command: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Run {
    /// The comparison's scenario (e.g. "put-1client", "zk-get", "growth-range"), which may be
    /// more specific than `record.scenario`.
    pub scenario: String,
    /// "etcd", "zookeeper" or "synod".
    pub server: String,
    pub round: u32,
    /// The load tool's command line, endpoints left out.
    #[serde(default)]
    pub command: String,
    /// Growth curve and resources: keys in the store when the run started.
    #[serde(default)]
    pub store_keys: Option<u64>,
    /// Growth curve: keys each range returned.
    #[serde(default)]
    pub result_keys: Option<u64>,
    /// The tool's exit status was not 0 (some requests failed), or its output had errors.
    #[serde(default)]
    pub tool_errors: bool,
    pub record: RunRecord,
    /// CPU spent while the tool ran (absent where it could not be read).
    #[serde(default)]
    pub cpu: Option<CpuUse>,
}

/// CPU time spent from the load tool's start to its exit (its own setup included).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CpuUse {
    /// By the server's processes (every member of a cluster).
    pub server_secs: f64,
    /// By the whole machine (not idle, I/O wait or steal): the server, the load tool, the OS.
    pub machine_secs: f64,
    /// Wall time between the two readings.
    pub wall_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Resources {
    pub server: String,
    pub round: u32,
    /// Distinct keys loaded (8-byte keys, 256-byte values).
    pub keys: u64,
    /// VmRSS of the server process right after the load.
    pub rss_bytes: u64,
    /// Bytes allocated under the data dir (as `du`), after the load.
    pub disk_bytes: u64,
    /// The same after a compaction at the current revision and a defragmentation.
    pub disk_after_defrag_bytes: u64,
    /// Why the defragmentation did not happen (the server does not implement it): the size
    /// after is then after the compaction only.
    #[serde(default)]
    pub defrag_error: Option<String>,
    /// From starting the server again on its data dir to the first linearizable range answered.
    pub restart_secs: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Failure {
    pub scenario: String,
    pub server: String,
    pub round: u32,
    pub reason: String,
}

/// Reads a runs.jsonl: every non-empty line must parse.
pub fn read(text: &str) -> Result<Vec<Line>, String> {
    let mut lines = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let line = serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1))?;
        lines.push(line);
    }
    Ok(lines)
}
