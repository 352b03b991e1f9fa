//! Put and DeleteRange: revisions, versions, leases, flags, events.

mod common;

use common::*;
use synod_mvcc::MvccError;
use synod_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};
use synod_proto::mvccpb::{event::EventType, KeyValue};

#[test]
fn new_store_is_at_revision_1_and_empty() {
    let h = Harness::new();
    let view = h.store.read().unwrap();
    assert_eq!(view.current_revision(), 1);
    assert_eq!(view.compact_revision(), 0);
    let resp = view.range(&range_req("\0", "\0")).unwrap();
    assert_eq!((resp.count, resp.kvs.len(), hdr_rev(&resp)), (0, 0, 1));
}

#[test]
fn put_then_get_returns_version_1() {
    let h = Harness::new();
    let resp = h.put("foo", "bar");
    assert_eq!(hdr_rev(&resp), 2);
    assert_eq!(resp.prev_kv, None);
    let kv = h.get("foo").unwrap();
    assert_eq!(
        kv,
        KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 2,
            version: 1,
            value: b"bar".to_vec(),
            lease: 0
        }
    );
}

#[test]
fn every_put_bumps_revision_and_version_keeps_create_revision() {
    let h = Harness::new();
    h.put("a", "1");
    h.put("b", "1");
    let resp = h.put("a", "2");
    assert_eq!(hdr_rev(&resp), 4);
    let kv = h.get("a").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 4, 2));
    // Putting the same value again is still a change.
    h.put("a", "2");
    let kv = h.get("a").unwrap();
    assert_eq!((kv.mod_revision, kv.version, h.rev()), (5, 3, 5));
}

#[test]
fn delete_resets_version() {
    let h = Harness::new();
    h.put("k", "1");
    h.put("k", "2");
    let del = h.delete("k", "");
    assert_eq!((del.deleted, hdr_rev(&del)), (1, 4));
    assert_eq!(h.get("k"), None);
    h.put("k", "3");
    let kv = h.get("k").unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (5, 5, 1));
}

#[test]
fn delete_of_nothing_does_not_bump_revision() {
    let h = Harness::new();
    h.put("a", "1");
    let del = h.delete("zzz", "");
    assert_eq!((del.deleted, hdr_rev(&del), h.rev()), (0, 2, 2));
    let del = h.delete("b", "c");
    assert_eq!((del.deleted, hdr_rev(&del), h.rev()), (0, 2, 2));
}

#[test]
fn delete_range_deletes_every_key_in_one_revision_and_returns_prev_kvs() {
    let h = Harness::new();
    for k in ["a", "b", "c", "d"] {
        h.put(k, k);
    }
    let del = h
        .try_delete(DeleteRangeRequest {
            key: "b".into(),
            range_end: "d".into(),
            prev_kv: true,
        })
        .unwrap();
    assert_eq!(del.deleted, 2);
    assert_eq!(hdr_rev(&del), 6);
    let prev: Vec<_> = del
        .prev_kvs
        .iter()
        .map(|kv| (kv.key.clone(), kv.mod_revision))
        .collect();
    assert_eq!(prev, vec![(b"b".to_vec(), 3), (b"c".to_vec(), 4)]);
    let all = h.range(range_req("\0", "\0")).unwrap();
    assert_eq!(keys(&all), vec!["a", "d"]);
}

#[test]
fn delete_range_with_nul_end_deletes_every_key_from_key() {
    let h = Harness::new();
    for k in ["a", "b", "c"] {
        h.put(k, k);
    }
    let del = h.delete("b", "\0");
    assert_eq!(del.deleted, 2);
    assert_eq!(keys(&h.range(range_req("\0", "\0")).unwrap()), vec!["a"]);
}

#[test]
fn put_prev_kv_returns_the_previous_value() {
    let h = Harness::new();
    h.put("k", "old");
    let resp = h
        .try_put(PutRequest {
            prev_kv: true,
            ..put_req("k", "new")
        })
        .unwrap();
    let prev = resp.prev_kv.unwrap();
    assert_eq!((prev.value, prev.mod_revision), (b"old".to_vec(), 2));
    let resp = h
        .try_put(PutRequest {
            prev_kv: true,
            ..put_req("fresh", "v")
        })
        .unwrap();
    assert_eq!(resp.prev_kv, None);
}

#[test]
fn put_with_unknown_lease_is_rejected_and_changes_nothing() {
    let h = Harness::new();
    let err = h
        .try_put(PutRequest {
            lease: 42,
            ..put_req("k", "v")
        })
        .unwrap_err();
    assert_eq!(err, MvccError::LeaseNotFound);
    assert_eq!(err.to_string(), "requested lease not found");
    assert_eq!(h.rev(), 1);
    assert_eq!(h.get("k"), None);
}

#[test]
fn put_with_granted_lease_attaches_it_and_lease_index_follows() {
    let mut h = Harness::new();
    h.leases.insert(7);
    h.leases.insert(8);
    h.try_put(PutRequest {
        lease: 7,
        ..put_req("a", "1")
    })
    .unwrap();
    h.try_put(PutRequest {
        lease: 7,
        ..put_req("b", "1")
    })
    .unwrap();
    h.try_put(PutRequest {
        lease: 8,
        ..put_req("c", "1")
    })
    .unwrap();
    assert_eq!(h.get("a").unwrap().lease, 7);
    let view = h.store.read().unwrap();
    assert_eq!(
        view.keys_with_lease(7).unwrap(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    drop(view);
    // Moving a key to another lease, detaching one, deleting one.
    h.try_put(PutRequest {
        lease: 8,
        ..put_req("a", "2")
    })
    .unwrap();
    h.put("b", "no lease");
    h.delete("c", "");
    let view = h.store.read().unwrap();
    assert_eq!(view.keys_with_lease(7).unwrap(), Vec::<Vec<u8>>::new());
    assert_eq!(view.keys_with_lease(8).unwrap(), vec![b"a".to_vec()]);
    assert_eq!(view.lease_attachments().unwrap(), vec![(8, b"a".to_vec())]);
}

#[test]
fn ignore_value_keeps_value_and_ignore_lease_keeps_lease() {
    let mut h = Harness::new();
    h.leases.insert(5);
    h.try_put(PutRequest {
        lease: 5,
        ..put_req("k", "v1")
    })
    .unwrap();
    h.try_put(PutRequest {
        ignore_value: true,
        lease: 5,
        ..put_req("k", "")
    })
    .unwrap();
    let kv = h.get("k").unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v1"[..], 5, 2)
    );
    h.try_put(PutRequest {
        ignore_lease: true,
        ..put_req("k", "v2")
    })
    .unwrap();
    let kv = h.get("k").unwrap();
    assert_eq!(
        (kv.value.as_slice(), kv.lease, kv.version),
        (&b"v2"[..], 5, 3)
    );
}

#[test]
fn ignore_flags_on_missing_key_are_key_not_found() {
    let h = Harness::new();
    let err = h
        .try_put(PutRequest {
            ignore_value: true,
            ..put_req("nope", "")
        })
        .unwrap_err();
    assert_eq!(err, MvccError::KeyNotFound);
    let err = h
        .try_put(PutRequest {
            ignore_lease: true,
            ..put_req("nope", "v")
        })
        .unwrap_err();
    assert_eq!(err, MvccError::KeyNotFound);
    assert_eq!(h.rev(), 1);
}

#[test]
fn lease_is_checked_before_ignore_flags_like_etcd() {
    let h = Harness::new();
    let err = h
        .try_put(PutRequest {
            ignore_value: true,
            lease: 9,
            ..put_req("nope", "")
        })
        .unwrap_err();
    assert_eq!(err, MvccError::LeaseNotFound);
}

#[test]
fn revoke_lease_keys_deletes_attached_keys_in_one_revision() {
    let mut h = Harness::new();
    h.leases.insert(3);
    h.try_put(PutRequest {
        lease: 3,
        ..put_req("x", "1")
    })
    .unwrap();
    h.try_put(PutRequest {
        lease: 3,
        ..put_req("y", "1")
    })
    .unwrap();
    h.put("z", "1");
    let mut batch = h.store.write().unwrap();
    assert_eq!(batch.revoke_lease_keys(3).unwrap(), (2, 5));
    assert_eq!(batch.revoke_lease_keys(3).unwrap(), (0, 5));
    let events = batch.take_events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.r#type == EventType::Delete as i32));
    batch.commit(true).unwrap();
    assert_eq!(keys(&h.range(range_req("\0", "\0")).unwrap()), vec!["z"]);
}

#[test]
fn batch_events_carry_revisions_and_prev_kv() {
    let h = Harness::new();
    h.put("k", "v1");
    let mut batch = h.store.write().unwrap();
    let none = |_l: i64| false;
    use synod_proto::peerpb::{internal_request::Request, InternalRequest};
    let req = |r| InternalRequest { request: Some(r) };
    batch
        .apply(&req(Request::Put(put_req("k", "v2"))), &none)
        .unwrap();
    batch
        .apply(&req(Request::Put(put_req("n", "new"))), &none)
        .unwrap();
    batch
        .apply(
            &req(Request::DeleteRange(DeleteRangeRequest {
                key: "k".into(),
                range_end: Vec::new(),
                prev_kv: false,
            })),
            &none,
        )
        .unwrap();
    let events = batch.events().to_vec();
    batch.commit(false).unwrap();
    assert_eq!(events.len(), 3);
    let e0 = &events[0];
    assert_eq!(e0.r#type, EventType::Put as i32);
    assert_eq!(e0.kv.as_ref().unwrap().mod_revision, 3);
    assert_eq!(e0.prev_kv.as_ref().unwrap().value, b"v1".to_vec());
    // A creation has no prev_kv.
    assert_eq!(events[1].prev_kv, None);
    assert_eq!(events[1].kv.as_ref().unwrap().create_revision, 4);
    // A delete event holds the key and the deletion revision; prev_kv is the deleted value.
    let e2 = &events[2];
    assert_eq!(e2.r#type, EventType::Delete as i32);
    assert_eq!(
        e2.kv.as_ref().unwrap(),
        &KeyValue {
            key: b"k".to_vec(),
            mod_revision: 5,
            ..Default::default()
        }
    );
    assert_eq!(e2.prev_kv.as_ref().unwrap().value, b"v2".to_vec());
}

#[test]
fn request_without_body_is_invalid() {
    let h = Harness::new();
    let mut batch = h.store.write().unwrap();
    let err = batch
        .apply(
            &synod_proto::peerpb::InternalRequest { request: None },
            &|_| true,
        )
        .unwrap_err();
    assert!(matches!(err, MvccError::InvalidRequest(_)));
    // A request error leaves the batch usable.
    batch.set_meta("applied", b"1").unwrap();
    batch.commit(true).unwrap();
}

#[test]
fn meta_values_are_stored_with_the_batch_and_reserved_names_are_refused() {
    let h = Harness::new();
    let mut batch = h.store.write().unwrap();
    batch.set_meta("applied", &42u64.to_be_bytes()).unwrap();
    assert_eq!(
        batch.meta("applied").unwrap(),
        Some(42u64.to_be_bytes().to_vec())
    );
    assert!(batch.set_meta("mvcc/current_revision", b"x").is_err());
    batch.commit(false).unwrap();
    let view = h.store.read().unwrap();
    assert_eq!(
        view.meta("applied").unwrap(),
        Some(42u64.to_be_bytes().to_vec())
    );
    assert_eq!(view.meta("missing").unwrap(), None);
}

#[test]
fn dropped_batch_changes_nothing() {
    let h = Harness::new();
    h.put("k", "v");
    {
        let mut batch = h.store.write().unwrap();
        batch
            .apply(
                &synod_proto::peerpb::InternalRequest {
                    request: Some(synod_proto::peerpb::internal_request::Request::Put(
                        put_req("k", "other"),
                    )),
                },
                &|_| false,
            )
            .unwrap();
        assert_eq!(batch.current_revision(), 3);
    }
    assert_eq!(h.rev(), 2);
    assert_eq!(h.get("k").unwrap().value, b"v".to_vec());
}

#[test]
fn reads_inside_a_batch_see_earlier_entries_of_the_batch() {
    let h = Harness::new();
    let mut batch = h.store.write().unwrap();
    use synod_proto::peerpb::{internal_request::Request, InternalRequest};
    batch
        .apply(
            &InternalRequest {
                request: Some(Request::Put(put_req("a", "1"))),
            },
            &|_| false,
        )
        .unwrap();
    let resp = batch.range(&range_req("a", "")).unwrap();
    assert_eq!((values(&resp), hdr_rev(&resp)), (vec!["1".to_string()], 2));
    // Not visible to readers before commit.
    assert_eq!(h.store.read().unwrap().current_revision(), 1);
    batch.commit(false).unwrap();
    assert_eq!(h.rev(), 2);
}

#[test]
fn binary_keys_with_nul_bytes_work() {
    let h = Harness::new();
    for k in [&b"a\x00"[..], b"a", b"a\x00\x00", b"a\x01", b"\x00"] {
        h.try_put(PutRequest {
            key: k.to_vec(),
            value: k.to_vec(),
            ..Default::default()
        })
        .unwrap();
    }
    // Overwrite one to push history for keys containing NULs.
    h.try_put(PutRequest {
        key: b"a\x00".to_vec(),
        value: b"x".to_vec(),
        ..Default::default()
    })
    .unwrap();
    let all = h.range(range_req("\0", "\0")).unwrap();
    let got: Vec<Vec<u8>> = all.kvs.iter().map(|kv| kv.key.clone()).collect();
    let want: Vec<Vec<u8>> = vec![
        b"\x00".to_vec(),
        b"a".to_vec(),
        b"a\x00".to_vec(),
        b"a\x00\x00".to_vec(),
        b"a\x01".to_vec(),
    ];
    assert_eq!(got, want);
    // The same at an older revision (history path).
    let old = h
        .range(synod_proto::etcdserverpb::RangeRequest {
            revision: 6,
            ..range_req("\0", "\0")
        })
        .unwrap();
    let got: Vec<Vec<u8>> = old.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(got, want);
    assert_eq!(old.kvs[2].value, b"a\x00".to_vec());
}
