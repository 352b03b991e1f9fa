//! The comparison's scenarios: their names, what each one runs (etcd's benchmark tool, a
//! synod-bench ZooKeeper run, the resources or the growth curve), against whom, and how much
//! load (full, `--scale`d, or the smoke's tiny totals). Only describes; never runs anything.

use super::referee::Referee;

/// Every scenario, in the order a full comparison runs them.
pub const ALL: &[&str] = &[
    "put",
    "put-1client",
    "put-3member",
    "range-linearizable",
    "range-serializable",
    "txn-put",
    "watch",
    "lease-keepalive",
    "zk-create",
    "zk-set",
    "zk-get",
    "resources",
    "growth",
];

/// The key the range scenarios read (put once, 256 bytes, before the run).
pub const RANGE_KEY: &str = "00000000";

/// Load per run.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub put: u64,
    pub put_1client: u64,
    pub put_3member: u64,
    pub range: u64,
    pub txn_put: u64,
    pub watch_puts: u64,
    pub keepalive: u64,
    pub zk: u64,
    pub zk_nodes: u64,
    /// resources: distinct keys loaded.
    pub keys: u64,
    /// growth: store sizes, ascending.
    pub growth: Vec<u64>,
    /// growth: puts per put run.
    pub growth_put: u64,
    /// growth: (keys per range, ranges per run).
    pub growth_ranges: Vec<(u64, u64)>,
    /// Seconds one tool run may take.
    pub timeout: u64,
}

impl Sizes {
    pub fn new(
        smoke: bool,
        scale: f64,
        keys: Option<u64>,
        growth: Option<Vec<u64>>,
        timeout: Option<u64>,
    ) -> Sizes {
        let s = |n: u64| ((n as f64 * scale).round() as u64).max(1);
        let mut sizes = if smoke {
            Sizes {
                put: s(200),
                put_1client: s(200),
                put_3member: s(200),
                range: s(200),
                txn_put: s(200),
                watch_puts: s(20),
                keepalive: s(200),
                zk: s(200),
                zk_nodes: 100,
                keys: 2000,
                growth: vec![500, 1000, 2000],
                growth_put: s(200),
                growth_ranges: vec![(1, s(50)), (10, s(50)), (100, s(50)), (1000, s(50))],
                timeout: 120,
            }
        } else {
            Sizes {
                put: s(50_000),
                put_1client: s(5_000),
                put_3member: s(30_000),
                range: s(100_000),
                txn_put: s(50_000),
                watch_puts: s(2_000),
                keepalive: s(50_000),
                zk: s(20_000),
                zk_nodes: 1000,
                keys: 1_000_000,
                growth: vec![10_000, 100_000, 1_000_000],
                growth_put: s(20_000),
                growth_ranges: vec![
                    (1, s(5_000)),
                    (10, s(5_000)),
                    (100, s(2_000)),
                    (1000, s(500)),
                ],
                timeout: 900,
            }
        };
        if let Some(k) = keys {
            sizes.keys = k.max(1);
        }
        if let Some(mut g) = growth {
            g.retain(|&n| n > 0);
            g.sort_unstable();
            g.dedup();
            sizes.growth = g;
        }
        if let Some(t) = timeout {
            sizes.timeout = t.max(1);
        }
        sizes
    }
}

/// What a scenario runs.
pub enum Kind {
    /// etcd's benchmark tool against a cluster of this many members (etcd, then Synod).
    Referee(Referee, usize),
    /// `synod-bench zk <op>` against ZooKeeper and Synod's embedded gateway.
    Zk(&'static str),
    Resources,
    Growth,
}

impl Kind {
    pub fn of(scenario: &str, sizes: &Sizes) -> Option<Kind> {
        Some(match scenario {
            "put" => Kind::Referee(Referee::put("put", 50, 10, sizes.put), 1),
            "put-1client" => Kind::Referee(Referee::put("put", 1, 1, sizes.put_1client), 1),
            "put-3member" => Kind::Referee(Referee::put("put", 50, 10, sizes.put_3member), 3),
            "range-linearizable" => Kind::Referee(Referee::range(true, RANGE_KEY, sizes.range), 1),
            "range-serializable" => Kind::Referee(Referee::range(false, RANGE_KEY, sizes.range), 1),
            "txn-put" => Kind::Referee(Referee::txn_put(sizes.txn_put), 1),
            "watch" => Kind::Referee(Referee::watch(sizes.watch_puts), 1),
            "lease-keepalive" => Kind::Referee(Referee::lease_keepalive(sizes.keepalive), 1),
            "zk-create" => Kind::Zk("create"),
            "zk-set" => Kind::Zk("set"),
            "zk-get" => Kind::Zk("get"),
            "resources" => Kind::Resources,
            "growth" => Kind::Growth,
            _ => return None,
        })
    }

    pub fn uses_zookeeper(&self) -> bool {
        matches!(self, Kind::Zk(_))
    }

    pub fn uses_benchmark(&self) -> bool {
        matches!(self, Kind::Referee(..))
    }
}

/// The scenarios named on the command line (groups: all, etcd, zk), each once, in ALL's order.
pub fn select(names: &[String]) -> Result<Vec<&'static str>, String> {
    if names.is_empty() {
        return Ok(ALL.to_vec());
    }
    let mut chosen = Vec::new();
    for n in names {
        let group: Vec<&'static str> = match n.as_str() {
            "all" => ALL.to_vec(),
            "etcd" => ALL
                .iter()
                .copied()
                .filter(|s| !s.starts_with("zk-") && *s != "resources" && *s != "growth")
                .collect(),
            "zk" => ALL
                .iter()
                .copied()
                .filter(|s| s.starts_with("zk-"))
                .collect(),
            other => match ALL.iter().find(|s| **s == other) {
                Some(s) => vec![*s],
                None => {
                    return Err(format!(
                        "unknown scenario '{other}' (known: {}, or all, etcd, zk)",
                        ALL.join(" ")
                    ))
                }
            },
        };
        chosen.extend(group);
    }
    Ok(ALL.iter().copied().filter(|s| chosen.contains(s)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection() {
        assert_eq!(select(&[]).unwrap().len(), ALL.len());
        assert_eq!(
            select(&["zk".into(), "put".into()]).unwrap(),
            vec!["put", "zk-create", "zk-set", "zk-get"]
        );
        assert!(select(&["nope".into()]).is_err());
        let sizes = Sizes::new(true, 1.0, None, None, None);
        assert!(ALL.iter().all(|s| Kind::of(s, &sizes).is_some()));
    }
}
