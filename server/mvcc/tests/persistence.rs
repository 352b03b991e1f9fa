//! Durability, reopening, snapshots and bad files.

mod common;

use common::*;
use synod_mvcc::{MvccError, MvccStore};
use synod_proto::etcdserverpb::RangeRequest;

#[test]
fn reopen_after_durable_commit_persists_everything() {
    let h = Harness::new();
    h.put("a", "1");
    h.put("a", "2");
    h.delete("a", "");
    h.put("b", "1");
    h.compact(3).unwrap();
    let mut batch = h.store.write().unwrap();
    batch.set_meta("applied", b"17").unwrap();
    batch.commit(true).unwrap();
    let path = h.db_path();
    let Harness { dir, store, .. } = h;
    drop(store);

    let store = MvccStore::open(&path).unwrap();
    let view = store.read().unwrap();
    assert_eq!((view.current_revision(), view.compact_revision()), (5, 3));
    assert_eq!(view.meta("applied").unwrap(), Some(b"17".to_vec()));
    let r = view.range(&range_req("\0", "\0")).unwrap();
    assert_eq!(keys(&r), vec!["b"]);
    let r = view
        .range(&RangeRequest {
            revision: 3,
            ..range_req("a", "")
        })
        .unwrap();
    assert_eq!(values(&r), vec!["2"]);
    assert_eq!(
        view.range(&RangeRequest {
            revision: 2,
            ..range_req("a", "")
        })
        .unwrap_err(),
        MvccError::Compacted
    );
    drop(dir);
}

#[test]
fn non_durable_commits_become_durable_with_sync() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = MvccStore::open(&path).unwrap();
        let h = Harness {
            dir: tempfile::tempdir().unwrap(),
            store,
            leases: Default::default(),
        };
        h.put("k", "v"); // committed with Durability::None
        assert_eq!(h.get("k").unwrap().value, b"v".to_vec());
        h.store.sync().unwrap();
    }
    let store = MvccStore::open(&path).unwrap();
    assert_eq!(
        store.read().unwrap().get(b"k").unwrap().unwrap().value,
        b"v".to_vec()
    );
}

#[test]
fn restore_from_bytes_round_trip() {
    let src = Harness::new();
    for i in 0..20 {
        src.put(&format!("key{}", i % 6), &format!("v{i}"));
    }
    src.delete("key1", "key3");
    src.compact(10).unwrap();
    let mut batch = src.store.write().unwrap();
    batch.set_meta("applied", b"99").unwrap();
    batch.commit(true).unwrap();
    let snap = src.store.snapshot_bytes().unwrap();

    let dst = Harness::new();
    dst.put("junk", "to be replaced");
    dst.store.restore_from_bytes(&snap).unwrap();
    let (a, b) = (src.store.read().unwrap(), dst.store.read().unwrap());
    assert_eq!(a.current_revision(), b.current_revision());
    assert_eq!(a.compact_revision(), b.compact_revision());
    assert_eq!(b.meta("applied").unwrap(), Some(b"99".to_vec()));
    for rev in 10..=a.current_revision() {
        let req = RangeRequest {
            revision: rev,
            ..range_req("\0", "\0")
        };
        assert_eq!(
            a.range(&req).unwrap(),
            b.range(&req).unwrap(),
            "at revision {rev}"
        );
    }
    assert_eq!(
        a.events_between(10, 100, 0, true).unwrap(),
        b.events_between(10, 100, 0, true).unwrap()
    );
    assert_eq!(b.get(b"junk").unwrap(), None);
    // The snapshot of the restored store is byte-identical.
    drop((a, b));
    assert_eq!(dst.store.snapshot_bytes().unwrap(), snap);
    // Writes continue from the restored revision.
    let resp = dst.put("new", "1");
    assert_eq!(hdr_rev(&resp), src.rev() + 1);
}

#[test]
fn corrupt_snapshot_is_rejected_and_changes_nothing() {
    let src = Harness::new();
    src.put("a", "1");
    let mut snap = src.store.snapshot_bytes().unwrap();
    let dst = Harness::new();
    dst.put("keep", "me");
    let mid = snap.len() / 2;
    snap[mid] ^= 0xFF;
    assert!(matches!(
        dst.store.restore_from_bytes(&snap),
        Err(MvccError::Corrupt(_))
    ));
    assert!(matches!(
        dst.store.restore_from_bytes(b"garbage"),
        Err(MvccError::Corrupt(_))
    ));
    assert!(matches!(
        dst.store.restore_from_bytes(&[]),
        Err(MvccError::Corrupt(_))
    ));
    assert_eq!(dst.get("keep").unwrap().value, b"me".to_vec());
}

#[test]
fn opening_a_non_database_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-db");
    std::fs::write(&path, vec![0x5Au8; 8192]).unwrap();
    assert!(MvccStore::open(&path).is_err());
    let path = dir.path().join("short");
    std::fs::write(&path, b"redb?").unwrap();
    assert!(MvccStore::open(&path).is_err());
}

#[test]
fn a_store_of_the_kv_history_layout_is_refused_by_name_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.redb");
    {
        // What development builds before the key index wrote: layout 1.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(meta).unwrap();
            meta.insert("mvcc/format", [1u8].as_slice()).unwrap();
            meta.insert("mvcc/current_revision", 7i64.to_be_bytes().as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = MvccStore::open(&path).unwrap_err();
    assert!(matches!(err, MvccError::UnsupportedLayout(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("layout 1") && msg.contains("empty data directory"),
        "{msg}"
    );
    // Nothing was written: still layout 1, with no table of layout 2.
    use redb::{ReadableDatabase, TableHandle};
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    let tables: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|t| t.name().to_string())
        .collect();
    assert_eq!(tables, vec!["meta".to_string()]);
    let meta: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("meta");
    let meta = txn.open_table(meta).unwrap();
    assert_eq!(
        meta.get("mvcc/format").unwrap().unwrap().value(),
        &[1u8][..]
    );
}

#[test]
fn opening_a_path_in_a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = MvccStore::open(&dir.path().join("missing/dir/db")).unwrap_err();
    assert!(matches!(err, MvccError::Storage(_)), "{err:?}");
}

#[test]
fn opening_twice_in_one_process_is_an_error() {
    let h = Harness::new();
    assert!(MvccStore::open(&h.db_path()).is_err());
}

#[test]
fn sizes_are_reported() {
    let h = Harness::new();
    h.put("k", "v");
    h.store.sync().unwrap();
    let on_disk = h.store.size_on_disk();
    let in_use = h.store.size_in_use();
    assert!(
        on_disk > 0 && in_use > 0 && in_use <= on_disk,
        "{in_use} / {on_disk}"
    );
}

#[test]
fn clones_share_one_database() {
    let h = Harness::new();
    let other = h.store.clone();
    h.put("k", "v");
    assert_eq!(other.read().unwrap().current_revision(), 2);
}
