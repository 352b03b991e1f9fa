//! `synod-bench report <runs.jsonl> [--out-dir D]`: the markdown table (results.md) and the
//! chart (chart.svg) of a comparison, from its runs.jsonl alone, so a report can be regenerated
//! (or restyled) without running anything again. It never starts a server or measures.

pub mod lines;
mod markdown;
mod stats;
mod svg;
pub mod targets;

use std::path::{Path, PathBuf};

use clap::Args;

pub use lines::Line;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The comparison's runs.jsonl.
    pub runs: PathBuf,
    /// Where to write results.md and chart.svg (default: the directory of runs.jsonl).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

pub fn main(args: ReportArgs) -> i32 {
    let text = match std::fs::read_to_string(&args.runs) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "synod-bench report: cannot read {}: {e}",
                args.runs.display()
            );
            return 2;
        }
    };
    let lines = match lines::read(&text) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("synod-bench report: {}: {e}", args.runs.display());
            return 2;
        }
    };
    let dir = args.out_dir.unwrap_or_else(|| {
        args.runs
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    match write(&lines, &dir) {
        Ok(()) => {
            println!("{}", dir.join("results.md").display());
            println!("{}", dir.join("chart.svg").display());
            0
        }
        Err(e) => {
            eprintln!("synod-bench report: {e}");
            2
        }
    }
}

/// Writes `results.md` and `chart.svg` into `dir` (created if missing).
pub fn write(lines: &[Line], dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let md = dir.join("results.md");
    std::fs::write(&md, markdown::render(lines))
        .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    let chart = dir.join("chart.svg");
    std::fs::write(&chart, svg::render(lines))
        .map_err(|e| format!("cannot write {}: {e}", chart.display()))?;
    Ok(())
}
