//! Differential KV test: one seeded sequence of random KV requests (and
//! Maintenance.HashKV, whose hash covers the whole history) is sent,
//! in lockstep, to upstream etcd 3.4 (the reference) and to Synod (the
//! candidate), each a single member started by this test. Every response must
//! be identical, ids aside:
//!
//! * success vs error must agree;
//! * on error, the gRPC code and message must agree;
//! * on success, the whole response must agree: every key-value field,
//!   `count`, `more`, `deleted`, `succeeded`, the nested txn responses, and
//!   every header's `revision`. Of `cluster_id`, `member_id` and `raft_term`
//!   only whether they are zero or not is compared (upstream fills them in
//!   the top-level header and leaves them 0 in the headers nested in a txn).
//!
//! Environment:
//! * `DIFF_SEED=<u64>`   replay another sequence (the seed is printed);
//! * `DIFF_OPS=<n>`      number of operations (default 2000, at least 1000);
//! * `DIFF_VERBOSE=1`    print every request and etcd's response;
//! * `DIFF_AGAINST=etcd` run upstream against upstream (validates the
//!   harness: the two must be identical); the default is `synod`.
//!
//! On mismatch the test keeps going until it has collected up to
//! `MAX_MISMATCHES`, then fails with the seed, the op index, the request
//! and both responses.

use std::fmt::{self, Display, Formatter, Write as _};
use std::time::Duration;

use compat_tests::differential::{
    candidate_from_env, env_parse, err_text, esc, hdr, verbose_from_env, Mismatch,
};
use compat_tests::{client, Flavor, Server};
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, DeleteOptions, Error, GetOptions, KeyValue,
    PutOptions, ResponseHeader, SortOrder, SortTarget, Txn, TxnOp, TxnOpResponse, TxnResponse,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// "5EED 0E7C D3 2024", grouped by word rather than by four digits
#[allow(clippy::unusual_byte_groupings)]
const DEFAULT_SEED: u64 = 0x5EED_0E7C_D3_2024;
const DEFAULT_OPS: usize = 2000;
const MIN_OPS: usize = 1000;
const MAX_MISMATCHES: usize = 10;
/// Upper bound for any single request (connection problems, hangs).
const OP_TIMEOUT: Duration = Duration::from_secs(15);
/// etcd's default `--max-txn-ops`.
const MAX_TXN_OPS: usize = 128;

/// 30 keys sharing prefixes so that prefix / from-key / explicit ranges hit
/// several keys; includes non-UTF-8 bytes, 0x00 and 0xff edges.
const KEYS: [&[u8]; 30] = [
    b"\x00",
    b"\x01",
    b"a",
    b"a/",
    b"a/b",
    b"a/b/c",
    b"a/c",
    b"a0",
    b"a\xff",
    b"ab",
    b"b",
    b"b/",
    b"b/x",
    b"b/y",
    b"ba",
    b"c",
    b"c/d",
    b"c/d/e",
    b"d",
    b"foo",
    b"foo/",
    b"foo/bar",
    b"foo/baz",
    b"foo0",
    b"foo1",
    b"z",
    b"zz",
    b"\x7f",
    b"\xff",
    b"\xff\xff",
];

/// Extra prefixes / range bounds that are not keys themselves.
const NON_KEYS: [&[u8]; 8] = [
    b"a/b/", b"fo", b"foo/b", b"c/", b"b/z", b"e", b"\xfe", b"aa",
];

const VALUES: [&[u8]; 8] = [
    b"",
    b"v",
    b"value",
    b"x",
    b"y",
    b"\x00",
    b"zzz",
    b"a longer value 0123456789",
];

// ---------------------------------------------------------------------------
// Request model (printable, rebuilt into etcd-client requests for each side)
// ---------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Sel {
    Key(Vec<u8>),
    Prefix(Vec<u8>),
    FromKey(Vec<u8>),
    Range(Vec<u8>, Vec<u8>),
    All,
}

impl Display for Sel {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Sel::Key(k) => write!(f, "key={}", esc(k)),
            Sel::Prefix(k) => write!(f, "prefix={}", esc(k)),
            Sel::FromKey(k) => write!(f, "from_key={}", esc(k)),
            Sel::Range(k, e) => write!(f, "range=[{},{})", esc(k), esc(e)),
            Sel::All => write!(f, "all_keys"),
        }
    }
}

impl Sel {
    /// Whether a delete of this selection removes `key` (etcd's range semantics).
    fn covers(&self, key: &[u8]) -> bool {
        match self {
            Sel::Key(k) => k.as_slice() == key,
            Sel::Prefix(p) => key.starts_with(p),
            Sel::FromKey(k) => key >= k.as_slice(),
            Sel::Range(k, e) if e.is_empty() => k.as_slice() == key,
            Sel::Range(k, e) if e.as_slice() == [0] => key >= k.as_slice(),
            Sel::Range(k, e) => key >= k.as_slice() && key < e.as_slice(),
            Sel::All => true,
        }
    }
    fn key(&self) -> Vec<u8> {
        match self {
            Sel::Key(k) | Sel::Prefix(k) | Sel::FromKey(k) | Sel::Range(k, _) => k.clone(),
            Sel::All => Vec::new(),
        }
    }
    fn get(&self, o: GetOptions) -> GetOptions {
        match self {
            Sel::Key(_) => o,
            Sel::Prefix(_) => o.with_prefix(),
            Sel::FromKey(_) => o.with_from_key(),
            Sel::Range(_, e) => o.with_range(e.clone()),
            Sel::All => o.with_all_keys(),
        }
    }
    fn del(&self, o: DeleteOptions) -> DeleteOptions {
        match self {
            Sel::Key(_) => o,
            Sel::Prefix(_) => o.with_prefix(),
            Sel::FromKey(_) => o.with_from_key(),
            Sel::Range(_, e) => o.with_range(e.clone()),
            Sel::All => o.with_all_keys(),
        }
    }
}

#[derive(Clone, Debug)]
struct RangeReq {
    sel: Sel,
    limit: i64,
    revision: i64,
    sort: Option<(SortTarget, SortOrder)>,
    keys_only: bool,
    count_only: bool,
    serializable: bool,
    min_mod: i64,
    max_mod: i64,
    min_create: i64,
    max_create: i64,
}

impl RangeReq {
    fn plain(sel: Sel) -> Self {
        RangeReq {
            sel,
            limit: 0,
            revision: 0,
            sort: None,
            keys_only: false,
            count_only: false,
            serializable: false,
            min_mod: 0,
            max_mod: 0,
            min_create: 0,
            max_create: 0,
        }
    }
    fn options(&self) -> GetOptions {
        let mut o = self.sel.get(GetOptions::new());
        if self.limit != 0 {
            o = o.with_limit(self.limit);
        }
        if self.revision != 0 {
            o = o.with_revision(self.revision);
        }
        if let Some((t, ord)) = self.sort {
            // NB: etcd-client sends (KEY, ASCEND) as (KEY, NONE).
            o = o.with_sort(t, ord);
        }
        if self.keys_only {
            o = o.with_keys_only();
        }
        if self.count_only {
            o = o.with_count_only();
        }
        if self.serializable {
            o = o.with_serializable();
        }
        if self.min_mod != 0 {
            o = o.with_min_mod_revision(self.min_mod);
        }
        if self.max_mod != 0 {
            o = o.with_max_mod_revision(self.max_mod);
        }
        if self.min_create != 0 {
            o = o.with_min_create_revision(self.min_create);
        }
        if self.max_create != 0 {
            o = o.with_max_create_revision(self.max_create);
        }
        o
    }
}

impl Display for RangeReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "range({}", self.sel)?;
        if self.limit != 0 {
            write!(f, " limit={}", self.limit)?;
        }
        if self.revision != 0 {
            write!(f, " rev={}", self.revision)?;
        }
        if let Some((t, o)) = self.sort {
            write!(f, " sort={t:?}/{o:?}")?;
        }
        for (on, name) in [
            (self.keys_only, "keys_only"),
            (self.count_only, "count_only"),
            (self.serializable, "serializable"),
        ] {
            if on {
                write!(f, " {name}")?;
            }
        }
        for (v, name) in [
            (self.min_mod, "min_mod"),
            (self.max_mod, "max_mod"),
            (self.min_create, "min_create"),
            (self.max_create, "max_create"),
        ] {
            if v != 0 {
                write!(f, " {name}={v}")?;
            }
        }
        write!(f, ")")
    }
}

#[derive(Clone, Debug)]
struct PutReq {
    key: Vec<u8>,
    value: Vec<u8>,
    prev_kv: bool,
    ignore_value: bool,
    ignore_lease: bool,
    lease: i64,
}

impl PutReq {
    fn options(&self) -> PutOptions {
        let mut o = PutOptions::new();
        if self.prev_kv {
            o = o.with_prev_key();
        }
        if self.ignore_value {
            o = o.with_ignore_value();
        }
        if self.ignore_lease {
            o = o.with_ignore_lease();
        }
        if self.lease != 0 {
            o = o.with_lease(self.lease);
        }
        o
    }
}

impl Display for PutReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "put({}={}", esc(&self.key), esc(&self.value))?;
        if self.prev_kv {
            write!(f, " prev_kv")?;
        }
        if self.ignore_value {
            write!(f, " ignore_value")?;
        }
        if self.ignore_lease {
            write!(f, " ignore_lease")?;
        }
        if self.lease != 0 {
            write!(f, " lease={:#x}", self.lease)?;
        }
        write!(f, ")")
    }
}

#[derive(Clone, Debug)]
struct DelReq {
    sel: Sel,
    prev_kv: bool,
}

impl DelReq {
    fn options(&self) -> DeleteOptions {
        let o = self.sel.del(DeleteOptions::new());
        if self.prev_kv {
            o.with_prev_key()
        } else {
            o
        }
    }
}

impl Display for DelReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delete({}{})",
            self.sel,
            if self.prev_kv { " prev_kv" } else { "" }
        )
    }
}

#[derive(Clone, Debug)]
enum CmpTarget {
    Version(i64),
    Create(i64),
    Mod(i64),
    Value(Vec<u8>),
    Lease(i64),
}

#[derive(Clone, Debug)]
enum CmpRange {
    None,
    Prefix,
    End(Vec<u8>),
}

#[derive(Clone, Debug)]
struct CmpReq {
    key: Vec<u8>,
    range: CmpRange,
    op: CompareOp,
    target: CmpTarget,
}

impl CmpReq {
    fn build(&self) -> Compare {
        let k = self.key.clone();
        let c = match &self.target {
            CmpTarget::Version(v) => Compare::version(k, self.op, *v),
            CmpTarget::Create(v) => Compare::create_revision(k, self.op, *v),
            CmpTarget::Mod(v) => Compare::mod_revision(k, self.op, *v),
            CmpTarget::Value(v) => Compare::value(k, self.op, v.clone()),
            CmpTarget::Lease(v) => Compare::lease(k, self.op, *v),
        };
        match &self.range {
            CmpRange::None => c,
            CmpRange::Prefix => c.with_prefix(),
            CmpRange::End(e) => c.with_range(e.clone()),
        }
    }
}

impl Display for CmpReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match &self.range {
            CmpRange::None => write!(f, "{}", esc(&self.key))?,
            CmpRange::Prefix => write!(f, "prefix {}", esc(&self.key))?,
            CmpRange::End(e) => write!(f, "[{},{})", esc(&self.key), esc(e))?,
        }
        let op = match self.op {
            CompareOp::Equal => "==",
            CompareOp::Greater => ">",
            CompareOp::Less => "<",
            CompareOp::NotEqual => "!=",
        };
        match &self.target {
            CmpTarget::Version(v) => write!(f, ".version {op} {v}"),
            CmpTarget::Create(v) => write!(f, ".create {op} {v}"),
            CmpTarget::Mod(v) => write!(f, ".mod {op} {v}"),
            CmpTarget::Value(v) => write!(f, ".value {op} {}", esc(v)),
            CmpTarget::Lease(v) => write!(f, ".lease {op} {v}"),
        }
    }
}

#[derive(Clone, Debug)]
enum TOp {
    Put(PutReq),
    Get(RangeReq),
    Del(DelReq),
    Txn(TxnReq),
}

impl TOp {
    fn build(&self) -> TxnOp {
        match self {
            TOp::Put(p) => TxnOp::put(p.key.clone(), p.value.clone(), Some(p.options())),
            TOp::Get(r) => TxnOp::get(r.sel.key(), Some(r.options())),
            TOp::Del(d) => TxnOp::delete(d.sel.key(), Some(d.options())),
            TOp::Txn(t) => TxnOp::txn(t.build()),
        }
    }
}

impl Display for TOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TOp::Put(p) => p.fmt(f),
            TOp::Get(r) => r.fmt(f),
            TOp::Del(d) => d.fmt(f),
            TOp::Txn(t) => t.fmt(f),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct TxnReq {
    cmps: Vec<CmpReq>,
    success: Vec<TOp>,
    failure: Vec<TOp>,
}

impl TxnReq {
    /// Clears `ignore_value` / `ignore_lease` on a put whose key an earlier delete of the same
    /// txn may have removed: etcd 3.4 panics on that request (it checks the flags against the
    /// state before the txn), which ends the comparison. Synod answers it with KeyNotFound,
    /// which the mvcc crate's tests specify. Consumes no randomness: the sequence stays the
    /// seed's.
    /// `before`: the deletes that may have run earlier in the enclosing txns. Returns the
    /// deletes this txn may run (either branch).
    fn avoid_etcd_ignore_panic(&mut self, before: &[Sel]) -> Vec<Sel> {
        let mut may_run = Vec::new();
        for branch in [&mut self.success, &mut self.failure] {
            let mut seen = before.to_vec();
            for op in branch.iter_mut() {
                match op {
                    TOp::Del(d) => seen.push(d.sel.clone()),
                    TOp::Put(p) if seen.iter().any(|s| s.covers(&p.key)) => {
                        p.ignore_value = false;
                        p.ignore_lease = false;
                    }
                    TOp::Txn(inner) => {
                        let inner_deletes = inner.avoid_etcd_ignore_panic(&seen);
                        seen.extend(inner_deletes);
                    }
                    _ => {}
                }
            }
            may_run.extend(seen.drain(before.len()..));
        }
        may_run
    }

    fn build(&self) -> Txn {
        Txn::new()
            .when(self.cmps.iter().map(CmpReq::build).collect::<Vec<_>>())
            .and_then(self.success.iter().map(TOp::build).collect::<Vec<_>>())
            .or_else(self.failure.iter().map(TOp::build).collect::<Vec<_>>())
    }
}

fn list<T: Display>(f: &mut Formatter<'_>, items: &[T]) -> fmt::Result {
    write!(f, "[")?;
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            write!(f, ", ")?;
        }
        write!(f, "{it}")?;
    }
    write!(f, "]")
}

impl Display for TxnReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "txn(if ")?;
        list(f, &self.cmps)?;
        write!(f, " then ")?;
        list(f, &self.success)?;
        write!(f, " else ")?;
        list(f, &self.failure)?;
        write!(f, ")")
    }
}

#[derive(Clone, Debug)]
enum Op {
    Put(PutReq),
    Range(RangeReq),
    Del(DelReq),
    Txn(TxnReq),
    Compact {
        rev: i64,
        physical: bool,
    },
    /// Maintenance.HashKV at a revision (0: current).
    HashKv {
        rev: i64,
    },
}

impl Display for Op {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Op::Put(p) => p.fmt(f),
            Op::Range(r) => r.fmt(f),
            Op::Del(d) => d.fmt(f),
            Op::Txn(t) => t.fmt(f),
            Op::Compact { rev, physical } => {
                write!(
                    f,
                    "compact(rev={rev}{})",
                    if *physical { " physical" } else { "" }
                )
            }
            Op::HashKv { rev } => write!(f, "hashkv(rev={rev})"),
        }
    }
}

impl Op {
    fn kind(&self) -> &'static str {
        match self {
            Op::Put(_) => "put",
            Op::Range(_) => "range",
            Op::Del(_) => "delete",
            Op::Txn(_) => "txn",
            Op::Compact { .. } => "compact",
            Op::HashKv { .. } => "hashkv",
        }
    }
}

// ---------------------------------------------------------------------------
// Random generation
// ---------------------------------------------------------------------------

/// What the generator knows about the store; taken from the reference's
/// responses only, so the sequence depends on the seed alone.
struct Gen {
    rng: StdRng,
    /// Latest header revision seen from the reference.
    cur_rev: i64,
    /// Last successful compaction revision on the reference (0 = none).
    compact_rev: i64,
}

impl Gen {
    fn pct(&mut self) -> u32 {
        self.rng.random_range(0..100)
    }
    fn coin(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }
    fn key(&mut self) -> Vec<u8> {
        KEYS[self.rng.random_range(0..KEYS.len())].to_vec()
    }
    fn key_or_non_key(&mut self) -> Vec<u8> {
        if self.coin(0.2) {
            NON_KEYS[self.rng.random_range(0..NON_KEYS.len())].to_vec()
        } else {
            self.key()
        }
    }
    fn value(&mut self) -> Vec<u8> {
        if self.coin(0.3) {
            format!("v{}", self.rng.random_range(0..100)).into_bytes()
        } else {
            VALUES[self.rng.random_range(0..VALUES.len())].to_vec()
        }
    }
    fn range_end(&mut self, key: &[u8]) -> Vec<u8> {
        match self.pct() {
            0..=59 => self.key_or_non_key(),
            60..=74 => vec![0],
            75..=82 => key.to_vec(),
            83..=90 => vec![0xff],
            91..=95 => {
                let mut e = key.to_vec();
                e.push(0);
                e
            }
            _ => Vec::new(),
        }
    }
    /// `all_pct`: chance (in %) of selecting the whole key space.
    fn sel(&mut self, all_pct: u32) -> Sel {
        let p = self.pct();
        if p < all_pct {
            return Sel::All;
        }
        match self.rng.random_range(0..100) {
            0..=44 => Sel::Key(self.key()),
            45..=64 => Sel::Prefix(self.key_or_non_key()),
            65..=74 => Sel::FromKey(self.key_or_non_key()),
            _ => {
                let k = self.key_or_non_key();
                let e = self.range_end(&k);
                Sel::Range(k, e)
            }
        }
    }
    /// A revision for a read: mostly current, sometimes old, compacted,
    /// exactly compacted, future, negative.
    fn read_rev(&mut self) -> i64 {
        let cur = self.cur_rev.max(1);
        match self.pct() {
            0..=64 => 0,
            65..=74 => self.rng.random_range(1..=cur),
            75..=79 => cur,
            80..=86 => cur + self.rng.random_range(1..=3),
            87..=92 => {
                if self.compact_rev > 1 {
                    self.rng.random_range(1..self.compact_rev)
                } else {
                    1
                }
            }
            93..=96 => self.compact_rev.max(1),
            _ => -self.rng.random_range(1..=3),
        }
    }
    fn filter_rev(&mut self) -> i64 {
        if self.coin(0.12) {
            self.rng.random_range(1..=self.cur_rev.max(1) + 1)
        } else {
            0
        }
    }
    fn range(&mut self, in_txn: bool) -> RangeReq {
        let sel = self.sel(2);
        let limit = if self.coin(0.5) {
            0
        } else {
            [1, 1, 2, 3, 5, 10, -1][self.rng.random_range(0..7)]
        };
        let revision = if in_txn && self.coin(0.85) {
            0
        } else {
            self.read_rev()
        };
        let sort = if self.coin(0.5) {
            None
        } else {
            let t = [
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ][self.rng.random_range(0..5)];
            let o = [SortOrder::None, SortOrder::Ascend, SortOrder::Descend]
                [self.rng.random_range(0..3)];
            Some((t, o))
        };
        RangeReq {
            sel,
            limit,
            revision,
            sort,
            keys_only: self.coin(0.2),
            count_only: self.coin(0.12),
            serializable: self.coin(if in_txn { 0.1 } else { 0.3 }),
            min_mod: self.filter_rev(),
            max_mod: self.filter_rev(),
            min_create: self.filter_rev(),
            max_create: self.filter_rev(),
        }
    }
    fn put(&mut self, in_txn: bool) -> PutReq {
        let key = self.key();
        let p_ignore = if in_txn { 0.03 } else { 0.08 };
        let ignore_value = self.coin(p_ignore);
        let value = if ignore_value && self.coin(0.85) {
            Vec::new()
        } else {
            self.value()
        };
        let ignore_lease = self.coin(p_ignore);
        let lease = if self.coin(0.03) {
            self.rng.random_range(1..=0x7fff_ffff_i64)
        } else {
            0
        };
        PutReq {
            key,
            value,
            prev_kv: self.coin(0.4),
            ignore_value,
            ignore_lease,
            lease,
        }
    }
    fn del(&mut self, in_txn: bool) -> DelReq {
        // Mostly single keys: wide deletes would keep the store nearly empty.
        let sel = if self.coin(if in_txn { 0.7 } else { 0.55 }) {
            Sel::Key(self.key())
        } else {
            self.sel(if in_txn { 0 } else { 2 })
        };
        DelReq {
            sel,
            prev_kv: self.coin(0.5),
        }
    }
    fn rev_operand(&mut self) -> i64 {
        match self.pct() {
            0..=19 => 0,
            _ => self.rng.random_range(1..=self.cur_rev.max(1) + 2),
        }
    }
    fn cmp(&mut self) -> CmpReq {
        let key = if self.coin(0.02) {
            Vec::new()
        } else {
            self.key()
        };
        let range = match self.pct() {
            0..=74 => CmpRange::None,
            75..=84 => CmpRange::Prefix,
            _ => {
                let e = self.range_end(&key);
                CmpRange::End(e)
            }
        };
        let op = [
            CompareOp::Equal,
            CompareOp::Greater,
            CompareOp::Less,
            CompareOp::NotEqual,
        ][self.rng.random_range(0..4)];
        let target = match self.rng.random_range(0..5) {
            0 => CmpTarget::Version(self.rng.random_range(0..=4)),
            1 => CmpTarget::Create(self.rev_operand()),
            2 => CmpTarget::Mod(self.rev_operand()),
            3 => CmpTarget::Value(self.value()),
            _ => CmpTarget::Lease(if self.coin(0.7) { 0 } else { 0x1234 }),
        };
        CmpReq {
            key,
            range,
            op,
            target,
        }
    }
    fn txn_op(&mut self, depth: u32) -> TOp {
        match self.pct() {
            0..=34 => TOp::Put(self.put(true)),
            35..=69 => TOp::Get(self.range(true)),
            70..=89 => TOp::Del(self.del(true)),
            _ if depth < 2 => TOp::Txn(self.txn(depth + 1)),
            _ => TOp::Get(self.range(true)),
        }
    }
    fn txn(&mut self, depth: u32) -> TxnReq {
        let ncmp = self.rng.random_range(0..=3);
        let nsucc = self.rng.random_range(0..=4);
        let nfail = self.rng.random_range(0..=3);
        TxnReq {
            cmps: (0..ncmp).map(|_| self.cmp()).collect(),
            success: (0..nsucc).map(|_| self.txn_op(depth)).collect(),
            failure: (0..nfail).map(|_| self.txn_op(depth)).collect(),
        }
    }
    fn compact(&mut self) -> Op {
        let cur = self.cur_rev.max(1);
        let rev = match self.pct() {
            0..=44 if cur > self.compact_rev => self.rng.random_range(self.compact_rev + 1..=cur),
            0..=59 => cur,
            60..=74 => self.compact_rev,
            75..=89 => cur + self.rng.random_range(1..=3),
            _ => self.rng.random_range(1..=self.compact_rev.max(1)),
        };
        Op::Compact {
            rev,
            physical: self.coin(0.5),
        }
    }
    fn bad_request(&mut self) -> Op {
        match self.rng.random_range(0..14) {
            0 => Op::Put(PutReq {
                key: Vec::new(),
                ..self.put(false)
            }),
            1 => Op::Range(RangeReq::plain(Sel::Key(Vec::new()))),
            2 => Op::Range(RangeReq::plain(Sel::Range(Vec::new(), b"z".to_vec()))),
            3 => Op::Del(DelReq {
                sel: Sel::Key(Vec::new()),
                prev_kv: false,
            }),
            4 => Op::Put(PutReq {
                ignore_value: true,
                value: b"provided".to_vec(),
                ..self.put(false)
            }),
            5 => Op::Put(PutReq {
                ignore_lease: true,
                lease: 0x4242,
                ..self.put(false)
            }),
            6 => Op::Put(PutReq {
                lease: self.rng.random_range(1..=i64::MAX),
                ..self.put(false)
            }),
            7 => {
                let mut t = self.txn(0);
                let mut c = self.cmp();
                c.key = Vec::new();
                t.cmps.push(c);
                Op::Txn(t)
            }
            8 => {
                let mut t = self.txn(0);
                let mut p = self.put(true);
                p.key = Vec::new();
                t.success.push(TOp::Put(p));
                Op::Txn(t)
            }
            9 => {
                // Too many (or exactly the maximum number of) operations in
                // one branch or in the compares.
                let n = MAX_TXN_OPS + [0, 1, 1, 5][self.rng.random_range(0..4)];
                let mut t = TxnReq::default();
                match self.rng.random_range(0..3) {
                    0 => {
                        t.success = (0..n)
                            .map(|i| TOp::Get(RangeReq::plain(Sel::Key(KEYS[i % 30].to_vec()))))
                            .collect()
                    }
                    1 => {
                        t.failure = (0..n)
                            .map(|i| TOp::Get(RangeReq::plain(Sel::Key(KEYS[i % 30].to_vec()))))
                            .collect()
                    }
                    _ => {
                        t.cmps = (0..n)
                            .map(|i| CmpReq {
                                key: KEYS[i % 30].to_vec(),
                                range: CmpRange::None,
                                op: CompareOp::Greater,
                                target: CmpTarget::Version(-1),
                            })
                            .collect()
                    }
                }
                Op::Txn(t)
            }
            10 => {
                // The same key put twice (maybe in a nested txn).
                let p = self.put(true);
                let mut t = self.txn(0);
                if self.coin(0.5) {
                    t.success.push(TOp::Put(p.clone()));
                    t.success.push(TOp::Put(p));
                } else {
                    t.success.push(TOp::Put(p.clone()));
                    t.success.push(TOp::Txn(TxnReq {
                        cmps: vec![],
                        success: vec![TOp::Put(p.clone())],
                        failure: vec![TOp::Put(p)],
                    }));
                }
                Op::Txn(t)
            }
            11 => {
                // A put and a delete range covering it.
                let p = self.put(true);
                let d = DelReq {
                    sel: if self.coin(0.5) {
                        Sel::Key(p.key.clone())
                    } else {
                        Sel::FromKey(p.key.clone())
                    },
                    prev_kv: false,
                };
                let t = TxnReq {
                    cmps: vec![],
                    success: vec![TOp::Del(d), TOp::Put(p)],
                    failure: vec![],
                };
                Op::Txn(t)
            }
            12 => Op::Range(RangeReq {
                revision: self.cur_rev.max(1) + self.rng.random_range(1..=100),
                ..RangeReq::plain(self.sel(0))
            }),
            _ => Op::Compact {
                rev: self.cur_rev.max(1) + self.rng.random_range(1..=100),
                physical: self.coin(0.5),
            },
        }
    }
    fn op(&mut self) -> Op {
        let mut op = match self.rng.random_range(0..1000) {
            0..=299 => Op::Put(self.put(false)),
            300..=549 => Op::Range(self.range(false)),
            550..=619 => Op::Del(self.del(false)),
            620..=899 => Op::Txn(self.txn(0)),
            900..=929 => self.compact(),
            930..=979 => self.bad_request(),
            980..=989 => Op::HashKv {
                rev: if self.coin(0.3) { 0 } else { self.read_rev() },
            },
            _ => Op::Range(RangeReq::plain(Sel::All)),
        };
        if let Op::Txn(t) = &mut op {
            t.avoid_etcd_ignore_panic(&[]);
        }
        op
    }
}

// ---------------------------------------------------------------------------
// Execution and normalisation
// ---------------------------------------------------------------------------

/// One side's answer to one request, normalised for comparison.
struct Outcome {
    text: String,
    /// Top-level header revision on success.
    rev: Option<i64>,
}

fn kv(kv: &KeyValue) -> String {
    format!(
        "{{{}={} create={} mod={} ver={} lease={}}}",
        esc(kv.key()),
        esc(kv.value()),
        kv.create_revision(),
        kv.mod_revision(),
        kv.version(),
        kv.lease()
    )
}

fn kvs(list: &[KeyValue]) -> String {
    let mut s = String::from("[");
    for (i, k) in list.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&kv(k));
    }
    s.push(']');
    s
}

/// Go's `sort.Sort`, which etcd 3.4 sorts range results with, is an
/// insertion sort -- stable, so ties stay in ascending key order for ASCEND
/// and DESCEND alike -- for up to 12 elements, and pdqsort (go >= 1.19;
/// quicksort before) above that, which leaves ties in an order that depends
/// on the Go release etcd was built with. Above this size the order of kvs
/// with equal sort values is therefore not compared.
const GO_INSERTION_SORT_MAX: i64 = 12;

/// The sort target whose ties may come out in an unspecified order, if any.
fn unordered_ties(req: &RangeReq, count: i64) -> Option<SortTarget> {
    let (target, order) = req.sort?;
    if target == SortTarget::Key {
        return None; // keys are unique
    }
    let filtered =
        req.min_mod != 0 || req.max_mod != 0 || req.min_create != 0 || req.max_create != 0;
    // etcd 3.4 quirk: with order NONE (and no filters) the limit is applied
    // while reading -- limit+1 keys in key order -- and only those are sorted.
    let sorted_len = if order == SortOrder::None && req.limit > 0 && !filtered {
        count.min(req.limit + 1)
    } else {
        count // an upper bound: filters may remove some
    };
    (sorted_len > GO_INSERTION_SORT_MAX).then_some(target)
}

/// Range response text. Where tie order is unspecified (see
/// [`unordered_ties`]), kvs are grouped by sort value in the order returned,
/// each group's members listed by key; a last group cut by the limit
/// (`more`) is compared by size only, as which of the tied kvs made it
/// depends on the tie order too.
fn range_text(
    h: Option<&ResponseHeader>,
    count: i64,
    more: bool,
    list: &[KeyValue],
    req: &RangeReq,
) -> String {
    let head = format!("range {} count={} more={}", hdr(h), count, more);
    let Some(target) = unordered_ties(req, count) else {
        return format!("{head} kvs={}", kvs(list));
    };
    let sort_value = |kv: &KeyValue| -> Vec<u8> {
        match target {
            SortTarget::Version => kv.version().to_string().into_bytes(),
            SortTarget::Create => kv.create_revision().to_string().into_bytes(),
            SortTarget::Mod => kv.mod_revision().to_string().into_bytes(),
            _ => kv.value().to_vec(),
        }
    };
    let mut groups: Vec<(Vec<u8>, Vec<&KeyValue>)> = Vec::new();
    for k in list {
        let v = sort_value(k);
        match groups.last_mut() {
            Some((gv, members)) if *gv == v => members.push(k),
            _ => groups.push((v, vec![k])),
        }
    }
    let mut s = format!("{head} kvs(ties by {target:?} unordered)=[");
    let n = groups.len();
    for (i, (v, mut members)) in groups.into_iter().enumerate() {
        if i > 0 {
            s.push_str(" | ");
        }
        if i + 1 == n && more {
            let _ = write!(
                s,
                "{} kv(s) with {:?}={} cut by the limit",
                members.len(),
                target,
                esc(&v)
            );
        } else {
            members.sort_by(|a, b| a.key().cmp(b.key()));
            let owned: Vec<KeyValue> = members.into_iter().cloned().collect();
            s.push_str(&kvs(&owned));
        }
    }
    s.push(']');
    s
}

fn txn_resp(r: &TxnResponse, req: &TxnReq) -> String {
    let mut s = format!(
        "txn {} succeeded={} responses=[",
        hdr(r.header()),
        r.succeeded()
    );
    let branch = if r.succeeded() {
        &req.success
    } else {
        &req.failure
    };
    let ops = r.op_responses();
    if ops.len() != branch.len() {
        let _ = write!(s, "<{} responses to {} requests> ", ops.len(), branch.len());
    }
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let op_req = branch.get(i);
        match op {
            TxnOpResponse::Put(p) => {
                let _ = write!(
                    s,
                    "put {} prev_kv={}",
                    hdr(p.header()),
                    p.prev_key().map(kv).unwrap_or_else(|| "none".into())
                );
            }
            TxnOpResponse::Get(g) => match op_req {
                Some(TOp::Get(q)) => {
                    s.push_str(&range_text(g.header(), g.count(), g.more(), g.kvs(), q))
                }
                _ => {
                    let _ = write!(
                        s,
                        "<unexpected> range {} count={} more={} kvs={}",
                        hdr(g.header()),
                        g.count(),
                        g.more(),
                        kvs(g.kvs())
                    );
                }
            },
            TxnOpResponse::Delete(d) => {
                let _ = write!(
                    s,
                    "delete {} deleted={} prev_kvs={}",
                    hdr(d.header()),
                    d.deleted(),
                    kvs(d.prev_kvs())
                );
            }
            TxnOpResponse::Txn(t) => match op_req {
                Some(TOp::Txn(q)) => s.push_str(&txn_resp(t, q)),
                _ => {
                    let _ = write!(s, "<unexpected> {}", txn_resp(t, &TxnReq::default()));
                }
            },
        }
        // A response kind that does not match its request is a difference
        // in itself; make it visible.
        match (op, op_req) {
            (TxnOpResponse::Put(_), Some(TOp::Put(_)))
            | (TxnOpResponse::Get(_), Some(TOp::Get(_)))
            | (TxnOpResponse::Delete(_), Some(TOp::Del(_)))
            | (TxnOpResponse::Txn(_), Some(TOp::Txn(_))) => {}
            _ => s.push_str(" <response kind does not match the request>"),
        }
    }
    s.push(']');
    s
}

fn err(e: Error) -> Outcome {
    Outcome {
        text: err_text(e),
        rev: None,
    }
}

async fn exec(c: &mut Client, op: &Op) -> Outcome {
    let fut = async {
        match op {
            Op::Put(p) => match c
                .put(p.key.clone(), p.value.clone(), Some(p.options()))
                .await
            {
                Ok(r) => Outcome {
                    text: format!(
                        "put {} prev_kv={}",
                        hdr(r.header()),
                        r.prev_key().map(kv).unwrap_or_else(|| "none".into())
                    ),
                    rev: r.header().map(|h| h.revision()),
                },
                Err(e) => err(e),
            },
            Op::Range(q) => match c.get(q.sel.key(), Some(q.options())).await {
                Ok(r) => Outcome {
                    text: range_text(r.header(), r.count(), r.more(), r.kvs(), q),
                    rev: r.header().map(|h| h.revision()),
                },
                Err(e) => err(e),
            },
            Op::Del(d) => match c.delete(d.sel.key(), Some(d.options())).await {
                Ok(r) => Outcome {
                    text: format!(
                        "delete {} deleted={} prev_kvs={}",
                        hdr(r.header()),
                        r.deleted(),
                        kvs(r.prev_kvs())
                    ),
                    rev: r.header().map(|h| h.revision()),
                },
                Err(e) => err(e),
            },
            Op::Txn(t) => match c.txn(t.build()).await {
                Ok(r) => Outcome {
                    // etcd-client's op_responses() panics on a ResponseOp without
                    // a response; report that as this side's answer.
                    text: std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        txn_resp(&r, t)
                    }))
                    .unwrap_or_else(|_| {
                        "MALFORMED txn response (a ResponseOp without a response)".into()
                    }),
                    rev: r.header().map(|h| h.revision()),
                },
                Err(e) => err(e),
            },
            Op::Compact { rev, physical } => {
                let o = if *physical {
                    CompactionOptions::new().with_physical()
                } else {
                    CompactionOptions::new()
                };
                match c.compact(*rev, Some(o)).await {
                    Ok(r) => Outcome {
                        text: format!("compact {}", hdr(r.header())),
                        rev: r.header().map(|h| h.revision()),
                    },
                    Err(e) => err(e),
                }
            }
            Op::HashKv { rev } => match c.hash_kv(*rev).await {
                Ok(r) => Outcome {
                    text: format!(
                        "hashkv {} hash={} compact_revision={}",
                        hdr(r.header()),
                        r.hash(),
                        r.compact_version()
                    ),
                    rev: r.header().map(|h| h.revision()),
                },
                Err(e) => err(e),
            },
        }
    };
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(o) => o,
        Err(_) => Outcome {
            text: format!("TIMEOUT: no answer within {OP_TIMEOUT:?}"),
            rev: None,
        },
    }
}

// ---------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_random_kv_operations_get_the_same_responses_from_synod_as_from_etcd() {
    let seed: u64 = env_parse("DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let n_ops: usize = env_parse("DIFF_OPS").unwrap_or(DEFAULT_OPS).max(MIN_OPS);
    let (cand_flavor, cand_name) = candidate_from_env();
    let verbose = verbose_from_env();
    println!(
        "differential_kv: seed={seed} ({seed:#x}) ops={n_ops} reference=etcd candidate={cand_name} \
         (replay with DIFF_SEED={seed})"
    );

    let reference = Server::start(Flavor::Etcd);
    let candidate = Server::start(cand_flavor);
    let mut ref_client = client(&reference).await;
    let mut cand_client = client(&candidate).await;

    let mut gen = Gen {
        rng: StdRng::seed_from_u64(seed),
        cur_rev: 1,
        compact_rev: 0,
    };
    let mut mismatches: Vec<Mismatch> = Vec::new();
    // kind -> (ok on reference, error on reference)
    let mut stats: std::collections::BTreeMap<&'static str, (usize, usize)> = Default::default();
    let mut ref_errors: std::collections::BTreeMap<String, usize> = Default::default();

    let mut executed = 0;
    for index in 0..=n_ops {
        // The last "operation" is a full dump of the key space.
        let op = if index == n_ops {
            Op::Range(RangeReq::plain(Sel::All))
        } else {
            gen.op()
        };
        let (r, c) = tokio::join!(exec(&mut ref_client, &op), exec(&mut cand_client, &op));
        executed += 1;
        if verbose {
            println!("#{index} {op}\n    => {}", r.text);
        }

        let entry = stats.entry(op.kind()).or_default();
        match r.rev {
            Some(rev) => {
                entry.0 += 1;
                gen.cur_rev = gen.cur_rev.max(rev);
                if let Op::Compact { rev, .. } = op {
                    gen.compact_rev = rev;
                }
            }
            None => {
                entry.1 += 1;
                *ref_errors.entry(r.text.clone()).or_default() += 1;
            }
        }

        if r.text != c.text {
            mismatches.push(Mismatch {
                index,
                request: op.to_string(),
                reference: r.text,
                candidate: c.text,
            });
            if mismatches.len() >= MAX_MISMATCHES {
                break;
            }
        }
    }

    println!("differential_kv: executed {executed} operations; per kind (ok/error on etcd):");
    for (kind, (ok, errs)) in &stats {
        println!("  {kind:8} ok={ok:5} error={errs:5}");
    }
    println!("differential_kv: errors returned by etcd:");
    for (e, n) in &ref_errors {
        println!("  {n:5} × {e}");
    }
    println!(
        "differential_kv: final revision {} compacted at {}",
        gen.cur_rev, gen.compact_rev
    );

    if !mismatches.is_empty() {
        let mut report = format!(
            "{} mismatch(es) between etcd (reference) and {cand_name} (candidate); \
             seed={seed} (replay with DIFF_SEED={seed}), stopped after {executed} of {} operations\n",
            mismatches.len(),
            n_ops + 1
        );
        for m in &mismatches {
            m.write_to(&mut report, "op", cand_name);
        }
        // (The harness prints the tail of both server logs as they drop.)
        panic!("{report}");
    }
    drop(ref_client);
    drop(cand_client);
    drop(candidate);
    drop(reference);
}
