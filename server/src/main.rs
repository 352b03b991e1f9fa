//! The `synod` binary: parse etcd's flags and ETCD_* variables, then run a member.

use std::process::ExitCode;

use synod::config::{self, Action};
use synod::{launch, server};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Opts this process out of transparent huge pages. mimalloc asks for them on its arenas, and
/// then every 2 MiB region it touches is resident in full: an idle member held 53 MB of
/// anonymous memory (all of it huge pages) instead of 28 MB, and the kernel spent up to 9% of a
/// put load zeroing fresh huge pages. Best effort: where the call is refused nothing changes.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

fn main() -> ExitCode {
    disable_transparent_huge_pages();
    let parsed = match config::from_process() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", e.log_line());
            if e.prints_usage() {
                eprintln!("{}", config::usage_text());
            }
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match &parsed.action {
        Action::PrintVersion => {
            println!("{}", config::version_text());
            return ExitCode::SUCCESS;
        }
        Action::PrintHelp(text) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Action::Run => {}
    }
    init_logging(&parsed.config.log_level);
    parsed.emit_warnings();

    let (node, serve) = match launch::settings(&parsed.config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{}", e.log_line());
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    // One worker per core (at least 2). A write crosses several tasks (gRPC handler, Raft core,
    // state machine, connection), and with more workers than cores each hand-off tends to wake
    // a parked thread. Measured on 2 cores with the segment log, etcd's benchmark put: 1 client
    // 1.88k -> 2.04-2.30k req/s, 50 clients 20.3-22.2k -> 22.0k req/s, p99 5.2-6.6 -> 5.0-5.3 ms
    // going from 4 workers to 2. (With the redb log, 4 workers had the better p99.)
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(node, serve, stop_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SYNOD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},openraft=warn,h2=warn,hyper=warn"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
