//! What the report compares and what Synod is aiming for: the figures of each scenario, which
//! direction is better, and the target for the ratio Synod / upstream.
//!
//! This is the one place the targets live. It must never read runs or format anything.

/// Which figure of a scenario's runs a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    Throughput,
    P50,
    P99,
    Rss,
    Disk,
    DiskAfterDefrag,
    Restart,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

#[derive(Clone, Copy, Debug)]
pub struct Metric {
    /// The comparison's scenario ("resources" for the four resource figures).
    pub scenario: &'static str,
    /// What the row says, e.g. "put, 50 clients / 10 conns".
    pub label: &'static str,
    pub pick: Pick,
    pub better: Better,
    /// Target for Synod / upstream: at least this (Higher) or at most this (Lower).
    pub target: Option<f64>,
}

impl Metric {
    /// "etcd" or "zookeeper": whom Synod is compared with in this metric.
    pub fn upstream(&self) -> &'static str {
        if self.scenario.starts_with("zk-") {
            "zookeeper"
        } else {
            "etcd"
        }
    }

    pub fn figure(&self) -> &'static str {
        match self.pick {
            Pick::Throughput => "throughput",
            Pick::P50 => "p50 latency",
            Pick::P99 => "p99 latency",
            Pick::Rss => "resident memory",
            Pick::Disk => "data on disk",
            Pick::DiskAfterDefrag => "on disk after compact + defrag",
            Pick::Restart => "restart to serving",
        }
    }

    /// Whether `ratio` (Synod / upstream) meets the target; None without a target.
    pub fn met(&self, ratio: f64) -> Option<bool> {
        let t = self.target?;
        Some(match self.better {
            Better::Higher => ratio >= t,
            Better::Lower => ratio <= t,
        })
    }

    /// "≥ 2.0" / "≤ 0.5"
    pub fn target_text(&self) -> String {
        match (self.target, self.better) {
            (Some(t), Better::Higher) => format!("≥ {t:.1}"),
            (Some(t), Better::Lower) => format!("≤ {t:.1}"),
            (None, _) => "-".to_string(),
        }
    }
}

const fn m(
    scenario: &'static str,
    label: &'static str,
    pick: Pick,
    better: Better,
    target: Option<f64>,
) -> Metric {
    Metric {
        scenario,
        label,
        pick,
        better,
        target,
    }
}

use Better::{Higher, Lower};
use Pick::*;

/// Every metric of the summary table, in the order shown. Metrics with a target are charted.
pub const METRICS: &[Metric] = &[
    m(
        "put",
        "put, 50 clients / 10 conns",
        Throughput,
        Higher,
        Some(2.0),
    ),
    m("put", "put, 50 clients / 10 conns", P99, Lower, Some(1.0)),
    m("put", "put, 50 clients / 10 conns", P50, Lower, None),
    m(
        "put-1client",
        "put, 1 client",
        Throughput,
        Higher,
        Some(1.5),
    ),
    m("put-1client", "put, 1 client", P99, Lower, None),
    m(
        "put-3member",
        "put, 3-member cluster",
        Throughput,
        Higher,
        Some(1.5),
    ),
    m("put-3member", "put, 3-member cluster", P99, Lower, None),
    m(
        "range-linearizable",
        "range linearizable, 50 clients",
        Throughput,
        Higher,
        Some(2.0),
    ),
    m(
        "range-linearizable",
        "range linearizable, 50 clients",
        P99,
        Lower,
        None,
    ),
    m(
        "range-serializable",
        "range serializable, 50 clients",
        Throughput,
        Higher,
        Some(2.0),
    ),
    m(
        "range-serializable",
        "range serializable, 50 clients",
        P99,
        Lower,
        None,
    ),
    m(
        "txn-put",
        "txn-put, 50 clients",
        Throughput,
        Higher,
        Some(1.5),
    ),
    m("txn-put", "txn-put, 50 clients", P99, Lower, None),
    m(
        "watch",
        "watch, events delivered",
        Throughput,
        Higher,
        Some(1.5),
    ),
    m(
        "lease-keepalive",
        "lease keepalive, 50 clients",
        Throughput,
        Higher,
        Some(1.5),
    ),
    m(
        "lease-keepalive",
        "lease keepalive, 50 clients",
        P99,
        Lower,
        None,
    ),
    m(
        "zk-create",
        "ZooKeeper create, 16 sessions",
        Throughput,
        Higher,
        Some(1.0),
    ),
    m(
        "zk-create",
        "ZooKeeper create, 16 sessions",
        P99,
        Lower,
        None,
    ),
    m(
        "zk-set",
        "ZooKeeper set, 16 sessions",
        Throughput,
        Higher,
        Some(1.0),
    ),
    m("zk-set", "ZooKeeper set, 16 sessions", P99, Lower, None),
    m(
        "zk-get",
        "ZooKeeper get, 16 sessions",
        Throughput,
        Higher,
        Some(1.0),
    ),
    m("zk-get", "ZooKeeper get, 16 sessions", P99, Lower, None),
    m("resources", "after loading the keys", Rss, Lower, Some(0.5)),
    m(
        "resources",
        "after loading the keys",
        Disk,
        Lower,
        Some(1.0),
    ),
    m(
        "resources",
        "after loading the keys",
        DiskAfterDefrag,
        Lower,
        Some(1.0),
    ),
    m(
        "resources",
        "after loading the keys",
        Restart,
        Lower,
        Some(1.0),
    ),
];

/// Growth curve: put throughput and p99 at every store size within this fraction of the best
/// (smallest >= (1 - GROWTH_BAND) x largest), and range latency at the largest store within it
/// of the latency at the smallest, for every result size.
pub const GROWTH_BAND: f64 = 0.2;
