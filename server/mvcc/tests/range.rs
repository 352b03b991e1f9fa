//! Range: key ranges, revisions, limit/count/more, sorting, filters.

mod common;

use common::*;
use synod_mvcc::MvccError;
use synod_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use synod_proto::etcdserverpb::RangeRequest;

/// a..e with distinct versions/create/mod revisions:
/// rev 2 a=3, 3 b=1, 4 c=5, 5 d=2, 6 e=4, 7 b=9 (b version 2), 8 d=0 (d version 2), 9 d=7 (v3)
fn fixture() -> Harness {
    let h = Harness::new();
    for (k, v) in [
        ("a", "3"),
        ("b", "1"),
        ("c", "5"),
        ("d", "2"),
        ("e", "4"),
        ("b", "9"),
        ("d", "0"),
        ("d", "7"),
    ] {
        h.put(k, v);
    }
    assert_eq!(h.rev(), 9);
    h
}

fn req(key: &str, end: &str) -> RangeRequest {
    range_req(key, end)
}

#[test]
fn single_key_range_and_missing_key() {
    let h = fixture();
    let r = h.range(req("c", "")).unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["c".to_string()], 1, false)
    );
    let r = h.range(req("cc", "")).unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 0));
}

#[test]
fn range_end_semantics() {
    let h = fixture();
    assert_eq!(keys(&h.range(req("b", "d")).unwrap()), vec!["b", "c"]);
    // "\0" as range_end: every key >= key.
    assert_eq!(keys(&h.range(req("c", "\0")).unwrap()), vec!["c", "d", "e"]);
    // key "\0" and range_end "\0": everything.
    assert_eq!(
        keys(&h.range(req("\0", "\0")).unwrap()),
        vec!["a", "b", "c", "d", "e"]
    );
    // Prefix-style range.
    assert_eq!(keys(&h.range(req("a", "b")).unwrap()), vec!["a"]);
    // range_end <= key is empty.
    let r = h.range(req("d", "b")).unwrap();
    assert_eq!((r.kvs.len(), r.count), (0, 0));
}

#[test]
fn header_revision_is_the_current_revision() {
    let h = fixture();
    assert_eq!(hdr_rev(&h.range(req("a", "")).unwrap()), 9);
    // Even when reading an older revision.
    assert_eq!(
        hdr_rev(
            &h.range(RangeRequest {
                revision: 3,
                ..req("a", "")
            })
            .unwrap()
        ),
        9
    );
}

#[test]
fn limit_sets_more_and_count_covers_the_whole_range() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            limit: 2,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["a".to_string(), "b".to_string()], 5, true)
    );
    let r = h
        .range(RangeRequest {
            limit: 5,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (5, 5, false));
    let r = h
        .range(RangeRequest {
            limit: 10,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (5, 5, false));
    // A negative limit means no limit.
    let r = h
        .range(RangeRequest {
            limit: -1,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.more), (5, false));
}

#[test]
fn count_only_returns_count_and_no_kvs() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            count_only: true,
            ..req("b", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 4, false));
    let r = h
        .range(RangeRequest {
            count_only: true,
            limit: 1,
            ..req("b", "\0")
        })
        .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 4, false));
    // Filters do not affect the count.
    let r = h
        .range(RangeRequest {
            count_only: true,
            min_mod_revision: 9,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(r.count, 5);
}

#[test]
fn whole_keyspace_count_includes_the_empty_key_only_from_empty_start() {
    let h = fixture();
    h.try_put(synod_proto::etcdserverpb::PutRequest {
        key: Vec::new(),
        value: b"e".to_vec(),
        ..Default::default()
    })
    .unwrap();
    let count = |key: &str| {
        h.range(RangeRequest {
            count_only: true,
            ..req(key, "\0")
        })
        .unwrap()
        .count
    };
    assert_eq!(count(""), 6);
    assert_eq!(count("\0"), 5);
    let r = h
        .range(RangeRequest {
            limit: 1,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!((r.count, r.more), (5, true));
}

#[test]
fn keys_only_drops_values() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            keys_only: true,
            ..req("a", "c")
        })
        .unwrap();
    assert_eq!(keys(&r), vec!["a", "b"]);
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    assert_eq!(r.kvs[1].version, 2);
}

#[test]
fn sort_by_every_target_and_order() {
    let h = fixture();
    let sorted = |order: SortOrder, target: SortTarget| {
        keys(
            &h.range(RangeRequest {
                sort_order: order as i32,
                sort_target: target as i32,
                ..req("\0", "\0")
            })
            .unwrap(),
        )
    };
    use SortOrder::*;
    use SortTarget::*;
    assert_eq!(sorted(Ascend, Key), vec!["a", "b", "c", "d", "e"]);
    assert_eq!(sorted(Descend, Key), vec!["e", "d", "c", "b", "a"]);
    // values: a=3 b=9 c=5 d=7 e=4
    assert_eq!(sorted(Ascend, Value), vec!["a", "e", "c", "d", "b"]);
    assert_eq!(sorted(Descend, Value), vec!["b", "d", "c", "e", "a"]);
    // versions: a1 b2 c1 d3 e1 (stable: ties keep key order)
    assert_eq!(sorted(Ascend, Version), vec!["a", "c", "e", "b", "d"]);
    assert_eq!(sorted(Descend, Version), vec!["d", "b", "a", "c", "e"]);
    // create: a2 b3 c4 d5 e6
    assert_eq!(sorted(Descend, Create), vec!["e", "d", "c", "b", "a"]);
    // mod: a2 b7 c4 d9 e6
    assert_eq!(sorted(Ascend, Mod), vec!["a", "c", "e", "b", "d"]);
    assert_eq!(sorted(Descend, Mod), vec!["d", "b", "e", "c", "a"]);
    // NONE with a non-KEY target sorts ascending.
    assert_eq!(sorted(SortOrder::None, Mod), vec!["a", "c", "e", "b", "d"]);
    assert_eq!(sorted(SortOrder::None, Key), vec!["a", "b", "c", "d", "e"]);
}

#[test]
fn sort_then_limit_truncates_the_sorted_result() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Mod as i32,
            limit: 2,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["d".to_string(), "b".to_string()], 5, true)
    );
}

#[test]
fn sort_order_none_with_non_key_target_sorts_only_the_first_limit_plus_one_keys() {
    // etcd 3.4 quirk: with sort_order NONE nothing forces a full fetch, so limit+1 keys are
    // fetched in key order, sorted, then truncated.
    let h = fixture();
    let r = h
        .range(RangeRequest {
            sort_target: SortTarget::Value as i32,
            limit: 2,
            ..req("\0", "\0")
        })
        .unwrap();
    // first 3 keys a=3 b=9 c=5 sorted by value: a, c, b -> truncated to a, c
    assert_eq!(
        (keys(&r), r.more),
        (vec!["a".to_string(), "c".to_string()], true)
    );
}

#[test]
fn mod_and_create_revision_filters() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            min_mod_revision: 6,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(
        (keys(&r), r.count),
        (vec!["b".to_string(), "d".to_string(), "e".to_string()], 5)
    );
    let r = h
        .range(RangeRequest {
            max_mod_revision: 4,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(keys(&r), vec!["a", "c"]);
    let r = h
        .range(RangeRequest {
            min_create_revision: 4,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(keys(&r), vec!["c", "d", "e"]);
    let r = h
        .range(RangeRequest {
            max_create_revision: 3,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(keys(&r), vec!["a", "b"]);
    let r = h
        .range(RangeRequest {
            min_create_revision: 3,
            max_mod_revision: 7,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(keys(&r), vec!["b", "c", "e"]);
}

#[test]
fn filters_then_limit_sets_more_from_the_filtered_result() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            min_create_revision: 4,
            limit: 2,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["c".to_string(), "d".to_string()], 5, true)
    );
    let r = h
        .range(RangeRequest {
            min_create_revision: 5,
            limit: 2,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["d".to_string(), "e".to_string()], 5, false)
    );
}

#[test]
fn reads_at_old_revisions_see_old_values() {
    let h = fixture();
    h.delete("a", "");
    h.put("f", "new");
    // rev 10: delete a, rev 11: put f
    let at = |rev: i64| {
        h.range(RangeRequest {
            revision: rev,
            ..req("\0", "\0")
        })
        .unwrap()
    };
    assert_eq!(keys(&at(1)), Vec::<String>::new());
    assert_eq!(keys(&at(3)), vec!["a", "b"]);
    assert_eq!(values(&at(6)), vec!["3", "1", "5", "2", "4"]);
    let r = at(8);
    assert_eq!(values(&r), vec!["3", "9", "5", "0", "4"]);
    assert_eq!(
        (
            r.kvs[3].version,
            r.kvs[3].mod_revision,
            r.kvs[3].create_revision
        ),
        (2, 8, 5)
    );
    assert_eq!(keys(&at(9)), vec!["a", "b", "c", "d", "e"]);
    assert_eq!(keys(&at(10)), vec!["b", "c", "d", "e"]);
    assert_eq!(keys(&at(11)), vec!["b", "c", "d", "e", "f"]);
    assert_eq!(at(8).count, 5);
    assert_eq!(at(10).count, 4);
    assert_eq!(h.get_at("a", 9).unwrap().unwrap().value, b"3".to_vec());
    assert_eq!(h.get_at("a", 10).unwrap(), None);
    assert_eq!(h.get_at("d", 5).unwrap().unwrap().value, b"2".to_vec());
}

#[test]
fn old_revision_reads_support_limit_count_and_sorting() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            revision: 6,
            limit: 2,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(
        (keys(&r), r.count, r.more),
        (vec!["a".to_string(), "b".to_string()], 5, true)
    );
    let r = h
        .range(RangeRequest {
            revision: 4,
            count_only: true,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!((r.count, r.kvs.len()), (3, 0));
    let r = h
        .range(RangeRequest {
            revision: 8,
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Value as i32,
            ..req("b", "e")
        })
        .unwrap();
    assert_eq!(values(&r), vec!["9", "5", "0"]);
}

#[test]
fn range_at_future_revision_is_an_error() {
    let h = fixture();
    let err = h
        .range(RangeRequest {
            revision: 10,
            ..req("a", "")
        })
        .unwrap_err();
    assert_eq!(err, MvccError::FutureRevision);
    assert_eq!(
        err.to_string(),
        "mvcc: required revision is a future revision"
    );
}

#[test]
fn negative_or_zero_revision_reads_latest() {
    let h = fixture();
    let r = h
        .range(RangeRequest {
            revision: -5,
            ..req("d", "")
        })
        .unwrap();
    assert_eq!(values(&r), vec!["7"]);
}

#[test]
fn range_at_compacted_revision_is_an_error() {
    let h = fixture();
    h.compact(5).unwrap();
    let err = h
        .range(RangeRequest {
            revision: 4,
            ..req("a", "")
        })
        .unwrap_err();
    assert_eq!(err, MvccError::Compacted);
    assert_eq!(
        err.to_string(),
        "mvcc: required revision has been compacted"
    );
    // The compaction revision itself is still readable.
    let r = h
        .range(RangeRequest {
            revision: 5,
            ..req("\0", "\0")
        })
        .unwrap();
    assert_eq!(values(&r), vec!["3", "1", "5", "2"]);
}
