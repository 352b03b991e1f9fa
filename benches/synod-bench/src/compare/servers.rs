//! The servers under test, on 127.0.0.1 with free ports and fresh data dirs: etcd 3.4 and
//! Synod (one member or a cluster, started with the same etcd flags; Synod also gets
//! `--zk-listen-addr`), and ZooKeeper 3.8 (standalone, as benches/zk-benchmark.sh configures it).
//! A server is ready when every member answers a linearizable range (and, for ZooKeeper
//! clients, `srvr` says "Mode: standalone").
//!
//! Nothing here tunes a server: etcd and ZooKeeper keep their defaults, Synod the README's
//! default command (durable fsync), only names, ports and data dirs are given. A server never
//! outlives its `Server` value.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::grpc::Grpc;
use super::procs::Proc;

/// How long a server may take to become ready (a cold JVM, a 3-member election).
const READY_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Etcd,
    Synod,
    ZooKeeper,
}

impl Flavor {
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Etcd => "etcd",
            Flavor::Synod => "synod",
            Flavor::ZooKeeper => "zookeeper",
        }
    }
}

/// The programs compare starts.
#[derive(Clone, Debug)]
pub struct Bins {
    pub etcd: PathBuf,
    pub synod: PathBuf,
    pub java: PathBuf,
    pub zk_classpath: String,
}

struct Member {
    proc: Option<Proc>,
    /// host:port of the client (or ZooKeeper) listener.
    client: String,
    program: PathBuf,
    args: Vec<String>,
    data_dir: PathBuf,
    log: PathBuf,
}

pub struct Server {
    pub flavor: Flavor,
    members: Vec<Member>,
    /// host:port of the ZooKeeper listener (ZooKeeper, or Synod started with one).
    pub zk_endpoint: Option<String>,
    /// ZooKeeper: the first line of `srvr`.
    pub zk_version: String,
}

impl Server {
    /// Starts `members` members of etcd or Synod under `dir` (Synod with a ZooKeeper listener
    /// on member 0 if `zk`), or a standalone ZooKeeper; returns once it is ready.
    pub fn start(
        flavor: Flavor,
        members: usize,
        zk: bool,
        dir: &Path,
        bins: &Bins,
        grpc: &Grpc,
    ) -> Result<Server, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let mut server = match flavor {
            Flavor::ZooKeeper => zookeeper(dir, bins)?,
            _ => etcd_like(flavor, members, zk, dir, bins)?,
        };
        for i in 0..server.members.len() {
            server.spawn_member(i)?;
        }
        server.wait_ready(grpc, READY_LIMIT)?;
        Ok(server)
    }

    fn spawn_member(&mut self, i: usize) -> Result<(), String> {
        let name = self.flavor.name();
        let m = &mut self.members[i];
        let mut cmd = Command::new(&m.program);
        cmd.args(&m.args);
        m.proc = Some(Proc::spawn(name, &mut cmd, &m.log)?);
        Ok(())
    }

    fn wait_ready(&mut self, grpc: &Grpc, limit: Duration) -> Result<(), String> {
        let deadline = Instant::now() + limit;
        let mut ready = vec![false; self.members.len()];
        let mut zk_ready = self.zk_endpoint.is_none();
        loop {
            self.check_alive()?;
            if self.flavor != Flavor::ZooKeeper {
                for (i, m) in self.members.iter().enumerate() {
                    if !ready[i] {
                        ready[i] = grpc.range(&m.client, true, Duration::from_secs(2)).is_ok();
                    }
                }
            } else {
                ready.iter_mut().for_each(|r| *r = true);
            }
            if !zk_ready {
                if let Some(ep) = &self.zk_endpoint {
                    let answer = four_letter(ep, "srvr");
                    if answer.lines().any(|l| l.trim() == "Mode: standalone") {
                        self.zk_version = answer.lines().next().unwrap_or("").trim().to_string();
                        zk_ready = true;
                    }
                }
            }
            if zk_ready && ready.iter().all(|r| *r) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not ready after {} s\n{}",
                    self.flavor.name(),
                    limit.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// host:port of every member's client listener.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client.clone()).collect()
    }

    /// Process ids of every running member.
    pub fn pids(&self) -> Vec<u32> {
        self.members
            .iter()
            .filter_map(|m| m.proc.as_ref().map(Proc::pid))
            .collect()
    }

    /// Process id of member 0.
    pub fn pid(&self) -> Option<u32> {
        self.members
            .first()
            .and_then(|m| m.proc.as_ref())
            .map(Proc::pid)
    }

    pub fn data_dir(&self) -> &Path {
        self.members
            .first()
            .map_or(Path::new("/nonexistent"), |m| m.data_dir.as_path())
    }

    /// An error (with the log's tail) if any member has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        for i in 0..self.members.len() {
            if let Some(p) = self.members[i].proc.as_mut() {
                if let Some(st) = p.try_status() {
                    return Err(format!(
                        "{} member {i} exited ({st})\n{}",
                        self.flavor.name(),
                        tail(&self.members[i].log, 40)
                    ));
                }
            }
        }
        Ok(())
    }

    /// Stops every member: SIGTERM, 30 s to exit, then SIGKILL. True if all exited by themselves.
    pub fn stop(&mut self) -> bool {
        let mut clean = true;
        for m in &mut self.members {
            if let Some(mut p) = m.proc.take() {
                clean &= p.stop(Duration::from_secs(30));
            }
        }
        clean
    }

    /// Stops member 0 and starts it again on the same data dir; the time from the start until
    /// it answers a linearizable range.
    pub fn restart(&mut self, grpc: &Grpc, limit: Duration) -> Result<Duration, String> {
        if !self.stop() {
            return Err(format!(
                "{} did not exit within 30 s of SIGTERM",
                self.flavor.name()
            ));
        }
        self.spawn_member(0)?;
        let start = Instant::now();
        let addr = self.members[0].client.clone();
        loop {
            self.check_alive()?;
            if grpc.range(&addr, true, Duration::from_millis(500)).is_ok() {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(format!(
                    "{} not serving {} s after a restart\n{}",
                    self.flavor.name(),
                    limit.as_secs(),
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log_tail(&self) -> String {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                format!(
                    "--- {} member {i} log ({}), last lines:\n{}",
                    self.flavor.name(),
                    m.log.display(),
                    tail(&m.log, 15)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn etcd_like(
    flavor: Flavor,
    n: usize,
    zk: bool,
    dir: &Path,
    bins: &Bins,
) -> Result<Server, String> {
    let peers: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let clients: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_, _>>()?;
    let cluster = (0..n)
        .map(|i| format!("m{i}=http://127.0.0.1:{}", peers[i]))
        .collect::<Vec<_>>()
        .join(",");
    let zk_port = if zk { Some(free_port()?) } else { None };
    let mut members = Vec::new();
    for i in 0..n {
        let data_dir = dir.join(format!("m{i}"));
        let client_url = format!("http://127.0.0.1:{}", clients[i]);
        let peer_url = format!("http://127.0.0.1:{}", peers[i]);
        let mut args: Vec<String> = [
            "--name",
            &format!("m{i}"),
            "--data-dir",
            &data_dir.to_string_lossy(),
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
            "--initial-cluster",
            &cluster,
            "--initial-cluster-state",
            "new",
            "--initial-cluster-token",
            "synod-compare",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let program = match flavor {
            Flavor::Etcd => {
                args.extend([
                    "--logger=zap".to_string(),
                    "--log-outputs=stderr".to_string(),
                ]);
                bins.etcd.clone()
            }
            _ => {
                let zk_addr = match zk_port {
                    Some(p) if i == 0 => format!("127.0.0.1:{p}"),
                    _ => String::new(),
                };
                args.extend(["--zk-listen-addr".to_string(), zk_addr]);
                bins.synod.clone()
            }
        };
        members.push(Member {
            proc: None,
            client: format!("127.0.0.1:{}", clients[i]),
            program,
            args,
            data_dir,
            log: dir.join(format!("m{i}.log")),
        });
    }
    Ok(Server {
        flavor,
        members,
        zk_endpoint: zk_port.map(|p| format!("127.0.0.1:{p}")),
        zk_version: String::new(),
    })
}

fn zookeeper(dir: &Path, bins: &Bins) -> Result<Server, String> {
    let port = free_port()?;
    let data_dir = dir.join("data");
    let cfg = dir.join("zoo.cfg");
    let conf = format!(
        "tickTime=2000\ndataDir={}\nclientPort={port}\nclientPortAddress=127.0.0.1\n\
         admin.enableServer=false\n4lw.commands.whitelist=*\n",
        data_dir.display()
    );
    std::fs::write(&cfg, conf).map_err(|e| format!("cannot write {}: {e}", cfg.display()))?;
    let log4j = dir.join("log4j.properties");
    std::fs::write(
        &log4j,
        "log4j.rootLogger=INFO, CONSOLE\nlog4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n\
         log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n\
         log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", log4j.display()))?;
    let args = vec![
        format!("-Dlog4j.configuration=file:{}", log4j.display()),
        format!("-Dzookeeper.log.dir={}", dir.display()),
        "-cp".to_string(),
        format!("{}:{}", dir.display(), bins.zk_classpath),
        "org.apache.zookeeper.server.quorum.QuorumPeerMain".to_string(),
        cfg.to_string_lossy().into_owned(),
    ];
    let endpoint = format!("127.0.0.1:{port}");
    Ok(Server {
        flavor: Flavor::ZooKeeper,
        members: vec![Member {
            proc: None,
            client: endpoint.clone(),
            program: bins.java.clone(),
            args,
            data_dir,
            log: dir.join("server.log"),
        }],
        zk_endpoint: Some(endpoint),
        zk_version: String::new(),
    })
}

/// A ZooKeeper four-letter word's answer ("" when there is none within 2 s).
pub fn four_letter(endpoint: &str, word: &str) -> String {
    let Ok(addr) = endpoint.parse::<SocketAddr>() else {
        return String::new();
    };
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(word.as_bytes()).is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let text = text.replace('\r', "\n");
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Ports handed out so far (never twice in one comparison).
static USED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
const PORTS: std::ops::Range<u16> = 32000..34000;

/// A port in 32000..34000 that nothing listens on and that was not handed out before.
pub fn free_port() -> Result<u16, String> {
    let mut used = USED.lock().unwrap_or_else(|p| p.into_inner());
    if used.len() > 1500 {
        used.clear();
    }
    let span = u64::from(PORTS.end - PORTS.start);
    let mut x = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    for _ in 0..4000 {
        // xorshift: only spreads the guesses, nothing depends on its quality.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let p = PORTS.start + (x % span) as u16;
        if used.contains(&p) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            used.insert(p);
            return Ok(p);
        }
    }
    Err("no free port in 32000..34000".to_string())
}
