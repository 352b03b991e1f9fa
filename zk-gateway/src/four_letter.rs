//! The four-letter words (`ruok`, `srvr`, `stat`, `mntr`, `conf`, `cons`, `envi`, `wchs`,
//! `isro`, `dump`, `srst`, `crst`): a four-byte command instead of a length prefix on a fresh
//! connection, answered in upstream's text format, then the connection closes. Read-only except
//! for resetting counters; a word outside the whitelist gets upstream's refusal text.

use std::sync::atomic::Ordering;

use crate::layout::KeyKind;
use crate::server::Shared;

const WORDS: &[&str] = &[
    "conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "ruok", "stmk", "srst", "srvr", "stat",
    "wchc", "wchp", "wchs", "mntr", "isro", "hash",
];

/// Whether the first four bytes of a connection are a four-letter word.
pub fn is_command(first: &[u8; 4]) -> bool {
    std::str::from_utf8(first).is_ok_and(|s| WORDS.contains(&s))
}

pub async fn answer(shared: &Shared, cmd: &[u8; 4]) -> String {
    let cmd = String::from_utf8_lossy(cmd).into_owned();
    if !shared.config.four_letter_allowed(&cmd) {
        return format!("{cmd} is not executed because it is not in the whitelist.\n");
    }
    let c = &shared.counters;
    let count = c.latency_count.load(Ordering::Relaxed).max(1);
    let avg_ms = c.latency_total_us.load(Ordering::Relaxed) as f64 / count as f64 / 1000.0;
    let min_ms = c.latency_min_us.load(Ordering::Relaxed) / 1000;
    let max_ms = c.latency_max_us.load(Ordering::Relaxed) / 1000;
    let zxid = shared.watches.processed();
    let nodes = node_count(shared).await;
    let version = format!("{}, built on 01/01/2026 00:00 GMT", shared.config.version);
    let (_, _, watches) = shared.watches.summary(None);
    // wchs, like upstream's, counts data and exist watches only
    let (watching_conns, watched_paths, data_watches) =
        shared.watches.summary(Some(crate::watches::Table::Data));
    let counters = format!(
        "Latency min/avg/max: {min_ms}/{avg_ms:.4}/{max_ms}\nReceived: {}\nSent: {}\nConnections: {}\nOutstanding: {}\nZxid: 0x{zxid:x}\nMode: standalone\nNode count: {nodes}\n",
        c.received.load(Ordering::Relaxed),
        c.sent.load(Ordering::Relaxed),
        c.connections.load(Ordering::Relaxed),
        c.outstanding.load(Ordering::Relaxed).max(0),
    );
    let bounds = shared.config.bounds();
    match cmd.as_str() {
        "ruok" => "imok".to_string(),
        "isro" => "rw".to_string(),
        "srvr" => format!("Zookeeper version: {version}\n{counters}"),
        "stat" => format!("Zookeeper version: {version}\nClients:\n\n{counters}"),
        "srst" => {
            c.reset();
            "Server stats reset.\n".to_string()
        }
        "crst" => "Connection stats have been reset.\n".to_string(),
        "cons" => "\n".to_string(),
        "wchs" => format!(
            "{watching_conns} connections watching {watched_paths} paths\nTotal watches:{data_watches}\n"
        ),
        "conf" => format!(
            "clientPort={}\nclientPortAddress={}\ndataDir=(etcd v3 store)\ntickTime={}\nmaxClientCnxns=0\nminSessionTimeout={}\nmaxSessionTimeout={}\nserverId=0\n",
            shared.config.listen.port(),
            shared.config.listen.ip(),
            shared.config.tick_ms,
            bounds.min_ms,
            bounds.max_ms,
        ),
        "envi" => format!(
            "Environment:\nzookeeper.version={version}\nhost.name=localhost\njava.version=none (synod, Rust)\nos.name={}\nos.arch={}\nuser.dir={}\n",
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        ),
        "mntr" => {
            let eph = ephemeral_count(shared).await;
            format!(
                "zk_version\t{version}\nzk_server_state\tstandalone\nzk_avg_latency\t{avg_ms:.4}\nzk_max_latency\t{max_ms}\nzk_min_latency\t{min_ms}\nzk_packets_received\t{}\nzk_packets_sent\t{}\nzk_num_alive_connections\t{}\nzk_outstanding_requests\t{}\nzk_znode_count\t{nodes}\nzk_watch_count\t{watches}\nzk_ephemerals_count\t{eph}\nzk_uptime\t{}\n",
                c.received.load(Ordering::Relaxed),
                c.sent.load(Ordering::Relaxed),
                c.connections.load(Ordering::Relaxed),
                c.outstanding.load(Ordering::Relaxed).max(0),
                shared.started.elapsed().as_millis(),
            )
        }
        "dump" => dump(shared).await,
        "wchc" | "wchp" => {
            let mut s = String::new();
            for (conn, paths) in shared.watches.by_connection() {
                s.push_str(&format!("0x{conn:x}\n"));
                for p in paths {
                    s.push_str(&format!("\t{p}\n"));
                }
            }
            s
        }
        _ => format!("{cmd} is not supported by this server.\n"),
    }
}

async fn node_count(shared: &Shared) -> i64 {
    let prefix = shared.store.layout().prefix();
    let mut key = prefix.to_vec();
    key.push(b'n');
    let mut end = prefix.to_vec();
    end.push(b'o');
    match shared.store.keys((key, end)).await {
        // upstream's node table holds the root twice ("" and "/")
        Ok(keys) => {
            keys.iter()
                .filter(|k| matches!(k, KeyKind::Node(_, crate::layout::Part::Data)))
                .count() as i64
                + 1
        }
        Err(_) => 0,
    }
}

async fn ephemeral_count(shared: &Shared) -> usize {
    let layout = shared.store.layout();
    shared
        .store
        .keys(layout.ephemerals_range(None))
        .await
        .map_or(0, |k| k.len())
}

async fn dump(shared: &Shared) -> String {
    let layout = shared.store.layout();
    let keys = shared
        .store
        .keys(layout.ephemerals_range(None))
        .await
        .unwrap_or_default();
    let mut by_session: std::collections::BTreeMap<i64, Vec<String>> = Default::default();
    for k in keys {
        if let KeyKind::Ephemeral(s, p) = k {
            by_session.entry(s).or_default().push(p.to_string());
        }
    }
    let mut s = format!(
        "SessionTracker dump:\nGlobal Sessions({}):\nephemeral nodes dump:\nSessions with Ephemerals ({}):\n",
        shared.sessions.count(),
        by_session.len()
    );
    for (session, paths) in by_session {
        s.push_str(&format!("0x{:x}:\n", session as u64));
        for p in paths {
            s.push_str(&format!("\t{p}\n"));
        }
    }
    s
}
