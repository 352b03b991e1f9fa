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

/// The server's CPU per completed operation of a run, in µs.
pub fn server_us_per_op(run: &Run) -> Option<f64> {
    let cpu = run.cpu.as_ref()?;
    per_op(run, cpu.server_secs)
}

/// The rest of the machine's CPU (load tool, OS) per completed operation of a run, in µs.
pub fn rest_us_per_op(run: &Run) -> Option<f64> {
    let cpu = run.cpu.as_ref()?;
    per_op(run, (cpu.machine_secs - cpu.server_secs).max(0.0))
}

/// The share of all `cores` that was busy during a run.
pub fn busy_share(run: &Run, cores: usize) -> Option<f64> {
    let cpu = run.cpu.as_ref()?;
    (cores > 0 && cpu.wall_secs > 0.0).then(|| cpu.machine_secs / (cpu.wall_secs * cores as f64))
}

fn per_op(run: &Run, secs: f64) -> Option<f64> {
    (run.record.ok > 0).then(|| secs * 1e6 / run.record.ok as f64)
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

/// Microseconds, one decimal.
pub fn micros(x: f64) -> String {
    format!("{x:.1}")
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

    fn run_with(ok: u64, cpu: &str) -> Run {
        let line = format!(
            r#"{{"kind":"run","scenario":"put","server":"synod","round":1,
               "record":{{"tool":"t","protocol":"etcd","scenario":"put","endpoint":"e",
               "clients":1,"conns":1,"total":{ok},"ok":{ok},"errors":0,"elapsed_secs":1.0,
               "throughput":1.0,"unit":"req/s","latency_ms":null}}{cpu}}}"#
        );
        let line = line.replace('\n', "");
        match crate::report::lines::read(&line).expect("parses").pop() {
            Some(Line::Run(r)) => r,
            _ => panic!("not a run"),
        }
    }

    #[test]
    fn cpu_per_operation_splits_the_server_from_the_rest_of_the_machine() {
        let cpu = r#","cpu":{"server_secs":0.5,"machine_secs":2.0,"wall_secs":1.25}"#;
        let run = run_with(10_000, cpu);
        assert_eq!(server_us_per_op(&run), Some(50.0));
        assert_eq!(rest_us_per_op(&run), Some(150.0));
        assert_eq!(busy_share(&run, 2), Some(0.8));
        // Lines written before CPU was measured, and runs that completed nothing, have none.
        let old = run_with(10_000, "");
        assert_eq!((server_us_per_op(&old), busy_share(&old, 2)), (None, None));
        assert_eq!(server_us_per_op(&run_with(0, cpu)), None);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(16174.2), "16,174");
        assert_eq!(thousands(1234567.8), "1,234,568");
    }
}
