//! The result of one benchmark run, as every part of synod-bench writes and reads it (one JSON
//! object per run; `compare` collects them, one per line, in `runs.jsonl`).
//!
//! The same record describes a run of synod-bench's own load generators and a run of etcd's
//! `benchmark` tool (parsed by `compare`), so that the report treats both alike. It must never
//! carry anything a reader has to recompute: throughput and percentiles are final figures.

use serde::{Deserialize, Serialize};

/// Latency percentiles of one run, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// What produced the figures: "synod-bench" or "etcd-benchmark".
    pub tool: String,
    /// "etcd" or "zk".
    pub protocol: String,
    /// The scenario, e.g. "put", "range-linearizable", "txn-put", "watch", "lease-keepalive",
    /// "create", "set", "get".
    pub scenario: String,
    /// Where the load went (URLs or host:port, comma-separated).
    pub endpoint: String,
    /// Concurrent clients (etcd) or sessions (ZooKeeper), and connections.
    pub clients: u32,
    pub conns: u32,
    /// Operations attempted, and of those the ones that succeeded / failed.
    pub total: u64,
    pub ok: u64,
    pub errors: u64,
    /// Wall time from the first request to the last reply (or event), seconds.
    pub elapsed_secs: f64,
    /// `ok / elapsed_secs` in `unit` ("req/s", or "events/s" for watch scenarios).
    pub throughput: f64,
    pub unit: String,
    /// Per-request latency (absent where the scenario has none, e.g. watch events).
    pub latency_ms: Option<Latency>,
    /// Scenario-specific settings and extra figures (key size, value size, watchers, ...).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}
