//! The events a `WriteBatch` reports must be exactly what the store later replays with
//! `ReadView::events_between(.., with_prev_kv = true)`, for random batches of many requests
//! (puts with and without leases, delete-ranges, txns touching a key several times, lease
//! revocations, rejected requests) — without `prev_kv` when the batch was told to leave it
//! out.

mod common;

use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use synod_proto::etcdserverpb::{
    compare, request_op, Compare, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
};
use synod_proto::mvccpb::Event;
use synod_proto::peerpb::{internal_request::Request, InternalRequest};

const KEYS: &[&[u8]] = &[b"a", b"a\x00", b"a\x00b", b"b", b"ba", b"c", b"\x00", b""];
/// Leases 7 and 9 are granted; 11 never is.
const LEASES: &[i64] = &[0, 0, 7, 9, 11];

fn key(rng: &mut StdRng) -> Vec<u8> {
    KEYS[rng.random_range(0..KEYS.len())].to_vec()
}

fn range_end(rng: &mut StdRng, start: &[u8]) -> Vec<u8> {
    match rng.random_range(0..4) {
        0 => Vec::new(),
        1 => vec![0],
        _ => {
            let mut end = start.to_vec();
            end.push(0xff);
            end
        }
    }
}

fn put(rng: &mut StdRng, step: usize) -> PutRequest {
    PutRequest {
        key: key(rng),
        value: format!("v{step}").into_bytes(),
        lease: LEASES[rng.random_range(0..LEASES.len())],
        prev_kv: rng.random_bool(0.3),
        ignore_value: rng.random_bool(0.1),
        ignore_lease: rng.random_bool(0.1),
    }
}

fn delete(rng: &mut StdRng) -> DeleteRangeRequest {
    let k = key(rng);
    DeleteRangeRequest {
        range_end: range_end(rng, &k),
        key: k,
        prev_kv: rng.random_bool(0.3),
    }
}

fn txn(rng: &mut StdRng, step: usize, depth: u32) -> TxnRequest {
    let mut ops = || {
        (0..rng.random_range(0..5))
            .map(|_| {
                let request = match rng.random_range(0..6) {
                    0..=2 => request_op::Request::RequestPut(PutRequest {
                        ignore_value: false,
                        ignore_lease: false,
                        ..put(rng, step)
                    }),
                    3 | 4 => request_op::Request::RequestDeleteRange(delete(rng)),
                    _ if depth < 2 => request_op::Request::RequestTxn(txn(rng, step, depth + 1)),
                    _ => request_op::Request::RequestDeleteRange(delete(rng)),
                };
                RequestOp {
                    request: Some(request),
                }
            })
            .collect::<Vec<_>>()
    };
    let success = ops();
    let failure = ops();
    let compare = if rng.random_bool(0.5) {
        vec![Compare {
            key: key(rng),
            result: compare::CompareResult::Greater as i32,
            target: compare::CompareTarget::Version as i32,
            target_union: Some(compare::TargetUnion::Version(0)),
            range_end: Vec::new(),
        }]
    } else {
        Vec::new()
    };
    TxnRequest {
        compare,
        success,
        failure,
    }
}

#[test]
fn batch_events_match_the_replayed_log() {
    for seed in 0..6u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let h = Harness::new();
        {
            let mut batch = h.store.write().unwrap();
            batch.grant_lease(7, 60).unwrap();
            batch.grant_lease(9, 60).unwrap();
            batch.commit(false).unwrap();
        }
        // Each reported event, and whether its batch filled prev_kv.
        let mut reported: Vec<(Event, bool)> = Vec::new();
        let mut step = 0;
        for _ in 0..60 {
            let mut batch = h.store.write().unwrap();
            let with_prev = rng.random_bool(0.6);
            batch.set_prev_kv_in_events(with_prev);
            for _ in 0..rng.random_range(1..10) {
                step += 1;
                let result = match rng.random_range(0..10) {
                    0..=3 => batch
                        .apply_with_lease_table(&InternalRequest {
                            request: Some(Request::Put(put(&mut rng, step))),
                        })
                        .map(drop),
                    4 | 5 => batch
                        .apply_with_lease_table(&InternalRequest {
                            request: Some(Request::DeleteRange(delete(&mut rng))),
                        })
                        .map(drop),
                    6 | 7 => batch
                        .apply_with_lease_table(&InternalRequest {
                            request: Some(Request::Txn(txn(&mut rng, step, 0))),
                        })
                        .map(drop),
                    8 => batch
                        .revoke_lease_keys(LEASES[rng.random_range(2..LEASES.len())])
                        .map(drop),
                    _ => batch.set_meta("app/step", &step.to_be_bytes()),
                };
                if let Err(e) = result {
                    assert!(e.is_request_error(), "seed {seed} step {step}: {e}");
                }
                if rng.random_bool(0.2) {
                    reported.extend(batch.take_events().into_iter().map(|e| (e, with_prev)));
                }
            }
            reported.extend(batch.events().iter().cloned().map(|e| (e, with_prev)));
            batch.commit(false).unwrap();
        }
        let view = h.store.read().unwrap();
        let replayed = view
            .events_between(1, view.current_revision(), 0, true)
            .unwrap();
        assert!(replayed.len() > 100, "seed {seed}: too few events");
        assert_eq!(reported.len(), replayed.len(), "seed {seed}");
        for (i, ((r, with_prev), p)) in reported.iter().zip(&replayed).enumerate() {
            let mut want = p.clone();
            if !with_prev {
                want.prev_kv = None;
            }
            assert_eq!(r, &want, "seed {seed} event {i}");
        }
        let bare = view
            .events_between(1, view.current_revision(), 0, false)
            .unwrap();
        assert!(bare.iter().all(|e| e.prev_kv.is_none()));
        assert_eq!(bare.len(), replayed.len());
    }
}
