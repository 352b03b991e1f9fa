//! Figures out of the lines: per metric and server, the values of every round and their median;
//! and how a figure is written. Pure functions over the lines; never does any I/O.

use super::lines::{Line, Run};
use super::targets::{Metric, Pick};

/// The values of one metric for one server, one per round, in round order.
pub fn values(lines: &[Line], metric: &Metric, server: &str) -> Vec<f64> {
    let mut v: Vec<(u32, f64)> = Vec::new();
    for line in lines {
        match line {
            Line::Run(r) if r.scenario == metric.scenario && r.server == server => {
                if let Some(x) = run_figure(r, metric.pick) {
                    v.push((r.round, x));
                }
            }
            Line::Resources(r) if metric.scenario == "resources" && r.server == server => {
                let x = match metric.pick {
                    Pick::Rss => r.rss_bytes as f64,
                    Pick::Disk => r.disk_bytes as f64,
                    Pick::DiskAfterDefrag => r.disk_after_defrag_bytes as f64,
                    Pick::Restart => r.restart_secs,
                    _ => continue,
                };
                v.push((r.round, x));
            }
            _ => {}
        }
    }
    v.sort_by_key(|&(round, _)| round);
    v.into_iter().map(|(_, x)| x).collect()
}

/// Throughput, p50 or p99 of a run (None for the resource figures, or without latencies).
pub fn run_figure(run: &Run, pick: Pick) -> Option<f64> {
    let lat = run.record.latency_ms.as_ref();
    match pick {
        Pick::Throughput => Some(run.record.throughput),
        Pick::P50 => lat.map(|l| l.p50),
        Pick::P99 => lat.map(|l| l.p99),
        _ => None,
    }
}

pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Synod / upstream, when both are known and upstream's is not 0.
pub fn ratio(synod: Option<f64>, upstream: Option<f64>) -> Option<f64> {
    match (synod, upstream) {
        (Some(s), Some(u)) if u > 0.0 => Some(s / u),
        _ => None,
    }
}

/// A figure as the report writes it, with its unit.
pub fn format(pick: Pick, unit: &str, x: f64) -> String {
    match pick {
        Pick::Throughput => format!("{} {unit}", thousands(x)),
        Pick::P50 | Pick::P99 => format!("{} ms", ms(x)),
        Pick::Rss | Pick::Disk | Pick::DiskAfterDefrag => bytes(x),
        Pick::Restart => format!("{x:.2} s"),
    }
}

/// Milliseconds with 2 decimals, or 3 significant digits below 0.1 ms.
pub fn ms(x: f64) -> String {
    if x < 0.1 {
        format!("{x:.3}")
    } else {
        format!("{x:.2}")
    }
}

pub fn bytes(x: f64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if x >= 1024.0 * MIB {
        format!("{:.2} GiB", x / (1024.0 * MIB))
    } else {
        format!("{:.1} MiB", x / MIB)
    }
}

/// Rounded to an integer, with thousands separators: 1234567.8 -> "1,234,568".
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "-".to_string();
    }
    let n = x.round().abs() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if x < -0.5 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(16174.2), "16,174");
        assert_eq!(thousands(1234567.8), "1,234,568");
    }
}
