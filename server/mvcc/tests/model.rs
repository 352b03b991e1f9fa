//! Randomised comparison against a naive in-memory MVCC model: every read at every
//! readable revision, and the event log, must match after random puts, deletes, txns
//! and compactions.

mod common;

use std::collections::BTreeMap;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use synod_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use synod_proto::mvccpb::KeyValue;

#[derive(Default)]
struct Model {
    rev: i64,
    compact: Option<i64>,
    /// key -> versions (main revision, state after it).
    history: BTreeMap<Vec<u8>, Vec<(i64, Option<KeyValue>)>>,
    /// (main, type, key) for every change, with the put's key-value.
    log: Vec<(i64, i32, Vec<u8>, Option<KeyValue>)>,
}

enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>, Vec<u8>),
}

impl Model {
    fn at(&self, key: &[u8], rev: i64) -> Option<KeyValue> {
        self.history
            .get(key)?
            .iter()
            .rev()
            .find(|(r, _)| *r <= rev)
            .and_then(|(_, kv)| kv.clone())
    }

    fn in_range(key: &[u8], start: &[u8], end: &[u8]) -> bool {
        match end {
            [] => key == start,
            [0] => key >= start,
            end => key >= start && key < end,
        }
    }

    /// Applies ops as one request.
    fn apply(&mut self, ops: &[Op]) {
        let rev = self.rev + 1;
        let mut changed = false;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let cur = self.at(k, rev);
                    let kv = KeyValue {
                        key: k.clone(),
                        create_revision: cur.as_ref().map_or(rev, |c| c.create_revision),
                        mod_revision: rev,
                        version: cur.as_ref().map_or(1, |c| c.version + 1),
                        value: v.clone(),
                        lease: 0,
                    };
                    self.history
                        .entry(k.clone())
                        .or_default()
                        .push((rev, Some(kv.clone())));
                    self.log.push((rev, 0, k.clone(), Some(kv)));
                    changed = true;
                }
                Op::Delete(s, e) => {
                    let live: Vec<Vec<u8>> = self
                        .history
                        .keys()
                        .filter(|k| Self::in_range(k, s, e) && self.at(k, rev).is_some())
                        .cloned()
                        .collect();
                    for k in live {
                        self.history.entry(k.clone()).or_default().push((rev, None));
                        self.log.push((rev, 1, k, None));
                        changed = true;
                    }
                }
            }
        }
        if changed {
            self.rev = rev;
        }
    }
}

const KEYS: &[&[u8]] = &[
    b"", b"\x00", b"a", b"a\x00", b"a\x00b", b"ab", b"b", b"b\x00", b"c", b"zz",
];

fn random_key(rng: &mut StdRng) -> Vec<u8> {
    KEYS[rng.random_range(1..KEYS.len())].to_vec()
}

fn random_range(rng: &mut StdRng) -> (Vec<u8>, Vec<u8>) {
    match rng.random_range(0..4) {
        0 => (random_key(rng), Vec::new()),
        1 => (random_key(rng), vec![0]),
        2 => (vec![0], vec![0]),
        _ => {
            let a = KEYS[rng.random_range(0..KEYS.len())].to_vec();
            let b = KEYS[rng.random_range(1..KEYS.len())].to_vec();
            (a, b)
        }
    }
}

fn check_reads(h: &Harness, m: &Model, rng: &mut StdRng) {
    let view = h.store.read().unwrap();
    assert_eq!(view.current_revision(), m.rev.max(1));
    let first = m.compact.unwrap_or(1).max(1);
    for rev in first..=m.rev.max(1) {
        let (start, end) = random_range(rng);
        let limit = rng.random_range(0..4);
        let req = RangeRequest {
            key: start.clone(),
            range_end: end.clone(),
            revision: rev,
            limit,
            ..Default::default()
        };
        let got = view.range(&req).unwrap();
        let want: Vec<KeyValue> = m
            .history
            .keys()
            .filter(|k| Model::in_range(k, &start, &end))
            .filter_map(|k| m.at(k, rev))
            .collect();
        assert_eq!(
            got.count,
            want.len() as i64,
            "count at {rev} for {start:?}..{end:?}"
        );
        let n = if limit > 0 {
            want.len().min(limit as usize)
        } else {
            want.len()
        };
        assert_eq!(
            got.kvs,
            want[..n].to_vec(),
            "kvs at {rev} for {start:?}..{end:?} limit {limit}"
        );
        assert_eq!(got.more, n < want.len());
    }
    // Exactly what compaction must keep is on disk: every change after the compaction
    // revision, plus each key's newest version at or below it unless that is a deletion.
    let c = m.compact.unwrap_or(0);
    let mut expected_changes = 0u64;
    let mut live = 0u64;
    // Keys the index still knows: live ones, and deleted ones with history after `c`.
    let mut indexed = 0u64;
    for versions in m.history.values() {
        let after = versions.iter().filter(|(r, _)| *r > c).count() as u64;
        expected_changes += after;
        let kept = matches!(
            versions.iter().rev().find(|(r, _)| *r <= c),
            Some((_, Some(_)))
        );
        if kept {
            expected_changes += 1;
        }
        if matches!(versions.last(), Some((_, Some(_)))) {
            live += 1;
        }
        if after > 0 || kept {
            indexed += 1;
        }
    }
    let stats = view.stats().unwrap();
    assert_eq!(stats.live_keys, live);
    assert_eq!(stats.index_entries, indexed, "{stats:?}");
    assert_eq!(stats.revision_entries, expected_changes, "{stats:?}");
    assert_eq!(stats.history_entries, expected_changes - live, "{stats:?}");
    // Events after the compaction revision match the model's log.
    let from = m.compact.map_or(1, |c| c + 1);
    let events = view.events_between(from, i64::MAX, 0, true).unwrap();
    let got: Vec<(i64, i32, Vec<u8>)> = events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (kv.mod_revision, e.r#type, kv.key.clone())
        })
        .collect();
    let want: Vec<_> = m.log.iter().filter(|(r, _, _, _)| *r >= from).collect();
    let want_summary: Vec<(i64, i32, Vec<u8>)> = want
        .iter()
        .map(|(r, t, k, _)| (*r, *t, k.clone()))
        .collect();
    assert_eq!(got, want_summary);
    for (e, (_, _, _, logged)) in events.iter().zip(&want) {
        let kv = e.kv.as_ref().unwrap();
        if e.r#type == 0 {
            assert_eq!(Some(kv), logged.as_ref());
        }
        let is_create = e.r#type == 0 && kv.create_revision == kv.mod_revision;
        if !is_create {
            assert_eq!(
                e.prev_kv,
                m.at(&kv.key, kv.mod_revision - 1),
                "prev_kv of {e:?}"
            );
        }
    }
}

#[test]
fn random_operations_match_the_model() {
    for seed in 0..8u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let h = Harness::new();
        let mut m = Model {
            rev: 1,
            ..Default::default()
        };
        for step in 0..150 {
            match rng.random_range(0..10) {
                0..=4 => {
                    let (k, v) = (random_key(&mut rng), format!("v{step}").into_bytes());
                    h.try_put(PutRequest {
                        key: k.clone(),
                        value: v.clone(),
                        ..Default::default()
                    })
                    .unwrap();
                    m.apply(&[Op::Put(k, v)]);
                }
                5 | 6 => {
                    let (s, e) = random_range(&mut rng);
                    h.try_delete(DeleteRangeRequest {
                        key: s.clone(),
                        range_end: e.clone(),
                        prev_kv: false,
                    })
                    .unwrap();
                    m.apply(&[Op::Delete(s, e)]);
                }
                7 | 8 => {
                    let mut ops = Vec::new();
                    let mut req_ops: Vec<RequestOp> = Vec::new();
                    for i in 0..rng.random_range(0..5) {
                        if rng.random_bool(0.6) {
                            let (k, v) =
                                (random_key(&mut rng), format!("t{step}.{i}").into_bytes());
                            req_ops.push(put_op_req(PutRequest {
                                key: k.clone(),
                                value: v.clone(),
                                ..Default::default()
                            }));
                            ops.push(Op::Put(k, v));
                        } else {
                            let (s, e) = random_range(&mut rng);
                            req_ops.push(RequestOp {
                                request: Some(synod_proto::etcdserverpb::request_op::Request::RequestDeleteRange(
                                    DeleteRangeRequest { key: s.clone(), range_end: e.clone(), prev_kv: false },
                                )),
                            });
                            ops.push(Op::Delete(s, e));
                        }
                    }
                    let resp = h
                        .txn(TxnRequest {
                            compare: vec![],
                            success: req_ops,
                            failure: vec![],
                        })
                        .unwrap();
                    m.apply(&ops);
                    assert_eq!(hdr_rev(&resp), m.rev);
                }
                _ => {
                    let lo = m.compact.map_or(0, |c| c + 1);
                    if lo <= m.rev {
                        let c = rng.random_range(lo..=m.rev);
                        h.compact(c).unwrap();
                        m.compact = Some(c);
                    }
                }
            }
            assert_eq!(h.rev(), m.rev, "seed {seed} step {step}");
            if step % 10 == 0 {
                check_reads(&h, &m, &mut rng);
            }
        }
        check_reads(&h, &m, &mut rng);
        // And the same after a snapshot round trip.
        let other = Harness::new();
        other
            .store
            .restore_from_bytes(&h.store.snapshot_bytes().unwrap())
            .unwrap();
        check_reads(&other, &m, &mut rng);
    }
}
