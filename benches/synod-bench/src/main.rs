//! synod-bench: load generator for Synod's two faces and the side-by-side comparison with
//! upstream.
//!
//!   synod-bench etcd <put|range|txn-put|watch|lease-keepalive> [options]   one etcd v3 run
//!   synod-bench zk <create|set|get|watch> [options]                        one ZooKeeper run
//!   synod-bench compare [options]     etcd 3.4, ZooKeeper 3.8 and Synod, every scenario, alternating
//!   synod-bench report <runs.jsonl>   the markdown table and SVG chart of a comparison
//!
//! Every run prints a human summary on stdout, a progress bar on stderr (when it is a terminal)
//! and, with `--json <file>` (or `-`), its [`record::RunRecord`].

mod compare;
mod etcd;
mod latency;
mod output;
mod progress;
mod record;
mod report;
mod zk;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "synod-bench",
    about = "Load generator and comparison for etcd v3 and ZooKeeper"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One run of an etcd v3 scenario against any etcd v3 server.
    Etcd(etcd::EtcdArgs),
    /// One run of a ZooKeeper scenario against any ZooKeeper server.
    Zk(zk::ZkArgs),
    /// Start etcd 3.4, ZooKeeper 3.8 and Synod and run every scenario against each.
    Compare(compare::CompareArgs),
    /// Write the markdown table and SVG chart of a comparison's runs.
    Report(report::ReportArgs),
}

fn main() {
    let cli = Cli::parse();
    // Each subcommand returns the process exit status it documents.
    let code = match cli.command {
        Command::Etcd(a) => etcd::main(a),
        Command::Zk(a) => zk::main(a),
        Command::Compare(a) => compare::main(a),
        Command::Report(a) => report::main(a),
    };
    std::process::exit(code);
}
