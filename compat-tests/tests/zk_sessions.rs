//! ZooKeeper sessions across gateway processes: properties of Synod's gateway design (a
//! session is an etcd lease and a key in the shared store, so any gateway on the same store
//! can serve it), checked with real kazoo clients against two standalone `synod-zk` gateways
//! in front of one store (upstream etcd 3.4, or a Synod member).
//!
//! - A client whose gateway is killed (SIGKILL) reconnects to the other gateway and keeps its
//!   session: same id, its ephemeral intact, its watches firing afterwards.
//! - A session whose gateway died and whose client never came back expires after its
//!   timeout, as upstream's do: its ephemerals go, the parent's numChildren, cversion and
//!   pzxid move, watches fire.
//! - closeSession deletes the session's ephemerals at once, seen through the other gateway.
//! - A client resuming its session on the other gateway gets its watches back with
//!   SetWatches (what the Java client sends; kazoo does not): what changed while it was away
//!   fires at once, the rest is re-armed (raw jute here, to see each frame).
//!
//! The scripts (`compat-tests/zk/zk_sessions_*.py`) assert the client-side facts themselves
//! and talk with the test on stdin/stdout when it must kill something. Where a scenario has a
//! single-server analogue (the client dies instead of the gateway; both clients on one
//! server), it first runs against upstream ZooKeeper 3.8 to prove the script's expectations.
//! Every process started here is killed on drop; every wait is bounded.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use compat_tests::zookeeper::{four_letter_word, kazoo_dir, kazoo_python, ZkTarget};
use compat_tests::{free_port, synod_bin, Flavor, Server, ZkServer, READY_TIMEOUT};
use zk_gateway::jute::{
    encode_connect_request, encode_request, Acl, ConnectRequest, CreateRequest, Id, Request,
    RequestHeader, SetDataRequest, SetWatches,
};
use zk_gateway::proto::{err, op, xid};

/// How long a script may run in all.
const SCRIPT_LIMIT: Duration = Duration::from_secs(100);
/// How long the test waits for a script to reach its next step.
const STEP_LIMIT: Duration = Duration::from_secs(40);

// ---------------------------------------------------------------------------
// Gateways
// ---------------------------------------------------------------------------

/// The `synod-zk` binary: `$SYNOD_ZK_BIN`, else next to the synod binary under test.
fn synod_zk_bin() -> PathBuf {
    let (path, origin) = match std::env::var_os("SYNOD_ZK_BIN") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), "$SYNOD_ZK_BIN".to_string()),
        _ => {
            let synod = synod_bin();
            (
                synod.with_file_name("synod-zk"),
                format!(
                    "next to the synod binary {} (set $SYNOD_ZK_BIN to override)",
                    synod.display()
                ),
            )
        }
    };
    if !path.is_file() {
        panic!(
            "required binary not found: {} (from {origin}).\n\
             build it: cargo build --release -p synod-zk-gateway (with the same profile as synod)",
            path.display()
        );
    }
    path
}

/// One standalone `synod-zk` process on a free loopback port, in front of `endpoint`;
/// killed on drop.
struct Gateway {
    name: &'static str,
    port: u16,
    child: Option<Child>,
    log_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts it and returns once it answers `ruok` with `imok` (panics with its log after
    /// [`READY_TIMEOUT`], or at once if it exits).
    fn start(name: &'static str, endpoint: &str) -> Gateway {
        let bin = synod_zk_bin();
        let dir = tempfile::Builder::new()
            .prefix(&format!("compat-synod-zk-{name}-"))
            .tempdir()
            .expect("create temp dir");
        let log_path = dir.path().join("gateway.log");
        let log = std::fs::File::create(&log_path).expect("create gateway log");
        let port = free_port();
        let child = Command::new(&bin)
            .arg("--endpoints")
            .arg(endpoint)
            .arg("--zk-listen-addr")
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("clone log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        let mut gw = Gateway {
            name,
            port,
            child: Some(child),
            log_path,
            _dir: dir,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = gw.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "gateway {name} exited during startup ({status}).\n--- its log ---\n{}",
                    gw.log()
                );
            }
            let last = match four_letter_word(&gw.addr(), "ruok") {
                Ok(a) if a == "imok" => return gw,
                Ok(a) => format!("ruok answered {a:?}"),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                panic!(
                    "gateway {name} at {} not ready within {READY_TIMEOUT:?}; last: {last}\n--- its log ---\n{}",
                    gw.addr(),
                    gw.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// SIGKILL, and reap it.
    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn assert_no_panic(&self) {
        let log = self.log();
        if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
            panic!(
                "gateway {} panicked: {line}\n--- its log ---\n{log}",
                self.name
            );
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "--- log of gateway {} ({}) ---\n{}\n--- end of log ---",
                self.name,
                self.addr(),
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        }
    }
}

/// A store (one etcd 3.4 or Synod member, ZooKeeper listener off) and two gateways on it.
struct TwoGateways {
    gw: [Gateway; 2],
    store: Server,
}

impl TwoGateways {
    fn start(store: Flavor) -> TwoGateways {
        let store = Server::start(store);
        let a = Gateway::start("gw1", &store.client_url);
        let b = Gateway::start("gw2", &store.client_url);
        TwoGateways { gw: [a, b], store }
    }

    fn hosts(&self) -> String {
        format!("{},{}", self.gw[0].addr(), self.gw[1].addr())
    }

    fn assert_no_panic(&self) {
        for g in &self.gw {
            g.assert_no_panic();
        }
        assert!(
            !self.store.log().contains("panicked"),
            "the store panicked:\n{}",
            self.store.log_tail(80)
        );
    }
}

// ---------------------------------------------------------------------------
// Scripts that talk with the test
// ---------------------------------------------------------------------------

/// A kazoo script from `compat-tests/zk/`, stdout and stderr merged and read line by line,
/// stdin open for the test's messages; killed on drop.
struct Script {
    name: String,
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    transcript: Vec<String>,
    started: Instant,
}

impl Script {
    fn start(name: &str, args: &[&str]) -> Script {
        let path = kazoo_dir().join(format!("{name}.py"));
        assert!(path.is_file(), "no script {}", path.display());
        let (reader, writer) = std::io::pipe().expect("create pipe");
        let writer2 = writer.try_clone().expect("clone pipe writer");
        let mut cmd = Command::new(kazoo_python());
        cmd.arg("-u")
            .arg(&path)
            .args(args)
            .current_dir(kazoo_dir())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer2));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", path.display()));
        // The Command holds copies of the pipe's write ends: drop it so EOF can be seen.
        drop(cmd);
        let stdin = child.stdin.take();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Script {
            name: name.to_string(),
            child: Some(child),
            stdin,
            lines: rx,
            transcript: Vec::new(),
            started: Instant::now(),
        }
    }

    fn output(&self) -> String {
        self.transcript.join("\n")
    }

    /// Waits (at most [`STEP_LIMIT`]) for a line starting with `prefix`; returns its words
    /// after the prefix.
    fn expect(&mut self, prefix: &str) -> Vec<String> {
        let deadline = Instant::now() + STEP_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.transcript.push(l.clone());
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.split_whitespace().map(str::to_string).collect();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "script {} did not print {prefix:?} within {STEP_LIMIT:?}; its output:\n{}",
                    self.name,
                    self.output()
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "script {} ended before printing {prefix:?}; its output:\n{}",
                    self.name,
                    self.output()
                ),
            }
        }
    }

    fn say(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("script stdin");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .unwrap_or_else(|e| {
                panic!("tell script {} {line:?}: {e}\n{}", self.name, self.output())
            });
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for the script to end (at most [`SCRIPT_LIMIT`] since it started) and panics
    /// unless it passed (exit 0, last line PASS). `against` names the server side.
    fn assert_passes(&mut self, against: &str) {
        let mut child = self.child.take().expect("script still running");
        self.stdin = None;
        let status: ExitStatus = loop {
            if let Some(st) = child.try_wait().expect("wait for script") {
                break st;
            }
            if self.started.elapsed() > SCRIPT_LIMIT {
                let _ = child.kill();
                let st = child.wait().expect("wait for killed script");
                self.transcript
                    .push(format!("[harness: killed after {SCRIPT_LIMIT:?}]"));
                break st;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The rest of its output (bounded: the pipe closes when the script is gone).
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.transcript.push(l);
        }
        if !status.success() || self.transcript.last().map(String::as_str) != Some("PASS") {
            panic!(
                "script {}.py failed against {against} ({status}):\n--- its output ---\n{}\n--- end ---",
                self.name,
                self.output()
            );
        }
        eprintln!("script {} against {against}:\n{}", self.name, self.output());
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            while let Ok(l) = self.lines.try_recv() {
                self.transcript.push(l);
            }
            eprintln!(
                "--- output of script {} ---\n{}\n--- end ---",
                self.name,
                self.output()
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The scenarios
// ---------------------------------------------------------------------------

fn session_survives_the_death_of_its_gateway(store: Flavor) {
    let mut gws = TwoGateways::start(store);
    let mut script = Script::start("zk_sessions_resume", &[&gws.hosts()]);
    let said = script.expect("CONNECTED ");
    let connected_to = said.first().cloned().unwrap_or_default();
    let victim = gws
        .gw
        .iter()
        .position(|g| g.addr() == connected_to)
        .unwrap_or_else(|| {
            panic!(
                "the client says it is connected to {connected_to:?}, not one of {}",
                gws.hosts()
            )
        });
    gws.gw[victim].kill9();
    script.say("KILLED");
    script.assert_passes(&format!(
        "two synod-zk gateways over {store:?} (the client's gateway killed)"
    ));
    gws.assert_no_panic();
}

#[test]
fn a_session_survives_the_death_of_its_gateway_over_etcd_3_4_keeping_id_ephemerals_and_watches() {
    session_survives_the_death_of_its_gateway(Flavor::Etcd);
}

#[test]
fn a_session_survives_the_death_of_its_gateway_over_a_synod_member_keeping_id_ephemerals_and_watches(
) {
    session_survives_the_death_of_its_gateway(Flavor::Synod);
}

/// The holder (session timeout 4 s) through `holder_hosts`, the observer through
/// `observer_hosts`; `kill` kills what must die (the holder's gateway and the holder, or just
/// the holder) once the observer watches.
fn expiry_scenario(
    holder_hosts: &str,
    observer_hosts: &str,
    against: &str,
    kill: impl FnOnce(&mut Script),
) {
    let mut holder = Script::start("zk_sessions_holder", &[holder_hosts, "4", "/expiry"]);
    let held = holder.expect("HOLDING ");
    assert_eq!(held.len(), 2, "holder said {held:?}");
    let mut observer = Script::start(
        "zk_sessions_expiry",
        &[observer_hosts, "/expiry", &held[0], &held[1], "4000"],
    );
    observer.expect("WATCHING");
    kill(&mut holder);
    observer.say("KILLED");
    observer.assert_passes(against);
}

#[test]
fn ephemerals_of_a_session_whose_gateway_died_expire_after_the_timeout_updating_the_parent() {
    // The reference: on ZooKeeper, the holder's client process dies (there is no gateway).
    {
        let zk = ZkServer::start();
        let addr = zk.connect_string();
        wait_serving(&addr);
        expiry_scenario(
            &addr,
            &addr,
            "ZooKeeper 3.8 (the holder killed)",
            |holder| holder.kill9(),
        );
    }
    let mut gws = TwoGateways::start(Flavor::Etcd);
    let (gw1, gw2) = (gws.gw[0].addr(), gws.gw[1].addr());
    let victim = &mut gws.gw[0];
    expiry_scenario(
        &gw1,
        &gw2,
        "two synod-zk gateways over etcd 3.4 (the holder's gateway killed, then the holder)",
        |holder| {
            victim.kill9();
            holder.kill9();
        },
    );
    gws.gw[1].assert_no_panic();
    gws.assert_no_panic();
}

#[test]
fn close_session_deletes_the_sessions_ephemerals_at_once_as_seen_through_another_gateway() {
    {
        let zk = ZkServer::start();
        let addr = zk.connect_string();
        wait_serving(&addr);
        Script::start("zk_sessions_close", &[&addr, &addr]).assert_passes("ZooKeeper 3.8");
    }
    let gws = TwoGateways::start(Flavor::Synod);
    Script::start("zk_sessions_close", &[&gws.gw[0].addr(), &gws.gw[1].addr()])
        .assert_passes("two synod-zk gateways over a Synod member (client A on gw1, B on gw2)");
    gws.assert_no_panic();
}

// ---------------------------------------------------------------------------
// Watches brought back with SetWatches (raw jute)
// ---------------------------------------------------------------------------

/// The longest any single read from a server may take.
const IO_LIMIT: Duration = Duration::from_secs(10);
const EPHEMERAL: i32 = 1;
const NODE_CREATED: i32 = 1;
const NODE_DATA_CHANGED: i32 = 3;
const NODE_CHILDREN_CHANGED: i32 = 4;

/// A session on one raw connection, driven request by request (the Java client's framing).
struct Raw {
    s: TcpStream,
    addr: String,
    id: i64,
    passwd: Vec<u8>,
    next_xid: i32,
    /// The highest zxid any reply carried (what the client sends as lastZxidSeen).
    last_zxid: i64,
    /// Watch notifications received while waiting for replies: (type, path).
    events: Vec<(i32, String)>,
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl Raw {
    /// A new session (session 0) or a resumed one, asking for 10 s; panics unless granted.
    fn connect(addr: &str, session: i64, passwd: &[u8], last_zxid: i64) -> Raw {
        let sa: SocketAddr = addr.parse().expect("host:port");
        let s = TcpStream::connect_timeout(&sa, IO_LIMIT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        s.set_read_timeout(Some(IO_LIMIT)).expect("read timeout");
        s.set_write_timeout(Some(IO_LIMIT)).expect("write timeout");
        let mut r = Raw {
            s,
            addr: addr.to_string(),
            id: 0,
            passwd: Vec::new(),
            next_xid: 1,
            last_zxid,
            events: Vec::new(),
        };
        let mut out = Vec::new();
        encode_connect_request(
            &mut out,
            &ConnectRequest {
                protocol_version: 0,
                last_zxid_seen: last_zxid,
                time_out: 10_000,
                session_id: session,
                passwd: passwd.to_vec(),
                read_only: Some(false),
            },
        );
        r.send(&out);
        let body = r.frame("the ConnectResponse");
        let (id, n) = (be_i64(&body, 8), be_i32(&body, 16));
        assert!(
            id != 0 && be_i32(&body, 4) > 0 && n == 16,
            "{addr}: session 0x{session:x} (lastZxidSeen 0x{last_zxid:x}) not granted: {body:02x?}"
        );
        if session != 0 {
            assert_eq!(id, session, "{addr}: a resumed session keeps its id");
        }
        r.id = id;
        r.passwd = body[20..36].to_vec();
        r
    }

    fn send(&mut self, b: &[u8]) {
        let addr = self.addr.clone();
        self.s
            .write_all(b)
            .unwrap_or_else(|e| panic!("{addr}: send: {e}"));
    }

    fn frame(&mut self, what: &str) -> Vec<u8> {
        let mut len = [0u8; 4];
        self.read_exact(&mut len, what);
        let n = i32::from_be_bytes(len);
        assert!(
            (0..=1_048_575).contains(&n),
            "{}: {what}: frame length {n}",
            self.addr
        );
        let mut body = vec![0u8; n as usize];
        self.read_exact(&mut body, what);
        body
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) {
        if let Err(e) = self.s.read_exact(buf) {
            match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                    panic!("{}: {what}: no answer within {IO_LIMIT:?}", self.addr)
                }
                _ => panic!("{}: {what}: {e}", self.addr),
            }
        }
    }

    /// The reply to `want_xid` (err, zxid, body); notifications before it go to `events`.
    fn reply(&mut self, want_xid: i32, what: &str) -> (i32, i64, Vec<u8>) {
        loop {
            let f = self.frame(what);
            let (x, zxid, e) = (be_i32(&f, 0), be_i64(&f, 4), be_i32(&f, 12));
            if x == xid::NOTIFICATION {
                let n = be_i32(&f, 24) as usize;
                let path = String::from_utf8_lossy(&f[28..28 + n]).into_owned();
                self.events.push((be_i32(&f, 16), path));
                continue;
            }
            assert_eq!(x, want_xid, "{}: {what}: reply xid", self.addr);
            if zxid > self.last_zxid {
                self.last_zxid = zxid;
            }
            return (e, zxid, f[16..].to_vec());
        }
    }

    fn call(&mut self, code: i32, req: &Request) -> (i32, Vec<u8>) {
        let x = self.next_xid;
        self.next_xid += 1;
        let mut out = Vec::new();
        encode_request(&mut out, &RequestHeader { xid: x, op: code }, req);
        self.send(&out);
        let (e, _, body) = self.reply(x, &format!("the reply to {req:?}"));
        (e, body)
    }

    fn create(&mut self, path: &str, data: &[u8], flags: i32) {
        let req = CreateRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            acl: vec![Acl {
                perms: 31,
                id: Id {
                    scheme: "world".into(),
                    id: "anyone".into(),
                },
            }],
            flags,
            ttl: None,
        };
        let (e, _) = self.call(
            op::CREATE,
            &Request::Create {
                op: op::CREATE,
                req,
            },
        );
        assert_eq!(e, 0, "{}: create {path}", self.addr);
    }

    fn set(&mut self, path: &str, data: &[u8]) {
        let req = SetDataRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            version: -1,
        };
        let (e, _) = self.call(op::SET_DATA, &Request::SetData(req));
        assert_eq!(e, 0, "{}: setData {path}", self.addr);
    }

    fn get_data(&mut self, path: &str, watch: bool) -> Vec<u8> {
        let (e, body) = self.call(
            op::GET_DATA,
            &Request::GetData {
                path: path.into(),
                watch,
            },
        );
        assert_eq!(e, 0, "{}: getData {path}", self.addr);
        let n = be_i32(&body, 0).max(0) as usize;
        body[4..4 + n].to_vec()
    }

    fn children(&mut self, path: &str, watch: bool) -> Vec<String> {
        let (e, body) = self.call(
            op::GET_CHILDREN,
            &Request::GetChildren {
                path: path.into(),
                watch,
            },
        );
        assert_eq!(e, 0, "{}: getChildren {path}", self.addr);
        let mut at = 4;
        let mut out = Vec::new();
        for _ in 0..be_i32(&body, 0) {
            let n = be_i32(&body, at) as usize;
            out.push(String::from_utf8_lossy(&body[at + 4..at + 4 + n]).into_owned());
            at += 4 + n;
        }
        out
    }

    /// exists: Some(ephemeralOwner), or None (NoNode).
    fn exists(&mut self, path: &str, watch: bool) -> Option<i64> {
        let (e, body) = self.call(
            op::EXISTS,
            &Request::Exists {
                path: path.into(),
                watch,
            },
        );
        match e {
            0 => Some(be_i64(&body, 44)),
            e if e == err::NO_NODE => None,
            e => panic!("{}: exists {path}: err {e}", self.addr),
        }
    }

    /// SetWatches (xid -8) relative to `last_zxid`; returns the events that arrived before
    /// its reply, sorted.
    fn set_watches(&mut self, w: SetWatches) -> Vec<(i32, String)> {
        let before = self.events.len();
        let mut out = Vec::new();
        encode_request(
            &mut out,
            &RequestHeader {
                xid: xid::SET_WATCHES,
                op: op::SET_WATCHES,
            },
            &Request::SetWatches(w),
        );
        self.send(&out);
        let (e, _, _) = self.reply(xid::SET_WATCHES, "the reply to SetWatches");
        assert_eq!(e, 0, "{}: SetWatches", self.addr);
        let mut fired = self.events[before..].to_vec();
        fired.sort();
        fired
    }

    /// Events received since index `from`, after a round trip that orders them: the server
    /// sends a notification before any reply that reflects its change.
    fn events_since(&mut self, from: usize) -> Vec<(i32, String)> {
        self.exists("/", false);
        self.events[from..].to_vec()
    }
}

/// A client holding watches and an ephemeral loses its connection (`interrupt`), nodes change
/// while it is away, and it resumes its session through `second` with SetWatches, as the Java
/// client does.
fn watches_come_back_with_set_watches(
    first: &str,
    second: &str,
    against: &str,
    interrupt: impl FnOnce(Raw),
) {
    eprintln!("=== SetWatches scenario against {against}");
    let mut c = Raw::connect(first, 0, &[0; 16], 0);
    for (p, d) in [
        ("/sw", ""),
        ("/sw/data", "v0"),
        ("/sw/stay", "s0"),
        ("/sw/parent", ""),
        ("/sw/sentinel", ""),
    ] {
        c.create(p, d.as_bytes(), 0);
    }
    c.create("/sw/eph", b"", EPHEMERAL);
    assert_eq!(c.get_data("/sw/data", true), b"v0");
    assert_eq!(c.get_data("/sw/stay", true), b"s0");
    assert_eq!(c.children("/sw/parent", true), Vec::<String>::new());
    assert_eq!(c.exists("/sw/later", true), None);
    let (id, passwd, last) = (c.id, c.passwd.clone(), c.last_zxid);
    interrupt(c);

    // While the client is away: one watched node changes, one gets a child, one is created.
    let mut o = Raw::connect(second, 0, &[0; 16], 0);
    o.set("/sw/data", b"v1");
    o.create("/sw/parent/kid", b"", 0);
    o.create("/sw/later", b"", 0);
    assert_eq!(
        o.exists("/sw/eph", false),
        Some(id),
        "{against}: the absent client's ephemeral"
    );

    let mut r = Raw::connect(second, id, &passwd, last);
    let fired = r.set_watches(SetWatches {
        relative_zxid: last,
        data_watches: vec!["/sw/data".into(), "/sw/stay".into()],
        exist_watches: vec!["/sw/later".into()],
        child_watches: vec!["/sw/parent".into()],
        ..Default::default()
    });
    assert_eq!(
        fired,
        vec![
            (NODE_CREATED, "/sw/later".to_string()),
            (NODE_DATA_CHANGED, "/sw/data".to_string()),
            (NODE_CHILDREN_CHANGED, "/sw/parent".to_string()),
        ],
        "{against}: the watches whose nodes changed since lastZxidSeen fire before the SetWatches reply; the others do not"
    );
    // The unchanged node's watch is armed again, and fires once.
    let mark = r.events.len();
    o.set("/sw/stay", b"s1");
    assert_eq!(
        r.events_since(mark),
        vec![(NODE_DATA_CHANGED, "/sw/stay".to_string())],
        "{against}: the re-armed data watch"
    );
    let mark = r.events.len();
    assert_eq!(r.get_data("/sw/sentinel", true), b"");
    for (p, d) in [
        ("/sw/data", "v2"),
        ("/sw/stay", "s2"),
        ("/sw/sentinel", "x"),
    ] {
        o.set(p, d.as_bytes());
    }
    o.create("/sw/parent/kid2", b"", 0);
    assert_eq!(
        r.events_since(mark),
        vec![(NODE_DATA_CHANGED, "/sw/sentinel".to_string())],
        "{against}: watches that fired are spent (only the newly set one fires)"
    );
    assert_eq!(
        r.exists("/sw/eph", false),
        Some(id),
        "{against}: the resumed session's ephemeral"
    );
}

#[test]
fn a_session_resumed_on_another_gateway_gets_its_watches_back_with_set_watches() {
    {
        // The reference: the client's connection to ZooKeeper drops; it comes back to it.
        let zk = ZkServer::start();
        let addr = zk.connect_string();
        wait_serving(&addr);
        watches_come_back_with_set_watches(
            &addr,
            &addr,
            "ZooKeeper 3.8 (connection dropped)",
            drop,
        );
    }
    let mut gws = TwoGateways::start(Flavor::Etcd);
    let (gw1, gw2) = (gws.gw[0].addr(), gws.gw[1].addr());
    let victim = &mut gws.gw[0];
    watches_come_back_with_set_watches(
        &gw1,
        &gw2,
        "two synod-zk gateways over etcd 3.4 (the first one killed)",
        |c| {
            victim.kill9();
            drop(c);
        },
    );
    gws.assert_no_panic();
}

/// ZooKeeper answers `ruok` with `imok` (what the harness waits for) a moment before it
/// serves sessions; waits (at most 30 s) until `srvr` answers.
fn wait_serving(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = four_letter_word(addr, "srvr");
        match &answer {
            Ok(a) if a.starts_with("Zookeeper version: ") => return,
            _ if Instant::now() > deadline => panic!("{addr}: not serving within 30 s: {answer:?}"),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
