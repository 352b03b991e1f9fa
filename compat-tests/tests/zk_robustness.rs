//! A ZooKeeper server facing broken or hostile clients, byte for byte over raw TCP, with
//! upstream ZooKeeper 3.8 as the reference: what it answers to malformed frames, unknown
//! opcodes, bad handshakes and the four-letter words, and that one bad connection never harms
//! another.
//!
//! Every test runs its scenario first against a fresh ZooKeeper 3.8 (which proves the
//! expectation is ZooKeeper's behaviour), then against a fresh Synod with its embedded
//! ZooKeeper gateway ([`zk_on_both`]). Valid traffic is written with the gateway's own jute
//! codec (`zk_gateway::jute`); the bad traffic is spelled out byte by byte.
//!
//! For every malformed input the same three things are checked: what the bad connection gets
//! (exact bytes, then the server closing it, or the server going on), that a session opened
//! BEFORE the bad input still does a create/getData round trip after it, and that the server
//! logged no panic. Every read is bounded ([`IO_LIMIT`]).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use compat_tests::zookeeper::{four_letter_word, ZkTarget};
use zk_gateway::jute::{
    encode_connect_request, encode_request, Acl, ConnectRequest, CreateRequest, DeleteRequest, Id,
    MultiOp, Request, RequestHeader, SetAclRequest, SetDataRequest,
};
use zk_gateway::proto::{err, op};

/// The longest any single read from a server may take.
const IO_LIMIT: Duration = Duration::from_secs(5);
/// How long a connection that must stay open is watched for an unwanted close.
const STAYS_OPEN_FOR: Duration = Duration::from_millis(1500);
/// jute.maxbuffer's default: the largest frame length a server accepts.
const MAX_BUFFER: i32 = 1_048_575;
/// The session timeout the scenarios ask for (well inside 4 s..40 s: granted as asked).
const TIMEOUT_MS: i32 = 30_000;
/// A zxid no fresh server has reached.
const FUTURE_ZXID: i64 = 1 << 50;

const EPHEMERAL: i32 = 1;

// ---------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------

/// [`zk_on_both`], each pass starting once its server serves sessions.
fn on_both(scenario: impl Fn(&dyn ZkTarget)) {
    compat_tests::zk_on_both(|t| {
        wait_serving(t);
        scenario(t)
    });
}

/// ZooKeeper answers `ruok` with `imok` (what the harness waits for) a moment before it
/// serves sessions: until then a ConnectRequest is dropped and the other four-letter words
/// say "This ZooKeeper instance is not currently serving requests". Waits (at most 30 s)
/// until `srvr` answers.
fn wait_serving(t: &dyn ZkTarget) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = four_letter_word(&t.connect_string(), "srvr");
        match &answer {
            Ok(a) if a.starts_with("Zookeeper version: ") => return,
            _ if Instant::now() > deadline => {
                panic!(
                    "{}: not serving within 30 s: srvr answered {answer:?}",
                    t.name()
                )
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

// ---------------------------------------------------------------------------
// Raw connections
// ---------------------------------------------------------------------------

/// How a read from the server ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The server closed the connection (EOF or reset).
    Closed,
    /// Nothing more arrived within the limit; the connection is still open.
    Open,
}

/// One TCP connection to a server, nothing assumed about the protocol.
struct Raw {
    s: TcpStream,
    /// "zookeeper" or "synod", for messages.
    who: &'static str,
}

impl Raw {
    fn connect(t: &dyn ZkTarget) -> Raw {
        let addr = t.connect_string();
        let sa: SocketAddr = addr.parse().expect("connect string is host:port");
        let s = TcpStream::connect_timeout(&sa, IO_LIMIT)
            .unwrap_or_else(|e| panic!("{}: connect to {addr}: {e}", t.name()));
        s.set_write_timeout(Some(IO_LIMIT))
            .expect("set write timeout");
        s.set_nodelay(true).expect("set nodelay");
        Raw { s, who: t.name() }
    }

    /// Sends `bytes`; a server that closes on bad input may make this fail (broken pipe,
    /// reset), which is not an error here: what the server does is checked by reading.
    fn send_lossy(&mut self, bytes: &[u8]) {
        let _ = self.s.write_all(bytes);
    }

    fn send(&mut self, bytes: &[u8], what: &str) {
        self.s
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{}: send {what}: {e}", self.who));
    }

    /// Everything the server sends until it closes the connection, or until `limit` passes.
    fn read_until_end(&mut self, limit: Duration) -> (Vec<u8>, End) {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return (out, End::Open);
            }
            self.s
                .set_read_timeout(Some(left))
                .expect("set read timeout");
            match self.s.read(&mut buf) {
                Ok(0) => return (out, End::Closed),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return (out, End::Open)
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::ConnectionReset
                            | ErrorKind::ConnectionAborted
                            | ErrorKind::BrokenPipe
                    ) =>
                {
                    return (out, End::Closed)
                }
                Err(e) => panic!("{}: read: {e}", self.who),
            }
        }
    }

    /// Panics unless the server closes the connection within [`IO_LIMIT`]; returns what it
    /// sent before closing.
    fn expect_closed(&mut self, what: &str) -> Vec<u8> {
        let (bytes, end) = self.read_until_end(IO_LIMIT);
        assert_eq!(
            end,
            End::Closed,
            "{}: {what}: the server must close the connection (within {IO_LIMIT:?}); it stayed open, having sent {}",
            self.who,
            hex(&bytes)
        );
        bytes
    }

    /// Panics if the server sends anything or closes the connection within `d`.
    fn expect_silent_and_open(&mut self, d: Duration, what: &str) {
        let (bytes, end) = self.read_until_end(d);
        assert_eq!(
            (hex(&bytes), end),
            (hex(&[]), End::Open),
            "{}: {what}: the server must keep the connection open and wait (watched for {d:?})",
            self.who
        );
    }

    /// The next frame's body; `None` if the server closed the connection first.
    fn read_frame(&mut self, what: &str) -> Option<Vec<u8>> {
        let mut len = [0u8; 4];
        if !self.read_exact_or_eof(&mut len, what) {
            return None;
        }
        let n = i32::from_be_bytes(len);
        assert!(
            (0..=MAX_BUFFER).contains(&n),
            "{}: {what}: the server sent a frame length of {n}",
            self.who
        );
        let mut body = vec![0u8; n as usize];
        if !self.read_exact_or_eof(&mut body, what) {
            panic!(
                "{}: {what}: the server closed the connection in the middle of a {n}-byte frame",
                self.who
            );
        }
        Some(body)
    }

    /// Fills `buf`; false if the connection was closed before any byte of it arrived.
    fn read_exact_or_eof(&mut self, buf: &mut [u8], what: &str) -> bool {
        self.s
            .set_read_timeout(Some(IO_LIMIT))
            .expect("set read timeout");
        let mut got = 0;
        while got < buf.len() {
            match self.s.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return false,
                Ok(0) => panic!("{}: {what}: connection closed mid-read", self.who),
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("{}: {what}: no answer within {IO_LIMIT:?}", self.who)
                }
                Err(e) if e.kind() == ErrorKind::ConnectionReset && got == 0 => return false,
                Err(e) => panic!("{}: {what}: read: {e}", self.who),
            }
        }
        true
    }
}

fn hex(b: &[u8]) -> String {
    if b.is_empty() {
        return "nothing".to_string();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `body` with its 4-byte big-endian length prefix.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

// ---------------------------------------------------------------------------
// Handshakes and sessions
// ---------------------------------------------------------------------------

/// A ConnectRequest frame as the Java client sends it.
fn connect_frame(
    time_out: i32,
    session_id: i64,
    passwd: &[u8],
    last_zxid_seen: i64,
    read_only: Option<bool>,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode_connect_request(
        &mut out,
        &ConnectRequest {
            protocol_version: 0,
            last_zxid_seen,
            time_out,
            session_id,
            passwd: passwd.to_vec(),
            read_only,
        },
    );
    out
}

/// A new session's ConnectRequest (session 0, sixteen zero password bytes, readOnly byte).
fn new_session_frame(time_out: i32) -> Vec<u8> {
    connect_frame(time_out, 0, &[0; 16], 0, Some(false))
}

/// What a ConnectResponse says.
#[derive(Debug, PartialEq, Eq)]
struct ConnectAnswer {
    protocol_version: i32,
    time_out: i32,
    session_id: i64,
    passwd: Vec<u8>,
    /// The trailing readOnly byte, if the server sent one.
    read_only: Option<u8>,
}

fn parse_connect_answer(who: &str, body: &[u8]) -> ConnectAnswer {
    assert!(
        body.len() >= 20,
        "{who}: ConnectResponse too short: {}",
        hex(body)
    );
    let n = be_i32(body, 16);
    assert!(
        n >= 0 && body.len() >= 20 + n as usize,
        "{who}: ConnectResponse password length {n}: {}",
        hex(body)
    );
    let end = 20 + n as usize;
    assert!(
        body.len() <= end + 1,
        "{who}: ConnectResponse has trailing bytes: {}",
        hex(body)
    );
    ConnectAnswer {
        protocol_version: be_i32(body, 0),
        time_out: be_i32(body, 4),
        session_id: be_i64(body, 8),
        passwd: body[20..end].to_vec(),
        read_only: body.get(end).copied(),
    }
}

/// The whole answer to a refused resume (bad password, unknown or closed session): a
/// ConnectResponse with timeOut 0, sessionId 0 and sixteen zero password bytes (the readOnly
/// byte only if the client sent one). The server closes the connection after it.
fn expired_answer(read_only: Option<bool>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0i32.to_be_bytes()); // protocolVersion
    body.extend_from_slice(&0i32.to_be_bytes()); // timeOut
    body.extend_from_slice(&0i64.to_be_bytes()); // sessionId
    body.extend_from_slice(&16i32.to_be_bytes());
    body.extend_from_slice(&[0; 16]);
    if read_only.is_some() {
        body.push(0);
    }
    framed(&body)
}

/// A reply: the ReplyHeader and what follows it.
#[derive(Debug)]
struct Reply {
    xid: i32,
    zxid: i64,
    err: i32,
    body: Vec<u8>,
}

fn parse_reply(who: &str, frame: &[u8]) -> Reply {
    assert!(frame.len() >= 16, "{who}: reply too short: {}", hex(frame));
    Reply {
        xid: be_i32(frame, 0),
        zxid: be_i64(frame, 4),
        err: be_i32(frame, 12),
        body: frame[16..].to_vec(),
    }
}

/// Names of nodes created by round trips, unique in the whole test process.
static NEXT_NODE: AtomicU64 = AtomicU64::new(1);

/// A plain persistent create inside a multi, world-readable and -writable.
fn multi_create(path: &str, data: &[u8]) -> MultiOp {
    MultiOp::Create {
        op: op::CREATE,
        req: CreateRequest {
            path: path.into(),
            data: Some(data.to_vec()),
            acl: world_anyone(),
            flags: 0,
            ttl: None,
        },
    }
}

fn world_anyone() -> Vec<Acl> {
    vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

/// A session on one raw connection, driven request by request.
struct Session {
    raw: Raw,
    id: i64,
    passwd: Vec<u8>,
    time_out: i32,
    next_xid: i32,
    /// Watch notifications received while waiting for replies: (type, path).
    events: Vec<(i32, String)>,
}

impl Session {
    /// A new session asking for `time_out` ms.
    fn open(t: &dyn ZkTarget, time_out: i32) -> Session {
        let mut raw = Raw::connect(t);
        raw.send(&new_session_frame(time_out), "ConnectRequest");
        Session::finish_handshake(raw, "a new session's handshake")
    }

    /// Resumes session `id` with `passwd` on a new connection (panics unless granted).
    fn resume(t: &dyn ZkTarget, id: i64, passwd: &[u8]) -> Session {
        let mut raw = Raw::connect(t);
        raw.send(
            &connect_frame(TIMEOUT_MS, id, passwd, 0, Some(false)),
            "resuming ConnectRequest",
        );
        let s = Session::finish_handshake(raw, "resuming a session");
        assert_eq!(
            (s.id, s.time_out),
            (id, TIMEOUT_MS),
            "{}: resuming session 0x{id:x} must keep its id (and grant the timeout asked)",
            s.raw.who
        );
        s
    }

    fn finish_handshake(mut raw: Raw, what: &str) -> Session {
        let body = raw
            .read_frame(what)
            .unwrap_or_else(|| panic!("{}: {what}: closed without a ConnectResponse", raw.who));
        let a = parse_connect_answer(raw.who, &body);
        assert!(
            a.session_id != 0 && a.time_out > 0 && a.passwd.len() == 16,
            "{}: {what}: not granted: {a:?}",
            raw.who
        );
        Session {
            raw,
            id: a.session_id,
            passwd: a.passwd,
            time_out: a.time_out,
            next_xid: 1,
            events: Vec::new(),
        }
    }

    fn who(&self) -> &'static str {
        self.raw.who
    }

    /// Sends `req` as opcode `code` and returns its reply (notifications before it are kept
    /// in `events`). Panics if the server closes the connection instead.
    fn call(&mut self, code: i32, req: &Request) -> Reply {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut out = Vec::new();
        encode_request(&mut out, &RequestHeader { xid, op: code }, req);
        self.raw.send(&out, &format!("op {code}"));
        self.reply_to(xid, &format!("the reply to op {code} ({req:?})"))
    }

    fn reply_to(&mut self, xid: i32, what: &str) -> Reply {
        loop {
            let frame = self.raw.read_frame(what).unwrap_or_else(|| {
                panic!(
                    "{}: session 0x{:x}: connection closed, waiting for {what}",
                    self.who(),
                    self.id
                )
            });
            let r = parse_reply(self.who(), &frame);
            if r.xid == -1 {
                let t = be_i32(&r.body, 0);
                let n = be_i32(&r.body, 8) as usize;
                let path = String::from_utf8_lossy(&r.body[12..12 + n]).into_owned();
                self.events.push((t, path));
                continue;
            }
            assert_eq!(r.xid, xid, "{}: {what}: reply xid", self.who());
            return r;
        }
    }

    fn create(&mut self, path: &str, data: &[u8], flags: i32) -> Reply {
        self.call(
            op::CREATE,
            &Request::Create {
                op: op::CREATE,
                req: CreateRequest {
                    path: path.to_string(),
                    data: Some(data.to_vec()),
                    acl: world_anyone(),
                    flags,
                    ttl: None,
                },
            },
        )
    }

    /// addWatch `path` in `mode` (0 persistent, 1 persistent recursive); it must succeed.
    fn add_watch_ok(&mut self, path: &str, mode: i32) {
        let add = self.call(
            op::ADD_WATCH,
            &Request::AddWatch {
                path: path.into(),
                mode,
            },
        );
        assert_eq!(add.err, 0, "{}: addWatch: {add:?}", self.who());
    }

    fn create_ok(&mut self, path: &str, data: &[u8], flags: i32) -> i64 {
        let r = self.create(path, data, flags);
        assert_eq!(r.err, 0, "{}: create {path}: {r:?}", self.who());
        r.zxid
    }

    fn get_data(&mut self, path: &str, watch: bool) -> Reply {
        self.call(
            op::GET_DATA,
            &Request::GetData {
                path: path.to_string(),
                watch,
            },
        )
    }

    /// The Stat of `path` (exists), or None if it does not exist.
    fn stat_of(&mut self, path: &str) -> Option<Vec<u8>> {
        let r = self.call(
            op::EXISTS,
            &Request::Exists {
                path: path.to_string(),
                watch: false,
            },
        );
        match r.err {
            0 => Some(r.body),
            e if e == err::NO_NODE => None,
            e => panic!("{}: exists {path}: err {e}", self.who()),
        }
    }

    /// The ephemeralOwner of `path`, or None if it does not exist.
    fn owner_of(&mut self, path: &str) -> Option<i64> {
        self.stat_of(path).map(|stat| be_i64(&stat, 44))
    }

    /// The data version of `path`, or None if it does not exist.
    fn version_of(&mut self, path: &str) -> Option<i32> {
        self.stat_of(path).map(|stat| be_i32(&stat, 32))
    }

    /// Creates a fresh node holding a fresh value and reads it back: the session works.
    fn round_trip(&mut self, when: &str) {
        let n = NEXT_NODE.fetch_add(1, Ordering::Relaxed);
        let path = format!("/healthy-{n}");
        let data = format!("alive {n}");
        let created = self.create(&path, data.as_bytes(), 0);
        assert_eq!(
            created.err,
            0,
            "{}: the healthy session 0x{:x} could not create {path} {when}: {created:?}",
            self.who(),
            self.id
        );
        let got = self.get_data(&path, false);
        assert_eq!(got.err, 0, "{}: getData {path} {when}", self.who());
        let len = be_i32(&got.body, 0);
        assert_eq!(
            &got.body[4..4 + len as usize],
            data.as_bytes(),
            "{}: getData {path} {when}",
            self.who()
        );
    }

    /// closeSession: its reply, then the server closes the connection.
    fn close(mut self) {
        let r = self.call(op::CLOSE_SESSION, &Request::CloseSession);
        assert_eq!(r.err, 0, "{}: closeSession", self.who());
        self.raw.expect_closed("after closeSession");
    }
}

fn assert_no_panic(t: &dyn ZkTarget) {
    let log = t.log_tail(usize::MAX);
    if let Some(line) = log.lines().find(|l| l.contains("panicked")) {
        panic!(
            "{}: the server logged a panic: {line}\n--- log tail ---\n{}",
            t.name(),
            t.log_tail(80)
        );
    }
}

/// Runs `bad` with a healthy session opened before it; afterwards that session still does
/// a create/getData round trip, so does a new one, and the server logged no panic.
fn others_unharmed_by(t: &dyn ZkTarget, bad: impl FnOnce(&dyn ZkTarget)) {
    let mut healthy = Session::open(t, TIMEOUT_MS);
    healthy.round_trip("before the bad input");
    bad(t);
    healthy.round_trip("after the bad input");
    Session::open(t, TIMEOUT_MS).round_trip("on a new session after the bad input");
    assert_no_panic(t);
}

/// A raw connection that has completed a new session's handshake.
fn handshaken(t: &dyn ZkTarget) -> Raw {
    Session::open(t, TIMEOUT_MS).raw
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

#[test]
fn a_frame_cut_short_by_the_client_closing_is_dropped_and_other_sessions_carry_on() {
    on_both(|t| {
        others_unharmed_by(t, |t| {
            // A length promising 100 bytes, 10 sent, then the client stops sending: the
            // server closes its side too.
            for handshake in [false, true] {
                let mut r = if handshake {
                    handshaken(t)
                } else {
                    Raw::connect(t)
                };
                r.send(&100i32.to_be_bytes(), "length prefix");
                r.send(&[7u8; 10], "part of the body");
                r.s.shutdown(Shutdown::Write).expect("half-close");
                let got = r.expect_closed(&format!(
                    "a 100-byte frame cut off after 10 bytes (handshake done: {handshake})"
                ));
                assert!(
                    got.is_empty(),
                    "{}: answered a cut-off frame with {}",
                    t.name(),
                    hex(&got)
                );
            }
            // The same, the client closing the whole socket; and a length prefix cut in two.
            for handshake in [false, true] {
                let mut r = if handshake {
                    handshaken(t)
                } else {
                    Raw::connect(t)
                };
                r.send(&100i32.to_be_bytes(), "length prefix");
                r.send(&[7u8; 10], "part of the body");
                drop(r);
                let mut r = if handshake {
                    handshaken(t)
                } else {
                    Raw::connect(t)
                };
                r.send(&[0, 0], "half a length prefix");
                drop(r);
            }
        })
    });
}

#[test]
fn a_length_above_jute_maxbuffer_closes_the_connection_before_any_body_is_sent() {
    on_both(|t| {
        others_unharmed_by(t, |t| {
            for len in [MAX_BUFFER + 1, 2_000_000, i32::MAX] {
                for handshake in [false, true] {
                    let mut r = if handshake {
                        handshaken(t)
                    } else {
                        Raw::connect(t)
                    };
                    r.send(&len.to_be_bytes(), "length prefix");
                    let got = r.expect_closed(&format!(
                        "frame length {len} (handshake done: {handshake})"
                    ));
                    assert!(
                        got.is_empty(),
                        "{}: answered length {len} with {}",
                        t.name(),
                        hex(&got)
                    );
                }
            }
        })
    });
}

#[test]
fn a_length_of_exactly_jute_maxbuffer_is_accepted_and_the_server_waits_for_the_body() {
    on_both(|t| {
        others_unharmed_by(t, |t| {
            for handshake in [false, true] {
                let mut r = if handshake {
                    handshaken(t)
                } else {
                    Raw::connect(t)
                };
                r.send(&MAX_BUFFER.to_be_bytes(), "length prefix");
                r.send(&[0u8; 1000], "the start of the body");
                r.expect_silent_and_open(
                    STAYS_OPEN_FOR,
                    &format!(
                        "frame length {MAX_BUFFER} = jute.maxbuffer (handshake done: {handshake})"
                    ),
                );
            }
        })
    });
}

#[test]
fn a_negative_length_closes_the_connection() {
    on_both(|t| {
        others_unharmed_by(t, |t| {
            for len in [-1i32, -16, i32::MIN] {
                for handshake in [false, true] {
                    let mut r = if handshake {
                        handshaken(t)
                    } else {
                        Raw::connect(t)
                    };
                    r.send(&len.to_be_bytes(), "length prefix");
                    r.send_lossy(&[0u8; 16]);
                    let got = r.expect_closed(&format!(
                        "frame length {len} (handshake done: {handshake})"
                    ));
                    assert!(
                        got.is_empty(),
                        "{}: answered length {len} with {}",
                        t.name(),
                        hex(&got)
                    );
                }
            }
        })
    });
}

#[test]
fn garbage_instead_of_a_connect_request_closes_the_connection_without_an_answer() {
    let mut huge_passwd = Vec::new();
    huge_passwd.extend_from_slice(&0i32.to_be_bytes());
    huge_passwd.extend_from_slice(&0i64.to_be_bytes());
    huge_passwd.extend_from_slice(&TIMEOUT_MS.to_be_bytes());
    huge_passwd.extend_from_slice(&0i64.to_be_bytes());
    let mut negative_passwd = huge_passwd.clone();
    let no_passwd = huge_passwd.clone();
    huge_passwd.extend_from_slice(&0x7fff_ffffi32.to_be_bytes());
    huge_passwd.extend_from_slice(&[0; 17]);
    negative_passwd.extend_from_slice(&(-7i32).to_be_bytes());
    negative_passwd.extend_from_slice(&[0; 17]);
    let mut tls_client_hello = vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    tls_client_hello.extend_from_slice(&[0; 50]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: zk\r\n\r\n".to_vec(),
        ),
        ("a TLS ClientHello", tls_client_hello),
        ("an empty frame", framed(b"")),
        ("a frame of ten zero bytes", framed(&[0; 10])),
        ("a frame of text", framed(b"hello garbage bytes here")),
        ("a ConnectRequest without its password", framed(&no_passwd)),
        ("a password length of 2^31-1", framed(&huge_passwd)),
        ("a password length of -7", framed(&negative_passwd)),
    ];
    on_both(|t| {
        others_unharmed_by(t, |t| {
            for (what, bytes) in &cases {
                let mut r = Raw::connect(t);
                r.send_lossy(bytes);
                let got = r.expect_closed(&format!("{what} instead of a ConnectRequest"));
                assert!(
                    got.is_empty(),
                    "{}: {what} instead of a ConnectRequest was answered with {}",
                    t.name(),
                    hex(&got)
                );
            }
        })
    });
}

#[test]
fn a_request_too_short_for_its_header_closes_the_connection() {
    on_both(|t| {
        others_unharmed_by(t, |t| {
            for body in [
                &b""[..],
                &[1][..],
                &[0, 0, 0, 1][..],
                &[0, 0, 0, 1, 0, 0, 0][..],
            ] {
                let mut r = handshaken(t);
                r.send(&framed(body), "a short request");
                let got = r.expect_closed(&format!("a {}-byte request", body.len()));
                assert!(
                    got.is_empty(),
                    "{}: a {}-byte request was answered with {}",
                    t.name(),
                    body.len(),
                    hex(&got)
                );
            }
        })
    });
}

#[test]
fn a_known_opcode_with_a_malformed_body_is_answered_marshalling_error_and_the_session_carries_on() {
    // RequestHeader {xid 7, op} followed by a body that is not the op's record.
    let header = |code: i32| {
        let mut v = 7i32.to_be_bytes().to_vec();
        v.extend_from_slice(&code.to_be_bytes());
        v
    };
    let with = |code: i32, rest: &[u8]| {
        let mut v = header(code);
        v.extend_from_slice(rest);
        framed(&v)
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("create with no body", with(op::CREATE, b"")),
        (
            "create with a body cut short",
            with(op::CREATE, &[0xff, 0xff]),
        ),
        (
            "getData whose path length runs past the frame",
            with(op::GET_DATA, &0x7fff_ffffi32.to_be_bytes()),
        ),
        ("exists with a body cut short", with(op::EXISTS, &[0, 0])),
        (
            "setData whose path length is negative",
            with(op::SET_DATA, &(-16i32).to_be_bytes()),
        ),
        ("getChildren with no body", with(op::GET_CHILDREN, b"")),
        (
            "multi whose first op header is cut short",
            with(op::MULTI, &[0, 0, 0, 1, 0]),
        ),
    ];
    on_both(|t| {
        others_unharmed_by(t, |t| {
            let mut s = Session::open(t, TIMEOUT_MS);
            let before = s.create_ok("/marshalling", b"", 0);
            for (what, bytes) in &cases {
                s.raw.send(bytes, what);
                let r = s.reply_to(7, &format!("the answer to {what}"));
                assert_eq!(
                    r.err,
                    err::MARSHALLING_ERROR,
                    "{}: {what}: expected MarshallingError (-5): {r:?}",
                    t.name()
                );
                assert!(
                    r.zxid >= before,
                    "{}: {what}: the reply's zxid 0x{:x} is older than an earlier reply's 0x{before:x}",
                    t.name(),
                    r.zxid
                );
                assert!(
                    r.body.is_empty(),
                    "{}: {what}: an error reply has no body: {r:?}",
                    t.name()
                );
                // The same connection goes on serving its session.
                s.round_trip(&format!("on the connection that sent {what}"));
            }
        })
    });
}

#[test]
fn an_unknown_opcode_is_answered_unimplemented_with_zxid_minus_one_then_the_connection_closes() {
    // (xid, opcode): ops no client may send (0 notification, 10, -1 error), ops of other
    // servers (500: ClickHouse Keeper's FilteredList), nonsense, and random bytes.
    let cases: [(i32, i32); 8] = [
        (1, 0),
        (2, 10),
        (3, -1),
        (4, 500),
        (5, 9999),
        (6, i32::MIN),
        (7, i32::MAX),
        (0xdead_beefu32 as i32, 0xcafe_babeu32 as i32),
    ];
    on_both(|t| {
        others_unharmed_by(t, |t| {
            for (xid, code) in cases {
                for trailing in [&b""[..], &b"garbage!"[..]] {
                    let mut r = handshaken(t);
                    let mut body = xid.to_be_bytes().to_vec();
                    body.extend_from_slice(&code.to_be_bytes());
                    body.extend_from_slice(trailing);
                    r.send(&framed(&body), "a request with an unknown opcode");
                    let got = r.expect_closed(&format!(
                        "opcode {code} (xid {xid}, {} bytes of body)",
                        trailing.len()
                    ));
                    // ReplyHeader {xid, zxid -1, err -6}, nothing else.
                    let mut expected = xid.to_be_bytes().to_vec();
                    expected.extend_from_slice(&(-1i64).to_be_bytes());
                    expected.extend_from_slice(&err::UNIMPLEMENTED.to_be_bytes());
                    assert_eq!(
                        hex(&got),
                        hex(&framed(&expected)),
                        "{}: the answer to opcode {code} (xid {xid})",
                        t.name()
                    );
                }
            }
        })
    });
}

// ---------------------------------------------------------------------------
// Four-letter words
// ---------------------------------------------------------------------------

fn word(t: &dyn ZkTarget, w: &str) -> String {
    four_letter_word(&t.connect_string(), w)
        .unwrap_or_else(|e| panic!("{}: four-letter word {w}: {e}", t.name()))
}

/// `key<sep>value` lines, in order; panics on a line without `sep`.
fn pairs(t: &dyn ZkTarget, w: &str, text: &str, sep: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(sep).unwrap_or_else(|| {
                panic!(
                    "{}: {w}: line {l:?} is not key{sep:?}value; whole answer:\n{text}",
                    t.name()
                )
            });
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn value<'a>(t: &dyn ZkTarget, w: &str, pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{}: {w} has no {key:?}: {pairs:?}", t.name()))
}

fn int_value(t: &dyn ZkTarget, w: &str, pairs: &[(String, String)], key: &str) -> i64 {
    let v = value(t, w, pairs, key);
    v.parse()
        .unwrap_or_else(|_| panic!("{}: {w}: {key} = {v:?} is not an integer", t.name()))
}

/// A version string as kazoo's `server_version()` reads it: the part before the first `-`
/// is dot-separated integers, 3.5 or later.
fn assert_zookeeper_version(t: &dyn ZkTarget, w: &str, v: &str) {
    let digits: Vec<u32> = v
        .split('-')
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|d| {
            d.parse()
                .unwrap_or_else(|_| panic!("{}: {w}: version {v:?} is not x.y.z-...", t.name()))
        })
        .collect();
    assert!(
        digits.len() == 3 && (digits[0], digits[1]) >= (3, 5),
        "{}: {w}: version {v:?}",
        t.name()
    );
    assert!(
        v.contains(", built on "),
        "{}: {w}: version {v:?} lacks \", built on \"",
        t.name()
    );
}

/// The node count (srvr's `Node count`, mntr's `zk_znode_count`) of a tree no client has
/// written to: ZooKeeper's node table holds the root twice (under "" and "/"), then
/// /zookeeper, /zookeeper/config and /zookeeper/quota.
const BUILTIN_NODES: i64 = 5;

#[test]
fn ruok_answers_imok_and_isro_answers_rw() {
    on_both(|t| {
        assert_eq!(word(t, "ruok"), "imok", "{}: ruok", t.name());
        assert_eq!(word(t, "isro"), "rw", "{}: isro", t.name());
    });
}

#[test]
fn srvr_reports_zookeepers_lines_in_zookeepers_order_and_formats() {
    on_both(|t| {
        let mut s = Session::open(t, TIMEOUT_MS);
        s.create_ok("/srvr-a", b"1", 0);
        let last = s.create_ok("/srvr-b", b"2", 0);
        let text = word(t, "srvr");
        let p = pairs(t, "srvr", &text, ": ");
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "Zookeeper version",
                "Latency min/avg/max",
                "Received",
                "Sent",
                "Connections",
                "Outstanding",
                "Zxid",
                "Mode",
                "Node count"
            ],
            "{}: srvr's lines; whole answer:\n{text}",
            t.name()
        );
        assert_zookeeper_version(t, "srvr", value(t, "srvr", &p, "Zookeeper version"));
        let lat: Vec<&str> = value(t, "srvr", &p, "Latency min/avg/max")
            .split('/')
            .collect();
        assert!(
            lat.len() == 3
                && lat[0].parse::<u64>().is_ok()
                && lat[1].parse::<f64>().is_ok()
                && lat[2].parse::<u64>().is_ok(),
            "{}: srvr: Latency min/avg/max is int/float/int: {lat:?}",
            t.name()
        );
        for k in ["Received", "Sent", "Connections", "Outstanding"] {
            assert!(int_value(t, "srvr", &p, k) >= 0, "{}: srvr: {k}", t.name());
        }
        let zxid = value(t, "srvr", &p, "Zxid");
        let zxid = zxid
            .strip_prefix("0x")
            .and_then(|h| i64::from_str_radix(h, 16).ok())
            .unwrap_or_else(|| panic!("{}: srvr: Zxid {zxid:?} is not 0x<hex>", t.name()));
        assert!(
            zxid >= last,
            "{}: srvr: Zxid 0x{zxid:x} is older than the last write's 0x{last:x}",
            t.name()
        );
        assert_eq!(
            value(t, "srvr", &p, "Mode"),
            "standalone",
            "{}: srvr: Mode",
            t.name()
        );
        // Its value: node_count_is_zookeepers_five_for_an_empty_tree_plus_one_per_node.
        assert!(
            int_value(t, "srvr", &p, "Node count") >= 2,
            "{}: srvr: Node count",
            t.name()
        );
    });
}

#[test]
fn mntr_reports_tab_separated_metrics_with_the_keys_monitoring_tools_read() {
    on_both(|t| {
        let mut s = Session::open(t, TIMEOUT_MS);
        s.create_ok("/mntr", b"", 0);
        s.create_ok("/mntr/eph", b"", EPHEMERAL);
        // Two watches: a data watch and a child watch, on one path.
        assert_eq!(s.get_data("/mntr", true).err, 0);
        let kids = s.call(
            op::GET_CHILDREN,
            &Request::GetChildren {
                path: "/mntr".into(),
                watch: true,
            },
        );
        assert_eq!(kids.err, 0);
        let text = word(t, "mntr");
        let p = pairs(t, "mntr", &text, "\t");
        for k in [
            "zk_version",
            "zk_server_state",
            "zk_avg_latency",
            "zk_max_latency",
            "zk_min_latency",
            "zk_packets_received",
            "zk_packets_sent",
            "zk_num_alive_connections",
            "zk_outstanding_requests",
            "zk_znode_count",
            "zk_watch_count",
            "zk_ephemerals_count",
        ] {
            value(t, "mntr", &p, k);
        }
        assert_zookeeper_version(t, "mntr", value(t, "mntr", &p, "zk_version"));
        assert_eq!(
            value(t, "mntr", &p, "zk_server_state"),
            "standalone",
            "{}: mntr",
            t.name()
        );
        assert!(
            value(t, "mntr", &p, "zk_avg_latency")
                .parse::<f64>()
                .is_ok(),
            "{}: mntr: zk_avg_latency is a number",
            t.name()
        );
        for k in [
            "zk_max_latency",
            "zk_min_latency",
            "zk_packets_received",
            "zk_packets_sent",
            "zk_outstanding_requests",
        ] {
            assert!(int_value(t, "mntr", &p, k) >= 0, "{}: mntr: {k}", t.name());
        }
        assert!(
            int_value(t, "mntr", &p, "zk_num_alive_connections") >= 1,
            "{}: mntr: zk_num_alive_connections counts the open session",
            t.name()
        );
        // Its value: node_count_is_zookeepers_five_for_an_empty_tree_plus_one_per_node.
        assert!(
            int_value(t, "mntr", &p, "zk_znode_count") >= 2,
            "{}: mntr: zk_znode_count",
            t.name()
        );
        assert_eq!(
            int_value(t, "mntr", &p, "zk_watch_count"),
            2,
            "{}: mntr: zk_watch_count counts data and child watches",
            t.name()
        );
        assert_eq!(
            int_value(t, "mntr", &p, "zk_ephemerals_count"),
            1,
            "{}: mntr: zk_ephemerals_count",
            t.name()
        );
    });
}

#[test]
fn node_count_is_zookeepers_five_for_an_empty_tree_plus_one_per_node() {
    on_both(|t| {
        let counts = |t: &dyn ZkTarget| {
            let srvr = word(t, "srvr");
            let mntr = word(t, "mntr");
            (
                int_value(t, "srvr", &pairs(t, "srvr", &srvr, ": "), "Node count"),
                int_value(t, "mntr", &pairs(t, "mntr", &mntr, "\t"), "zk_znode_count"),
            )
        };
        assert_eq!(
            counts(t),
            (BUILTIN_NODES, BUILTIN_NODES),
            "{}: (srvr Node count, mntr zk_znode_count) of a tree no client wrote to",
            t.name()
        );
        let mut s = Session::open(t, TIMEOUT_MS);
        s.create_ok("/count", b"", 0);
        s.create_ok("/count/a", b"", 0);
        s.create_ok("/count/e", b"", EPHEMERAL);
        assert_eq!(
            counts(t),
            (BUILTIN_NODES + 3, BUILTIN_NODES + 3),
            "{}: (srvr Node count, mntr zk_znode_count) after 3 creates",
            t.name()
        );
        s.close();
        assert_eq!(
            counts(t),
            (BUILTIN_NODES + 2, BUILTIN_NODES + 2),
            "{}: (srvr Node count, mntr zk_znode_count) once the ephemeral's session closed",
            t.name()
        );
    });
}

#[test]
fn envi_reports_the_zookeeper_version_as_kazoo_reads_it() {
    on_both(|t| {
        let text = word(t, "envi");
        assert_eq!(
            text.lines().next(),
            Some("Environment:"),
            "{}: envi:\n{text}",
            t.name()
        );
        let v = text
            .lines()
            .find_map(|l| l.strip_prefix("zookeeper.version="))
            .unwrap_or_else(|| {
                panic!("{}: envi has no zookeeper.version= line:\n{text}", t.name())
            });
        assert_zookeeper_version(t, "envi", v);
        for l in text.lines().skip(1) {
            assert!(
                l.contains('='),
                "{}: envi: line {l:?} is not key=value",
                t.name()
            );
        }
    });
}

#[test]
fn wchs_summarises_the_data_and_exist_watches_per_connection_and_path() {
    on_both(|t| {
        assert_eq!(
            word(t, "wchs"),
            "0 connections watching 0 paths\nTotal watches:0\n",
            "{}: wchs with no watch",
            t.name()
        );
        let mut a = Session::open(t, TIMEOUT_MS);
        a.create_ok("/w", b"", 0);
        assert_eq!(a.get_data("/w", true).err, 0);
        let kids = a.call(
            op::GET_CHILDREN,
            &Request::GetChildren {
                path: "/w".into(),
                watch: true,
            },
        );
        assert_eq!(kids.err, 0);
        let missing = a.call(
            op::EXISTS,
            &Request::Exists {
                path: "/nope".into(),
                watch: true,
            },
        );
        assert_eq!(missing.err, err::NO_NODE);
        let mut b = Session::open(t, TIMEOUT_MS);
        assert_eq!(b.get_data("/w", true).err, 0);
        // ZooKeeper's summary is of its data-watch table (getData and exists watches): 2
        // sessions, 2 paths (/w, /nope), 3 watches; child watches are not in it.
        assert_eq!(
            word(t, "wchs"),
            "2 connections watching 2 paths\nTotal watches:3\n",
            "{}: wchs with data watches on /w by two sessions, an exists watch on /nope and a child watch on /w",
            t.name()
        );
    });
}

#[test]
fn conf_reports_the_client_port_tick_time_and_session_timeout_bounds() {
    on_both(|t| {
        let text = word(t, "conf");
        let p = pairs(t, "conf", &text, "=");
        let port = t
            .connect_string()
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_string();
        assert_eq!(
            value(t, "conf", &p, "clientPort"),
            port,
            "{}: conf",
            t.name()
        );
        assert_eq!(
            value(t, "conf", &p, "tickTime"),
            "2000",
            "{}: conf",
            t.name()
        );
        assert_eq!(
            value(t, "conf", &p, "minSessionTimeout"),
            "4000",
            "{}: conf",
            t.name()
        );
        assert_eq!(
            value(t, "conf", &p, "maxSessionTimeout"),
            "40000",
            "{}: conf",
            t.name()
        );
    });
}

// ---------------------------------------------------------------------------
// Handshakes
// ---------------------------------------------------------------------------

#[test]
fn session_timeouts_are_clamped_to_two_and_twenty_ticks() {
    on_both(|t| {
        for (asked, granted) in [
            (1, 4000),
            (1000, 4000),
            (4000, 4000),
            (10_000, 10_000),
            (40_000, 40_000),
            (1_000_000, 40_000),
        ] {
            for read_only in [Some(false), None] {
                let mut r = Raw::connect(t);
                r.send(
                    &connect_frame(asked, 0, &[0; 16], 0, read_only),
                    "ConnectRequest",
                );
                let body = r
                    .read_frame("ConnectResponse")
                    .unwrap_or_else(|| panic!("{}: no ConnectResponse", t.name()));
                let a = parse_connect_answer(t.name(), &body);
                assert_eq!(
                    a.time_out,
                    granted,
                    "{}: asking for {asked} ms grants {granted} ms",
                    t.name()
                );
                assert!(
                    a.session_id != 0 && a.passwd.len() == 16,
                    "{}: {a:?}",
                    t.name()
                );
                assert_eq!(a.protocol_version, 0, "{}: {a:?}", t.name());
                assert_eq!(
                    a.read_only,
                    read_only.map(|_| 0),
                    "{}: the readOnly byte is echoed only if the client sent one",
                    t.name()
                );
            }
        }
    });
}

#[test]
fn a_resume_with_a_wrong_password_is_answered_as_expired_and_closed_and_the_session_lives_on() {
    on_both(|t| {
        let mut owner = Session::open(t, TIMEOUT_MS);
        owner.create_ok("/owned", b"", EPHEMERAL);
        let (id, passwd) = (owner.id, owner.passwd.clone());
        drop(owner);
        for read_only in [Some(false), None] {
            let mut wrong = passwd.clone();
            wrong[0] ^= 0xff;
            let mut r = Raw::connect(t);
            r.send(
                &connect_frame(TIMEOUT_MS, id, &wrong, 0, read_only),
                "ConnectRequest",
            );
            let got = r.expect_closed("a resume with a wrong password");
            assert_eq!(
                hex(&got),
                hex(&expired_answer(read_only)),
                "{}: the answer to a wrong password (readOnly byte sent: {})",
                t.name(),
                read_only.is_some()
            );
        }
        // The session itself is untouched: the right password resumes it, its ephemeral intact.
        let mut back = Session::resume(t, id, &passwd);
        assert_eq!(
            back.owner_of("/owned"),
            Some(id),
            "{}: the ephemeral's owner",
            t.name()
        );
        back.round_trip("on the resumed session");
        assert_no_panic(t);
    });
}

#[test]
fn a_resume_of_an_unknown_or_closed_session_is_answered_as_expired_and_closed() {
    on_both(|t| {
        let mut closed = Session::open(t, TIMEOUT_MS);
        closed.create_ok("/gone", b"", EPHEMERAL);
        let (closed_id, closed_passwd) = (closed.id, closed.passwd.clone());
        closed.close();
        let cases: [(&str, i64, Vec<u8>); 3] = [
            (
                "a session id no server ever issued",
                0x0123_4567,
                vec![1; 16],
            ),
            ("a negative session id", -5, vec![0; 16]),
            (
                "a closed session, with its own password",
                closed_id,
                closed_passwd,
            ),
        ];
        for (what, id, passwd) in &cases {
            for read_only in [Some(false), None] {
                let mut r = Raw::connect(t);
                r.send(
                    &connect_frame(TIMEOUT_MS, *id, passwd, 0, read_only),
                    "ConnectRequest",
                );
                let got = r.expect_closed(&format!("resuming {what}"));
                assert_eq!(
                    hex(&got),
                    hex(&expired_answer(read_only)),
                    "{}: the answer to resuming {what} (readOnly byte sent: {})",
                    t.name(),
                    read_only.is_some()
                );
            }
        }
        let mut s = Session::open(t, TIMEOUT_MS);
        assert_eq!(
            s.owner_of("/gone"),
            None,
            "{}: the closed session's ephemeral",
            t.name()
        );
        s.round_trip("after the refused resumes");
        assert_no_panic(t);
    });
}

#[test]
fn resuming_a_session_closes_the_connection_that_held_it() {
    on_both(|t| {
        let mut first = Session::open(t, TIMEOUT_MS);
        first.round_trip("on the first connection");
        let mut second = Session::resume(t, first.id, &first.passwd);
        first.raw.expect_closed(
            "the session's first connection, once the session was resumed on a second",
        );
        second.round_trip("on the second connection");
    });
}

#[test]
fn a_resume_attempt_with_a_wrong_password_still_closes_the_connection_that_held_the_session() {
    // ZooKeeper closes the session's current connection before it checks the password of the
    // connection asking to resume it (the client then reconnects with the right password).
    on_both(|t| {
        let mut first = Session::open(t, TIMEOUT_MS);
        first.round_trip("on the first connection");
        let mut wrong = first.passwd.clone();
        wrong[3] ^= 0x55;
        let mut r = Raw::connect(t);
        r.send(
            &connect_frame(TIMEOUT_MS, first.id, &wrong, 0, Some(false)),
            "ConnectRequest",
        );
        assert_eq!(
            hex(&r.expect_closed("a resume with a wrong password")),
            hex(&expired_answer(Some(false))),
            "{}: the answer to a wrong password",
            t.name()
        );
        first
            .raw
            .expect_closed("the session's connection, after another asked to resume the session with a wrong password");
        Session::resume(t, first.id, &first.passwd)
            .round_trip("on the session resumed with its password");
    });
}

/// How many sessions [`a_resume_sent_the_moment_the_handshake_is_answered_still_closes_the_connection_that_held_the_session`]
/// opens and at once resumes.
const INSTANT_RESUMES: usize = 60;

#[test]
fn a_resume_sent_the_moment_the_handshake_is_answered_still_closes_the_connection_that_held_the_session(
) {
    // No round trip on the first connection: the resume (with a wrong password, then the
    // right one) races the server's bookkeeping of the connection it has just answered.
    on_both(|t| {
        for i in 0..INSTANT_RESUMES {
            let mut first = Session::open(t, TIMEOUT_MS);
            let mut wrong = first.passwd.clone();
            wrong[0] ^= 0x55;
            let mut r = Raw::connect(t);
            r.send(
                &connect_frame(TIMEOUT_MS, first.id, &wrong, 0, Some(false)),
                "ConnectRequest",
            );
            r.expect_closed("a resume with a wrong password");
            first.raw.expect_closed(&format!(
                "session {i}'s first connection, after a resume with a wrong password sent the moment its handshake was answered"
            ));
            let mut second = Session::resume(t, first.id, &first.passwd);
            let third = Session::resume(t, first.id, &first.passwd);
            second.raw.expect_closed(&format!(
                "session {i}'s second connection, after a resume sent the moment its handshake was answered"
            ));
            third.close();
        }
        assert_no_panic(t);
    });
}

#[test]
fn a_client_that_has_seen_a_newer_zxid_is_refused_without_an_answer_or_a_session() {
    on_both(|t| {
        let mut owner = Session::open(t, TIMEOUT_MS);
        let seen = owner.create_ok("/seen", b"", EPHEMERAL);
        // A new session asked for by a client from the future.
        for read_only in [Some(false), None] {
            let mut r = Raw::connect(t);
            r.send(
                &connect_frame(TIMEOUT_MS, 0, &[0; 16], FUTURE_ZXID, read_only),
                "ConnectRequest",
            );
            let got = r.expect_closed("a new session with lastZxidSeen ahead of the server");
            assert!(got.is_empty(), "{}: answered with {}", t.name(), hex(&got));
        }
        // Resuming an existing session from the future: refused before the session is
        // touched, so its current connection goes on.
        let mut r = Raw::connect(t);
        r.send(
            &connect_frame(
                TIMEOUT_MS,
                owner.id,
                &owner.passwd,
                FUTURE_ZXID,
                Some(false),
            ),
            "ConnectRequest",
        );
        let got = r.expect_closed("resuming a session with lastZxidSeen ahead of the server");
        assert!(got.is_empty(), "{}: answered with {}", t.name(), hex(&got));
        owner.round_trip("on the session's connection after the refused resume");
        assert_eq!(
            owner.owner_of("/seen"),
            Some(owner.id),
            "{}: its ephemeral",
            t.name()
        );
        // A client that has seen exactly what the server has is welcome.
        let mut r = Raw::connect(t);
        r.send(
            &connect_frame(TIMEOUT_MS, 0, &[0; 16], seen, Some(false)),
            "ConnectRequest",
        );
        let mut s = Session::finish_handshake(
            r,
            "a new session with lastZxidSeen = a zxid the server sent",
        );
        s.round_trip("on it");
        assert_no_panic(t);
    });
}

#[test]
fn a_multis_watch_events_come_in_the_order_of_its_operations() {
    // The parent's record is touched first (its child count, by the first delete), its data
    // last: upstream fires each op's events as it applies it, so the second child's deletion
    // comes before the parent's data change.
    on_both(|t| {
        let mut a = Session::open(t, TIMEOUT_MS);
        let mut b = Session::open(t, TIMEOUT_MS);
        a.create_ok("/order", b"", 0);
        a.create_ok("/order/first", b"", 0);
        a.create_ok("/order/second", b"", 0);
        assert_eq!(a.get_data("/order", true).err, 0);
        assert_eq!(a.get_data("/order/second", true).err, 0);
        let delete = |path: &str| {
            MultiOp::Delete(DeleteRequest {
                path: path.into(),
                version: -1,
            })
        };
        let multi = b.call(
            op::MULTI,
            &Request::Multi(vec![
                delete("/order/first"),
                delete("/order/second"),
                MultiOp::SetData(SetDataRequest {
                    path: "/order".into(),
                    data: Some(b"x".to_vec()),
                    version: -1,
                }),
            ]),
        );
        assert_eq!(multi.err, 0, "{}: the multi: {multi:?}", t.name());
        b.round_trip("after the multi");
        a.round_trip("after the multi");
        assert_eq!(
            a.events,
            vec![(2, "/order/second".to_string()), (3, "/order".to_string())],
            "{}: NodeDeleted of the second child, then NodeDataChanged of the parent",
            t.name()
        );
    });
}

#[test]
fn a_multi_that_sets_a_znodes_data_several_times_moves_its_version_and_fires_as_many_times() {
    // etcd takes one change per key in a txn, so the gateway writes the znode's data record
    // once; the stored version must still count every setData (and a later conditional op
    // checks it), as upstream applies the multi's ops one by one.
    on_both(|t| {
        let mut a = Session::open(t, TIMEOUT_MS);
        let set = |path: &str, version: i32| {
            MultiOp::SetData(SetDataRequest {
                path: path.into(),
                data: Some(b"x".to_vec()),
                version,
            })
        };
        a.create_ok("/twice", b"", 0);
        // A persistent watcher sees every setData (a one-shot one only the first).
        let mut w = Session::open(t, TIMEOUT_MS);
        w.add_watch_ok("/twice", 0); // PERSISTENT
        let multi = a.call(
            op::MULTI,
            &Request::Multi(vec![set("/twice", -1), set("/twice", 1), set("/twice", 2)]),
        );
        assert_eq!(multi.err, 0, "{}: the multi: {multi:?}", t.name());
        assert_eq!(
            a.version_of("/twice"),
            Some(3),
            "{}: after the multi",
            t.name()
        );
        w.round_trip("after the multi");
        assert_eq!(
            w.events,
            vec![(3, "/twice".to_string()); 3],
            "{}: three NodeDataChanged for three setData",
            t.name()
        );
        let next = a.call(
            op::SET_DATA,
            &Request::SetData(SetDataRequest {
                path: "/twice".into(),
                data: Some(b"y".to_vec()),
                version: 3,
            }),
        );
        assert_eq!(next.err, 0, "{}: setData at version 3: {next:?}", t.name());
        assert_eq!(
            a.version_of("/twice"),
            Some(4),
            "{}: after setData",
            t.name()
        );

        // A znode created and set in the same multi.
        let create = multi_create("/fresh", b"");
        let multi = a.call(
            op::MULTI,
            &Request::Multi(vec![create, set("/fresh", 0), set("/fresh", -1)]),
        );
        assert_eq!(multi.err, 0, "{}: create and set: {multi:?}", t.name());
        assert_eq!(a.version_of("/fresh"), Some(2), "{}: /fresh", t.name());
    });
}

#[test]
fn a_multi_that_deletes_and_recreates_a_znode_leaves_a_new_znode_and_fires_both_events() {
    // etcd takes one change per key in a txn, so the gateway rewrites the znode's records in
    // place; clients must still see a new znode (its own czxid, versions and child counts
    // from zero) and both events, as upstream deletes and creates it op by op.
    on_both(|t| {
        let mut a = Session::open(t, TIMEOUT_MS);
        let ok = |r: Reply, what: &str| assert_eq!(r.err, 0, "{}: {what}: {r:?}", t.name());
        // A history the new znode must not inherit: a data version, an ACL version, child
        // creates and deletes.
        a.create_ok("/again", b"old", 0);
        for _ in 0..2 {
            let r = a.call(
                op::SET_DATA,
                &Request::SetData(SetDataRequest {
                    path: "/again".into(),
                    data: Some(b"older".to_vec()),
                    version: -1,
                }),
            );
            ok(r, "setData");
        }
        let r = a.call(
            op::SET_ACL,
            &Request::SetAcl(SetAclRequest {
                path: "/again".into(),
                acl: world_anyone(),
                version: -1,
            }),
        );
        ok(r, "setACL");
        for child in ["/again/c1", "/again/c2"] {
            a.create_ok(child, b"", 0);
            let r = a.call(
                op::DELETE,
                &Request::Delete(DeleteRequest {
                    path: child.into(),
                    version: -1,
                }),
            );
            ok(r, "delete a child");
        }
        let mut w = Session::open(t, TIMEOUT_MS);
        w.add_watch_ok("/again", 0); // PERSISTENT

        let multi = a.call(
            op::MULTI,
            &Request::Multi(vec![
                MultiOp::Delete(DeleteRequest {
                    path: "/again".into(),
                    version: -1,
                }),
                multi_create("/again", b"new"),
            ]),
        );
        let zxid = multi.zxid;
        ok(multi, "the multi");
        let stat = a.stat_of("/again").expect("/again exists after the multi");
        let fields = |stat: &[u8]| {
            [
                ("czxid", be_i64(stat, 0)),
                ("mzxid", be_i64(stat, 8)),
                ("version", i64::from(be_i32(stat, 32))),
                ("cversion", i64::from(be_i32(stat, 36))),
                ("aversion", i64::from(be_i32(stat, 40))),
                ("dataLength", i64::from(be_i32(stat, 52))),
                ("numChildren", i64::from(be_i32(stat, 56))),
                ("pzxid", be_i64(stat, 60)),
            ]
        };
        assert_eq!(
            fields(&stat),
            [
                ("czxid", zxid),
                ("mzxid", zxid),
                ("version", 0),
                ("cversion", 0),
                ("aversion", 0),
                ("dataLength", 3),
                ("numChildren", 0),
                ("pzxid", zxid),
            ],
            "{}: the re-created znode",
            t.name()
        );
        w.round_trip("after the multi");
        assert_eq!(
            w.events,
            vec![(2, "/again".to_string()), (1, "/again".to_string())],
            "{}: NodeDeleted, then NodeCreated",
            t.name()
        );

        // It goes on as a new znode: versions and child counts count from zero.
        let child = a.create_ok("/again/c3", b"", 0);
        let r = a.call(
            op::SET_DATA,
            &Request::SetData(SetDataRequest {
                path: "/again".into(),
                data: Some(b"newer".to_vec()),
                version: 0,
            }),
        );
        let set = r.zxid;
        ok(r, "setData at version 0");
        let stat = a.stat_of("/again").expect("/again exists");
        assert_eq!(
            fields(&stat),
            [
                ("czxid", zxid),
                ("mzxid", set),
                ("version", 1),
                ("cversion", 1),
                ("aversion", 0),
                ("dataLength", 5),
                ("numChildren", 1),
                ("pzxid", child),
            ],
            "{}: after a child and a setData",
            t.name()
        );
    });
}

#[test]
fn a_multi_fires_its_events_op_by_op_even_when_it_changes_a_znode_twice() {
    // etcd keeps one change per key in a txn, so a multi that sets /x, then /y, then /x again,
    // or creates a znode and deletes it, cannot show its order in the keys it writes; upstream
    // fires the events op by op.
    on_both(|t| {
        let mut a = Session::open(t, TIMEOUT_MS);
        let set = |path: &str| {
            MultiOp::SetData(SetDataRequest {
                path: path.into(),
                data: Some(b"v".to_vec()),
                version: -1,
            })
        };
        a.create_ok("/order", b"", 0);
        a.create_ok("/order/x", b"", 0);
        a.create_ok("/order/y", b"", 0);
        let mut w = Session::open(t, TIMEOUT_MS);
        w.add_watch_ok("/order", 1); // PERSISTENT_RECURSIVE

        // a one-shot child watch sees the first change of the children only
        let mut c = Session::open(t, TIMEOUT_MS);
        let ls = c.call(
            op::GET_CHILDREN,
            &Request::GetChildren {
                path: "/order".into(),
                watch: true,
            },
        );
        assert_eq!(ls.err, 0, "{}: getChildren: {ls:?}", t.name());

        let multi = a.call(
            op::MULTI,
            &Request::Multi(vec![
                set("/order/x"),
                set("/order/y"),
                set("/order/x"),
                multi_create("/order/g", b""),
                MultiOp::Delete(DeleteRequest {
                    path: "/order/g".into(),
                    version: -1,
                }),
            ]),
        );
        assert_eq!(multi.err, 0, "{}: the multi: {multi:?}", t.name());
        w.round_trip("after the multi");
        let ev = |kind: i32, path: &str| (kind, path.to_string());
        assert_eq!(
            w.events,
            vec![
                ev(3, "/order/x"),
                ev(3, "/order/y"),
                ev(3, "/order/x"),
                ev(1, "/order/g"),
                ev(2, "/order/g"),
            ],
            "{}: a recursive watcher sees the multi op by op",
            t.name()
        );
        c.round_trip("after the multi");
        assert_eq!(
            c.events,
            vec![ev(4, "/order")],
            "{}: one NodeChildrenChanged for the one-shot child watch",
            t.name()
        );
        let stat = a.stat_of("/order").expect("/order exists");
        assert_eq!(
            (be_i32(&stat, 36), be_i32(&stat, 56)),
            (4, 2),
            "{}: /order's cversion and numChildren after the created and deleted child",
            t.name()
        );
    });
}

#[test]
fn a_watch_fires_on_its_own_session_only_and_before_any_later_reply_there() {
    // Also checks this file's Session: notifications are told apart from replies.
    on_both(|t| {
        let mut a = Session::open(t, TIMEOUT_MS);
        let mut b = Session::open(t, TIMEOUT_MS);
        a.create_ok("/n", b"", 0);
        assert_eq!(a.get_data("/n", true).err, 0);
        let set = b.call(
            op::SET_DATA,
            &Request::SetData(SetDataRequest {
                path: "/n".into(),
                data: Some(b"x".to_vec()),
                version: -1,
            }),
        );
        assert_eq!(set.err, 0);
        b.round_trip("after the change");
        a.round_trip("after the change");
        assert_eq!(
            a.events,
            vec![(3, "/n".to_string())],
            "{}: a's notifications",
            t.name()
        );
        assert!(
            b.events.is_empty(),
            "{}: b's notifications: {:?}",
            t.name(),
            b.events
        );
    });
}
