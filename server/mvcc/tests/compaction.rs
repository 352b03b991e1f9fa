//! Compaction semantics, space reclamation, and watch catch-up around compaction.

mod common;

use common::*;
use synod_mvcc::MvccError;
use synod_proto::etcdserverpb::{PutRequest, RangeRequest};
use synod_proto::mvccpb::event::EventType;
use synod_proto::peerpb::{internal_request::Request, InternalRequest};

#[test]
fn compaction_does_not_bump_revision_and_reports_current_revision() {
    let h = Harness::new();
    h.put("a", "1");
    h.put("a", "2");
    let resp = h.compact(2).unwrap();
    assert_eq!(hdr_rev(&resp), 3);
    assert_eq!(h.rev(), 3);
    assert_eq!(h.store.read().unwrap().compact_revision(), 2);
}

#[test]
fn compaction_at_or_below_last_compaction_is_compacted_error() {
    let h = Harness::new();
    h.put("a", "1");
    h.put("a", "2");
    h.compact(2).unwrap();
    assert_eq!(h.compact(2).unwrap_err(), MvccError::Compacted);
    assert_eq!(h.compact(1).unwrap_err(), MvccError::Compacted);
    h.compact(3).unwrap();
}

#[test]
fn compaction_beyond_current_revision_is_future_revision_error() {
    let h = Harness::new();
    h.put("a", "1");
    assert_eq!(h.compact(3).unwrap_err(), MvccError::FutureRevision);
    assert_eq!(h.store.read().unwrap().compact_revision(), 0);
}

#[test]
fn compaction_keeps_the_newest_version_at_or_below_the_revision() {
    let h = Harness::new();
    h.put("a", "1"); // 2
    h.put("b", "1"); // 3
    h.put("a", "2"); // 4
    h.put("a", "3"); // 5
    h.put("b", "2"); // 6
    h.compact(4).unwrap();
    assert_eq!(h.get_at("a", 3).unwrap_err(), MvccError::Compacted);
    let at4 = h
        .range(RangeRequest {
            revision: 4,
            ..range_req("\0", "\0")
        })
        .unwrap();
    assert_eq!(values(&at4), vec!["2", "1"]);
    assert_eq!((at4.kvs[0].version, at4.kvs[0].create_revision), (2, 2));
    let at5 = h
        .range(RangeRequest {
            revision: 5,
            ..range_req("\0", "\0")
        })
        .unwrap();
    assert_eq!(values(&at5), vec!["3", "1"]);
    assert_eq!(
        values(&h.range(range_req("\0", "\0")).unwrap()),
        vec!["3", "2"]
    );
    // Versions are unaffected by compaction.
    h.put("a", "4");
    assert_eq!(h.get("a").unwrap().version, 4);
}

#[test]
fn compaction_removes_deleted_keys_entirely() {
    let h = Harness::new();
    h.put("gone", "1"); // 2
    h.put("gone", "2"); // 3
    h.delete("gone", ""); // 4
    h.put("kept", "1"); // 5
    h.compact(5).unwrap();
    let view = h.store.read().unwrap();
    // Only `kept`'s put survives at or below revision 5.
    let events = view.events_between(5, 5, 0, false).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kv.as_ref().unwrap().key, b"kept".to_vec());
    let r = view
        .range(&RangeRequest {
            revision: 5,
            ..range_req("\0", "\0")
        })
        .unwrap();
    assert_eq!(keys(&r), vec!["kept"]);
    // Nothing of `gone` is left on disk: no history, no tombstone.
    let stats = view.stats().unwrap();
    assert_eq!(
        (
            stats.live_keys,
            stats.history_entries,
            stats.revision_entries
        ),
        (1, 0, 1)
    );
    // Recreating the key starts a new generation.
    drop(view);
    h.put("gone", "again");
    let kv = h.get("gone").unwrap();
    assert_eq!((kv.version, kv.create_revision), (1, 6));
}

#[test]
fn tombstone_newer_than_the_compaction_revision_is_kept() {
    let h = Harness::new();
    h.put("k", "1"); // 2
    h.put("x", "1"); // 3
    h.delete("k", ""); // 4
    h.compact(3).unwrap();
    assert_eq!(h.get_at("k", 3).unwrap().unwrap().value, b"1".to_vec());
    assert_eq!(h.get_at("k", 4).unwrap(), None);
    let view = h.store.read().unwrap();
    let events = view.events_between(4, 4, 0, true).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].r#type, EventType::Delete as i32);
    assert_eq!(events[0].prev_kv.as_ref().unwrap().value, b"1".to_vec());
    // k's put (needed at revision 3) and tombstone, plus x.
    let stats = view.stats().unwrap();
    assert_eq!(
        (
            stats.live_keys,
            stats.history_entries,
            stats.revision_entries
        ),
        (1, 2, 3)
    );
}

#[test]
fn history_holds_superseded_versions_only_and_compaction_trims_it() {
    let h = Harness::new();
    for i in 0..10 {
        h.put("k", &i.to_string()); // revisions 2..=11
    }
    let stats = h.store.read().unwrap().stats().unwrap();
    assert_eq!(
        (
            stats.live_keys,
            stats.history_entries,
            stats.revision_entries
        ),
        (1, 9, 10)
    );
    h.compact(6).unwrap();
    // Versions at 2..=5 are gone; 6 (newest <= 6) stays for reads at revision 6.
    let stats = h.store.read().unwrap().stats().unwrap();
    assert_eq!((stats.history_entries, stats.revision_entries), (5, 6));
    h.compact(11).unwrap();
    let stats = h.store.read().unwrap().stats().unwrap();
    assert_eq!((stats.history_entries, stats.revision_entries), (0, 1));
    assert_eq!(h.get("k").unwrap().version, 10);
}

#[test]
fn repeated_compactions_only_keep_what_is_reachable() {
    let h = Harness::new();
    for i in 0..50 {
        h.put(&format!("k{}", i % 5), &i.to_string());
        if i % 7 == 6 {
            h.delete(&format!("k{}", (i + 1) % 5), "");
        }
        if i % 10 == 9 {
            h.compact(h.rev() - 2).unwrap();
        }
    }
    let view = h.store.read().unwrap();
    let c = view.compact_revision();
    // Everything from the compaction revision on is intact and readable.
    for rev in c..=view.current_revision() {
        view.range(&RangeRequest {
            revision: rev,
            ..range_req("\0", "\0")
        })
        .unwrap();
    }
    // Below the compaction revision there is at most one entry per key (at or below it).
    let events = view.events_between(c, c, 0, false).unwrap();
    assert!(events.len() <= 1);
    // On disk: one entry per live key plus what revisions after `c` need.
    let stats = view.stats().unwrap();
    let after_c = view
        .events_between(c + 1, i64::MAX, 0, false)
        .unwrap()
        .len() as u64;
    assert!(
        stats.revision_entries <= stats.live_keys + after_c + 5,
        "{stats:?}, {after_c} events after {c}"
    );
    assert_eq!(
        view.events_between(c - 1, c, 0, false).unwrap_err(),
        MvccError::Compacted
    );
}

fn put_big(h: &Harness, n: usize, value: &[u8]) {
    let mut i = 0;
    while i < n {
        let mut batch = h.store.write().unwrap();
        for _ in 0..50 {
            let p = PutRequest {
                key: b"hot".to_vec(),
                value: value.to_vec(),
                ..Default::default()
            };
            batch
                .apply(
                    &InternalRequest {
                        request: Some(Request::Put(p)),
                    },
                    &|_| false,
                )
                .unwrap();
            i += 1;
        }
        batch.commit(true).unwrap();
    }
}

#[test]
fn compaction_reclaims_space() {
    let h = Harness::new();
    let value = vec![0xABu8; 4096];
    put_big(&h, 500, &value);
    let before_compact_in_use = h.store.size_in_use();
    h.compact(h.rev()).unwrap();
    h.store.sync().unwrap();
    h.store.sync().unwrap();
    let after_compact_in_use = h.store.size_in_use();
    assert!(
        after_compact_in_use * 4 < before_compact_in_use,
        "in use: before {before_compact_in_use}, after {after_compact_in_use}"
    );
    let size_after_round_1 = h.store.size_on_disk();
    for _ in 0..5 {
        put_big(&h, 500, &value);
        h.compact(h.rev()).unwrap();
        h.store.sync().unwrap();
        h.store.sync().unwrap();
    }
    let size_after_round_6 = h.store.size_on_disk();
    eprintln!(
        "in use before/after first compaction: {before_compact_in_use}/{after_compact_in_use}; \
         file after round 1: {size_after_round_1}, after round 6: {size_after_round_6}"
    );
    // 3000 revisions of 4 KiB were written: ~12 MiB without reclamation.
    assert!(
        size_after_round_6 < size_after_round_1 * 2,
        "file grew from {size_after_round_1} to {size_after_round_6}"
    );
    assert_eq!(h.get("hot").unwrap().version, 3000);
}

#[test]
fn defragment_shrinks_the_file_keeps_every_key_and_waits_for_open_reads() {
    let h = Harness::new();
    let value = vec![0xCDu8; 4096];
    put_big(&h, 1000, &value);
    h.put("other", "kept");
    h.compact(h.rev()).unwrap();
    let before = h.store.size_on_disk();
    // An open read view holds pages: defragment waits for it, then gives up, changing nothing.
    let view = h.store.read().unwrap();
    let err = h
        .store
        .defragment(std::time::Duration::from_millis(50))
        .unwrap_err();
    assert!(matches!(err, MvccError::Storage(_)), "{err:?}");
    assert_eq!(h.store.size_on_disk(), before);
    drop(view);
    h.store
        .defragment(std::time::Duration::from_millis(50))
        .unwrap();
    let after = h.store.size_on_disk();
    assert!(after * 4 < before, "file: before {before}, after {after}");
    assert_eq!(h.get("hot").unwrap().value, value);
    assert_eq!(h.get("other").unwrap().value, b"kept".to_vec());
    // Writes go on, and a reopened store has them all.
    h.put("later", "1");
    let rev = h.rev();
    let path = h.db_path();
    // The temporary directory outlives the store handle.
    let Harness { dir, store, .. } = h;
    drop(store);
    let reopened = synod_mvcc::MvccStore::open(&path).unwrap();
    let view = reopened.read().unwrap();
    assert_eq!(view.current_revision(), rev);
    let r = view.range(&range_req("\0", "\0")).unwrap();
    assert_eq!(keys(&r), vec!["hot", "later", "other"]);
    drop(dir);
}

#[test]
fn events_between_returns_changes_in_revision_order() {
    let h = Harness::new();
    h.put("a", "1"); // 2
    h.put("b", "1"); // 3
    h.put("a", "2"); // 4
    h.delete("a", "\0"); // 5: deletes a and b
    h.put("c", "1"); // 6
    let view = h.store.read().unwrap();
    let all = view.events_between(1, 100, 0, true).unwrap();
    let summary: Vec<_> = all
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (
                e.r#type,
                String::from_utf8(kv.key.clone()).unwrap(),
                kv.mod_revision,
                e.prev_kv.as_ref().map(|p| p.mod_revision),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, "a".to_string(), 2, None),
            (0, "b".to_string(), 3, None),
            (0, "a".to_string(), 4, Some(2)),
            (1, "a".to_string(), 5, Some(4)),
            (1, "b".to_string(), 5, Some(3)),
            (0, "c".to_string(), 6, None),
        ]
    );
    // Without prev_kv.
    assert!(view
        .events_between(1, 100, 0, false)
        .unwrap()
        .iter()
        .all(|e| e.prev_kv.is_none()));
    // A limit never splits a revision.
    let first = view.events_between(4, 6, 2, false).unwrap();
    assert_eq!(first.len(), 3);
    let next = view.events_between(6, 6, 2, false).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(view.events_between(2, 3, 1, false).unwrap().len(), 1);
    // Empty and out-of-range windows.
    assert!(view.events_between(7, 10, 0, false).unwrap().is_empty());
    assert!(view.events_between(5, 4, 0, false).unwrap().is_empty());
}

#[test]
fn hash_kv_covers_the_history_up_to_a_revision_and_refuses_compacted_and_future_ones() {
    let write = |h: &Harness, last: &str| {
        h.put("a", "1");
        h.put("a", "2");
        h.put("b", "3");
        h.delete("a", "");
        h.put("c", last);
    };
    let (x, y, z) = (Harness::new(), Harness::new(), Harness::new());
    write(&x, "4");
    write(&y, "4");
    write(&z, "other");
    let hash = |h: &Harness, rev: i64| h.store.read().unwrap().hash_kv(rev);
    // The same history hashes alike; another value at revision 6 changes the hash from there.
    assert_eq!(hash(&x, 0).unwrap(), hash(&y, 0).unwrap());
    assert_ne!(hash(&x, 0).unwrap(), hash(&z, 0).unwrap());
    assert_eq!(hash(&x, 5).unwrap(), hash(&z, 5).unwrap());
    // 0 is the current revision; never compacted reports -1, like etcd.
    assert_eq!(hash(&x, 0).unwrap(), hash(&x, 6).unwrap());
    assert_eq!(hash(&x, 0).unwrap().1, -1);
    assert_ne!(hash(&x, 4).unwrap(), hash(&x, 6).unwrap());
    assert!(matches!(hash(&x, 7), Err(MvccError::FutureRevision)));
    x.compact(4).unwrap();
    assert!(matches!(hash(&x, 4), Err(MvccError::Compacted)));
    assert!(matches!(hash(&x, 3), Err(MvccError::Compacted)));
    let (after, compacted) = hash(&x, 6).unwrap();
    assert_eq!(compacted, 4);
    // The superseded versions compaction removed no longer count.
    assert_ne!(after, hash(&y, 6).unwrap().0);
}
