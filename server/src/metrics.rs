//! `/metrics`: a few of etcd's Prometheus metrics, under etcd's names, in the text format.
//!
//! Only gauges Synod can report truthfully are exported; each is read when scraped from the
//! part of the server that owns it. This module renders text and never keeps state.

use std::fmt::Write as _;

/// One gauge: name, help text, value.
pub struct Gauge {
    pub name: &'static str,
    pub help: &'static str,
    pub value: f64,
}

/// The Prometheus text exposition (format 0.0.4) of `gauges`.
pub fn render(gauges: &[Gauge]) -> String {
    let mut out = String::new();
    for g in gauges {
        let _ = writeln!(out, "# HELP {} {}", g.name, g.help);
        let _ = writeln!(out, "# TYPE {} gauge", g.name);
        let _ = writeln!(out, "{} {}", g.name, g.value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_render_as_prometheus_text() {
        let text = render(&[Gauge {
            name: "etcd_server_has_leader",
            help: "Whether or not a leader exists. 1 is existence, 0 is not.",
            value: 1.0,
        }]);
        assert_eq!(
            text,
            "# HELP etcd_server_has_leader Whether or not a leader exists. 1 is existence, 0 is not.\n\
             # TYPE etcd_server_has_leader gauge\n\
             etcd_server_has_leader 1\n"
        );
    }
}
