//! One server process (synod or upstream etcd) with its own temp dir.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};

use crate::bins::{etcd_bin, synod_bin};
use crate::ports::free_port;
use crate::rt::block_on;

/// How long a started server gets to answer a client before the test fails.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which implementation a [`Server`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// The binary built from this workspace ([`crate::synod_bin`]).
    Synod,
    /// Upstream etcd 3.4 ([`crate::etcd_bin`]).
    Etcd,
}

impl Flavor {
    /// The binary this flavor runs.
    pub fn bin(self) -> PathBuf {
        match self {
            Flavor::Synod => synod_bin(),
            Flavor::Etcd => etcd_bin(),
        }
    }
}

/// How to start one member.
#[derive(Clone, Debug)]
pub struct MemberSpec {
    pub flavor: Flavor,
    /// Extra command-line arguments. A flag given here (`--flag` or
    /// `--flag=value`) replaces the harness's default for that flag.
    pub extra_args: Vec<String>,
    /// Extra environment variables for the server process.
    pub env: Vec<(String, String)>,
}

impl MemberSpec {
    pub fn new(flavor: Flavor) -> MemberSpec {
        MemberSpec {
            flavor,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> MemberSpec {
        self.extra_args.push(a.into());
        self
    }

    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> MemberSpec {
        self.env.push((k.into(), v.into()));
        self
    }
}

impl From<Flavor> for MemberSpec {
    fn from(f: Flavor) -> MemberSpec {
        MemberSpec::new(f)
    }
}

/// A running server process. Dropping it kills the process and removes its
/// temporary directory (data dir and log) — set `SYNOD_KEEP_TEST_DIRS=1` to
/// keep the directory for debugging.
pub struct Server {
    pub name: String,
    pub flavor: Flavor,
    /// `http://127.0.0.1:PORT`
    pub client_url: String,
    /// `http://127.0.0.1:PORT`
    pub peer_url: String,
    pub data_dir: PathBuf,
    /// The exact command line (without the binary) the server runs with.
    pub args: Vec<String>,
    bin: PathBuf,
    env: Vec<(String, String)>,
    log_path: PathBuf,
    child: Option<Child>,
    tmp: Option<tempfile::TempDir>,
}

/// Ports and identity of one member, allocated before any member starts (a
/// cluster's members must all know each other's peer URLs).
pub(crate) struct Slot {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
}

impl Slot {
    pub fn new(name: impl Into<String>) -> Slot {
        Slot {
            name: name.into(),
            client_port: free_port(),
            peer_port: free_port(),
        }
    }
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }
    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }
}

fn flag_name(arg: &str) -> Option<&str> {
    let a = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'))?;
    Some(a.split('=').next().unwrap_or(a))
}

impl Server {
    /// A single-member server of `flavor`, fresh data dir, free ports; returns
    /// once it serves client requests.
    pub fn start(flavor: Flavor) -> Server {
        Server::start_with(MemberSpec::new(flavor))
    }

    /// A single-member server as described by `spec`; returns once ready.
    pub fn start_with(spec: MemberSpec) -> Server {
        let slot = Slot::new("m0");
        let initial_cluster = format!("{}={}", slot.name, slot.peer_url());
        let mut s = Server::spawn(spec, &slot, &initial_cluster, "synod-cluster");
        s.wait_ready();
        s
    }

    /// Starts the process without waiting for readiness.
    pub(crate) fn spawn(
        spec: MemberSpec,
        slot: &Slot,
        initial_cluster: &str,
        token: &str,
    ) -> Server {
        let bin = spec.flavor.bin();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(
                "compat-{}-{}-",
                flavor_tag(spec.flavor),
                slot.name
            ))
            .tempdir()
            .expect("create temp dir");
        let data_dir = tmp.path().join("data");
        let log_path = tmp.path().join("server.log");

        let client_url = slot.client_url();
        let peer_url = slot.peer_url();
        let mut defaults: Vec<(&str, String)> = vec![
            ("name", slot.name.clone()),
            ("data-dir", data_dir.display().to_string()),
            ("listen-client-urls", client_url.clone()),
            ("advertise-client-urls", client_url.clone()),
            ("listen-peer-urls", peer_url.clone()),
            ("initial-advertise-peer-urls", peer_url.clone()),
            ("initial-cluster", initial_cluster.to_string()),
            ("initial-cluster-state", "new".to_string()),
            ("initial-cluster-token", token.to_string()),
        ];
        match spec.flavor {
            // ZooKeeper listener off unless the test asks for it.
            Flavor::Synod => defaults.push(("zk-listen-addr", String::new())),
            // Keep upstream's logging on stderr (captured in server.log).
            Flavor::Etcd => {
                defaults.push(("logger", "zap".to_string()));
                defaults.push(("log-outputs", "stderr".to_string()));
            }
        }
        let overridden: Vec<&str> = spec
            .extra_args
            .iter()
            .filter_map(|a| flag_name(a))
            .collect();
        let mut args = Vec::new();
        for (flag, value) in defaults {
            if !overridden.contains(&flag) {
                args.push(format!("--{flag}"));
                args.push(value);
            }
        }
        args.extend(spec.extra_args.iter().cloned());

        let mut s = Server {
            name: slot.name.clone(),
            flavor: spec.flavor,
            client_url,
            peer_url,
            data_dir,
            args,
            bin,
            env: spec.env,
            log_path,
            child: None,
            tmp: Some(tmp),
        };
        s.launch();
        s
    }

    fn launch(&mut self) {
        assert!(
            self.child.is_none(),
            "server {} is already running",
            self.name
        );
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open server log");
        let _ = writeln!(
            log,
            "=== harness: starting {} {}",
            self.bin.display(),
            self.args
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let err = log.try_clone().expect("clone log handle");
        let mut cmd = Command::new(&self.bin);
        cmd.args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        // Don't let the caller's ETCD_* / ETCDCTL_* environment configure the server.
        for (k, _) in std::env::vars_os() {
            if let Some(k) = k.to_str() {
                if k.starts_with("ETCD_") || k.starts_with("ETCDCTL_") {
                    cmd.env_remove(k);
                }
            }
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    /// `127.0.0.1:PORT` — the form etcdctl's `--endpoints` and the benchmark take.
    pub fn endpoint(&self) -> String {
        self.client_url.trim_start_matches("http://").to_string()
    }

    /// Process id of the running server, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL the server and reap it. A no-op if it isn't running.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.note("killed with SIGKILL");
        }
    }

    /// Start the server again with the same flags and data dir, and wait until
    /// it is ready. Kills it first if it is still running.
    pub fn restart(&mut self) {
        self.restart_nowait();
        self.wait_ready();
    }

    /// Like [`Server::restart`] without waiting for readiness (for restarting a
    /// whole cluster: no member is ready before a quorum runs).
    pub fn restart_nowait(&mut self) {
        self.kill9();
        self.launch();
    }

    /// Poll until the server answers a linearizable Range (or a Status naming
    /// a leader), at most [`READY_TIMEOUT`]; panics with the log otherwise, or
    /// at once if the process exits.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = self.client_url.clone();
        let mut last_err = String::from("no attempt made");
        let mut attempts = 0u32;
        while Instant::now() < deadline && attempts < 1000 {
            attempts += 1;
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    self.child = None;
                    panic!(
                        "{} server {} exited during startup ({status}).\n--- server log ---\n{}",
                        flavor_tag(self.flavor),
                        self.name,
                        self.log_tail(200)
                    );
                }
            } else {
                panic!("server {} is not running", self.name);
            }
            match block_on(probe(&url)) {
                Ok(()) => return,
                Err(e) => last_err = e,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{} server {} at {} not ready after {:?} ({attempts} probes); last error: {last_err}\n--- server log ---\n{}",
            flavor_tag(self.flavor),
            self.name,
            self.client_url,
            READY_TIMEOUT,
            self.log_tail(200)
        );
    }

    /// Captured stdout+stderr of the server so far (all its runs).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of [`Server::log`].
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Where the log is written.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    fn note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(&self.log_path) {
            let _ = writeln!(f, "=== harness: {what}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- log of {} server {} ({}) ---\n{}\n--- end of log ---",
                flavor_tag(self.flavor),
                self.name,
                self.client_url,
                self.log_tail(60)
            );
        }
        if let Some(tmp) = self.tmp.take() {
            if std::env::var_os("SYNOD_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0") {
                let kept = tmp.keep();
                eprintln!("kept test dir {}", kept.display());
            }
        }
    }
}

async fn probe(url: &str) -> Result<(), String> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(1))
        .with_timeout(Duration::from_secs(2));
    let mut c = Client::connect([url], Some(opts))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    match c.get("synod-harness-readiness-probe", None).await {
        Ok(_) => Ok(()),
        Err(range_err) => match c.status().await {
            Ok(st) if st.leader() != 0 => Ok(()),
            Ok(_) => Err(format!("range: {range_err}; status: no leader yet")),
            Err(e) => Err(format!("range: {range_err}; status: {e}")),
        },
    }
}

/// An etcd-client connected to `server` (requests time out after 10 s).
pub async fn client(server: &Server) -> Client {
    client_for(std::slice::from_ref(&server.client_url)).await
}

/// An etcd-client connected to all of `endpoints` (`host:port` or URLs).
pub async fn client_for(endpoints: &[String]) -> Client {
    let urls: Vec<String> = endpoints
        .iter()
        .map(|e| {
            if e.contains("://") {
                e.clone()
            } else {
                format!("http://{e}")
            }
        })
        .collect();
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10));
    Client::connect(&urls, Some(opts))
        .await
        .unwrap_or_else(|e| panic!("connect etcd-client to {urls:?}: {e}"))
}

pub(crate) fn flavor_tag(f: Flavor) -> &'static str {
    match f {
        Flavor::Synod => "synod",
        Flavor::Etcd => "etcd",
    }
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}
