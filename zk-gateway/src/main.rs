//! `synod-zk`: the ZooKeeper gateway as a standalone process in front of any etcd v3 cluster
//! (upstream etcd 3.4+ or Synod). Parses flags, connects, serves; nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use zk_gateway::{bind, serve, Config, Remote};

/// ZooKeeper wire protocol gateway over an etcd v3 cluster.
#[derive(Parser, Debug)]
#[command(name = "synod-zk", version)]
struct Args {
    /// etcd v3 endpoints, comma-separated (http://host:port).
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:2379")]
    endpoints: Vec<String>,
    /// Address for ZooKeeper clients.
    #[arg(long, default_value = "127.0.0.1:2181")]
    zk_listen_addr: SocketAddr,
    /// Key prefix under which znodes and sessions live in etcd.
    #[arg(long, default_value = "/zk/")]
    zk_prefix: String,
    /// ZooKeeper tickTime in ms (session timeouts default to 2x..20x of it).
    #[arg(long, default_value_t = 2000)]
    zk_tick_time: i32,
    /// minSessionTimeout in ms (default 2 x tick time).
    #[arg(long)]
    zk_min_session_timeout: Option<i32>,
    /// maxSessionTimeout in ms (default 20 x tick time).
    #[arg(long)]
    zk_max_session_timeout: Option<i32>,
    /// How often empty containers and expired TTL nodes are deleted, in ms.
    #[arg(long, default_value_t = 60_000)]
    zk_container_check_interval: u64,
    /// Four-letter words allowed, comma-separated ("*" for all).
    #[arg(long, value_delimiter = ',', default_value = "*")]
    zk_4lw_whitelist: Vec<String>,
    /// Super user digest, `super:<base64 sha1>` (upstream's superDigest).
    #[arg(long)]
    zk_super_digest: Option<String>,
    /// jute.maxbuffer: the largest frame accepted, in bytes.
    #[arg(long, default_value_t = 0xfffff)]
    zk_max_buffer: usize,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = Config::new(args.zk_listen_addr);
    config.prefix = args.zk_prefix;
    config.tick_ms = args.zk_tick_time;
    config.min_session_timeout_ms = args.zk_min_session_timeout;
    config.max_session_timeout_ms = args.zk_max_session_timeout;
    config.container_check_interval =
        Duration::from_millis(args.zk_container_check_interval.max(1));
    config.four_letter_words = args.zk_4lw_whitelist;
    config.super_digest = args.zk_super_digest;
    config.max_buffer = args.zk_max_buffer;
    let backend = match Remote::connect(&args.endpoints) {
        Ok(b) => Arc::new(b),
        Err(e) => {
            eprintln!("synod-zk: invalid --endpoints: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let listener = match bind(&config).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("synod-zk: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    tokio::select! {
        r = serve(backend, config, listener) => {
            if let Err(e) = r {
                eprintln!("synod-zk: {e}");
                return std::process::ExitCode::from(1);
            }
        }
        _ = tokio::signal::ctrl_c() => {}
    }
    std::process::ExitCode::SUCCESS
}
