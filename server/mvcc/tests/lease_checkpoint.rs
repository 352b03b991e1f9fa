//! Lease checkpoints: the leader's remaining TTLs persisted per lease (etcd's `remainingTTL`),
//! without touching the revision, ignoring unknown ids, reset by a grant, kept by snapshots
//! and across reopening.

mod common;

use common::*;
use synod_mvcc::{LeaseRecord, MvccError, MvccStore};
use synod_proto::etcdserverpb::{
    LeaseCheckpoint, LeaseCheckpointRequest, LeaseCheckpointResponse, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest,
};
use synod_proto::peerpb::{internal_request, internal_response, InternalRequest};

fn grant(h: &Harness, id: i64, ttl: i64) {
    let mut batch = h.store.write().unwrap();
    batch.grant_lease(id, ttl).unwrap();
    batch.commit(false).unwrap();
}

fn cp(id: i64, remaining_ttl: i64) -> LeaseCheckpoint {
    LeaseCheckpoint { id, remaining_ttl }
}

/// Applies a checkpoint command the way the raft state machine does.
fn checkpoint(h: &Harness, checkpoints: Vec<LeaseCheckpoint>) -> LeaseCheckpointResponse {
    let mut batch = h.store.write().unwrap();
    let resp = batch
        .apply_with_lease_table(&InternalRequest {
            request: Some(internal_request::Request::LeaseCheckpoint(
                LeaseCheckpointRequest { checkpoints },
            )),
        })
        .unwrap();
    batch.commit(false).unwrap();
    match resp.response {
        Some(internal_response::Response::LeaseCheckpoint(r)) => r,
        other => panic!("unexpected response {other:?}"),
    }
}

fn record(h: &Harness, id: i64) -> Option<LeaseRecord> {
    h.store.read().unwrap().lease_record(id).unwrap()
}

fn rec(id: i64, ttl: i64, remaining_ttl: Option<i64>) -> LeaseRecord {
    LeaseRecord {
        id,
        ttl,
        remaining_ttl,
    }
}

#[test]
fn a_grant_starts_without_a_remaining_ttl() {
    let h = Harness::new();
    grant(&h, 5, 60);
    let r = record(&h, 5).unwrap();
    assert_eq!(r, rec(5, 60, None));
    assert_eq!(r.remaining_or_ttl(), 60);
    assert_eq!(record(&h, 6), None);
}

#[test]
fn a_checkpoint_persists_the_remaining_ttl_without_a_new_revision() {
    let h = Harness::new();
    h.put("a", "1");
    grant(&h, 5, 60);
    grant(&h, 6, 30);
    let rev = h.rev();
    let resp = checkpoint(&h, vec![cp(5, 42), cp(6, 7)]);
    assert_eq!(resp.header.unwrap().revision, rev);
    assert_eq!(h.rev(), rev);
    let view = h.store.read().unwrap();
    assert_eq!(
        view.lease_records().unwrap(),
        vec![rec(5, 60, Some(42)), rec(6, 30, Some(7))]
    );
    // The granted TTL is what the other accessors still report.
    assert_eq!(view.lease(5).unwrap(), Some(60));
    assert_eq!(view.leases().unwrap(), vec![(5, 60), (6, 30)]);
    drop(view);
    // A later checkpoint replaces the value; one <= 0 clears it (etcd's "unset").
    checkpoint(&h, vec![cp(5, 41), cp(6, 0)]);
    assert_eq!(record(&h, 5), Some(rec(5, 60, Some(41))));
    assert_eq!(record(&h, 6), Some(rec(6, 30, None)));
    checkpoint(&h, vec![cp(5, -3)]);
    assert_eq!(record(&h, 5).unwrap().remaining_or_ttl(), 60);
    // No event either: watchers see nothing of a checkpoint.
    let mut batch = h.store.write().unwrap();
    batch.checkpoint_leases(&[cp(5, 9)]).unwrap();
    assert!(batch.events().is_empty());
    assert_eq!(batch.current_revision(), rev);
    batch.commit(false).unwrap();
}

#[test]
fn unknown_ids_are_ignored_and_the_batch_stays_usable() {
    let h = Harness::new();
    grant(&h, 5, 60);
    let mut batch = h.store.write().unwrap();
    assert_eq!(
        batch
            .checkpoint_leases(&[cp(99, 10), cp(5, 20), cp(0, 1)])
            .unwrap(),
        1
    );
    // The batch goes on: a put attaching the lease is still checked against the table.
    batch
        .apply_with_lease_table(&InternalRequest {
            request: Some(internal_request::Request::Put(PutRequest {
                lease: 5,
                ..put_req("k", "v")
            })),
        })
        .unwrap();
    batch.commit(false).unwrap();
    let view = h.store.read().unwrap();
    assert_eq!(view.lease_records().unwrap(), vec![rec(5, 60, Some(20))]);
    assert_eq!(view.lease_record(99).unwrap(), None);
    drop(view);
    // A checkpoint of nothing but unknown ids is still answered.
    let rev = h.rev();
    assert_eq!(checkpoint(&h, vec![cp(1, 1)]).header.unwrap().revision, rev);
    assert_eq!(checkpoint(&h, Vec::new()).header.unwrap().revision, rev);
}

#[test]
fn a_revoked_lease_granted_again_starts_from_its_full_ttl() {
    let h = Harness::new();
    grant(&h, 5, 60);
    checkpoint(&h, vec![cp(5, 12)]);
    // Through `apply`, as the state machine does.
    let mut batch = h.store.write().unwrap();
    batch
        .apply_with_lease_table(&InternalRequest {
            request: Some(internal_request::Request::LeaseRevoke(LeaseRevokeRequest {
                id: 5,
            })),
        })
        .unwrap();
    batch.commit(false).unwrap();
    assert_eq!(record(&h, 5), None);
    // A checkpoint arriving after the revocation does not bring the lease back.
    checkpoint(&h, vec![cp(5, 11)]);
    assert_eq!(record(&h, 5), None);
    let mut batch = h.store.write().unwrap();
    batch
        .apply_with_lease_table(&InternalRequest {
            request: Some(internal_request::Request::LeaseGrant(LeaseGrantRequest {
                id: 5,
                ttl: 90,
            })),
        })
        .unwrap();
    batch.commit(false).unwrap();
    assert_eq!(record(&h, 5), Some(rec(5, 90, None)));
    // A duplicate grant is refused and leaves the checkpointed value alone.
    checkpoint(&h, vec![cp(5, 33)]);
    let mut batch = h.store.write().unwrap();
    assert_eq!(batch.grant_lease(5, 10), Err(MvccError::LeaseExists));
    batch.commit(false).unwrap();
    assert_eq!(record(&h, 5), Some(rec(5, 90, Some(33))));
}

#[test]
fn checkpoints_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = MvccStore::open(&path).unwrap();
        let mut batch = store.write().unwrap();
        batch.grant_lease(11, 100).unwrap();
        batch.grant_lease(12, 50).unwrap();
        batch.checkpoint_leases(&[cp(11, 77)]).unwrap();
        batch.commit(true).unwrap();
    }
    let store = MvccStore::open(&path).unwrap();
    assert_eq!(
        store.read().unwrap().lease_records().unwrap(),
        vec![rec(11, 100, Some(77)), rec(12, 50, None)]
    );
}

#[test]
fn snapshots_round_trip_the_remaining_ttl() {
    let src = Harness::new();
    grant(&src, 1, 10);
    grant(&src, 2, 20);
    grant(&src, -3, 30);
    checkpoint(&src, vec![cp(2, 15), cp(-3, 4)]);
    let snap = src.store.snapshot_bytes().unwrap();

    let dst = Harness::new();
    grant(&dst, 2, 99);
    checkpoint(&dst, vec![cp(2, 98)]);
    dst.store.restore_from_bytes(&snap).unwrap();
    assert_eq!(
        dst.store.read().unwrap().lease_records().unwrap(),
        vec![rec(-3, 30, Some(4)), rec(1, 10, None), rec(2, 20, Some(15))]
    );
    assert_eq!(dst.store.snapshot_bytes().unwrap(), snap);
}
