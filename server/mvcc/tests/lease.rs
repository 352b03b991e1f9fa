//! The `leases` table: grant, revoke (with the attached keys), puts checked against it,
//! persistence and snapshots.

mod common;

use common::*;
use synod_mvcc::{MvccError, MvccStore};
use synod_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, PutRequest, TxnRequest,
};
use synod_proto::mvccpb::event::EventType;
use synod_proto::peerpb::{internal_request, internal_response, InternalRequest, InternalResponse};

fn grant(h: &Harness, id: i64, ttl: i64) -> Result<(), MvccError> {
    let mut batch = h.store.write().unwrap();
    let r = batch.grant_lease(id, ttl);
    batch.commit(false).unwrap();
    r
}

/// Applies `req` the way the raft state machine does: leases checked against the table.
fn apply_checked(
    h: &Harness,
    req: internal_request::Request,
) -> Result<InternalResponse, MvccError> {
    let mut batch = h.store.write().unwrap();
    let r = batch.apply_with_lease_table(&InternalRequest { request: Some(req) });
    batch.commit(false).unwrap();
    r
}

fn put_with_lease(key: &str, value: &str, lease: i64) -> PutRequest {
    PutRequest {
        lease,
        ..put_req(key, value)
    }
}

#[test]
fn grants_are_listed_and_do_not_change_the_revision() {
    let h = Harness::new();
    let rev = h.rev();
    grant(&h, 7, 30).unwrap();
    grant(&h, 3, 10).unwrap();
    grant(&h, -2, 5).unwrap();
    let view = h.store.read().unwrap();
    assert_eq!(view.lease(7).unwrap(), Some(30));
    assert_eq!(view.lease(8).unwrap(), None);
    assert_eq!(view.leases().unwrap(), vec![(-2, 5), (3, 10), (7, 30)]);
    assert_eq!(view.current_revision(), rev);
}

#[test]
fn a_duplicate_grant_is_refused_and_id_zero_is_not_a_lease() {
    let h = Harness::new();
    grant(&h, 7, 30).unwrap();
    assert_eq!(grant(&h, 7, 60), Err(MvccError::LeaseExists));
    assert_eq!(grant(&h, 0, 60), Err(MvccError::LeaseNotFound));
    assert_eq!(h.store.read().unwrap().leases().unwrap(), vec![(7, 30)]);
    // A refused grant leaves the batch usable.
    let mut batch = h.store.write().unwrap();
    assert_eq!(batch.grant_lease(7, 1), Err(MvccError::LeaseExists));
    batch.grant_lease(8, 1).unwrap();
    batch.commit(false).unwrap();
    assert_eq!(h.store.read().unwrap().lease(8).unwrap(), Some(1));
}

#[test]
fn grant_and_revoke_through_apply_answer_like_etcd() {
    let h = Harness::new();
    h.put("a", "1");
    let resp = apply_checked(
        &h,
        internal_request::Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 42 }),
    )
    .unwrap();
    match resp.response {
        Some(internal_response::Response::LeaseGrant(LeaseGrantResponse {
            header,
            id,
            ttl,
            ..
        })) => {
            assert_eq!((id, ttl), (42, 60));
            assert_eq!(header.unwrap().revision, 2);
        }
        other => panic!("unexpected {other:?}"),
    }
    let again = apply_checked(
        &h,
        internal_request::Request::LeaseGrant(LeaseGrantRequest { ttl: 60, id: 42 }),
    );
    assert_eq!(again.unwrap_err(), MvccError::LeaseExists);

    apply_checked(
        &h,
        internal_request::Request::Put(put_with_lease("k", "v", 42)),
    )
    .unwrap();
    let resp = apply_checked(
        &h,
        internal_request::Request::LeaseRevoke(LeaseRevokeRequest { id: 42 }),
    )
    .unwrap();
    match resp.response {
        Some(internal_response::Response::LeaseRevoke(r)) => {
            assert_eq!(r.header.unwrap().revision, 4)
        }
        other => panic!("unexpected {other:?}"),
    }
    let unknown = apply_checked(
        &h,
        internal_request::Request::LeaseRevoke(LeaseRevokeRequest { id: 42 }),
    );
    assert_eq!(unknown.unwrap_err(), MvccError::LeaseNotFound);
    assert_eq!(h.get("k"), None);
}

#[test]
fn puts_are_checked_against_the_lease_table() {
    let h = Harness::new();
    assert_eq!(
        apply_checked(
            &h,
            internal_request::Request::Put(put_with_lease("k", "v", 5))
        )
        .unwrap_err(),
        MvccError::LeaseNotFound
    );
    // Inside a txn too, nested ones included (etcd checks every put on the execution path).
    let txn = TxnRequest {
        success: vec![txn_op(TxnRequest {
            success: vec![put_op_req(put_with_lease("t", "v", 5))],
            ..Default::default()
        })],
        ..Default::default()
    };
    assert_eq!(
        apply_checked(&h, internal_request::Request::Txn(txn.clone())).unwrap_err(),
        MvccError::LeaseNotFound
    );
    let rev = h.rev();
    grant(&h, 5, 10).unwrap();
    apply_checked(
        &h,
        internal_request::Request::Put(put_with_lease("k", "v", 5)),
    )
    .unwrap();
    apply_checked(&h, internal_request::Request::Txn(txn)).unwrap();
    assert_eq!(h.rev(), rev + 2);
    assert_eq!(h.get("t").unwrap().lease, 5);
    let view = h.store.read().unwrap();
    assert_eq!(
        view.keys_with_lease(5).unwrap(),
        vec![b"k".to_vec(), b"t".to_vec()]
    );
}

#[test]
fn a_grant_earlier_in_the_batch_counts_for_a_later_put() {
    let h = Harness::new();
    let mut batch = h.store.write().unwrap();
    batch.grant_lease(9, 10).unwrap();
    assert!(batch.lease_exists(9).unwrap());
    batch
        .apply_with_lease_table(&InternalRequest {
            request: Some(internal_request::Request::Put(put_with_lease("k", "v", 9))),
        })
        .unwrap();
    batch.commit(false).unwrap();
    assert_eq!(h.get("k").unwrap().lease, 9);
}

#[test]
fn revoke_deletes_the_attached_keys_in_one_revision_and_removes_the_lease() {
    let h = Harness::new();
    grant(&h, 1, 10).unwrap();
    grant(&h, 2, 10).unwrap();
    for k in ["c", "a", "b"] {
        apply_checked(
            &h,
            internal_request::Request::Put(put_with_lease(k, "v", 1)),
        )
        .unwrap();
    }
    apply_checked(
        &h,
        internal_request::Request::Put(put_with_lease("other", "v", 2)),
    )
    .unwrap();
    h.put("plain", "v");
    let before = h.rev();

    let mut batch = h.store.write().unwrap();
    let (deleted, rev) = batch.revoke_lease(1).unwrap();
    assert_eq!((deleted, rev), (3, before + 1));
    let events = batch.take_events();
    batch.commit(false).unwrap();
    let deleted_keys: Vec<_> = events
        .iter()
        .map(|e| {
            assert_eq!(e.r#type, EventType::Delete as i32);
            let kv = e.kv.as_ref().unwrap();
            assert_eq!(kv.mod_revision, before + 1);
            String::from_utf8(kv.key.clone()).unwrap()
        })
        .collect();
    assert_eq!(deleted_keys, vec!["a", "b", "c"]);

    let view = h.store.read().unwrap();
    assert_eq!(view.lease(1).unwrap(), None);
    assert_eq!(view.leases().unwrap(), vec![(2, 10)]);
    assert!(view.keys_with_lease(1).unwrap().is_empty());
    drop(view);
    assert!(h.get("other").is_some() && h.get("plain").is_some());

    // A lease without keys: revoked without a new revision.
    let mut batch = h.store.write().unwrap();
    batch
        .apply(
            &InternalRequest {
                request: Some(internal_request::Request::Put(put_req("other", "detached"))),
            },
            &|_| false,
        )
        .unwrap();
    assert_eq!(batch.revoke_lease(2).unwrap(), (0, before + 2));
    assert_eq!(batch.revoke_lease(2), Err(MvccError::LeaseNotFound));
    batch.commit(false).unwrap();
    assert!(h.store.read().unwrap().leases().unwrap().is_empty());
}

#[test]
fn negative_lease_ids_index_their_keys() {
    let h = Harness::new();
    for id in [-1, 1, i64::MIN, i64::MAX] {
        grant(&h, id, 10).unwrap();
        let key = format!("k{id}");
        apply_checked(
            &h,
            internal_request::Request::Put(put_with_lease(&key, "v", id)),
        )
        .unwrap();
    }
    let view = h.store.read().unwrap();
    for id in [-1, 1, i64::MIN, i64::MAX] {
        assert_eq!(
            view.keys_with_lease(id).unwrap(),
            vec![format!("k{id}").into_bytes()],
            "lease {id}"
        );
    }
}

#[test]
fn leases_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = MvccStore::open(&path).unwrap();
        let mut batch = store.write().unwrap();
        batch.grant_lease(11, 100).unwrap();
        batch.commit(true).unwrap();
    }
    let store = MvccStore::open(&path).unwrap();
    assert_eq!(store.read().unwrap().leases().unwrap(), vec![(11, 100)]);
}

#[test]
fn snapshots_carry_leases_and_restore_replaces_them() {
    let src = Harness::new();
    grant(&src, 1, 10).unwrap();
    grant(&src, 2, 20).unwrap();
    apply_checked(
        &src,
        internal_request::Request::Put(put_with_lease("k", "v", 2)),
    )
    .unwrap();
    let snap = src.store.snapshot_bytes().unwrap();

    let dst = Harness::new();
    grant(&dst, 99, 5).unwrap();
    dst.store.restore_from_bytes(&snap).unwrap();
    let view = dst.store.read().unwrap();
    assert_eq!(view.leases().unwrap(), vec![(1, 10), (2, 20)]);
    assert_eq!(view.keys_with_lease(2).unwrap(), vec![b"k".to_vec()]);
    drop(view);
    assert_eq!(dst.store.snapshot_bytes().unwrap(), snap);
    // The restored lease table is the one puts are checked against.
    assert_eq!(
        apply_checked(
            &dst,
            internal_request::Request::Put(put_with_lease("x", "v", 99))
        )
        .unwrap_err(),
        MvccError::LeaseNotFound
    );
    let mut batch = dst.store.write().unwrap();
    assert_eq!(batch.revoke_lease(2).unwrap().0, 1);
    batch.commit(false).unwrap();
}
