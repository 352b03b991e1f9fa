//! Micro-benchmarks of the two hot paths of `synod-mvcc`, called the way the server calls them.
//!
//! * `apply/*`: what `raft::state_machine::apply_batch` does for one batch of committed
//!   entries: open a [`WriteBatch`] (one redb write transaction), `apply_with_lease_table`
//!   every request, record the applied log id in `meta`, take the watch events, and commit
//!   without fsync (`commit(false)`: the server makes the store durable only every 30 s, the
//!   Raft log being the write-ahead log). Batches of 1, 16 and 128 puts: a lone client, and
//!   the larger groups of committed entries openraft hands over under load. The cost of one
//!   put is the slope between them; the cost of batch 1 is mostly the per-transaction
//!   overhead (begin, opening the tables, commit).
//!   Puts overwrite random keys of a 10k-key store (each moves the old version to history);
//!   the store is compacted every so often outside the timing, as auto-compaction would, so
//!   the store stays the same size however long the benchmark runs.
//!   `put_batch_adjacent_keys/128` writes 128 consecutive keys instead of random ones.
//!   `txn/*` are etcd's compare-and-swap shapes, `delete_range/*` deletes 1 or 16 live keys,
//!   and `compaction/history_10k` is one compaction request removing 10k superseded
//!   versions (compaction runs inside the apply path, so it delays every write queued behind).
//! * `range/*`: what `api::kv::range` does once the read barrier is passed: open a
//!   [`ReadView`] (a redb read transaction, as `Node::read` does for every request) and call
//!   [`ReadView::range`]. Results of 1, 10, 100 and 1000 keys from stores of 10k and 100k
//!   keys: the cost should follow the result size, not the store size. `read/open_view` is
//!   the fixed part alone. `range_old_rev/*` reads at a revision before the last 10% of the
//!   keys were overwritten (one step back along each overwritten key's chain). `limit_10_of_10000`
//!   and `count_only_10000` show what etcd's `count` costs when the range is large.
//!
//! Keys are 8 bytes, values 256 bytes (etcd's `benchmark put` defaults are 8 and 8; 256 is a
//! more typical value for configuration and service-discovery data).

use std::cell::OnceCell;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use synod_mvcc::{MvccStore, ReadView, WriteBatch};
use synod_proto::etcdserverpb::{
    compare, request_op, CompactionRequest, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, TxnRequest,
};
use synod_proto::peerpb::{internal_request::Request, InternalRequest};
use tempfile::TempDir;

const VALUE_LEN: usize = 256;
/// Keys the apply benchmarks overwrite.
const APPLY_KEYS: u64 = 10_000;
/// Overwrites after which the apply benchmarks compact (outside the timing).
const COMPACT_EVERY: u64 = 50_000;
/// What the state machine stores under `raft/applied` (a postcard-encoded log id).
const APPLIED_LOG_ID: [u8; 16] = [7; 16];

/// The `i`-th key: 8 ASCII digits, so key order is index order.
fn key(i: u64) -> Vec<u8> {
    let k = format!("{i:08}").into_bytes();
    debug_assert_eq!(k.len(), 8);
    k
}

fn value(seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..VALUE_LEN).map(|_| rng.random()).collect()
}

fn put(key: Vec<u8>, value: Vec<u8>) -> InternalRequest {
    InternalRequest {
        request: Some(Request::Put(PutRequest {
            key,
            value,
            ..Default::default()
        })),
    }
}

/// One store in a temporary directory (removed on drop).
struct Store {
    store: MvccStore,
    _dir: TempDir,
}

impl Store {
    fn new() -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = MvccStore::open(&dir.path().join("mvcc.redb")).expect("open store");
        Store { store, _dir: dir }
    }

    /// A store holding keys `0..n`, written in batches of 1000 and synced.
    fn with_keys(n: u64) -> Store {
        let s = Store::new();
        let v = value(1);
        let mut i = 0;
        while i < n {
            let end = (i + 1000).min(n);
            let reqs: Vec<_> = (i..end).map(|k| put(key(k), v.clone())).collect();
            s.apply_batch(&reqs);
            i = end;
        }
        s.store.sync().expect("sync");
        s
    }

    /// What `apply_batch` in the server's state machine does with a batch of entries.
    fn apply_batch(&self, reqs: &[InternalRequest]) {
        let mut batch: WriteBatch = self.store.write().expect("write batch");
        for r in reqs {
            black_box(batch.apply_with_lease_table(r).expect("apply"));
        }
        batch
            .set_meta("raft/applied", &APPLIED_LOG_ID)
            .expect("set applied");
        black_box(batch.take_events());
        batch.commit(false).expect("commit");
    }

    fn revision(&self) -> i64 {
        self.store.read().expect("read").current_revision()
    }

    /// Drops all history (what auto-compaction at the current revision does).
    fn compact(&self) {
        let view = self.store.read().expect("read");
        let revision = view.current_revision();
        if revision <= view.compact_revision() {
            return;
        }
        drop(view);
        self.apply_batch(&[InternalRequest {
            request: Some(Request::Compaction(CompactionRequest {
                revision,
                physical: false,
            })),
        }]);
    }
}

/// Runs `make` + `apply_batch` `iters` times, timing only `apply_batch`, and compacts the
/// store (untimed) every [`COMPACT_EVERY`] changes.
fn timed_batches(
    s: &Store,
    iters: u64,
    changes_per_batch: u64,
    changed: &mut u64,
    mut make: impl FnMut() -> Vec<InternalRequest>,
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let reqs = make();
        let start = Instant::now();
        s.apply_batch(&reqs);
        total += start.elapsed();
        *changed += changes_per_batch;
        if *changed >= COMPACT_EVERY {
            s.compact();
            *changed = 0;
        }
    }
    total
}

fn apply_benches(c: &mut Criterion) {
    let s = Store::with_keys(APPLY_KEYS);
    let v = value(2);
    let mut rng = StdRng::seed_from_u64(3);
    let mut changed = 0u64;
    let mut group = c.benchmark_group("apply");

    for n in [1u64, 16, 128] {
        group.bench_function(format!("put_batch/{n}"), |b| {
            b.iter_custom(|iters| {
                timed_batches(&s, iters, n, &mut changed, || {
                    (0..n)
                        .map(|_| put(key(rng.random_range(0..APPLY_KEYS)), v.clone()))
                        .collect()
                })
            })
        });
    }

    // The same 128 puts on adjacent keys: they dirty a handful of B-tree pages instead of
    // one per put, which shows how much of a put's cost is copying and writing pages.
    group.bench_function("put_batch_adjacent_keys/128", |b| {
        b.iter_custom(|iters| {
            timed_batches(&s, iters, 128, &mut changed, || {
                let first = rng.random_range(0..APPLY_KEYS - 128);
                (first..first + 128)
                    .map(|k| put(key(k), v.clone()))
                    .collect()
            })
        })
    });

    // A compare-and-swap (etcd's STM / lock recipes): one version compare, one put.
    // `compare4_put4` is the shape of a ZooKeeper-gateway write (guards on what it read, a
    // few records written), on existing keys so the store does not grow.
    for n in [1u64, 4] {
        group.bench_function(format!("txn/compare{n}_put{n}"), |b| {
            b.iter_custom(|iters| {
                timed_batches(&s, iters, n, &mut changed, || {
                    let keys: Vec<_> = (0..n)
                        .map(|_| key(rng.random_range(0..APPLY_KEYS)))
                        .collect();
                    vec![txn(&keys, &v)]
                })
            })
        });
    }

    // Delete-range of 1 and 16 live keys (put beforehand, untimed), one request per batch.
    for n in [1u64, 16] {
        group.bench_function(format!("delete_range/{n}"), |b| {
            let start = key(APPLY_KEYS);
            let end = key(APPLY_KEYS + n);
            let puts: Vec<_> = (APPLY_KEYS..APPLY_KEYS + n)
                .map(|k| put(key(k), v.clone()))
                .collect();
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    s.apply_batch(&puts);
                    let del = InternalRequest {
                        request: Some(Request::DeleteRange(DeleteRangeRequest {
                            key: start.clone(),
                            range_end: end.clone(),
                            prev_kv: false,
                        })),
                    };
                    let t = Instant::now();
                    s.apply_batch(std::slice::from_ref(&del));
                    total += t.elapsed();
                    changed += 2 * n;
                    if changed >= COMPACT_EVERY {
                        s.compact();
                        changed = 0;
                    }
                }
                total
            })
        });
    }
    group.finish();

    // Compaction runs inside the apply path (it blocks every write behind it): the cost of
    // compacting away 10k superseded versions (10k overwrites of 10k keys) in one request.
    let mut group = c.benchmark_group("apply");
    group.sample_size(10);
    group.bench_function("compaction/history_10k", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                s.compact();
                for chunk in 0..APPLY_KEYS / 1000 {
                    let reqs: Vec<_> = (chunk * 1000..(chunk + 1) * 1000)
                        .map(|k| put(key(k), v.clone()))
                        .collect();
                    s.apply_batch(&reqs);
                }
                let t = Instant::now();
                s.compact();
                total += t.elapsed();
            }
            changed = 0;
            total
        })
    });
    group.finish();
}

/// A txn whose compares (`version > 0` on each of `keys`, all live) succeed and whose success
/// branch puts each key.
fn txn(keys: &[Vec<u8>], v: &[u8]) -> InternalRequest {
    InternalRequest {
        request: Some(Request::Txn(TxnRequest {
            compare: keys
                .iter()
                .map(|k| Compare {
                    result: compare::CompareResult::Greater as i32,
                    target: compare::CompareTarget::Version as i32,
                    key: k.clone(),
                    range_end: Vec::new(),
                    target_union: Some(compare::TargetUnion::Version(0)),
                })
                .collect(),
            success: keys
                .iter()
                .map(|k| RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: k.clone(),
                        value: v.to_vec(),
                        ..Default::default()
                    })),
                })
                .collect(),
            failure: Vec::new(),
        })),
    }
}

/// A store for the range benchmarks: keys `0..n` written at revisions `2..=n+1`, then the
/// last 10% of them overwritten, so that reads at `old_rev` (before the overwrites) follow
/// those keys' chains one step back.
struct RangeStore {
    s: Store,
    n: u64,
    old_rev: i64,
}

impl RangeStore {
    fn build(n: u64) -> RangeStore {
        let s = Store::with_keys(n);
        let old_rev = s.revision();
        let v = value(4);
        let reqs: Vec<_> = (n - n / 10..n).map(|k| put(key(k), v.clone())).collect();
        for chunk in reqs.chunks(1000) {
            s.apply_batch(chunk);
        }
        s.store.sync().expect("sync");
        RangeStore { s, n, old_rev }
    }

    fn view(&self) -> ReadView {
        self.s.store.read().expect("read view")
    }
}

/// `[key(start), key(start + len))`, or the single key for `len == 0`.
fn range_req(start: u64, len: u64, revision: i64) -> RangeRequest {
    RangeRequest {
        key: key(start),
        range_end: if len == 0 {
            Vec::new()
        } else {
            key(start + len)
        },
        revision,
        serializable: true,
        ..Default::default()
    }
}

fn range_benches(c: &mut Criterion) {
    for (name, n) in [("store_10k", 10_000u64), ("store_100k", 100_000)] {
        // Built on first use, so that a filtered run builds only the stores it needs.
        let store: OnceCell<RangeStore> = OnceCell::new();
        let get = || store.get_or_init(|| RangeStore::build(n));
        let mut rng = StdRng::seed_from_u64(5);

        let mut group = c.benchmark_group("range");
        for len in [0u64, 10, 100, 1000] {
            let id = match len {
                0 => format!("{name}/single_key"),
                _ => format!("{name}/result_{len}"),
            };
            group.bench_function(id, |b| {
                let rs = get();
                b.iter_batched(
                    || range_req(rng.random_range(0..rs.n - len.max(1)), len, 0),
                    |req| {
                        let resp = rs.view().range(&req).expect("range");
                        debug_assert_eq!(resp.kvs.len() as u64, len.max(1));
                        resp
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        if n == 100_000 {
            // etcd's `count` covers the whole range, whatever the limit: a limit of 10 over a
            // range of 10000 keys still walks 10000 entries of `kv_index`.
            group.bench_function(format!("{name}/limit_10_of_10000"), |b| {
                let rs = get();
                b.iter_batched(
                    || RangeRequest {
                        limit: 10,
                        ..range_req(rng.random_range(0..rs.n - 10_000), 10_000, 0)
                    },
                    |req| rs.view().range(&req).expect("range"),
                    BatchSize::SmallInput,
                )
            });
            group.bench_function(format!("{name}/count_only_10000"), |b| {
                let rs = get();
                b.iter_batched(
                    || RangeRequest {
                        count_only: true,
                        ..range_req(rng.random_range(0..rs.n - 10_000), 10_000, 0)
                    },
                    |req| rs.view().range(&req).expect("range"),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();

        // At a revision before the overwrites of the last 10% of the keys, reading there.
        let mut group = c.benchmark_group("range_old_rev");
        for len in [0u64, 10, 100] {
            let id = match len {
                0 => format!("{name}/single_key"),
                _ => format!("{name}/result_{len}"),
            };
            group.bench_function(id, |b| {
                let rs = get();
                let lo = rs.n - rs.n / 10;
                b.iter_batched(
                    || range_req(rng.random_range(lo..rs.n - len.max(1)), len, rs.old_rev),
                    |req| {
                        let resp = rs.view().range(&req).expect("range");
                        debug_assert_eq!(resp.kvs.len() as u64, len.max(1));
                        resp
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();

        if n == 100_000 {
            c.bench_function("read/open_view", |b| {
                let rs = get();
                b.iter(|| rs.view())
            });
        }
    }
}

criterion_group!(benches, apply_benches, range_benches);
criterion_main!(benches);
