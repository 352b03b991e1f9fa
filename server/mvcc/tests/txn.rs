//! Txn: compares, branches, nesting, reads of own writes, headers, validation.

mod common;

use common::*;
use synod_mvcc::MvccError;
use synod_proto::etcdserverpb::compare::{
    CompareResult as R, CompareTarget as T, TargetUnion as U,
};
use synod_proto::etcdserverpb::{Compare, PutRequest, RangeRequest, RequestOp, TxnRequest};

fn txn(compare: Vec<Compare>, success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
    TxnRequest {
        compare,
        success,
        failure,
    }
}

#[test]
fn txn_with_successful_compare_runs_success_branch() {
    let h = Harness::new();
    h.put("k", "v");
    let resp = h
        .txn(txn(
            vec![cmp("k", T::Value, R::Equal, U::Value(b"v".to_vec()))],
            vec![put_op("k", "yes")],
            vec![put_op("k", "no")],
        ))
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(hdr_rev(&resp), 3);
    assert_eq!(h.get("k").unwrap().value, b"yes".to_vec());
}

#[test]
fn txn_with_failed_compare_runs_failure_branch() {
    let h = Harness::new();
    h.put("k", "v");
    let resp = h
        .txn(txn(
            vec![
                cmp("k", T::Version, R::Equal, U::Version(1)),
                cmp("k", T::Value, R::Equal, U::Value(b"other".to_vec())),
            ],
            vec![put_op("k", "yes")],
            vec![put_op("k", "no"), range_op(range_req("k", ""))],
        ))
        .unwrap();
    assert!(!resp.succeeded);
    assert_eq!(resp.responses.len(), 2);
    assert_eq!(values(as_range(&resp.responses[1])), vec!["no"]);
    assert_eq!(h.get("k").unwrap().value, b"no".to_vec());
}

#[test]
fn every_compare_target_and_result() {
    let mut h = Harness::new();
    h.leases.insert(77);
    h.put("k", "m");
    h.try_put(PutRequest {
        lease: 77,
        ..put_req("k", "m")
    })
    .unwrap();
    // k: create 2, mod 3, version 2, lease 77, value "m"
    let check = |c: Compare| h.txn(txn(vec![c], vec![], vec![])).unwrap().succeeded;
    assert!(check(cmp("k", T::Create, R::Equal, U::CreateRevision(2))));
    assert!(check(cmp("k", T::Mod, R::Greater, U::ModRevision(2))));
    assert!(!check(cmp("k", T::Mod, R::Less, U::ModRevision(3))));
    assert!(check(cmp("k", T::Version, R::NotEqual, U::Version(1))));
    assert!(check(cmp("k", T::Lease, R::Equal, U::Lease(77))));
    assert!(check(cmp(
        "k",
        T::Value,
        R::Greater,
        U::Value(b"a".to_vec())
    )));
    assert!(check(cmp("k", T::Value, R::Less, U::Value(b"z".to_vec()))));
    assert!(!check(cmp(
        "k",
        T::Value,
        R::NotEqual,
        U::Value(b"m".to_vec())
    )));
    // A mismatched target_union compares against the zero value.
    assert!(check(cmp("k", T::Version, R::Greater, U::ModRevision(100))));
}

#[test]
fn compares_on_missing_keys() {
    let h = Harness::new();
    let check = |c: Compare| h.txn(txn(vec![c], vec![], vec![])).unwrap().succeeded;
    // Non-value targets compare against zero.
    assert!(check(cmp(
        "nope",
        T::Create,
        R::Equal,
        U::CreateRevision(0)
    )));
    assert!(check(cmp("nope", T::Version, R::Less, U::Version(1))));
    assert!(check(cmp("nope", T::Mod, R::Equal, U::ModRevision(0))));
    assert!(check(cmp("nope", T::Lease, R::Equal, U::Lease(0))));
    // Value compares always fail on a missing key, even NOT_EQUAL.
    assert!(!check(cmp(
        "nope",
        T::Value,
        R::Equal,
        U::Value(Vec::new())
    )));
    assert!(!check(cmp(
        "nope",
        T::Value,
        R::NotEqual,
        U::Value(b"x".to_vec())
    )));
}

#[test]
fn compare_with_range_end_must_hold_for_every_key() {
    let h = Harness::new();
    h.put("p/a", "1");
    h.put("p/b", "1");
    h.put("p/c", "2");
    let check = |end: &str, v: &str| {
        let c = Compare {
            range_end: end.into(),
            ..cmp("p/", T::Value, R::Equal, U::Value(v.into()))
        };
        h.txn(txn(vec![c], vec![], vec![])).unwrap().succeeded
    };
    assert!(!check("p0", "1"));
    assert!(check("p/c", "1"));
    // Empty range: value compare fails; version compare vs 0.
    assert!(!check("p/", "1"));
    let c = Compare {
        range_end: "q/".into(),
        ..cmp("q/", T::Version, R::Equal, U::Version(0))
    };
    assert!(h.txn(txn(vec![c], vec![], vec![])).unwrap().succeeded);
    let c = Compare {
        range_end: "\0".into(),
        ..cmp("q", T::Version, R::Equal, U::Version(0))
    };
    assert!(h.txn(txn(vec![c], vec![], vec![])).unwrap().succeeded);
    let c = Compare {
        range_end: "p0".into(),
        ..cmp("p/", T::Create, R::Greater, U::CreateRevision(0))
    };
    assert!(h.txn(txn(vec![c], vec![], vec![])).unwrap().succeeded);
}

#[test]
fn read_only_txn_does_not_bump_revision() {
    let h = Harness::new();
    h.put("k", "v");
    let resp = h
        .txn(txn(vec![], vec![range_op(range_req("k", ""))], vec![]))
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(hdr_rev(&resp), 2);
    assert_eq!(h.rev(), 2);
    // A txn whose delete deletes nothing changes nothing either.
    let resp = h
        .txn(txn(vec![], vec![delete_op("zz", "")], vec![]))
        .unwrap();
    assert_eq!((hdr_rev(&resp), h.rev()), (2, 2));
    // An empty txn.
    let resp = h.txn(txn(vec![], vec![], vec![])).unwrap();
    assert_eq!(
        (resp.succeeded, resp.responses.len(), hdr_rev(&resp)),
        (true, 0, 2)
    );
}

#[test]
fn txn_writes_share_one_revision_with_increasing_sub_revisions() {
    let h = Harness::new();
    h.put("a", "0");
    let resp = h
        .txn(txn(
            vec![],
            vec![
                put_op("a", "1"),
                put_op("b", "1"),
                put_op("a", "2"),
                delete_op("b", ""),
            ],
            vec![],
        ))
        .unwrap();
    assert_eq!(hdr_rev(&resp), 3);
    let a = h.get("a").unwrap();
    // Two puts of `a` in one txn: version +2, mod revision 3.
    assert_eq!(
        (
            a.value.as_slice(),
            a.version,
            a.mod_revision,
            a.create_revision
        ),
        (&b"2"[..], 3, 3, 2)
    );
    assert_eq!(h.get("b"), None);
    let view = h.store.read().unwrap();
    let events = view.events_between(3, 3, 0, false).unwrap();
    let summary: Vec<_> = events
        .iter()
        .map(|e| (e.r#type, e.kv.as_ref().unwrap().key.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, b"a".to_vec()),
            (0, b"b".to_vec()),
            (0, b"a".to_vec()),
            (1, b"b".to_vec())
        ]
    );
}

#[test]
fn txn_reads_see_own_writes() {
    let h = Harness::new();
    h.put("k", "before");
    let resp = h
        .txn(txn(
            vec![],
            vec![
                range_op(range_req("k", "")),
                put_op("k", "after"),
                put_op("n", "new"),
                range_op(range_req("\0", "\0")),
                delete_op("k", ""),
                range_op(RangeRequest {
                    count_only: true,
                    ..range_req("\0", "\0")
                }),
            ],
            vec![],
        ))
        .unwrap();
    let r0 = as_range(&resp.responses[0]);
    assert_eq!((values(r0), hdr_rev(r0)), (vec!["before".to_string()], 2));
    let r3 = as_range(&resp.responses[3]);
    assert_eq!(values(r3), vec!["after", "new"]);
    assert_eq!(
        (r3.kvs[0].mod_revision, r3.kvs[0].version, hdr_rev(r3)),
        (3, 2, 3)
    );
    let r5 = as_range(&resp.responses[5]);
    assert_eq!(r5.count, 1);
    // Reading the pre-txn revision explicitly inside the txn sees the old state.
    h.put("x", "1");
    let resp = h
        .txn(txn(
            vec![],
            vec![
                put_op("x", "2"),
                range_op(RangeRequest {
                    revision: 4,
                    ..range_req("x", "")
                }),
            ],
            vec![],
        ))
        .unwrap();
    assert_eq!(values(as_range(&resp.responses[1])), vec!["1"]);
}

#[test]
fn sub_response_headers_match_etcd() {
    let h = Harness::new();
    h.put("k", "v"); // rev 2
    let resp = h
        .txn(txn(
            vec![],
            vec![
                delete_op("missing", ""),     // nothing changed yet -> begin rev (2)
                range_op(range_req("k", "")), // no changes yet -> 2
                put_op("k", "v2"),            // begin + 1 = 3
                delete_op("missing", ""),     // changes exist -> 3
                range_op(range_req("k", "")), // 3
                txn_op(txn(vec![], vec![put_op("z", "1")], vec![])), // nested: zero header
            ],
            vec![],
        ))
        .unwrap();
    assert_eq!(hdr_rev(as_delete(&resp.responses[0])), 2);
    assert_eq!(hdr_rev(as_range(&resp.responses[1])), 2);
    assert_eq!(hdr_rev(as_put(&resp.responses[2])), 3);
    assert_eq!(hdr_rev(as_delete(&resp.responses[3])), 3);
    assert_eq!(hdr_rev(as_range(&resp.responses[4])), 3);
    let nested = as_txn(&resp.responses[5]);
    assert_eq!(nested.header, Some(Default::default()));
    assert_eq!(hdr_rev(as_put(&nested.responses[0])), 3);
    assert_eq!(hdr_rev(&resp), 3);
}

#[test]
fn nested_txn_compares_are_evaluated_before_the_outer_txn_runs() {
    let h = Harness::new();
    h.put("k", "old");
    let inner = txn(
        vec![cmp("k", T::Value, R::Equal, U::Value(b"old".to_vec()))],
        vec![put_op("inner", "saw-old")],
        vec![put_op("inner", "saw-new")],
    );
    let resp = h
        .txn(txn(vec![], vec![put_op("k", "new"), txn_op(inner)], vec![]))
        .unwrap();
    let nested = as_txn(&resp.responses[1]);
    assert!(nested.succeeded);
    assert_eq!(h.get("inner").unwrap().value, b"saw-old".to_vec());
}

#[test]
fn nested_txn_runs_chosen_branches_at_every_level() {
    let h = Harness::new();
    h.put("flag", "on");
    let level2 = txn(
        vec![cmp("missing", T::Version, R::Greater, U::Version(0))],
        vec![put_op("l2", "success")],
        vec![put_op("l2", "failure"), range_op(range_req("l1", ""))],
    );
    let level1 = txn(
        vec![cmp("flag", T::Value, R::Equal, U::Value(b"on".to_vec()))],
        vec![put_op("l1", "success"), txn_op(level2)],
        vec![put_op("l1", "failure")],
    );
    let resp = h
        .txn(txn(
            vec![cmp("flag", T::Value, R::Equal, U::Value(b"off".to_vec()))],
            vec![put_op("top", "success")],
            vec![txn_op(level1), put_op("top", "failure")],
        ))
        .unwrap();
    assert!(!resp.succeeded);
    let l1 = as_txn(&resp.responses[0]);
    assert!(l1.succeeded);
    let l2 = as_txn(&l1.responses[1]);
    assert!(!l2.succeeded);
    assert_eq!(values(as_range(&l2.responses[1])), vec!["success"]);
    assert_eq!(h.get("top").unwrap().value, b"failure".to_vec());
    assert_eq!(h.get("l1").unwrap().value, b"success".to_vec());
    assert_eq!(h.get("l2").unwrap().value, b"failure".to_vec());
    // All writes share one revision.
    assert_eq!(hdr_rev(&resp), 3);
    assert_eq!(h.get("l2").unwrap().mod_revision, 3);
}

#[test]
fn invalid_txn_changes_nothing() {
    let h = Harness::new();
    h.put("k", "v");
    // Unknown lease in the chosen branch, after a valid put.
    let err = h
        .txn(txn(
            vec![],
            vec![
                put_op("a", "1"),
                put_op_req(PutRequest {
                    lease: 5,
                    ..put_req("b", "1")
                }),
            ],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(err, MvccError::LeaseNotFound);
    // ignore_value on a missing key, nested.
    let bad = txn(
        vec![],
        vec![put_op_req(PutRequest {
            ignore_value: true,
            ..put_req("nope", "")
        })],
        vec![],
    );
    let err = h
        .txn(txn(vec![], vec![put_op("a", "1"), txn_op(bad)], vec![]))
        .unwrap_err();
    assert_eq!(err, MvccError::KeyNotFound);
    // Future revision range.
    let err = h
        .txn(txn(
            vec![],
            vec![
                put_op("a", "1"),
                range_op(RangeRequest {
                    revision: 3,
                    ..range_req("k", "")
                }),
            ],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(err, MvccError::FutureRevision);
    assert_eq!(h.rev(), 2);
    assert_eq!(h.get("a"), None);
    // Problems in the branch not taken do not matter.
    let resp = h
        .txn(txn(
            vec![],
            vec![put_op("a", "1")],
            vec![put_op_req(PutRequest {
                lease: 5,
                ..put_req("b", "1")
            })],
        ))
        .unwrap();
    assert!(resp.succeeded);
}

#[test]
fn put_errors_are_reported_before_range_errors() {
    let h = Harness::new();
    h.put("k", "v");
    let err = h
        .txn(txn(
            vec![],
            vec![
                range_op(RangeRequest {
                    revision: 100,
                    ..range_req("k", "")
                }),
                put_op_req(PutRequest {
                    lease: 5,
                    ..put_req("b", "1")
                }),
            ],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(err, MvccError::LeaseNotFound);
}

#[test]
fn ignore_value_checks_use_the_state_before_the_txn() {
    let h = Harness::new();
    // Created earlier in the same txn: etcd still says key not found.
    let err = h
        .txn(txn(
            vec![],
            vec![
                put_op("k", "v"),
                put_op_req(PutRequest {
                    ignore_value: true,
                    ..put_req("k", "")
                }),
            ],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(err, MvccError::KeyNotFound);
    // Deleted earlier in the same txn (etcd 3.4 crashes here): rejected, nothing changes.
    h.put("k", "v");
    let err = h
        .txn(txn(
            vec![],
            vec![
                delete_op("a", "z"),
                put_op_req(PutRequest {
                    ignore_value: true,
                    ..put_req("k", "")
                }),
            ],
            vec![],
        ))
        .unwrap_err();
    assert_eq!(err, MvccError::KeyNotFound);
    assert_eq!(h.get("k").unwrap().value, b"v".to_vec());
    // Deleted and re-created earlier in the txn: fine.
    let resp = h
        .txn(txn(
            vec![],
            vec![
                delete_op("k", ""),
                put_op("k", "again"),
                put_op_req(PutRequest {
                    ignore_value: true,
                    prev_kv: true,
                    ..put_req("k", "")
                }),
            ],
            vec![],
        ))
        .unwrap();
    let put = as_put(&resp.responses[2]);
    assert_eq!(put.prev_kv.as_ref().unwrap().value, b"again".to_vec());
    let k = h.get("k").unwrap();
    assert_eq!(
        (k.value.as_slice(), k.version, k.create_revision),
        (&b"again"[..], 2, 3)
    );
}

#[test]
fn txn_range_revision_checks_follow_etcd() {
    let h = Harness::new();
    h.put("k", "1");
    h.put("k", "2");
    h.put("k", "3"); // rev 4
    h.compact(3).unwrap();
    let run = |revision: i64| {
        h.txn(txn(
            vec![],
            vec![range_op(RangeRequest {
                revision,
                ..range_req("k", "")
            })],
            vec![],
        ))
    };
    assert_eq!(run(2).unwrap_err(), MvccError::Compacted);
    assert_eq!(values(as_range(&run(3).unwrap().responses[0])), vec!["2"]);
    assert_eq!(values(as_range(&run(0).unwrap().responses[0])), vec!["3"]);
    assert_eq!(run(5).unwrap_err(), MvccError::FutureRevision);
    // etcd 3.4 quirk: inside a txn only 0 means "latest"; a negative revision below the
    // compaction floor is reported as compacted.
    assert_eq!(run(-1).unwrap_err(), MvccError::Compacted);
}

#[test]
fn delete_range_inside_txn_sees_keys_put_earlier_in_the_txn() {
    let h = Harness::new();
    let resp = h
        .txn(txn(
            vec![],
            vec![
                put_op("p/1", "a"),
                put_op("p/2", "b"),
                delete_op("p/", "p0"),
            ],
            vec![],
        ))
        .unwrap();
    let del = as_delete(&resp.responses[2]);
    assert_eq!(del.deleted, 2);
    assert_eq!(h.range(range_req("p/", "p0")).unwrap().count, 0);
    assert_eq!(h.rev(), 2);
}

#[test]
fn txn_events_have_pre_txn_prev_kv() {
    let h = Harness::new();
    h.put("k", "orig");
    let mut batch = h.store.write().unwrap();
    use synod_proto::peerpb::{internal_request::Request, InternalRequest};
    let t = txn(
        vec![],
        vec![put_op("k", "one"), put_op("k", "two"), delete_op("k", "")],
        vec![],
    );
    batch
        .apply(
            &InternalRequest {
                request: Some(Request::Txn(t)),
            },
            &|_| false,
        )
        .unwrap();
    let events = batch.take_events();
    batch.commit(false).unwrap();
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(e.prev_kv.as_ref().unwrap().value, b"orig".to_vec());
    }
    assert_eq!(events[1].kv.as_ref().unwrap().version, 3);
}
