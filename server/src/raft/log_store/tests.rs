//! The log store against openraft's own storage suite, and what survives a restart: entries,
//! vote, purge and truncation, segment roll-over and deletion, a torn tail.

use std::collections::BTreeSet;
use std::path::Path;

use openraft::storage::{RaftLogReader, RaftLogStorage};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::testing::{blank_ent, log_id, membership_ent};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use synod_mvcc::MvccStore;
use tempfile::TempDir;

use super::super::state_machine::StateMachine;
use super::super::typ::{Entry, IOFlushed, LogId, Vote};
use super::super::{wal, TypeConfig};
use super::LogStore;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = LogStore::open_with_segments_of(&dir.path().join("raft-wal"), 16 << 10)
            .expect("open log");
        let store = MvccStore::open(&dir.path().join("state.redb")).expect("open store");
        Ok((dir, log, StateMachine::new(store)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_store_passes_openraft_storage_suite() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}

/// Appends and waits until the entries are durable.
async fn append(log: &mut LogStore, entries: Vec<Entry>) {
    let (tx, rx) = <TypeConfig as TypeConfigExt>::oneshot();
    log.append(entries, IOFlushed::signal(tx))
        .await
        .expect("append");
    rx.await.expect("flushed").expect("durable");
}

fn entries(term: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..=to)
        .map(|i| blank_ent::<TypeConfig>(term, 1, i))
        .collect()
}

async fn all(log: &mut LogStore) -> Vec<LogId> {
    log.try_get_log_entries(0..)
        .await
        .expect("read")
        .iter()
        .map(|e| e.log_id)
        .collect()
}

fn reopen(dir: &Path, segment_bytes: u64) -> LogStore {
    LogStore::open_with_segments_of(dir, segment_bytes).expect("reopen")
}

fn ids(term: u64, from: u64, to: u64) -> Vec<LogId> {
    (from..=to)
        .map(|i| log_id::<TypeConfig>(term, 1, i))
        .collect()
}

#[tokio::test]
async fn entries_vote_truncation_and_purge_survive_a_restart() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("raft-wal");
    {
        let mut log = reopen(&dir, wal::SEGMENT_BYTES);
        append(&mut log, entries(1, 1, 10)).await;
        log.save_vote(&Vote::new(2, 1)).await.expect("vote");
        log.truncate_after(Some(log_id::<TypeConfig>(1, 1, 6)))
            .await
            .expect("truncate");
        append(&mut log, entries(2, 7, 12)).await;
        log.purge(log_id::<TypeConfig>(1, 1, 3))
            .await
            .expect("purge");
    }
    let mut log = reopen(&dir, wal::SEGMENT_BYTES);
    let mut expected = ids(1, 4, 6);
    expected.extend(ids(2, 7, 12));
    assert_eq!(all(&mut log).await, expected);
    let state = log.get_log_state().await.expect("state");
    assert_eq!(
        state.last_purged_log_id,
        Some(log_id::<TypeConfig>(1, 1, 3))
    );
    assert_eq!(state.last_log_id, Some(log_id::<TypeConfig>(2, 1, 12)));
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(2, 1)));
}

#[tokio::test]
async fn a_full_segment_rolls_over_and_purged_segments_are_deleted_keeping_the_vote() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("raft-wal");
    let small = 1 << 10;
    {
        let mut log = reopen(&dir, small);
        log.save_vote(&Vote::new(3, 1)).await.expect("vote");
        for i in 0..40 {
            append(&mut log, entries(3, i * 10 + 1, i * 10 + 10)).await;
        }
        let segments = wal::list_segments(&dir).expect("list").len();
        assert!(
            segments > 5,
            "{segments} segments after 400 entries of ~40 bytes in 1 KiB ones"
        );
        log.purge(log_id::<TypeConfig>(3, 1, 350))
            .await
            .expect("purge");
        let left = wal::list_segments(&dir).expect("list").len();
        assert!(
            left < segments && left >= 1,
            "{left} of {segments} segments left"
        );
        assert_eq!(all(&mut log).await, ids(3, 351, 400));
    }
    let mut log = reopen(&dir, small);
    assert_eq!(all(&mut log).await, ids(3, 351, 400));
    assert_eq!(log.read_vote().await.expect("vote"), Some(Vote::new(3, 1)));
    let state = log.get_log_state().await.expect("state");
    assert_eq!(
        state.last_purged_log_id,
        Some(log_id::<TypeConfig>(3, 1, 350))
    );
    append(&mut log, entries(3, 401, 405)).await;
    assert_eq!(all(&mut log).await, ids(3, 351, 405));
}

#[tokio::test]
async fn entries_evicted_from_the_cache_are_read_back_from_their_segments() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("raft-wal");
    let mut log = reopen(&dir, 64 << 10);
    let members = vec![BTreeSet::from([1u64])];
    append(
        &mut log,
        vec![membership_ent::<TypeConfig>(1, 1, 1, members)],
    )
    .await;
    // More than the cache keeps, in groups, across several segments.
    for i in 0..20u64 {
        append(&mut log, entries(1, 2 + i * 500, 1 + (i + 1) * 500)).await;
    }
    let got = log.try_get_log_entries(1..=10_001).await.expect("read");
    assert_eq!(got.len(), 10_001);
    assert!(got
        .iter()
        .enumerate()
        .all(|(i, e)| e.log_id.index == i as u64 + 1));
    let middle = log.try_get_log_entries(777..780).await.expect("read");
    let indexes: Vec<u64> = middle.iter().map(|e| e.log_id.index).collect();
    assert_eq!(indexes, vec![777, 778, 779]);
}

#[tokio::test]
async fn a_torn_last_group_is_cut_off_and_the_log_goes_on_after_the_last_good_entry() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("raft-wal");
    {
        let mut log = reopen(&dir, wal::SEGMENT_BYTES);
        append(&mut log, entries(1, 1, 5)).await;
    }
    // A crash in the middle of the next group's write: half a record after the last one.
    let (_, path) = wal::list_segments(&dir)
        .expect("list")
        .pop()
        .expect("a segment");
    let mut garbage = Vec::new();
    wal::push_record(
        &mut garbage,
        wal::Kind::Entry,
        &[&6u64.to_le_bytes(), b"cut short"],
    );
    let end = {
        let (_, _, end) = wal::Segment::open(1, &path, true, wal::SEGMENT_BYTES).expect("scan");
        end
    };
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open");
        f.write_all_at(&garbage[..garbage.len() - 3], end)
            .expect("write");
    }
    let mut log = reopen(&dir, wal::SEGMENT_BYTES);
    assert_eq!(all(&mut log).await, ids(1, 1, 5));
    append(&mut log, entries(1, 6, 8)).await;
    drop(log);
    let mut log = reopen(&dir, wal::SEGMENT_BYTES);
    assert_eq!(all(&mut log).await, ids(1, 1, 8));
}
