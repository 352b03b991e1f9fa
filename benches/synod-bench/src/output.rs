//! How the result of one load-generator run leaves the process: the human summary and the
//! [`RunRecord`] as JSON (`--json <path>`, `-` for stdout), for both protocols alike.
//!
//! It owns the summary's layout and where each output goes: with `--json -` stdout carries the
//! record alone (one JSON object, so that it can be piped) and the summary moves to stderr.
//! It must never compute a figure: it prints what the record holds.

use std::io::Write;

use crate::record::RunRecord;

/// Where the run's outputs go, from `--json`.
pub struct Sink<'a> {
    json: Option<&'a str>,
}

impl<'a> Sink<'a> {
    pub fn new(json: Option<&'a str>) -> Sink<'a> {
        Sink { json }
    }

    /// Prints the summary (plus the scenario's `extra` lines) and writes the record where
    /// `--json` asked. An error means the record could not be written.
    pub fn emit(&self, rec: &RunRecord, extra: &[String]) -> Result<(), String> {
        let summary = summary(rec, extra);
        if self.json == Some("-") {
            eprint!("{summary}");
        } else {
            print!("{summary}");
        }
        let Some(path) = self.json else {
            return Ok(());
        };
        let text =
            serde_json::to_string_pretty(rec).map_err(|e| format!("encoding the record: {e}"))?;
        if path == "-" {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}")
                .and_then(|()| out.flush())
                .map_err(|e| format!("writing the record to stdout: {e}"))
        } else {
            std::fs::write(path, format!("{text}\n")).map_err(|e| format!("writing {path}: {e}"))
        }
    }
}

/// The human summary: what ran, how much got done how fast, the latencies, the errors by code
/// (from `params.errors_by_code`), then the scenario's own lines.
pub fn summary(rec: &RunRecord, extra: &[String]) -> String {
    let mut s = String::new();
    s += &format!(
        "{} {} against {}: {} clients, {} connections\n",
        rec.protocol, rec.scenario, rec.endpoint, rec.clients, rec.conns
    );
    s += &format!(
        "{} of {} ok in {:.3} s: {:.1} {}\n",
        rec.ok, rec.total, rec.elapsed_secs, rec.throughput, rec.unit
    );
    match &rec.latency_ms {
        Some(l) => {
            s += &format!(
                "latency ms: mean {:.3}  p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
                l.mean, l.p50, l.p99, l.p999, l.max
            )
        }
        None => s += "latency ms: none recorded\n",
    }
    if rec.errors == 0 {
        s += "errors: 0\n";
    } else {
        let by_code = rec
            .params
            .get("errors_by_code")
            .and_then(|v| v.as_object())
            .map(|m| {
                m.iter()
                    .map(|(code, n)| format!("{code} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        s += &format!("errors: {} (by code: {by_code})\n", rec.errors);
    }
    for line in extra {
        s += line;
        s.push('\n');
    }
    s
}
