//! chart.svg, written by hand: one horizontal bar per metric with a target, its length the
//! ratio Synod / upstream (medians), a vertical line at 1.0 (parity) and a tick at the target;
//! green when the target is met, red when not. Only draws what it is given; never reads files.

use std::fmt::Write;

use super::lines::{Line, Machine};
use super::markdown::medians;
use super::targets::{Better, METRICS};

const WIDTH: f64 = 900.0;
const LABEL_W: f64 = 380.0;
const PLOT_RIGHT: f64 = 800.0;
const ROW_H: f64 = 26.0;
const TOP: f64 = 64.0;

struct Bar {
    label: String,
    ratio: Option<f64>,
    target: f64,
    met: Option<bool>,
}

pub fn render(lines: &[Line]) -> String {
    let machine = super::lines::machine(lines);
    let bars: Vec<Bar> = METRICS
        .iter()
        .filter_map(|m| {
            let target = m.target?;
            let (u, s, r) = medians(lines, m);
            if u.is_none() && s.is_none() {
                return None;
            }
            let arrow = if m.better == Better::Higher {
                "↑"
            } else {
                "↓"
            };
            Some(Bar {
                label: format!("{}: {} {arrow}", short(m.label, m.scenario), m.figure()),
                ratio: r,
                target,
                met: r.and_then(|r| m.met(r)),
            })
        })
        .collect();
    draw(&machine, &bars)
}

/// The ZooKeeper rows say so; the resources row's label is the figure alone.
fn short(label: &str, scenario: &str) -> String {
    if scenario == "resources" {
        "resources".to_string()
    } else {
        label.to_string()
    }
}

fn draw(machine: &Machine, bars: &[Bar]) -> String {
    // Axis from 0 to the largest ratio or target, rounded up to a half, at least 2.5.
    let most = bars
        .iter()
        .flat_map(|b| [b.ratio.unwrap_or(0.0), b.target])
        .fold(2.5f64, f64::max)
        .min(10.0);
    let xmax = (most * 1.08 * 2.0).ceil() / 2.0;
    let x = |v: f64| LABEL_W + (v.clamp(0.0, xmax) / xmax) * (PLOT_RIGHT - LABEL_W);
    let bottom = TOP + ROW_H * bars.len() as f64;
    let height = bottom + 70.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>"#
    );
    let title = format!(
        "Synod / upstream (etcd 3.4, ZooKeeper 3.8): medians of {} round(s){}",
        machine.rounds,
        if machine.smoke {
            " — SMOKE RUN, figures meaningless"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        r#"<text x="12" y="22" font-size="15" font-weight="bold">{}</text>"#,
        esc(&title)
    );
    // The Synod line up to the binary's path (commit and whether it was dirty).
    let synod = machine.synod.split(", binary").next().unwrap_or("");
    let sub = format!(
        "{}; {} cores, {:.0} GiB, Linux {}; {}; Synod {}",
        machine.date,
        machine.cores,
        machine.memory_bytes as f64 / (1024.0 * 1024.0 * 1024.0),
        machine.kernel,
        machine.etcd,
        synod
    );
    let _ = writeln!(
        s,
        r##"<text x="12" y="40" fill="#555">{}</text>"##,
        esc(&sub)
    );

    // Grid and axis labels.
    let step = if xmax > 5.0 { 1.0 } else { 0.5 };
    let mut v = 0.0;
    while v <= xmax + 1e-9 {
        let gx = x(v);
        let _ = writeln!(
            s,
            r##"<line x1="{gx:.1}" y1="{TOP}" x2="{gx:.1}" y2="{bottom}" stroke="#e4e4e4"/>"##
        );
        let _ = writeln!(
            s,
            r#"<text x="{gx:.1}" y="{:.1}" text-anchor="middle">{v}×</text>"#,
            bottom + 16.0
        );
        v += step;
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 8.0,
            y + ROW_H * 0.65,
            esc(&b.label)
        );
        let color = match b.met {
            Some(true) => "#2e7d32",
            Some(false) => "#c62828",
            None => "#9e9e9e",
        };
        if let Some(r) = b.ratio {
            let w = x(r) - x(0.0);
            let _ = writeln!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}" fill="{color}"/>"#,
                x(0.0),
                y + 5.0,
                ROW_H - 10.0
            );
            let over = if r > xmax { " ▶" } else { "" };
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" fill="{color}">{r:.2}{over}</text>"#,
                x(r).max(x(b.target)) + 6.0,
                y + ROW_H * 0.65
            );
        } else {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" fill="#777">no figure</text>"##,
                x(0.0) + 6.0,
                y + ROW_H * 0.65
            );
        }
        // The target: a black tick across the row.
        let tx = x(b.target);
        let _ = writeln!(
            s,
            r#"<line x1="{tx:.1}" y1="{:.1}" x2="{tx:.1}" y2="{:.1}" stroke="black" stroke-width="3"/>"#,
            y + 2.0,
            y + ROW_H - 2.0
        );
    }
    // Parity.
    let px = x(1.0);
    let _ = writeln!(
        s,
        r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#1565c0" stroke-width="1.5" stroke-dasharray="5,3"/>"##,
        TOP - 6.0,
        bottom + 4.0
    );
    let _ = writeln!(
        s,
        r##"<text x="{px:.1}" y="{:.1}" text-anchor="middle" fill="#1565c0">parity</text>"##,
        TOP - 10.0
    );
    let ly = bottom + 44.0;
    let _ = writeln!(
        s,
        r##"<text x="12" y="{ly:.1}" fill="#333">↑ higher is better (bar should reach past the tick) · ↓ lower is better (bar should stop before the tick) · black tick: target · green: met · red: not met</text>"##
    );
    let _ = writeln!(s, "</svg>");
    s
}

fn esc(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
