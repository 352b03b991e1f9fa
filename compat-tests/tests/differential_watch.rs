//! Differential watch and lease test: one seeded sequence of writes (puts with
//! and without leases, delete ranges, txns, lease grants and revocations,
//! occasional compactions) is sent, in lockstep, to upstream etcd 3.4 (the
//! reference) and to Synod (the candidate), each a single member started by
//! this test. Watchers are opened at random points of the sequence, with
//! random key ranges (single key, prefix, from-key, explicit range), random
//! start revisions (0, past, exactly the compaction revision, compacted,
//! future), random filters (NOPUT / NODELETE) and random `prev_kv`, some of
//! them sharing a gRPC stream.
//!
//! What must be identical, ids aside (lease ids are compared by grant order,
//! each server's ids mapped to `L<n>` for the n-th grant of the sequence):
//!
//! * every write's answer (success or gRPC code and message, header revision);
//! * every lease answer: grant (ttl, error), revoke, keep-alive (ttl),
//!   time-to-live (`granted_ttl`, attached keys; the remaining `ttl` within
//!   ±1 s), lease list;
//! * per watcher: the created response (watch id, canceled, cancel reason,
//!   header revision) and the flattened stream of everything it received
//!   after it: each event's type, key, value, create and mod revision,
//!   version, lease and `prev_kv`, and any cancellation (`compact_revision`,
//!   `cancel_reason`). How events are grouped into responses, and the header
//!   revision of event responses, may legitimately differ and are not
//!   compared (each response's header revision must only be at least its
//!   last event's revision).
//!
//! Determinism: the sequence depends on the seed and on etcd's answers only.
//! A watcher whose start revision is in the past is "synced" before the
//! sequence goes on: a sentinel key inside its range is put and deleted, and
//! the test waits until the watcher has seen it. Watchers are drained the
//! same way before a client cancel and at the end (after filler puts carry
//! the revision past every future start revision), all waits bounded.
//! Compactions never go past the revision of an event that could still be in
//! flight (they stay 5 revisions behind, after a 100 ms pause), so etcd's
//! compaction of an unsynced watcher, a race by nature, cannot happen here;
//! a watcher opened at a compacted revision is always canceled.
//!
//! Environment:
//! * `DIFF_SEED=<u64>`   replay another sequence (the seed is printed);
//! * `DIFF_WRITES=<n>`   number of writes (default 1200, at least 1000);
//! * `DIFF_VERBOSE=1`    print every request and etcd's answer;
//! * `DIFF_AGAINST=etcd` run upstream against upstream (validates the test:
//!   the two must be identical); the default is `synod`.

use std::fmt::{self, Display, Formatter, Write as _};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use compat_tests::differential::{
    candidate_from_env, env_parse, err_text, esc, hdr, verbose_from_env, Mismatch,
};
use compat_tests::{client, Flavor, Server};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, Error, EventType, GetOptions,
    KeyValue, LeaseGrantOptions, LeaseTimeToLiveOptions, PutOptions, ResponseHeader, Txn, TxnOp,
    TxnOpResponse, WatchFilterType, WatchOptions, WatchRequestSender, WatchResponse,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_SEED: u64 = 0x5EED_3A7C_2024;
const DEFAULT_WRITES: usize = 1200;
const MIN_WRITES: usize = 1000;
const MAX_MISMATCHES: usize = 10;
/// Upper bound for any single request.
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// Upper bound for a created (or canceled) response to arrive.
const CREATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for a watcher to deliver an event of a revision already written.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Either of the above once a side has already timed out once (keeps a broken candidate fast).
const TIMEOUT_AFTER_FAILURE: Duration = Duration::from_secs(1);
/// How long after the final drain further (unexpected) responses are collected.
const GRACE: Duration = Duration::from_millis(300);
const MAX_LIVE_WATCHERS: usize = 12;
/// Lease TTLs are long enough that no lease expires during the test: leases end
/// by revocation only, at deterministic points of the sequence.
const TTLS: [i64; 3] = [300, 600, 3600];
/// A lease id no server has granted.
const BOGUS_LEASE: i64 = 0x0bad_cafe;

const KEYS: [&[u8]; 20] = [
    b"\x00",
    b"a",
    b"a/",
    b"a/1",
    b"a/2",
    b"a/b",
    b"a/b/c",
    b"ab",
    b"b",
    b"b/1",
    b"b/2",
    b"b/x/y",
    b"c",
    b"foo",
    b"foo/bar",
    b"foo/baz",
    b"foo0",
    b"z",
    b"\xff",
    b"\xff\x01",
];

/// Watch / delete prefixes; "" is the whole key space, "\xff" has no prefix end
/// (its range end is "\x00", i.e. from-key).
const PREFIXES: [&[u8]; 9] = [
    b"", b"a", b"a/", b"a/b", b"b/", b"foo/", b"f", b"\xff", b"q",
];

/// Range bounds that are not keys themselves.
const NON_KEYS: [&[u8]; 5] = [b"a/b/", b"b/z", b"e", b"fo", b"\xfe"];

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Sel {
    Key(Vec<u8>),
    Prefix(Vec<u8>),
    FromKey(Vec<u8>),
    Range(Vec<u8>, Vec<u8>),
}

impl Display for Sel {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Sel::Key(k) => write!(f, "key={}", esc(k)),
            Sel::Prefix(k) => write!(f, "prefix={}", esc(k)),
            Sel::FromKey(k) => write!(f, "from_key={}", esc(k)),
            Sel::Range(k, e) => write!(f, "range=[{},{})", esc(k), esc(e)),
        }
    }
}

impl Sel {
    fn key(&self) -> Vec<u8> {
        match self {
            Sel::Key(k) | Sel::Prefix(k) | Sel::FromKey(k) | Sel::Range(k, _) => k.clone(),
        }
    }
    fn del(&self, prev_kv: bool) -> DeleteOptions {
        let o = match self {
            Sel::Key(_) => DeleteOptions::new(),
            Sel::Prefix(_) => DeleteOptions::new().with_prefix(),
            Sel::FromKey(_) => DeleteOptions::new().with_from_key(),
            Sel::Range(_, e) => DeleteOptions::new().with_range(e.clone()),
        };
        if prev_kv {
            o.with_prev_key()
        } else {
            o
        }
    }
    fn watch(&self) -> WatchOptions {
        match self {
            Sel::Key(_) => WatchOptions::new(),
            Sel::Prefix(_) => WatchOptions::new().with_prefix(),
            Sel::FromKey(_) => WatchOptions::new().with_from_key(),
            Sel::Range(_, e) => WatchOptions::new().with_range(e.clone()),
        }
    }
    /// Whether `k` is in the range (a prefix made only of 0xff bytes has the
    /// range end "\x00", i.e. every key >= it: exactly the keys it prefixes).
    fn contains(&self, k: &[u8]) -> bool {
        match self {
            Sel::Key(x) => k == x.as_slice(),
            Sel::Prefix(p) => k.starts_with(p),
            Sel::FromKey(x) => k >= x.as_slice(),
            Sel::Range(a, e) => k >= a.as_slice() && k < e.as_slice(),
        }
    }
    /// A key inside the range, to put and delete as a sentinel.
    fn sentinel(&self) -> Vec<u8> {
        match self {
            Sel::Key(k) | Sel::Range(k, _) => k.clone(),
            Sel::Prefix(p) | Sel::FromKey(p) => {
                let mut k = p.clone();
                k.extend_from_slice(b"\x7f~sentinel");
                k
            }
        }
    }
}

/// A lease as the sequence names it: the n-th grant of the sequence (each
/// server uses its own id for it), or a raw id.
#[derive(Clone, Copy, Debug)]
enum LeaseRef {
    None,
    Slot(usize),
    Raw(i64),
}

impl Display for LeaseRef {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            LeaseRef::None => write!(f, "0"),
            LeaseRef::Slot(k) => write!(f, "L{k}"),
            LeaseRef::Raw(id) => write!(f, "{id:#x}"),
        }
    }
}

#[derive(Clone, Debug)]
enum TxnPiece {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: LeaseRef,
    },
    Del(Sel),
    Get(Vec<u8>),
}

impl Display for TxnPiece {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TxnPiece::Put { key, value, lease } => {
                write!(f, "put({}={} lease={lease})", esc(key), esc(value))
            }
            TxnPiece::Del(s) => write!(f, "delete({s})"),
            TxnPiece::Get(k) => write!(f, "get({})", esc(k)),
        }
    }
}

#[derive(Clone, Debug)]
struct TxnReq {
    cmp_key: Vec<u8>,
    cmp_op: CompareOp,
    cmp_version: i64,
    success: Vec<TxnPiece>,
    failure: Vec<TxnPiece>,
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
        lease: LeaseRef,
        prev_kv: bool,
        ignore_lease: bool,
    },
    Del {
        sel: Sel,
        prev_kv: bool,
    },
    Txn(TxnReq),
    Grant {
        ttl: i64,
        id: i64,
    },
    Revoke(LeaseRef),
    TimeToLive {
        lease: LeaseRef,
        keys: bool,
    },
    KeepAliveOnce(LeaseRef),
    Leases,
    Compact {
        rev: i64,
        physical: bool,
    },
    GetAll,
}

impl Display for Op {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put {
                key,
                value,
                lease,
                prev_kv,
                ignore_lease,
            } => write!(
                f,
                "put({}={} lease={lease}{}{})",
                esc(key),
                esc(value),
                if *prev_kv { " prev_kv" } else { "" },
                if *ignore_lease { " ignore_lease" } else { "" }
            ),
            Op::Del { sel, prev_kv } => {
                write!(f, "delete({sel}{})", if *prev_kv { " prev_kv" } else { "" })
            }
            Op::Txn(t) => {
                let op = match t.cmp_op {
                    CompareOp::Equal => "==",
                    CompareOp::Greater => ">",
                    CompareOp::Less => "<",
                    CompareOp::NotEqual => "!=",
                };
                write!(
                    f,
                    "txn(if {}.version {op} {} then [",
                    esc(&t.cmp_key),
                    t.cmp_version
                )?;
                for (i, p) in t.success.iter().enumerate() {
                    write!(f, "{}{p}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "] else [")?;
                for (i, p) in t.failure.iter().enumerate() {
                    write!(f, "{}{p}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "])")
            }
            Op::Grant { ttl, id } => write!(f, "lease_grant(ttl={ttl} id={id:#x})"),
            Op::Revoke(l) => write!(f, "lease_revoke({l})"),
            Op::TimeToLive { lease, keys } => write!(
                f,
                "lease_time_to_live({lease}{})",
                if *keys { " keys" } else { "" }
            ),
            Op::KeepAliveOnce(l) => write!(f, "lease_keep_alive_once({l})"),
            Op::Leases => write!(f, "lease_leases()"),
            Op::Compact { rev, physical } => write!(
                f,
                "compact(rev={rev}{})",
                if *physical { " physical" } else { "" }
            ),
            Op::GetAll => write!(f, "range(all keys)"),
        }
    }
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Put { .. } => "put",
            Op::Del { .. } => "delete",
            Op::Txn(_) => "txn",
            Op::Grant { .. } => "lease_grant",
            Op::Revoke(_) => "lease_revoke",
            Op::TimeToLive { .. } => "lease_ttl",
            Op::KeepAliveOnce(_) => "lease_keepalive",
            Op::Leases => "lease_leases",
            Op::Compact { .. } => "compact",
            Op::GetAll => "range",
        }
    }
    /// Counted towards the number of writes of the sequence.
    fn is_write(&self) -> bool {
        matches!(
            self,
            Op::Put { .. } | Op::Del { .. } | Op::Txn(_) | Op::Grant { .. } | Op::Revoke(_)
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum StartKind {
    /// start_revision 0: from the next revision.
    Now,
    /// A revision in the past, at or after the compaction revision.
    Past,
    /// Exactly the compaction revision (the oldest one still readable).
    AtCompaction,
    /// Below the compaction revision: the watch must be canceled.
    Compacted,
    /// A revision not written yet.
    Future,
}

#[derive(Clone, Debug)]
struct WatchSpec {
    sel: Sel,
    kind: StartKind,
    start_rev: i64,
    filter: Option<WatchFilterType>,
    prev_kv: bool,
    /// Index of the gRPC stream (per side) the watch is created on.
    stream: usize,
    new_stream: bool,
}

impl Display for WatchSpec {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "watch({} start_revision={} ({:?}){}{} on {} stream #{})",
            self.sel,
            self.start_rev,
            self.kind,
            match self.filter {
                None => "",
                Some(WatchFilterType::NoPut) => " filter=NOPUT",
                Some(WatchFilterType::NoDelete) => " filter=NODELETE",
            },
            if self.prev_kv { " prev_kv" } else { "" },
            if self.new_stream { "new" } else { "shared" },
            self.stream
        )
    }
}

impl WatchSpec {
    fn options(&self) -> WatchOptions {
        let mut o = self.sel.watch();
        if self.start_rev != 0 {
            o = o.with_start_revision(self.start_rev);
        }
        if let Some(f) = self.filter {
            o = o.with_filters(vec![f]);
        }
        if self.prev_kv {
            o = o.with_prev_key();
        }
        o
    }
    /// The last revision among `sentinels` (key, put revision, delete
    /// revision) that this watcher must receive, if any.
    fn target(&self, sentinels: &[(Vec<u8>, Option<i64>, Option<i64>)]) -> Option<i64> {
        let mut target = None;
        for (key, put, del) in sentinels {
            if !self.sel.contains(key) {
                continue;
            }
            if self.filter != Some(WatchFilterType::NoPut) {
                target = target.max(*put);
            }
            if self.filter != Some(WatchFilterType::NoDelete) {
                target = target.max(*del);
            }
        }
        target.filter(|t| *t >= self.start_rev)
    }
}

enum Action {
    Op(Op),
    OpenWatch(WatchSpec),
    CancelWatch(usize),
}

// ---------------------------------------------------------------------------
// Random generation
// ---------------------------------------------------------------------------

struct GenWatcher {
    spec: WatchSpec,
    live: bool,
}

/// What the generator knows; taken from the reference's answers only, so the
/// sequence depends on the seed alone.
struct Gen {
    rng: StdRng,
    cur_rev: i64,
    compact_rev: i64,
    /// Per grant of the sequence: alive on the reference.
    lease_alive: Vec<bool>,
    watchers: Vec<GenWatcher>,
    streams: usize,
}

impl Gen {
    fn pct(&mut self) -> u32 {
        self.rng.random_range(0..100)
    }
    fn coin(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.rng.random_range(0..items.len())]
    }
    fn key(&mut self) -> Vec<u8> {
        self.pick(&KEYS).to_vec()
    }
    fn value(&mut self) -> Vec<u8> {
        format!("v{}", self.rng.random_range(0..1000)).into_bytes()
    }
    fn sel(&mut self) -> Sel {
        match self.pct() {
            0..=34 => Sel::Key(self.key()),
            35..=69 => Sel::Prefix(self.pick(&PREFIXES).to_vec()),
            70..=84 => Sel::FromKey(self.key()),
            _ => {
                let a = if self.coin(0.8) {
                    self.key()
                } else {
                    self.pick(&NON_KEYS).to_vec()
                };
                let b = if self.coin(0.8) {
                    self.key()
                } else {
                    self.pick(&NON_KEYS).to_vec()
                };
                match a.cmp(&b) {
                    std::cmp::Ordering::Less => Sel::Range(a, b),
                    std::cmp::Ordering::Greater => Sel::Range(b, a),
                    std::cmp::Ordering::Equal => Sel::Key(a),
                }
            }
        }
    }
    fn slots(&self, alive: bool) -> Vec<usize> {
        (0..self.lease_alive.len())
            .filter(|&k| self.lease_alive[k] == alive)
            .collect()
    }
    /// A lease for a put: mostly none, often a live one, rarely a revoked or unknown one.
    fn put_lease(&mut self) -> LeaseRef {
        let alive = self.slots(true);
        let dead = self.slots(false);
        match self.pct() {
            0..=29 if !alive.is_empty() => LeaseRef::Slot(self.pick(&alive)),
            30..=32 if !dead.is_empty() => LeaseRef::Slot(self.pick(&dead)),
            33 => LeaseRef::Raw(BOGUS_LEASE),
            _ => LeaseRef::None,
        }
    }
    /// A lease for a lease request: mostly a live one.
    fn any_lease(&mut self) -> LeaseRef {
        let alive = self.slots(true);
        let dead = self.slots(false);
        match self.pct() {
            0..=79 if !alive.is_empty() => LeaseRef::Slot(self.pick(&alive)),
            0..=94 if !dead.is_empty() => LeaseRef::Slot(self.pick(&dead)),
            _ => LeaseRef::Raw(BOGUS_LEASE),
        }
    }
    fn txn_piece(&mut self) -> TxnPiece {
        match self.pct() {
            0..=59 => TxnPiece::Put {
                key: self.key(),
                value: self.value(),
                lease: self.put_lease(),
            },
            60..=84 => TxnPiece::Del(if self.coin(0.7) {
                Sel::Key(self.key())
            } else {
                self.sel()
            }),
            _ => TxnPiece::Get(self.key()),
        }
    }
    fn txn(&mut self) -> TxnReq {
        let n_success = self.rng.random_range(1..=3);
        let n_failure = self.rng.random_range(0..=2);
        TxnReq {
            cmp_key: self.key(),
            cmp_op: self.pick(&[
                CompareOp::Equal,
                CompareOp::Greater,
                CompareOp::Less,
                CompareOp::NotEqual,
            ]),
            cmp_version: self.rng.random_range(0..=3),
            success: (0..n_success).map(|_| self.txn_piece()).collect(),
            failure: (0..n_failure).map(|_| self.txn_piece()).collect(),
        }
    }
    fn put(&mut self) -> Op {
        let lease = self.put_lease();
        Op::Put {
            key: self.key(),
            value: self.value(),
            lease,
            prev_kv: self.coin(0.2),
            ignore_lease: matches!(lease, LeaseRef::None) && self.coin(0.05),
        }
    }
    fn compact(&mut self) -> Option<Op> {
        let physical = self.coin(0.3);
        let p = self.pct();
        let rev = if p < 7 && self.compact_rev > 0 {
            // already compacted: an error, changes nothing
            self.rng.random_range(1..=self.compact_rev)
        } else if p < 10 {
            // future revision: an error, changes nothing
            self.cur_rev + self.rng.random_range(1..=5)
        } else if self.cur_rev - 5 > self.compact_rev {
            // never past an event that could still be in flight (see the module doc)
            self.rng
                .random_range(self.compact_rev + 1..=self.cur_rev - 5)
        } else {
            return None;
        };
        Some(Op::Compact { rev, physical })
    }
    fn live_watchers(&self) -> Vec<usize> {
        (0..self.watchers.len())
            .filter(|&w| self.watchers[w].live)
            .collect()
    }
    fn watch(&mut self) -> WatchSpec {
        let cur = self.cur_rev.max(1);
        let low = self.compact_rev.max(1);
        let (kind, start_rev) = match self.pct() {
            0..=34 => (StartKind::Now, 0),
            35..=59 => (StartKind::Past, self.rng.random_range(low..=cur)),
            60..=69 if self.compact_rev > 0 => (StartKind::AtCompaction, self.compact_rev),
            70..=84 if self.compact_rev > 1 => (
                StartKind::Compacted,
                self.rng.random_range(1..self.compact_rev),
            ),
            85..=99 => (StartKind::Future, cur + self.rng.random_range(1..=30)),
            _ => (StartKind::Now, 0),
        };
        let filter = match self.pct() {
            0..=59 => None,
            60..=79 => Some(WatchFilterType::NoPut),
            _ => Some(WatchFilterType::NoDelete),
        };
        let (stream, new_stream) = if self.streams > 0 && self.coin(0.3) {
            (self.rng.random_range(0..self.streams), false)
        } else {
            (self.streams, true)
        };
        WatchSpec {
            sel: self.sel(),
            kind,
            start_rev,
            filter,
            prev_kv: self.coin(0.5),
            stream,
            new_stream,
        }
    }
    fn action(&mut self) -> Action {
        let live = self.live_watchers();
        let p = self.rng.random_range(0..1000);
        let op = match p {
            0..=399 => self.put(),
            400..=509 => Op::Del {
                sel: if self.coin(0.6) {
                    Sel::Key(self.key())
                } else {
                    self.sel()
                },
                prev_kv: self.coin(0.3),
            },
            510..=609 => Op::Txn(self.txn()),
            610..=649 => {
                let ttl = if self.coin(0.03) {
                    9_000_000_001 // above etcd's MaxLeaseTTL: an error
                } else {
                    self.pick(&TTLS)
                };
                let id = if self.coin(0.15) {
                    0x2000 + self.rng.random_range(0..6) // explicit ids collide now and then
                } else {
                    0
                };
                Op::Grant { ttl, id }
            }
            650..=679 => Op::Revoke(self.any_lease()),
            680..=709 => Op::TimeToLive {
                lease: self.any_lease(),
                keys: self.coin(0.5),
            },
            710..=729 => Op::KeepAliveOnce(self.any_lease()),
            730..=739 => Op::Leases,
            740..=749 => match self.compact() {
                Some(op) => op,
                None => self.put(),
            },
            750..=779 if live.len() < MAX_LIVE_WATCHERS => return Action::OpenWatch(self.watch()),
            780..=786 if !live.is_empty() => return Action::CancelWatch(self.pick(&live)),
            _ => self.put(),
        };
        Action::Op(op)
    }
}

// ---------------------------------------------------------------------------
// One side: a client, its lease ids, its watch streams
// ---------------------------------------------------------------------------

/// One side's answer to one request, normalised for comparison.
#[derive(Clone, Debug)]
struct Outcome {
    text: String,
    /// Top-level header revision on success.
    rev: Option<i64>,
    /// A remaining lease TTL, compared within ±1 s.
    ttl: Option<i64>,
}

impl Outcome {
    fn ok(text: String, h: Option<&ResponseHeader>) -> Outcome {
        Outcome {
            text,
            rev: Some(h.map(|h| h.revision()).unwrap_or(-1)),
            ttl: None,
        }
    }
    fn err(text: String) -> Outcome {
        Outcome {
            text,
            rev: None,
            ttl: None,
        }
    }
    fn same_as(&self, other: &Outcome) -> bool {
        self.text == other.text
            && match (self.ttl, other.ttl) {
                (None, None) => true,
                (Some(a), Some(b)) => (a - b).abs() <= 1,
                _ => false,
            }
    }
}

impl Display for Outcome {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.text)?;
        if let Some(t) = self.ttl {
            write!(f, " ttl={t}")?;
        }
        Ok(())
    }
}

async fn call<T>(fut: impl Future<Output = Result<T, Error>>) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(err_text(e)),
        Err(_) => Err(format!("TIMEOUT: no answer within {OP_TIMEOUT:?}")),
    }
}

/// A key-value as received (owned, so responses can be kept).
#[derive(Clone, Debug)]
struct Kv {
    key: Vec<u8>,
    value: Vec<u8>,
    create: i64,
    modr: i64,
    version: i64,
    lease: i64,
}

impl From<&KeyValue> for Kv {
    fn from(kv: &KeyValue) -> Kv {
        Kv {
            key: kv.key().to_vec(),
            value: kv.value().to_vec(),
            create: kv.create_revision(),
            modr: kv.mod_revision(),
            version: kv.version(),
            lease: kv.lease(),
        }
    }
}

#[derive(Clone, Debug)]
struct Ev {
    put: bool,
    kv: Option<Kv>,
    prev: Option<Kv>,
}

#[derive(Clone, Debug)]
struct Resp {
    watch_id: i64,
    created: bool,
    canceled: bool,
    compact_revision: i64,
    cancel_reason: String,
    header: String,
    header_rev: Option<i64>,
    events: Vec<Ev>,
}

impl From<&WatchResponse> for Resp {
    fn from(r: &WatchResponse) -> Resp {
        Resp {
            watch_id: r.watch_id(),
            created: r.created(),
            canceled: r.canceled(),
            compact_revision: r.compact_revision(),
            cancel_reason: r.cancel_reason().to_string(),
            header: hdr(r.header()),
            header_rev: r.header().map(|h| h.revision()),
            events: r
                .events()
                .iter()
                .map(|e| Ev {
                    put: e.event_type() == EventType::Put,
                    kv: e.kv().map(Kv::from),
                    prev: e.prev_kv().map(Kv::from),
                })
                .collect(),
        }
    }
}

impl Resp {
    fn last_event_rev(&self) -> Option<i64> {
        self.events
            .iter()
            .filter_map(|e| e.kv.as_ref().map(|kv| kv.modr))
            .max()
    }
}

/// Everything one watch stream received, in order.
#[derive(Default)]
struct StreamLog {
    resps: Vec<Resp>,
    /// Set when the stream ended or failed.
    end: Option<String>,
}

struct WStream {
    sender: WatchRequestSender,
    log: Arc<Mutex<StreamLog>>,
    /// Create requests sent on this stream so far.
    creates: usize,
    reader: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct SideWatcher {
    stream: Option<usize>,
    /// Index in the stream's log of this watcher's created response.
    created_pos: Option<usize>,
    watch_id: Option<i64>,
    /// The created response (or why there is none).
    head: Vec<String>,
    /// Drain / cancel timeouts, in order.
    notes: Vec<String>,
}

struct Side {
    client: Client,
    /// Per grant of the sequence: the id this server granted.
    leases: Vec<Option<i64>>,
    streams: Vec<Option<WStream>>,
    watchers: Vec<SideWatcher>,
    /// Timeouts so far (after the first, waits are shortened).
    failures: usize,
}

impl Side {
    fn new(client: Client) -> Side {
        Side {
            client,
            leases: Vec::new(),
            streams: Vec::new(),
            watchers: Vec::new(),
            failures: 0,
        }
    }

    fn lease_id(&self, l: LeaseRef) -> i64 {
        match l {
            LeaseRef::None => 0,
            LeaseRef::Slot(k) => self.leases.get(k).copied().flatten().unwrap_or(BOGUS_LEASE),
            LeaseRef::Raw(id) => id,
        }
    }

    /// A lease id as `L<n>` (the n-th grant of the sequence; the latest if an
    /// explicit id was granted again), 0, or the raw id if never granted.
    fn mask(&self, id: i64) -> String {
        if id == 0 {
            return "0".into();
        }
        match self.leases.iter().rposition(|l| *l == Some(id)) {
            Some(k) => format!("L{k}"),
            None => format!("{id:#x}"),
        }
    }

    fn kv(&self, kv: &Kv) -> String {
        format!(
            "{{{}={} create={} mod={} ver={} lease={}}}",
            esc(&kv.key),
            esc(&kv.value),
            kv.create,
            kv.modr,
            kv.version,
            self.mask(kv.lease)
        )
    }

    fn kvs(&self, list: &[KeyValue]) -> String {
        let items: Vec<String> = list.iter().map(|k| self.kv(&Kv::from(k))).collect();
        format!("[{}]", items.join(", "))
    }

    fn txn_op(&self, p: &TxnPiece) -> TxnOp {
        match p {
            TxnPiece::Put { key, value, lease } => {
                let id = self.lease_id(*lease);
                let o = if id != 0 {
                    PutOptions::new().with_lease(id)
                } else {
                    PutOptions::new()
                };
                TxnOp::put(key.clone(), value.clone(), Some(o))
            }
            TxnPiece::Del(s) => TxnOp::delete(s.key(), Some(s.del(false))),
            TxnPiece::Get(k) => TxnOp::get(k.clone(), None),
        }
    }

    async fn exec(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Put {
                key,
                value,
                lease,
                prev_kv,
                ignore_lease,
            } => {
                let mut o = PutOptions::new();
                let id = self.lease_id(*lease);
                if id != 0 {
                    o = o.with_lease(id);
                }
                if *prev_kv {
                    o = o.with_prev_key();
                }
                if *ignore_lease {
                    o = o.with_ignore_lease();
                }
                match call(self.client.put(key.clone(), value.clone(), Some(o))).await {
                    Ok(r) => Outcome::ok(
                        format!(
                            "put {} prev_kv={}",
                            hdr(r.header()),
                            r.prev_key()
                                .map(|k| self.kv(&Kv::from(k)))
                                .unwrap_or_else(|| "none".into())
                        ),
                        r.header(),
                    ),
                    Err(e) => Outcome::err(e),
                }
            }
            Op::Del { sel, prev_kv } => {
                match call(self.client.delete(sel.key(), Some(sel.del(*prev_kv)))).await {
                    Ok(r) => Outcome::ok(
                        format!(
                            "delete {} deleted={} prev_kvs={}",
                            hdr(r.header()),
                            r.deleted(),
                            self.kvs(r.prev_kvs())
                        ),
                        r.header(),
                    ),
                    Err(e) => Outcome::err(e),
                }
            }
            Op::Txn(t) => {
                let txn = Txn::new()
                    .when(vec![Compare::version(
                        t.cmp_key.clone(),
                        t.cmp_op,
                        t.cmp_version,
                    )])
                    .and_then(t.success.iter().map(|p| self.txn_op(p)).collect::<Vec<_>>())
                    .or_else(t.failure.iter().map(|p| self.txn_op(p)).collect::<Vec<_>>());
                match call(self.client.txn(txn)).await {
                    Ok(r) => {
                        let mut s =
                            format!("txn {} succeeded={} [", hdr(r.header()), r.succeeded());
                        for (i, op) in r.op_responses().iter().enumerate() {
                            if i > 0 {
                                s.push_str(", ");
                            }
                            match op {
                                TxnOpResponse::Put(p) => {
                                    let _ = write!(s, "put {}", hdr(p.header()));
                                }
                                TxnOpResponse::Delete(d) => {
                                    let _ = write!(
                                        s,
                                        "delete {} deleted={}",
                                        hdr(d.header()),
                                        d.deleted()
                                    );
                                }
                                TxnOpResponse::Get(g) => {
                                    let _ = write!(
                                        s,
                                        "range {} count={} kvs={}",
                                        hdr(g.header()),
                                        g.count(),
                                        self.kvs(g.kvs())
                                    );
                                }
                                TxnOpResponse::Txn(_) => s.push_str("<unexpected nested txn>"),
                            }
                        }
                        s.push(']');
                        Outcome::ok(s, r.header())
                    }
                    Err(e) => Outcome::err(e),
                }
            }
            Op::Grant { ttl, id } => {
                let opts = (*id != 0).then(|| LeaseGrantOptions::new().with_id(*id));
                match call(self.client.lease_grant(*ttl, opts)).await {
                    Ok(r) => {
                        self.leases.push(Some(r.id()));
                        Outcome::ok(
                            format!(
                                "lease_grant {} id={} ttl={} error={:?}",
                                hdr(r.header()),
                                self.mask(r.id()),
                                r.ttl(),
                                r.error()
                            ),
                            r.header(),
                        )
                    }
                    Err(e) => {
                        self.leases.push(None);
                        Outcome::err(e)
                    }
                }
            }
            Op::Revoke(l) => match call(self.client.lease_revoke(self.lease_id(*l))).await {
                Ok(r) => Outcome::ok(format!("lease_revoke {}", hdr(r.header())), r.header()),
                Err(e) => Outcome::err(e),
            },
            Op::TimeToLive { lease, keys } => {
                let opts = keys.then(|| LeaseTimeToLiveOptions::new().with_keys());
                match call(self.client.lease_time_to_live(self.lease_id(*lease), opts)).await {
                    Ok(r) => {
                        // Upstream lists the keys in map order: compare them sorted.
                        let mut ks: Vec<String> = r.keys().iter().map(|k| esc(k)).collect();
                        ks.sort();
                        let mut o = Outcome::ok(
                            format!(
                                "lease_time_to_live {} id={} granted_ttl={} keys=[{}]{}",
                                hdr(r.header()),
                                self.mask(r.id()),
                                r.granted_ttl(),
                                ks.join(", "),
                                if r.ttl() <= 0 {
                                    format!(" ttl={}", r.ttl())
                                } else {
                                    String::new()
                                }
                            ),
                            r.header(),
                        );
                        if r.ttl() > 0 {
                            o.ttl = Some(r.ttl());
                        }
                        o
                    }
                    Err(e) => Outcome::err(e),
                }
            }
            Op::KeepAliveOnce(l) => {
                let id = self.lease_id(*l);
                let mut lc = self.client.lease_client();
                // etcd-client reads the first answer itself (and fails with
                // "lease not found" if its ttl is 0); a second request shows an answer.
                match call(lc.keep_alive(id)).await {
                    Ok((mut keeper, mut stream)) => {
                        let second = call(async {
                            keeper.keep_alive().await?;
                            stream.message().await
                        })
                        .await;
                        match second {
                            Ok(Some(r)) => Outcome::ok(
                                format!(
                                    "lease_keep_alive {} id={} ttl={}",
                                    hdr(r.header()),
                                    self.mask(r.id()),
                                    r.ttl()
                                ),
                                r.header(),
                            ),
                            Ok(None) => Outcome::err("keep-alive stream ended".into()),
                            Err(e) => Outcome::err(e),
                        }
                    }
                    Err(e) => Outcome::err(e),
                }
            }
            Op::Leases => match call(self.client.leases()).await {
                Ok(r) => {
                    let mut ids: Vec<String> =
                        r.leases().iter().map(|l| self.mask(l.id())).collect();
                    ids.sort();
                    Outcome::ok(
                        format!(
                            "lease_leases {} leases=[{}]",
                            hdr(r.header()),
                            ids.join(", ")
                        ),
                        r.header(),
                    )
                }
                Err(e) => Outcome::err(e),
            },
            Op::Compact { rev, physical } => {
                let o = if *physical {
                    CompactionOptions::new().with_physical()
                } else {
                    CompactionOptions::new()
                };
                match call(self.client.compact(*rev, Some(o))).await {
                    Ok(r) => Outcome::ok(format!("compact {}", hdr(r.header())), r.header()),
                    Err(e) => Outcome::err(e),
                }
            }
            Op::GetAll => {
                match call(self.client.get("", Some(GetOptions::new().with_all_keys()))).await {
                    Ok(r) => Outcome::ok(
                        format!(
                            "range {} count={} kvs={}",
                            hdr(r.header()),
                            r.count(),
                            self.kvs(r.kvs())
                        ),
                        r.header(),
                    ),
                    Err(e) => Outcome::err(e),
                }
            }
        }
    }

    /// Opens watcher `w` as `spec` says and waits for its created response.
    /// Returns whether the watch was created and not canceled.
    async fn open_watch(&mut self, w: usize, spec: &WatchSpec) -> bool {
        assert_eq!(self.watchers.len(), w, "watchers are opened in order");
        self.watchers.push(SideWatcher::default());
        let key = spec.sel.key();
        let opts = spec.options();
        if spec.new_stream {
            assert_eq!(
                self.streams.len(),
                spec.stream,
                "streams are opened in order"
            );
            let mut wc = self.client.watch_client();
            match call(wc.watch(key, Some(opts))).await {
                Ok(ws) => {
                    let (sender, mut responses) = ws.split();
                    let log = Arc::new(Mutex::new(StreamLog::default()));
                    let sink = log.clone();
                    let reader = tokio::spawn(async move {
                        loop {
                            let next = responses.message().await;
                            let mut l = sink.lock().unwrap();
                            match next {
                                Ok(Some(r)) => l.resps.push(Resp::from(&r)),
                                Ok(None) => {
                                    l.end = Some("stream ended by the server".into());
                                    break;
                                }
                                Err(e) => {
                                    l.end = Some(format!("stream failed: {}", err_text(e)));
                                    break;
                                }
                            }
                        }
                    });
                    self.streams.push(Some(WStream {
                        sender,
                        log,
                        creates: 1,
                        reader,
                    }));
                }
                Err(e) => {
                    self.streams.push(None);
                    self.watchers[w].head.push(format!("watch failed: {e}"));
                    return false;
                }
            }
        } else {
            let Some(s) = self.streams[spec.stream].as_mut() else {
                self.watchers[w]
                    .head
                    .push("its stream could not be opened".into());
                return false;
            };
            if let Err(e) = call(s.sender.watch(key, Some(opts))).await {
                self.watchers[w]
                    .head
                    .push(format!("watch request failed: {e}"));
                return false;
            }
            s.creates += 1;
        }
        let s = self.streams[spec.stream].as_ref().expect("stream is open");
        let nth = s.creates;
        let timeout = self.create_timeout();
        let deadline = Instant::now() + timeout;
        let sw = &mut self.watchers[w];
        sw.stream = Some(spec.stream);
        loop {
            {
                let log = s.log.lock().unwrap();
                if let Some((pos, r)) = log
                    .resps
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.created)
                    .nth(nth - 1)
                {
                    sw.created_pos = Some(pos);
                    sw.watch_id = Some(r.watch_id);
                    sw.head.push(format!(
                        "created watch_id={} canceled={} cancel_reason={:?} compact_revision={} {} events={}",
                        r.watch_id,
                        r.canceled,
                        r.cancel_reason,
                        r.compact_revision,
                        r.header,
                        r.events.len()
                    ));
                    return !r.canceled;
                }
                if let Some(end) = &log.end {
                    sw.head.push(format!("no created response: {end}"));
                    return false;
                }
            }
            if Instant::now() >= deadline {
                sw.head
                    .push(format!("no created response within {timeout:?}"));
                self.failures += 1;
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The responses addressed to watcher `w` after its created response.
    fn responses_of(&self, w: usize) -> Option<(Vec<Resp>, Option<String>)> {
        let sw = &self.watchers[w];
        let (Some(si), Some(pos), Some(id)) = (sw.stream, sw.created_pos, sw.watch_id) else {
            return None;
        };
        let s = self.streams[si].as_ref()?;
        let log = s.log.lock().unwrap();
        let resps = log.resps[pos + 1..]
            .iter()
            .filter(|r| r.watch_id == id && !r.created)
            .cloned()
            .collect();
        Some((resps, log.end.clone()))
    }

    /// (highest event revision received, canceled, stream ended); None if the
    /// watcher was never created on this side.
    fn progress(&self, w: usize) -> Option<(i64, bool, bool)> {
        let (resps, end) = self.responses_of(w)?;
        let max = resps
            .iter()
            .filter_map(Resp::last_event_rev)
            .max()
            .unwrap_or(0);
        Some((max, resps.iter().any(|r| r.canceled), end.is_some()))
    }

    fn create_timeout(&self) -> Duration {
        if self.failures == 0 {
            CREATE_TIMEOUT
        } else {
            TIMEOUT_AFTER_FAILURE
        }
    }

    fn drain_timeout(&self) -> Duration {
        if self.failures == 0 {
            DRAIN_TIMEOUT
        } else {
            TIMEOUT_AFTER_FAILURE
        }
    }

    /// Waits until watcher `w` has received an event of revision `target` or
    /// later (or was canceled, or its stream ended). A timeout is noted in the
    /// watcher's compared record.
    async fn drain(&mut self, w: usize, target: i64) {
        let timeout = self.drain_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            match self.progress(w) {
                None => return,
                Some((max, canceled, ended)) if max >= target || canceled || ended => return,
                Some(_) => {}
            }
            if Instant::now() >= deadline {
                self.failures += 1;
                let (max, _, _) = self.progress(w).unwrap_or_default();
                self.watchers[w].notes.push(format!(
                    "no event of revision >= {target} within {timeout:?} (last seen: {max})"
                ));
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Waits until watcher `w` is canceled (bounded); a timeout is noted.
    async fn wait_canceled(&mut self, w: usize) {
        let timeout = self.create_timeout();
        let deadline = Instant::now() + timeout;
        loop {
            match self.progress(w) {
                None => return,
                Some((_, canceled, ended)) if canceled || ended => return,
                Some(_) => {}
            }
            if Instant::now() >= deadline {
                self.failures += 1;
                self.watchers[w]
                    .notes
                    .push(format!("not canceled within {timeout:?}"));
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sends a cancel request for watcher `w` and waits for its canceled response.
    async fn cancel_watch(&mut self, w: usize) -> Outcome {
        let sw = &self.watchers[w];
        let (Some(si), Some(id)) = (sw.stream, sw.watch_id) else {
            return Outcome::err("no watch to cancel".into());
        };
        let Some(s) = self.streams[si].as_mut() else {
            return Outcome::err("no stream".into());
        };
        if let Err(e) = call(s.sender.cancel(id)).await {
            return Outcome::err(format!("cancel request failed: {e}"));
        }
        self.wait_canceled(w).await;
        Outcome::ok("cancel sent".into(), None)
    }

    /// Watcher `w`'s record: its created response, then every event and
    /// cancellation it received, flattened, then any timeout noted.
    fn render_watcher(&self, w: usize) -> (Vec<String>, usize) {
        let sw = &self.watchers[w];
        let mut lines = sw.head.clone();
        let mut empty = 0;
        if let Some((resps, end)) = self.responses_of(w) {
            for r in &resps {
                if let (Some(h), Some(last)) = (r.header_rev, r.last_event_rev()) {
                    if h < last {
                        lines.push(format!(
                            "INVALID: response header revision {h} below its event revision {last}"
                        ));
                    }
                }
                for e in &r.events {
                    lines.push(format!(
                        "{} {} prev_kv={}",
                        if e.put { "PUT" } else { "DELETE" },
                        e.kv.as_ref()
                            .map(|k| self.kv(k))
                            .unwrap_or_else(|| "<no kv>".into()),
                        e.prev
                            .as_ref()
                            .map(|k| self.kv(k))
                            .unwrap_or_else(|| "none".into())
                    ));
                }
                if r.canceled {
                    lines.push(format!(
                        "canceled compact_revision={} cancel_reason={:?}",
                        r.compact_revision, r.cancel_reason
                    ));
                } else if r.events.is_empty() {
                    // Grouping only (e.g. a progress notification): not compared.
                    empty += 1;
                }
            }
            if let Some(end) = end {
                lines.push(end);
            }
        }
        lines.extend(sw.notes.iter().cloned());
        (lines, empty)
    }

    fn stop(&mut self) {
        for s in self.streams.iter().flatten() {
            s.reader.abort();
        }
        self.streams.clear();
    }
}

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

struct Run {
    gen: Gen,
    reference: Side,
    candidate: Side,
    mismatches: Vec<Mismatch>,
    index: usize,
    writes: usize,
    verbose: bool,
    stats: std::collections::BTreeMap<&'static str, (usize, usize)>,
    ref_errors: std::collections::BTreeMap<String, usize>,
}

impl Run {
    fn record(&mut self, request: String, r: &Outcome, c: &Outcome) {
        if self.verbose {
            println!("#{} {request}\n    => {r}", self.index);
        }
        if !r.same_as(c) {
            self.mismatches.push(Mismatch {
                index: self.index,
                request,
                reference: r.to_string(),
                candidate: c.to_string(),
            });
        }
        self.index += 1;
    }

    async fn step(&mut self, op: Op) -> (Outcome, Outcome) {
        if matches!(op, Op::Compact { .. }) {
            // Let the servers finish sending events already written (their
            // prev_kv is read at send time) before history goes away.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (r, c) = tokio::join!(self.reference.exec(&op), self.candidate.exec(&op));
        let entry = self.stats.entry(op.kind()).or_default();
        match r.rev {
            Some(rev) => {
                entry.0 += 1;
                self.gen.cur_rev = self.gen.cur_rev.max(rev);
                match op {
                    Op::Compact { rev, .. } => self.gen.compact_rev = rev,
                    Op::Revoke(LeaseRef::Slot(k)) => self.gen.lease_alive[k] = false,
                    _ => {}
                }
            }
            None => {
                entry.1 += 1;
                *self.ref_errors.entry(r.text.clone()).or_default() += 1;
            }
        }
        if let Op::Grant { .. } = op {
            self.gen.lease_alive.push(r.rev.is_some());
        }
        if op.is_write() {
            self.writes += 1;
        }
        self.record(op.to_string(), &r, &c);
        (r, c)
    }

    /// Puts and deletes a sentinel key inside each range, returning per side
    /// (key, put revision, delete revision).
    async fn sentinels(
        &mut self,
        keys: &[Vec<u8>],
    ) -> (
        Vec<(Vec<u8>, Option<i64>, Option<i64>)>,
        Vec<(Vec<u8>, Option<i64>, Option<i64>)>,
    ) {
        let mut rs = Vec::new();
        let mut cs = Vec::new();
        for key in keys {
            let (rp, cp) = self
                .step(Op::Put {
                    key: key.clone(),
                    value: b"sentinel".to_vec(),
                    lease: LeaseRef::None,
                    prev_kv: false,
                    ignore_lease: false,
                })
                .await;
            let (rd, cd) = self
                .step(Op::Del {
                    sel: Sel::Key(key.clone()),
                    prev_kv: false,
                })
                .await;
            rs.push((key.clone(), rp.rev, rd.rev));
            cs.push((key.clone(), cp.rev, cd.rev));
        }
        (rs, cs)
    }

    /// Waits until each of `watchers` has received everything up to the
    /// sentinels written for it.
    async fn drain(
        &mut self,
        watchers: &[usize],
        rs: &[(Vec<u8>, Option<i64>, Option<i64>)],
        cs: &[(Vec<u8>, Option<i64>, Option<i64>)],
    ) {
        for &w in watchers {
            let spec = self.gen.watchers[w].spec.clone();
            let rt = spec.target(rs);
            let ct = spec.target(cs);
            let (reference, candidate) = (&mut self.reference, &mut self.candidate);
            tokio::join!(
                async move {
                    if let Some(t) = rt {
                        reference.drain(w, t).await
                    }
                },
                async move {
                    if let Some(t) = ct {
                        candidate.drain(w, t).await
                    }
                }
            );
        }
    }

    async fn open_watch(&mut self, spec: WatchSpec) {
        let w = self.gen.watchers.len();
        let (r, c) = tokio::join!(
            self.reference.open_watch(w, &spec),
            self.candidate.open_watch(w, &spec)
        );
        if self.verbose {
            println!(
                "#{} open watcher {w}: {spec}\n    => {}",
                self.index,
                self.reference.watchers[w].head.join(" ")
            );
        }
        if spec.new_stream {
            self.gen.streams += 1;
        }
        self.gen.watchers.push(GenWatcher {
            spec: spec.clone(),
            live: r,
        });
        self.record(
            format!("open watcher {w}: {spec}"),
            &Outcome::ok(format!("created={r}"), None),
            &Outcome::ok(format!("created={c}"), None),
        );
        match spec.kind {
            StartKind::Past | StartKind::AtCompaction if r => {
                // Unsynced at creation: let it catch up before anything else happens.
                let (rs, cs) = self.sentinels(&[spec.sel.sentinel()]).await;
                self.drain(&[w], &rs, &cs).await;
            }
            StartKind::Compacted => {
                tokio::join!(
                    self.reference.wait_canceled(w),
                    self.candidate.wait_canceled(w)
                );
                self.gen.watchers[w].live = false;
            }
            _ => {}
        }
    }

    async fn cancel_watch(&mut self, w: usize) {
        let sel = self.gen.watchers[w].spec.sel.clone();
        let (rs, cs) = self.sentinels(&[sel.sentinel()]).await;
        self.drain(&[w], &rs, &cs).await;
        let (r, c) = tokio::join!(
            self.reference.cancel_watch(w),
            self.candidate.cancel_watch(w)
        );
        self.gen.watchers[w].live = false;
        self.record(format!("cancel watcher {w}"), &r, &c);
    }

    /// Carries the revision past every future start revision, writes a
    /// sentinel in every live watcher's range and drains them all.
    async fn finish(&mut self) {
        let live = self.gen.live_watchers();
        let max_start = live
            .iter()
            .map(|&w| self.gen.watchers[w].spec.start_rev)
            .max()
            .unwrap_or(0);
        let mut n = 0;
        while self.gen.cur_rev < max_start && n < 100 {
            n += 1;
            self.step(Op::Put {
                key: b"filler".to_vec(),
                value: format!("f{n}").into_bytes(),
                lease: LeaseRef::None,
                prev_kv: false,
                ignore_lease: false,
            })
            .await;
        }
        let keys: Vec<Vec<u8>> = live
            .iter()
            .map(|&w| self.gen.watchers[w].spec.sel.sentinel())
            .collect();
        let (rs, cs) = self.sentinels(&keys).await;
        self.drain(&live, &rs, &cs).await;
        tokio::time::sleep(GRACE).await;
        self.step(Op::GetAll).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_random_writes_give_every_watcher_and_lease_request_the_same_answers_from_synod_as_from_etcd(
) {
    let seed: u64 = env_parse("DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let n_writes: usize = env_parse("DIFF_WRITES")
        .unwrap_or(DEFAULT_WRITES)
        .max(MIN_WRITES);
    let (cand_flavor, cand_name) = candidate_from_env();
    let verbose = verbose_from_env();
    println!(
        "differential_watch: seed={seed} ({seed:#x}) writes={n_writes} reference=etcd \
         candidate={cand_name} (replay with DIFF_SEED={seed})"
    );
    let started = Instant::now();

    let reference_server = Server::start(Flavor::Etcd);
    let candidate_server = Server::start(cand_flavor);
    let mut run = Run {
        gen: Gen {
            rng: StdRng::seed_from_u64(seed),
            cur_rev: 1,
            compact_rev: 0,
            lease_alive: Vec::new(),
            watchers: Vec::new(),
            streams: 0,
        },
        reference: Side::new(client(&reference_server).await),
        candidate: Side::new(client(&candidate_server).await),
        mismatches: Vec::new(),
        index: 0,
        writes: 0,
        verbose,
        stats: Default::default(),
        ref_errors: Default::default(),
    };

    while run.writes < n_writes && run.mismatches.len() < MAX_MISMATCHES {
        match run.gen.action() {
            Action::Op(op) => {
                run.step(op).await;
            }
            Action::OpenWatch(spec) => run.open_watch(spec).await,
            Action::CancelWatch(w) => run.cancel_watch(w).await,
        }
    }
    run.finish().await;

    // Compare every watcher's record.
    let mut watcher_mismatches = Vec::new();
    let mut by_kind: std::collections::BTreeMap<StartKind, (usize, usize)> = Default::default();
    let mut total_events = 0;
    let (mut empty_ref, mut empty_cand) = (0, 0);
    for w in 0..run.gen.watchers.len() {
        let spec = &run.gen.watchers[w].spec;
        let (r, er) = run.reference.render_watcher(w);
        let (c, ec) = run.candidate.render_watcher(w);
        empty_ref += er;
        empty_cand += ec;
        let events = r
            .iter()
            .filter(|l| l.starts_with("PUT") || l.starts_with("DELETE"))
            .count();
        total_events += events;
        let e = by_kind.entry(spec.kind).or_default();
        e.0 += 1;
        e.1 += events;
        if verbose {
            println!("watcher {w}: {spec}: {} lines on etcd", r.len());
            for l in &r {
                println!("    {l}");
            }
        }
        if r != c {
            let first = r
                .iter()
                .zip(c.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(r.len().min(c.len()));
            let from = first.saturating_sub(2);
            let show = |lines: &[String]| -> String {
                lines
                    .iter()
                    .enumerate()
                    .skip(from)
                    .take(6)
                    .map(|(i, l)| format!("\n        [{i}] {l}"))
                    .collect()
            };
            watcher_mismatches.push(format!(
                "\n--- watcher {w}: {spec}\n    etcd: {} lines, {cand_name}: {} lines; first difference at line {first}\n    etcd:{}\n    {cand_name}:{}",
                r.len(),
                c.len(),
                show(&r),
                show(&c)
            ));
        }
    }
    run.reference.stop();
    run.candidate.stop();

    println!(
        "differential_watch: {} requests, {} writes, final revision {}, compacted at {}, {:.1}s",
        run.index,
        run.writes,
        run.gen.cur_rev,
        run.gen.compact_rev,
        started.elapsed().as_secs_f64()
    );
    println!("  per kind (ok/error on etcd):");
    for (kind, (ok, errs)) in &run.stats {
        println!("    {kind:16} ok={ok:5} error={errs:5}");
    }
    println!("  errors returned by etcd:");
    for (e, n) in &run.ref_errors {
        println!("    {n:5} × {e}");
    }
    println!(
        "  {} watchers on {} streams, {total_events} events on etcd; per start kind (watchers, events): {by_kind:?}",
        run.gen.watchers.len(),
        run.gen.streams
    );
    println!("  responses without events or cancellation (not compared): etcd {empty_ref}, {cand_name} {empty_cand}");

    if !run.mismatches.is_empty() || !watcher_mismatches.is_empty() {
        let mut report = format!(
            "{} request mismatch(es) and {} watcher mismatch(es) between etcd (reference) and \
             {cand_name} (candidate); seed={seed} (replay with DIFF_SEED={seed})\n",
            run.mismatches.len(),
            watcher_mismatches.len()
        );
        for m in &run.mismatches {
            m.write_to(&mut report, "request", cand_name);
        }
        for m in watcher_mismatches.iter().take(MAX_MISMATCHES) {
            report.push_str(m);
            report.push('\n');
        }
        if watcher_mismatches.len() > MAX_MISMATCHES {
            let _ = write!(
                report,
                "\n[{} more watcher mismatches not shown]\n",
                watcher_mismatches.len() - MAX_MISMATCHES
            );
        }
        panic!("{report}");
    }
    assert!(
        run.writes >= n_writes,
        "only {} of {n_writes} writes were made",
        run.writes
    );
    drop(candidate_server);
    drop(reference_server);
}
