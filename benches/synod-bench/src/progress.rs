//! The progress bar of a run: done / total and the rate, on stderr.
//!
//! It owns how progress is shown, and only that: the figures of a run come from the scenarios'
//! own counters, never from here. It must never write to stdout (the summary and `--json -`
//! go there) and never draw when `--quiet` is given or stderr is not a terminal (logs and
//! pipes stay clean); a hidden bar still counts, so a timed-out run can say how far it got.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// A cheap handle (clones share one bar), safe to update from every task.
#[derive(Clone)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A bar for `total` units of `what` ("requests", "events", ...), hidden if `quiet` or if
    /// stderr is not a terminal.
    pub fn new(what: &str, total: u64, quiet: bool) -> Progress {
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            // A few redraws per second: enough to watch, nothing against the load's CPU.
            ProgressDrawTarget::stderr_with_hz(4)
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        let template = format!(
            "{{elapsed_precise}} [{{wide_bar}}] {{human_pos}}/{{human_len}} {what} {{rate}} {{msg}}"
        );
        // The template is ours and valid; should indicatif ever reject it, the plain default
        // bar is still a progress bar.
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", s.per_sec());
            })
            .progress_chars("=> ");
        bar.set_style(style);
        Progress { bar }
    }

    /// Marks the start of the measured phase: the elapsed time and rate count from here, not
    /// from the setup before it.
    pub fn start(&self, msg: &'static str) {
        self.bar.set_message(msg);
        self.bar.reset_elapsed();
        self.bar.reset_eta();
        self.bar.enable_steady_tick(Duration::from_millis(250));
    }

    /// A short note next to the bar (the current phase).
    pub fn note(&self, msg: &'static str) {
        self.bar.set_message(msg);
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Units done so far (counted even when the bar is hidden).
    pub fn done(&self) -> u64 {
        self.bar.position()
    }

    /// Removes the bar, so that the summary that follows starts on a clean line.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
