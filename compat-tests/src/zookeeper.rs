//! ZooKeeper clients against ZooKeeper servers: upstream ZooKeeper 3.8 (the
//! reference, Debian's `zookeeper` package) and Synod's ZooKeeper gateway.
//!
//! - [`ZkServer`]: a real ZooKeeper 3.8 standalone server on a free loopback
//!   port, in its own temporary directory, killed on drop.
//! - [`SynodZk`]: a Synod single member serving the ZooKeeper protocol
//!   (`--zk-listen-addr`), started through the harness's [`Server`].
//! - [`ZkTarget`]: what a scenario needs of either (`host:port`, a name for
//!   messages, the server's log); [`zk_on_both`] runs one scenario against
//!   ZooKeeper then Synod, each freshly started.
//! - [`zkcli`] / [`normalize_zkcli`]: a scripted `zkCli.sh` session and its
//!   transcript with the values that legitimately differ replaced by
//!   placeholders; [`zkcli_transcript_on_both`] checks one against both servers.
//! - [`kazoo_script`]: a kazoo (Python client) script from `compat-tests/zk/`
//!   that asserts the behaviour itself.
//!
//! As everywhere in this harness, a missing program is a loud failure with
//! an install hint, never a skip.
//!
//! `SYNOD_ZK_SECOND_TARGET=zookeeper` makes [`zk_on_both`] and
//! [`zkcli_transcript_on_both`] run their second pass against a second
//! fresh ZooKeeper instead of Synod: it checks the
//! tests themselves (a scenario whose ZooKeeper transcript differs between
//! two runs is not deterministic enough to specify anything).

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::bins::workspace_root;
use crate::ports::free_port;
use crate::server::{Flavor, MemberSpec, Server, READY_TIMEOUT};

/// Debian's ZooKeeper 3.8 server jar.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// The jars ZooKeeper 3.8 logs through (log4j 1.2 behind slf4j), shipped
/// with Debian's `zookeeper` package as dependencies.
const LOG_JARS: [&str; 2] = [
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];
/// Debian's zkCli wrapper (runs `org.apache.zookeeper.ZooKeeperMain`).
pub const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";
/// How long one zkCli session or kazoo script may run before it is killed.
pub const ZK_CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// The container/TTL reaper period both servers run with, in milliseconds
/// (ZooKeeper's `znode.container.checkIntervalMs`, Synod's
/// `--zk-container-check-interval`; upstream's default is 60 s).
pub const CONTAINER_CHECK_INTERVAL_MS: u64 = 1000;

const ZK_INSTALL_HINT: &str =
    "install Debian's ZooKeeper 3.8: apt-get install zookeeper (or run scripts/setup-test-deps)";

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

/// A server speaking the ZooKeeper protocol that a scenario can run against.
pub trait ZkTarget {
    /// `127.0.0.1:PORT`, the form zkCli's `-server` and kazoo's `hosts` take.
    fn connect_string(&self) -> String;
    /// `"zookeeper"` or `"synod"`, for messages.
    fn name(&self) -> &'static str;
    /// The last `n` lines of the server's log.
    fn log_tail(&self, n: usize) -> String;
}

/// Sends a four-letter word and returns the whole answer (the server closes
/// the connection after it). Each step is bounded by a 2 s timeout.
pub fn four_letter_word(addr: &str, word: &str) -> Result<String, String> {
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e| format!("bad address {addr}: {e}"))?;
    let t = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&sa, t).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(t)).ok();
    s.set_write_timeout(Some(t)).ok();
    s.write_all(word.as_bytes())
        .map_err(|e| format!("send {word} to {addr}: {e}"))?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| format!("read answer to {word} from {addr}: {e}"))?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Polls `ruok` until the answer is `imok` and `srvr` until it serves, at most [`READY_TIMEOUT`];
/// `alive` is asked between probes and may panic (process exited). Returns
/// the last error on timeout.
fn wait_imok(addr: &str, mut alive: impl FnMut()) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no probe made");
    while Instant::now() < deadline {
        alive();
        // `imok` comes before ZooKeeper serves sessions; `srvr` says when it does.
        match four_letter_word(addr, "ruok") {
            Ok(a) if a == "imok" => match four_letter_word(addr, "srvr") {
                Ok(s) if s.starts_with("Zookeeper version: ") => return Ok(()),
                Ok(s) => last = format!("srvr answered {s:?}"),
                Err(e) => last = e,
            },
            Ok(a) => last = format!("ruok answered {a:?} instead of \"imok\""),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(last)
}

fn require_file(path: &str) {
    if !Path::new(path).is_file() {
        panic!("required file not found: {path}\n{ZK_INSTALL_HINT}");
    }
}

fn java_bin() -> PathBuf {
    let java = match std::env::var_os("JAVA") {
        Some(j) if !j.is_empty() => PathBuf::from(j),
        _ => PathBuf::from("/usr/bin/java"),
    };
    if !java.is_file() {
        panic!(
            "java not found at {} (set $JAVA to override).\n{ZK_INSTALL_HINT} (it brings a JRE)",
            java.display()
        );
    }
    java
}

/// Upstream ZooKeeper 3.8 (Debian's package), standalone, on a free loopback
/// port with a fresh data dir; killed, and its directory removed, on drop.
/// Runs with `tickTime=2000` (negotiated session timeouts 4..40 s), all
/// four-letter words allowed, no admin server, extended types (TTL nodes)
/// enabled and the container/TTL reaper every
/// [`CONTAINER_CHECK_INTERVAL_MS`].
pub struct ZkServer {
    port: u16,
    log_path: PathBuf,
    child: Option<Child>,
    tmp: Option<tempfile::TempDir>,
}

impl ZkServer {
    /// Starts it and returns once it answers `ruok` with `imok` (panics with
    /// the log tail after [`READY_TIMEOUT`], or at once if it exits).
    pub fn start() -> ZkServer {
        let java = java_bin();
        require_file(ZOOKEEPER_JAR);
        for jar in LOG_JARS {
            require_file(jar);
        }
        let tmp = tempfile::Builder::new()
            .prefix("compat-zookeeper-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = tmp.path().join("data");
        std::fs::create_dir(&data_dir).expect("create ZooKeeper data dir");
        let port = free_port();
        let cfg_path = tmp.path().join("zoo.cfg");
        std::fs::write(
            &cfg_path,
            format!(
                "tickTime=2000\n\
                 dataDir={}\n\
                 clientPort={port}\n\
                 clientPortAddress=127.0.0.1\n\
                 4lw.commands.whitelist=*\n\
                 admin.enableServer=false\n",
                data_dir.display()
            ),
        )
        .expect("write zoo.cfg");
        // log4j.properties from /etc/zookeeper/conf, console appender only.
        let classpath = ["/etc/zookeeper/conf", ZOOKEEPER_JAR]
            .into_iter()
            .chain(LOG_JARS)
            .collect::<Vec<_>>()
            .join(":");
        let args: Vec<String> = vec![
            "-Xmx256m".into(),
            "-XX:+UseSerialGC".into(),
            "-Dzookeeper.root.logger=INFO,CONSOLE".into(),
            format!("-Dzookeeper.log.dir={}", tmp.path().display()),
            "-Dzookeeper.extendedTypesEnabled=true".into(),
            format!("-Dznode.container.checkIntervalMs={CONTAINER_CHECK_INTERVAL_MS}"),
            "-cp".into(),
            classpath,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain".into(),
            cfg_path.display().to_string(),
        ];
        let log_path = tmp.path().join("server.log");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open ZooKeeper log");
        let _ = writeln!(
            log,
            "=== harness: starting {} {}",
            java.display(),
            args.join(" ")
        );
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(&java)
            .args(&args)
            .current_dir(tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("failed to spawn {}: {e}", java.display()));
        let mut zk = ZkServer {
            port,
            log_path,
            child: Some(child),
            tmp: Some(tmp),
        };
        let addr = zk.connect_string();
        let log_path = zk.log_path.clone();
        let child = zk.child.as_mut().expect("just spawned");
        let ready = wait_imok(&addr, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "ZooKeeper at {addr} exited during startup ({status}).\n--- its log ---\n{}",
                    tail(&read_log(&log_path), 200)
                );
            }
        });
        if let Err(last) = ready {
            panic!(
                "ZooKeeper at {addr} did not answer ruok with imok within {READY_TIMEOUT:?}; last: {last}\n--- its log ---\n{}",
                zk.log_tail(200)
            );
        }
        zk
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl ZkTarget for ZkServer {
    fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
    fn name(&self) -> &'static str {
        "zookeeper"
    }
    fn log_tail(&self, n: usize) -> String {
        tail(&read_log(&self.log_path), n)
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- log of ZooKeeper at {} ---\n{}\n--- end of log ---",
                self.connect_string(),
                self.log_tail(60)
            );
        }
        if let Some(tmp) = self.tmp.take() {
            if std::env::var_os("SYNOD_KEEP_TEST_DIRS").is_some_and(|v| !v.is_empty() && v != "0") {
                eprintln!("kept test dir {}", tmp.keep().display());
            }
        }
    }
}

/// A Synod single member with its ZooKeeper gateway on a free loopback port
/// and the container/TTL reaper every [`CONTAINER_CHECK_INTERVAL_MS`]. The
/// member is the harness's [`Server`]: dropping this kills it.
pub struct SynodZk {
    pub server: Server,
    zk_port: u16,
}

impl SynodZk {
    /// Starts it and returns once the etcd API is ready and the ZooKeeper
    /// port answers `ruok` with `imok` (panics with the log otherwise).
    pub fn start() -> SynodZk {
        let zk_port = free_port();
        let spec = MemberSpec::new(Flavor::Synod)
            .arg(format!("--zk-listen-addr=127.0.0.1:{zk_port}"))
            .arg(format!(
                "--zk-container-check-interval={CONTAINER_CHECK_INTERVAL_MS}"
            ));
        let mut server = Server::start_with(spec);
        let addr = format!("127.0.0.1:{zk_port}");
        let ready = wait_imok(&addr, || {
            if !server.is_running() {
                panic!(
                    "synod exited after its etcd API came up, before its ZooKeeper port {addr} answered.\n--- its log ---\n{}",
                    server.log_tail(200)
                );
            }
        });
        if let Err(last) = ready {
            panic!(
                "synod's ZooKeeper gateway at {addr} did not answer ruok with imok within {READY_TIMEOUT:?}; last: {last}\n--- synod log ---\n{}",
                server.log_tail(200)
            );
        }
        SynodZk { server, zk_port }
    }

    pub fn zk_port(&self) -> u16 {
        self.zk_port
    }
}

impl ZkTarget for SynodZk {
    fn connect_string(&self) -> String {
        format!("127.0.0.1:{}", self.zk_port)
    }
    fn name(&self) -> &'static str {
        "synod"
    }
    fn log_tail(&self, n: usize) -> String {
        self.server.log_tail(n)
    }
}

/// Which server a [`zk_on_both`] pass runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZkFlavor {
    ZooKeeper,
    Synod,
}

/// A freshly started server of `flavor`.
pub fn start_zk(flavor: ZkFlavor) -> Box<dyn ZkTarget> {
    match flavor {
        ZkFlavor::ZooKeeper => Box::new(ZkServer::start()),
        ZkFlavor::Synod => Box::new(SynodZk::start()),
    }
}

/// The flavor of [`zk_on_both`]'s second pass: Synod, unless
/// `SYNOD_ZK_SECOND_TARGET=zookeeper` (checking the tests themselves).
pub fn second_flavor() -> ZkFlavor {
    match std::env::var("SYNOD_ZK_SECOND_TARGET").as_deref() {
        Ok("zookeeper") => ZkFlavor::ZooKeeper,
        Ok("") | Ok("synod") | Err(_) => ZkFlavor::Synod,
        Ok(other) => {
            panic!("SYNOD_ZK_SECOND_TARGET={other:?}: expected \"zookeeper\" or \"synod\"")
        }
    }
}

/// Runs `scenario` against a fresh ZooKeeper 3.8, then against a fresh
/// Synod (see [`second_flavor`]), and returns what each pass returned, in
/// that order. Each server is stopped when its pass ends. A pass that panics
/// is named on stderr (which server, which test).
pub fn zk_on_both<T>(scenario: impl Fn(&dyn ZkTarget) -> T) -> [(ZkFlavor, T); 2] {
    let run = |flavor: ZkFlavor| {
        eprintln!("=== scenario against {flavor:?}");
        let target = start_zk(flavor);
        let label = FailureLabel(flavor);
        let out = scenario(target.as_ref());
        drop(label);
        (flavor, out)
    };
    let first = run(ZkFlavor::ZooKeeper);
    let second = run(second_flavor());
    [first, second]
}

struct FailureLabel(ZkFlavor);

impl Drop for FailureLabel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "*** the scenario above FAILED against {:?} (test {})",
                self.0,
                std::thread::current().name().unwrap_or("?")
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Running client processes
// ---------------------------------------------------------------------------

/// Runs `cmd` with `stdin` fed to it, both output streams into ONE pipe (so
/// that what the program writes to stdout and stderr stays in order), at
/// most `limit`; after that its whole process group is killed (zkCli.sh is
/// a shell script running java as a child; the status then is the kill's,
/// and a harness note ends the output). Returns (status, merged output).
fn run_merged(mut cmd: Command, stdin: &str, limit: Duration) -> (ExitStatus, String) {
    let (mut reader, writer) = std::io::pipe().expect("create pipe");
    let writer2 = writer.try_clone().expect("clone pipe writer");
    cmd.process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn {cmd:?}: {e}"));
    // Drop the Command: it holds the parent's copies of the write ends, and
    // the reader only sees EOF once every copy is closed.
    drop(cmd);
    let mut w = child.stdin.take().expect("piped stdin");
    let input = stdin.to_string();
    let feeder = std::thread::spawn(move || {
        let _ = w.write_all(input.as_bytes());
    });
    let drain = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = reader.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + limit;
    let mut killed = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                // SAFETY: kill(2) on the process group of our child (its
                // leader, not reaped yet, keeps the group id taken).
                unsafe {
                    libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
                }
                let _ = child.kill();
                killed = true;
                break child.wait().expect("wait for killed client");
            }
        }
    };
    let _ = feeder.join();
    // Bounded: a grandchild could still hold the pipe open.
    let drain_deadline = Instant::now() + Duration::from_secs(5);
    while !drain.is_finished() && Instant::now() < drain_deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = if drain.is_finished() {
        String::from_utf8_lossy(&drain.join().unwrap_or_default()).into_owned()
    } else {
        String::from("[harness: output lost: the pipe stayed open after the client exited]\n")
    };
    if killed {
        out.push_str(&format!("\n[harness: client killed after {limit:?}]\n"));
    }
    (status, out)
}

// ---------------------------------------------------------------------------
// zkCli
// ---------------------------------------------------------------------------

/// The local zkCli command printed after every scripted command: its answer
/// ("printwatches is on") marks where one command's output ends.
const DELIMITER_CMD: &str = "printwatches";
const DELIMITER_LINE: &str = "printwatches is on";

/// Runs one zkCli session against `target`: `zkCli.sh -server <host:port>`
/// reading `script` on standard input, one command a line (zkCli 3.8 reads
/// commands from stdin when it is not a terminal, "JLine support is
/// disabled"; given as arguments it runs a single command only).
///
/// Returns a raw transcript: each command as `$ <command>` followed by
/// everything zkCli printed (stdout and stderr merged, in order) until the
/// next command started, then `[exit N]` if zkCli's status is not 0. Lines
/// zkCli printed before the first command's output (banner, slf4j) belong to
/// the first command; watch notifications appear wherever the client's
/// event thread happened to print them. Feed it to [`normalize_zkcli`].
///
/// Runs with `TZ=UTC` and `LC_ALL=C` (zkCli prints ctime/mtime in the local
/// zone) and a client request timeout of 20 s, so a server that never
/// answers shows up as an error line instead of a hang. The script is
/// followed by `sync /`, whose output is dropped: by the time it returns,
/// the notifications fired by the script's last command have been printed.
pub fn zkcli(target: &dyn ZkTarget, script: &[&str]) -> String {
    let java = java_bin();
    let zkcli = match std::env::var_os("ZKCLI") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(ZKCLI),
    };
    if !zkcli.is_file() {
        panic!(
            "zkCli not found at {} (set $ZKCLI to override).\n{ZK_INSTALL_HINT}",
            zkcli.display()
        );
    }
    for line in script {
        assert!(
            !line.contains('\n') && !line.trim().is_empty(),
            "zkcli: one non-empty command per line, got {line:?}"
        );
    }
    let mut stdin = String::new();
    for line in script {
        stdin.push_str(line);
        stdin.push('\n');
        stdin.push_str(DELIMITER_CMD);
        stdin.push('\n');
    }
    stdin.push_str("sync /\n");

    let mut cmd = Command::new(&zkcli);
    cmd.arg("-server")
        .arg(target.connect_string())
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .env("JAVA", &java)
        .env(
            "CLIENT_JVMFLAGS",
            "-Xshare:auto -XX:TieredStopAtLevel=1 -Dzookeeper.request.timeout=20000",
        )
        .env_remove("JVMFLAGS")
        .env_remove("JAVA_TOOL_OPTIONS")
        .env_remove("ZOOCFGDIR");
    let (status, out) = run_merged(cmd, &stdin, ZK_CLIENT_TIMEOUT);

    // Split at the delimiter lines: section i is command i's output.
    let mut sections: Vec<Vec<&str>> = vec![Vec::new()];
    for line in out.lines() {
        if line == DELIMITER_LINE && sections.len() <= script.len() {
            sections.push(Vec::new());
        } else {
            sections.last_mut().expect("non-empty").push(line);
        }
    }
    let mut t = String::new();
    for (i, cmd) in script.iter().enumerate() {
        t.push_str("$ ");
        t.push_str(cmd);
        t.push('\n');
        if let Some(lines) = sections.get(i) {
            for l in lines {
                t.push_str(l);
                t.push('\n');
            }
        }
    }
    match sections.len() {
        // Every command answered: the last section is the hidden `sync /`.
        n if n == script.len() + 1 => {
            // Keep the watch notifications printed while sync ran.
            for l in sections[script.len()]
                .iter()
                .filter(|l| **l == "WATCHER::" || l.starts_with("WatchedEvent "))
            {
                t.push_str(l);
                t.push('\n');
            }
        }
        n => t.push_str(&format!(
            "[harness: zkCli printed {} of {} command delimiters; output after the last one:]\n{}\n",
            n - 1,
            script.len(),
            sections.last().map(|s| s.join("\n")).unwrap_or_default()
        )),
    }
    if !status.success() {
        match status.code() {
            Some(c) => t.push_str(&format!("[exit {c}]\n")),
            None => t.push_str(&format!("[{status}]\n")),
        }
    }
    t
}

/// Removes from a [`zkcli`] transcript what says nothing about the server,
/// and replaces what legitimately differs between two servers by
/// placeholders; everything else is kept verbatim:
///
/// - dropped: slf4j/log4j warnings, zkCli's banner (`Connecting to ...`,
///   `Welcome to ZooKeeper!`, `JLine support is disabled`), and the
///   `state:Closed` notification the client makes up itself on `close`;
/// - watch notifications (`WATCHER::` + `WatchedEvent ...`) are moved, in
///   the order printed, to a `--- watch notifications ---` section at the
///   end: the client's event thread prints them concurrently with the
///   command output, so their place among the commands is a race;
/// - zxids (`cZxid`, `mZxid`, `pZxid`) other than
///   0x0 become `<zxid-N>`, N counting distinct values in order of first
///   appearance (so equal stays equal and the structure is checked, not the
///   numbering), session ids (`ephemeralOwner`) other than 0x0 `<session-N>`
///   likewise; `ctime`/`mtime` other than the epoch become `<time>`.
pub fn normalize_zkcli(transcript: &str) -> String {
    let mut zxids: Vec<String> = Vec::new();
    let mut sessions: Vec<String> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut events: Vec<String> = Vec::new();
    for line in transcript.lines() {
        if is_noise(line) {
            continue;
        }
        if line == "WATCHER::" || line.starts_with("WatchedEvent ") {
            // zkCli prints "\nWATCHER::" and "\nWatchedEvent ..." in one write
            // each: the blank line just before is part of the notification.
            if out.last().is_some_and(|l| l.is_empty()) {
                out.pop();
            }
            if line.starts_with("WatchedEvent ") && !line.contains("state:Closed ") {
                events.push(line.to_string());
            }
            continue;
        }
        out.push(placeholders(line, &mut zxids, &mut sessions));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s.push_str("--- watch notifications ---\n");
    for e in events {
        s.push_str(&e);
        s.push('\n');
    }
    s
}

fn is_noise(line: &str) -> bool {
    line.starts_with("SLF4J: ")
        || line.starts_with("log4j:")
        || line.starts_with("Connecting to ")
        || line == "Welcome to ZooKeeper!"
        || line == "JLine support is disabled"
        || line.starts_with("Picked up JAVA_TOOL_OPTIONS")
        || line.starts_with("OpenJDK 64-Bit Server VM warning")
}

fn placeholders(line: &str, zxids: &mut Vec<String>, sessions: &mut Vec<String>) -> String {
    fn ordinal(v: &str, seen: &mut Vec<String>) -> usize {
        match seen.iter().position(|s| s == v) {
            Some(i) => i + 1,
            None => {
                seen.push(v.to_string());
                seen.len()
            }
        }
    }
    let Some((key, value)) = line.split_once(" = ") else {
        return line.to_string();
    };
    match key {
        "cZxid" | "mZxid" | "pZxid" if value != "0x0" => {
            format!("{key} = <zxid-{}>", ordinal(value, zxids))
        }
        "ephemeralOwner" if value != "0x0" => {
            format!("{key} = <session-{}>", ordinal(value, sessions))
        }
        "ctime" | "mtime" if value != "Thu Jan 01 00:00:00 UTC 1970" => format!("{key} = <time>"),
        _ => line.to_string(),
    }
}

/// Runs `script` as one [`zkcli`] session against a fresh ZooKeeper 3.8,
/// then against a fresh Synod (see [`second_flavor`]); each
/// [`normalize_zkcli`]d transcript must be `expected` (leading newlines
/// aside), else the panic names the side that disagrees (ZooKeeper
/// disagreeing means the test is wrong) and shows a diff.
pub fn zkcli_transcript_on_both(expected: &str, script: &[&str]) {
    let expected = expected.trim_start_matches('\n');
    for flavor in [ZkFlavor::ZooKeeper, second_flavor()] {
        eprintln!("=== zkCli session against {flavor:?}");
        let target = start_zk(flavor);
        let label = FailureLabel(flavor);
        let transcript = normalize_zkcli(&zkcli(target.as_ref(), script));
        assert_transcript(expected, flavor, &transcript);
        drop(label);
    }
}

/// Panics unless `actual`, the normalised transcript of a run against
/// `flavor`, is `expected`, showing the first differing line, a line diff
/// and the whole actual transcript.
pub fn assert_transcript(expected: &str, flavor: ZkFlavor, actual: &str) {
    if expected != actual {
        let who = match flavor {
            ZkFlavor::ZooKeeper => {
                "ZooKeeper 3.8 disagrees with the expected transcript: the TEST is wrong"
            }
            ZkFlavor::Synod => {
                "synod disagrees with the expected transcript (which ZooKeeper 3.8 matches)"
            }
        };
        panic!(
            "{who}\n{}--- whole transcript of {flavor:?} ---\n{actual}--- end ---",
            line_diff(
                expected,
                actual,
                "expected",
                &format!("{flavor:?}").to_lowercase()
            ),
        );
    }
}

/// A unified-style line diff (`-` only in `a`, `+` only in `b`, two lines of
/// context), headed by the first differing line.
pub fn line_diff(a: &str, b: &str, a_name: &str, b_name: &str) -> String {
    let a: Vec<&str> = a.lines().collect();
    let b: Vec<&str> = b.lines().collect();
    // Longest common subsequence table (transcripts are a few hundred lines).
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let mut ops: Vec<(char, &str)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push(('-', a[i]));
            i += 1;
        } else {
            ops.push(('+', b[j]));
            j += 1;
        }
    }
    let first = (0..n.max(m)).find(|&k| a.get(k) != b.get(k)).unwrap_or(0);
    let mut s = format!(
        "first difference at line {}:\n  {a_name}: {:?}\n  {b_name}: {:?}\n--- diff (- {a_name}, + {b_name}) ---\n",
        first + 1,
        a.get(first),
        b.get(first)
    );
    let changed: Vec<bool> = ops.iter().map(|(c, _)| *c != ' ').collect();
    let mut skipped = false;
    for (k, (c, line)) in ops.iter().enumerate() {
        let near = (k.saturating_sub(2)..=(k + 2).min(ops.len() - 1)).any(|x| changed[x]);
        if near {
            s.push_str(&format!("{c} {line}\n"));
            skipped = false;
        } else if !skipped {
            s.push_str("  ...\n");
            skipped = true;
        }
    }
    s
}

// ---------------------------------------------------------------------------
// kazoo
// ---------------------------------------------------------------------------

/// The directory of the kazoo scripts (`compat-tests/zk`).
pub fn kazoo_dir() -> PathBuf {
    workspace_root().join("compat-tests").join("zk")
}

/// A Python 3 interpreter that can `import kazoo`: `$SYNOD_PYTHON` if set,
/// else the first of `python3` (PATH) and `/usr/bin/python3` that can.
pub fn kazoo_python() -> PathBuf {
    let imports = |py: &Path| {
        Command::new(py)
            .args(["-c", "import kazoo.client"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if let Some(p) = std::env::var_os("SYNOD_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if !imports(&p) {
            panic!(
                "$SYNOD_PYTHON={} cannot import kazoo.client: pip install kazoo",
                p.display()
            );
        }
        return p;
    }
    for cand in ["python3", "/usr/bin/python3"] {
        let p = PathBuf::from(cand);
        if imports(&p) {
            return p;
        }
    }
    panic!(
        "no python3 that can import kazoo (tried python3 on PATH and /usr/bin/python3; set $SYNOD_PYTHON to choose one).\n\
         install it: apt-get install python3-kazoo, or pip install kazoo (or run scripts/setup-test-deps)"
    );
}

/// Runs `python3 compat-tests/zk/<script>.py <host:port> <args...>` (at most
/// [`ZK_CLIENT_TIMEOUT`], then killed) and returns its exit status, with
/// stdout and stderr merged into `stdout` (in order) and `stderr` empty.
pub fn kazoo_script(target: &dyn ZkTarget, script: &str, args: &[&str]) -> Output {
    let path = kazoo_dir().join(format!("{script}.py"));
    assert!(path.is_file(), "no kazoo script {}", path.display());
    let mut cmd = Command::new(kazoo_python());
    cmd.arg("-u")
        .arg(&path)
        .arg(target.connect_string())
        .args(args)
        .current_dir(kazoo_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (status, out) = run_merged(cmd, "", ZK_CLIENT_TIMEOUT);
    Output {
        status,
        stdout: out.into_bytes(),
        stderr: Vec::new(),
    }
}

/// Runs the kazoo script against `target` and panics unless it exits 0,
/// with its output (the failing check and its traceback). The server's log
/// tail follows when the server is dropped during the panic.
pub fn assert_kazoo_script_passes(target: &dyn ZkTarget, script: &str) {
    let out = kazoo_script(target, script, &[]);
    if !out.status.success() {
        let who = match target.name() {
            "zookeeper" => "against ZooKeeper 3.8 (the reference): the TEST is wrong",
            _ => "against synod",
        };
        panic!(
            "kazoo script {script}.py failed {who} ({}):\n--- script output ---\n{}--- end of script output ---",
            out.status,
            String::from_utf8_lossy(&out.stdout),
        );
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_zkcli_moves_notifications_out_and_numbers_zxids_and_sessions() {
        let raw = "$ get -s /a\n\
                   SLF4J: Defaulting to no-operation (NOP) logger implementation\n\
                   Connecting to 127.0.0.1:2181\n\
                   Welcome to ZooKeeper!\n\
                   JLine support is disabled\n\
                   \n\
                   WATCHER::\n\
                   \n\
                   WatchedEvent state:SyncConnected type:None path:null\n\
                   \n\
                   cZxid = 0x1f\n\
                   ctime = Sat Nov 21 11:10:20 UTC 2026\n\
                   mZxid = 0x2a\n\
                   mtime = Thu Jan 01 00:00:00 UTC 1970\n\
                   pZxid = 0x1f\n\
                   ephemeralOwner = 0x100003c1b2a0000\n\
                   $ stat /zookeeper\n\
                   cZxid = 0x0\n\
                   ephemeralOwner = 0x0\n\
                   \n\
                   WATCHER::\n\
                   \n\
                   WatchedEvent state:Closed type:None path:null\n";
        assert_eq!(
            normalize_zkcli(raw),
            "$ get -s /a\n\
             \n\
             cZxid = <zxid-1>\n\
             ctime = <time>\n\
             mZxid = <zxid-2>\n\
             mtime = Thu Jan 01 00:00:00 UTC 1970\n\
             pZxid = <zxid-1>\n\
             ephemeralOwner = <session-1>\n\
             $ stat /zookeeper\n\
             cZxid = 0x0\n\
             ephemeralOwner = 0x0\n\
             --- watch notifications ---\n\
             WatchedEvent state:SyncConnected type:None path:null\n"
        );
    }

    #[test]
    fn line_diff_shows_removed_before_added_lines_with_context() {
        let d = line_diff(
            "a\nb\nc\nd\ne\nf\ng\n",
            "a\nb\nc\nD\ne\nf\ng\n",
            "left",
            "right",
        );
        assert!(d.starts_with(
            "first difference at line 4:\n  left: Some(\"d\")\n  right: Some(\"D\")\n"
        ));
        assert!(
            d.ends_with("  ...\n  b\n  c\n- d\n+ D\n  e\n  f\n  ...\n"),
            "{d}"
        );
    }
}
