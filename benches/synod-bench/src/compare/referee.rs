//! etcd's own `benchmark` tool (etcd 3.4 tools/benchmark, built by scripts/setup-test-deps) as
//! the neutral referee of the etcd scenarios: the command line of each scenario, and the
//! parsing of its report (etcd's pkg/report: Summary, Requests/sec, Latency distribution,
//! Error distribution) into a [`RunRecord`] with tool "etcd-benchmark".
//!
//! The flags are etcd-benchmark.sh's: `--precise` (more digits only), watch with `--put-rate`
//! (the tool's default 0 panics). Never invents a figure the tool did not print (a missing
//! 99.9% line, below ~1000 samples, is the slowest request instead, and said so in params).

use serde_json::{json, Map, Value};

use crate::record::{Latency, RunRecord};

/// One referee scenario's settings.
#[derive(Clone, Debug)]
pub struct Referee {
    /// The record's scenario name, e.g. "put", "range-linearizable".
    pub scenario: &'static str,
    pub clients: u32,
    pub conns: u32,
    /// The subcommand and its flags.
    pub sub: Vec<String>,
    /// Requests (watch: events expected).
    pub total: u64,
    /// watch: (puts, watchers).
    pub watch: Option<(u64, u64)>,
}

impl Referee {
    pub fn put(scenario: &'static str, clients: u32, conns: u32, total: u64) -> Referee {
        Referee {
            scenario,
            clients,
            conns,
            sub: strings(&[
                "put",
                "--key-size=8",
                "--val-size=256",
                &format!("--total={total}"),
            ]),
            total,
            watch: None,
        }
    }

    /// A range of `key` (which must exist), linearizable or serializable.
    pub fn range(linearizable: bool, key: &str, total: u64) -> Referee {
        let c = if linearizable { "l" } else { "s" };
        Referee {
            scenario: if linearizable {
                "range-linearizable"
            } else {
                "range-serializable"
            },
            clients: 50,
            conns: 10,
            sub: strings(&[
                "range",
                key,
                &format!("--consistency={c}"),
                &format!("--total={total}"),
            ]),
            total,
            watch: None,
        }
    }

    pub fn txn_put(total: u64) -> Referee {
        Referee {
            scenario: "txn-put",
            clients: 50,
            conns: 10,
            sub: strings(&[
                "txn-put",
                "--key-size=8",
                "--val-size=256",
                &format!("--total={total}"),
            ]),
            total,
            watch: None,
        }
    }

    /// 1000 watchers (10 streams of 100) on one key, then `puts` unthrottled puts from 10 clients.
    pub fn watch(puts: u64) -> Referee {
        let watchers = 1000;
        Referee {
            scenario: "watch",
            clients: 10,
            conns: 10,
            sub: strings(&[
                "watch",
                "--streams=10",
                "--watch-per-stream=100",
                &format!("--put-total={puts}"),
                "--put-rate=100000",
            ]),
            total: puts * watchers,
            watch: Some((puts, watchers)),
        }
    }

    pub fn lease_keepalive(total: u64) -> Referee {
        Referee {
            scenario: "lease-keepalive",
            clients: 50,
            conns: 10,
            sub: strings(&["lease-keepalive", &format!("--total={total}")]),
            total,
            watch: None,
        }
    }

    /// Every argument after `--endpoints=...`.
    pub fn args(&self) -> Vec<String> {
        let mut a = strings(&[
            "--precise",
            &format!("--clients={}", self.clients),
            &format!("--conns={}", self.conns),
        ]);
        a.extend(self.sub.iter().cloned());
        a
    }

    pub fn command_line(&self) -> String {
        format!("benchmark {}", self.args().join(" "))
    }

    /// The tool's output -> a record.
    pub fn parse(&self, output: &str, endpoint: &str) -> Result<RunRecord, String> {
        let lines: Vec<&str> = output.split(['\r', '\n']).collect();
        let errors = error_count(&lines);
        let mut params = Map::new();
        params.insert("args".into(), Value::String(self.args().join(" ")));
        let mut rec = RunRecord {
            tool: "etcd-benchmark".into(),
            protocol: "etcd".into(),
            scenario: self.scenario.into(),
            endpoint: endpoint.into(),
            clients: self.clients,
            conns: self.conns,
            total: self.total,
            ok: 0,
            errors,
            elapsed_secs: 0.0,
            throughput: 0.0,
            unit: "req/s".into(),
            latency_ms: None,
            params,
        };
        match self.watch {
            None => {
                let r = section(&lines, None).map_err(|e| with_errors(e, errors))?;
                rec.ok = self.total.saturating_sub(errors);
                rec.elapsed_secs = r.total;
                rec.throughput = r.rps;
                rec.latency_ms = Some(r.latency(&mut rec.params));
            }
            Some((puts, watchers)) => {
                let c = section(&lines, Some("Watch creation summary:"))
                    .map_err(|e| with_errors(e, errors))?;
                let e = section(&lines, Some("Watch events received summary:"))
                    .map_err(|e| with_errors(e, errors))?;
                rec.elapsed_secs = e.total;
                rec.throughput = e.rps;
                rec.unit = "events/s".into();
                rec.ok = (e.rps * e.total).round() as u64;
                let p = &mut rec.params;
                p.insert("puts".into(), json!(puts));
                p.insert("watchers".into(), json!(watchers));
                p.insert("watch_creation_per_sec".into(), json!(c.rps));
                p.insert(
                    "watch_creation_p50_ms".into(),
                    json!(c.pct("50").unwrap_or(c.slowest) * 1e3),
                );
                p.insert(
                    "watch_creation_p99_ms".into(),
                    json!(c.pct("99").unwrap_or(c.slowest) * 1e3),
                );
            }
        }
        rec.params.insert("key_size".into(), json!(8));
        if self.scenario != "lease-keepalive" && self.watch.is_none() {
            rec.params.insert("val_size".into(), json!(256));
        }
        Ok(rec)
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn with_errors(e: String, errors: u64) -> String {
    if errors > 0 {
        format!("{e} ({errors} requests failed: see Error distribution)")
    } else {
        e
    }
}

/// One pkg/report summary, in seconds.
struct Report {
    total: f64,
    slowest: f64,
    average: f64,
    rps: f64,
    pcts: Vec<(String, f64)>,
}

impl Report {
    fn pct(&self, p: &str) -> Option<f64> {
        self.pcts.iter().find(|(k, _)| k == p).map(|(_, v)| *v)
    }

    fn latency(&self, params: &mut Map<String, Value>) -> Latency {
        let p99 = self.pct("99");
        let p999 = self.pct("99.9");
        if p99.is_none() || p999.is_none() {
            params.insert("percentiles_missing_use_slowest".into(), json!(true));
        }
        Latency {
            p50: self.pct("50").unwrap_or(self.slowest) * 1e3,
            p99: p99.unwrap_or(self.slowest) * 1e3,
            p999: p999.unwrap_or(self.slowest) * 1e3,
            max: self.slowest * 1e3,
            mean: self.average * 1e3,
        }
    }
}

/// The report after the line `header` (up to the next "... summary:" line), or the only one.
fn section(lines: &[&str], header: Option<&str>) -> Result<Report, String> {
    let mut on = header.is_none();
    let mut summaries = 0;
    let (mut total, mut slowest, mut average, mut rps) = (None, None, None, None);
    let mut pcts = Vec::new();
    let what = header.unwrap_or("the benchmark report");
    for line in lines {
        let t = line.trim();
        if let Some(h) = header {
            if t == h {
                on = true;
                continue;
            }
            if on && t.ends_with("summary:") {
                break;
            }
        }
        if !on {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        match f.as_slice() {
            ["Summary:"] => summaries += 1,
            ["Total:", v, ..] => total = total.or(num(v)),
            ["Slowest:", v, ..] => slowest = slowest.or(num(v)),
            ["Average:", v, ..] => average = average.or(num(v)),
            ["Requests/sec:", v, ..] => rps = rps.or(num(v)),
            [p, "in", v, "secs."] if p.ends_with('%') => {
                if let Some(v) = num(v) {
                    pcts.push((p.trim_end_matches('%').to_string(), v));
                }
            }
            _ => {}
        }
    }
    if summaries != 1 {
        return Err(format!("{what}: expected one Summary, found {summaries}"));
    }
    match (total, slowest, average, rps) {
        (Some(total), Some(slowest), Some(average), Some(rps)) if total > 0.0 && rps > 0.0 => {
            Ok(Report {
                total,
                slowest,
                average,
                rps,
                pcts,
            })
        }
        _ => Err(format!(
            "{what}: no Total, Slowest, Average and Requests/sec figures"
        )),
    }
}

fn num(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// The sum of the counts under "Error distribution:" ("  [N]\tmessage").
fn error_count(lines: &[&str]) -> u64 {
    let mut on = false;
    let mut n = 0;
    for l in lines {
        let t = l.trim();
        if t == "Error distribution:" {
            on = true;
            continue;
        }
        if on {
            match t.strip_prefix('[').and_then(|r| r.split_once(']')) {
                Some((count, _)) => n += count.parse::<u64>().unwrap_or(1),
                None if t.is_empty() => {}
                None => on = false,
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT: &str = " 0 / 300    0.00%\r 300 / 300  100.00% 0s\n\nSummary:\n  Total:\t0.075034296 secs.\n  \
        Slowest:\t0.006785443 secs.\n  Fastest:\t0.00031876 secs.\n  Average:\t0.0012416911199999991 secs.\n  \
        Stddev:\t0.0011937488652411106 secs.\n  Requests/sec:\t3998.17171603769\n\nResponse time histogram:\n  \
        0.00031876 [1]\t|\n\nLatency distribution:\n  10% in 0.000494664 secs.\n  50% in 0.000884883 secs.\n  \
        99% in 0.006553962 secs.\n\n";

    #[test]
    fn parses_a_simple_report() {
        let r = Referee::put("put", 5, 2, 300);
        let rec = r.parse(PUT, "127.0.0.1:1").unwrap();
        assert_eq!(rec.errors, 0);
        assert_eq!(rec.ok, 300);
        assert!((rec.throughput - 3998.17).abs() < 0.01);
        let l = rec.latency_ms.unwrap();
        assert!((l.p50 - 0.884883).abs() < 1e-6);
        assert!((l.p99 - 6.553962).abs() < 1e-6);
        assert!((l.p999 - 6.785443).abs() < 1e-6, "no 99.9% line: slowest");
    }

    #[test]
    fn counts_errors_and_refuses_missing_reports() {
        let with_errors = format!(
            "{PUT}\nError distribution:\n  [3]\trpc error: code = Unavailable\n  [2]\tother\n"
        );
        let rec = Referee::put("put", 5, 2, 300)
            .parse(&with_errors, "e")
            .unwrap();
        assert_eq!((rec.errors, rec.ok), (5, 295));
        assert!(Referee::put("put", 5, 2, 300)
            .parse("\nError distribution:\n  [300]\tx\n", "e")
            .is_err());
        assert!(Referee::put("put", 5, 2, 300)
            .parse(&format!("{PUT}{PUT}"), "e")
            .is_err());
    }

    #[test]
    fn parses_watch_sections() {
        let out = format!(
            "Watch creation summary:\n{PUT}\n 1000 / 1000 100%\nWatch events received summary:\n{}",
            PUT.replace("3998.17171603769", "31159.2")
        );
        let rec = Referee::watch(2).parse(&out, "e").unwrap();
        assert_eq!(rec.unit, "events/s");
        assert!((rec.throughput - 31159.2).abs() < 1e-6);
        assert!(rec.latency_ms.is_none());
        assert_eq!(rec.total, 2000);
    }
}
